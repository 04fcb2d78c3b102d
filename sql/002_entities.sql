-- Who causes events: an account (name = its e-mail, lower-cased) or a named system process.
CREATE TABLE IF NOT EXISTS entities (
    id uuid PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('account', 'process')),
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, name)
);

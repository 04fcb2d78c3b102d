-- One row per event type and version; the JSON Schema is loaded from schemas/ at start-up.
CREATE TABLE IF NOT EXISTS event_types (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    version integer NOT NULL CHECK (version > 0),
    schema jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);

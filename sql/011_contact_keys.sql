-- Write-side state, not a projection: the live contacts of each account by their natural key.
-- Commands insert, update and delete these rows in the same transaction as their event, so a
-- name clash is refused at once and exactly (a projection may lag; this table never does).
CREATE TABLE IF NOT EXISTS contact_keys (
    contact_id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES entities (id),
    name text NOT NULL,
    UNIQUE (account_id, name)
);

-- Who is logged in: one row per log-in, named by the SHA-256 of the random token in the browser's
-- cookie (a copy of this table cannot be replayed as cookies). Sessions are not domain events:
-- nothing about an account's data changes when someone logs in, and a projection rebuilt from the
-- log must not bring ended sessions back. Log-out deletes the row; a password change deletes the
-- account's other rows. expires_at slides with use, up to created_at + the longest lifetime.
CREATE TABLE IF NOT EXISTS sessions (
    id_hash bytea PRIMARY KEY,
    account_id uuid NOT NULL,
    email text NOT NULL,
    user_agent text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS sessions_account_id ON sessions (account_id);

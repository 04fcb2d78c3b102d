CREATE TABLE IF NOT EXISTS projected_accounts (
    account_id uuid PRIMARY KEY,
    email text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    time_zone text NOT NULL,
    created_at timestamptz NOT NULL,
    last_updated_at timestamptz NOT NULL
);

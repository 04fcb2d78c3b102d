-- Sign-ups waiting for their e-mail to be confirmed, when crm can send e-mail (CRM_SMTP_URL):
-- the account is created, by an account-created event, only when the link mailed to the address
-- is followed, so that sign-up says the same thing whether or not the address has an account,
-- and nobody signs up with an address that is not theirs. Named by the SHA-256 of the link's
-- token; a row expires after a day. Not a domain event: nothing exists until it is confirmed.
CREATE TABLE IF NOT EXISTS sign_up_requests (
    token_hash bytea PRIMARY KEY,
    email text NOT NULL,
    password_hash text NOT NULL,
    time_zone text NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS sign_up_requests_expires_at ON sign_up_requests (expires_at);

-- Failed log-ins and sign-ups, counted per key ("log-in:account:<e-mail>", "log-in:address:<ip>",
-- ...), shared by every app process on the database. A key with `failures` past its free
-- allowance must wait a time that doubles with each further failure, counted from
-- last_failure_at; a key quiet for an hour starts again from nothing. Not domain events either:
-- a guess at a password changes nothing about anyone's data.
CREATE TABLE IF NOT EXISTS throttles (
    key text PRIMARY KEY,
    failures integer NOT NULL,
    last_failure_at timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS throttles_last_failure_at ON throttles (last_failure_at);

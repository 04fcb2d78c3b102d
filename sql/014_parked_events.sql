-- Events a projection could not apply (crm/projections/poison.py): after a few attempts with
-- backoff the projection records the event here with its error, moves past it, and keeps going
-- for everyone else. A row stays until a replay of that projection applies the event (or parks
-- it again): nothing is skipped silently.
CREATE TABLE IF NOT EXISTS parked_events (
    projection text NOT NULL REFERENCES projections (name),
    position bigint NOT NULL REFERENCES events (id),
    subject_key text NOT NULL,  -- the projection's key in the event: which contact or account
    error text NOT NULL,
    traceback text NOT NULL,
    attempts integer NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, position)
);

CREATE INDEX IF NOT EXISTS parked_events_subject_key ON parked_events (subject_key);

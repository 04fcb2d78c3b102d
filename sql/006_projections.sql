-- Each projection's own position: the last event it applied (events it ignores included).
CREATE TABLE IF NOT EXISTS projections (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0,
    last_updated_at timestamptz NOT NULL DEFAULT now()
);

-- A doorbell for projectors: one notification per inserting statement, carrying only the highest
-- position it wrote (never the payload: NOTIFY payloads stop at 8000 bytes).
CREATE OR REPLACE FUNCTION events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(:'events_channel', (SELECT max(id) FROM appended)::text);
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER events_notify
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

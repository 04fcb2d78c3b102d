-- Positions must become visible in position order, or a reader that remembers "the last position
-- I applied" skips an event that commits after a higher-numbered one. Appends are therefore
-- serialized: each inserting transaction takes one transaction-level advisory lock (held until it
-- commits or rolls back) before it draws its position. A later position can only be drawn after
-- the earlier transaction has ended, so no committed event can ever appear below a position that
-- a reader has already passed. The lock lives in a trigger so that no insert can bypass it.
CREATE OR REPLACE FUNCTION events_assign_position() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(:append_lock);  -- the crm append lock
    NEW.id := nextval('events_position_seq');
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER events_assign_position
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_assign_position();

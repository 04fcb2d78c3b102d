-- The event stream. id is the global position, assigned by the events_assign_position trigger.
CREATE SEQUENCE IF NOT EXISTS events_position_seq AS bigint;

CREATE TABLE IF NOT EXISTS events (
    id bigint PRIMARY KEY,
    event_type_id integer NOT NULL REFERENCES event_types (id),
    entity_id uuid NOT NULL REFERENCES entities (id),
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

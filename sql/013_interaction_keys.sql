-- Write-side state, not a projection: the natural keys (contact + day) of the live contacts'
-- interactions. record_interaction inserts its key in the same transaction as its event, so "that
-- day already has an interaction" is decided at once and exactly, even while the interactions
-- projection lags or is stalled. A contact's keys go with its contact_keys row.
CREATE TABLE IF NOT EXISTS interaction_keys (
    contact_id uuid NOT NULL REFERENCES contact_keys (contact_id) ON DELETE CASCADE,
    interacted_on date NOT NULL,
    PRIMARY KEY (contact_id, interacted_on)
);

-- The keys of the interactions recorded before this table existed, read from the events.
INSERT INTO interaction_keys (
    contact_id,
    interacted_on
)
SELECT DISTINCT
    k.contact_id,
    (e.payload ->> 'interacted_on')::date
FROM events AS e
JOIN event_types AS t ON t.id = e.event_type_id
JOIN contact_keys AS k ON k.contact_id = (e.payload ->> 'contact_id')::uuid
WHERE t.name = 'interaction-recorded'
ON CONFLICT DO NOTHING;

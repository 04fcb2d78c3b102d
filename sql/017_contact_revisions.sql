-- Write-side state: each contact's revisions, so that a write can say which version it was based
-- on. details_revision counts the contact's contact-created and contact-edited events (1 once it
-- is created), notes_revision its next-meeting-notes-written events (0 before any notes). Their
-- commands raise them in the transaction that appends the event, under the contact's row lock.
-- Per contact, never a global position: a page shows them, and positions reveal other accounts'
-- activity.
ALTER TABLE contact_keys ADD COLUMN IF NOT EXISTS details_revision integer NOT NULL DEFAULT 1;
ALTER TABLE contact_keys ADD COLUMN IF NOT EXISTS notes_revision integer NOT NULL DEFAULT 0;

-- A stale write rebuilds the version it was based on from the contact's own events: found by
-- the contact, in order, without reading anyone else's.
CREATE INDEX IF NOT EXISTS events_contact_id ON events ((payload ->> 'contact_id'), id);

-- The contacts that existed before the counters did.
UPDATE contact_keys
SET
    details_revision = counted.details,
    notes_revision = counted.notes
FROM (
    SELECT
        events.payload ->> 'contact_id' AS contact_id,
        count(*) FILTER (WHERE event_types.name IN ('contact-created', 'contact-edited')) AS details,
        count(*) FILTER (WHERE event_types.name = 'next-meeting-notes-written') AS notes
    FROM events
    JOIN event_types ON event_types.id = events.event_type_id
    WHERE event_types.name IN ('contact-created', 'contact-edited', 'next-meeting-notes-written')
    GROUP BY 1
) AS counted
WHERE contact_keys.contact_id::text = counted.contact_id;

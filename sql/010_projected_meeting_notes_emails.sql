-- One row per live contact. A contact whose next-meeting notes still await their e-mail has
-- meeting_on, notes and notes_html set; meeting-notes-email-sent clears them. The row itself stays
-- so that the projection can keep the contact's current name without reading another projection.
CREATE TABLE IF NOT EXISTS projected_meeting_notes_emails (
    contact_id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    contact_name text NOT NULL,
    meeting_on date,
    notes text,
    notes_html text,
    last_updated_at timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS projected_meeting_notes_emails_pending
    ON projected_meeting_notes_emails (meeting_on)
    WHERE meeting_on IS NOT NULL;

CREATE TABLE IF NOT EXISTS projected_contacts (
    contact_id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    name text NOT NULL,
    description text NOT NULL,
    contact_method text NOT NULL,
    last_interacted_on date,
    next_meeting_on date,
    next_meeting_notes text,
    next_meeting_notes_html text,
    created_at timestamptz NOT NULL,
    last_updated_at timestamptz NOT NULL,
    UNIQUE (account_id, name)
);

CREATE INDEX IF NOT EXISTS projected_contacts_account_lower_name
    ON projected_contacts (account_id, lower(name));
CREATE INDEX IF NOT EXISTS projected_contacts_account_last_interacted
    ON projected_contacts (account_id, last_interacted_on);
CREATE INDEX IF NOT EXISTS projected_contacts_account_next_meeting
    ON projected_contacts (account_id, next_meeting_on);

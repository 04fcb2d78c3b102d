CREATE TABLE IF NOT EXISTS projected_interactions (
    contact_id uuid NOT NULL,
    interacted_on date NOT NULL,
    account_id uuid NOT NULL,
    notes text NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (contact_id, interacted_on)
);

CREATE INDEX IF NOT EXISTS projected_interactions_account_date
    ON projected_interactions (account_id, interacted_on);

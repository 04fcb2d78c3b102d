-- Uniqueness is decided on the write side (entities for e-mails, contact_keys for names), in the
-- transaction that appends the event. A read model that enforced it too could only refuse to
-- apply an event the write side had already accepted: the live projector would park it, and a
-- replay, which builds its indexes after the rows, could not build the table at all. So the
-- projections keep plain indexes for their lookups, and no unique constraints but their keys.
ALTER TABLE projected_contacts DROP CONSTRAINT IF EXISTS projected_contacts_account_id_name_key;

ALTER TABLE projected_accounts DROP CONSTRAINT IF EXISTS projected_accounts_email_key;

CREATE INDEX IF NOT EXISTS projected_accounts_email
    ON projected_accounts (email);

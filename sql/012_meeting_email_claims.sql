-- Write-side state of the morning e-mail job: one row per contact and meeting day, claimed
-- before the e-mail is sent. The primary key makes two job runs (in two processes, or twice in
-- one day) agree on who sends; locked_until is the sender's lease, next_attempt_at the backoff
-- after an SMTP failure. status 'sent' is set in the same transaction that appends
-- meeting-notes-email-sent. See docs/architecture.md, "The morning e-mail".
CREATE TABLE IF NOT EXISTS meeting_email_claims (
    contact_id uuid NOT NULL,
    meeting_on date NOT NULL,
    account_id uuid NOT NULL,
    message_id text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent')),
    attempts integer NOT NULL DEFAULT 0,
    locked_until timestamptz NOT NULL DEFAULT '-infinity',
    next_attempt_at timestamptz NOT NULL DEFAULT '-infinity',
    last_error text,
    sent_at timestamptz,
    PRIMARY KEY (contact_id, meeting_on)
);

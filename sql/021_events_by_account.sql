-- The account's own events, newest first, for its event browser and its export: found by the
-- account id every payload carries (an event a process caused, such as the morning e-mail, is
-- the account's by its payload too), never by reading anyone else's.
CREATE INDEX IF NOT EXISTS events_account_id ON events ((payload ->> 'account_id'), id);

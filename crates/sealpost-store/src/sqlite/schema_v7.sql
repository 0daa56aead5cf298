-- sealpost schema version 7: the portal's Sent folder (issue 15).
-- A recipient's reply, reply all or forward from the portal is an ordinary
-- message (sealed, queued or given secure delivery like any other); this
-- row puts it in its author's Sent folder. It is written in the reply's
-- acceptance commit, together with the original's replied_at, so the
-- folder and tracking never disagree with what was sent.
CREATE TABLE portal_sent (
    message_id   TEXT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,  -- the reply
    account_key  TEXT NOT NULL,      -- the author's match key (portal_accounts.key)
    original_id  TEXT NOT NULL,      -- the message replied to or forwarded ...
    original_idx INTEGER NOT NULL,   -- ... as received by the author (its secure recipient)
    sent_at      INTEGER NOT NULL,
    recipients   TEXT NOT NULL       -- the reply's addresses, ', '-joined: the folder's "To" and its search
) STRICT, WITHOUT ROWID;
CREATE INDEX portal_sent_by_account ON portal_sent(account_key, sent_at, message_id);

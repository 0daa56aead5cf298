-- sealpost schema version 10: a portal reply stays readable in its
-- author's Sent folder as long as the message it answers (issue 15,
-- item 3). A reply to internal addresses only was destroyed as soon as it
-- was relayed, like any relayed mail, so Sent listed it as expired within
-- seconds. `keep_until` is the answered message's expiry when the reply
-- was sent; the expiry job destroys the reply's content after it and sets
-- it to NULL (the partial index then forgets the row).
ALTER TABLE portal_sent ADD COLUMN keep_until INTEGER;
CREATE INDEX portal_sent_keep ON portal_sent(keep_until) WHERE keep_until IS NOT NULL;

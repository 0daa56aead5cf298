-- sealpost schema version 9: an address's folders are read newest first
-- from one index (issue 15, Performance). The inbox orders by the time of
-- receipt, which lived only on `messages`: every page joined and sorted
-- all of the address's rows before taking the first 50 (596 ms p99 for an
-- inbox of 1,000 in bench/portal.sh). A copy of it on the secure recipient
-- lets the index below hand out the rows in order, so a page reads only
-- the rows it shows. The time of receipt of a message never changes.
ALTER TABLE secure_recipients ADD COLUMN received_at INTEGER NOT NULL DEFAULT 0;
UPDATE secure_recipients
   SET received_at = (SELECT m.received_at FROM messages m WHERE m.id = secure_recipients.message_id);
CREATE INDEX secure_mailbox ON secure_recipients(match_key, received_at, message_id, idx);
-- Its prefix serves every lookup by match key.
DROP INDEX secure_by_address;

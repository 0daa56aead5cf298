-- sealpost schema version 5: notifications that failed for good.
-- A notification is sent from the null sender, so a rejected or expired one
-- bounces to nobody and its secure recipient never learns of the message.
-- Its failure is recorded on the secure recipient instead, so tracking and
-- the console show who was not notified and why. NULL: not failed.

ALTER TABLE secure_recipients ADD COLUMN notify_failed_at INTEGER;  -- the notification failed permanently (refused, or given up on)
ALTER TABLE secure_recipients ADD COLUMN notify_error TEXT;         -- the reply it failed with, or our diagnostic

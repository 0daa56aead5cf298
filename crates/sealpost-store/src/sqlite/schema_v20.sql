-- sealpost schema version 20: the SMTP account a message was submitted
-- with (issue 17, item 1). An authenticated client's account name travels
-- with its message, for tracking; NULL for everything else (port-25 relay,
-- DSNs, notifications, portal replies). Policies never look at it.
ALTER TABLE messages ADD COLUMN smtp_account TEXT;

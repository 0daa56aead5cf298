-- sealpost schema version 19: delay warnings (issue 17, item 5). When a
-- recipient is still undelivered relay.delay_warning after its message
-- arrived, its sender gets one "delayed" DSN (RFC 3464); the time it was
-- queued is kept here, so neither a later attempt nor a restart repeats it.
ALTER TABLE recipients ADD COLUMN delay_warned_at INTEGER;

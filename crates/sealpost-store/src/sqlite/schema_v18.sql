-- sealpost schema version 18: TLS-or-portal (issue 17, item 4). A secure
-- recipient whose definition says delivery = "tls_or_portal" is marked at
-- acceptance (a later change of the definition does not change how an
-- accepted message is delivered); at delivery the worker sends the message
-- itself over verified TLS, or the portal notification, and records which.
ALTER TABLE secure_recipients ADD COLUMN tls_or_portal INTEGER NOT NULL DEFAULT 0;
-- 'message' (the message itself over verified TLS) or 'notification';
-- NULL until delivered, and for portal-only recipients.
ALTER TABLE secure_recipients ADD COLUMN delivered_as TEXT;
-- The next hop's reply to what was delivered, with where it went.
ALTER TABLE secure_recipients ADD COLUMN delivered_reply TEXT;

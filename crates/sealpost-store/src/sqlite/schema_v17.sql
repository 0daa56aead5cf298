-- sealpost schema version 17: SMTP accounts (issue 17, item 1). Clients
-- that cannot sit in smtp.relay_networks submit with a name and password
-- (SASL PLAIN or LOGIN after TLS); each account may use only its own
-- sender addresses or domains, at most rate_per_hour messages an hour.
-- Only an argon2id hash of the password is kept.
CREATE TABLE smtp_accounts (
    name                TEXT PRIMARY KEY,      -- lower case
    password_hash       TEXT NOT NULL,         -- argon2id, PHC string
    senders             TEXT NOT NULL,         -- JSON array: addresses and domain patterns
    rate_per_hour       INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL,
    last_used_at        INTEGER
) STRICT, WITHOUT ROWID;

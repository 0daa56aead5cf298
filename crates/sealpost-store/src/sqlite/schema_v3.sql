-- sealpost schema version 3: the vault and secure delivery.
-- Every stored content is sealed (sealpost-vault): `content` and spool
-- files hold ciphertext, and the message key, wrapped by a master key
-- version, sits in the row. Destroying a content clears both.

ALTER TABLE messages ADD COLUMN key_version INTEGER;  -- master key version wrapping the message key
ALTER TABLE messages ADD COLUMN wrapped_key BLOB;      -- the message key, wrapped; NULL once content is destroyed
ALTER TABLE messages ADD COLUMN subject TEXT;          -- tracking metadata (the subject tag removed)
ALTER TABLE messages ADD COLUMN parent_id TEXT;        -- for a notification or receipt: the message it is about
CREATE INDEX messages_received ON messages(received_at);
CREATE INDEX messages_parent ON messages(parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX messages_key_version ON messages(key_version) WHERE wrapped_key IS NOT NULL;


-- One row per recipient given secure delivery: the tracking record the
-- console and the portal show. Kept after the content is destroyed.
CREATE TABLE secure_recipients (
    message_id      TEXT NOT NULL,
    idx             INTEGER NOT NULL,
    token_hash      BLOB NOT NULL UNIQUE,  -- SHA-256 of the portal token (the token is only in the notification)
    definition_id   INTEGER NOT NULL,
    trigger         TEXT NOT NULL,         -- 'policy', 'header' or 'subject_tag'
    notification_id TEXT,                  -- queue id of the notification mail
    expires_at      INTEGER NOT NULL,      -- content readable until then (at most received + vault.retention)
    notified_at     INTEGER,               -- the notification reached the next hop
    first_opened_at INTEGER,
    last_opened_at  INTEGER,
    is_read         INTEGER NOT NULL DEFAULT 0,
    replied_at      INTEGER,
    ended_at        INTEGER,               -- when it expired or was recalled
    PRIMARY KEY (message_id, idx),
    FOREIGN KEY (message_id, idx) REFERENCES recipients(message_id, idx) ON DELETE CASCADE
) STRICT;
CREATE INDEX secure_live_expiry ON secure_recipients(expires_at) WHERE ended_at IS NULL;
CREATE INDEX secure_by_notification ON secure_recipients(notification_id);

-- 'held' was the placeholder for secure recipients before the vault: no
-- token or notification exists for them (their portal link was never
-- sent). They become secure deliveries with an unusable token and the
-- default 30-day expiry from receipt, so tracking shows them and the
-- expiry job destroys their content in time.
INSERT INTO secure_recipients (message_id, idx, token_hash, definition_id, trigger, expires_at)
    SELECT r.message_id, r.idx, randomblob(32),
           CAST(substr(r.route, 8) AS INTEGER), 'policy', m.received_at + 30 * 86400000
    FROM recipients r JOIN messages m ON m.id = r.message_id
    WHERE r.status = 'held' AND r.route LIKE 'secure:%';
UPDATE recipients SET status = 'secure' WHERE status = 'held';
DROP INDEX recipients_held;
CREATE INDEX recipients_secure ON recipients(message_id) WHERE status = 'secure';

-- Which master key versions this database has seen, and a check value of
-- each (not the key): a gateway started with the wrong key file refuses
-- to start instead of sealing new mail under a key the old mail does not
-- open with.
CREATE TABLE vault_keys (
    version     INTEGER PRIMARY KEY,
    check_value BLOB NOT NULL,
    added_at    INTEGER NOT NULL
) STRICT;

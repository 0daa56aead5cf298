-- sealpost schema version 1: messages, recipients and their queue state.
-- Times are milliseconds since the Unix epoch.

CREATE TABLE messages (
    id           TEXT PRIMARY KEY,
    received_at  INTEGER NOT NULL,
    sender       TEXT NOT NULL,            -- '' is the null sender <>
    client_ip    TEXT NOT NULL,
    client_name  TEXT,
    helo         TEXT,
    protocol     TEXT NOT NULL,
    size         INTEGER NOT NULL,
    body_8bit    INTEGER NOT NULL,
    smtputf8     INTEGER NOT NULL,
    env_id       TEXT,
    ret          TEXT,                     -- 'FULL', 'HDRS' or NULL
    kind         TEXT NOT NULL,            -- 'mail' or 'dsn'
    expires_at   INTEGER NOT NULL,
    content      BLOB,                     -- inline content; NULL when spooled or purged
    spooled      INTEGER NOT NULL DEFAULT 0, -- content is in spool/<id>
    has_content  INTEGER NOT NULL DEFAULT 1
) STRICT;

CREATE TABLE recipients (
    message_id      TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    idx             INTEGER NOT NULL,
    address         TEXT NOT NULL,
    orcpt           TEXT,
    notify          INTEGER NOT NULL,
    route           TEXT NOT NULL,         -- 'relay' or 'secure:<definition>'
    policy_id       INTEGER,               -- the deciding policy; NULL = no policy matched
    status          TEXT NOT NULL,         -- queued | delivered | failed | held
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    last_attempt_at INTEGER,
    last_reply      TEXT,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (message_id, idx)
) STRICT;

CREATE INDEX recipients_queued ON recipients(next_attempt_at) WHERE status = 'queued';
CREATE INDEX recipients_held ON recipients(message_id) WHERE status = 'held';

-- sealpost schema version 4: fewer pages written per message.
-- Queue ids grow with time (see QueueId), so a table keyed by the id
-- takes new rows at its right edge. The recipients become such a table
-- (WITHOUT ROWID, keyed by message id and index) instead of a rowid table
-- plus a separate index on the same key: one b-tree less to write for
-- every message accepted, leased and delivered. Key rotation scans the
-- messages by id, so the index on the key version only cost a write.

DROP INDEX messages_key_version;

CREATE TABLE recipients_v4 (
    message_id      TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    idx             INTEGER NOT NULL,
    address         TEXT NOT NULL,
    orcpt           TEXT,
    notify          INTEGER NOT NULL,
    route           TEXT NOT NULL,         -- 'relay' or 'secure:<definition>'
    policy_id       INTEGER,               -- the deciding policy; NULL = no policy matched
    status          TEXT NOT NULL,         -- queued | delivered | failed | secure | expired | recalled
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    last_attempt_at INTEGER,
    last_reply      TEXT,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (message_id, idx)
) STRICT, WITHOUT ROWID;

INSERT INTO recipients_v4
    SELECT message_id, idx, address, orcpt, notify, route, policy_id, status, attempts,
           next_attempt_at, lease_owner, lease_until, last_attempt_at, last_reply, updated_at
    FROM recipients;
DROP TABLE recipients;
ALTER TABLE recipients_v4 RENAME TO recipients;
CREATE INDEX recipients_queued ON recipients(next_attempt_at) WHERE status = 'queued';
CREATE INDEX recipients_secure ON recipients(message_id) WHERE status = 'secure';

-- sealpost schema version 6: the recipient portal (issue 15).
-- Every piece of portal state is here, not in a process's memory, so
-- several nodes can serve one portal. Accounts are keyed by the address's
-- match key (case-insensitive); nothing secret is stored in a usable form:
-- passwords as PHC hashes, session ids and link tokens as SHA-256.

-- The mailbox of an address is its secure recipients, found by match key
-- (filled for existing rows by the migration step in sqlite/portal.rs,
-- which computes it with the address parser; '' never matches a key).
ALTER TABLE secure_recipients ADD COLUMN match_key TEXT NOT NULL DEFAULT '';
ALTER TABLE secure_recipients ADD COLUMN registered_at INTEGER;  -- its notification link registered the account (single use)
ALTER TABLE secure_recipients ADD COLUMN deleted_at INTEGER;     -- moved to Deleted by the recipient; NULL: in the Inbox
CREATE INDEX secure_by_address ON secure_recipients(match_key);

-- Whether the content has attachments, for the mailbox's marker; NULL:
-- not known (accepted before acceptance recorded it).
ALTER TABLE messages ADD COLUMN has_attachments INTEGER;

CREATE TABLE portal_accounts (
    key                 TEXT PRIMARY KEY,      -- the address's match key
    password_hash       TEXT NOT NULL,         -- PHC string (argon2id); never the password
    created_at          INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL,
    failed_sign_ins     INTEGER NOT NULL DEFAULT 0,  -- since the last success; the caller's back-off reads it
    last_failure_at     INTEGER
) STRICT, WITHOUT ROWID;

-- Few rows (live sessions only; purged past their idle or absolute
-- limit), so the purge scans the table rather than keep an index by time.
CREATE TABLE portal_sessions (
    id_hash      BLOB PRIMARY KEY,             -- SHA-256 of the id in the cookie
    account_key  TEXT NOT NULL REFERENCES portal_accounts(key) ON DELETE CASCADE,
    csrf_secret  BLOB NOT NULL,                -- per-session; useless without the cookie
    client_ip    TEXT NOT NULL,
    user_agent   TEXT NOT NULL,                -- at most 256 bytes
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL              -- written at most once a minute
) STRICT, WITHOUT ROWID;
CREATE INDEX portal_sessions_account ON portal_sessions(account_key);

-- Password-reset and fresh registration links. Keyed by address, not by
-- account: a registration link exists before its account does.
CREATE TABLE portal_links (
    token_hash BLOB PRIMARY KEY,               -- SHA-256 of the token in the mailed link
    purpose    TEXT NOT NULL,                  -- 'reset' | 'register'
    match_key  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER                         -- single use: set once, atomically
) STRICT, WITHOUT ROWID;

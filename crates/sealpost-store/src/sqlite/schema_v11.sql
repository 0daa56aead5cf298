-- sealpost schema version 11: administrators of the console (issue 16,
-- item 1). People sign in with a name and password, not API keys. As for
-- recipients, nothing secret is stored in a usable form: passwords as PHC
-- hashes, session ids as SHA-256. Sessions have the portal's columns
-- (their SQL is shared, sqlite/sessions.rs) in a table of their own, so a
-- recipient's session can never name an administrator.
CREATE TABLE admin_accounts (
    name                 TEXT PRIMARY KEY,     -- lower case, see AdminName
    role                 TEXT NOT NULL,        -- super_admin | policy_admin | tracking_admin | read_only
    password_hash        TEXT NOT NULL,        -- PHC string (argon2id)
    must_change_password INTEGER NOT NULL,     -- 1: a one-time password, to be replaced at sign-in
    created_at           INTEGER NOT NULL,
    password_changed_at  INTEGER NOT NULL,
    failed_sign_ins      INTEGER NOT NULL DEFAULT 0,
    last_failure_at      INTEGER,
    last_sign_in_at      INTEGER
) STRICT, WITHOUT ROWID;

CREATE TABLE admin_sessions (
    id_hash      BLOB PRIMARY KEY,
    admin_name   TEXT NOT NULL REFERENCES admin_accounts(name) ON DELETE CASCADE,
    csrf_secret  BLOB NOT NULL,
    client_ip    TEXT NOT NULL,
    user_agent   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX admin_sessions_admin ON admin_sessions(admin_name);

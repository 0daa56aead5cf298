-- sealpost schema version 15: two-step sign-in (TOTP, RFC 6238) for
-- console administrators (issue 16, item 1). The shared secret is sealed
-- with the vault like message content (per-secret key wrapped by the
-- master key, bound to the administrator's name), so a database copy does
-- not yield it; recovery codes are kept as SHA-256 hashes only (they have
-- ~79 random bits). A pending sign-in is the state between a right
-- password and a right code: not a session, keyed by the SHA-256 of a
-- fresh cookie value, five minutes at most.
CREATE TABLE admin_totp (
    admin_name    TEXT PRIMARY KEY REFERENCES admin_accounts(name) ON DELETE CASCADE,
    enabled       INTEGER NOT NULL,    -- 0: enrolment started, not confirmed; 1: on
    key_version   INTEGER NOT NULL,    -- master key version wrapping wrapped_key
    wrapped_key   BLOB NOT NULL,
    sealed_secret BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    enabled_at    INTEGER,
    last_step     INTEGER              -- the last time step accepted: never accepted again
) STRICT, WITHOUT ROWID;

CREATE TABLE admin_recovery_codes (
    admin_name TEXT NOT NULL REFERENCES admin_totp(admin_name) ON DELETE CASCADE,
    code_hash  BLOB NOT NULL,          -- SHA-256 of the normalised code
    used_at    INTEGER,
    PRIMARY KEY (admin_name, code_hash)
) STRICT, WITHOUT ROWID;

CREATE TABLE admin_pending_sign_ins (
    id_hash    BLOB PRIMARY KEY,
    admin_name TEXT NOT NULL REFERENCES admin_accounts(name) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0   -- wrong codes within this pending sign-in
) STRICT, WITHOUT ROWID;
CREATE INDEX admin_pending_sign_ins_admin ON admin_pending_sign_ins(admin_name);

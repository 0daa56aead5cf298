-- sealpost schema version 2: the policy configuration and API keys.
-- Each configuration object is stored as its submitted draft (JSON), the
-- form the API shows and the export writes; the engine validates and
-- indexes the whole set when it builds a snapshot.

CREATE TABLE internal_domains (
    pattern    TEXT PRIMARY KEY,          -- 'corp.example' or '*.corp.example'
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE directory_users (
    key        TEXT PRIMARY KEY,          -- the address's match key
    doc        TEXT NOT NULL,             -- UserDraft
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE profile_groups (
    id         INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: tracking records name policies by id
    doc        TEXT NOT NULL,             -- GroupDraft
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE definitions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: tracking records name policies by id
    is_default INTEGER NOT NULL DEFAULT 0,
    doc        TEXT NOT NULL,             -- DefinitionDraft
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE policies (
    id         INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: tracking records name policies by id
    doc        TEXT NOT NULL,             -- PolicyDraft
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,        -- the public part of the key
    secret_hash  BLOB NOT NULL,           -- SHA-256 of the secret part
    role         TEXT NOT NULL,
    name         TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT;

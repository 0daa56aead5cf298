-- sealpost schema version 12: the audit log (issue 16, item 3). Every
-- administrative change writes one row in the change's own transaction.
-- Rows are never edited or deleted: the triggers refuse it, whoever asks.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor_kind  TEXT NOT NULL,     -- administrator | api_key | cli | system
    actor       TEXT NOT NULL,
    client_ip   TEXT,
    action      TEXT NOT NULL,     -- create | update | delete | import | replace | reset_password | ...
    object_kind TEXT NOT NULL,     -- policy | definition | group | directory_user | internal_domain | configuration | api_key | administrator
    object_id   TEXT,
    before      TEXT,              -- JSON document of the object before; NULL: it did not exist
    after       TEXT               -- JSON document after; NULL: it no longer exists
) STRICT;
CREATE INDEX audit_by_object ON audit_log(object_kind, object_id);
CREATE TRIGGER audit_log_never_updated BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is never edited'); END;
CREATE TRIGGER audit_log_never_deleted BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is never edited'); END;

-- sealpost schema version 13: the console's dashboard and tracking search
-- (issue 16, items 2 and 4) read from indexes, not from the tables.
--
-- Messages by kind and time of receipt, with the id: the dashboard joins
-- each mail of the last 14 days to its recipients from this index alone
-- (never reading message rows, which carry the content inline), and a
-- tracking search of mail, newest or oldest first, walks it in order and
-- stops after one page. (Not a partial index on kind = 'mail': SQLite
-- would still read each row to check the kind.) New mail lands at the
-- right edge of its kind, as in the other indexes by time.
CREATE INDEX messages_by_kind_received ON messages(kind, received_at, id);
-- Live secure deliveries by read flag: "unread secure messages" is a count
-- over the index.
CREATE INDEX secure_live_unread ON secure_recipients(is_read) WHERE ended_at IS NULL;
-- Portal sign-ins per UTC day (sessions are deleted at sign-out and
-- purged, so they cannot be counted afterwards). Written in the sign-in's
-- own transaction.
CREATE TABLE portal_sign_ins (
    day      INTEGER PRIMARY KEY,   -- days since the Unix epoch (UTC)
    sign_ins INTEGER NOT NULL
) STRICT;

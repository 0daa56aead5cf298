-- sealpost schema version 14: the console's dashboard and tracking search
-- (issue 16, items 2 and 4) read from indexes and daily counts, not from
-- the tables.
--
-- Messages by kind and time of receipt, with the id, sender and subject:
-- the dashboard joins each mail of the last 14 days to its recipients from
-- this index alone, and a tracking search of mail, newest or oldest first,
-- walks it in order, tests sender and subject on the index entry, and
-- reads a message row only for the rows it shows. Testing them on the
-- rows meant reading every row (and for the subject, which comes after the
-- inline content, through the content): a search that matched nothing
-- among a million messages took 3.4 s (sender) to 3.9 s (subject) on a
-- 2-core machine, 0.2 s with this index.
-- (Not a partial index on kind = 'mail': SQLite would still read each row
-- to check the kind.) New mail lands at the right edge of its kind.
CREATE INDEX messages_tracking ON messages(kind, received_at, id, sender, subject);
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
-- Recipients of mail per UTC day of receipt, by route, and those of them
-- that bounced (failed for good). Written in the commits that decide them:
-- relayed and secured when the message is accepted, bounced when the
-- failure is recorded. The dashboard reads 14 rows instead of joining two
-- weeks of messages to their recipients (1.3 to 2 s at a million messages).
-- Notifications, receipts and DSNs are not mail and are not counted.
CREATE TABLE traffic_days (
    day      INTEGER PRIMARY KEY,   -- days since the Unix epoch (UTC)
    relayed  INTEGER NOT NULL,
    secured  INTEGER NOT NULL,
    bounced  INTEGER NOT NULL
) STRICT;
INSERT INTO traffic_days (day, relayed, secured, bounced)
    SELECT m.received_at / 86400000, SUM(r.route = 'relay'), SUM(r.route <> 'relay'),
           SUM(r.status = 'failed')
    FROM messages m JOIN recipients r ON r.message_id = m.id
    WHERE m.kind = 'mail'
    GROUP BY m.received_at / 86400000;

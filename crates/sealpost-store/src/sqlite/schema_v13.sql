-- sealpost schema version 13: policy hits per day.
-- The console's policy list and dashboard show how many recipients each
-- policy decided. Counting them from the recipients table would read every
-- decided recipient on every page view; instead each accepted message adds
-- its recipients to its deciding policies' count for the day (UTC), in the
-- message's own commit. Only recipients a policy decided pay the write.

CREATE TABLE policy_hits (
    policy_id   INTEGER NOT NULL,
    day         INTEGER NOT NULL,            -- days since the Unix epoch (UTC)
    recipients  INTEGER NOT NULL,
    PRIMARY KEY (day, policy_id)           -- a window of days is one range
) STRICT, WITHOUT ROWID;

INSERT INTO policy_hits (policy_id, day, recipients)
    SELECT r.policy_id, m.received_at / 86400000, COUNT(*)
    FROM recipients r JOIN messages m ON m.id = r.message_id
    WHERE r.policy_id IS NOT NULL
    GROUP BY r.policy_id, m.received_at / 86400000;

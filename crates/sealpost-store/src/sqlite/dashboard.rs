//! The SQL of the console's dashboard: every figure in one read
//! transaction, each from an index (schema v13), never a scan of a table.
//!
//! The traffic of the covered days is the one read that grows with the
//! mail: it walks `messages_tracking` over the days' mail and looks
//! each message's recipients up by primary key (the days, the routes, the
//! bounces and the policy hits in that one pass). About 1.3 to 2 s for a
//! million messages (1.6 million recipients) in 14 days on a 2-core
//! machine, nearly all of it the recipient lookups; a gateway that busy
//! wants daily roll-ups written at acceptance instead.

use std::{collections::HashMap, time::SystemTime};

use rusqlite::{Connection, params};
use sealpost_policy::PolicyId;

use crate::{
    StoreError,
    dashboard::{
        DASHBOARD_DAYS, Dashboard, PolicyHits, TOP_POLICIES, TrafficDay, day_start, epoch_day,
    },
    model::{from_millis, to_millis},
};

const DAY_MS: i64 = 86_400_000;

pub(super) fn dashboard(conn: &Connection, now: SystemTime) -> Result<Dashboard, StoreError> {
    // One snapshot for every figure: the numbers add up with each other.
    let tx = conn.unchecked_transaction()?;
    let first = to_millis(day_start(now)) - i64::from(DASHBOARD_DAYS - 1) * DAY_MS;
    let mut days: Vec<TrafficDay> = (0..i64::from(DASHBOARD_DAYS))
        .map(|d| TrafficDay {
            day: from_millis(first + d * DAY_MS),
            relayed: 0,
            secured: 0,
            bounced: 0,
            sign_ins: 0,
        })
        .collect();
    let mut hits: HashMap<i64, u64> = HashMap::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT (m.received_at - ?1) / 86400000 AS day, r.policy_id,
                    SUM(r.route = 'relay'), SUM(r.route <> 'relay'), SUM(r.status = 'failed')
             FROM messages m INDEXED BY messages_tracking
             JOIN recipients r ON r.message_id = m.id
             WHERE m.kind = 'mail' AND m.received_at >= ?1 AND m.received_at < ?2
             GROUP BY day, r.policy_id",
        )?;
        let mut rows = stmt.query(params![first, first + i64::from(DASHBOARD_DAYS) * DAY_MS])?;
        while let Some(row) = rows.next()? {
            let day: i64 = row.get(0)?;
            let policy: Option<i64> = row.get(1)?;
            let (relayed, secured, bounced): (i64, i64, i64) =
                (row.get(2)?, row.get(3)?, row.get(4)?);
            if let Some(d) = usize::try_from(day).ok().and_then(|d| days.get_mut(d)) {
                d.relayed += relayed as u64;
                d.secured += secured as u64;
                d.bounced += bounced as u64;
            }
            if let Some(policy) = policy {
                *hits.entry(policy).or_default() += (relayed + secured) as u64;
            }
        }
    }
    {
        let first_day = epoch_day(from_millis(first));
        let mut stmt = tx.prepare_cached(
            "SELECT day, sign_ins FROM portal_sign_ins WHERE day >= ?1 AND day < ?2",
        )?;
        let mut rows = stmt.query(params![first_day, first_day + i64::from(DASHBOARD_DAYS)])?;
        while let Some(row) = rows.next()? {
            let (day, n): (i64, i64) = (row.get(0)?, row.get(1)?);
            if let Some(d) = usize::try_from(day - first_day)
                .ok()
                .and_then(|d| days.get_mut(d))
            {
                d.sign_ins = n as u64;
            }
        }
    }
    let (queued, deferred, secure_live, secure_unread) = tx
        .prepare_cached(
            "SELECT
               (SELECT COUNT(*) FROM recipients WHERE status = 'queued'),
               (SELECT COUNT(*) FROM recipients WHERE status = 'queued' AND attempts > 0),
               (SELECT COUNT(*) FROM secure_recipients INDEXED BY secure_live_unread
                  WHERE ended_at IS NULL),
               (SELECT COUNT(*) FROM secure_recipients INDEXED BY secure_live_unread
                  WHERE ended_at IS NULL AND is_read = 0)",
        )?
        .query_row([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?;
    tx.finish()?;
    let mut top_policies: Vec<PolicyHits> = hits
        .into_iter()
        .map(|(policy, hits)| PolicyHits {
            policy: PolicyId(policy),
            hits,
        })
        .collect();
    top_policies.sort_by(|a, b| b.hits.cmp(&a.hits).then(a.policy.0.cmp(&b.policy.0)));
    top_policies.truncate(TOP_POLICIES);
    Ok(Dashboard {
        days,
        queued: queued as u64,
        deferred: deferred as u64,
        top_policies,
        secure_live: secure_live as u64,
        secure_unread: secure_unread as u64,
    })
}

/// Counts a portal sign-in on its day, in the sign-in's transaction.
pub(super) fn count_sign_in(conn: &Connection, at: SystemTime) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO portal_sign_ins (day, sign_ins) VALUES (?1, 1)
         ON CONFLICT (day) DO UPDATE SET sign_ins = sign_ins + 1",
    )?
    .execute([epoch_day(at)])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plans the module doc promises, on the real schema.
    #[test]
    fn every_figure_is_read_from_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("db.sqlite")).unwrap();
        super::super::migrate(&mut conn).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt
                .query_map([], |row| row.get::<_, String>(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            rows.join("\n")
        };
        let traffic = plan(
            "SELECT (m.received_at - 0) / 86400000 AS day, r.policy_id, COUNT(*)
             FROM messages m INDEXED BY messages_tracking
             JOIN recipients r ON r.message_id = m.id
             WHERE m.kind = 'mail' AND m.received_at >= 0 AND m.received_at < 1
             GROUP BY day, r.policy_id",
        );
        assert!(
            traffic.contains("SEARCH m USING COVERING INDEX messages_tracking")
                && traffic.contains("SEARCH r USING PRIMARY KEY (message_id=?)"),
            "{traffic}"
        );
        let unread = plan(
            "SELECT COUNT(*) FROM secure_recipients INDEXED BY secure_live_unread
             WHERE ended_at IS NULL AND is_read = 0",
        );
        assert!(
            unread.contains("INDEX secure_live_unread (is_read=?)"),
            "{unread}"
        );
        let queued =
            plan("SELECT COUNT(*) FROM recipients WHERE status = 'queued' AND attempts > 0");
        assert!(queued.contains("INDEX recipients_queued"), "{queued}");
        for order in ["DESC", "ASC"] {
            let search = plan(&format!(
                "SELECT id FROM messages m WHERE m.kind = 'mail' AND m.sender LIKE '%a%'
                   AND m.subject LIKE '%b%'
                 ORDER BY m.received_at {order}, m.id {order} LIMIT 50"
            ));
            assert!(
                search.contains("INDEX messages_tracking (kind=?)"),
                "{search}"
            );
            assert!(!search.contains("TEMP B-TREE"), "{search}");
        }
    }
}

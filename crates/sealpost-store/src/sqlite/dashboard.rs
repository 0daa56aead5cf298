//! The SQL of the console's dashboard: every figure in one read
//! transaction, from daily counts and indexes (schema v13 and v14), never
//! a scan of a table.
//!
//! Traffic (relayed, secured, bounced per day) and portal sign-ins are
//! counted when they happen, in the commit that decides them
//! ([`count_accepted`], [`count_bounced`], [`count_sign_in`]): 14 rows
//! each. Policy hits come from the daily `policy_hits` counts (schema v13),
//! kept in the same commit as the message: a few rows per policy.

use std::{collections::HashMap, time::SystemTime};

use rusqlite::{Connection, params};
use sealpost_policy::{PolicyId, Route};

use crate::{
    MessageKind, NewMessage, QueueId, StoreError,
    dashboard::{
        DASHBOARD_DAYS, Dashboard, PolicyHits, TOP_POLICIES, TrafficDay, day_start, epoch_day,
    },
    model::{from_millis, to_millis},
};

const DAY_MS: i64 = 86_400_000;

/// Adds an accepted message's recipients to its day's relayed and secured
/// counts, in the acceptance's commit. Only mail counts.
pub(super) fn count_accepted(conn: &Connection, m: &NewMessage) -> Result<(), StoreError> {
    if m.kind != MessageKind::Mail || m.recipients.is_empty() {
        return Ok(());
    }
    let secured = m
        .recipients
        .iter()
        .filter(|r| matches!(r.decision.route, Route::Secure { .. }))
        .count() as i64;
    let relayed = m.recipients.len() as i64 - secured;
    conn.prepare_cached(
        "INSERT INTO traffic_days (day, relayed, secured, bounced) VALUES (?1, ?2, ?3, 0)
         ON CONFLICT (day) DO UPDATE SET relayed = relayed + excluded.relayed,
             secured = secured + excluded.secured",
    )?
    .execute(params![
        to_millis(m.received_at).div_euclid(DAY_MS),
        relayed,
        secured
    ])?;
    Ok(())
}

/// Counts a mail recipient's permanent failure on the day its message was
/// received, in the commit that records the failure.
pub(super) fn count_bounced(conn: &Connection, message: &QueueId) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO traffic_days (day, relayed, secured, bounced)
             SELECT received_at / 86400000, 0, 0, 1 FROM messages
             WHERE id = ?1 AND kind = 'mail'
         ON CONFLICT (day) DO UPDATE SET bounced = bounced + 1",
    )?
    .execute([message.as_str()])?;
    Ok(())
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

/// Recipients of mail received from `first` (ms) to `end` each policy
/// decided, from the daily counts.
fn policy_hits_since(
    conn: &Connection,
    first: i64,
    end: i64,
) -> Result<HashMap<i64, u64>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT policy_id, SUM(recipients) FROM policy_hits
         WHERE day >= ?1 AND day < ?2
         GROUP BY policy_id",
    )?;
    let rows = stmt.query_map(
        params![first.div_euclid(DAY_MS), end.div_euclid(DAY_MS)],
        |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)? as u64)),
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A per-day count table's rows from `first_day` for the covered days,
/// into `days` by `put`.
fn per_day(
    conn: &Connection,
    sql: &str,
    first_day: i64,
    days: &mut [TrafficDay],
    put: impl Fn(&mut TrafficDay, &rusqlite::Row<'_>) -> rusqlite::Result<()>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params![first_day, first_day + i64::from(DASHBOARD_DAYS)])?;
    while let Some(row) = rows.next()? {
        let day: i64 = row.get(0)?;
        if let Some(d) = usize::try_from(day - first_day)
            .ok()
            .and_then(|d| days.get_mut(d))
        {
            put(d, row)?;
        }
    }
    Ok(())
}

pub(super) fn dashboard(conn: &Connection, now: SystemTime) -> Result<Dashboard, StoreError> {
    // One snapshot for every figure: the numbers add up with each other.
    let tx = conn.unchecked_transaction()?;
    let first = to_millis(day_start(now)) - i64::from(DASHBOARD_DAYS - 1) * DAY_MS;
    let first_day = epoch_day(from_millis(first));
    let mut days: Vec<TrafficDay> = (0..i64::from(DASHBOARD_DAYS))
        .map(|d| TrafficDay {
            day: from_millis(first + d * DAY_MS),
            relayed: 0,
            secured: 0,
            bounced: 0,
            sign_ins: 0,
        })
        .collect();
    per_day(
        &tx,
        "SELECT day, relayed, secured, bounced FROM traffic_days WHERE day >= ?1 AND day < ?2",
        first_day,
        &mut days,
        |d, row| {
            d.relayed = row.get::<_, i64>(1)? as u64;
            d.secured = row.get::<_, i64>(2)? as u64;
            d.bounced = row.get::<_, i64>(3)? as u64;
            Ok(())
        },
    )?;
    per_day(
        &tx,
        "SELECT day, sign_ins FROM portal_sign_ins WHERE day >= ?1 AND day < ?2",
        first_day,
        &mut days,
        |d, row| {
            d.sign_ins = row.get::<_, i64>(1)? as u64;
            Ok(())
        },
    )?;
    let hits = policy_hits_since(&tx, first, first + i64::from(DASHBOARD_DAYS) * DAY_MS)?;
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
        let hits = plan(
            "SELECT r.policy_id, COUNT(*)
             FROM messages m INDEXED BY messages_tracking
             JOIN recipients r ON r.message_id = m.id
             WHERE m.kind = 'mail' AND m.received_at >= 0 AND m.received_at < 1
               AND r.policy_id IS NOT NULL
             GROUP BY r.policy_id",
        );
        assert!(
            hits.contains("SEARCH m USING COVERING INDEX messages_tracking")
                && hits.contains("SEARCH r USING PRIMARY KEY (message_id=?)"),
            "{hits}"
        );
        for table in ["traffic_days", "portal_sign_ins"] {
            let days = plan(&format!(
                "SELECT * FROM {table} WHERE day >= 1 AND day < 15"
            ));
            assert!(
                days.contains("USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
                "{days}"
            );
        }
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

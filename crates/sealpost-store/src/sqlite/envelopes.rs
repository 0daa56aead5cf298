//! The SQL of [`crate::envelopes`]: a page of mail in order of receipt
//! from the index on kind, time and id (`messages_tracking`, schema v14),
//! starting at the cursor's time (a range seek, so each page costs its own
//! rows, not those of the pages before it), then each message's recipients
//! by the recipients' primary key.

use std::net::{IpAddr, Ipv4Addr};

use rusqlite::{Connection, params};

use crate::{
    StoreError,
    envelopes::{Envelope, EnvelopeCursor, EnvelopePage, EnvelopeQuery},
    model::{from_millis, to_millis},
};

pub(super) fn page(conn: &Connection, q: &EnvelopeQuery) -> Result<EnvelopePage, StoreError> {
    let since = to_millis(q.since);
    // The range starts at the cursor's time; a message of that very
    // millisecond is after the cursor when its id is.
    let (from_ms, after_ms, after_id) = match &q.after {
        Some(c) => (since.max(c.received_ms), c.received_ms, c.id.as_str()),
        None => (since, i64::MIN, ""),
    };
    let limit = i64::try_from(q.limit.max(1)).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "WITH page AS (
             SELECT id, received_at, sender, client_ip FROM messages INDEXED BY messages_tracking
             WHERE kind = 'mail' AND received_at >= ?1 AND received_at <= ?2
               AND (received_at > ?3 OR id > ?4)
               AND parent_id IS NULL
             ORDER BY received_at, id
             LIMIT ?5)
         SELECT page.id, page.received_at, page.sender, page.client_ip, r.address
         FROM page JOIN recipients r ON r.message_id = page.id
         ORDER BY page.received_at, page.id, r.idx",
    )?;
    let mut rows = stmt.query(params![
        from_ms,
        to_millis(q.until),
        after_ms,
        after_id,
        limit
    ])?;
    let mut out = EnvelopePage::default();
    let mut messages = 0usize;
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let address: String = row.get(4)?;
        if let Some(e) = out.envelopes.last_mut()
            && e.message_id == id
        {
            e.recipients.push(address);
            continue;
        }
        let received_ms: i64 = row.get(1)?;
        messages += 1;
        out.envelopes.push(Envelope {
            message_id: id,
            received_at: from_millis(received_ms),
            sender: row.get(2)?,
            client_ip: row
                .get::<_, String>(3)?
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            recipients: vec![address],
        });
    }
    out.next = match out.envelopes.last() {
        Some(last) if messages >= q.limit.max(1) => Some(EnvelopeCursor {
            received_ms: to_millis(last.received_at),
            id: last.message_id.clone(),
        }),
        _ => None,
    };
    Ok(out)
}

/// The page query's plan, for the test that it seeks rather than scans.
#[cfg(test)]
pub(super) fn plan(conn: &Connection) -> Result<String, StoreError> {
    let mut stmt = conn.prepare(
        "EXPLAIN QUERY PLAN
         SELECT id FROM messages INDEXED BY messages_tracking
         WHERE kind = 'mail' AND received_at >= 1 AND received_at <= 2
           AND (received_at > 1 OR id > 'x') AND parent_id IS NULL
         ORDER BY received_at, id LIMIT 10",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(3))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?.join("\n"))
}

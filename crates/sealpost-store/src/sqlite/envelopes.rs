//! The SQL of [`crate::envelopes`]: a page of messages by the index on the
//! time of receipt (`messages_received`, whose entries end in the rowid),
//! then their recipients by the recipients' primary key.

use std::net::{IpAddr, Ipv4Addr};

use rusqlite::{Connection, params};

use crate::{
    StoreError,
    envelopes::{Envelope, EnvelopeCursor, EnvelopePage, EnvelopeQuery},
    model::{from_millis, to_millis},
};

pub(super) fn page(conn: &Connection, q: &EnvelopeQuery) -> Result<EnvelopePage, StoreError> {
    let (after_ms, after_row) = q
        .after
        .map_or((i64::MIN, i64::MIN), |c| (c.received_ms, c.row));
    let limit = i64::try_from(q.limit.max(1)).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "WITH page AS (
             SELECT rowid AS row, id, received_at, sender, client_ip FROM messages
             WHERE received_at >= ?1 AND received_at <= ?2
               AND (received_at > ?3 OR (received_at = ?3 AND rowid > ?4))
               AND kind = 'mail' AND parent_id IS NULL
             ORDER BY received_at, rowid
             LIMIT ?5)
         SELECT page.row, page.id, page.received_at, page.sender, page.client_ip, r.address
         FROM page JOIN recipients r ON r.message_id = page.id
         ORDER BY page.received_at, page.row, r.idx",
    )?;
    let mut rows = stmt.query(params![
        to_millis(q.since),
        to_millis(q.until),
        after_ms,
        after_row,
        limit
    ])?;
    let mut out = EnvelopePage::default();
    let mut last = None;
    let mut messages = 0usize;
    while let Some(row) = rows.next()? {
        let row_id: i64 = row.get(0)?;
        let received_ms: i64 = row.get(2)?;
        let address: String = row.get(5)?;
        if last == Some(row_id) {
            if let Some(e) = out.envelopes.last_mut() {
                e.recipients.push(address);
            }
            continue;
        }
        last = Some(row_id);
        messages += 1;
        out.next = Some(EnvelopeCursor {
            received_ms,
            row: row_id,
        });
        out.envelopes.push(Envelope {
            message_id: row.get(1)?,
            received_at: from_millis(received_ms),
            sender: row.get(3)?,
            client_ip: row
                .get::<_, String>(4)?
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            recipients: vec![address],
        });
    }
    if messages < q.limit.max(1) {
        out.next = None;
    }
    Ok(out)
}

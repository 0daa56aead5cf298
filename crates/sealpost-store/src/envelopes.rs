//! The envelopes of accepted mail read back (sender, recipients, client IP,
//! time of receipt), which the store keeps with every message: the policy
//! impact preview replays them through a draft policy set. Pages are read
//! in order of receipt with a cursor, so a week of a busy gateway never
//! sits in memory at once. Mail sealpost wrote itself (DSNs,
//! notifications, receipts, portal replies) is not included: policies
//! never decided it.

use std::{net::IpAddr, time::SystemTime};

/// One accepted message's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub message_id: String,
    pub received_at: SystemTime,
    /// The envelope sender; empty for the null sender.
    pub sender: String,
    pub client_ip: IpAddr,
    pub recipients: Vec<String>,
}

/// Where the next page starts: after this message in order of receipt
/// (time, then id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeCursor {
    pub(crate) received_ms: i64,
    pub(crate) id: String,
}

/// Envelopes received in `[since, until]`, from `after` on.
#[derive(Debug, Clone)]
pub struct EnvelopeQuery {
    pub since: SystemTime,
    pub until: SystemTime,
    pub after: Option<EnvelopeCursor>,
    /// Most messages in the page.
    pub limit: usize,
}

/// A page of envelopes, oldest first, and the cursor of the next page
/// (`None`: this was the last).
#[derive(Debug, Clone, Default)]
pub struct EnvelopePage {
    pub envelopes: Vec<Envelope>,
    pub next: Option<EnvelopeCursor>,
}

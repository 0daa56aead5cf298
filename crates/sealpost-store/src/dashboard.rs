//! The figures of the console's dashboard (issue 16, item 4), read in one
//! store call ([`crate::SecureStore::dashboard`]): traffic per UTC day by
//! route, the queue, policy hits, portal sign-ins and unread secure
//! messages.
//!
//! Counts are of *recipients*, not messages: one message may be relayed to
//! some recipients and secured for others. Only mail counts; the
//! notifications, receipts and DSNs sealpost makes itself do not.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sealpost_policy::PolicyId;

/// Days the dashboard covers, today included.
pub const DASHBOARD_DAYS: u32 = 14;

/// Policies the dashboard ranks.
pub const TOP_POLICIES: usize = 5;

/// One UTC day of mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficDay {
    /// Midnight (UTC) starting the day.
    pub day: SystemTime,
    /// Recipients of mail received that day routed to the relay queue.
    pub relayed: u64,
    /// Recipients given secure delivery.
    pub secured: u64,
    /// Recipients of that day's mail whose delivery failed for good (a DSN
    /// went to the sender where asked for).
    pub bounced: u64,
    /// Portal sign-ins that day.
    pub sign_ins: u64,
}

/// How often a policy decided a recipient's route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyHits {
    pub policy: PolicyId,
    /// Recipients of the covered days' mail it decided.
    pub hits: u64,
}

/// Everything the dashboard shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboard {
    /// The covered days, oldest first, today last; days without mail are
    /// present with zeros.
    pub days: Vec<TrafficDay>,
    /// Recipients waiting for a relay attempt.
    pub queued: u64,
    /// Of those, the ones that failed at least one attempt.
    pub deferred: u64,
    /// Most hits first (ties: lower id), at most [`TOP_POLICIES`].
    pub top_policies: Vec<PolicyHits>,
    /// Live secure deliveries (not expired or recalled).
    pub secure_live: u64,
    /// Of those, the ones the recipient has not read (or marked unread).
    pub secure_unread: u64,
}

impl Dashboard {
    /// The last day: today.
    pub fn today(&self) -> Option<&TrafficDay> {
        self.days.last()
    }
}

/// Midnight (UTC) of the day `at` falls in.
pub fn day_start(at: SystemTime) -> SystemTime {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs - secs % 86400)
}

/// Days since the Unix epoch (UTC) of `at`: the key of `portal_sign_ins`.
pub(crate) fn epoch_day(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86400) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_start_at_utc_midnight() {
        let at = UNIX_EPOCH + Duration::from_secs(20_000 * 86400 + 3_600 * 13 + 5);
        assert_eq!(
            day_start(at),
            UNIX_EPOCH + Duration::from_secs(20_000 * 86400)
        );
        assert_eq!(epoch_day(at), 20_000);
        assert_eq!(day_start(day_start(at)), day_start(at));
    }
}

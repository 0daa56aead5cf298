//! The per-account message rate (`rate_per_hour` of an SMTP account): a
//! token bucket holding at most an hour's allowance and refilled evenly
//! through the hour. Each `MAIL FROM` of the account takes one message;
//! with none left it is answered `450 4.7.1`. A message refused at the end
//! of DATA (its header From) gives its message back; one the client
//! abandons (RSET, disconnect) does not.
//!
//! Pure: the caller passes `now`. Per node, in memory.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

const HOUR: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Messages left, fractional while refilling.
    tokens: f64,
    updated: Instant,
}

/// The buckets of the accounts that sent lately.
#[derive(Debug, Default)]
pub struct MessageRate {
    buckets: HashMap<String, Bucket>,
    /// When full buckets were last forgotten.
    tidied: Option<Instant>,
}

impl MessageRate {
    /// Takes one message of `account`'s allowance of `per_hour`; false
    /// when there is none left (nothing is taken then).
    pub fn take(&mut self, account: &str, per_hour: u32, now: Instant) -> bool {
        if self
            .tidied
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(60))
        {
            self.tidied = Some(now);
            self.forget_full(now);
        }
        let capacity = f64::from(per_hour.max(1));
        let bucket = self.buckets.entry(account.to_owned()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated);
        bucket.tokens =
            (bucket.tokens + capacity * elapsed.as_secs_f64() / HOUR.as_secs_f64()).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Gives back a message taken for a transaction that was refused
    /// before its commit (the header From check), so only messages sealpost
    /// accepted or the client abandoned count.
    pub fn give_back(&mut self, account: &str, per_hour: u32) {
        if let Some(bucket) = self.buckets.get_mut(account) {
            bucket.tokens = (bucket.tokens + 1.0).min(f64::from(per_hour.max(1)));
        }
    }

    /// Forgets accounts whose allowance is full again (call now and then).
    pub fn forget_full(&mut self, now: Instant) {
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.updated) < HOUR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hours_allowance_then_one_per_interval() {
        let mut r = MessageRate::default();
        let t = Instant::now();
        assert!(r.take("app", 3, t));
        assert!(r.take("app", 3, t));
        assert!(r.take("app", 3, t));
        assert!(!r.take("app", 3, t), "the fourth in the hour");
        assert!(r.take("other", 3, t), "accounts are counted apart");
        r.give_back("app", 3);
        assert!(r.take("app", 3, t), "a refused message given back");
        assert!(!r.take("app", 3, t));
        // One message comes back every 20 minutes at 3 an hour.
        assert!(!r.take("app", 3, t + Duration::from_secs(19 * 60)));
        assert!(r.take("app", 3, t + Duration::from_secs(20 * 60)));
        assert!(!r.take("app", 3, t + Duration::from_secs(20 * 60)));
        // Never more than an hour's worth saved up.
        let much_later = t + Duration::from_secs(10 * 3600);
        for _ in 0..3 {
            assert!(r.take("app", 3, much_later));
        }
        assert!(!r.take("app", 3, much_later));
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let mut r = MessageRate::default();
        let t = Instant::now();
        r.take("app", 10, t);
        r.forget_full(t + Duration::from_secs(60));
        assert_eq!(r.buckets.len(), 1);
        r.forget_full(t + HOUR);
        assert!(r.buckets.is_empty());
    }
}

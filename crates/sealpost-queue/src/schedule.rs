//! When to retry a deferred recipient, and when to give up. Pure.

use std::time::{Duration, SystemTime};

/// The waits between attempts: after the n-th failed attempt the n-th
/// delay applies, and the last delay repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

/// What to do with a recipient whose attempt was deferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again at this time.
    RetryAt(SystemTime),
    /// The queue lifetime is over: fail it and report.
    Expire,
}

impl Default for RetrySchedule {
    /// 1m, 5m, 15m, 30m, 1h, then every 2h.
    fn default() -> Self {
        RetrySchedule(
            [60, 300, 900, 1800, 3600, 7200]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }
}

impl RetrySchedule {
    /// A schedule from its delays; `None` if empty or any delay is zero.
    pub fn new(delays: Vec<Duration>) -> Option<Self> {
        (!delays.is_empty() && delays.iter().all(|d| !d.is_zero())).then_some(RetrySchedule(delays))
    }

    /// The wait after `attempts` failed attempts (1 = the first failure).
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let i = (attempts.max(1) as usize - 1).min(self.0.len() - 1);
        self.0[i]
    }

    /// Decides what follows a deferral at `now`, the `attempts`-th failure
    /// of a message that expires at `expires_at`. A retry that would fall
    /// after expiry is moved to the expiry time, so the last attempt is made
    /// right at the end of the lifetime rather than skipped.
    pub fn after_deferral(
        &self,
        attempts: u32,
        now: SystemTime,
        expires_at: SystemTime,
    ) -> Verdict {
        if now >= expires_at {
            return Verdict::Expire;
        }
        let next = now + self.delay_after(attempts);
        Verdict::RetryAt(next.min(expires_at))
    }

    pub fn delays(&self) -> &[Duration] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_repeat_the_last() {
        let s = RetrySchedule::default();
        assert_eq!(s.delay_after(1), Duration::from_secs(60));
        assert_eq!(s.delay_after(6), Duration::from_secs(7200));
        assert_eq!(s.delay_after(60), Duration::from_secs(7200));
        assert!(RetrySchedule::new(vec![]).is_none());
        assert!(RetrySchedule::new(vec![Duration::ZERO]).is_none());
    }

    #[test]
    fn expiry() {
        let s = RetrySchedule::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let exp = t0 + Duration::from_secs(120);
        assert_eq!(
            s.after_deferral(1, t0, exp),
            Verdict::RetryAt(t0 + Duration::from_secs(60))
        );
        assert_eq!(
            s.after_deferral(2, t0 + Duration::from_secs(60), exp),
            Verdict::RetryAt(exp),
            "clamped to expiry"
        );
        assert_eq!(s.after_deferral(3, exp, exp), Verdict::Expire);
    }
}

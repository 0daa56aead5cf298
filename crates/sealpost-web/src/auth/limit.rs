//! Brakes on guessing: a per-client-IP rate limit on sign-in and similar
//! requests ([`IpRateLimit`], in memory, per node), and the per-account
//! lockout with growing back-off ([`Backoff`]), a pure function whose
//! counters (failures, last failure) the store keeps so every node sees
//! the same lockout.

use std::{
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
    time::{Duration, SystemTime},
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::NoOpMiddleware,
    state::keyed::HashMapStateStore,
};

/// A per-client rate limit: each client may make `burst` requests at once,
/// then one every `60 s / per_minute`. IPv6 clients are counted by their
/// /64, since one host commonly holds a whole /64.
pub struct IpRateLimit<C: Clock = DefaultClock> {
    limiter: RateLimiter<IpAddr, HashMapStateStore<IpAddr>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
}

impl<C: Clock> std::fmt::Debug for IpRateLimit<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpRateLimit")
            .field("tracked", &self.limiter.len())
            .finish_non_exhaustive()
    }
}

impl IpRateLimit {
    /// A limit of `per_minute` requests a minute with bursts of `burst`.
    pub fn new(per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        Self::with_clock(per_minute, burst, DefaultClock::default())
    }
}

impl<C: Clock + Clone> IpRateLimit<C> {
    /// As [`new`](IpRateLimit::new), on `clock` (tests pass a fake one).
    pub fn with_clock(per_minute: NonZeroU32, burst: NonZeroU32, clock: C) -> Self {
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        IpRateLimit {
            limiter: RateLimiter::hashmap_with_clock(quota, clock.clone()),
            clock,
        }
    }

    /// Counts a request from `ip`.
    ///
    /// # Errors
    /// How long the client must wait, when it is over the limit (for a
    /// `Retry-After`); the refused request is not counted.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.limiter
            .check_key(&client_key(ip))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets clients whose allowance is full again, so memory follows
    /// the recent clients only; call it now and then (once a minute).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
    }

    /// How many clients are being tracked.
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

/// The key a client is counted under: an IPv4 address (also when mapped
/// into IPv6), or an IPv6 address's /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Per-account lockout: the first `free_failures` failed sign-ins in a row
/// cost nothing; from then on each failure locks the account for
/// `first_delay`, doubling with every further failure up to `max_delay`.
/// A success resets the count (in the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub free_failures: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Backoff {
    /// After 5 failures: 1 minute, then 2, 4, 8, … capped at 1 hour.
    fn default() -> Self {
        Backoff {
            free_failures: 5,
            first_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// How long the account is locked after `failures` failures in a row.
    pub fn delay(&self, failures: u32) -> Duration {
        let Some(beyond) = failures.checked_sub(self.free_failures) else {
            return Duration::ZERO;
        };
        // 2^beyond, saturating: past 2^31 the cap has long applied.
        let factor = 1u32.checked_shl(beyond.min(31)).unwrap_or(u32::MAX);
        self.first_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// When the account may try again, given its run of `failures` and the
    /// time of the last one.
    ///
    /// # Errors
    /// The time it may try again, while it is locked. A lock whose last
    /// failure is stamped ahead of `now` (another node's clock) runs from
    /// that stamp.
    pub fn check(
        &self,
        failures: u32,
        last_failure: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<(), SystemTime> {
        let Some(last) = last_failure else {
            return Ok(());
        };
        let until = last + self.delay(failures);
        if now < until { Err(until) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn a_client_over_its_burst_waits_and_others_do_not() {
        let clock = FakeRelativeClock::default();
        let limit = IpRateLimit::with_clock(nz(6), nz(3), clock.clone());
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..3 {
            limit.check(ip).unwrap();
        }
        let wait = limit.check(ip).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10), "6 a minute: one every 10 s");
        limit.check("203.0.113.8".parse().unwrap()).unwrap();
        clock.advance(Duration::from_secs(9));
        assert!(limit.check(ip).is_err());
        clock.advance(Duration::from_secs(1));
        limit.check(ip).unwrap();
        assert!(limit.check(ip).is_err());
    }

    #[test]
    fn ipv6_clients_share_their_slash_64_and_mapped_ipv4_is_ipv4() {
        let limit = IpRateLimit::with_clock(nz(1), nz(1), FakeRelativeClock::default());
        limit.check("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(
            limit
                .check("2001:db8:1:2:ffff::9".parse().unwrap())
                .is_err()
        );
        limit.check("2001:db8:1:3::1".parse().unwrap()).unwrap();
        limit.check("198.51.100.1".parse().unwrap()).unwrap();
        assert!(limit.check("::ffff:198.51.100.1".parse().unwrap()).is_err());
        assert_eq!(limit.tracked(), 3);
    }

    #[test]
    fn idle_clients_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let limit = IpRateLimit::with_clock(nz(60), nz(2), clock.clone());
        limit.check("192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(limit.tracked(), 1);
        limit.forget_idle();
        assert_eq!(limit.tracked(), 1, "not yet refilled");
        clock.advance(Duration::from_secs(5));
        limit.forget_idle();
        assert_eq!(limit.tracked(), 0);
    }

    #[test]
    fn the_back_off_starts_after_five_failures_doubles_and_caps_at_an_hour() {
        let b = Backoff::default();
        let minutes = |n: u32| b.delay(n).as_secs() as f64 / 60.0;
        let schedule: Vec<f64> = (0..=13).map(minutes).collect();
        assert_eq!(
            schedule,
            [
                0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0
            ]
        );
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(3600));
        assert_eq!(b.delay(40), Duration::from_secs(3600));
    }

    #[test]
    fn a_locked_account_may_try_again_exactly_when_the_delay_ends() {
        let b = Backoff::default();
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s);
        assert_eq!(b.check(0, None, t(0)), Ok(()));
        assert_eq!(
            b.check(4, Some(t(0)), t(0)),
            Ok(()),
            "four failures cost nothing"
        );
        assert_eq!(b.check(5, Some(t(0)), t(0)), Err(t(60)));
        assert_eq!(b.check(5, Some(t(0)), t(59)), Err(t(60)));
        assert_eq!(b.check(5, Some(t(0)), t(60)), Ok(()));
        assert_eq!(b.check(7, Some(t(0)), t(200)), Err(t(240)));
        assert_eq!(b.check(30, Some(t(0)), t(3599)), Err(t(3600)));
        assert_eq!(b.check(30, Some(t(0)), t(3600)), Ok(()));
        // A failure stamped ahead of this node's clock locks from the stamp.
        assert_eq!(b.check(5, Some(t(100)), t(50)), Err(t(160)));
    }
}

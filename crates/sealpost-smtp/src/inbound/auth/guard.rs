//! Brakes on password guessing over SMTP AUTH: a growing delay after each
//! failure, and a lockout per account name and per client IP after too
//! many failures in a window. A locked name or IP is refused (`454 4.7.0`)
//! without checking the password, even the right one, until the lockout
//! ends.
//!
//! Pure: the caller passes `now`. The counters are in memory, per node
//! (a restart forgets them); names are counted whether an account exists
//! or not, so the answers tell nothing about which names exist.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    time::{Duration, Instant},
};

/// Most names (and, separately, client IPs) tracked at once: a spray of
/// random names cannot grow memory without bound.
const MAX_TRACKED: usize = 65_536;

/// The brakes, from configuration (`smtp.auth_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardSettings {
    /// The delay before answering the first failure; each further failure
    /// doubles it (`smtp.auth_failure_delay`).
    pub failure_delay: Duration,
    /// The longest delay (`smtp.auth_failure_delay_max`).
    pub failure_delay_max: Duration,
    /// Failures of one account name within the window that lock it
    /// (`smtp.auth_lockout_failures`).
    pub account_failures: u32,
    /// Failures from one client IP (IPv6: its /64) within the window that
    /// lock it (`smtp.auth_lockout_ip_failures`).
    pub ip_failures: u32,
    /// The window failures are counted in (`smtp.auth_lockout_window`).
    pub window: Duration,
    /// How long a lockout lasts (`smtp.auth_lockout_time`).
    pub lockout: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            failure_delay: Duration::from_secs(1),
            failure_delay_max: Duration::from_secs(8),
            account_failures: 5,
            ip_failures: 20,
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

/// What is locked, for the log and the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    Account,
    ClientIp,
}

/// What a failure means for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Wait this long before answering.
    pub delay: Duration,
    /// This failure locked the name or the IP.
    pub locked: Option<Locked>,
}

/// Failures of one name or IP.
#[derive(Debug, Clone, Copy)]
struct Tally {
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

impl Tally {
    fn locked(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    /// Whether it has nothing left to say at `now`.
    fn stale(&self, now: Instant, window: Duration) -> bool {
        !self.locked(now) && now.saturating_duration_since(self.window_start) >= window
    }
}

/// Failure counts per key, bounded.
#[derive(Debug)]
struct Tallies<K> {
    map: HashMap<K, Tally>,
}

impl<K: Hash + Eq + Clone> Tallies<K> {
    fn new() -> Self {
        Tallies {
            map: HashMap::new(),
        }
    }

    fn locked(&self, key: &K, now: Instant) -> bool {
        self.map.get(key).is_some_and(|t| t.locked(now))
    }

    /// Counts a failure; returns the count in the window and whether this
    /// one locked the key.
    fn fail(&mut self, key: &K, now: Instant, limit: u32, s: &GuardSettings) -> (u32, bool) {
        if !self.map.contains_key(key) && self.map.len() >= MAX_TRACKED {
            self.map.retain(|_, t| !t.stale(now, s.window));
            if self.map.len() >= MAX_TRACKED {
                // Still full of live entries: forget the oldest window.
                if let Some(oldest) = self
                    .map
                    .iter()
                    .filter(|(_, t)| !t.locked(now))
                    .min_by_key(|(_, t)| t.window_start)
                    .map(|(k, _)| k.clone())
                {
                    self.map.remove(&oldest);
                }
            }
        }
        let tally = self.map.entry(key.clone()).or_insert(Tally {
            failures: 0,
            window_start: now,
            locked_until: None,
        });
        if tally.stale(now, s.window) || tally.locked_until.is_some_and(|u| now >= u) {
            *tally = Tally {
                failures: 0,
                window_start: now,
                locked_until: None,
            };
        }
        tally.failures = tally.failures.saturating_add(1);
        let locks = limit > 0 && tally.failures >= limit && tally.locked_until.is_none();
        if locks {
            tally.locked_until = Some(now + s.lockout);
        }
        (tally.failures, locks)
    }

    fn forget(&mut self, key: &K) {
        self.map.remove(key);
    }
}

/// The lockout and back-off state of one node.
#[derive(Debug)]
pub struct Guard {
    settings: GuardSettings,
    accounts: Tallies<String>,
    ips: Tallies<IpAddr>,
}

impl Guard {
    pub fn new(settings: GuardSettings) -> Self {
        Guard {
            settings,
            accounts: Tallies::new(),
            ips: Tallies::new(),
        }
    }

    pub fn settings(&self) -> &GuardSettings {
        &self.settings
    }

    /// Whether an attempt for `name` from `ip` is refused unchecked.
    pub fn locked(&self, name: &str, ip: IpAddr, now: Instant) -> Option<Locked> {
        if self.ips.locked(&client_key(ip), now) {
            Some(Locked::ClientIp)
        } else if self.accounts.locked(&name_key(name), now) {
            Some(Locked::Account)
        } else {
            None
        }
    }

    /// Counts a failed attempt for `name` from `ip`.
    pub fn failed(&mut self, name: &str, ip: IpAddr, now: Instant) -> Failure {
        let s = &self.settings;
        let (by_name, name_locked) =
            self.accounts
                .fail(&name_key(name), now, s.account_failures, s);
        let (by_ip, ip_locked) = self.ips.fail(&client_key(ip), now, s.ip_failures, s);
        let locked = if ip_locked {
            Some(Locked::ClientIp)
        } else if name_locked {
            Some(Locked::Account)
        } else {
            None
        };
        Failure {
            delay: delay(s, by_name.max(by_ip)),
            locked,
        }
    }

    /// A successful AUTH clears the name's failures (not the IP's: one good
    /// account must not reset the count of guesses at others).
    pub fn succeeded(&mut self, name: &str) {
        self.accounts.forget(&name_key(name));
    }
}

/// The delay after the `n`th failure: the base, doubled per failure,
/// bounded.
fn delay(s: &GuardSettings, n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(20);
    s.failure_delay
        .saturating_mul(1 << doublings)
        .min(s.failure_delay_max)
}

/// Names are counted as accounts are named: trimmed, lower case.
fn name_key(name: &str) -> String {
    name.trim().to_ascii_lowercase().chars().take(128).collect()
}

/// An IPv4 address (also when mapped into IPv6), or an IPv6 address's
/// /64, since one host commonly holds a whole /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GuardSettings {
        GuardSettings {
            failure_delay: Duration::from_millis(100),
            failure_delay_max: Duration::from_millis(700),
            account_failures: 3,
            ip_failures: 5,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
        }
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn the_delay_doubles_per_failure_up_to_its_bound() {
        let mut g = Guard::new(GuardSettings {
            account_failures: 100,
            ip_failures: 100,
            ..settings()
        });
        let t = Instant::now();
        let delays: Vec<u64> = (0..6)
            .map(|_| g.failed("app", IP, t).delay.as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 700, 700, 700]);
    }

    #[test]
    fn an_account_locks_after_n_failures_in_the_window_and_unlocks_after_the_lockout() {
        let mut g = Guard::new(settings());
        let t = Instant::now();
        assert_eq!(g.failed("app", IP, t).locked, None);
        assert_eq!(g.failed("App", IP, t).locked, None);
        assert_eq!(g.locked("app", IP, t), None);
        assert_eq!(g.failed("app", IP, t).locked, Some(Locked::Account));
        // Locked for every client, whatever the password would be.
        let other = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(g.locked("app", other, t), Some(Locked::Account));
        assert_eq!(g.locked("other-app", other, t), None);
        let later = t + Duration::from_secs(299);
        assert_eq!(g.locked("app", IP, later), Some(Locked::Account));
        let after = t + Duration::from_secs(300);
        assert_eq!(g.locked("app", IP, after), None);
        // The count starts again after the lockout.
        assert_eq!(g.failed("app", other, after).locked, None);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let mut g = Guard::new(settings());
        let t = Instant::now();
        g.failed("app", IP, t);
        g.failed("app", IP, t + Duration::from_secs(30));
        let f = g.failed("app", IP, t + Duration::from_secs(61));
        assert_eq!(f.locked, None);
        assert_eq!(f.delay, Duration::from_millis(100), "a new window");
    }

    #[test]
    fn a_client_ip_locks_after_guessing_at_many_names() {
        let mut g = Guard::new(settings());
        let t = Instant::now();
        for i in 0..4 {
            assert_eq!(g.failed(&format!("name{i}"), IP, t).locked, None);
        }
        assert_eq!(g.failed("name4", IP, t).locked, Some(Locked::ClientIp));
        assert_eq!(g.locked("fresh-name", IP, t), Some(Locked::ClientIp));
        // Another /64 of IPv6 is another client; the same /64 is the same.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2::99".parse().unwrap();
        for i in 0..5 {
            g.failed(&format!("v6-{i}"), a, t);
        }
        assert_eq!(g.locked("x", b, t), Some(Locked::ClientIp));
        assert_eq!(g.locked("x", "2001:db8:1:3::1".parse().unwrap(), t), None);
    }

    #[test]
    fn success_clears_the_account_but_not_the_client_ip() {
        let mut g = Guard::new(settings());
        let t = Instant::now();
        g.failed("app", IP, t);
        g.failed("app", IP, t);
        g.succeeded("app");
        assert_eq!(g.failed("app", IP, t).locked, None, "count restarted");
        // The IP still has 3 failures; two more lock it.
        g.failed("b", IP, t);
        assert_eq!(g.failed("c", IP, t).locked, Some(Locked::ClientIp));
    }

    #[test]
    fn memory_stays_bounded_under_a_spray_of_names() {
        let mut g = Guard::new(GuardSettings {
            ip_failures: 0,
            ..settings()
        });
        let t = Instant::now();
        for i in 0..(MAX_TRACKED + 100) {
            g.failed(&format!("n{i}"), IP, t);
        }
        assert!(g.accounts.map.len() <= MAX_TRACKED);
    }
}

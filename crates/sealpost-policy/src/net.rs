//! Source IP ranges: CIDR blocks for IPv4 and IPv6.
//!
//! A bare address parses as a single-host range (/32 or /128), so operators
//! can write `192.0.2.10` where they mean one host. IPv4-mapped IPv6 client
//! addresses (`::ffff:192.0.2.10`, as a dual-stack socket reports them)
//! match IPv4 ranges.

use std::{fmt, net::IpAddr, str::FromStr};

use ipnet::IpNet;

/// Why a string is not a valid IP range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not an IP address or CIDR range (expected e.g. 192.0.2.0/24 or 2001:db8::/32)"
)]
pub struct IpRangeError {
    input: String,
}

/// One CIDR block, with host bits cleared (`192.0.2.7/24` is `192.0.2.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange(IpNet);

impl IpRange {
    /// Parses `addr/prefix` or a bare address.
    ///
    /// # Errors
    /// [`IpRangeError`] quoting the input.
    pub fn parse(input: &str) -> Result<Self, IpRangeError> {
        let text = input.trim();
        let net = if text.contains('/') {
            IpNet::from_str(text).ok()
        } else {
            IpAddr::from_str(text).ok().map(IpNet::from)
        };
        net.map(|n| IpRange(n.trunc())).ok_or_else(|| IpRangeError {
            input: input.to_owned(),
        })
    }

    /// Whether `ip` is inside this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for IpRange {
    type Err = IpRangeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A set of ranges; an address matches when any range contains it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRanges(Vec<IpRange>);

impl IpRanges {
    /// Builds the set from already parsed ranges.
    pub fn new(ranges: Vec<IpRange>) -> Self {
        IpRanges(ranges)
    }

    /// Whether any range contains `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|r| r.contains(ip))
    }

    /// Whether the set has no range at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ranges in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &IpRange> {
        self.0.iter()
    }
}

/// Maps IPv4-mapped IPv6 addresses to plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn single_address_is_host_range() {
        let r = IpRange::parse("192.0.2.10").unwrap();
        assert_eq!(r.to_string(), "192.0.2.10/32");
        assert!(r.contains("192.0.2.10".parse().unwrap()));
        assert!(!r.contains("192.0.2.11".parse().unwrap()));
        assert_eq!(
            IpRange::parse("2001:db8::1").unwrap().to_string(),
            "2001:db8::1/128"
        );
    }

    #[test]
    fn host_bits_are_cleared_and_mapped_v4_matches() {
        let r = IpRange::parse("10.1.2.3/8").unwrap();
        assert_eq!(r.to_string(), "10.0.0.0/8");
        assert!(r.contains("::ffff:10.9.9.9".parse().unwrap()));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0",
            "2001:db8::/129",
            "example.com",
            "1.2.3.4/x",
        ] {
            assert!(IpRange::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn v4_round_trip(a: u8, b: u8, c: u8, d: u8, prefix in 0u8..=32) {
            let r = IpRange::parse(&format!("{a}.{b}.{c}.{d}/{prefix}")).unwrap();
            prop_assert_eq!(IpRange::parse(&r.to_string()).unwrap(), r);
            prop_assert!(r.contains(std::net::Ipv4Addr::new(a, b, c, d).into()));
        }

        #[test]
        fn v6_round_trip(bits: u128, prefix in 0u8..=128) {
            let addr = std::net::Ipv6Addr::from(bits);
            let r = IpRange::parse(&format!("{addr}/{prefix}")).unwrap();
            prop_assert_eq!(IpRange::parse(&r.to_string()).unwrap(), r);
        }
    }
}

//! Outbound TLS policy per destination, like Postfix's
//! `smtp_tls_policy_maps`: which security level a next hop gets.
//!
//! The levels, weakest first:
//! - `none`: no STARTTLS, even when offered.
//! - `may`: STARTTLS when offered, any certificate; in clear when it is not
//!   offered, and (as Postfix does) in clear again when the handshake fails.
//! - `encrypt`: TLS required, any certificate.
//! - `verify`: TLS required, the chain verified against the trusted roots
//!   and the certificate naming the host we connected to (RFC 7672 §3.2.2:
//!   the MX host name, or the configured next hop's name).
//!
//! A hop whose level it cannot meet is deferred, never sent in clear.
//! Pure: no I/O; MTA-STS (see [`super::mta_sts`]) adds its answer in
//! [`super::delivery`].

use std::{collections::HashMap, fmt};

use super::lookup::NextHop;

/// How much TLS a next hop must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsLevel {
    None,
    May,
    Encrypt,
    Verify,
}

impl TlsLevel {
    /// Parses `none`, `may`, `encrypt` or `verify` (any case).
    pub fn parse(text: &str) -> Result<TlsLevel, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(TlsLevel::None),
            "may" => Ok(TlsLevel::May),
            "encrypt" => Ok(TlsLevel::Encrypt),
            "verify" => Ok(TlsLevel::Verify),
            _ => Err(format!(
                "{text:?} is not a TLS level: use none, may, encrypt or verify"
            )),
        }
    }

    /// Whether a connection without TLS must not carry mail.
    pub fn requires_tls(self) -> bool {
        self >= TlsLevel::Encrypt
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsLevel::None => "none",
            TlsLevel::May => "may",
            TlsLevel::Encrypt => "encrypt",
            TlsLevel::Verify => "verify",
        }
    }
}

impl fmt::Display for TlsLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `relay.tls_policy`: a level per destination and a default.
///
/// An entry's key is a domain (`example.com`: that domain only) or a
/// parent domain with a leading dot (`.example.com`: every domain below
/// it, as in Postfix). The most specific entry wins: the exact domain,
/// then the longest matching parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicy {
    /// The level of destinations without an entry (`may` unless set).
    pub default: TlsLevel,
    /// Lower-cased keys, as written (with their leading dot, if any).
    entries: HashMap<String, TlsLevel>,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        TlsPolicy {
            default: TlsLevel::May,
            entries: HashMap::new(),
        }
    }
}

impl TlsPolicy {
    /// A policy of `entries` (keys as described on [`TlsPolicy`]) over
    /// `default`.
    ///
    /// # Errors
    /// The key that is not a domain name, with the reason.
    pub fn new(
        default: TlsLevel,
        entries: impl IntoIterator<Item = (String, TlsLevel)>,
    ) -> Result<TlsPolicy, String> {
        let mut map = HashMap::new();
        for (key, level) in entries {
            let lower = key.trim().trim_end_matches('.').to_ascii_lowercase();
            let name = lower.strip_prefix('.').unwrap_or(&lower);
            if !valid_domain(name) {
                return Err(format!(
                    "{key:?} is not a domain (write example.com, or .example.com for the domains below it)"
                ));
            }
            map.insert(lower, level);
        }
        Ok(TlsPolicy {
            default,
            entries: map,
        })
    }

    /// The entry for `domain`, if one is configured (not the default).
    pub fn entry(&self, domain: &str) -> Option<TlsLevel> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if let Some(level) = self.entries.get(&domain) {
            return Some(*level);
        }
        // Parents, longest first: "a.b.example" tries ".b.example", then
        // ".example".
        let mut rest = domain.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(level) = self.entries.get(&format!(".{parent}")) {
                return Some(*level);
            }
            rest = parent;
        }
        None
    }

    /// The name a next hop's level is looked up by: the recipient domain
    /// for MX delivery, the configured host for a configured next hop (the
    /// hop carries many domains over one connection, so it has one level,
    /// as Postfix looks up its relayhost).
    pub fn key(hop: &NextHop) -> &str {
        match hop {
            NextHop::Mx(domain) => domain,
            NextHop::Host(hp) => &hp.host,
        }
    }

    /// The level for `hop`: its entry, else the default.
    pub fn level(&self, hop: &NextHop) -> TlsLevel {
        self.entry(Self::key(hop)).unwrap_or(self.default)
    }
}

/// A host name as DNS allows: labels of letters, digits and hyphens, not
/// empty, at most 63 octets each and 253 in all.
fn valid_domain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Whether `host` matches `pattern` (RFC 6125 §6.4.3 as RFC 8461 §4.1
/// applies it to MTA-STS `mx` patterns): case-insensitive, a trailing dot
/// ignored, and a `*` only as the whole left-most label, standing for
/// exactly one label (`*.example.com` matches `mx.example.com`, not
/// `example.com` nor `a.mx.example.com`).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if pattern.is_empty() || host.is_empty() {
        return false;
    }
    match pattern.strip_prefix("*.") {
        Some(rest) => {
            if rest.contains('*') || rest.is_empty() {
                return false;
            }
            match host.split_once('.') {
                Some((first, tail)) => !first.is_empty() && tail == rest,
                None => false,
            }
        }
        None => !pattern.contains('*') && pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::HostPort;

    fn policy() -> TlsPolicy {
        TlsPolicy::new(
            TlsLevel::May,
            [
                ("Bank.example".to_owned(), TlsLevel::Verify),
                (".gov.example".to_owned(), TlsLevel::Encrypt),
                (".tax.gov.example".to_owned(), TlsLevel::Verify),
                ("legacy.example.".to_owned(), TlsLevel::None),
                ("relay.corp.example".to_owned(), TlsLevel::Verify),
            ],
        )
        .unwrap()
    }

    #[test]
    fn the_most_specific_entry_wins_else_the_default() {
        let p = policy();
        let mx = |d: &str| p.level(&NextHop::Mx(d.to_owned()));
        assert_eq!(mx("bank.example"), TlsLevel::Verify);
        assert_eq!(mx("BANK.EXAMPLE."), TlsLevel::Verify);
        // An exact entry covers that domain only.
        assert_eq!(mx("www.bank.example"), TlsLevel::May);
        // A dotted entry covers the domains below it, not itself.
        assert_eq!(mx("gov.example"), TlsLevel::May);
        assert_eq!(mx("a.gov.example"), TlsLevel::Encrypt);
        assert_eq!(mx("x.tax.gov.example"), TlsLevel::Verify);
        assert_eq!(mx("legacy.example"), TlsLevel::None);
        assert_eq!(mx("other.example"), TlsLevel::May);
        // A configured next hop is looked up by its own name.
        let host = |h: &str| {
            p.level(&NextHop::Host(HostPort {
                host: h.to_owned(),
                port: 25,
            }))
        };
        assert_eq!(host("relay.corp.example"), TlsLevel::Verify);
        assert_eq!(host("127.0.0.1"), TlsLevel::May);
        let strict = TlsPolicy::new(TlsLevel::Encrypt, []).unwrap();
        assert_eq!(
            strict.level(&NextHop::Mx("any.example".into())),
            TlsLevel::Encrypt
        );
    }

    #[test]
    fn levels_and_keys_parse_or_say_what_is_wrong() {
        assert_eq!(TlsLevel::parse("Verify"), Ok(TlsLevel::Verify));
        assert!(TlsLevel::parse("secure").unwrap_err().contains("none, may"));
        assert!(TlsLevel::Encrypt.requires_tls() && !TlsLevel::May.requires_tls());
        for bad in ["", "exa mple.com", "a..b", ".", "*.example.com"] {
            assert!(
                TlsPolicy::new(TlsLevel::May, [(bad.to_owned(), TlsLevel::None)]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_wildcard_stands_for_one_left_most_label_only() {
        let yes = [
            ("mx.example.com", "mx.example.com"),
            ("MX.Example.com.", "mx.example.COM"),
            ("*.example.com", "mx1.example.com"),
            ("*.example.com", "MX1.EXAMPLE.COM."),
        ];
        let no = [
            ("*.example.com", "example.com"),
            ("*.example.com", "a.mx.example.com"),
            ("*.example.com", ".example.com"),
            ("mx.*.com", "mx.example.com"),
            ("m*.example.com", "mx.example.com"),
            ("*", "com"),
            ("*.*.com", "a.b.com"),
            ("mx.example.com", "mx.example.org"),
            ("", ""),
        ];
        for (p, h) in yes {
            assert!(host_matches(p, h), "{p} should match {h}");
        }
        for (p, h) in no {
            assert!(!host_matches(p, h), "{p} should not match {h}");
        }
    }
}

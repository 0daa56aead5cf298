//! The organisation's internal domains.
//!
//! An address is *internal* when its domain is listed. A pattern
//! `*.example.com` covers `example.com` and every subdomain of it; a plain
//! `example.com` covers exactly that domain. Every other address is external.

use std::fmt;

use crate::address::{AddressError, Domain, EmailAddress};

/// One entry of the internal-domains list: a domain, or `*.` and a domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainPattern {
    domain: Domain,
    subdomains: bool,
}

impl DomainPattern {
    /// Parses `example.com` or `*.example.com`.
    ///
    /// # Errors
    /// [`AddressError`] for a malformed domain.
    /// The domain is kept in ASCII (IDNA A-labels), so a pattern written
    /// with U-labels matches addresses written either way.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let input = input.trim();
        let (rest, subdomains) = match input.strip_prefix("*.") {
            Some(rest) => (rest, true),
            None => (input, false),
        };
        let domain = Domain::parse(rest)?;
        let domain = match domain.ascii() {
            std::borrow::Cow::Borrowed(_) => domain,
            std::borrow::Cow::Owned(ascii) => Domain::parse(&ascii)?,
        };
        Ok(DomainPattern { domain, subdomains })
    }

    /// The domain, without the `*.`.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// Whether the pattern also covers subdomains (`*.`).
    pub fn covers_subdomains(&self) -> bool {
        self.subdomains
    }

    /// Whether `domain` (lower-case; ASCII or U-labels) falls under this
    /// pattern.
    pub fn matches(&self, domain: &str) -> bool {
        let domain = crate::address::ascii_domain(domain);
        let domain = domain.as_ref();
        let own = self.domain.as_str();
        if self.subdomains {
            domain == own
                || (domain.len() > own.len()
                    && domain.ends_with(own)
                    && domain.as_bytes()[domain.len() - own.len() - 1] == b'.')
        } else {
            domain == own
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.subdomains {
            write!(f, "*.{}", self.domain)
        } else {
            write!(f, "{}", self.domain)
        }
    }
}

/// The list of internal domain patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InternalDomains(Vec<DomainPattern>);

impl InternalDomains {
    /// Builds the list from parsed patterns.
    pub fn new(patterns: Vec<DomainPattern>) -> Self {
        InternalDomains(patterns)
    }

    /// Whether the domain (lower-case) is internal.
    pub fn contains_domain(&self, domain: &str) -> bool {
        self.0.iter().any(|p| p.matches(domain))
    }

    /// Whether the address is internal.
    pub fn is_internal(&self, address: &EmailAddress) -> bool {
        self.contains_domain(address.domain_str())
    }

    /// The patterns in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &DomainPattern> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> InternalDomains {
        InternalDomains::new(
            items
                .iter()
                .map(|i| DomainPattern::parse(i).unwrap())
                .collect(),
        )
    }

    #[test]
    fn exact_and_wildcard() {
        let d = list(&["corp.example", "*.example.org"]);
        assert!(d.contains_domain("corp.example"));
        assert!(!d.contains_domain("mail.corp.example"));
        assert!(d.contains_domain("example.org"));
        assert!(d.contains_domain("eu.mail.example.org"));
        assert!(!d.contains_domain("badexample.org"));
        let a = EmailAddress::parse("x@EU.Example.ORG").unwrap();
        assert!(d.is_internal(&a));
    }

    #[test]
    fn idn_domains_match_in_either_form() {
        let d = list(&["*.bücher.example"]);
        assert!(d.contains_domain("xn--bcher-kva.example"));
        assert!(d.contains_domain("shop.bücher.example"));
        let d = list(&["xn--bcher-kva.example"]);
        assert!(d.contains_domain("bücher.example"));
        assert!(!d.contains_domain("bucher.example"));
    }

    #[test]
    fn display_round_trips() {
        for p in ["corp.example", "*.example.org"] {
            assert_eq!(DomainPattern::parse(p).unwrap().to_string(), p);
        }
    }
}

//! Email addresses and domains, parsed once at the edge.
//!
//! An [`EmailAddress`] is a `local@domain` mailbox as used in SMTP paths
//! (RFC 5321 §4.1.2, with RFC 6531 UTF-8 in both parts). The domain is
//! stored lower-cased so comparisons need no further normalisation; the
//! local part keeps its case, as RFC 5321 requires of relays.

use std::{borrow::Cow, fmt};

/// Longest local part RFC 5321 §4.5.3.1.1 allows, in octets.
const MAX_LOCAL_LEN: usize = 64;
/// Longest domain RFC 5321 §4.5.3.1.2 allows, in octets.
const MAX_DOMAIN_LEN: usize = 255;
/// Longest path RFC 5321 §4.5.3.1.3 allows, minus the angle brackets.
const MAX_ADDRESS_LEN: usize = 254;

/// Why a string is not an acceptable address or domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("address has no '@' between local part and domain")]
    MissingAt,
    #[error("address is longer than {MAX_ADDRESS_LEN} octets")]
    TooLong,
    #[error("local part is empty or longer than {MAX_LOCAL_LEN} octets")]
    LocalLength,
    #[error("local part contains a character not allowed in an address: {0:?}")]
    LocalChar(char),
    #[error("local part has an empty dot-separated atom")]
    LocalDots,
    #[error("domain is empty or longer than {MAX_DOMAIN_LEN} octets")]
    DomainLength,
    #[error("domain label {0:?} is empty, longer than 63 octets or has a character not allowed")]
    DomainLabel(String),
    #[error("domain literal {0:?} is not a valid IPv4 or IPv6 address literal")]
    DomainLiteral(String),
}

/// A DNS domain name (or an address literal such as `[192.0.2.1]`),
/// lower-cased. Parse with [`Domain::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// Parses a domain as it may appear after the `@` of an SMTP path.
    ///
    /// # Errors
    /// [`AddressError`] naming the first rule the input breaks.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let input = input.strip_suffix('.').unwrap_or(input);
        if input.is_empty() || input.len() > MAX_DOMAIN_LEN {
            return Err(AddressError::DomainLength);
        }
        if let Some(literal) = input.strip_prefix('[') {
            let inner = literal
                .strip_suffix(']')
                .ok_or_else(|| AddressError::DomainLiteral(input.to_owned()))?;
            let valid = match inner.get(..5) {
                Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
                    inner[5..].parse::<std::net::Ipv6Addr>().is_ok()
                }
                _ => inner.parse::<std::net::Ipv4Addr>().is_ok(),
            };
            return if valid {
                Ok(Domain(input.to_ascii_lowercase()))
            } else {
                Err(AddressError::DomainLiteral(input.to_owned()))
            };
        }
        for label in input.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii());
            if !ok {
                return Err(AddressError::DomainLabel(label.to_owned()));
            }
        }
        Ok(Domain(lowercase_ascii_letters(input)))
    }

    /// The domain as text, lower-case.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `other` itself or one of its subdomains.
    pub fn is_within(&self, other: &Domain) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.ends_with(other.0.as_str())
                && self.0.as_bytes()[self.0.len() - other.0.len() - 1] == b'.')
    }

    /// Whether any label is non-ASCII (an IDN in U-label form), which needs
    /// SMTPUTF8 end to end.
    pub fn is_utf8(&self) -> bool {
        !self.0.is_ascii()
    }

    /// The domain in ASCII (IDNA A-labels), the form policies compare:
    /// `bücher.example` and `xn--bcher-kva.example` are one domain. A
    /// U-label IDNA refuses is kept as it is (it can only equal itself).
    pub fn ascii(&self) -> Cow<'_, str> {
        ascii_domain(&self.0)
    }
}

pub(crate) fn ascii_domain(domain: &str) -> Cow<'_, str> {
    if domain.is_ascii() {
        Cow::Borrowed(domain)
    } else {
        match idna::domain_to_ascii(domain) {
            Ok(ascii) => Cow::Owned(ascii),
            Err(_) => Cow::Borrowed(domain),
        }
    }
}

/// Lower-cases ASCII letters only. Unicode case mapping could turn a
/// non-ASCII character into ASCII (U+212A KELVIN SIGN becomes `k`), which
/// would change the address and hide that it needs SMTPUTF8. Full IDNA
/// normalisation of U-labels belongs to the policy engine's address rules.
fn lowercase_ascii_letters(s: &str) -> String {
    s.chars().map(|c| c.to_ascii_lowercase()).collect()
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Domain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A mailbox address `local@domain`. Parse with [`EmailAddress::parse`];
/// there is no other constructor, so every `EmailAddress` is valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    /// `local@domain` with the domain lower-cased.
    full: String,
    /// Byte offset of the `@` in `full`.
    at: usize,
}

impl EmailAddress {
    /// Parses a mailbox as written in an SMTP path, without angle brackets.
    ///
    /// Accepts dot-atom and quoted-string local parts, UTF-8 (RFC 6531) in
    /// either part, and address literals as domains.
    ///
    /// # Errors
    /// [`AddressError`] naming the first rule the input breaks.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        if input.is_empty() {
            return Err(AddressError::Empty);
        }
        if input.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong);
        }
        let at = input.rfind('@').ok_or(AddressError::MissingAt)?;
        let (local, domain) = (&input[..at], &input[at + 1..]);
        validate_local(local)?;
        let domain = Domain::parse(domain)?;
        Ok(EmailAddress {
            full: format!("{local}@{domain}"),
            at,
        })
    }

    /// The local part, case preserved.
    pub fn local_part(&self) -> &str {
        &self.full[..self.at]
    }

    /// The domain part, lower-cased.
    pub fn domain_str(&self) -> &str {
        &self.full[self.at + 1..]
    }

    /// The domain part as a parsed [`Domain`].
    pub fn domain(&self) -> Domain {
        Domain(self.domain_str().to_owned())
    }

    /// The whole address.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// Whether the address needs SMTPUTF8 to be transported.
    pub fn is_utf8(&self) -> bool {
        !self.full.is_ascii()
    }

    /// The address as it travels without SMTPUTF8 where it can: with an
    /// ASCII local part, a U-label domain is written as its A-labels
    /// (`bob@bücher.example` → `bob@xn--bcher-kva.example`), which names the
    /// same mailbox and which every next hop accepts. Mail sealpost writes
    /// itself (notifications, receipts, DSNs) uses this form for the
    /// envelope and the header, so a next hop without SMTPUTF8 still takes
    /// it. Otherwise the address is returned as it is: a non-ASCII local
    /// part has no ASCII form, and a domain IDNA would change (a
    /// look-alike mapped to ASCII, an upper-case U-label) is not ours to
    /// rewrite, so both still need SMTPUTF8.
    pub fn with_ascii_domain(&self) -> EmailAddress {
        self.ascii_domain_form().unwrap_or_else(|| self.clone())
    }

    fn ascii_domain_form(&self) -> Option<EmailAddress> {
        let (local, domain) = (self.local_part(), self.domain_str());
        if domain.is_ascii() || !local.is_ascii() {
            return None;
        }
        let ascii = idna::domain_to_ascii(domain).ok()?;
        // Only a domain already in the form IDNA maps to: converting back
        // gives the very same labels, so no character was folded away.
        let (unicode, back) = idna::domain_to_unicode(&ascii);
        if back.is_err() || unicode != domain {
            return None;
        }
        EmailAddress::parse(&format!("{local}@{ascii}")).ok()
    }

    /// The form policies compare addresses in: the local part with ASCII
    /// letters lower-cased (mailbox names are case-insensitive in practice,
    /// and only ASCII is folded so no look-alike character can stand in
    /// for another) and the domain in ASCII.
    pub fn match_key(&self) -> String {
        let mut key = lowercase_ascii_letters(self.local_part());
        key.push('@');
        key.push_str(&ascii_domain(self.domain_str()));
        key
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

fn validate_local(local: &str) -> Result<(), AddressError> {
    if local.is_empty() || local.len() > MAX_LOCAL_LEN {
        return Err(AddressError::LocalLength);
    }
    if let Some(quoted) = local.strip_prefix('"') {
        let inner = quoted
            .strip_suffix('"')
            .ok_or(AddressError::LocalChar('"'))?;
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    let escaped = chars.next().ok_or(AddressError::LocalChar('\\'))?;
                    if escaped.is_ascii_control() && escaped != '\t' {
                        return Err(AddressError::LocalChar(escaped));
                    }
                }
                '"' => return Err(AddressError::LocalChar('"')),
                c if c.is_ascii_control() => return Err(AddressError::LocalChar(c)),
                _ => {}
            }
        }
        return Ok(());
    }
    for atom in local.split('.') {
        if atom.is_empty() {
            return Err(AddressError::LocalDots);
        }
        if let Some(bad) = atom.chars().find(|&c| !is_atext(c)) {
            return Err(AddressError::LocalChar(bad));
        }
    }
    Ok(())
}

/// RFC 5322 `atext`, extended by RFC 6532 to any non-ASCII character.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_lowercases_domain_only() {
        let a = EmailAddress::parse("John.Doe@Example.COM").unwrap();
        assert_eq!(a.as_str(), "John.Doe@example.com");
        assert_eq!(a.local_part(), "John.Doe");
        assert_eq!(a.domain_str(), "example.com");
    }

    #[test]
    fn accepts_utf8_quoted_and_literals() {
        assert!(EmailAddress::parse("用户@例子.广告").unwrap().is_utf8());
        assert!(EmailAddress::parse("\"john doe\"@example.com").is_ok());
        assert!(EmailAddress::parse("postmaster@[192.0.2.1]").is_ok());
        assert!(EmailAddress::parse("postmaster@[IPv6:2001:db8::1]").is_ok());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "no-at-sign",
            "@example.com",
            "a@",
            "a..b@example.com",
            ".a@example.com",
            "a b@example.com",
            "a@-bad.example",
            "a@exa mple.com",
            "a@[300.1.1.1]",
            "a@ex..com",
        ] {
            assert!(
                EmailAddress::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(
            EmailAddress::parse(&long_local),
            Err(AddressError::LocalLength)
        );
    }

    #[test]
    fn lowercasing_never_turns_non_ascii_into_ascii() {
        let kelvin = EmailAddress::parse("a@\u{212A}elvin.example").unwrap();
        assert!(kelvin.is_utf8(), "still needs SMTPUTF8");
        assert_eq!(kelvin.domain_str(), "\u{212A}elvin.example");
        assert_eq!(
            Domain::parse("MAIL.Example").unwrap().as_str(),
            "mail.example"
        );
    }

    #[test]
    fn subdomain_containment() {
        let parent = Domain::parse("example.com").unwrap();
        assert!(
            Domain::parse("mail.example.com")
                .unwrap()
                .is_within(&parent)
        );
        assert!(Domain::parse("example.com").unwrap().is_within(&parent));
        assert!(!Domain::parse("badexample.com").unwrap().is_within(&parent));
    }

    #[test]
    fn an_ascii_local_part_takes_the_a_label_domain() {
        let a = EmailAddress::parse("Bob@bücher.example").unwrap();
        let ascii = a.with_ascii_domain();
        assert_eq!(ascii.as_str(), "Bob@xn--bcher-kva.example");
        assert!(!ascii.is_utf8(), "travels without SMTPUTF8");
        assert_eq!(ascii.match_key(), a.match_key(), "the same mailbox");
        // ASCII capitals in the domain are folded when it is parsed.
        let capital = EmailAddress::parse("bob@MAIL.Bücher.Example").unwrap();
        assert_eq!(
            capital.with_ascii_domain().as_str(),
            "bob@mail.xn--bcher-kva.example"
        );
        let mixed = EmailAddress::parse("x@mail.例子.广告").unwrap();
        assert_eq!(
            mixed.with_ascii_domain().as_str(),
            "x@mail.xn--fsqu00a.xn--4rr70v"
        );
    }

    #[test]
    fn addresses_without_an_ascii_form_are_kept() {
        for kept in [
            "bob@example.com",
            "bob@xn--bcher-kva.example",
            "jörg@bücher.example",
            "用户@例子.广告",
            // IDNA would map these to other characters: not ours to rewrite.
            "a@\u{212A}elvin.example",
            "a@bÜcher.example",
            "postmaster@[192.0.2.1]",
        ] {
            let a = EmailAddress::parse(kept).unwrap();
            assert_eq!(a.with_ascii_domain(), a, "{kept}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(local in "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[a-zA-Z0-9_-]{1,10}){0,2}",
                      domain in "[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){1,3}") {
            let text = format!("{local}@{domain}");
            let parsed = EmailAddress::parse(&text).unwrap();
            prop_assert_eq!(parsed.as_str(), text.as_str());
            prop_assert_eq!(EmailAddress::parse(parsed.as_str()).unwrap(), parsed);
        }

        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = EmailAddress::parse(&s);
        }
    }
}

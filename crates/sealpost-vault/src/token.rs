//! The secret in a recipient's portal link, and the hash the store keeps.
//!
//! The store never holds a token, only its SHA-256: a copy of the database
//! does not let anyone open a portal link. The token carries 256 random bits,
//! so a plain (unsalted, fast) hash is enough; there is nothing to guess.

use std::fmt;

use ring::digest::{SHA256, digest};

/// Hex digits in a token: 32 random bytes.
const TOKEN_HEX_LEN: usize = 64;

/// The secret in a recipient's portal link: 256 random bits as 64 lower-case
/// hex digits. Only its [`hash`](PortalToken::hash) is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct PortalToken(String);

impl PortalToken {
    /// A fresh token from the operating system's random source.
    ///
    /// # Panics
    ///
    /// If the operating system cannot supply random bytes.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_HEX_LEN / 2];
        crate::random::fill(&mut bytes);
        PortalToken(hex::encode(bytes))
    }

    /// Accepts exactly 64 hex digits (either case, normalised to lower case);
    /// anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = text.len() == TOKEN_HEX_LEN && text.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| PortalToken(text.to_ascii_lowercase()))
    }

    /// The token text, for building the link. Handle it as a secret.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the store keeps and looks tokens up by: SHA-256 of the token text.
    pub fn hash(&self) -> TokenHash {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, self.0.as_bytes()).as_ref());
        TokenHash(out)
    }
}

impl fmt::Debug for PortalToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PortalToken(..)")
    }
}

/// SHA-256 of a [`PortalToken`]'s text: safe to store and to index by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_64_lower_hex_and_distinct() {
        let a = PortalToken::generate();
        let b = PortalToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 64);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_eq!(PortalToken::parse(a.as_str()), Some(a));
    }

    #[test]
    fn parse_normalises_case_and_rejects_the_rest() {
        let upper = "AB".repeat(32);
        let token = PortalToken::parse(&upper).unwrap();
        assert_eq!(token.as_str(), "ab".repeat(32));
        assert_eq!(
            token.hash(),
            PortalToken::parse(&"ab".repeat(32)).unwrap().hash()
        );

        for bad in [
            String::new(),
            "a".repeat(63),
            "a".repeat(65),
            format!("{}g", "a".repeat(63)),
            format!(" {}", "a".repeat(63)),
            format!("{}é", "a".repeat(62)),
        ] {
            assert_eq!(PortalToken::parse(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hash_is_sha256_of_the_text() {
        let token = PortalToken::parse(&"0".repeat(64)).unwrap();
        // sha256("000…0" × 64), computed independently.
        assert_eq!(
            hex::encode(token.hash().0),
            "60e05bd1b195af2f94112fa7197a5c88289058840ce7c6df9693756bc6250f55"
        );
        assert_ne!(token.hash(), PortalToken::generate().hash());
    }

    #[test]
    fn debug_hides_the_secret() {
        let token = PortalToken::generate();
        let shown = format!("{token:?}");
        assert_eq!(shown, "PortalToken(..)");
        assert!(!shown.contains(token.as_str()));
    }
}

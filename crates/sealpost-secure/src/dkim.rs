//! DKIM (RFC 6376): the keys of the domains sealpost signs for, and the
//! signature on the mail it writes itself (notifications, receipts, DSNs,
//! portal mail), so that receivers can tell it really came from the
//! domain in its From and DMARC aligns.
//!
//! A message is signed with the key of the domain of its header From, or
//! of the nearest parent domain that has one (relaxed DMARC alignment);
//! with no such key it is left as it is. Header and
//! body are canonicalised relaxed/relaxed, which survives the re-folding
//! and whitespace changes of relays on the way.
//!
//! No I/O: the caller reads the key file and passes its PEM text.

use std::fmt;

use base64::Engine as _;
use mail_auth::{
    common::{
        crypto::{DkimKey, Ed25519Key, RsaKey, Sha256},
        headers::HeaderWriter,
    },
    dkim::{Canonicalization, DkimSigner, Done, generate::DkimKeyPair},
};
use mail_parser::{HeaderName, MessageParser};
use rustls_pki_types::{PrivateKeyDer, pem::PemObject};

/// Header fields signed when present (RFC 6376 §5.4.1 recommends these).
/// The From is required; the others are signed only where the mail has
/// them, as mail-auth lists what it finds.
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Auto-Submitted",
];

/// RSA key size for `dkim keygen`: 2048 bits, the size RFC 8301 asks
/// verifiers to accept and most DNS providers fit in one TXT record.
const RSA_BITS: usize = 2048;

/// The signing algorithm of a key (`algorithm` in `[[dkim.key]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// `rsa-sha256`: understood by every verifier.
    #[default]
    RsaSha256,
    /// `ed25519-sha256` (RFC 8463): short keys, not yet verified everywhere.
    Ed25519Sha256,
}

impl Algorithm {
    /// Parses the configuration's spelling.
    ///
    /// # Errors
    /// A message naming the values accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "rsa-sha256" => Ok(Algorithm::RsaSha256),
            "ed25519-sha256" => Ok(Algorithm::Ed25519Sha256),
            other => Err(format!(
                "{other:?}: expected \"rsa-sha256\" or \"ed25519-sha256\""
            )),
        }
    }

    /// The configuration's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }

    /// The `k=` tag of the DNS record.
    fn key_type(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa",
            Algorithm::Ed25519Sha256 => "ed25519",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key could not be made or read, or a message not signed.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("not a PEM private key: {0}")]
    Pem(String),
    #[error("not a usable {algorithm} key: {reason}")]
    Key {
        algorithm: Algorithm,
        reason: String,
    },
    #[error("cannot generate the key: {0}")]
    Generate(String),
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// A freshly generated key: the PEM to keep secret and the public half
/// for DNS.
#[derive(Debug)]
pub struct GeneratedKey {
    /// The private key as PEM (PKCS#1 for RSA, PKCS#8 for Ed25519).
    pub pem: String,
    /// The public key, base64, as the `p=` tag carries it.
    pub public_key: String,
    pub algorithm: Algorithm,
}

impl GeneratedKey {
    /// Generates a key pair.
    ///
    /// # Errors
    /// The random source or the key library failed.
    pub fn generate(algorithm: Algorithm) -> Result<Self, DkimError> {
        let generate = |e: mail_auth::Error| DkimError::Generate(e.to_string());
        let (pair, label) = match algorithm {
            Algorithm::RsaSha256 => (
                DkimKeyPair::generate_rsa(RSA_BITS).map_err(generate)?,
                "RSA PRIVATE KEY",
            ),
            Algorithm::Ed25519Sha256 => (
                DkimKeyPair::generate_ed25519().map_err(generate)?,
                "PRIVATE KEY",
            ),
        };
        let public_key = base64::engine::general_purpose::STANDARD.encode(pair.public_key());
        Ok(GeneratedKey {
            pem: pem(label, pair.private_key()),
            public_key,
            algorithm,
        })
    }

    /// The DNS record to publish, in zone-file form:
    /// `S._domainkey.D. IN TXT "v=DKIM1; k=rsa; p=..."`. A value longer
    /// than 255 octets is split into several quoted strings, which DNS
    /// joins (RFC 7208 §3.3 style, as every zone file accepts).
    pub fn txt_record(&self, domain: &str, selector: &str) -> String {
        let value = format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm.key_type(),
            self.public_key
        );
        let strings: Vec<String> = value
            .as_bytes()
            .chunks(255)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect();
        format!(
            "{selector}._domainkey.{domain}. IN TXT {}",
            strings.join(" ")
        )
    }
}

/// PEM armour (RFC 7468) around DER bytes, 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// One signing domain: its selector and key, ready to sign.
pub struct DomainKey {
    /// Lower-case, as the From's domain is compared.
    domain: String,
    signer: DkimSigner<DkimKey, Done>,
}

impl fmt::Debug for DomainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("DomainKey")
            .field("domain", &self.domain)
            .field("selector", &self.signer.template.s)
            .finish_non_exhaustive()
    }
}

impl DomainKey {
    /// Reads a PEM private key (PKCS#1 or PKCS#8 for RSA, PKCS#8 for
    /// Ed25519) for `selector._domainkey.domain`.
    ///
    /// # Errors
    /// Not PEM, or not a key of `algorithm`.
    pub fn from_pem(
        domain: &str,
        selector: &str,
        algorithm: Algorithm,
        pem: &[u8],
    ) -> Result<Self, DkimError> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| DkimError::Pem(e.to_string()))?;
        let bad = |e: mail_auth::Error| DkimError::Key {
            algorithm,
            reason: e.to_string(),
        };
        let key = match algorithm {
            Algorithm::RsaSha256 => DkimKey::Rsa(RsaKey::<Sha256>::from_key_der(der).map_err(bad)?),
            Algorithm::Ed25519Sha256 => match der {
                PrivateKeyDer::Pkcs8(der) => DkimKey::Ed25519(
                    Ed25519Key::from_pkcs8_der(der.secret_pkcs8_der()).map_err(bad)?,
                ),
                _ => {
                    return Err(DkimError::Key {
                        algorithm,
                        reason: "an Ed25519 key must be PKCS#8 (BEGIN PRIVATE KEY)".into(),
                    });
                }
            },
        };
        let domain = domain.to_ascii_lowercase();
        let signer = DkimSigner::from_key(key)
            .domain(domain.as_str())
            .selector(selector)
            .headers(SIGNED_HEADERS.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Ok(DomainKey { domain, signer })
    }

    /// The domain it signs for.
    pub fn domain(&self) -> &str {
        &self.domain
    }
}

/// The keys of every signing domain; what signs the mail sealpost writes.
#[derive(Debug, Default)]
pub struct Signer {
    keys: Vec<DomainKey>,
}

impl Signer {
    /// A signer over `keys`; a later key for the same domain is ignored
    /// (the configuration check refuses duplicates).
    pub fn new(keys: Vec<DomainKey>) -> Self {
        Signer { keys }
    }

    /// Whether there is any key at all.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key of `domain` or of its nearest parent that has one: mail
    /// from `MAILER-DAEMON@mx.corp.example` is signed `d=corp.example`,
    /// which DMARC's relaxed alignment (the default) accepts.
    fn key_for(&self, domain: &str) -> Option<&DomainKey> {
        let mut candidate = domain;
        loop {
            if let Some(key) = self
                .keys
                .iter()
                .find(|k| k.domain.eq_ignore_ascii_case(candidate))
            {
                return Some(key);
            }
            candidate = candidate.split_once('.')?.1;
        }
    }

    /// The `DKIM-Signature` field (CRLF-terminated) to put in front of
    /// `message`, when the domain of its (first) header From, or the
    /// nearest parent of it, has a key; `None` when none has.
    ///
    /// # Errors
    /// The message has a signing domain but could not be signed (no
    /// header at all, a key library failure). Callers send it unsigned
    /// rather than lose it, and log the error.
    pub fn signature(&self, message: &[u8]) -> Result<Option<String>, DkimError> {
        let Some(key) = from_domain(message).and_then(|d| self.key_for(&d)) else {
            return Ok(None);
        };
        let signature = key
            .signer
            .sign(message)
            .map_err(|e| DkimError::Sign(e.to_string()))?;
        Ok(Some(signature.to_header()))
    }

    /// The signature for mail sealpost composed itself: as
    /// [`Signer::signature`], and when the header From has no key (a
    /// portal reply is From the external recipient who wrote it), signed
    /// as the gateway: with the key of `hostname`'s domain or its nearest
    /// parent. The signature is then not aligned with the From, but it
    /// still tells the receiving server which gateway composed the mail.
    ///
    /// # Errors
    /// As [`Signer::signature`].
    pub fn signature_as_gateway(
        &self,
        message: &[u8],
        hostname: &str,
    ) -> Result<Option<String>, DkimError> {
        // Without a From there is nothing a signature could cover.
        let Some(from) = from_domain(message) else {
            return Ok(None);
        };
        let gateway = hostname.trim_end_matches('.').to_ascii_lowercase();
        let Some(key) = self.key_for(&from).or_else(|| self.key_for(&gateway)) else {
            return Ok(None);
        };
        let signature = key
            .signer
            .sign(message)
            .map_err(|e| DkimError::Sign(e.to_string()))?;
        Ok(Some(signature.to_header()))
    }

    /// `message` signed (see [`Signer::signature`]), or as it is when it
    /// has no signing domain.
    ///
    /// # Errors
    /// As [`Signer::signature`].
    pub fn sign(&self, message: Vec<u8>) -> Result<Vec<u8>, DkimError> {
        Ok(match self.signature(&message)? {
            Some(header) => prepend(header, &message),
            None => message,
        })
    }
}

/// `header` followed by `message`.
pub fn prepend(header: String, message: &[u8]) -> Vec<u8> {
    let mut signed = header.into_bytes();
    signed.extend_from_slice(message);
    signed
}

/// The domain of the first address of the header From, lower-case.
fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = MessageParser::new().parse_headers(message)?;
    let from = parsed
        .headers()
        .iter()
        .find(|h| h.name == HeaderName::From)?;
    let address = from.value.as_address()?.first()?.address.as_deref()?;
    let (_, domain) = address.rsplit_once('@')?;
    Some(domain.trim_end_matches('.').to_ascii_lowercase())
}

#[cfg(test)]
mod tests;

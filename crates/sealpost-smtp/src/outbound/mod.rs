//! Outbound SMTP: hand messages to the next hop and report, per recipient,
//! how it went.
//!
//! - [`lookup`] chooses a recipient domain's next hop (a configured host,
//!   or the domain's MX records with the RFC 5321 §5.1 fallback to A/AAAA)
//!   and turns it into addresses.
//! - [`client`] speaks SMTP to one server: EHLO, opportunistic STARTTLS,
//!   MAIL/RCPT/DATA pipelined when offered, with the end of each message's
//!   data sent along with the next message's commands.
//! - [`delivery`] delivers a batch of messages for one next hop over as few
//!   connections as possible, trying the next address when one fails, and
//!   at once over a fresh connection when a reused one turns out stale.
//! - [`eightbit`] makes 8-bit content 7-bit for a next hop without
//!   8BITMIME (RFC 6152), or says why it cannot be.
//! - [`tls_policy`] says how much TLS each destination must get
//!   (`relay.tls_policy`), [`mta_sts`] adds what a recipient domain
//!   publishes (RFC 8461), and [`verify`] holds the trusted roots.
//!
//! The result of an attempt is a [`DeliveryOutcome`] per recipient; the
//! queue decides what a deferral means for the retry schedule.

pub mod client;
pub mod delivery;
pub mod eightbit;
mod hop_tls;
pub mod lookup;
pub mod mta_sts;
pub mod tls_policy;
pub mod verify;

use std::{sync::Arc, time::Duration};

pub use delivery::{Delivery, OutgoingMessage, OutgoingRecipient};
pub use lookup::{ConfiguredHops, HostPort, NextHop};
pub use tls_policy::{TlsLevel, TlsPolicy};

/// How one recipient's attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The next hop took responsibility (2xx after DATA). `dsn_passed`:
    /// the next hop supports DSN, so it got our NOTIFY/ORCPT and reports
    /// success itself; otherwise a NOTIFY=SUCCESS sender is owed a
    /// "relayed" report from us (RFC 3461 §6.2.2).
    Delivered {
        reply: String,
        remote: String,
        dsn_passed: bool,
    },
    /// Worth trying again later (4xx, connection or DNS trouble).
    Deferred {
        reply: String,
        remote: Option<String>,
    },
    /// Will never work (5xx, null MX, no such domain).
    Failed {
        reply: String,
        remote: Option<String>,
    },
}

/// Settings of the outbound side.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// Our name in EHLO.
    pub hostname: String,
    pub connect_timeout: Duration,
    /// Timeout for each reply to a command (RFC 5321 §4.5.3.2 suggests
    /// minutes; we use less to free connections from stuck peers sooner).
    pub command_timeout: Duration,
    /// Timeout for the reply after the final `.` of DATA, and for each
    /// write of the message data (not the whole body: a large message on
    /// a slow link must get through).
    pub data_timeout: Duration,
    /// Try STARTTLS when the server offers it.
    pub opportunistic_tls: bool,
    /// Most messages sent over one connection before it is renewed.
    pub max_messages_per_connection: usize,
    /// DNS servers for MX and address lookups; empty: the system's.
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// Port of MX hosts (25; tests point it elsewhere).
    pub mx_port: u16,
    /// `relay.tls_policy`: the TLS level per destination. `may` entries
    /// (and the default) try STARTTLS only when `opportunistic_tls` is on.
    pub tls_policy: TlsPolicy,
    /// `relay.tls_ca_file`: roots trusted by `verify` beside the system's.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// `relay.mta_sts`: honour recipient domains' MTA-STS policies.
    pub mta_sts: bool,
    /// Port of `mta-sts.<domain>` (443; tests point it elsewhere).
    pub mta_sts_port: u16,
    /// Where MTA-STS policies are kept across restarts; `None`: memory only.
    pub mta_sts_cache: Option<std::path::PathBuf>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            hostname: "localhost".into(),
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(120),
            data_timeout: Duration::from_secs(600),
            opportunistic_tls: true,
            max_messages_per_connection: 100,
            dns_servers: Vec::new(),
            mx_port: 25,
            tls_policy: TlsPolicy::default(),
            tls_ca_file: None,
            mta_sts: false,
            mta_sts_port: 443,
            mta_sts_cache: None,
        }
    }
}

/// TLS settings for opportunistic STARTTLS: like Postfix's
/// `smtp_tls_security_level = may`, the certificate is not verified (a
/// failed verification would only push us back to plaintext), but the
/// handshake signatures are, so the session is encrypted for real.
pub fn opportunistic_tls_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

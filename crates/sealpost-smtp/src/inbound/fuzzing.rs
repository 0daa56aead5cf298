//! Hooks for the fuzz targets in `fuzz/` (cargo-fuzz). **Not an API**: this
//! module exists only so the fuzz crate, which builds against this crate
//! from outside, can drive a whole inbound SMTP session, or the DATA reader
//! alone, from arbitrary bytes and check invariants that must hold for any
//! input. It is `#[doc(hidden)]` and nothing in the gateway uses it.
//!
//! - [`session_on_bytes`] feeds the input as everything one client sends
//!   (then closes its side) to [`run_session`](super::run_session) over an
//!   in-memory pipe, once from a trusted peer (in `relay_networks` and
//!   `xforward_hosts`) and once from an untrusted one, and checks the
//!   server's replies, the messages it committed, and that it finished.
//! - [`data_reader_on_bytes`] feeds the input to
//!   [`SmtpStream::read_data`](super::io::SmtpStream::read_data), in one
//!   piece and in small pieces, and checks the result against a
//!   line-by-line model of RFC 5321 DATA (end only at `<CRLF>.<CRLF>`).
//!
//! Both panic, with the reason, when an invariant is broken; libFuzzer
//! records the input as a crash.

use std::{
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    pin::Pin,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use sealpost_intake::{Intake, IntakeSettings};
use sealpost_policy::{DomainPattern, InternalDomains, IpRange, IpRanges, PolicySet};
use sealpost_store::{
    Leased, MessageRecord, NewMessage, NotificationTarget, QueueId, QueueStats, RecipientOutcome,
    RecipientRecord, Store, StoreError,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    runtime::Runtime,
    sync::Notify,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::{
    Inbound, InboundConfig,
    busy_poll::BusyPoll,
    io::{DataEnd, MAX_TEXT_LINE, SmtpStream},
};
use crate::reply;

/// Longest a session (or a DATA read) may take before it counts as a hang.
/// A session's input is closed after the last byte, so a correct server
/// finishes in microseconds.
const HANG_LIMIT: Duration = Duration::from_secs(5);
/// `smtp.max_message_size` of the fuzzed server: small, so that inputs the
/// fuzzer can produce reach the "too big" path.
pub const MAX_MESSAGE_SIZE: usize = 8 * 1024;
/// `smtp.max_recipients` of the fuzzed server.
pub const MAX_RECIPIENTS: usize = 5;
/// `smtp.max_received_headers` of the fuzzed server.
pub const MAX_RECEIVED_HEADERS: usize = 5;
/// The only internal domain.
pub const INTERNAL_DOMAIN: &str = "corp.example";
/// Longest reply line, CRLF included (RFC 5321 §4.5.3.1.5).
const MAX_REPLY_LINE: usize = 512;
/// In `relay_networks` (127.0.0.0/8) and `xforward_hosts` (127.0.0.1).
const TRUSTED_PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40_000);
/// In neither.
const UNTRUSTED_PEER: SocketAddr = SocketAddr::new(
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x25)),
    40_001,
);
/// Prefix handed to `read_data` by [`data_reader_on_bytes`].
const DATA_PREFIX: &[u8] = b"Received: from fuzz\r\n";
/// `max_size` handed to `read_data` by [`data_reader_on_bytes`].
const DATA_MAX_SIZE: usize = 4096;

/// A throwaway self-signed certificate (CN `fuzz.invalid`, P-256) and its
/// key, so the fuzzed server offers STARTTLS. Protects nothing.
const FUZZ_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBnjCCAUSgAwIBAgIUXsuNJ/8Y9XL7se13LDU7MhNLdO0wCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMZnV6ei5pbnZhbGlkMCAXDTI2MTEyNzAxMDUyNFoYDzIxMjYx
MTAzMDEwNTI0WjAXMRUwEwYDVQQDDAxmdXp6LmludmFsaWQwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAQ70ZYb4nm4zIGcmBSvsMZHIRdWm7oJTtYqfgSkNKyYdLu5
diCQvlqTG6+IlUmWEk0D1dkFbG5gZSG10M9zSJHgo2wwajAdBgNVHQ4EFgQUc2tz
YMt6/UwBup0FjrQzTWuicP4wHwYDVR0jBBgwFoAUc2tzYMt6/UwBup0FjrQzTWui
cP4wDwYDVR0TAQH/BAUwAwEB/zAXBgNVHREEEDAOggxmdXp6LmludmFsaWQwCgYI
KoZIzj0EAwIDSAAwRQIgelQ9jeGQ7z6uOi8KpAmHCJSjw7mJch2pcQmcCFgAS/IC
IQDnNl+7vfjQL5wQj9p1WWdn2ykx5WO/uTuSBSs/hQ/5dg==
-----END CERTIFICATE-----
";
const FUZZ_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg32INhaycRAvNfcnc
LlUSiYfzvQMsoQlCeIKEWrjQLVWhRANCAAQ70ZYb4nm4zIGcmBSvsMZHIRdWm7oJ
TtYqfgSkNKyYdLu5diCQvlqTG6+IlUmWEk0D1dkFbG5gZSG10M9zSJHg
-----END PRIVATE KEY-----
";

thread_local! {
    /// One current-thread runtime per fuzzing thread, reused across inputs.
    static RUNTIME: Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
}

fn tls_acceptor() -> TlsAcceptor {
    static ACCEPTOR: OnceLock<TlsAcceptor> = OnceLock::new();
    ACCEPTOR
        .get_or_init(|| {
            let cert = CertificateDer::from_pem_slice(FUZZ_CERT_PEM.as_bytes())
                .expect("fuzz certificate parses");
            let key =
                PrivateKeyDer::from_pem_slice(FUZZ_KEY_PEM.as_bytes()).expect("fuzz key parses");
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("default protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("fuzz certificate and key match");
            TlsAcceptor::from(Arc::new(config))
        })
        .clone()
}

/// A `Store` that keeps accepted messages in memory and has nothing to
/// lease, deliver or report.
#[derive(Debug, Default)]
pub struct MemoryStore {
    accepted: Mutex<Vec<NewMessage>>,
}

impl MemoryStore {
    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<NewMessage> {
        self.accepted.lock().expect("not poisoned").clone()
    }

    /// How many messages were accepted.
    pub fn count(&self) -> usize {
        self.accepted.lock().expect("not poisoned").len()
    }
}

/// What `#[async_trait]` turns an `async fn` of [`Store`] into (this crate
/// does not depend on `async-trait`, so the impl is written out).
type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

impl Store for MemoryStore {
    fn accept<'life0, 'async_trait>(
        &'life0 self,
        message: NewMessage,
    ) -> StoreFuture<'async_trait, QueueId>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let id = message.id.clone();
            self.accepted.lock().expect("not poisoned").push(message);
            Ok(id)
        })
    }

    fn lease_due<'life0, 'life1, 'async_trait>(
        &'life0 self,
        _owner: &'life1 str,
        _now: SystemTime,
        _lease_until: SystemTime,
        _limit: usize,
    ) -> StoreFuture<'async_trait, Leased>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async { Ok(Leased::default()) })
    }

    fn load_body<'life0, 'life1, 'async_trait>(
        &'life0 self,
        id: &'life1 QueueId,
    ) -> StoreFuture<'async_trait, Vec<u8>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { Err(StoreError::NotFound(id.clone())) })
    }

    fn record<'life0, 'async_trait>(
        &'life0 self,
        _outcomes: Vec<RecipientOutcome>,
        _dsns: Vec<NewMessage>,
    ) -> StoreFuture<'async_trait, Vec<QueueId>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn notification_targets<'life0, 'async_trait>(
        &'life0 self,
        _notifications: Vec<QueueId>,
    ) -> StoreFuture<'async_trait, Vec<NotificationTarget>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        // Nothing is ever leased here, so no notification fails.
        Box::pin(async { Ok(Vec::new()) })
    }

    fn next_due<'life0, 'async_trait>(&'life0 self) -> StoreFuture<'async_trait, Option<SystemTime>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async { Ok(None) })
    }

    fn queue_stats<'life0, 'async_trait>(&'life0 self) -> StoreFuture<'async_trait, QueueStats>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async { Ok(QueueStats::default()) })
    }

    fn recipients<'life0, 'life1, 'async_trait>(
        &'life0 self,
        _id: &'life1 QueueId,
    ) -> StoreFuture<'async_trait, Vec<RecipientRecord>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn message<'life0, 'life1, 'async_trait>(
        &'life0 self,
        id: &'life1 QueueId,
    ) -> StoreFuture<'async_trait, MessageRecord>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { Err(StoreError::NotFound(id.clone())) })
    }

    fn ping<'life0, 'async_trait>(&'life0 self) -> StoreFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async { Ok(()) })
    }
}

/// The inbound server under test, with small limits.
fn inbound(store: Arc<MemoryStore>) -> Inbound {
    let range = |s: &str| IpRange::parse(s).expect("valid range");
    let internal = InternalDomains::new(vec![
        DomainPattern::parse(INTERNAL_DOMAIN).expect("valid domain"),
    ]);
    Inbound {
        config: InboundConfig {
            hostname: "mx.fuzz.invalid".into(),
            relay_networks: IpRanges::new(vec![range("127.0.0.0/8")]),
            xforward_hosts: IpRanges::new(vec![range("127.0.0.1")]),
            max_message_size: MAX_MESSAGE_SIZE,
            max_recipients: MAX_RECIPIENTS,
            // The input is closed after its last byte, so this only matters
            // if the server waited for something else: keep it short.
            idle_timeout: Duration::from_millis(50),
            max_connections: 1,
            max_errors: 20,
            max_received_headers: MAX_RECEIVED_HEADERS,
            shutdown_grace: Duration::from_millis(50),
        },
        intake: Arc::new(Intake {
            settings: IntakeSettings {
                queue_lifetime: Duration::from_secs(86_400),
                ..IntakeSettings::default()
            },
            store,
            policy: Arc::new(ArcSwap::from_pointee(PolicySet::with_internal_domains(
                internal,
            ))),
            handoff: None,
            queue_wakeup: Arc::new(Notify::new()),
        }),
        tls: Some(tls_acceptor()),
        open_transactions: Default::default(),
        // Off: the input is in memory, there is nothing to wait for.
        busy_poll: BusyPoll::new(Duration::ZERO),
        submission: None,
    }
}

/// Runs one session on `input` from each of a trusted and an untrusted
/// peer and checks every invariant; panics if one is broken.
///
/// Invariants: the session finishes (within [`HANG_LIMIT`]); everything the
/// server wrote before TLS is well-formed replies (`[2-5]xx` then space or
/// hyphen, CRLF-terminated, at most 512 octets, multi-line replies
/// consistent, the greeting first, nothing after a 221 or 421); after
/// `220 Ready to start TLS` nothing but TLS records; no more `queued as`
/// replies than DATA command lines in the input, and exactly one per
/// message the store accepted; each stored message has 1 to
/// `max_recipients` distinct recipients, CRLF-only content within the size
/// and line limits; and from the untrusted peer, only internal recipients
/// and the peer's own address (XFORWARD refused).
pub fn session_on_bytes(input: &[u8]) {
    RUNTIME.with(|rt| {
        rt.block_on(async {
            check_session(input, TRUSTED_PEER).await;
            check_session(input, UNTRUSTED_PEER).await;
        })
    });
}

/// What one checked session produced (read by the tests).
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
struct SessionReport {
    /// The final line of each reply, CRLF removed.
    replies: Vec<Vec<u8>>,
    /// Whether the server answered STARTTLS with 220.
    tls_started: bool,
    messages: Vec<NewMessage>,
}

async fn check_session(input: &[u8], peer: SocketAddr) -> SessionReport {
    let store = Arc::new(MemoryStore::default());
    let inbound = Arc::new(inbound(store.clone()));
    // A pipe smaller than most inputs, so the server reads in several
    // chunks and lines straddle reads.
    let (client, server) = tokio::io::duplex(1024);
    let (mut from_server, mut to_server) = tokio::io::split(client);
    let session = super::run_session(server, peer, inbound, CancellationToken::new());
    let send = async {
        // Fails with BrokenPipe once the server has closed: that is fine.
        let _ = to_server.write_all(input).await;
        let _ = to_server.shutdown().await;
    };
    let receive = async {
        let mut out = Vec::new();
        let _ = from_server.read_to_end(&mut out).await;
        out
    };
    let Ok(((), (), output)) =
        tokio::time::timeout(HANG_LIMIT, async { tokio::join!(session, send, receive) }).await
    else {
        panic!(
            "session from {peer} did not finish within {HANG_LIMIT:?} after its input ended \
             (input {} octets)",
            input.len()
        );
    };

    let parsed = check_replies(&output);
    let queued = parsed
        .replies
        .iter()
        .filter(|r| r.starts_with(b"250 2.0.0 Ok: queued as "))
        .count();
    // The command parser skips leading blanks (` DATA` is DATA), so the
    // oracle does too.
    let data_commands = input
        .split(|&b| b == b'\n')
        .map(|line| line.trim_ascii_start())
        .filter(|line| line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"DATA"))
        .count();
    assert!(
        queued <= data_commands,
        "{queued} messages answered `queued as` but the input has only {data_commands} DATA lines"
    );
    let messages = store.messages();
    assert_eq!(
        messages.len(),
        queued,
        "the store accepted {} messages but {queued} were answered `queued as`",
        messages.len()
    );
    for message in &messages {
        check_message(message, peer);
    }
    SessionReport {
        replies: parsed.replies,
        tls_started: parsed.tls_started,
        messages,
    }
}

struct ParsedOutput {
    replies: Vec<Vec<u8>>,
    tls_started: bool,
}

fn check_replies(output: &[u8]) -> ParsedOutput {
    let mut ready_tls = Vec::new();
    reply::READY_TLS.write_to(&mut ready_tls);
    let mut replies = Vec::new();
    let mut continuing: Option<[u8; 3]> = None;
    let mut rest = output;
    let mut tls_started = false;
    while !rest.is_empty() {
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            panic!("reply not terminated by CRLF: {}", escape(rest));
        };
        let line = &rest[..=nl];
        rest = &rest[nl + 1..];
        assert!(
            line.len() <= MAX_REPLY_LINE,
            "reply line of {} octets (limit {MAX_REPLY_LINE}): {}",
            line.len(),
            escape(line)
        );
        assert!(
            line.len() >= 2 && line[line.len() - 2] == b'\r',
            "reply line ended by a bare LF: {}",
            escape(line)
        );
        let text = &line[..line.len() - 2];
        assert!(
            !text.contains(&b'\r'),
            "bare CR in a reply line: {}",
            escape(line)
        );
        let well_formed = text.len() >= 4
            && (b'2'..=b'5').contains(&text[0])
            && text[1].is_ascii_digit()
            && text[2].is_ascii_digit()
            && matches!(text[3], b' ' | b'-');
        assert!(well_formed, "malformed reply line: {}", escape(line));
        let code = [text[0], text[1], text[2]];
        if let Some(expected) = continuing {
            assert_eq!(
                code,
                expected,
                "multi-line reply changed its code: {}",
                escape(line)
            );
        }
        if text[3] == b'-' {
            continuing = Some(code);
            continue;
        }
        continuing = None;
        if replies.is_empty() {
            assert!(
                text.starts_with(b"220 "),
                "first reply is not the greeting: {}",
                escape(line)
            );
        }
        if let Some(last) = replies.last() {
            let last: &Vec<u8> = last;
            assert!(
                !last.starts_with(b"221") && !last.starts_with(b"421"),
                "reply after the closing {}: {}",
                escape(last),
                escape(line)
            );
        }
        replies.push(text.to_vec());
        if line == ready_tls.as_slice() && replies.len() > 1 {
            // Everything after this is the TLS handshake: records, never
            // plaintext replies (RFC 3207 §4.2, CVE-2011-0411).
            tls_started = true;
            assert!(
                rest.is_empty() || (matches!(rest[0], 0x14..=0x17) && rest.get(1) == Some(&0x03)),
                "plaintext after `220 Ready to start TLS`: {}",
                escape(&rest[..rest.len().min(200)])
            );
            rest = &[];
        }
    }
    assert!(
        continuing.is_none(),
        "output ended inside a multi-line reply"
    );
    ParsedOutput {
        replies,
        tls_started,
    }
}

fn check_message(message: &NewMessage, peer: SocketAddr) {
    let n = message.recipients.len();
    assert!(
        (1..=MAX_RECIPIENTS).contains(&n),
        "message {} has {n} recipients",
        message.id
    );
    for (i, r) in message.recipients.iter().enumerate() {
        assert!(
            message.recipients[..i]
                .iter()
                .all(|o| o.address != r.address),
            "recipient {} listed twice",
            r.address
        );
    }
    let content = &message.content;
    assert!(
        content.starts_with(b"Received: from "),
        "stored content does not start with our Received header: {}",
        escape(&content[..content.len().min(100)])
    );
    check_crlf_text(content, "stored content");
    assert!(
        content.len() <= MAX_MESSAGE_SIZE + 2048,
        "stored content of {} octets with max_message_size {MAX_MESSAGE_SIZE}",
        content.len()
    );
    if peer != TRUSTED_PEER {
        for r in &message.recipients {
            assert_eq!(
                r.address.domain_str(),
                INTERNAL_DOMAIN,
                "external recipient {} accepted from {peer}, outside relay_networks",
                r.address
            );
        }
        assert_eq!(
            message.client.ip,
            peer.ip(),
            "client address replaced (XFORWARD?) for {peer}, outside xforward_hosts"
        );
    }
}

/// Asserts `text` is empty or CRLF-terminated lines of at most
/// [`MAX_TEXT_LINE`] octets each, CRLF included, with no bare CR or LF.
fn check_crlf_text(text: &[u8], what: &str) {
    let mut rest = text;
    while !rest.is_empty() {
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            panic!("{what} does not end with CRLF: {}", escape(tail(rest)));
        };
        let line = &rest[..=nl];
        rest = &rest[nl + 1..];
        assert!(
            line.len() >= 2 && line[line.len() - 2] == b'\r',
            "bare LF in {what}: {}",
            escape(tail(line))
        );
        assert!(
            !line[..line.len() - 2].contains(&b'\r'),
            "bare CR in {what}: {}",
            escape(tail(line))
        );
        assert!(
            line.len() <= MAX_TEXT_LINE,
            "line of {} octets in {what}",
            line.len()
        );
    }
}

/// Reads `input` as message data with
/// [`SmtpStream::read_data`](super::io::SmtpStream::read_data), delivered
/// in one piece and in 7-octet pieces, and checks both against a model.
///
/// Invariants: the read finishes; it ends (`Complete`) exactly when the
/// input has a `.` line that follows a CRLF (or the start) and ends with
/// CRLF, right after the first such line, and otherwise reports `Eof`;
/// complete data without a problem is the prefix followed by dot-unstuffed
/// CRLF lines of at most 1000 octets, no bare CR or LF, within `max_size`,
/// and is accepted exactly when the model accepts it, with the same
/// content, `Received:` count and 8-bit flag.
pub fn data_reader_on_bytes(input: &[u8]) {
    let expected = model_data(input, DATA_MAX_SIZE);
    RUNTIME.with(|rt| {
        rt.block_on(async {
            check_read_data(input, input.len().max(1), &expected).await;
            check_read_data(input, 7, &expected).await;
        })
    });
}

/// What RFC 5321 DATA should make of an input.
#[derive(Debug)]
struct ModelData {
    /// Offset just past the end-of-data line, if there is one.
    end: Option<usize>,
    /// No bare CR/LF, no line over 1000 octets, not over the size.
    accepted: bool,
    content: Vec<u8>,
    received_headers: usize,
    eight_bit: bool,
}

/// A straightforward line-by-line reading of the whole input.
fn model_data(input: &[u8], max_size: usize) -> ModelData {
    let mut model = ModelData {
        end: None,
        accepted: true,
        content: Vec::new(),
        received_headers: 0,
        eight_bit: false,
    };
    let mut pos = 0;
    let mut after_crlf = true;
    let mut in_headers = true;
    while let Some(i) = memchr::memchr(b'\n', &input[pos..]) {
        let line = &input[pos..pos + i + 1];
        pos += i + 1;
        let crlf = line.ends_with(b"\r\n");
        if after_crlf && line == b".\r\n" {
            model.end = Some(pos);
            break;
        }
        let text = &line[..line.len() - if crlf { 2 } else { 1 }];
        // The limit is on the line as sent, less a transparency dot.
        let sent = line.len() - usize::from(line.first() == Some(&b'.'));
        if !crlf || text.contains(&b'\r') || sent > MAX_TEXT_LINE {
            model.accepted = false;
        }
        if in_headers {
            if text.is_empty() {
                in_headers = false;
            } else if line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:") {
                model.received_headers += 1;
            }
        }
        if model.accepted {
            let payload = line.strip_prefix(b".").unwrap_or(line);
            if model.content.len() + payload.len() > max_size {
                model.accepted = false;
            } else {
                model.eight_bit |= !payload.is_ascii();
                model.content.extend_from_slice(payload);
            }
        }
        after_crlf = crlf;
    }
    model
}

async fn check_read_data(input: &[u8], pipe: usize, model: &ModelData) {
    let (mut client, server) = tokio::io::duplex(pipe);
    let send = async {
        let _ = client.write_all(input).await;
        let _ = client.shutdown().await;
    };
    let read = async {
        let mut stream = SmtpStream::new(server, HANG_LIMIT);
        let end = stream
            .read_data(DATA_PREFIX.to_vec(), DATA_MAX_SIZE, input.len())
            .await
            .expect("an in-memory pipe does not fail");
        let buffered = stream.discard_input();
        let mut server = stream.into_inner();
        let mut unread = Vec::new();
        let _ = server.read_to_end(&mut unread).await;
        (end, buffered + unread.len())
    };
    let Ok(((), (end, left))) =
        tokio::time::timeout(HANG_LIMIT, async { tokio::join!(send, read) }).await
    else {
        panic!("read_data did not finish within {HANG_LIMIT:?} after its input ended");
    };
    let data = match end {
        DataEnd::Complete(data) => data,
        DataEnd::Eof => {
            assert_eq!(
                model.end, None,
                "read_data hit EOF but the input ends data at octet {:?} ({pipe}-octet reads)",
                model.end
            );
            return;
        }
        DataEnd::Timeout => panic!("read_data timed out although its input was closed"),
        DataEnd::Shutdown => panic!("read_data saw a shutdown although none was asked for"),
    };
    let Some(model_end) = model.end else {
        panic!("read_data completed but the input has no <CRLF>.<CRLF> ({pipe}-octet reads)");
    };
    assert_eq!(
        input.len() - left,
        model_end,
        "read_data stopped at octet {} but data ends at octet {model_end} ({pipe}-octet reads)",
        input.len() - left
    );
    if data.problem.is_some() {
        assert!(
            !model.accepted,
            "read_data refused the data ({:?}) but it is valid ({pipe}-octet reads)",
            data.problem
        );
        assert!(data.content.is_empty(), "refused content was kept");
        return;
    }
    assert!(
        model.accepted,
        "read_data accepted data with a bare CR/LF, a long line or too many octets \
         ({pipe}-octet reads)"
    );
    assert!(
        data.content.starts_with(DATA_PREFIX),
        "content lost its prefix"
    );
    let body = &data.content[DATA_PREFIX.len()..];
    check_crlf_text(body, "accepted message data");
    assert!(
        body.len() <= DATA_MAX_SIZE,
        "accepted {} octets with max_size {DATA_MAX_SIZE}",
        body.len()
    );
    assert!(
        body == model.content.as_slice(),
        "content differs from the model ({pipe}-octet reads)"
    );
    assert_eq!(
        data.received_headers, model.received_headers,
        "Received: header count ({pipe}-octet reads)"
    );
    assert_eq!(
        data.eight_bit, model.eight_bit,
        "8-bit flag ({pipe}-octet reads)"
    );
}

fn tail(s: &[u8]) -> &[u8] {
    &s[s.len().saturating_sub(80)..]
}

fn escape(s: &[u8]) -> String {
    format!("\"{}\"", s.escape_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], peer: SocketAddr) -> SessionReport {
        RUNTIME.with(|rt| rt.block_on(check_session(input, peer)))
    }

    const VALID: &[u8] = b"EHLO client.example\r\n\
        MAIL FROM:<alice@client.example> SIZE=100 BODY=8BITMIME\r\n\
        RCPT TO:<bob@corp.example> NOTIFY=FAILURE,DELAY\r\n\
        RCPT TO:<carol@elsewhere.example>\r\n\
        DATA\r\n\
        Subject: hello\r\n\r\n..dot-stuffed\r\nbody\r\n.\r\n\
        QUIT\r\n";

    #[test]
    fn valid_transaction_is_queued_and_relay_is_controlled() {
        session_on_bytes(VALID);
        let trusted = run(VALID, TRUSTED_PEER);
        assert_eq!(trusted.messages.len(), 1, "{:?}", trusted.replies);
        assert_eq!(trusted.messages[0].recipients.len(), 2);
        assert!(trusted.replies.last().unwrap().starts_with(b"221 "));
        let content = &trusted.messages[0].content;
        assert!(content.ends_with(b"Subject: hello\r\n\r\n.dot-stuffed\r\nbody\r\n"));

        let untrusted = run(VALID, UNTRUSTED_PEER);
        assert_eq!(untrusted.messages.len(), 1, "{:?}", untrusted.replies);
        assert_eq!(untrusted.messages[0].recipients.len(), 1);
        assert!(
            untrusted
                .replies
                .iter()
                .any(|r| r.starts_with(b"550 5.7.1"))
        );
    }

    #[test]
    fn smuggled_message_is_refused_whole() {
        let input = b"EHLO c\r\nMAIL FROM:<a@corp.example>\r\nRCPT TO:<b@corp.example>\r\n\
            DATA\r\nSubject: outer\r\n\r\nx\n.\r\nMAIL FROM:<evil@x.example>\r\n\
            RCPT TO:<victim@corp.example>\r\nDATA\r\nsmuggled\r\n.\r\nQUIT\r\n";
        session_on_bytes(input);
        let report = run(input, TRUSTED_PEER);
        assert!(report.messages.is_empty(), "{:?}", report.replies);
        assert!(report.replies.iter().any(|r| r.starts_with(b"550 5.6.0")));
    }

    #[test]
    fn pipelined_input_after_starttls_is_not_answered() {
        let input =
            b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<a@corp.example>\r\nRCPT TO:<b@corp.example>\r\n";
        session_on_bytes(input);
        let report = run(input, TRUSTED_PEER);
        assert!(report.tls_started);
        assert_eq!(
            report.replies.last().unwrap().as_slice(),
            b"220 2.0.0 Ready to start TLS"
        );
    }

    #[test]
    fn xforward_and_limits() {
        let mut input = b"EHLO filter\r\nXFORWARD ADDR=192.0.2.7 NAME=client+2Eexample\r\n\
            MAIL FROM:<>\r\n"
            .to_vec();
        for i in 0..7 {
            input.extend_from_slice(format!("RCPT TO:<u{i}@corp.example>\r\n").as_bytes());
        }
        input.extend_from_slice(b"DATA\r\n");
        input.extend_from_slice(&[b'y'; 1200]);
        input.extend_from_slice(b"\r\n.\r\nRSET\r\n");
        session_on_bytes(&input);
        let report = run(&input, TRUSTED_PEER);
        assert!(report.messages.is_empty());
        assert!(report.replies.iter().any(|r| r.starts_with(b"452 ")));
        assert!(report.replies.iter().any(|r| r.starts_with(b"500 5.5.2")));
    }

    #[test]
    fn garbage_and_edge_inputs() {
        for input in [
            &b""[..],
            b"\r\n",
            b"\n\n\n",
            b"\x00\xff\xfe garbage \r\r\n",
            b"DATA\r\nDATA\r\n.\r\n",
            b"HELO\r\nEHLO \r\nMAIL FROM:<\r\nRCPT TO:<>\r\nVRFY x\r\nHELP\r\nNOOP\r\n",
            b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@corp.example>\r\nDATA\r\nno end",
        ] {
            session_on_bytes(input);
        }
        let long = [b'A'; 3000];
        session_on_bytes(&long);
        let errors = b"BOGUS\r\n".repeat(30);
        let report = run(&errors, TRUSTED_PEER);
        assert!(report.replies.last().unwrap().starts_with(b"421 "));
    }

    #[test]
    fn reply_checks_catch_bad_output() {
        let good =
            b"220 mx ESMTP\r\n250-mx\r\n250 SIZE 1\r\n220 2.0.0 Ready to start TLS\r\n\x15\x03\x03";
        assert!(check_replies(good).tls_started);
        for bad in [
            &b"250 not the greeting\r\n"[..],
            b"220 mx\r\n250 ok\n",
            b"220 mx\r\n250 o\rk\r\n",
            b"220 mx\r\n25O ok\r\n",
            b"220 mx\r\n600 ok\r\n",
            b"220 mx\r\n250-a\r\n251 b\r\n",
            b"220 mx\r\n250-a\r\n",
            b"220 mx\r\n221 bye\r\n250 ok\r\n",
            b"220 mx\r\n250 no CRLF",
            b"220 mx\r\n220 2.0.0 Ready to start TLS\r\n250 ok\r\n",
        ] {
            let caught = std::panic::catch_unwind(|| check_replies(bad)).is_err();
            assert!(caught, "not caught: {}", escape(bad));
        }
        let long = [b"220 ".as_slice(), &[b'x'; 600], b"\r\n"].concat();
        assert!(std::panic::catch_unwind(|| check_replies(&long)).is_err());
    }

    #[test]
    fn data_model() {
        let m = model_data(b"a\r\n..b\r\n.\r\nrest", 100);
        assert_eq!(m.end, Some(11));
        assert!(m.accepted);
        assert_eq!(m.content, b"a\r\n.b\r\n");
        for refused in [&b"a\n.\r\nb\r\n.\r\n"[..], b"a\rb\r\n.\r\n"] {
            assert!(!model_data(refused, 100).accepted);
        }
        assert_eq!(model_data(b"a\n.\r\nb\r\n.\r\n", 100).end, Some(11));
        assert!(!model_data(b"0123456789\r\n.\r\n", 5).accepted);
        assert_eq!(model_data(b"no end\r\n", 100).end, None);
    }

    #[test]
    fn data_reader_agrees_with_the_model() {
        for input in [
            &b""[..],
            b".\r\n",
            b"Received: a\r\nSubject: x\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n",
            b"a\r\n\n.\n.\r\nrest",
            b"a\n.\r\nb\r\n.\r\n",
            b"a\r.\r\n\r\n.\r\n",
            "8-bit: é\r\n.\r\n".as_bytes(),
        ] {
            data_reader_on_bytes(input);
        }
        let mut long = vec![b'x'; 2500];
        long.extend_from_slice(b"\r\n.\r\n");
        data_reader_on_bytes(&long);
        let big = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n".repeat(80);
        data_reader_on_bytes(&[&big[..], b".\r\n"].concat());
        // A stuffed dot does not count against the line limit: 1001 octets
        // sent are fine, 1002 are not (the fuzzer's first find after the
        // rule changed).
        for xs in [998, 999] {
            let mut dotted = vec![b'.'];
            dotted.extend(std::iter::repeat_n(b'x', xs));
            dotted.extend_from_slice(b"\r\n.\r\n");
            data_reader_on_bytes(&dotted);
        }
    }
}

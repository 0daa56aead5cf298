//! Delivery of a batch of messages that share a next hop.
//!
//! The addresses of the hop are tried in order. One connection carries as
//! many messages as it can (up to `max_messages_per_connection`); when a
//! connection fails, the message in flight is deferred (the server may have
//! taken it, so it is not resent at once) and the rest move on to the next
//! address. The hop's TLS level (see [`super::hop_tls`]) is decided once
//! per delivery; at `may`, a failed STARTTLS is retried once in plaintext,
//! at `encrypt` and `verify` an address that falls short is skipped with
//! the reason, and nothing goes out in clear.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sealpost_policy::EmailAddress;
use sealpost_store::{ClientInfo, DsnReturn, Notify};

use super::{
    DeliveryOutcome, OutboundConfig,
    client::{Client, ClientError, RcptReply, RcptSpec, Response, Transaction},
    eightbit::{self, SevenBit},
    hop_tls::TlsContext,
    lookup::{Lookup, LookupError, NextHop, Target},
    tls_policy::TlsLevel,
};

/// A message to deliver to some of its recipients.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub sender: Option<EmailAddress>,
    pub recipients: Vec<OutgoingRecipient>,
    pub content: Arc<Vec<u8>>,
    pub body_8bit: bool,
    pub smtputf8: bool,
    pub env_id: Option<String>,
    pub ret: Option<DsnReturn>,
    /// The client that handed us the message, forwarded with XFORWARD to
    /// next hops that offer it; `None` for reports we generated.
    pub client: Option<ClientInfo>,
    /// Its 7-bit form (converted before signing), for a next hop without
    /// 8BITMIME; `None`: converted here, unsigned, if one needs it.
    pub seven_bit: Option<Arc<SevenBit>>,
}

/// One recipient of an [`OutgoingMessage`].
#[derive(Debug, Clone)]
pub struct OutgoingRecipient {
    pub address: EmailAddress,
    /// The original recipient address from ORCPT, decoded.
    pub orcpt: Option<String>,
    pub notify: Notify,
}

/// How long an idle outbound connection is kept for reuse (Postfix keeps
/// them 2 s by default; our batches follow each other closely).
const IDLE_LIMIT: Duration = Duration::from_secs(5);
/// Most idle connections kept per next hop.
const MAX_IDLE_PER_HOP: usize = 8;

/// The outbound side of the gateway. One per process; shared by workers.
#[derive(Debug)]
pub struct Delivery {
    config: OutboundConfig,
    lookup: Lookup,
    tls: TlsContext,
    /// Idle connections by next hop, for the next batch to reuse.
    idle: Mutex<HashMap<NextHop, Vec<IdleClient>>>,
}

/// A connection waiting for the next batch to its hop.
#[derive(Debug)]
struct IdleClient {
    client: Client,
    since: Instant,
    /// Messages it has carried (it is renewed at
    /// `max_messages_per_connection`).
    sent: usize,
    /// The TLS level it was opened at: reused only at that level.
    level: TlsLevel,
}

impl Delivery {
    pub fn new(config: OutboundConfig) -> Self {
        let tls = TlsContext::new(&config);
        Delivery {
            lookup: Lookup::new(config.dns_servers.clone(), config.mx_port)
                .with_own_name(&config.hostname),
            config,
            tls,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Delivers `messages` to `hop`. Returns, for each message, an outcome
    /// per recipient in the order given.
    pub async fn deliver(
        &self,
        hop: &NextHop,
        messages: &[OutgoingMessage],
    ) -> Vec<Vec<DeliveryOutcome>> {
        let hop_tls = self.tls.for_hop(hop, &self.lookup).await;
        self.deliver_at(hop, messages, hop_tls).await
    }

    /// [`Delivery::deliver`] over verified TLS only (the `verify` level
    /// whatever the policy says, MTA-STS's MX restriction kept), for
    /// content that must never go over anything less: a hop that cannot
    /// give it defers every message with `451 4.7.5` and sends nothing.
    pub async fn deliver_verified(
        &self,
        hop: &NextHop,
        messages: &[OutgoingMessage],
        why: &str,
    ) -> Vec<Vec<DeliveryOutcome>> {
        let mut hop_tls = self.tls.for_hop(hop, &self.lookup).await;
        hop_tls.level = TlsLevel::Verify;
        hop_tls.source = why.to_owned();
        self.deliver_at(hop, messages, hop_tls).await
    }

    async fn deliver_at(
        &self,
        hop: &NextHop,
        messages: &[OutgoingMessage],
        hop_tls: super::hop_tls::HopTls,
    ) -> Vec<Vec<DeliveryOutcome>> {
        let mut results: Vec<Option<Vec<DeliveryOutcome>>> = vec![None; messages.len()];
        let mut next = 0;
        let mut cached = self.take_idle(hop, hop_tls.level);
        let mut targets: Option<Vec<Target>> = None;
        let mut target_idx = 0;
        // The reply recorded when no address takes the rest.
        let mut last_error = String::from("451 4.4.1 no attempt made");
        while next < messages.len() {
            let reused = cached.is_some();
            let (mut client, mut sent) = match cached.take() {
                Some(idle) => idle,
                None => {
                    if targets.is_none() {
                        match self.lookup.targets(hop).await {
                            Ok(t) if !t.is_empty() => {
                                let domain = super::TlsPolicy::key(hop);
                                let allowed = self.tls.allowed(&hop_tls, domain, t);
                                if allowed.is_empty() {
                                    last_error = format!(
                                        "451 4.7.5 none of the MX hosts of {domain} is named by {}",
                                        hop_tls.source
                                    );
                                    break;
                                }
                                targets = Some(allowed);
                            }
                            failure => {
                                let outcome = lookup_failure(hop, failure.err());
                                fill(&mut results, messages, |_| outcome.clone());
                                break;
                            }
                        }
                    }
                    let Some(target) = targets.as_ref().and_then(|t| t.get(target_idx)) else {
                        break;
                    };
                    match self.tls.connect(target, &self.config, &hop_tls).await {
                        Ok(c) => (c, 0),
                        Err(e) => {
                            tracing::info!(target = %target.addr, error = %log_text(&e), "next hop address failed");
                            last_error = e;
                            target_idx += 1;
                            continue;
                        }
                    }
                }
            };
            // As many messages as this connection may still carry, in one
            // pipelined run (see `Client::send_all`).
            let room = self
                .config
                .max_messages_per_connection
                .saturating_sub(sent)
                .max(1);
            let end = messages.len().min(next + room);
            let forms: Vec<Form> = messages[next..end]
                .iter()
                .map(|m| Form::for_server(m, &client))
                .collect();
            let transactions: Vec<Transaction<'_>> = messages[next..end]
                .iter()
                .zip(&forms)
                .map(|(m, form)| transaction(m, form))
                .collect();
            let (mut done, mut error) = client.send_all(&transactions).await;
            let remote = client.server.clone();
            let dsn_passed = client.caps.dsn;
            if reused {
                closing_421(&mut done, &mut error, client.data_started(), &remote);
            }
            let stale = reused && error.is_some() && client.data_started() <= done.len();
            for (replies, final_reply) in done {
                results[next] = Some(outcomes(replies, final_reply.as_ref(), &remote, dsn_passed));
                next += 1;
                sent += 1;
            }
            let healthy = error.is_none();
            if let Some(e) = error.as_ref().filter(|_| stale) {
                // A reused connection the peer had closed meanwhile (its
                // idle timeout), found out before any of the message in
                // flight was sent: the server cannot have taken it, so it
                // goes at once over a fresh connection, not after a retry
                // interval. At most once per call: only the first
                // connection is a reused one.
                tracing::info!(server = %remote, error = %log_text(e), "reused connection was stale; sending again over a fresh one");
            } else if let Some(e) = error {
                // The message in flight: the server may have taken it, so
                // it waits for a retry; the rest go on over another
                // connection.
                tracing::info!(server = %remote, error = %log_text(&e), "connection failed during delivery");
                last_error = format!("451 4.4.1 {e}");
                if let Some(message) = messages.get(next) {
                    results[next] = Some(
                        message
                            .recipients
                            .iter()
                            .map(|_| deferred(format!("451 4.4.2 {e}"), Some(remote.clone())))
                            .collect(),
                    );
                    next += 1;
                    sent += 1;
                }
            }
            if !healthy {
                // A fresh connection failing moves on to the next address;
                // a reused one failing says nothing about the first.
                if !reused {
                    target_idx += 1;
                }
            } else if sent < self.config.max_messages_per_connection {
                self.put_idle(hop, client, sent, hop_tls.level);
            } else {
                client.quit().await;
            }
        }
        fill(&mut results, messages, |_| {
            deferred(last_error.clone(), None)
        });
        results.into_iter().map(|r| r.unwrap_or_default()).collect()
    }

    /// An idle connection to `hop` left by an earlier batch that the server
    /// has not closed meanwhile. Reusing one saves the TCP and TLS
    /// handshakes and EHLO, which dominate small messages.
    fn take_idle(&self, hop: &NextHop, level: TlsLevel) -> Option<(Client, usize)> {
        let (mut candidates, expired): (Vec<_>, Vec<_>) = {
            let mut pool = self.idle.lock().expect("idle pool lock");
            let list = pool.get_mut(hop)?;
            let (live, expired): (Vec<_>, Vec<_>) =
                list.drain(..).partition(|c| c.since.elapsed() < IDLE_LIMIT);
            // Connections opened at another TLS level stay for batches
            // at that level.
            let (same, other): (Vec<_>, Vec<_>) = live.into_iter().partition(|c| c.level == level);
            *list = other;
            (same, expired)
        };
        for old in expired {
            tokio::spawn(old.client.quit());
        }
        // Newest first; the rest go back for other batches.
        let mut found = None;
        while let Some(idle) = candidates.pop() {
            let mut client = idle.client;
            if client.is_reusable() {
                found = Some((client, idle.sent));
                break;
            }
        }
        if !candidates.is_empty() {
            let mut pool = self.idle.lock().expect("idle pool lock");
            pool.entry(hop.clone()).or_default().extend(candidates);
        }
        found
    }

    /// Keeps a healthy connection for the next batch to the same hop;
    /// connections past their idle time or over the per-hop limit are
    /// closed politely (QUIT) in the background.
    fn put_idle(&self, hop: &NextHop, client: Client, sent: usize, level: TlsLevel) {
        let mut surplus = Vec::new();
        {
            let mut pool = self.idle.lock().expect("idle pool lock");
            let list = pool.entry(hop.clone()).or_default();
            let (keep, expired): (Vec<_>, Vec<_>) =
                list.drain(..).partition(|c| c.since.elapsed() < IDLE_LIMIT);
            *list = keep;
            surplus.extend(expired.into_iter().map(|c| c.client));
            if list.len() < MAX_IDLE_PER_HOP {
                list.push(IdleClient {
                    client,
                    since: Instant::now(),
                    sent,
                    level,
                });
            } else {
                surplus.push(client);
            }
        }
        for client in surplus {
            tokio::spawn(client.quit());
        }
    }

    /// Connects to `target` at the default level (`may` unless
    /// configured otherwise).
    #[cfg(test)]
    async fn connect(&self, target: &Target) -> Result<Client, String> {
        let hop = super::hop_tls::HopTls {
            level: TlsLevel::May,
            source: "test".into(),
            enforced_mx: None,
            testing_mx: None,
        };
        self.tls.connect(target, &self.config, &hop).await
    }
}

/// On a reused connection, a `421` (the server is closing the connection,
/// as Postfix does when its idle timer fires) answering a transaction
/// before its data is the same as a connection found closed: that
/// transaction and those after it lose their outcomes and `error` is set,
/// so they go again over a fresh connection. Only when none of them began
/// to send data: a message the server may have taken is never resent.
fn closing_421(
    done: &mut Vec<super::client::Sent>,
    error: &mut Option<ClientError>,
    data_started: usize,
    server: &str,
) {
    let closing = done.iter().position(|(replies, final_reply)| {
        final_reply.is_none()
            && !replies.is_empty()
            && replies
                .iter()
                .all(|r| matches!(r, RcptReply::Rejected(resp) if resp.code == 421))
    });
    if let Some(p) = closing.filter(|&p| data_started <= p) {
        let reply = match &done[p].0[0] {
            RcptReply::Rejected(resp) => resp.one_line(),
            _ => String::new(),
        };
        done.truncate(p);
        error.get_or_insert(ClientError::Io(
            server.to_owned(),
            format!("closing: {reply}"),
        ));
    }
}

/// The content a message goes to one server with.
enum Form {
    /// As it is: the server takes 8-bit data, or the message is 7-bit.
    AsIs,
    /// Its 7-bit form, for a server without 8BITMIME (RFC 6152 §3).
    SevenBit(Arc<Vec<u8>>),
    /// It cannot be made 7-bit for a server that needs it: the reply that
    /// fails its recipients (it is never sent 8-bit).
    Refused(String),
}

impl Form {
    fn for_server(m: &OutgoingMessage, client: &Client) -> Form {
        // The scan only for a server that needs it.
        if client.caps.eight_bit_mime || (!m.body_8bit && m.content.is_ascii()) {
            return Form::AsIs;
        }
        let made = match &m.seven_bit {
            Some(form) => form.get(),
            None => eightbit::to_seven_bit(&m.content).map(Arc::new),
        };
        match made {
            Ok(content) => Form::SevenBit(content),
            Err(e) => Form::Refused(e.reply(&client.server)),
        }
    }
}

/// The SMTP transaction that hands `m` to the next hop, in `form`.
fn transaction<'a>(m: &'a OutgoingMessage, form: &'a Form) -> Transaction<'a> {
    let mut dsn = Vec::new();
    if let Some(ret) = m.ret {
        dsn.push(match ret {
            DsnReturn::Full => "RET=FULL".to_owned(),
            DsnReturn::Headers => "RET=HDRS".to_owned(),
        });
    }
    if let Some(env_id) = &m.env_id {
        dsn.push(format!("ENVID={}", xtext(env_id)));
    }
    Transaction {
        sender: m.sender.as_ref().map_or("", EmailAddress::as_str),
        recipients: m
            .recipients
            .iter()
            .map(|r| RcptSpec {
                address: r.address.as_str(),
                dsn_params: rcpt_dsn_params(r),
            })
            .collect(),
        content: match form {
            Form::SevenBit(content) => content,
            Form::AsIs | Form::Refused(_) => &m.content,
        },
        body_8bit: m.body_8bit && matches!(form, Form::AsIs),
        smtputf8: m.smtputf8
            || m.recipients.iter().any(|r| r.address.is_utf8())
            || m.sender.as_ref().is_some_and(EmailAddress::is_utf8),
        dsn_params: (!dsn.is_empty()).then(|| dsn.join(" ")),
        xforward: m.client.as_ref().map(xforward_lines).unwrap_or_default(),
        refusal: match form {
            Form::Refused(why) => Some(why.clone()),
            Form::AsIs | Form::SevenBit(_) => None,
        },
    }
}

/// A recipient's outcome from its reply and the reply after the data.
fn outcomes(
    replies: Vec<RcptReply>,
    final_reply: Option<&Response>,
    remote: &str,
    dsn_passed: bool,
) -> Vec<DeliveryOutcome> {
    replies
        .into_iter()
        .map(|r| match r {
            RcptReply::Refused(why) => DeliveryOutcome::Failed {
                reply: why,
                remote: Some(remote.to_owned()),
            },
            RcptReply::Rejected(resp) => classify(&resp, remote, dsn_passed),
            RcptReply::Accepted(_) => match final_reply {
                Some(resp) => classify(resp, remote, dsn_passed),
                None => deferred(
                    "451 4.4.2 no reply after DATA".into(),
                    Some(remote.to_owned()),
                ),
            },
        })
        .collect()
}

fn classify(resp: &Response, remote: &str, dsn_passed: bool) -> DeliveryOutcome {
    let reply = resp.one_line();
    let remote = remote.to_owned();
    if resp.is_success() {
        DeliveryOutcome::Delivered {
            reply,
            remote,
            dsn_passed,
        }
    } else if (500..600).contains(&resp.code) {
        DeliveryOutcome::Failed {
            reply,
            remote: Some(remote),
        }
    } else {
        // 4xx, or a code that has no business here (a 3xx after the
        // data): try again later rather than bounce or call it delivered.
        DeliveryOutcome::Deferred {
            reply,
            remote: Some(remote),
        }
    }
}

fn deferred(reply: String, remote: Option<String>) -> DeliveryOutcome {
    DeliveryOutcome::Deferred { reply, remote }
}

/// Gives every message still without an outcome `f` for each recipient.
fn fill(
    results: &mut [Option<Vec<DeliveryOutcome>>],
    messages: &[OutgoingMessage],
    f: impl Fn(&OutgoingRecipient) -> DeliveryOutcome,
) {
    for (r, m) in results.iter_mut().zip(messages) {
        if r.is_none() {
            *r = Some(m.recipients.iter().map(&f).collect());
        }
    }
}

/// The outcome for every recipient when the next hop cannot be resolved.
fn lookup_failure(hop: &NextHop, error: Option<LookupError>) -> DeliveryOutcome {
    match error {
        Some(LookupError::Permanent(reply)) => DeliveryOutcome::Failed {
            reply,
            remote: None,
        },
        Some(LookupError::Temporary(m)) => deferred(format!("451 4.4.3 {m}"), None),
        None => deferred(format!("451 4.4.3 no address for {hop}"), None),
    }
}

fn rcpt_dsn_params(r: &OutgoingRecipient) -> Option<String> {
    let mut params = Vec::new();
    let bits = r.notify.bits();
    if bits != 0 {
        let notify: Vec<&str> = if bits & Notify::NEVER != 0 {
            vec!["NEVER"]
        } else {
            [
                (Notify::SUCCESS, "SUCCESS"),
                (Notify::FAILURE, "FAILURE"),
                (Notify::DELAY, "DELAY"),
            ]
            .iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, n)| *n)
            .collect()
        };
        params.push(format!("NOTIFY={}", notify.join(",")));
    }
    if let Some(orcpt) = &r.orcpt {
        params.push(format!("ORCPT=rfc822;{}", xtext(orcpt)));
    }
    (!params.is_empty()).then(|| params.join(" "))
}

/// XFORWARD commands for `client`, each kept under the 512-octet command
/// limit as Postfix does (a long NAME and HELO go in separate commands).
fn xforward_lines(client: &ClientInfo) -> Vec<String> {
    let addr = match client.ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("IPv6:{v6}"),
    };
    let mut attrs = vec![
        format!("ADDR={}", xtext(&addr)),
        format!("PROTO={}", xtext(&client.protocol)),
    ];
    if let Some(name) = &client.name {
        attrs.push(format!("NAME={}", xtext(name)));
    }
    if let Some(helo) = &client.helo {
        attrs.push(format!("HELO={}", xtext(helo)));
    }
    let mut lines: Vec<String> = Vec::new();
    for attr in attrs {
        match lines.last_mut() {
            Some(line) if line.len() + attr.len() + 3 <= 512 => {
                line.insert(line.len() - 2, ' ');
                line.insert_str(line.len() - 2, &attr);
            }
            _ => lines.push(format!("XFORWARD {attr}\r\n")),
        }
    }
    lines
}

/// RFC 3461 §4 xtext: `+XX` for '+', '=', and anything outside `!`..`~`.
pub fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// An error for a log line: its text may quote the remote server, so it is
/// made one clean, bounded line first.
pub(super) fn log_text(e: &impl std::fmt::Display) -> String {
    sealpost_policy::text::one_line(&e.to_string(), 500)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// Answers one line read from `io` with `reply`.
    async fn answer(io: &mut BufReader<tokio::net::TcpStream>, reply: &[u8]) {
        let mut line = String::new();
        io.read_line(&mut line).await.unwrap();
        io.get_mut().write_all(reply).await.unwrap();
    }

    #[tokio::test]
    async fn a_stalled_starttls_falls_back_to_plaintext() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // First connection: STARTTLS offered and agreed to, then no
            // handshake at all.
            let mut first = BufReader::new(listener.accept().await.unwrap().0);
            first.get_mut().write_all(b"220 mx\r\n").await.unwrap();
            answer(&mut first, b"250-mx\r\n250 STARTTLS\r\n").await;
            answer(&mut first, b"220 go ahead\r\n").await;
            // Second: a plain session.
            let mut second = BufReader::new(listener.accept().await.unwrap().0);
            second.get_mut().write_all(b"220 mx\r\n").await.unwrap();
            answer(&mut second, b"250-mx\r\n250 STARTTLS\r\n").await;
            drop(first);
            second
        });
        let delivery = Delivery::new(OutboundConfig {
            command_timeout: Duration::from_millis(300),
            ..OutboundConfig::default()
        });
        let target = Target {
            name: "mx.example".into(),
            addr,
        };
        let client = tokio::time::timeout(Duration::from_secs(10), delivery.connect(&target))
            .await
            .expect("connect finishes")
            .expect("a plaintext session after the stalled handshake");
        assert!(!client.tls);
        drop(server.await.unwrap());
    }

    /// An idle connection is reused only at the TLS level it was opened
    /// at: content that needs verified TLS never rides a connection opened
    /// for `may` (possibly plaintext).
    #[tokio::test]
    async fn idle_connections_are_kept_apart_by_tls_level() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            for _ in 0..2 {
                let mut c = BufReader::new(listener.accept().await.unwrap().0);
                c.get_mut().write_all(b"220 mx\r\n").await.unwrap();
                answer(&mut c, b"250 mx\r\n").await;
                held.push(c);
            }
            // Keep both open until the test is done.
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(held);
        });
        let delivery = Delivery::new(OutboundConfig::default());
        let target = Target {
            name: "mx.example".into(),
            addr,
        };
        let hop = NextHop::Mx("example".into());
        for level in [TlsLevel::May, TlsLevel::None] {
            let client = delivery.connect(&target).await.unwrap();
            delivery.put_idle(&hop, client, 1, level);
        }
        assert!(delivery.take_idle(&hop, TlsLevel::Verify).is_none());
        assert!(delivery.take_idle(&hop, TlsLevel::Encrypt).is_none());
        assert!(delivery.take_idle(&hop, TlsLevel::May).is_some());
        assert!(
            delivery.take_idle(&hop, TlsLevel::May).is_none(),
            "taken once"
        );
        assert!(
            delivery.take_idle(&hop, TlsLevel::None).is_some(),
            "the other level's connection was kept"
        );
        server.abort();
    }

    #[test]
    fn a_421_before_the_data_on_a_reused_connection_is_a_stale_one() {
        let resp = |code: u16| Response {
            code,
            lines: vec!["x".into()],
        };
        let sent = || {
            vec![
                (vec![RcptReply::Accepted(resp(250))], Some(resp(250))),
                (vec![RcptReply::Rejected(resp(421))], None),
            ]
        };
        // The first message's data went out; the second's never did.
        let (mut done, mut error) = (sent(), None);
        closing_421(&mut done, &mut error, 1, "mx");
        assert_eq!(done.len(), 1);
        assert!(error.is_some());
        // A later message's data went out after the 421 (no server does
        // that): nothing is taken back, the 421 stands.
        let (mut done, mut error) = (sent(), None);
        closing_421(&mut done, &mut error, 2, "mx");
        assert_eq!(done.len(), 2);
        assert!(error.is_none());
    }

    #[test]
    fn only_2xx_delivers_and_only_5xx_bounces() {
        let kind = |code: u16| {
            let resp = Response {
                code,
                lines: vec!["x".into()],
            };
            match classify(&resp, "mx", false) {
                DeliveryOutcome::Delivered { .. } => "delivered",
                DeliveryOutcome::Deferred { .. } => "deferred",
                DeliveryOutcome::Failed { .. } => "failed",
            }
        };
        assert_eq!(kind(250), "delivered");
        assert_eq!(kind(251), "delivered");
        // A 3xx after the data answers nothing we asked: retry later.
        assert_eq!(kind(354), "deferred");
        assert_eq!(kind(451), "deferred");
        assert_eq!(kind(550), "failed");
    }

    #[test]
    fn xforward_lines_stay_under_the_command_limit() {
        let client = ClientInfo {
            ip: "2001:db8::7".parse().unwrap(),
            name: Some("ws12.corp.example".into()),
            helo: Some("ws12 local".into()),
            protocol: "ESMTP".into(),
        };
        assert_eq!(
            xforward_lines(&client),
            vec![
                "XFORWARD ADDR=IPv6:2001:db8::7 PROTO=ESMTP NAME=ws12.corp.example HELO=ws12+20local\r\n"
            ]
        );
        let long = ClientInfo {
            name: Some("n".repeat(250)),
            helo: Some("h".repeat(250)),
            ..client
        };
        let lines = xforward_lines(&long);
        assert_eq!(lines.len(), 2);
        assert!(
            lines
                .iter()
                .all(|l| l.len() <= 512 && l.starts_with("XFORWARD ") && l.ends_with("\r\n"))
        );
    }

    #[test]
    fn xtext_and_rcpt_params() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
        let r = OutgoingRecipient {
            address: EmailAddress::parse("x@y.example").unwrap(),
            orcpt: Some("X@Y.example".into()),
            notify: Notify::from_bits(Notify::SUCCESS | Notify::FAILURE),
        };
        assert_eq!(
            rcpt_dsn_params(&r).unwrap(),
            "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;X@Y.example"
        );
    }
}

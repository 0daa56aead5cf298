//! One SMTP session: the state of a connection and the dispatch of its
//! commands. Framing lives in [`super::io`]; the envelope verbs, XFORWARD
//! and DATA each have a module of their own.
//!
//! The session state survives STARTTLS: [`run`] drives it over the plain
//! stream, and when the client upgrades, over the TLS stream, with the
//! transaction and EHLO state reset as RFC 3207 §4.2 requires.

use std::{
    borrow::Cow,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use smtp_proto::{Error as ParseError, Request};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use sealpost_policy::EmailAddress;
use sealpost_store::{DsnReturn, Notify as DsnNotify, QueueId};

use super::{
    Inbound,
    io::{CommandLine, SmtpStream},
    xforward::XForward,
};
use crate::reply::{self, Reply};

/// Command lines are capped at 512 octets (RFC 5321 §4.5.3.1.4) ...
const MAX_COMMAND_LINE: usize = 512;
/// ... which MAIL and RCPT may exceed by their extension parameters
/// (RFC 3461 §4 adds 100 for ENVID and 500 for ORCPT; SIZE, BODY, RET,
/// NOTIFY and SMTPUTF8 add a few dozen more).
const MAX_PARAMETER_LINE: usize = 1100;

/// Numbers sessions for log correlation.
static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

/// What the dispatcher tells the loop to do next.
pub(super) enum Flow {
    Continue,
    Close,
    StartTls,
}

/// One mail transaction, from MAIL to the end of DATA.
#[derive(Debug)]
pub(super) struct Transaction {
    pub id: QueueId,
    /// `None` is the null sender `<>`.
    pub sender: Option<EmailAddress>,
    /// The SIZE the client declared, to size the buffer.
    pub size_hint: usize,
    pub body_8bit: bool,
    pub smtputf8: bool,
    pub env_id: Option<String>,
    pub ret: Option<DsnReturn>,
    pub recipients: Vec<PendingRecipient>,
    /// A RCPT command was given, accepted or not: DATA without one is out
    /// of order (503), DATA after only refused ones has no recipients (554).
    pub rcpt_given: bool,
    /// Counted in [`super::Inbound::open_transactions`] while it lives.
    pub _open: super::OpenTransaction,
}

/// A recipient accepted at RCPT, routed at the end of DATA.
#[derive(Debug)]
pub(super) struct PendingRecipient {
    pub address: EmailAddress,
    pub orcpt: Option<String>,
    pub notify: DsnNotify,
}

/// The state of one connection.
#[derive(Debug)]
pub(super) struct Session {
    pub inbound: Arc<Inbound>,
    /// The connecting socket address; relay control always uses this, never
    /// an XFORWARD address.
    pub peer: SocketAddr,
    /// The EHLO/HELO argument, once given.
    pub helo: Option<String>,
    pub esmtp: bool,
    pub tls: bool,
    /// Client attributes forwarded by a trusted content filter.
    pub xforward: XForward,
    pub transaction: Option<Transaction>,
    /// Error replies so far; past `max_errors` the session is closed.
    pub errors: usize,
    /// The SMTP account the client authenticated as (submission only).
    pub account: Option<Arc<sealpost_store::smtp_accounts::SmtpAccount>>,
    /// The server's shutdown, for exchanges inside one command (AUTH).
    pub shutdown: CancellationToken,
}

impl Session {
    /// Queues an error reply and counts it, by reason, in the metrics.
    pub fn reject<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut SmtpStream<S>,
        reply: &Reply,
        reason: &'static str,
    ) {
        self.errors += 1;
        metrics::counter!("sealpost_smtp_rejected_total", "reason" => reason).increment(1);
        tracing::debug!(%reply, reason, "rejected");
        stream.queue(reply);
    }

    fn reset_transaction(&mut self) {
        self.transaction = None;
        self.xforward.end_transaction();
    }

    async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut SmtpStream<S>,
        shutdown: &CancellationToken,
    ) -> std::io::Result<Flow> {
        loop {
            let line = match stream.read_command(MAX_PARAMETER_LINE, shutdown).await? {
                CommandLine::Line(line) => Some(line),
                CommandLine::TooLong => {
                    self.reject(stream, &reply::LINE_TOO_LONG, "line_too_long");
                    None
                }
                CommandLine::Malformed => {
                    self.reject(stream, &reply::BARE_LF_COMMAND, "bare_lf");
                    None
                }
                CommandLine::Eof => return Ok(Flow::Close),
                CommandLine::Timeout => {
                    stream.queue(&reply::IDLE_TIMEOUT);
                    metrics::counter!("sealpost_smtp_rejected_total", "reason" => "idle_timeout")
                        .increment(1);
                    stream.flush().await?;
                    return Ok(Flow::Close);
                }
                CommandLine::Shutdown => {
                    stream.queue(&reply::SHUTTING_DOWN);
                    stream.flush().await?;
                    return Ok(Flow::Close);
                }
            };
            let flow = match line {
                Some(line) => self.command(&line, stream).await?,
                None => Flow::Continue,
            };
            match flow {
                Flow::Continue => {}
                Flow::Close => {
                    stream.flush().await?;
                    return Ok(Flow::Close);
                }
                Flow::StartTls => {
                    stream.flush().await?;
                    let dropped = stream.discard_input();
                    if dropped > 0 {
                        tracing::warn!(
                            octets = dropped,
                            "discarded input pipelined after STARTTLS"
                        );
                    }
                    return Ok(Flow::StartTls);
                }
            }
            if self.errors >= self.inbound.config.max_errors {
                stream.queue(&reply::TOO_MANY_ERRORS);
                stream.flush().await?;
                return Ok(Flow::Close);
            }
        }
    }

    async fn command<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        line: &[u8],
        stream: &mut SmtpStream<S>,
    ) -> std::io::Result<Flow> {
        let verb_end = line
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .unwrap_or(line.len());
        let verb = &line[..verb_end];
        let takes_parameters = verb.eq_ignore_ascii_case(b"MAIL")
            || verb.eq_ignore_ascii_case(b"RCPT")
            || verb.eq_ignore_ascii_case(b"AUTH");
        if line.len() > MAX_COMMAND_LINE && !takes_parameters {
            self.reject(stream, &reply::LINE_TOO_LONG, "line_too_long");
            return Ok(Flow::Continue);
        }
        if verb.eq_ignore_ascii_case(b"AUTH") {
            return self.auth(&line[verb_end..], stream).await;
        }
        if verb.eq_ignore_ascii_case(b"XFORWARD") {
            self.xforward_command(&line[verb_end..], stream);
            return Ok(Flow::Continue);
        }
        // Counted before parsing: a RCPT refused for its syntax was still
        // given.
        if verb.eq_ignore_ascii_case(b"RCPT")
            && let Some(transaction) = self.transaction.as_mut()
        {
            transaction.rcpt_given = true;
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request,
            Err(e) => {
                let (reply, reason) = parse_error_reply(&e);
                self.reject(stream, &reply, reason);
                return Ok(Flow::Continue);
            }
        };
        match request {
            Request::Ehlo { host } => self.hello(host, true, stream),
            Request::Helo { host } => self.hello(host, false, stream),
            Request::Lhlo { .. } => self.reject(stream, &reply::NOT_IMPLEMENTED, "not_implemented"),
            Request::Mail { from } => self.mail(from, raw_path(line), stream),
            Request::Rcpt { to } => self.rcpt(to, raw_path(line), stream),
            Request::Data => return self.data(stream).await,
            Request::Rset => {
                self.reset_transaction();
                stream.queue(&reply::OK);
            }
            Request::Noop { .. } => stream.queue(&reply::OK),
            Request::Quit => {
                stream.queue(&reply::BYE);
                return Ok(Flow::Close);
            }
            Request::Vrfy { .. } => stream.queue(&reply::VRFY),
            Request::Help { .. } => stream.queue(&reply::HELP),
            Request::StartTls => return Ok(self.starttls(stream)),
            Request::Expn { .. }
            | Request::Auth { .. }
            | Request::Bdat { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                self.reject(stream, &reply::NOT_IMPLEMENTED, "not_implemented")
            }
        }
        Ok(Flow::Continue)
    }

    fn hello<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        host: Cow<'_, str>,
        esmtp: bool,
        stream: &mut SmtpStream<S>,
    ) {
        let host = host.trim();
        if host.is_empty() {
            self.reject(stream, &reply::EHLO_SYNTAX, "syntax");
            return;
        }
        self.reset_transaction();
        self.helo = Some(host.to_owned());
        self.esmtp = esmtp;
        let config = &self.inbound.config;
        if !esmtp {
            stream.queue(&Reply::owned(250, "", config.hostname.clone()));
            return;
        }
        let mut lines = vec![
            config.hostname.clone(),
            "PIPELINING".to_owned(),
            format!("SIZE {}", config.max_message_size),
            "8BITMIME".to_owned(),
            "SMTPUTF8".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
            "DSN".to_owned(),
        ];
        if self.inbound.tls.is_some() && !self.tls {
            lines.push("STARTTLS".to_owned());
        }
        if !self.is_submission() && self.inbound.config.xforward_hosts.contains(self.peer.ip()) {
            lines.push("XFORWARD NAME ADDR PROTO HELO".to_owned());
        }
        lines.extend(self.auth_keyword());
        stream.queue(&Reply::owned(250, "", lines.join("\n")));
    }

    fn starttls<S: AsyncRead + AsyncWrite + Unpin>(&mut self, stream: &mut SmtpStream<S>) -> Flow {
        if self.tls {
            self.reject(stream, &reply::ALREADY_TLS, "bad_sequence");
            return Flow::Continue;
        }
        if self.inbound.tls.is_none() {
            self.reject(stream, &reply::NOT_IMPLEMENTED, "not_implemented");
            return Flow::Continue;
        }
        stream.queue(&reply::READY_TLS);
        Flow::StartTls
    }

    /// The protocol name for the Received header (RFC 3848, RFC 6531):
    /// `S` after TLS, `A` after AUTH.
    pub fn protocol(&self, smtputf8: bool) -> String {
        let base = match (smtputf8, self.esmtp) {
            (true, _) => "UTF8SMTP",
            (false, true) => "ESMTP",
            (false, false) => "SMTP",
        };
        let tls = if self.tls { "S" } else { "" };
        let auth = if self.account.is_some() { "A" } else { "" };
        format!("{base}{tls}{auth}")
    }
}

/// The text between the first `<` and the next `>` of a MAIL or RCPT line,
/// trimmed. `smtp-proto` reports both `<>` and `<postmaster>` as an empty
/// address; this tells them apart.
fn raw_path(line: &[u8]) -> &[u8] {
    let Some(open) = line.iter().position(|&b| b == b'<') else {
        return &[];
    };
    let rest = &line[open + 1..];
    let close = rest.iter().position(|&b| b == b'>').unwrap_or(rest.len());
    rest[..close].trim_ascii()
}

fn parse_error_reply(e: &ParseError) -> (Reply, &'static str) {
    match e {
        ParseError::UnknownCommand => (reply::UNKNOWN_COMMAND, "unknown_command"),
        ParseError::InvalidSenderAddress => (reply::BAD_SENDER_SYNTAX, "bad_address"),
        ParseError::InvalidRecipientAddress => (reply::BAD_RECIPIENT_SYNTAX, "bad_address"),
        ParseError::SyntaxError { syntax } => (
            Reply::owned(501, "5.5.2", format!("Syntax: {syntax}")),
            "syntax",
        ),
        ParseError::InvalidParameter { param } => (
            Reply::owned(501, "5.5.4", format!("Invalid value for parameter {param}")),
            "syntax",
        ),
        ParseError::UnsupportedParameter { param } => (
            Reply::owned(
                555,
                "5.5.4",
                format!("Unsupported parameter {}", printable(param)),
            ),
            "syntax",
        ),
        _ => (reply::SYNTAX_ERROR, "syntax"),
    }
}

/// Client text echoed in a reply: printable ASCII only, bounded.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

/// Runs one connection to its end, over any byte stream (TCP in the
/// server; an in-memory pipe in tests and fuzzing).
pub async fn run<S>(tcp: S, peer: SocketAddr, inbound: Arc<Inbound>, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    run_with(tcp, peer, inbound, shutdown, false).await;
}

/// As [`run`], over a stream that is TLS from its first byte (implicit
/// TLS, `smtp.submission_tls_listen`): the session starts as secured and
/// offers no STARTTLS.
pub async fn run_tls<S>(
    tls: S,
    peer: SocketAddr,
    inbound: Arc<Inbound>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    run_with(tls, peer, inbound, shutdown, true).await;
}

async fn run_with<S>(
    tcp: S,
    peer: SocketAddr,
    inbound: Arc<Inbound>,
    shutdown: CancellationToken,
    secured: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("smtp", session = id, client = %peer.ip());
    async move {
        let idle = inbound.config.idle_timeout;
        let mut session = Session {
            inbound: inbound.clone(),
            peer,
            helo: None,
            esmtp: false,
            tls: secured,
            xforward: XForward::default(),
            transaction: None,
            errors: 0,
            account: None,
            shutdown: shutdown.clone(),
        };
        let _open = inbound.busy_poll.session();
        let mut stream = SmtpStream::new(tcp, idle)
            .with_busy_poll(inbound.busy_poll.clone())
            .with_shutdown(shutdown.clone(), inbound.config.shutdown_grace);
        stream.queue(&reply::greeting(&inbound.config.hostname));
        match session.drive(&mut stream, &shutdown).await {
            Ok(Flow::StartTls) => {
                let Some(acceptor) = inbound.tls.clone() else {
                    return;
                };
                let tcp = stream.into_inner();
                let tls = match tokio::time::timeout(idle, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::info!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::info!("TLS handshake timed out");
                        return;
                    }
                };
                session.tls = true;
                session.helo = None;
                session.esmtp = false;
                session.reset_transaction();
                let mut stream = SmtpStream::new(tls, idle)
                    .with_busy_poll(inbound.busy_poll.clone())
                    .with_shutdown(shutdown.clone(), inbound.config.shutdown_grace);
                if let Err(e) = session.drive(&mut stream, &shutdown).await {
                    tracing::debug!(error = %e, "connection error");
                }
                // close_notify is a write too: bounded like every reply.
                let _ = tokio::time::timeout(idle, stream.into_inner().shutdown()).await;
            }
            Ok(_) if secured => {
                let _ = tokio::time::timeout(idle, stream.into_inner().shutdown()).await;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "connection error"),
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::raw_path;

    #[test]
    fn raw_path_tells_null_from_postmaster() {
        assert_eq!(raw_path(b"MAIL FROM:<>\r\n"), b"");
        assert_eq!(raw_path(b"MAIL FROM:< >\r\n"), b"");
        assert_eq!(raw_path(b"RCPT TO:<Postmaster>\r\n"), b"Postmaster");
        assert_eq!(
            raw_path(b"RCPT TO:<a@b.example> NOTIFY=NEVER\r\n"),
            b"a@b.example"
        );
        assert_eq!(raw_path(b"MAIL FROM:nobrackets\r\n"), b"");
        assert_eq!(raw_path(b"RCPT TO:<unclosed\r\n"), b"unclosed");
    }
}

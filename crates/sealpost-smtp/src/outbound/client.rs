//! One SMTP client conversation with one server.
//!
//! [`Client::connect`] reads the greeting, says EHLO (HELO if refused) and
//! upgrades with STARTTLS when offered and wanted. [`Client::send_all`]
//! runs a series of transactions and returns replies per recipient; an
//! error means the connection itself failed and nothing more can be said
//! about the transactions it had not finished.

use std::{sync::Arc, time::Duration};

use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader},
    net::TcpStream,
};
use tokio_rustls::TlsConnector;

use super::{OutboundConfig, lookup::Target};

/// Longest reply line we read, and most lines in one reply.
const MAX_REPLY_LINE: usize = 4096;
const MAX_REPLY_LINES: usize = 200;

/// A byte stream we can speak SMTP over: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A server reply: its code and text (lines joined with `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Response {
    /// 2xx. No 3xx is a success: the only one SMTP uses, 354 to DATA, is
    /// checked for by name.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }
    /// The reply as one line, for logs, tracking and DSNs.
    pub fn one_line(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }
}

/// Why a conversation could not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("connect to {0} failed: {1}")]
    Connect(String, String),
    #[error("{0} refused to talk to us: {1}")]
    Greeting(String, String),
    #[error("TLS with {0} failed: {1}")]
    Tls(String, String),
    #[error("lost connection with {0}: {1}")]
    Io(String, String),
    #[error("timeout talking to {0} ({1})")]
    Timeout(String, &'static str),
    #[error("{0} sent a malformed reply: {1}")]
    Protocol(String, String),
}

/// What the server offered in its EHLO reply.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub pipelining: bool,
    pub size: Option<u64>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub starttls: bool,
    /// Postfix's XFORWARD (a re-injection service offers it).
    pub xforward: bool,
}

impl Capabilities {
    fn from_ehlo(r: &Response) -> Self {
        let mut caps = Capabilities::default();
        for line in r.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = words.next().and_then(|s| s.parse().ok()).filter(|&s| s > 0),
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "DSN" => caps.dsn = true,
                "STARTTLS" => caps.starttls = true,
                "XFORWARD" => caps.xforward = true,
                _ => {}
            }
        }
        caps
    }
}

/// One recipient of a transaction, as the client needs it.
#[derive(Debug, Clone)]
pub struct RcptSpec<'a> {
    pub address: &'a str,
    /// Already formatted `NOTIFY=...` and `ORCPT=...` (sent only if the
    /// server offers DSN).
    pub dsn_params: Option<String>,
}

/// One transaction to run.
#[derive(Debug, Clone)]
pub struct Transaction<'a> {
    pub sender: &'a str,
    pub recipients: Vec<RcptSpec<'a>>,
    pub content: &'a [u8],
    pub body_8bit: bool,
    pub smtputf8: bool,
    /// `RET=... ENVID=...`, sent only if the server offers DSN.
    pub dsn_params: Option<String>,
    /// `XFORWARD ...` command lines describing the original client, sent
    /// before MAIL only if the server offers XFORWARD.
    pub xforward: Vec<String>,
    /// A reply that fails every recipient without talking, decided by the
    /// caller for this server (8-bit content it cannot make 7-bit, see
    /// `eightbit`).
    pub refusal: Option<String>,
}

/// What one transaction came to: a reply per recipient, in order, and the
/// final reply after the data when at least one recipient was accepted.
pub type Sent = (Vec<RcptReply>, Option<Response>);

/// The outcome of one transaction, per recipient in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptReply {
    Accepted(Response),
    Rejected(Response),
    /// A precondition failed before talking (e.g. SMTPUTF8 not offered).
    Refused(String),
}

/// Bytes per write while sending message data.
const DATA_CHUNK: usize = 64 * 1024;

/// A connected, greeted client.
pub struct Client {
    io: BufReader<Box<dyn Io>>,
    /// The server's name (for messages) and address.
    pub server: String,
    pub caps: Capabilities,
    pub tls: bool,
    command_timeout: Duration,
    data_timeout: Duration,
    /// The end of the last message's data, not yet written: it goes out
    /// with the next transaction's commands (see [`Client::send_all`]).
    held: Vec<u8>,
    /// Transactions of the last [`Client::send_all`] whose data began to go
    /// out (see [`Client::data_started`]).
    data_started: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `target`, reads the greeting and says EHLO, upgrading
    /// to TLS when the server offers it and `tls` is given.
    pub async fn connect(
        target: &Target,
        config: &OutboundConfig,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Client, ClientError> {
        let server = format!("{}[{}]", target.name, target.addr);
        let tcp = tokio::time::timeout(config.connect_timeout, TcpStream::connect(target.addr))
            .await
            .map_err(|_| ClientError::Timeout(server.clone(), "connect"))?
            .map_err(|e| ClientError::Connect(server.clone(), e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let mut client = Client {
            io: BufReader::new(Box::new(tcp)),
            server,
            caps: Capabilities::default(),
            tls: false,
            command_timeout: config.command_timeout,
            data_timeout: config.data_timeout,
            held: Vec::new(),
            data_started: 0,
        };
        let greeting = client.read_reply(client.command_timeout).await?;
        if !greeting.is_success() {
            return Err(ClientError::Greeting(
                client.server.clone(),
                greeting.one_line(),
            ));
        }
        client.hello(&config.hostname).await?;
        if let (true, Some(tls)) = (client.caps.starttls, tls) {
            let reply = client.command("STARTTLS\r\n").await?;
            if reply.code == 220 {
                client = client.upgrade(target, tls).await?;
                // A session that fails before it is up inside TLS is a TLS
                // failure: the caller tries again in plaintext.
                let server = client.server.clone();
                client
                    .hello(&config.hostname)
                    .await
                    .map_err(|e| ClientError::Tls(server, format!("after the handshake: {e}")))?;
            }
        }
        Ok(client)
    }

    async fn upgrade(
        self,
        target: &Target,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<Client, ClientError> {
        let name = ServerName::try_from(target.name.clone())
            .unwrap_or_else(|_| ServerName::IpAddress(target.addr.ip().into()));
        let inner = self.io.into_inner();
        let stream = tokio::time::timeout(
            self.command_timeout,
            TlsConnector::from(tls.clone()).connect(name, inner),
        )
        .await
        .map_err(|_| ClientError::Tls(self.server.clone(), "handshake timed out".into()))?
        .map_err(|e| ClientError::Tls(self.server.clone(), e.to_string()))?;
        Ok(Client {
            io: BufReader::new(Box::new(stream)),
            server: self.server,
            caps: Capabilities::default(),
            tls: true,
            command_timeout: self.command_timeout,
            data_timeout: self.data_timeout,
            held: Vec::new(),
            data_started: 0,
        })
    }

    async fn hello(&mut self, hostname: &str) -> Result<(), ClientError> {
        let ehlo = self.command(&format!("EHLO {hostname}\r\n")).await?;
        if ehlo.is_success() {
            self.caps = Capabilities::from_ehlo(&ehlo);
            return Ok(());
        }
        let helo = self.command(&format!("HELO {hostname}\r\n")).await?;
        if helo.is_success() {
            self.caps = Capabilities::default();
            Ok(())
        } else {
            Err(ClientError::Greeting(self.server.clone(), helo.one_line()))
        }
    }

    /// Runs `transactions` in order over this connection and returns the
    /// outcome of each one that completed, in order, and the error that
    /// stopped the rest, if any.
    ///
    /// With PIPELINING, the end of one message's data goes out in the same
    /// write as the next transaction's commands (RFC 2920 §3.1: message
    /// content may begin a group, DATA ends it), and the reply to the data
    /// comes back with the replies to those commands: one round trip per
    /// message instead of two, for the server as much as for us.
    ///
    /// On error, the first transaction without an outcome may have been
    /// taken by the server (its data was sent, its reply never read); the
    /// ones after it were not, whatever was said of them.
    pub async fn send_all(
        &mut self,
        transactions: &[Transaction<'_>],
    ) -> (Vec<Sent>, Option<ClientError>) {
        let mut done = Vec::with_capacity(transactions.len());
        let mut owed = None;
        self.data_started = 0;
        for (k, t) in transactions.iter().enumerate() {
            let more = k + 1 < transactions.len();
            if let Err(e) = self.transaction(t, more, &mut owed, &mut done).await {
                return (done, Some(e));
            }
        }
        if let Some(replies) = owed.take() {
            match self.settle().await {
                Ok(reply) => done.push((replies, Some(reply))),
                Err(e) => return (done, Some(e)),
            }
        }
        (done, None)
    }

    /// Sends what is held of the last message's data and reads its reply.
    async fn settle(&mut self) -> Result<Response, ClientError> {
        let held = std::mem::take(&mut self.held);
        self.write(&held).await?;
        self.read_reply(self.data_timeout).await
    }

    /// Runs one transaction and pushes its outcome to `done`, except that
    /// with `more` (another transaction follows) and PIPELINING, the end of
    /// its data is held for the next write and its recipients' replies
    /// left in `owed`: the next transaction reads its final reply first.
    async fn transaction(
        &mut self,
        t: &Transaction<'_>,
        more: bool,
        owed: &mut Option<Vec<RcptReply>>,
        done: &mut Vec<Sent>,
    ) -> Result<(), ClientError> {
        // Preconditions the server announced in EHLO: checked before
        // talking, each failing every recipient alike.
        let refusal = if let Some(why) = &t.refusal {
            Some(why.clone())
        } else if t.smtputf8 && !self.caps.smtputf8 {
            Some(format!(
                "553 5.6.7 {} does not support SMTPUTF8, which this message needs",
                self.server
            ))
        } else if self
            .caps
            .size
            .is_some_and(|limit| t.content.len() as u64 > limit)
        {
            Some(format!(
                "552 5.3.4 message size exceeds the limit of {}",
                self.server
            ))
        } else {
            None
        };
        // Outcomes are in order: one still owed is settled before any
        // other conversation (only a pipelined transaction reads it).
        if let Some(replies) = owed.take_if(|_| refusal.is_some() || !self.caps.pipelining) {
            let reply = self.settle().await?;
            done.push((replies, Some(reply)));
        }
        if let Some(why) = refusal {
            let replies = t
                .recipients
                .iter()
                .map(|_| RcptReply::Refused(why.clone()))
                .collect();
            done.push((replies, None));
            return Ok(());
        }
        let xforward: &[String] = if self.caps.xforward { &t.xforward } else { &[] };
        if !self.caps.pipelining {
            for line in xforward {
                let reply = self.command(line).await?;
                log_xforward_refusal(&self.server, &reply);
            }
        }
        let mut mail = format!("MAIL FROM:<{}>", t.sender);
        if self.caps.size.is_some() {
            mail.push_str(&format!(" SIZE={}", t.content.len()));
        }
        if t.body_8bit && self.caps.eight_bit_mime {
            mail.push_str(" BODY=8BITMIME");
        }
        if t.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        if let (true, Some(p)) = (self.caps.dsn, &t.dsn_params) {
            mail.push(' ');
            mail.push_str(p);
        }
        mail.push_str("\r\n");
        let rcpt_lines: Vec<String> = t
            .recipients
            .iter()
            .map(|r| match (self.caps.dsn, &r.dsn_params) {
                (true, Some(p)) => format!("RCPT TO:<{}> {p}\r\n", r.address),
                _ => format!("RCPT TO:<{}>\r\n", r.address),
            })
            .collect();

        // With PIPELINING, the held end of the last message's data,
        // XFORWARD, MAIL, every RCPT and DATA go in one write (RFC 2920
        // §3.1: DATA may end a group); the server answers DATA with 354
        // only if a recipient was accepted. Without it, one command per
        // round trip, and no DATA unless a recipient passed.
        let (mail_reply, rcpt_replies, data_reply) = if self.caps.pipelining {
            let mut batch = std::mem::take(&mut self.held);
            xforward
                .iter()
                .for_each(|l| batch.extend_from_slice(l.as_bytes()));
            batch.extend_from_slice(mail.as_bytes());
            rcpt_lines
                .iter()
                .for_each(|l| batch.extend_from_slice(l.as_bytes()));
            batch.extend_from_slice(b"DATA\r\n");
            self.write(&batch).await?;
            if let Some(replies) = owed.take() {
                let reply = self.read_reply(self.data_timeout).await?;
                done.push((replies, Some(reply)));
            }
            for _ in xforward {
                let reply = self.read_reply(self.command_timeout).await?;
                log_xforward_refusal(&self.server, &reply);
            }
            let mail_reply = self.read_reply(self.command_timeout).await?;
            let mut replies = Vec::with_capacity(rcpt_lines.len());
            for _ in &rcpt_lines {
                replies.push(self.read_reply(self.command_timeout).await?);
            }
            let data_reply = self.read_reply(self.command_timeout).await?;
            (mail_reply, replies, Some(data_reply))
        } else {
            let mail_reply = self.command(&mail).await?;
            let mut replies = Vec::with_capacity(rcpt_lines.len());
            if mail_reply.is_success() {
                for line in &rcpt_lines {
                    replies.push(self.command(line).await?);
                }
            }
            (mail_reply, replies, None)
        };
        let accepted_any = mail_reply.is_success() && rcpt_replies.iter().any(Response::is_success);
        if !accepted_any {
            if data_reply.as_ref().is_some_and(|r| r.code == 354) {
                // A server that opened DATA with no valid recipient: end
                // the empty message at once, and ignore what it says.
                self.write(b".\r\n").await?;
                let _ = self.read_reply(self.data_timeout).await?;
            }
            self.reset().await;
        }
        if !mail_reply.is_success() {
            done.push((
                t.recipients
                    .iter()
                    .map(|_| RcptReply::Rejected(mail_reply.clone()))
                    .collect(),
                None,
            ));
            return Ok(());
        }
        let mut results: Vec<RcptReply> = rcpt_replies
            .into_iter()
            .map(|r| {
                if r.is_success() {
                    RcptReply::Accepted(r)
                } else {
                    RcptReply::Rejected(r)
                }
            })
            .collect();
        if !accepted_any {
            done.push((results, None));
            return Ok(());
        }
        let data = match data_reply {
            Some(reply) => reply,
            None => self.command("DATA\r\n").await?,
        };
        if data.code != 354 && !(400..600).contains(&data.code) {
            // A 2xx or 3xx other than 354: the server says it took a body
            // we never sent. Nothing about this connection is certain any
            // more; the message waits for a retry.
            return Err(ClientError::Protocol(
                self.server.clone(),
                format!("unexpected reply to DATA: {}", data.one_line()),
            ));
        }
        if data.code != 354 {
            for r in results.iter_mut() {
                if matches!(r, RcptReply::Accepted(_)) {
                    *r = RcptReply::Rejected(data.clone());
                }
            }
            self.reset().await;
            done.push((results, None));
            return Ok(());
        }
        self.data_started += 1;
        if more && self.caps.pipelining {
            self.held = self.write_content(t.content, true).await?;
            *owed = Some(results);
        } else {
            self.write_content(t.content, false).await?;
            let final_reply = self.read_reply(self.data_timeout).await?;
            done.push((results, Some(final_reply)));
        }
        Ok(())
    }

    /// How many transactions of the last [`Client::send_all`] began to
    /// send their data. When it stopped with an error after `n` outcomes
    /// and this is `n` or less, the transaction in flight never sent a byte
    /// of its message: the server cannot have taken it, and it may be sent
    /// again at once on another connection.
    pub fn data_started(&self) -> usize {
        self.data_started
    }

    /// Whether an idle connection still looks usable, without a round
    /// trip: a peer that closed it (or sent a 421) has made the socket
    /// readable, while a live idle server sends nothing until asked.
    pub fn is_reusable(&mut self) -> bool {
        use futures_util::FutureExt;
        use tokio::io::AsyncBufReadExt;
        // Pending: nothing to read, the connection is idle and open.
        self.io.fill_buf().now_or_never().is_none()
    }

    /// Sends RSET, ignoring the outcome (the connection is dropped on the
    /// next error anyway).
    pub async fn reset(&mut self) {
        let _ = self.command("RSET\r\n").await;
    }

    /// Says QUIT and closes.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = self.command("QUIT\r\n").await;
            let _ = self.io.get_mut().shutdown().await;
        })
        .await;
    }

    async fn command(&mut self, line: &str) -> Result<Response, ClientError> {
        self.write(line.as_bytes()).await?;
        self.read_reply(self.command_timeout).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        debug_assert!(
            self.held.is_empty(),
            "held data must go out before anything written after it"
        );
        let io = self.io.get_mut();
        tokio::time::timeout(self.command_timeout, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await
        .map_err(|_| ClientError::Timeout(self.server.clone(), "write"))?
        .map_err(|e| ClientError::Io(self.server.clone(), e.to_string()))
    }

    /// Writes the content dot-stuffed, then the end-of-data marker, in
    /// writes of about [`DATA_CHUNK`] bytes: few segments for a small
    /// message, bounded memory for a large one. With `hold`, the last
    /// piece (with the marker) is returned instead of written, to go out
    /// with the next commands; otherwise the result is empty.
    ///
    /// Each write has `data_timeout` to make progress (RFC 5321
    /// §4.5.3.2.5 times each send, not the whole body): a large message
    /// on a slow but live link gets through.
    async fn write_content(&mut self, content: &[u8], hold: bool) -> Result<Vec<u8>, ClientError> {
        let server = self.server.clone();
        let limit = self.data_timeout;
        let io = self.io.get_mut();
        let written = async {
            let mut chunk = Vec::with_capacity(content.len().min(DATA_CHUNK) + 8);
            let mut start = 0;
            if content.first() == Some(&b'.') {
                chunk.push(b'.');
            }
            let stuff_points = memchr::memmem::find_iter(content, b"\n.").map(|i| i + 1);
            for end in stuff_points.chain(std::iter::once(content.len())) {
                // `content[start..end]` is followed by a dot to double,
                // except for the last piece.
                let mut piece = &content[start..end];
                while !piece.is_empty() {
                    let room = DATA_CHUNK.saturating_sub(chunk.len()).max(1);
                    let (now, later) = piece.split_at(piece.len().min(room));
                    chunk.extend_from_slice(now);
                    piece = later;
                    if chunk.len() >= DATA_CHUNK {
                        timed(limit, io.write_all(&chunk)).await?;
                        chunk.clear();
                    }
                }
                if end < content.len() {
                    chunk.push(b'.');
                }
                start = end;
            }
            if !content.is_empty() && !content.ends_with(b"\r\n") {
                chunk.extend_from_slice(b"\r\n");
            }
            chunk.extend_from_slice(b".\r\n");
            if hold {
                timed(limit, io.flush()).await?;
                return Ok::<_, std::io::Error>(chunk);
            }
            timed(limit, io.write_all(&chunk)).await?;
            timed(limit, io.flush()).await?;
            Ok(Vec::new())
        };
        written.await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                ClientError::Timeout(server, "sending message data")
            } else {
                ClientError::Io(server, e.to_string())
            }
        })
    }

    async fn read_reply(&mut self, timeout: Duration) -> Result<Response, ClientError> {
        let server = self.server.clone();
        tokio::time::timeout(timeout, read_reply(&mut self.io, &server))
            .await
            .map_err(|_| ClientError::Timeout(server, "waiting for a reply"))?
    }
}

/// A refused XFORWARD loses attribution only; the mail still goes.
fn log_xforward_refusal(server: &str, reply: &Response) {
    if !reply.is_success() {
        tracing::info!(%server, reply = %reply.one_line(), "XFORWARD refused");
    }
}

/// `write` with `limit` to finish; `TimedOut` if it does not.
async fn timed(
    limit: Duration,
    write: impl std::future::Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    tokio::time::timeout(limit, write)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

async fn read_reply<R: AsyncBufReadExt + Unpin>(
    io: &mut R,
    server: &str,
) -> Result<Response, ClientError> {
    let mut lines = Vec::new();
    let mut code = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut *io)
            .take(MAX_REPLY_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|e| ClientError::Io(server.to_owned(), e.to_string()))?;
        if n == 0 {
            return Err(ClientError::Io(
                server.to_owned(),
                "connection closed".into(),
            ));
        }
        if buf.last() != Some(&b'\n') {
            // Cut at MAX_REPLY_LINE: the rest would read as the next reply
            // and every reply after it would answer the wrong command.
            return Err(ClientError::Protocol(
                server.to_owned(),
                format!("reply line longer than {MAX_REPLY_LINE} octets"),
            ));
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\r', '\n']);
        let this_code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .filter(|c| (200..600).contains(c))
            .ok_or_else(|| {
                ClientError::Protocol(server.to_owned(), line.chars().take(80).collect())
            })?;
        if code != 0 && this_code != code {
            return Err(ClientError::Protocol(
                server.to_owned(),
                "reply code changed mid-reply".into(),
            ));
        }
        code = this_code;
        let more = line.as_bytes().get(3) == Some(&b'-');
        lines.push(line.get(4..).unwrap_or("").to_owned());
        if !more {
            return Ok(Response { code, lines });
        }
        if lines.len() >= MAX_REPLY_LINES {
            return Err(ClientError::Protocol(
                server.to_owned(),
                "reply has too many lines".into(),
            ));
        }
    }
}

use tokio::io::AsyncReadExt as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn multi_line_reply_and_capabilities() {
        let wire = b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-DSN\r\n250 SMTPUTF8\r\n";
        let mut r = BufReader::new(&wire[..]);
        let reply = read_reply(&mut r, "x").await.unwrap();
        assert_eq!(reply.code, 250);
        let caps = Capabilities::from_ehlo(&reply);
        assert!(
            caps.pipelining && caps.eight_bit_mime && caps.dsn && caps.smtputf8 && !caps.starttls
        );
        assert_eq!(caps.size, Some(1000));
    }

    /// RFC 5321 §4.5.2 transparency, written the obvious way.
    fn stuffed(content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &b) in content.iter().enumerate() {
            if b == b'.' && (i == 0 || content[i - 1] == b'\n') {
                out.push(b'.');
            }
            out.push(b);
        }
        if !content.is_empty() && !content.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    #[tokio::test]
    async fn content_is_dot_stuffed_across_write_chunks() {
        let mut big = Vec::new();
        while big.len() < 3 * DATA_CHUNK {
            // Lines of varying length so dots fall on and around chunk edges.
            let n = big.len() % 97;
            big.extend_from_slice(&vec![b'x'; n]);
            big.extend_from_slice(b"\r\n.");
        }
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b".".to_vec(),
            b".\r\n".to_vec(),
            b"Subject: a\r\n\r\n.hidden\r\n..two\r\nend".to_vec(),
            b"no dots\r\n".to_vec(),
            big,
        ];
        for content in cases {
            let (ours, mut theirs) = tokio::io::duplex(8 * DATA_CHUNK);
            let mut client = Client {
                io: BufReader::new(Box::new(ours)),
                server: "test".into(),
                caps: Capabilities::default(),
                tls: false,
                command_timeout: Duration::from_secs(5),
                data_timeout: Duration::from_secs(5),
                held: Vec::new(),
                data_started: 0,
            };
            let expected = stuffed(&content);
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                theirs.read_to_end(&mut got).await.unwrap();
                got
            });
            client.write_content(&content, false).await.unwrap();
            drop(client);
            let got = reader.await.unwrap();
            assert!(
                got == expected,
                "{} bytes sent, {} expected",
                got.len(),
                expected.len()
            );
        }
    }

    /// A client on one end of an in-memory pipe, as if EHLO had offered
    /// PIPELINING.
    fn pipelining_client(io: tokio::io::DuplexStream) -> Client {
        Client {
            io: BufReader::new(Box::new(io)),
            server: "test".into(),
            caps: Capabilities {
                pipelining: true,
                ..Capabilities::default()
            },
            tls: false,
            command_timeout: Duration::from_secs(5),
            data_timeout: Duration::from_secs(5),
            held: Vec::new(),
            data_started: 0,
        }
    }

    fn transaction<'a>(recipients: &[&'a str], content: &'a [u8]) -> Transaction<'a> {
        Transaction {
            sender: "a@corp.example",
            recipients: recipients
                .iter()
                .map(|&address| RcptSpec {
                    address,
                    dsn_params: None,
                })
                .collect(),
            content,
            body_8bit: false,
            smtputf8: false,
            dsn_params: None,
            xforward: Vec::new(),
            refusal: None,
        }
    }

    /// What the scripted server saw.
    #[derive(Debug, Default)]
    struct Seen {
        /// Messages whose end of data came in the same write as the next
        /// transaction's MAIL.
        merged: usize,
        /// Messages whose end of data came alone.
        alone: usize,
        /// Message bodies, as received (still dot-stuffed).
        bodies: Vec<String>,
    }

    /// A pipelining server: RCPT to an address with "reject" gets 550, the
    /// data of message n gets `finals[n]`. It stops (closing the
    /// connection) when it has read `stop_after` lines.
    async fn scripted_server(
        io: tokio::io::DuplexStream,
        finals: Vec<&'static str>,
        stop_after: usize,
    ) -> Seen {
        let (read, mut write) = tokio::io::split(io);
        let mut read = BufReader::new(read);
        let mut seen = Seen::default();
        let mut lines = 0;
        let mut accepted = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 || lines == stop_after {
                return seen;
            }
            lines += 1;
            let reply = if line.starts_with("MAIL") {
                accepted = 0;
                "250 2.1.0 ok\r\n"
            } else if line.starts_with("RCPT") && line.contains("reject") {
                "550 5.1.1 no such user\r\n"
            } else if line.starts_with("RCPT") {
                accepted += 1;
                "250 2.1.5 ok\r\n"
            } else if line.starts_with("DATA") && accepted == 0 {
                "554 5.5.1 no valid recipients\r\n"
            } else if line.starts_with("DATA") {
                write.write_all(b"354 go ahead\r\n").await.unwrap();
                let mut body = String::new();
                loop {
                    line.clear();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return seen;
                    }
                    lines += 1;
                    if line == ".\r\n" {
                        break;
                    }
                    body.push_str(&line);
                }
                if read.buffer().starts_with(b"MAIL") {
                    seen.merged += 1;
                } else {
                    seen.alone += 1;
                }
                let n = seen.bodies.len();
                seen.bodies.push(body);
                if lines == stop_after {
                    return seen;
                }
                write
                    .write_all(format!("{}\r\n", finals[n]).as_bytes())
                    .await
                    .unwrap();
                continue;
            } else {
                "250 2.0.0 ok\r\n"
            };
            write.write_all(reply.as_bytes()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn end_of_data_goes_out_with_the_next_transaction() {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(scripted_server(
            theirs,
            vec!["250 2.0.0 one", "451 4.3.0 two later", "250 2.0.0 four"],
            usize::MAX,
        ));
        let mut client = pipelining_client(ours);
        let transactions = [
            transaction(&["b@ext.example"], b"Subject: one\r\n\r\n.dot\r\n"),
            transaction(&["reject@ext.example", "c@ext.example"], b"two\r\n"),
            transaction(&["reject@ext.example"], b"three\r\n"),
            transaction(&["d@ext.example"], b"four"),
        ];
        let (done, error) =
            tokio::time::timeout(Duration::from_secs(10), client.send_all(&transactions))
                .await
                .expect("send_all finishes");
        assert!(error.is_none(), "{error:?}");
        let summary: Vec<(Vec<u16>, Option<u16>)> = done
            .iter()
            .map(|(replies, last)| {
                let codes = replies
                    .iter()
                    .map(|r| match r {
                        RcptReply::Accepted(r) | RcptReply::Rejected(r) => r.code,
                        RcptReply::Refused(_) => 0,
                    })
                    .collect();
                (codes, last.as_ref().map(|r| r.code))
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (vec![250], Some(250)),
                (vec![550, 250], Some(451)),
                (vec![550], None),
                (vec![250], Some(250)),
            ]
        );
        drop(client);
        let seen = server.await.unwrap();
        // One, two: followed by the next MAIL in the same write; four is
        // the last and goes alone (three had no data).
        assert_eq!((seen.merged, seen.alone), (2, 1));
        assert_eq!(
            seen.bodies,
            vec!["Subject: one\r\n\r\n..dot\r\n", "two\r\n", "four\r\n"]
        );
    }

    #[tokio::test]
    async fn a_connection_lost_before_a_held_reply_leaves_that_message_in_flight() {
        // Lines: MAIL, RCPT, DATA, body, "." of one; then the server reads
        // MAIL of two and closes without answering one's data.
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(scripted_server(theirs, vec!["250 ok"], 5));
        let mut client = pipelining_client(ours);
        let transactions = [
            transaction(&["b@ext.example"], b"one\r\n"),
            transaction(&["c@ext.example"], b"two\r\n"),
        ];
        let (done, error) = client.send_all(&transactions).await;
        assert!(done.is_empty(), "{done:?}");
        assert!(matches!(error, Some(ClientError::Io(..))), "{error:?}");
        assert_eq!(server.await.unwrap().bodies.len(), 1);

        // Here one is answered and the server closes after two's data.
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(scripted_server(theirs, vec!["250 ok", "250 ok"], 10));
        let mut client = pipelining_client(ours);
        let (done, error) = client.send_all(&transactions).await;
        assert_eq!(done.len(), 1, "{done:?}");
        assert_eq!(done[0].1.as_ref().map(|r| r.code), Some(250));
        assert!(error.is_some());
        assert_eq!(server.await.unwrap().bodies.len(), 2);
    }

    #[tokio::test]
    async fn malformed_replies_are_errors() {
        // Longer than MAX_REPLY_LINE: cut, the rest would pass for the
        // next reply.
        let mut long = b"250 ".to_vec();
        long.extend_from_slice(&[b'x'; MAX_REPLY_LINE]);
        long.extend_from_slice(b"\r\n250 smuggled\r\n");
        for wire in [
            &b"hello\r\n"[..],
            b"250-a\r\n251 b\r\n",
            b"250-a\r\n",
            &long,
        ] {
            let mut r = BufReader::new(wire);
            assert!(read_reply(&mut r, "x").await.is_err(), "{:?}", &wire[..20]);
        }
    }

    #[tokio::test]
    async fn the_data_timeout_is_per_write_not_per_message() {
        // 1 MiB to a reader taking 8 KiB every 5 ms (about 1.6 MB/s):
        // about 0.6 s in all, every write under the 300 ms limit.
        let content = b"0123456789abcdef\r\n".repeat(1 << 16);
        let (ours, mut theirs) = tokio::io::duplex(16 * 1024);
        let mut client = pipelining_client(ours);
        client.data_timeout = Duration::from_millis(300);
        let reader = tokio::spawn(async move {
            let mut got = 0usize;
            let mut buf = vec![0u8; 8 * 1024];
            loop {
                match theirs.read(&mut buf).await {
                    Ok(0) | Err(_) => return got,
                    Ok(n) => got += n,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let started = std::time::Instant::now();
        client.write_content(&content, false).await.unwrap();
        assert!(started.elapsed() > Duration::from_millis(300));
        drop(client);
        assert_eq!(reader.await.unwrap(), content.len() + 3);

        // A reader that stops: the next write times out.
        let (ours, _theirs) = tokio::io::duplex(16 * 1024);
        let mut client = pipelining_client(ours);
        client.data_timeout = Duration::from_millis(100);
        let err = client.write_content(&content, false).await.unwrap_err();
        assert!(matches!(err, ClientError::Timeout(..)), "{err:?}");
    }

    #[tokio::test]
    async fn a_success_to_data_is_not_a_delivery() {
        // A server that answers DATA with 250 (not 354) never saw the body:
        // the message must stay queued, whatever the server claims.
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            let (read, mut write) = tokio::io::split(theirs);
            let mut read = BufReader::new(read);
            let mut line = String::new();
            for _ in 0..3 {
                line.clear();
                if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                let reply: &[u8] = if line.starts_with("DATA") {
                    b"250 2.0.0 thanks\r\n"
                } else {
                    b"250 ok\r\n"
                };
                write.write_all(reply).await.unwrap();
            }
        });
        let mut client = pipelining_client(ours);
        let transactions = [transaction(&["b@ext.example"], b"body\r\n")];
        let (done, error) = client.send_all(&transactions).await;
        assert!(done.is_empty(), "{done:?}");
        assert!(
            matches!(&error, Some(ClientError::Protocol(_, why)) if why.contains("DATA")),
            "{error:?}"
        );
        drop(client);
        server.await.unwrap();
    }
}

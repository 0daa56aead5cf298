//! Connection framing: bytes in, command lines and message data out.
//!
//! `smtp-proto` parses commands but passes bare CR/LF through and enforces
//! no length limits, so this module owns both. It reads command lines with
//! a hard length cap, and reads DATA line by line, recognising the end of
//! data *only* as `<CRLF>.<CRLF>`: a `.` line after a bare LF, or ended by a
//! bare LF, is content, and any bare CR or LF marks the whole message for
//! rejection. A smuggled second message (CVE-2023-51764/5/6) therefore stays
//! inside the first, which is refused as a whole.
//!
//! Replies are queued and written only when the session is about to wait for
//! input, which is exactly what PIPELINING (RFC 2920) asks of a server.

use std::{io, sync::Arc, time::Duration};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::busy_poll::BusyPoll;
use crate::reply::Reply;

/// Longest text line of message data, CRLF included (RFC 5321 §4.5.3.1.6).
pub const MAX_TEXT_LINE: usize = 1000;

/// Input buffer between messages.
const COMMAND_BUFFER: usize = 1024;
/// Input buffer while message data streams in: large reads, few syscalls.
const DATA_BUFFER: usize = 64 * 1024;

/// What reading one command line produced.
#[derive(Debug)]
pub enum CommandLine {
    /// A complete line, CRLF included.
    Line(BytesMut),
    /// A line over the cap; it was read to its end and dropped.
    TooLong,
    /// A line ended by a bare LF or containing a bare CR.
    Malformed,
    /// The client closed the connection.
    Eof,
    /// Nothing arrived within the idle timeout.
    Timeout,
    /// The server is shutting down.
    Shutdown,
}

/// Why received message data is refused, in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataProblem {
    BareCrLf,
    LineTooLong,
    TooBig,
}

/// Message data read up to the end-of-data marker.
#[derive(Debug)]
pub struct Data {
    /// Dot-unstuffed content with CRLF line ends (empty if a problem was
    /// found: refused content is not kept).
    pub content: Vec<u8>,
    /// Octets above 127 were seen.
    pub eight_bit: bool,
    /// `Received:` headers in the message header, for loop detection.
    pub received_headers: usize,
    pub problem: Option<DataProblem>,
}

/// How reading message data ended.
#[derive(Debug)]
pub enum DataEnd {
    Complete(Data),
    Eof,
    Timeout,
    /// The server is stopping and the data did not end within the
    /// shutdown grace.
    Shutdown,
}

/// A connection's buffers around a byte stream (plain TCP or TLS).
#[derive(Debug)]
pub struct SmtpStream<S> {
    inner: S,
    input: BytesMut,
    output: Vec<u8>,
    idle_timeout: Duration,
    /// Told after each reply that the session now waits for its client.
    busy_poll: Option<Arc<BusyPoll>>,
    /// The server's stop, and how long message data still arriving then
    /// may take to end (see [`SmtpStream::read_data`]).
    shutdown: Option<(CancellationToken, Duration)>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SmtpStream<S> {
    pub fn new(inner: S, idle_timeout: Duration) -> Self {
        SmtpStream {
            inner,
            // Small: most connections idle between short commands, and
            // ten thousand of them must fit in a few tens of megabytes.
            // DATA grows the buffer while it runs (see `read_data`).
            input: BytesMut::with_capacity(COMMAND_BUFFER),
            output: Vec::with_capacity(256),
            idle_timeout,
            busy_poll: None,
            shutdown: None,
        }
    }

    /// Ends message data still arriving `grace` after `shutdown` (see
    /// [`DataEnd::Shutdown`]).
    pub fn with_shutdown(mut self, shutdown: CancellationToken, grace: Duration) -> Self {
        self.shutdown = Some((shutdown, grace));
        self
    }

    /// Reports each written reply to `poll` (see [`BusyPoll::after_reply`]).
    pub fn with_busy_poll(mut self, poll: Arc<BusyPoll>) -> Self {
        self.busy_poll = Some(poll);
        self
    }

    /// Queues a reply; it is sent before the next wait for input.
    pub fn queue(&mut self, reply: &Reply) {
        reply.write_to(&mut self.output);
    }

    /// Writes queued replies now.
    ///
    /// # Errors
    /// `TimedOut` if the client has not taken them within the idle timeout:
    /// a client that sends commands but never reads the replies would
    /// otherwise hold its connection (and a graceful shutdown) for ever.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.output.is_empty() {
            let (inner, output) = (&mut self.inner, &self.output);
            let write = async {
                inner.write_all(output).await?;
                inner.flush().await
            };
            match tokio::time::timeout(self.idle_timeout, write).await {
                Ok(written) => written?,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client did not read our replies within smtp.idle_timeout",
                    ));
                }
            }
            self.output.clear();
            if let Some(poll) = &self.busy_poll {
                poll.after_reply();
            }
        }
        Ok(())
    }

    /// Drops input the client sent ahead of a reply that changes the
    /// connection (STARTTLS: RFC 3207 §4.2 forbids acting on it, the
    /// plaintext command injection of CVE-2011-0411). Returns the count.
    pub fn discard_input(&mut self) -> usize {
        let n = self.input.len();
        self.input.clear();
        n
    }

    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Reads more input, first sending queued replies.
    ///
    /// # Cancel safety
    /// Cancel safe: `read_buf` either appended bytes or did not.
    async fn fill(&mut self) -> io::Result<Fill> {
        self.flush().await?;
        match tokio::time::timeout(self.idle_timeout, self.inner.read_buf(&mut self.input)).await {
            Err(_) => Ok(Fill::Timeout),
            Ok(Ok(0)) => Ok(Fill::Eof),
            Ok(Ok(_)) => Ok(Fill::Data),
            Ok(Err(e)) => Err(e),
        }
    }

    /// Reads one command line of at most `max` octets (CRLF included).
    ///
    /// # Cancel safety
    /// Cancel safe; bytes already read stay buffered.
    pub async fn read_command(
        &mut self,
        max: usize,
        shutdown: &CancellationToken,
    ) -> io::Result<CommandLine> {
        let mut discarding = false;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.input) {
                let line = self.input.split_to(i + 1);
                if discarding || line.len() > max {
                    return Ok(CommandLine::TooLong);
                }
                let body = &line[..line.len() - 1];
                if body.last() != Some(&b'\r') || body[..body.len() - 1].contains(&b'\r') {
                    return Ok(CommandLine::Malformed);
                }
                return Ok(CommandLine::Line(line));
            }
            if self.input.len() > max {
                discarding = true;
                self.input.clear();
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(CommandLine::Shutdown),
                fill = self.fill() => match fill? {
                    Fill::Data => {}
                    Fill::Eof => return Ok(CommandLine::Eof),
                    Fill::Timeout => return Ok(CommandLine::Timeout),
                    Fill::Shutdown => return Ok(CommandLine::Shutdown),
                },
            }
        }
    }

    /// Reads message data after `354` up to `<CRLF>.<CRLF>`, keeping at
    /// most `max_size` octets of content. Oversized, over-long-line and
    /// bare CR/LF messages are read to their end and reported, so the
    /// client gets a reply in step with the protocol.
    ///
    /// The content starts with `prefix` (our Received header), which does
    /// not count against `max_size`, so the content is built in one buffer
    /// and never copied to add the header.
    pub async fn read_data(
        &mut self,
        prefix: Vec<u8>,
        max_size: usize,
        size_hint: usize,
    ) -> io::Result<DataEnd> {
        self.input.reserve(DATA_BUFFER);
        let result = self.read_data_inner(prefix, max_size, size_hint).await;
        if self.input.is_empty() && self.input.capacity() > 4 * COMMAND_BUFFER {
            self.input = BytesMut::with_capacity(COMMAND_BUFFER);
        }
        result
    }

    async fn read_data_inner(
        &mut self,
        prefix: Vec<u8>,
        max_size: usize,
        size_hint: usize,
    ) -> io::Result<DataEnd> {
        let base = prefix.len();
        let mut content = prefix;
        content.reserve(size_hint.min(max_size).max(4096));
        let mut data = Data {
            content,
            eight_bit: false,
            received_headers: 0,
            problem: None,
        };
        let mut bare = false;
        let mut too_long = false;
        let mut too_big = false;
        // The start of data counts as following a CRLF (the one of "DATA").
        let mut after_crlf = true;
        let mut in_headers = true;
        // The current line passed the length cap and was partly dropped.
        let mut long_line = false;
        // When the data must end because the server is stopping.
        let mut stop_at = None;
        loop {
            while let Some(i) = memchr::memchr(b'\n', &self.input) {
                let line = self.input.split_to(i + 1);
                let was_long = std::mem::take(&mut long_line);
                let crlf = line.len() >= 2 && line[line.len() - 2] == b'\r';
                if crlf && after_crlf && !was_long && &line[..] == b".\r\n" {
                    data.problem = if bare {
                        Some(DataProblem::BareCrLf)
                    } else if too_long {
                        Some(DataProblem::LineTooLong)
                    } else if too_big {
                        Some(DataProblem::TooBig)
                    } else {
                        None
                    };
                    if data.problem.is_some() {
                        data.content = Vec::new();
                    }
                    return Ok(DataEnd::Complete(data));
                }
                let text_end = line.len() - if crlf { 2 } else { 1 };
                if !crlf || line[..text_end].contains(&b'\r') {
                    bare = true;
                }
                // The dot added by transparency (RFC 5321 §4.5.2) does not
                // count against the limit (§4.5.3.1.6).
                let stuffed = usize::from(line.first() == Some(&b'.'));
                if was_long || line.len() - stuffed > MAX_TEXT_LINE {
                    too_long = true;
                }
                if in_headers {
                    if text_end == 0 {
                        in_headers = false;
                    } else if line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:") {
                        data.received_headers += 1;
                    }
                }
                if bare || too_long || too_big {
                    after_crlf = crlf;
                    continue;
                }
                let payload = if line.first() == Some(&b'.') {
                    &line[1..]
                } else {
                    &line[..]
                };
                if data.content.len() - base + payload.len() > max_size {
                    too_big = true;
                    data.content = Vec::new();
                } else {
                    data.eight_bit |= !payload.is_ascii();
                    data.content.extend_from_slice(payload);
                }
                after_crlf = crlf;
            }
            if self.input.len() > MAX_TEXT_LINE {
                // Keep the last octet: it may be the CR of the line's CRLF.
                long_line = true;
                let last = self.input[self.input.len() - 1];
                self.input.clear();
                self.input.put_u8(last);
            }
            match self.fill_data(&mut stop_at).await? {
                Fill::Data => {}
                Fill::Eof => return Ok(DataEnd::Eof),
                Fill::Timeout => return Ok(DataEnd::Timeout),
                Fill::Shutdown => return Ok(DataEnd::Shutdown),
            }
        }
    }

    /// [`SmtpStream::fill`] for message data: when the server stops, the
    /// data has until `grace` later to end (`stop_at`, fixed the first
    /// time the stop is seen), and then reading it ends with
    /// [`Fill::Shutdown`]. Data that ends in time is taken as usual.
    ///
    /// # Cancel safety
    /// Cancel safe, like `fill`: the replies are flushed before the race,
    /// and `read_buf` either appended bytes or did not.
    async fn fill_data(&mut self, stop_at: &mut Option<tokio::time::Instant>) -> io::Result<Fill> {
        let Some((shutdown, grace)) = self.shutdown.clone() else {
            return self.fill().await;
        };
        self.flush().await?;
        let stopped = async {
            shutdown.cancelled().await;
            let deadline = *stop_at.get_or_insert_with(|| tokio::time::Instant::now() + grace);
            tokio::time::sleep_until(deadline).await;
        };
        tokio::select! {
            biased;
            _ = stopped => Ok(Fill::Shutdown),
            fill = self.fill() => fill,
        }
    }
}

enum Fill {
    Data,
    Eof,
    Timeout,
    /// The server stopped and the shutdown grace ran out.
    Shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn data_of(wire: &[u8]) -> (DataEnd, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(wire).await.unwrap();
        drop(client);
        let mut s = SmtpStream::new(server, Duration::from_secs(5));
        let end = s.read_data(Vec::new(), 1 << 20, 0).await.unwrap();
        let rest = s.input.to_vec();
        (end, rest)
    }

    fn complete(end: DataEnd) -> Data {
        match end {
            DataEnd::Complete(d) => d,
            other => panic!("expected complete data, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unstuffs_and_stops_at_crlf_dot_crlf() {
        let (end, rest) =
            data_of(b"Subject: x\r\n\r\n..leading dot\r\nbody\r\n.\r\nQUIT\r\n").await;
        let d = complete(end);
        assert_eq!(d.problem, None);
        assert_eq!(d.content, b"Subject: x\r\n\r\n.leading dot\r\nbody\r\n");
        assert_eq!(
            rest, b"QUIT\r\n",
            "bytes after the end stay for the command reader"
        );
    }

    #[tokio::test]
    async fn smuggling_variants_never_end_data_early() {
        for smuggle in [
            &b"a\r\n\n.\n"[..],
            b"a\r\n.\n",
            b"a\n.\r\n",
            b"a\r.\r\n",
            b"a\r\n.\r\r\n",
        ] {
            let mut wire = smuggle.to_vec();
            wire.extend_from_slice(
                b"MAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n.\r\nQUIT\r\n",
            );
            let (end, rest) = data_of(&wire).await;
            let d = complete(end);
            assert_eq!(d.problem, Some(DataProblem::BareCrLf), "{smuggle:?}");
            assert_eq!(
                rest, b"QUIT\r\n",
                "{smuggle:?}: the smuggled commands were swallowed as data"
            );
        }
    }

    #[tokio::test]
    async fn long_lines_and_oversize_are_reported_after_the_end() {
        let mut wire = vec![b'x'; 5000];
        wire.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(
            complete(data_of(&wire).await.0).problem,
            Some(DataProblem::LineTooLong)
        );

        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut wire = Vec::new();
        for _ in 0..100 {
            wire.extend_from_slice(&[b'y'; 98]);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b".\r\n");
        client.write_all(&wire).await.unwrap();
        let mut s = SmtpStream::new(server, Duration::from_secs(5));
        let d = complete(
            s.read_data(b"Received: x\r\n".to_vec(), 5_000, 0)
                .await
                .unwrap(),
        );
        assert_eq!(d.problem, Some(DataProblem::TooBig));
        assert!(d.content.is_empty());
    }

    #[tokio::test]
    async fn the_transparency_dot_does_not_count_against_the_line_limit() {
        // 998 octets of text plus CRLF is the longest line; a leading dot
        // doubled on the wire makes it 1001 octets there, and it is fine.
        let mut wire = b"..".to_vec();
        wire.extend_from_slice(&[b'z'; 997]);
        wire.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(wire.len() - 3, 1001);
        let d = complete(data_of(&wire).await.0);
        assert_eq!(d.problem, None);
        assert_eq!(d.content.len(), 1000);
        assert!(d.content.starts_with(b".z"));

        // One more octet of text is over the limit, dot or no dot.
        let mut wire = b"..".to_vec();
        wire.extend_from_slice(&[b'z'; 998]);
        wire.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(
            complete(data_of(&wire).await.0).problem,
            Some(DataProblem::LineTooLong)
        );
    }

    #[tokio::test]
    async fn a_client_that_never_reads_its_replies_times_out() {
        // A 64-octet pipe the client never drains: the replies cannot all
        // be written, and the flush gives up after the idle timeout.
        let (_client, server) = tokio::io::duplex(64);
        let mut s = SmtpStream::new(server, Duration::from_millis(100));
        for _ in 0..20 {
            s.queue(&crate::reply::OK);
        }
        let started = std::time::Instant::now();
        let err = s.flush().await.expect_err("flush must not wait for ever");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn counts_received_headers_and_eight_bit() {
        let d = complete(
            data_of(
                "Received: a\r\nreceived: b\r\nSubject: é\r\n\r\nReceived: body\r\n.\r\n"
                    .as_bytes(),
            )
            .await
            .0,
        );
        assert_eq!(d.received_headers, 2);
        assert!(d.eight_bit);
    }

    #[tokio::test]
    async fn command_lines() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut wire = b"NOOP\r\nNOOP\n".to_vec();
        wire.extend_from_slice(&[b'A'; 600]);
        wire.extend_from_slice(b"\r\nQUIT\r\n");
        client.write_all(&wire).await.unwrap();
        let mut s = SmtpStream::new(server, Duration::from_secs(5));
        let t = CancellationToken::new();
        assert!(
            matches!(s.read_command(512, &t).await.unwrap(), CommandLine::Line(l) if &l[..] == b"NOOP\r\n")
        );
        assert!(matches!(
            s.read_command(512, &t).await.unwrap(),
            CommandLine::Malformed
        ));
        assert!(matches!(
            s.read_command(512, &t).await.unwrap(),
            CommandLine::TooLong
        ));
        assert!(
            matches!(s.read_command(512, &t).await.unwrap(), CommandLine::Line(l) if &l[..] == b"QUIT\r\n")
        );
        drop(client);
        assert!(matches!(
            s.read_command(512, &t).await.unwrap(),
            CommandLine::Eof
        ));
    }
}

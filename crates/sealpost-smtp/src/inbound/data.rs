//! DATA: read the message within its limits, hand it to the intake
//! ([`sealpost_intake::Intake::accept`]: decisions, secure plan, commit),
//! answer, then release it to the delivery worker.
//!
//! The order is the durability contract of SPEC §5.2: the reply `250` is
//! queued only after the intake returned, and it returns only after the
//! commit is fsync'd. Anything that fails before answers `451` (`4.3.0`,
//! or `4.3.5` when secure delivery cannot be prepared), and the client
//! keeps responsibility for the message. Only a committed message is
//! handed over (`sealpost_store::handoff`).

use std::time::{Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite};

use sealpost_intake::{EnvelopeRecipient, IntakeError, Submission};
use sealpost_policy::text::one_line;
use sealpost_store::ClientInfo;

use super::{
    io::{DataEnd, DataProblem, SmtpStream},
    session::{Flow, Session, Transaction},
};
use crate::reply;

impl Session {
    pub(super) async fn data<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut SmtpStream<S>,
    ) -> std::io::Result<Flow> {
        let Some(transaction) = self.transaction.as_ref() else {
            self.reject(stream, &reply::NEED_MAIL, "bad_sequence");
            return Ok(Flow::Continue);
        };
        if !transaction.rcpt_given {
            self.reject(stream, &reply::NEED_RCPT, "bad_sequence");
            return Ok(Flow::Continue);
        }
        if transaction.recipients.is_empty() {
            self.reject(stream, &reply::NO_VALID_RECIPIENTS, "bad_sequence");
            return Ok(Flow::Continue);
        }
        let received = self.received_header(transaction);
        stream.queue(&reply::START_DATA);
        let end = stream
            .read_data(
                received,
                self.inbound.config.max_message_size,
                transaction.size_hint,
            )
            .await?;
        let transaction = self.transaction.take().expect("checked above");
        let xforward = std::mem::take(&mut self.xforward);
        let data = match end {
            DataEnd::Complete(data) => data,
            DataEnd::Eof => return Ok(Flow::Close),
            DataEnd::Timeout => {
                stream.queue(&reply::IDLE_TIMEOUT);
                return Ok(Flow::Close);
            }
            DataEnd::Shutdown => {
                // Not taken: the client keeps the message and retries.
                metrics::counter!("sealpost_smtp_rejected_total", "reason" => "shutting_down")
                    .increment(1);
                stream.queue(&reply::SHUTTING_DOWN);
                return Ok(Flow::Close);
            }
        };
        match data.problem {
            Some(DataProblem::BareCrLf) => {
                self.reject(stream, &reply::BARE_CR_LF, "bare_lf");
                return Ok(Flow::Continue);
            }
            Some(DataProblem::LineTooLong) => {
                self.reject(stream, &reply::DATA_LINE_TOO_LONG, "line_too_long");
                return Ok(Flow::Continue);
            }
            Some(DataProblem::TooBig) => {
                self.reject(stream, &reply::MESSAGE_TOO_BIG, "message_too_big");
                return Ok(Flow::Continue);
            }
            None => {}
        }
        if data.received_headers > self.inbound.config.max_received_headers {
            self.reject(stream, &reply::TOO_MANY_HOPS, "mail_loop");
            return Ok(Flow::Continue);
        }
        // Submission: the header From must be the account's too; refused
        // here, before anything is stored.
        if let Some(refusal) = self.submission_header_from(&data.content) {
            self.reject(stream, &refusal, "sender_not_allowed");
            return Ok(Flow::Continue);
        }

        let started = Instant::now();
        let submission = Submission {
            id: transaction.id,
            received_at: SystemTime::now(),
            sender: transaction.sender,
            recipients: transaction
                .recipients
                .into_iter()
                .map(|r| EnvelopeRecipient {
                    address: r.address,
                    orcpt: r.orcpt,
                    notify: r.notify,
                })
                .collect(),
            client: ClientInfo {
                ip: xforward.addr.unwrap_or(self.peer.ip()),
                name: xforward.name,
                helo: xforward.helo.or_else(|| self.helo.clone()),
                protocol: xforward
                    .proto
                    .unwrap_or_else(|| self.protocol(transaction.smtputf8)),
            },
            portal_reply: None,
            body_8bit: transaction.body_8bit || data.eight_bit,
            smtputf8: transaction.smtputf8,
            env_id: transaction.env_id,
            ret: transaction.ret,
            content: data.content,
            smtp_account: self.account_name(),
        };
        // For the log: a quoted local part may hold tabs, runs of spaces
        // and C1 controls, and tracing's fmt output writes `%` fields raw.
        let sender = submission
            .sender
            .as_ref()
            .map_or_else(String::new, |s| one_line(s.as_str(), 200));
        let (rcpt_count, size) = (submission.recipients.len(), submission.content.len());
        // Alone (this is the only open transaction): nothing would share
        // a group commit, so the store may commit on this thread.
        let alone = self.inbound.open_transactions.count() <= 1;
        match self.inbound.intake.accept(submission, alone).await {
            Ok(accepted) => {
                let accept_seconds = started.elapsed().as_secs_f64();
                // The client waits for this reply: it goes out before the
                // bookkeeping (a log line is a write of its own).
                stream.queue(&reply::queued(accepted.id.as_str()));
                let sent = stream.flush().await;
                let (id, secure) = (accepted.id.clone(), accepted.secure_recipients);
                accepted.release();
                metrics::counter!("sealpost_smtp_messages_accepted_total").increment(1);
                metrics::histogram!("sealpost_smtp_accept_seconds").record(accept_seconds);
                tracing::info!(queue_id = %id, from = %sender, recipients = rcpt_count, secure, size, "accepted");
                sent?;
            }
            Err(e @ (IntakeError::SecureUnavailable(_) | IntakeError::ClearReply(_))) => {
                // Fail closed: never relay what was to be sealed. (SMTP
                // submits no portal reply, so ClearReply cannot come here.)
                tracing::error!(error = %e, "secure delivery unavailable; answered 451");
                metrics::counter!("sealpost_smtp_rejected_total", "reason" => "secure_unavailable")
                    .increment(1);
                stream.queue(&reply::SECURE_UNAVAILABLE);
            }
            Err(IntakeError::Store(e)) => {
                tracing::error!(error = %e, "could not store message; answered 451");
                metrics::counter!("sealpost_smtp_rejected_total", "reason" => "store_unavailable")
                    .increment(1);
                stream.queue(&reply::STORE_UNAVAILABLE);
            }
        }
        Ok(Flow::Continue)
    }

    /// Our trace header (RFC 5321 §4.4), describing this hop as it really
    /// happened: the connecting peer, not an XFORWARD client (the filter
    /// that forwarded already wrote that one).
    fn received_header(&self, transaction: &Transaction) -> Vec<u8> {
        let helo = self.helo.as_deref().map(header_safe).unwrap_or_default();
        let ip = match self.peer.ip() {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("IPv6:{v6}"),
        };
        let config = &self.inbound.config;
        let mut header = format!(
            "Received: from {helo} ([{ip}])\r\n\tby {} (sealpost) with {} id {}",
            config.hostname,
            self.protocol(transaction.smtputf8),
            transaction.id
        );
        if let [only] = transaction.recipients.as_slice() {
            header.push_str(&format!("\r\n\tfor <{}>", only.address));
        }
        let date = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap_or_default();
        header.push_str(&format!("; {date}\r\n"));
        header.into_bytes()
    }
}

/// Client-supplied text made safe for a header: printable ASCII, bounded.
fn header_safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect()
}

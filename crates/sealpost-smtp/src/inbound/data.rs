//! DATA: read the message, route each recipient, commit, answer, and hand
//! the message to the delivery worker.
//!
//! The order is the durability contract of SPEC §5.2: the reply `250` is
//! queued only after [`sealpost_store::Store::accept`] (or `accept_alone`,
//! when this is the only open transaction) returned, and that returns only
//! after the commit is fsync'd. Anything that fails before answers `451
//! 4.3.0`, and the client keeps responsibility for the message. Only a
//! committed message is handed over (`sealpost_store::handoff`).

use std::time::{Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite};

use sealpost_policy::{DecisionInput, EmailAddress, decide, text::one_line};
use sealpost_secure::{plan::prepare, trigger};
use sealpost_store::{ClientInfo, MessageKind, NewMessage, NewRecipient};

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

        let started = Instant::now();
        let now = SystemTime::now();
        let client_ip = xforward.addr.unwrap_or(self.peer.ip());
        // The header block, read once: the From for policies based on the
        // header, the subject and the sender's own request for prepare().
        let facts = trigger::inspect(&data.content, &self.inbound.config.secure.subject_tag);
        let header_from = facts
            .from_address
            .as_deref()
            .and_then(|a| EmailAddress::parse(a).ok());
        let policy = self.inbound.policy.load();
        let recipients = transaction
            .recipients
            .into_iter()
            .map(|r| {
                let decision = decide(
                    &policy,
                    &DecisionInput {
                        envelope_from: transaction.sender.as_ref(),
                        header_from: header_from.as_ref(),
                        recipient: &r.address,
                        client_ip,
                        now,
                    },
                );
                NewRecipient {
                    address: r.address,
                    orcpt: r.orcpt,
                    notify: r.notify,
                    decision,
                }
            })
            .collect::<Vec<_>>();
        let rcpt_count = recipients.len();
        let size = data.content.len();
        let message = NewMessage {
            id: transaction.id,
            received_at: now,
            sender: transaction.sender,
            client: ClientInfo {
                ip: client_ip,
                name: xforward.name,
                helo: xforward.helo.or_else(|| self.helo.clone()),
                protocol: xforward
                    .proto
                    .unwrap_or_else(|| self.protocol(transaction.smtputf8)),
            },
            content: data.content,
            body_8bit: transaction.body_8bit || data.eight_bit,
            smtputf8: transaction.smtputf8,
            env_id: transaction.env_id,
            ret: transaction.ret,
            expires_at: now + self.inbound.config.queue_lifetime,
            kind: MessageKind::Mail,
            recipients,
            subject: None,
            parent: None,
            secure: Vec::new(),
            attached: Vec::new(),
            claim: None,
        };
        let mut message = message;
        let prepared = prepare(&policy, &self.inbound.config.secure, &mut message, facts);
        drop(policy);
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                // Fail closed: never relay what was to be sealed.
                tracing::error!(error = %e, "secure delivery unavailable; answered 451");
                metrics::counter!("sealpost_smtp_rejected_total", "reason" => "secure_unavailable")
                    .increment(1);
                stream.queue(&reply::SECURE_UNAVAILABLE);
                return Ok(Flow::Continue);
            }
        };
        // For the log: a quoted local part may hold tabs, runs of spaces
        // and C1 controls, and tracing's fmt output writes `%` fields raw.
        let sender = message
            .sender
            .as_ref()
            .map_or_else(String::new, |s| one_line(s.as_str(), 200));
        // Handed straight to the delivery worker when it can take it; the
        // worker is woken for what it must lease (notifications) or when
        // the message was not handed over.
        let claimed = self
            .inbound
            .handoff
            .as_ref()
            .and_then(|h| h.claim(&mut message, now));
        let wake_worker = claimed.is_none() || !message.attached.is_empty();
        // Alone (this is the only open transaction): nothing would share
        // a group commit, so the store may commit on this thread.
        let stored = if self.inbound.open_transactions.count() <= 1 {
            self.inbound.store.accept_alone(message).await
        } else {
            self.inbound.store.accept(message).await
        };
        match stored {
            Ok(id) => {
                let accept_seconds = started.elapsed().as_secs_f64();
                // The client waits for this reply: it goes out before the
                // bookkeeping (a log line is a write of its own).
                stream.queue(&reply::queued(id.as_str()));
                let sent = stream.flush().await;
                // Committed, so handed over even if the client has gone.
                if let Some(claimed) = claimed {
                    claimed.hand_over();
                }
                if wake_worker {
                    self.inbound.queue_wakeup.notify_one();
                }
                metrics::counter!("sealpost_smtp_messages_accepted_total").increment(1);
                if prepared.secure_recipients > 0 {
                    metrics::counter!("sealpost_secure_recipients_total")
                        .increment(prepared.secure_recipients as u64);
                }
                metrics::histogram!("sealpost_smtp_accept_seconds").record(accept_seconds);
                tracing::info!(queue_id = %id, from = %sender, recipients = rcpt_count, secure = prepared.secure_recipients, size, "accepted");
                sent?;
            }
            Err(e) => {
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

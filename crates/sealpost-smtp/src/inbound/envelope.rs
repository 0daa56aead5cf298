//! MAIL and RCPT: the envelope, its DSN parameters, and relay control.
//!
//! Relay control (SPEC §5.1): a recipient in an internal domain is accepted
//! from anyone; any other recipient only from `smtp.relay_networks` (on
//! the port-25 listener) or an authenticated client (on a submission
//! listener, where MAIL needs AUTH first; see [`super::auth`]). The
//! check uses the connecting socket's address, never an XFORWARD address,
//! so a forwarded client can never widen what the peer may do.

use std::borrow::Cow;

use smtp_proto::{
    MAIL_BODY_7BIT, MAIL_BODY_8BITMIME, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8, MailFrom,
    RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS, RcptTo,
};
use tokio::io::{AsyncRead, AsyncWrite};

use sealpost_policy::{EmailAddress, text::one_line};
use sealpost_store::{DsnReturn, Notify, QueueId};

use super::{
    io::SmtpStream,
    session::{PendingRecipient, Session, Transaction},
};
use crate::reply;

impl Session {
    /// `raw_path` is what the client wrote between `<` and `>`.
    pub(super) fn mail<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        from: MailFrom<Cow<'_, str>>,
        raw_path: &[u8],
        stream: &mut SmtpStream<S>,
    ) {
        if self.helo.is_none() {
            return self.reject(stream, &reply::NEED_HELO, "bad_sequence");
        }
        if self.transaction.is_some() {
            return self.reject(stream, &reply::NESTED_MAIL, "bad_sequence");
        }
        if !only_offered_mail_parameters(&from, self.is_submission()) {
            return self.reject(stream, &reply::UNSUPPORTED_PARAMETER, "syntax");
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        let sender = if from.address.is_empty() {
            // `smtp-proto` reads `<postmaster>` as `<>` too. A reverse path
            // is a full mailbox or null (RFC 5321 §4.1.2), and taking a
            // bare `postmaster` for `<>` would silently drop its DSNs.
            if !raw_path.is_empty() {
                return self.reject(stream, &reply::BAD_SENDER, "bad_address");
            }
            None
        } else {
            match EmailAddress::parse(&from.address) {
                Ok(a) if a.is_utf8() && !smtputf8 => {
                    return self.reject(stream, &reply::NEED_SMTPUTF8, "bad_address");
                }
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::debug!(error = %e, "bad sender address");
                    return self.reject(stream, &reply::BAD_SENDER, "bad_address");
                }
            }
        };
        if from.size > self.inbound.config.max_message_size {
            return self.reject(stream, &reply::MESSAGE_TOO_BIG, "message_too_big");
        }
        if let Some((reply, reason)) = self.submission_sender(sender.as_ref()) {
            return self.reject(stream, &reply, reason);
        }
        let ret = if from.flags & MAIL_RET_FULL != 0 {
            Some(DsnReturn::Full)
        } else if from.flags & MAIL_RET_HDRS != 0 {
            Some(DsnReturn::Headers)
        } else {
            None
        };
        self.transaction = Some(Transaction {
            id: QueueId::generate(),
            sender,
            size_hint: from.size,
            body_8bit: from.flags & MAIL_BODY_8BITMIME != 0,
            smtputf8,
            env_id: from.env_id.map(Cow::into_owned),
            ret,
            recipients: Vec::new(),
            rcpt_given: false,
            _open: self.inbound.open_transactions.open(),
        });
        stream.queue(&reply::SENDER_OK);
    }

    /// `raw_path` is what the client wrote between `<` and `>`.
    pub(super) fn rcpt<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        to: RcptTo<Cow<'_, str>>,
        raw_path: &[u8],
        stream: &mut SmtpStream<S>,
    ) {
        let max_recipients = self.inbound.config.max_recipients;
        let Some(transaction) = self.transaction.as_ref() else {
            return self.reject(stream, &reply::NEED_MAIL, "bad_sequence");
        };
        if to.flags & !NOTIFY_FLAGS != 0 || to.rrvs != 0 {
            // RRVS, CONNEG: extensions we never offered.
            return self.reject(stream, &reply::UNSUPPORTED_PARAMETER, "syntax");
        }
        if to.flags & RCPT_NOTIFY_NEVER != 0 && to.flags & NOTIFY_FLAGS != RCPT_NOTIFY_NEVER {
            return self.reject(stream, &reply::NOTIFY_NEVER_ALONE, "syntax");
        }
        if transaction.recipients.len() >= max_recipients {
            metrics::counter!("sealpost_smtp_rejected_total", "reason" => "too_many_recipients")
                .increment(1);
            stream.queue(&reply::TOO_MANY_RECIPIENTS);
            return;
        }
        let smtputf8 = transaction.smtputf8;
        // `smtp-proto` reads the bare `<postmaster>` that RFC 5321 §4.5.1
        // says we must accept as an empty address: it is the postmaster of
        // the organisation, at the first of its internal domains.
        let postmaster;
        let given = if to.address.is_empty() && raw_path.eq_ignore_ascii_case(b"postmaster") {
            let policy = self.inbound.intake.policy.load();
            let Some(domain) = policy.internal_domains().iter().next() else {
                return self.reject(stream, &reply::NO_POSTMASTER, "bad_address");
            };
            postmaster = format!("postmaster@{}", domain.domain());
            postmaster.as_str()
        } else {
            &to.address
        };
        let address = match EmailAddress::parse(given) {
            Ok(a) if a.is_utf8() && !smtputf8 => {
                return self.reject(stream, &reply::NEED_SMTPUTF8, "bad_address");
            }
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "bad recipient address");
                return self.reject(stream, &reply::BAD_RECIPIENT, "bad_address");
            }
        };
        let internal = self
            .inbound
            .intake
            .policy
            .load()
            .internal_domains()
            .is_internal(&address);
        if !internal && !self.may_relay() {
            // One clean line: the address is the client's (quoted local
            // parts allow tabs and C1 controls).
            let recipient = one_line(address.as_str(), 200);
            tracing::info!(%recipient, "relay denied: external recipient from a client outside smtp.relay_networks");
            return self.reject(stream, &reply::RELAY_DENIED, "relay_denied");
        }
        let mut notify = 0u8;
        for (flag, bit) in [
            (RCPT_NOTIFY_SUCCESS, Notify::SUCCESS),
            (RCPT_NOTIFY_FAILURE, Notify::FAILURE),
            (RCPT_NOTIFY_DELAY, Notify::DELAY),
            (RCPT_NOTIFY_NEVER, Notify::NEVER),
        ] {
            if to.flags & flag != 0 {
                notify |= bit;
            }
        }
        let transaction = self.transaction.as_mut().expect("checked above");
        if !transaction.recipients.iter().any(|r| r.address == address) {
            transaction.recipients.push(PendingRecipient {
                address,
                orcpt: to.orcpt.map(Cow::into_owned),
                notify: Notify::from_bits(notify),
            });
        }
        stream.queue(&reply::RECIPIENT_OK);
    }
}

/// The RCPT flags of the DSN extension, the only RCPT extension we offer.
const NOTIFY_FLAGS: u64 =
    RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY | RCPT_NOTIFY_NEVER;

/// Whether MAIL used only the parameters our EHLO offers: SIZE, BODY=7BIT
/// or 8BITMIME, SMTPUTF8, and DSN's RET and ENVID. `smtp-proto` also parses
/// REQUIRETLS, BINARYMIME, AUTH, HOLDFOR and others; accepting one of
/// those and dropping it would break its promise (a REQUIRETLS message
/// relayed in clear), so RFC 5321 §4.1.1.11's `555` it is. Where AUTH is
/// offered (a submission listener) the `AUTH=` parameter is taken, as RFC
/// 4954 §5 requires, and ignored: the session's own AUTH says who sent.
fn only_offered_mail_parameters(from: &MailFrom<Cow<'_, str>>, auth_offered: bool) -> bool {
    const OFFERED: u64 =
        MAIL_BODY_7BIT | MAIL_BODY_8BITMIME | MAIL_SMTPUTF8 | MAIL_RET_FULL | MAIL_RET_HDRS;
    from.flags & !OFFERED == 0
        && from.trans_id.is_none()
        && from.by == 0
        && from.solicit.is_none()
        && from.mtrk.is_none()
        && (auth_offered || from.auth.is_none())
        && from.hold_for == 0
        && from.hold_until == 0
        && from.mt_priority == 0
}

//! Submission with SMTP AUTH (RFC 4954, RFC 6409): what a session on a
//! submission listener (`smtp.submission_listen`, `smtp.submission_tls_listen`)
//! does beyond the port-25 one.
//!
//! - AUTH PLAIN and LOGIN are offered, and accepted, only over TLS; on the
//!   port-25 listener AUTH is neither offered nor accepted (`502 5.5.1`).
//! - A client must authenticate before `MAIL FROM` (`530 5.7.0`):
//!   `smtp.relay_networks` grants nothing on a submission listener, as a
//!   production MSA requires AUTH of everyone.
//! - The account may use only its own senders in `MAIL FROM` and the header
//!   From (`553 5.7.1`; the null sender too), at most its rate of messages
//!   an hour (`450 4.7.1` at MAIL); it may relay to any domain, and its name
//!   is stored with each message it sends.
//! - Failures are answered `535 5.7.8` after a growing delay; too many lock
//!   the account name or the client IP (`454 4.7.0`, the right password
//!   included) for a while ([`guard`]).
//!
//! The password check (argon2id) is behind [`SmtpAccounts`], whose
//! implementation runs it off the runtime so a login never stalls other
//! sessions.

pub mod guard;
pub mod header_from;
pub mod rate;
pub mod sasl;

use std::{
    sync::{Arc, Mutex},
    time::{Instant, SystemTime},
};

use tokio::io::{AsyncRead, AsyncWrite};

use sealpost_policy::{EmailAddress, text::one_line};
use sealpost_store::{
    StoreError,
    smtp_accounts::{SmtpAccount, SmtpAccountName},
};

use self::{
    guard::{Guard, GuardSettings, Locked},
    header_from::HeaderFrom,
    rate::MessageRate,
    sasl::{Credentials, Mechanism, SaslError},
};
use super::{
    io::{CommandLine, SmtpStream},
    session::{Flow, Session},
};
use crate::reply::{self, Reply};

/// Longest AUTH line or SASL response read (RFC 4954 §4 asks for 12288;
/// a PLAIN response of a 256-character password needs under 700).
pub(super) const MAX_AUTH_LINE: usize = 2048;

/// Where SMTP accounts are checked: by name and password.
#[async_trait::async_trait]
pub trait SmtpAccounts: Send + Sync + std::fmt::Debug + 'static {
    /// The account named in `credentials` when the password is its own.
    /// `None` for a wrong password and for an unknown name alike, taking
    /// about the same time (no oracle for names). The hash check must run
    /// off the async runtime.
    ///
    /// # Errors
    /// The store could not be read.
    async fn verify(&self, credentials: Credentials) -> Result<Option<SmtpAccount>, StoreError>;

    /// Notes a successful AUTH (the account's last-used time). Best effort:
    /// a failure is logged, never the client's problem.
    async fn used(&self, name: &SmtpAccountName, at: SystemTime);
}

/// What the submission listeners share: the accounts, and the lockout and
/// rate state of this node.
#[derive(Debug)]
pub struct SubmissionAuth {
    pub accounts: Arc<dyn SmtpAccounts>,
    guard: Mutex<Guard>,
    rate: Mutex<MessageRate>,
}

impl SubmissionAuth {
    pub fn new(accounts: Arc<dyn SmtpAccounts>, settings: GuardSettings) -> Self {
        SubmissionAuth {
            accounts,
            guard: Mutex::new(Guard::new(settings)),
            rate: Mutex::new(MessageRate::default()),
        }
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, Guard> {
        self.guard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn give_back(&self, account: &SmtpAccount) {
        let mut rate = self
            .rate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rate.give_back(account.name.as_str(), account.rate_per_hour);
    }

    /// Takes one message of the account's hourly allowance.
    fn take_message(&self, account: &SmtpAccount, now: Instant) -> bool {
        let mut rate = self
            .rate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rate.take(account.name.as_str(), account.rate_per_hour, now)
    }
}

fn count(result: &'static str) {
    metrics::counter!("sealpost_smtp_auth_total", "result" => result).increment(1);
}

impl Session {
    /// Whether this session is on a submission listener.
    pub(super) fn is_submission(&self) -> bool {
        self.inbound.submission.is_some()
    }

    /// The EHLO keyword for AUTH, when it is offered: on a submission
    /// listener, over TLS, before authenticating.
    pub(super) fn auth_keyword(&self) -> Option<String> {
        (self.is_submission() && self.tls && self.account.is_none())
            .then(|| format!("AUTH {}", Mechanism::OFFERED))
    }

    /// Whether the client may send to external domains: on a submission
    /// listener only once authenticated, on port 25 from
    /// `smtp.relay_networks`.
    pub(super) fn may_relay(&self) -> bool {
        if self.is_submission() {
            self.account.is_some()
        } else {
            self.inbound.config.relay_networks.contains(self.peer.ip())
        }
    }

    /// The submission checks at MAIL: authenticated, the sender its own,
    /// within its rate. `None` on the port-25 listener.
    pub(super) fn submission_sender(
        &self,
        sender: Option<&EmailAddress>,
    ) -> Option<(Reply, &'static str)> {
        let submission = self.inbound.submission.as_ref()?;
        let Some(account) = self.account.as_ref() else {
            return Some((reply::AUTH_REQUIRED, "auth_required"));
        };
        let Some(sender) = sender else {
            return Some((reply::NULL_SENDER_SUBMISSION, "sender_not_allowed"));
        };
        if !account.may_send_as(sender) {
            let sender = one_line(sender.as_str(), 200);
            tracing::info!(account = %account.name, %sender, "MAIL FROM not among the account's senders");
            return Some((reply::SENDER_NOT_ALLOWED, "sender_not_allowed"));
        }
        if !submission.take_message(account, Instant::now()) {
            tracing::info!(account = %account.name, rate_per_hour = account.rate_per_hour, "account over its message rate");
            return Some((reply::ACCOUNT_RATE, "account_rate"));
        }
        None
    }

    /// The header From check at the end of DATA, before the commit. A
    /// refused message does not count against the account's rate.
    pub(super) fn submission_header_from(&self, content: &[u8]) -> Option<Reply> {
        let account = self.account.as_ref()?;
        let refusal = self.header_from_refusal(account, content)?;
        if let Some(submission) = &self.inbound.submission {
            submission.give_back(account);
        }
        Some(refusal)
    }

    fn header_from_refusal(&self, account: &SmtpAccount, content: &[u8]) -> Option<Reply> {
        let refuse = match header_from::header_from(content) {
            HeaderFrom::Addresses(all) => {
                let forged = all.iter().find(|a| !account.may_send_as(a))?;
                tracing::info!(account = %account.name, from = %one_line(forged.as_str(), 200), "header From not among the account's senders");
                reply::HEADER_FROM_NOT_ALLOWED
            }
            HeaderFrom::Missing | HeaderFrom::Invalid(_) => reply::HEADER_FROM_MISSING,
            HeaderFrom::Several => reply::HEADER_FROM_SEVERAL,
        };
        Some(refuse)
    }

    /// The account name stored with the message.
    pub(super) fn account_name(&self) -> Option<SmtpAccountName> {
        self.account.as_ref().map(|a| a.name.clone())
    }

    /// `AUTH mechanism [initial-response]` and the SASL exchange after it.
    pub(super) async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        args: &[u8],
        stream: &mut SmtpStream<S>,
    ) -> std::io::Result<Flow> {
        let Some(submission) = self.inbound.submission.clone() else {
            self.reject(stream, &reply::AUTH_NOT_HERE, "not_implemented");
            return Ok(Flow::Continue);
        };
        let refusal = if !self.esmtp {
            Some((reply::NEED_EHLO, "bad_sequence"))
        } else if !self.tls {
            Some((reply::AUTH_NEEDS_TLS, "auth_needs_tls"))
        } else if self.account.is_some() {
            Some((reply::AUTH_ALREADY, "bad_sequence"))
        } else if self.transaction.is_some() {
            Some((reply::AUTH_IN_TRANSACTION, "bad_sequence"))
        } else {
            None
        };
        if let Some((reply, reason)) = refusal {
            self.reject(stream, &reply, reason);
            return Ok(Flow::Continue);
        }
        let Some(command) = sasl::parse_command(args) else {
            self.reject(stream, &reply::AUTH_SYNTAX, "syntax");
            return Ok(Flow::Continue);
        };
        let Some(mechanism) = command.mechanism else {
            tracing::debug!(mechanism = %command.mechanism_name, "unknown AUTH mechanism");
            self.reject(stream, &reply::AUTH_UNKNOWN_MECHANISM, "syntax");
            return Ok(Flow::Continue);
        };
        let credentials = match self.exchange(mechanism, command.initial, stream).await? {
            Exchanged::Credentials(c) => c,
            Exchanged::Failed(e) => {
                let reply = match e {
                    SaslError::Cancelled => reply::AUTH_CANCELLED,
                    SaslError::BadBase64 => reply::AUTH_BAD_BASE64,
                    SaslError::Malformed => reply::AUTH_MALFORMED,
                    SaslError::OtherIdentity => reply::AUTH_FAILED,
                };
                self.reject(stream, &reply, "auth_syntax");
                return Ok(Flow::Continue);
            }
            Exchanged::Closed => return Ok(Flow::Close),
        };
        let ip = self.peer.ip();
        let name = one_line(&credentials.name, 64);
        let locked = submission
            .guard()
            .locked(&credentials.name, ip, Instant::now());
        if let Some(locked) = locked {
            count("locked");
            tracing::warn!(account = %name, ?locked, "AUTH refused: locked after repeated failures");
            self.reject(stream, &reply::AUTH_LOCKED, "auth_locked");
            return Ok(Flow::Continue);
        }
        let attempted = credentials.name.clone();
        match submission.accounts.verify(credentials).await {
            Ok(Some(account)) => {
                submission.guard().succeeded(&attempted);
                count("ok");
                tracing::info!(account = %account.name, "authenticated");
                let (accounts, used) = (submission.accounts.clone(), account.name.clone());
                // Last-used time, to the minute: off the reply's path.
                tokio::spawn(async move { accounts.used(&used, SystemTime::now()).await });
                self.account = Some(Arc::new(account));
                stream.queue(&reply::AUTH_OK);
            }
            Ok(None) => {
                let failure = submission.guard().failed(&attempted, ip, Instant::now());
                count("failed");
                match failure.locked {
                    Some(Locked::Account) => {
                        tracing::warn!(account = %name, "AUTH failed; the account name is now locked")
                    }
                    Some(Locked::ClientIp) => {
                        tracing::warn!(account = %name, "AUTH failed; the client IP is now locked")
                    }
                    None => tracing::info!(account = %name, "AUTH failed"),
                }
                // The delay holds this session only; the runtime goes on.
                tokio::select! {
                    () = tokio::time::sleep(failure.delay) => {}
                    () = self.shutdown.cancelled() => {}
                }
                self.reject(stream, &reply::AUTH_FAILED, "auth_failed");
            }
            Err(e) => {
                tracing::error!(error = %e, "AUTH: cannot read SMTP accounts; answered 454");
                self.reject(stream, &reply::AUTH_TEMPORARY, "store_unavailable");
            }
        }
        Ok(Flow::Continue)
    }

    /// Runs the mechanism's challenges and responses.
    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        mechanism: Mechanism,
        initial: Option<String>,
        stream: &mut SmtpStream<S>,
    ) -> std::io::Result<Exchanged> {
        let initial = initial.map(|i| sasl::decode_response(i.as_bytes()));
        Ok(match mechanism {
            Mechanism::Plain => {
                let response = match initial {
                    Some(r) => r,
                    None => match self.response("", stream).await? {
                        Some(r) => r,
                        None => return Ok(Exchanged::Closed),
                    },
                };
                match response.and_then(|r| sasl::plain(&r)) {
                    Ok(c) => Exchanged::Credentials(c),
                    Err(e) => Exchanged::Failed(e),
                }
            }
            Mechanism::Login => {
                let name = match initial {
                    Some(r) => r,
                    None => match self.response("Username:", stream).await? {
                        Some(r) => r,
                        None => return Ok(Exchanged::Closed),
                    },
                };
                let name = match name.and_then(sasl::login_field) {
                    Ok(n) => n,
                    Err(e) => return Ok(Exchanged::Failed(e)),
                };
                let password = match self.response("Password:", stream).await? {
                    Some(r) => r,
                    None => return Ok(Exchanged::Closed),
                };
                match password.and_then(sasl::login_field) {
                    Ok(p) => Exchanged::Credentials(Credentials {
                        name,
                        password: sasl::Password::new(p),
                    }),
                    Err(e) => Exchanged::Failed(e),
                }
            }
        })
    }

    /// Sends a `334` challenge and reads the client's response; `None`
    /// when the connection is to close (end of input, idle, shutdown).
    async fn response<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        challenge: &str,
        stream: &mut SmtpStream<S>,
    ) -> std::io::Result<Option<Result<Vec<u8>, SaslError>>> {
        stream.queue(&Reply::owned(334, "", sasl::encode_challenge(challenge)));
        let shutdown = self.shutdown.clone();
        Ok(match stream.read_command(MAX_AUTH_LINE, &shutdown).await? {
            CommandLine::Line(line) => Some(sasl::decode_response(&line)),
            CommandLine::TooLong | CommandLine::Malformed => Some(Err(SaslError::BadBase64)),
            CommandLine::Eof => None,
            CommandLine::Timeout => {
                stream.queue(&reply::IDLE_TIMEOUT);
                None
            }
            CommandLine::Shutdown => {
                stream.queue(&reply::SHUTTING_DOWN);
                None
            }
        })
    }
}

/// How a SASL exchange ended.
enum Exchanged {
    Credentials(Credentials),
    Failed(SaslError),
    Closed,
}

#[cfg(test)]
mod tests;

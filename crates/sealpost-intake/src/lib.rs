//! Intake: how a message enters sealpost, whoever hands it in.
//!
//! [`Intake::accept`] turns an envelope and its content into a committed
//! message: the header is read once for the sender's own request and the
//! header From ([`trigger::inspect`]), each recipient is decided
//! ([`decide`]: relay or secure, and which policy said so), the secure plan
//! is attached ([`plan::prepare`]: portal tokens, notifications, receipts),
//! the message is claimed for the delivery worker when it can take it, and
//! the store commits it durably. Only then does the caller answer (the SMTP
//! `250`, the portal's "sent"), and only after that does
//! [`Accepted::release`] hand the message over and wake the worker.
//!
//! The SMTP session keeps the framing and the replies; the portal's replies
//! come in here the same way, so a reply to an external address can only
//! leave by secure delivery, exactly as mail does.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use sealpost_policy::{DecisionInput, DefinitionId, EmailAddress, PolicySet, Route, decide};
use sealpost_secure::{
    plan::{self, SecureSettings, SecureUnavailable},
    trigger,
};
use sealpost_store::{
    ClientInfo, DsnReturn, MessageKind, NewMessage, NewRecipient, Notify as DsnNotify, PortalSent,
    QueueId, Store, StoreError, handoff::Claimed,
};

/// What a message enters with, besides the store.
#[derive(Debug, Clone)]
pub struct IntakeSettings {
    /// Sender triggers, notifications, expiry bounds.
    pub secure: SecureSettings,
    /// How long the queue keeps trying (`relay.queue_lifetime`).
    pub queue_lifetime: Duration,
}

impl Default for IntakeSettings {
    fn default() -> Self {
        IntakeSettings {
            secure: SecureSettings::default(),
            queue_lifetime: Duration::from_secs(5 * 86400),
        }
    }
}

/// The way in, shared by every SMTP session and the portal.
pub struct Intake {
    pub settings: IntakeSettings,
    pub store: Arc<dyn Store>,
    /// The current policy snapshot, swapped whole when policies change: the
    /// next message sees the change and no message sees half of one.
    pub policy: Arc<ArcSwap<PolicySet>>,
    /// Where accepted messages go straight to the delivery worker
    /// (`sealpost_store::handoff`); `None`: the worker leases them.
    pub handoff: Option<sealpost_store::handoff::Handoff>,
    /// Woken after a commit the worker must lease (a message not handed
    /// over, or one with notifications attached), so delivery starts
    /// without waiting for the worker's next poll.
    pub queue_wakeup: Arc<Notify>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("settings", &self.settings)
            .field("handoff", &self.handoff.is_some())
            .finish_non_exhaustive()
    }
}

/// One recipient as the sender gave it.
#[derive(Debug, Clone)]
pub struct EnvelopeRecipient {
    pub address: EmailAddress,
    /// The DSN `ORCPT` parameter, as given.
    pub orcpt: Option<String>,
    pub notify: DsnNotify,
}

/// A message as it is handed in: its envelope and content.
#[derive(Debug)]
pub struct Submission {
    pub id: QueueId,
    pub received_at: SystemTime,
    /// `None`: the null sender `<>`.
    pub sender: Option<EmailAddress>,
    pub recipients: Vec<EnvelopeRecipient>,
    /// Who handed it in; its IP is the one source-IP conditions see.
    pub client: ClientInfo,
    /// The whole message, header and body (our trace header included).
    pub content: Vec<u8>,
    pub body_8bit: bool,
    pub smtputf8: bool,
    /// The DSN `ENVID`.
    pub env_id: Option<String>,
    /// The DSN `RET`.
    pub ret: Option<DsnReturn>,
    /// Set for a recipient's reply, reply all or forward from the portal;
    /// `None` for mail.
    pub portal_reply: Option<PortalReply>,
}

/// What makes a submission a portal reply.
#[derive(Debug, Clone)]
pub struct PortalReply {
    /// The original's definition for the replying recipient. Every
    /// external recipient gets secure delivery with it (the default
    /// definition if it was deleted since), whatever the policies say: a
    /// reply quotes and answers sealed content, so it never leaves in
    /// clear. Internal recipients are decided by the policies as usual.
    pub definition: DefinitionId,
    /// The author's Sent row and the original to mark replied, committed
    /// with the reply.
    pub sent: PortalSent,
}

impl Submission {
    /// A reply composed on the portal ([`sealpost_secure::reply::compose`])
    /// as a submission: its envelope is the composed one, `client` is the
    /// browser's (its IP is what source-IP conditions see).
    pub fn portal(
        composed: sealpost_secure::reply::ComposedReply,
        reply: PortalReply,
        client: ClientInfo,
        received_at: SystemTime,
    ) -> Self {
        Submission {
            id: QueueId::generate(),
            received_at,
            sender: Some(composed.sender),
            recipients: composed
                .recipients
                .into_iter()
                .map(|address| EnvelopeRecipient {
                    address,
                    orcpt: None,
                    notify: DsnNotify::default(),
                })
                .collect(),
            client,
            body_8bit: !composed.content.is_ascii(),
            content: composed.content,
            smtputf8: composed.smtputf8,
            env_id: None,
            ret: None,
            portal_reply: Some(reply),
        }
    }
}

/// Why a message was not accepted. Either way nothing was stored, and the
/// sender keeps responsibility for the message.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Secure delivery is needed and no definition can carry it: relaying
    /// instead would send in clear.
    #[error(transparent)]
    SecureUnavailable(#[from] SecureUnavailable),
    /// A portal reply would have been relayed in clear to this external
    /// address. The plan never does that; this is the last check before
    /// the commit, so a future change to the plan cannot do it either.
    #[error("a portal reply to {0} would leave in clear; refused")]
    ClearReply(EmailAddress),
    /// The commit failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A committed message whose sender has not been answered yet. Answer
/// first, then [`release`](Self::release): the answer waits for nothing
/// else.
#[derive(Debug)]
#[must_use = "release() hands the message to the worker and wakes it"]
pub struct Accepted {
    pub id: QueueId,
    /// Recipients given secure delivery.
    pub secure_recipients: usize,
    claimed: Option<Claimed>,
    wake: Option<Arc<Notify>>,
}

impl Accepted {
    /// Hands the committed message to the delivery worker (when it was
    /// claimed) and wakes the worker for what it must lease. The message
    /// is committed, so this runs even if the sender has gone since.
    pub fn release(self) {
        if let Some(claimed) = self.claimed {
            claimed.hand_over();
        }
        if let Some(wake) = self.wake {
            wake.notify_one();
        }
        if self.secure_recipients > 0 {
            metrics::counter!("sealpost_secure_recipients_total")
                .increment(self.secure_recipients as u64);
        }
    }
}

impl Intake {
    /// Decides, plans and durably commits `submission`. `alone` says that
    /// no other acceptance is in progress, so nothing would share a group
    /// commit and the store may commit on this thread
    /// ([`Store::accept_alone`]).
    ///
    /// # Errors
    /// [`IntakeError`]; nothing was stored then.
    ///
    /// # Cancel safety
    /// Not cancel safe: dropped once the commit has started, the message
    /// may be stored without the caller knowing. Await it to the end.
    pub async fn accept(
        &self,
        submission: Submission,
        alone: bool,
    ) -> Result<Accepted, IntakeError> {
        let mut message = self.plan(submission)?;
        let secure_recipients = message.secure.len();
        let now = message.received_at;
        let claimed = self
            .handoff
            .as_ref()
            .and_then(|h| h.claim(&mut message, now));
        let wake = claimed.is_none() || !message.attached.is_empty();
        let id = if alone {
            self.store.accept_alone(message).await?
        } else {
            self.store.accept(message).await?
        };
        Ok(Accepted {
            id,
            secure_recipients,
            claimed,
            wake: wake.then(|| self.queue_wakeup.clone()),
        })
    }

    /// The message as it will be stored: each recipient decided, the
    /// sender's request applied, the secure plan attached. No I/O: it reads
    /// only the policy snapshot.
    fn plan(&self, submission: Submission) -> Result<NewMessage, IntakeError> {
        let secure = &self.settings.secure;
        // The header block, read once: the From for policies based on the
        // header, the subject and the sender's own request.
        let facts = trigger::inspect(&submission.content, &secure.subject_tag);
        let header_from = facts
            .from_address
            .as_deref()
            .and_then(|a| EmailAddress::parse(a).ok());
        let policy = self.policy.load();
        let now = submission.received_at;
        let recipients = submission
            .recipients
            .into_iter()
            .map(|r| {
                let decision = decide(
                    &policy,
                    &DecisionInput {
                        envelope_from: submission.sender.as_ref(),
                        header_from: header_from.as_ref(),
                        recipient: &r.address,
                        client_ip: submission.client.ip,
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
            .collect();
        let mut message = NewMessage {
            id: submission.id,
            received_at: now,
            sender: submission.sender,
            client: submission.client,
            content: submission.content,
            body_8bit: submission.body_8bit,
            smtputf8: submission.smtputf8,
            env_id: submission.env_id,
            ret: submission.ret,
            expires_at: now + self.settings.queue_lifetime,
            kind: MessageKind::Mail,
            recipients,
            subject: None,
            parent: None,
            secure: Vec::new(),
            attached: Vec::new(),
            claim: None,
            portal_sent: None,
        };
        let forced = submission.portal_reply.as_ref().map(|r| r.definition);
        plan::prepare(&policy, secure, &mut message, facts, forced)?;
        if let Some(reply) = submission.portal_reply {
            if let Some(clear) = message
                .recipients
                .iter()
                .find(|r| r.decision.route == Route::Relay && !policy.is_internal(&r.address))
            {
                return Err(IntakeError::ClearReply(clear.address.clone()));
            }
            message.portal_sent = Some(reply.sent);
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealpost_policy::{DomainPattern, InternalDomains};
    use sealpost_store::{AdminStore, RecipientStatus, SqliteStore};

    async fn intake(dir: &tempfile::TempDir, with_definitions: bool) -> (Intake, SqliteStore) {
        let store = SqliteStore::open(
            &dir.path().join("db.sqlite"),
            &dir.path().join("spool"),
            Arc::new(sealpost_vault::Vault::ephemeral()),
        )
        .await
        .unwrap();
        let internal = vec![DomainPattern::parse("corp.example").unwrap()];
        let set = if with_definitions {
            store
                .load_config()
                .await
                .unwrap()
                .compile(&internal, 3650)
                .unwrap()
        } else {
            PolicySet::with_internal_domains(InternalDomains::new(internal))
        };
        let intake = Intake {
            settings: IntakeSettings::default(),
            store: Arc::new(store.clone()),
            policy: Arc::new(ArcSwap::from_pointee(set)),
            handoff: None,
            queue_wakeup: Arc::new(Notify::new()),
        };
        (intake, store)
    }

    fn submission(header: &str, to: &[&str]) -> Submission {
        Submission {
            id: QueueId::generate(),
            received_at: SystemTime::now(),
            sender: Some(EmailAddress::parse("alice@corp.example").unwrap()),
            recipients: to
                .iter()
                .map(|a| EnvelopeRecipient {
                    address: EmailAddress::parse(a).unwrap(),
                    orcpt: None,
                    notify: DsnNotify::default(),
                })
                .collect(),
            client: ClientInfo {
                ip: std::net::Ipv4Addr::LOCALHOST.into(),
                name: None,
                helo: None,
                protocol: "ESMTP".into(),
            },
            content: format!("{header}Subject: hi\r\n\r\nbody\r\n").into_bytes(),
            body_8bit: false,
            smtputf8: false,
            env_id: None,
            ret: None,
            portal_reply: None,
        }
    }

    #[tokio::test]
    async fn a_request_for_secure_delivery_is_decided_planned_and_committed() {
        let dir = tempfile::tempdir().unwrap();
        let (intake, store) = intake(&dir, true).await;
        let accepted = intake
            .accept(
                submission(
                    "X-Sealpost-Secure: Default\r\n",
                    &["bob@partner.example", "carol@corp.example"],
                ),
                true,
            )
            .await
            .unwrap();
        assert_eq!(accepted.secure_recipients, 1, "the external recipient only");
        let id = accepted.id.clone();
        accepted.release();
        let recipients = store.recipients(&id).await.unwrap();
        assert!(recipients[0].route.starts_with("secure:"), "{recipients:?}");
        assert_eq!(recipients[0].status, RecipientStatus::Secure);
        assert_eq!(recipients[1].route, "relay");
        assert_eq!(recipients[1].status, RecipientStatus::Queued);
    }

    #[tokio::test]
    async fn without_any_definition_a_request_is_refused_and_nothing_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (intake, store) = intake(&dir, false).await;
        let submission = submission("X-Sealpost-Secure: Default\r\n", &["bob@partner.example"]);
        let id = submission.id.clone();
        let err = intake.accept(submission, false).await.unwrap_err();
        assert!(matches!(err, IntakeError::SecureUnavailable(_)), "{err}");
        assert!(store.recipients(&id).await.unwrap_or_default().is_empty());
        // Mail nobody asked to seal still goes through.
        let plain = intake.accept(submission_plain(), false).await.unwrap();
        plain.release();
    }

    fn submission_plain() -> Submission {
        submission("", &["bob@partner.example"])
    }
}

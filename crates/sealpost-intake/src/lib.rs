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
    /// The SMTP account that submitted it (AUTH); stored for tracking,
    /// never a policy condition.
    pub smtp_account: Option<sealpost_store::smtp_accounts::SmtpAccountName>,
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
            smtp_account: None,
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
            smtp_account: submission.smtp_account,
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
    use sealpost_store::{
        AdminStore, PortalStore, RecipientStatus, SecureStore, SecureTrigger, SqliteStore,
        portal::{AccountKey, Folder, MailboxQuery},
    };

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
            smtp_account: None,
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

    /// The intake of the portal tests: corp.example internal, the stored
    /// definitions (the default one with read receipts on), and a policy
    /// that says "no action" for everything to partner.example.
    async fn portal_intake(dir: &tempfile::TempDir) -> (Intake, SqliteStore) {
        use sealpost_policy::{
            ActionKind, PartyDraft, PartyKind, PolicyDraft, PolicyEntry, PolicyId, PolicyType,
        };
        let (mut intake, store) = intake(dir, true).await;
        let mut doc = store.load_config().await.unwrap();
        doc.definitions[0].definition.read_receipt = true;
        let party = |kind, value: Option<&str>| PartyDraft {
            kind,
            value: value.map(str::to_owned),
            group_id: None,
            attribute: None,
            based_on: None,
        };
        doc.policies.push(PolicyEntry {
            id: PolicyId(7),
            policy: PolicyDraft {
                policy_type: PolicyType::SecureMessaging,
                narrative: "partners get plain mail".into(),
                action: ActionKind::NoAction,
                definition_id: None,
                from: party(PartyKind::Everyone, None),
                to: party(PartyKind::Domain, Some("partner.example")),
                enabled: true,
                starts_at: None,
                ends_at: None,
                override_: false,
                bidirectional: false,
                source_ips: Vec::new(),
            },
        });
        let internal = vec![DomainPattern::parse("corp.example").unwrap()];
        intake.policy = Arc::new(ArcSwap::from_pointee(doc.compile(&internal, 3650).unwrap()));
        (intake, store)
    }

    /// alice@corp.example's secure message to bob and carol at
    /// partner.example (asked for by header, since the policy relays
    /// them); returns its id and the definition applied.
    async fn secure_original(intake: &Intake, store: &SqliteStore) -> (QueueId, DefinitionId) {
        let accepted = intake
            .accept(
                submission(
                    "X-Sealpost-Secure: Default\r\nMessage-ID: <orig@corp.example>\r\n",
                    &["bob@partner.example", "carol@partner.example"],
                ),
                false,
            )
            .await
            .unwrap();
        let id = accepted.id.clone();
        accepted.release();
        let recipients = store.recipients(&id).await.unwrap();
        let definition = recipients[0].secure.as_ref().unwrap().definition;
        (id, definition)
    }

    fn reply_submission(
        from: &str,
        original: &QueueId,
        definition: DefinitionId,
        kind: sealpost_secure::reply::ReplyKind,
        forward_to: &[String],
    ) -> Submission {
        use sealpost_secure::reply::{Original, ReplyInput, compose};
        let from = EmailAddress::parse(from).unwrap();
        let settings = sealpost_policy::DefinitionDraft {
            allow_forward: true,
            ..sealpost_policy::DefinitionDraft::default_definition()
        };
        let composed = compose(ReplyInput {
            kind,
            definition: &settings,
            from: &from,
            original: &Original {
                sender: Some(EmailAddress::parse("alice@corp.example").unwrap()),
                recipients: ["bob@partner.example", "carol@partner.example"]
                    .map(|a| EmailAddress::parse(a).unwrap())
                    .to_vec(),
                message_id: Some("<orig@corp.example>".into()),
                subject: "hi".into(),
                ..Original::default()
            },
            forward_to,
            body: "Agreed.",
            attachments: Vec::new(),
            max_upload: 1 << 20,
            hostname: "gw.corp.example",
            now: SystemTime::now().into(),
        })
        .unwrap();
        Submission::portal(
            composed,
            PortalReply {
                definition,
                sent: PortalSent {
                    account: AccountKey::of(&from),
                    original: original.clone(),
                    idx: 0,
                    has_attachments: false,
                },
            },
            ClientInfo {
                ip: std::net::Ipv4Addr::new(203, 0, 113, 9).into(),
                name: None,
                helo: None,
                protocol: "HTTPS".into(),
            },
            SystemTime::now(),
        )
    }

    async fn sent(store: &SqliteStore, account: &str) -> Vec<sealpost_store::portal::MailboxRow> {
        let key = AccountKey::of(&EmailAddress::parse(account).unwrap());
        let query = MailboxQuery {
            folder: Folder::Sent,
            search: None,
            include_ended: true,
            after: None,
            limit: 50,
        };
        store
            .mailbox(&key, query, SystemTime::now())
            .await
            .unwrap()
            .rows
    }

    #[tokio::test]
    async fn a_portal_reply_relays_internally_and_is_secure_for_every_external_address() {
        let dir = tempfile::tempdir().unwrap();
        let (intake, store) = portal_intake(&dir).await;
        let (original, definition) = secure_original(&intake, &store).await;

        // The control: the policy relays partner.example in clear.
        let plain = intake
            .accept(submission("", &["dave@partner.example"]), false)
            .await
            .unwrap();
        let plain_id = plain.id.clone();
        plain.release();
        let plain = store.recipients(&plain_id).await.unwrap();
        assert_eq!(plain[0].route, "relay");
        assert_eq!(
            plain[0].policy.map(|p| p.0),
            Some(7),
            "the no-action policy"
        );

        // Bob replies to all: alice (internal) and carol (external).
        let reply = reply_submission(
            "bob@partner.example",
            &original,
            definition,
            sealpost_secure::reply::ReplyKind::ReplyAll,
            &[],
        );
        let accepted = intake.accept(reply, false).await.unwrap();
        assert_eq!(accepted.secure_recipients, 1);
        let id = accepted.id.clone();
        accepted.release();
        let recipients = store.recipients(&id).await.unwrap();
        assert_eq!(recipients[0].address, "alice@corp.example");
        assert_eq!(recipients[0].route, "relay");
        assert_eq!(recipients[0].status, RecipientStatus::Queued);
        assert_eq!(recipients[1].address, "carol@partner.example");
        assert_eq!(recipients[1].status, RecipientStatus::Secure);
        let secure = recipients[1].secure.as_ref().unwrap();
        assert_eq!(secure.definition, definition);
        assert_eq!(secure.trigger, SecureTrigger::PortalReply);
        assert!(secure.notification.is_some(), "carol is notified");

        // Filed in bob's Sent, and in nobody else's; the original replied.
        let rows = sent(&store, "BOB@partner.example").await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].message, id);
        assert_eq!(rows[0].subject.as_deref(), Some("Re: hi"));
        assert_eq!(
            rows[0].recipients.as_deref(),
            Some("alice@corp.example, carol@partner.example")
        );
        assert!(sent(&store, "carol@partner.example").await.is_empty());
        let original_rcpts = store.recipients(&original).await.unwrap();
        assert!(
            original_rcpts[0]
                .secure
                .as_ref()
                .unwrap()
                .replied_at
                .is_some()
        );
        assert!(
            original_rcpts[1]
                .secure
                .as_ref()
                .unwrap()
                .replied_at
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_forward_to_external_addresses_only_is_never_relayed() {
        let dir = tempfile::tempdir().unwrap();
        let (intake, store) = portal_intake(&dir).await;
        let (original, definition) = secure_original(&intake, &store).await;
        let to = ["dave@partner.example, erin@elsewhere.example".to_owned()];
        let reply = reply_submission(
            "bob@partner.example",
            &original,
            definition,
            sealpost_secure::reply::ReplyKind::Forward,
            &to,
        );
        let accepted = intake.accept(reply, true).await.unwrap();
        let id = accepted.id.clone();
        accepted.release();
        let recipients = store.recipients(&id).await.unwrap();
        assert_eq!(recipients.len(), 2);
        for r in &recipients {
            assert_eq!(r.status, RecipientStatus::Secure, "{r:?}");
        }
    }

    #[tokio::test]
    async fn a_reply_to_a_message_not_the_authors_own_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (intake, store) = portal_intake(&dir).await;
        let (original, definition) = secure_original(&intake, &store).await;
        // Mallory names bob's message: the store refuses, nothing is sent.
        let reply = reply_submission(
            "mallory@partner.example",
            &original,
            definition,
            sealpost_secure::reply::ReplyKind::Reply,
            &[],
        );
        let id = reply.id.clone();
        let err = intake.accept(reply, false).await.unwrap_err();
        assert!(
            matches!(err, IntakeError::Store(StoreError::NotFound(_))),
            "{err}"
        );
        assert!(store.message(&id).await.is_err(), "nothing stored");
        assert!(sent(&store, "mallory@partner.example").await.is_empty());
        let original_rcpts = store.recipients(&original).await.unwrap();
        assert!(
            original_rcpts[0]
                .secure
                .as_ref()
                .unwrap()
                .replied_at
                .is_none()
        );
    }

    #[tokio::test]
    async fn without_any_definition_a_portal_reply_is_refused_not_relayed() {
        let dir = tempfile::tempdir().unwrap();
        let (intake, store) = intake(&dir, false).await;
        let reply = reply_submission(
            "bob@partner.example",
            &QueueId::generate(),
            DefinitionId(1),
            sealpost_secure::reply::ReplyKind::Forward,
            &["dave@partner.example".to_owned()],
        );
        let id = reply.id.clone();
        let err = intake.accept(reply, false).await.unwrap_err();
        assert!(matches!(err, IntakeError::SecureUnavailable(_)), "{err}");
        assert!(store.message(&id).await.is_err());
    }

    #[tokio::test]
    async fn only_the_first_opening_commits_a_read_receipt() {
        let dir = tempfile::tempdir().unwrap();
        let (intake, store) = portal_intake(&dir).await;
        let (original, definition) = secure_original(&intake, &store).await;
        let alice = EmailAddress::parse("alice@corp.example").unwrap();
        let receipt = || {
            plan::read_receipt(
                &intake.policy.load(),
                &intake.settings.secure,
                &plan::Opening {
                    message: &original,
                    sender: Some(&alice),
                    subject: Some("hi"),
                    recipient: "bob@partner.example",
                    definition,
                    at: SystemTime::now(),
                },
            )
            .expect("the definition asks for read receipts")
        };
        let first = receipt();
        let first_id = first.id.clone();
        let now = SystemTime::now();
        assert!(
            store
                .mark_opened(&original, 0, now, Some(first))
                .await
                .unwrap()
        );
        let second = receipt();
        let second_id = second.id.clone();
        assert!(
            !store
                .mark_opened(&original, 0, now, Some(second))
                .await
                .unwrap()
        );

        let stored = store.message(&first_id).await.unwrap();
        assert_eq!(stored.kind, MessageKind::Notification);
        assert_eq!(stored.parent.as_ref(), Some(&original));
        let to = store.recipients(&first_id).await.unwrap();
        assert_eq!(to[0].address, "alice@corp.example");
        assert_eq!(to[0].status, RecipientStatus::Queued);
        let body = String::from_utf8(store.load_body(&first_id).await.unwrap()).unwrap();
        assert!(
            body.contains("bob@partner.example opened 'hi' at"),
            "{body}"
        );
        assert!(!body.contains("/open/"), "no portal link in a receipt");
        assert!(
            matches!(
                store.message(&second_id).await,
                Err(StoreError::NotFound(_))
            ),
            "the second opening commits no receipt"
        );
        // carol has not opened it yet: her first opening is first.
        assert!(store.mark_opened(&original, 1, now, None).await.unwrap());
    }
}

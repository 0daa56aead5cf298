//! Policy impact preview (issue 16, item 5): before a draft policy is
//! saved, replay the envelopes of the last days of accepted mail (sender,
//! recipients, client IP, time of receipt, as the store keeps them)
//! through the policy set as it is and as it would be with the draft, and
//! count who would change route (relay ↔ secure), by recipient domain, with
//! a sample. Nothing is stored.
//!
//! Both sets are compiled from the same stored document, so the draft is
//! the only difference; each envelope is decided at its own time of
//! receipt (a dated policy counts only for mail in its dates). The store
//! does not keep the header From, so the envelope sender stands in for it.

use std::{
    collections::{BTreeMap, VecDeque},
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use sealpost_policy::{
    DecisionInput, EmailAddress, Invalid, PolicyDocument, PolicyDraft, PolicyEntry, PolicyId,
    PolicySet, Route,
};
use sealpost_store::{
    AdminStore, StoreError,
    envelopes::{Envelope, EnvelopeQuery},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::PolicyService;

/// Days replayed when not said.
pub const DEFAULT_DAYS: u32 = 7;
/// Most days a preview may replay.
pub const MAX_DAYS: u32 = 90;
/// Changed recipients listed by default.
pub const DEFAULT_SAMPLE: usize = 20;
/// Most domains listed (the busiest).
const MAX_DOMAINS: usize = 20;
/// Messages read per page.
const PAGE: usize = 5_000;

/// What to preview.
#[derive(Debug, Clone)]
pub struct PreviewRequest {
    pub draft: PolicyDraft,
    /// The policy the draft replaces (an edit); `None` for a new policy.
    pub replaces: Option<PolicyId>,
    pub days: u32,
    pub sample: usize,
}

/// Why a preview was not made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The draft (or the document with it) does not pass the rules.
    #[error("{0}")]
    Invalid(Invalid),
    /// `replaces` names no policy.
    #[error("policy {0} not found")]
    NoSuchPolicy(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One recipient whose route would change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangedRecipient {
    pub message_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub received_at: String,
    pub sender: String,
    pub recipient: String,
    #[schema(value_type = String)]
    pub client_ip: IpAddr,
    /// `relay` or `secure`.
    pub before: &'static str,
    pub after: &'static str,
}

/// Changes for one recipient domain.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct DomainImpact {
    pub domain: String,
    /// Recipients relayed today who would be delivered securely.
    pub to_secure: u64,
    /// Recipients delivered securely today who would be relayed.
    pub to_relay: u64,
}

/// What a draft would have changed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Impact {
    pub days: u32,
    #[schema(value_type = String, format = DateTime)]
    pub since: String,
    /// Messages and recipients replayed.
    pub messages: u64,
    pub recipients: u64,
    /// Messages with at least one recipient changing route.
    pub changed_messages: u64,
    pub changed_recipients: u64,
    pub to_secure: u64,
    pub to_relay: u64,
    /// Recipients still secure but under another definition.
    pub definition_changed: u64,
    /// The busiest domains by recipients changed.
    pub domains: Vec<DomainImpact>,
    /// The most recent changed recipients.
    pub sample: Vec<ChangedRecipient>,
}

/// The document with the draft in place of `replaces` (or added, with an
/// id no stored policy has).
fn with_draft(
    mut doc: PolicyDocument,
    draft: PolicyDraft,
    replaces: Option<PolicyId>,
) -> Result<(PolicyDocument, PolicyId), PreviewError> {
    let id = match replaces {
        Some(id) => {
            let entry = doc
                .policies
                .iter_mut()
                .find(|p| p.id == id)
                .ok_or(PreviewError::NoSuchPolicy(id.0))?;
            entry.policy = draft;
            id
        }
        None => {
            let id = PolicyId(doc.policies.iter().map(|p| p.id.0).max().unwrap_or(0) + 1);
            doc.policies.push(PolicyEntry { id, policy: draft });
            id
        }
    };
    Ok((doc, id))
}

fn route_name(r: &Route) -> &'static str {
    match r {
        Route::Relay => "relay",
        Route::Secure { .. } => "secure",
    }
}

/// The tally of a replay, fed one envelope at a time.
struct Replay {
    current: Arc<PolicySet>,
    draft: Arc<PolicySet>,
    /// The draft's id in `draft`, and the policy it replaces in `current`:
    /// a recipient neither selects keeps its route, so only the others
    /// are decided twice.
    draft_id: PolicyId,
    replaced: Option<PolicyId>,
    sample_size: usize,
    messages: u64,
    recipients: u64,
    changed_messages: u64,
    changed_recipients: u64,
    to_secure: u64,
    to_relay: u64,
    definition_changed: u64,
    domains: BTreeMap<String, DomainImpact>,
    sample: VecDeque<ChangedRecipient>,
}

impl Replay {
    fn new(
        current: Arc<PolicySet>,
        draft: Arc<PolicySet>,
        draft_id: PolicyId,
        replaced: Option<PolicyId>,
        sample_size: usize,
    ) -> Self {
        Replay {
            current,
            draft,
            draft_id,
            replaced,
            sample_size,
            messages: 0,
            recipients: 0,
            changed_messages: 0,
            changed_recipients: 0,
            to_secure: 0,
            to_relay: 0,
            definition_changed: 0,
            domains: BTreeMap::new(),
            sample: VecDeque::new(),
        }
    }

    fn add(&mut self, e: &Envelope) {
        self.messages += 1;
        let sender = match e.sender.as_str() {
            "" => None,
            s => EmailAddress::parse(s).ok(),
        };
        let mut changed = false;
        for r in &e.recipients {
            self.recipients += 1;
            let Ok(recipient) = EmailAddress::parse(r) else {
                continue;
            };
            let input = DecisionInput {
                envelope_from: sender.as_ref(),
                header_from: sender.as_ref(),
                recipient: &recipient,
                client_ip: e.client_ip,
                now: e.received_at,
            };
            let drafted = self
                .draft
                .policy(self.draft_id)
                .is_some_and(|p| sealpost_policy::selects(&self.draft, p, &input));
            let replaced = self
                .replaced
                .and_then(|id| self.current.policy(id))
                .is_some_and(|p| sealpost_policy::selects(&self.current, p, &input));
            if !drafted && !replaced {
                continue;
            }
            let before = sealpost_policy::decide(&self.current, &input).route;
            let after = sealpost_policy::decide(&self.draft, &input).route;
            if before == after {
                continue;
            }
            if route_name(&before) == route_name(&after) {
                self.definition_changed += 1;
                continue;
            }
            changed = true;
            self.changed_recipients += 1;
            let domain = recipient.domain_str().to_ascii_lowercase();
            let d = self
                .domains
                .entry(domain.clone())
                .or_insert_with(|| DomainImpact {
                    domain,
                    ..DomainImpact::default()
                });
            if matches!(after, Route::Secure { .. }) {
                self.to_secure += 1;
                d.to_secure += 1;
            } else {
                self.to_relay += 1;
                d.to_relay += 1;
            }
            if self.sample_size > 0 {
                if self.sample.len() == self.sample_size {
                    self.sample.pop_front();
                }
                self.sample.push_back(ChangedRecipient {
                    message_id: e.message_id.clone(),
                    received_at: sealpost_store::rfc3339(e.received_at),
                    sender: e.sender.clone(),
                    recipient: r.clone(),
                    client_ip: e.client_ip,
                    before: route_name(&before),
                    after: route_name(&after),
                });
            }
        }
        if changed {
            self.changed_messages += 1;
        }
    }

    fn finish(self, days: u32, since: SystemTime) -> Impact {
        let mut domains: Vec<DomainImpact> = self.domains.into_values().collect();
        domains.sort_by(|a, b| {
            (b.to_secure + b.to_relay)
                .cmp(&(a.to_secure + a.to_relay))
                .then_with(|| a.domain.cmp(&b.domain))
        });
        domains.truncate(MAX_DOMAINS);
        let mut sample: Vec<ChangedRecipient> = self.sample.into();
        sample.reverse();
        Impact {
            days,
            since: sealpost_store::rfc3339(since),
            messages: self.messages,
            recipients: self.recipients,
            changed_messages: self.changed_messages,
            changed_recipients: self.changed_recipients,
            to_secure: self.to_secure,
            to_relay: self.to_relay,
            definition_changed: self.definition_changed,
            domains,
            sample: sample.into_iter().collect(),
        }
    }
}

/// Replays the last `request.days` days of envelopes with and without the
/// draft.
///
/// # Errors
/// [`PreviewError::Invalid`] naming the draft's field at fault,
/// [`PreviewError::NoSuchPolicy`], or a store failure.
pub async fn preview(
    policy: &PolicyService,
    store: &dyn AdminStore,
    request: PreviewRequest,
) -> Result<Impact, PreviewError> {
    sealpost_policy::Policy::from_draft(PolicyId(0), &request.draft)
        .map_err(PreviewError::Invalid)?;
    let doc = store.load_config().await?;
    let current = policy.compile(&doc).map_err(PreviewError::Invalid)?;
    let (drafted, draft_id) = with_draft(doc, request.draft, request.replaces)?;
    let draft = policy.compile(&drafted).map_err(|e| {
        // The document is valid without the draft: what fails is the
        // draft's reference (`policies[id=N].to.group_id` → `to.group_id`).
        let field = e
            .field
            .split_once("].")
            .map_or(e.field.clone(), |(_, f)| f.to_owned());
        PreviewError::Invalid(Invalid { field, ..e })
    })?;
    let days = request.days.clamp(1, MAX_DAYS);
    let now = SystemTime::now();
    let since = now - Duration::from_secs(u64::from(days) * 86_400);
    let mut replay = Replay::new(
        Arc::new(current),
        Arc::new(draft),
        draft_id,
        request.replaces,
        request.sample,
    );
    let query = |after| EnvelopeQuery {
        since,
        until: now,
        after,
        limit: PAGE,
    };
    let mut page = store.envelopes(query(None)).await?;
    // Bounded: every page moves the cursor forward through a finite table;
    // the cap is a million pages of PAGE messages. Deciding (CPU work, off
    // the async workers) overlaps with reading the next page.
    for _ in 0..1_000_000 {
        let next = page.next;
        let decide = tokio::task::spawn_blocking(move || {
            for e in &page.envelopes {
                replay.add(e);
            }
            replay
        });
        let fetch = async {
            match next {
                Some(after) => store.envelopes(query(Some(after))).await.map(Some),
                None => Ok(None),
            }
        };
        let (decided, fetched) = tokio::join!(decide, fetch);
        replay = decided.map_err(|e| StoreError::Unavailable(format!("impact preview: {e}")))?;
        match fetched? {
            Some(p) => page = p,
            None => break,
        }
    }
    Ok(replay.finish(days, since))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealpost_policy::{DomainPattern, PolicyDraft};

    fn set(doc: &PolicyDocument) -> Arc<PolicySet> {
        Arc::new(
            doc.compile(&[DomainPattern::parse("corp.example").unwrap()], 3650)
                .unwrap(),
        )
    }

    fn draft(json: serde_json::Value) -> PolicyDraft {
        serde_json::from_value(json).unwrap()
    }

    fn envelope(sender: &str, to: &[&str]) -> Envelope {
        Envelope {
            message_id: "m".into(),
            received_at: SystemTime::now(),
            sender: sender.into(),
            client_ip: "10.0.0.1".parse().unwrap(),
            recipients: to.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn counts_each_recipient_whose_route_would_change() {
        let mut doc = PolicyDocument {
            definitions: vec![sealpost_policy::DefinitionEntry {
                id: sealpost_policy::DefinitionId(1),
                is_default: true,
                definition: sealpost_policy::DefinitionDraft::default_definition(),
            }],
            ..PolicyDocument::default()
        };
        // Today: everything to partner.example is secure.
        doc.policies.push(PolicyEntry {
            id: PolicyId(1),
            policy: draft(serde_json::json!({"action": "apply_definition", "definition_id": 1,
                "from": {"kind": "internal"}, "to": {"kind": "domain", "value": "partner.example"}})),
        });
        let current = set(&doc);
        // The draft adds other.example, and excludes the CEO.
        let d1 = draft(
            serde_json::json!({"action": "apply_definition", "definition_id": 1,
            "from": {"kind": "internal"}, "to": {"kind": "domain", "value": "other.example"}}),
        );
        let (with_other, id) = with_draft(doc.clone(), d1, None).unwrap();
        let mut replay = Replay::new(current.clone(), set(&with_other), id, None, 1);
        replay.add(&envelope(
            "a@corp.example",
            &["x@other.example", "y@partner.example", "z@corp.example"],
        ));
        replay.add(&envelope("a@corp.example", &["q@other.example"]));
        replay.add(&envelope("ext@else.example", &["x@other.example"]));
        let i = replay.finish(7, SystemTime::now());
        assert_eq!((i.messages, i.recipients), (3, 5));
        assert_eq!((i.changed_messages, i.changed_recipients), (2, 2));
        assert_eq!((i.to_secure, i.to_relay), (2, 0));
        assert_eq!(i.domains[0].domain, "other.example");
        assert_eq!(i.sample.len(), 1, "bounded sample");
        assert_eq!(i.sample[0].recipient, "q@other.example", "the most recent");

        let ceo = draft(serde_json::json!({"action": "no_action", "override": true,
            "from": {"kind": "address", "value": "ceo@corp.example"}, "to": {"kind": "external"}}));
        let (excluded, id) = with_draft(doc.clone(), ceo, None).unwrap();
        let mut replay = Replay::new(current.clone(), set(&excluded), id, None, 10);
        replay.add(&envelope(
            "ceo@corp.example",
            &["y@partner.example", "w@partner.example"],
        ));
        replay.add(&envelope("a@corp.example", &["y@partner.example"]));
        let i = replay.finish(7, SystemTime::now());
        assert_eq!((i.to_secure, i.to_relay, i.changed_messages), (0, 2, 1));

        // Editing policy 1 to disabled sends partner.example back to relay.
        let mut off = doc.policies[0].policy.clone();
        off.enabled = false;
        let (edited, id) = with_draft(doc.clone(), off, Some(PolicyId(1))).unwrap();
        let mut replay = Replay::new(current, set(&edited), id, Some(PolicyId(1)), 10);
        replay.add(&envelope("a@corp.example", &["y@partner.example"]));
        assert_eq!(replay.finish(7, SystemTime::now()).to_relay, 1);
        assert!(matches!(
            with_draft(
                doc,
                PolicyDraft {
                    ..draft(serde_json::json!({"action": "no_action",
                "from": {"kind": "internal"}, "to": {"kind": "external"}}))
                },
                Some(PolicyId(9))
            ),
            Err(PreviewError::NoSuchPolicy(9))
        ));
    }
}

/// A seeded week of traffic in a real database, replayed through
/// [`preview`]: the counts equal deciding each envelope with and without
/// the draft, and the preview stores nothing.
#[cfg(test)]
mod replay_tests {
    use std::sync::Arc;

    use sealpost_policy::{Decision, DomainPattern, PolicySet, Route};
    use sealpost_store::{
        AdminStore, ClientInfo, ConfigChange, MessageKind, NewMessage, NewRecipient, Notify,
        QueueId, SqliteStore, Store, audit::Actor, audit::AuditQuery,
    };
    use sealpost_vault::Vault;

    use super::*;

    #[tokio::test]
    async fn a_seeded_week_counts_as_deciding_each_envelope_with_the_draft() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(
                &dir.path().join("db.sqlite"),
                &dir.path().join("spool"),
                Arc::new(Vault::ephemeral()),
            )
            .await
            .unwrap(),
        );
        let rules = crate::FileRules {
            internal_domains: vec![DomainPattern::parse("corp.example").unwrap()],
            max_expiry_days: 3650,
            ..crate::FileRules::default()
        };
        let service = crate::PolicyService::new(
            store.clone(),
            Arc::new(arc_swap::ArcSwap::from_pointee(
                PolicySet::with_internal_domains(Default::default()),
            )),
            rules,
        );
        service.load().await.unwrap();
        service
            .change(
                Actor::system("test"),
                ConfigChange::CreatePolicy(serde_json::from_value(serde_json::json!({
                    "narrative": "Partners", "action": "apply_definition", "definition_id": 1,
                    "from": {"kind": "internal"}, "to": {"kind": "domain", "value": "partner.example"}}))
                .unwrap()),
            )
            .await
            .unwrap();

        // A week of mail, one message an hour, from a few senders and
        // client IPs to a few domains; and one message from before the week.
        let now = SystemTime::now();
        let senders = [
            "alice@corp.example",
            "ceo@corp.example",
            "x@outside.example",
            "",
        ];
        let domains = [
            "partner.example",
            "other.example",
            "corp.example",
            "third.example",
        ];
        let mut seeded = Vec::new();
        for h in 0..(7 * 24 + 5) {
            let sender = senders[h % senders.len()];
            let rcpts: Vec<String> = (0..(1 + h % 3))
                .map(|i| format!("u{i}@{}", domains[(h + i) % domains.len()]))
                .collect();
            let received_at = now - Duration::from_secs(h as u64 * 3600 + 60);
            let ip = if h % 5 == 0 { "192.0.2.9" } else { "10.0.0.7" };
            let m = NewMessage::plain(
                QueueId::generate(),
                received_at,
                EmailAddress::parse(sender).ok(),
                ClientInfo {
                    ip: ip.parse().unwrap(),
                    name: None,
                    helo: None,
                    protocol: "ESMTP".into(),
                },
                b"Subject: s\r\n\r\nbody\r\n".to_vec(),
                now + Duration::from_secs(86400),
                MessageKind::Mail,
                rcpts
                    .iter()
                    .map(|r| NewRecipient {
                        address: EmailAddress::parse(r).unwrap(),
                        orcpt: None,
                        notify: Notify::default(),
                        decision: Decision {
                            route: Route::Relay,
                            policy: None,
                        },
                    })
                    .collect(),
            );
            store.accept(m).await.unwrap();
            if h < 7 * 24 {
                seeded.push((sender, rcpts, ip, received_at));
            }
        }

        // The draft: secure other.example from internal senders, but only
        // from 10.0.0.0/8, overriding the partner policy for the CEO.
        let draft: PolicyDraft = serde_json::from_value(serde_json::json!({
            "narrative": "Other", "action": "apply_definition", "definition_id": 1,
            "from": {"kind": "internal"}, "to": {"kind": "domain", "value": "other.example"},
            "source_ips": ["10.0.0.0/8"]}))
        .unwrap();
        let doc_before = store.load_config().await.unwrap();
        let audit_before = store
            .audit(AuditQuery {
                limit: 1000,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
            .len();
        let impact = preview(
            &service,
            store.as_ref(),
            PreviewRequest {
                draft: draft.clone(),
                replaces: None,
                days: 7,
                sample: 5,
            },
        )
        .await
        .unwrap();

        // What deciding each envelope gives, independently.
        let current = service.compile(&doc_before).unwrap();
        let drafted = service
            .compile(&with_draft(doc_before.clone(), draft, None).unwrap().0)
            .unwrap();
        let (mut messages, mut recipients, mut changed, mut changed_msgs, mut to_secure) =
            (0, 0, 0, 0, 0);
        for (sender, rcpts, ip, at) in &seeded {
            messages += 1;
            let from = EmailAddress::parse(sender).ok();
            let mut any = false;
            for r in rcpts {
                recipients += 1;
                let to = EmailAddress::parse(r).unwrap();
                let input = DecisionInput {
                    envelope_from: from.as_ref(),
                    header_from: from.as_ref(),
                    recipient: &to,
                    client_ip: ip.parse().unwrap(),
                    now: *at,
                };
                let a = sealpost_policy::decide(&current, &input).route;
                let b = sealpost_policy::decide(&drafted, &input).route;
                if route_name(&a) != route_name(&b) {
                    changed += 1;
                    any = true;
                    if matches!(b, Route::Secure { .. }) {
                        to_secure += 1;
                    }
                }
            }
            if any {
                changed_msgs += 1;
            }
        }
        assert!(changed > 10, "the seed exercises the draft: {changed}");
        assert_eq!((impact.messages, impact.recipients), (messages, recipients));
        assert_eq!(impact.changed_recipients, changed);
        assert_eq!(impact.changed_messages, changed_msgs);
        assert_eq!(impact.to_secure, to_secure);
        assert_eq!(impact.to_relay, 0);
        assert_eq!(impact.domains.len(), 1);
        assert_eq!(impact.domains[0].domain, "other.example");
        assert_eq!(impact.sample.len(), 5);
        assert!(impact.sample.iter().all(|s| s.after == "secure"));

        // Nothing stored: configuration, audit log and snapshot unchanged.
        assert_eq!(store.load_config().await.unwrap(), doc_before);
        assert_eq!(
            store
                .audit(AuditQuery {
                    limit: 1000,
                    ..AuditQuery::default()
                })
                .await
                .unwrap()
                .len(),
            audit_before
        );
        assert_eq!(service.snapshot().policies().len(), 1);

        // A draft naming a group that does not exist is refused by field.
        let ghost: PolicyDraft = serde_json::from_value(serde_json::json!({
            "narrative": "Ghost", "action": "apply_definition", "definition_id": 1,
            "from": {"kind": "internal"}, "to": {"kind": "group", "group_id": 77}}))
        .unwrap();
        let refused = preview(
            &service,
            store.as_ref(),
            PreviewRequest {
                draft: ghost,
                replaces: None,
                days: 7,
                sample: 5,
            },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&refused, PreviewError::Invalid(e) if e.field == "to.group_id"),
            "{refused:?}"
        );
    }
}

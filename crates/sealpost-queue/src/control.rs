//! What administrators do to the queue (issue 16, item 2), for the API,
//! the console and the CLI alike: the depth per next hop, the waiting
//! recipients, and retry now, bounce and delete on a selection of them.
//!
//! The store does the selecting and the guarding (a recipient a worker is
//! delivering is left alone and reported; see
//! `sealpost_store::queue_admin`). This adds what needs the queue's
//! settings: the next hop of each domain, the DSN of a bounce (built as
//! the worker builds the report of a refusal, so the sender gets a real
//! RFC 3464 report), and waking the workers after a retry or a bounce.

use std::{collections::BTreeMap, sync::Arc, time::SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use sealpost_policy::{EmailAddress, PolicySet};
use sealpost_smtp::{
    dsn::{DsnAction, DsnRecipient},
    outbound::NextHop,
};
use sealpost_store::{
    MessageKind, QueueId, StoreError,
    audit::Actor,
    queue_admin::{
        ActionReport, BOUNCED_REPLY, CLAIM_FOR, DomainDepth, QueueAdminStore, QueuePage,
        QueueQuery, Selection,
    },
};

use crate::{
    QueueConfig, report,
    unnotified::{self, FailedNotification},
};

/// The queue towards one next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopDepth {
    /// `relay.example:25`, or `MX of example.com`.
    pub hop: String,
    /// The destination domains behind it, most recipients first.
    pub domains: Vec<DomainDepth>,
    pub queued: u64,
    pub deferred: u64,
    pub in_delivery: u64,
    /// When the oldest waiting message was received.
    pub oldest: Option<SystemTime>,
    pub next_attempt: Option<SystemTime>,
}

/// The whole queue's depth, per next hop (most recipients first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSummary {
    pub hops: Vec<HopDepth>,
    pub queued: u64,
    pub deferred: u64,
    pub in_delivery: u64,
}

/// The queue's controls. Cheap to clone.
#[derive(Clone)]
pub struct QueueControl {
    store: Arc<dyn QueueAdminStore>,
    policy: Arc<ArcSwap<PolicySet>>,
    config: QueueConfig,
    /// The delivery workers' wake-up: a retry or a bounce's DSN goes out
    /// now, not at the workers' next poll.
    wakeup: Arc<Notify>,
}

impl std::fmt::Debug for QueueControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueControl").finish_non_exhaustive()
    }
}

impl QueueControl {
    pub fn new(
        store: Arc<dyn QueueAdminStore>,
        policy: Arc<ArcSwap<PolicySet>>,
        config: QueueConfig,
        wakeup: Arc<Notify>,
    ) -> Self {
        QueueControl {
            store,
            policy,
            config,
            wakeup,
        }
    }

    /// The depth per next hop, from the depth per domain and the relay
    /// settings as the workers apply them ([`NextHop::choose`]).
    ///
    /// # Errors
    /// The store's.
    pub async fn summary(&self) -> Result<QueueSummary, StoreError> {
        let domains = self.store.queue_depth(SystemTime::now()).await?;
        let policy = self.policy.load_full();
        let mut by_hop: BTreeMap<String, Vec<DomainDepth>> = BTreeMap::new();
        for depth in domains {
            let hop = match EmailAddress::parse(&format!("postmaster@{}", depth.domain)) {
                Ok(address) => NextHop::choose(
                    address.domain_str(),
                    policy.is_internal(&address),
                    &self.config.hops,
                )
                .to_string(),
                // Stored addresses parsed when accepted; a domain that no
                // longer does is still shown, under its own name.
                Err(_) => format!("MX of {}", depth.domain),
            };
            by_hop.entry(hop).or_default().push(depth);
        }
        let mut summary = QueueSummary::default();
        for (hop, domains) in by_hop {
            let sum = |f: fn(&DomainDepth) -> u64| domains.iter().map(f).sum::<u64>();
            let hop = HopDepth {
                hop,
                queued: sum(|d| d.queued),
                deferred: sum(|d| d.deferred),
                in_delivery: sum(|d| d.in_delivery),
                oldest: domains.iter().filter_map(|d| d.oldest).min(),
                next_attempt: domains.iter().filter_map(|d| d.next_attempt).min(),
                domains,
            };
            summary.queued += hop.queued;
            summary.deferred += hop.deferred;
            summary.in_delivery += hop.in_delivery;
            summary.hops.push(hop);
        }
        summary
            .hops
            .sort_by(|a, b| b.queued.cmp(&a.queued).then_with(|| a.hop.cmp(&b.hop)));
        Ok(summary)
    }

    /// A page of waiting recipients.
    ///
    /// # Errors
    /// The store's.
    pub async fn list(&self, query: QueueQuery) -> Result<QueuePage, StoreError> {
        self.store.queued(query, SystemTime::now()).await
    }

    /// Makes the selected recipients due now and wakes the workers.
    ///
    /// # Errors
    /// The store's; nothing changed.
    pub async fn retry_now(
        &self,
        selection: Selection,
        actor: Actor,
    ) -> Result<ActionReport, StoreError> {
        let report = self
            .store
            .retry_now(selection, SystemTime::now(), actor)
            .await?;
        if !report.done.is_empty() {
            self.wakeup.notify_one();
        }
        count("retry", &report);
        Ok(report)
    }

    /// Drops the selected recipients without a report.
    ///
    /// # Errors
    /// The store's; nothing changed.
    pub async fn delete(
        &self,
        selection: Selection,
        actor: Actor,
    ) -> Result<ActionReport, StoreError> {
        let report = self
            .store
            .delete_queued(selection, SystemTime::now(), actor)
            .await?;
        count("delete", &report);
        Ok(report)
    }

    /// Fails the selected recipients for good, "bounced by an
    /// administrator": the sender gets a DSN as for a refusal by the next
    /// hop (when the recipient's NOTIFY asks for failures), a bounced
    /// notification marks its secure recipient as not notified (and tells
    /// the sender where receipts are asked for).
    ///
    /// The recipients are claimed first, like a worker's lease, so no
    /// worker starts delivering them while the reports are built; the
    /// failures and the reports then commit together.
    ///
    /// # Errors
    /// The store's; nothing bounced (the claim is given up).
    pub async fn bounce(
        &self,
        selection: Selection,
        actor: Actor,
    ) -> Result<ActionReport, StoreError> {
        let now = SystemTime::now();
        let owner = format!("admin-bounce:{}", QueueId::generate());
        let (claimed, report) = self
            .store
            .claim(selection, &owner, now, now + CLAIM_FOR)
            .await?;
        if report.done.is_empty() {
            return Ok(report);
        }
        let mut reports = Vec::new();
        let mut failed_notifications = Vec::new();
        for message in &claimed {
            if message.kind == MessageKind::Notification {
                failed_notifications.push(FailedNotification {
                    notification: message.id.clone(),
                    reply: BOUNCED_REPLY.to_owned(),
                });
            }
            let recipients: Vec<DsnRecipient> = message
                .recipients
                .iter()
                .filter(|r| r.notify.on_failure())
                .map(|r| DsnRecipient {
                    address: r.address.clone(),
                    orcpt: r.orcpt.clone(),
                    action: DsnAction::Failed,
                    reply: BOUNCED_REPLY.to_owned(),
                    remote_mta: None,
                    last_attempt: now,
                })
                .collect();
            // Reports go to real senders about real mail, never about a
            // report (no bounce loops).
            if recipients.is_empty() || message.kind == MessageKind::Dsn || message.sender.is_none()
            {
                continue;
            }
            let original = match &message.content {
                Some(content) => content.clone(),
                None => self.store.load_body(&message.id).await.unwrap_or_else(|e| {
                    // The report still goes, without the original.
                    tracing::error!(queue_id = %message.id, error = %e, "cannot read the content of a bounced message");
                    Vec::new()
                }),
            };
            reports.push(report::dsn(
                &self.config,
                message,
                &original,
                recipients,
                now,
            ));
        }
        if !failed_notifications.is_empty() {
            let policy = self.policy.load_full();
            let store: &dyn sealpost_store::Store = self.store.as_ref();
            reports.extend(
                unnotified::report(store, &policy, &self.config, failed_notifications, now).await,
            );
        }
        let keys = report.done.clone();
        match self
            .store
            .bounce_claimed(&owner, keys.clone(), reports, now, actor)
            .await
        {
            Ok(ids) => {
                for id in &ids {
                    tracing::info!(queue_id = %id, "queued delivery status notification of an administrator's bounce");
                }
                if !ids.is_empty() {
                    self.wakeup.notify_one();
                }
                count("bounce", &report);
                Ok(report)
            }
            Err(e) => {
                if let Err(release) = self.store.release_claim(&owner, keys).await {
                    tracing::warn!(error = %release, "could not give up a bounce's claim; it runs out by itself");
                }
                Err(e)
            }
        }
    }
}

fn count(action: &'static str, report: &ActionReport) {
    metrics::counter!("sealpost_queue_admin_total", "action" => action)
        .increment(report.done.len() as u64);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sealpost_policy::{Decision, DomainPattern, InternalDomains, Route};
    use sealpost_smtp::outbound::{ConfiguredHops, HostPort};
    use sealpost_store::{
        ClientInfo, NewMessage, NewRecipient, Notify as DsnNotify, RecipientStatus, SqliteStore,
        Store, queue_admin::RecipientKey,
    };

    use super::*;

    async fn control(dir: &tempfile::TempDir) -> (QueueControl, Arc<SqliteStore>, Arc<Notify>) {
        let store = Arc::new(
            SqliteStore::open(
                &dir.path().join("db.sqlite"),
                &dir.path().join("spool"),
                Arc::new(sealpost_vault::Vault::ephemeral()),
            )
            .await
            .unwrap(),
        );
        let policy = Arc::new(ArcSwap::from_pointee(PolicySet::with_internal_domains(
            InternalDomains::new(vec![DomainPattern::parse("corp.example").unwrap()]),
        )));
        let wakeup = Arc::new(Notify::new());
        let config = QueueConfig {
            hostname: "gw.corp.example".into(),
            hops: ConfiguredHops {
                internal: Some(HostPort::parse("mailhub.corp.example:25").unwrap()),
                smart_host: None,
            },
            ..QueueConfig::default()
        };
        (
            QueueControl::new(store.clone(), policy, config, wakeup.clone()),
            store,
            wakeup,
        )
    }

    fn mail(rcpts: &[&str]) -> NewMessage {
        let now = SystemTime::now();
        NewMessage::plain(
            QueueId::generate(),
            now,
            Some(EmailAddress::parse("alice@corp.example").unwrap()),
            ClientInfo {
                ip: "192.0.2.1".parse().unwrap(),
                name: None,
                helo: None,
                protocol: "ESMTP".into(),
            },
            b"Subject: quarterly\r\n\r\nnumbers\r\n".to_vec(),
            now + Duration::from_secs(86400),
            MessageKind::Mail,
            rcpts
                .iter()
                .map(|r| NewRecipient {
                    address: EmailAddress::parse(r).unwrap(),
                    orcpt: None,
                    notify: DsnNotify::default(),
                    decision: Decision {
                        route: Route::Relay,
                        policy: None,
                    },
                })
                .collect(),
        )
    }

    #[tokio::test]
    async fn the_summary_groups_domains_by_the_next_hop_the_workers_use() {
        let dir = tempfile::tempdir().unwrap();
        let (control, store, _) = control(&dir).await;
        store
            .accept(mail(&[
                "a@partner.example",
                "b@partner.example",
                "c@corp.example",
                "d@hr.corp.example",
            ]))
            .await
            .unwrap();
        let summary = control.summary().await.unwrap();
        assert_eq!(summary.queued, 4);
        let hops: Vec<_> = summary
            .hops
            .iter()
            .map(|h| (h.hop.as_str(), h.queued, h.domains.len()))
            .collect();
        assert_eq!(
            hops,
            [
                ("MX of partner.example", 2, 1),
                ("MX of hr.corp.example", 1, 1),
                ("mailhub.corp.example:25", 1, 1)
            ],
            "hr.corp.example is not internal (no wildcard), so it goes to its MX"
        );
    }

    #[tokio::test]
    async fn a_bounce_sends_the_sender_a_real_report_and_wakes_the_workers() {
        let dir = tempfile::tempdir().unwrap();
        let (control, store, wakeup) = control(&dir).await;
        let id = store
            .accept(mail(&["a@partner.example", "b@partner.example"]))
            .await
            .unwrap();
        let report = control
            .bounce(
                Selection::Keys(vec![RecipientKey {
                    message: id.clone(),
                    idx: 1,
                }]),
                Actor::cli(),
            )
            .await
            .unwrap();
        assert_eq!(report.done.len(), 1);
        // The workers are woken for the report.
        tokio::time::timeout(Duration::from_secs(1), wakeup.notified())
            .await
            .unwrap();
        let recipients = store.recipients(&id).await.unwrap();
        assert_eq!(recipients[0].status, RecipientStatus::Queued);
        assert_eq!(recipients[1].status, RecipientStatus::Failed);

        // The report is queued to the sender, from <>, about b only.
        let now = SystemTime::now() + Duration::from_secs(1);
        let leased = store
            .lease_due("w", now, now + Duration::from_secs(60), 10)
            .await
            .unwrap();
        let dsn = leased
            .iter()
            .find(|m| m.kind == MessageKind::Dsn)
            .expect("a DSN is queued");
        assert_eq!(dsn.sender, None);
        assert_eq!(dsn.recipients[0].address.as_str(), "alice@corp.example");
        let text = String::from_utf8(dsn.content.clone().unwrap()).unwrap();
        assert!(text.contains("multipart/report"), "{text}");
        assert!(text.contains("bounced by an administrator"), "{text}");
        assert!(text.contains("b@partner.example"), "{text}");
        assert!(!text.contains("a@partner.example"), "{text}");
    }
}

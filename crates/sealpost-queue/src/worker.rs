//! Delivery workers: lease → deliver → record.
//!
//! Work comes two ways: messages handed over by the SMTP sessions right
//! after acceptance, already leased to this worker in the acceptance's
//! commit and with their plaintext (`sealpost_store::handoff`), and due
//! recipients the worker leases from the store (retries, notifications,
//! anything a restart left, anything not handed over).
//!
//! [`Worker::run`] keeps up to `max_batches_in_flight` batches delivering at
//! once; each batch is a lease of up to `batch_size` due recipients, grouped
//! by next hop, each hop's messages split over up to
//! `max_connections_per_hop` connections. [`Worker::run_once`] does one batch
//! to completion, for tests and tools that want the queue driven by hand.
//!
//! Outcomes and the DSNs they cause are recorded in one commit, with the
//! senders' notices of notifications that failed for good (`unnotified`).
//! A worker that dies mid-batch loses nothing: its leases expire and the
//! recipients are delivered again (at-least-once).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use tokio::sync::{Notify, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use sealpost_policy::{PolicySet, text::one_line};
use sealpost_secure::dkim::{self, Signer};
use sealpost_smtp::{
    dsn::{DsnAction, DsnRecipient},
    outbound::{
        ConfiguredHops, Delivery, DeliveryOutcome, NextHop, OutgoingMessage, OutgoingRecipient,
        eightbit::{self, SevenBit},
    },
};
use sealpost_store::{
    Leased, LeasedMessage, LeasedRecipient, MessageKind, NewMessage, OutcomeKind, QueueId,
    RecipientOutcome, Store, StoreError,
    handoff::{self, HandedOver, Handoff, HandoffReceiver},
};

use crate::{
    report,
    schedule::{RetrySchedule, Verdict},
    unnotified::{self, FailedNotification},
};

/// Settings of the queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Our host name, for DSNs.
    pub hostname: String,
    pub retry: RetrySchedule,
    /// How long a DSN we generate may stay queued.
    pub queue_lifetime: Duration,
    /// `relay.next_hop` and `relay.internal_next_hop`: where external and
    /// internal domains' mail goes (else their MX), as
    /// [`NextHop::choose`] applies them.
    pub hops: ConfiguredHops,
    /// How long a lease lasts (`relay.lease_duration`). A delivery renews
    /// its leases every third of it while it runs (see `heartbeat`), so it
    /// need not outlast the slowest next hop: it bounds how long the
    /// recipients of a worker that stopped wait before another takes them.
    pub lease_duration: Duration,
    /// Recipients leased per batch.
    pub batch_size: usize,
    /// Batches delivering at once.
    pub max_batches_in_flight: usize,
    /// Connections one batch opens to one next hop.
    pub max_connections_per_hop: usize,
    /// How long an idle worker waits after a new message arrives before it
    /// leases, so that messages accepted meanwhile go out in the same batch
    /// (and over the same connection) instead of one lease, one delivery
    /// and one outcome commit each.
    pub linger: Duration,
    /// Signs what leaves with the key of its From's domain: every message
    /// sealpost writes, and relayed mail when `dkim_sign_relayed`.
    pub dkim: Arc<Signer>,
    /// `dkim.sign_relayed`: relayed mail from a signing domain is signed
    /// too (default false).
    pub dkim_sign_relayed: bool,
    /// `relay.delay_warning`: after how long a recipient still queued has
    /// its sender told, once (see `delay`); `None`: never.
    pub delay_warning: Option<Duration>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            hostname: "localhost".into(),
            retry: RetrySchedule::default(),
            queue_lifetime: Duration::from_secs(5 * 86400),
            hops: ConfiguredHops::default(),
            lease_duration: Duration::from_secs(30 * 60),
            batch_size: 200,
            max_batches_in_flight: 8,
            max_connections_per_hop: 4,
            linger: Duration::from_millis(5),
            dkim: Arc::default(),
            dkim_sign_relayed: false,
            delay_warning: Some(Duration::from_secs(4 * 3600)),
        }
    }
}

/// Fewest messages a batch gives one connection before it opens another
/// to the same hop. A trickle (a few messages per linger) then goes over
/// one connection and is recorded in one commit, instead of one connection
/// and one commit per message; a backlog still spreads over
/// `max_connections_per_hop` connections.
const MIN_PER_CONNECTION: usize = 8;

/// Attempts a recipient gets while its message's content cannot be read
/// (spool file missing, or the vault cannot open it) before it is failed
/// and reported. A passing cause (the disk or the key store briefly
/// unavailable) gets the retry schedule's first waits to heal; a message
/// whose content is gone is not retried for ever.
const UNREADABLE_ATTEMPTS: u32 = 5;

/// Errors of one queue pass (delivery problems are outcomes, not errors).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A delivery worker. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    delivery: Arc<Delivery>,
    policy: Arc<ArcSwap<PolicySet>>,
    config: QueueConfig,
    /// Names this worker's leases in the store.
    owner: String,
    wakeup: Arc<Notify>,
    /// Messages handed over at acceptance (see `sealpost_store::handoff`).
    handoff: Handoff,
    /// Its receiving end, until [`Worker::run`] takes it.
    handed_over: std::sync::Mutex<Option<HandoffReceiver>>,
}

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        delivery: Arc<Delivery>,
        policy: Arc<ArcSwap<PolicySet>>,
        config: QueueConfig,
        wakeup: Arc<Notify>,
    ) -> Self {
        let owner = format!(
            "{}:{}:{}",
            config.hostname,
            std::process::id(),
            QueueId::generate()
        );
        let (handoff, handed_over) = handoff::channel(&owner, config.lease_duration);
        Worker {
            inner: Arc::new(Inner {
                store,
                delivery,
                policy,
                config,
                owner,
                wakeup,
                handoff,
                handed_over: std::sync::Mutex::new(Some(handed_over)),
            }),
        }
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub(crate) fn delivery(&self) -> &Delivery {
        &self.inner.delivery
    }

    /// Where SMTP sessions hand accepted messages straight to this worker
    /// (see `sealpost_store::handoff`). Until [`Worker::run`] runs, handed
    /// over messages wait in the channel.
    pub fn handoff(&self) -> Handoff {
        self.inner.handoff.clone()
    }

    /// Leases one batch of due recipients and delivers it to completion.
    /// Returns how many recipients it handled (0: nothing was due).
    pub async fn run_once(&self) -> Result<usize, QueueError> {
        let batch = self.lease(self.inner.config.batch_size).await?;
        let count = batch.recipients();
        self.process(batch.messages).await?;
        Ok(count)
    }

    /// Runs until `shutdown`, then waits for batches in flight.
    pub async fn run(self, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.inner.config.max_batches_in_flight));
        let tracker = TaskTracker::new();
        let handed_over = self
            .inner
            .handed_over
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(receiver) = handed_over {
            tracker.spawn(self.clone().deliver_handed_over(
                receiver,
                slots.clone(),
                tracker.clone(),
                shutdown.clone(),
            ));
        }
        let mut stats_due = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= stats_due {
                self.publish_queue_depth().await;
                stats_due = tokio::time::Instant::now() + Duration::from_secs(5);
            }
            let slot = tokio::select! {
                _ = shutdown.cancelled() => break,
                slot = slots.clone().acquire_owned() => slot.expect("semaphore never closed"),
            };
            let limit = self.inner.config.batch_size;
            let batch = match self.lease(limit).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "could not lease queue work; retrying shortly");
                    drop(slot);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            // Less than a full batch means nothing else was due when the
            // lease committed: sleep until the next due time or a new
            // message (its wake-up is kept if it came meanwhile) instead of
            // asking the store again at once.
            let drained = batch.recipients() < limit;
            let wait = until_due(batch.next_due);
            if batch.is_empty() {
                drop(slot);
            } else {
                self.spawn_batch(&tracker, batch.messages, slot);
            }
            if drained {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.inner.wakeup.notified() => {
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(self.inner.config.linger) => {}
                        }
                    }
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        tracker.close();
        tracker.wait().await;
    }

    /// Delivers messages handed over at acceptance, in batches gathered
    /// over the linger time, sharing the batch slots with leased work.
    async fn deliver_handed_over(
        self,
        mut receiver: HandoffReceiver,
        slots: Arc<Semaphore>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) {
        let limit = self.inner.config.batch_size.max(1);
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return,
                first = receiver.recv() => match first {
                    Some(m) => m,
                    None => return,
                },
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.inner.config.linger) => {}
            }
            let mut batch = vec![first];
            while batch.len() < limit {
                match receiver.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let slot = tokio::select! {
                _ = shutdown.cancelled() => return,
                slot = slots.clone().acquire_owned() => slot.expect("semaphore never closed"),
            };
            // The budget each message holds is given back when the batch
            // is done.
            let (messages, budget): (Vec<_>, Vec<_>) =
                batch.into_iter().map(HandedOver::into_parts).unzip();
            self.spawn_batch(&tracker, messages, (slot, budget));
        }
    }

    /// Delivers `messages` in a task of its own, keeping `held` (the batch
    /// slot, and what else the batch holds) until it is done.
    fn spawn_batch<H: Send + 'static>(
        &self,
        tracker: &TaskTracker,
        messages: Vec<LeasedMessage>,
        held: H,
    ) {
        let worker = self.clone();
        tracker.spawn(async move {
            if let Err(e) = worker.process(messages).await {
                tracing::error!(error = %e, "recording delivery outcomes failed; leases will expire and the recipients be retried");
            }
            drop(held);
        });
    }

    async fn publish_queue_depth(&self) {
        if let Ok(stats) = self.inner.store.queue_stats().await {
            metrics::gauge!("sealpost_queue_depth").set(stats.queued as f64);
            metrics::gauge!("sealpost_queue_deferred").set(stats.deferred as f64);
            metrics::gauge!("sealpost_queue_secure").set(stats.secure as f64);
        }
    }

    async fn lease(&self, limit: usize) -> Result<Leased, QueueError> {
        let now = SystemTime::now();
        Ok(self
            .inner
            .store
            .lease_due(
                &self.inner.owner,
                now,
                now + self.inner.config.lease_duration,
                limit,
            )
            .await?)
    }

    async fn process(&self, mut batch: Vec<LeasedMessage>) -> Result<(), QueueError> {
        if batch.is_empty() {
            return Ok(());
        }
        let policy = self.inner.policy.load_full();
        // Each message's content, once: inline content came with the lease;
        // spooled content is read from its file. A message whose content
        // cannot be read is still grouped: its recipients are deferred,
        // then failed (see `unreadable`).
        let mut contents = Vec::with_capacity(batch.len());
        for message in &mut batch {
            let content = match message.content.take() {
                Some(c) => Some(c),
                None => match self.inner.store.load_body(&message.id).await {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::error!(queue_id = %message.id, error = %e, "cannot read message content");
                        None
                    }
                },
            };
            contents.push(content.map(|c| self.prepare(message, c)));
        }
        // Group (message, recipients) by next hop.
        let mut by_hop: HashMap<NextHop, Vec<(usize, Vec<&LeasedRecipient>)>> = HashMap::new();
        for (i, message) in batch.iter().enumerate() {
            let mut per_hop: HashMap<NextHop, Vec<&LeasedRecipient>> = HashMap::new();
            for r in &message.recipients {
                let hop = NextHop::choose(
                    r.address.domain_str(),
                    policy.is_internal(&r.address),
                    &self.inner.config.hops,
                );
                per_hop.entry(hop).or_default().push(r);
            }
            for (hop, rcpts) in per_hop {
                by_hop.entry(hop).or_default().push((i, rcpts));
            }
        }
        // Deliver every hop, each over up to max_connections_per_hop
        // connections, all concurrently. Each chunk records its outcomes as
        // soon as it is done, so a crash repeats as little as possible.
        let mut deliveries = Vec::new();
        for (hop, jobs) in &by_hop {
            let chunk_size = jobs
                .len()
                .div_ceil(self.inner.config.max_connections_per_hop.max(1))
                .max(MIN_PER_CONNECTION);
            for chunk in jobs.chunks(chunk_size) {
                deliveries.push(self.deliver_chunk(hop, chunk, &batch, &contents));
            }
        }
        let results = futures_util::future::join_all(deliveries).await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(())
    }

    /// What goes out for `message`: its content signed, and for 8-bit
    /// content its 7-bit form, converted and then signed, made only if a
    /// next hop without 8BITMIME needs it (RFC 6152; a signature made
    /// before the conversion would not verify after it).
    fn prepare(&self, message: &LeasedMessage, content: Vec<u8>) -> Content {
        self.prepare_content(ours(message), &message.id, message.body_8bit, content)
    }

    /// [`Worker::prepare`] for content that is not a leased message's own
    /// (a TLS-or-portal original): `ours` as [`ours`] says, `body_8bit` as
    /// its envelope said.
    pub(crate) fn prepare_content(
        &self,
        ours: bool,
        id: &QueueId,
        body_8bit: bool,
        content: Vec<u8>,
    ) -> Content {
        let eight_bit = body_8bit || !content.is_ascii();
        if !eight_bit {
            return Content {
                signed: self.signed(ours, id, Arc::new(content)),
                seven_bit: None,
            };
        }
        // The unsigned content is shared, not copied: the signed form is
        // a new buffer anyway (or the same one, unsigned).
        let unsigned = Arc::new(content);
        let (worker, id, original) = (self.clone(), id.clone(), unsigned.clone());
        Content {
            signed: self.signed(ours, &id, unsigned),
            seven_bit: Some(Arc::new(SevenBit::new(move || {
                let converted = Arc::new(eightbit::to_seven_bit(&original)?);
                let signed = worker.signed(ours, &id, converted);
                Ok(Arc::try_unwrap(signed).unwrap_or_else(|shared| (*shared).clone()))
            }))),
        }
    }

    /// `content` DKIM-signed when it should be (see [`QueueConfig::dkim`]):
    /// when sealpost wrote it itself (`ours`), or relays it with
    /// `dkim.sign_relayed`.
    ///
    /// Signing happens here, once per delivery attempt of a message, and
    /// not where each kind of mail is built: this is the one place every
    /// message sealpost writes passes (notifications, receipts, notices,
    /// DSNs, portal mail and replies), and the last before the wire, so a
    /// conversion of the content (8-bit to 7-bit for a next hop without
    /// 8BITMIME) can come before the signature instead of breaking it.
    fn signed(&self, ours: bool, id: &QueueId, content: Arc<Vec<u8>>) -> Arc<Vec<u8>> {
        let config = &self.inner.config;
        if config.dkim.is_empty() || !(ours || config.dkim_sign_relayed) {
            return content;
        }
        let signature = if ours {
            config.dkim.signature_as_gateway(&content, &config.hostname)
        } else {
            config.dkim.signature(&content)
        };
        match signature {
            Ok(Some(header)) => Arc::new(dkim::prepend(header, &content)),
            Ok(None) => content,
            Err(e) => {
                // Unsigned rather than not at all: the receiver may still
                // take it, and the log says why it was not signed.
                tracing::error!(queue_id = %id, error = %e, "DKIM signing failed; sending unsigned");
                content
            }
        }
    }

    /// Delivers one chunk of a batch over one connection (at a time) and
    /// records its outcomes and the DSNs they cause in one commit.
    async fn deliver_chunk(
        &self,
        hop: &NextHop,
        chunk: &[(usize, Vec<&LeasedRecipient>)],
        batch: &[LeasedMessage],
        contents: &[Option<Content>],
    ) -> Result<(), QueueError> {
        // The leases are renewed while the next hop takes its time, so a
        // slow delivery is never leased and sent a second time.
        let keys: Vec<heartbeat::LeaseKey> = chunk
            .iter()
            .flat_map(|(i, rcpts)| rcpts.iter().map(|r| (batch[*i].id.clone(), r.idx)))
            .collect();
        let ((mut direct, delivered), lost) = heartbeat::while_renewing(
            self.inner.store.as_ref(),
            &self.inner.owner,
            &keys,
            self.inner.config.lease_duration,
            async {
                // TLS-or-portal notifications taken as the message itself
                // over verified TLS (see `tls_or_portal`); the rest go as
                // they are.
                let direct = self.deliver_directly(hop, chunk, batch).await;
                let outgoing: Vec<OutgoingMessage> = chunk
                    .iter()
                    .enumerate()
                    .filter(|(pos, _)| !direct.contains_key(pos))
                    .filter_map(|(_, (i, rcpts))| {
                        Some(outgoing(&batch[*i], rcpts, contents[*i].as_ref()?))
                    })
                    .collect();
                let delivered = if outgoing.is_empty() {
                    Vec::new()
                } else {
                    self.inner.delivery.deliver(hop, &outgoing).await
                };
                (direct, delivered)
            },
        )
        .await;
        let taken: std::collections::HashSet<usize> = direct.keys().copied().collect();
        let mut delivered = delivered.into_iter();
        // Back in chunk order: the messages without content were not sent.
        let outcomes: Vec<Vec<DeliveryOutcome>> = chunk
            .iter()
            .enumerate()
            .map(
                |(pos, (i, rcpts))| match (direct.remove(&pos), &contents[*i]) {
                    (Some(taken), _) => vec![taken],
                    (None, Some(_)) => delivered.next().unwrap_or_default(),
                    (None, None) => rcpts.iter().map(|r| unreadable(&batch[*i], r)).collect(),
                },
            )
            .collect();
        let now = SystemTime::now();
        let mut records = Vec::new();
        let mut reports: HashMap<usize, Vec<DsnRecipient>> = HashMap::new();
        let mut failed_notifications = Vec::new();
        for (pos, ((i, rcpts), message_outcomes)) in chunk.iter().zip(outcomes).enumerate() {
            let message = &batch[*i];
            let direct = taken.contains(&pos);
            for (r, outcome) in rcpts.iter().zip(message_outcomes) {
                if lost.contains(&(message.id.clone(), r.idx)) {
                    // Another worker holds it now: its attempt is recorded.
                    continue;
                }
                let (result, reply, remote, report) = self.judge(message, r, outcome, now);
                // The address is the sender's and the reply the remote
                // server's: one clean line each, as tracing writes `%` raw.
                tracing::info!(
                    queue_id = %message.id,
                    to = %one_line(r.address.as_str(), 200),
                    %hop,
                    result = ?result,
                    reply = %one_line(&reply, 1000),
                    "delivery attempt"
                );
                // Reports go to real senders about real mail, never about
                // a report (no bounce loops).
                if let Some(action) = report
                    && message.kind != MessageKind::Dsn
                    && message.sender.is_some()
                {
                    reports.entry(*i).or_default().push(DsnRecipient {
                        address: r.address.clone(),
                        orcpt: r.orcpt.clone(),
                        action,
                        reply: reply.clone(),
                        remote_mta: remote,
                        last_attempt: now,
                    });
                }
                if message.kind == MessageKind::Notification && result == OutcomeKind::Failed {
                    failed_notifications.push(FailedNotification {
                        notification: message.id.clone(),
                        reply: reply.clone(),
                    });
                }
                records.push(RecipientOutcome {
                    message: message.id.clone(),
                    idx: r.idx,
                    attempted_at: now,
                    result,
                    reply,
                    notification: message.kind == MessageKind::Notification,
                    direct,
                    delay_warned: report == Some(DsnAction::Delayed),
                });
            }
        }
        let mut dsns: Vec<NewMessage> = reports
            .into_iter()
            .map(|(i, recipients)| {
                report::dsn(
                    &self.inner.config,
                    &batch[i],
                    contents[i]
                        .as_ref()
                        .map_or(&[][..], |c| c.signed.as_slice()),
                    recipients,
                    now,
                )
            })
            .collect();
        let dsn_count = dsns.len();
        if !failed_notifications.is_empty() {
            let policy = self.inner.policy.load_full();
            dsns.extend(
                unnotified::report(
                    self.inner.store.as_ref(),
                    &policy,
                    &self.inner.config,
                    failed_notifications,
                    now,
                )
                .await,
            );
        }
        let ids = self.inner.store.record(records, dsns).await?;
        if !ids.is_empty() {
            let (reports, notices) = ids.split_at(dsn_count.min(ids.len()));
            for id in reports {
                tracing::info!(queue_id = %id, "queued delivery status notification");
            }
            for id in notices {
                tracing::info!(queue_id = %id, "queued notice to the sender of recipients not notified");
            }
            self.inner.wakeup.notify_one();
        }
        Ok(())
    }

    /// Turns one delivery outcome into what the store records, and the
    /// report (DSN action) the sender asked for, if any.
    fn judge(
        &self,
        message: &LeasedMessage,
        r: &LeasedRecipient,
        outcome: DeliveryOutcome,
        now: SystemTime,
    ) -> (OutcomeKind, String, Option<String>, Option<DsnAction>) {
        let failure_report = r.notify.on_failure().then_some(DsnAction::Failed);
        match outcome {
            DeliveryOutcome::Delivered {
                reply,
                remote,
                dsn_passed,
            } => {
                metrics::counter!("sealpost_delivery_delivered_total").increment(1);
                let report = (r.notify.on_success() && !dsn_passed).then_some(DsnAction::Relayed);
                (OutcomeKind::Delivered, reply, Some(remote), report)
            }
            DeliveryOutcome::Failed { reply, remote } => {
                metrics::counter!("sealpost_delivery_bounced_total").increment(1);
                (OutcomeKind::Failed, reply, remote, failure_report)
            }
            DeliveryOutcome::Deferred { reply, remote } => {
                match self.inner.config.retry.after_deferral(
                    r.attempts + 1,
                    now,
                    message.expires_at,
                ) {
                    Verdict::RetryAt(at) => {
                        metrics::counter!("sealpost_delivery_deferred_total").increment(1);
                        let (retry_at, report) =
                            delay::warning(self.inner.config.delay_warning, message, r, now, at);
                        (OutcomeKind::Deferred { retry_at }, reply, remote, report)
                    }
                    Verdict::Expire => {
                        metrics::counter!("sealpost_delivery_bounced_total").increment(1);
                        metrics::counter!("sealpost_delivery_expired_total").increment(1);
                        (
                            OutcomeKind::Failed,
                            format!(
                                "{reply} (gave up: message was queued too long, see relay.queue_lifetime)"
                            ),
                            remote,
                            failure_report,
                        )
                    }
                }
            }
        }
    }
}

/// A message's content as it goes out (see [`Worker::prepare`]).
pub(crate) struct Content {
    /// DKIM-signed when it should be.
    pub(crate) signed: Arc<Vec<u8>>,
    /// For 8-bit content: its 7-bit form, made when first needed.
    pub(crate) seven_bit: Option<Arc<SevenBit>>,
}

/// Whether sealpost wrote `message` itself (everything but relayed mail;
/// portal replies are mail sealpost composed, the only mail handed in over
/// HTTP(S)).
fn ours(message: &LeasedMessage) -> bool {
    message.kind != MessageKind::Mail
        || matches!(message.client.protocol.as_str(), "HTTP" | "HTTPS")
}

/// The outcome of a recipient whose message's content could not be read:
/// deferred (so the retry schedule and the queue lifetime apply) until its
/// `UNREADABLE_ATTEMPTS`-th attempt, then failed, which reports to the
/// sender like any permanent failure.
fn unreadable(message: &LeasedMessage, r: &LeasedRecipient) -> DeliveryOutcome {
    if r.attempts + 1 >= UNREADABLE_ATTEMPTS {
        tracing::error!(
            queue_id = %message.id,
            to = %one_line(r.address.as_str(), 200),
            attempts = r.attempts + 1,
            "message content cannot be read; giving up on the recipient and reporting to the sender"
        );
        DeliveryOutcome::Failed {
            reply: "554 5.3.0 message content cannot be read".into(),
            remote: None,
        }
    } else {
        DeliveryOutcome::Deferred {
            reply: "451 4.3.0 message content cannot be read".into(),
            remote: None,
        }
    }
}

fn outgoing(
    message: &LeasedMessage,
    rcpts: &[&LeasedRecipient],
    content: &Content,
) -> OutgoingMessage {
    OutgoingMessage {
        sender: message.sender.clone(),
        recipients: rcpts
            .iter()
            .map(|r| OutgoingRecipient {
                address: r.address.clone(),
                orcpt: r.orcpt.clone(),
                notify: r.notify,
            })
            .collect(),
        content: content.signed.clone(),
        seven_bit: content.seven_bit.clone(),
        body_8bit: message.body_8bit,
        smtputf8: message.smtputf8,
        env_id: message.env_id.clone(),
        ret: message.ret,
        client: (message.kind == MessageKind::Mail).then(|| message.client.clone()),
    }
}

/// How long to sleep for work due at `next_due`. Re-check at least every
/// few seconds: another node may have queued work, and a wake-up may have
/// raced the lease.
fn until_due(next_due: Option<SystemTime>) -> Duration {
    let cap = Duration::from_secs(5);
    match next_due {
        Some(at) => at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(20))
            .min(cap),
        None => cap,
    }
}

mod delay;
mod heartbeat;

#[cfg(test)]
mod tests;

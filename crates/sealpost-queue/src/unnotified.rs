//! Notifications that failed for good.
//!
//! A notification goes out from the null sender (its bounce would carry the
//! recipient's link), so when one is refused or given up on nobody hears of
//! it: the recipient never learns the message waits, and the sender thinks
//! it arrived. The store marks the secure recipient as not notified with
//! the outcome; this module does the rest before that commit: an error log
//! line and a count per recipient, and, when the definition that applied
//! asks for sender receipts and the message has a sender, a short mail to
//! the sender saying who could not be notified and why, committed with the
//! outcome.
//!
//! That mail is a notification-kind message from `<>` that announces no
//! secure recipient, so its own failure finds no target here and causes
//! nothing further (no loops). No I/O beyond one store read.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    time::SystemTime,
};

use sealpost_policy::{Decision, PolicySet, Route, text::one_line};
use sealpost_secure::notification::{MailHeaders, UnnotifiedEntry, build_unnotified};
use sealpost_store::{
    ClientInfo, MessageKind, NewMessage, NewRecipient, NotificationTarget, Notify, QueueId, Store,
};

use crate::worker::QueueConfig;

/// A notification whose delivery failed for good, with the reply.
#[derive(Debug)]
pub(crate) struct FailedNotification {
    pub notification: QueueId,
    pub reply: String,
}

/// Logs and counts each failed notification's secure recipient, and builds
/// the mails to the senders who asked for receipts (one per message).
///
/// A store that cannot be read costs only those mails: the failure itself
/// is still recorded with the outcome, and is logged here without the
/// recipient's details.
pub(crate) async fn report(
    store: &dyn Store,
    policy: &PolicySet,
    config: &QueueConfig,
    failed: Vec<FailedNotification>,
    now: SystemTime,
) -> Vec<NewMessage> {
    let ids = failed.iter().map(|f| f.notification.clone()).collect();
    let targets = match store.notification_targets(ids).await {
        Ok(targets) => targets,
        Err(e) => {
            for f in &failed {
                tracing::error!(notification = %f.notification, reply = %one_line(&f.reply, 500), error = %e, "notification failed permanently; its recipient could not be looked up, so the sender is not told");
            }
            return Vec::new();
        }
    };
    let reply_of = |id: &QueueId| {
        failed
            .iter()
            .find(|f| &f.notification == id)
            .map_or("", |f| f.reply.as_str())
    };
    let mut by_message: BTreeMap<QueueId, Vec<(NotificationTarget, &str)>> = BTreeMap::new();
    for target in targets {
        let reply = reply_of(&target.notification);
        tracing::error!(queue_id = %target.message, notification = %target.notification, to = %one_line(target.recipient.as_ref(), 200), reply = %one_line(reply, 500), "notification failed permanently: the recipient was not told of the secure message");
        metrics::counter!("sealpost_notification_failed_total").increment(1);
        let wants_receipt = policy
            .definition(target.definition)
            .is_some_and(|d| d.settings.sender_receipt);
        if wants_receipt && target.sender.is_some() {
            by_message
                .entry(target.message.clone())
                .or_default()
                .push((target, reply));
        }
    }
    by_message
        .into_iter()
        .map(|(message, targets)| sender_notice(config, message, &targets, now))
        .collect()
}

/// The mail telling the sender of `message` which of its secure recipients
/// were not notified.
fn sender_notice(
    config: &QueueConfig,
    message: QueueId,
    targets: &[(NotificationTarget, &str)],
    now: SystemTime,
) -> NewMessage {
    let first = &targets[0].0;
    let sender = first
        .sender
        .as_ref()
        .expect("only targets with a sender are grouped")
        .with_ascii_domain();
    let entries: Vec<UnnotifiedEntry> = targets
        .iter()
        .map(|(t, reply)| UnnotifiedEntry {
            recipient: t.recipient.clone(),
            reason: (*reply).to_owned(),
        })
        .collect();
    let postmaster = format!("postmaster@{}", config.hostname);
    let content = build_unnotified(
        first.subject.as_deref().unwrap_or_default(),
        &entries,
        &MailHeaders {
            from_name: "Secure messaging",
            from_address: &postmaster,
            to: sender.as_str(),
            message_id_domain: &config.hostname,
            date: now.into(),
        },
    );
    let mut notice = NewMessage::plain(
        QueueId::generate(),
        now,
        None,
        ClientInfo {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            name: None,
            helo: None,
            protocol: "local".into(),
        },
        content,
        now + config.queue_lifetime,
        MessageKind::Notification,
        vec![NewRecipient {
            address: sender,
            orcpt: None,
            notify: Notify::from_bits(Notify::NEVER),
            decision: Decision {
                route: Route::Relay,
                policy: None,
            },
        }],
    );
    notice.body_8bit = !notice.content.is_ascii();
    notice.smtputf8 = notice.recipients[0].address.is_utf8();
    notice.parent = Some(message);
    notice
}

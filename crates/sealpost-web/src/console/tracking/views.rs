//! Tracking records as the console's pages show them: times in UTC,
//! routes in words, the deciding policy and definition by name (from the
//! live policy snapshot, in memory).

use std::time::SystemTime;

use sealpost_policy::{DefinitionId, PolicySet};
use sealpost_store::{MessageRecord, RecipientRecord, RecipientStatus, TrackedMessage};
use serde::Serialize;

/// `2026-12-06 09:15:02` (UTC).
pub(super) fn when(t: SystemTime) -> String {
    sealpost_store::rfc3339(t)
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_owned()
}

fn when_opt(t: Option<SystemTime>) -> Option<String> {
    t.map(when)
}

/// A recipient in a result row.
#[derive(Debug, Serialize)]
pub(super) struct Chip {
    address: String,
    status: &'static str,
    secure: bool,
}

/// One row of the search results.
#[derive(Debug, Serialize)]
pub(super) struct Row {
    id: String,
    received: String,
    sender: String,
    subject: String,
    recipients: Vec<Chip>,
    /// Something is left to recall (a live secure delivery or a queued
    /// relay copy).
    recallable: bool,
}

/// Whether a recall would still change anything for these recipients.
pub(super) fn recallable(recipients: &[RecipientRecord]) -> bool {
    recipients
        .iter()
        .any(|r| matches!(r.status, RecipientStatus::Secure | RecipientStatus::Queued))
}

pub(super) fn row(t: &TrackedMessage) -> Row {
    Row {
        id: t.message.id.to_string(),
        received: when(t.message.received_at),
        sender: sender(&t.message.sender),
        subject: t.message.subject.clone().unwrap_or_default(),
        recipients: t
            .recipients
            .iter()
            .map(|r| Chip {
                address: r.address.clone(),
                status: r.status.as_str(),
                secure: r.secure.is_some(),
            })
            .collect(),
        recallable: recallable(&t.recipients),
    }
}

fn sender(s: &str) -> String {
    if s.is_empty() {
        "<>".into()
    } else {
        s.to_owned()
    }
}

/// A policy or definition by id and name.
#[derive(Debug, Serialize)]
struct Named {
    id: i64,
    name: String,
    /// No longer in the configuration.
    gone: bool,
}

fn policy_named(set: &PolicySet, id: i64) -> Named {
    match set.policies().iter().find(|p| p.id.0 == id) {
        Some(p) if !p.narrative.trim().is_empty() => Named {
            id,
            name: p.narrative.trim().to_owned(),
            gone: false,
        },
        found => Named {
            id,
            name: format!("Policy {id}"),
            gone: found.is_none(),
        },
    }
}

fn definition_named(set: &PolicySet, id: DefinitionId) -> Named {
    match set.definition(id) {
        Some(d) => Named {
            id: id.0,
            name: d.settings.name.clone(),
            gone: false,
        },
        None => Named {
            id: id.0,
            name: format!("Definition {}", id.0),
            gone: true,
        },
    }
}

/// The secure-delivery record of a recipient, with its portal events.
#[derive(Debug, Serialize)]
struct SecureView {
    definition: Named,
    trigger: &'static str,
    notification: Option<String>,
    notified_at: Option<String>,
    notify_failed_at: Option<String>,
    notify_error: Option<String>,
    /// TLS-or-portal: what reached the recipient, in words.
    delivered: Option<String>,
    expires_at: String,
    ended_at: Option<String>,
    registered_at: Option<String>,
    first_opened_at: Option<String>,
    last_opened_at: Option<String>,
    read: bool,
    replied_at: Option<String>,
    deleted_at: Option<String>,
    replies: Vec<String>,
}

/// One recipient on the message page.
#[derive(Debug, Serialize)]
struct RecipientView {
    address: String,
    status: &'static str,
    /// `relay` or `secure`.
    route: &'static str,
    policy: Option<Named>,
    attempts: u32,
    last_reply: Option<String>,
    last_attempt_at: Option<String>,
    secure: Option<SecureView>,
}

fn trigger_text(t: sealpost_store::SecureTrigger) -> &'static str {
    match t {
        sealpost_store::SecureTrigger::Policy => "a policy",
        sealpost_store::SecureTrigger::Header => "the sender's X-Sealpost-Secure header",
        sealpost_store::SecureTrigger::SubjectTag => "the sender's subject tag",
        sealpost_store::SecureTrigger::PortalReply => "a reply from the portal",
    }
}

fn recipient(set: &PolicySet, r: &RecipientRecord) -> RecipientView {
    RecipientView {
        address: r.address.clone(),
        status: r.status.as_str(),
        route: if r.route == "relay" {
            "relay"
        } else {
            "secure"
        },
        policy: r.policy.map(|p| policy_named(set, p.0)),
        attempts: r.attempts,
        last_reply: r.last_reply.clone(),
        last_attempt_at: when_opt(r.last_attempt_at),
        secure: r.secure.as_ref().map(|s| SecureView {
            definition: definition_named(set, s.definition),
            trigger: trigger_text(s.trigger),
            notification: s.notification.as_ref().map(ToString::to_string),
            notified_at: when_opt(s.notified_at),
            notify_failed_at: when_opt(s.notify_failed_at),
            notify_error: s.notify_error.clone(),
            delivered: s.tls_or_portal.then(|| match s.delivered_as.as_deref() {
                Some("message") => format!(
                    "the message itself: {}",
                    s.delivered_reply
                        .as_deref()
                        .unwrap_or("delivered over verified TLS")
                ),
                Some(_) => "portal notification sent (the next hop offered no TLS that verifies)"
                    .to_owned(),
                None => "TLS or portal: not yet delivered".to_owned(),
            }),
            expires_at: when(s.expires_at),
            ended_at: when_opt(s.ended_at),
            registered_at: when_opt(s.registered_at),
            first_opened_at: when_opt(s.first_opened_at),
            last_opened_at: when_opt(s.last_opened_at),
            read: s.read,
            replied_at: when_opt(s.replied_at),
            deleted_at: when_opt(s.deleted_at),
            replies: s.replies.iter().map(ToString::to_string).collect(),
        }),
    }
}

/// A mail sealpost made about the message.
#[derive(Debug, Serialize)]
struct RelatedView {
    id: String,
    kind: &'static str,
    received: String,
    subject: String,
}

/// The message page's record.
#[derive(Debug, Serialize)]
pub(super) struct MessageView {
    id: String,
    received: String,
    sender: String,
    client_ip: String,
    /// The SMTP account it was submitted with (AUTH), if any.
    smtp_account: Option<String>,
    subject: String,
    size: u64,
    kind: &'static str,
    parent: Option<String>,
    has_content: bool,
    recipients: Vec<RecipientView>,
    related: Vec<RelatedView>,
}

pub(super) fn message(
    set: &PolicySet,
    t: &TrackedMessage,
    related: &[MessageRecord],
) -> MessageView {
    let m = &t.message;
    MessageView {
        id: m.id.to_string(),
        received: when(m.received_at),
        sender: sender(&m.sender),
        client_ip: m.client_ip.clone(),
        smtp_account: m.smtp_account.clone(),
        subject: m.subject.clone().unwrap_or_default(),
        size: m.size,
        kind: m.kind.as_str(),
        parent: m.parent.as_ref().map(ToString::to_string),
        has_content: m.has_content,
        recipients: t.recipients.iter().map(|r| recipient(set, r)).collect(),
        related: related
            .iter()
            .map(|r| RelatedView {
                id: r.id.to_string(),
                kind: r.kind.as_str(),
                received: when(r.received_at),
                subject: r.subject.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

/// The latest expiry of the message's live secure deliveries, if any.
pub(super) fn live_expiry(t: &TrackedMessage) -> Option<SystemTime> {
    t.recipients
        .iter()
        .filter(|r| r.status == RecipientStatus::Secure)
        .filter_map(|r| r.secure.as_ref())
        .filter(|s| s.ended_at.is_none())
        .map(|s| s.expires_at)
        .max()
}

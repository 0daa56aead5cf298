//! What the queue sends: the delivery status notification a permanent
//! failure causes. Shared by the delivery [`crate::worker`] and the
//! administrators' [`crate::control`] (a bounce is reported exactly as a
//! refusal by the next hop is).

use std::{
    net::{IpAddr, Ipv4Addr},
    time::SystemTime,
};

use sealpost_policy::{Decision, Route};
use sealpost_smtp::dsn::{self, DsnInput, DsnRecipient};
use sealpost_store::{
    ClientInfo, LeasedMessage, MessageKind, NewMessage, NewRecipient, Notify as DsnNotify, QueueId,
};

use crate::worker::QueueConfig;

/// The DSN to `message`'s sender about `recipients` (RFC 3464), as a
/// message of its own from the null sender, ready to commit.
///
/// # Panics
/// When `message` has the null sender: reports go to real senders only,
/// which the callers check.
pub(crate) fn dsn(
    config: &QueueConfig,
    message: &LeasedMessage,
    original: &[u8],
    recipients: Vec<DsnRecipient>,
    now: SystemTime,
) -> NewMessage {
    // Like a notification, a report to an IDN domain goes in A-label
    // form when it can, so a next hop without SMTPUTF8 takes it.
    let sender = message
        .sender
        .as_ref()
        .expect("reports only for messages with a sender")
        .with_ascii_domain();
    let id = QueueId::generate();
    let content = dsn::build(&DsnInput {
        reporting_mta: &config.hostname,
        sender: &sender,
        queue_id: message.id.as_str(),
        env_id: message.env_id.as_deref(),
        arrival: message.received_at,
        ret: message.ret,
        original,
        recipients,
        now,
    });
    NewMessage {
        id,
        received_at: now,
        sender: None,
        client: ClientInfo {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            name: None,
            helo: None,
            protocol: "local".into(),
        },
        body_8bit: !content.is_ascii(),
        content,
        smtputf8: sender.is_utf8(),
        env_id: None,
        ret: None,
        expires_at: now + config.queue_lifetime,
        kind: MessageKind::Dsn,
        recipients: vec![NewRecipient {
            address: sender,
            orcpt: None,
            notify: DsnNotify::from_bits(DsnNotify::NEVER),
            decision: Decision {
                route: Route::Relay,
                policy: None,
            },
        }],
        subject: None,
        parent: Some(message.id.clone()),
        secure: Vec::new(),
        attached: Vec::new(),
        claim: None,
        portal_sent: None,
        smtp_account: None,
    }
}

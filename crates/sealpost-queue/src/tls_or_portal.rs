//! TLS-or-portal: a secure recipient whose definition says
//! `delivery = "tls_or_portal"` gets the message itself when its next hop
//! offers TLS that verifies, and the portal notification otherwise.
//!
//! It fails closed. The message is sealed in the vault as for any secure
//! recipient, and its notification is queued at acceptance as usual; the
//! mark is on the secure recipient (fixed at acceptance). When the worker
//! delivers such a notification it first opens the original from the vault
//! and offers it with [`Delivery::deliver_verified`], which sends nothing
//! unless the session is TLS with a certificate that verifies for the next
//! hop's name. Only a `2xx` to that data counts; anything else (no
//! STARTTLS, a bad certificate, a name mismatch, a handshake error, a
//! refusal) leaves the job to the ordinary path, which sends the
//! notification. The original never goes over an unverified or clear
//! connection.

use std::collections::HashMap;

use sealpost_policy::text::one_line;
use sealpost_smtp::outbound::{DeliveryOutcome, NextHop, OutgoingMessage, OutgoingRecipient};
use sealpost_store::{LeasedMessage, LeasedRecipient, MessageKind, Notify};

use crate::worker::Worker;

/// What the TLS-or-portal jobs of a chunk came to: by position in the
/// chunk, the outcome of those delivered as the message itself.
pub(crate) type Direct = HashMap<usize, DeliveryOutcome>;

impl Worker {
    /// Offers the original message, over verified TLS only, for each
    /// TLS-or-portal notification in `chunk`; returns the ones the next
    /// hop took. The rest go on as notifications.
    pub(crate) async fn deliver_directly(
        &self,
        hop: &NextHop,
        chunk: &[(usize, Vec<&LeasedRecipient>)],
        batch: &[LeasedMessage],
    ) -> Direct {
        let mut direct = Direct::new();
        let notifications: Vec<_> = chunk
            .iter()
            .filter(|(i, _)| batch[*i].kind == MessageKind::Notification)
            .map(|(i, _)| batch[*i].id.clone())
            .collect();
        if notifications.is_empty() {
            return direct;
        }
        let targets = match self.store().notification_targets(notifications).await {
            Ok(t) => t,
            Err(e) => {
                // The notifications go out as usual: the portal is always
                // a correct way to reach the recipient.
                tracing::warn!(error = %e, "cannot read TLS-or-portal marks; sending notifications");
                return direct;
            }
        };
        let mut jobs = Vec::new();
        let mut originals = Vec::new();
        for (pos, (i, rcpts)) in chunk.iter().enumerate() {
            let notification = &batch[*i];
            let Some(target) = targets
                .iter()
                .find(|t| t.notification == notification.id && t.tls_or_portal)
            else {
                continue;
            };
            let [rcpt] = rcpts.as_slice() else {
                continue;
            };
            let content = match self.store().load_body(&target.message).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(queue_id = %target.message, error = %e, "TLS-or-portal: the message cannot be opened; sending the notification");
                    continue;
                }
            };
            jobs.push(pos);
            // Relayed mail, for signing: signed with `dkim.sign_relayed`
            // when its From has a key; 7-bit made (before signing) for a
            // next hop without 8BITMIME.
            let body_8bit = !content.is_ascii();
            let prepared = self.prepare_content(false, &target.message, body_8bit, content);
            originals.push(OutgoingMessage {
                sender: target.sender.clone(),
                recipients: vec![OutgoingRecipient {
                    address: rcpt.address.clone(),
                    orcpt: None,
                    notify: Notify::default(),
                }],
                body_8bit,
                content: prepared.signed,
                seven_bit: prepared.seven_bit,
                smtputf8: false,
                env_id: None,
                ret: None,
                client: None,
            });
        }
        if originals.is_empty() {
            return direct;
        }
        let outcomes = self
            .delivery()
            .deliver_verified(hop, &originals, "the definition's TLS-or-portal delivery")
            .await;
        for (pos, outcome) in jobs.into_iter().zip(outcomes) {
            let notification = &batch[chunk[pos].0].id;
            match outcome.into_iter().next() {
                Some(DeliveryOutcome::Delivered {
                    reply,
                    remote,
                    dsn_passed,
                }) => {
                    tracing::info!(%notification, %remote, "TLS-or-portal: delivered the message itself over verified TLS");
                    metrics::counter!("sealpost_tls_or_portal_total", "delivered_as" => "message")
                        .increment(1);
                    direct.insert(
                        pos,
                        DeliveryOutcome::Delivered {
                            reply: format!(
                                "delivered over verified TLS to {remote}: {}",
                                one_line(&reply, 500)
                            ),
                            remote,
                            dsn_passed,
                        },
                    );
                }
                other => {
                    let why = match &other {
                        Some(
                            DeliveryOutcome::Deferred { reply, .. }
                            | DeliveryOutcome::Failed { reply, .. },
                        ) => one_line(reply, 500),
                        _ => "no outcome".into(),
                    };
                    tracing::info!(%notification, why = %why, "TLS-or-portal: no verified TLS delivery; sending the portal notification");
                    metrics::counter!("sealpost_tls_or_portal_total", "delivered_as" => "notification")
                        .increment(1);
                }
            }
        }
        direct
    }
}

//! Handing a just-accepted message straight to the delivery worker.
//!
//! Without it, a message goes out like this: the acceptance commits it,
//! the worker is woken, leases its recipients in a commit of its own, reads
//! the row back and opens the sealed content. With it, the SMTP session
//! claims the message for the worker before the acceptance (a [`Claim`] on
//! [`NewMessage::claim`]): the acceptance's own commit stores the queued
//! relay recipients already leased to the worker, and after the `250` the
//! session sends the worker the message as it has it, plaintext included,
//! over a channel. No lease statement, no re-read, no decryption.
//!
//! Nothing about durability changes: the message is committed like any
//! other, and a handed-over message that is never delivered (the process
//! stops first) keeps its lease only until the next start releases it, or
//! until the lease runs out.
//!
//! Messages in the channel are bounded by a budget of bytes: a session that
//! finds it spent, or a message over [`MAX_MESSAGE`], takes the ordinary
//! path.

use std::{sync::Arc, time::Duration, time::SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::{LeasedMessage, LeasedRecipient, NewMessage, RecipientStatus};

/// Largest message handed over; larger ones are read back from the store.
pub const MAX_MESSAGE: usize = 256 * 1024;

/// Bytes of handed-over content waiting for, or in, delivery at once.
pub const BUDGET: usize = 32 * 1024 * 1024;

/// The lease a message's queued recipients get in its acceptance commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The worker's lease owner name.
    pub owner: String,
    pub until: SystemTime,
}

/// A message handed over, with the share of the budget it holds until the
/// worker is done with it.
#[derive(Debug)]
pub struct HandedOver {
    pub message: LeasedMessage,
    budget: OwnedSemaphorePermit,
}

/// The share of the handoff budget a handed-over message holds; dropping
/// it gives the share back.
#[derive(Debug)]
pub struct Budget(#[allow(dead_code)] OwnedSemaphorePermit);

impl HandedOver {
    /// The message, and its share of the budget to drop once delivered.
    pub fn into_parts(self) -> (LeasedMessage, Budget) {
        (self.message, Budget(self.budget))
    }
}

/// The sending side: cheap to clone, one per SMTP listener.
#[derive(Debug, Clone)]
pub struct Handoff {
    sender: mpsc::UnboundedSender<HandedOver>,
    budget: Arc<Semaphore>,
    owner: Arc<str>,
    lease: Duration,
}

/// The receiving side, for the worker.
pub type HandoffReceiver = mpsc::UnboundedReceiver<HandedOver>;

/// A handoff channel for the worker whose leases are named `owner` and
/// last `lease`.
pub fn channel(owner: &str, lease: Duration) -> (Handoff, HandoffReceiver) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let handoff = Handoff {
        sender,
        // Permits are KiB, so the budget fits a semaphore's count anywhere.
        budget: Arc::new(Semaphore::new(BUDGET / 1024)),
        owner: owner.into(),
        lease,
    };
    (handoff, receiver)
}

/// A claim on the worker, taken before the acceptance; see the module
/// comment.
#[derive(Debug)]
pub struct Claimed {
    sender: mpsc::UnboundedSender<HandedOver>,
    budget: OwnedSemaphorePermit,
    message: LeasedMessage,
}

impl Handoff {
    /// Claims `message` for the worker when it has relay recipients to
    /// deliver, is small enough and the budget allows, and sets
    /// [`NewMessage::claim`]. After the acceptance committed, call
    /// [`Claimed::hand_over`]; if it failed, drop the claim.
    pub fn claim(&self, message: &mut NewMessage, now: SystemTime) -> Option<Claimed> {
        let size = message.content.len();
        if size > MAX_MESSAGE || self.sender.is_closed() {
            return None;
        }
        let recipients: Vec<LeasedRecipient> = message
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                RecipientStatus::for_route(&r.decision.route) == RecipientStatus::Queued
            })
            .map(|(idx, r)| LeasedRecipient {
                idx: idx as u32,
                address: r.address.clone(),
                orcpt: r.orcpt.clone(),
                notify: r.notify,
                attempts: 0,
                delay_warned: false,
            })
            .collect();
        if recipients.is_empty() {
            return None;
        }
        let kib = u32::try_from(size.div_ceil(1024).max(1)).ok()?;
        let budget = self.budget.clone().try_acquire_many_owned(kib).ok()?;
        message.claim = Some(Claim {
            owner: self.owner.to_string(),
            until: now + self.lease,
        });
        Some(Claimed {
            sender: self.sender.clone(),
            budget,
            message: LeasedMessage {
                id: message.id.clone(),
                received_at: message.received_at,
                sender: message.sender.clone(),
                client: message.client.clone(),
                size: size as u64,
                body_8bit: message.body_8bit,
                smtputf8: message.smtputf8,
                env_id: message.env_id.clone(),
                ret: message.ret,
                expires_at: message.expires_at,
                kind: message.kind,
                recipients,
                content: Some(message.content.clone()),
            },
        })
    }
}

impl Claimed {
    /// Sends the committed message to the worker. If the worker is gone,
    /// the lease runs out (or the next start releases it) and the message
    /// is delivered from the store.
    pub fn hand_over(self) {
        let _ = self.sender.send(HandedOver {
            message: self.message,
            budget: self.budget,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientInfo, MessageKind, NewRecipient, Notify, QueueId};
    use sealpost_policy::{Decision, DefinitionId, EmailAddress, Route};

    fn message(size: usize, routes: &[Route]) -> NewMessage {
        let now = SystemTime::now();
        NewMessage::plain(
            QueueId::generate(),
            now,
            Some(EmailAddress::parse("a@corp.example").unwrap()),
            ClientInfo {
                ip: "127.0.0.1".parse().unwrap(),
                name: None,
                helo: None,
                protocol: "ESMTP".into(),
            },
            vec![b'x'; size],
            now + Duration::from_secs(3600),
            MessageKind::Mail,
            routes
                .iter()
                .enumerate()
                .map(|(i, route)| NewRecipient {
                    address: EmailAddress::parse(&format!("r{i}@ext.example")).unwrap(),
                    orcpt: None,
                    notify: Notify::default(),
                    decision: Decision {
                        route: route.clone(),
                        policy: None,
                    },
                })
                .collect(),
        )
    }

    #[tokio::test]
    async fn only_relay_recipients_of_small_messages_are_handed_over_within_the_budget() {
        let (handoff, mut receiver) = channel("worker-1", Duration::from_secs(60));
        let now = SystemTime::now();
        let secure = Route::Secure {
            definition: DefinitionId(1),
        };

        let mut m = message(5000, &[secure.clone(), Route::Relay]);
        let claimed = handoff.claim(&mut m, now).expect("a relay recipient");
        assert_eq!(m.claim.as_ref().map(|c| c.owner.as_str()), Some("worker-1"));
        assert_eq!(
            m.claim.as_ref().map(|c| c.until),
            Some(now + Duration::from_secs(60))
        );
        claimed.hand_over();
        let got = receiver.recv().await.unwrap().into_parts().0;
        assert_eq!(got.id, m.id);
        assert_eq!(got.content.as_deref(), Some(&m.content[..]));
        let idx: Vec<u32> = got.recipients.iter().map(|r| r.idx).collect();
        assert_eq!(idx, vec![1], "the secure recipient is not delivered");

        let mut all_secure = message(10, &[secure]);
        assert!(handoff.claim(&mut all_secure, now).is_none());
        assert!(all_secure.claim.is_none());
        let mut big = message(MAX_MESSAGE + 1, &[Route::Relay]);
        assert!(handoff.claim(&mut big, now).is_none());

        // The budget: claims held (not yet delivered) use it up; a dropped
        // claim gives its share back.
        let mut held = Vec::new();
        while let Some(c) = handoff.claim(&mut message(MAX_MESSAGE, &[Route::Relay]), now) {
            held.push(c);
            assert!(
                held.len() <= BUDGET / MAX_MESSAGE,
                "the budget bounds claims"
            );
        }
        assert_eq!(held.len(), BUDGET / MAX_MESSAGE);
        held.pop();
        assert!(
            handoff
                .claim(&mut message(100, &[Route::Relay]), now)
                .is_some()
        );

        drop(receiver);
        assert!(
            handoff
                .claim(&mut message(100, &[Route::Relay]), now)
                .is_none()
        );
    }
}

//! The relay queue.
//!
//! - [`schedule`] (pure): after a failed attempt, when to try again, and
//!   when to give up (`relay.retry_schedule`, `relay.queue_lifetime`).
//! - [`worker`]: leases due recipients from the store, delivers them grouped
//!   by next hop, and records each outcome together with the DSNs it causes.
//! - [`control`]: what administrators do to the queue: its depth per
//!   next hop, the waiting recipients, retry now, bounce and delete.
//! - `report`: the DSN a permanent failure causes (shared by the worker and
//!   the control).
//! - `unnotified`: what a notification that failed for good causes (an
//!   error line, a count, the sender's notice where receipts are asked for).
//!
//! The next hop of a recipient (smart host, internal next hop or MX) is
//! not decided here: the worker and the control both ask
//! [`NextHop::choose`](sealpost_smtp::outbound::NextHop::choose), so the
//! queue's depth per next hop is grouped exactly as delivery groups it.
//!
//! # Where a retry is decided
//! Four places, and only these, decide whether a recipient is tried again:
//!
//! 1. **Classification**, in the SMTP crate:
//!    [`Delivery::deliver`](sealpost_smtp::outbound::Delivery::deliver)
//!    turns each reply or error into a
//!    [`DeliveryOutcome`](sealpost_smtp::outbound::DeliveryOutcome):
//!    2xx is delivered; 5xx, a domain that takes no mail (no such domain,
//!    null MX, an MX list that loops back to us) and a message the next
//!    hop cannot take (SMTPUTF8 not offered; 8-bit content that cannot be
//!    made 7-bit for a next hop without 8BITMIME) are failed (permanent);
//!    everything else (4xx, connection, TLS or DNS trouble) is deferred
//!    (temporary). The worker classifies what never reaches the SMTP
//!    crate: a message whose content cannot be read (spool file missing,
//!    or the vault cannot open it) is deferred, and failed and reported
//!    at its fifth attempt (issue 17, item 5).
//! 2. **Lifetime**: a deferral is retried on the schedule until the
//!    message's queue lifetime ends, then failed and reported:
//!    [`RetrySchedule::after_deferral`] returns [`Verdict::Expire`].
//! 3. **Recording**: the worker writes each outcome (deferred with its
//!    retry time, failed or delivered) and the DSNs it causes in one
//!    commit, [`Store::record`](sealpost_store::Store::record); a deferred
//!    recipient is due again only from that retry time.
//! 4. **Lease expiry**: a recipient whose worker crashed (or whose outcome
//!    could not be recorded) keeps its lease until `lease_duration` runs
//!    out; then [`Store::lease_due`](sealpost_store::Store::lease_due)
//!    hands it to a worker again (at-least-once delivery). A delivery that
//!    is still running renews its leases every third of `lease_duration`
//!    ([`Store::renew_leases`](sealpost_store::Store::renew_leases)), so a
//!    slow next hop never lets them run out; an outcome whose lease was
//!    lost all the same is not recorded over the new holder's claim.
//!
//! All queue state lives in the store, so a restart (or another node)
//! continues exactly where this one stopped.

pub mod control;
mod report;
pub mod schedule;
mod tls_or_portal;
mod unnotified;
pub mod worker;

pub use control::QueueControl;
pub use schedule::{RetrySchedule, Verdict};
pub use worker::{QueueConfig, Worker};

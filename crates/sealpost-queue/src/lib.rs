//! The relay queue.
//!
//! - [`schedule`] (pure): after a failed attempt, when to try again, and
//!   when to give up (`relay.retry_schedule`, `relay.queue_lifetime`).
//! - [`worker`]: leases due recipients from the store, delivers them grouped
//!   by next hop, and records each outcome together with the DSNs it causes.
//! - [`control`]: what administrators do to the queue: its depth per
//!   next hop, the waiting recipients, retry now, bounce and delete.
//! - `report`: the DSN a permanent failure causes, and a recipient's next
//!   hop (shared by the worker and the control).
//! - `unnotified`: what a notification that failed for good causes (an
//!   error line, a count, the sender's notice where receipts are asked for).
//!
//! All queue state lives in the store, so a restart (or another node)
//! continues exactly where this one stopped.

pub mod control;
mod report;
pub mod schedule;
mod unnotified;
pub mod worker;

pub use control::QueueControl;
pub use schedule::{RetrySchedule, Verdict};
pub use worker::{QueueConfig, Worker};

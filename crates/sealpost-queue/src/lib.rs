//! The relay queue.
//!
//! - [`schedule`] (pure): after a failed attempt, when to try again, and
//!   when to give up (`relay.retry_schedule`, `relay.queue_lifetime`).
//! - [`worker`]: leases due recipients from the store, delivers them grouped
//!   by next hop, and records each outcome together with the DSNs it causes.
//!
//! All queue state lives in the store, so a restart (or another node)
//! continues exactly where this one stopped.

pub mod schedule;
pub mod worker;

pub use schedule::{RetrySchedule, Verdict};
pub use worker::{QueueConfig, Worker};

//! The sealpost policy engine: a pure library.
//!
//! It owns the domain types that every edge parses input into once
//! ([`EmailAddress`], [`Domain`], [`DomainPattern`], [`IpRange`]), the
//! organisation's [`InternalDomains`], and [`decide`], which picks the route
//! of one recipient of one message.
//!
//! No I/O, no async, no clock: the caller passes the client IP and `now`, so
//! every decision is reproducible and can be explained.
//!
//! # Selection rules (SPEC §3)
//! The full Secure Messaging selection (candidates, override, specificity
//! ranking, tie-breaks) arrives with the policy engine issue. Until then
//! [`decide`] routes every recipient to [`Route::Relay`] with no deciding
//! policy, but the call, its inputs and its output are already the ones the
//! SMTP path uses and stores per recipient.

mod address;
mod decide;
mod domains;
mod net;

pub use address::{AddressError, Domain, EmailAddress};
pub use decide::{Decision, DecisionInput, PolicyId, PolicySet, Route, decide};
pub use domains::{DomainPattern, InternalDomains};
pub use net::{IpRange, IpRangeError, IpRanges};

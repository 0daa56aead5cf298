//! What happens to a message selected for secure delivery before it is
//! stored: the sender's own request is read from its header and the
//! request's traces are removed ([`trigger`]), and the mails that tell the
//! recipient where to read it and the sender where it went are built from
//! the definition's template ([`notification`]).
//!
//! [`plan`] puts them together at acceptance: which recipients get secure
//! delivery, their portal tokens and expiry, and the notifications that are
//! committed with the message.
//!
//! [`reply`] composes a portal recipient's reply, reply all or forward as
//! the mail the intake then accepts (secure for every external address).
//!
//! [`dkim`] signs the mail sealpost writes itself with the key of its
//! From's domain.
//!
//! No I/O: bytes and values in, bytes and records out. Storage, sealing
//! and queueing belong to the callers.

pub mod dkim;
mod mime;
pub mod notification;
pub mod plan;
pub mod reply;
pub mod trigger;

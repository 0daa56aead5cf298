//! SMTP for sealpost.
//!
//! - [`inbound`]: the listener that accepts mail from the organisation's
//!   servers (and anyone, for internal domains), with relay control,
//!   XFORWARD, STARTTLS and the protocol limits of RFC 5321; and the
//!   submission listeners (STARTTLS or implicit TLS, SASL AUTH, sender
//!   rules, lockout; [`inbound::auth`]).
//! - [`outbound`]: the client that hands a message to the next hop (MX or a
//!   configured smart host), reporting an outcome per recipient.
//! - [`dsn`]: RFC 3464 delivery status notifications, built from outcomes.
//! - [`reply`]: every reply code and text the server sends.

pub mod dsn;
pub mod inbound;
pub mod outbound;
pub mod reply;

//! The sealpost gateway as a library: configuration and wiring, so the
//! binary stays thin and end-to-end tests can start a real gateway
//! in-process on port 0.

pub mod admin_cli;
pub mod administrators;
pub mod api_client;
pub mod config;
pub mod dkim;
pub mod keys;
pub mod serve;
pub mod stored_check;
pub mod submission;
pub mod tls;

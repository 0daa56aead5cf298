//! End-to-end tests: a real gateway on loopback, driven by real SMTP
//! clients (swaks, Python's smtplib, raw sockets for malformed input) and
//! delivering to real sinks (Postfix's smtp-sink, an aiosmtpd sink).
//!
//! Browser tests drive Debian's headless Chromium through chromedriver
//! (`browser.rs`).
//!
//! The tools come from `scripts/install-test-tools.sh`; a missing tool
//! fails the test with the command that installs it.

mod browser;
mod helpers;

mod admin_cli;
mod admin_http;
mod api_roles;
mod audit;
mod branding;
mod browser_smoke;
mod cli;
mod config_check;
mod console;
mod console_config;
mod console_policy;
mod data_dir;
mod delivery;
mod delivery_defects;
mod dkim;
mod fail_closed;
mod key_rotation_online;
mod limits;
mod messages_cli;
mod mx;
mod policy_api;
mod portal;
mod portal_hostile;
mod portal_journey;
mod queue;
mod relay;
mod secure;
mod secure_cli;
mod secure_notify;
mod smuggling;
mod submission;
mod tls;
mod tls_or_portal;
mod tls_policy;
mod xforward;

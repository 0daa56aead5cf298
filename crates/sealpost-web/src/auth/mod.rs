//! Who is asking: authentication shared by the faces of `sealpost-web`.
//!
//! API keys serve the REST API. The recipient portal and the admin console
//! build their sign-in on the rest: password hashing and strength,
//! sessions and their cookie, CSRF tokens and the origin check, and rate
//! limits with lockout. These are pure functions and small types: no
//! routes, no store, no response rendering; each face gives the typed
//! refusals its own wire form and keeps its counters in the store.

pub mod api_key;
pub mod csrf;
pub mod forms;
pub mod limit;
pub mod origin;
pub mod password;
pub mod secret;
pub mod session;
pub mod sign_in;
pub mod totp;

pub use api_key::{Caller, NewApiKey, generate_api_key};
pub use secret::Secret;

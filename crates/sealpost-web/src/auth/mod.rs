//! Who is asking: authentication shared by the faces of `sealpost-web`.
//!
//! API keys for the REST API live here now; the recipient portal and the
//! admin console will add their sessions, CSRF tokens, password hashing and
//! lockout beside them. Nothing here renders a response: each face gives
//! the typed refusals its own wire form.

pub mod api_key;

pub use api_key::{Caller, NewApiKey, generate_api_key};

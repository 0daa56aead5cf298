//! Encryption at rest for secure messages, and portal link tokens.
//!
//! Every secure message's content is sealed with its own random key before
//! the store writes it ([`Vault::seal`]), in authenticated 64 KiB chunks and
//! in place, so a large message never has two plaintext copies in memory.
//! The message key is kept only wrapped by a versioned master key
//! ([`Keyring`]); rotation re-wraps keys ([`Vault::rewrap`]) without touching
//! contents.
//!
//! # Threat model
//!
//! - **Protected:** contents in the database, spool files and backups,
//!   against anyone who has those but not the master keys (key file or
//!   `SEALPOST_MASTER_KEY`). Any change to a sealed content or wrapped key is
//!   detected and reported ([`VaultError`]), never shown as plaintext.
//! - **Bound to the message:** the queue id is authenticated with the key and
//!   every chunk, so contents or keys swapped between messages do not open.
//! - **Not protected:** anyone holding both the store and the master keys; a
//!   running gateway's memory; metadata (senders, recipients, sizes: the
//!   sealed length reveals the content length); rolling one message back to
//!   an older sealed form of the same message, which is the store's concern.
//! - **Wrong keys:** [`Keyring::check_value`] lets the store refuse to start
//!   with a key file that does not match the mail already sealed.
//! - **Key hygiene:** keys never reach `Debug` or error messages and are
//!   overwritten on drop, best effort (the compiler may have left copies).
//!
//! # Layout
//!
//! - `seal`: [`Vault`], the sealed format and its errors; `format` (trailer
//!   and chunk geometry) and `wrap` (message key wrapping) serve it.
//! - `keyring`: master key versions and their text form; `keyfile` reads,
//!   creates and saves `vault.master_key_file`.
//! - `token`: [`PortalToken`], the secret in a portal link, and its hash.

mod format;
mod keyfile;
mod keyring;
mod random;
mod seal;
mod token;
mod wrap;

pub use keyring::{Keyring, KeyringError, MasterKey};
pub use seal::{Vault, VaultError, WrappedKey};
pub use token::{PortalToken, TokenHash};

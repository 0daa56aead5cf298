//! The message view as a pure library: what the message page shows of a
//! stored message, and how its untrusted parts reach the browser (issue 15,
//! item 4). No routes, no store, no I/O: the caller opens the vault and
//! passes the raw message; these functions never panic on broken MIME.
//!
//! - [`MessageView::parse`] turns raw bytes into headers as clean one-line
//!   strings, the text and HTML bodies, attachments (safe names, sizes,
//!   types, an opaque [`PartIndex`] for download) and `cid:` inline images.
//! - [`sanitise`] cleans the HTML part with ammonia against a mail allow-list
//!   and rewrites image URLs (see its module for what is kept and why).
//! - [`frame`] wraps the clean body in the document served to a sandboxed
//!   iframe, with that response's own CSP.
//! - [`download`] gives the headers of an attachment download.
//!
//! # The iframe and its images
//! The page embeds the message with
//! `<iframe sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox">`
//! ([`frame::FRAME_SANDBOX`]), and the frame's response repeats that in its
//! CSP `sandbox` directive, so it holds even if the frame URL is opened on its
//! own. No `allow-scripts`, `allow-forms` or `allow-top-navigation`.
//!
//! `allow-same-origin` is there for the `cid:` images: they are plain GETs
//! to the portal authenticated by the session cookie, and an opaque-origin
//! frame is cross-site to its own server, so a `SameSite=Strict` cookie
//! would not be sent and every inline image would fail. Same origin is only
//! dangerous together with script (script could then reach the portal's DOM
//! and cookies' effects); here three layers each stop script on their own:
//! the sanitiser removes it, the frame's CSP has no `script-src` (so
//! `default-src 'none'`), and the sandbox forbids it. Per-message signed
//! image URLs were the alternative; they add a second credential that can
//! leak through history or a copied link, and key handling, for no gain
//! once script cannot run.
pub mod download;
pub mod frame;
mod message;
mod names;
pub mod sanitise;

pub use download::attachment_headers;
pub use frame::{FRAME_SANDBOX, frame_csp, frame_document, frame_headers};
pub use message::{Attachment, Mailbox, MessageView, PartIndex, part_contents};
pub use names::safe_file_name;
pub use sanitise::{SanitisedHtml, sanitise};

#[cfg(test)]
mod hostile_tests;

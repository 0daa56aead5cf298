//! The mail a secure recipient gets instead of the message, and the receipt
//! its sender may get (SPEC §5.5).
//!
//! A notification is rendered from the definition's template: three
//! minijinja sources an administrator may edit, which see only the values
//! of [`NotificationVars`], so a notification can never carry the message
//! content. Values from the message are made one clean line before a
//! template sees them ([`NotificationVars::shown`]). Each notification is
//! checked as rendered before it leaves ([`build_notification`]): it must
//! show the portal link, and its subject never sees the token. Pure: the
//! caller queues the bytes of [`build_notification`] and [`build_receipt`]
//! through the relay queue.
//!
//! # Bounds on a hostile template
//! Templates come from administrators, but a mistaken or hostile one must
//! not take the gateway down. What bounds rendering:
//! - each rendered part is capped at 256 KiB: output goes through a writer
//!   that fails past the cap, so rendering stops there rather than after;
//! - minijinja's own limits: `range()` refuses more than 100,000 items,
//!   string repetition stops at 100 MB, templates nest at most 150 levels
//!   when parsed and calls recurse at most 500 levels;
//! - each part is rendered alone, so `include`, `import` and `extends`
//!   find nothing.
//!
//! - fuel: a rendering may execute at most `TEMPLATE_FUEL` instructions,
//!   which bounds loops that print nothing and text captured by
//!   `{% set %}` blocks or macros before it reaches the output.

mod mail;
mod send;

use std::io;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use sealpost_policy::text::one_line;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use mail::{
    MailHeaders, ReceiptEntry, UnnotifiedEntry, build_mail, build_read_receipt, build_receipt,
    build_system_mail, build_unnotified,
};
pub use send::{Unsendable, build_notification, check_rendered};

/// The neutral subject used when the definition hides the real one.
pub const HIDDEN_SUBJECT: &str = "You have received a secure message";

/// A rendered part larger than this is an error, not a mail.
const MAX_OUTPUT: usize = 256 * 1024;

/// The rendered subject, and the message's subject it may show, are cut
/// to this many characters.
const MAX_SUBJECT_CHARS: usize = 250;

/// A display name (or a definition or organisation name) is cut to this
/// many characters, which keeps its encoded form a few header lines long.
const MAX_NAME_CHARS: usize = 100;

/// An address shown in a notification is cut to this many characters
/// (RFC 5321 allows 64 for the local part and 255 for the domain).
const MAX_ADDRESS_CHARS: usize = 320;

/// A notification template: three minijinja sources. Administrators edit
/// them through the API.
///
/// The variables are the fields of [`NotificationVars`]; using any other
/// name is an error. The HTML part escapes every value it prints; the
/// subject part's output becomes one line. Block tags take their own line
/// with them (`trim_blocks` and `lstrip_blocks` are on), so an `{% if %}`
/// on a line of its own leaves no blank line behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationTemplate {
    /// The Subject line.
    pub subject: String,
    /// The text/plain part.
    pub text: String,
    /// The text/html part.
    pub html: String,
}

impl NotificationTemplate {
    /// The built-in template: plain, professional, branded only as "Secure
    /// message". It says who sent a secure message and its subject (unless
    /// hidden), that the recipient opens it at the link (setting a password
    /// on the first visit), when it expires or that it does not, and that
    /// the link is personal. The HTML is inline-styled and loads nothing
    /// from elsewhere; the link is both a button and plain text.
    pub fn builtin() -> Self {
        NotificationTemplate {
            subject: include_str!("builtin/subject.txt").trim_end().to_owned(),
            text: include_str!("builtin/text.txt").to_owned(),
            html: include_str!("builtin/html.html").to_owned(),
        }
    }

    /// Parses all three parts, then renders them with sample values (once
    /// with an expiry and the subject shown, once without either), so a
    /// misspelt variable or filter is found before a recipient would see it.
    ///
    /// # Errors
    /// The first problem found, naming the part and, when minijinja knows
    /// it, the line.
    pub fn check(&self) -> Result<(), TemplateError> {
        self.compile()?.check()
    }

    /// Parses the three parts once, for rendering many notifications.
    ///
    /// # Errors
    /// A part that does not parse, named with its line.
    pub fn compile(&self) -> Result<CompiledTemplate, TemplateError> {
        Ok(CompiledTemplate {
            subject: environment(TemplatePart::Subject, self.subject.clone())?,
            text: environment(TemplatePart::Text, self.text.clone())?,
            html: environment(TemplatePart::Html, self.html.clone())?,
        })
    }
}

/// A [`NotificationTemplate`] parsed once: what a notification is rendered
/// from. Cheap to share (`Arc`) between sessions.
pub struct CompiledTemplate {
    subject: Environment<'static>,
    text: Environment<'static>,
    html: Environment<'static>,
}

impl std::fmt::Debug for CompiledTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledTemplate").finish_non_exhaustive()
    }
}

impl CompiledTemplate {
    /// Renders the three parts from the values as [`NotificationVars::shown`]
    /// makes them. The subject part sees `portal_link` without its token
    /// (the last path segment), so no filter or slice can put the token in
    /// a Subject, which travels in bounces and logs.
    ///
    /// # Errors
    /// A part that fails to render (undefined variable, too much output,
    /// out of fuel).
    pub fn render(&self, vars: &NotificationVars) -> Result<Rendered, TemplateError> {
        let vars = vars.shown();
        let subject = render_part(TemplatePart::Subject, &self.subject, &vars.without_token())?;
        Ok(Rendered {
            subject: one_line(&subject, MAX_SUBJECT_CHARS),
            text: render_part(TemplatePart::Text, &self.text, &vars)?,
            html: render_part(TemplatePart::Html, &self.html, &vars)?,
        })
    }

    /// See [`NotificationTemplate::check`]. An early warning only: a
    /// condition can print the link for the sample values and not for a
    /// real message, so every notification is checked again when it is
    /// sent ([`check_rendered`]).
    fn check(&self) -> Result<(), TemplateError> {
        let subject = self
            .subject
            .get_template(TemplatePart::Subject.name())
            .map_err(|e| TemplateError::from_minijinja(TemplatePart::Subject, &e))?;
        let sample = NotificationVars::sample();
        // minijinja's static analysis misses the object of a slice
        // (`portal_link[-40:]`), so a subject whose output changes with the
        // link reads it too.
        let base = sample.without_token().portal_link;
        let other_link = NotificationVars {
            portal_link: format!(
                "{base}{}",
                "#".repeat(sample.portal_link.len() - base.len())
            ),
            ..sample.clone()
        };
        if subject.undeclared_variables(false).contains("portal_link")
            || render_part(TemplatePart::Subject, &self.subject, &sample)?
                != render_part(TemplatePart::Subject, &self.subject, &other_link)?
        {
            return Err(TemplateError {
                part: TemplatePart::Subject,
                line: None,
                message:
                    "the subject must not use {{ portal_link }}: the link is the recipient's secret"
                        .into(),
            });
        }
        let hidden = NotificationVars {
            subject: HIDDEN_SUBJECT.to_owned(),
            subject_hidden: true,
            ..sample.clone().with_expiry(None)
        };
        let rendered = [self.render(&sample)?, self.render(&hidden)?];
        for rendered in &rendered {
            check_rendered(rendered, &sample.portal_link).map_err(|problem| TemplateError {
                part: problem.part(),
                line: None,
                message: problem.to_string(),
            })?;
        }
        Ok(())
    }
}

/// The variables a template sees; each is named exactly as its field.
/// `Debug` leaves out the portal link (it carries the recipient's token).
#[derive(Clone, Serialize)]
pub struct NotificationVars {
    /// The sender's address (envelope or From, as the caller decides).
    pub sender: String,
    /// The sender's display name, or the address when there is none.
    pub sender_name: String,
    /// The message's subject, or [`HIDDEN_SUBJECT`] when the definition
    /// hides it (the caller substitutes it).
    pub subject: String,
    /// Whether `subject` is the neutral text rather than the real one.
    pub subject_hidden: bool,
    /// The recipient's address.
    pub recipient: String,
    /// The personal link that opens the message on the portal.
    pub portal_link: String,
    /// When the message expires, as a date in words ("12 December 2026",
    /// UTC); none when it never does.
    pub expires: Option<String>,
    /// The same moment in RFC 3339; none when it never expires.
    pub expires_at: Option<String>,
    /// The name of the definition that applied.
    pub definition: String,
    /// Who runs the service, for the footer (for example the gateway's
    /// host name).
    pub organisation: String,
}

impl NotificationVars {
    /// Plausible sample values for the preview endpoint.
    pub fn sample() -> Self {
        NotificationVars {
            sender: "alice.martin@example.com".to_owned(),
            sender_name: "Alice Martin".to_owned(),
            subject: "Q3 figures for review".to_owned(),
            subject_hidden: false,
            recipient: "bob.jones@partner.example".to_owned(),
            portal_link: "https://secure.example.com/portal/open/5Jq2yXz8Rk0vT1cW".to_owned(),
            expires: None,
            expires_at: None,
            definition: "default".to_owned(),
            organisation: "secure.example.com".to_owned(),
        }
        .with_expiry(Some(time::macros::datetime!(2026-12-12 00:00 UTC)))
    }

    /// The values as a template sees them: each one a message or an
    /// administrator wrote is made one clean line ([`one_line`]), so that
    /// a subject or display name decoded from an encoded-word cannot put
    /// control characters or line breaks into a notification. Rendering
    /// calls this, so no caller can forget it. The portal link and the
    /// expiry are ours and left as they are.
    pub fn shown(&self) -> Self {
        let sender = one_line(&self.sender, MAX_ADDRESS_CHARS);
        let sender_name = match one_line(&self.sender_name, MAX_NAME_CHARS) {
            name if name.is_empty() => sender.clone(),
            name => name,
        };
        NotificationVars {
            sender,
            sender_name,
            subject: one_line(&self.subject, MAX_SUBJECT_CHARS),
            recipient: one_line(&self.recipient, MAX_ADDRESS_CHARS),
            definition: one_line(&self.definition, MAX_NAME_CHARS),
            organisation: one_line(&self.organisation, MAX_NAME_CHARS),
            ..self.clone()
        }
    }

    /// The values the subject part sees: `portal_link` is the link without
    /// its token (the last path segment), so the subject cannot carry it.
    fn without_token(&self) -> Self {
        let base = match self.portal_link.rfind('/') {
            Some(slash) => &self.portal_link[..=slash],
            None => "",
        };
        NotificationVars {
            portal_link: base.to_owned(),
            ..self.clone()
        }
    }

    /// Sets `expires` and `expires_at` from the expiry moment; None for a
    /// message that never expires.
    pub fn with_expiry(self, at: Option<OffsetDateTime>) -> Self {
        NotificationVars {
            expires: at.map(human_date),
            expires_at: at.map(|at| sealpost_store::rfc3339(at.into())),
            ..self
        }
    }
}

/// A date in words, in UTC: "12 December 2026".
pub fn human_date(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[day padding:none] [month repr:long] [year]");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// A rendered notification, ready for [`build_mail`] or a preview.
/// `Debug` shows sizes only: the bodies carry the portal link.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// One line, at most 250 characters.
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("subject", &self.subject)
            .field("text_len", &self.text.len())
            .field("html_len", &self.html.len())
            .finish()
    }
}

impl std::fmt::Debug for NotificationVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationVars")
            .field("sender", &self.sender)
            .field("recipient", &self.recipient)
            .field("definition", &self.definition)
            .field("portal_link", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// One of the three parts of a [`NotificationTemplate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplatePart {
    Subject,
    Text,
    Html,
}

impl TemplatePart {
    fn name(self) -> &'static str {
        match self {
            TemplatePart::Subject => "subject",
            TemplatePart::Text => "text",
            TemplatePart::Html => "html",
        }
    }
}

impl std::fmt::Display for TemplatePart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A template that does not parse or render, e.g. "html template, line 3:
/// unknown filter: filter foo is unknown".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{part} template{}: {message}", at_line(.line))]
pub struct TemplateError {
    pub part: TemplatePart,
    /// The line in that part's source, when minijinja knows it.
    pub line: Option<usize>,
    pub message: String,
}

fn at_line(line: &Option<usize>) -> String {
    line.map(|l| format!(", line {l}")).unwrap_or_default()
}

impl TemplateError {
    fn from_minijinja(part: TemplatePart, err: &minijinja::Error) -> Self {
        let message = match err.detail() {
            Some(detail) => format!("{}: {detail}", err.kind()),
            None => err.kind().to_string(),
        };
        TemplateError {
            part,
            line: err.line(),
            message,
        }
    }
}

/// Renders the three parts (see [`CompiledTemplate::render`]). Values are
/// HTML-escaped in the html part only; the subject's output is made one
/// line of at most 250 characters.
///
/// # Errors
/// A part that does not parse, uses an undefined variable (strict mode,
/// so a typo is not rendered as a blank) or renders to more than 256 KiB.
pub fn render(
    template: &NotificationTemplate,
    vars: &NotificationVars,
) -> Result<Rendered, TemplateError> {
    template.compile()?.render(vars)
}

/// Instructions one rendering may execute: the built-in template needs a
/// few hundred; a loop of a million steps is refused.
const TEMPLATE_FUEL: u64 = 200_000;

/// An environment holding one part, parsed.
fn environment(part: TemplatePart, source: String) -> Result<Environment<'static>, TemplateError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // A hostile or careless template (nested loops that print nothing,
    // say) runs out of fuel instead of holding a session's thread.
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    let escape = if part == TemplatePart::Html {
        AutoEscape::Html
    } else {
        AutoEscape::None
    };
    env.set_auto_escape_callback(move |_| escape);
    env.set_formatter(format_value);
    env.add_template_owned(part.name(), source)
        .map_err(|e| TemplateError::from_minijinja(part, &e))?;
    Ok(env)
}

/// minijinja's formatter, except that strings in HTML are escaped by
/// [`escape_html`]: minijinja also escapes `/`, which would print the
/// portal link in `href` as `https:&#x2f;&#x2f;…`, valid but odd to read
/// and to link scanners.
fn format_value(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    match value.as_str() {
        Some(text) if state.auto_escape() == AutoEscape::Html && !value.is_safe() => {
            Ok(out.write_str(&escape_html(text))?)
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// Escapes text for HTML content and quoted attribute values.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn render_part(
    part: TemplatePart,
    env: &Environment<'static>,
    vars: &NotificationVars,
) -> Result<String, TemplateError> {
    let template = env
        .get_template(part.name())
        .map_err(|e| TemplateError::from_minijinja(part, &e))?;
    let mut out = BoundedOutput::default();
    match template.render_captured_to(vars, &mut out) {
        Ok(_) => Ok(String::from_utf8(out.bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
        Err(_) if out.overflowed => Err(TemplateError {
            part,
            line: None,
            message: format!("the output is larger than {} KiB", MAX_OUTPUT / 1024),
        }),
        Err(e) => {
            let mut err = TemplateError::from_minijinja(part, &e);
            if e.kind() == minijinja::ErrorKind::UndefinedError {
                let unknown = unknown_variables(env, &template);
                if !unknown.is_empty() {
                    err.message = format!("{}: no variable named {unknown}", err.message);
                }
            }
            Err(err)
        }
    }
}

/// The top-level names a template reads that are neither a field of
/// [`NotificationVars`] nor a minijinja global, as "`a`, `b`".
fn unknown_variables(env: &Environment<'_>, template: &minijinja::Template<'_, '_>) -> String {
    let mut names: Vec<String> = template
        .undeclared_variables(false)
        .into_iter()
        .filter(|name| !VARIABLES.contains(&name.as_str()))
        .filter(|name| !env.globals().any(|(global, _)| global == name))
        .map(|name| format!("`{name}`"))
        .collect();
    names.sort();
    names.join(", ")
}

/// The field names of [`NotificationVars`], as templates see them.
const VARIABLES: [&str; 10] = [
    "sender",
    "sender_name",
    "subject",
    "subject_hidden",
    "recipient",
    "portal_link",
    "expires",
    "expires_at",
    "definition",
    "organisation",
];

/// Collects rendered output and fails the write that would pass
/// [`MAX_OUTPUT`], which stops the render.
#[derive(Debug, Default)]
struct BoundedOutput {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl io::Write for BoundedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_OUTPUT {
            self.overflowed = true;
            return Err(io::Error::other("rendered output too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

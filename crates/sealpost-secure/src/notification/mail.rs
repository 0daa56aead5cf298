//! Rendered text to RFC 5322 bytes: the notification, the sender's
//! receipt and the sender's notice of recipients who could not be
//! notified, each `multipart/alternative` with a text and an HTML part.
//!
//! All are marked `Auto-Submitted: auto-generated` (RFC 3834) so that
//! vacation responders and other robots do not answer them. Every value
//! that lands in a header is flattened to one line first, so nothing a
//! sender wrote can add a header field.

use std::fmt::Write as _;

use sealpost_policy::text::one_line;

use sealpost_policy::EmailAddress;

use super::{MAX_NAME_CHARS, MAX_SUBJECT_CHARS, Rendered, escape_html};
use crate::mime::{self, Mail, message_id};

/// Envelope-free parts of the mail to build.
#[derive(Debug, Clone, Copy)]
pub struct MailHeaders<'a> {
    /// The display name of the From address; empty for none.
    pub from_name: &'a str,
    /// Written with an IDN domain as A-labels where the local part is
    /// ASCII, like `to`.
    pub from_address: &'a str,
    /// The recipient, as the envelope has it: an IDN domain is written as
    /// A-labels where the local part is ASCII (see
    /// [`EmailAddress::with_ascii_domain`]).
    pub to: &'a str,
    /// The right-hand side of the Message-ID, usually our host name.
    pub message_id_domain: &'a str,
    pub date: time::OffsetDateTime,
}

/// Builds the notification as RFC 5322 bytes (CRLF line ends):
/// `multipart/alternative` with UTF-8 quoted-printable text/plain and
/// text/html parts; From, To, Subject (RFC 2047 when not plain ASCII),
/// Date, Message-ID, MIME-Version, `Auto-Submitted: auto-generated` and
/// `X-Sealpost-Notification: 1`. Header lines fold at 78 octets,
/// encoded-words are at most 75 characters, quoted-printable lines 76.
pub fn build_mail(rendered: &Rendered, headers: &MailHeaders<'_>) -> Vec<u8> {
    build(
        headers,
        &one_line(&rendered.subject, MAX_SUBJECT_CHARS),
        &rendered.text,
        &rendered.html,
        Some(("X-Sealpost-Notification", "1")),
    )
}

/// A system mail of the portal (a password-reset or a fresh registration
/// link) as RFC 5322 bytes, in the same `multipart/alternative` form as a
/// notification; the caller's fixed wording, marked
/// `X-Sealpost-Portal: 1`. The subject is flattened to one line.
pub fn build_system_mail(
    headers: &MailHeaders<'_>,
    subject: &str,
    text: &str,
    html: &str,
) -> Vec<u8> {
    build(
        headers,
        &one_line(subject, MAX_SUBJECT_CHARS),
        text,
        html,
        Some(("X-Sealpost-Portal", "1")),
    )
}

/// One recipient listed in a sender receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptEntry {
    pub recipient: String,
    /// The name of the definition that applied.
    pub definition: String,
    /// When the message expires for this recipient, in words (see
    /// [`human_date`](super::human_date)); None when it does not.
    pub expires: Option<String>,
}

/// The receipt to the sender: a text and HTML mail in fixed wording saying
/// that the message `subject` was delivered securely to the listed
/// recipients, with the definition and expiry of each. The subject is shown
/// even when recipients do not see it (the sender wrote it), flattened to
/// one line and HTML-escaped. A `warning` (why the definition the sender
/// chose was not the one applied) is shown first, in both parts.
pub fn build_receipt(
    subject: &str,
    warning: Option<&str>,
    entries: &[ReceiptEntry],
    headers: &MailHeaders<'_>,
) -> Vec<u8> {
    let subject = one_line(subject, MAX_SUBJECT_CHARS);
    let mut text = String::new();
    let mut html = String::new();
    let _ = writeln!(
        text,
        "Your message \"{subject}\" was delivered securely.\n\n\
         These recipients were sent a notification with a personal link to\n\
         read it on the secure portal; it was not sent to their mail servers:\n"
    );
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Delivered securely</title>\n</head>\n\
         <body style=\"margin:0; padding:16px; font-family:Arial, Helvetica, sans-serif; \
         font-size:15px; line-height:1.5; color:#1f2933;\">\n\
         <p style=\"margin:0 0 16px 0;\">Your message <strong>&quot;{}&quot;</strong> was \
         delivered securely.</p>\n\
         <p style=\"margin:0 0 8px 0;\">These recipients were sent a notification with a \
         personal link to read it on the secure portal; it was not sent to their mail \
         servers:</p>\n<ul style=\"margin:0 0 16px 0;\">\n",
        escape_html(&subject)
    );
    if let Some(warning) = warning {
        let warning = one_line(warning, 1000);
        text.insert_str(0, &format!("Please note: {warning}\n\n"));
        let at = html.find("<p ").unwrap_or(html.len());
        html.insert_str(
            at,
            &format!(
                "<p style=\"margin:0 0 16px 0; padding:8px; background:#fff4e5; \
                 border-left:4px solid #d97706;\"><strong>Please note:</strong> {}</p>\n",
                escape_html(&warning)
            ),
        );
    }
    for entry in entries {
        let recipient = one_line(&entry.recipient, MAX_SUBJECT_CHARS);
        let definition = one_line(&entry.definition, MAX_SUBJECT_CHARS);
        let expiry = match &entry.expires {
            Some(date) => format!("readable until {}", one_line(date, MAX_SUBJECT_CHARS)),
            None => "does not expire".to_owned(),
        };
        let _ = writeln!(
            text,
            "  - {recipient} (definition \"{definition}\", {expiry})"
        );
        let _ = writeln!(
            html,
            "<li>{} (definition &quot;{}&quot;, {})</li>",
            escape_html(&recipient),
            escape_html(&definition),
            escape_html(&expiry)
        );
    }
    if entries.is_empty() {
        text.push_str("  (none)\n");
        html.push_str("<li>(none)</li>\n");
    }
    text.push_str("\nThis is an automatic message.\n");
    html.push_str(
        "</ul>\n<p style=\"margin:0; font-size:12px; color:#7b8794;\">This is an automatic \
         message.</p>\n</body>\n</html>\n",
    );
    build(
        headers,
        &format!("Delivered securely: {subject}"),
        &text,
        &html,
        None,
    )
}

/// One secure recipient whose notification failed for good, listed in
/// [`build_unnotified`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnnotifiedEntry {
    pub recipient: String,
    /// Why: the next hop's reply or our diagnostic.
    pub reason: String,
}

/// The mail to the sender when notifications failed for good: fixed
/// wording saying that the listed recipients were never told where to read
/// the message `subject`, with the reason for each, in a text and an HTML
/// part. Subject, addresses and replies come from the sender or a remote
/// server, so each goes through [`sealpost_policy::text::one_line`] (and is
/// HTML-escaped in the HTML part).
pub fn build_unnotified(
    subject: &str,
    entries: &[UnnotifiedEntry],
    headers: &MailHeaders<'_>,
) -> Vec<u8> {
    let subject = one_line(subject, MAX_SUBJECT_CHARS);
    let mut text = format!(
        "Your message \"{subject}\" is kept for secure delivery, but these\n\
         recipients could not be sent the notification with their link to read\n\
         it, so they do not know it is waiting:\n\n"
    );
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Recipients not notified</title>\n</head>\n\
         <body style=\"margin:0; padding:16px; font-family:Arial, Helvetica, sans-serif; \
         font-size:15px; line-height:1.5; color:#1f2933;\">\n\
         <p style=\"margin:0 0 16px 0;\">Your message <strong>&quot;{}&quot;</strong> is kept \
         for secure delivery, but these recipients could not be sent the notification with \
         their link to read it, so they do not know it is waiting:</p>\n\
         <ul style=\"margin:0 0 16px 0;\">\n",
        escape_html(&subject)
    );
    for entry in entries {
        let recipient = one_line(&entry.recipient, MAX_SUBJECT_CHARS);
        let reason = one_line(&entry.reason, MAX_SUBJECT_CHARS);
        let _ = writeln!(text, "  - {recipient} (the reply was: {reason})");
        let _ = writeln!(
            html,
            "<li>{} (the reply was: {})</li>",
            escape_html(&recipient),
            escape_html(&reason)
        );
    }
    text.push_str(
        "\nCheck the addresses, or tell them another way.\n\nThis is an automatic message.\n",
    );
    html.push_str(
        "</ul>\n<p style=\"margin:0 0 16px 0;\">Check the addresses, or tell them another \
         way.</p>\n<p style=\"margin:0; font-size:12px; color:#7b8794;\">This is an automatic \
         message.</p>\n</body>\n</html>\n",
    );
    build(
        headers,
        &format!("Recipients not notified: {subject}"),
        &text,
        &html,
        None,
    )
}

/// The read receipt to the sender, at a recipient's first opening, in
/// fixed wording: "<recipient> opened '<subject>' at <time>". The subject
/// and the address are flattened to one line (and HTML-escaped in the
/// HTML part); nothing else is said, so no portal token or link can be in
/// it.
pub fn build_read_receipt(
    recipient: &str,
    subject: &str,
    opened_at: time::OffsetDateTime,
    headers: &MailHeaders<'_>,
) -> Vec<u8> {
    let recipient = one_line(recipient, MAX_SUBJECT_CHARS);
    let subject = one_line(subject, MAX_SUBJECT_CHARS);
    let at = opened_at
        .to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[day padding:none] [month repr:long] [year], [hour]:[minute] UTC"
        ))
        .unwrap_or_default();
    let text =
        format!("{recipient} opened '{subject}' at {at}.\n\nThis is an automatic message.\n");
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Read receipt</title>\n</head>\n\
         <body style=\"margin:0; padding:16px; font-family:Arial, Helvetica, sans-serif; \
         font-size:15px; line-height:1.5; color:#1f2933;\">\n\
         <p style=\"margin:0 0 16px 0;\">{} opened &#39;{}&#39; at {}.</p>\n\
         <p style=\"margin:0; font-size:12px; color:#7b8794;\">This is an automatic \
         message.</p>\n</body>\n</html>\n",
        escape_html(&recipient),
        escape_html(&subject),
        escape_html(&at)
    );
    build(headers, &format!("Read: {subject}"), &text, &html, None)
}

/// The mail the builders write; `subject` is already one line.
fn build(
    headers: &MailHeaders<'_>,
    subject: &str,
    text: &str,
    html: &str,
    extra: Option<(&str, &str)>,
) -> Vec<u8> {
    mime::write(&Mail {
        from_name: &one_line(headers.from_name, MAX_NAME_CHARS),
        from_address: &header_address(headers.from_address),
        to: &header_address(headers.to),
        subject,
        date: headers.date,
        message_id: &message_id(headers.message_id_domain),
        extra,
        text,
        html,
    })
}

/// An address for a header, in the form the envelope uses (see
/// [`EmailAddress::with_ascii_domain`]): a mail that travels without
/// SMTPUTF8 must not carry a U-label domain in its header either.
fn header_address(address: &str) -> String {
    let address = clean_address(address);
    match EmailAddress::parse(&address) {
        Ok(parsed) => parsed.with_ascii_domain().to_string(),
        Err(_) => address,
    }
}

/// An address for a header: no control characters, spaces or angle
/// brackets, so it cannot end the field or the `<...>` around it.
fn clean_address(address: &str) -> String {
    address
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace() && !matches!(c, '<' | '>'))
        .collect()
}

//! Delivery status notifications (RFC 3464), built from recipient outcomes.
//!
//! Pure: the queue passes what happened and gets the report's bytes, ready
//! to be queued as a new message from `<>` to the original sender.

use std::time::SystemTime;

use sealpost_policy::EmailAddress;
use sealpost_store::DsnReturn;

/// Content larger than this is returned as headers only, even with
/// RET=FULL, so a bounce of a huge message does not double the queue.
const MAX_RETURNED_CONTENT: usize = 10 * 1024 * 1024;

/// What happened to one recipient, for its per-recipient DSN fields.
#[derive(Debug, Clone)]
pub struct DsnRecipient {
    pub address: EmailAddress,
    pub orcpt: Option<String>,
    pub action: DsnAction,
    /// The reply of the last attempt (`550 5.1.1 No such user`) or our
    /// diagnostic.
    pub reply: String,
    /// Whether `reply` came from a remote server (else we generated it).
    pub remote_mta: Option<String>,
    pub last_attempt: SystemTime,
}

/// RFC 3464 §2.3.3 Action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnAction {
    Failed,
    Delayed,
    Delivered,
    Relayed,
}

impl DsnAction {
    fn as_str(self) -> &'static str {
        match self {
            DsnAction::Failed => "failed",
            DsnAction::Delayed => "delayed",
            DsnAction::Delivered => "delivered",
            DsnAction::Relayed => "relayed",
        }
    }
}

/// Everything a report needs.
#[derive(Debug)]
pub struct DsnInput<'a> {
    /// Our host name (Reporting-MTA, From, Message-ID).
    pub reporting_mta: &'a str,
    pub sender: &'a EmailAddress,
    pub queue_id: &'a str,
    pub env_id: Option<&'a str>,
    pub arrival: SystemTime,
    pub ret: Option<DsnReturn>,
    /// The original message as stored.
    pub original: &'a [u8],
    pub recipients: Vec<DsnRecipient>,
    pub now: SystemTime,
}

/// Builds the report message (headers and body, CRLF line ends).
pub fn build(input: &DsnInput<'_>) -> Vec<u8> {
    let boundary = format!(
        "{}.{}/{}",
        input.queue_id,
        unix(input.now),
        input.reporting_mta
    );
    let utf8 = input.sender.is_utf8() || input.recipients.iter().any(|r| r.address.is_utf8());
    let failed = input
        .recipients
        .iter()
        .any(|r| r.action == DsnAction::Failed);
    let subject = if failed {
        "Undelivered Mail Returned to Sender"
    } else if input
        .recipients
        .iter()
        .any(|r| r.action == DsnAction::Delayed)
    {
        "Delayed Mail (still being retried)"
    } else {
        "Successful Mail Delivery Report"
    };
    let mut out = String::new();
    out.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{}>\r\n",
        input.reporting_mta
    ));
    out.push_str(&format!("To: <{}>\r\n", input.sender));
    out.push_str(&format!("Subject: {subject}\r\n"));
    out.push_str(&format!("Date: {}\r\n", rfc2822(input.now)));
    out.push_str(&format!(
        "Message-ID: <{}.{}.dsn@{}>\r\n",
        input.queue_id,
        unix(input.now),
        input.reporting_mta
    ));
    out.push_str("Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
    out.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    out.push_str("This is a MIME-encapsulated message.\r\n\r\n");

    // Part 1: for people.
    out.push_str(&format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"));
    out.push_str(&format!(
        "This is the mail system at host {}.\r\n\r\n",
        input.reporting_mta
    ));
    if failed {
        out.push_str("Your message could not be delivered to one or more recipients.\r\nThe details are below; the original message is attached.\r\n\r\n");
    } else if input
        .recipients
        .iter()
        .any(|r| r.action == DsnAction::Relayed)
    {
        out.push_str("Your message was relayed to a server that does not send delivery\r\nnotifications, so this is the last report you will get about it.\r\n\r\n");
    } else if input
        .recipients
        .iter()
        .any(|r| r.action == DsnAction::Delayed)
    {
        out.push_str("Your message has not yet been delivered to one or more recipients.\r\nThe mail system keeps trying; you do not need to send it again.\r\nYou will hear again only if it finally fails.\r\n\r\n");
    } else {
        out.push_str("This is a report about your message; the details are below.\r\n\r\n");
    }
    for r in &input.recipients {
        out.push_str(&format!("<{}>: {}\r\n", r.address, one_line(&r.reply)));
    }
    out.push_str("\r\n");

    // Part 2: for machines.
    let status_type = if utf8 {
        "message/global-delivery-status"
    } else {
        "message/delivery-status"
    };
    let addr_type = if utf8 { "utf-8" } else { "rfc822" };
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: {status_type}\r\n\r\n"
    ));
    out.push_str(&format!("Reporting-MTA: dns; {}\r\n", input.reporting_mta));
    out.push_str(&format!("X-Sealpost-Queue-ID: {}\r\n", input.queue_id));
    if let Some(env_id) = input.env_id {
        out.push_str(&format!("Original-Envelope-Id: {}\r\n", one_line(env_id)));
    }
    out.push_str(&format!("Arrival-Date: {}\r\n", rfc2822(input.arrival)));
    for r in &input.recipients {
        out.push_str("\r\n");
        out.push_str(&format!("Final-Recipient: {addr_type}; {}\r\n", r.address));
        if let Some(orcpt) = &r.orcpt {
            out.push_str(&format!(
                "Original-Recipient: rfc822; {}\r\n",
                one_line(orcpt)
            ));
        }
        out.push_str(&format!("Action: {}\r\n", r.action.as_str()));
        out.push_str(&format!("Status: {}\r\n", status_of(r)));
        if let Some(mta) = &r.remote_mta {
            out.push_str(&format!("Remote-MTA: dns; {}\r\n", one_line(mta)));
        }
        out.push_str(&format!(
            "Diagnostic-Code: smtp; {}\r\n",
            one_line(&r.reply)
        ));
        out.push_str(&format!(
            "Last-Attempt-Date: {}\r\n",
            rfc2822(r.last_attempt)
        ));
    }
    out.push_str("\r\n");

    // Part 3: the original, whole or headers only (RFC 3462, RFC 6522).
    let mut bytes = out.into_bytes();
    let headers_end =
        memchr::memmem::find(input.original, b"\r\n\r\n").map_or(input.original.len(), |i| i + 2);
    // Only a failure report returns the whole message; a success report
    // carries the headers, enough to identify it (RFC 3461 §6.2.1).
    let full = failed
        && input.ret != Some(DsnReturn::Headers)
        && input.original.len() <= MAX_RETURNED_CONTENT;
    let (part_type, content) = match (full, utf8) {
        (true, false) => ("message/rfc822", input.original),
        (true, true) => ("message/global", input.original),
        (false, false) => ("text/rfc822-headers", &input.original[..headers_end]),
        (false, true) => ("message/global-headers", &input.original[..headers_end]),
    };
    bytes
        .extend_from_slice(format!("--{boundary}\r\nContent-Type: {part_type}\r\n\r\n").as_bytes());
    bytes.extend_from_slice(content);
    if !content.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

/// The RFC 3463 status: the reply's enhanced code when it has one, else
/// derived from its class.
fn status_of(r: &DsnRecipient) -> String {
    if matches!(r.action, DsnAction::Relayed | DsnAction::Delivered) {
        return "2.0.0".into();
    }
    let mut words = r.reply.split_ascii_whitespace();
    let code = words.next().unwrap_or("");
    if let Some(enhanced) = words.next()
        && is_enhanced(enhanced)
    {
        return enhanced.to_owned();
    }
    match code.as_bytes().first() {
        Some(b'2') => "2.0.0".into(),
        Some(b'4') if r.action == DsnAction::Failed => "4.4.7".into(),
        Some(b'4') => "4.0.0".into(),
        _ => "5.0.0".into(),
    }
}

fn is_enhanced(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Most octets of outside text (a remote server's reply, ORCPT, ENVID) in
/// one line of a report: with its field name the line stays within the 998
/// octets of RFC 5322, so no receiver refuses the DSN for it.
const MAX_LINE_TEXT: usize = 900;

/// `s` with control characters (CR, LF among them) as spaces, cut to
/// [`MAX_LINE_TEXT`] octets on a character boundary.
fn one_line(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_LINE_TEXT {
            break;
        }
        out.push(c);
    }
    out
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn rfc2822(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(
        sender: &'a EmailAddress,
        original: &'a [u8],
        ret: Option<DsnReturn>,
    ) -> DsnInput<'a> {
        DsnInput {
            reporting_mta: "gw.corp.example",
            sender,
            queue_id: "0123456789ABCDEF",
            env_id: Some("env-1"),
            arrival: SystemTime::UNIX_EPOCH,
            ret,
            original,
            recipients: vec![DsnRecipient {
                address: EmailAddress::parse("bob@ext.example").unwrap(),
                orcpt: Some("Bob@ext.example".into()),
                action: DsnAction::Failed,
                reply: "550 5.1.1 No such user here".into(),
                remote_mta: Some("mx.ext.example[192.0.2.1]:25".into()),
                last_attempt: SystemTime::UNIX_EPOCH,
            }],
            now: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn failed_report_has_the_rfc3464_fields() {
        let sender = EmailAddress::parse("alice@corp.example").unwrap();
        let original = b"Subject: hello\r\nFrom: alice@corp.example\r\n\r\nsecret body\r\n";
        let report = String::from_utf8(build(&input(&sender, original, None))).unwrap();
        for needle in [
            "Content-Type: multipart/report; report-type=delivery-status;",
            "Content-Type: message/delivery-status",
            "Reporting-MTA: dns; gw.corp.example",
            "Original-Envelope-Id: env-1",
            "Final-Recipient: rfc822; bob@ext.example",
            "Original-Recipient: rfc822; Bob@ext.example",
            "Action: failed",
            "Status: 5.1.1",
            "Diagnostic-Code: smtp; 550 5.1.1 No such user here",
            "Content-Type: message/rfc822",
            "secret body",
            "To: <alice@corp.example>",
        ] {
            assert!(report.contains(needle), "missing {needle:?} in\n{report}");
        }
    }

    #[test]
    fn ret_hdrs_returns_headers_only() {
        let sender = EmailAddress::parse("alice@corp.example").unwrap();
        let original = b"Subject: hello\r\n\r\nsecret body\r\n";
        let report =
            String::from_utf8(build(&input(&sender, original, Some(DsnReturn::Headers)))).unwrap();
        assert!(report.contains("Content-Type: text/rfc822-headers"));
        assert!(report.contains("Subject: hello"));
        assert!(!report.contains("secret body"));
    }

    #[test]
    fn a_hostile_reply_cannot_break_the_report_lines() {
        // A remote reply is ours to quote, not to trust: 200 lines of 4 KB
        // joined, with a bare CR inside.
        let sender = EmailAddress::parse("alice@corp.example").unwrap();
        let mut i = input(&sender, b"Subject: x\r\n\r\nbody\r\n", None);
        i.recipients[0].reply = format!("550 5.1.1 {}\rInjected: yes", "é".repeat(400_000));
        let report = String::from_utf8(build(&i)).unwrap();
        for line in report.split("\r\n") {
            assert!(line.len() <= 998, "a line of {} octets", line.len());
            assert!(!line.contains('\r') && !line.contains('\n'));
        }
        assert!(report.contains("Diagnostic-Code: smtp; 550 5.1.1 é"));

        i.recipients[0].reply = "550 5.1.1 gone\r\nInjected: yes".into();
        let report = String::from_utf8(build(&i)).unwrap();
        assert!(!report.contains("\r\nInjected"), "{report}");
        assert!(report.contains("Diagnostic-Code: smtp; 550 5.1.1 gone  Injected: yes"));
    }

    #[test]
    fn status_derivation() {
        let mut r = input(&EmailAddress::parse("a@b.example").unwrap(), b"", None)
            .recipients
            .remove(0);
        r.reply = "451 try later".into();
        assert_eq!(
            status_of(&r),
            "4.4.7",
            "a temporary reply that ends in failure is an expiry"
        );
        r.reply = "554 denied".into();
        assert_eq!(status_of(&r), "5.0.0");
    }
}

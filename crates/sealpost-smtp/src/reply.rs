//! Every SMTP reply sealpost sends, with its basic and enhanced status code
//! (RFC 5321 §4.2, RFC 3463). Keeping them in one place keeps codes
//! consistent and lets operators find the text they saw in a log.

use std::{borrow::Cow, fmt};

/// One reply: a three-digit code, an enhanced status code and text. Text
/// with several lines becomes a multi-line reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as `5.7.1`; empty for the greeting and
    /// other replies where RFC 2034 does not use one.
    pub status: &'static str,
    pub text: Cow<'static, str>,
}

impl Reply {
    pub const fn new(code: u16, status: &'static str, text: &'static str) -> Self {
        Reply {
            code,
            status,
            text: Cow::Borrowed(text),
        }
    }

    pub fn owned(code: u16, status: &'static str, text: String) -> Self {
        Reply {
            code,
            status,
            text: Cow::Owned(text),
        }
    }

    /// Appends the wire form (one or several CRLF-terminated lines).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let lines: Vec<&str> = self.text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let line = line.trim_end_matches('\r');
            let status_prefix = if self.status.is_empty() {
                String::new()
            } else {
                format!("{} ", self.status)
            };
            out.extend_from_slice(
                format!("{}{}{}{}\r\n", self.code, sep, status_prefix, line).as_bytes(),
            );
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.status.is_empty() {
            write!(f, "{} {}", self.code, self.text)
        } else {
            write!(f, "{} {} {}", self.code, self.status, self.text)
        }
    }
}

// Positive replies.
pub const OK: Reply = Reply::new(250, "2.0.0", "Ok");
pub const SENDER_OK: Reply = Reply::new(250, "2.1.0", "Sender ok");
pub const RECIPIENT_OK: Reply = Reply::new(250, "2.1.5", "Recipient ok");
pub const START_DATA: Reply = Reply::new(354, "", "End data with <CR><LF>.<CR><LF>");
pub const READY_TLS: Reply = Reply::new(220, "2.0.0", "Ready to start TLS");
pub const BYE: Reply = Reply::new(221, "2.0.0", "Bye");
pub const VRFY: Reply = Reply::new(
    252,
    "2.5.0",
    "Cannot VRFY user, but will accept message and attempt delivery",
);
pub const HELP: Reply = Reply::new(214, "2.0.0", "See RFC 5321");

// Temporary failures.
pub const SHUTTING_DOWN: Reply =
    Reply::new(421, "4.3.2", "Service shutting down, closing connection");
pub const IDLE_TIMEOUT: Reply = Reply::new(421, "4.4.2", "Idle timeout, closing connection");
pub const TOO_MANY_ERRORS: Reply = Reply::new(421, "4.7.0", "Too many errors, closing connection");
pub const TOO_MANY_CONNECTIONS: Reply =
    Reply::new(421, "4.3.2", "Too many connections, try again later");
pub const STORE_UNAVAILABLE: Reply = Reply::new(
    451,
    "4.3.0",
    "Temporary failure storing the message, try again later",
);
/// Secure delivery is needed and cannot be prepared (no definition at all):
/// temporary, since relaying instead would send in clear.
pub const SECURE_UNAVAILABLE: Reply = Reply::new(
    451,
    "4.3.5",
    "Secure delivery is unavailable, try again later",
);
pub const TOO_MANY_RECIPIENTS: Reply = Reply::new(452, "4.5.3", "Too many recipients");

// Permanent failures.
pub const UNKNOWN_COMMAND: Reply = Reply::new(500, "5.5.1", "Command unrecognized");
pub const LINE_TOO_LONG: Reply = Reply::new(500, "5.5.2", "Line too long");
pub const BARE_LF_COMMAND: Reply = Reply::new(500, "5.5.2", "Command lines must end with <CR><LF>");
pub const EHLO_SYNTAX: Reply = Reply::new(501, "5.5.4", "Syntax: EHLO domain");
pub const BAD_SENDER_SYNTAX: Reply = Reply::new(501, "5.1.7", "Bad sender address syntax");
pub const BAD_RECIPIENT_SYNTAX: Reply = Reply::new(501, "5.1.3", "Bad recipient address syntax");
pub const NOT_IMPLEMENTED: Reply = Reply::new(502, "5.5.1", "Command not implemented");
pub const NEED_HELO: Reply = Reply::new(503, "5.5.1", "Send EHLO or HELO first");
pub const NESTED_MAIL: Reply = Reply::new(503, "5.5.1", "Sender already given; send RSET first");
pub const NEED_MAIL: Reply = Reply::new(503, "5.5.1", "Send MAIL FROM first");
pub const NO_VALID_RECIPIENTS: Reply = Reply::new(554, "5.5.1", "No valid recipients");
pub const ALREADY_TLS: Reply = Reply::new(503, "5.5.1", "TLS already active");
pub const XFORWARD_DENIED: Reply =
    Reply::new(550, "5.7.0", "XFORWARD not permitted from this client");
pub const XFORWARD_SYNTAX: Reply = Reply::new(501, "5.5.4", "Syntax: XFORWARD attribute=value ...");
pub const RELAY_DENIED: Reply = Reply::new(550, "5.7.1", "Relay access denied");
pub const MESSAGE_TOO_BIG: Reply = Reply::new(
    552,
    "5.3.4",
    "Message size exceeds fixed maximum message size",
);
pub const DATA_LINE_TOO_LONG: Reply = Reply::new(
    500,
    "5.5.2",
    "Message has a line longer than 1000 octets (RFC 5321 4.5.3.1.6); refused",
);
pub const BARE_CR_LF: Reply = Reply::new(
    550,
    "5.6.0",
    "Message contains bare <CR> or <LF> characters (RFC 5321 2.3.8); refused",
);
pub const BAD_SENDER: Reply = Reply::new(553, "5.1.7", "Sender address rejected: invalid address");
pub const BAD_RECIPIENT: Reply =
    Reply::new(553, "5.1.3", "Recipient address rejected: invalid address");
pub const NEED_SMTPUTF8: Reply = Reply::new(
    553,
    "5.6.7",
    "UTF-8 address requires the SMTPUTF8 parameter",
);
pub const TOO_MANY_HOPS: Reply = Reply::new(554, "5.4.6", "Too many Received headers: mail loop?");
pub const SYNTAX_ERROR: Reply = Reply::new(501, "5.5.2", "Syntax error");
pub const UNSUPPORTED_PARAMETER: Reply = Reply::new(555, "5.5.4", "Unsupported parameter");
pub const NOTIFY_NEVER_ALONE: Reply = Reply::new(
    501,
    "5.5.4",
    "NOTIFY=NEVER cannot be combined with other values",
);
pub const NO_POSTMASTER: Reply = Reply::new(
    550,
    "5.1.1",
    "No postmaster here: the gateway has no internal domain to deliver it to",
);
pub const NEED_RCPT: Reply = Reply::new(503, "5.5.1", "Send RCPT TO first");

// Submission and AUTH (RFC 4954, RFC 3463; `inbound::auth`).
pub const AUTH_OK: Reply = Reply::new(235, "2.7.0", "Authentication successful");
/// Wrong name or password (RFC 4954 §6).
pub const AUTH_FAILED: Reply = Reply::new(535, "5.7.8", "Authentication credentials invalid");
/// The account name or the client IP is locked after repeated failures:
/// temporary, and the password is not checked.
pub const AUTH_LOCKED: Reply = Reply::new(
    454,
    "4.7.0",
    "Temporary authentication failure: too many failed attempts, try again later",
);
pub const AUTH_TEMPORARY: Reply = Reply::new(454, "4.7.0", "Temporary authentication failure");
pub const AUTH_NEEDS_TLS: Reply = Reply::new(
    538,
    "5.7.11",
    "Encryption required for requested authentication mechanism: send STARTTLS first",
);
/// AUTH on the port-25 listener.
pub const AUTH_NOT_HERE: Reply = Reply::new(
    502,
    "5.5.1",
    "AUTH is not available on this port; submit on the submission port",
);
pub const NEED_EHLO: Reply = Reply::new(503, "5.5.1", "Send EHLO first");
pub const AUTH_ALREADY: Reply = Reply::new(503, "5.5.1", "Already authenticated");
pub const AUTH_IN_TRANSACTION: Reply = Reply::new(
    503,
    "5.5.1",
    "AUTH is not allowed during a mail transaction",
);
pub const AUTH_SYNTAX: Reply =
    Reply::new(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
pub const AUTH_UNKNOWN_MECHANISM: Reply = Reply::new(
    504,
    "5.5.4",
    "Unrecognized authentication type; use PLAIN or LOGIN",
);
/// The client answered `*` (RFC 4954 §4).
pub const AUTH_CANCELLED: Reply = Reply::new(501, "5.7.0", "Authentication cancelled");
pub const AUTH_BAD_BASE64: Reply = Reply::new(501, "5.5.2", "Cannot Base64-decode client response");
pub const AUTH_MALFORMED: Reply = Reply::new(
    501,
    "5.5.2",
    "Malformed authentication response for the mechanism",
);
/// MAIL on a submission listener before AUTH.
pub const AUTH_REQUIRED: Reply = Reply::new(530, "5.7.0", "Authentication required");
pub const SENDER_NOT_ALLOWED: Reply =
    Reply::new(553, "5.7.1", "Sender address not allowed for this account");
pub const NULL_SENDER_SUBMISSION: Reply = Reply::new(
    553,
    "5.7.1",
    "The null sender <> is not allowed for authenticated submission",
);
pub const HEADER_FROM_NOT_ALLOWED: Reply = Reply::new(
    553,
    "5.7.1",
    "Header From address not allowed for this account; message refused",
);
pub const HEADER_FROM_MISSING: Reply = Reply::new(
    553,
    "5.7.1",
    "Message has no valid From header field; it needs one of the account's senders",
);
pub const HEADER_FROM_SEVERAL: Reply = Reply::new(
    553,
    "5.7.1",
    "Message has more than one From header field; refused",
);
pub const ACCOUNT_RATE: Reply = Reply::new(
    450,
    "4.7.1",
    "This account has reached its message rate limit; try again later",
);

/// `250 2.0.0 Ok: queued as <id>` after a committed DATA.
pub fn queued(id: &str) -> Reply {
    Reply::owned(250, "2.0.0", format!("Ok: queued as {id}"))
}

/// The connection greeting.
pub fn greeting(hostname: &str) -> Reply {
    Reply::owned(220, "", format!("{hostname} ESMTP sealpost"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        let mut out = Vec::new();
        RELAY_DENIED.write_to(&mut out);
        assert_eq!(out, b"550 5.7.1 Relay access denied\r\n");
        out.clear();
        Reply::owned(250, "", "host\nPIPELINING\nSIZE 10".into()).write_to(&mut out);
        assert_eq!(out, b"250-host\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
    }
}

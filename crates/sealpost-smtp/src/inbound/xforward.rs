//! XFORWARD (Postfix's extension for content filters): a trusted client
//! tells us who *its* client was, so source-IP policies and the message
//! record see the original sender's address rather than the filter's.
//!
//! Accepted only from `smtp.xforward_hosts` and only outside a transaction.
//! As in Postfix, the attributes apply to the next transaction and are
//! cleared when it ends (after DATA or RSET).

use std::net::IpAddr;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{io::SmtpStream, session::Session};
use crate::reply;

/// Attributes a trusted client forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XForward {
    pub addr: Option<IpAddr>,
    pub name: Option<String>,
    pub helo: Option<String>,
    pub proto: Option<String>,
}

impl XForward {
    pub fn end_transaction(&mut self) {
        *self = XForward::default();
    }

    /// Applies `NAME=... ADDR=...` pairs; `[UNAVAILABLE]` and
    /// `[TEMPUNAVAIL]` clear an attribute. All or nothing: a command with
    /// one bad pair changes no attribute.
    pub fn apply(&mut self, args: &str) -> Result<(), ()> {
        let mut next = self.clone();
        next.apply_pairs(args)?;
        *self = next;
        Ok(())
    }

    fn apply_pairs(&mut self, args: &str) -> Result<(), ()> {
        let mut any = false;
        for pair in args.split_ascii_whitespace() {
            let (key, value) = pair.split_once('=').ok_or(())?;
            let value = xtext_decode(value).ok_or(())?;
            let value =
                (!matches!(value.as_str(), "[UNAVAILABLE]" | "[TEMPUNAVAIL]")).then_some(value);
            match key.to_ascii_uppercase().as_str() {
                "ADDR" => {
                    self.addr = match value {
                        None => None,
                        Some(v) => {
                            let v = v
                                .strip_prefix("IPv6:")
                                .or_else(|| v.strip_prefix("ipv6:"))
                                .unwrap_or(&v);
                            Some(v.parse().map_err(|_| ())?)
                        }
                    }
                }
                "NAME" => self.name = value,
                "HELO" => self.helo = value,
                "PROTO" => self.proto = value,
                // Postfix also sends SOURCE, PORT, IDENT; they carry nothing
                // we record.
                "SOURCE" | "PORT" | "IDENT" => {}
                _ => return Err(()),
            }
            any = true;
        }
        if any { Ok(()) } else { Err(()) }
    }
}

/// Decodes RFC 3461 xtext (`+XX` hex escapes); only printable text results.
fn xtext_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'+' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    (text.len() <= 255 && !text.chars().any(char::is_control)).then_some(text)
}

impl Session {
    pub(super) fn xforward_command<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        args: &[u8],
        stream: &mut SmtpStream<S>,
    ) {
        if !self.inbound.config.xforward_hosts.contains(self.peer.ip()) {
            return self.reject(stream, &reply::XFORWARD_DENIED, "xforward_denied");
        }
        if self.transaction.is_some() {
            return self.reject(stream, &reply::NESTED_MAIL, "bad_sequence");
        }
        let applied = std::str::from_utf8(args)
            .map_err(|_| ())
            .and_then(|a| self.xforward.apply(a.trim()));
        match applied {
            Ok(()) => stream.queue(&reply::OK),
            Err(()) => self.reject(stream, &reply::XFORWARD_SYNTAX, "syntax"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postfix_style_attributes() {
        let mut x = XForward::default();
        x.apply("NAME=mail.example.com ADDR=IPv6:2001:db8::5 PROTO=ESMTP HELO=[UNAVAILABLE] SOURCE=REMOTE")
            .unwrap();
        assert_eq!(x.addr, Some("2001:db8::5".parse().unwrap()));
        assert_eq!(x.name.as_deref(), Some("mail.example.com"));
        assert_eq!(x.helo, None);
        x.apply("ADDR=192.0.2.7 HELO=client+2Eexample").unwrap();
        assert_eq!(x.addr, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(x.helo.as_deref(), Some("client.example"));
        assert!(x.apply("ADDR=not-an-ip").is_err());
        assert!(x.apply("ADDR=198.51.100.1 BOGUS=1").is_err());
        assert_eq!(
            x.addr,
            Some("192.0.2.7".parse().unwrap()),
            "a refused command changes nothing"
        );
        assert!(x.apply("BOGUS=1").is_err());
        assert!(x.apply("").is_err());
    }
}

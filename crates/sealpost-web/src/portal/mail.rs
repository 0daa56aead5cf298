//! The two mails the portal sends on its own: a password-reset link and a
//! fresh registration link.
//!
//! They take the path every notification takes: a `NewMessage` of kind
//! `Notification` from the null sender, committed by the store and
//! delivered by the relay queue (retries, DSN suppression, the next hop),
//! never a side channel. The wording is fixed ([`MailWords`]), the link is
//! in the body only (never the Subject, which mail logs keep), and nothing
//! a sender wrote is included, so the mail cannot be made to say
//! something else. Handlers talk to an [`Outbox`] so the router tests can
//! see what would have left.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
    time::{Duration, SystemTime},
};

use sealpost_policy::{Decision, EmailAddress, Route};
use sealpost_secure::notification::{MailHeaders, build_system_mail};
use sealpost_store::{
    ClientInfo, DsnReturn, MessageKind, NewMessage, NewRecipient, Notify, QueueId, Store,
    StoreError,
};
use tokio::sync::Notify as Wakeup;

use super::words::MailWords;

/// One system mail, built and ready to queue.
#[derive(Debug, Clone)]
pub struct SystemMail {
    pub to: EmailAddress,
    /// RFC 5322 bytes (CRLF).
    pub content: Vec<u8>,
}

/// Where the portal's system mails go.
#[async_trait::async_trait]
pub trait Outbox: Send + Sync + std::fmt::Debug + 'static {
    /// Queues `mail` for delivery; it has been committed when this returns.
    async fn send(&self, mail: SystemMail) -> Result<(), StoreError>;
}

/// The real [`Outbox`]: commits through [`Store::accept`] and wakes the
/// queue worker.
pub struct QueueOutbox {
    pub store: Arc<dyn Store>,
    pub wakeup: Arc<Wakeup>,
    /// How long the queue tries to deliver (`relay.queue_lifetime`).
    pub queue_lifetime: Duration,
}

impl std::fmt::Debug for QueueOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueOutbox").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Outbox for QueueOutbox {
    async fn send(&self, mail: SystemMail) -> Result<(), StoreError> {
        let now = SystemTime::now();
        let to = mail.to.with_ascii_domain();
        let smtputf8 = to.is_utf8();
        let mut message = NewMessage::plain(
            QueueId::generate(),
            now,
            None,
            ClientInfo {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                name: None,
                helo: None,
                protocol: "local".into(),
            },
            mail.content,
            now + self.queue_lifetime,
            MessageKind::Notification,
            vec![NewRecipient {
                address: to,
                orcpt: None,
                notify: Notify::default(),
                decision: Decision {
                    route: Route::Relay,
                    policy: None,
                },
            }],
        );
        message.body_8bit = !message.content.is_ascii();
        message.smtputf8 = smtputf8;
        // A bounce must not carry the link back.
        message.ret = Some(DsnReturn::Headers);
        self.store.accept(message).await?;
        self.wakeup.notify_one();
        Ok(())
    }
}

/// What a system mail is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    Reset,
    Register,
}

/// Builds a system mail to `to` with `link`, valid until `expires` (in
/// words). `product` and `hostname` are the operator's.
pub fn build(
    kind: MailKind,
    words: &MailWords,
    to: &EmailAddress,
    link: &str,
    expires: &str,
    product: &str,
    hostname: &str,
) -> SystemMail {
    let (subject, body) = match kind {
        MailKind::Reset => (words.reset_subject, words.reset_body),
        MailKind::Register => (words.register_subject, words.register_body),
    };
    let address = to.with_ascii_domain().to_string();
    let fill = |template: &str, esc: fn(&str) -> String| {
        template
            .replace("{address}", &esc(&address))
            .replace("{product}", &esc(product))
            .replace("{expires}", &esc(expires))
            .replace("{link}", &esc(link))
    };
    let text = format!("{}\r\n\r\n{}\r\n", fill(body, str::to_owned), words.ignore);
    let html = format!(
        "<!DOCTYPE html><html><body><p>{}</p><p><a href=\"{}\">{}</a></p><p>{}</p></body></html>",
        fill(body, escape).replace("\r\n\r\n", "</p><p>"),
        escape(link),
        escape(words.open_link),
        escape(words.ignore),
    );
    let from = format!("postmaster@{hostname}");
    let content = build_system_mail(
        &MailHeaders {
            from_name: product,
            from_address: &from,
            to: &address,
            message_id_domain: hostname,
            date: time::OffsetDateTime::now_utc(),
        },
        subject,
        &text,
        &html,
    );
    SystemMail {
        to: to.clone(),
        content,
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_is_in_the_body_only_and_the_wording_is_fixed() {
        let to = EmailAddress::parse("bob@partner.example").unwrap();
        let link = "http://localhost:8082/reset/abcDEF123";
        let mail = build(
            MailKind::Reset,
            &MailWords::ENGLISH,
            &to,
            link,
            "30 minutes",
            "Acme <Secure>",
            "mx.corp.example",
        );
        let text = String::from_utf8_lossy(&mail.content);
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(!head.contains("abcDEF123"), "{head}");
        assert!(head.contains("Subject: Reset your password"), "{head}");
        assert!(head.contains("From: "), "{head}");
        assert!(head.contains("postmaster@mx.corp.example"), "{head}");
        assert!(head.contains("Auto-Submitted: auto-generated"), "{head}");
        // Quoted-printable may fold the link; unfold soft breaks.
        let body = body.replace("=\r\n", "");
        assert!(body.contains(link), "{body}");
        assert!(
            body.contains("Acme &lt;Secure&gt;"),
            "escaped in HTML: {body}"
        );
        assert_eq!(mail.to, to);
    }
}

//! The secure part of accepting a message: which recipients get secure
//! delivery, and the mails that must be committed with it.
//!
//! A recipient gets secure delivery when a policy selected it (the
//! decision is already made), or when an internal sender asked for it with
//! `X-Sealpost-Secure: <definition>` or the subject tag and that definition
//! allows manual use. For each such recipient [`prepare`] draws a portal
//! token (only its hash is stored), fixes the expiry, and renders the
//! notification; the sender's receipt follows if a definition asks for it.
//! Everything lands in the [`NewMessage`] so the store commits it in the
//! same transaction as the message: a `250` means the notification is
//! queued too.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use sealpost_policy::{
    Decision, Definition, DefinitionId, EmailAddress, Invalid, PolicySet, Route,
};
use sealpost_store::{
    ClientInfo, DsnReturn, MessageKind, NewMessage, NewRecipient, NewSecureRecipient, Notify,
    QueueId, SecureTrigger,
};
use sealpost_vault::PortalToken;

use crate::{
    notification::{
        self, CompiledTemplate, HIDDEN_SUBJECT, MailHeaders, NotificationTemplate,
        NotificationVars, ReceiptEntry, TemplateError,
    },
    trigger,
};

/// Settings of secure delivery (from `[secure]`, `[portal]`, `[vault]`).
#[derive(Debug, Clone)]
pub struct SecureSettings {
    /// Our host name: Message-IDs, the organisation shown in notifications.
    pub hostname: String,
    /// Where portal links point, without a trailing slash.
    pub portal_url: String,
    /// The subject tag; empty: no tag trigger.
    pub subject_tag: String,
    /// The definition the tag applies (`None`: the default definition).
    pub subject_tag_definition: Option<String>,
    /// No content stays readable longer than this after receipt.
    pub retention: Duration,
    /// How long a notification may stay queued.
    pub queue_lifetime: Duration,
    /// Definitions' templates, parsed once.
    pub templates: TemplateCache,
}

/// Parsed notification templates, by definition: parsing costs more than
/// rendering, and a template changes rarely. An entry is used only while
/// the definition's template is still the one it was parsed from.
#[derive(Debug, Clone, Default)]
pub struct TemplateCache(Arc<Mutex<TemplateMap>>);

type TemplateMap = HashMap<Option<DefinitionId>, (NotificationTemplate, Arc<CompiledTemplate>)>;

impl TemplateCache {
    fn get(&self, definition: Option<&Definition>) -> Result<Arc<CompiledTemplate>, TemplateError> {
        let template = template_of(definition);
        let key = definition.map(|d| d.id);
        let lock = || {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some((source, compiled)) = lock().get(&key)
            && *source == template
        {
            return Ok(compiled.clone());
        }
        let compiled = Arc::new(template.compile()?);
        lock().insert(key, (template, compiled.clone()));
        Ok(compiled)
    }
}

impl Default for SecureSettings {
    fn default() -> Self {
        SecureSettings {
            hostname: "localhost".into(),
            portal_url: "https://localhost".into(),
            subject_tag: "[secure]".into(),
            subject_tag_definition: None,
            retention: Duration::from_secs(3650 * 86400),
            queue_lifetime: Duration::from_secs(5 * 86400),
            templates: TemplateCache::default(),
        }
    }
}

impl SecureSettings {
    /// The link a token opens.
    pub fn portal_link(&self, token: &PortalToken) -> String {
        format!("{}/open/{}", self.portal_url, token.as_str())
    }
}

/// What [`prepare`] did, for the log line (never content).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prepared {
    pub secure_recipients: usize,
}

/// Secure delivery was asked for and no definition can carry it: there is
/// not even a default definition (the store always has one, so this means
/// a broken snapshot). The message must not be accepted, since relaying it
/// would send in clear what should have been sealed; the caller answers
/// with a temporary failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("secure delivery was requested but no definition is available, not even the default")]
pub struct SecureUnavailable;

/// A stored subject is cut to this many characters (RFC 5322 lines are at
/// most 998 octets; a longer subject is folded noise).
const MAX_STORED_SUBJECT: usize = 998;

/// Applies the sender's request (or the portal's, `forced`), strips the
/// trigger header, and attaches
/// each secure recipient's notification (and the sender's receipt) to
/// `message`, whose recipients carry the policy decisions. `facts` is
/// [`trigger::inspect`] of the message, read once by the caller (who also
/// needs the header From for the policy decision).
///
/// `forced` is a portal reply's: every external recipient a policy would
/// relay gets secure delivery with that definition (the original's; the
/// default if it was deleted since), whoever the sender is and whatever
/// the policies say, and no sender receipt is sent (the replying
/// recipient is external; the portal's Sent folder is the record).
///
/// # Errors
/// [`SecureUnavailable`] when a recipient needs secure delivery and no
/// definition exists to apply; nothing may be accepted then.
pub fn prepare(
    policy: &PolicySet,
    settings: &SecureSettings,
    message: &mut NewMessage,
    mut facts: trigger::HeaderFacts,
    forced: Option<DefinitionId>,
) -> Result<Prepared, SecureUnavailable> {
    let request = match forced {
        Some(id) => Some(Request {
            definition: policy
                .definition(id)
                .or_else(|| policy.default_definition())
                .ok_or(SecureUnavailable)?
                .id,
            trigger: SecureTrigger::PortalReply,
            warning: None,
        }),
        None => sender_request(policy, settings, message.sender.as_ref(), &facts)?,
    };
    // The tag goes wherever a request is honoured (also when the header
    // named the definition), so the recipient never sees it.
    let strip_tag = (request.is_some() && facts.has_tag).then_some(settings.subject_tag.as_str());
    if facts.requested_definition.is_some() || strip_tag.is_some() {
        let content = std::mem::take(&mut message.content);
        message.content = trigger::rewrite(content, strip_tag);
    }
    // Stored for tracking, shown in consoles, terminals and logs: one
    // clean, bounded line whatever the sender wrote.
    message.subject = facts.subject.take().map(|s| {
        let s = match strip_tag {
            Some(tag) => trigger::remove_tag(&s, tag),
            None => s,
        };
        sealpost_policy::text::one_line(&s, MAX_STORED_SUBJECT)
    });

    // The sender's request covers external recipients a policy relays
    // (an exclusion included: the sender asked explicitly).
    let mut secure = Vec::new();
    for (idx, r) in message.recipients.iter_mut().enumerate() {
        let trigger = match (&r.decision.route, &request) {
            (Route::Secure { definition }, _) => Some((*definition, SecureTrigger::Policy)),
            (Route::Relay, Some(request)) if !policy.is_internal(&r.address) => {
                r.decision = Decision {
                    route: Route::Secure {
                        definition: request.definition,
                    },
                    policy: None,
                };
                Some((request.definition, request.trigger))
            }
            (Route::Relay, _) => None,
        };
        if let Some((definition, trigger)) = trigger {
            secure.push((idx, definition, trigger));
        }
    }
    if secure.is_empty() {
        return Ok(Prepared::default());
    }
    // Where the sender's choice could not be honoured, the receipt goes out
    // whatever the definitions say, carrying the reason.
    let warning = request.and_then(|r| r.warning);

    let sender = message.sender.clone();
    let sender_text = sender
        .as_ref()
        .map_or_else(String::new, ToString::to_string);
    let sender_name = facts
        .from_name
        .take()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| sender_text.clone());
    let subject = message.subject.clone().unwrap_or_default();
    let mut receipt = Vec::new();
    for (idx, definition_id, trigger) in &secure {
        let definition = policy.definition(*definition_id);
        let expires_at = message.received_at + expiry(definition, settings.retention);
        let never = definition.is_some_and(|d| d.settings.expiry_days.is_none());
        let token = PortalToken::generate();
        let recipient = message.recipients[*idx].address.clone();
        let hide = definition.is_some_and(|d| d.settings.hide_subject);
        let vars = NotificationVars {
            sender: sender_text.clone(),
            sender_name: sender_name.clone(),
            subject: if hide {
                HIDDEN_SUBJECT.to_owned()
            } else {
                subject.clone()
            },
            subject_hidden: hide,
            recipient: recipient.to_string(),
            portal_link: settings.portal_link(&token),
            expires: None,
            expires_at: None,
            definition: definition.map_or_else(String::new, |d| d.name().to_owned()),
            organisation: settings.hostname.clone(),
        }
        .with_expiry((!never).then(|| expires_at.into()));
        let content = render(
            &settings.templates,
            definition,
            &vars,
            &headers(settings, &sender_name, &sender_text, &vars.recipient),
        );
        let id = QueueId::generate();
        message
            .attached
            .push(notice(id.clone(), message, recipient, content, settings));
        message.secure.push(NewSecureRecipient {
            idx: *idx as u32,
            token_hash: token.hash().0,
            definition: *definition_id,
            trigger: *trigger,
            notification: Some(id),
            expires_at,
            // Fixed now: a later change of the definition does not change
            // how this accepted message is delivered.
            tls_or_portal: definition.is_some_and(|d| {
                d.settings.delivery == sealpost_policy::SecureDelivery::TlsOrPortal
            }),
        });
        if forced.is_none()
            && (warning.is_some() || definition.is_some_and(|d| d.settings.sender_receipt))
        {
            receipt.push(ReceiptEntry {
                recipient: vars.recipient.clone(),
                definition: vars.definition.clone(),
                expires: vars.expires.clone(),
            });
        }
    }
    if let (false, Some(sender)) = (receipt.is_empty(), sender) {
        let content = notification::build_receipt(
            &subject,
            warning.as_deref(),
            &receipt,
            &headers(
                settings,
                "Secure messaging",
                &format!("postmaster@{}", settings.hostname),
                sender.as_str(),
            ),
        );
        message.attached.push(notice(
            QueueId::generate(),
            message,
            sender,
            content,
            settings,
        ));
    }
    Ok(Prepared {
        secure_recipients: secure.len(),
    })
}

/// An internal sender's request for secure delivery, as it will be carried
/// out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    definition: DefinitionId,
    trigger: SecureTrigger,
    /// Why the definition the sender chose was not used, for the sender's
    /// receipt; None when it was.
    warning: Option<String>,
}

/// What an internal sender asked for (SPEC §4.2, §4.3). A request is never
/// dropped: a definition that cannot be used (no such name, or not open to
/// manual use) is replaced by the default definition, with a warning for
/// the sender and the log. External senders cannot ask: their header is
/// removed and their tag left alone.
///
/// # Errors
/// [`SecureUnavailable`] when the sender asked and not even the default
/// definition exists.
fn sender_request(
    policy: &PolicySet,
    settings: &SecureSettings,
    sender: Option<&EmailAddress>,
    facts: &trigger::HeaderFacts,
) -> Result<Option<Request>, SecureUnavailable> {
    let Some(sender) = sender.filter(|s| policy.is_internal(s)) else {
        return Ok(None);
    };
    let (trigger, wanted) = match &facts.requested_definition {
        Some(name) => (
            SecureTrigger::Header,
            Some(name.as_str()).filter(|n| !n.is_empty()),
        ),
        None if facts.has_tag => (
            SecureTrigger::SubjectTag,
            settings.subject_tag_definition.as_deref(),
        ),
        None => return Ok(None),
    };
    let chosen = match wanted {
        Some(name) => policy.definition_named(name),
        None => policy.default_definition(),
    };
    if let Some(definition) = chosen.filter(|d| d.settings.manual_use) {
        return Ok(Some(Request {
            definition: definition.id,
            trigger,
            warning: None,
        }));
    }
    let fallback = policy.default_definition().ok_or(SecureUnavailable)?;
    let asked = sealpost_policy::text::one_line(wanted.unwrap_or(fallback.name()), 100);
    let how = match trigger {
        SecureTrigger::Header => "the X-Sealpost-Secure header",
        _ => "the subject tag",
    };
    let why = match chosen {
        None => "no definition has that name",
        Some(_) => "that definition is not open to senders' own choice (manual use is off)",
    };
    tracing::warn!(
        sender = %sealpost_policy::text::one_line(sender.as_str(), 200),
        definition = %asked,
        trigger = trigger.as_str(),
        reason = why,
        "secure delivery requested with a definition that cannot be used; applied the default definition"
    );
    Ok(Some(Request {
        definition: fallback.id,
        trigger,
        warning: Some(format!(
            "You asked for secure delivery with the definition \"{asked}\" through {how}, \
             but {why}. The message was still delivered securely, with the default \
             definition \"{}\".",
            sealpost_policy::text::one_line(fallback.name(), 100)
        )),
    }))
}

/// Checks that the definition the subject tag applies exists and allows
/// manual use: `definition` is `secure.subject_tag_definition` (`None`: the
/// default definition). A disabled tag (empty) applies nothing, so nothing
/// is required of it. The configuration check, the start of `serve` and
/// every change to the stored configuration call this, so a tagged message
/// always has a definition to be delivered with.
///
/// # Errors
/// [`Invalid`] naming `secure.subject_tag_definition` when no definition
/// has that name, or the definition's `manual_use` when it is off.
pub fn check_subject_tag(
    policy: &PolicySet,
    tag: &str,
    definition: Option<&str>,
) -> Result<(), Invalid> {
    if tag.is_empty() {
        return Ok(());
    }
    let found = match definition {
        Some(name) => policy.definition_named(name).ok_or_else(|| {
            Invalid::new(
                "secure.subject_tag_definition",
                "subject_tag_definition_missing",
                format!(
                    "secure.subject_tag_definition names {name:?}, but no definition has that name; \
                     create it, or set the key to an existing definition (unset: the default definition)"
                ),
            )
        })?,
        None => policy.default_definition().ok_or_else(|| {
            Invalid::new(
                "definitions",
                "no_default_definition",
                "there is no default definition for the subject tag to apply",
            )
        })?,
    };
    if !found.settings.manual_use {
        let key = if definition.is_some() {
            "secure.subject_tag_definition"
        } else {
            "secure.subject_tag (which applies the default definition)"
        };
        return Err(Invalid::new(
            format!("definitions[id={}].manual_use", found.id.0),
            "subject_tag_definition_not_manual",
            format!(
                "definition {:?} must allow manual use: {key} applies it to every message \
                 whose subject carries the tag {tag:?}; allow manual use, point the key at another \
                 definition, or set secure.subject_tag = \"\" to turn the tag off",
                found.name()
            ),
        ));
    }
    Ok(())
}

/// How long a definition keeps content readable, bounded by retention.
fn expiry(definition: Option<&Definition>, retention: Duration) -> Duration {
    match definition.and_then(|d| d.settings.expiry_days) {
        Some(days) => Duration::from_secs(u64::from(days) * 86400).min(retention),
        None => retention,
    }
}

fn headers<'a>(
    settings: &'a SecureSettings,
    from_name: &'a str,
    from_address: &'a str,
    to: &'a str,
) -> MailHeaders<'a> {
    MailHeaders {
        from_name,
        from_address,
        to,
        message_id_domain: &settings.hostname,
        date: time::OffsetDateTime::now_utc(),
    }
}

/// The notification from the definition's template (each part it leaves
/// out is the built-in one), checked as rendered; see
/// [`notification::build_notification`] for the fallbacks.
fn render(
    templates: &TemplateCache,
    definition: Option<&Definition>,
    vars: &NotificationVars,
    headers: &MailHeaders<'_>,
) -> Vec<u8> {
    let template = templates.get(definition);
    notification::build_notification(template.as_deref(), vars, headers)
}

/// A definition's template with the built-in parts filled in.
pub fn template_of(definition: Option<&Definition>) -> NotificationTemplate {
    let mut template = NotificationTemplate::builtin();
    if let Some(draft) = definition.and_then(|d| d.settings.notification_template.as_ref()) {
        if let Some(subject) = &draft.subject {
            template.subject.clone_from(subject);
        }
        if let Some(text) = &draft.text {
            template.text.clone_from(text);
        }
        if let Some(html) = &draft.html {
            template.html.clone_from(html);
        }
    }
    template
}

/// A notification or receipt about `parent`, to one recipient, from the
/// null sender: a bounce or an auto-reply never goes anywhere (a
/// notification's would carry the recipient's link), and a failure shows
/// in tracking. An IDN domain goes in A-label form where the local part
/// allows (as in the To header, see `notification::MailHeaders`), so a
/// next hop without SMTPUTF8 takes it.
fn notice(
    id: QueueId,
    parent: &NewMessage,
    to: EmailAddress,
    content: Vec<u8>,
    settings: &SecureSettings,
) -> NewMessage {
    notice_about(id, &parent.id, parent.received_at, to, content, settings)
}

/// [`notice`] about a stored message, made at `at`.
fn notice_about(
    id: QueueId,
    parent: &QueueId,
    at: std::time::SystemTime,
    to: EmailAddress,
    content: Vec<u8>,
    settings: &SecureSettings,
) -> NewMessage {
    let to = to.with_ascii_domain();
    let smtputf8 = to.is_utf8();
    let mut notice = NewMessage::plain(
        id,
        at,
        None,
        ClientInfo {
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            name: None,
            helo: None,
            protocol: "local".into(),
        },
        content,
        at + settings.queue_lifetime,
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
    notice.body_8bit = !notice.content.is_ascii();
    // A header that names a UTF-8 address (a sender whose local part is
    // not ASCII, in From) needs SMTPUTF8 too (RFC 6532), or a strict next
    // hop would take it for a malformed message.
    let header = &notice.content[..trigger::header_end(&notice.content)];
    notice.smtputf8 = smtputf8 || !header.is_ascii();
    // A bounce returns headers only: the body holds the portal link.
    notice.ret = Some(DsnReturn::Headers);
    notice.parent = Some(parent.clone());
    notice
}

/// A secure recipient's first opening, as the read receipt needs it.
#[derive(Debug, Clone)]
pub struct Opening<'a> {
    /// The message opened.
    pub message: &'a QueueId,
    /// Its envelope sender; `None` (the null sender): no receipt.
    pub sender: Option<&'a EmailAddress>,
    /// Its subject as stored for tracking.
    pub subject: Option<&'a str>,
    /// The recipient who opened it.
    pub recipient: &'a str,
    /// The definition that applied to that recipient.
    pub definition: DefinitionId,
    pub at: std::time::SystemTime,
}

/// The read receipt for an opening, when the definition asks for one and
/// the message has a sender: a notification from the null sender to the
/// message's sender, relayed. The caller hands it to
/// `SecureStore::mark_opened`, which commits it only if this opening is
/// the first, so the sender gets one receipt however often the message is
/// opened, on however many nodes.
pub fn read_receipt(
    policy: &PolicySet,
    settings: &SecureSettings,
    opening: &Opening<'_>,
) -> Option<NewMessage> {
    let definition = policy.definition(opening.definition)?;
    if !definition.settings.read_receipt {
        return None;
    }
    let sender = opening.sender?.clone();
    let content = notification::build_read_receipt(
        opening.recipient,
        opening.subject.unwrap_or_default(),
        opening.at.into(),
        &headers(
            settings,
            "Secure messaging",
            &format!("postmaster@{}", settings.hostname),
            sender.as_str(),
        ),
    );
    Some(notice_about(
        QueueId::generate(),
        opening.message,
        opening.at,
        sender,
        content,
        settings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealpost_policy::{
        DefinitionDraft, DomainPattern, InternalDomains, PolicyConfig, TemplateDraft,
    };

    /// corp.example internal; the default definition (id 1, manual use
    /// as given), "Open" (2, manual) and "Locked" (3, not manual).
    fn policy(default_manual: bool) -> PolicySet {
        let mut default = DefinitionDraft::default_definition();
        default.manual_use = default_manual;
        let named = |id, name: &str, manual| {
            let mut d = DefinitionDraft::default_definition();
            d.name = name.to_owned();
            d.manual_use = manual;
            Definition::from_draft(DefinitionId(id), false, &d, 3650).unwrap()
        };
        PolicySet::compile(PolicyConfig {
            internal_domains: vec![DomainPattern::parse("corp.example").unwrap()],
            definitions: vec![
                Definition::from_draft(DefinitionId(1), true, &default, 3650).unwrap(),
                named(2, "Open", true),
                named(3, "Locked", false),
            ],
            ..PolicyConfig::default()
        })
        .unwrap()
    }

    fn facts(header: Option<&str>, tag: bool) -> trigger::HeaderFacts {
        trigger::HeaderFacts {
            subject: Some("s".into()),
            requested_definition: header.map(str::to_owned),
            has_tag: tag,
            ..trigger::HeaderFacts::default()
        }
    }

    fn request(
        set: &PolicySet,
        tag_definition: Option<&str>,
        sender: &str,
        facts: &trigger::HeaderFacts,
    ) -> Result<Option<(i64, SecureTrigger, bool)>, SecureUnavailable> {
        let settings = SecureSettings {
            subject_tag_definition: tag_definition.map(str::to_owned),
            ..SecureSettings::default()
        };
        let sender = EmailAddress::parse(sender).unwrap();
        sender_request(set, &settings, Some(&sender), facts)
            .map(|r| r.map(|r| (r.definition.0, r.trigger, r.warning.is_some())))
    }

    #[test]
    fn a_request_from_inside_is_honoured_or_falls_back_to_the_default_never_dropped() {
        use SecureTrigger::{Header, SubjectTag};
        let set = policy(true);
        let alice = "alice@corp.example";
        let cases = [
            (Some("open"), false, Some((2, Header, false))),
            (Some("Locked"), false, Some((1, Header, true))),
            (Some("No such"), false, Some((1, Header, true))),
            // An empty header asks for secure delivery, naming nothing.
            (Some(""), false, Some((1, Header, false))),
            // The header wins over the tag.
            (Some("Open"), true, Some((2, Header, false))),
            (None, true, Some((1, SubjectTag, false))),
            (None, false, None),
        ];
        for (header, tag, want) in cases {
            let got = request(&set, None, alice, &facts(header, tag)).unwrap();
            assert_eq!(got, want, "header {header:?}, tag {tag}");
        }
        // The tag's own definition, and one that broke since.
        assert_eq!(
            request(&set, Some("open"), alice, &facts(None, true)).unwrap(),
            Some((2, SubjectTag, false))
        );
        assert_eq!(
            request(&set, Some("Locked"), alice, &facts(None, true)).unwrap(),
            Some((1, SubjectTag, true))
        );
        // A default closed to manual use is still the fallback.
        assert_eq!(
            request(&policy(false), None, alice, &facts(Some("gone"), false)).unwrap(),
            Some((1, Header, true))
        );
        // Outside senders cannot ask.
        let mallory = "mallory@outside.example";
        assert_eq!(
            request(&set, None, mallory, &facts(Some("Open"), true)).unwrap(),
            None
        );
        // No definition at all: refuse rather than relay.
        let bare = PolicySet::with_internal_domains(InternalDomains::new(vec![
            DomainPattern::parse("corp.example").unwrap(),
        ]));
        assert_eq!(
            request(&bare, None, alice, &facts(Some("x"), false)),
            Err(SecureUnavailable)
        );
    }

    #[test]
    fn the_subject_tag_needs_a_definition_open_to_manual_use() {
        let set = policy(true);
        assert!(check_subject_tag(&set, "[secure]", None).is_ok());
        assert!(check_subject_tag(&set, "[secure]", Some("open")).is_ok());
        let e = check_subject_tag(&set, "[secure]", Some("Locked")).unwrap_err();
        assert_eq!(e.field, "definitions[id=3].manual_use");
        let e = check_subject_tag(&set, "[secure]", Some("Nope")).unwrap_err();
        assert_eq!(e.field, "secure.subject_tag_definition");
        let e = check_subject_tag(&policy(false), "[secure]", None).unwrap_err();
        assert_eq!(e.code, "subject_tag_definition_not_manual");
        // A disabled tag asks nothing.
        assert!(check_subject_tag(&policy(false), "", Some("Nope")).is_ok());
    }

    fn definition(text: Option<&str>) -> Definition {
        let mut draft = DefinitionDraft::default_definition();
        draft.notification_template = text.map(|t| TemplateDraft {
            text: Some(t.to_owned()),
            ..TemplateDraft::default()
        });
        Definition::from_draft(DefinitionId(3), false, &draft, 3650).unwrap()
    }

    #[test]
    fn a_template_is_parsed_once_until_it_changes() {
        let cache = TemplateCache::default();
        let first = definition(Some("Open {{ portal_link }}"));
        let a = cache.get(Some(&first)).unwrap();
        let b = cache.get(Some(&first)).unwrap();
        assert!(
            Arc::ptr_eq(&a, &b),
            "the second notification reuses the parse"
        );
        let changed = definition(Some("Read it at {{ portal_link }}"));
        let c = cache.get(Some(&changed)).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "an edited template is parsed again");
        let text = c.render(&NotificationVars::sample()).unwrap().text;
        assert!(text.starts_with("Read it at "), "{text}");
        assert!(cache.get(Some(&definition(Some("{{ broken")))).is_err());
    }
}

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

/// Applies the sender's request, strips the trigger header, and attaches
/// each secure recipient's notification (and the sender's receipt) to
/// `message`, whose recipients carry the policy decisions. `facts` is
/// [`trigger::inspect`] of the message, read once by the caller (who also
/// needs the header From for the policy decision).
pub fn prepare(
    policy: &PolicySet,
    settings: &SecureSettings,
    message: &mut NewMessage,
    mut facts: trigger::HeaderFacts,
) -> Prepared {
    let request = sender_request(policy, settings, message.sender.as_ref(), &facts);
    let strip_tag = (request.map(|(_, t)| t) == Some(SecureTrigger::SubjectTag))
        .then_some(settings.subject_tag.as_str());
    if facts.requested_definition.is_some() || strip_tag.is_some() {
        let content = std::mem::take(&mut message.content);
        message.content = trigger::rewrite(content, strip_tag);
    }
    message.subject = facts.subject.take().map(|s| match strip_tag {
        Some(tag) => trigger::remove_tag(&s, tag),
        None => s,
    });

    // The sender's request covers external recipients a policy relays
    // (an exclusion included: the sender asked explicitly).
    let mut secure = Vec::new();
    for (idx, r) in message.recipients.iter_mut().enumerate() {
        let trigger = match (&r.decision.route, request) {
            (Route::Secure { definition }, _) => Some((*definition, SecureTrigger::Policy)),
            (Route::Relay, Some((definition, trigger))) if !policy.is_internal(&r.address) => {
                r.decision = Decision {
                    route: Route::Secure { definition },
                    policy: None,
                };
                Some((definition, trigger))
            }
            (Route::Relay, _) => None,
        };
        if let Some((definition, trigger)) = trigger {
            secure.push((idx, definition, trigger));
        }
    }
    if secure.is_empty() {
        return Prepared::default();
    }

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
        });
        if definition.is_some_and(|d| d.settings.sender_receipt) {
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
    Prepared {
        secure_recipients: secure.len(),
    }
}

/// The definition an internal sender asked for, if it may be honoured.
fn sender_request(
    policy: &PolicySet,
    settings: &SecureSettings,
    sender: Option<&EmailAddress>,
    facts: &trigger::HeaderFacts,
) -> Option<(DefinitionId, SecureTrigger)> {
    let sender = sender.filter(|s| policy.is_internal(s))?;
    let manual = |d: Option<&Definition>| d.filter(|d| d.settings.manual_use).map(|d| d.id);
    if let Some(name) = &facts.requested_definition {
        match manual(policy.definition_named(name)) {
            Some(id) => return Some((id, SecureTrigger::Header)),
            None => {
                tracing::warn!(%sender, definition = %name, "X-Sealpost-Secure names no definition that allows manual use; ignored")
            }
        }
    }
    if facts.has_tag {
        let definition = match &settings.subject_tag_definition {
            Some(name) => policy.definition_named(name),
            None => policy.default_definition(),
        };
        return manual(definition).map(|id| (id, SecureTrigger::SubjectTag));
    }
    None
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

/// Renders the definition's template (each part it leaves out is the
/// built-in one). A stored template that fails to render falls back to
/// the built-in one: the recipient must hear of the message either way.
fn render(
    templates: &TemplateCache,
    definition: Option<&Definition>,
    vars: &NotificationVars,
    headers: &MailHeaders<'_>,
) -> Vec<u8> {
    let rendered = templates.get(definition).and_then(|t| t.render(vars)).or_else(|e| {
        tracing::error!(definition = %vars.definition, error = %e, "notification template failed; used the built-in one");
        notification::render(&NotificationTemplate::builtin(), vars)
    });
    match rendered {
        Ok(rendered) => notification::build_mail(&rendered, headers),
        Err(e) => {
            // The built-in template is tested; this is unreachable in
            // practice, but a notification must still go out.
            tracing::error!(error = %e, "the built-in notification template failed");
            let fallback = notification::Rendered {
                subject: HIDDEN_SUBJECT.to_owned(),
                text: format!("Open it at {}\r\n", vars.portal_link),
                html: String::new(),
            };
            notification::build_mail(&fallback, headers)
        }
    }
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
    let to = to.with_ascii_domain();
    let smtputf8 = to.is_utf8();
    let mut notice = NewMessage::plain(
        id,
        parent.received_at,
        None,
        ClientInfo {
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            name: None,
            helo: None,
            protocol: "local".into(),
        },
        content,
        parent.received_at + settings.queue_lifetime,
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
    notice.smtputf8 = smtputf8;
    // A bounce returns headers only: the body holds the portal link.
    notice.ret = Some(DsnReturn::Headers);
    notice.parent = Some(parent.id.clone());
    notice
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealpost_policy::{DefinitionDraft, TemplateDraft};

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

//! Secure Messaging definitions: what a secure recipient may do with a
//! message, and for how long it stays readable.
//!
//! A policy that triggers applies one definition. One default definition
//! always exists; it can be edited but never deleted, so there is always
//! something for a policy or a sender's trigger to fall back on.

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;

/// Identifies a stored definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct DefinitionId(pub i64);

/// Longest definition name, in characters.
const MAX_NAME: usize = 100;
/// Longest description, in characters.
const MAX_DESCRIPTION: usize = 2000;
/// Largest notification template, in bytes.
const MAX_TEMPLATE: usize = 64 * 1024;

/// The name the built-in default definition is created with.
pub const DEFAULT_DEFINITION_NAME: &str = "Default";

/// A definition as submitted and as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DefinitionDraft {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub allow_reply: bool,
    #[serde(default = "yes")]
    pub allow_reply_all: bool,
    #[serde(default)]
    pub allow_forward: bool,
    #[serde(default = "yes")]
    pub allow_print: bool,
    /// Days a message stays readable; `null` means it never expires (the
    /// vault's retention setting still applies).
    #[serde(default = "default_expiry")]
    pub expiry_days: Option<u32>,
    /// Send the sender a read receipt when a recipient first opens it.
    #[serde(default)]
    pub read_receipt: bool,
    /// Send the sender a receipt listing the recipients who got secure
    /// delivery.
    #[serde(default)]
    pub sender_receipt: bool,
    /// Internal senders may ask for this definition themselves (subject
    /// tag or `X-Sealpost-Secure` header).
    #[serde(default)]
    pub manual_use: bool,
    /// Replace the subject with a neutral text in notifications.
    #[serde(default)]
    pub hide_subject: bool,
    /// The notification template; `null` for the built-in one.
    #[serde(default)]
    pub notification_template: Option<TemplateDraft>,
    /// How a secure recipient is reached: always through the portal, or
    /// with the message itself when its next hop offers TLS that verifies.
    #[serde(default)]
    pub delivery: SecureDelivery,
}

/// How a recipient given secure delivery gets the message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SecureDelivery {
    /// A notification with a portal link; the content stays in the vault.
    #[default]
    Portal,
    /// The message itself when the recipient's next hop offers TLS that
    /// verifies (checked at delivery time), else the portal notification.
    /// Never the content over an unverified or clear connection.
    TlsOrPortal,
}

impl SecureDelivery {
    pub fn as_str(self) -> &'static str {
        match self {
            SecureDelivery::Portal => "portal",
            SecureDelivery::TlsOrPortal => "tls_or_portal",
        }
    }
}

/// An administrator's notification template: minijinja sources for the
/// subject, the text part and the HTML part. A part left out (`null`) is
/// the built-in one, so changing only the wording of the HTML is one field.
/// The syntax is checked where templates are rendered (the secure-delivery
/// crate); this crate only bounds the sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateDraft {
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
}

impl TemplateDraft {
    /// The parts that are set, with their names.
    pub fn parts(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("subject", &self.subject),
            ("text", &self.text),
            ("html", &self.html),
        ]
        .into_iter()
        .filter_map(|(name, part)| part.as_deref().map(|p| (name, p)))
    }
}

fn yes() -> bool {
    true
}

fn default_expiry() -> Option<u32> {
    Some(30)
}

impl DefinitionDraft {
    /// The settings of the built-in default definition.
    pub fn default_definition() -> Self {
        DefinitionDraft {
            name: DEFAULT_DEFINITION_NAME.to_owned(),
            description: "Applied when no other definition is named.".to_owned(),
            allow_reply: true,
            allow_reply_all: true,
            allow_forward: false,
            allow_print: true,
            expiry_days: default_expiry(),
            read_receipt: false,
            sender_receipt: false,
            manual_use: true,
            hide_subject: false,
            notification_template: None,
            delivery: SecureDelivery::Portal,
        }
    }
}

/// A validated definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub id: DefinitionId,
    /// The undeletable default.
    pub is_default: bool,
    pub settings: DefinitionDraft,
}

impl Definition {
    /// Validates a submitted definition. `max_expiry_days` is the vault's
    /// retention: no definition may keep messages readable longer.
    ///
    /// # Errors
    /// [`Invalid`] naming the field at fault.
    pub fn from_draft(
        id: DefinitionId,
        is_default: bool,
        draft: &DefinitionDraft,
        max_expiry_days: u32,
    ) -> Result<Self, Invalid> {
        let mut settings = draft.clone();
        settings.name = draft.name.trim().to_owned();
        if settings.name.is_empty() || settings.name.chars().count() > MAX_NAME {
            return Err(Invalid::new(
                "name",
                "invalid_name",
                format!("a definition needs a name of 1 to {MAX_NAME} characters"),
            ));
        }
        if settings.description.chars().count() > MAX_DESCRIPTION {
            return Err(Invalid::new(
                "description",
                "too_long",
                format!("description is longer than {MAX_DESCRIPTION} characters"),
            ));
        }
        match settings.expiry_days {
            Some(0) => {
                return Err(Invalid::new(
                    "expiry_days",
                    "invalid_expiry",
                    "expiry must be at least 1 day, or null for never",
                ));
            }
            Some(days) if days > max_expiry_days => {
                return Err(Invalid::new(
                    "expiry_days",
                    "expiry_beyond_retention",
                    format!(
                        "expiry of {days} days is longer than the retention setting ({max_expiry_days} days)"
                    ),
                ));
            }
            _ => {}
        }
        if let Some(template) = &settings.notification_template {
            for (part, source) in template.parts() {
                if source.len() > MAX_TEMPLATE {
                    return Err(Invalid::new(
                        format!("notification_template.{part}"),
                        "too_long",
                        format!("the {part} template is larger than {MAX_TEMPLATE} bytes"),
                    ));
                }
            }
        }
        Ok(Definition {
            id,
            is_default,
            settings,
        })
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_bounded_by_retention() {
        let mut d = DefinitionDraft::default_definition();
        d.expiry_days = Some(400);
        let e = Definition::from_draft(DefinitionId(1), false, &d, 365).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.code),
            ("expiry_days", "expiry_beyond_retention")
        );
        d.expiry_days = Some(0);
        assert!(Definition::from_draft(DefinitionId(1), false, &d, 365).is_err());
        d.expiry_days = None;
        assert!(Definition::from_draft(DefinitionId(1), false, &d, 365).is_ok());
    }

    #[test]
    fn defaults_fill_missing_fields() {
        let d: DefinitionDraft = serde_json::from_str(r#"{"name": "Legal"}"#).unwrap();
        assert!(d.allow_reply && !d.allow_forward);
        assert_eq!(d.expiry_days, Some(30));
        assert_eq!(d.delivery, SecureDelivery::Portal);
        let d: DefinitionDraft =
            serde_json::from_str(r#"{"name": "Partners", "delivery": "tls_or_portal"}"#).unwrap();
        assert_eq!(d.delivery, SecureDelivery::TlsOrPortal);
        assert!(
            serde_json::from_str::<DefinitionDraft>(r#"{"name": "x", "delivery": "tls"}"#).is_err()
        );
        let e = serde_json::from_str::<DefinitionDraft>(r#"{"name": "x", "colour": 1}"#);
        assert!(e.is_err(), "unknown fields are refused");
    }
}

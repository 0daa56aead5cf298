//! The Secure Messaging definition form as the browser posts it, and its
//! translation to and from the API's [`DefinitionDraft`].
//!
//! The form keeps text as typed, so a refused form comes back as sent. Its
//! draft is checked by the same rules as `/api/v1/definitions`
//! ([`Definition::from_draft`](sealpost_policy::Definition) when stored,
//! the template checks of the policy service); [`slot`] places each
//! refusal's API field path next to a box. A template part left empty is
//! the built-in one, as `null` is in the API.

use sealpost_policy::{DefinitionDraft, Invalid, SecureDelivery, TemplateDraft};
use serde::{Deserialize, Serialize};

/// The form's fields, as text. Checkboxes are present (`Some`) when ticked.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub(super) struct DefinitionForm {
    #[serde(skip_serializing)]
    pub(super) csrf: String,
    /// The button pressed: `save` or `preview`.
    #[serde(skip_serializing)]
    pub(super) step: String,
    pub(super) name: String,
    pub(super) description: String,
    pub(super) allow_reply: Option<String>,
    pub(super) allow_reply_all: Option<String>,
    pub(super) allow_forward: Option<String>,
    pub(super) allow_print: Option<String>,
    /// `days` or `never`.
    pub(super) expiry: String,
    pub(super) expiry_days: String,
    pub(super) read_receipt: Option<String>,
    pub(super) sender_receipt: Option<String>,
    pub(super) manual_use: Option<String>,
    pub(super) hide_subject: Option<String>,
    /// `portal` or `tls_or_portal`.
    pub(super) delivery: String,
    /// The template's parts; empty is the built-in part.
    pub(super) template_subject: String,
    pub(super) template_text: String,
    pub(super) template_html: String,
}

const ON: &str = "on";

fn ticked(b: bool) -> Option<String> {
    b.then(|| ON.to_owned())
}

/// A template part as the form shows it (empty: the built-in one).
fn part_text(part: Option<&String>) -> String {
    part.cloned().unwrap_or_default()
}

/// A template part from its box: blank is the built-in one.
fn part(text: &str) -> Option<String> {
    (!text.trim().is_empty()).then(|| text.replace("\r\n", "\n"))
}

/// Where an [`Invalid`]'s field is shown on the form.
pub(super) fn slot(field: &str) -> &'static str {
    // The policy service names the definition (`definitions[id=4].name`).
    let field = match field.strip_prefix("definitions[") {
        Some(rest) => rest.split_once("].").map_or("", |(_, f)| f),
        None => field,
    };
    match field {
        "name" => "name",
        "description" => "description",
        "expiry_days" => "expiry",
        "delivery" => "delivery",
        "notification_template.subject" => "template_subject",
        "notification_template.text" => "template_text",
        "notification_template.html" => "template_html",
        _ => "form",
    }
}

impl DefinitionForm {
    /// A new definition's form: the API's defaults for an omitted field.
    pub(super) fn new_definition() -> Self {
        let mut form = DefinitionForm::from_draft(&DefinitionDraft::default_definition());
        form.name.clear();
        form.description.clear();
        form.manual_use = None;
        form
    }

    /// The form showing a stored definition.
    pub(super) fn from_draft(d: &DefinitionDraft) -> Self {
        let template = d.notification_template.as_ref();
        DefinitionForm {
            name: d.name.clone(),
            description: d.description.clone(),
            allow_reply: ticked(d.allow_reply),
            allow_reply_all: ticked(d.allow_reply_all),
            allow_forward: ticked(d.allow_forward),
            allow_print: ticked(d.allow_print),
            expiry: if d.expiry_days.is_some() {
                "days"
            } else {
                "never"
            }
            .into(),
            expiry_days: d.expiry_days.map(|n| n.to_string()).unwrap_or_default(),
            read_receipt: ticked(d.read_receipt),
            sender_receipt: ticked(d.sender_receipt),
            manual_use: ticked(d.manual_use),
            hide_subject: ticked(d.hide_subject),
            delivery: d.delivery.as_str().to_owned(),
            template_subject: part_text(template.and_then(|t| t.subject.as_ref())),
            template_text: part_text(template.and_then(|t| t.text.as_ref())),
            template_html: part_text(template.and_then(|t| t.html.as_ref())),
            ..DefinitionForm::default()
        }
    }

    /// The draft the form describes; the API's rules check it after.
    ///
    /// # Errors
    /// An expiry that is not a number of days.
    pub(super) fn draft(&self) -> Result<DefinitionDraft, Invalid> {
        let expiry_days = match self.expiry.as_str() {
            "never" => None,
            _ => Some(self.expiry_days.trim().parse::<u32>().map_err(|_| {
                Invalid::new(
                    "expiry_days",
                    "invalid_expiry",
                    format!(
                        "{:?} is not a number of days: write a whole number, or choose Never",
                        self.expiry_days.trim()
                    ),
                )
            })?),
        };
        let delivery = match self.delivery.as_str() {
            "tls_or_portal" => SecureDelivery::TlsOrPortal,
            "portal" | "" => SecureDelivery::Portal,
            other => {
                return Err(Invalid::new(
                    "delivery",
                    "invalid_delivery",
                    format!("{other:?} is not a delivery: choose portal or TLS-or-portal"),
                ));
            }
        };
        let template = TemplateDraft {
            subject: part(&self.template_subject),
            text: part(&self.template_text),
            html: part(&self.template_html),
        };
        Ok(DefinitionDraft {
            name: self.name.clone(),
            description: self.description.trim().to_owned(),
            allow_reply: self.allow_reply.is_some(),
            allow_reply_all: self.allow_reply_all.is_some(),
            allow_forward: self.allow_forward.is_some(),
            allow_print: self.allow_print.is_some(),
            expiry_days,
            read_receipt: self.read_receipt.is_some(),
            sender_receipt: self.sender_receipt.is_some(),
            manual_use: self.manual_use.is_some(),
            hide_subject: self.hide_subject.is_some(),
            delivery,
            notification_template: (template != TemplateDraft::default()).then_some(template),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_definition_round_trips_through_the_form() {
        let mut d = DefinitionDraft::default_definition();
        d.expiry_days = None;
        d.allow_forward = true;
        d.delivery = SecureDelivery::TlsOrPortal;
        d.notification_template = Some(TemplateDraft {
            subject: Some("Secure: {{ subject }}".into()),
            text: None,
            html: None,
        });
        assert_eq!(DefinitionForm::from_draft(&d).draft().unwrap(), d);
        let mut form = DefinitionForm::from_draft(&d);
        form.template_subject = "  ".into();
        assert_eq!(form.draft().unwrap().notification_template, None);
    }

    #[test]
    fn a_bad_expiry_and_store_paths_land_next_to_their_box() {
        let form = DefinitionForm {
            expiry: "days".into(),
            expiry_days: "soon".into(),
            ..DefinitionForm::new_definition()
        };
        let e = form.draft().unwrap_err();
        assert_eq!(slot(&e.field), "expiry");
        assert_eq!(
            slot("definitions[id=3].notification_template.html"),
            "template_html"
        );
        assert_eq!(slot(""), "form");
        let form = DefinitionForm {
            delivery: "by pigeon".into(),
            ..DefinitionForm::new_definition()
        };
        let e = form.draft().unwrap_err();
        assert_eq!(slot(&e.field), "delivery");
        // A new definition is portal-only, as the API's default.
        assert_eq!(
            DefinitionForm::new_definition().draft().unwrap().delivery,
            SecureDelivery::Portal
        );
    }
}

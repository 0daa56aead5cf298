//! Secure Messaging policies (SPEC §2): who they apply to, when, and what
//! they do.
//!
//! A [`PolicyDraft`] is what an administrator submits; [`Policy::from_draft`]
//! checks every field once and gives a [`Policy`] whose conditions are
//! parsed types ([`Party`], [`Validity`], [`IpRanges`]), so selection never
//! meets an invalid value.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{
    address::EmailAddress,
    decide::PolicyId,
    definitions::DefinitionId,
    directory::attribute_name,
    domains::DomainPattern,
    groups::GroupId,
    invalid::Invalid,
    net::{IpRange, IpRanges},
};

/// Longest narrative, in characters.
const MAX_NARRATIVE: usize = 2000;
/// Most source IP ranges on one policy.
const MAX_SOURCE_IPS: usize = 1000;

/// The kinds of policy. Only Secure Messaging exists so far; the field is
/// there so lists can be filtered by type as more arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PolicyType {
    #[default]
    SecureMessaging,
}

/// What a matching policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Deliver securely under `definition_id`.
    ApplyDefinition,
    /// Deliver normally: an exclusion that beats less specific policies.
    NoAction,
}

/// Which sender address(es) "Emails From" looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AddressBasis {
    /// The envelope sender (MAIL FROM).
    #[default]
    Envelope,
    /// The `From:` header.
    Header,
    /// Either: the condition holds if the envelope sender or the header
    /// From satisfies it.
    Both,
}

/// The kinds of "Emails From" / "Emails To" condition, least specific
/// first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PartyKind {
    Everyone,
    Internal,
    External,
    Domain,
    Group,
    Attribute,
    Address,
}

/// One side of a policy as submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PartyDraft {
    pub kind: PartyKind,
    /// The domain (`domain`), the address (`address`) or the attribute
    /// value (`attribute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The group (`group`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<GroupId>,
    /// The attribute name (`attribute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// Sender side only: which address the condition looks at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub based_on: Option<AddressBasis>,
}

/// A policy as submitted and as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyDraft {
    #[serde(default, rename = "type")]
    pub policy_type: PolicyType,
    /// Free text: why the policy exists.
    #[serde(default)]
    pub narrative: String,
    pub action: ActionKind,
    /// Required when `action` is `apply_definition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition_id: Option<DefinitionId>,
    /// Emails From.
    pub from: PartyDraft,
    /// Emails To.
    pub to: PartyDraft,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Start of the validity range (RFC 3339); `null` with `ends_at` null
    /// means always on.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub starts_at: Option<OffsetDateTime>,
    /// End of the validity range (RFC 3339, exclusive).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub ends_at: Option<OffsetDateTime>,
    /// Policy override: when any override policy matches, only override
    /// policies are considered.
    #[serde(default, rename = "override")]
    pub override_: bool,
    /// Must be false: Secure Messaging applies to internal → external
    /// mail only.
    #[serde(default)]
    pub bidirectional: bool,
    /// Client IP ranges (CIDR; a bare address is one host). Empty: any.
    #[serde(default)]
    pub source_ips: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Who one side of a policy selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Party {
    Everyone,
    Internal,
    External,
    Domain(DomainPattern),
    Group(GroupId),
    /// A directory user whose attribute `name` (lower-case) equals `value`
    /// (ASCII case-insensitively).
    Attribute {
        name: String,
        value: String,
    },
    /// One address; `key` is its match key.
    Address {
        address: EmailAddress,
        key: String,
    },
}

impl Party {
    /// The condition in words ("in domain partner.example (header From)"),
    /// for explanations and lists.
    pub fn describe(&self, basis: Option<AddressBasis>) -> String {
        self.describe_with(basis, |_| None)
    }

    /// [`describe`](Self::describe), with a profile group by the name
    /// `group_name` gives (its id where that gives none).
    pub fn describe_with(
        &self,
        basis: Option<AddressBasis>,
        group_name: impl Fn(GroupId) -> Option<String>,
    ) -> String {
        let what = match self {
            Party::Everyone => "anyone".to_owned(),
            Party::Internal => "internal".to_owned(),
            Party::External => "external".to_owned(),
            Party::Domain(d) => format!("in domain {d}"),
            Party::Group(g) => match group_name(*g) {
                Some(name) => format!("in profile group {name}"),
                None => format!("in profile group {}", g.0),
            },
            Party::Attribute { name, value } => format!("a directory user with {name} = {value}"),
            Party::Address { address, .. } => address.to_string(),
        };
        match basis {
            Some(AddressBasis::Header) => format!("{what} (header From)"),
            Some(AddressBasis::Both) => format!("{what} (envelope or header From)"),
            _ => what,
        }
    }

    /// SPEC §3 step 3: everyone 0 < internal/external 1 < domain 2 <
    /// profile group 3 < address attribute 4 < individual address 5.
    pub fn specificity(&self) -> u8 {
        match self {
            Party::Everyone => 0,
            Party::Internal | Party::External => 1,
            Party::Domain(_) => 2,
            Party::Group(_) => 3,
            Party::Attribute { .. } => 4,
            Party::Address { .. } => 5,
        }
    }

    fn from_draft(draft: &PartyDraft) -> Result<Self, Invalid> {
        let value = || {
            draft
                .value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    Invalid::new(
                        "value",
                        "missing_value",
                        format!("a {:?} condition needs a value", draft.kind).to_lowercase(),
                    )
                })
        };
        let unexpected = |field: &str, present: bool| {
            if present {
                Err(Invalid::new(
                    field,
                    "unexpected_field",
                    format!("{field} does not apply to a {:?} condition", draft.kind)
                        .to_lowercase(),
                ))
            } else {
                Ok(())
            }
        };
        let party = match draft.kind {
            PartyKind::Everyone | PartyKind::Internal | PartyKind::External => {
                unexpected("value", draft.value.is_some())?;
                unexpected("group_id", draft.group_id.is_some())?;
                unexpected("attribute", draft.attribute.is_some())?;
                match draft.kind {
                    PartyKind::Everyone => Party::Everyone,
                    PartyKind::Internal => Party::Internal,
                    _ => Party::External,
                }
            }
            PartyKind::Domain => {
                unexpected("group_id", draft.group_id.is_some())?;
                unexpected("attribute", draft.attribute.is_some())?;
                let v = value()?;
                Party::Domain(DomainPattern::parse(v).map_err(|e| {
                    Invalid::new(
                        "value",
                        "invalid_domain",
                        format!("{v:?} is not a valid domain or *.domain pattern: {e}"),
                    )
                })?)
            }
            PartyKind::Address => {
                unexpected("group_id", draft.group_id.is_some())?;
                unexpected("attribute", draft.attribute.is_some())?;
                let v = value()?;
                let address = EmailAddress::parse(v).map_err(|e| {
                    Invalid::new(
                        "value",
                        "invalid_address",
                        format!("{v:?} is not a valid email address: {e}"),
                    )
                })?;
                Party::Address {
                    key: address.match_key(),
                    address,
                }
            }
            PartyKind::Group => {
                unexpected("value", draft.value.is_some())?;
                unexpected("attribute", draft.attribute.is_some())?;
                Party::Group(draft.group_id.ok_or_else(|| {
                    Invalid::new(
                        "group_id",
                        "missing_group",
                        "a group condition needs group_id",
                    )
                })?)
            }
            PartyKind::Attribute => {
                unexpected("group_id", draft.group_id.is_some())?;
                let name = attribute_name(draft.attribute.as_deref().unwrap_or(""))
                    .map_err(|e| e.within("attribute"))?;
                Party::Attribute {
                    name,
                    value: value()?.to_owned(),
                }
            }
        };
        Ok(party)
    }

    fn to_draft(&self, based_on: Option<AddressBasis>) -> PartyDraft {
        let (kind, value, group_id, attribute) = match self {
            Party::Everyone => (PartyKind::Everyone, None, None, None),
            Party::Internal => (PartyKind::Internal, None, None, None),
            Party::External => (PartyKind::External, None, None, None),
            Party::Domain(d) => (PartyKind::Domain, Some(d.to_string()), None, None),
            Party::Group(g) => (PartyKind::Group, None, Some(*g), None),
            Party::Attribute { name, value } => (
                PartyKind::Attribute,
                Some(value.clone()),
                None,
                Some(name.clone()),
            ),
            Party::Address { address, .. } => {
                (PartyKind::Address, Some(address.to_string()), None, None)
            }
        };
        PartyDraft {
            kind,
            value,
            group_id,
            attribute,
            based_on,
        }
    }
}

/// When a policy is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Validity {
    /// In force from (inclusive); `None`: since always.
    pub starts: Option<SystemTime>,
    /// In force until (exclusive); `None`: for ever.
    pub ends: Option<SystemTime>,
}

impl Validity {
    /// Always on: no range at all.
    pub fn is_eternal(&self) -> bool {
        self.starts.is_none() && self.ends.is_none()
    }

    pub fn contains(&self, now: SystemTime) -> bool {
        self.starts.is_none_or(|s| s <= now) && self.ends.is_none_or(|e| now < e)
    }
}

/// What a policy does when it wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ApplyDefinition(DefinitionId),
    NoAction,
}

/// Where a policy stands at a moment, for lists and the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PolicyStatus {
    Active,
    /// Enabled, but its range has not started.
    Future,
    /// Enabled, but its range has ended.
    Expired,
    Disabled,
}

/// A validated Secure Messaging policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: PolicyId,
    pub narrative: String,
    pub action: Action,
    pub from: Party,
    pub from_basis: AddressBasis,
    pub to: Party,
    pub enabled: bool,
    pub validity: Validity,
    pub override_: bool,
    pub source_ips: IpRanges,
}

impl Policy {
    /// Validates a submitted policy. References (definition, groups) are
    /// checked against the rest of the configuration when the snapshot is
    /// built ([`crate::PolicySet::compile`]).
    ///
    /// # Errors
    /// [`Invalid`] naming the field at fault.
    pub fn from_draft(id: PolicyId, draft: &PolicyDraft) -> Result<Self, Invalid> {
        if draft.bidirectional {
            return Err(Invalid::new(
                "bidirectional",
                "bidirectional_not_allowed",
                "a Secure Messaging policy cannot be bi-directional: secure messaging applies to internal → external mail only",
            ));
        }
        let narrative = draft.narrative.trim().to_owned();
        if narrative.chars().count() > MAX_NARRATIVE {
            return Err(Invalid::new(
                "narrative",
                "too_long",
                format!("narrative is longer than {MAX_NARRATIVE} characters"),
            ));
        }
        let action = match (draft.action, draft.definition_id) {
            (ActionKind::ApplyDefinition, Some(d)) => Action::ApplyDefinition(d),
            (ActionKind::ApplyDefinition, None) => {
                return Err(Invalid::new(
                    "definition_id",
                    "missing_definition",
                    "action apply_definition needs definition_id",
                ));
            }
            (ActionKind::NoAction, None) => Action::NoAction,
            (ActionKind::NoAction, Some(_)) => {
                return Err(Invalid::new(
                    "definition_id",
                    "unexpected_field",
                    "action no_action takes no definition_id",
                ));
            }
        };
        let from = Party::from_draft(&draft.from).map_err(|e| e.within("from"))?;
        if draft.to.based_on.is_some() {
            return Err(Invalid::new(
                "to.based_on",
                "unexpected_field",
                "based_on applies to Emails From only",
            ));
        }
        let to = Party::from_draft(&draft.to).map_err(|e| e.within("to"))?;
        let validity = Validity {
            starts: draft.starts_at.map(SystemTime::from),
            ends: draft.ends_at.map(SystemTime::from),
        };
        if let (Some(s), Some(e)) = (validity.starts, validity.ends)
            && e <= s
        {
            return Err(Invalid::new(
                "ends_at",
                "empty_date_range",
                "the date range is empty or inverted: ends_at must be after starts_at",
            ));
        }
        if draft.source_ips.len() > MAX_SOURCE_IPS {
            return Err(Invalid::new(
                "source_ips",
                "too_many",
                format!("at most {MAX_SOURCE_IPS} source IP ranges"),
            ));
        }
        let source_ips = draft
            .source_ips
            .iter()
            .enumerate()
            .map(|(i, r)| {
                IpRange::parse(r).map_err(|e| {
                    Invalid::new(format!("source_ips[{i}]"), "invalid_cidr", e.to_string())
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy {
            id,
            narrative,
            action,
            from,
            from_basis: draft.from.based_on.unwrap_or_default(),
            to,
            enabled: draft.enabled,
            validity,
            override_: draft.override_,
            source_ips: IpRanges::new(source_ips),
        })
    }

    /// The policy as the API shows it.
    pub fn to_draft(&self) -> PolicyDraft {
        let (action, definition_id) = match self.action {
            Action::ApplyDefinition(d) => (ActionKind::ApplyDefinition, Some(d)),
            Action::NoAction => (ActionKind::NoAction, None),
        };
        PolicyDraft {
            policy_type: PolicyType::SecureMessaging,
            narrative: self.narrative.clone(),
            action,
            definition_id,
            from: self.from.to_draft(Some(self.from_basis)),
            to: self.to.to_draft(None),
            enabled: self.enabled,
            starts_at: self.validity.starts.map(OffsetDateTime::from),
            ends_at: self.validity.ends.map(OffsetDateTime::from),
            override_: self.override_,
            bidirectional: false,
            source_ips: self.source_ips.iter().map(|r| r.to_string()).collect(),
        }
    }

    /// Active, future, expired or disabled at `now`.
    pub fn status(&self, now: SystemTime) -> PolicyStatus {
        if !self.enabled {
            PolicyStatus::Disabled
        } else if self.validity.starts.is_some_and(|s| now < s) {
            PolicyStatus::Future
        } else if self.validity.ends.is_some_and(|e| now >= e) {
            PolicyStatus::Expired
        } else {
            PolicyStatus::Active
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(json: &str) -> PolicyDraft {
        serde_json::from_str(json).unwrap()
    }

    const BASE: &str = r#"{"action": "apply_definition", "definition_id": 1,
        "from": {"kind": "internal"}, "to": {"kind": "external"}"#;

    fn with(extra: &str) -> PolicyDraft {
        draft(&format!("{BASE}{extra}}}"))
    }

    fn refused(extra: &str) -> Invalid {
        Policy::from_draft(PolicyId(1), &with(extra)).unwrap_err()
    }

    #[test]
    fn a_minimal_policy_is_always_on_and_enabled() {
        let p = Policy::from_draft(PolicyId(1), &with("")).unwrap();
        assert!(p.enabled && p.validity.is_eternal() && p.source_ips.is_empty());
        assert_eq!(p.from_basis, AddressBasis::Envelope);
        assert_eq!(p.to_draft(), {
            let mut d = with("");
            d.from.based_on = Some(AddressBasis::Envelope);
            d
        });
    }

    #[test]
    fn bidirectional_is_refused_with_the_reason() {
        let e = refused(r#", "bidirectional": true"#);
        assert_eq!(e.field, "bidirectional");
        assert!(e.message.contains("internal → external mail only"));
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (
                r#", "starts_at": "2026-02-01T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z""#,
                "ends_at",
                "empty_date_range",
            ),
            (
                r#", "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z""#,
                "ends_at",
                "empty_date_range",
            ),
            (
                r#", "source_ips": ["10.0.0.0/8", "10.0.0.0/33"]"#,
                "source_ips[1]",
                "invalid_cidr",
            ),
        ];
        for (extra, field, code) in cases {
            let e = refused(extra);
            assert_eq!((e.field.as_str(), e.code), (field, code), "{extra}");
        }
        let mut d = with("");
        d.to = PartyDraft {
            kind: PartyKind::Attribute,
            value: Some("Legal".into()),
            group_id: None,
            attribute: Some("".into()),
            based_on: None,
        };
        let e = Policy::from_draft(PolicyId(1), &d).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.code),
            ("to.attribute", "missing_attribute_name")
        );
        d.to.kind = PartyKind::Address;
        d.to.attribute = None;
        d.to.value = Some("not-an-address".into());
        let e = Policy::from_draft(PolicyId(1), &d).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("to.value", "invalid_address"));
        d.action = ActionKind::ApplyDefinition;
        d.definition_id = None;
        let e = Policy::from_draft(PolicyId(1), &d).unwrap_err();
        assert_eq!(e.code, "missing_definition");
    }

    #[test]
    fn status_follows_the_clock() {
        let p = Policy::from_draft(
            PolicyId(1),
            &with(r#", "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-02-01T00:00:00Z""#),
        )
        .unwrap();
        let at = |s: &str| {
            SystemTime::from(
                OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap(),
            )
        };
        assert_eq!(p.status(at("2025-12-31T23:59:59Z")), PolicyStatus::Future);
        assert_eq!(p.status(at("2026-01-01T00:00:00Z")), PolicyStatus::Active);
        assert_eq!(p.status(at("2026-02-01T00:00:00Z")), PolicyStatus::Expired);
        let mut off = p.clone();
        off.enabled = false;
        assert_eq!(
            off.status(at("2026-01-15T00:00:00Z")),
            PolicyStatus::Disabled
        );
    }
}

//! The Secure Messaging policy form as the browser posts it (the
//! walk-through's steps 4-8), and its translation to and from the API's
//! [`PolicyDraft`].
//!
//! The form holds text exactly as typed, so a refused form comes back as it
//! was sent; [`PolicyForm::draft`] turns it into a draft, and the draft is
//! then checked by the same [`Policy::from_draft`](sealpost_policy::Policy)
//! and store rules as `/api/v1/policies`. Every refusal is an [`Invalid`]
//! with the API's field path, placed next to a form field by [`slot`].
//!
//! Dates are whole days in UTC: a range "from 2026-12-01 to 2026-12-31"
//! starts at the first's midnight and ends at the end of the last day. A
//! policy made through the API with times of day keeps them while its dates
//! are left as they are (the exact times travel in hidden fields).

use sealpost_policy::{
    ActionKind, AddressBasis, DefinitionId, GroupId, Invalid, PartyDraft, PartyKind, PolicyDraft,
    PolicyType,
};
use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime, Time};

/// The form's fields, as text. Checkboxes are present (`Some`) when ticked.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub(super) struct PolicyForm {
    #[serde(skip_serializing)]
    pub(super) csrf: String,
    /// The button pressed: `save`, `preview`, `lookup:TARGET`,
    /// `pick:TARGET:VALUE`, `cancel`.
    #[serde(skip_serializing)]
    pub(super) step: String,
    /// The picker's search text.
    #[serde(skip_serializing)]
    pub(super) q: String,
    pub(super) narrative: String,
    /// `apply_definition` or `no_action`.
    pub(super) action: String,
    /// The chosen definition's id.
    pub(super) definition: String,
    pub(super) from_kind: String,
    pub(super) from_domain: String,
    pub(super) from_address: String,
    pub(super) from_group: String,
    pub(super) from_attribute: String,
    pub(super) from_attribute_value: String,
    /// `envelope`, `header` or `both`.
    pub(super) from_based_on: String,
    pub(super) to_kind: String,
    pub(super) to_domain: String,
    pub(super) to_address: String,
    pub(super) to_group: String,
    pub(super) to_attribute: String,
    pub(super) to_attribute_value: String,
    /// `always` or `range`.
    pub(super) validity: String,
    /// `YYYY-MM-DD`.
    pub(super) starts: String,
    pub(super) ends: String,
    /// The stored start and end (RFC 3339) of a policy being edited, kept
    /// while the dates shown for them are unchanged.
    pub(super) starts_exact: String,
    pub(super) ends_exact: String,
    #[serde(rename = "override")]
    pub(super) override_: Option<String>,
    pub(super) enabled: Option<String>,
    /// Never offered by the form (the box is disabled); present only in a
    /// crafted post, which the policy rules then refuse.
    #[serde(skip_serializing)]
    pub(super) bidirectional: Option<String>,
    /// One range per line (or separated by commas).
    pub(super) source_ips: String,
    /// Days of mail the impact preview replays (empty: 7).
    pub(super) preview_days: String,
}

/// One side of a policy, as the form names its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    From,
    To,
}

impl Side {
    pub(super) fn name(self) -> &'static str {
        match self {
            Side::From => "from",
            Side::To => "to",
        }
    }
}

const ON: &str = "on";

fn ticked(b: bool) -> Option<String> {
    b.then(|| ON.to_owned())
}

fn kind_name(kind: PartyKind) -> &'static str {
    match kind {
        PartyKind::Everyone => "everyone",
        PartyKind::Internal => "internal",
        PartyKind::External => "external",
        PartyKind::Domain => "domain",
        PartyKind::Group => "group",
        PartyKind::Attribute => "attribute",
        PartyKind::Address => "address",
    }
}

/// The kinds of condition in the form's order, with their labels.
pub(super) const KINDS: [(&str, &str); 7] = [
    ("everyone", "Everyone"),
    ("internal", "Internal addresses"),
    ("external", "External addresses"),
    ("domain", "Domain"),
    ("group", "Profile group"),
    ("attribute", "Address attribute"),
    ("address", "Individual email address"),
];

fn parse_kind(side: Side, text: &str) -> Result<PartyKind, Invalid> {
    Ok(match text {
        "everyone" => PartyKind::Everyone,
        "internal" => PartyKind::Internal,
        "external" => PartyKind::External,
        "domain" => PartyKind::Domain,
        "group" => PartyKind::Group,
        "attribute" => PartyKind::Attribute,
        "address" => PartyKind::Address,
        _ => {
            return Err(Invalid::new(
                format!("{}.kind", side.name()),
                "invalid_kind",
                "choose who the policy applies to",
            ));
        }
    })
}

fn date_text(t: OffsetDateTime) -> String {
    let d = t.to_offset(time::UtcOffset::UTC).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// `YYYY-MM-DD` as a date.
fn parse_date(field: &str, text: &str) -> Result<Date, Invalid> {
    let bad = || {
        Invalid::new(
            field,
            "invalid_date",
            format!("{text:?} is not a date: write it as YYYY-MM-DD"),
        )
    };
    let mut parts = text.trim().splitn(3, '-');
    let mut next = || {
        parts
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(bad)
    };
    let (y, m, d) = (next()?, next()?, next()?);
    let month = time::Month::try_from(u8::try_from(m).map_err(|_| bad())?).map_err(|_| bad())?;
    Date::from_calendar_date(i32::from(y), month, u8::try_from(d).map_err(|_| bad())?)
        .map_err(|_| bad())
}

fn midnight(d: Date) -> OffsetDateTime {
    d.with_time(Time::MIDNIGHT).assume_utc()
}

fn exact(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Where an [`Invalid`]'s field is shown on the form: the box the
/// administrator has to change.
pub(super) fn slot(field: &str) -> &'static str {
    // A rejection by the store names the policy (`policies[id=4].to.value`).
    let field = match field.strip_prefix("policies[") {
        Some(rest) => rest.split_once("].").map_or("", |(_, f)| f),
        None => field,
    };
    let head = field.split(['.', '[']).next().unwrap_or_default();
    match head {
        "narrative" => "narrative",
        "definition_id" | "definition" | "action" => "definition",
        "from" => "from",
        "to" => "to",
        "starts_at" | "ends_at" | "validity" => "validity",
        "override" => "override",
        "source_ips" => "source_ips",
        "bidirectional" => "bidirectional",
        "preview_days" => "preview_days",
        _ => "form",
    }
}

impl PolicyForm {
    /// An empty form for a new policy: from internal, to external, the
    /// default definition, always on, enabled.
    pub(super) fn new_policy(default_definition: Option<DefinitionId>) -> Self {
        PolicyForm {
            action: "apply_definition".into(),
            definition: default_definition
                .map(|d| d.0.to_string())
                .unwrap_or_default(),
            from_kind: "internal".into(),
            from_based_on: "envelope".into(),
            to_kind: "external".into(),
            validity: "always".into(),
            enabled: ticked(true),
            ..PolicyForm::default()
        }
    }

    /// The form showing a stored policy.
    pub(super) fn from_draft(draft: &PolicyDraft) -> Self {
        let mut form = PolicyForm {
            narrative: draft.narrative.clone(),
            action: match draft.action {
                ActionKind::ApplyDefinition => "apply_definition",
                ActionKind::NoAction => "no_action",
            }
            .into(),
            definition: draft
                .definition_id
                .map(|d| d.0.to_string())
                .unwrap_or_default(),
            validity: if draft.starts_at.is_none() && draft.ends_at.is_none() {
                "always"
            } else {
                "range"
            }
            .into(),
            starts: draft.starts_at.map(date_text).unwrap_or_default(),
            // The form's end date is the last day in force.
            ends: draft
                .ends_at
                .map(|e| date_text(e - Duration::nanoseconds(1)))
                .unwrap_or_default(),
            starts_exact: draft.starts_at.map(rfc3339).unwrap_or_default(),
            ends_exact: draft.ends_at.map(rfc3339).unwrap_or_default(),
            override_: ticked(draft.override_),
            enabled: ticked(draft.enabled),
            source_ips: draft.source_ips.join("\n"),
            from_based_on: match draft.from.based_on.unwrap_or_default() {
                AddressBasis::Envelope => "envelope",
                AddressBasis::Header => "header",
                AddressBasis::Both => "both",
            }
            .into(),
            ..PolicyForm::default()
        };
        form.set_party(Side::From, &draft.from);
        form.set_party(Side::To, &draft.to);
        form
    }

    fn set_party(&mut self, side: Side, party: &PartyDraft) {
        let value = party.value.clone().unwrap_or_default();
        let group = party.group_id.map(|g| g.0.to_string()).unwrap_or_default();
        let attribute = party.attribute.clone().unwrap_or_default();
        let (kind, domain, address, group_field, attr, attr_value) = match side {
            Side::From => (
                &mut self.from_kind,
                &mut self.from_domain,
                &mut self.from_address,
                &mut self.from_group,
                &mut self.from_attribute,
                &mut self.from_attribute_value,
            ),
            Side::To => (
                &mut self.to_kind,
                &mut self.to_domain,
                &mut self.to_address,
                &mut self.to_group,
                &mut self.to_attribute,
                &mut self.to_attribute_value,
            ),
        };
        *kind = kind_name(party.kind).into();
        match party.kind {
            PartyKind::Domain => *domain = value,
            PartyKind::Address => *address = value,
            PartyKind::Group => *group_field = group,
            PartyKind::Attribute => {
                *attr = attribute;
                *attr_value = value;
            }
            PartyKind::Everyone | PartyKind::Internal | PartyKind::External => {}
        }
    }

    /// The chosen group of `side`, when one is.
    pub(super) fn group(&self, side: Side) -> Option<GroupId> {
        match side {
            Side::From => &self.from_group,
            Side::To => &self.to_group,
        }
        .trim()
        .parse()
        .ok()
        .map(GroupId)
    }

    /// Sets what a picker chose: a definition, a group, or an attribute as
    /// `name=value`.
    pub(super) fn pick(&mut self, target: &str, value: &str) {
        match target {
            "definition" => {
                self.definition = value.to_owned();
                self.action = "apply_definition".into();
            }
            "from_group" => {
                self.from_group = value.to_owned();
                self.from_kind = "group".into();
            }
            "to_group" => {
                self.to_group = value.to_owned();
                self.to_kind = "group".into();
            }
            "from_attribute" | "to_attribute" => {
                let (name, v) = value.split_once('=').unwrap_or((value, ""));
                if target == "from_attribute" {
                    self.from_kind = "attribute".into();
                    self.from_attribute = name.to_owned();
                    self.from_attribute_value = v.to_owned();
                } else {
                    self.to_kind = "attribute".into();
                    self.to_attribute = name.to_owned();
                    self.to_attribute_value = v.to_owned();
                }
            }
            _ => {}
        }
    }

    fn party(&self, side: Side) -> Result<PartyDraft, Invalid> {
        let (kind, domain, address, attribute, attribute_value) = match side {
            Side::From => (
                &self.from_kind,
                &self.from_domain,
                &self.from_address,
                &self.from_attribute,
                &self.from_attribute_value,
            ),
            Side::To => (
                &self.to_kind,
                &self.to_domain,
                &self.to_address,
                &self.to_attribute,
                &self.to_attribute_value,
            ),
        };
        let kind = parse_kind(side, kind)?;
        let text = |t: &String| Some(t.trim().to_owned());
        let mut party = PartyDraft {
            kind,
            value: None,
            group_id: None,
            attribute: None,
            based_on: None,
        };
        match kind {
            PartyKind::Domain => party.value = text(domain),
            PartyKind::Address => party.value = text(address),
            PartyKind::Attribute => {
                party.attribute = text(attribute);
                party.value = text(attribute_value);
            }
            PartyKind::Group => {
                party.group_id = Some(self.group(side).ok_or_else(|| {
                    Invalid::new(
                        format!("{}.group_id", side.name()),
                        "missing_group",
                        "choose a profile group with Lookup",
                    )
                })?);
            }
            PartyKind::Everyone | PartyKind::Internal | PartyKind::External => {}
        }
        if side == Side::From {
            party.based_on = Some(match self.from_based_on.as_str() {
                "header" => AddressBasis::Header,
                "both" => AddressBasis::Both,
                _ => AddressBasis::Envelope,
            });
        }
        Ok(party)
    }

    /// A date of the range: the exact stored time while the date shown
    /// for it is unchanged, otherwise midnight UTC of `date` (`+ 1 day`
    /// for the end, which is inclusive on the form).
    fn bound(
        &self,
        field: &str,
        shown: &str,
        exact_text: &str,
        end: bool,
    ) -> Result<Option<OffsetDateTime>, Invalid> {
        if shown.trim().is_empty() {
            return Ok(None);
        }
        let date = parse_date(field, shown)?;
        if let Some(t) = exact(exact_text) {
            let shown_for_exact = if end {
                date_text(t - Duration::nanoseconds(1))
            } else {
                date_text(t)
            };
            if shown_for_exact == shown.trim() {
                return Ok(Some(t));
            }
        }
        Ok(Some(if end {
            midnight(date.next_day().unwrap_or(date))
        } else {
            midnight(date)
        }))
    }

    /// The draft this form describes.
    ///
    /// # Errors
    /// [`Invalid`] with the API's field path for what the form itself
    /// cannot express (an unknown kind, a malformed date, a group not
    /// chosen); the draft's own rules are checked by the caller.
    pub(super) fn draft(&self) -> Result<PolicyDraft, Invalid> {
        let action = match self.action.as_str() {
            "no_action" => ActionKind::NoAction,
            _ => ActionKind::ApplyDefinition,
        };
        let definition_id = match action {
            ActionKind::NoAction => None,
            ActionKind::ApplyDefinition => match self.definition.trim() {
                "" => None,
                text => Some(DefinitionId(text.parse().map_err(|_| {
                    Invalid::new(
                        "definition_id",
                        "unknown_definition",
                        "choose a definition with Lookup",
                    )
                })?)),
            },
        };
        let (starts_at, ends_at) = if self.validity == "range" {
            let starts = self.bound("starts_at", &self.starts, &self.starts_exact, false)?;
            let ends = self.bound("ends_at", &self.ends, &self.ends_exact, true)?;
            if starts.is_none() && ends.is_none() {
                return Err(Invalid::new(
                    "starts_at",
                    "missing_date",
                    "give a start date, an end date or both, or choose Always On",
                ));
            }
            (starts, ends)
        } else {
            (None, None)
        };
        let source_ips = self
            .source_ips
            .split(['\n', ','])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(PolicyDraft {
            policy_type: PolicyType::SecureMessaging,
            narrative: self.narrative.trim().to_owned(),
            action,
            definition_id,
            from: self.party(Side::From)?,
            to: self.party(Side::To)?,
            enabled: self.enabled.is_some(),
            starts_at,
            ends_at,
            override_: self.override_.is_some(),
            bidirectional: self.bidirectional.is_some(),
            source_ips,
        })
    }

    /// The draft, checked by the policy rules, with the console's one rule
    /// more: a policy is saved with a narrative (the walk-through's step 4;
    /// a list of unnamed policies cannot be administered).
    pub(super) fn checked_draft(&self) -> Result<PolicyDraft, Invalid> {
        let draft = self.draft()?;
        if draft.narrative.is_empty() {
            return Err(Invalid::new(
                "narrative",
                "missing_narrative",
                "describe the policy in the Policy Narrative box",
            ));
        }
        sealpost_policy::Policy::from_draft(sealpost_policy::PolicyId(0), &draft)?;
        Ok(draft)
    }

    /// The form's fields as (name, value) pairs, carried through a picker
    /// as hidden fields so nothing typed is lost.
    pub(super) fn hidden_fields(&self) -> Vec<(String, String)> {
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut fields = Vec::new();
        if let serde_json::Value::Object(map) = value {
            for (name, v) in map {
                match v {
                    serde_json::Value::String(s) => fields.push((name, s)),
                    serde_json::Value::Null => {}
                    other => fields.push((name, other.to_string())),
                }
            }
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> PolicyForm {
        PolicyForm {
            narrative: "Legal to partners".into(),
            definition: "1".into(),
            ..PolicyForm::new_policy(None)
        }
    }

    #[test]
    fn a_new_form_is_internal_to_external_always_on() {
        let d = form().checked_draft().unwrap();
        assert_eq!(d.from.kind, PartyKind::Internal);
        assert_eq!(d.to.kind, PartyKind::External);
        assert_eq!(d.definition_id, Some(DefinitionId(1)));
        assert!(d.enabled && d.starts_at.is_none() && d.ends_at.is_none());
        assert!(!d.bidirectional && !d.override_);
    }

    #[test]
    fn every_kind_round_trips_through_the_form() {
        let parties = [
            ("domain", Some("partner.example"), None, None),
            ("address", Some("bob@partner.example"), None, None),
            ("group", None, Some(GroupId(7)), None),
            ("attribute", Some("Legal"), None, Some("department")),
            ("everyone", None, None, None),
        ];
        for (kind, value, group_id, attribute) in parties {
            let party = PartyDraft {
                kind: parse_kind(Side::To, kind).unwrap(),
                value: value.map(str::to_owned),
                group_id,
                attribute: attribute.map(str::to_owned),
                based_on: None,
            };
            let mut draft = form().draft().unwrap();
            draft.to = party.clone();
            draft.from.based_on = Some(AddressBasis::Both);
            let back = PolicyForm::from_draft(&draft).draft().unwrap();
            assert_eq!(back, draft, "{kind}");
        }
    }

    #[test]
    fn dates_are_whole_days_and_exact_times_survive_an_edit() {
        let mut f = form();
        f.validity = "range".into();
        f.starts = "2026-12-01".into();
        f.ends = "2026-12-31".into();
        let d = f.draft().unwrap();
        assert_eq!(rfc3339(d.starts_at.unwrap()), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339(d.ends_at.unwrap()), "2027-01-01T00:00:00Z");
        let back = PolicyForm::from_draft(&d);
        assert_eq!(
            (back.starts.as_str(), back.ends.as_str()),
            ("2026-12-01", "2026-12-31")
        );

        // A policy made through the API at 14:30 keeps its time...
        let mut api = d.clone();
        api.starts_at = exact("2026-12-01T14:30:00Z");
        let edited = PolicyForm::from_draft(&api);
        assert_eq!(edited.draft().unwrap().starts_at, api.starts_at);
        // ...until its date is changed.
        let mut moved = edited.clone();
        moved.starts = "2026-12-02".into();
        assert_eq!(
            rfc3339(moved.draft().unwrap().starts_at.unwrap()),
            "2026-12-02T00:00:00Z"
        );
    }

    #[test]
    fn refusals_name_the_box_to_change() {
        let mut f = form();
        f.narrative = "  ".into();
        assert_eq!(slot(&f.checked_draft().unwrap_err().field), "narrative");

        let mut f = form();
        f.validity = "range".into();
        f.starts = "2026-12-10".into();
        f.ends = "2026-12-01".into();
        let e = f.checked_draft().unwrap_err();
        assert_eq!((slot(&e.field), e.code), ("validity", "empty_date_range"));

        let mut f = form();
        f.validity = "range".into();
        f.starts = "10/12/2026".into();
        assert_eq!(slot(&f.checked_draft().unwrap_err().field), "validity");

        let mut f = form();
        f.source_ips = "10.0.0.0/8\n10.0.0.0/33".into();
        let e = f.checked_draft().unwrap_err();
        assert_eq!(
            (e.field.as_str(), slot(&e.field)),
            ("source_ips[1]", "source_ips")
        );

        let mut f = form();
        f.bidirectional = Some(ON.into());
        assert_eq!(slot(&f.checked_draft().unwrap_err().field), "bidirectional");

        let mut f = form();
        f.to_kind = "group".into();
        assert_eq!(slot(&f.checked_draft().unwrap_err().field), "to");

        let mut f = form();
        f.definition = String::new();
        assert_eq!(slot(&f.checked_draft().unwrap_err().field), "definition");

        assert_eq!(slot("policies[id=4].to.value"), "to");
        assert_eq!(slot("policies[id=4].definition_id"), "definition");
        assert_eq!(slot(""), "form");
    }

    #[test]
    fn a_pick_sets_the_choice_and_its_kind() {
        let mut f = form();
        f.pick("to_attribute", "department=Legal");
        assert_eq!(
            (
                f.to_kind.as_str(),
                f.to_attribute.as_str(),
                f.to_attribute_value.as_str()
            ),
            ("attribute", "department", "Legal")
        );
        f.pick("from_group", "3");
        assert_eq!(f.group(Side::From), Some(GroupId(3)));
        assert_eq!(f.from_kind, "group");
    }

    #[test]
    fn hidden_fields_carry_everything_typed_but_the_step() {
        let mut f = form();
        f.override_ = Some(ON.into());
        f.step = "lookup:definition".into();
        let fields = f.hidden_fields();
        assert!(fields.contains(&("override".into(), ON.into())));
        assert!(fields.contains(&("narrative".into(), "Legal to partners".into())));
        assert!(!fields.iter().any(|(n, _)| n == "step" || n == "csrf"));
        let back: PolicyForm =
            serde_urlencoded::from_str(&serde_urlencoded::to_string(&fields).unwrap()).unwrap();
        assert_eq!(back.draft().unwrap(), f.draft().unwrap());
    }
}

//! The whole policy configuration as one document.
//!
//! This is the form configuration is stored in, exported for version
//! control (`sealpost export`, as TOML or JSON) and imported back: every
//! object as its submitted draft, with its id. [`PolicyDocument::compile`]
//! validates every object and the whole together, giving the snapshot
//! decisions are made against.

use serde::{
    Deserialize, Deserializer, Serialize,
    de::{DeserializeOwned, Error as _},
};

use crate::{
    decide::PolicyId,
    definitions::{Definition, DefinitionDraft, DefinitionId},
    directory::{DirectoryUser, UserDraft},
    domains::DomainPattern,
    groups::{Group, GroupDraft, GroupId},
    invalid::Invalid,
    policy::{Policy, PolicyDraft},
    set::{PolicyConfig, PolicySet},
};

/// A stored group: its id and its draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupEntry {
    pub id: GroupId,
    #[serde(flatten)]
    pub group: GroupDraft,
}

/// A stored definition: its id, whether it is the default, its draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DefinitionEntry {
    pub id: DefinitionId,
    pub is_default: bool,
    #[serde(flatten)]
    pub definition: DefinitionDraft,
}

/// A stored policy: its id and its draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyEntry {
    pub id: PolicyId,
    #[serde(flatten)]
    pub policy: PolicyDraft,
}

// The entries are read by hand: serde's `flatten` would let unknown fields
// through silently, and a typo in an imported document must be an error.
// Each entry is read as a map, its id taken out, and the rest read as the
// draft (which refuses unknown fields).

fn split_entry<'de, D: Deserializer<'de>>(
    deserializer: D,
    keys: &[&str],
) -> Result<(Vec<serde_json::Value>, serde_json::Value), D::Error> {
    let mut map = serde_json::Map::deserialize(deserializer)?;
    let taken = keys
        .iter()
        .map(|k| map.remove(*k).unwrap_or(serde_json::Value::Null))
        .collect();
    Ok((taken, serde_json::Value::Object(map)))
}

fn field<'de, T: DeserializeOwned, D: Deserializer<'de>>(
    name: &str,
    value: serde_json::Value,
) -> Result<T, D::Error> {
    if value.is_null() && name == "id" {
        return Err(D::Error::missing_field("id"));
    }
    serde_json::from_value(value).map_err(|e| D::Error::custom(format!("{name}: {e}")))
}

impl<'de> Deserialize<'de> for GroupEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (mut taken, rest) = split_entry(deserializer, &["id"])?;
        Ok(GroupEntry {
            id: field::<_, D>("id", taken.remove(0))?,
            group: serde_json::from_value(rest).map_err(D::Error::custom)?,
        })
    }
}

impl<'de> Deserialize<'de> for DefinitionEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (mut taken, rest) = split_entry(deserializer, &["id", "is_default"])?;
        let is_default = taken.remove(1);
        Ok(DefinitionEntry {
            id: field::<_, D>("id", taken.remove(0))?,
            is_default: if is_default.is_null() {
                false
            } else {
                field::<_, D>("is_default", is_default)?
            },
            definition: serde_json::from_value(rest).map_err(D::Error::custom)?,
        })
    }
}

impl<'de> Deserialize<'de> for PolicyEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (mut taken, rest) = split_entry(deserializer, &["id"])?;
        Ok(PolicyEntry {
            id: field::<_, D>("id", taken.remove(0))?,
            policy: serde_json::from_value(rest).map_err(D::Error::custom)?,
        })
    }
}

/// Every object of the policy configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Internal domain patterns managed through the API (the
    /// configuration file's `domains.internal` come on top).
    #[serde(default)]
    pub internal_domains: Vec<String>,
    #[serde(default)]
    pub users: Vec<UserDraft>,
    #[serde(default)]
    pub groups: Vec<GroupEntry>,
    #[serde(default)]
    pub definitions: Vec<DefinitionEntry>,
    #[serde(default)]
    pub policies: Vec<PolicyEntry>,
}

impl PolicyDocument {
    /// Validates every object and the whole, and builds the snapshot.
    /// `extra_internal` are internal domains from elsewhere (the
    /// configuration file); `max_expiry_days` bounds definition expiry.
    ///
    /// # Errors
    /// [`Invalid`] whose field locates the object, e.g.
    /// `policies[id=4].to.value` or `internal_domains[2]`.
    pub fn compile(
        &self,
        extra_internal: &[DomainPattern],
        max_expiry_days: u32,
    ) -> Result<PolicySet, Invalid> {
        let mut internal_domains = extra_internal.to_vec();
        for (i, d) in self.internal_domains.iter().enumerate() {
            internal_domains.push(DomainPattern::parse(d).map_err(|e| {
                Invalid::new(
                    format!("internal_domains[{i}]"),
                    "invalid_domain",
                    format!("{d:?} is not a valid domain or *.domain pattern: {e}"),
                )
            })?);
        }
        unique_ids(self.groups.iter().map(|g| g.id.0), "groups")?;
        unique_ids(self.definitions.iter().map(|d| d.id.0), "definitions")?;
        unique_ids(self.policies.iter().map(|p| p.id.0), "policies")?;
        let users = self
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                DirectoryUser::from_draft(u).map_err(|e| e.within(&format!("users[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let groups = self
            .groups
            .iter()
            .map(|g| {
                Group::from_draft(g.id, &g.group)
                    .map_err(|e| e.within(&format!("groups[id={}]", g.id.0)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        unique_names(groups.iter().map(|g| (g.id.0, g.name.as_str())), "groups")?;
        let definitions = self
            .definitions
            .iter()
            .map(|d| {
                Definition::from_draft(d.id, d.is_default, &d.definition, max_expiry_days)
                    .map_err(|e| e.within(&format!("definitions[id={}]", d.id.0)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        unique_names(
            definitions.iter().map(|d| (d.id.0, d.name())),
            "definitions",
        )?;
        if definitions.iter().filter(|d| d.is_default).count() != 1 {
            return Err(Invalid::new(
                "definitions",
                "default_definition",
                "exactly one definition must be the default",
            ));
        }
        let policies = self
            .policies
            .iter()
            .map(|p| {
                Policy::from_draft(p.id, &p.policy)
                    .map_err(|e| e.within(&format!("policies[id={}]", p.id.0)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        PolicySet::compile(PolicyConfig {
            internal_domains,
            users,
            groups,
            definitions,
            policies,
        })
    }
}

/// Ids must differ within one kind of object.
fn unique_ids(ids: impl Iterator<Item = i64>, kind: &str) -> Result<(), Invalid> {
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(Invalid::new(
                format!("{kind}[id={id}].id"),
                "duplicate_id",
                format!("two {kind} have the id {id}"),
            ));
        }
    }
    Ok(())
}

/// Names must differ (ignoring case) within one kind of object.
fn unique_names<'a>(
    items: impl Iterator<Item = (i64, &'a str)>,
    kind: &str,
) -> Result<(), Invalid> {
    let mut seen = std::collections::HashMap::new();
    for (id, name) in items {
        if let Some(other) = seen.insert(name.to_lowercase(), id) {
            return Err(Invalid::new(
                format!("{kind}[id={id}].name"),
                "duplicate_name",
                format!("the name {name:?} is already used by {kind} {other}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> PolicyDocument {
        serde_json::from_str(
            r#"{
              "internal_domains": ["corp.example"],
              "users": [{"address": "alice@corp.example", "attributes": {"department": "Legal"}}],
              "groups": [{"id": 1, "name": "Partners", "addresses": ["p@partner.example"]}],
              "definitions": [{"id": 1, "is_default": true, "name": "Default"}],
              "policies": [{"id": 1, "action": "apply_definition", "definition_id": 1,
                            "from": {"kind": "internal"}, "to": {"kind": "group", "group_id": 1}}]
            }"#,
        )
        .unwrap()
    }

    #[test]
    fn compiles_and_round_trips_through_toml_and_json() {
        let doc = document();
        let set = doc.compile(&[], 365).unwrap();
        assert_eq!(set.policies().len(), 1);
        let toml_text = toml::to_string(&doc).unwrap();
        assert_eq!(toml::from_str::<PolicyDocument>(&toml_text).unwrap(), doc);
        let json = serde_json::to_string(&doc).unwrap();
        assert_eq!(serde_json::from_str::<PolicyDocument>(&json).unwrap(), doc);
    }

    #[test]
    fn errors_locate_the_object() {
        let mut doc = document();
        doc.policies[0].policy.to.group_id = Some(GroupId(9));
        let e = doc.compile(&[], 365).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.code),
            ("policies[id=1].to.group_id", "unknown_group")
        );
        let mut doc = document();
        doc.groups.push(GroupEntry {
            id: GroupId(2),
            group: GroupDraft {
                name: "PARTNERS".into(),
                ..doc.groups[0].group.clone()
            },
        });
        assert_eq!(doc.compile(&[], 365).unwrap_err().code, "duplicate_name");
        let bad: Result<PolicyDocument, _> =
            serde_json::from_str(r#"{"groups": [{"id": 1, "name": "x", "colour": "red"}]}"#);
        assert!(bad.is_err(), "unknown fields inside entries are refused");
    }
}

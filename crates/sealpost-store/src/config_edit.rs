//! A configuration change applied to the stored configuration in memory.
//!
//! A change to one policy, group or user must not re-read and recompile
//! the whole configuration inside the writer transaction that SMTP commits
//! share (issue 17, item 8). So the store applies the change here first, to
//! the document as it was last committed, and checks and compiles the
//! result outside the writer; only then does a short transaction write the
//! one object (and the audit entry). [`apply`] therefore does to a
//! [`PolicyDocument`] exactly what the SQL of the change does to the
//! tables, with the same errors, and lists stay in the order the store
//! reads them back (domains by pattern, users by key, the rest by id); the
//! store's tests compare the two after every kind of change.

use std::collections::HashMap;

use sealpost_policy::{
    DefinitionEntry, DirectoryUser, DomainPattern, EmailAddress, GroupEntry, Invalid,
    PolicyDocument, PolicyEntry, UserDraft,
};

use crate::{StoreError, admin::ConfigChange};

/// The ids the next created group, definition and policy get (ids are
/// never reused: tracking records name policies by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextIds {
    pub group: i64,
    pub definition: i64,
    pub policy: i64,
}

// The refusals a change can meet, written once for both appliers: this
// one (in memory, where the change is checked) and the SQL one
// (`sqlite::admin::apply_change`), so the two answer alike.

pub(crate) fn missing(kind: &str, id: impl std::fmt::Display) -> StoreError {
    StoreError::NoSuch(format!("{kind} {id}"))
}

/// `pattern` as an internal domain; `field` names it in the refusal.
pub(crate) fn internal_domain(
    field: impl Into<String>,
    pattern: &str,
) -> Result<DomainPattern, StoreError> {
    DomainPattern::parse(pattern).map_err(|e| {
        StoreError::Rejected(Invalid::new(
            field,
            "invalid_domain",
            format!("{pattern:?} is not a valid domain or *.domain pattern: {e}"),
        ))
    })
}

pub(crate) fn duplicate_domain(parsed: &DomainPattern) -> StoreError {
    StoreError::Rejected(Invalid::new(
        "domain",
        "duplicate",
        format!("{parsed} is already an internal domain"),
    ))
}

pub(crate) fn default_definition_kept() -> StoreError {
    StoreError::Rejected(Invalid::new(
        "",
        "default_definition",
        "the default Secure Messaging definition cannot be deleted (edit it instead)",
    ))
}

/// Applies `change` to `doc`; returns the id of a created object (or, for
/// an import, the number of users imported), as the SQL would.
///
/// # Errors
/// [`StoreError::Rejected`] or [`StoreError::NoSuch`], as the SQL of the
/// change would answer; `doc` may then be partly changed and must be
/// dropped.
pub fn apply(
    doc: &mut PolicyDocument,
    change: &ConfigChange,
    next: NextIds,
) -> Result<Option<i64>, StoreError> {
    match change {
        ConfigChange::AddInternalDomain(pattern) => {
            let parsed = internal_domain("domain", pattern)?;
            let canonical = parsed.to_string();
            match doc.internal_domains.binary_search(&canonical) {
                Ok(_) => Err(duplicate_domain(&parsed)),
                Err(at) => {
                    doc.internal_domains.insert(at, canonical);
                    Ok(None)
                }
            }
        }
        ConfigChange::RemoveInternalDomain(pattern) => {
            let canonical = DomainPattern::parse(pattern)
                .map(|p| p.to_string())
                .unwrap_or_else(|_| pattern.clone());
            let at = doc
                .internal_domains
                .iter()
                .position(|d| *d == canonical)
                .ok_or_else(|| missing("internal domain", pattern))?;
            doc.internal_domains.remove(at);
            Ok(None)
        }
        ConfigChange::PutUser(draft) => {
            Users::of(doc).put(draft)?.store(doc);
            Ok(None)
        }
        ConfigChange::ImportUsers(drafts) => {
            let mut users = Users::of(doc);
            for (i, draft) in drafts.iter().enumerate() {
                users.put(draft).map_err(|e| match e {
                    StoreError::Rejected(invalid) => {
                        StoreError::Rejected(invalid.within(&format!("[{i}]")))
                    }
                    other => other,
                })?;
            }
            users.store(doc);
            Ok(Some(drafts.len() as i64))
        }
        ConfigChange::RemoveUser(address) => {
            let key = EmailAddress::parse(address.trim())
                .map(|a| a.match_key())
                .map_err(|_| missing("directory user", address))?;
            let at = doc
                .users
                .iter()
                .position(|u| user_key(u) == key)
                .ok_or_else(|| missing("directory user", address))?;
            doc.users.remove(at);
            Ok(None)
        }
        ConfigChange::CreateGroup(draft) => {
            doc.groups.push(GroupEntry {
                id: sealpost_policy::GroupId(next.group),
                group: draft.clone(),
            });
            Ok(Some(next.group))
        }
        ConfigChange::UpdateGroup(id, draft) => {
            let entry = doc
                .groups
                .iter_mut()
                .find(|g| g.id == *id)
                .ok_or_else(|| missing("group", id.0))?;
            entry.group = draft.clone();
            Ok(None)
        }
        ConfigChange::RemoveGroup(id) => {
            let at = doc
                .groups
                .iter()
                .position(|g| g.id == *id)
                .ok_or_else(|| missing("group", id.0))?;
            doc.groups.remove(at);
            Ok(None)
        }
        ConfigChange::CreateDefinition(draft) => {
            doc.definitions.push(DefinitionEntry {
                id: sealpost_policy::DefinitionId(next.definition),
                is_default: false,
                definition: draft.clone(),
            });
            Ok(Some(next.definition))
        }
        ConfigChange::UpdateDefinition(id, draft) => {
            let entry = doc
                .definitions
                .iter_mut()
                .find(|d| d.id == *id)
                .ok_or_else(|| missing("definition", id.0))?;
            entry.definition = draft.clone();
            Ok(None)
        }
        ConfigChange::RemoveDefinition(id) => {
            let at = doc
                .definitions
                .iter()
                .position(|d| d.id == *id)
                .ok_or_else(|| missing("definition", id.0))?;
            if doc.definitions[at].is_default {
                return Err(default_definition_kept());
            }
            doc.definitions.remove(at);
            Ok(None)
        }
        ConfigChange::MakeDefaultDefinition(id) => {
            if !doc.definitions.iter().any(|d| d.id == *id) {
                return Err(missing("definition", id.0));
            }
            for d in &mut doc.definitions {
                d.is_default = d.id == *id;
            }
            Ok(None)
        }
        ConfigChange::CreatePolicy(draft) => {
            doc.policies.push(PolicyEntry {
                id: sealpost_policy::PolicyId(next.policy),
                policy: draft.clone(),
            });
            Ok(Some(next.policy))
        }
        ConfigChange::UpdatePolicy(id, draft) => {
            let entry = doc
                .policies
                .iter_mut()
                .find(|p| p.id == *id)
                .ok_or_else(|| missing("policy", id.0))?;
            entry.policy = draft.clone();
            Ok(None)
        }
        ConfigChange::RemovePolicy(id) => {
            let at = doc
                .policies
                .iter()
                .position(|p| p.id == *id)
                .ok_or_else(|| missing("policy", id.0))?;
            doc.policies.remove(at);
            Ok(None)
        }
        ConfigChange::Replace(new) => {
            *doc = replaced(new)?;
            Ok(None)
        }
    }
}

/// A whole imported document as the store keeps it: domains canonical and
/// without duplicates, users canonical (the last of one address wins),
/// everything in the order the store reads it back.
fn replaced(new: &PolicyDocument) -> Result<PolicyDocument, StoreError> {
    let mut doc = PolicyDocument::default();
    for (i, d) in new.internal_domains.iter().enumerate() {
        let parsed = internal_domain(format!("internal_domains[{i}]"), d)?;
        doc.internal_domains.push(parsed.to_string());
    }
    doc.internal_domains.sort();
    doc.internal_domains.dedup();
    let mut users = Users::default();
    for (i, u) in new.users.iter().enumerate() {
        users.put(u).map_err(|e| match e {
            StoreError::Rejected(invalid) => {
                StoreError::Rejected(invalid.within(&format!("users[{i}]")))
            }
            other => other,
        })?;
    }
    users.store(&mut doc);
    doc.groups = new.groups.clone();
    doc.groups.sort_by_key(|g| g.id);
    doc.definitions = new.definitions.clone();
    doc.definitions.sort_by_key(|d| d.id);
    doc.policies = new.policies.clone();
    doc.policies.sort_by_key(|p| p.id);
    let duplicate = |kind: &str, ids: Vec<i64>| {
        ids.windows(2).find(|w| w[0] == w[1]).map(|w| {
            StoreError::Rejected(Invalid::new(
                kind,
                "duplicate_id",
                format!("two {kind} have id {}", w[0]),
            ))
        })
    };
    for (kind, ids) in [
        ("groups", doc.groups.iter().map(|g| g.id.0).collect()),
        (
            "definitions",
            doc.definitions.iter().map(|d| d.id.0).collect(),
        ),
        ("policies", doc.policies.iter().map(|p| p.id.0).collect()),
    ] {
        if let Some(e) = duplicate(kind, ids) {
            return Err(e);
        }
    }
    Ok(doc)
}

/// A stored user's key (its address's match key; stored addresses are
/// canonical, so they always parse).
fn user_key(user: &UserDraft) -> String {
    EmailAddress::parse(&user.address)
        .map(|a| a.match_key())
        .unwrap_or_else(|_| user.address.to_ascii_lowercase())
}

/// The directory by key, for changes to many users at once.
#[derive(Default)]
struct Users {
    by_key: HashMap<String, UserDraft>,
}

impl Users {
    fn of(doc: &mut PolicyDocument) -> Self {
        Users {
            by_key: std::mem::take(&mut doc.users)
                .into_iter()
                .map(|u| (user_key(&u), u))
                .collect(),
        }
    }

    /// Creates or replaces a user, stored as the SQL stores it: the draft
    /// of the validated user.
    fn put(&mut self, draft: &UserDraft) -> Result<&mut Self, StoreError> {
        let user = DirectoryUser::from_draft(draft).map_err(StoreError::Rejected)?;
        self.by_key
            .insert(user.address.match_key(), user.to_draft());
        Ok(self)
    }

    /// Puts the users back into `doc`, ordered by key.
    fn store(&mut self, doc: &mut PolicyDocument) {
        let mut users: Vec<(String, UserDraft)> =
            std::mem::take(&mut self.by_key).into_iter().collect();
        users.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        doc.users = users.into_iter().map(|(_, u)| u).collect();
    }
}

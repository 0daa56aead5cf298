//! The audit log (issue 16, item 3): every change an administrator makes,
//! through the console, the API or the CLI, recorded in the same
//! transaction as the change itself, so there is no change without its
//! entry and no entry for a change that was rolled back.
//!
//! An entry says who ([`Actor`]: an administrator, an API key, the CLI
//! or sealpost itself), when, from which IP, what was done to which
//! object, and the object's document before and after. Entries are never
//! edited or deleted: the table refuses it (triggers), and no method
//! here does it.

use std::{fmt, net::IpAddr, time::SystemTime};

use sealpost_policy::PolicyDocument;
use serde::Serialize;
use serde_json::Value;

use crate::ConfigChange;

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// Signed in to the console.
    Administrator,
    /// A REST API key.
    ApiKey,
    /// The `sealpost` command on the gateway's host.
    Cli,
    /// sealpost itself (the first start).
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Administrator => "administrator",
            ActorKind::ApiKey => "api_key",
            ActorKind::Cli => "cli",
            ActorKind::System => "system",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ActorKind::Administrator,
            ActorKind::ApiKey,
            ActorKind::Cli,
            ActorKind::System,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// Who made a change, and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub kind: ActorKind,
    /// The administrator's name, the key's id and name, the OS user.
    pub name: String,
    pub client_ip: Option<IpAddr>,
}

impl Actor {
    pub fn administrator(name: impl fmt::Display, client_ip: IpAddr) -> Actor {
        Actor {
            kind: ActorKind::Administrator,
            name: name.to_string(),
            client_ip: Some(client_ip),
        }
    }

    pub fn api_key(id: &str, name: &str, client_ip: Option<IpAddr>) -> Actor {
        Actor {
            kind: ActorKind::ApiKey,
            name: if name.is_empty() {
                id.to_owned()
            } else {
                format!("{id} ({name})")
            },
            client_ip,
        }
    }

    /// The CLI, named by the operating-system user who ran it.
    pub fn cli() -> Actor {
        Actor {
            kind: ActorKind::Cli,
            name: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown user".into()),
            client_ip: None,
        }
    }

    pub fn system(what: &str) -> Actor {
        Actor {
            kind: ActorKind::System,
            name: what.to_owned(),
            client_ip: None,
        }
    }
}

/// What one entry records of a change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `create`, `update`, `delete`, `import`, `replace`, `reset_password`…
    pub action: String,
    /// `policy`, `definition`, `group`, `directory_user`, `internal_domain`,
    /// `configuration`, `api_key`, `administrator`.
    pub object_kind: String,
    pub object_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl Change {
    pub fn new(
        action: &str,
        object_kind: &str,
        object_id: Option<String>,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Change {
        Change {
            action: action.to_owned(),
            object_kind: object_kind.to_owned(),
            object_id,
            before,
            after,
        }
    }
}

/// A recorded entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(serialize_with = "as_rfc3339")]
    pub at: SystemTime,
    pub actor: Actor,
    #[serde(flatten)]
    pub change: Change,
}

fn as_rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::rfc3339(*t))
}

/// Which entries to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    pub actor_kind: Option<ActorKind>,
    /// Part of the actor's name.
    pub actor: Option<String>,
    pub object_kind: Option<String>,
    pub object_id: Option<String>,
    /// Entries older than this id (paging).
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// Users in an import are counted, not copied: an import of a million
/// users would otherwise write the directory twice into one entry.
const IMPORT_SUMMARY: &str = "users";

fn json<T: Serialize>(value: &T) -> Option<Value> {
    serde_json::to_value(value).ok()
}

/// The entry of a configuration change, from the whole configuration
/// before and after it (read in the change's transaction) and the id the
/// change created.
pub fn config_change(
    change: &ConfigChange,
    created: Option<i64>,
    before: &PolicyDocument,
    after: &PolicyDocument,
) -> Change {
    let user = |doc: &PolicyDocument, key: &str| {
        doc.users
            .iter()
            .find(|u| user_key(&u.address) == key)
            .and_then(json)
    };
    let group =
        |doc: &PolicyDocument, id: i64| doc.groups.iter().find(|g| g.id.0 == id).and_then(json);
    let definition = |doc: &PolicyDocument, id: i64| {
        doc.definitions.iter().find(|d| d.id.0 == id).and_then(json)
    };
    let policy =
        |doc: &PolicyDocument, id: i64| doc.policies.iter().find(|p| p.id.0 == id).and_then(json);
    let entry = |action: &str, object_kind: &str, object_id: Option<String>, before, after| {
        Change::new(action, object_kind, object_id, before, after)
    };
    let kind = change.kind();
    match change {
        ConfigChange::AddInternalDomain(p) | ConfigChange::RemoveInternalDomain(p) => {
            let canonical = sealpost_policy::DomainPattern::parse(p)
                .map_or_else(|_| p.clone(), |d| d.to_string());
            let present = |doc: &PolicyDocument| {
                doc.internal_domains
                    .contains(&canonical)
                    .then(|| Value::String(canonical.clone()))
            };
            entry(
                kind.action(),
                "internal_domain",
                Some(canonical.clone()),
                present(before),
                present(after),
            )
        }
        ConfigChange::PutUser(draft) => {
            let key = user_key(&draft.address);
            let was = user(before, &key);
            entry(
                if was.is_some() { "update" } else { "create" },
                "directory_user",
                Some(key.clone()),
                was,
                user(after, &key),
            )
        }
        ConfigChange::RemoveUser(address) => {
            let key = user_key(address);
            entry(
                "delete",
                "directory_user",
                Some(key.clone()),
                user(before, &key),
                None,
            )
        }
        ConfigChange::ImportUsers(drafts) => entry(
            "import",
            "directory_users",
            None,
            Some(serde_json::json!({ IMPORT_SUMMARY: before.users.len() })),
            Some(
                serde_json::json!({ IMPORT_SUMMARY: after.users.len(), "imported": drafts.len() }),
            ),
        ),
        ConfigChange::CreateGroup(_)
        | ConfigChange::UpdateGroup(..)
        | ConfigChange::RemoveGroup(_) => {
            let id = change.object_id().or(created).unwrap_or_default();
            entry(
                kind.action(),
                "group",
                Some(id.to_string()),
                group(before, id),
                group(after, id),
            )
        }
        ConfigChange::CreateDefinition(_)
        | ConfigChange::UpdateDefinition(..)
        | ConfigChange::RemoveDefinition(_)
        | ConfigChange::MakeDefaultDefinition(_) => {
            let id = change.object_id().or(created).unwrap_or_default();
            entry(
                kind.action(),
                "definition",
                Some(id.to_string()),
                definition(before, id),
                definition(after, id),
            )
        }
        ConfigChange::CreatePolicy(_)
        | ConfigChange::UpdatePolicy(..)
        | ConfigChange::RemovePolicy(_) => {
            let id = change.object_id().or(created).unwrap_or_default();
            entry(
                kind.action(),
                "policy",
                Some(id.to_string()),
                policy(before, id),
                policy(after, id),
            )
        }
        ConfigChange::Replace(_) => {
            entry("replace", "configuration", None, json(before), json(after))
        }
    }
}

/// What a configuration change does to its object.
#[derive(Debug, Clone, Copy)]
enum Verb {
    Create,
    Update,
    Delete,
    Replace,
}

impl Verb {
    fn action(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Delete => "delete",
            Verb::Replace => "replace",
        }
    }
}

/// A directory user's key: the address's match key, or the text lower-cased
/// if it does not parse.
fn user_key(address: &str) -> String {
    sealpost_policy::EmailAddress::parse(address.trim())
        .map(|a| a.match_key())
        .unwrap_or_else(|_| address.trim().to_ascii_lowercase())
}

impl ConfigChange {
    fn kind(&self) -> Verb {
        match self {
            ConfigChange::AddInternalDomain(_)
            | ConfigChange::CreateGroup(_)
            | ConfigChange::CreateDefinition(_)
            | ConfigChange::CreatePolicy(_) => Verb::Create,
            ConfigChange::UpdateGroup(..)
            | ConfigChange::UpdateDefinition(..)
            | ConfigChange::MakeDefaultDefinition(_)
            | ConfigChange::UpdatePolicy(..)
            | ConfigChange::PutUser(_) => Verb::Update,
            ConfigChange::RemoveInternalDomain(_)
            | ConfigChange::RemoveUser(_)
            | ConfigChange::RemoveGroup(_)
            | ConfigChange::RemoveDefinition(_)
            | ConfigChange::RemovePolicy(_) => Verb::Delete,
            ConfigChange::ImportUsers(_) | ConfigChange::Replace(_) => Verb::Replace,
        }
    }

    /// The id of the object an update or removal names.
    fn object_id(&self) -> Option<i64> {
        match self {
            ConfigChange::UpdateGroup(id, _) | ConfigChange::RemoveGroup(id) => Some(id.0),
            ConfigChange::UpdateDefinition(id, _)
            | ConfigChange::RemoveDefinition(id)
            | ConfigChange::MakeDefaultDefinition(id) => Some(id.0),
            ConfigChange::UpdatePolicy(id, _) | ConfigChange::RemovePolicy(id) => Some(id.0),
            _ => None,
        }
    }
}

//! The administration side of storage: the policy configuration and API
//! keys.
//!
//! A configuration change is applied to the configuration as last
//! committed, and the result checked by the caller's `check` (which
//! compiles the policy snapshot), before anything is written: a change
//! that would leave the configuration inconsistent (a policy naming a
//! deleted group, say) is refused and never seen, however many
//! administrators save at once. The check runs outside the writer
//! transaction SMTP commits share; the commit writes only the changed
//! object and its audit entry (see `sqlite/config_writes.rs`). The caller
//! gets the new snapshot with the commit, and swaps it in for the next
//! message.

use sealpost_policy::{
    DefinitionDraft, DefinitionId, GroupDraft, GroupId, Invalid, PolicyDocument, PolicyDraft,
    PolicyId, PolicySet, UserDraft,
};

use crate::{
    StoreError,
    audit::{Actor, AuditEntry, AuditQuery},
};

/// One change to the policy configuration.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    AddInternalDomain(String),
    RemoveInternalDomain(String),
    /// Creates or replaces the user with this address.
    PutUser(UserDraft),
    RemoveUser(String),
    /// Creates or replaces each user: checked as a whole (one bad user
    /// refuses them all), written in short batches.
    ImportUsers(Vec<UserDraft>),
    CreateGroup(GroupDraft),
    UpdateGroup(GroupId, GroupDraft),
    RemoveGroup(GroupId),
    CreateDefinition(DefinitionDraft),
    UpdateDefinition(DefinitionId, DefinitionDraft),
    RemoveDefinition(DefinitionId),
    /// Makes this definition the default (the one before stops being it).
    MakeDefaultDefinition(DefinitionId),
    CreatePolicy(PolicyDraft),
    UpdatePolicy(PolicyId, PolicyDraft),
    RemovePolicy(PolicyId),
    /// Replaces the whole configuration (import of an exported document).
    Replace(PolicyDocument),
}

/// Validates a configuration and builds its snapshot; supplied by the
/// caller, who knows the settings that take part (configuration-file
/// domains, retention).
pub type ConfigCheck = Box<dyn FnMut(&PolicyDocument) -> Result<PolicySet, Invalid> + Send>;

/// What a committed change gives back.
#[derive(Debug)]
pub struct Changed {
    /// The id of a created object.
    pub id: Option<i64>,
    /// The snapshot of the configuration as committed.
    pub set: PolicySet,
}

/// The roles an API key (and later an admin account) can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    SuperAdmin,
    /// Policies, definitions, groups, directory, internal domains.
    PolicyAdmin,
    /// Message tracking.
    TrackingAdmin,
    /// Reads only.
    ReadOnly,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::SuperAdmin,
        Role::PolicyAdmin,
        Role::TrackingAdmin,
        Role::ReadOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::PolicyAdmin => "policy_admin",
            Role::TrackingAdmin => "tracking_admin",
            Role::ReadOnly => "read_only",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Whether this role may change the policy configuration.
    pub fn may_edit_policy(self) -> bool {
        matches!(self, Role::SuperAdmin | Role::PolicyAdmin)
    }

    /// Whether the role may act on messages (recall, extend expiry).
    pub fn may_manage_messages(self) -> bool {
        matches!(self, Role::SuperAdmin | Role::TrackingAdmin)
    }
}

/// A stored API key: only a hash of its secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub secret_hash: Vec<u8>,
    pub role: Role,
    pub name: String,
    /// When the key last authenticated a request (to the minute), if ever.
    pub last_used_at: Option<std::time::SystemTime>,
}

/// An API key as listed: everything but the hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: String,
    pub role: Role,
    pub name: String,
    pub created_at: std::time::SystemTime,
    pub last_used_at: Option<std::time::SystemTime>,
}

/// The administration storage boundary.
#[async_trait::async_trait]
pub trait AdminStore: Send + Sync + std::fmt::Debug + 'static {
    /// The whole policy configuration.
    async fn load_config(&self) -> Result<PolicyDocument, StoreError>;

    /// Applies `change` to the configuration as committed and runs `check`
    /// on the result (outside the writer transaction), and commits only if
    /// the check passes ([`StoreError::Rejected`] otherwise), with its
    /// audit entry by `actor`. Durable before it returns. A directory
    /// import is committed in batches once checked whole.
    async fn change_config(
        &self,
        change: ConfigChange,
        check: ConfigCheck,
        actor: Actor,
    ) -> Result<Changed, StoreError>;

    /// Stores a new API key (and its audit entry).
    async fn create_api_key(&self, key: ApiKeyRecord, actor: Actor) -> Result<(), StoreError>;

    /// The key with this id, if any.
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Whether any API key exists (none: a first start).
    async fn has_api_keys(&self) -> Result<bool, StoreError>;

    /// Every API key, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, StoreError>;

    /// Deletes a key (and records it); false when there was none.
    async fn revoke_api_key(&self, id: &str, actor: Actor) -> Result<bool, StoreError>;

    /// Audit entries, newest first.
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;

    /// Notes that the key authenticated a request at `at`.
    async fn touch_api_key(&self, id: &str, at: std::time::SystemTime) -> Result<(), StoreError>;

    /// Recipients each policy decided from the day (UTC) of `since` on.
    async fn policy_hits(
        &self,
        since: std::time::SystemTime,
    ) -> Result<std::collections::HashMap<sealpost_policy::PolicyId, u64>, StoreError>;

    /// A page of the envelopes of accepted mail, for the policy impact
    /// preview.
    async fn envelopes(
        &self,
        query: crate::envelopes::EnvelopeQuery,
    ) -> Result<crate::envelopes::EnvelopePage, StoreError>;
}

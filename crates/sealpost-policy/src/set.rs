//! The policy snapshot: every object selection reads, checked together and
//! indexed.
//!
//! [`PolicySet::compile`] takes the whole configuration (internal domains,
//! directory, groups, definitions, policies), checks what one object alone
//! cannot (references between them, group cycles), flattens group
//! membership and indexes the policies by what they select. The gateway
//! builds a new snapshot whenever an administrator saves a change and swaps
//! it in atomically, so the next message sees the change and no decision
//! ever sees half of one.
//!
//! # The index
//! Deciding must not scan every policy (SPEC asks for tens of thousands,
//! and thousands may aim at one group). Each enabled policy is filed under
//! one of its sides: its "Emails To" or its "Emails From" condition, when
//! it names a domain, group, attribute or address; of two such sides, the
//! one whose list holds fewer policies so far (policies taken in id order,
//! "Emails To" on a tie), so that 5,000 policies from 5,000 senders to one
//! group land in 5,000 short lists rather than one long one. A policy with
//! both sides broad (everyone, internal, external) goes in a list every
//! decision reads. Disabled policies are filed nowhere: they never decide.
//!
//! Every list is ordered best first by the ranking of SPEC §3, so a
//! decision reads each list it collects (those filed under what the
//! recipient and sender are) only until its first full match, or until the
//! policies left rank below the best match found so far.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::{
    address::{EmailAddress, ascii_domain},
    decide::rank,
    definitions::{Definition, DefinitionId},
    directory::DirectoryUser,
    domains::{DomainPattern, InternalDomains},
    groups::{Group, GroupId, Membership, domain_suffixes},
    invalid::Invalid,
    policy::{Action, Party, Policy},
};

/// The whole policy configuration, as stored.
#[derive(Debug, Clone, Default)]
pub struct PolicyConfig {
    pub internal_domains: Vec<DomainPattern>,
    pub users: Vec<DirectoryUser>,
    pub groups: Vec<Group>,
    pub definitions: Vec<Definition>,
    pub policies: Vec<Policy>,
}

/// An immutable, checked and indexed snapshot of the configuration.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub(crate) internal_domains: InternalDomains,
    pub(crate) directory: HashMap<String, DirectoryUser>,
    pub(crate) membership: Membership,
    pub(crate) groups: BTreeSet<GroupId>,
    /// Each group's name, for lists that show policies by their groups.
    pub(crate) group_names: BTreeMap<GroupId, String>,
    pub(crate) definitions: BTreeMap<DefinitionId, Definition>,
    /// Ordered by id.
    pub(crate) policies: Vec<Policy>,
    pub(crate) index: Index,
}

impl PolicySet {
    /// A snapshot with internal domains only and no policies: every
    /// recipient is relayed.
    pub fn with_internal_domains(internal_domains: InternalDomains) -> Self {
        PolicySet {
            internal_domains,
            ..PolicySet::default()
        }
    }

    /// Checks the configuration as a whole and builds the snapshot.
    ///
    /// # Errors
    /// [`Invalid`] whose field names the object at fault, e.g.
    /// `policies[id=4].definition_id`.
    pub fn compile(config: PolicyConfig) -> Result<Self, Invalid> {
        let membership = Membership::build(&config.groups).map_err(|e| {
            let within = e.field.starts_with("groups[");
            if within { e.within("groups") } else { e }
        })?;
        let mut directory = HashMap::with_capacity(config.users.len());
        for user in config.users {
            directory.insert(user.address.match_key(), user);
        }
        let definitions: BTreeMap<DefinitionId, Definition> =
            config.definitions.into_iter().map(|d| (d.id, d)).collect();
        let groups: BTreeSet<GroupId> = config.groups.iter().map(|g| g.id).collect();
        let group_names: BTreeMap<GroupId, String> = config
            .groups
            .iter()
            .map(|g| (g.id, g.name.clone()))
            .collect();
        let mut policies = config.policies;
        policies.sort_by_key(|p| p.id);
        for p in &policies {
            check_references(p, &definitions, &groups)
                .map_err(|e| e.within(&format!("policies[id={}]", p.id.0)))?;
        }
        let index = Index::build(&policies);
        Ok(PolicySet {
            internal_domains: InternalDomains::new(config.internal_domains),
            directory,
            membership,
            groups,
            group_names,
            definitions,
            policies,
            index,
        })
    }

    /// Checks that a policy's definition and groups exist in this snapshot
    /// (for an API that validates one policy before storing it).
    ///
    /// # Errors
    /// [`Invalid`] naming `definition_id`, `from.group_id` or `to.group_id`.
    pub fn check_policy_references(&self, policy: &Policy) -> Result<(), Invalid> {
        check_references(policy, &self.definitions, &self.groups)
    }

    /// The internal domains.
    pub fn internal_domains(&self) -> &InternalDomains {
        &self.internal_domains
    }

    /// Whether the address is internal.
    pub fn is_internal(&self, address: &EmailAddress) -> bool {
        self.internal_domains.is_internal(address)
    }

    /// The policies, ordered by id.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The policy with this id.
    pub fn policy(&self, id: crate::PolicyId) -> Option<&Policy> {
        self.policies
            .binary_search_by_key(&id, |p| p.id)
            .ok()
            .map(|i| &self.policies[i])
    }

    /// A profile group's name.
    pub fn group_name(&self, id: GroupId) -> Option<&str> {
        self.group_names.get(&id).map(String::as_str)
    }

    pub fn definition(&self, id: DefinitionId) -> Option<&Definition> {
        self.definitions.get(&id)
    }

    /// Every definition, by id.
    pub fn definitions(&self) -> impl Iterator<Item = &Definition> {
        self.definitions.values()
    }

    /// The definition a sender names in `X-Sealpost-Secure` (names compare
    /// without case and surrounding blanks).
    pub fn definition_named(&self, name: &str) -> Option<&Definition> {
        let name = name.trim();
        self.definitions
            .values()
            .find(|d| d.name().eq_ignore_ascii_case(name))
    }

    /// The undeletable default definition (absent only in a snapshot built
    /// without the store, e.g. [`PolicySet::with_internal_domains`]).
    pub fn default_definition(&self) -> Option<&Definition> {
        self.definitions.values().find(|d| d.is_default)
    }

    /// Every directory user, in no particular order.
    pub fn users(&self) -> impl Iterator<Item = &DirectoryUser> {
        self.directory.values()
    }

    /// The directory entry of an address, if any.
    pub fn user(&self, address: &EmailAddress) -> Option<&DirectoryUser> {
        self.directory.get(&address.match_key())
    }
}

fn check_references(
    p: &Policy,
    definitions: &BTreeMap<DefinitionId, Definition>,
    groups: &BTreeSet<GroupId>,
) -> Result<(), Invalid> {
    if let Action::ApplyDefinition(d) = p.action
        && !definitions.contains_key(&d)
    {
        return Err(Invalid::new(
            "definition_id",
            "unknown_definition",
            format!("Secure Messaging definition {} does not exist", d.0),
        ));
    }
    for (side, party) in [("from", &p.from), ("to", &p.to)] {
        if let Party::Group(g) = party
            && !groups.contains(g)
        {
            return Err(Invalid::new(
                format!("{side}.group_id"),
                "unknown_group",
                format!("profile group {} does not exist", g.0),
            ));
        }
    }
    Ok(())
}

/// Policies filed by one side's condition. Values are positions in
/// [`PolicySet::policies`].
#[derive(Debug, Clone, Default)]
pub(crate) struct SideIndex {
    address: HashMap<String, Vec<u32>>,
    domain: HashMap<String, Vec<u32>>,
    domain_tree: HashMap<String, Vec<u32>>,
    group: HashMap<GroupId, Vec<u32>>,
    /// (attribute name, lower-cased value).
    attribute: HashMap<(String, String), Vec<u32>>,
}

impl SideIndex {
    /// The list policies selecting `party` are filed in, or `None` when
    /// the party is broad (everyone, internal, external) and cannot be
    /// filed.
    fn list(&mut self, party: &Party) -> Option<&mut Vec<u32>> {
        Some(match party {
            Party::Everyone | Party::Internal | Party::External => return None,
            Party::Address { key, .. } => self.address.entry(key.clone()).or_default(),
            Party::Domain(d) if d.covers_subdomains() => self
                .domain_tree
                .entry(d.domain().as_str().to_owned())
                .or_default(),
            Party::Domain(d) => self
                .domain
                .entry(d.domain().as_str().to_owned())
                .or_default(),
            Party::Group(g) => self.group.entry(*g).or_default(),
            Party::Attribute { name, value } => self
                .attribute
                .entry((name.clone(), value.to_ascii_lowercase()))
                .or_default(),
        })
    }

    /// How many policies the list for `party` holds; `None` for a broad
    /// party.
    fn len(&self, party: &Party) -> Option<usize> {
        let list = match party {
            Party::Everyone | Party::Internal | Party::External => return None,
            Party::Address { key, .. } => self.address.get(key),
            Party::Domain(d) if d.covers_subdomains() => self.domain_tree.get(d.domain().as_str()),
            Party::Domain(d) => self.domain.get(d.domain().as_str()),
            Party::Group(g) => self.group.get(g),
            Party::Attribute { name, value } => self
                .attribute
                .get(&(name.clone(), value.to_ascii_lowercase())),
        };
        Some(list.map_or(0, Vec::len))
    }

    /// Every list, for sorting once filled.
    fn lists_mut(&mut self) -> impl Iterator<Item = &mut Vec<u32>> {
        self.address
            .values_mut()
            .chain(self.domain.values_mut())
            .chain(self.domain_tree.values_mut())
            .chain(self.group.values_mut())
            .chain(self.attribute.values_mut())
    }

    /// The lists of every policy filed under something `who` is, each
    /// ordered best first.
    pub(crate) fn collect<'s>(&'s self, who: &Subject<'_>, out: &mut Vec<&'s [u32]>) {
        if let Some(l) = self.address.get(&who.key) {
            out.push(l);
        }
        if let Some(l) = self.domain.get(who.domain.as_str()) {
            out.push(l);
        }
        if !self.domain_tree.is_empty() {
            for suffix in domain_suffixes(&who.domain) {
                if let Some(l) = self.domain_tree.get(suffix) {
                    out.push(l);
                }
            }
        }
        if !self.group.is_empty() {
            for g in &who.groups {
                if let Some(l) = self.group.get(g) {
                    out.push(l);
                }
            }
        }
        if let (false, Some(user)) = (self.attribute.is_empty(), who.user) {
            for (name, value) in &user.attributes {
                if let Some(l) = self
                    .attribute
                    .get(&(name.clone(), value.to_ascii_lowercase()))
                {
                    out.push(l);
                }
            }
        }
    }
}

/// Where each policy is filed; see the module documentation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    pub(crate) to: SideIndex,
    pub(crate) from: SideIndex,
    pub(crate) broad: Vec<u32>,
}

impl Index {
    fn build(policies: &[Policy]) -> Self {
        let mut index = Index::default();
        for (pos, p) in policies.iter().enumerate() {
            if !p.enabled {
                continue;
            }
            let pos = pos as u32;
            let to_len = index.to.len(&p.to);
            let from_len = index.from.len(&p.from);
            let list = match (to_len, from_len) {
                (Some(t), Some(f)) if f < t => index.from.list(&p.from),
                (Some(_), _) => index.to.list(&p.to),
                (None, Some(_)) => index.from.list(&p.from),
                (None, None) => None,
            };
            list.unwrap_or(&mut index.broad).push(pos);
        }
        // Best first, so a decision stops at a list's first match.
        let best_first = |l: &mut Vec<u32>| {
            l.sort_by_key(|pos| std::cmp::Reverse(rank(&policies[*pos as usize])));
        };
        index.to.lists_mut().for_each(best_first);
        index.from.lists_mut().for_each(best_first);
        best_first(&mut index.broad);
        index
    }
}

/// One address, with everything conditions look at worked out once.
#[derive(Debug)]
pub(crate) struct Subject<'a> {
    pub key: String,
    /// ASCII, lower-case.
    pub domain: String,
    pub internal: bool,
    pub groups: Vec<GroupId>,
    pub user: Option<&'a DirectoryUser>,
}

impl<'a> Subject<'a> {
    pub(crate) fn new(set: &'a PolicySet, address: &EmailAddress) -> Self {
        let key = address.match_key();
        let domain = ascii_domain(address.domain_str()).into_owned();
        let mut groups = Vec::new();
        set.membership.groups_of(&key, &domain, &mut groups);
        let user = if set.directory.is_empty() {
            None
        } else {
            set.directory.get(&key)
        };
        Subject {
            internal: set.internal_domains.contains_domain(&domain),
            key,
            domain,
            groups,
            user,
        }
    }

    /// Whether this address satisfies `party`.
    pub(crate) fn is(&self, party: &Party) -> bool {
        match party {
            Party::Everyone => true,
            Party::Internal => self.internal,
            Party::External => !self.internal,
            Party::Domain(d) => d.matches(&self.domain),
            Party::Group(g) => self.groups.contains(g),
            Party::Attribute { name, value } => {
                self.user.is_some_and(|u| u.has_attribute(name, value))
            }
            Party::Address { key, .. } => *key == self.key,
        }
    }
}

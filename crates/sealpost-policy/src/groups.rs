//! Profile groups: named sets of addresses and domains, which may contain
//! other groups.
//!
//! A group's members are its own addresses and domains plus those of every
//! group it contains, at any depth. Containment must not loop: a cycle is
//! refused, and the error names it (`Legal → Partners → Legal`).
//! [`Membership`] flattens all groups once, when a policy snapshot is built,
//! into an index from address and domain to the groups that hold them, so a
//! decision never walks the group graph.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{
    address::{EmailAddress, ascii_domain},
    domains::DomainPattern,
    invalid::Invalid,
};

/// Identifies a stored group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct GroupId(pub i64);

/// Longest group name, in characters.
const MAX_NAME: usize = 100;

/// A group as submitted and as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupDraft {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Member addresses.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Member domains; `*.example.com` covers subdomains.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Ids of member groups.
    #[serde(default)]
    pub groups: Vec<GroupId>,
}

/// A validated group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: GroupId,
    pub name: String,
    pub description: String,
    pub addresses: Vec<EmailAddress>,
    pub domains: Vec<DomainPattern>,
    pub groups: Vec<GroupId>,
}

impl Group {
    /// Validates a submitted group (its member groups are checked when the
    /// snapshot is built, see [`Membership::build`]).
    ///
    /// # Errors
    /// [`Invalid`] naming the field at fault.
    pub fn from_draft(id: GroupId, draft: &GroupDraft) -> Result<Self, Invalid> {
        let name = draft.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            return Err(Invalid::new(
                "name",
                "invalid_name",
                format!("a group needs a name of 1 to {MAX_NAME} characters"),
            ));
        }
        let addresses = draft
            .addresses
            .iter()
            .enumerate()
            .map(|(i, a)| {
                EmailAddress::parse(a.trim()).map_err(|e| {
                    Invalid::new(
                        format!("addresses[{i}]"),
                        "invalid_address",
                        format!("{a:?} is not a valid email address: {e}"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let domains = draft
            .domains
            .iter()
            .enumerate()
            .map(|(i, d)| {
                DomainPattern::parse(d).map_err(|e| {
                    Invalid::new(
                        format!("domains[{i}]"),
                        "invalid_domain",
                        format!("{d:?} is not a valid domain or *.domain pattern: {e}"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        if let Some(i) = draft.groups.iter().position(|g| *g == id) {
            return Err(Invalid::new(
                format!("groups[{i}]"),
                "group_cycle",
                format!("group {name:?} cannot contain itself"),
            ));
        }
        Ok(Group {
            id,
            name: name.to_owned(),
            description: draft.description.trim().to_owned(),
            addresses,
            domains,
            groups: draft.groups.clone(),
        })
    }

    /// The group as the API shows it.
    pub fn to_draft(&self) -> GroupDraft {
        GroupDraft {
            name: self.name.clone(),
            description: self.description.clone(),
            addresses: self.addresses.iter().map(|a| a.to_string()).collect(),
            domains: self.domains.iter().map(|d| d.to_string()).collect(),
            groups: self.groups.clone(),
        }
    }
}

/// Every group's flattened membership, indexed by member.
#[derive(Debug, Clone, Default)]
pub struct Membership {
    /// Address match key → groups holding it (directly or through a
    /// contained group).
    by_address: HashMap<String, Vec<GroupId>>,
    /// Exact domain (ASCII) → groups.
    by_domain: HashMap<String, Vec<GroupId>>,
    /// Domain of a `*.` pattern (ASCII) → groups; matches that domain and
    /// every subdomain.
    by_domain_tree: HashMap<String, Vec<GroupId>>,
}

impl Membership {
    /// Checks the groups (unknown member groups, cycles) and flattens them.
    ///
    /// # Errors
    /// [`Invalid`] naming the group, and for a cycle the whole loop.
    pub fn build(groups: &[Group]) -> Result<Self, Invalid> {
        let by_id: BTreeMap<GroupId, &Group> = groups.iter().map(|g| (g.id, g)).collect();
        for g in groups {
            for (i, member) in g.groups.iter().enumerate() {
                if !by_id.contains_key(member) {
                    return Err(Invalid::new(
                        format!("groups[{i}]"),
                        "unknown_group",
                        format!(
                            "group {:?} contains group {} which does not exist",
                            g.name, member.0
                        ),
                    ));
                }
            }
        }
        if let Some(cycle) = find_cycle(&by_id) {
            let names: Vec<&str> = cycle.iter().map(|id| by_id[id].name.as_str()).collect();
            return Err(Invalid::new(
                "groups",
                "group_cycle",
                format!("groups contain each other in a loop: {}", names.join(" → ")),
            ));
        }
        // ancestors[d] = every group whose members include d's (d itself too).
        let mut parents: HashMap<GroupId, Vec<GroupId>> = HashMap::new();
        for g in groups {
            for member in &g.groups {
                parents.entry(*member).or_default().push(g.id);
            }
        }
        let mut membership = Membership::default();
        for g in groups {
            let mut ancestors = vec![g.id];
            let mut seen: HashSet<GroupId> = HashSet::from([g.id]);
            let mut i = 0;
            // Bounded: each group enters `ancestors` at most once.
            while i < ancestors.len() {
                for p in parents.get(&ancestors[i]).into_iter().flatten() {
                    if seen.insert(*p) {
                        ancestors.push(*p);
                    }
                }
                i += 1;
            }
            for a in &g.addresses {
                extend_unique(
                    membership.by_address.entry(a.match_key()).or_default(),
                    &ancestors,
                );
            }
            for d in &g.domains {
                let map = if d.covers_subdomains() {
                    &mut membership.by_domain_tree
                } else {
                    &mut membership.by_domain
                };
                extend_unique(
                    map.entry(d.domain().as_str().to_owned()).or_default(),
                    &ancestors,
                );
            }
        }
        Ok(membership)
    }

    /// Every group `address` belongs to (in no particular order, each once
    /// per way it belongs). `key` is the address's match key.
    pub fn groups_of(&self, key: &str, domain: &str, out: &mut Vec<GroupId>) {
        if let Some(g) = self.by_address.get(key) {
            out.extend_from_slice(g);
        }
        let domain = ascii_domain(domain);
        if let Some(g) = self.by_domain.get(domain.as_ref()) {
            out.extend_from_slice(g);
        }
        for suffix in domain_suffixes(&domain) {
            if let Some(g) = self.by_domain_tree.get(suffix) {
                out.extend_from_slice(g);
            }
        }
    }

    /// Whether the address is a member of `group`.
    pub fn contains(&self, group: GroupId, key: &str, domain: &str) -> bool {
        let mut found = Vec::new();
        self.groups_of(key, domain, &mut found);
        found.contains(&group)
    }
}

fn extend_unique(list: &mut Vec<GroupId>, ids: &[GroupId]) {
    for id in ids {
        if !list.contains(id) {
            list.push(*id);
        }
    }
}

/// `a.b.example` → `a.b.example`, `b.example`, `example`.
pub(crate) fn domain_suffixes(domain: &str) -> impl Iterator<Item = &str> {
    std::iter::once(domain).chain(
        domain
            .char_indices()
            .filter(|(_, c)| *c == '.')
            .map(move |(i, _)| &domain[i + 1..]),
    )
}

/// A containment loop, as the ids along it with the first repeated at the
/// end, or `None`.
fn find_cycle(by_id: &BTreeMap<GroupId, &Group>) -> Option<Vec<GroupId>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unseen,
        OnPath,
        Done,
    }
    let mut marks: HashMap<GroupId, Mark> = by_id.keys().map(|id| (*id, Mark::Unseen)).collect();
    for start in by_id.keys() {
        if marks[start] != Mark::Unseen {
            continue;
        }
        // Iterative depth-first search; `path` holds (group, next child).
        let mut path: Vec<(GroupId, usize)> = vec![(*start, 0)];
        marks.insert(*start, Mark::OnPath);
        while let Some((id, child)) = path.last_mut() {
            let children = &by_id[id].groups;
            if *child < children.len() {
                let next = children[*child];
                *child += 1;
                match marks[&next] {
                    Mark::OnPath => {
                        let from = path.iter().position(|(g, _)| *g == next).unwrap_or(0);
                        let mut cycle: Vec<GroupId> =
                            path[from..].iter().map(|(g, _)| *g).collect();
                        cycle.push(next);
                        return Some(cycle);
                    }
                    Mark::Unseen => {
                        marks.insert(next, Mark::OnPath);
                        path.push((next, 0));
                    }
                    Mark::Done => {}
                }
            } else {
                marks.insert(*id, Mark::Done);
                path.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: i64, name: &str, addresses: &[&str], domains: &[&str], groups: &[i64]) -> Group {
        Group::from_draft(
            GroupId(id),
            &GroupDraft {
                name: name.into(),
                description: String::new(),
                addresses: addresses.iter().map(|s| s.to_string()).collect(),
                domains: domains.iter().map(|s| s.to_string()).collect(),
                groups: groups.iter().map(|g| GroupId(*g)).collect(),
            },
        )
        .unwrap()
    }

    fn key(a: &str) -> (String, String) {
        let a = EmailAddress::parse(a).unwrap();
        (a.match_key(), a.domain_str().to_owned())
    }

    #[test]
    fn nested_groups_hold_their_members_members() {
        let m = Membership::build(&[
            group(1, "Outer", &[], &[], &[2]),
            group(
                2,
                "Inner",
                &["Bob@Partner.example"],
                &["*.law.example"],
                &[3],
            ),
            group(3, "Deepest", &["carol@x.example"], &[], &[]),
        ])
        .unwrap();
        let (k, d) = key("bob@partner.example");
        assert!(m.contains(GroupId(1), &k, &d));
        assert!(m.contains(GroupId(2), &k, &d));
        assert!(!m.contains(GroupId(3), &k, &d));
        let (k, d) = key("anyone@eu.law.example");
        assert!(m.contains(GroupId(1), &k, &d));
        let (k, d) = key("carol@x.example");
        assert!(m.contains(GroupId(1), &k, &d) && m.contains(GroupId(3), &k, &d));
        let (k, d) = key("dave@x.example");
        assert!(!m.contains(GroupId(3), &k, &d));
    }

    #[test]
    fn cycles_are_refused_with_the_loop_named() {
        let e = Membership::build(&[
            group(1, "Legal", &[], &[], &[2]),
            group(2, "Partners", &[], &[], &[3]),
            group(3, "Vendors", &[], &[], &[1]),
        ])
        .unwrap_err();
        assert_eq!(e.code, "group_cycle");
        assert!(
            e.message.contains("Legal → Partners → Vendors → Legal"),
            "{}",
            e.message
        );
        let e = Group::from_draft(
            GroupId(4),
            &GroupDraft {
                name: "Self".into(),
                description: String::new(),
                addresses: vec![],
                domains: vec![],
                groups: vec![GroupId(4)],
            },
        )
        .unwrap_err();
        assert_eq!(e.code, "group_cycle");
    }

    #[test]
    fn unknown_member_group_is_refused() {
        let e = Membership::build(&[group(1, "A", &[], &[], &[9])]).unwrap_err();
        assert_eq!(e.code, "unknown_group");
    }
}

//! A small organisation to decide against, shared by the table and property
//! tests.

#![allow(dead_code)]

use std::{net::IpAddr, time::SystemTime};

use sealpost_policy::{
    Decision, DecisionInput, Definition, DefinitionDraft, DefinitionId, DirectoryUser,
    DomainPattern, EmailAddress, Group, GroupDraft, GroupId, Policy, PolicyConfig, PolicyDraft,
    PolicyId, PolicySet, UserDraft,
};

pub const INTERNAL: &[&str] = &["corp.example", "*.corp-group.example"];

/// Groups: 1 Partners (an address, a `*.` domain, and group 2);
/// 2 Vendors (an address and an exact domain); 3 Execs (two internal
/// addresses).
pub fn groups() -> Vec<Group> {
    let g = |id: i64, name: &str, addresses: &[&str], domains: &[&str], groups: &[i64]| {
        Group::from_draft(
            GroupId(id),
            &GroupDraft {
                name: name.into(),
                description: String::new(),
                addresses: addresses.iter().map(|s| s.to_string()).collect(),
                domains: domains.iter().map(|s| s.to_string()).collect(),
                groups: groups.iter().map(|i| GroupId(*i)).collect(),
            },
        )
        .unwrap()
    };
    vec![
        g(
            1,
            "Partners",
            &["p1@partner.example"],
            &["*.law.example"],
            &[2],
        ),
        g(
            2,
            "Vendors",
            &["v@vendor.example"],
            &["supply.example"],
            &[],
        ),
        g(
            3,
            "Execs",
            &["ceo@corp.example", "alice@corp.example"],
            &[],
            &[],
        ),
    ]
}

pub fn users() -> Vec<DirectoryUser> {
    let u = |address: &str, attrs: &[(&str, &str)]| {
        DirectoryUser::from_draft(&UserDraft {
            address: address.into(),
            display_name: String::new(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
        .unwrap()
    };
    vec![
        u("alice@corp.example", &[("department", "Legal")]),
        u("bob@corp.example", &[("department", "Sales")]),
        u(
            "carol@eu.corp-group.example",
            &[("Department", "Legal"), ("country", "DE")],
        ),
    ]
}

pub fn definitions() -> Vec<Definition> {
    let mut legal = DefinitionDraft::default_definition();
    legal.name = "Legal".into();
    vec![
        Definition::from_draft(
            DefinitionId(1),
            true,
            &DefinitionDraft::default_definition(),
            3650,
        )
        .unwrap(),
        Definition::from_draft(DefinitionId(2), false, &legal, 3650).unwrap(),
    ]
}

/// A policy from its JSON draft.
pub fn policy(id: i64, json: &str) -> Policy {
    let draft: PolicyDraft =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("policy {id}: {e}: {json}"));
    Policy::from_draft(PolicyId(id), &draft).unwrap_or_else(|e| panic!("policy {id}: {e}"))
}

pub fn set(policies: Vec<Policy>) -> PolicySet {
    PolicySet::compile(PolicyConfig {
        internal_domains: INTERNAL
            .iter()
            .map(|d| DomainPattern::parse(d).unwrap())
            .collect(),
        users: users(),
        groups: groups(),
        definitions: definitions(),
        policies,
    })
    .unwrap()
}

pub fn addr(a: &str) -> EmailAddress {
    EmailAddress::parse(a).unwrap()
}

pub fn time(rfc3339: &str) -> SystemTime {
    SystemTime::from(
        time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
            .unwrap(),
    )
}

/// One message's view of one recipient.
#[derive(Debug, Clone)]
pub struct Input {
    pub from: Option<EmailAddress>,
    pub header_from: Option<EmailAddress>,
    pub to: EmailAddress,
    pub ip: IpAddr,
    pub at: SystemTime,
}

impl Input {
    pub fn as_input(&self) -> DecisionInput<'_> {
        DecisionInput {
            envelope_from: self.from.as_ref(),
            header_from: self.header_from.as_ref(),
            recipient: &self.to,
            client_ip: self.ip,
            now: self.at,
        }
    }
}

/// Decides with the index, by scanning, and through `explain`, and checks
/// all three agree before returning the decision.
pub fn decide_all_ways(set: &PolicySet, input: &Input) -> Decision {
    let i = input.as_input();
    let fast = sealpost_policy::decide(set, &i);
    let scan = sealpost_policy::decide_by_scan(set, &i);
    let explained = sealpost_policy::explain(set, &i);
    assert_eq!(fast, scan, "index and scan disagree");
    assert_eq!(explained.winner, fast.policy, "explain and decide disagree");
    fast
}

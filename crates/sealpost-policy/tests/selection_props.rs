//! Properties of policy selection over random policy sets and messages.

mod support;

use proptest::prelude::*;
use sealpost_policy::{
    AddressBasis, DefinitionId, Party, Policy, PolicyId, Route, decide, explain,
};
use support::*;

/// Addresses random messages and conditions draw from: internal and
/// external, in and out of groups and the directory.
const ADDRESSES: &[&str] = &[
    "alice@corp.example",
    "bob@corp.example",
    "ceo@corp.example",
    "carol@eu.corp-group.example",
    "x@ext.example",
    "p1@partner.example",
    "v@vendor.example",
    "y@firm.law.example",
    "z@supply.example",
    "q@sub.ext.example",
];
const DOMAINS: &[&str] = &[
    "corp.example",
    "ext.example",
    "*.ext.example",
    "*.law.example",
    "partner.example",
    "*.corp-group.example",
];
const IPS: &[&str] = &["192.0.2.1", "10.1.2.3", "2001:db8::7", "198.51.100.7"];
const RANGES: &[&str] = &[
    "192.0.2.0/24",
    "10.0.0.0/8",
    "2001:db8::/32",
    "203.0.113.0/24",
];
const TIMES: &[&str] = &[
    "2025-01-01T00:00:00Z",
    "2026-06-01T00:00:00Z",
    "2027-01-01T00:00:00Z",
];

fn party_json() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#"{"kind": "everyone"}"#.to_owned()),
        Just(r#"{"kind": "internal"}"#.to_owned()),
        Just(r#"{"kind": "external"}"#.to_owned()),
        prop::sample::select(DOMAINS)
            .prop_map(|d| format!(r#"{{"kind": "domain", "value": "{d}"}}"#)),
        (1i64..=3).prop_map(|g| format!(r#"{{"kind": "group", "group_id": {g}}}"#)),
        prop::sample::select(&["legal", "sales", "Legal"][..]).prop_map(|v| format!(
            r#"{{"kind": "attribute", "attribute": "department", "value": "{v}"}}"#
        )),
        prop::sample::select(ADDRESSES)
            .prop_map(|a| format!(r#"{{"kind": "address", "value": "{a}"}}"#)),
    ]
}

prop_compose! {
    fn policy_json()(
        from in party_json(),
        basis in prop::sample::select(&["envelope", "header", "both"][..]),
        to in party_json(),
        action in 0u8..4,
        enabled in prop::bool::weighted(0.85),
        dated in 0u8..3,
        override_ in prop::bool::weighted(0.2),
        ranges in prop::collection::vec(prop::sample::select(RANGES), 0..2),
    ) -> String {
        let from = from.replacen('{', &format!(r#"{{"based_on": "{basis}", "#), 1);
        let action = match action {
            0 => r#""action": "no_action""#.to_owned(),
            n => format!(r#""action": "apply_definition", "definition_id": {}"#, 1 + n % 2),
        };
        let dates = match dated {
            0 => String::new(),
            1 => r#", "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-12-31T00:00:00Z""#.to_owned(),
            _ => r#", "starts_at": "2026-03-01T00:00:00Z""#.to_owned(),
        };
        let ranges: Vec<String> = ranges.iter().map(|r| format!("\"{r}\"")).collect();
        format!(
            r#"{{ {action}, "from": {from}, "to": {to}, "enabled": {enabled}, "override": {override_},
                "source_ips": [{}] {dates} }}"#,
            ranges.join(", ")
        )
    }
}

prop_compose! {
    fn policies()(jsons in prop::collection::vec(policy_json(), 0..24)) -> Vec<Policy> {
        jsons.iter().enumerate().map(|(i, j)| policy(i as i64 + 1, j)).collect()
    }
}

prop_compose! {
    fn message()(
        from in prop::option::weighted(0.95, prop::sample::select(ADDRESSES)),
        header in prop::option::of(prop::sample::select(ADDRESSES)),
        to in prop::sample::select(ADDRESSES),
        ip in prop::sample::select(IPS),
        at in prop::sample::select(TIMES),
    ) -> Input {
        Input {
            from: from.map(addr),
            header_from: header.map(addr),
            to: addr(to),
            ip: ip.parse().unwrap(),
            at: time(at),
        }
    }
}

prop_compose! {
    /// Many policies over few parties: long lists in the index, each read
    /// best first and left at its first match (issue 17, item 8).
    fn many_policies()(jsons in prop::collection::vec(policy_json(), 40..160)) -> Vec<Policy> {
        jsons.iter().enumerate().map(|(i, j)| policy(i as i64 + 1, j)).collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// With long lists too, the index, the full scan and explain agree.
    #[test]
    fn long_lists_agree_with_the_scan(policies in many_policies(), m in message()) {
        let set = set(policies);
        decide_all_ways(&set, &m);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The index, the full scan and explain agree.
    #[test]
    fn explain_winner_equals_decide(policies in policies(), m in message()) {
        let set = set(policies);
        decide_all_ways(&set, &m);
    }

    /// Storage order does not matter.
    #[test]
    fn order_of_policies_does_not_matter(
        policies in policies(),
        m in message(),
        seed in any::<u64>(),
    ) {
        let mut shuffled = policies.clone();
        // A deterministic shuffle from the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let a = decide(&set(policies), &m.as_input());
        let b = decide(&set(shuffled), &m.as_input());
        prop_assert_eq!(a, b);
    }

    /// When any matching policy has override, the winner has override.
    #[test]
    fn an_override_candidate_always_wins(policies in policies(), m in message()) {
        let set = set(policies);
        let e = explain(&set, &m.as_input());
        let any_override = e.verdicts.iter().filter(|v| v.matched).any(|v| {
            set.policies().iter().any(|p| p.id == v.policy && p.override_)
        });
        if any_override && e.winner.is_some() {
            let w = set.policies().iter().find(|p| Some(p.id) == e.winner).unwrap();
            prop_assert!(w.override_);
            prop_assert!(e.override_applied);
        }
    }

    /// Internal recipients are never routed to secure delivery.
    #[test]
    fn internal_recipients_never_get_secure(policies in policies(), m in message()) {
        let set = set(policies);
        let d = decide(&set, &m.as_input());
        if set.is_internal(&m.to) {
            prop_assert_eq!(d.route, Route::Relay);
            prop_assert_eq!(d.policy, None);
        }
    }

    /// Making the winner's recipient condition more specific (naming the
    /// recipient's own address) never lets a policy it beat win instead.
    #[test]
    fn raising_specificity_never_loses(policies in policies(), m in message()) {
        let set0 = set(policies.clone());
        let e = explain(&set0, &m.as_input());
        if let (Some(winner), true) = (e.winner, e.ranking.len() > 1) {
            let mut raised = policies.clone();
            let w = raised.iter_mut().find(|p| p.id == winner).unwrap();
            w.to = Party::Address { key: m.to.match_key(), address: m.to.clone() };
            let d = decide(&set(raised), &m.as_input());
            prop_assert_eq!(d.policy, Some(winner));
        }
    }

    /// Raising the sender side too: name the envelope sender itself.
    #[test]
    fn raising_sender_specificity_never_loses(policies in policies(), m in message()) {
        let set0 = set(policies.clone());
        let e = explain(&set0, &m.as_input());
        if let (Some(winner), Some(from)) = (e.winner, m.from.as_ref()) {
            let mut raised = policies.clone();
            let w = raised.iter_mut().find(|p| p.id == winner).unwrap();
            w.from = Party::Address { key: from.match_key(), address: from.clone() };
            w.from_basis = AddressBasis::Envelope;
            let d = decide(&set(raised), &m.as_input());
            prop_assert_eq!(d.policy, Some(winner));
        }
    }
}

#[test]
fn a_secure_decision_names_an_existing_definition() {
    let set = set(vec![policy(
        1,
        r#"{"action": "apply_definition", "definition_id": 2, "from": {"kind": "everyone"}, "to": {"kind": "everyone"}}"#,
    )]);
    let d = decide(
        &set,
        &Input {
            from: Some(addr("alice@corp.example")),
            header_from: None,
            to: addr("x@ext.example"),
            ip: "192.0.2.1".parse().unwrap(),
            at: time("2026-01-01T00:00:00Z"),
        }
        .as_input(),
    );
    assert_eq!(
        d.route,
        Route::Secure {
            definition: DefinitionId(2)
        }
    );
    assert_eq!(d.policy, Some(PolicyId(1)));
    assert!(set.definition(DefinitionId(2)).is_some());
}

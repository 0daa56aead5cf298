//! Thousands of policies aimed at one profile group (issue 17, item 8):
//! 5,000 policies whose Emails To is the same 10,000-member "Clients"
//! group, told apart by their senders (one internal user, a cost centre, a
//! department, a division's domain, or any internal sender from a branch
//! network or within dates), with exclusions, overrides and disabled ones
//! mixed in. Every message goes to a member of that group, so every
//! decision meets all 5,000 through the group.
//!
//! `decide/one_group/indexed` must stay within 2 µs per recipient;
//! `decide/one_group/scan` is the naive baseline. As in the main
//! benchmark, every message (and a sweep) is decided both ways first and
//! must agree.

use std::{hint::black_box, net::IpAddr, time::Duration, time::SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput};
use sealpost_policy::{
    DecisionInput, Definition, DefinitionDraft, DefinitionId, DirectoryUser, DomainPattern,
    EmailAddress, Group, GroupDraft, GroupId, Policy, PolicyConfig, PolicyDraft, PolicyId,
    PolicySet, UserDraft, decide, decide_by_scan,
};

/// Policies, all aimed at [`CLIENTS`].
const POLICIES: usize = 5_000;
/// Members of the group.
const MEMBERS: usize = 10_000;
/// Internal users in the directory.
const USERS: usize = 5_000;
const CLIENTS: GroupId = GroupId(1);

fn addr(a: &str) -> EmailAddress {
    EmailAddress::parse(a).unwrap_or_else(|e| panic!("{a}: {e}"))
}

fn member(k: usize) -> String {
    format!("client{k}@firm{}.example", k % 211)
}

fn user(k: usize) -> String {
    format!("u{k}@corp.example")
}

fn department(k: usize) -> &'static str {
    [
        "Legal",
        "Sales",
        "Finance",
        "Engineering",
        "HR",
        "Research",
        "Support",
    ][k % 7]
}

fn cost_centre(k: usize) -> String {
    format!("cc{}", k % 1_000)
}

fn organisation() -> PolicySet {
    let users = (0..USERS)
        .map(|k| {
            DirectoryUser::from_draft(&UserDraft {
                address: user(k),
                display_name: format!("User {k}"),
                attributes: [
                    ("department".to_owned(), department(k).to_owned()),
                    ("cost_center".to_owned(), cost_centre(k)),
                ]
                .into(),
            })
            .unwrap()
        })
        .collect();
    let group = Group::from_draft(
        CLIENTS,
        &GroupDraft {
            name: "Clients".into(),
            description: String::new(),
            addresses: (0..MEMBERS).map(member).collect(),
            domains: vec![],
            groups: vec![],
        },
    )
    .unwrap();
    let mut legal = DefinitionDraft::default_definition();
    legal.name = "Legal".into();
    let definitions = vec![
        Definition::from_draft(
            DefinitionId(1),
            true,
            &DefinitionDraft::default_definition(),
            3650,
        )
        .unwrap(),
        Definition::from_draft(DefinitionId(2), false, &legal, 3650).unwrap(),
    ];
    let policies = (0..POLICIES)
        .map(|i| {
            let json = policy(i);
            let draft: PolicyDraft =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("policy {i}: {e}: {json}"));
            Policy::from_draft(PolicyId(i as i64 + 1), &draft)
                .unwrap_or_else(|e| panic!("policy {i}: {e}: {json}"))
        })
        .collect();
    PolicySet::compile(PolicyConfig {
        internal_domains: ["corp.example", "*.corp-group.example"]
            .iter()
            .map(|d| DomainPattern::parse(d).unwrap())
            .collect(),
        users,
        groups: vec![group],
        definitions,
        policies,
    })
    .unwrap()
}

/// The draft of policy `i`: always to the group; the sender by `i % 10`.
fn policy(i: usize) -> String {
    let from = match i % 10 {
        // 40%: one internal user each.
        0..=3 => format!(r#"{{"kind": "address", "value": "{}"}}"#, user(i)),
        // 20%: a cost centre.
        4 | 5 => format!(
            r#"{{"kind": "attribute", "attribute": "cost_center", "value": "{}"}}"#,
            cost_centre(i / 10)
        ),
        // 10%: a department.
        6 => format!(
            r#"{{"kind": "attribute", "attribute": "department", "value": "{}"}}"#,
            department(i)
        ),
        // 10%: a division's domain.
        7 => format!(
            r#"{{"kind": "domain", "value": "div{}.corp-group.example"}}"#,
            i / 10
        ),
        // 20%: any internal sender, from a branch network or within dates.
        _ => r#"{"kind": "internal"}"#.to_owned(),
    };
    let action = match i % 7 {
        3 => r#""action": "no_action""#.to_owned(),
        k => format!(
            r#""action": "apply_definition", "definition_id": {}"#,
            1 + k % 2
        ),
    };
    let mut extra = String::new();
    if i % 10 >= 8 {
        if i.is_multiple_of(2) {
            extra.push_str(&format!(
                r#", "source_ips": ["10.{}.{}.0/24"]"#,
                (i / 256) % 256,
                i % 256
            ));
        } else {
            // Mostly over, some not yet begun; one in five in force.
            let (starts, ends) = match (i / 10) % 5 {
                0 => ("2026-01-01", "2027-01-01"),
                1 | 2 => ("2025-01-01", "2025-06-01"),
                _ => ("2026-09-01", "2026-12-01"),
            };
            extra.push_str(&format!(
                r#", "starts_at": "{starts}T00:00:00Z", "ends_at": "{ends}T00:00:00Z""#
            ));
        }
    }
    if i % 97 == 11 {
        extra.push_str(r#", "override": true"#);
    }
    if i % 53 == 7 {
        extra.push_str(r#", "enabled": false"#);
    }
    let to = format!(r#"{{"kind": "group", "group_id": {}}}"#, CLIENTS.0);
    format!(r#"{{ {action}, "narrative": "one group {i}", "from": {from}, "to": {to}{extra} }}"#)
}

struct Message {
    from: EmailAddress,
    to: EmailAddress,
    ip: IpAddr,
    at: SystemTime,
}

impl Message {
    fn input(&self) -> DecisionInput<'_> {
        DecisionInput {
            envelope_from: Some(&self.from),
            header_from: None,
            recipient: &self.to,
            client_ip: self.ip,
            now: self.at,
        }
    }
}

fn messages(count: usize) -> Vec<Message> {
    let at = SystemTime::from(
        time::OffsetDateTime::parse(
            "2026-06-01T12:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap(),
    );
    (0..count)
        .map(|k| {
            // Senders: named users, users only an attribute names, division
            // senders and users no policy names; some from a branch network.
            let from = match k % 4 {
                0 => user((k * 37) % USERS),
                1 => user(((k * 13) % USERS) | 1),
                2 => format!("x{k}@div{}.corp-group.example", (k * 7) % 600),
                _ => format!("nobody{k}@corp.example"),
            };
            let ip = if k % 3 == 0 {
                format!("10.{}.{}.9", (k / 256) % 20, k % 256)
            } else {
                "192.0.2.10".to_owned()
            };
            Message {
                from: addr(&from),
                to: addr(&member((k * 7_919) % MEMBERS)),
                ip: ip.parse().unwrap(),
                at,
            }
        })
        .collect()
}

pub(crate) fn bench(c: &mut Criterion) {
    let set = organisation();
    let messages = messages(64);
    let mut by_policy = 0;
    for m in messages.iter().chain(&self::messages(2_000)) {
        let fast = decide(&set, &m.input());
        let scan = decide_by_scan(&set, &m.input());
        assert_eq!(
            fast, scan,
            "one group: index and scan disagree for {} -> {}",
            m.from, m.to
        );
        by_policy += usize::from(fast.policy.is_some());
    }
    eprintln!(
        "one group: {by_policy} of {} messages decided by a policy",
        messages.len() + 2_000
    );
    let len = messages.len();
    let mut group = c.benchmark_group("decide/one_group");
    group.throughput(Throughput::Elements(1));
    group
        .sample_size(100)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    group.bench_function(BenchmarkId::new("indexed", POLICIES), |b| {
        let mut k = 0;
        b.iter(|| {
            k = (k + 1) % len;
            decide(black_box(&set), black_box(&messages[k].input()))
        })
    });
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    group.bench_function(BenchmarkId::new("scan", POLICIES), |b| {
        let mut k = 0;
        b.iter(|| {
            k = (k + 1) % len;
            decide_by_scan(black_box(&set), black_box(&messages[k].input()))
        })
    });
    group.finish();
}

//! SPEC §3 as a table: hand-written cases, each a set of policies, one
//! recipient of one message, and the expected route and deciding policy.
//! Every case is decided with the index, by a full scan and through
//! `explain`, which must all agree.

mod support;

use sealpost_policy::{DefinitionId, PolicyId, Route};
use support::*;

/// A policy applying definition 1 unless `extra` names another action or
/// definition.
fn p(id: i64, from: &str, to: &str, extra: &str) -> sealpost_policy::Policy {
    let action = if extra.contains("\"action\"") {
        ""
    } else if extra.contains("\"definition_id\"") {
        r#""action": "apply_definition","#
    } else {
        r#""action": "apply_definition", "definition_id": 1,"#
    };
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    policy(
        id,
        &format!(r#"{{ {action} "from": {from}, "to": {to} {extra} }}"#),
    )
}

const EVERYONE: &str = r#"{"kind": "everyone"}"#;
const INTERNAL_: &str = r#"{"kind": "internal"}"#;
const EXTERNAL: &str = r#"{"kind": "external"}"#;

fn domain(d: &str) -> String {
    format!(r#"{{"kind": "domain", "value": "{d}"}}"#)
}
fn address(a: &str) -> String {
    format!(r#"{{"kind": "address", "value": "{a}"}}"#)
}
fn group(g: i64) -> String {
    format!(r#"{{"kind": "group", "group_id": {g}}}"#)
}
fn attribute(name: &str, value: &str) -> String {
    format!(r#"{{"kind": "attribute", "attribute": "{name}", "value": "{value}"}}"#)
}
fn header(party: &str, basis: &str) -> String {
    party.replacen('{', &format!(r#"{{"based_on": "{basis}", "#), 1)
}

struct Case {
    name: &'static str,
    policies: Vec<sealpost_policy::Policy>,
    from: Option<&'static str>,
    header_from: Option<&'static str>,
    to: &'static str,
    ip: &'static str,
    at: &'static str,
    /// Expected: `None` relay without policy; `Some((id, secure definition))`.
    expect: Option<(i64, Option<i64>)>,
}

fn case(name: &'static str, policies: Vec<sealpost_policy::Policy>) -> Case {
    Case {
        name,
        policies,
        from: Some("alice@corp.example"),
        header_from: None,
        to: "x@ext.example",
        ip: "192.0.2.1",
        at: "2026-06-01T12:00:00Z",
        expect: None,
    }
}

impl Case {
    fn from(mut self, a: Option<&'static str>) -> Self {
        self.from = a;
        self
    }
    fn header(mut self, a: &'static str) -> Self {
        self.header_from = Some(a);
        self
    }
    fn to(mut self, a: &'static str) -> Self {
        self.to = a;
        self
    }
    fn ip(mut self, ip: &'static str) -> Self {
        self.ip = ip;
        self
    }
    fn at(mut self, at: &'static str) -> Self {
        self.at = at;
        self
    }
    /// Secure under definition `def`, decided by policy `id`.
    fn secure(mut self, id: i64, def: i64) -> Self {
        self.expect = Some((id, Some(def)));
        self
    }
    /// Relayed because *take no action* policy `id` won.
    fn excluded(mut self, id: i64) -> Self {
        self.expect = Some((id, None));
        self
    }
    fn relay(mut self) -> Self {
        self.expect = None;
        self
    }
}

fn cases() -> Vec<Case> {
    let all = || p(1, EVERYONE, EVERYONE, "");
    let range = |s: &str| format!(r#""source_ips": ["{s}"]"#);
    let dated = r#""starts_at": "2026-05-01T00:00:00Z", "ends_at": "2026-07-01T00:00:00Z""#;
    vec![
        case("no policies: relay", vec![]).relay(),
        case("everyone to everyone applies", vec![all()]).secure(1, 1),
        case("internal recipient is never secure", vec![all()])
            .to("bob@corp.example")
            .relay(),
        case("external sender is never secure", vec![all()])
            .from(Some("someone@ext.example"))
            .relay(),
        case("null sender is never secure", vec![all()])
            .from(None)
            .relay(),
        case(
            "sender in internal *.domain is internal",
            vec![p(1, INTERNAL_, EXTERNAL, "")],
        )
        .from(Some("carol@eu.corp-group.example"))
        .secure(1, 1),
        case(
            "Emails From external never matches an internal sender",
            vec![p(1, EXTERNAL, EVERYONE, "")],
        )
        .relay(),
        case(
            "exact recipient domain matches only itself",
            vec![p(1, EVERYONE, &domain("partner.example"), "")],
        )
        .to("x@sub.partner.example")
        .relay(),
        case(
            "*.domain covers the apex",
            vec![p(1, EVERYONE, &domain("*.law.example"), "")],
        )
        .to("x@law.example")
        .secure(1, 1),
        case(
            "*.domain covers deep subdomains",
            vec![p(1, EVERYONE, &domain("*.law.example"), "")],
        )
        .to("x@a.b.law.example")
        .secure(1, 1),
        case(
            "sender domain condition",
            vec![p(1, &domain("corp.example"), EVERYONE, "")],
        )
        .secure(1, 1),
        case(
            "group holds an address",
            vec![p(1, EVERYONE, &group(1), "")],
        )
        .to("p1@partner.example")
        .secure(1, 1),
        case(
            "group holds a *.domain",
            vec![p(1, EVERYONE, &group(1), "")],
        )
        .to("x@firm.law.example")
        .secure(1, 1),
        case(
            "groups in groups: Partners contains Vendors",
            vec![p(1, EVERYONE, &group(1), "")],
        )
        .to("anyone@supply.example")
        .secure(1, 1),
        case(
            "a contained group does not contain its container",
            vec![p(1, EVERYONE, &group(2), "")],
        )
        .to("p1@partner.example")
        .relay(),
        case(
            "sender attribute matches",
            vec![p(1, &attribute("department", "Legal"), EVERYONE, "")],
        )
        .secure(1, 1),
        case(
            "sender attribute does not match another department",
            vec![p(1, &attribute("department", "Legal"), EVERYONE, "")],
        )
        .from(Some("bob@corp.example"))
        .relay(),
        case(
            "attribute name and value ignore case",
            vec![p(1, &attribute("DEPARTMENT", "legal"), EVERYONE, "")],
        )
        .from(Some("carol@eu.corp-group.example"))
        .secure(1, 1),
        case(
            "individual address ignores ASCII case",
            vec![p(1, &address("Alice@Corp.Example"), EVERYONE, "")],
        )
        .from(Some("ALICE@corp.example"))
        .secure(1, 1),
        case(
            "IDN recipient domain matches in either form",
            vec![p(1, EVERYONE, &domain("bücher.example"), "")],
        )
        .to("x@xn--bcher-kva.example")
        .secure(1, 1),
        case(
            "sender specificity: internal (1) beats everyone (0)",
            vec![
                p(1, EVERYONE, EVERYONE, ""),
                p(2, INTERNAL_, EVERYONE, r#""definition_id": 2"#),
            ],
        )
        .secure(2, 2),
        case(
            "recipient specificity is compared before sender specificity",
            vec![
                p(1, &address("alice@corp.example"), EVERYONE, ""),
                p(2, EVERYONE, &domain("ext.example"), r#""definition_id": 2"#),
            ],
        )
        .secure(2, 2),
        case(
            "recipient group (3) beats recipient domain (2)",
            vec![
                p(1, EVERYONE, &domain("*.law.example"), ""),
                p(2, EVERYONE, &group(1), r#""definition_id": 2"#),
            ],
        )
        .to("x@firm.law.example")
        .secure(2, 2),
        case(
            "recipient address (5) beats recipient group (3)",
            vec![
                p(1, EVERYONE, &address("p1@partner.example"), ""),
                p(2, EVERYONE, &group(1), r#""definition_id": 2"#),
            ],
        )
        .to("p1@partner.example")
        .secure(1, 1),
        case(
            "sender attribute (4) beats sender group (3)",
            vec![
                p(1, &group(3), EVERYONE, ""),
                p(
                    2,
                    &attribute("department", "legal"),
                    EVERYONE,
                    r#""definition_id": 2"#,
                ),
            ],
        )
        .secure(2, 2),
        case(
            "tie: a policy with source IP ranges beats one without",
            vec![
                p(1, EVERYONE, EVERYONE, ""),
                p(
                    2,
                    EVERYONE,
                    EVERYONE,
                    &format!(r#""definition_id": 2, {}"#, range("192.0.2.0/24")),
                ),
            ],
        )
        .secure(2, 2),
        case(
            "tie: a dated policy beats an always-on one",
            vec![
                p(1, EVERYONE, EVERYONE, ""),
                p(
                    2,
                    EVERYONE,
                    EVERYONE,
                    &format!(r#""definition_id": 2, {dated}"#),
                ),
            ],
        )
        .secure(2, 2),
        case(
            "tie: the older policy (lower id) wins",
            vec![
                p(7, EVERYONE, EVERYONE, r#""definition_id": 2"#),
                p(3, EVERYONE, EVERYONE, ""),
            ],
        )
        .secure(3, 1),
        case(
            "override beats a more specific policy",
            vec![
                p(
                    1,
                    &address("alice@corp.example"),
                    &address("x@ext.example"),
                    "",
                ),
                p(
                    2,
                    EVERYONE,
                    EVERYONE,
                    r#""definition_id": 2, "override": true"#,
                ),
            ],
        )
        .secure(2, 2),
        case(
            "among override policies the most specific wins",
            vec![
                p(1, EVERYONE, EVERYONE, r#""override": true"#),
                p(
                    2,
                    EVERYONE,
                    &domain("ext.example"),
                    r#""definition_id": 2, "override": true"#,
                ),
                p(
                    3,
                    &address("alice@corp.example"),
                    &address("x@ext.example"),
                    "",
                ),
            ],
        )
        .secure(2, 2),
        case(
            "take no action excludes: relayed, and the policy is named",
            vec![
                p(1, EVERYONE, EVERYONE, ""),
                p(
                    2,
                    EVERYONE,
                    &domain("ext.example"),
                    r#""action": "no_action""#,
                ),
            ],
        )
        .excluded(2),
        case(
            "a disabled policy is ignored",
            vec![
                p(1, EVERYONE, EVERYONE, ""),
                p(
                    2,
                    EVERYONE,
                    &domain("ext.example"),
                    r#""definition_id": 2, "enabled": false"#,
                ),
            ],
        )
        .secure(1, 1),
        case(
            "dates: before the range",
            vec![p(1, EVERYONE, EVERYONE, dated)],
        )
        .at("2026-04-30T23:59:59Z")
        .relay(),
        case(
            "dates: the start is inclusive",
            vec![p(1, EVERYONE, EVERYONE, dated)],
        )
        .at("2026-05-01T00:00:00Z")
        .secure(1, 1),
        case(
            "dates: the end is exclusive",
            vec![p(1, EVERYONE, EVERYONE, dated)],
        )
        .at("2026-07-01T00:00:00Z")
        .relay(),
        case(
            "IPv4 range contains the client",
            vec![p(1, EVERYONE, EVERYONE, &range("10.0.0.0/8"))],
        )
        .ip("10.20.30.40")
        .secure(1, 1),
        case(
            "IPv4 range does not contain the client",
            vec![p(1, EVERYONE, EVERYONE, &range("10.0.0.0/8"))],
        )
        .ip("192.0.2.1")
        .relay(),
        case(
            "IPv4 range matches an IPv4-mapped IPv6 client",
            vec![p(1, EVERYONE, EVERYONE, &range("10.0.0.0/8"))],
        )
        .ip("::ffff:10.0.0.1")
        .secure(1, 1),
        case(
            "IPv6 range",
            vec![p(1, EVERYONE, EVERYONE, &range("2001:db8::/32"))],
        )
        .ip("2001:db8:1::25")
        .secure(1, 1),
        case(
            "a single IPv6 address is a /128",
            vec![p(1, EVERYONE, EVERYONE, &range("2001:db8::25"))],
        )
        .ip("2001:db8::26")
        .relay(),
        case(
            "XFORWARD: the forwarded client address is what ranges see",
            // The content filter on 127.0.0.1 forwarded mail from
            // 198.51.100.7; the SMTP layer passes the forwarded address.
            vec![p(1, EVERYONE, EVERYONE, &range("198.51.100.0/24"))],
        )
        .ip("198.51.100.7")
        .secure(1, 1),
        case(
            "header From basis: the header matches, the envelope does not",
            vec![p(
                1,
                &header(&address("alice@corp.example"), "header"),
                EVERYONE,
                "",
            )],
        )
        .from(Some("bob@corp.example"))
        .header("alice@corp.example")
        .secure(1, 1),
        case(
            "header From basis ignores the envelope",
            vec![p(
                1,
                &header(&address("alice@corp.example"), "header"),
                EVERYONE,
                "",
            )],
        )
        .header("bob@corp.example")
        .relay(),
        case(
            "header From basis without a header From does not match",
            vec![p(1, &header(EVERYONE, "header"), EVERYONE, "")],
        )
        .relay(),
        case(
            "both: either address may match",
            vec![p(
                1,
                &header(&attribute("department", "sales"), "both"),
                EVERYONE,
                "",
            )],
        )
        .header("bob@corp.example")
        .secure(1, 1),
    ]
}

#[test]
fn spec_section_3_table() {
    let cases = cases();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for c in &cases {
        let set = set(c.policies.clone());
        let input = Input {
            from: c.from.map(addr),
            header_from: c.header_from.map(addr),
            to: addr(c.to),
            ip: c.ip.parse().unwrap(),
            at: time(c.at),
        };
        let d = decide_all_ways(&set, &input);
        let got = d.policy.map(|PolicyId(id)| {
            (
                id,
                match d.route {
                    Route::Secure {
                        definition: DefinitionId(def),
                    } => Some(def),
                    Route::Relay => None,
                },
            )
        });
        if d.policy.is_none() {
            assert_eq!(d.route, Route::Relay, "{}", c.name);
        }
        if got != c.expect {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                c.name, c.expect, got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

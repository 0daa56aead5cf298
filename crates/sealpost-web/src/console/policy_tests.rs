//! The policy form against a real database, driven like a browser: lookups
//! that carry the form along, Save and Exit through the policy service,
//! refusals named by field with nothing saved, and the list's actions.

use axum::http::StatusCode;
use sealpost_policy::{PartyKind, PolicyDocument};
use sealpost_store::{AdminStore, ConfigChange, Role, audit::Actor, audit::AuditQuery};

use super::tests::{OWN, World, agent, sign_in, world};
use crate::portal::tests::journeys::{Agent, Page};

const NEW: &str = "/console/policies/secure-messaging/new";

type Fields = Vec<(&'static str, String)>;

/// A new policy's fields as the form sends them.
fn fields(narrative: &str) -> Fields {
    [
        ("narrative", narrative),
        ("action", "apply_definition"),
        ("definition", "1"),
        ("from_kind", "internal"),
        ("from_based_on", "envelope"),
        ("to_kind", "domain"),
        ("to_domain", "partner.example"),
        ("validity", "always"),
        ("enabled", "on"),
        ("source_ips", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

fn with(
    mut f: Vec<(&'static str, String)>,
    key: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    f.retain(|(k, _)| *k != key);
    f.push((key, value.to_owned()));
    f
}

async fn post(
    agent: &mut Agent,
    path: &str,
    csrf: &str,
    step: &str,
    f: &[(&'static str, String)],
) -> Page {
    let mut all: Vec<(&str, &str)> = vec![("csrf", csrf), ("step", step)];
    all.extend(f.iter().map(|(k, v)| (*k, v.as_str())));
    agent.post(path, &all).await
}

async fn policy_admin(w: &World) -> (Agent, String) {
    w.admin("pete", Role::PolicyAdmin, OWN, false).await;
    let mut pete = agent(w);
    assert_eq!(
        sign_in(&mut pete, "pete", OWN).await.status,
        StatusCode::SEE_OTHER
    );
    let csrf = pete.get(NEW).await.csrf();
    (pete, csrf)
}

async fn stored(w: &World) -> PolicyDocument {
    w.store.load_config().await.unwrap()
}

async fn group(w: &World, name: &str) -> i64 {
    w.store
        .change_config(
            ConfigChange::CreateGroup(sealpost_policy::GroupDraft {
                name: name.into(),
                description: "Outside counsel".into(),
                addresses: vec!["counsel@partner.example".into()],
                domains: vec![],
                groups: vec![],
            }),
            Box::new(|doc| doc.compile(&[], 3650)),
            Actor::system("test"),
        )
        .await
        .unwrap()
        .id
        .unwrap()
}

#[tokio::test]
async fn a_policy_is_made_through_lookups_and_saved_once() {
    let w = world().await;
    let gid = group(&w, "Law firms").await;
    let (mut pete, csrf) = policy_admin(&w).await;

    let form = pete.get(NEW).await;
    assert_eq!(form.status, StatusCode::OK);
    for seen in [
        "Policy Narrative",
        "Emails From",
        "Emails To",
        "applies only to messages from <strong>internal</strong>",
        "id=\"bidirectional\" disabled",
        "Not available for Secure Messaging",
        "Always On",
        "Source IP Ranges",
        "Policy Override",
    ] {
        assert!(form.body.contains(seen), "{seen}");
    }

    // Lookup carries what was typed, and searches.
    let typed = with(fields("Contracts to counsel"), "to_kind", "group");
    let picker = post(&mut pete, NEW, &csrf, "lookup:to_group", &typed).await;
    assert_eq!(picker.status, StatusCode::OK);
    assert!(picker.body.contains("Law firms") && picker.body.contains("Outside counsel"));
    assert!(
        picker.body.contains("value=\"Contracts to counsel\""),
        "kept"
    );
    let mut searched = typed.clone();
    searched.push(("q", "nothing like it".into()));
    let none = post(&mut pete, NEW, &csrf, "lookup:to_group", &searched).await;
    assert!(none.body.contains("Nothing found"), "{}", none.body);

    let picked = post(
        &mut pete,
        NEW,
        &csrf,
        &format!("pick:to_group:{gid}"),
        &typed,
    )
    .await;
    assert_eq!(picked.status, StatusCode::OK);
    assert!(
        picked.body.contains(
            "<span id=\"to_group-chosen\" aria-labelledby=\"to_group-label\">Law firms</span>"
        ),
        "{}",
        picked.body
    );
    let defs = post(&mut pete, NEW, &csrf, "lookup:definition", &typed).await;
    assert!(defs.body.contains("pick:definition:1"), "{}", defs.body);

    assert!(
        stored(&w).await.policies.is_empty(),
        "nothing saved by lookups"
    );
    let mut chosen = with(typed, "to_group", &gid.to_string());
    chosen = with(chosen, "override", "on");
    chosen = with(chosen, "source_ips", "10.0.0.0/8\n192.0.2.7");
    let saved = post(&mut pete, NEW, &csrf, "save", &chosen).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let doc = stored(&w).await;
    assert_eq!(doc.policies.len(), 1);
    let p = &doc.policies[0];
    assert!(saved.location().ends_with(&format!("saved={}", p.id.0)));
    assert_eq!(p.policy.narrative, "Contracts to counsel");
    assert_eq!(p.policy.to.kind, PartyKind::Group);
    assert_eq!(p.policy.to.group_id.map(|g| g.0), Some(gid));
    assert!(p.policy.override_ && p.policy.enabled);
    assert_eq!(p.policy.source_ips, ["10.0.0.0/8", "192.0.2.7"]);

    let list = pete.get(saved.location()).await;
    assert!(list.body.contains("is saved"), "{}", list.body);
    assert!(list.body.contains("in profile group Law firms"));

    let audit = w
        .store
        .audit(AuditQuery {
            object_kind: Some("policy".into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].actor.name, "pete");
    assert!(audit[0].change.before.is_none() && audit[0].change.after.is_some());
}

#[tokio::test]
async fn bad_input_is_refused_next_to_its_box_and_nothing_is_saved() {
    let w = world().await;
    let (mut pete, csrf) = policy_admin(&w).await;
    type Case = (&'static str, Fields, &'static str, &'static str);
    let cases: Vec<Case> = vec![
        (
            "inverted dates",
            with(
                with(
                    with(fields("Dates"), "validity", "range"),
                    "starts",
                    "2027-02-10",
                ),
                "ends",
                "2027-02-01",
            ),
            "validity",
            "empty or inverted",
        ),
        (
            "a bad CIDR",
            with(fields("CIDR"), "source_ips", "10.0.0.0/8\n10.1.2.0/33"),
            "source_ips",
            "Line 2: &quot;10.1.2.0&#x2f;33&quot; is not an IP address",
        ),
        (
            "bi-directional forced",
            with(fields("Both ways"), "bidirectional", "on"),
            "bidirectional",
            "cannot be bi-directional",
        ),
        (
            "an unknown definition",
            with(fields("Ghost"), "definition", "999"),
            "definition",
            "999",
        ),
        (
            "an empty narrative",
            fields("   "),
            "narrative",
            "Policy Narrative box",
        ),
        (
            "a bad domain",
            with(fields("Dom"), "to_domain", "not a domain"),
            "to",
            "not a valid domain",
        ),
        (
            "no group chosen",
            with(fields("Grp"), "to_kind", "group"),
            "to",
            "Lookup",
        ),
    ];
    for (what, f, slot, message) in cases {
        let page = post(&mut pete, NEW, &csrf, "save", &f).await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {}",
            page.body
        );
        let error = format!("id=\"{slot}-error\">");
        let at = page
            .body
            .find(&error)
            .unwrap_or_else(|| panic!("{what}: no {error} in {}", page.body));
        let shown = &page.body[at..at + page.body[at..].find("</p>").unwrap()];
        assert!(shown.contains(message), "{what}: {shown}");
        assert!(page.body.contains("The policy was not saved"), "{what}");
        let narrative = &f.iter().find(|(k, _)| *k == "narrative").unwrap().1;
        assert!(
            page.body
                .contains(&format!("value=\"{}\"", narrative.trim_end()))
                || narrative.trim().is_empty(),
            "{what}: the form keeps what was typed"
        );
        assert!(
            stored(&w).await.policies.is_empty(),
            "{what}: nothing saved"
        );
    }
    let audit = w
        .store
        .audit(AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(
        !audit.iter().any(|e| e.change.object_kind == "policy"),
        "no audit entry for a refused form"
    );
}

#[tokio::test]
async fn a_policy_is_edited_duplicated_disabled_and_deleted() {
    let w = world().await;
    let (mut pete, csrf) = policy_admin(&w).await;
    let saved = post(&mut pete, NEW, &csrf, "save", &fields("Original")).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let id = stored(&w).await.policies[0].id.0;
    let path = format!("/console/policies/{id}");

    let edit = pete.get(&path).await;
    assert!(
        edit.body.contains("value=\"Original\"") && edit.body.contains("value=\"partner.example\"")
    );
    let changed = with(
        with(fields("Renamed"), "validity", "range"),
        "ends",
        "2099-12-31",
    );
    let updated = post(&mut pete, &path, &csrf, "save", &changed).await;
    assert_eq!(updated.status, StatusCode::SEE_OTHER, "{}", updated.body);
    let p = stored(&w).await.policies[0].policy.clone();
    assert_eq!(p.narrative, "Renamed");
    assert_eq!(
        p.ends_at.map(|t| t.unix_timestamp()),
        Some(time::macros::datetime!(2100-01-01 0:00 UTC).unix_timestamp())
    );

    let copy = pete.get(&format!("{path}/duplicate")).await;
    assert!(
        copy.body.contains("value=\"Copy of Renamed\""),
        "{}",
        copy.body
    );
    assert!(
        copy.body
            .contains(&format!("action=\"{}\"", NEW.replace('/', "&#x2f;"))),
        "saves as a new policy"
    );

    let disabled = pete
        .post(
            &format!("{path}/enabled"),
            &[("csrf", &csrf), ("enabled", "false")],
        )
        .await;
    assert_eq!(disabled.status, StatusCode::SEE_OTHER);
    assert!(!stored(&w).await.policies[0].policy.enabled);
    let list = pete.get("/console/policies/secure-messaging").await;
    assert!(list.body.contains("status-disabled") && list.body.contains(">Enable</button>"));

    let confirm = pete.get(&format!("{path}/delete")).await;
    assert!(confirm.body.contains("Delete this policy?"));
    let deleted = pete
        .post(&format!("{path}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert!(stored(&w).await.policies.is_empty());
    assert_eq!(pete.get(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        pete.get("/console/policies/nope").await.status,
        StatusCode::NOT_FOUND
    );

    let audit = w
        .store
        .audit(AuditQuery {
            object_kind: Some("policy".into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.change.action.as_str()).collect();
    assert_eq!(
        audit.len(),
        4,
        "create, update, disable, delete: {actions:?}"
    );
    let last = audit
        .iter()
        .find(|e| e.change.after.is_none())
        .expect("the deletion");
    assert!(
        last.change
            .before
            .as_ref()
            .unwrap()
            .to_string()
            .contains("Renamed")
    );
}

#[tokio::test]
async fn a_read_only_administrator_sees_the_form_but_cannot_save() {
    let w = world().await;
    let (mut pete, csrf) = policy_admin(&w).await;
    post(&mut pete, NEW, &csrf, "save", &fields("Looked at")).await;
    let id = stored(&w).await.policies[0].id.0;
    w.admin("rita", Role::ReadOnly, OWN, false).await;
    let mut rita = agent(&w);
    sign_in(&mut rita, "rita", OWN).await;
    let page = rita.get(&format!("/console/policies/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<fieldset class=\"plain\" disabled>"));
    assert!(!page.body.contains("Save and Exit") && !page.body.contains("Lookup</button>"));
    let list = rita.get("/console/policies/secure-messaging").await;
    assert!(!list.body.contains("New Policy") && !list.body.contains(">Disable</button>"));
    let refused = post(
        &mut rita,
        &format!("/console/policies/{id}"),
        &csrf,
        "save",
        &fields("Mine now"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(stored(&w).await.policies[0].policy.narrative, "Looked at");
}

#[tokio::test]
async fn the_policy_test_page_explains_each_verdict_and_the_winner() {
    let w = world().await;
    let (mut pete, csrf) = policy_admin(&w).await;
    post(&mut pete, NEW, &csrf, "save", &fields("Partner domain")).await;
    let exclusion = with(
        with(
            with(fields("Never for the CEO"), "action", "no_action"),
            "from_kind",
            "address",
        ),
        "from_address",
        "ceo@corp.example",
    );
    post(&mut pete, NEW, &csrf, "save", &exclusion).await;
    let dated = with(
        with(
            with(fields("Old project"), "validity", "range"),
            "starts",
            "2020-01-01",
        ),
        "ends",
        "2020-12-31",
    );
    post(&mut pete, NEW, &csrf, "save", &dated).await;
    let ids: Vec<i64> = stored(&w).await.policies.iter().map(|p| p.id.0).collect();
    assert_eq!(ids.len(), 3);

    let page = pete
        .get("/console/policy-test?from=alice%40corp.example&to=bob%40partner.example&header_from=&ip=10.1.2.3&at=2026-12-06T10%3A00")
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("delivered via Secure Messaging (Default)"),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!("policy #{}</a>", ids[0])));
    assert!(
        page.body.contains("outside its dates"),
        "the dated policy says why not"
    );
    assert!(page.body.contains("sender is not ceo@corp.example"));
    assert!(page.body.contains("No override policy matched"));
    assert!(page.body.contains("class=\"winner\""));

    let ceo = pete
        .get("/console/policy-test?from=ceo%40corp.example&to=bob%40partner.example")
        .await;
    assert!(ceo.body.contains("relayed normally"), "{}", ceo.body);
    assert!(
        ceo.body.contains(&format!("policy #{}</a>", ids[1])),
        "the exclusion wins"
    );

    let inbound = pete
        .get("/console/policy-test?from=x%40partner.example&to=alice%40corp.example")
        .await;
    assert!(inbound.body.contains("The sender is not internal"));

    let bad = pete
        .get("/console/policy-test?from=alice%40corp.example&to=not-an-address&ip=10.0.0.300")
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"to-error\""), "{}", bad.body);
}

/// A message accepted `hours_ago` from alice@corp.example to `to`.
async fn accepted(w: &World, hours_ago: u64, to: &[&str]) {
    use sealpost_policy::{Decision, EmailAddress, Route};
    use sealpost_store::{
        ClientInfo, MessageKind, NewMessage, NewRecipient, Notify, QueueId, Store,
    };
    use std::time::{Duration, SystemTime};
    let at = SystemTime::now() - Duration::from_secs(hours_ago * 3600);
    let m = NewMessage::plain(
        QueueId::generate(),
        at,
        EmailAddress::parse("alice@corp.example").ok(),
        ClientInfo {
            ip: "10.0.0.7".parse().unwrap(),
            name: None,
            helo: None,
            protocol: "ESMTP".into(),
        },
        b"Subject: s\r\n\r\nbody\r\n".to_vec(),
        at + Duration::from_secs(30 * 86400),
        MessageKind::Mail,
        to.iter()
            .map(|r| NewRecipient {
                address: EmailAddress::parse(r).unwrap(),
                orcpt: None,
                notify: Notify::default(),
                decision: Decision {
                    route: Route::Relay,
                    policy: None,
                },
            })
            .collect(),
    );
    w.store.accept(m).await.unwrap();
}

#[tokio::test]
async fn preview_impact_shows_the_change_before_anything_is_saved() {
    let w = world().await;
    let (mut pete, csrf) = policy_admin(&w).await;
    accepted(&w, 2, &["a@partner.example", "b@elsewhere.example"]).await;
    accepted(&w, 30, &["c@partner.example"]).await;
    accepted(&w, 24 * 10, &["old@partner.example"]).await;

    let page = post(&mut pete, NEW, &csrf, "preview", &fields("")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"impact-result\""), "{}", page.body);
    assert!(
        page.body.contains("<strong>2</strong> of 2 messages and <strong>2</strong> of 3 recipients in the last 7 days"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<td>partner.example</td><td>2</td><td>0</td>")
    );
    assert!(page.body.contains("c@partner.example"), "the sample");
    let one_day = post(
        &mut pete,
        NEW,
        &csrf,
        "preview",
        &with(fields("x"), "preview_days", "1"),
    )
    .await;
    assert!(
        one_day.body.contains("<strong>1</strong> of 1 messages"),
        "{}",
        one_day.body
    );
    let bad = post(
        &mut pete,
        NEW,
        &csrf,
        "preview",
        &with(fields("x"), "preview_days", "400"),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"preview_days-error\""));
    assert!(
        stored(&w).await.policies.is_empty(),
        "a preview saves nothing"
    );
}

#[tokio::test]
async fn the_list_pages_sorts_searches_and_counts_hits_on_the_server() {
    use sealpost_policy::{Decision, DefinitionId, EmailAddress, PolicyId, Route};
    use sealpost_store::{
        ClientInfo, MessageKind, NewMessage, NewRecipient, Notify, QueueId, Store,
    };
    use std::time::{Duration, SystemTime};
    let w = world().await;
    let (mut pete, csrf) = policy_admin(&w).await;
    for i in 0..55 {
        let narrative = format!("Rule {i:02}{}", if i == 7 { " lawyers" } else { "" });
        let saved = post(&mut pete, NEW, &csrf, "save", &fields(&narrative)).await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER);
    }
    let ids: Vec<i64> = stored(&w).await.policies.iter().map(|p| p.id.0).collect();
    // Policy ids[9] decided three recipients today.
    let now = SystemTime::now();
    let m = NewMessage::plain(
        QueueId::generate(),
        now,
        EmailAddress::parse("alice@corp.example").ok(),
        ClientInfo {
            ip: "10.0.0.7".parse().unwrap(),
            name: None,
            helo: None,
            protocol: "ESMTP".into(),
        },
        b"Subject: s\r\n\r\nbody\r\n".to_vec(),
        now + Duration::from_secs(86400),
        MessageKind::Mail,
        ["a", "b", "c"]
            .iter()
            .map(|l| NewRecipient {
                address: EmailAddress::parse(&format!("{l}@partner.example")).unwrap(),
                orcpt: None,
                notify: Notify::default(),
                decision: Decision {
                    route: Route::Secure {
                        definition: DefinitionId(1),
                    },
                    policy: Some(PolicyId(ids[9])),
                },
            })
            .collect(),
    );
    w.store.accept(m).await.unwrap();

    let first = pete.get("/console/policies/secure-messaging").await;
    assert!(first.body.contains("1–50 of 55"), "{}", first.body);
    assert!(first.body.contains("Rule 00") && !first.body.contains("Rule 54"));
    let second = pete.get("/console/policies/secure-messaging?page=2").await;
    assert!(second.body.contains("51–55 of 55") && second.body.contains("Rule 54"));
    assert!(!second.body.contains("Rule 00"));

    let by_name = pete
        .get("/console/policies/secure-messaging?sort=narrative&dir=desc")
        .await;
    let first_row = by_name.body.find("Rule 54").unwrap();
    assert!(first_row < by_name.body.find("Rule 53").unwrap());
    assert!(by_name.body.contains("aria-sort=\"descending\""));

    let by_hits = pete
        .get("/console/policies/secure-messaging?sort=hits&dir=desc")
        .await;
    let tbody = &by_hits.body[by_hits.body.find("<tbody>").unwrap()..];
    assert!(
        tbody.find("Rule 09").unwrap() < tbody.find("Rule 00").unwrap(),
        "the policy with hits first"
    );
    assert!(
        tbody.contains("<td data-label=\"Hits (30 days)\">3</td>"),
        "its three recipients"
    );

    let found = pete
        .get("/console/policies/secure-messaging?q=LAWYERS")
        .await;
    assert!(found.body.contains("1–1 of 1") && found.body.contains("Rule 07 lawyers"));
    let beyond = pete.get("/console/policies/secure-messaging?page=99").await;
    assert!(beyond.body.contains("page 2 of 2"), "clamped");
}

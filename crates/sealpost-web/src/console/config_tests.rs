//! Definitions, profile groups and the directory in the console, against a
//! real database and driven like a browser: create, edit and delete each
//! with its audit entry; each refusal next to its box with nothing half
//! saved; the template preview; the CSV imports and their reports.

use std::time::Duration;

use axum::http::StatusCode;
use sealpost_policy::PolicyDocument;
use sealpost_store::{
    AdminStore, ConfigChange, Role,
    audit::{Actor, AuditEntry, AuditQuery},
};

use super::tests::{OWN, World, agent, sign_in, world};
use crate::portal::tests::journeys::{Agent, Page};

async fn signed_in(w: &World, name: &str, role: Role) -> (Agent, String) {
    w.admin(name, role, OWN, false).await;
    let mut a = agent(w);
    assert_eq!(
        sign_in(&mut a, name, OWN).await.status,
        StatusCode::SEE_OTHER
    );
    let csrf = a.get("/console").await.csrf();
    (a, csrf)
}

async fn stored(w: &World) -> PolicyDocument {
    w.store.load_config().await.unwrap()
}

async fn audit(w: &World, kind: &str) -> Vec<AuditEntry> {
    w.store
        .audit(AuditQuery {
            object_kind: Some(kind.into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

async fn post(a: &mut Agent, path: &str, csrf: &str, fields: &[(&str, &str)]) -> Page {
    let mut all = vec![("csrf", csrf)];
    all.extend_from_slice(fields);
    a.post(path, &all).await
}

fn definition_fields<'a>(name: &'a str, text: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("description", "Outside counsel"),
        ("allow_reply", "on"),
        ("allow_print", "on"),
        ("expiry", "days"),
        ("expiry_days", "14"),
        ("template_subject", "Secure mail from {{ sender }}"),
        ("template_text", text),
        ("template_html", ""),
    ]
}

const GOOD_TEXT: &str = "{{ sender }} sent you a secure message.\nOpen it: {{ portal_link }}\n";

async fn policy_applying(w: &World, definition: i64) {
    let draft = serde_json::from_value(serde_json::json!({
        "narrative": "Contracts", "action": "apply_definition", "definition_id": definition,
        "from": {"kind": "internal"}, "to": {"kind": "external"}
    }))
    .unwrap();
    w.store
        .change_config(
            ConfigChange::CreatePolicy(draft),
            Box::new(|doc| doc.compile(&[], 3650)),
            Actor::system("test"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn definitions_are_made_previewed_defaulted_and_deleted_with_audit() {
    let w = world().await;
    let (mut pete, csrf) = signed_in(&w, "pete", Role::PolicyAdmin).await;

    let list = pete.get("/console/definitions").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("Default") && list.body.contains("default</span>"));

    // A template without the portal link: refused next to the text part,
    // the form as typed, nothing saved.
    let no_link = definition_fields("Legal hold", "{{ sender }} sent you mail.\n");
    let refused = post(
        &mut pete,
        "/console/definitions/new",
        &csrf,
        &[&no_link[..], &[("step", "save")]].concat(),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert!(refused.body.contains("role=\"alert\""));
    let at = refused
        .body
        .find("id=\"template_text-error\"")
        .expect("next to the text part");
    assert!(
        refused.body[at..].contains("link"),
        "{}",
        &refused.body[at..at + 300]
    );
    assert!(
        refused
            .body
            .contains("aria-describedby=\"template_text-hint template_text-error\"")
    );
    assert!(
        refused.body.contains("value=\"Legal hold\""),
        "kept as typed"
    );
    assert_eq!(stored(&w).await.definitions.len(), 1, "nothing saved");
    // Preview finds the same problem, at the same box.
    let preview = post(
        &mut pete,
        "/console/definitions/new",
        &csrf,
        &[&no_link[..], &[("step", "preview")]].concat(),
    )
    .await;
    assert!(preview.body.contains("id=\"template_text-error\""));

    // Preview of a good template: subject and text as a recipient sees
    // them, the HTML part in a sandboxed frame served on its own.
    let good = definition_fields("Legal hold", GOOD_TEXT);
    let preview = post(
        &mut pete,
        "/console/definitions/new",
        &csrf,
        &[&good[..], &[("step", "preview")]].concat(),
    )
    .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert!(
        preview
            .body
            .contains("id=\"preview-subject\">Secure mail from"),
        "{}",
        preview.body
    );
    assert!(
        preview
            .body
            .contains("sent you a secure message.\nOpen it: http")
    );
    assert!(preview.body.contains("sandbox=\"\""));
    let frame_tag = preview.body.split("id=\"preview-html\"").nth(1).unwrap();
    let src = frame_tag.split("src=\"").nth(1).unwrap();
    let src = src[..src.find('"').unwrap()].replace("&#x2f;", "/");
    assert!(src.starts_with("/console/definitions/preview/"), "{src}");
    let frame = pete.get(&src).await;
    assert_eq!(frame.status, StatusCode::OK);
    let csp = frame.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("sandbox") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(
        frame.body.contains("<html") || frame.body.contains("<table") || frame.body.contains("<p")
    );
    assert_eq!(
        stored(&w).await.definitions.len(),
        1,
        "a preview saves nothing"
    );

    // Save.
    let saved = post(
        &mut pete,
        "/console/definitions/new",
        &csrf,
        &[&good[..], &[("step", "save")]].concat(),
    )
    .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let doc = stored(&w).await;
    let legal = doc
        .definitions
        .iter()
        .find(|d| d.definition.name == "Legal hold")
        .unwrap();
    assert_eq!(legal.definition.expiry_days, Some(14));
    assert!(!legal.definition.allow_forward && legal.definition.allow_reply);
    let template = legal.definition.notification_template.as_ref().unwrap();
    assert_eq!(template.text.as_deref(), Some(GOOD_TEXT));
    assert_eq!(template.html, None, "an empty part is the built-in one");
    let id = legal.id.0;
    assert!(
        pete.get(saved.location())
            .await
            .body
            .contains("Definition “Legal hold” is saved")
    );

    // Edit: an expiry beyond retention is refused next to the expiry.
    let edit = format!("/console/definitions/{id}");
    let mut long = definition_fields("Legal hold", GOOD_TEXT);
    long.retain(|(k, _)| *k != "expiry_days");
    long.push(("expiry_days", "9999"));
    let refused = post(
        &mut pete,
        &edit,
        &csrf,
        &[&long[..], &[("step", "save")]].concat(),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("id=\"expiry-error\""),
        "{}",
        refused.body
    );
    let mut never = definition_fields("Legal hold", GOOD_TEXT);
    never.retain(|(k, _)| *k != "expiry");
    never.extend([("expiry", "never"), ("allow_forward", "on")]);
    assert_eq!(
        post(
            &mut pete,
            &edit,
            &csrf,
            &[&never[..], &[("step", "save")]].concat()
        )
        .await
        .status,
        StatusCode::SEE_OTHER
    );
    let doc = stored(&w).await;
    let legal = doc.definitions.iter().find(|d| d.id.0 == id).unwrap();
    assert_eq!(legal.definition.expiry_days, None);
    assert!(legal.definition.allow_forward);

    // Used by a policy: delete is refused with the reason.
    policy_applying(&w, id).await;
    let page = pete.get(&format!("/console/definitions/{id}/delete")).await;
    assert!(
        page.body
            .contains("Policies apply this definition: Contracts"),
        "{}",
        page.body
    );
    let refused = post(
        &mut pete,
        &format!("/console/definitions/{id}/delete"),
        &csrf,
        &[],
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("Contracts"));

    // Make it the default; then the old default can go, and it cannot.
    let made = post(
        &mut pete,
        &format!("/console/definitions/{id}/default"),
        &csrf,
        &[],
    )
    .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let doc = stored(&w).await;
    assert!(
        doc.definitions
            .iter()
            .find(|d| d.id.0 == id)
            .unwrap()
            .is_default
    );
    assert_eq!(doc.definitions.iter().filter(|d| d.is_default).count(), 1);
    assert!(w.store.load_config().await.is_ok());
    let old = doc.definitions.iter().find(|d| d.id.0 != id).unwrap().id.0;
    let page = pete.get(&format!("/console/definitions/{id}/delete")).await;
    assert!(page.body.contains("This is the default definition"));
    let deleted = post(
        &mut pete,
        &format!("/console/definitions/{old}/delete"),
        &csrf,
        &[],
    )
    .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert_eq!(stored(&w).await.definitions.len(), 1);

    // A read-only administrator reads the form, cannot change it.
    let (mut rita, rita_csrf) = signed_in(&w, "rita", Role::ReadOnly).await;
    let page = rita.get(&format!("/console/definitions/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Your role may look at definitions"));
    assert!(!page.body.contains("id=\"preview\""));
    let refused = post(
        &mut rita,
        &format!("/console/definitions/{id}/default"),
        &rita_csrf,
        &[],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let entries = audit(&w, "definition").await;
    let actions: Vec<&str> = entries
        .iter()
        .rev()
        .map(|e| e.change.action.as_str())
        .collect();
    assert_eq!(
        actions,
        ["create", "update", "update", "delete"],
        "{entries:?}"
    );
    assert!(entries.iter().all(|e| e.actor.name == "pete"));
    let made_default = &entries[1];
    assert_eq!(
        made_default.change.before.as_ref().unwrap()["is_default"],
        false
    );
    assert_eq!(
        made_default.change.after.as_ref().unwrap()["is_default"],
        true
    );
}

#[tokio::test]
async fn groups_nest_refuse_a_loop_and_import_members_with_a_report() {
    let w = world().await;
    let (mut pete, csrf) = signed_in(&w, "pete", Role::PolicyAdmin).await;

    let new = |name: &'static str, addresses: &'static str| {
        vec![
            ("name", name),
            ("description", "Outside counsel"),
            ("addresses", addresses),
            ("domains", "counsel.example"),
        ]
    };
    let made = post(
        &mut pete,
        "/console/groups/new",
        &csrf,
        &new("Law firms", "a@firm.example"),
    )
    .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let firms = stored(&w).await.groups[0].id.0;

    // A bad address is refused next to the addresses, with its line.
    let bad = post(
        &mut pete,
        "/console/groups/new",
        &csrf,
        &new("Partners", "p@partner.example\nnot an address"),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("id=\"addresses-error\">Line 2:"),
        "{}",
        bad.body
    );
    assert_eq!(stored(&w).await.groups.len(), 1);

    // Partners contains Law firms.
    let firms_text = firms.to_string();
    let mut partners = new("Partners", "p@partner.example");
    partners.push(("member_group", &firms_text));
    assert_eq!(
        post(&mut pete, "/console/groups/new", &csrf, &partners)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let doc = stored(&w).await;
    let partners_id = doc
        .groups
        .iter()
        .find(|g| g.group.name == "Partners")
        .unwrap()
        .id;
    assert_eq!(
        doc.groups
            .iter()
            .find(|g| g.id == partners_id)
            .unwrap()
            .group
            .groups[0]
            .0,
        firms
    );

    let page = pete.get(&format!("/console/groups/{firms}")).await;
    assert!(
        page.body
            .contains("contains this group: ticking it would make a loop")
    );
    // Law firms containing Partners would be a loop: refused with the
    // API's message next to the groups, nothing saved.
    let partners_text = partners_id.0.to_string();
    let mut looped = new("Law firms", "a@firm.example");
    looped.push(("member_group", &partners_text));
    let refused = post(
        &mut pete,
        &format!("/console/groups/{firms}"),
        &csrf,
        &looped,
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    let at = refused
        .body
        .find("id=\"groups-error\"")
        .expect("next to the groups");
    assert!(
        refused.body[at..].contains("loop"),
        "{}",
        &refused.body[at..at + 200]
    );
    assert!(
        stored(&w)
            .await
            .groups
            .iter()
            .find(|g| g.id.0 == firms)
            .unwrap()
            .group
            .groups
            .is_empty()
    );

    // Law firms is named by Partners: delete is refused with the reason.
    let page = pete.get(&format!("/console/groups/{firms}/delete")).await;
    assert!(page.body.contains("group “Partners”"), "{}", page.body);

    // CSV import of members: good rows added, bad rows listed by line.
    let csv = "member,note\nb@firm.example,new\nA@FIRM.EXAMPLE,already\nnot-an-address@,bad\n*.firm.example,\n\nbad domain!,\n";
    let imported = pete
        .post_file(
            &format!("/console/groups/{firms}/import"),
            &[("csrf", &csrf)],
            ("members.csv", csv),
        )
        .await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.body);
    assert!(imported.body.contains("<strong>2</strong> members added, 1 already in the group, <strong>2</strong> of 5 rows refused"), "{}", imported.body);
    let lines: Vec<&str> = imported
        .body
        .split("<td data-label=\"Line\">")
        .skip(1)
        .map(|r| &r[..r.find('<').unwrap()])
        .collect();
    assert_eq!(lines, ["4", "7"], "{}", imported.body);
    let firms_group = stored(&w)
        .await
        .groups
        .into_iter()
        .find(|g| g.id.0 == firms)
        .unwrap()
        .group;
    assert_eq!(firms_group.addresses, ["a@firm.example", "b@firm.example"]);
    assert_eq!(firms_group.domains, ["counsel.example", "*.firm.example"]);
    // A file without the column: nothing imported, said next to the upload.
    let refused = pete
        .post_file(
            &format!("/console/groups/{firms}/import"),
            &[("csrf", &csrf)],
            ("x.csv", "name\nx\n"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("id=\"import-error\""),
        "{}",
        refused.body
    );
    // Without the token, nothing.
    let forged = pete
        .post_file(
            &format!("/console/groups/{firms}/import"),
            &[("csrf", "forged")],
            ("m.csv", csv),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // Delete Partners, then Law firms.
    for id in [partners_id.0, firms] {
        let gone = post(
            &mut pete,
            &format!("/console/groups/{id}/delete"),
            &csrf,
            &[],
        )
        .await;
        assert_eq!(gone.status, StatusCode::SEE_OTHER, "{}", gone.body);
    }
    assert!(stored(&w).await.groups.is_empty());
    let entries = audit(&w, "group").await;
    let actions: Vec<&str> = entries
        .iter()
        .rev()
        .map(|e| e.change.action.as_str())
        .collect();
    assert_eq!(actions, ["create", "create", "update", "delete", "delete"]);
}

#[tokio::test]
async fn directory_users_are_added_edited_listed_and_deleted() {
    let w = world().await;
    let (mut pete, csrf) = signed_in(&w, "pete", Role::PolicyAdmin).await;

    let refused = post(
        &mut pete,
        "/console/directory/new",
        &csrf,
        &[
            ("address", "alice"),
            ("display_name", "Alice"),
            ("attributes", ""),
        ],
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("id=\"address-error\""),
        "{}",
        refused.body
    );
    let refused = post(
        &mut pete,
        "/console/directory/new",
        &csrf,
        &[
            ("address", "alice@corp.example"),
            ("attributes", "department Legal"),
        ],
    )
    .await;
    assert!(
        refused.body.contains("id=\"attributes-error\">line 1"),
        "{}",
        refused.body
    );
    assert!(stored(&w).await.users.is_empty());

    let added = post(
        &mut pete,
        "/console/directory/new",
        &csrf,
        &[
            ("address", "alice@corp.example"),
            ("display_name", "Alice Smith"),
            ("attributes", "Department = Legal\ncountry: DE"),
        ],
    )
    .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let again = post(
        &mut pete,
        "/console/directory/new",
        &csrf,
        &[("address", "Alice@corp.example")],
    )
    .await;
    assert!(again.body.contains("already in the directory"));
    let users = stored(&w).await.users;
    assert_eq!(users[0].attributes["department"], "Legal");

    let edit = "/console/directory/users/alice%40corp.example";
    assert!(pete.get(edit).await.body.contains("department = Legal"));
    let edited = post(
        &mut pete,
        edit,
        &csrf,
        &[
            ("display_name", "Alice Jones"),
            ("attributes", "department = Sales"),
        ],
    )
    .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER, "{}", edited.body);
    assert_eq!(stored(&w).await.users[0].display_name, "Alice Jones");

    // Paged, sorted and searched on the server.
    let many: Vec<_> = (0..120)
        .map(|i| sealpost_policy::UserDraft {
            address: format!("user{i:03}@corp.example"),
            display_name: format!("User {i:03}"),
            attributes: Default::default(),
        })
        .collect();
    w.store
        .change_config(
            ConfigChange::ImportUsers(many),
            Box::new(|doc| doc.compile(&[], 3650)),
            Actor::system("test"),
        )
        .await
        .unwrap();
    let (mut rita, _) = signed_in(&w, "rita", Role::ReadOnly).await;
    // The policy service's snapshot has them after a change through it.
    post(
        &mut pete,
        edit,
        &csrf,
        &[
            ("display_name", "Alice Jones"),
            ("attributes", "department = Sales"),
        ],
    )
    .await;
    let first = rita.get("/console/directory").await;
    assert!(first.body.contains("1–50 of 121"), "{}", first.body);
    assert!(first.body.contains("Page 1 of 3"));
    assert!(
        !first.body.contains("id=\"new-user\""),
        "read-only sees no add"
    );
    let desc = rita
        .get("/console/directory?sort=address&dir=desc&page=3")
        .await;
    assert!(desc.body.contains("101–121 of 121"));
    assert!(
        desc.body.contains("alice@corp.example"),
        "last in descending order"
    );
    let odd = rita.get("/console/directory?page=many&sort=nonsense").await;
    assert!(odd.body.contains("1–50 of 121"), "{}", odd.body);
    let found = rita.get("/console/directory?q=sales").await;
    assert!(found.body.contains("1–1 of 1 found"), "{}", found.body);
    assert_eq!(
        rita.post("/console/directory/new", &[("address", "x@corp.example")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    let gone = post(&mut pete, &format!("{edit}/delete"), &csrf, &[]).await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    assert_eq!(stored(&w).await.users.len(), 120);
    let entries = audit(&w, "directory_user").await;
    let actions: Vec<&str> = entries
        .iter()
        .rev()
        .map(|e| e.change.action.as_str())
        .collect();
    assert_eq!(actions, ["create", "update", "update", "delete"]);
}

#[tokio::test]
async fn a_directory_import_runs_in_the_background_and_reports_each_bad_line() {
    let w = world().await;
    let (mut pete, csrf) = signed_in(&w, "pete", Role::PolicyAdmin).await;
    let bad_lines = [17usize, 500, 1234, 2001];
    let mut csv = String::from("address,display_name,department\n");
    for line in 2..=2001 {
        if bad_lines.contains(&line) {
            csv.push_str(&format!("broken-{line},Nobody,Legal\n"));
        } else {
            csv.push_str(&format!("user{line}@corp.example,User {line},Legal\n"));
        }
    }
    let started = pete
        .post_file(
            "/console/directory/import",
            &[("csrf", &csrf)],
            ("people.csv", &csv),
        )
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let job = started.location().to_owned();
    assert!(job.starts_with("/console/directory/import/"));

    let mut page = pete.get(&job).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<progress id=\"import-progress\""));
    for _ in 0..200 {
        if page.body.contains("id=\"import-done\"") {
            break;
        }
        assert_eq!(
            page.headers["refresh"], "2",
            "a running job's page refreshes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        page = pete.get(&job).await;
    }
    assert!(
        page.body.contains("1996 users imported; 4 rows refused"),
        "{}",
        page.body
    );
    assert!(
        !page.headers.contains_key("refresh"),
        "a finished job's page stays"
    );
    let table = &page.body[page.body.find("id=\"refused-rows\"").unwrap()..];
    let lines: Vec<usize> = table
        .split("<td data-label=\"Line\">")
        .skip(1)
        .map(|r| r[..r.find('<').unwrap()].parse().unwrap())
        .collect();
    assert_eq!(lines, bad_lines);
    assert!(table.contains("broken-17") && table.contains("is not a valid email address"));
    assert_eq!(stored(&w).await.users.len(), 1996);
    let entries = audit(&w, "directory_users").await;
    assert_eq!(entries.len(), 1, "one import, one audit entry");
    assert_eq!(entries[0].change.action, "import");
    assert_eq!(entries[0].actor.name, "pete");
    // The directory lists the job.
    assert!(
        pete.get("/console/directory")
            .await
            .body
            .contains("people.csv")
    );
    // A file without an address column fails whole, said on its page.
    let started = pete
        .post_file(
            "/console/directory/import",
            &[("csrf", &csrf)],
            ("x.csv", "name\nx\n"),
        )
        .await;
    let mut page = pete.get(started.location()).await;
    for _ in 0..100 {
        if page.body.contains("id=\"import-failed\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        page = pete.get(started.location()).await;
    }
    assert!(
        page.body.contains("needs an &#x27;address&#x27; column")
            || page.body.contains("needs an 'address' column"),
        "{}",
        page.body
    );
}

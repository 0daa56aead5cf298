//! The definitions pages: the form, the template preview, make default
//! and delete.

use axum::http::StatusCode;
use sealpost_store::{AdminStore, ConfigChange, Role, audit::Actor};

use super::{audit, in_order, link, post, signed_in, stored};
use crate::console::tests::{World, world};

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

/// Issue 16 item 7: the list pages (50), sorts by each column both ways
/// (ties in id order) and searches name and description on the server;
/// the audit log still pages its entries newest first.
#[tokio::test]
async fn the_definition_list_pages_sorts_and_searches_on_the_server() {
    let w = world().await;
    let (mut pete, _) = signed_in(&w, "pete", Role::PolicyAdmin).await;
    for i in 0..55_u32 {
        // Expiry in pairs, 200 days down to 173: ties to keep in id order.
        let draft = serde_json::from_value(serde_json::json!({
            "name": format!("Def {i:02}"),
            "description": if i == 7 { "For the lawyers" } else { "Outside counsel" },
            "expiry_days": 200 - i / 2,
            "allow_forward": i == 9,
        }))
        .unwrap();
        w.store
            .change_config(
                ConfigChange::CreateDefinition(draft),
                Box::new(|doc| doc.compile(&[], 3650)),
                Actor::system("test"),
            )
            .await
            .unwrap();
    }
    // With the default: 56.
    let first = pete.get("/console/definitions").await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.body.contains("1–50 of 56"), "{}", first.body);
    assert!(first.body.contains("page 1 of 2"));
    assert!(in_order(&first, &["Default", "Def 00", "Def 48"]));
    assert!(!first.body.contains(">Def 49</a>"));
    assert!(first.body.contains("aria-sort=\"none\""));
    let second = pete.get(&link(&first, "next").expect("a next page")).await;
    assert!(second.body.contains("51–56 of 56"), "{}", second.body);
    assert!(in_order(&second, &["Def 49", "Def 54"]));
    assert!(!second.body.contains(">Def 48</a>") && link(&second, "next").is_none());
    assert_eq!(
        link(&second, "prev").as_deref(),
        Some("/console/definitions")
    );

    // By name, both ways; then by expiry, both ways, ties in id order.
    let by_name = pete.get("/console/definitions?sort=name&dir=desc").await;
    assert!(by_name.body.contains("aria-sort=\"descending\""));
    assert!(in_order(
        &by_name,
        &["Default", "Def 54", "Def 53", "Def 06"]
    ));
    let by_name = pete.get("/console/definitions?sort=name").await;
    assert!(by_name.body.contains("aria-sort=\"ascending\""));
    assert!(in_order(&by_name, &["Def 00", "Def 01", "Def 49"]));
    let by_expiry = pete.get("/console/definitions?sort=expiry").await;
    assert!(by_expiry.body.contains("Expiry ▲"), "{}", by_expiry.body);
    assert!(in_order(
        &by_expiry,
        &["Default", "Def 54", "Def 52", "Def 53", "Def 50", "Def 51"]
    ));
    let by_expiry = pete.get("/console/definitions?sort=expiry&dir=desc").await;
    assert!(by_expiry.body.contains("Expiry ▼"));
    assert!(in_order(
        &by_expiry,
        &["Def 00", "Def 01", "Def 02", "Def 03"]
    ));
    // The next page keeps the sort.
    let rest = pete.get(&link(&by_expiry, "next").unwrap()).await;
    assert!(in_order(&rest, &["Def 50", "Def 51", "Def 54", "Default"]));
    let by_may = pete.get("/console/definitions?sort=may&dir=desc").await;
    assert!(in_order(&by_may, &["Def 09", "Default", "Def 00"]));

    // Searched by description, in any case; by name.
    let found = pete.get("/console/definitions?q=LAWYERS").await;
    assert!(found.body.contains("1–1 of 1") && found.body.contains(">Def 07</a>"));
    let found = pete.get("/console/definitions?q=def+3").await;
    assert!(found.body.contains("1–10 of 10"), "{}", found.body);
    let none = pete.get("/console/definitions?q=nothing+like+it").await;
    assert!(none.body.contains("No definitions matching"));

    // Past the last page, the last; a page that is no number, the first.
    let beyond = pete.get("/console/definitions?page=99").await;
    assert!(beyond.body.contains("page 2 of 2") && beyond.body.contains("51–56 of 56"));
    let odd = pete.get("/console/definitions?page=two").await;
    assert!(odd.body.contains("page 1 of 2"));

    // The audit log pages its 55 entries newest first.
    let (mut ann, _) = signed_in(&w, "ann", Role::SuperAdmin).await;
    let log = ann.get("/console/audit?object_kind=definition").await;
    assert_eq!(log.body.matches("<tr>").count(), 1 + 50, "a header and 50");
    let older = ann.get(&link(&log, "next").expect("older entries")).await;
    assert_eq!(older.status, StatusCode::OK);
    assert_eq!(older.body.matches("<tr>").count(), 1 + 5);
    assert!(link(&older, "next").is_none());
    assert!(older.body.contains("Def 00") && !older.body.contains("Def 54"));
}

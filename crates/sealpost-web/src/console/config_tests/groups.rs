//! The profile group pages: nesting, a loop refused, the CSV import of
//! members.

use axum::http::StatusCode;
use sealpost_store::{AdminStore, ConfigChange, Role, audit::Actor};

use super::{audit, in_order, link, post, signed_in, stored};
use crate::console::tests::world;

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

/// Issue 16 item 7: the list pages (50), sorts by each column both ways
/// (ties in id order) and searches name and description on the server.
#[tokio::test]
async fn the_group_list_pages_sorts_and_searches_on_the_server() {
    let w = world().await;
    let (mut pete, _) = signed_in(&w, "pete", Role::ReadOnly).await;
    let mut first_id = 0;
    for i in 0..55_usize {
        // 0, 1 or 2 addresses; Group 10 contains Group 00.
        let draft = sealpost_policy::GroupDraft {
            name: format!("Group {i:02}"),
            description: if i == 7 { "Lawyers abroad" } else { "Partners" }.into(),
            addresses: (0..i % 3).map(|j| format!("a{j}@g{i}.example")).collect(),
            domains: vec![format!("g{i}.example")],
            groups: if i == 10 {
                vec![sealpost_policy::GroupId(first_id)]
            } else {
                vec![]
            },
        };
        let id = w
            .store
            .change_config(
                ConfigChange::CreateGroup(draft),
                Box::new(|doc| doc.compile(&[], 3650)),
                Actor::system("test"),
            )
            .await
            .unwrap()
            .id
            .unwrap();
        if i == 0 {
            first_id = id;
        }
    }
    let first = pete.get("/console/groups").await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.body.contains("1–50 of 55"), "{}", first.body);
    assert!(in_order(&first, &["Group 00", "Group 01", "Group 49"]));
    assert!(!first.body.contains(">Group 50</a>"));
    let second = pete.get(&link(&first, "next").expect("a next page")).await;
    assert!(second.body.contains("51–55 of 55"), "{}", second.body);
    assert!(in_order(&second, &["Group 50", "Group 54"]));
    assert!(!second.body.contains(">Group 49</a>"));

    // By name both ways; by addresses both ways, ties in id order.
    let by_name = pete.get("/console/groups?sort=name&dir=desc").await;
    assert!(by_name.body.contains("aria-sort=\"descending\"") && by_name.body.contains("Name ▼"));
    assert!(in_order(&by_name, &["Group 54", "Group 53", "Group 05"]));
    assert!(!by_name.body.contains(">Group 04</a>"));
    let by_addresses = pete.get("/console/groups?sort=addresses&dir=desc").await;
    assert!(by_addresses.body.contains("Addresses ▼"));
    assert!(in_order(
        &by_addresses,
        &["Group 02", "Group 05", "Group 08", "Group 00"]
    ));
    let by_addresses = pete.get("/console/groups?sort=addresses").await;
    assert!(by_addresses.body.contains("aria-sort=\"ascending\""));
    assert!(in_order(
        &by_addresses,
        &["Group 00", "Group 03", "Group 06", "Group 01"]
    ));
    // The next page keeps the sort: the last of those with two.
    let rest = pete.get(&link(&by_addresses, "next").unwrap()).await;
    assert!(in_order(
        &rest,
        &["Group 41", "Group 44", "Group 47", "Group 50", "Group 53"]
    ));
    let by_contains = pete.get("/console/groups?sort=groups&dir=desc").await;
    assert!(in_order(
        &by_contains,
        &["Group 10", "Group 00", "Group 01"]
    ));

    // Searched by description, in any case; by name.
    let found = pete.get("/console/groups?q=lawyers").await;
    assert!(found.body.contains("1–1 of 1") && found.body.contains(">Group 07</a>"));
    let found = pete.get("/console/groups?q=GROUP+1").await;
    assert!(found.body.contains("1–10 of 10"), "{}", found.body);
    let none = pete.get("/console/groups?q=nothing+like+it").await;
    assert!(none.body.contains("No profile groups matching"));

    // Past the last page, the last.
    let beyond = pete.get("/console/groups?page=7").await;
    assert!(beyond.body.contains("page 2 of 2") && beyond.body.contains("51–55 of 55"));
}

//! The directory pages: users one at a time, the list, the CSV import as
//! a background job.

use std::time::Duration;

use axum::http::StatusCode;
use sealpost_store::{AdminStore, ConfigChange, Role, audit::Actor};

use super::{audit, post, signed_in, stored};
use crate::console::tests::world;

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

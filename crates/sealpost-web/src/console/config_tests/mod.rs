//! Definitions, profile groups and the directory in the console, against a
//! real database and driven like a browser: create, edit and delete each
//! with its audit entry; each refusal next to its box with nothing half
//! saved; the template preview; the CSV imports and their reports. One
//! module per page; the helpers are here.

mod definitions;
mod directory;
mod groups;

use axum::http::StatusCode;
use sealpost_policy::PolicyDocument;
use sealpost_store::{
    AdminStore, Role,
    audit::{AuditEntry, AuditQuery},
};

use super::tests::{OWN, World, agent, sign_in};
use crate::portal::tests::journeys::{Agent, Page};

pub(super) async fn signed_in(w: &World, name: &str, role: Role) -> (Agent, String) {
    w.admin(name, role, OWN, false).await;
    let mut a = agent(w);
    assert_eq!(
        sign_in(&mut a, name, OWN).await.status,
        StatusCode::SEE_OTHER
    );
    let csrf = a.get("/console").await.csrf();
    (a, csrf)
}

pub(super) async fn stored(w: &World) -> PolicyDocument {
    w.store.load_config().await.unwrap()
}

pub(super) async fn audit(w: &World, kind: &str) -> Vec<AuditEntry> {
    w.store
        .audit(AuditQuery {
            object_kind: Some(kind.into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

pub(super) async fn post(a: &mut Agent, path: &str, csrf: &str, fields: &[(&str, &str)]) -> Page {
    let mut all = vec![("csrf", csrf)];
    all.extend_from_slice(fields);
    a.post(path, &all).await
}

/// The page's body from its table's rows on, so a row's place can be
/// compared.
pub(super) fn rows(page: &Page) -> &str {
    let at = page.body.find("<tbody>").expect("a table");
    &page.body[at..]
}

/// Whether `names` (the text of each row's link) come in this order.
pub(super) fn in_order(page: &Page, names: &[&str]) -> bool {
    let body = rows(page);
    let places: Vec<Option<usize>> = names
        .iter()
        .map(|n| body.find(&format!(">{n}</a>")))
        .collect();
    places.iter().all(Option::is_some) && places.windows(2).all(|w| w[0] < w[1])
}

/// The link with `rel`, as the browser follows it.
pub(super) fn link(page: &Page, rel: &str) -> Option<String> {
    let end = page.body.find(&format!("\" rel=\"{rel}\""))?;
    let start = page.body[..end].rfind("href=\"")? + "href=\"".len();
    Some(
        page.body[start..end]
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&amp;", "&"),
    )
}

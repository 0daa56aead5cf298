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

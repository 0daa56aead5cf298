//! Administration | Gateway | Internal domains (issue 16, item 2): the
//! configuration file's (read-only here) and the stored ones, which policy
//! and super admins add and remove. Changes go through the same policy
//! service as the API (one writer, the live snapshot swapped, audited).

use axum::{
    Form,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_store::{ConfigChange, StoreError};
use serde::{Deserialize, Serialize};

use super::{ConsoleState, SignedIn, home};

#[derive(Debug, Serialize)]
struct DomainRow {
    domain: String,
    source: &'static str,
    removable: bool,
}

impl ConsoleState {
    async fn domains_page(
        &self,
        signed_in: &SignedIn,
        status: StatusCode,
        domain: &str,
        error: Option<String>,
    ) -> Response {
        let mut rows: Vec<DomainRow> = self
            .policy()
            .file_domains()
            .iter()
            .map(|d| DomainRow {
                domain: d.to_string(),
                source: "configuration file",
                removable: false,
            })
            .collect();
        match self.admin_store().load_config().await {
            Ok(doc) => rows.extend(doc.internal_domains.into_iter().map(|d| DomainRow {
                domain: d,
                source: "console or API",
                removable: true,
            })),
            Err(e) => return self.failed(&e),
        }
        self.page(
            "domains.html",
            status,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                domains => rows,
                may_edit => signed_in.admin.role.may_edit_policy(),
                domain,
                error,
            },
        )
    }
}

pub(super) async fn list(State(state): State<ConsoleState>, signed_in: SignedIn) -> Response {
    state
        .domains_page(&signed_in, StatusCode::OK, "", None)
        .await
}

#[derive(Debug, Deserialize)]
pub(super) struct DomainForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    domain: String,
}

/// After a change: back to the list, or the list with the reason.
async fn outcome(
    state: &ConsoleState,
    signed_in: &SignedIn,
    domain: &str,
    result: Result<Option<i64>, StoreError>,
) -> Response {
    match result {
        Ok(_) => Redirect::to("/console/domains").into_response(),
        Err(StoreError::Rejected(invalid)) => {
            state
                .domains_page(
                    signed_in,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    domain,
                    Some(invalid.message.clone()),
                )
                .await
        }
        Err(StoreError::NoSuch(_)) => {
            state
                .domains_page(
                    signed_in,
                    StatusCode::NOT_FOUND,
                    "",
                    Some(format!("{domain} is not a stored internal domain.")),
                )
                .await
        }
        Err(e) => state.failed(&e),
    }
}

pub(super) async fn add(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<DomainForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&signed_in, &headers, &form.csrf) {
        return refused;
    }
    let domain = form.domain.trim().to_owned();
    let pattern = match sealpost_policy::DomainPattern::parse(&domain) {
        Ok(p) => p.to_string(),
        Err(e) => {
            return state
                .domains_page(
                    &signed_in,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &domain,
                    Some(format!(
                        "{domain:?} is not a valid domain or *.domain pattern: {e}"
                    )),
                )
                .await;
        }
    };
    let result = state
        .policy()
        .change(signed_in.actor(), ConfigChange::AddInternalDomain(pattern))
        .await;
    outcome(&state, &signed_in, &domain, result).await
}

pub(super) async fn remove(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<DomainForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&signed_in, &headers, &form.csrf) {
        return refused;
    }
    let domain = form.domain.trim().to_owned();
    let result = state
        .policy()
        .change(
            signed_in.actor(),
            ConfigChange::RemoveInternalDomain(domain.clone()),
        )
        .await;
    outcome(&state, &signed_in, &domain, result).await
}

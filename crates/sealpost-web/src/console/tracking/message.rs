//! A message's page: its facts, each recipient's route and the policy
//! that decided it (linked to the policy's page), the notification, the
//! portal events (registration, openings, replies), the mails sealpost
//! made about it (notifications, receipts), and for super and tracking
//! admins the recall and expiry forms.

use std::time::{Duration, SystemTime};

use axum::{
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::Response,
};
use sealpost_store::{QueueId, StoreError};
use serde::Serialize;

use super::{form, views};
use crate::console::{ConsoleState, SignedIn, home};

/// Errors and values of the message page's forms.
#[derive(Debug, Default, Serialize)]
pub(super) struct Forms {
    /// Recall not confirmed.
    pub(super) confirm_error: Option<String>,
    /// The new expiry as typed, and what is wrong with it.
    pub(super) expires_at: Option<String>,
    pub(super) expires_error: Option<String>,
}

/// `YYYY-MM-DDTHH:MM`, as a `datetime-local` field shows it (UTC here).
pub(in crate::console) fn field_time(t: SystemTime) -> String {
    views::when(t)
        .chars()
        .take(16)
        .collect::<String>()
        .replace(' ', "T")
}

impl ConsoleState {
    /// The 404 page for an id that names no message.
    pub(super) fn no_message(&self, signed_in: &SignedIn, id: &str) -> Response {
        self.page(
            "notice.html",
            StatusCode::NOT_FOUND,
            minijinja::context! {
                title => "No such message",
                text => format!(
                    "{:?} names no message. Queue ids are 16 hex digits, as in the 250 reply.",
                    sealpost_policy::text::one_line(id, 40)
                ),
                action_href => "/console/tracking",
                action_label => "Back to tracking",
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
            },
        )
    }

    pub(super) async fn message_page(
        &self,
        signed_in: &SignedIn,
        id: &str,
        notice: Option<&str>,
        forms: Forms,
        status: StatusCode,
    ) -> Response {
        let Some(queue_id) = QueueId::parse(id) else {
            return self.no_message(signed_in, id);
        };
        let detail = match self.secure().detail(&queue_id).await {
            Ok(detail) => detail,
            Err(StoreError::NotFound(_)) => return self.no_message(signed_in, id),
            Err(e) => return self.failed(&e),
        };
        let snapshot = self.policy().snapshot();
        let tracked = &detail.tracked;
        let is_mail = tracked.message.kind == sealpost_store::MessageKind::Mail;
        let live = views::live_expiry(tracked);
        let latest = tracked.message.received_at + self.settings().retention;
        // Offered: a week more, within the retention.
        let proposed = live.map(|e| (e + Duration::from_secs(7 * 86400)).min(latest));
        let may_manage = signed_in.admin.role.may_manage_messages();
        self.page(
            "tracking_message.html",
            status,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                m => views::message(&snapshot, tracked, &detail.related),
                may_recall => may_manage && is_mail && views::recallable(&tracked.recipients),
                may_extend => may_manage && is_mail && live.is_some(),
                current_expiry => live.map(views::when),
                latest_expiry => views::when(latest),
                expires_value => forms.expires_at.clone().or(proposed.map(field_time)),
                forms,
                notice,
            },
        )
    }
}

/// `GET /console/tracking/{id}`.
pub(in crate::console) async fn page(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = form::pairs(query.as_deref().unwrap_or(""));
    let notice = match form::first(&pairs, "done") {
        Some("recalled") => Some(
            "Recalled: its secure recipients see \"recalled\", deliveries still queued are cancelled, and the content is destroyed.",
        ),
        Some("extended") => Some("The expiry is changed."),
        _ => None,
    };
    state
        .message_page(&signed_in, &id, notice, Forms::default(), StatusCode::OK)
        .await
}

//! CSV import of directory users as a background job, with progress and a
//! report of each refused row.
//!
//! A file of 100,000 rows must not hold the page: the upload starts a
//! tokio task and answers at once with the job's page, which refreshes
//! itself (the `Refresh` header) and shows the rows read, the users to
//! import and the rows refused, then the report. The task reads the file
//! with the API's CSV reader ([`crate::csv::user_rows`], on a blocking
//! thread), checks each user by the API's rules
//! ([`DirectoryUser::from_draft`]) and refuses a bad row with the API's
//! reason and its line; the good rows are then committed through the same
//! store path as `POST /api/v1/directory/users/import`
//! ([`ConfigChange::ImportUsers`] through the policy service): one
//! transaction, one audit entry.
//!
//! Jobs live in memory on the [`ConsoleState`] of the node that ran them
//! (the last [`KEPT`]); a restart forgets the progress, never the users
//! committed.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::SystemTime,
};

use axum::{
    extract::{Multipart, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_policy::{DirectoryUser, UserDraft};
use sealpost_store::{ConfigChange, audit::Actor};
use serde::Serialize;

use super::{ConsoleState, SignedIn, group_import::RefusedRow, home, upload};

/// Jobs kept for their pages.
const KEPT: usize = 20;
/// Most refused rows a report lists (the count is always whole).
const MAX_LISTED: usize = 5000;
/// Seconds between refreshes of a running job's page.
const REFRESH_SECONDS: &str = "2";

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub(super) enum Phase {
    Reading,
    /// The good rows are being committed.
    Saving,
    Done {
        imported: usize,
    },
    /// Nothing was imported.
    Failed {
        reason: String,
    },
}

/// One import's progress, shared between its task and its page.
#[derive(Debug)]
pub(super) struct Job {
    id: String,
    file_name: String,
    started_by: String,
    started_at: SystemTime,
    /// Data lines in the file (its lines less the header): the bar's end.
    lines: usize,
    read: AtomicUsize,
    valid: AtomicUsize,
    refused: AtomicUsize,
    phase: Mutex<Phase>,
    refused_rows: Mutex<Vec<RefusedRow>>,
}

/// A job as its page and the directory list show it.
#[derive(Debug, Serialize)]
pub(super) struct JobView {
    id: String,
    file_name: String,
    started_by: String,
    started_at: String,
    lines: usize,
    read: usize,
    /// The progress bar's end: the lines, or the rows read if more.
    bar_max: usize,
    valid: usize,
    refused: usize,
    phase: Phase,
    finished: bool,
    refused_rows: Vec<RefusedRow>,
}

impl Job {
    fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase;
    }

    fn phase(&self) -> Phase {
        self.phase.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn refuse(&self, line: usize, value: String, reason: String) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let mut rows = self.refused_rows.lock().unwrap_or_else(|e| e.into_inner());
        if rows.len() < MAX_LISTED {
            rows.push(RefusedRow {
                line,
                value,
                reason,
            });
        }
    }

    fn view(&self, with_rows: bool) -> JobView {
        let phase = self.phase();
        let read = self.read.load(Ordering::Relaxed);
        JobView {
            id: self.id.clone(),
            file_name: self.file_name.clone(),
            started_by: self.started_by.clone(),
            started_at: sealpost_store::rfc3339(self.started_at),
            lines: self.lines,
            read,
            bar_max: self.lines.max(read).max(1),
            valid: self.valid.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            finished: matches!(phase, Phase::Done { .. } | Phase::Failed { .. }),
            phase,
            refused_rows: if with_rows {
                self.refused_rows
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            } else {
                Vec::new()
            },
        }
    }

    /// Reads the file row by row; the users to commit. Blocking.
    fn read_rows(&self, text: &str) -> Option<Vec<UserDraft>> {
        let rows = match crate::csv::user_rows(text) {
            Ok(rows) => rows,
            Err(e) => {
                self.set(Phase::Failed { reason: e.message });
                return None;
            }
        };
        let mut users = Vec::new();
        for (line, row) in rows {
            self.read.fetch_add(1, Ordering::Relaxed);
            let user = match row {
                Ok(user) => user,
                Err(reason) => {
                    self.refuse(line, String::new(), reason);
                    continue;
                }
            };
            match DirectoryUser::from_draft(&user) {
                Ok(_) => {
                    self.valid.fetch_add(1, Ordering::Relaxed);
                    users.push(user);
                }
                Err(e) => self.refuse(line, user.address, e.message),
            }
        }
        Some(users)
    }
}

/// The import jobs of this node.
#[derive(Debug, Default)]
pub(super) struct Jobs {
    recent: Mutex<VecDeque<Arc<Job>>>,
}

impl Jobs {
    fn add(&self, job: Arc<Job>) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        while recent.len() >= KEPT {
            // The oldest finished job goes; running ones stay.
            match recent
                .iter()
                .position(|j| !matches!(j.phase(), Phase::Reading | Phase::Saving))
            {
                Some(i) => {
                    recent.remove(i);
                }
                None => break,
            }
        }
        recent.push_back(job);
    }

    fn get(&self, id: &str) -> Option<Arc<Job>> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().find(|j| j.id == id).cloned()
    }

    /// The jobs, newest first, without their rows.
    pub(super) fn recent(&self) -> Vec<JobView> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().rev().map(|j| j.view(false)).collect()
    }
}

impl ConsoleState {
    /// Starts importing `text`; returns the job at once.
    fn start_import(&self, actor: Actor, file_name: String, text: String) -> Arc<Job> {
        let mut id = [0u8; 12];
        getrandom::fill(&mut id).expect("the system's random source");
        let lines = text.lines().count().saturating_sub(1);
        let job = Arc::new(Job {
            id: hex::encode(id),
            file_name,
            started_by: actor.name.clone(),
            started_at: SystemTime::now(),
            lines,
            read: AtomicUsize::new(0),
            valid: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            phase: Mutex::new(Phase::Reading),
            refused_rows: Mutex::new(Vec::new()),
        });
        self.inner.imports.add(job.clone());
        let state = self.clone();
        let running = job.clone();
        tokio::spawn(async move {
            let reader = running.clone();
            let users = tokio::task::spawn_blocking(move || reader.read_rows(&text)).await;
            let users = match users {
                Ok(Some(users)) => users,
                Ok(None) => return,
                Err(e) => {
                    running.set(Phase::Failed {
                        reason: format!("reading the file failed: {e}"),
                    });
                    return;
                }
            };
            if users.is_empty() {
                running.set(Phase::Done { imported: 0 });
                return;
            }
            running.set(Phase::Saving);
            let imported = users.len();
            match state
                .policy()
                .change(actor, ConfigChange::ImportUsers(users))
                .await
            {
                Ok(_) => running.set(Phase::Done { imported }),
                Err(e) => {
                    tracing::warn!(job = %running.id, error = %e, "a directory import was not committed");
                    running.set(Phase::Failed {
                        reason: match e {
                            sealpost_store::StoreError::Rejected(e) => e.message,
                            _ => "the directory could not be saved; try again".to_owned(),
                        },
                    });
                }
            }
        });
        job
    }
}

/// Takes the upload and starts the job; the browser goes to its page.
pub(super) async fn start(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    let uploaded = upload::read(multipart).await;
    let csrf = uploaded.as_ref().map(|u| u.csrf.as_str()).unwrap_or("");
    if let Some(refused) = state.refuse_form(&signed_in, &headers, csrf) {
        return refused;
    }
    let upload = match uploaded {
        Ok(u) => u,
        Err(reason) => {
            return state.not_changed(
                &signed_in,
                "Nothing was imported",
                &reason,
                "/console/directory",
            );
        }
    };
    let job = state.start_import(signed_in.actor(), upload.file_name, upload.text);
    Redirect::to(&format!("/console/directory/import/{}", job.id)).into_response()
}

/// A job's progress, then its report.
pub(super) async fn progress(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let Some(job) = state.inner.imports.get(&id) else {
        return state.page(
            "notice.html",
            StatusCode::NOT_FOUND,
            minijinja::context! {
                title => "No such import",
                text => "This import is not known here: imports are kept on the node that ran them until it restarts. The directory shows what was imported.",
                action_href => "/console/directory",
                action_label => "Open the directory",
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
            },
        );
    };
    let view = job.view(true);
    let finished = view.finished;
    let mut response = state.page(
        "directory_import.html",
        StatusCode::OK,
        minijinja::context! {
            admin => home::admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            job => view,
            refresh => REFRESH_SECONDS,
        },
    );
    if !finished {
        // The page reloads itself while the job runs: no script needed.
        response
            .headers_mut()
            .insert("refresh", HeaderValue::from_static(REFRESH_SECONDS));
    }
    response
}

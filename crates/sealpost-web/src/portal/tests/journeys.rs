//! The account pages against a real database, driven like a browser (a
//! cookie jar, forms with their CSRF field): each rule of issue 15 items
//! 1-2, and the attacks on it.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use axum::{
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
};
use sealpost_policy::{Decision, DefinitionId, EmailAddress, Route};
use sealpost_store::{
    ClientInfo, MessageKind, NewMessage, NewRecipient, NewSecureRecipient, Notify, QueueId,
    SecureTrigger, SqliteStore, Store, StoreError,
};
use sealpost_vault::{PortalToken, Vault};
use tower::ServiceExt;

use super::super::*;
use crate::auth::limit::IpRateLimit;

/// The mails the portal sent.
#[derive(Debug, Default)]
pub(super) struct Captured(Mutex<Vec<SystemMail>>);

#[async_trait::async_trait]
impl Outbox for Captured {
    async fn send(&self, mail: SystemMail) -> Result<(), StoreError> {
        self.0.lock().unwrap().push(mail);
        Ok(())
    }
}

impl Captured {
    fn take(&self) -> Vec<SystemMail> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

pub(super) struct World {
    pub(super) state: PortalState,
    pub(super) store: Arc<SqliteStore>,
    /// The live policy (definition 1 is the one `deliver` uses); tests
    /// change definitions here.
    pub(super) policy: Arc<arc_swap::ArcSwap<sealpost_policy::PolicySet>>,
    pub(super) mails: Arc<Captured>,
    _dir: tempfile::TempDir,
}

pub(super) async fn fresh(
    settings: PortalSettings,
) -> (PortalState, tempfile::TempDir, Arc<Captured>) {
    let w = world(settings, 1000).await;
    (w.state, w._dir, w.mails)
}

pub(super) async fn world(settings: PortalSettings, per_minute: u32) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(
            &dir.path().join("db.sqlite"),
            &dir.path().join("spool"),
            Arc::new(Vault::ephemeral()),
        )
        .await
        .unwrap(),
    );
    let (state, policy, mails) = portal_parts(store.clone(), settings, per_minute, None).await;
    World {
        state,
        store,
        policy,
        mails,
        _dir: dir,
    }
}

/// A portal on `store` (another node's, in the console's tests), with
/// `branding`.
pub(crate) async fn portal_on(
    store: Arc<SqliteStore>,
    settings: PortalSettings,
    branding: Option<Arc<crate::branding::LiveBranding>>,
) -> PortalState {
    portal_parts(store, settings, 1000, branding).await.0
}

type Parts = (
    PortalState,
    Arc<arc_swap::ArcSwap<sealpost_policy::PolicySet>>,
    Arc<Captured>,
);

async fn portal_parts(
    store: Arc<SqliteStore>,
    settings: PortalSettings,
    per_minute: u32,
    branding: Option<Arc<crate::branding::LiveBranding>>,
) -> Parts {
    let mails = Arc::new(Captured::default());
    let n = NonZeroU32::new(per_minute).unwrap();
    let policy = Arc::new(arc_swap::ArcSwap::from_pointee(
        policy_set(&store, |_| {}).await,
    ));
    let queue: Arc<dyn Store> = store.clone();
    let replies = Replies {
        intake: Arc::new(sealpost_intake::Intake {
            settings: sealpost_intake::IntakeSettings::default(),
            store: queue.clone(),
            policy: policy.clone(),
            handoff: None,
            queue_wakeup: Arc::new(tokio::sync::Notify::new()),
        }),
        originals: Arc::new(StoreOriginals {
            store: queue,
            policy: policy.clone(),
        }),
    };
    let state = PortalState::new(
        settings,
        PortalDeps {
            store: store.clone(),
            outbox: mails.clone(),
            rate_limit: Arc::new(IpRateLimit::new(n, n)),
            content: Arc::new(StoreContent(store.clone())),
            definitions: Arc::new(LiveDefinitions {
                secure: store.clone(),
                policy: policy.clone(),
                settings: sealpost_secure::plan::SecureSettings {
                    hostname: "gw.corp.example".into(),
                    portal_url: "http://localhost:8082".into(),
                    subject_tag: String::new(),
                    subject_tag_definition: None,
                    retention: Duration::from_secs(365 * 86400),
                    queue_lifetime: Duration::from_secs(5 * 86400),
                    templates: Default::default(),
                },
            }),
            replies,
            branding,
        },
    )
    .unwrap();
    (state, policy, mails)
}

/// A policy whose only definition (id 1, the default) is `draft`.
pub(super) fn policy_with(draft: sealpost_policy::DefinitionDraft) -> sealpost_policy::PolicySet {
    sealpost_policy::PolicySet::compile(sealpost_policy::PolicyConfig {
        definitions: vec![
            sealpost_policy::Definition::from_draft(DefinitionId(1), true, &draft, 3650).unwrap(),
        ],
        ..sealpost_policy::PolicyConfig::default()
    })
    .unwrap()
}

/// The stored definitions (changed by `edit`), corp.example internal.
pub(super) async fn policy_set(
    store: &SqliteStore,
    edit: impl FnOnce(&mut sealpost_policy::DefinitionDraft),
) -> sealpost_policy::PolicySet {
    use sealpost_store::AdminStore;
    let mut doc = store.load_config().await.unwrap();
    edit(&mut doc.definitions[0].definition);
    let internal = vec![sealpost_policy::DomainPattern::parse("corp.example").unwrap()];
    doc.compile(&internal, 3650).unwrap()
}

/// A secure message to `to`, received at `received`; its portal token.
async fn deliver(
    store: &SqliteStore,
    to: &str,
    subject: &str,
    received: SystemTime,
) -> (QueueId, PortalToken) {
    let content = format!("Subject: {subject}\r\n\r\nbody\r\n").into_bytes();
    deliver_raw(store, to, subject, received, content).await
}

/// A secure message with this content to `to`; its portal token.
pub(super) async fn deliver_raw(
    store: &SqliteStore,
    to: &str,
    subject: &str,
    received: SystemTime,
    content: Vec<u8>,
) -> (QueueId, PortalToken) {
    let mut m = NewMessage::plain(
        QueueId::generate(),
        received,
        Some(EmailAddress::parse("alice@corp.example").unwrap()),
        ClientInfo {
            ip: [192, 0, 2, 1].into(),
            name: None,
            helo: None,
            protocol: "ESMTP".into(),
        },
        content,
        received + Duration::from_secs(86400),
        MessageKind::Mail,
        vec![NewRecipient {
            address: EmailAddress::parse(to).unwrap(),
            orcpt: None,
            notify: Notify::default(),
            decision: Decision {
                route: Route::Secure {
                    definition: DefinitionId(1),
                },
                policy: None,
            },
        }],
    );
    m.subject = Some(subject.to_owned());
    let token = PortalToken::generate();
    m.secure.push(NewSecureRecipient {
        idx: 0,
        token_hash: token.hash().0,
        definition: DefinitionId(1),
        trigger: SecureTrigger::Policy,
        notification: None,
        expires_at: received + Duration::from_secs(30 * 86400),
        tls_or_portal: false,
    });
    (store.accept(m).await.unwrap(), token)
}

/// A browser: cookies kept, our Origin sent with every POST. The
/// console's tests drive its router with it too.
pub(crate) struct Agent {
    router: axum::Router,
    pub(crate) origin: String,
    pub(crate) cookies: HashMap<String, String>,
    /// The last response's `Set-Cookie` values.
    pub(crate) set_cookies: Vec<String>,
}

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
    pub(crate) bytes: Vec<u8>,
}

impl Page {
    pub(crate) fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("a form with a csrf field: {} {}", self.status, self.body));
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    pub(crate) fn location(&self) -> &str {
        self.headers[header::LOCATION].to_str().unwrap()
    }
}

impl Agent {
    /// A browser on the portal.
    pub(super) fn new(state: &PortalState) -> Self {
        Self::at(router(state.clone()), &state.settings().url)
    }

    /// A browser on `router`, whose pages come from `origin`.
    pub(crate) fn at(router: axum::Router, origin: &str) -> Self {
        Agent {
            router,
            origin: origin.to_owned(),
            cookies: HashMap::new(),
            set_cookies: Vec::new(),
        }
    }

    async fn send(&mut self, request: axum::http::request::Builder, body: Body) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let request = if cookie.is_empty() {
            request
        } else {
            request.header(header::COOKIE, cookie.join("; "))
        };
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        self.set_cookies.clear();
        for v in response.headers().get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap().to_owned();
            let (pair, _) = v.split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if v.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
            self.set_cookies.push(v);
        }
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            bytes: body.to_vec(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        self.send(Request::get(path), Body::empty()).await
    }

    /// Posts `fields` as a form, from our origin unless `origin` says.
    pub(crate) async fn post_from(
        &mut self,
        origin: Option<&str>,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Page {
        let body: String = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut request =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        self.send(request, Body::from(body)).await
    }

    /// Posts a `multipart/form-data` form from our origin: `fields`, then
    /// `files` as (field, file name, content type, bytes).
    pub(crate) async fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &str, &[u8])],
    ) -> Page {
        const BOUNDARY: &str = "----sealpost-test-boundary";
        let mut body = Vec::new();
        for (k, v) in fields {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        for (field, file_name, content_type, bytes) in files {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; \
                     filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        let request = Request::post(path)
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .header(header::ORIGIN, self.origin.clone());
        self.send(request, Body::from(body)).await
    }

    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let origin = self.origin.clone();
        self.post_from(Some(&origin), path, fields).await
    }

    /// Posts `fields` and one file (`file` field: name, content) as
    /// `multipart/form-data`, from our origin.
    pub(crate) async fn post_file(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        file: (&str, &str),
    ) -> Page {
        const BOUNDARY: &str = "sealpost-test-boundary-7d1c";
        let mut body = String::new();
        for (name, value) in fields {
            body.push_str(&format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: text/csv\r\n\r\n{}\r\n--{BOUNDARY}--\r\n",
            file.0, file.1
        ));
        let request = Request::post(path)
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .header(header::ORIGIN, self.origin.clone());
        self.send(request, Body::from(body)).await
    }

    /// GETs `form_path`, then posts `fields` with the form's token.
    pub(crate) async fn submit(
        &mut self,
        form_path: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> Page {
        let csrf = self.get(form_path).await.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    fn session_cookie(&self) -> Option<&String> {
        self.cookies.get("sealpost_session")
    }
}

pub(crate) fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) const GOOD: &str = "violet-harbour-quietly-sixteen";

/// Registers bob@partner.example through a notification link.
async fn registered(w: &World) -> (Agent, QueueId, PortalToken) {
    let (id, token) = deliver(
        &w.store,
        "bob@partner.example",
        "Q3 contract",
        SystemTime::now(),
    )
    .await;
    let mut bob = Agent::new(&w.state);
    let path = format!("/open/{}", token.as_str());
    let page = bob
        .submit(&path, &path, &[("password", GOOD), ("confirm", GOOD)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), format!("/messages/{id}/0"));
    (bob, id, token)
}

fn settings() -> PortalSettings {
    PortalSettings::default()
}

#[tokio::test]
async fn first_visit_shows_the_message_refuses_weak_passwords_and_registers_once() {
    let w = world(settings(), 1000).await;
    let (id, token) = deliver(
        &w.store,
        "Bob@Partner.example",
        "Q3 <contract>",
        SystemTime::now(),
    )
    .await;
    let path = format!("/open/{}", token.as_str());
    let mut bob = Agent::new(&w.state);
    let page = bob.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Choose a password"), "{}", page.body);
    assert!(page.body.contains("alice@corp.example"));
    assert!(page.body.contains("Q3 &lt;contract&gt;"), "escaped subject");
    assert!(page.body.contains("Readable until"));
    assert!(page.body.contains("autocomplete=\"new-password\""));

    // Too short, then guessable from the address and sender: refused
    // with a message that helps, nothing registered.
    let csrf = page.csrf();
    let short = bob
        .post(
            &path,
            &[("csrf", &csrf), ("password", "short"), ("confirm", "short")],
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        short.body.contains("at least 12 characters"),
        "{}",
        short.body
    );
    let weak = "bob@partner.example1";
    let guessable = bob
        .post(
            &path,
            &[("csrf", &csrf), ("password", weak), ("confirm", weak)],
        )
        .await;
    assert_eq!(
        guessable.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        guessable.body
    );
    assert!(guessable.body.contains("role=\"alert\""));
    assert!(
        guessable
            .body
            .contains("This password is too easy to guess."),
        "the portal's words, with zxcvbn's findings: {}",
        guessable.body
    );
    let differ = bob
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("password", GOOD),
                ("confirm", "violet-harbour"),
            ],
        )
        .await;
    assert!(differ.body.contains("not the same"));
    assert!(bob.session_cookie().is_none());

    let done = bob
        .post(
            &path,
            &[("csrf", &csrf), ("password", GOOD), ("confirm", GOOD)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), format!("/messages/{id}/0"));
    let inbox = bob.get("/inbox").await;
    assert_eq!(inbox.status, StatusCode::OK);
    assert!(inbox.body.contains("Q3 &lt;contract&gt;"), "{}", inbox.body);
    assert!(inbox.body.contains("class=\"unread\""));

    // The same link again, from another browser: it asks for the
    // password; choosing a new one through it is impossible.
    let mut mallory = Agent::new(&w.state);
    let again = mallory.get(&path).await;
    assert!(again.body.contains("Enter your password"), "{}", again.body);
    assert!(!again.body.contains("new-password"));
    let other = "another-long-passphrase-here";
    let reuse = mallory
        .submit(&path, &path, &[("password", other), ("confirm", other)])
        .await;
    assert_eq!(reuse.status, StatusCode::OK);
    assert!(reuse.body.contains("do not match"), "{}", reuse.body);
    assert!(mallory.session_cookie().is_none());
    // The password is still the first one; the link opens the message.
    let open = mallory.submit(&path, &path, &[("password", GOOD)]).await;
    assert_eq!(open.status, StatusCode::SEE_OTHER);
    assert_eq!(open.location(), format!("/messages/{id}/0"));
}

#[tokio::test]
async fn a_guessed_token_gets_the_same_404_as_any_unknown_page() {
    let w = world(settings(), 1000).await;
    deliver(&w.store, "bob@partner.example", "x", SystemTime::now()).await;
    let mut agent = Agent::new(&w.state);
    let unknown = agent.get("/no-such-page").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    for path in [
        format!("/open/{}", PortalToken::generate().as_str()),
        "/open/not-a-token".to_owned(),
    ] {
        let page = agent.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(page.body, unknown.body, "{path}");
    }
    let token = PortalToken::generate();
    let path = format!("/open/{}", token.as_str());
    let csrf = agent.get("/sign-in").await.csrf();
    let post = agent
        .post(
            &path,
            &[("csrf", &csrf), ("password", GOOD), ("confirm", GOOD)],
        )
        .await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);
    assert_eq!(post.body, unknown.body);
}

#[tokio::test]
async fn forms_without_the_token_with_a_wrong_one_or_from_another_site_are_refused() {
    let w = world(settings(), 1000).await;
    let (mut bob, _, _) = registered(&w).await;
    let mut agent = Agent::new(&w.state);
    let csrf = agent.get("/sign-in").await.csrf();
    let fields = |t: &'static str| {
        [
            ("email", "bob@partner.example"),
            ("password", GOOD),
            ("csrf", t),
        ]
    };
    let missing = agent
        .post(
            "/sign-in",
            &[("email", "bob@partner.example"), ("password", GOOD)],
        )
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let wrong = agent.post("/sign-in", &fields("0".repeat(64).leak())).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    // Another browser's token (bound to its own pre-session cookie).
    let other = Agent::new(&w.state).get("/sign-in").await.csrf();
    let foreign_token = agent.post("/sign-in", &fields(other.leak())).await;
    assert_eq!(foreign_token.status, StatusCode::FORBIDDEN);
    let evil = agent
        .post_from(
            Some("https://evil.example"),
            "/sign-in",
            &fields(csrf.clone().leak()),
        )
        .await;
    assert_eq!(evil.status, StatusCode::FORBIDDEN);
    let silent = agent
        .post_from(None, "/sign-in", &fields(csrf.clone().leak()))
        .await;
    assert_eq!(silent.status, StatusCode::FORBIDDEN);
    assert!(agent.session_cookie().is_none());
    // The genuine one passes.
    let ok = agent.post("/sign-in", &fields(csrf.leak())).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);

    // Sign-out needs the session's token too.
    let out = bob.post("/sign-out", &[("csrf", "")]).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    let pre = agent.get("/forgot-password").await.csrf();
    let out = bob.post("/sign-out", &[("csrf", &pre)]).await;
    assert_eq!(
        out.status,
        StatusCode::FORBIDDEN,
        "a pre-session token is not a session's"
    );
    assert_eq!(bob.get("/inbox").await.status, StatusCode::OK);
    let token = bob.get("/inbox").await.csrf();
    let out = bob.post("/sign-out", &[("csrf", &token)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/sign-in");
    assert!(bob.set_cookies[0].contains("Max-Age=0"));
    assert_eq!(bob.get("/inbox").await.location(), "/sign-in");
}

#[tokio::test]
async fn an_unknown_address_and_a_wrong_password_answer_identically() {
    let w = world(settings(), 1000).await;
    registered(&w).await;
    let mut agent = Agent::new(&w.state);
    let answer = |email: &'static str| [("email", email), ("password", "wrong-password-123")];
    let csrf = agent.get("/sign-in").await.csrf();
    let mut pages = Vec::new();
    for email in [
        "bob@partner.example",
        "nobody@partner.example",
        "not an address",
    ] {
        let mut fields = answer(email).to_vec();
        fields.push(("csrf", &csrf));
        let started = std::time::Instant::now();
        let page = agent.post("/sign-in", &fields).await;
        pages.push((
            page.status,
            page.body.replace(email, "EMAIL"),
            started.elapsed(),
        ));
    }
    assert_eq!(pages[0].0, StatusCode::OK);
    assert!(pages[0].1.contains("do not match"));
    assert_eq!(pages[0].0, pages[1].0);
    assert_eq!(pages[0].1, pages[1].1);
    assert_eq!(pages[0].0, pages[2].0);
    // argon2 ran every time: each took at least a few milliseconds.
    for (_, _, took) in &pages {
        assert!(*took > Duration::from_millis(3), "{took:?}");
    }
}

#[tokio::test]
async fn brute_force_locks_the_account_and_the_ip_limit_answers_429() {
    let w = world(settings(), 1000).await;
    registered(&w).await;
    let mut agent = Agent::new(&w.state);
    let csrf = agent.get("/sign-in").await.csrf();
    for _ in 0..5 {
        let page = agent
            .post(
                "/sign-in",
                &[
                    ("csrf", &csrf),
                    ("email", "bob@partner.example"),
                    ("password", "guess-guess-guess"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK);
    }
    // Locked now: even the right password is refused, with the same page.
    let page = agent
        .post(
            "/sign-in",
            &[
                ("csrf", &csrf),
                ("email", "bob@partner.example"),
                ("password", GOOD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("do not match"));
    assert!(agent.session_cookie().is_none());
    let account = w
        .store
        .account(&sealpost_store::portal::AccountKey::of(
            &EmailAddress::parse("bob@partner.example").unwrap(),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        account.failed_sign_ins, 5,
        "locked attempts are not counted"
    );

    // Per client IP: 3 a minute here.
    let w = world(settings(), 3).await;
    let mut agent = Agent::new(&w.state);
    let csrf = agent.get("/sign-in").await.csrf();
    let fields = [
        ("csrf", csrf.as_str()),
        ("email", "x@y.example"),
        ("password", "guess-guess-guess"),
    ];
    for _ in 0..3 {
        assert_eq!(agent.post("/sign-in", &fields).await.status, StatusCode::OK);
    }
    let limited = agent.post("/sign-in", &fields).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    assert!(limited.body.contains("Too many attempts"));
    let forgot = agent.post("/forgot-password", &fields).await;
    assert_eq!(
        forgot.status,
        StatusCode::TOO_MANY_REQUESTS,
        "one budget for all"
    );
}

#[tokio::test]
async fn a_session_id_planted_before_sign_in_is_not_kept() {
    let w = world(settings(), 1000).await;
    let (bob, _, _) = registered(&w).await;
    let first = bob.session_cookie().unwrap().clone();
    let planted = "ab".repeat(32);
    let mut victim = Agent::new(&w.state);
    victim
        .cookies
        .insert("sealpost_session".into(), planted.clone());
    let page = victim
        .submit(
            "/sign-in",
            "/sign-in",
            &[("email", "bob@partner.example"), ("password", GOOD)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let new = victim.session_cookie().unwrap();
    assert_ne!(new, &planted);
    assert_ne!(new, &first);
    let mut attacker = Agent::new(&w.state);
    attacker.cookies.insert("sealpost_session".into(), planted);
    assert_eq!(attacker.get("/inbox").await.status, StatusCode::SEE_OTHER);
    assert_eq!(victim.get("/inbox").await.status, StatusCode::OK);
}

#[tokio::test]
async fn cookie_flags_are_exact() {
    // Over https: __Host-, Secure, HttpOnly, SameSite=Strict.
    let w = world(
        PortalSettings {
            url: "https://portal.example.com".into(),
            ..settings()
        },
        1000,
    )
    .await;
    let (token_id, token) = deliver(&w.store, "bob@partner.example", "x", SystemTime::now()).await;
    let _ = token_id;
    let mut bob = Agent::new(&w.state);
    let path = format!("/open/{}", token.as_str());
    bob.get(&path).await;
    let pre = bob.set_cookies[0].clone();
    let (name_value, flags) = pre.split_once(';').unwrap();
    assert!(name_value.starts_with("__Host-sealpost_form="), "{pre}");
    assert_eq!(
        flags,
        " Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=3600"
    );
    let csrf = bob.get(&path).await.csrf();
    assert!(
        bob.set_cookies.is_empty(),
        "the pre-session cookie is kept while valid"
    );
    bob.post(
        &path,
        &[("csrf", &csrf), ("password", GOOD), ("confirm", GOOD)],
    )
    .await;
    let set = &bob.set_cookies[0];
    let value = bob.cookies["__Host-sealpost_session"].clone();
    assert_eq!(value.len(), 64);
    assert_eq!(
        set,
        &format!("__Host-sealpost_session={value}; Path=/; Secure; HttpOnly; SameSite=Strict")
    );
    // On http://localhost: the plain name, no Secure, otherwise the same.
    let w = world(settings(), 1000).await;
    let (bob, _, _) = registered(&w).await;
    let value = bob.session_cookie().unwrap();
    assert_eq!(
        bob.set_cookies[0],
        format!("sealpost_session={value}; Path=/; HttpOnly; SameSite=Strict")
    );
}

fn link_in(mail: &SystemMail, path: &str) -> String {
    let text = String::from_utf8_lossy(&mail.content).replace("=\r\n", "");
    let at = text
        .find(path)
        .unwrap_or_else(|| panic!("{path} in {text}"));
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "/-_".contains(*c))
        .collect()
}

#[tokio::test]
async fn a_forgotten_password_is_reset_once_and_ends_every_session() {
    let w = world(settings(), 1000).await;
    let (mut bob, _, _) = registered(&w).await;
    let mut other = Agent::new(&w.state);
    let unknown = other
        .submit(
            "/forgot-password",
            "/forgot-password",
            &[("email", "nobody@partner.example")],
        )
        .await;
    let known = other
        .submit(
            "/forgot-password",
            "/forgot-password",
            &[("email", "BOB@partner.example")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(unknown.body, known.body, "the same answer either way");
    let mails = w.mails.take();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to.to_string(), "bob@partner.example");
    let head = String::from_utf8_lossy(&mails[0].content);
    let subject = head.lines().find(|l| l.starts_with("Subject:")).unwrap();
    let link = link_in(&mails[0], "/reset/");
    assert!(!subject.contains(&link[7..]), "no token in the subject");

    let page = other.get(&link).await;
    assert!(page.body.contains("Choose a new password"));
    let weak = other
        .submit(
            &link,
            &link,
            &[("password", "password1234"), ("confirm", "password1234")],
        )
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    let new = "granite-lantern-orbit-meadow";
    let done = other
        .submit(&link, &link, &[("password", new), ("confirm", new)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/inbox");
    assert_eq!(other.get("/inbox").await.status, StatusCode::OK);
    // The old session ended; the link works once.
    assert_eq!(bob.get("/inbox").await.location(), "/sign-in");
    let again = other.get(&link).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(again.body.contains("no longer works"));
    let mut fresh = Agent::new(&w.state);
    let old = fresh
        .submit(
            "/sign-in",
            "/sign-in",
            &[("email", "bob@partner.example"), ("password", GOOD)],
        )
        .await;
    assert_eq!(old.status, StatusCode::OK, "the old password is gone");
    let ok = fresh
        .submit(
            "/sign-in",
            "/sign-in",
            &[("email", "bob@partner.example"), ("password", new)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_expired_link_offers_a_new_one_mailed_only_for_a_live_message() {
    let w = world(settings(), 1000).await;
    let eight_days_ago = SystemTime::now() - Duration::from_secs(8 * 86400);
    let (_, token) = deliver(&w.store, "carol@partner.example", "old", eight_days_ago).await;
    let path = format!("/open/{}", token.as_str());
    let mut carol = Agent::new(&w.state);
    let page = carol.get(&path).await;
    assert!(page.body.contains("This link has expired"), "{}", page.body);
    assert!(!page.body.contains("new-password"));
    // Posting a password anyway registers nothing.
    carol
        .submit(&path, &path, &[("password", GOOD), ("confirm", GOOD)])
        .await;
    assert!(carol.session_cookie().is_none());
    let renew = format!("{path}/renew");
    let sent = carol.submit(&path, &renew, &[]).await;
    assert_eq!(sent.status, StatusCode::OK);
    assert!(sent.body.contains("Check your email"));
    let mails = w.mails.take();
    assert_eq!(mails.len(), 1);
    let link = link_in(&mails[0], "/open/");
    let page = carol.get(&link).await;
    assert!(page.body.contains("Choose a password"), "{}", page.body);
    let done = carol
        .submit(&link, &link, &[("password", GOOD), ("confirm", GOOD)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/inbox");
    // Once the account exists, the expired link mails nothing more, and
    // answers the same page.
    let mut someone = Agent::new(&w.state);
    let again = someone.submit(&path, &renew, &[]).await;
    assert_eq!(again.body, sent.body);
    assert!(w.mails.take().is_empty());
}

#[tokio::test]
async fn signed_in_pages_need_a_live_session() {
    let w = world(settings(), 1000).await;
    let mut nobody = Agent::new(&w.state);
    let page = nobody.get("/inbox").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/sign-in");
    let (mut bob, _, _) = registered(&w).await;
    assert_eq!(bob.get("/sign-in").await.location(), "/inbox");
    // A session past its idle limit is over (the store's clock is ours).
    let idle = world(
        PortalSettings {
            sessions: crate::auth::session::Timeouts {
                idle: Duration::from_millis(1),
                absolute: Duration::from_secs(3600),
            },
            ..settings()
        },
        1000,
    )
    .await;
    let (mut bob, _, _) = registered(&idle).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(bob.get("/inbox").await.location(), "/sign-in");
}

mod replies;

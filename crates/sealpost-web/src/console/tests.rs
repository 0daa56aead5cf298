//! The console's sign-in against a real database, driven like a browser
//! (a cookie jar, forms with their CSRF field): the one-time password
//! journey, the form guards, the lockout, session fixation and roles.

use std::{sync::Arc, time::SystemTime};

use axum::{
    Router,
    http::{StatusCode, header},
};
use sealpost_store::{
    AdminStore, ConsoleStore, Role, SqliteStore,
    console::{AdminName, NewAdministrator},
    portal::PasswordHash,
};
use sealpost_vault::Vault;

use super::*;
use crate::{
    auth::password::{self, Password},
    portal::tests::journeys::{Agent, Page},
};

pub(super) const URL: &str = "http://localhost:8081";
const ONE_TIME: &str = "abcde-fghjk-mnpqr-stuvw";
pub(super) const OWN: &str = "granite-lantern-orbit-meadow";

pub(super) struct World {
    pub(super) router: Router,
    pub(super) store: Arc<SqliteStore>,
    /// The live policies; a test that writes the store directly loads them.
    pub(super) policy: Arc<crate::PolicyService>,
    _dir: tempfile::TempDir,
}

pub(super) async fn world() -> World {
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
    let live = Arc::new(arc_swap::ArcSwap::from_pointee(
        sealpost_policy::PolicySet::with_internal_domains(Default::default()),
    ));
    let policy = Arc::new(crate::PolicyService::new(
        store.clone(),
        live.clone(),
        crate::FileRules {
            internal_domains: vec![sealpost_policy::DomainPattern::parse("corp.example").unwrap()],
            max_expiry_days: 3650,
            ..crate::FileRules::default()
        },
    ));
    policy.load().await.unwrap();
    let state = ConsoleState::new(
        ConsoleSettings::new(URL.into()),
        store.clone(),
        store.clone(),
        store.clone(),
        policy.clone(),
        Arc::new(crate::branding::BrandingService::new(
            store.clone(),
            Arc::new(crate::branding::LiveBranding::new(
                crate::branding::Branding::default(),
                store.clone(),
                std::time::Duration::ZERO,
            )),
        )),
    )
    .unwrap()
    .with_queue(sealpost_queue::QueueControl::new(
        store.clone(),
        live,
        sealpost_queue::QueueConfig::default(),
        Arc::new(tokio::sync::Notify::new()),
    ));
    World {
        router: router(state),
        store,
        policy,
        _dir: dir,
    }
}

impl World {
    pub(super) async fn admin(&self, name: &str, role: Role, password: &str, one_time: bool) {
        let hash = password::hash(&Password::new(password)).unwrap();
        assert!(
            self.store
                .create_administrator(
                    NewAdministrator {
                        name: AdminName::parse(name).unwrap(),
                        role,
                        password: PasswordHash::new(hash.as_phc().to_owned()),
                        must_change_password: one_time,
                        now: SystemTime::now(),
                    },
                    sealpost_store::audit::Actor::system("test")
                )
                .await
                .unwrap()
        );
    }
}

pub(super) fn agent(w: &World) -> Agent {
    Agent::at(w.router.clone(), URL)
}

/// Signs in through the form; the response to the POST.
pub(super) async fn sign_in(agent: &mut Agent, name: &str, password: &str) -> Page {
    agent
        .submit(
            "/console/sign-in",
            "/console/sign-in",
            &[("name", name), ("password", password)],
        )
        .await
}

#[tokio::test]
async fn a_one_time_password_must_be_replaced_before_anything_else() {
    let w = world().await;
    w.admin("Ann", Role::SuperAdmin, ONE_TIME, true).await;
    let mut ann = agent(&w);

    let page = ann.get("/console").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/sign-in");
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");

    let wrong = sign_in(&mut ann, "ann", "not-the-password").await;
    assert_eq!(wrong.status, StatusCode::OK);
    assert!(wrong.body.contains("do not match"), "{}", wrong.body);
    assert!(wrong.body.contains("value=\"ann\""), "the name is kept");

    let signed = sign_in(&mut ann, "ANN", ONE_TIME).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location(), "/console");
    let cookie = ann
        .set_cookies
        .iter()
        .find(|c| c.starts_with("sealpost_console="))
        .expect("the console's own cookie (plain HTTP on localhost)");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // Every page but the password form and sign-out sends Ann there.
    assert_eq!(ann.get("/console").await.location(), "/console/password");
    let form = ann.get("/console/password").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("Choose your own password"));
    let csrf = form.csrf();
    let post = |current: &'static str, new: &'static str, confirm: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("current", current.into()),
            ("password", new.into()),
            ("confirm", confirm.into()),
        ]
    };
    let fields = |f: &[(&'static str, String); 4]| {
        f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
    };
    for (current, new, confirm, says) in [
        (
            "wrong-current-password",
            OWN,
            OWN,
            "current password is not right",
        ),
        (
            ONE_TIME,
            OWN,
            "granite-lantern-orbit-meadoww",
            "not the same",
        ),
        (
            ONE_TIME,
            "password1234",
            "password1234",
            "too easy to guess",
        ),
        (ONE_TIME, ONE_TIME, ONE_TIME, "other than the current one"),
    ] {
        let f = fields(&post(current, new, confirm));
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = ann.post("/console/password", &f).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{says}");
        assert!(page.body.contains(says), "{says}: {}", page.body);
    }
    let f = fields(&post(ONE_TIME, OWN, OWN));
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = ann.post("/console/password", &f).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/console?done=password");
    let home = ann.get("/console?done=password").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("Your password is changed."));
    assert!(
        home.body.contains("Administrators"),
        "a super admin sees them"
    );

    // The one-time password is spent; the new one works elsewhere.
    let mut other = agent(&w);
    assert_eq!(
        sign_in(&mut other, "ann", ONE_TIME).await.status,
        StatusCode::OK
    );
    assert_eq!(
        sign_in(&mut other, "ann", OWN).await.status,
        StatusCode::SEE_OTHER
    );

    // Sign-out ends the session and clears the cookie.
    let home = ann.get("/console").await;
    let out = ann
        .post("/console/sign-out", &[("csrf", &home.csrf())])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(ann.set_cookies.iter().any(|c| c.contains("Max-Age=0")));
    assert_eq!(ann.get("/console").await.location(), "/console/sign-in");
}

#[tokio::test]
async fn forms_without_their_token_or_from_another_origin_are_refused() {
    let w = world().await;
    w.admin("ann", Role::SuperAdmin, OWN, false).await;
    let mut eve = agent(&w);
    let form = eve.get("/console/sign-in").await;
    let page = eve
        .post("/console/sign-in", &[("name", "ann"), ("password", OWN)])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    let page = eve
        .post_from(
            Some("https://evil.example"),
            "/console/sign-in",
            &[("csrf", &form.csrf()), ("name", "ann"), ("password", OWN)],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    let mut ann = agent(&w);
    assert_eq!(
        sign_in(&mut ann, "ann", OWN).await.status,
        StatusCode::SEE_OTHER
    );
    let out = ann.post("/console/sign-out", &[("csrf", "AAAA")]).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    assert_eq!(
        ann.get("/console").await.status,
        StatusCode::OK,
        "still signed in"
    );
}

#[tokio::test]
async fn repeated_failures_lock_the_account_and_a_planted_session_id_is_not_kept() {
    let w = world().await;
    w.admin("ann", Role::SuperAdmin, OWN, false).await;
    let mut eve = agent(&w);
    for _ in 0..6 {
        assert_eq!(
            sign_in(&mut eve, "ann", "guess-guess-guess").await.status,
            StatusCode::OK
        );
    }
    let ann = w
        .store
        .administrator(&AdminName::parse("ann").unwrap())
        .await
        .unwrap()
        .unwrap();
    // Five counted; the sixth came during the back-off and was not
    // compared (nor counted).
    assert_eq!(ann.failed_sign_ins, 5);
    let mut real = agent(&w);
    let locked = sign_in(&mut real, "ann", OWN).await;
    assert_eq!(
        locked.status,
        StatusCode::OK,
        "locked: the right password fails too"
    );
    assert!(locked.body.contains("too many attempts"));

    let w = world().await;
    w.admin("bob", Role::ReadOnly, OWN, false).await;
    let mut bob = agent(&w);
    let planted = "ab".repeat(32);
    bob.cookies
        .insert("sealpost_console".into(), planted.clone());
    assert_eq!(
        sign_in(&mut bob, "bob", OWN).await.status,
        StatusCode::SEE_OTHER
    );
    assert_ne!(
        bob.cookies["sealpost_console"], planted,
        "a new id at sign-in"
    );
    // A read-only administrator is not shown the administrators.
    let home = bob.get("/console").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        !home.body.contains("<h2 id=\"admins-heading\">"),
        "{}",
        home.body
    );
}

/// The secret a secret page shows once.
fn secret_of(page: &Page) -> String {
    let at = page
        .body
        .find("<code id=\"secret\">")
        .unwrap_or_else(|| panic!("a secret: {} {}", page.status, page.body));
    let rest = &page.body[at + 18..];
    rest[..rest.find('<').unwrap()].to_owned()
}

#[tokio::test]
async fn a_super_admin_manages_administrators_and_api_keys_and_no_one_else_may() {
    let w = world().await;
    w.admin("ann", Role::SuperAdmin, OWN, false).await;
    w.admin("pete", Role::ReadOnly, OWN, false).await;
    let mut ann = agent(&w);
    assert_eq!(
        sign_in(&mut ann, "ann", OWN).await.status,
        StatusCode::SEE_OTHER
    );
    let list = ann.get("/console/administrators").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("pete"));

    // Create Dana; her one-time password signs her in, to the password form.
    let created = ann
        .submit(
            "/console/administrators",
            "/console/administrators",
            &[("name", "Dana"), ("role", "policy_admin")],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let one_time = secret_of(&created);
    // Recorded as Ann's doing, from her address, without the password.
    let entry = w
        .store
        .audit(sealpost_store::audit::AuditQuery {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (
            entry.change.action.as_str(),
            entry.change.object_kind.as_str()
        ),
        ("create", "administrator")
    );
    assert_eq!(entry.actor.name, "ann");
    assert_eq!(entry.actor.client_ip, Some("127.0.0.1".parse().unwrap()));
    assert!(!serde_json::to_string(&entry).unwrap().contains(&one_time));
    let mut dana = agent(&w);
    assert_eq!(
        sign_in(&mut dana, "dana", &one_time).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(dana.get("/console").await.location(), "/console/password");

    // Refusals name what to fix, and nothing is made.
    for (name, role, says) in [
        ("da na", "read_only", "is not an administrator name"),
        ("dana", "read_only", "already an administrator named dana"),
        ("erin", "emperor", "is not a role"),
    ] {
        let page = ann
            .submit(
                "/console/administrators",
                "/console/administrators",
                &[("name", name), ("role", role)],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{says}");
        assert!(page.body.contains(says), "{says}: {}", page.body);
    }
    assert_eq!(w.store.administrators().await.unwrap().len(), 3);

    // Roles: Dana's changes; the last super admin keeps hers.
    let page = ann
        .submit(
            "/console/administrators",
            "/console/administrators/dana/role",
            &[("role", "tracking_admin")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let dana_now = w
        .store
        .administrator(&AdminName::parse("dana").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dana_now.role, Role::TrackingAdmin);
    let page = ann
        .submit(
            "/console/administrators",
            "/console/administrators/ann/role",
            &[("role", "read_only")],
        )
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.body.contains("last super admin"), "{}", page.body);

    // A new one-time password ends Dana's session and replaces the old one.
    let reset = ann
        .submit(
            "/console/administrators",
            "/console/administrators/dana/reset",
            &[],
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    let again = secret_of(&reset);
    assert_ne!(again, one_time);
    assert_eq!(
        dana.get("/console/password").await.location(),
        "/console/sign-in"
    );
    let mut other = agent(&w);
    assert_eq!(
        sign_in(&mut other, "dana", &one_time).await.status,
        StatusCode::OK
    );

    // API keys: made (shown once), listed, revoked.
    let key = ann
        .submit(
            "/console/api-keys",
            "/console/api-keys",
            &[("name", "backup script"), ("role", "read_only")],
        )
        .await;
    assert_eq!(key.status, StatusCode::OK, "{}", key.body);
    let token = secret_of(&key);
    assert!(token.starts_with("sp_"), "{token}");
    let id = token.split('_').nth(1).unwrap().to_owned();
    let keys = ann.get("/console/api-keys").await;
    assert!(keys.body.contains(&id) && keys.body.contains("backup script"));
    assert!(
        !keys.body.contains(&token),
        "the key itself is never listed"
    );
    let revoked = ann
        .submit(
            "/console/api-keys",
            &format!("/console/api-keys/{id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert!(!ann.get("/console/api-keys").await.body.contains(&id));

    // Pete (read only) is refused every page and form, on the server.
    let mut pete = agent(&w);
    assert_eq!(
        sign_in(&mut pete, "pete", OWN).await.status,
        StatusCode::SEE_OTHER
    );
    let csrf = pete.get("/console").await.csrf();
    for path in ["/console/administrators", "/console/api-keys"] {
        assert_eq!(pete.get(path).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    for (path, fields) in [
        (
            "/console/administrators",
            vec![("name", "mallory"), ("role", "super_admin")],
        ),
        (
            "/console/administrators/pete/role",
            vec![("role", "super_admin")],
        ),
        ("/console/administrators/ann/reset", vec![]),
        ("/console/administrators/ann/remove", vec![]),
        (
            "/console/api-keys",
            vec![("name", "x"), ("role", "super_admin")],
        ),
    ] {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend(fields);
        assert_eq!(
            pete.post(path, &all).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    assert_eq!(w.store.administrators().await.unwrap().len(), 3);
    let pete_now = w
        .store
        .administrator(&AdminName::parse("pete").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pete_now.role, Role::ReadOnly);

    // Removing: Dana goes; Ann, the last super admin, stays.
    let gone = ann
        .submit(
            "/console/administrators",
            "/console/administrators/dana/remove",
            &[],
        )
        .await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    let kept = ann
        .submit(
            "/console/administrators",
            "/console/administrators/ann/remove",
            &[],
        )
        .await;
    assert_eq!(kept.status, StatusCode::CONFLICT);
    assert_eq!(w.store.administrators().await.unwrap().len(), 2);

    // The audit log shows it all, filtered; auditors (read only) read it,
    // a tracking admin may not.
    let log = ann.get("/console/audit").await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    for seen in ["set_role", "reset_password", "delete", "dana", "api_key"] {
        assert!(log.body.contains(seen), "{seen} in the log");
    }
    let keys = ann.get("/console/audit?object_kind=api_key").await;
    assert!(keys.body.contains("api_key") && !keys.body.contains("set_role"));
    let bad = ann.get("/console/audit?since=yesterday").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("is not a date"), "{}", bad.body);
    assert_eq!(pete.get("/console/audit").await.status, StatusCode::OK);
    w.admin("tom", Role::TrackingAdmin, OWN, false).await;
    let mut tom = agent(&w);
    assert_eq!(
        sign_in(&mut tom, "tom", OWN).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        tom.get("/console/audit").await.status,
        StatusCode::FORBIDDEN
    );
}

/// The walk-through's steps 1-2: Administration | Gateway | Policies, the
/// policy types, then the Secure Messaging list with names for groups and
/// definitions, statuses and the status filter; any role may look.
#[tokio::test]
async fn the_policy_list_shows_each_policy_with_names_and_status() {
    use sealpost_store::{ConfigChange, audit::Actor};
    let w = world().await;
    w.admin("pete", Role::ReadOnly, OWN, false).await;
    let check = || -> sealpost_store::ConfigCheck { Box::new(|doc| doc.compile(&[], 3650)) };
    let change = |c: ConfigChange| {
        let store = w.store.clone();
        async move {
            store
                .change_config(c, check(), Actor::system("test"))
                .await
                .unwrap()
                .id
        }
    };
    let group = change(ConfigChange::CreateGroup(sealpost_policy::GroupDraft {
        name: "Key partners".into(),
        description: String::new(),
        addresses: vec!["p@partner.example".into()],
        domains: vec![],
        groups: vec![],
    }))
    .await
    .unwrap();
    for (narrative, extra) in [
        (
            "Contracts to partners",
            format!(r#""to": {{"kind": "group", "group_id": {group}}}"#),
        ),
        (
            "Paused rule",
            r#""to": {"kind": "external"}, "enabled": false"#.to_owned(),
        ),
        (
            "Next year",
            r#""to": {"kind": "external"}, "starts_at": "2099-01-01T00:00:00Z""#.to_owned(),
        ),
    ] {
        let draft: sealpost_policy::PolicyDraft = serde_json::from_str(&format!(
            r#"{{"narrative": "{narrative}", "action": "apply_definition", "definition_id": 1,
                "from": {{"kind": "internal"}}, {extra}}}"#
        ))
        .unwrap();
        change(ConfigChange::CreatePolicy(draft)).await;
    }
    w.policy.load().await.unwrap();
    let mut pete = agent(&w);
    assert_eq!(
        sign_in(&mut pete, "pete", OWN).await.status,
        StatusCode::SEE_OTHER
    );
    let types = pete.get("/console/policies").await;
    assert_eq!(types.status, StatusCode::OK, "{}", types.body);
    assert!(types.body.contains("Secure Messaging"));
    assert!(
        types.body.contains("<td>3</td><td>1</td>"),
        "3 policies, 1 active: {}",
        types.body
    );

    let list = pete.get("/console/policies/secure-messaging").await;
    assert_eq!(list.status, StatusCode::OK);
    for seen in [
        "Contracts to partners",
        "in profile group Key partners",
        "Default",
        "status-active",
        "status-disabled",
        "status-future",
        "from 2099-01-01",
    ] {
        assert!(list.body.contains(seen), "{seen}: {}", list.body);
    }
    let disabled = pete
        .get("/console/policies/secure-messaging?status=disabled")
        .await;
    assert!(disabled.body.contains("Paused rule"));
    assert!(!disabled.body.contains("Contracts to partners"));
    let none = pete
        .get("/console/policies/secure-messaging?status=expired")
        .await;
    assert!(none.body.contains("No policies with this status"));
}

/// The route table (the router is built from it alone, so no route exists
/// without a rule): every route refuses, with 403 and no change, every
/// role its rule does not name, and sends anyone signed out to sign in
/// unless it is public.
#[tokio::test]
async fn every_route_refuses_the_roles_its_rule_does_not_name() {
    use super::{Access, routes};
    let w = world().await;
    let mut agents = Vec::new();
    for role in Role::ALL {
        let name = format!("as-{}", role.as_str().replace('_', "-"));
        w.admin(&name, role, OWN, false).await;
        let mut a = agent(&w);
        assert_eq!(
            sign_in(&mut a, &name, OWN).await.status,
            StatusCode::SEE_OTHER
        );
        let csrf = a.get("/console").await.csrf();
        agents.push((role, a, csrf));
    }
    let concrete = |path: &str| {
        path.replace("{name}", "as-read-only")
            .replace("{id}", "nothing")
            .replace("{key}", "nothing")
            .replace("{job}", "nothing")
            .replace("{address}", "nobody@corp.example")
            .replace("{*rest}", "anything")
    };
    let mut denials = 0;
    for route in routes() {
        let path = concrete(route.path);
        for &method in route.methods {
            let mut anonymous = agent(&w);
            let page = if method == "GET" {
                anonymous.get(&path).await
            } else {
                anonymous.post(&path, &[]).await
            };
            if route.access != Access::Public {
                assert_eq!(
                    page.status,
                    StatusCode::SEE_OTHER,
                    "{method} {path} signed out"
                );
                assert_eq!(page.location(), "/console/sign-in", "{method} {path}");
            }
            let Access::Roles(allowed) = route.access else {
                continue;
            };
            for (role, a, csrf) in &mut agents {
                if allowed.contains(role) {
                    continue;
                }
                let page = if method == "GET" {
                    a.get(&path).await
                } else {
                    a.post(
                        &path,
                        &[
                            ("csrf", csrf.as_str()),
                            ("name", "x"),
                            ("role", "super_admin"),
                        ],
                    )
                    .await
                };
                assert_eq!(
                    page.status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} as {}",
                    role.as_str()
                );
                denials += 1;
            }
        }
    }
    assert!(denials > 10, "the table has role rules to test ({denials})");
    // Nothing changed: the four administrators as they were, no keys.
    let admins = w.store.administrators().await.unwrap();
    assert_eq!(admins.len(), 4);
    assert!(admins.iter().all(|a| !a.must_change_password));
    let ro = admins
        .iter()
        .find(|a| a.name.as_str() == "as-read-only")
        .unwrap();
    assert_eq!(ro.role, Role::ReadOnly);
    assert!(w.store.list_api_keys().await.unwrap().is_empty());
}

/// Internal domains: the file's shown read-only; a policy admin adds and
/// removes stored ones through the policy service (checked, audited);
/// errors are named on the page.
#[tokio::test]
async fn a_policy_admin_manages_internal_domains() {
    let w = world().await;
    w.admin("pat", Role::PolicyAdmin, OWN, false).await;
    let mut pat = agent(&w);
    assert_eq!(
        sign_in(&mut pat, "pat", OWN).await.status,
        StatusCode::SEE_OTHER
    );
    let page = pat.get("/console/domains").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("corp.example") && page.body.contains("configuration file"));
    assert!(
        !page.body.contains("/console/domains/remove"),
        "the file's are not removable"
    );

    let added = pat
        .submit(
            "/console/domains",
            "/console/domains",
            &[("domain", "*.Subsidiary.example")],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let doc = w.store.load_config().await.unwrap();
    assert_eq!(doc.internal_domains, ["*.subsidiary.example"]);
    let entry = &w
        .store
        .audit(sealpost_store::audit::AuditQuery {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()[0];
    assert_eq!(
        (entry.change.object_kind.as_str(), entry.actor.name.as_str()),
        ("internal_domain", "pat")
    );
    for (domain, says) in [
        ("not a domain", "is not a valid domain"),
        ("*.subsidiary.example", "already an internal domain"),
    ] {
        let page = pat
            .submit(
                "/console/domains",
                "/console/domains",
                &[("domain", domain)],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{domain}");
        assert!(page.body.contains(says), "{says}: {}", page.body);
        assert!(
            page.body.contains(&format!("value=\"{domain}\"")),
            "the input is kept"
        );
    }
    let removed = pat
        .submit(
            "/console/domains",
            "/console/domains/remove",
            &[("domain", "*.subsidiary.example")],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert!(
        w.store
            .load_config()
            .await
            .unwrap()
            .internal_domains
            .is_empty()
    );
    let gone = pat
        .submit(
            "/console/domains",
            "/console/domains/remove",
            &[("domain", "nowhere.example")],
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

mod branding;
mod queue;
mod totp;
mod tracking;

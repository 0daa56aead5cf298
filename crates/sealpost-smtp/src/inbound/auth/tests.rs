//! The submission session end to end in memory: a whole client dialogue
//! pipelined into [`run_session`](super::super::run_session) (or
//! [`run_tls_session`](super::super::run_tls_session), which takes the
//! stream as already secured) against a real intake and SQLite store, with
//! accounts from a fake [`SmtpAccounts`].

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use base64::{Engine, engine::general_purpose::STANDARD};
use sealpost_intake::{Intake, IntakeSettings};
use sealpost_policy::{DomainPattern, InternalDomains, PolicySet};
use sealpost_store::{
    SqliteStore, StoreError,
    smtp_accounts::{SmtpAccount, SmtpAccountName},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::Notify,
};
use tokio_util::sync::CancellationToken;

use super::{GuardSettings, SmtpAccounts, SubmissionAuth, sasl::Credentials};
use crate::inbound::{Inbound, InboundConfig, busy_poll::BusyPoll};

const PASSWORD: &str = "Tangerine-Orbit-42";

/// One account, `crm`, sending as crm@corp.example; counts last-use notes.
#[derive(Debug, Default)]
struct Fake {
    used: Mutex<usize>,
}

#[async_trait::async_trait]
impl SmtpAccounts for Fake {
    async fn verify(&self, c: Credentials) -> Result<Option<SmtpAccount>, StoreError> {
        Ok(
            (c.name.eq_ignore_ascii_case("crm") && c.password.expose() == PASSWORD).then(|| {
                SmtpAccount {
                    name: SmtpAccountName::parse("crm").unwrap(),
                    senders: vec!["crm@corp.example".into()],
                    rate_per_hour: 100,
                    created_at: SystemTime::UNIX_EPOCH,
                    password_changed_at: SystemTime::UNIX_EPOCH,
                    last_used_at: None,
                }
            }),
        )
    }

    async fn used(&self, _: &SmtpAccountName, _: SystemTime) {
        *self.used.lock().unwrap() += 1;
    }
}

struct World {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    inbound: Arc<Inbound>,
}

async fn world(submission: bool) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        &dir.path().join("db.sqlite"),
        &dir.path().join("spool"),
        Arc::new(sealpost_vault::Vault::ephemeral()),
    )
    .await
    .unwrap();
    let internal = InternalDomains::new(vec![DomainPattern::parse("corp.example").unwrap()]);
    let inbound = Arc::new(Inbound {
        config: InboundConfig {
            hostname: "gw.test".into(),
            idle_timeout: Duration::from_secs(5),
            ..InboundConfig::default()
        },
        intake: Arc::new(Intake {
            settings: IntakeSettings::default(),
            store: Arc::new(store.clone()),
            policy: Arc::new(ArcSwap::from_pointee(PolicySet::with_internal_domains(
                internal,
            ))),
            handoff: None,
            queue_wakeup: Arc::new(Notify::new()),
        }),
        tls: None,
        open_transactions: Default::default(),
        busy_poll: BusyPoll::new(Duration::ZERO),
        submission: submission.then(|| {
            Arc::new(SubmissionAuth::new(
                Arc::new(Fake::default()),
                GuardSettings {
                    failure_delay: Duration::from_millis(1),
                    failure_delay_max: Duration::from_millis(2),
                    account_failures: 2,
                    ..GuardSettings::default()
                },
            ))
        }),
    });
    World {
        _dir: dir,
        store,
        inbound,
    }
}

/// Sends `input` (all of it, pipelined) and returns the server's replies,
/// one string per reply line.
async fn dialogue(w: &World, secured: bool, input: &str) -> Vec<String> {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (mut from_server, mut to_server) = tokio::io::split(client);
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let inbound = w.inbound.clone();
    let session = async move {
        if secured {
            crate::inbound::run_tls_session(server, peer, inbound, CancellationToken::new()).await;
        } else {
            crate::inbound::run_session(server, peer, inbound, CancellationToken::new()).await;
        }
    };
    let send = async {
        let _ = to_server.write_all(input.as_bytes()).await;
        let _ = to_server.shutdown().await;
    };
    let receive = async {
        let mut out = Vec::new();
        let _ = from_server.read_to_end(&mut out).await;
        out
    };
    let ((), (), out) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(session, send, receive)
    })
    .await
    .expect("the session ends");
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn plain(name: &str, password: &str) -> String {
    STANDARD.encode(format!("\0{name}\0{password}"))
}

fn has(replies: &[String], prefix: &str) -> bool {
    replies.iter().any(|r| r.starts_with(prefix))
}

const MESSAGE: &str = "From: CRM <crm@corp.example>\r\nSubject: hi\r\n\r\nbody\r\n.\r\n";
const FORGED: &str = "From: CEO <ceo@corp.example>\r\nSubject: hi\r\n\r\nbody\r\n.\r\n";

#[tokio::test]
async fn before_tls_auth_is_neither_offered_nor_accepted_and_mail_needs_it() {
    let w = world(true).await;
    let r = dialogue(
        &w,
        false,
        &format!(
            "EHLO c\r\nAUTH PLAIN {}\r\nMAIL FROM:<crm@corp.example>\r\nQUIT\r\n",
            plain("crm", PASSWORD)
        ),
    )
    .await;
    assert!(!r.iter().any(|l| l.contains("AUTH")), "{r:?}");
    assert!(has(&r, "538 5.7.11"), "{r:?}");
    assert!(has(&r, "530 5.7.0"), "{r:?}");
}

#[tokio::test]
async fn on_port_25_auth_is_neither_offered_nor_accepted() {
    let w = world(false).await;
    let r = dialogue(
        &w,
        true,
        &format!(
            "EHLO c\r\nAUTH PLAIN {}\r\nQUIT\r\n",
            plain("crm", PASSWORD)
        ),
    )
    .await;
    assert!(!r.iter().any(|l| l.contains("AUTH P")), "{r:?}");
    assert!(has(&r, "502 5.5.1"), "{r:?}");
}

#[tokio::test]
async fn an_authenticated_client_relays_as_its_own_senders_and_its_name_is_stored() {
    let w = world(true).await;
    let r = dialogue(
        &w,
        true,
        &format!(
            "EHLO c\r\nMAIL FROM:<crm@corp.example>\r\nAUTH PLAIN {}\r\n\
             MAIL FROM:<ceo@corp.example>\r\nMAIL FROM:<>\r\n\
             MAIL FROM:<crm@corp.example>\r\nRCPT TO:<bob@partner.example>\r\nDATA\r\n{FORGED}\
             MAIL FROM:<crm@corp.example>\r\nRCPT TO:<bob@partner.example>\r\nDATA\r\n{MESSAGE}\
             QUIT\r\n",
            plain("crm", PASSWORD)
        ),
    )
    .await;
    let codes: Vec<&str> = r
        .iter()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| &l[..l.len().min(9)])
        .collect();
    assert_eq!(
        codes,
        [
            "220 gw.te",
            "250 AUTH ",
            "530 5.7.0",
            "235 2.7.0",
            "553 5.7.1",
            "553 5.7.1",
            "250 2.1.0",
            "250 2.1.5",
            "354 End d",
            "553 5.7.1",
            "250 2.1.0",
            "250 2.1.5",
            "354 End d",
            "250 2.0.0",
            "221 2.0.0",
        ],
        "{r:?}"
    );
    assert!(!r.iter().any(|l| l.contains("STARTTLS")), "{r:?}");
    let queued = r.iter().find(|l| l.contains("queued as")).unwrap();
    let id = sealpost_store::QueueId::parse(queued.rsplit(' ').next().unwrap()).unwrap();
    use sealpost_store::Store;
    let stored = w.store.message(&id).await.unwrap();
    assert_eq!(stored.smtp_account.as_deref(), Some("crm"));
    assert_eq!(w.store.recipients(&id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn failures_get_535_then_the_name_is_locked_even_for_the_right_password() {
    let w = world(true).await;
    let r = dialogue(
        &w,
        true,
        &format!(
            "EHLO c\r\nAUTH PLAIN {}\r\nAUTH LOGIN {}\r\n{}\r\nAUTH PLAIN {}\r\nQUIT\r\n",
            plain("crm", "wrong"),
            STANDARD.encode("crm"),
            STANDARD.encode("also wrong"),
            plain("crm", PASSWORD)
        ),
    )
    .await;
    let finals: Vec<&String> = r
        .iter()
        .filter(|l| l.starts_with('5') || l.starts_with('4') || l.starts_with('2'))
        .collect();
    assert!(has(&r, "535 5.7.8"), "{r:?}");
    assert_eq!(
        r.iter().filter(|l| l.starts_with("535 5.7.8")).count(),
        2,
        "{r:?}"
    );
    assert!(has(&r, "454 4.7.0"), "{r:?}");
    assert!(!has(&r, "235"), "{finals:?}");
}

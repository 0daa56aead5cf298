//! The portal store ([`PortalStore`]): registration, failure counters,
//! sessions, one-time links and the mailbox, against a real database.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sealpost_policy::{Decision, DefinitionId, EmailAddress, Route};
use sealpost_vault::PortalToken;

use super::{message, open};
use crate::{
    NewSecureRecipient, PortalStore, QueueId, SecureStore, SecureTrigger, Store, StoreError,
    portal::{
        Access, AccountKey, CsrfSecret, Folder, LinkPurpose, MailboxCursor, MailboxQuery, NewLink,
        NewSession, PasswordHash, Registration, RegistrationProof, SessionHash, SessionLimits,
    },
};

/// A fixed "now", so every time below is exact.
pub(super) fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

pub(super) const DAY: Duration = Duration::from_secs(86400);
pub(super) const TTL: Duration = Duration::from_secs(7 * 86400);

pub(super) fn key(address: &str) -> AccountKey {
    AccountKey::of(&EmailAddress::parse(address).unwrap())
}

pub(super) fn hash(text: &str) -> PasswordHash {
    PasswordHash::new(format!("$argon2id$v=19$m=19456,t=2,p=1${text}"))
}

/// A secure message to `to` from `from`, received at `received` and
/// readable for `days`. Returns it with its portal token.
pub(super) fn secure_to(
    to: &str,
    from: &str,
    subject: &str,
    received: SystemTime,
    days: u64,
) -> (crate::NewMessage, PortalToken) {
    let mut m = message(b"Subject: x\r\n\r\nbody\r\n".to_vec(), &[to]);
    m.received_at = received;
    m.sender = Some(EmailAddress::parse(from).unwrap());
    m.subject = Some(subject.to_owned());
    m.recipients[0].decision = Decision {
        route: Route::Secure {
            definition: DefinitionId(1),
        },
        policy: None,
    };
    let token = PortalToken::generate();
    m.secure.push(NewSecureRecipient {
        idx: 0,
        token_hash: token.hash().0,
        definition: DefinitionId(1),
        trigger: SecureTrigger::Policy,
        notification: None,
        expires_at: received + DAY * days as u32,
        tls_or_portal: false,
    });
    (m, token)
}

async fn deliver(
    store: &super::SqliteStore,
    to: &str,
    subject: &str,
    received: SystemTime,
) -> (QueueId, PortalToken) {
    let (m, token) = secure_to(to, "alice@corp.example", subject, received, 30);
    (store.accept(m).await.unwrap(), token)
}

pub(super) fn new_session(id: u8, account: &AccountKey, now: SystemTime) -> NewSession {
    NewSession {
        id: SessionHash([id; 32]),
        account: account.clone(),
        csrf: CsrfSecret([id ^ 0xff; 32]),
        client_ip: "192.0.2.1".parse().unwrap(),
        user_agent: "é".repeat(200),
        now,
    }
}

const LIMITS: SessionLimits = SessionLimits {
    idle: Duration::from_secs(30 * 60),
    absolute: Duration::from_secs(12 * 3600),
};

#[tokio::test]
async fn registration_needs_a_valid_unused_token_of_the_address_and_happens_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (id, first) = deliver(&store, "Bob@Partner.example", "one", t0()).await;
    let (_, second) = deliver(&store, "bob@partner.example", "two", t0() + DAY).await;
    let (_, old) = deliver(&store, "bob@partner.example", "old", t0() - TTL * 2).await;
    let bob = key("BOB@partner.example");
    let now = t0() + DAY * 2;

    let link = store
        .registration_link(first.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.account, bob, "the match key folds case");
    assert_eq!((link.message, link.idx), (id, 0));
    assert_eq!(link.issued_at, t0());
    assert!(link.registered_at.is_none() && !link.account_exists);

    let made_up = PortalToken::generate().hash();
    assert_eq!(
        store
            .register(RegistrationProof::PortalToken(made_up), hash("a"), TTL, now)
            .await
            .unwrap(),
        Registration::UnknownLink
    );
    assert_eq!(
        store
            .register(
                RegistrationProof::PortalToken(old.hash()),
                hash("a"),
                TTL,
                now
            )
            .await
            .unwrap(),
        Registration::Expired,
        "older than the registration TTL"
    );
    assert!(store.account(&bob).await.unwrap().is_none());

    let Registration::Created(account) = store
        .register(
            RegistrationProof::PortalToken(first.hash()),
            hash("a"),
            TTL,
            now,
        )
        .await
        .unwrap()
    else {
        panic!("a fresh token registers");
    };
    assert_eq!(account.key, bob);
    assert_eq!(store.account(&bob).await.unwrap(), Some(account.clone()));
    assert_eq!(
        (account.created_at, account.password_changed_at),
        (now, now)
    );

    // Single use, and one account per address whatever the token.
    for (token, expected) in [
        (first.hash(), Registration::Used),
        (second.hash(), Registration::AccountExists),
    ] {
        assert_eq!(
            store
                .register(RegistrationProof::PortalToken(token), hash("b"), TTL, now)
                .await
                .unwrap(),
            expected
        );
    }
    assert_eq!(
        store.account(&bob).await.unwrap().unwrap().password_hash,
        hash("a")
    );
    let link = store
        .registration_link(first.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.registered_at, Some(now));
    assert!(link.account_exists);
    let link = store
        .registration_link(second.hash())
        .await
        .unwrap()
        .unwrap();
    assert!(link.registered_at.is_none() && link.account_exists);
}

#[tokio::test]
async fn no_account_without_a_secure_message_and_a_fresh_link_registers_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let now = t0();
    let nobody = key("nobody@partner.example");
    let register_link = |account: &AccountKey, token: &PortalToken| NewLink {
        token: token.hash(),
        purpose: LinkPurpose::Register,
        account: account.clone(),
        expires_at: now + Duration::from_secs(3600),
    };
    // No secure message: no link, no account.
    let token = PortalToken::generate();
    assert!(
        !store
            .create_link(register_link(&nobody, &token), now)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .register(RegistrationProof::Link(token.hash()), hash("a"), TTL, now)
            .await
            .unwrap(),
        Registration::UnknownLink
    );
    assert!(store.account(&nobody).await.unwrap().is_none());

    // A relayed message to the address does not count either.
    store
        .accept(message(b"x".to_vec(), &["nobody@partner.example"]))
        .await
        .unwrap();
    assert!(
        !store
            .create_link(register_link(&nobody, &token), now)
            .await
            .unwrap()
    );

    // The notification link expired; a fresh one is mailed and registers.
    let (_, old) = deliver(&store, "carol@partner.example", "s", now - TTL * 2).await;
    let carol = key("carol@partner.example");
    assert_eq!(
        store
            .register(
                RegistrationProof::PortalToken(old.hash()),
                hash("a"),
                TTL,
                now
            )
            .await
            .unwrap(),
        Registration::Expired
    );
    let fresh = PortalToken::generate();
    assert!(
        store
            .create_link(register_link(&carol, &fresh), now)
            .await
            .unwrap()
    );
    // A reset link needs an account, which carol does not have yet.
    let reset = PortalToken::generate();
    let reset_link = NewLink {
        purpose: LinkPurpose::Reset,
        ..register_link(&carol, &reset)
    };
    assert!(!store.create_link(reset_link.clone(), now).await.unwrap());
    assert!(matches!(
        store
            .register(RegistrationProof::Link(fresh.hash()), hash("a"), TTL, now)
            .await
            .unwrap(),
        Registration::Created(_)
    ));
    assert_eq!(
        store
            .register(RegistrationProof::Link(fresh.hash()), hash("b"), TTL, now)
            .await
            .unwrap(),
        Registration::Used
    );
    // With an account, no registration link; a reset link now.
    assert!(
        !store
            .create_link(register_link(&carol, &PortalToken::generate()), now)
            .await
            .unwrap()
    );
    assert!(store.create_link(reset_link, now).await.unwrap());
}

#[tokio::test]
async fn failed_sign_ins_count_atomically_and_a_session_clears_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (_, token) = deliver(&store, "bob@partner.example", "s", t0()).await;
    let bob = key("bob@partner.example");
    let now = t0() + Duration::from_secs(60);
    store
        .register(
            RegistrationProof::PortalToken(token.hash()),
            hash("a"),
            TTL,
            now,
        )
        .await
        .unwrap();

    assert_eq!(
        store
            .record_failed_sign_in(&key("who@partner.example"), now)
            .await
            .unwrap(),
        None,
        "nothing stored for an unknown address"
    );
    assert!(
        store
            .account(&key("who@partner.example"))
            .await
            .unwrap()
            .is_none()
    );

    // Two nodes counting at once: both count.
    let (a, b) = tokio::join!(
        store.record_failed_sign_in(&bob, now),
        store.record_failed_sign_in(&bob, now + Duration::from_secs(1)),
    );
    let mut counts = [a.unwrap().unwrap(), b.unwrap().unwrap()];
    counts.sort();
    assert_eq!(counts, [1, 2]);
    let account = store.account(&bob).await.unwrap().unwrap();
    assert_eq!(account.failed_sign_ins, 2);
    assert!(account.last_failure_at.is_some());

    store
        .create_session(new_session(1, &bob, now))
        .await
        .unwrap();
    let account = store.account(&bob).await.unwrap().unwrap();
    assert_eq!(
        (account.failed_sign_ins, account.last_failure_at),
        (0, None)
    );
    assert!(matches!(
        store
            .create_session(new_session(2, &key("who@partner.example"), now))
            .await,
        Err(StoreError::NoSuch(_))
    ));
}

#[tokio::test]
async fn sessions_are_looked_up_touched_limited_and_ended() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (_, token) = deliver(&store, "bob@partner.example", "s", t0()).await;
    let bob = key("bob@partner.example");
    let now = t0();
    store
        .register(
            RegistrationProof::PortalToken(token.hash()),
            hash("a"),
            TTL,
            now,
        )
        .await
        .unwrap();
    for id in 1..=3 {
        store
            .create_session(new_session(id, &bob, now))
            .await
            .unwrap();
    }
    let one = SessionHash([1; 32]);
    let session = store.session(one, LIMITS, now).await.unwrap().unwrap();
    assert_eq!(session.account, bob);
    assert_eq!(session.csrf, CsrfSecret([0xfe; 32]));
    assert_eq!(session.client_ip, "192.0.2.1");
    assert_eq!(session.user_agent.len(), 256, "bounded at a char boundary");
    assert_eq!((session.created_at, session.last_seen_at), (now, now));
    assert!(
        store
            .session(SessionHash([9; 32]), LIMITS, now)
            .await
            .unwrap()
            .is_none()
    );

    // Touches are written at most once a minute.
    assert!(
        !store
            .touch_session(one, LIMITS, now + Duration::from_secs(30))
            .await
            .unwrap()
    );
    let later = now + Duration::from_secs(25 * 60);
    assert!(store.touch_session(one, LIMITS, later).await.unwrap());
    // Idle: session 2 was not touched for 30 minutes, session 1 was.
    let idle = now + Duration::from_secs(31 * 60);
    assert!(store.session(one, LIMITS, idle).await.unwrap().is_some());
    assert!(
        store
            .session(SessionHash([2; 32]), LIMITS, idle)
            .await
            .unwrap()
            .is_none()
    );
    // Absolute: however busy, 12 hours end it.
    let mut at = later;
    while at < now + LIMITS.absolute {
        at += Duration::from_secs(20 * 60);
        store.touch_session(one, LIMITS, at).await.unwrap();
    }
    assert!(store.session(one, LIMITS, at).await.unwrap().is_none());
    // An idle session is not revived by a late touch.
    assert!(
        !store
            .touch_session(SessionHash([2; 32]), LIMITS, idle)
            .await
            .unwrap()
    );
    let purged = store.purge_expired(LIMITS, at).await.unwrap();
    assert_eq!(purged.sessions, 3);

    for id in 4..=6 {
        store
            .create_session(new_session(id, &bob, at))
            .await
            .unwrap();
    }
    assert!(store.end_session(SessionHash([4; 32])).await.unwrap());
    assert!(!store.end_session(SessionHash([4; 32])).await.unwrap());
    assert_eq!(
        store
            .end_other_sessions(&bob, Some(SessionHash([5; 32])))
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .session(SessionHash([5; 32]), LIMITS, at)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .session(SessionHash([6; 32]), LIMITS, at)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_link_is_used_once_before_its_expiry_and_a_reset_ends_every_session() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (_, token) = deliver(&store, "bob@partner.example", "s", t0()).await;
    let bob = key("bob@partner.example");
    let now = t0();
    store
        .register(
            RegistrationProof::PortalToken(token.hash()),
            hash("a"),
            TTL,
            now,
        )
        .await
        .unwrap();
    let expires_at = now + Duration::from_secs(30 * 60);
    let reset = |token: &PortalToken| NewLink {
        token: token.hash(),
        purpose: LinkPurpose::Reset,
        account: bob.clone(),
        expires_at,
    };
    let (first, second, late) = (
        PortalToken::generate(),
        PortalToken::generate(),
        PortalToken::generate(),
    );
    for t in [&first, &second, &late] {
        assert!(store.create_link(reset(t), now).await.unwrap());
    }

    // Looking does not use it.
    let seen = store.link(first.hash(), now).await.unwrap().unwrap();
    assert_eq!(
        (seen.purpose, &seen.account, seen.expires_at),
        (LinkPurpose::Reset, &bob, expires_at)
    );
    assert_eq!(
        store
            .consume_link(first.hash(), LinkPurpose::Register, now)
            .await
            .unwrap(),
        None,
        "only for its purpose"
    );
    assert_eq!(
        store
            .consume_link(first.hash(), LinkPurpose::Reset, now)
            .await
            .unwrap(),
        Some(bob.clone())
    );
    assert_eq!(
        store
            .consume_link(first.hash(), LinkPurpose::Reset, now)
            .await
            .unwrap(),
        None,
        "once"
    );
    assert!(store.link(first.hash(), now).await.unwrap().is_none());
    assert_eq!(
        store
            .consume_link(late.hash(), LinkPurpose::Reset, expires_at)
            .await
            .unwrap(),
        None,
        "not at or after its expiry"
    );

    for id in 1..=2 {
        store
            .create_session(new_session(id, &bob, now))
            .await
            .unwrap();
    }
    store.record_failed_sign_in(&bob, now).await.unwrap();
    let changed = now + Duration::from_secs(60);
    assert_eq!(
        store
            .reset_password(second.hash(), hash("new"), changed)
            .await
            .unwrap(),
        Some(bob.clone())
    );
    let account = store.account(&bob).await.unwrap().unwrap();
    assert_eq!(account.password_hash, hash("new"));
    assert_eq!(account.password_changed_at, changed);
    assert_eq!(account.failed_sign_ins, 0);
    for id in 1..=2 {
        assert!(
            store
                .session(SessionHash([id; 32]), LIMITS, changed)
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(
        store
            .reset_password(second.hash(), hash("again"), changed)
            .await
            .unwrap(),
        None
    );
    let purged = store.purge_expired(LIMITS, expires_at).await.unwrap();
    assert_eq!(purged.links, 3, "used and expired links go");
}

fn inbox(search: Option<&str>, after: Option<MailboxCursor>, limit: usize) -> MailboxQuery {
    MailboxQuery {
        folder: Folder::Inbox,
        search: search.map(str::to_owned),
        include_ended: false,
        after,
        limit,
    }
}

#[tokio::test]
async fn a_mailbox_holds_only_its_addresss_messages_and_pages_stably() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let bob = key("bob@partner.example");
    let carol = key("carol@partner.example");
    let mut bobs = Vec::new();
    for i in 0..5u32 {
        // Two messages share a receipt time: the id breaks the tie.
        let at = t0() + Duration::from_secs(u64::from(i.min(3)) * 60);
        bobs.push(
            deliver(&store, "Bob@partner.example", &format!("b{i}"), at)
                .await
                .0,
        );
    }
    let (carols, _) = deliver(&store, "carol@partner.example", "c", t0()).await;
    let now = t0() + DAY;

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .mailbox(&bob, inbox(None, after, 2), now)
            .await
            .unwrap();
        assert!(page.rows.len() <= 2);
        assert_eq!(
            page.next.is_some(),
            seen.len() + page.rows.len() < 5,
            "no empty last page"
        );
        seen.extend(page.rows.iter().map(|r| r.message.clone()));
        // Mail arriving meanwhile (newer) does not shift later pages.
        if seen.len() == 2 {
            deliver(&store, "bob@partner.example", "new", t0() + DAY / 2).await;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut expected = bobs.clone();
    expected.sort_by(|a, b| b.cmp(a));
    // Receipt times grow with the index, and the two at `3` minutes are
    // ordered by id: newest first is the reverse of acceptance.
    assert_eq!(seen, expected);

    let row = &store
        .mailbox(&carol, inbox(None, None, 10), now)
        .await
        .unwrap()
        .rows;
    assert_eq!(row.len(), 1);
    assert_eq!(row[0].message, carols);
    assert_eq!(row[0].sender, "alice@corp.example");
    assert_eq!(row[0].subject.as_deref(), Some("c"));
    assert_eq!(
        (row[0].received_at, row[0].expires_at),
        (t0(), t0() + DAY * 30)
    );
    assert_eq!(row[0].access, Access::Live);
    assert_eq!(row[0].has_attachments, None, "not recorded yet");
    assert!(!row[0].read);
    assert!(
        store
            .mailbox(
                &carol,
                MailboxQuery {
                    folder: Folder::Sent,
                    ..inbox(None, None, 10)
                },
                now
            )
            .await
            .unwrap()
            .rows
            .is_empty()
    );
}

#[tokio::test]
async fn another_address_gets_not_found_for_every_message_operation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (id, _) = deliver(&store, "bob@partner.example", "s", t0()).await;
    let carol = key("carol@partner.example");
    let bob = key("BOB@partner.example");
    let now = t0() + DAY;
    let not_found =
        |r: Result<(), StoreError>| matches!(r, Err(StoreError::NotFound(ref i)) if *i == id);

    assert!(matches!(
        store.mailbox_message(&carol, &id, 0, now).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(not_found(store.mark_read(&carol, &id, 0, true).await));
    assert!(not_found(store.delete_message(&carol, &id, 0, now).await));
    store.delete_message(&bob, &id, 0, now).await.unwrap();
    assert!(not_found(store.restore_message(&carol, &id, 0, now).await));
    // Nor does another index of the owner's message, or no such message.
    assert!(not_found(store.mark_read(&bob, &id, 1, true).await));
    assert!(matches!(
        store
            .mark_read(&bob, &QueueId::parse("00000000000000AA").unwrap(), 0, true)
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Nothing changed for bob.
    let row = store.mailbox_message(&bob, &id, 0, now).await.unwrap();
    assert!(!row.read);
    assert_eq!(row.deleted_at, Some(now));
}

#[tokio::test]
async fn read_delete_and_restore_move_a_message_between_folders() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let bob = key("bob@partner.example");
    let (id, _) = deliver(&store, "bob@partner.example", "s", t0()).await;
    let (short, _) = {
        let (m, token) = secure_to("bob@partner.example", "a@corp.example", "short", t0(), 2);
        (store.accept(m).await.unwrap(), token)
    };
    let now = t0() + DAY;
    let folder = |folder, include_ended| MailboxQuery {
        folder,
        include_ended,
        ..inbox(None, None, 10)
    };
    let ids = |page: crate::portal::MailboxPage| -> Vec<QueueId> {
        page.rows.into_iter().map(|r| r.message).collect()
    };

    store.mark_read(&bob, &id, 0, true).await.unwrap();
    assert!(store.mailbox_message(&bob, &id, 0, now).await.unwrap().read);
    store.mark_read(&bob, &id, 0, false).await.unwrap();
    assert!(!store.mailbox_message(&bob, &id, 0, now).await.unwrap().read);

    store.delete_message(&bob, &id, 0, now).await.unwrap();
    store.delete_message(&bob, &short, 0, now).await.unwrap();
    let inbox_now = ids(store
        .mailbox(&bob, folder(Folder::Inbox, false), now)
        .await
        .unwrap());
    assert!(inbox_now.is_empty());
    let mut deleted = ids(store
        .mailbox(&bob, folder(Folder::Deleted, false), now)
        .await
        .unwrap());
    deleted.sort();
    let mut both = vec![id.clone(), short.clone()];
    both.sort();
    assert_eq!(deleted, both);

    store.restore_message(&bob, &id, 0, now).await.unwrap();
    assert_eq!(
        ids(store
            .mailbox(&bob, folder(Folder::Inbox, false), now)
            .await
            .unwrap()),
        vec![id.clone()]
    );
    // Past its expiry a message cannot be restored, and leaves the
    // folder unless ended ones are asked for.
    let after_expiry = t0() + DAY * 3;
    assert!(matches!(
        store.restore_message(&bob, &short, 0, after_expiry).await,
        Err(StoreError::Refused(_))
    ));
    assert!(
        store
            .mailbox(&bob, folder(Folder::Deleted, false), after_expiry)
            .await
            .unwrap()
            .rows
            .is_empty()
    );
    let ended = store
        .mailbox(&bob, folder(Folder::Deleted, true), after_expiry)
        .await
        .unwrap();
    assert_eq!(ended.rows.len(), 1);
    assert_eq!(ended.rows[0].access, Access::Expired);
    // A recall shows as such.
    store
        .recall(vec![id.clone()], now, crate::audit::Actor::system("test"))
        .await
        .unwrap();
    let row = store.mailbox_message(&bob, &id, 0, now).await.unwrap();
    assert_eq!(row.access, Access::Recalled);
    assert!(
        store
            .mailbox(&bob, folder(Folder::Inbox, false), now)
            .await
            .unwrap()
            .rows
            .is_empty()
    );
}

#[tokio::test]
async fn search_matches_sender_or_subject_with_like_wildcards_taken_literally() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let bob = key("bob@partner.example");
    for (from, subject) in [
        ("alice@corp.example", "100% done"),
        ("alice@corp.example", "1000 done"),
        ("a_b@corp.example", "hello"),
        ("axb@corp.example", "hello"),
        ("carol@corp.example", "Invoice Q3"),
    ] {
        let (m, _) = secure_to("bob@partner.example", from, subject, t0(), 30);
        store.accept(m).await.unwrap();
    }
    let now = t0() + DAY;
    let found = async |text: &str| -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = store
            .mailbox(&bob, inbox(Some(text), None, 50), now)
            .await
            .unwrap()
            .rows
            .into_iter()
            .map(|r| (r.sender, r.subject.unwrap_or_default()))
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(
        found("0%").await,
        vec![("alice@corp.example".into(), "100% done".into())]
    );
    assert_eq!(
        found("a_b").await,
        vec![("a_b@corp.example".into(), "hello".into())]
    );
    assert_eq!(found("invoice").await.len(), 1, "any case");
    assert_eq!(found("corp.example").await.len(), 5, "the sender too");
    assert!(found("\\").await.is_empty());
}

#[tokio::test]
async fn a_version_5_database_migrates_and_its_secure_recipients_get_match_keys_and_times() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("db.sqlite")).unwrap();
        for sql in &super::MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        conn.execute_batch(
            "INSERT INTO messages (id, received_at, sender, client_ip, protocol, size, body_8bit,
                 smtputf8, kind, expires_at, content, subject)
               VALUES ('00000000000000AA', 1800000000000, 'a@corp.example', '127.0.0.1', 'ESMTP',
                 2, 0, 0, 'mail', 9999999999999, NULL, 'old');
             INSERT INTO recipients (message_id, idx, address, notify, route, status,
                 next_attempt_at, updated_at)
               VALUES ('00000000000000AA', 0, 'Bob@Partner.example', 0, 'secure:1', 'secure', 0, 0);
             INSERT INTO secure_recipients (message_id, idx, token_hash, definition_id, trigger,
                 expires_at)
               VALUES ('00000000000000AA', 0, X'01', 1, 'policy', 1900000000000);",
        )
        .unwrap();
    }
    let store = open(&dir).await;
    let (version, key): (i64, String) = store
        .readers
        .read(|conn| {
            Ok((
                conn.pragma_query_value(None, "user_version", |r| r.get(0))?,
                conn.query_row("SELECT match_key FROM secure_recipients", [], |r| r.get(0))?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(version, super::MIGRATIONS.len() as i64);
    assert_eq!(key, "bob@partner.example");
    let page = store
        .mailbox(
            &self::key("bob@partner.example"),
            inbox(None, None, 10),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 1);
    assert_eq!(page.rows[0].subject.as_deref(), Some("old"));
    assert_eq!(page.rows[0].deleted_at, None);
    // Version 9 copied the time of receipt, which the inbox orders by.
    assert_eq!(
        page.rows[0].received_at,
        SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_800_000_000_000)
    );
    assert_eq!(
        page.rows[0].definition,
        Some(sealpost_policy::DefinitionId(1))
    );
}

/// The inbox is read in order from the `secure_mailbox` index, never by
/// sorting all of an address's rows (issue 15, Performance).
#[tokio::test]
async fn the_inbox_query_reads_the_index_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let plan: Vec<String> = store
        .readers
        .read(|conn| {
            let sql = format!(
                "EXPLAIN QUERY PLAN {} AND s.deleted_at IS NULL AND s.ended_at IS NULL
                   AND s.expires_at > 0
                 ORDER BY s.received_at DESC, s.message_id DESC, s.idx DESC LIMIT 51",
                super::super::portal::mailbox_query_for_tests()
            );
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt
                .query_map(["bob@partner.example"], |r| r.get::<_, String>(3))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
        .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("secure_mailbox"), "{plan}");
    assert!(
        !plan.contains("TEMP B-TREE"),
        "sorts instead of reading in order: {plan}"
    );
}

/// Bob's reply to `original` (his message 0), to `to`, sent at `at`.
fn reply(original: &QueueId, to: &str, subject: &str, at: SystemTime) -> crate::NewMessage {
    let mut m = message(b"Subject: re\r\n\r\nok\r\n".to_vec(), &[to]);
    m.received_at = at;
    m.sender = Some(EmailAddress::parse("bob@partner.example").unwrap());
    m.subject = Some(subject.to_owned());
    m.portal_sent = Some(crate::PortalSent {
        account: key("Bob@Partner.example"),
        original: original.clone(),
        idx: 0,
        has_attachments: subject.contains("file"),
    });
    m
}

#[tokio::test]
async fn sent_lists_the_accounts_replies_searchable_and_paged() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (original, _) = deliver(&store, "bob@partner.example", "Q3", t0()).await;
    let mut ids = Vec::new();
    for (i, (to, subject)) in [
        ("alice@corp.example", "Re: Q3"),
        ("dave@corp.example", "Re: Q3 with file"),
        ("erin@other.example", "Fwd: Q3"),
    ]
    .into_iter()
    .enumerate()
    {
        let at = t0() + DAY * (i as u32 + 1);
        ids.push(
            store
                .accept(reply(&original, to, subject, at))
                .await
                .unwrap(),
        );
    }
    let sent = |search: Option<&str>, after, limit| MailboxQuery {
        folder: Folder::Sent,
        ..inbox(search, after, limit)
    };
    let bob = key("bob@partner.example");
    let now = t0() + DAY * 5;
    let first = store.mailbox(&bob, sent(None, None, 2), now).await.unwrap();
    let listed: Vec<_> = first.rows.iter().map(|r| r.message.clone()).collect();
    assert_eq!(listed, [ids[2].clone(), ids[1].clone()], "newest first");
    assert_eq!(first.rows[1].has_attachments, Some(true));
    assert_eq!(first.rows[0].has_attachments, Some(false));
    assert_eq!(
        first.rows[0].recipients.as_deref(),
        Some("erin@other.example")
    );
    let rest = store
        .mailbox(&bob, sent(None, first.next, 2), now)
        .await
        .unwrap();
    assert_eq!(rest.rows.len(), 1);
    assert_eq!(rest.rows[0].message, ids[0]);
    assert!(rest.next.is_none());

    let by_address = store
        .mailbox(&bob, sent(Some("DAVE@"), None, 10), now)
        .await
        .unwrap();
    assert_eq!(by_address.rows.len(), 1);
    assert_eq!(by_address.rows[0].message, ids[1]);
    let by_subject = store
        .mailbox(&bob, sent(Some("fwd"), None, 10), now)
        .await
        .unwrap();
    assert_eq!(by_subject.rows.len(), 1);
    assert_eq!(by_subject.rows[0].message, ids[2]);

    let inbox_row = store
        .mailbox_message(&bob, &original, 0, now)
        .await
        .unwrap();
    assert_eq!(inbox_row.recipients, None);
    let tracked = store.tracked(&original).await.unwrap();
    assert_eq!(
        tracked.recipients[0].secure.as_ref().unwrap().replied_at,
        Some(t0() + DAY * 3),
        "the latest reply"
    );
    assert!(
        store
            .mailbox(&key("carol@partner.example"), sent(None, None, 10), now)
            .await
            .unwrap()
            .rows
            .is_empty()
    );
}

#[tokio::test]
async fn tracking_reads_each_recipients_portal_events_with_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (original, token) = deliver(&store, "bob@partner.example", "Q3", t0()).await;
    let (other, _) = deliver(&store, "bob@partner.example", "other", t0()).await;
    let bob = key("bob@partner.example");
    let secure = |t: crate::TrackedMessage| t.recipients[0].secure.clone().unwrap();

    let fresh = secure(store.tracked(&original).await.unwrap());
    assert_eq!(
        (fresh.registered_at, fresh.deleted_at, fresh.replies.len()),
        (None, None, 0)
    );

    let registered = t0() + DAY;
    assert!(matches!(
        store
            .register(
                RegistrationProof::PortalToken(token.hash()),
                hash("a"),
                TTL,
                registered
            )
            .await
            .unwrap(),
        Registration::Created(_)
    ));
    store
        .mark_opened(&original, 0, registered, None)
        .await
        .unwrap();
    let first = store
        .accept(reply(
            &original,
            "alice@corp.example",
            "Re: Q3",
            t0() + DAY * 2,
        ))
        .await
        .unwrap();
    let second = store
        .accept(reply(
            &original,
            "erin@other.example",
            "Fwd: Q3",
            t0() + DAY * 3,
        ))
        .await
        .unwrap();
    let deleted = t0() + DAY * 4;
    store
        .delete_message(&bob, &original, 0, deleted)
        .await
        .unwrap();

    let record = secure(store.tracked(&original).await.unwrap());
    assert_eq!(record.registered_at, Some(registered));
    assert_eq!(record.first_opened_at, Some(registered));
    assert!(record.read);
    assert_eq!(record.replied_at, Some(t0() + DAY * 3));
    assert_eq!(record.deleted_at, Some(deleted));
    assert_eq!(record.replies, [first, second], "oldest first");

    let untouched = secure(store.tracked(&other).await.unwrap());
    assert_eq!(
        (untouched.registered_at, untouched.deleted_at),
        (None, None),
        "another message of the same account keeps its own events"
    );
    assert!(untouched.replies.is_empty());
    let found = store
        .search(crate::MessageFilter {
            subject: Some("Q3".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let listed = found.iter().find(|t| t.message.id == original).unwrap();
    assert_eq!(
        listed.recipients[0].secure.as_ref().unwrap().replies.len(),
        2,
        "search reads the same record"
    );
}

/// A reply relayed to an internal address stays readable in its author's
/// Sent until the answered message expires (not only until it was
/// relayed); then the expiry job destroys it. A recall ends it at once.
#[tokio::test]
async fn a_relayed_reply_stays_in_sent_until_the_original_expires() {
    use crate::{OutcomeKind, RecipientOutcome};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (original, _) = deliver(&store, "bob@partner.example", "Q3", t0()).await;
    let bob = key("bob@partner.example");
    let mut replies = Vec::new();
    for subject in ["Re: Q3", "Re: Q3 again"] {
        let id = store
            .accept(reply(&original, "alice@corp.example", subject, t0() + DAY))
            .await
            .unwrap();
        // Relayed: its one recipient is final.
        store
            .record(
                vec![RecipientOutcome {
                    message: id.clone(),
                    notification: false,
                    idx: 0,
                    attempted_at: t0() + DAY,
                    result: OutcomeKind::Delivered,
                    reply: "250 ok".into(),
                    direct: false,
                    delay_warned: false,
                }],
                vec![],
            )
            .await
            .unwrap();
        replies.push(id);
    }
    for id in &replies {
        assert!(store.load_body(id).await.is_ok(), "kept for Sent");
        let row = store.sent_message(&bob, id).await.unwrap();
        assert_eq!(row.access, Access::Live);
        assert_eq!(
            row.expires_at,
            t0() + DAY * 30,
            "readable as long as the original"
        );
    }
    assert!(matches!(
        store
            .sent_message(&key("eve@partner.example"), &replies[0])
            .await,
        Err(StoreError::NotFound(_))
    ));

    // The sender recalls the second reply: gone at once, Sent or not.
    store
        .recall(
            vec![replies[1].clone()],
            t0() + DAY * 2,
            crate::audit::Actor::system("test"),
        )
        .await
        .unwrap();
    assert!(store.load_body(&replies[1]).await.is_err());
    assert_eq!(
        store.sent_message(&bob, &replies[1]).await.unwrap().access,
        Access::Expired
    );

    // Before the original expires nothing changes; after, the first goes.
    store.expire_due(t0() + DAY * 29, 100).await.unwrap();
    assert!(store.load_body(&replies[0]).await.is_ok());
    store.expire_due(t0() + DAY * 31, 100).await.unwrap();
    assert!(store.load_body(&replies[0]).await.is_err());
    assert_eq!(
        store.sent_message(&bob, &replies[0]).await.unwrap().access,
        Access::Expired
    );
}

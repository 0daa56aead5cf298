//! Mailbox folders and replies (issue 15 items 3 and 5) against a real
//! database and the real intake: what each definition flag allows, the
//! CSRF and ownership guards, where a reply goes, and the folders.

use super::*;
use sealpost_store::portal::{AccountKey, Folder, MailboxQuery};

/// alice@corp.example's secure message to bob and carol at
/// partner.example (both secure), with a Message-ID; bob registered.
async fn bob_with_original(w: &World) -> (Agent, QueueId) {
    let definition = w.policy.load().default_definition().unwrap().id;
    let received = SystemTime::now();
    let recipient = |to: &str| NewRecipient {
        address: EmailAddress::parse(to).unwrap(),
        orcpt: None,
        notify: Notify::default(),
        decision: Decision {
            route: Route::Secure { definition },
            policy: None,
        },
    };
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
        b"Message-ID: <orig@corp.example>\r\nSubject: Q3 contract\r\n\r\nThe figures.\r\n".to_vec(),
        received + Duration::from_secs(86400),
        MessageKind::Mail,
        vec![
            recipient("bob@partner.example"),
            recipient("carol@partner.example"),
        ],
    );
    m.subject = Some("Q3 contract".into());
    let token = PortalToken::generate();
    for idx in 0..2 {
        m.secure.push(NewSecureRecipient {
            idx,
            token_hash: if idx == 0 {
                token.hash().0
            } else {
                PortalToken::generate().hash().0
            },
            definition,
            trigger: SecureTrigger::Policy,
            notification: None,
            expires_at: received + Duration::from_secs(30 * 86400),
            tls_or_portal: false,
        });
    }
    let id = w.store.accept(m).await.unwrap();
    let mut bob = Agent::new(&w.state);
    let path = format!("/open/{}", token.as_str());
    let page = bob
        .submit(&path, &path, &[("password", GOOD), ("confirm", GOOD)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    (bob, id)
}

/// Posts a multipart form: text fields and `(name, bytes)` attachments.
async fn post_multipart(
    agent: &mut Agent,
    path: &str,
    fields: &[(&str, &str)],
    files: &[(&str, &[u8])],
) -> Page {
    let files: Vec<(&str, &str, &str, &[u8])> = files
        .iter()
        .map(|(name, bytes)| ("attachments", *name, "application/pdf", *bytes))
        .collect();
    agent.post_multipart(path, fields, &files).await
}

async fn sent_rows(w: &World, account: &str) -> Vec<sealpost_store::portal::MailboxRow> {
    use sealpost_store::PortalStore;
    w.store
        .mailbox(
            &AccountKey::of(&EmailAddress::parse(account).unwrap()),
            MailboxQuery {
                folder: Folder::Sent,
                search: None,
                include_ended: true,
                after: None,
                limit: 50,
            },
            SystemTime::now(),
        )
        .await
        .unwrap()
        .rows
}

#[tokio::test]
async fn each_definition_flag_refuses_the_form_and_a_crafted_post_with_403() {
    for (kind, edit) in [
        (
            "reply",
            (|d: &mut sealpost_policy::DefinitionDraft| d.allow_reply = false)
                as fn(&mut sealpost_policy::DefinitionDraft),
        ),
        ("reply-all", |d| d.allow_reply_all = false),
        ("forward", |d| d.allow_forward = false),
    ] {
        let w = world(settings(), 1000).await;
        w.policy.store(Arc::new(policy_set(&w.store, edit).await));
        let (mut bob, id) = bob_with_original(&w).await;
        let path = format!("/messages/{id}/0/{kind}");
        assert_eq!(bob.get(&path).await.status, StatusCode::FORBIDDEN, "{kind}");
        let csrf = bob.get("/inbox").await.csrf();
        let post = post_multipart(
            &mut bob,
            &path,
            &[("csrf", &csrf), ("body", "hi"), ("to", "dan@corp.example")],
            &[],
        )
        .await;
        assert_eq!(post.status, StatusCode::FORBIDDEN, "{kind}");
        assert!(sent_rows(&w, "bob@partner.example").await.is_empty());
        // With the flag on, the same form is served.
        w.policy.store(Arc::new(
            policy_set(&w.store, |d| d.allow_forward = true).await,
        ));
        assert_eq!(bob.get(&path).await.status, StatusCode::OK, "{kind}");
    }
}

#[tokio::test]
async fn a_reply_without_or_with_a_wrong_token_is_refused() {
    let w = world(settings(), 1000).await;
    let (mut bob, id) = bob_with_original(&w).await;
    let path = format!("/messages/{id}/0/reply");
    let none = post_multipart(&mut bob, &path, &[("body", "hi")], &[]).await;
    assert_eq!(none.status, StatusCode::FORBIDDEN);
    let wrong = post_multipart(&mut bob, &path, &[("csrf", "AAAA"), ("body", "hi")], &[]).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(sent_rows(&w, "bob@partner.example").await.is_empty());
}

#[tokio::test]
async fn another_recipients_session_gets_the_same_404_as_a_made_up_id() {
    let w = world(settings(), 1000).await;
    let (_bob, id) = bob_with_original(&w).await;
    let (mut eve, _, _) = registered_other(&w).await;
    for kind in ["reply", "reply-all", "forward"] {
        let path = format!("/messages/{id}/0/{kind}");
        assert_eq!(eve.get(&path).await.status, StatusCode::NOT_FOUND);
        let csrf = eve.get("/inbox").await.csrf();
        let post = post_multipart(&mut eve, &path, &[("csrf", &csrf), ("body", "x")], &[]).await;
        assert_eq!(post.status, StatusCode::NOT_FOUND);
        let made_up = format!("/messages/{}/0/{kind}", QueueId::generate());
        assert_eq!(eve.get(&made_up).await.status, StatusCode::NOT_FOUND);
    }
    assert!(sent_rows(&w, "eve@partner.example").await.is_empty());
}

/// eve@partner.example, with a message of her own.
async fn registered_other(w: &World) -> (Agent, QueueId, PortalToken) {
    let (id, token) = deliver(&w.store, "eve@partner.example", "Hers", SystemTime::now()).await;
    let mut eve = Agent::new(&w.state);
    let path = format!("/open/{}", token.as_str());
    let page = eve
        .submit(&path, &path, &[("password", GOOD), ("confirm", GOOD)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    (eve, id, token)
}

#[tokio::test]
async fn a_reply_is_relayed_with_threading_and_a_reply_all_reaches_outsiders_only_securely() {
    let w = world(settings(), 1000).await;
    let (mut bob, id) = bob_with_original(&w).await;

    let form = bob.get(&format!("/messages/{id}/0/reply")).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("alice@corp.example"), "{}", form.body);
    assert!(form.body.contains("25 MiB"));
    assert!(form.body.contains("enctype=\"multipart/form-data\""));
    let csrf = form.csrf();
    let sent = post_multipart(
        &mut bob,
        &format!("/messages/{id}/0/reply"),
        &[("csrf", &csrf), ("body", "Signed, see attached.")],
        &[("signed.pdf", b"%PDF-1.4 signed")],
    )
    .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert_eq!(sent.location(), "/sent?done=sent");
    let rows = sent_rows(&w, "bob@partner.example").await;
    assert_eq!(rows.len(), 1);
    let reply = rows[0].message.clone();
    let content = String::from_utf8(w.store.load_body(&reply).await.unwrap()).unwrap();
    assert!(
        content.contains("In-Reply-To: <orig@corp.example>"),
        "{content}"
    );
    assert!(
        content.contains("References: <orig@corp.example>"),
        "{content}"
    );
    assert!(content.contains("signed.pdf"));
    let to = w.store.recipients(&reply).await.unwrap();
    assert_eq!(to.len(), 1);
    assert_eq!(to[0].address, "alice@corp.example");
    assert!(to[0].secure.is_none(), "internal: relayed {:?}", to[0]);

    // Reply all: alice relayed, carol (external) only by secure delivery.
    let form = bob.get(&format!("/messages/{id}/0/reply-all")).await;
    assert!(form.body.contains("carol@partner.example"), "{}", form.body);
    let all = post_multipart(
        &mut bob,
        &format!("/messages/{id}/0/reply-all"),
        &[("csrf", &form.csrf()), ("body", "To everyone.")],
        &[],
    )
    .await;
    assert_eq!(all.status, StatusCode::SEE_OTHER, "{}", all.body);
    let rows = sent_rows(&w, "bob@partner.example").await;
    assert_eq!(rows.len(), 2);
    let to = w.store.recipients(&rows[0].message).await.unwrap();
    let carol = to
        .iter()
        .find(|r| r.address == "carol@partner.example")
        .expect("carol is a recipient");
    let secure = carol.secure.as_ref().expect("secure delivery for carol");
    assert!(secure.notification.is_some(), "a notification of her own");
    assert!(to.iter().all(|r| r.address != "bob@partner.example"));

    // Sent lists both, with the confirmation.
    let page = bob.get("/sent?done=sent").await;
    assert!(page.body.contains("sent securely"), "{}", page.body);
    assert!(page.body.contains("carol@partner.example"));
    assert_eq!(
        page.body.matches("Re: Q3 contract").count(),
        2,
        "{}",
        page.body
    );
}

#[tokio::test]
async fn too_large_a_reply_is_refused_with_the_reason_on_the_form() {
    let w = world(
        PortalSettings {
            max_upload: 1000,
            ..settings()
        },
        1000,
    )
    .await;
    let (mut bob, id) = bob_with_original(&w).await;
    let path = format!("/messages/{id}/0/reply");
    let form = bob.get(&path).await;
    assert!(form.body.contains("1000 bytes"), "{}", form.body);
    let big = vec![b'x'; 5000];
    let page = post_multipart(
        &mut bob,
        &path,
        &[("csrf", &form.csrf()), ("body", "kept text")],
        &[("big.pdf", &big)],
    )
    .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(page.body.contains("too large"), "{}", page.body);
    assert!(page.body.contains("kept text"), "the text is kept");
    // Past the body limit (max_upload + margin): the same answer.
    let huge = vec![b'x'; (1 << 20) + 2000];
    let page = post_multipart(
        &mut bob,
        &path,
        &[("csrf", &form.csrf()), ("body", "x")],
        &[("huge.pdf", &huge)],
    )
    .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(page.body.contains("too large"), "{}", page.body);
    assert!(sent_rows(&w, "bob@partner.example").await.is_empty());
}

#[tokio::test]
async fn delete_restore_mark_unread_search_and_paging() {
    let w = world(settings(), 1000).await;
    let (mut bob, id) = bob_with_original(&w).await;
    let base = SystemTime::now() - Duration::from_secs(3600);
    for n in 0..(folders_page() + 3) {
        let received = base - Duration::from_secs(60 * n as u64);
        deliver(
            &w.store,
            "bob@partner.example",
            &format!("Invoice {n:03}"),
            received,
        )
        .await;
    }
    // Paging: the first page links to older ones, the next has the rest.
    let first = bob.get("/inbox").await;
    assert!(first.body.contains("Q3 contract"));
    let body = first.body.replace("&#x2f;", "/");
    let older_at = body.find("href=\"/inbox?after=").expect("an Older link");
    let rest = &body[older_at + 6..];
    let older = rest[..rest.find('"').unwrap()].replace("&amp;", "&");
    let second = bob.get(&older).await;
    assert_eq!(second.status, StatusCode::OK);
    assert!(second.body.contains("Invoice 052"), "{}", second.body);
    assert!(!second.body.contains("Q3 contract"));
    assert!(
        !second.body.contains("?after="),
        "the last page has no Older link"
    );

    // Search over subject and sender.
    let found = bob.get("/inbox?q=q3").await;
    assert!(found.body.contains("Q3 contract"));
    assert!(!found.body.contains("Invoice"));
    let none = bob.get("/inbox?q=nobody-sent-this").await;
    assert!(none.body.contains("No message matches"));
    let by_sender = bob.get("/inbox?q=alice%40corp").await;
    assert!(by_sender.body.matches("alice@corp.example").count() > 3);

    // Mark unread, read again; a wrong token changes nothing.
    let csrf = first.csrf();
    let action = format!("/mailbox/{id}/0");
    assert_eq!(
        bob.post(&format!("{action}/unread"), &[("csrf", "nope")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let unread = bob
        .post(&format!("{action}/unread"), &[("csrf", &csrf)])
        .await;
    assert_eq!(unread.status, StatusCode::SEE_OTHER);
    let page = bob.get("/inbox?q=q3").await;
    assert!(page.body.contains("class=\"unread\""), "{}", page.body);
    assert!(page.body.contains("Mark as read"));
    bob.post(&format!("{action}/read"), &[("csrf", &csrf)])
        .await;
    assert!(
        !bob.get("/inbox?q=q3")
            .await
            .body
            .contains("class=\"unread\"")
    );

    // Delete moves it to Deleted; restore brings it back.
    bob.post(&format!("{action}/delete"), &[("csrf", &csrf)])
        .await;
    assert!(!bob.get("/inbox?q=q3").await.body.contains("Q3 contract"));
    let deleted = bob.get("/deleted").await;
    assert!(deleted.body.contains("Q3 contract"));
    assert!(
        deleted
            .body
            .replace("&#x2f;", "/")
            .contains(&format!("{action}/restore"))
    );
    let back = bob
        .post(&format!("{action}/restore"), &[("csrf", &csrf)])
        .await;
    assert_eq!(back.location(), "/deleted?done=restored");
    assert!(bob.get("/inbox?q=q3").await.body.contains("Q3 contract"));
    assert!(!bob.get("/deleted").await.body.contains("Q3 contract"));

    // Another recipient cannot touch it.
    let (mut eve, _, _) = registered_other(&w).await;
    let csrf = eve.get("/inbox").await.csrf();
    assert_eq!(
        eve.post(&format!("{action}/delete"), &[("csrf", &csrf)])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

fn folders_page() -> usize {
    crate::portal::folders::PAGE
}

/// Item 3: a reply reads back from Sent (text, attachment download, no
/// actions); another account's session, and a made-up id, get the same
/// 404 on its page, frame and parts.
#[tokio::test]
async fn a_sent_reply_reads_back_from_sent_and_only_for_its_author() {
    let w = world(settings(), 1000).await;
    let (mut bob, id) = bob_with_original(&w).await;
    let form = bob.get(&format!("/messages/{id}/0/reply")).await;
    let sent = post_multipart(
        &mut bob,
        &format!("/messages/{id}/0/reply"),
        &[("csrf", &form.csrf()), ("body", "Signed, see attached.")],
        &[("signed.pdf", b"%PDF-1.4 signed")],
    )
    .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let reply = sent_rows(&w, "bob@partner.example").await[0]
        .message
        .clone();

    // minijinja writes `/` in attributes as `&#x2f;`.
    let unescaped = |body: &str| body.replace("&#x2f;", "/");
    let folder = bob.get("/sent").await;
    assert!(
        unescaped(&folder.body).contains(&format!("href=\"/sent/{reply}\"")),
        "the row links to its page: {}",
        folder.body
    );
    let page = bob.get(&format!("/sent/{reply}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Signed, see attached."), "{}", page.body);
    assert!(page.body.contains("Re: Q3 contract"));
    assert!(
        page.body.contains("alice@corp.example"),
        "To: {}",
        page.body
    );
    assert!(page.body.contains("href=\"/sent\""), "back to Sent");
    for absent in ["/reply\"", "/delete\"", "/read\"", "/print\""] {
        assert!(!page.body.contains(absent), "{absent} on a sent copy");
    }
    let href = format!("/sent/{reply}/attachments/");
    let body = unescaped(&page.body);
    let at = body.find(&href).expect("the attachment is listed");
    let n: String = body[at + href.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let download = bob.get(&format!("{href}{n}")).await;
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(download.body, "%PDF-1.4 signed");

    let (mut eve, _, _) = registered_other(&w).await;
    let made_up = QueueId::generate();
    for path in [
        format!("/sent/{reply}"),
        format!("/sent/{reply}/frame"),
        format!("/sent/{reply}/attachments/{n}"),
        format!("/sent/{reply}/inline/{n}"),
        format!("/sent/{made_up}"),
        "/sent/not-an-id".to_owned(),
        // The original is bob's received message, never his reply.
        format!("/sent/{id}"),
    ] {
        assert_eq!(eve.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(
        bob.get(&format!("/sent/{id}")).await.status,
        StatusCode::NOT_FOUND,
        "a received message is not a sent one"
    );
}

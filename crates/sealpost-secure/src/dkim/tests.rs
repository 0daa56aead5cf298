use std::{borrow::Borrow, collections::HashMap, hash::Hash, sync::Mutex};

use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
    common::parse::TxtRecordParser, common::verify::DomainKey as DnsKey,
};

use super::*;
use crate::notification::{MailHeaders, build_system_mail};

/// A TXT "resolver" holding only the records a test publishes.
#[derive(Default)]
struct Zone(Mutex<HashMap<Box<str>, Txt>>);

impl ResolverCache<Box<str>, Txt> for Zone {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(name).cloned()
    }
    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name)
    }
    fn insert(&self, key: Box<str>, value: Txt, _valid_until: std::time::Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

impl Zone {
    /// Publishes a record as `dkim keygen` prints it.
    fn publish(&self, record: &str) {
        let (name, rest) = record.split_once(" IN TXT ").unwrap();
        let value: String = rest
            .split('"')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        let key = Txt::from(DnsKey::parse(value.as_bytes()).unwrap());
        let name = name.trim_end_matches('.');
        for n in [name.to_owned(), format!("{name}.")] {
            self.0.lock().unwrap().insert(n.into(), key.clone());
        }
    }
}

/// The DKIM results of `message` against the zone.
fn verify(zone: &Zone, message: &[u8]) -> Vec<DkimResult> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let authenticator = MessageAuthenticator::new_cloudflare().unwrap();
        let parsed = AuthenticatedMessage::parse(message).unwrap();
        authenticator
            .verify_dkim(Parameters::new(&parsed).with_txt_cache(zone))
            .await
            .iter()
            .map(|o| o.result().clone())
            .collect()
    })
}

fn notification(from: &str) -> Vec<u8> {
    build_system_mail(
        &MailHeaders {
            from_name: "Secure Mail",
            from_address: from,
            to: "rcpt@elsewhere.example",
            message_id_domain: "gw.corp.example",
            date: time::OffsetDateTime::UNIX_EPOCH,
        },
        "A secure message for you",
        "Open it at https://portal.corp.example/open/abc\r\n",
        "<p>Open it</p>",
    )
}

fn signer_for(algorithm: Algorithm) -> (Signer, String) {
    let key = GeneratedKey::generate(algorithm).unwrap();
    let record = key.txt_record("corp.example", "s1");
    let domain_key =
        DomainKey::from_pem("Corp.Example", "s1", algorithm, key.pem.as_bytes()).unwrap();
    (Signer::new(vec![domain_key]), record)
}

#[test]
fn signed_mail_verifies_against_the_printed_record() {
    for algorithm in [Algorithm::Ed25519Sha256, Algorithm::RsaSha256] {
        let (signer, record) = signer_for(algorithm);
        assert!(record.starts_with("s1._domainkey.corp.example. IN TXT \"v=DKIM1; k="));
        let zone = Zone::default();
        zone.publish(&record);
        let signed = signer.sign(notification("notify@corp.example")).unwrap();
        let text = String::from_utf8_lossy(&signed);
        assert!(text.starts_with("DKIM-Signature: "), "{text}");
        assert!(text.contains("c=relaxed/relaxed"), "{text}");
        assert!(text.contains("d=corp.example"), "{text}");
        assert_eq!(
            verify(&zone, &signed),
            vec![DkimResult::Pass],
            "{algorithm}"
        );
    }
}

#[test]
fn a_changed_body_fails() {
    let (signer, record) = signer_for(Algorithm::Ed25519Sha256);
    let zone = Zone::default();
    zone.publish(&record);
    let signed = signer.sign(notification("notify@corp.example")).unwrap();
    let tampered = String::from_utf8(signed)
        .unwrap()
        .replace("portal.corp.example", "portal.evil.example");
    let results = verify(&zone, tampered.as_bytes());
    assert_eq!(results.len(), 1);
    assert_ne!(results[0], DkimResult::Pass);
}

#[test]
fn mail_from_another_domain_is_left_unsigned() {
    let (signer, _) = signer_for(Algorithm::Ed25519Sha256);
    let mail = notification("notify@other.example");
    assert_eq!(signer.sign(mail.clone()).unwrap(), mail);
    // A parent's key is not a child's: corp.example's key does not sign
    // for example.
    let mail = notification("notify@example");
    assert_eq!(signer.sign(mail.clone()).unwrap(), mail);
}

#[test]
fn a_subdomain_is_signed_with_its_parents_key() {
    let (signer, record) = signer_for(Algorithm::Ed25519Sha256);
    let zone = Zone::default();
    zone.publish(&record);
    let signed = signer
        .sign(notification("MAILER-DAEMON@mx.corp.example"))
        .unwrap();
    assert!(String::from_utf8_lossy(&signed).contains("d=corp.example;"));
    assert_eq!(verify(&zone, &signed), vec![DkimResult::Pass]);
}

#[test]
fn keys_are_checked_against_their_algorithm() {
    let ed = GeneratedKey::generate(Algorithm::Ed25519Sha256).unwrap();
    assert!(ed.pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let err = DomainKey::from_pem(
        "corp.example",
        "s1",
        Algorithm::RsaSha256,
        ed.pem.as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(err, DkimError::Key { .. }), "{err}");
    let err =
        DomainKey::from_pem("corp.example", "s1", Algorithm::RsaSha256, b"not a key").unwrap_err();
    assert!(matches!(err, DkimError::Pem(_)), "{err}");
}

#[test]
fn long_records_are_split_into_strings_of_at_most_255() {
    let rsa = GeneratedKey::generate(Algorithm::RsaSha256).unwrap();
    let record = rsa.txt_record("corp.example", "s1");
    let strings: Vec<&str> = record.split('"').skip(1).step_by(2).collect();
    assert!(strings.len() >= 2, "{record}");
    assert!(strings.iter().all(|s| s.len() <= 255));
}

#[test]
fn mail_the_gateway_composes_for_an_outsider_is_signed_as_the_gateway() {
    let (signer, record) = signer_for(Algorithm::Ed25519Sha256);
    let zone = Zone::default();
    zone.publish(&record);
    // A portal reply: From the external recipient who wrote it.
    let reply = notification("bob@partner.example");
    let header = signer
        .signature_as_gateway(&reply, "gw.corp.example")
        .unwrap()
        .expect("signed with the gateway's key");
    assert!(header.contains("d=corp.example;"), "{header}");
    let signed = super::prepend(header, &reply);
    assert_eq!(verify(&zone, &signed), vec![DkimResult::Pass]);
    // The From's own key wins where there is one.
    let ours = notification("notify@corp.example");
    let header = signer
        .signature_as_gateway(&ours, "gw.elsewhere.example")
        .unwrap()
        .unwrap();
    assert!(header.contains("d=corp.example;"), "{header}");
    // A gateway outside every signing domain signs nothing of others'.
    assert_eq!(
        signer
            .signature_as_gateway(&reply, "gw.elsewhere.example")
            .unwrap(),
        None
    );
}

use proptest::prelude::*;

use super::*;

const CTX: &[u8] = b"queue-id-0001";
const CHUNK: usize = 64 * 1024;

/// Content that cannot be mistaken for ciphertext or zeros.
fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ 0x5a).collect()
}

fn sealed_len(len: usize) -> usize {
    len + 16 * len.div_ceil(CHUNK).max(1) + TRAILER_LEN
}

/// A keyring holding only `version` of `keyring`.
fn only(keyring: &Keyring, version: u32) -> Keyring {
    let line = keyring
        .to_text()
        .lines()
        .find(|l| l.starts_with(&format!("{version}:")))
        .unwrap()
        .to_owned();
    Keyring::parse(&line).unwrap()
}

fn assert_fails(vault: &Vault, key: &WrappedKey, sealed: Vec<u8>, what: &str) {
    match vault.open(CTX, key, sealed) {
        Err(VaultError::Tampered | VaultError::Malformed(_)) => {}
        other => panic!("{what}: expected Tampered or Malformed, got {other:?}"),
    }
}

#[test]
fn round_trips_at_chunk_boundaries() {
    let vault = Vault::ephemeral();
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5, 1 << 20] {
        let plain = content(len);
        let (key, sealed) = vault.seal(CTX, plain.clone());
        assert_eq!(sealed.len(), sealed_len(len), "len {len}");
        assert_eq!(key.bytes.len(), 72);
        assert_eq!(key.version, 1);
        if len > 0 {
            assert_ne!(
                &sealed[..len],
                &plain[..],
                "len {len}: content was not encrypted"
            );
        }
        assert_eq!(vault.open(CTX, &key, sealed).unwrap(), plain, "len {len}");
    }
}

#[test]
fn seal_and_open_keep_the_allocation() {
    let vault = Vault::ephemeral();
    let len = 2 * CHUNK + 100;
    let mut plain = Vec::with_capacity(sealed_len(len));
    plain.extend_from_slice(&content(len));
    let ptr = plain.as_ptr();
    let (key, sealed) = vault.seal(CTX, plain);
    assert_eq!(sealed.as_ptr(), ptr);
    let opened = vault.open(CTX, &key, sealed).unwrap();
    assert_eq!(opened.as_ptr(), ptr);
    assert_eq!(opened, content(len));
}

#[test]
fn same_content_seals_differently_each_time() {
    let vault = Vault::ephemeral();
    let (key_a, a) = vault.seal(CTX, content(100));
    let (key_b, b) = vault.seal(CTX, content(100));
    assert_ne!(a, b);
    assert_ne!(key_a.bytes, key_b.bytes);
}

#[test]
fn another_context_does_not_open() {
    let vault = Vault::ephemeral();
    let (key, sealed) = vault.seal(CTX, content(1000));
    assert!(matches!(
        vault.open(b"queue-id-0002", &key, sealed.clone()),
        Err(VaultError::KeyUnwrap(1))
    ));
    assert!(matches!(
        vault.rewrap(b"", &key),
        Err(VaultError::KeyUnwrap(1))
    ));

    // Content moved to another message, opened with that message's key.
    let (other_key, _) = vault.seal(b"queue-id-0002", content(1000));
    assert!(matches!(
        vault.open(b"queue-id-0002", &other_key, sealed),
        Err(VaultError::Tampered)
    ));
}

#[test]
fn tampering_with_any_region_fails() {
    let vault = Vault::ephemeral();
    let len = 3 * CHUNK + 5;
    let (key, sealed) = vault.seal(CTX, content(len));
    let tags = len;
    let trailer = sealed.len() - TRAILER_LEN;

    for (what, at) in [
        ("first chunk byte", 0),
        ("middle chunk byte", CHUNK + 17),
        ("last chunk byte", len - 1),
        ("first tag", tags),
        ("last tag", trailer - 1),
        ("nonce prefix", trailer),
        ("chunk size", trailer + 19 + 3),
        ("plaintext length", trailer + 23 + 7),
        ("format version", trailer + 31),
        ("magic", sealed.len() - 1),
    ] {
        let mut bad = sealed.clone();
        bad[at] ^= 0x01;
        assert_fails(&vault, &key, bad, what);
    }

    let mut cut = sealed.clone();
    cut.truncate(sealed.len() - CHUNK);
    assert_fails(&vault, &key, cut, "cut by a chunk's length");

    let mut longer = sealed.clone();
    longer.extend_from_slice(b"garbage");
    assert_fails(&vault, &key, longer, "garbage appended");

    for n in [1, TRAILER_LEN, sealed.len()] {
        assert_fails(
            &vault,
            &key,
            sealed[..sealed.len() - n].to_vec(),
            "truncated",
        );
    }
    assert_fails(&vault, &key, sealed[1..].to_vec(), "first byte removed");
}

#[test]
fn reordered_or_dropped_chunks_fail_authentication() {
    let vault = Vault::ephemeral();
    let len = 3 * CHUNK;
    let (key, sealed) = vault.seal(CTX, content(len));
    let tag = |i: usize| len + 16 * i..len + 16 * (i + 1);

    // Swap chunks 0 and 1, with their tags.
    let mut swapped = sealed.clone();
    swapped[..CHUNK].copy_from_slice(&sealed[CHUNK..2 * CHUNK]);
    swapped[CHUNK..2 * CHUNK].copy_from_slice(&sealed[..CHUNK]);
    swapped[tag(0)].copy_from_slice(&sealed[tag(1)]);
    swapped[tag(1)].copy_from_slice(&sealed[tag(0)]);
    assert!(matches!(
        vault.open(CTX, &key, swapped),
        Err(VaultError::Tampered)
    ));

    // Drop the last chunk and its tag, fixing up the stated length: the
    // trailer is authenticated and chunk 1 was not sealed as the last.
    let mut dropped = sealed[..2 * CHUNK].to_vec();
    dropped.extend_from_slice(&sealed[tag(0)]);
    dropped.extend_from_slice(&sealed[tag(1)]);
    let mut trailer = sealed[sealed.len() - TRAILER_LEN..].to_vec();
    trailer[23..31].copy_from_slice(&((2 * CHUNK) as u64).to_be_bytes());
    dropped.extend_from_slice(&trailer);
    assert!(matches!(
        vault.open(CTX, &key, dropped),
        Err(VaultError::Tampered)
    ));
}

#[test]
fn every_single_byte_flip_of_a_small_blob_fails() {
    let vault = Vault::ephemeral();
    let (key, sealed) = vault.seal(CTX, content(40));
    for at in 0..sealed.len() {
        for bit in [0x01, 0x80] {
            let mut bad = sealed.clone();
            bad[at] ^= bit;
            assert!(
                vault.open(CTX, &key, bad).is_err(),
                "byte {at} bit {bit:#x}"
            );
        }
    }
    for at in 0..key.bytes.len() {
        let mut bad = key.clone();
        bad.bytes[at] ^= 0x01;
        assert!(matches!(
            vault.open(CTX, &bad, sealed.clone()),
            Err(VaultError::KeyUnwrap(1))
        ));
    }
}

#[test]
fn wrong_master_key_or_version() {
    let vault = Vault::ephemeral();
    let (key, sealed) = vault.seal(CTX, content(10));

    let stranger = Vault::ephemeral();
    assert!(matches!(
        stranger.open(CTX, &key, sealed.clone()),
        Err(VaultError::KeyUnwrap(1))
    ));

    let unknown = WrappedKey {
        version: 9,
        ..key.clone()
    };
    let err = vault.open(CTX, &unknown, sealed.clone()).unwrap_err();
    assert!(matches!(err, VaultError::UnknownKeyVersion(9)));
    assert!(err.to_string().contains("version 9"));

    // Relabelled as another version the keyring does have.
    let mut keyring = (*vault.keyring()).clone();
    keyring.add_version();
    let both = Vault::new(keyring);
    let relabelled = WrappedKey {
        version: 2,
        ..key.clone()
    };
    assert!(matches!(
        both.open(CTX, &relabelled, sealed.clone()),
        Err(VaultError::KeyUnwrap(2))
    ));

    let short = WrappedKey {
        version: 1,
        bytes: key.bytes[..71].to_vec(),
    };
    assert!(matches!(
        vault.open(CTX, &short, sealed),
        Err(VaultError::Malformed(_))
    ));
}

#[test]
fn rewrap_moves_keys_to_the_new_version() {
    let old = Vault::ephemeral();
    let plain = content(CHUNK + 3);
    let (key, sealed) = old.seal(CTX, plain.clone());

    let mut keyring = (*old.keyring()).clone();
    assert_eq!(keyring.add_version(), 2);
    let both = Vault::new(keyring);
    assert!(old.is_current(&key));
    assert!(!both.is_current(&key));

    let rewrapped = both.rewrap(CTX, &key).unwrap();
    assert_eq!(rewrapped.version, 2);
    assert!(both.is_current(&rewrapped));
    assert_ne!(rewrapped.bytes, key.bytes);

    assert_eq!(both.open(CTX, &rewrapped, sealed.clone()).unwrap(), plain);
    assert_eq!(both.open(CTX, &key, sealed.clone()).unwrap(), plain);
    let new_only = Vault::new(only(&both.keyring(), 2));
    assert_eq!(
        new_only.open(CTX, &rewrapped, sealed.clone()).unwrap(),
        plain
    );
    assert!(matches!(
        old.open(CTX, &rewrapped, sealed),
        Err(VaultError::UnknownKeyVersion(2))
    ));
}

#[test]
fn debug_shows_no_key_material() {
    let vault = Vault::ephemeral();
    let text = vault.keyring().to_text();
    let key_hex = text.lines().last().unwrap().split_once(':').unwrap().1;
    let shown = format!("{vault:?} {vault:#?}");
    assert!(shown.contains("versions: [1]"), "{shown}");
    assert!(!shown.contains(&key_hex[..8]), "{shown}");
}

#[test]
fn vault_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Vault>();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let vault = Vault::ephemeral();
        let (key, _) = vault.seal(CTX, Vec::new());
        prop_assert!(vault.open(CTX, &key, bytes.clone()).is_err());
        let garbage_key = WrappedKey { version: 1, bytes };
        prop_assert!(vault.open(CTX, &garbage_key, Vec::new()).is_err());
    }

    #[test]
    fn arbitrary_trailer_fields_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..200),
        chunk_size: u32,
        plaintext_len: u64,
        version in prop_oneof![Just(1u8), any::<u8>()],
    ) {
        let vault = Vault::ephemeral();
        let (key, _) = vault.seal(CTX, Vec::new());
        let mut blob = body;
        blob.extend_from_slice(&[0u8; NONCE_PREFIX_LEN]);
        blob.extend_from_slice(&chunk_size.to_be_bytes());
        blob.extend_from_slice(&plaintext_len.to_be_bytes());
        blob.push(version);
        blob.extend_from_slice(b"SPV1");
        prop_assert!(vault.open(CTX, &key, blob).is_err());
    }

    #[test]
    fn any_single_byte_flip_fails(len in 0usize..(2 * CHUNK + 50), pick: prop::sample::Index, bit in 0u8..8) {
        let vault = Vault::ephemeral();
        let (key, sealed) = vault.seal(CTX, content(len));
        let mut bad = sealed;
        let at = pick.index(bad.len());
        bad[at] ^= 1 << bit;
        prop_assert!(vault.open(CTX, &key, bad).is_err());
    }
}

#[test]
fn an_installed_keyring_seals_new_mail_at_once_and_keeps_old_keys_readable() {
    let vault = Vault::ephemeral();
    let plain = content(100);
    let (old_key, old_sealed) = vault.seal(CTX, plain.clone());
    assert_eq!(old_key.version, 1);

    let mut keyring = (*vault.keyring()).clone();
    assert_eq!(keyring.add_version(), 2);
    vault.install(keyring.clone()).unwrap();
    let (new_key, new_sealed) = vault.seal(CTX, plain.clone());
    assert_eq!(new_key.version, 2, "sealed under the new version at once");
    assert_eq!(vault.open(CTX, &old_key, old_sealed).unwrap(), plain);
    assert_eq!(vault.open(CTX, &new_key, new_sealed).unwrap(), plain);
    assert!(!vault.is_current(&old_key));

    // A keyring that drops a version in use is refused.
    assert!(matches!(
        vault.install(only(&keyring, 2)),
        Err(VaultError::UnknownKeyVersion(1))
    ));
    assert_eq!(vault.keyring().current().version(), 2);
}

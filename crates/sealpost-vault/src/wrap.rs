//! Wrapping a message key with a master key, and unwrapping it.
//!
//! A wrapped key is `nonce (24) || encrypted message key (32) || tag (16)`:
//! XChaCha20-Poly1305 under the master key with a random nonce (192 bits, so
//! random nonces never collide in practice, however many messages one master
//! key wraps). The associated data is `"sealpost message key" || version (u32
//! BE) || context`, so a wrapped key copied to another message, or relabelled
//! with another version, does not unwrap.

use std::hint::black_box;

use chacha20poly1305::{Key, KeyInit, Tag, XChaCha20Poly1305, XNonce, aead::AeadInPlace};

use crate::{
    keyring::{KEY_LEN, MasterKey},
    seal::{VaultError, WrappedKey},
};

const LABEL: &[u8] = b"sealpost message key";
pub(crate) const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Length of [`WrappedKey::bytes`].
pub(crate) const WRAPPED_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// A message key, overwritten when dropped.
pub(crate) struct MessageKey(pub(crate) [u8; KEY_LEN]);

impl MessageKey {
    pub(crate) fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(&self.0))
    }
}

impl Drop for MessageKey {
    fn drop(&mut self) {
        self.0 = [0; KEY_LEN];
        black_box(&mut self.0);
    }
}

/// Wraps `key` with `master`, binding `context`.
pub(crate) fn wrap(master: &MasterKey, context: &[u8], key: &MessageKey) -> WrappedKey {
    let mut nonce = [0u8; NONCE_LEN];
    crate::random::fill(&mut nonce);
    wrap_with_nonce(master, context, key, nonce)
}

/// [`wrap`] with a nonce the caller drew from [`crate::random`], so that
/// sealing a message asks the operating system for randomness once.
pub(crate) fn wrap_with_nonce(
    master: &MasterKey,
    context: &[u8],
    key: &MessageKey,
    nonce: [u8; NONCE_LEN],
) -> WrappedKey {
    let mut bytes = Vec::with_capacity(WRAPPED_LEN);
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&key.0);
    let (nonce, body) = bytes.split_at_mut(NONCE_LEN);
    let tag = cipher(master)
        .encrypt_in_place_detached(
            XNonce::from_slice(nonce),
            &associated_data(master.version(), context),
            body,
        )
        .expect("a 32-byte key is within XChaCha20-Poly1305's limits");
    bytes.extend_from_slice(&tag);
    WrappedKey {
        version: master.version(),
        bytes,
    }
}

/// Unwraps `wrapped` with `master`, which must be the key of its version.
///
/// # Errors
///
/// [`VaultError::Malformed`] if it is not [`WRAPPED_LEN`] bytes, and
/// [`VaultError::KeyUnwrap`] if it fails authentication (wrong master key,
/// other context, or tampering).
pub(crate) fn unwrap(
    master: &MasterKey,
    context: &[u8],
    wrapped: &WrappedKey,
) -> Result<MessageKey, VaultError> {
    if wrapped.bytes.len() != WRAPPED_LEN {
        return Err(VaultError::Malformed(
            "the wrapped message key is not 72 bytes",
        ));
    }
    let (nonce, rest) = wrapped.bytes.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(KEY_LEN);
    let mut key = MessageKey([0; KEY_LEN]);
    key.0.copy_from_slice(body);
    cipher(master)
        .decrypt_in_place_detached(
            XNonce::from_slice(nonce),
            &associated_data(wrapped.version, context),
            &mut key.0,
            Tag::from_slice(tag),
        )
        .map_err(|_| VaultError::KeyUnwrap(wrapped.version))?;
    Ok(key)
}

fn cipher(master: &MasterKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(Key::from_slice(master.bytes()))
}

fn associated_data(version: u32, context: &[u8]) -> Vec<u8> {
    [LABEL, &version.to_be_bytes(), context].concat()
}

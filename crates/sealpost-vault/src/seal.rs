//! Sealing message contents: a fresh key per message, content encrypted in
//! place in authenticated chunks, the key wrapped by the current master key.
//!
//! Sealing works in place so that a 50 MB message never exists twice in
//! memory as plaintext, and opening never returns partial plaintext: either
//! every chunk authenticates or the buffer is wiped and an error returned.
//!
//! # Sealed format (version 1)
//!
//! ```text
//! chunk 0 ciphertext | ... | chunk n-1 ciphertext    same length as the plaintext
//! tag 0 | ... | tag n-1                              16 bytes each
//! trailer (36 bytes):
//!   nonce prefix (19, random) | chunk size (u32 BE) | plaintext length (u64 BE)
//!   | format version (1 byte, = 1) | magic "SPV1"
//! ```
//!
//! Chunks are 64 KiB (the last may be shorter); there is at least one, so
//! empty content still has a tag. Each chunk is XChaCha20-Poly1305 under the
//! message key with nonce `prefix || index (u32 BE) || last (1 byte: 1 for
//! the final chunk, else 0)`, the STREAM construction: reordered, dropped or
//! truncated chunks fail. Every chunk's associated data is `context ||
//! trailer`, binding the content to its message and authenticating the
//! trailer's lengths. The trailer sits at the end so sealing only appends.
//!
//! The message key's wrapping is described in `wrap.rs`.

use std::{hint::black_box, sync::Arc};

use arc_swap::ArcSwap;

use chacha20poly1305::{Tag, aead::AeadInPlace};

use crate::{
    format::{Layout, NONCE_PREFIX_LEN, TAG_LEN, TRAILER_LEN},
    keyring::{KEY_LEN, Keyring},
    wrap::{self, MessageKey},
};

/// A message key wrapped by one master key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The master key version that wrapped it.
    pub version: u32,
    /// The opaque wrapped form: nonce || encrypted key || tag (72 bytes).
    pub bytes: Vec<u8>,
}

/// Seals and opens contents with a keyring's master keys.
///
/// Share it as `Arc<Vault>`; `Debug` shows key versions only. Sealing and
/// opening large contents is CPU work: call it off the async runtime.
#[derive(Debug)]
pub struct Vault {
    /// Swapped whole by [`Vault::install`] (online key rotation): every
    /// thread that seals after the swap uses the new current version, and
    /// each seal or open reads one keyring, never half of two.
    keyring: ArcSwap<Keyring>,
}

impl Vault {
    /// A vault sealing with `keyring`'s current version and opening with any
    /// of its versions.
    pub fn new(keyring: Keyring) -> Vault {
        Vault {
            keyring: ArcSwap::from_pointee(keyring),
        }
    }

    /// A vault with one random master key, for tests.
    pub fn ephemeral() -> Vault {
        Vault::new(Keyring::generate())
    }

    /// The master keys this vault uses now.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.keyring.load_full()
    }

    /// Makes `keyring` the one this vault seals and opens with, at once for
    /// every thread (online key rotation: new mail is sealed under its
    /// current version from the next seal on).
    ///
    /// # Errors
    /// [`VaultError::UnknownKeyVersion`] when `keyring` lacks a version the
    /// vault has now: a version still wrapping stored keys must stay
    /// readable until they are re-wrapped.
    pub fn install(&self, keyring: Keyring) -> Result<(), VaultError> {
        let now = self.keyring.load();
        if let Some(lost) = now
            .versions()
            .into_iter()
            .find(|v| keyring.get(*v).is_none())
        {
            return Err(VaultError::UnknownKeyVersion(lost));
        }
        self.keyring.store(Arc::new(keyring));
        Ok(())
    }

    /// Encrypts `content` under a fresh random message key and wraps that
    /// key with the current master key.
    ///
    /// Works in place: the result is `content`'s allocation, grown by one tag
    /// per chunk and the trailer (reserve that much capacity up front to
    /// avoid even a reallocation). `context`, the message's queue id, is
    /// bound into the wrapped key and every chunk, so neither opens for
    /// another message.
    ///
    /// # Panics
    ///
    /// If the operating system cannot supply random bytes.
    pub fn seal(&self, context: &[u8], mut content: Vec<u8>) -> (WrappedKey, Vec<u8>) {
        // The message key and both nonces in one request to the operating
        // system: a system call per message instead of three.
        let mut random = [0u8; KEY_LEN + NONCE_PREFIX_LEN + wrap::NONCE_LEN];
        crate::random::fill(&mut random);
        let (key_bytes, nonces) = random.split_at(KEY_LEN);
        let (prefix, wrap_nonce) = nonces.split_at(NONCE_PREFIX_LEN);
        let key = MessageKey(key_bytes.try_into().expect("split at KEY_LEN"));
        let nonce_prefix: [u8; NONCE_PREFIX_LEN] = prefix.try_into().expect("split at prefix");
        let wrap_nonce: [u8; wrap::NONCE_LEN] = wrap_nonce.try_into().expect("the rest");
        random.fill(0);
        black_box(&mut random);
        let layout = Layout::for_sealing(nonce_prefix, content.len());
        let associated_data = layout.associated_data(context);
        let cipher = key.cipher();

        // Encrypt everything before growing the Vec: if growing has to
        // reallocate, what it copies (and frees unwiped) is ciphertext.
        let mut tail = Vec::with_capacity(layout.chunks() * TAG_LEN + TRAILER_LEN);
        for index in 0..layout.chunks() {
            let tag = cipher
                .encrypt_in_place_detached(
                    &layout.nonce(index),
                    &associated_data,
                    &mut content[layout.chunk(index)],
                )
                .expect("a 64 KiB chunk is within XChaCha20-Poly1305's limits");
            tail.extend_from_slice(&tag);
        }
        tail.extend_from_slice(layout.trailer());
        content.extend_from_slice(&tail);

        let wrapped =
            wrap::wrap_with_nonce(self.keyring.load().current(), context, &key, wrap_nonce);
        (wrapped, content)
    }

    /// Reverses [`Vault::seal`] in place: the result is `sealed`'s
    /// allocation, truncated to the plaintext.
    ///
    /// # Errors
    ///
    /// Any change to the sealed bytes, the wrapped key or the context, or a
    /// wrong master key, is an error, never partial plaintext (the buffer is
    /// wiped before it is dropped):
    /// [`VaultError::UnknownKeyVersion`] and [`VaultError::KeyUnwrap`] for the
    /// key, [`VaultError::Malformed`] when the lengths do not add up, and
    /// [`VaultError::Tampered`] when a chunk fails authentication.
    pub fn open(
        &self,
        context: &[u8],
        key: &WrappedKey,
        mut sealed: Vec<u8>,
    ) -> Result<Vec<u8>, VaultError> {
        let key = self.unwrap(context, key)?;
        let layout = Layout::parse(&sealed)?;
        match decrypt_chunks(&key, context, &layout, &mut sealed) {
            Ok(()) => {
                sealed.truncate(layout.plaintext_len());
                Ok(sealed)
            }
            Err(e) => {
                // Chunks before the failing one are already plaintext.
                sealed.fill(0);
                black_box(&mut sealed);
                Err(e)
            }
        }
    }

    /// The same message key wrapped with the current master key, for key
    /// rotation. The content sealed with it is untouched.
    ///
    /// # Errors
    ///
    /// As [`Vault::open`]'s for the key.
    pub fn rewrap(&self, context: &[u8], key: &WrappedKey) -> Result<WrappedKey, VaultError> {
        let message_key = self.unwrap(context, key)?;
        Ok(wrap::wrap(
            self.keyring.load().current(),
            context,
            &message_key,
        ))
    }

    /// Whether `key` is already wrapped with the current master key version.
    pub fn is_current(&self, key: &WrappedKey) -> bool {
        key.version == self.keyring.load().current().version()
    }

    fn unwrap(&self, context: &[u8], key: &WrappedKey) -> Result<MessageKey, VaultError> {
        let keyring = self.keyring.load();
        let master = keyring
            .get(key.version)
            .ok_or(VaultError::UnknownKeyVersion(key.version))?;
        wrap::unwrap(master, context, key)
    }
}

/// Decrypts every chunk in place, stopping at the first that fails.
fn decrypt_chunks(
    key: &MessageKey,
    context: &[u8],
    layout: &Layout,
    sealed: &mut [u8],
) -> Result<(), VaultError> {
    let associated_data = layout.associated_data(context);
    let cipher = key.cipher();
    let (body, tags) = sealed.split_at_mut(layout.plaintext_len());
    for index in 0..layout.chunks() {
        let tag = Tag::from_slice(&tags[layout.tag(index)]);
        cipher
            .decrypt_in_place_detached(
                &layout.nonce(index),
                &associated_data,
                &mut body[layout.chunk(index)],
                tag,
            )
            .map_err(|_| VaultError::Tampered)?;
    }
    Ok(())
}

/// Why content or a key could not be opened. None of these is transient:
/// retrying gives the same answer.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The wrapped key names a master key version the keyring lacks.
    #[error("sealed with master key version {0}, which this gateway's keyring does not have")]
    UnknownKeyVersion(u32),
    /// The wrapped key failed authentication under its version's master key.
    #[error("the message key does not unwrap: wrong master key (version {0}) or tampered key")]
    KeyUnwrap(u32),
    /// A chunk failed authentication.
    #[error("the sealed content failed authentication: it was tampered with or truncated")]
    Tampered,
    /// The lengths or trailer do not describe a sealed blob.
    #[error("the sealed content is malformed: {0}")]
    Malformed(&'static str),
}

#[cfg(test)]
mod tests;

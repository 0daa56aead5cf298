//! Where things are in a sealed blob: the trailer, the chunks, their tags
//! and nonces (the format itself is described in `seal.rs`).
//!
//! Parsing trusts nothing: every length comes from the trailer and is
//! checked with checked arithmetic against the blob's actual length, so no
//! input makes [`Layout::parse`] panic or index out of bounds.

use std::ops::Range;

use chacha20poly1305::XNonce;

use crate::seal::VaultError;

/// Plaintext bytes per chunk when sealing.
pub(crate) const CHUNK_SIZE: u32 = 64 * 1024;
/// Largest chunk size accepted when opening; anything bigger is corruption.
const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Poly1305 tag bytes, one per chunk.
pub(crate) const TAG_LEN: usize = 16;
/// Random part of every chunk nonce; the remaining 5 bytes are index and flag.
pub(crate) const NONCE_PREFIX_LEN: usize = 19;
const FORMAT_VERSION: u8 = 1;
const MAGIC: &[u8; 4] = b"SPV1";
/// nonce prefix (19) || chunk size u32 BE (4) || plaintext length u64 BE (8)
/// || format version (1) || magic (4).
pub(crate) const TRAILER_LEN: usize = NONCE_PREFIX_LEN + 4 + 8 + 1 + MAGIC.len();

/// The geometry of one sealed blob, from its trailer.
#[derive(Debug)]
pub(crate) struct Layout {
    trailer: [u8; TRAILER_LEN],
    chunk_size: usize,
    plaintext_len: usize,
    chunks: usize,
}

impl Layout {
    /// The layout for sealing `plaintext_len` bytes under `nonce_prefix`.
    ///
    /// # Panics
    ///
    /// If the content needs more than `u32::MAX` chunks (256 TiB).
    pub(crate) fn for_sealing(nonce_prefix: [u8; NONCE_PREFIX_LEN], plaintext_len: usize) -> Self {
        let chunk_size = CHUNK_SIZE as usize;
        let chunks = chunk_count(plaintext_len, chunk_size);
        assert!(u32::try_from(chunks).is_ok(), "content too large to seal");

        let mut trailer = [0u8; TRAILER_LEN];
        let (prefix, rest) = trailer.split_at_mut(NONCE_PREFIX_LEN);
        prefix.copy_from_slice(&nonce_prefix);
        rest[..4].copy_from_slice(&CHUNK_SIZE.to_be_bytes());
        rest[4..12].copy_from_slice(&(plaintext_len as u64).to_be_bytes());
        rest[12] = FORMAT_VERSION;
        rest[13..].copy_from_slice(MAGIC);
        Layout {
            trailer,
            chunk_size,
            plaintext_len,
            chunks,
        }
    }

    /// Reads and validates the trailer at the end of `sealed`.
    ///
    /// # Errors
    ///
    /// [`VaultError::Malformed`] if there is no valid trailer or the lengths
    /// it states do not add up to `sealed.len()` exactly.
    pub(crate) fn parse(sealed: &[u8]) -> Result<Self, VaultError> {
        let start = sealed
            .len()
            .checked_sub(TRAILER_LEN)
            .ok_or(VaultError::Malformed("too short to hold a trailer"))?;
        let mut trailer = [0u8; TRAILER_LEN];
        trailer.copy_from_slice(&sealed[start..]);

        let field = &trailer[NONCE_PREFIX_LEN..];
        if &field[13..] != MAGIC {
            return Err(VaultError::Malformed(
                "no sealpost trailer at the end (truncated, extended, or not sealed content)",
            ));
        }
        if field[12] != FORMAT_VERSION {
            return Err(VaultError::Malformed("unsupported format version"));
        }
        let chunk_size = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(VaultError::Malformed("chunk size out of range"));
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&field[4..12]);
        const MISMATCH: VaultError = VaultError::Malformed("length does not match the trailer");
        let plaintext_len = usize::try_from(u64::from_be_bytes(len_bytes)).map_err(|_| MISMATCH)?;

        let chunk_size = chunk_size as usize;
        let chunks = chunk_count(plaintext_len, chunk_size);
        if u32::try_from(chunks).is_err() {
            return Err(MISMATCH);
        }
        let expected = chunks
            .checked_mul(TAG_LEN)
            .and_then(|tags| tags.checked_add(plaintext_len))
            .and_then(|n| n.checked_add(TRAILER_LEN));
        if expected != Some(sealed.len()) {
            return Err(MISMATCH);
        }
        Ok(Layout {
            trailer,
            chunk_size,
            plaintext_len,
            chunks,
        })
    }

    pub(crate) fn plaintext_len(&self) -> usize {
        self.plaintext_len
    }

    pub(crate) fn chunks(&self) -> usize {
        self.chunks
    }

    /// The trailer's bytes, appended after the tags.
    pub(crate) fn trailer(&self) -> &[u8; TRAILER_LEN] {
        &self.trailer
    }

    /// Where chunk `index` is in the plaintext (and in the ciphertext, which
    /// has the same length and position).
    pub(crate) fn chunk(&self, index: usize) -> Range<usize> {
        let start = index * self.chunk_size;
        start..self.plaintext_len.min(start + self.chunk_size)
    }

    /// Where chunk `index`'s tag is, counted from the end of the ciphertext.
    pub(crate) fn tag(&self, index: usize) -> Range<usize> {
        let start = index * TAG_LEN;
        start..start + TAG_LEN
    }

    /// STREAM nonce: prefix || index (u32 BE) || 1 for the last chunk else 0.
    /// The index stops reordering; the flag stops cutting the stream short at
    /// a chunk boundary (a shortened stream's new last chunk was sealed as
    /// "not last").
    pub(crate) fn nonce(&self, index: usize) -> XNonce {
        let mut nonce = XNonce::default();
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(&self.trailer[..NONCE_PREFIX_LEN]);
        // Both constructors bound `chunks` by u32::MAX.
        let index_u32 = u32::try_from(index).expect("chunk index fits in u32");
        nonce[NONCE_PREFIX_LEN..NONCE_PREFIX_LEN + 4].copy_from_slice(&index_u32.to_be_bytes());
        nonce[NONCE_PREFIX_LEN + 4] = u8::from(index + 1 == self.chunks);
        nonce
    }

    /// Associated data of every chunk: context || trailer, so a chunk opens
    /// only for its message and the trailer's lengths are authenticated.
    pub(crate) fn associated_data(&self, context: &[u8]) -> Vec<u8> {
        [context, &self.trailer].concat()
    }
}

/// At least one chunk, so even empty content carries a tag.
fn chunk_count(plaintext_len: usize, chunk_size: usize) -> usize {
    plaintext_len.div_ceil(chunk_size).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_layout_is_as_documented() {
        let layout = Layout::for_sealing([7; NONCE_PREFIX_LEN], 65537);
        let t = layout.trailer();
        assert_eq!(TRAILER_LEN, 36);
        assert_eq!(&t[..19], &[7; 19]);
        assert_eq!(&t[19..23], &65536u32.to_be_bytes());
        assert_eq!(&t[23..31], &65537u64.to_be_bytes());
        assert_eq!(t[31], 1);
        assert_eq!(&t[32..], b"SPV1");
        assert_eq!(layout.chunks(), 2);
        assert_eq!(layout.chunk(1), 65536..65537);
        assert_eq!(layout.tag(1), 16..32);

        let n0 = layout.nonce(0);
        let n1 = layout.nonce(1);
        assert_eq!(&n0[19..], &[0, 0, 0, 0, 0]);
        assert_eq!(&n1[19..], &[0, 0, 0, 1, 1]);
    }

    #[test]
    fn empty_content_has_one_empty_chunk() {
        let layout = Layout::for_sealing([0; NONCE_PREFIX_LEN], 0);
        assert_eq!(layout.chunks(), 1);
        assert_eq!(layout.chunk(0), 0..0);
        assert_eq!(layout.nonce(0)[23], 1);
    }

    #[test]
    fn parse_checks_lengths() {
        let layout = Layout::for_sealing([1; NONCE_PREFIX_LEN], 10);
        let mut blob = vec![0u8; 10 + TAG_LEN];
        blob.extend_from_slice(layout.trailer());
        let parsed = Layout::parse(&blob).unwrap();
        assert_eq!((parsed.plaintext_len(), parsed.chunks()), (10, 1));

        let mut short = blob.clone();
        short.remove(0);
        assert!(matches!(
            Layout::parse(&short),
            Err(VaultError::Malformed(_))
        ));

        // A claimed length of u64::MAX must not overflow.
        let mut huge = blob.clone();
        let at = huge.len() - 13;
        huge[at..at + 8].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            Layout::parse(&huge),
            Err(VaultError::Malformed(_))
        ));

        for chunk_size in [0u32, MAX_CHUNK_SIZE + 1] {
            let mut bad = blob.clone();
            let at = bad.len() - 17;
            bad[at..at + 4].copy_from_slice(&chunk_size.to_be_bytes());
            assert!(matches!(Layout::parse(&bad), Err(VaultError::Malformed(_))));
        }
        let mut version = blob.clone();
        let at = version.len() - 5;
        version[at] = 2;
        assert!(matches!(
            Layout::parse(&version),
            Err(VaultError::Malformed(_))
        ));
        assert!(matches!(
            Layout::parse(b"SPV1"),
            Err(VaultError::Malformed(_))
        ));
    }
}

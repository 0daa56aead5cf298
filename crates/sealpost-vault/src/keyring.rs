//! Master keys by version, and their text form.
//!
//! Every message key is wrapped by one master key version. Versions coexist so
//! that a new key can take over sealing while old mail still opens; the
//! highest version is current. Key material never appears in `Debug` output
//! or error messages: errors name the entry and line, not the text.
//! Reading and writing the key file lives in `keyfile.rs`.

use std::{collections::BTreeMap, fmt, hint::black_box, path::PathBuf};

use ring::digest::{Context, SHA256};

/// Bytes in a master key (XChaCha20-Poly1305 key size).
pub(crate) const KEY_LEN: usize = 32;

/// Domain separation for [`Keyring::check_value`], so a check value can never
/// coincide with any other hash computed over the key.
const CHECK_LABEL: &[u8] = b"sealpost master key check v1";

/// What [`Keyring::to_text`] puts above the keys.
const TEXT_HEADER: &str = "\
# sealpost master keys. KEEP THIS SECRET AND BACK IT UP.
# Every secure message's key is wrapped by one of these versions: anyone
# holding this file and the database can read all secure mail, and losing a
# version makes the mail sealed with it unreadable for good.
# One \"<version>:<64 hex digits>\" per line; the highest version seals new mail.
";

/// One master key version: 32 random bytes. `Debug` shows the version only;
/// the key is overwritten when dropped.
#[derive(Clone)]
pub struct MasterKey {
    version: u32,
    key: [u8; KEY_LEN],
}

impl MasterKey {
    fn random(version: u32) -> MasterKey {
        let mut key = [0u8; KEY_LEN];
        crate::random::fill(&mut key);
        MasterKey { version, key }
    }

    /// The version this key is known by in wrapped keys and the key file.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The raw key, for the cipher in `seal.rs`.
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.key
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        // Best effort without a zeroize dependency: `black_box` keeps the
        // compiler from dropping the store as dead before the deallocation.
        self.key = [0; KEY_LEN];
        black_box(&mut self.key);
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The master keys a gateway knows, by version; the highest version is
/// current (new message keys are wrapped with it). Never empty.
#[derive(Clone)]
pub struct Keyring {
    keys: BTreeMap<u32, MasterKey>,
}

impl Keyring {
    /// Parses the text form used by the key file and `SEALPOST_MASTER_KEY`.
    ///
    /// Entries are `<version>:<64 hex digits>`, separated by whitespace,
    /// commas or newlines; lines starting with `#` are comments. A lone
    /// 64-hex-digit token is version 1. Versions are 1..=u32::MAX, unique.
    ///
    /// # Errors
    ///
    /// [`KeyringError::Malformed`] naming the entry and line at fault (never
    /// echoing its text), or [`KeyringError::Empty`] when there is no entry.
    pub fn parse(text: &str) -> Result<Keyring, KeyringError> {
        let mut keys = BTreeMap::new();
        let mut entry = 0usize;
        for (index, line) in text.lines().enumerate() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            let tokens = line
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|t| !t.is_empty());
            for token in tokens {
                entry += 1;
                let key = parse_entry(token).map_err(|problem| {
                    KeyringError::Malformed(format!(
                        "entry {entry} (line {}): {problem}",
                        index + 1
                    ))
                })?;
                if keys.contains_key(&key.version) {
                    return Err(KeyringError::Malformed(format!(
                        "entry {entry} (line {}): version {} appears more than once; \
                         each version needs exactly one key",
                        index + 1,
                        key.version
                    )));
                }
                keys.insert(key.version, key);
            }
        }
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(Keyring { keys })
    }

    /// A fresh keyring with one random key, version 1: for first start and
    /// for tests.
    ///
    /// # Panics
    ///
    /// If the operating system cannot supply random bytes.
    pub fn generate() -> Keyring {
        Keyring {
            keys: BTreeMap::from([(1, MasterKey::random(1))]),
        }
    }

    /// Adds a fresh random key as version current + 1, which becomes
    /// current, and returns that version.
    ///
    /// # Panics
    ///
    /// If the current version is already `u32::MAX`, or the operating system
    /// cannot supply random bytes.
    pub fn add_version(&mut self) -> u32 {
        self.add_version_above(0)
    }

    /// Adds a fresh random key numbered above both the current version and
    /// `floor` (the highest version a database has recorded, so a key file
    /// restored from an old backup never reuses a number the database knows
    /// under another key), and returns that version.
    ///
    /// # Panics
    ///
    /// Like [`Keyring::add_version`].
    pub fn add_version_above(&mut self, floor: u32) -> u32 {
        let version = self
            .current()
            .version
            .max(floor)
            .checked_add(1)
            .expect("master key versions exhausted (current version is u32::MAX)");
        self.keys.insert(version, MasterKey::random(version));
        version
    }

    /// The key new message keys are wrapped with: the highest version.
    pub fn current(&self) -> &MasterKey {
        self.keys
            .values()
            .next_back()
            .expect("a keyring is never empty")
    }

    /// The key of `version`, if this keyring has it.
    pub fn get(&self, version: u32) -> Option<&MasterKey> {
        self.keys.get(&version)
    }

    /// All versions, ascending.
    pub fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// A value that identifies a key without revealing it: SHA-256 over a
    /// fixed label, the version (big-endian) and the key.
    ///
    /// The store keeps one per version, so that a gateway started with the
    /// wrong key file refuses to start instead of sealing new mail with a
    /// key the old mail does not open with.
    pub fn check_value(&self, version: u32) -> Option<[u8; 32]> {
        let key = self.get(version)?;
        let mut hash = Context::new(&SHA256);
        hash.update(CHECK_LABEL);
        hash.update(&version.to_be_bytes());
        hash.update(&key.key);
        let mut out = [0u8; 32];
        out.copy_from_slice(hash.finish().as_ref());
        Some(out)
    }

    /// The text form, comment header included: what [`Keyring::save`]
    /// writes, and what operators who keep keys in `SEALPOST_MASTER_KEY` put
    /// there. It holds every key: treat it as the secret it is.
    pub fn to_text(&self) -> String {
        let mut text = String::from(TEXT_HEADER);
        for key in self.keys.values() {
            text.push_str(&format!("{}:{}\n", key.version, hex::encode(key.key)));
        }
        text
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("versions", &self.versions())
            .field("current", &self.current().version)
            .finish()
    }
}

/// One `<version>:<hex>` or lone `<hex>` entry. The problem text must not
/// quote the token: it may be key material.
fn parse_entry(token: &str) -> Result<MasterKey, String> {
    let (version, key_hex) = match token.split_once(':') {
        Some((version, key_hex)) => (parse_version(version)?, key_hex),
        None if token.len() == 2 * KEY_LEN => (1, token),
        None => {
            return Err(format!(
                "expected `<version>:<64 hex digits>` or a lone 64-hex-digit key, \
                 found {} characters without ':'",
                token.len()
            ));
        }
    };
    if key_hex.len() != 2 * KEY_LEN {
        return Err(format!(
            "the key must be 64 hex digits, found {} characters",
            key_hex.len()
        ));
    }
    let mut key = [0u8; KEY_LEN];
    hex::decode_to_slice(key_hex, &mut key)
        .map_err(|_| "the key contains a character that is not a hex digit".to_owned())?;
    Ok(MasterKey { version, key })
}

fn parse_version(text: &str) -> Result<u32, String> {
    let version = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u32>().ok()
    } else {
        None
    };
    match version {
        Some(v) if v > 0 => Ok(v),
        _ => Err(format!(
            "the version before ':' must be a whole number from 1 to {}",
            u32::MAX
        )),
    }
}

/// Why master keys could not be read, parsed or written. Each message says
/// what the operator has to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// The key file (or its directory) could not be read or written.
    #[error("master key file {}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The key file grants access to group or others.
    #[error(
        "master key file {} is accessible to other users (mode {mode:03o}); \
         run `chmod 600 {}` (and consider whether the keys were exposed)",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file is a directory or other non-regular file.
    #[error("master key file {} is not a regular file", path.display())]
    NotAFile {
        /// The path configured as `vault.master_key_file`.
        path: PathBuf,
    },
    /// The text is not a valid list of keys; says which entry and why.
    #[error("master keys are malformed: {0}")]
    Malformed(String),
    /// The text holds no key at all.
    #[error(
        "no master key found: expected at least one `<version>:<64 hex digits>` entry \
         (in the key file, or in SEALPOST_MASTER_KEY if that is set)"
    )]
    Empty,
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const HEX_B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    fn malformed(text: &str) -> String {
        match Keyring::parse(text) {
            Err(KeyringError::Malformed(message)) => message,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn parses_versions_separators_and_comments() {
        let text = format!("# header\n  # indented comment\n3:{HEX_B}, 1:{HEX_A}\r\n\n7:{HEX_A}\n");
        let keyring = Keyring::parse(&text).unwrap();
        assert_eq!(keyring.versions(), vec![1, 3, 7]);
        assert_eq!(keyring.current().version(), 7);
        assert_eq!(hex::encode(keyring.get(3).unwrap().bytes()), HEX_B);
        assert!(keyring.get(2).is_none());
    }

    #[test]
    fn a_lone_key_is_version_1_and_case_does_not_matter() {
        let keyring = Keyring::parse(&HEX_A.to_uppercase()).unwrap();
        assert_eq!(keyring.versions(), vec![1]);
        assert_eq!(hex::encode(keyring.current().bytes()), HEX_A);
    }

    #[test]
    fn errors_name_the_entry_and_never_the_key() {
        let bad_hex = format!("{}zz", &HEX_A[..62]);
        let message = malformed(&format!("1:{HEX_A}\n2:{bad_hex}"));
        assert!(message.contains("entry 2 (line 2)"), "{message}");
        assert!(message.contains("not a hex digit"), "{message}");

        let message = malformed(&format!("1:{HEX_A} 2:{}", &HEX_B[..60]));
        assert!(message.contains("entry 2 (line 1)") && message.contains("64 hex digits"));

        let message = malformed(&format!("2:{HEX_A}\n2:{HEX_B}"));
        assert!(
            message.contains("version 2 appears more than once"),
            "{message}"
        );

        let message = malformed(&format!("{HEX_A} 1:{HEX_B}"));
        assert!(
            message.contains("version 1 appears more than once"),
            "{message}"
        );

        for version in ["0", "-1", "+1", "x", "", "4294967296"] {
            let message = malformed(&format!("{version}:{HEX_A}"));
            assert!(
                message.contains("from 1 to 4294967295"),
                "{version}: {message}"
            );
        }

        let message = malformed(&HEX_B[..40]);
        assert!(message.contains("without ':'"), "{message}");

        for text in [
            format!("1:{bad_hex}"),
            format!("0:{HEX_A}"),
            format!("1:{HEX_A} 1:{HEX_B}"),
            HEX_B[..40].to_owned(),
        ] {
            let shown = Keyring::parse(&text).unwrap_err().to_string();
            assert!(
                !shown.contains(&HEX_A[..16]) && !shown.contains(&HEX_B[..16]),
                "{shown}"
            );
        }
    }

    #[test]
    fn empty_text_is_empty() {
        for text in ["", "  \n", "# only a comment\n", ", ,"] {
            assert!(
                matches!(Keyring::parse(text), Err(KeyringError::Empty)),
                "{text:?}"
            );
        }
        assert!(
            KeyringError::Empty
                .to_string()
                .contains("<version>:<64 hex digits>")
        );
    }

    #[test]
    fn to_text_parses_back_to_the_same_keys() {
        let mut keyring = Keyring::generate();
        assert_eq!(keyring.add_version(), 2);
        assert_eq!(keyring.add_version(), 3);
        let text = keyring.to_text();
        assert!(text.starts_with("# sealpost master keys"));
        let again = Keyring::parse(&text).unwrap();
        assert_eq!(again.versions(), vec![1, 2, 3]);
        for v in 1..=3 {
            assert_eq!(
                again.get(v).unwrap().bytes(),
                keyring.get(v).unwrap().bytes()
            );
        }
    }

    #[test]
    fn add_version_follows_the_highest() {
        let mut keyring = Keyring::parse(&format!("5:{HEX_A}\n2:{HEX_B}")).unwrap();
        assert_eq!(keyring.add_version(), 6);
        assert_eq!(keyring.current().version(), 6);
        assert_ne!(keyring.current().bytes(), keyring.get(5).unwrap().bytes());
    }

    #[test]
    fn check_values_identify_version_and_key() {
        let a = Keyring::parse(&format!("1:{HEX_A} 2:{HEX_A}")).unwrap();
        let b = Keyring::parse(&format!("1:{HEX_B}")).unwrap();
        let check = a.check_value(1).unwrap();
        assert_eq!(Some(check), a.clone().check_value(1));
        assert_ne!(Some(check), a.check_value(2), "the version is bound in");
        assert_ne!(Some(check), b.check_value(1), "the key is bound in");
        assert_eq!(a.check_value(3), None);

        let mut expected = Context::new(&SHA256);
        expected.update(b"sealpost master key check v1\0\0\0\x01");
        expected.update(&hex::decode(HEX_A).unwrap());
        assert_eq!(&check[..], expected.finish().as_ref());
    }

    #[test]
    fn debug_shows_versions_only() {
        let keyring = Keyring::parse(&format!("1:{HEX_A} 4:{HEX_B}")).unwrap();
        let shown = format!("{keyring:?} {:?} {:#?}", keyring.current(), keyring);
        assert!(shown.contains("versions: [1, 4]"), "{shown}");
        for hex in [HEX_A, HEX_B] {
            assert!(!shown.contains(&hex[..8]), "{shown}");
        }
        assert!(!shown.to_lowercase().contains("0x") && !shown.contains("[0, 17"));
    }
}

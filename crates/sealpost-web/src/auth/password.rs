//! Passwords of portal recipients and console administrators: argon2id
//! hashing with OWASP's parameters, verification that takes about as long
//! for an unknown account as for a wrong password, and the strength rule a
//! new password must pass.
//!
//! Hashing costs tens of milliseconds of CPU: async callers use
//! [`hash_blocking`] and [`verify_blocking`], which run it off the runtime.

use argon2::{
    Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version,
    password_hash::{self, SaltString},
};

use super::secret::Secret;

/// Memory cost in KiB: 19 MiB, OWASP's first argon2id configuration.
const M_COST_KIB: u32 = 19 * 1024;
/// Iterations, with [`M_COST_KIB`].
const T_COST: u32 = 2;
/// Lanes. One: the server runs many sign-ins at once, not one fast one.
const P_COST: u32 = 1;

/// Fewest characters a new password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Most characters a new password may have: the strength estimate's cost
/// grows with the length, and nobody types more.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// The argon2id hash of a password that no account has, with the current
/// parameters: [`verify`] checks against it when the account does not exist,
/// so an unknown address costs the same time as a wrong password.
const FALLBACK_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$hqS9sQcv1dUDHOffR1Q0tQ$bHwy3Vi/47lAGXKuWitMIOBahtXp1nDzWTXxODWOZu0";

/// A password as typed. Never logged; see [`Secret`].
#[derive(Debug, Clone)]
pub struct Password(Secret<String>);

impl Password {
    /// Wraps what the user typed.
    pub fn new(text: impl Into<String>) -> Self {
        Password(Secret::new(text.into()))
    }

    /// The text, for hashing and the strength check only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// A stored password hash: a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
/// Not a secret in the way a password is, but an offline guessing attack
/// starts from it, so it stays out of logs too.
#[derive(Debug, Clone)]
pub struct PasswordHash(Secret<String>);

impl PasswordHash {
    /// Takes a hash read back from the store.
    ///
    /// # Errors
    /// [`PasswordError::Malformed`] when it is not a PHC string.
    pub fn parse(phc: impl Into<String>) -> Result<Self, PasswordError> {
        let phc = phc.into();
        password_hash::PasswordHash::new(&phc).map_err(|_| PasswordError::Malformed)?;
        Ok(PasswordHash(Secret::new(phc)))
    }

    /// The PHC string, to store.
    pub fn as_phc(&self) -> &str {
        self.0.expose()
    }

    /// Whether the hash was made with other parameters than today's, so it
    /// should be replaced (with a fresh hash of the password just verified).
    pub fn needs_rehash(&self) -> bool {
        let Ok(parsed) = password_hash::PasswordHash::new(self.as_phc()) else {
            return true;
        };
        let same = parsed.algorithm == Algorithm::Argon2id.ident()
            && parsed.version == Some(Version::V0x13.into())
            && Params::try_from(&parsed).is_ok_and(|p| {
                p.m_cost() == M_COST_KIB && p.t_cost() == T_COST && p.p_cost() == P_COST
            });
        !same
    }
}

/// Why a password could not be hashed or a stored hash used.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The stored value is not a PHC string.
    #[error("the stored password hash is malformed")]
    Malformed,
    /// argon2 refused (a password or parameter out of its range).
    #[error("password hashing failed: {0}")]
    Hashing(password_hash::Error),
    /// The blocking task running the hash did not finish (it panicked, or
    /// the runtime is shutting down).
    #[error("password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .expect("the OWASP argon2id parameters are within argon2's limits");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with a fresh random salt.
///
/// This takes tens of milliseconds of CPU; on the runtime use
/// [`hash_blocking`].
///
/// # Errors
/// [`PasswordError::Hashing`] if argon2 refuses the input.
///
/// # Panics
/// If the operating system has no random source.
pub fn hash(password: &Password) -> Result<PasswordHash, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS random source is available");
    let salt = SaltString::encode_b64(&salt).map_err(PasswordError::Hashing)?;
    let phc = argon2()
        .hash_password(password.expose().as_bytes(), &salt)
        .map_err(PasswordError::Hashing)?;
    Ok(PasswordHash(Secret::new(phc.to_string())))
}

/// Whether `password` matches `stored`. With no stored hash (no such
/// account) the password is checked against a fixed hash anyway and the
/// answer is `false`, so the time taken does not tell whether the account
/// exists.
///
/// This takes tens of milliseconds of CPU; on the runtime use
/// [`verify_blocking`].
pub fn verify(password: &Password, stored: Option<&PasswordHash>) -> bool {
    let (phc, known) = match stored {
        Some(stored) => (stored.as_phc(), true),
        None => (FALLBACK_HASH, false),
    };
    let Ok(parsed) = password_hash::PasswordHash::new(phc) else {
        tracing::error!("a stored password hash is malformed; the sign-in is refused");
        return false;
    };
    // The parameters come from the stored hash, so one made before a
    // parameter change still verifies (see `needs_rehash`).
    let matches = argon2()
        .verify_password(password.expose().as_bytes(), &parsed)
        .is_ok();
    matches && known
}

/// [`hash`] on the blocking pool, inside the caller's tracing span.
///
/// # Errors
/// As [`hash`], or [`PasswordError::Task`] if the task did not finish.
///
/// # Cancel safety
/// Cancel safe: dropping the future leaves the hash to finish unseen.
pub async fn hash_blocking(password: Password) -> Result<PasswordHash, PasswordError> {
    spawn_blocking_in_span(move || hash(&password)).await?
}

/// [`verify`] on the blocking pool, inside the caller's tracing span.
/// A task that does not finish counts as a mismatch.
///
/// # Cancel safety
/// Cancel safe: dropping the future leaves the check to finish unseen.
pub async fn verify_blocking(password: Password, stored: Option<PasswordHash>) -> bool {
    match spawn_blocking_in_span(move || verify(&password, stored.as_ref())).await {
        Ok(matches) => matches,
        Err(e) => {
            tracing::error!(error = %e, "password check task failed; the sign-in is refused");
            false
        }
    }
}

/// The letters of a one-time password: no look-alikes (0/o, 1/l/i).
const ONE_TIME_ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz23456789-";

/// A one-time password, for an administrator created or reset by someone
/// else (the CLI, the first start): 20 characters in groups of five from
/// 31 letters and digits without look-alikes, about 99 bits. It passes
/// [`check_strength`] and must be replaced at the first sign-in.
pub fn one_time_password() -> Password {
    let alphabet = &ONE_TIME_ALPHABET[..31];
    let mut text = String::with_capacity(23);
    let mut filled = 0;
    while filled < 20 {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        // Rejection sampling: 248 = 8 × 31, so every letter is as likely.
        for b in bytes.into_iter().filter(|&b| b < 248) {
            if filled == 20 {
                break;
            }
            if filled > 0 && filled % 5 == 0 {
                text.push('-');
            }
            text.push(char::from(alphabet[usize::from(b % 31)]));
            filled += 1;
        }
    }
    Password::new(text)
}

/// A new [`one_time_password`] and its hash (on the blocking pool), for
/// an administrator someone else creates or resets.
///
/// # Errors
/// As [`hash_blocking`].
pub async fn one_time_with_hash() -> Result<(Password, PasswordHash), PasswordError> {
    let password = one_time_password();
    let hashed = hash_blocking(Password::new(password.expose())).await?;
    Ok((password, hashed))
}

/// Runs CPU-heavy `work` on tokio's blocking pool, in the current span so
/// its events keep the request's fields.
pub fn spawn_blocking_in_span<F, R>(work: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
}

/// zxcvbn's reasons and advice, which a face turns into its own words.
pub use zxcvbn::feedback::{Suggestion, Warning};

/// Why [`check_strength`] refused a new password. No words: each face
/// (the portal's [`Words`](crate::portal::words::Words), the console to
/// come) says it in its language.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeakPassword {
    #[error("shorter than {min} characters ({chars})")]
    TooShort { min: usize, chars: usize },
    #[error("longer than {max} characters")]
    TooLong { max: usize },
    /// A zxcvbn score under 3; what it found, and what to do instead.
    #[error("too easy to guess")]
    Guessable {
        warning: Option<Warning>,
        suggestions: Vec<Suggestion>,
    },
}

/// Checks a new password: [`MIN_PASSWORD_CHARS`] to [`MAX_PASSWORD_CHARS`]
/// characters, and a zxcvbn score of at least 3 (about 10¹⁰ guesses).
///
/// `user_inputs` are words an attacker would try first: the account's
/// address, the sender's name and address, the organisation's name. Each
/// is counted against the password whole and word by word, so
/// `bob@partner.example` makes `bob`, `partner` and `example` weak parts.
///
/// # Errors
/// [`WeakPassword`], with zxcvbn's findings when it is guessable.
pub fn check_strength(password: &Password, user_inputs: &[&str]) -> Result<(), WeakPassword> {
    let text = password.expose();
    let chars = text.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(WeakPassword::TooShort {
            min: MIN_PASSWORD_CHARS,
            chars,
        });
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(WeakPassword::TooLong {
            max: MAX_PASSWORD_CHARS,
        });
    }
    let words = user_words(user_inputs);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let entropy = zxcvbn::zxcvbn(text, &words);
    if entropy.score() >= zxcvbn::Score::Three {
        return Ok(());
    }
    let feedback = entropy.feedback();
    Err(WeakPassword::Guessable {
        warning: feedback.and_then(zxcvbn::feedback::Feedback::warning),
        suggestions: feedback.map_or_else(Vec::new, |f| f.suggestions().to_vec()),
    })
}

/// Each input whole and split into its words of three or more letters,
/// lower-cased (zxcvbn compares lower-cased).
fn user_words(inputs: &[&str]) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for input in inputs {
        let whole = input.trim().to_lowercase();
        for word in whole
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() >= 3)
            .map(str::to_owned)
            .chain(std::iter::once(whole.clone()))
        {
            if !word.is_empty() && !words.contains(&word) {
                words.push(word);
            }
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_an_argon2id_phc_string_that_verifies_only_its_password() {
        let password = Password::new("Tangerine-Orbit-Walrus-42");
        let stored = hash(&password).unwrap();
        let phc = stored.as_phc();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains(password.expose()));
        assert!(PasswordHash::parse(phc).is_ok());
        assert!(!stored.needs_rehash());
        assert!(verify(&password, Some(&stored)));
        assert!(!verify(
            &Password::new("Tangerine-Orbit-Walrus-43"),
            Some(&stored)
        ));
        assert!(!verify(&Password::new(""), Some(&stored)));
    }

    #[test]
    fn the_same_password_hashes_differently_each_time() {
        let password = Password::new("Tangerine-Orbit-Walrus-42");
        assert_ne!(
            hash(&password).unwrap().as_phc(),
            hash(&password).unwrap().as_phc()
        );
    }

    /// The fallback is a real hash with today's parameters: were it not, an
    /// unknown account would answer faster than a wrong password.
    #[test]
    fn the_fallback_hash_costs_what_a_real_one_does_and_never_admits() {
        let fallback = PasswordHash::parse(FALLBACK_HASH).unwrap();
        assert!(!fallback.needs_rehash());
        assert!(!verify(
            &Password::new("sealpost fallback: no account has this password"),
            None
        ));
        assert!(!verify(&Password::new("anything"), None));
    }

    #[test]
    fn stored_hashes_are_checked() {
        assert!(PasswordHash::parse("not a hash").is_err());
        assert!(PasswordHash::parse("").is_err());
        let old = PasswordHash::parse(
            "$argon2id$v=19$m=4096,t=3,p=1$hqS9sQcv1dUDHOffR1Q0tQ$bHwy3Vi/47lAGXKuWitMIOBahtXp1nDzWTXxODWOZu0",
        )
        .unwrap();
        assert!(old.needs_rehash());
    }

    #[test]
    fn passwords_and_hashes_stay_out_of_debug_output() {
        let password = Password::new("Tangerine-Orbit-Walrus-42");
        let stored = hash(&password).unwrap();
        let shown = format!("{password:?} {stored:?}");
        assert!(!shown.contains("Tangerine"), "{shown}");
        assert!(!shown.contains("argon2id"), "{shown}");
    }

    #[tokio::test]
    async fn the_blocking_wrappers_hash_and_verify() {
        let stored = hash_blocking(Password::new("Tangerine-Orbit-Walrus-42"))
            .await
            .unwrap();
        assert!(
            verify_blocking(
                Password::new("Tangerine-Orbit-Walrus-42"),
                Some(stored.clone())
            )
            .await
        );
        assert!(!verify_blocking(Password::new("tangerine-orbit-walrus-42"), Some(stored)).await);
        assert!(!verify_blocking(Password::new("Tangerine-Orbit-Walrus-42"), None).await);
    }

    #[test]
    fn short_and_long_passwords_are_refused_with_the_rule() {
        let e = check_strength(&Password::new("x7#Qp!2z"), &[]).unwrap_err();
        assert_eq!(e, WeakPassword::TooShort { min: 12, chars: 8 });
        // Counted in characters, not bytes.
        let e = check_strength(&Password::new("ééééééééééé"), &[]).unwrap_err();
        assert_eq!(e, WeakPassword::TooShort { min: 12, chars: 11 });
        let e =
            check_strength(&Password::new("a".repeat(MAX_PASSWORD_CHARS + 1)), &[]).unwrap_err();
        assert_eq!(
            e,
            WeakPassword::TooLong {
                max: MAX_PASSWORD_CHARS
            }
        );
    }

    #[test]
    fn common_and_patterned_passwords_are_refused_with_findings() {
        for weak in [
            "password1234",
            "qwertyuiopasdf",
            "aaaaaaaaaaaaaaaa",
            "123456789012",
        ] {
            let e = check_strength(&Password::new(weak), &[]).unwrap_err();
            let WeakPassword::Guessable {
                warning,
                suggestions,
            } = e
            else {
                panic!("{weak}: {e:?}");
            };
            assert!(warning.is_some() || !suggestions.is_empty(), "{weak}");
        }
    }

    #[test]
    fn one_time_passwords_are_grouped_unambiguous_strong_and_new_each_time() {
        let a = one_time_password();
        let b = one_time_password();
        assert_ne!(a.expose(), b.expose());
        for p in [&a, &b] {
            let text = p.expose();
            assert_eq!(text.len(), 23, "{text}");
            let groups: Vec<&str> = text.split('-').collect();
            assert_eq!(groups.len(), 4, "{text}");
            assert!(groups.iter().all(|g| g.len() == 5), "{text}");
            assert!(
                text.chars()
                    .all(|c| c == '-' || ONE_TIME_ALPHABET[..31].contains(&(c as u8))),
                "{text}"
            );
            assert!(!text.contains(['0', 'o', '1', 'l', 'i']), "{text}");
            check_strength(p, &[]).unwrap();
        }
    }

    #[test]
    fn strong_passphrases_pass() {
        check_strength(&Password::new("violet anchor thunder mosaic"), &[]).unwrap();
        check_strength(&Password::new("Tangerine-Orbit-Walrus-42"), &[]).unwrap();
    }

    /// The same password passes without user inputs and is refused when it
    /// is built from the account's address and the organisation's name.
    #[test]
    fn the_address_and_names_count_against_the_password() {
        let password = Password::new("zylofrenquixote");
        check_strength(&password, &[]).unwrap();
        let e = check_strength(
            &password,
            &["zylofren@quixote-partners.example", "Quixote Partners"],
        )
        .unwrap_err();
        assert!(matches!(e, WeakPassword::Guessable { .. }), "{e:?}");
    }

    #[test]
    fn user_inputs_are_split_into_words() {
        assert_eq!(
            user_words(&["Bob.Smith@Partner.example", "Bob"]),
            [
                "bob",
                "smith",
                "partner",
                "example",
                "bob.smith@partner.example"
            ]
        );
    }
}

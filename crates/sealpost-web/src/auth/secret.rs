//! A value that must never reach a log: passwords, password hashes,
//! session ids. `Debug` prints `[redacted]`, there is no `Display` or
//! `Serialize`, and reading the value takes a visible `.expose()`.
//! (A local type rather than the `secrecy` crate: this is all we use of it.)

/// A secret value; see the module docs. Deliberately not `PartialEq`:
/// comparing secrets takes a constant-time comparison, chosen where it is made.
#[derive(Clone)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value itself, for the one place that must use it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2-correct-horse".to_owned());
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"));
        assert_eq!(secret.expose(), "hunter2-correct-horse");
    }
}

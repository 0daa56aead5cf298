//! The submission listeners and the brakes on AUTH, under `[smtp]`:
//! `submission_listen` (STARTTLS, typically port 587),
//! `submission_tls_listen` (implicit TLS, port 465) and the `auth_*` keys.
//! None of the listeners by default: submission is something an operator
//! turns on.

use std::{net::SocketAddr, time::Duration};

use sealpost_smtp::inbound::auth::guard::GuardSettings;

use super::{ConfigError, duration, err, parse_list};

/// The submission side of `[smtp]`, parsed.
#[derive(Debug, Clone, Default)]
pub struct SubmissionConfig {
    /// `smtp.submission_listen`: STARTTLS offered, AUTH after it.
    pub listen: Vec<SocketAddr>,
    /// `smtp.submission_tls_listen`: TLS from the first byte.
    pub tls_listen: Vec<SocketAddr>,
    /// Delay, lockout and window of failed AUTH.
    pub guard: GuardSettings,
}

impl SubmissionConfig {
    /// Whether any submission listener is configured.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty() || !self.tls_listen.is_empty()
    }
}

/// The submission keys of `[smtp]` as written.
#[derive(Debug, Default)]
pub struct SubmissionKeys {
    pub submission_listen: Option<Vec<String>>,
    pub submission_tls_listen: Option<Vec<String>>,
    pub auth_failure_delay: Option<String>,
    pub auth_failure_delay_max: Option<String>,
    pub auth_lockout_failures: Option<u32>,
    pub auth_lockout_ip_failures: Option<u32>,
    pub auth_lockout_window: Option<String>,
    pub auth_lockout_time: Option<String>,
}

fn addresses(
    path: &str,
    values: Option<Vec<String>>,
    errors: &mut Vec<ConfigError>,
) -> Vec<SocketAddr> {
    parse_list(path, values.unwrap_or_default(), errors, |v| {
        v.parse::<SocketAddr>()
            .map_err(|_| format!("{v:?} is not an address:port such as 0.0.0.0:587 or [::]:465"))
    })
}

/// Parses the submission keys, collecting errors with their key paths.
pub fn build(
    k: SubmissionKeys,
    smtp_listen: &[SocketAddr],
    errors: &mut Vec<ConfigError>,
) -> SubmissionConfig {
    let listen = addresses("smtp.submission_listen", k.submission_listen, errors);
    let tls_listen = addresses(
        "smtp.submission_tls_listen",
        k.submission_tls_listen,
        errors,
    );
    let mut seen: Vec<SocketAddr> = smtp_listen.to_vec();
    for (path, list) in [
        ("smtp.submission_listen", &listen),
        ("smtp.submission_tls_listen", &tls_listen),
    ] {
        for a in list {
            if a.port() != 0 && seen.contains(a) {
                errors.push(err(
                    path,
                    format!("{a} is already used by another SMTP listener"),
                ));
            }
            seen.push(*a);
        }
    }
    let d = GuardSettings::default();
    let failure_delay = duration(
        "smtp.auth_failure_delay",
        k.auth_failure_delay,
        d.failure_delay,
        errors,
    );
    let failure_delay_max = duration(
        "smtp.auth_failure_delay_max",
        k.auth_failure_delay_max,
        d.failure_delay_max,
        errors,
    );
    if failure_delay_max < failure_delay {
        errors.push(err(
            "smtp.auth_failure_delay_max",
            "must be at least smtp.auth_failure_delay",
        ));
    }
    if failure_delay_max > Duration::from_secs(60) {
        errors.push(err(
            "smtp.auth_failure_delay_max",
            "must be at most 60s (clients time out waiting)",
        ));
    }
    let count = |path: &str, v: Option<u32>, default: u32, errors: &mut Vec<ConfigError>| match v {
        None => default,
        Some(0) => {
            errors.push(err(path, "must be at least 1"));
            default
        }
        Some(n) => n,
    };
    SubmissionConfig {
        listen,
        tls_listen,
        guard: GuardSettings {
            failure_delay,
            failure_delay_max,
            account_failures: count(
                "smtp.auth_lockout_failures",
                k.auth_lockout_failures,
                d.account_failures,
                errors,
            ),
            ip_failures: count(
                "smtp.auth_lockout_ip_failures",
                k.auth_lockout_ip_failures,
                d.ip_failures,
                errors,
            ),
            window: duration(
                "smtp.auth_lockout_window",
                k.auth_lockout_window,
                d.window,
                errors,
            ),
            lockout: duration(
                "smtp.auth_lockout_time",
                k.auth_lockout_time,
                d.lockout,
                errors,
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<crate::config::Config, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, text).unwrap();
        crate::config::load(
            Some(&file),
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn submission_is_off_by_default_with_documented_brakes() {
        let c = load("", &[]).unwrap().smtp.submission;
        assert!(!c.enabled());
        assert_eq!(c.guard, GuardSettings::default());
        assert_eq!(c.guard.account_failures, 5);
        assert_eq!(c.guard.ip_failures, 20);
        assert_eq!(c.guard.lockout, Duration::from_secs(900));
    }

    #[test]
    fn listeners_and_brakes_from_the_file_and_the_environment() {
        let c = load(
            "[smtp]\nsubmission_listen = [\"127.0.0.1:1587\"]\nauth_lockout_failures = 3\nauth_failure_delay = \"200ms\"\n",
            &[("SEALPOST_SMTP_SUBMISSION_TLS_LISTEN", "127.0.0.1:1465,[::1]:1465")],
        )
        .unwrap()
        .smtp
        .submission;
        assert_eq!(c.listen, vec!["127.0.0.1:1587".parse().unwrap()]);
        assert_eq!(c.tls_listen.len(), 2);
        assert_eq!(c.guard.account_failures, 3);
        assert_eq!(c.guard.failure_delay, Duration::from_millis(200));
    }

    #[test]
    fn bad_values_are_named_by_their_key() {
        let e = load(
            "[smtp]\nlisten = [\"127.0.0.1:2525\"]\nsubmission_listen = [\"nowhere\", \"127.0.0.1:2525\"]\nauth_lockout_ip_failures = 0\nauth_failure_delay = \"5s\"\nauth_failure_delay_max = \"1s\"\n",
            &[],
        )
        .unwrap_err();
        for key in [
            "smtp.submission_listen[0]:",
            "smtp.submission_listen: 127.0.0.1:2525 is already used",
            "smtp.auth_lockout_ip_failures:",
            "smtp.auth_failure_delay_max:",
        ] {
            assert!(e.iter().any(|m| m.starts_with(key)), "{key} in {e:?}");
        }
    }
}

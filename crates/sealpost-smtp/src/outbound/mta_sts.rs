//! MTA-STS (RFC 8461): a recipient domain publishing that its MX hosts
//! take verified TLS, when `relay.mta_sts = true`.
//!
//! A domain signals a policy with a TXT record at `_mta-sts.<domain>`
//! (`v=STSv1; id=...`); the policy itself is fetched from
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt` over verified TLS,
//! with no redirects, bounded in time and size. Policies are cached in
//! memory by domain until their `max_age`, and fetched again when the
//! record's id changes (RFC 8461 §5.1); a cached policy outlives DNS or
//! HTTPS trouble, so an attacker who blocks the fetch cannot downgrade.
//! With a cache file (`<data_dir>/mta-sts.cache`) the policies also outlive
//! a restart.
//!
//! The parsers ([`parse_record`], [`parse_policy`]) are pure; [`MtaSts`]
//! does the I/O.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::TlsConnector;

use super::{lookup::Lookup, tls_policy::host_matches};

/// Largest policy body taken (RFC 8461 §3.3 suggests 64 KiB).
const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Longest a whole fetch (connect, TLS, request, response) may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest `max_age` honoured (RFC 8461 §3.2: 31557600 seconds).
const MAX_AGE_LIMIT: u64 = 31_557_600;
/// How long a TXT answer is trusted before asking DNS again, so that a
/// busy destination costs one lookup per period, not one per delivery.
const RECORD_RECHECK: Duration = Duration::from_secs(300);

/// What a policy asks of senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StsMode {
    /// MX hosts must match and TLS must verify, or no delivery.
    Enforce,
    /// Report only: delivery goes on, failures are logged.
    Testing,
    /// No policy.
    None,
}

/// A parsed policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsPolicy {
    pub mode: StsMode,
    /// `mx` patterns (`mx.example.com` or `*.example.com`).
    pub mx: Vec<String>,
    pub max_age: Duration,
}

impl StsPolicy {
    /// Whether MX host `host` is one the policy names.
    pub fn allows_mx(&self, host: &str) -> bool {
        self.mx.iter().any(|p| host_matches(p, host))
    }
}

/// The id of a `_mta-sts` TXT record set, or why there is no usable one.
/// Exactly one record must start with `v=STSv1` (RFC 8461 §3.1); others
/// are ignored.
pub fn parse_record(records: &[String]) -> Result<String, String> {
    let sts: Vec<&String> = records
        .iter()
        .filter(|r| r.trim_start().starts_with("v=STSv1"))
        .collect();
    let record = match sts.as_slice() {
        [one] => one,
        [] => return Err("no v=STSv1 record".into()),
        _ => return Err("more than one v=STSv1 record".into()),
    };
    let mut id = None;
    for field in record.split(';') {
        let field = field.trim();
        if let Some(value) = field.strip_prefix("id=") {
            id = Some(value.trim().to_owned());
        }
    }
    match id {
        Some(id)
            if (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            Ok(id)
        }
        Some(id) => Err(format!("id {id:?} is not 1 to 32 letters and digits")),
        None => Err("the record has no id".into()),
    }
}

/// Parses a policy file (RFC 8461 §3.2): `key: value` lines ending in LF
/// or CRLF; `version: STSv1`, `mode`, `max_age` and (unless the mode is
/// `none`) at least one `mx` are required; unknown keys are ignored.
pub fn parse_policy(text: &str) -> Result<StsPolicy, String> {
    let (mut version, mut mode, mut max_age) = (None, None, None);
    let mut mx = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("line {line:?} is not key: value"));
        };
        let value = value.trim();
        match key.trim() {
            "version" => version = Some(value.to_owned()),
            "mode" => {
                mode = Some(match value {
                    "enforce" => StsMode::Enforce,
                    "testing" => StsMode::Testing,
                    "none" => StsMode::None,
                    other => return Err(format!("mode {other:?} is not enforce, testing or none")),
                })
            }
            "max_age" => {
                let seconds: u64 = value
                    .parse()
                    .ok()
                    .filter(|_| value.len() <= 10 && value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("max_age {value:?} is not a number of seconds"))?;
                max_age = Some(Duration::from_secs(seconds.min(MAX_AGE_LIMIT)));
            }
            "mx" => mx.push(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err("version is not STSv1".into());
    }
    let mode = mode.ok_or("no mode")?;
    let max_age = max_age.ok_or("no max_age")?;
    if mx.is_empty() && mode != StsMode::None {
        return Err("no mx pattern".into());
    }
    Ok(StsPolicy { mode, mx, max_age })
}

/// A cached policy.
#[derive(Debug, Clone)]
struct Cached {
    id: String,
    policy: StsPolicy,
    /// When the policy expires (fetched + max_age).
    expires: Instant,
    /// The same, as wall time, for the cache file.
    expires_at: SystemTime,
    /// When the TXT record was last seen.
    checked: Instant,
}

/// Fetches and caches MTA-STS policies. One per gateway.
#[derive(Debug)]
pub struct MtaSts {
    tls: Arc<rustls::ClientConfig>,
    /// Port of `mta-sts.<domain>` (443; `relay.mta_sts_port` for tests).
    port: u16,
    cache: Mutex<HashMap<String, Cached>>,
    /// Domains found without a record, and when that was: most domains
    /// publish none, and asking DNS again for each delivery would cost a
    /// lookup per message.
    absent: Mutex<HashMap<String, Instant>>,
    /// Where the cache is kept across restarts, if anywhere.
    file: Option<PathBuf>,
}

impl MtaSts {
    /// Fetches with `tls` (verifying: the policy host's certificate must
    /// be valid for `mta-sts.<domain>`) from `port`.
    pub fn new(tls: Arc<rustls::ClientConfig>, port: u16) -> Self {
        MtaSts {
            tls,
            port,
            cache: Mutex::new(HashMap::new()),
            absent: Mutex::new(HashMap::new()),
            file: None,
        }
    }

    /// Keeps the cache in `file` too, starting from the unexpired policies
    /// it holds. A missing or unreadable file starts an empty cache.
    pub fn with_cache_file(mut self, file: PathBuf) -> Self {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let (now, wall) = (Instant::now(), SystemTime::now());
            let mut cache = self.lock_cache();
            for (domain, id, expires_at, policy) in text.lines().filter_map(parse_cache_line) {
                let Ok(left) = expires_at.duration_since(wall) else {
                    continue;
                };
                cache.insert(
                    domain,
                    Cached {
                        id,
                        policy,
                        expires: now + left,
                        expires_at,
                        // The record is checked again on first use.
                        checked: now.checked_sub(RECORD_RECHECK).unwrap_or(now),
                    },
                );
            }
        }
        self.file = Some(file);
        self
    }

    /// The policy in force for `domain`, if it has one: the cached one
    /// while its record id is unchanged and it has not expired, else a
    /// fresh fetch. DNS or HTTPS trouble keeps a cached policy (RFC 8461
    /// §5.1) and otherwise means no policy.
    pub async fn policy(&self, domain: &str, lookup: &Lookup) -> Option<StsPolicy> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let now = Instant::now();
        let cached = self.cached(&domain).filter(|c| c.expires > now);
        if let Some(c) = &cached
            && now.duration_since(c.checked) < RECORD_RECHECK
        {
            return Some(c.policy.clone());
        }
        if cached.is_none() && self.recently_absent(&domain, now) {
            return None;
        }
        let id = match lookup.txt(&format!("_mta-sts.{domain}")).await {
            Ok(records) => match parse_record(&records) {
                Ok(id) => id,
                Err(why) => {
                    if records.is_empty() {
                        self.lock_absent().insert(domain.clone(), now);
                    } else {
                        tracing::info!(%domain, %why, "MTA-STS record unusable");
                    }
                    return cached.map(|c| c.policy);
                }
            },
            Err(e) => {
                tracing::info!(%domain, error = ?e, "MTA-STS record lookup failed");
                return cached.map(|c| c.policy);
            }
        };
        if let Some(c) = cached.as_ref().filter(|c| c.id == id) {
            self.store(
                &domain,
                Cached {
                    checked: now,
                    ..c.clone()
                },
            );
            return Some(c.policy.clone());
        }
        match self.fetch(&domain, lookup).await {
            Ok(policy) => {
                tracing::info!(%domain, %id, mode = ?policy.mode, "MTA-STS policy fetched");
                self.store(
                    &domain,
                    Cached {
                        id,
                        expires: now + policy.max_age,
                        expires_at: SystemTime::now() + policy.max_age,
                        checked: now,
                        policy: policy.clone(),
                    },
                );
                Some(policy)
            }
            Err(why) => {
                tracing::warn!(%domain, %why, "MTA-STS policy fetch failed");
                cached.map(|c| c.policy)
            }
        }
    }

    fn lock_absent(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.absent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `domain` had no record within [`RECORD_RECHECK`]; forgets
    /// older answers (bounding the map by the domains of the last period).
    fn recently_absent(&self, domain: &str, now: Instant) -> bool {
        let mut absent = self.lock_absent();
        if absent.len() > 10_000 {
            absent.retain(|_, at| now.duration_since(*at) < RECORD_RECHECK);
        }
        absent
            .get(domain)
            .is_some_and(|at| now.duration_since(*at) < RECORD_RECHECK)
    }

    fn cached(&self, domain: &str) -> Option<Cached> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(domain)
            .cloned()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn store(&self, domain: &str, entry: Cached) {
        let fresh = {
            let mut cache = self.lock_cache();
            let fresh = cache.get(domain).is_none_or(|c| c.id != entry.id);
            cache.insert(domain.to_owned(), entry);
            fresh
        };
        if fresh && let Some(file) = &self.file {
            self.save(file);
        }
    }

    /// Writes the cache to `file` (a new file renamed over the old one,
    /// so a crash leaves one or the other). Failure is logged: the memory
    /// cache still works.
    fn save(&self, file: &std::path::Path) {
        let text: String = self
            .lock_cache()
            .iter()
            .map(|(domain, c)| cache_line(domain, c))
            .collect();
        let tmp = file.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, file)) {
            tracing::warn!(file = %file.display(), error = %e, "cannot save the MTA-STS cache");
        }
    }

    /// GETs the policy file of `domain`, within [`FETCH_TIMEOUT`] and
    /// [`MAX_POLICY_BYTES`].
    async fn fetch(&self, domain: &str, lookup: &Lookup) -> Result<StsPolicy, String> {
        let host = format!("mta-sts.{domain}");
        let targets = lookup
            .addresses(&host, self.port)
            .await
            .map_err(|e| format!("{host}: {e:?}"))?;
        let target = targets
            .first()
            .ok_or_else(|| format!("{host}: no address"))?;
        let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
        let tls = self.tls.clone();
        let addr = target.addr;
        let request = format!(
            "GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: {host}\r\nUser-Agent: sealpost\r\nConnection: close\r\n\r\n"
        );
        let response = tokio::time::timeout(FETCH_TIMEOUT, async move {
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let mut stream = TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            stream
                .write_all(request.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            // HTTP/1.0: no chunked encoding; the body ends with the
            // connection. Headers get 8 KiB beyond the body's limit.
            let mut limited = (&mut stream).take((MAX_POLICY_BYTES + 8192) as u64 + 1);
            let mut buf = Vec::new();
            limited
                .read_to_end(&mut buf)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(buf)
        })
        .await
        .map_err(|_| format!("{host}: timed out after {FETCH_TIMEOUT:?}"))??;
        parse_response(&response).and_then(parse_policy)
    }
}

/// One cached policy as a line of the cache file: tab-separated domain,
/// id, expiry (Unix seconds), mode, max_age and the mx patterns.
fn cache_line(domain: &str, c: &Cached) -> String {
    let expires = c
        .expires_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mode = match c.policy.mode {
        StsMode::Enforce => "enforce",
        StsMode::Testing => "testing",
        StsMode::None => "none",
    };
    format!(
        "v1\t{domain}\t{}\t{expires}\t{mode}\t{}\t{}\n",
        c.id,
        c.policy.max_age.as_secs(),
        c.policy.mx.join(" ")
    )
}

/// A line of the cache file; `None` for one that does not parse (it is
/// skipped: the policy is fetched again).
fn parse_cache_line(line: &str) -> Option<(String, String, SystemTime, StsPolicy)> {
    let f: Vec<&str> = line.split('\t').collect();
    let ["v1", domain, id, expires, mode, max_age, mx] = f.as_slice() else {
        return None;
    };
    let mode = match *mode {
        "enforce" => StsMode::Enforce,
        "testing" => StsMode::Testing,
        "none" => StsMode::None,
        _ => return None,
    };
    Some((
        (*domain).to_owned(),
        (*id).to_owned(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(expires.parse().ok()?),
        StsPolicy {
            mode,
            mx: mx
                .split(' ')
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect(),
            max_age: Duration::from_secs(max_age.parse().ok()?),
        },
    ))
}

/// The body of an HTTP response that must be `200` with a `text/plain`
/// body no larger than [`MAX_POLICY_BYTES`]; redirects are refused (RFC
/// 8461 §3.3).
fn parse_response(raw: &[u8]) -> Result<&str, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the response has no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not text")?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        return Err(format!(
            "HTTP status {status:?} (no redirects are followed)"
        ));
    }
    let content_type = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_ascii_lowercase());
    if !content_type.is_some_and(|t| t.starts_with("text/plain")) {
        return Err("the policy is not text/plain".into());
    }
    if body.len() > MAX_POLICY_BYTES {
        return Err(format!(
            "the policy is larger than {MAX_POLICY_BYTES} bytes"
        ));
    }
    std::str::from_utf8(body).map_err(|_| "the policy is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_file_parses_with_its_required_fields() {
        let p = parse_policy(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\nfuture: ignored\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, StsMode::Enforce);
        assert_eq!(p.max_age, Duration::from_secs(604_800));
        assert!(p.allows_mx("MAIL.example.com."));
        assert!(p.allows_mx("backup.example.net"));
        assert!(!p.allows_mx("a.backup.example.net"));
        assert!(!p.allows_mx("evil.example.org"));
        // LF line ends, testing mode; max_age capped.
        let p =
            parse_policy("version: STSv1\nmode: testing\nmx: mx.example\nmax_age: 99999999999\n");
        assert_eq!(
            p.unwrap_err(),
            "max_age \"99999999999\" is not a number of seconds"
        );
        let p = parse_policy("version: STSv1\nmode: testing\nmx: mx.example\nmax_age: 999999999\n")
            .unwrap();
        assert_eq!(p.mode, StsMode::Testing);
        assert_eq!(p.max_age, Duration::from_secs(MAX_AGE_LIMIT));
        // mode none needs no mx.
        assert_eq!(
            parse_policy("version: STSv1\nmode: none\nmax_age: 1\n")
                .unwrap()
                .mode,
            StsMode::None
        );
        for (bad, why) in [
            ("mode: enforce\nmx: a.example\nmax_age: 1\n", "version"),
            (
                "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
                "version",
            ),
            ("version: STSv1\nmx: a.example\nmax_age: 1\n", "mode"),
            (
                "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n",
                "mode",
            ),
            ("version: STSv1\nmode: enforce\nmax_age: 1\n", "mx"),
            ("version: STSv1\nmode: enforce\nmx: a.example\n", "max_age"),
            (
                "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
                "max_age",
            ),
            ("<html>not a policy</html>\n", "key: value"),
        ] {
            let e = parse_policy(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_txt_record_gives_an_id_when_there_is_exactly_one() {
        let r = |v: &[&str]| parse_record(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            r(&["v=STSv1; id=20160831085700Z;"]),
            Ok("20160831085700Z".into())
        );
        assert_eq!(r(&["v=spf1 -all", "v=STSv1;id=abc"]), Ok("abc".into()));
        assert!(r(&[]).is_err());
        assert!(r(&["v=STSv1; id=a", "v=STSv1; id=b"]).is_err());
        assert!(r(&["v=STSv1;"]).is_err());
        assert!(r(&["v=STSv1; id=has-dash"]).is_err());
        assert!(r(&["v=STSv1; id=123456789012345678901234567890123"]).is_err());
    }

    #[test]
    fn the_cache_file_keeps_unexpired_policies_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mta-sts.cache");
        let tls = crate::outbound::opportunistic_tls_config();
        let sts = MtaSts::new(tls.clone(), 443).with_cache_file(file.clone());
        let policy = |max_age| StsPolicy {
            mode: StsMode::Enforce,
            mx: vec!["mx.example.com".into(), "*.example.net".into()],
            max_age,
        };
        let entry = |age: Duration| Cached {
            id: "abc1".into(),
            policy: policy(age),
            expires: Instant::now() + age,
            expires_at: SystemTime::now() + age,
            checked: Instant::now(),
        };
        sts.store("example.com", entry(Duration::from_secs(86400)));
        sts.store("gone.example", entry(Duration::ZERO));
        let again = MtaSts::new(tls, 443).with_cache_file(file.clone());
        let kept = again
            .cached("example.com")
            .expect("kept across the restart");
        assert_eq!(
            (kept.id.as_str(), &kept.policy),
            ("abc1", &policy(Duration::from_secs(86400)))
        );
        assert!(again.cached("gone.example").is_none(), "expired");
        // Rubbish lines are skipped.
        std::fs::write(&file, "v1\tbroken\nnot a line\n").unwrap();
        let tls = crate::outbound::opportunistic_tls_config();
        assert!(
            MtaSts::new(tls, 443)
                .with_cache_file(file)
                .cached("broken")
                .is_none()
        );
    }

    #[test]
    fn only_a_plain_200_is_a_policy() {
        let ok =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nversion: STSv1\n";
        assert_eq!(parse_response(ok), Ok("version: STSv1\n"));
        let redirect = b"HTTP/1.1 301 Moved\r\nLocation: https://x/\r\n\r\n";
        assert!(parse_response(redirect).unwrap_err().contains("301"));
        let html = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<p>";
        assert!(parse_response(html).unwrap_err().contains("text/plain"));
        let mut big = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', MAX_POLICY_BYTES + 1));
        assert!(parse_response(&big).unwrap_err().contains("larger"));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}

//! Configuration: one TOML file, overridable by `SEALPOST_*` variables.
//!
//! Two stages, as in ripgrep's flags: [`ConfigFile`] is what the operator
//! wrote (serde, unknown keys refused), and [`Config`] is the parsed,
//! validated form the rest of the program uses (CIDRs, domains, durations,
//! sizes, paths). Every error names the key's path, e.g.
//! `smtp.relay_networks[1]`, so `sealpost config check` can say what to fix.
//!
//! An environment variable `SEALPOST_<SECTION>_<KEY>` overrides `key` in
//! `[section]`: `SEALPOST_SMTP_MAX_RECIPIENTS=50`,
//! `SEALPOST_SMTP_LISTEN=0.0.0.0:25,[::]:25` (lists are comma-separated, or
//! a TOML array). Every key is documented in `docs/configuration.md`.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

mod dkim;
mod portal;
mod relay_tls;
mod submission;
pub(crate) use dkim::valid_selector;
pub use dkim::{DkimConfig, DkimKeyConfig, DkimKeySection, DkimSection};
pub use portal::{Branding, PortalConfig, PortalSection};
pub use relay_tls::RelayTls;
pub use submission::SubmissionConfig;

use sealpost_policy::{DomainPattern, InternalDomains, IpRange, IpRanges};
use sealpost_smtp::outbound::HostPort;

/// The configuration sections an environment variable may name.
const SECTIONS: &[&str] = &[
    "server", "database", "smtp", "domains", "relay", "admin", "log", "vault", "secure", "portal",
    "dkim",
];

/// Keys whose value is a list, so a comma-separated variable is split.
const LIST_KEYS: &[&str] = &[
    "smtp.listen",
    "smtp.relay_networks",
    "smtp.xforward_hosts",
    "smtp.submission_listen",
    "smtp.submission_tls_listen",
    "domains.internal",
    "relay.retry_schedule",
    "relay.dns_servers",
    "portal.trusted_proxies",
];

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    pub server: ServerSection,
    pub database: DatabaseSection,
    pub smtp: SmtpSection,
    pub domains: DomainsSection,
    pub relay: RelaySection,
    pub admin: AdminSection,
    pub log: LogSection,
    pub vault: VaultSection,
    pub secure: SecureSection,
    pub portal: PortalSection,
    pub dkim: DkimSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaultSection {
    pub master_key_file: Option<String>,
    pub retention: Option<String>,
    pub expiry_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecureSection {
    pub subject_tag: Option<String>,
    pub subject_tag_definition: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub hostname: Option<String>,
    pub data_dir: Option<String>,
    pub worker_threads: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSection {
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSection {
    pub listen: Option<Vec<String>>,
    pub relay_networks: Option<Vec<String>>,
    pub xforward_hosts: Option<Vec<String>>,
    pub max_message_size: Option<SizeValue>,
    pub max_recipients: Option<u32>,
    pub max_connections: Option<u32>,
    pub idle_timeout: Option<String>,
    pub busy_poll: Option<PollWindow>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub shutdown_grace: Option<String>,
    // Submission (config/submission.rs).
    pub submission_listen: Option<Vec<String>>,
    pub submission_tls_listen: Option<Vec<String>>,
    pub auth_failure_delay: Option<String>,
    pub auth_failure_delay_max: Option<String>,
    pub auth_lockout_failures: Option<u32>,
    pub auth_lockout_ip_failures: Option<u32>,
    pub auth_lockout_window: Option<String>,
    pub auth_lockout_time: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DomainsSection {
    pub internal: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySection {
    pub next_hop: Option<String>,
    pub internal_next_hop: Option<String>,
    pub retry_schedule: Option<Vec<String>>,
    pub queue_lifetime: Option<String>,
    pub opportunistic_tls: Option<bool>,
    pub connect_timeout: Option<String>,
    pub max_connections_per_hop: Option<u32>,
    pub dns_servers: Option<Vec<String>>,
    pub mx_port: Option<u16>,
    pub tls_policy: Option<std::collections::BTreeMap<String, String>>,
    pub tls_ca_file: Option<String>,
    pub mta_sts: Option<bool>,
    pub mta_sts_port: Option<u16>,
    // Delivery defects of issue 17 (item 5).
    pub lease_duration: Option<String>,
    pub delay_warning: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    pub listen: Option<String>,
    pub url: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    pub level: Option<String>,
    pub format: Option<String>,
}

/// A size: a number of octets, or text such as `"50MiB"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    Octets(u64),
    Text(String),
}

/// `smtp.busy_poll`: a duration such as `"100us"`, or `0` for off.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PollWindow {
    Number(u64),
    Text(String),
}

/// The parsed configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub hostname: String,
    pub data_dir: PathBuf,
    /// Threads of the async runtime (`server.worker_threads`, 0 = auto).
    pub worker_threads: usize,
    pub database_url: String,
    pub smtp: SmtpConfig,
    pub internal_domains: InternalDomains,
    pub relay: RelayConfig,
    pub admin_listen: SocketAddr,
    /// The admin listener as browsers reach it (`admin.url`): the
    /// console's origin for its cookies and form checks.
    pub admin_url: String,
    /// Proxies in front of the admin listener whose `X-Forwarded-For` /
    /// `X-Forwarded-Proto` are believed (`admin.trusted_proxies`).
    pub admin_trusted_proxies: IpRanges,
    /// Certificate and key the admin listener serves TLS with
    /// (`admin.tls_cert` / `admin.tls_key`); `None`: plain HTTP.
    pub admin_tls: Option<(PathBuf, PathBuf)>,
    pub log: LogConfig,
    pub vault: VaultConfig,
    pub secure: SecureConfig,
    /// `[portal]`: the recipients' web portal.
    pub portal: PortalConfig,
    /// `[dkim]`: the signing domains and their keys.
    pub dkim: DkimConfig,
}

/// `[vault]`: encryption at rest and how long secure content is kept.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// The master key file (created 0600 on first start), unless
    /// `SEALPOST_MASTER_KEY` is set.
    pub master_key_file: PathBuf,
    /// No secure message stays readable longer than this after receipt.
    pub retention: Duration,
    /// How often expired secure messages are looked for.
    pub expiry_interval: Duration,
}

impl VaultConfig {
    /// The retention in whole days (the bound of a definition's expiry).
    pub fn retention_days(&self) -> u32 {
        u32::try_from(self.retention.as_secs() / 86400).unwrap_or(u32::MAX)
    }
}

/// `[secure]`: how senders ask for secure delivery.
#[derive(Debug, Clone)]
pub struct SecureConfig {
    /// The subject tag; empty: no tag trigger.
    pub subject_tag: String,
    /// The definition the tag applies; `None`: the default definition.
    pub subject_tag_definition: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub listen: Vec<SocketAddr>,
    pub relay_networks: IpRanges,
    pub xforward_hosts: IpRanges,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// How long the SMTP thread polls for a lone client's next command
    /// after a reply (`smtp.busy_poll`; zero: never).
    pub busy_poll: Duration,
    /// Certificate and key files; `None` means a self-signed pair is
    /// generated in the data directory on first start.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How long message data still arriving when the gateway stops may
    /// take to end before the client gets `421 4.3.2` (`smtp.shutdown_grace`).
    pub shutdown_grace: Duration,
    /// The submission listeners and the brakes on AUTH.
    pub submission: SubmissionConfig,
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub next_hop: Option<HostPort>,
    pub internal_next_hop: Option<HostPort>,
    pub retry_schedule: Vec<Duration>,
    pub queue_lifetime: Duration,
    pub opportunistic_tls: bool,
    pub connect_timeout: Duration,
    pub max_connections_per_hop: usize,
    /// Name servers for MX lookups; empty: the system's resolv.conf.
    pub dns_servers: Vec<SocketAddr>,
    /// The port MX hosts are contacted on (25).
    pub mx_port: u16,
    /// `relay.tls_policy`, `relay.tls_ca_file`, `relay.mta_sts`,
    /// `relay.mta_sts_port`.
    pub tls: RelayTls,
    /// How long a worker's lease on the recipients it delivers lasts
    /// (renewed every third of it while the delivery runs).
    pub lease_duration: Duration,
    /// After how long an undelivered recipient's sender is told of the
    /// delay (one "delayed" DSN); `None`: never (`"off"` or `"0"`).
    pub delay_warning: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: String,
    pub json: bool,
}

/// One problem, with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// All problems found in a configuration.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

/// Loads the file (if given) and the environment, and validates both.
///
/// # Errors
/// Every problem found, each with its key path.
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigErrors> {
    let text = match path {
        Some(p) => std::fs::read_to_string(p).map_err(|e| {
            ConfigErrors(vec![err("", format!("cannot read {}: {e}", p.display()))])
        })?,
        None => String::new(),
    };
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| {
        let place = e
            .span()
            .map(|s| format!(" (line {})", text[..s.start].lines().count().max(1)))
            .unwrap_or_default();
        ConfigErrors(vec![err(
            "",
            format!("not valid TOML{place}: {}", e.message()),
        )])
    })?;
    apply_env(&mut table, env).map_err(|e| ConfigErrors(vec![e]))?;
    let file: ConfigFile =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            ConfigErrors(vec![err(
                if path == "." { String::new() } else { path },
                message,
            )])
        })?;
    Config::from_file(file)
}

/// Applies `SEALPOST_<SECTION>_<KEY>` variables over the file's values.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("SEALPOST_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let Some((section, key)) = rest.split_once('_') else {
            continue;
        };
        if !SECTIONS.contains(&section) {
            continue; // e.g. SEALPOST_MASTER_KEY belongs to the vault, not this file.
        }
        let path = format!("{section}.{key}");
        let value = parse_env_value(&path, &raw);
        let section_table = table
            .entry(section.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match section_table {
            toml::Value::Table(t) => {
                t.insert(key.to_owned(), value);
            }
            _ => return Err(err(section, format!("must be a table (set by {name})"))),
        }
    }
    Ok(())
}

fn parse_env_value(path: &str, raw: &str) -> toml::Value {
    if let Ok(mut t) = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        && let Some(v) = t.remove("v")
    {
        return v;
    }
    if LIST_KEYS.contains(&path) {
        return toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        );
    }
    toml::Value::String(raw.to_owned())
}

impl Config {
    /// Validates and parses a [`ConfigFile`], collecting every error.
    ///
    /// # Errors
    /// Every problem found.
    pub fn from_file(file: ConfigFile) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let hostname = match file.server.hostname {
            Some(h) if valid_hostname(&h) => h,
            Some(h) => {
                errors.push(err(
                    "server.hostname",
                    format!("{h:?} is not a valid host name"),
                ));
                h
            }
            None => system_hostname(),
        };
        let data_dir = PathBuf::from(file.server.data_dir.unwrap_or_else(|| "./data".into()));
        let worker_threads = match file.server.worker_threads.unwrap_or(0) {
            0 => default_worker_threads(),
            n if n > 1024 => {
                errors.push(err(
                    "server.worker_threads",
                    format!(
                        "{n} is too many threads (0 means one per two CPU cores; at most 1024)"
                    ),
                ));
                1
            }
            n => n as usize,
        };
        let database_url = file
            .database
            .url
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("sealpost.db").display()));
        if !database_url.starts_with("sqlite:") {
            errors.push(err(
                "database.url",
                format!("{database_url:?}: only sqlite://PATH is supported in this version"),
            ));
        }

        let s = file.smtp;
        let listen = parse_list(
            "smtp.listen",
            s.listen.unwrap_or_else(|| vec!["127.0.0.1:2525".into()]),
            &mut errors,
            |v| {
                v.parse::<SocketAddr>().map_err(|_| {
                    format!("{v:?} is not an address:port such as 0.0.0.0:25 or [::]:25")
                })
            },
        );
        if listen.is_empty() && !errors.iter().any(|e| e.path.starts_with("smtp.listen")) {
            errors.push(err("smtp.listen", "needs at least one address"));
        }
        let relay_networks = IpRanges::new(parse_list(
            "smtp.relay_networks",
            s.relay_networks
                .unwrap_or_else(|| vec!["127.0.0.0/8".into(), "::1/128".into()]),
            &mut errors,
            |v| IpRange::parse(v).map_err(|e| e.to_string()),
        ));
        let xforward_hosts = IpRanges::new(parse_list(
            "smtp.xforward_hosts",
            s.xforward_hosts.unwrap_or_default(),
            &mut errors,
            |v| IpRange::parse(v).map_err(|e| e.to_string()),
        ));
        let max_message_size = match s.max_message_size {
            None => 50 * 1024 * 1024,
            Some(v) => parse_size(&v).unwrap_or_else(|m| {
                errors.push(err("smtp.max_message_size", m));
                0
            }),
        };
        if max_message_size > 0 && max_message_size < 1024 {
            errors.push(err("smtp.max_message_size", "must be at least 1KiB"));
        }
        let max_recipients = s.max_recipients.unwrap_or(100) as usize;
        if max_recipients == 0 {
            errors.push(err("smtp.max_recipients", "must be at least 1"));
        }
        let max_connections = s.max_connections.unwrap_or(20_000) as usize;
        if max_connections == 0 {
            errors.push(err("smtp.max_connections", "must be at least 1"));
        }
        let idle_timeout = duration(
            "smtp.idle_timeout",
            s.idle_timeout,
            Duration::from_secs(300),
            &mut errors,
        );
        let busy_poll = busy_poll_window(s.busy_poll, &mut errors);
        let shutdown_grace = duration(
            "smtp.shutdown_grace",
            s.shutdown_grace,
            Duration::from_secs(10),
            &mut errors,
        );
        if shutdown_grace > MAX_SHUTDOWN_GRACE {
            errors.push(err(
                "smtp.shutdown_grace",
                "must be at most 20s: the gateway stops within 30s whatever happens",
            ));
        }
        let submission = submission::build(
            submission::SubmissionKeys {
                submission_listen: s.submission_listen,
                submission_tls_listen: s.submission_tls_listen,
                auth_failure_delay: s.auth_failure_delay,
                auth_failure_delay_max: s.auth_failure_delay_max,
                auth_lockout_failures: s.auth_lockout_failures,
                auth_lockout_ip_failures: s.auth_lockout_ip_failures,
                auth_lockout_window: s.auth_lockout_window,
                auth_lockout_time: s.auth_lockout_time,
            },
            &listen,
            &mut errors,
        );
        let tls = match (s.tls_cert, s.tls_key) {
            (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
            (None, None) => None,
            (Some(_), None) => {
                errors.push(err("smtp.tls_key", "is required when smtp.tls_cert is set"));
                None
            }
            (None, Some(_)) => {
                errors.push(err("smtp.tls_cert", "is required when smtp.tls_key is set"));
                None
            }
        };

        let internal_domains = InternalDomains::new(parse_list(
            "domains.internal",
            file.domains.internal.unwrap_or_default(),
            &mut errors,
            |v| DomainPattern::parse(v).map_err(|e| format!("{v:?}: {e}")),
        ));

        let r = file.relay;
        let host_port = |path: &str, v: Option<String>, errors: &mut Vec<ConfigError>| {
            v.and_then(|v| {
                HostPort::parse(&v)
                    .map_err(|m| errors.push(err(path, m)))
                    .ok()
            })
        };
        let next_hop = host_port("relay.next_hop", r.next_hop, &mut errors);
        let internal_next_hop =
            host_port("relay.internal_next_hop", r.internal_next_hop, &mut errors);
        let retry_schedule = match r.retry_schedule {
            None => sealpost_queue::RetrySchedule::default().delays().to_vec(),
            Some(list) => {
                let parsed = parse_list("relay.retry_schedule", list, &mut errors, |v| {
                    humantime::parse_duration(v)
                        .map_err(|e| format!("{v:?}: {e} (expected e.g. 30s, 5m, 2h)"))
                        .and_then(|d| {
                            if d.is_zero() {
                                Err(format!("{v:?}: must be longer than zero"))
                            } else {
                                Ok(d)
                            }
                        })
                });
                if parsed.is_empty()
                    && !errors
                        .iter()
                        .any(|e| e.path.starts_with("relay.retry_schedule"))
                {
                    errors.push(err("relay.retry_schedule", "needs at least one delay"));
                }
                parsed
            }
        };
        let queue_lifetime = duration(
            "relay.queue_lifetime",
            r.queue_lifetime,
            Duration::from_secs(5 * 86400),
            &mut errors,
        );
        let connect_timeout = duration(
            "relay.connect_timeout",
            r.connect_timeout,
            Duration::from_secs(30),
            &mut errors,
        );
        let lease_duration = duration(
            "relay.lease_duration",
            r.lease_duration,
            Duration::from_secs(30 * 60),
            &mut errors,
        );
        let delay_warning = delay_warning(r.delay_warning, &mut errors);
        let max_connections_per_hop = r.max_connections_per_hop.unwrap_or(4).max(1) as usize;
        let dns_servers = parse_list(
            "relay.dns_servers",
            r.dns_servers.unwrap_or_default(),
            &mut errors,
            |v| {
                v.parse::<SocketAddr>()
                .or_else(|_| v.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| format!("{v:?} is not an IP address or address:port such as 192.0.2.53 or 127.0.0.1:5353"))
            },
        );

        let admin_listen = file
            .admin
            .listen
            .unwrap_or_else(|| "127.0.0.1:8081".into())
            .parse::<SocketAddr>()
            .unwrap_or_else(|_| {
                errors.push(err(
                    "admin.listen",
                    "is not an address:port such as 127.0.0.1:8081",
                ));
                SocketAddr::from(([127, 0, 0, 1], 8081))
            });
        let admin_tls = match (file.admin.tls_cert, file.admin.tls_key) {
            (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
            (None, None) => None,
            (Some(_), None) => {
                errors.push(err(
                    "admin.tls_key",
                    "is required when admin.tls_cert is set",
                ));
                None
            }
            (None, Some(_)) => {
                errors.push(err(
                    "admin.tls_cert",
                    "is required when admin.tls_key is set",
                ));
                None
            }
        };
        let admin_url = admin_url(
            file.admin.url,
            admin_listen,
            admin_tls.is_some(),
            &hostname,
            &mut errors,
        );
        let admin_trusted_proxies = IpRanges::new(parse_list(
            "admin.trusted_proxies",
            file.admin.trusted_proxies.unwrap_or_default(),
            &mut errors,
            |v| IpRange::parse(v).map_err(|e| e.to_string()),
        ));
        let level = file.log.level.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            errors.push(err(
                "log.level",
                format!(
                    "{level:?} is not a level or filter such as info, debug, sealpost_smtp=debug"
                ),
            ));
        }
        let json = match file.log.format.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                errors.push(err(
                    "log.format",
                    format!("{other:?}: expected \"text\" or \"json\""),
                ));
                false
            }
        };

        let v = file.vault;
        let master_key_file = v
            .master_key_file
            .map_or_else(|| data_dir.join("master.key"), PathBuf::from);
        let retention = duration(
            "vault.retention",
            v.retention,
            Duration::from_secs(3650 * 86400),
            &mut errors,
        );
        if retention < Duration::from_secs(86400) {
            errors.push(err(
                "vault.retention",
                "must be at least 1d (definitions express expiry in days)",
            ));
        }
        let expiry_interval = duration(
            "vault.expiry_interval",
            v.expiry_interval,
            Duration::from_secs(60),
            &mut errors,
        );
        let subject_tag = file
            .secure
            .subject_tag
            .unwrap_or_else(|| "[secure]".into())
            .trim()
            .to_owned();
        if subject_tag.chars().any(char::is_control) || subject_tag.len() > 64 {
            errors.push(err(
                "secure.subject_tag",
                "must be at most 64 characters without control characters (empty disables the tag)",
            ));
        }
        let portal = portal::build(file.portal, &hostname, &mut errors);
        let dkim = dkim::build(file.dkim, &mut errors);
        let relay_tls = relay_tls::parse(
            r.tls_policy,
            r.tls_ca_file,
            r.mta_sts,
            r.mta_sts_port,
            r.opportunistic_tls,
            &mut errors,
        );
        let mx_port = match r.mx_port {
            Some(0) => {
                errors.push(err("relay.mx_port", "must be a port from 1 to 65535"));
                25
            }
            Some(p) => p,
            None => 25,
        };

        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Config {
            vault: VaultConfig {
                master_key_file,
                retention,
                expiry_interval,
            },
            secure: SecureConfig {
                subject_tag,
                subject_tag_definition: file.secure.subject_tag_definition,
            },
            portal,
            dkim,
            hostname,
            data_dir,
            worker_threads,
            database_url,
            smtp: SmtpConfig {
                listen,
                relay_networks,
                xforward_hosts,
                max_message_size,
                max_recipients,
                max_connections,
                idle_timeout,
                busy_poll,
                tls,
                shutdown_grace,
                submission,
            },
            internal_domains,
            relay: RelayConfig {
                next_hop,
                internal_next_hop,
                retry_schedule,
                queue_lifetime,
                opportunistic_tls: r.opportunistic_tls.unwrap_or(true),
                tls: relay_tls,
                connect_timeout,
                max_connections_per_hop,
                dns_servers,
                mx_port,
                lease_duration,
                delay_warning,
            },
            admin_listen,
            admin_url,
            admin_trusted_proxies,
            admin_tls,
            log: LogConfig { level, json },
        })
    }
}

/// `admin.url`: by default `http(s)://localhost:<port>` for a loopback
/// listener (the quick start; https when it serves TLS), else
/// `https://<server.hostname>` (TLS served here or by a proxy in front;
/// a port of our own is named when we serve it). Plain `http://` only
/// for localhost: the console's cookies are `Secure` everywhere else.
fn admin_url(
    url: Option<String>,
    listen: SocketAddr,
    tls: bool,
    hostname: &str,
    errors: &mut Vec<ConfigError>,
) -> String {
    let url = url
        .unwrap_or_else(|| match (listen.ip().is_loopback(), tls) {
            (true, false) => format!("http://localhost:{}", listen.port()),
            (true, true) => format!("https://localhost:{}", listen.port()),
            (false, true) if listen.port() != 443 => {
                format!("https://{hostname}:{}", listen.port())
            }
            (false, _) => format!("https://{hostname}"),
        })
        .trim_end_matches('/')
        .to_owned();
    let loopback_http = ["http://localhost", "http://127.", "http://[::1]"]
        .iter()
        .any(|prefix| url.starts_with(prefix));
    if !(url.starts_with("https://") || loopback_http)
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        errors.push(err(
            "admin.url",
            format!(
                "{url:?} is not an https URL such as https://admin.example.com \
                 (plain http only for localhost)"
            ),
        ));
    }
    url
}

fn parse_list<T>(
    path: &str,
    values: Vec<String>,
    errors: &mut Vec<ConfigError>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Vec<T> {
    values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            parse(v.trim())
                .map_err(|m| errors.push(err(format!("{path}[{i}]"), m)))
                .ok()
        })
        .collect()
}

fn duration(
    path: &str,
    value: Option<String>,
    default: Duration,
    errors: &mut Vec<ConfigError>,
) -> Duration {
    match value {
        None => default,
        Some(v) => match humantime::parse_duration(&v) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                errors.push(err(path, format!("{v:?}: must be longer than zero")));
                default
            }
            Err(e) => {
                errors.push(err(
                    path,
                    format!("{v:?}: {e} (expected e.g. 30s, 5m, 2h, 5d)"),
                ));
                default
            }
        },
    }
}

/// Longest `smtp.shutdown_grace`: the whole graceful stop is bounded to
/// 30 s (`serve::SHUTDOWN_GRACE`), and the sessions' last commits and
/// replies need some of it.
const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// `relay.delay_warning`: a duration (default 4h), or `"off"` / `"0"`
/// for no delay warnings.
fn delay_warning(value: Option<String>, errors: &mut Vec<ConfigError>) -> Option<Duration> {
    let default = Duration::from_secs(4 * 3600);
    match value.as_deref().map(str::trim) {
        None => Some(default),
        Some("off" | "0") => None,
        Some(v) => match humantime::parse_duration(v) {
            Ok(d) if d.is_zero() => None,
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(err(
                    "relay.delay_warning",
                    format!("{v:?}: {e} (expected e.g. 4h, 30m, or \"off\")"),
                ));
                Some(default)
            }
        },
    }
}

/// Longest `smtp.busy_poll`: polling longer than a client takes to answer
/// only burns CPU.
const MAX_BUSY_POLL: Duration = Duration::from_millis(10);

/// `smtp.busy_poll`: like [`duration`], but zero turns polling off.
fn busy_poll_window(value: Option<PollWindow>, errors: &mut Vec<ConfigError>) -> Duration {
    const PATH: &str = "smtp.busy_poll";
    let default = sealpost_smtp::inbound::busy_poll::DEFAULT_WINDOW;
    let v = match value {
        None => return default,
        Some(PollWindow::Number(0)) => return Duration::ZERO,
        Some(PollWindow::Number(n)) => {
            errors.push(err(
                PATH,
                format!(
                    "{n}: give a duration such as \"100us\" (a bare number may only be 0, off)"
                ),
            ));
            return default;
        }
        Some(PollWindow::Text(v)) => v,
    };
    if v.trim() == "0" {
        return Duration::ZERO;
    }
    match humantime::parse_duration(&v) {
        Ok(d) if d <= MAX_BUSY_POLL => d,
        Ok(_) => {
            errors.push(err(
                PATH,
                format!("{v:?}: at most 10ms (0 turns polling off)"),
            ));
            default
        }
        Err(e) => {
            errors.push(err(
                PATH,
                format!("{v:?}: {e} (expected e.g. 100us, 0 to turn polling off)"),
            ));
            default
        }
    }
}

/// Parses `52428800`, `"50MiB"`, `"50M"`, `"10KiB"`, `"1GB"`.
pub fn parse_size(v: &SizeValue) -> Result<u64, String> {
    let text = match v {
        SizeValue::Octets(n) => return Ok(*n),
        SizeValue::Text(t) => t.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 52428800, \"50MiB\" or \"10MB\""))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use B, KiB, MiB or GiB)"
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Half the CPU cores, at least one. The async workers only parse SMTP and
/// shuffle bytes; commits run on the store's own writer thread, deliveries
/// on their own thread and reads on the blocking pool, and the MTA in
/// front of the gateway wants cores too.
/// On a two-core machine one worker relayed faster than two at 20
/// sessions, with less CPU (the measurement is in bench/RESULTS.md).
fn default_worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get() / 2)
        .max(1)
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The machine's host name, or `localhost` when it cannot be read.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|h| valid_hostname(h))
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    fn errors_of(text: &str, env: &[(&str, &str)]) -> Vec<String> {
        let f = write(text);
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        match load(Some(f.path()), env) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn defaults_need_no_file() {
        let c = load(None, Vec::new()).unwrap();
        assert_eq!(c.smtp.listen, vec!["127.0.0.1:2525".parse().unwrap()]);
        assert_eq!(c.smtp.max_message_size, 50 * 1024 * 1024);
        assert_eq!(c.smtp.max_recipients, 100);
        assert_eq!(c.relay.queue_lifetime, Duration::from_secs(5 * 86400));
        assert_eq!(c.database_url, "sqlite://./data/sealpost.db");
        assert!(c.smtp.relay_networks.contains("127.0.0.1".parse().unwrap()));
        assert!(c.smtp.tls.is_none());
    }

    #[test]
    fn errors_name_the_key_path() {
        let e = errors_of(
            r#"
            [smtp]
            relay_networks = ["10.0.0.0/8", "10.0.0.0/33"]
            max_message_size = "50 parsecs"
            [domains]
            internal = ["corp.example", "bad..example"]
            [relay]
            next_hop = "smarthost:99999"
            retry_schedule = ["1m", "soon"]
            mx_port = 0
            [admin]
            url = "http://admin.example.com"
            trusted_proxies = ["10.0.0.1", "proxy"]
            tls_cert = "admin.pem"
            "#,
            &[],
        );
        let joined = e.join("\n");
        for path in [
            "smtp.relay_networks[1]:",
            "smtp.max_message_size:",
            "domains.internal[1]:",
            "relay.next_hop:",
            "relay.retry_schedule[1]:",
            "relay.mx_port:",
            "admin.url:",
            "admin.trusted_proxies[1]:",
            "admin.tls_key:",
        ] {
            assert!(joined.contains(path), "{path} missing from:\n{joined}");
        }
    }

    #[test]
    fn the_console_url_defaults_to_localhost_or_the_hostname() {
        let c = load(None, vec![]).unwrap();
        assert_eq!(c.admin_url, "http://localhost:8081");
        let c = load(
            None,
            vec![
                ("SEALPOST_ADMIN_LISTEN".into(), "0.0.0.0:8443".into()),
                ("SEALPOST_SERVER_HOSTNAME".into(), "gw.corp.example".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            c.admin_url, "https://gw.corp.example",
            "a proxy in front serves TLS"
        );
        let c = load(
            None,
            vec![
                ("SEALPOST_ADMIN_TLS_CERT".into(), "a.pem".into()),
                ("SEALPOST_ADMIN_TLS_KEY".into(), "a.key".into()),
            ],
        )
        .unwrap();
        assert_eq!(c.admin_url, "https://localhost:8081");
    }

    #[test]
    fn busy_poll_takes_a_short_window_or_zero() {
        let window = |v: &str| {
            load(None, vec![("SEALPOST_SMTP_BUSY_POLL".into(), v.into())]).map(|c| c.smtp.busy_poll)
        };
        assert_eq!(
            load(None, Vec::new()).unwrap().smtp.busy_poll,
            Duration::from_micros(100)
        );
        assert_eq!(window("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(window("0").unwrap(), Duration::ZERO);
        assert_eq!(window("0us").unwrap(), Duration::ZERO);
        assert!(errors_of("[smtp]\nbusy_poll = 0\n", &[]).is_empty());
        for (bad, why) in [
            ("\"1s\"", "at most 10ms"),
            ("\"soon\"", "expected e.g. 100us"),
            ("100", "a bare number may only be 0"),
        ] {
            let e = errors_of(&format!("[smtp]\nbusy_poll = {bad}\n"), &[]);
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(
                e[0].starts_with("smtp.busy_poll:") && e[0].contains(why),
                "{e:?}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_with_path() {
        assert_eq!(errors_of("[smtp]\nmax_recipient = 5\n", &[]).len(), 1);
        assert!(
            errors_of("[smtp]\nmax_recipient = 5\n", &[])[0]
                .contains("unknown field `max_recipient`")
        );
        assert!(
            errors_of("[smtp]\nmax_recipients = \"many\"\n", &[])[0]
                .starts_with("smtp.max_recipients:")
        );
        assert!(errors_of("[smtp\n", &[])[0].contains("not valid TOML (line 1)"));
    }

    #[test]
    fn environment_overrides_the_file() {
        let f = write("[smtp]\nmax_recipients = 10\nlisten = [\"127.0.0.1:2525\"]\n");
        let c = load(
            Some(f.path()),
            vec![
                ("SEALPOST_SMTP_MAX_RECIPIENTS".into(), "50".into()),
                (
                    "SEALPOST_SMTP_LISTEN".into(),
                    "127.0.0.1:2600, [::1]:2600".into(),
                ),
                (
                    "SEALPOST_DOMAINS_INTERNAL".into(),
                    "corp.example,*.corp.example".into(),
                ),
                ("SEALPOST_RELAY_QUEUE_LIFETIME".into(), "2d".into()),
                ("SEALPOST_MASTER_KEY".into(), "not-a-config-key".into()),
            ],
        )
        .unwrap();
        assert_eq!(c.smtp.max_recipients, 50);
        assert_eq!(c.smtp.listen.len(), 2);
        assert!(c.internal_domains.contains_domain("mail.corp.example"));
        assert_eq!(c.relay.queue_lifetime, Duration::from_secs(2 * 86400));
        let e = errors_of("", &[("SEALPOST_SMTP_MAX_RECIPIENT", "5")]);
        assert!(e[0].contains("max_recipient"), "{e:?}");
    }

    #[test]
    fn delivery_defect_keys_have_defaults_and_bounds() {
        let c = load(None, Vec::new()).unwrap();
        assert_eq!(c.relay.delay_warning, Some(Duration::from_secs(4 * 3600)));
        assert_eq!(c.relay.lease_duration, Duration::from_secs(30 * 60));
        assert_eq!(c.smtp.shutdown_grace, Duration::from_secs(10));
        for off in ["off", "0", "0s"] {
            let f = write(&format!("[relay]\ndelay_warning = \"{off}\"\n"));
            let c = load(Some(f.path()), Vec::new()).unwrap();
            assert_eq!(c.relay.delay_warning, None, "{off}");
        }
        let env = [("SEALPOST_RELAY_DELAY_WARNING".to_owned(), "30m".to_owned())];
        let c = load(None, env).unwrap();
        assert_eq!(c.relay.delay_warning, Some(Duration::from_secs(1800)));
        let e = errors_of(
            "[relay]\ndelay_warning = \"soon\"\nlease_duration = \"0s\"\n[smtp]\nshutdown_grace = \"1m\"\n",
            &[],
        );
        for path in [
            "relay.delay_warning:",
            "relay.lease_duration:",
            "smtp.shutdown_grace:",
        ] {
            assert!(e.iter().any(|e| e.starts_with(path)), "{path}: {e:?}");
        }
    }

    #[test]
    fn sizes() {
        for (text, n) in [
            ("1024", 1024),
            ("50MiB", 50 << 20),
            ("10 MB", 10 << 20),
            ("1G", 1 << 30),
            ("2k", 2048),
        ] {
            assert_eq!(
                parse_size(&SizeValue::Text(text.into())).unwrap(),
                n,
                "{text}"
            );
        }
        assert!(parse_size(&SizeValue::Text("ten".into())).is_err());
        assert!(parse_size(&SizeValue::Text("5 parsecs".into())).is_err());
    }
}

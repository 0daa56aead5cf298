//! `[portal]`: the recipients' web portal, as the operator configures it.
//!
//! The portal has a listener of its own (`portal.listen`), never the admin
//! one, and its public address (`portal.url`) is what notification links
//! carry. Its defaults make the quick start work on one machine: the portal
//! on `127.0.0.1:8082`, links to `http://localhost:8082`. Anything else
//! must be `https://` (the links carry a recipient's token).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

use sealpost_policy::{IpRange, IpRanges};

use super::{ConfigError, SizeValue, duration, err, parse_list, parse_size};

/// The embedded default listener.
const DEFAULT_LISTEN: &str = "127.0.0.1:8082";

/// Largest logo accepted, in bytes: it is served on every sign-in page.
const MAX_LOGO: u64 = 512 * 1024;

/// `[portal]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalSection {
    pub url: Option<String>,
    pub listen: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub registration_link_ttl: Option<String>,
    pub reset_link_ttl: Option<String>,
    pub session_idle: Option<String>,
    pub session_absolute: Option<String>,
    pub max_upload: Option<SizeValue>,
    pub worker_threads: Option<u32>,
    pub product_name: Option<String>,
    pub logo_file: Option<String>,
    pub accent_color: Option<String>,
    pub disclaimer: Option<String>,
    pub support_contact: Option<String>,
}

/// `[portal]`, parsed.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// Where the portal listens (`portal.listen`).
    pub listen: SocketAddr,
    /// Where recipients reach it, without a trailing slash (`portal.url`);
    /// notification links are `<url>/open/<token>`.
    pub url: String,
    /// Certificate and key to serve TLS directly; `None`: plain HTTP (on
    /// loopback, or behind a reverse proxy that terminates TLS).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed;
    /// from anyone else those headers are ignored.
    pub trusted_proxies: IpRanges,
    /// How long a notification link may register an account.
    pub registration_link_ttl: Duration,
    /// How long an emailed password-reset link works.
    pub reset_link_ttl: Duration,
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub session_absolute: Duration,
    /// Largest total of attachments on one reply, in bytes.
    pub max_upload: u64,
    /// Threads of the portal's own runtime (`portal.worker_threads`).
    pub worker_threads: usize,
    pub branding: Branding,
}

/// What the portal looks like and says about who runs it.
#[derive(Debug, Clone)]
pub struct Branding {
    /// The name in every page title and header.
    pub product_name: String,
    /// A PNG, JPEG or SVG shown in the header; `None`: the name alone.
    pub logo_file: Option<PathBuf>,
    /// The accent colour as `#rrggbb` (buttons, links).
    pub accent_color: String,
    /// Text under the sign-in form (terms of use, say).
    pub disclaimer: Option<String>,
    /// Whom a recipient asks for help (an address or a phone number).
    pub support_contact: Option<String>,
}

/// Parses `[portal]`, pushing each problem with its key.
pub(super) fn build(
    p: PortalSection,
    hostname: &str,
    errors: &mut Vec<ConfigError>,
) -> PortalConfig {
    let listen_text = p.listen.unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        errors.push(err(
            "portal.listen",
            format!("{listen_text:?} is not an address:port such as 0.0.0.0:443"),
        ));
        DEFAULT_LISTEN.parse().expect("a valid default")
    });
    let url = p
        .url
        .unwrap_or_else(|| {
            if listen.ip().is_loopback() {
                format!("http://localhost:{}", listen.port())
            } else {
                format!("https://{hostname}")
            }
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
            "portal.url",
            format!(
                "{url:?} is not an https URL such as https://secure.example.com \
                 (links carry a recipient's token: plain http only for localhost)"
            ),
        ));
    }
    let tls = match (p.tls_cert, p.tls_key) {
        (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
        (None, None) => None,
        (Some(_), None) => {
            errors.push(err(
                "portal.tls_key",
                "is required when portal.tls_cert is set",
            ));
            None
        }
        (None, Some(_)) => {
            errors.push(err(
                "portal.tls_cert",
                "is required when portal.tls_key is set",
            ));
            None
        }
    };
    let trusted_proxies = IpRanges::new(parse_list(
        "portal.trusted_proxies",
        p.trusted_proxies.unwrap_or_default(),
        errors,
        |v| IpRange::parse(v).map_err(|e| e.to_string()),
    ));
    let registration_link_ttl = duration(
        "portal.registration_link_ttl",
        p.registration_link_ttl,
        Duration::from_secs(7 * 86400),
        errors,
    );
    let reset_link_ttl = duration(
        "portal.reset_link_ttl",
        p.reset_link_ttl,
        Duration::from_secs(30 * 60),
        errors,
    );
    let session_idle = duration(
        "portal.session_idle",
        p.session_idle,
        Duration::from_secs(30 * 60),
        errors,
    );
    let session_absolute = duration(
        "portal.session_absolute",
        p.session_absolute,
        Duration::from_secs(12 * 3600),
        errors,
    );
    if session_idle > session_absolute {
        errors.push(err(
            "portal.session_idle",
            "must not be longer than portal.session_absolute",
        ));
    }
    let max_upload = match p.max_upload.as_ref().map(parse_size) {
        None => 25 * 1024 * 1024,
        Some(Ok(0)) => {
            errors.push(err(
                "portal.max_upload",
                "must be more than zero (replies may carry attachments)",
            ));
            0
        }
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            errors.push(err("portal.max_upload", e));
            0
        }
    };
    let worker_threads = match p.worker_threads.unwrap_or(0) {
        0 => default_worker_threads(),
        n if n > 1024 => {
            errors.push(err(
                "portal.worker_threads",
                format!("{n} is too many threads (0 means one per CPU core; at most 1024)"),
            ));
            1
        }
        n => n as usize,
    };
    PortalConfig {
        listen,
        url,
        tls,
        trusted_proxies,
        registration_link_ttl,
        reset_link_ttl,
        session_idle,
        session_absolute,
        max_upload,
        worker_threads,
        branding: branding(
            p.product_name,
            p.logo_file,
            p.accent_color,
            p.disclaimer,
            p.support_contact,
            errors,
        ),
    }
}

/// One portal thread per core. The portal has a runtime of its own, apart
/// from the SMTP sessions' (`server.worker_threads`, half the cores): page
/// views are CPU work (opening, parsing, rendering) that would otherwise
/// queue behind SMTP sessions on one thread, and busy SMTP sessions would
/// delay pages. The kernel shares the cores between the two.
fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

fn branding(
    product_name: Option<String>,
    logo_file: Option<String>,
    accent_color: Option<String>,
    disclaimer: Option<String>,
    support_contact: Option<String>,
    errors: &mut Vec<ConfigError>,
) -> Branding {
    let text = |key: &str, value: Option<String>, max: usize, errors: &mut Vec<ConfigError>| {
        let value = value
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())?;
        if value.chars().count() > max || value.chars().any(|c| c.is_control() && c != '\n') {
            errors.push(err(
                key,
                format!("must be at most {max} characters without control characters"),
            ));
        }
        Some(value)
    };
    let product_name = text("portal.product_name", product_name, 60, errors)
        .unwrap_or_else(|| "Secure messages".to_owned());
    let accent_color = accent_color.unwrap_or_else(|| "#1d4ed8".to_owned());
    let hex = accent_color.strip_prefix('#').unwrap_or_default();
    if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        errors.push(err(
            "portal.accent_color",
            format!("{accent_color:?} is not a colour such as \"#1d4ed8\""),
        ));
    }
    let logo_file = logo_file.map(PathBuf::from);
    if let Some(logo) = &logo_file {
        let kind_ok = logo.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            ["png", "jpg", "jpeg", "svg"]
                .iter()
                .any(|k| e.eq_ignore_ascii_case(k))
        });
        match std::fs::metadata(logo) {
            _ if !kind_ok => errors.push(err(
                "portal.logo_file",
                format!("{}: use a .png, .jpg or .svg file", logo.display()),
            )),
            Ok(m) if m.len() > MAX_LOGO => errors.push(err(
                "portal.logo_file",
                format!(
                    "{} is {} bytes; at most {MAX_LOGO} (it is sent with every sign-in page)",
                    logo.display(),
                    m.len()
                ),
            )),
            Ok(_) => {}
            Err(e) => errors.push(err(
                "portal.logo_file",
                format!("cannot read {}: {e}", logo.display()),
            )),
        }
    }
    Branding {
        product_name,
        logo_file,
        accent_color: accent_color.to_ascii_lowercase(),
        disclaimer: text("portal.disclaimer", disclaimer, 2000, errors),
        support_contact: text("portal.support_contact", support_contact, 200, errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<PortalConfig, Vec<String>> {
        let section: PortalSection = toml::from_str(toml_text).unwrap();
        let mut errors = Vec::new();
        let config = build(section, "gw.example", &mut errors);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors.iter().map(ToString::to_string).collect())
        }
    }

    #[test]
    fn the_embedded_default_links_to_localhost() {
        let c = parse("").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8082");
        assert_eq!(c.url, "http://localhost:8082");
        assert_eq!(c.registration_link_ttl, Duration::from_secs(7 * 86400));
        assert_eq!(c.session_idle, Duration::from_secs(1800));
        assert_eq!(c.session_absolute, Duration::from_secs(12 * 3600));
        assert_eq!(c.reset_link_ttl, Duration::from_secs(1800));
        assert_eq!(c.max_upload, 25 * 1024 * 1024);
        assert_eq!(c.branding.product_name, "Secure messages");
        // Listening beyond loopback, links default to https on our name.
        let c = parse("listen = \"0.0.0.0:8443\"").unwrap();
        assert_eq!(c.url, "https://gw.example");
    }

    #[test]
    fn every_error_names_its_key() {
        let e = parse(
            "url = \"http://secure.example.com\"\nlisten = \"nope\"\ntls_cert = \"c.pem\"\n\
             trusted_proxies = [\"10.0.0.0/33\"]\nsession_idle = \"13h\"\nmax_upload = 0\n\
             accent_color = \"blue\"\nlogo_file = \"/nonexistent/logo.png\"\n\
             worker_threads = 5000",
        )
        .unwrap_err();
        for key in [
            "portal.url",
            "portal.listen",
            "portal.tls_key",
            "portal.trusted_proxies[0]",
            "portal.session_idle",
            "portal.max_upload",
            "portal.accent_color",
            "portal.logo_file",
            "portal.worker_threads",
        ] {
            assert!(
                e.iter().any(|m| m.starts_with(&format!("{key}:"))),
                "{key} in {e:?}"
            );
        }
    }
}

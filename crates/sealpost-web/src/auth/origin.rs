//! The web origin a face is served at (`portal.url`, the console's URL):
//! `scheme://host[:port]`, parsed once. The session cookie asks it whether
//! `Secure` may be left off, and the CSRF check compares each request's
//! `Origin` or `Referer` with it. Pure: no I/O, no DNS.

use std::net::{IpAddr, Ipv6Addr};

/// A serialised origin (RFC 6454): lower-case scheme and host, the port
/// only when it is not the scheme's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicOrigin {
    https: bool,
    /// Lower-case; an IPv6 address keeps its brackets.
    host: String,
    /// None for the scheme's default port.
    port: Option<u16>,
}

/// A URL that is not an `http` or `https` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an http:// or https:// URL with a host")]
pub struct BadOrigin(pub String);

impl PublicOrigin {
    /// Parses a URL (`https://portal.example.com/`, `http://localhost:8082`)
    /// and keeps its origin; a path, query or fragment is ignored.
    ///
    /// # Errors
    /// [`BadOrigin`] for another scheme, user info, a bad host or port.
    pub fn parse(url: &str) -> Result<Self, BadOrigin> {
        let bad = || BadOrigin(url.to_owned());
        let (scheme, rest) = url.trim().split_once("://").ok_or_else(bad)?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(bad()),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.contains('@') {
            return Err(bad());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
            addr.parse::<Ipv6Addr>().map_err(|_| bad())?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (format!("[{}]", addr.to_ascii_lowercase()), port)
        } else {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            let host_ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
            if !host_ok {
                return Err(bad());
            }
            (host.to_ascii_lowercase(), port)
        };
        let port = match port {
            None => None,
            Some(p) => {
                let p: u16 = p.parse().map_err(|_| bad())?;
                let default = if https { 443 } else { 80 };
                (p != default).then_some(p)
            }
        };
        Ok(PublicOrigin { https, host, port })
    }

    /// Whether the origin is `https`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// Whether the host is this machine: `localhost` (or a name under it)
    /// or a loopback address.
    pub fn is_loopback(&self) -> bool {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        self.host == "localhost"
            || self.host.ends_with(".localhost")
            || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// Whether `other` (an `Origin` header, or a URL such as a `Referer`)
    /// is this origin. `null` and anything unparsable are not.
    pub fn matches(&self, other: &str) -> bool {
        PublicOrigin::parse(other).is_ok_and(|o| &o == self)
    }
}

impl std::fmt::Display for PublicOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_serialised_without_default_ports_or_paths() {
        for (url, origin) in [
            ("https://Portal.Example.com/", "https://portal.example.com"),
            (
                "https://portal.example.com:443/open/x",
                "https://portal.example.com",
            ),
            ("HTTP://localhost:8082", "http://localhost:8082"),
            ("http://127.0.0.1:80?x", "http://127.0.0.1"),
            ("https://[::1]:8443/", "https://[::1]:8443"),
        ] {
            assert_eq!(
                PublicOrigin::parse(url).unwrap().to_string(),
                origin,
                "{url}"
            );
        }
    }

    #[test]
    fn non_web_or_odd_urls_are_refused() {
        for url in [
            "ftp://example.com",
            "example.com",
            "https://",
            "https://user@example.com",
            "https://example.com:99999",
            "https://exa mple.com",
            "https://[::1",
            "https://::1",
            "https://example.com:",
            "null",
        ] {
            assert!(PublicOrigin::parse(url).is_err(), "{url}");
        }
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for url in [
            "http://localhost:8082",
            "http://127.0.0.1",
            "http://[::1]:1",
            "http://a.localhost",
        ] {
            assert!(PublicOrigin::parse(url).unwrap().is_loopback(), "{url}");
        }
        for url in [
            "http://localhost.example.com",
            "http://10.0.0.1",
            "https://portal.example",
        ] {
            assert!(!PublicOrigin::parse(url).unwrap().is_loopback(), "{url}");
        }
    }

    #[test]
    fn matching_compares_scheme_host_and_port() {
        let origin = PublicOrigin::parse("https://portal.example.com").unwrap();
        assert!(origin.matches("https://portal.example.com"));
        assert!(origin.matches("https://PORTAL.example.com:443"));
        assert!(origin.matches("https://portal.example.com/inbox?page=2"));
        assert!(!origin.matches("http://portal.example.com"));
        assert!(!origin.matches("https://portal.example.com:8443"));
        assert!(!origin.matches("https://portal.example.com.evil.example"));
        assert!(!origin.matches("https://evil.example/https://portal.example.com"));
        assert!(!origin.matches("null"));
        assert!(!origin.matches(""));
    }
}

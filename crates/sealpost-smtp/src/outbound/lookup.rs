//! Next-hop choice and resolution: where to connect for a recipient domain.
//!
//! [`NextHop::choose`] (pure) picks the next hop: a configured one
//! (`relay.next_hop` for external domains, `relay.internal_next_hop` for
//! internal ones, see [`ConfiguredHops`]) is used as given. Otherwise
//! [`Lookup`] tries the domain's MX records in order of preference; a
//! domain with no MX record is its own mail host (RFC 5321 §5.1, implicit
//! MX); a null MX (RFC 7505) means the domain takes no mail. The DNS
//! resolver is built on first use, so a gateway whose next hops are all
//! configured never needs one.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
};

use hickory_resolver::{
    TokioResolver,
    config::{NameServerConfig, ResolverConfig},
    net::runtime::TokioRuntimeProvider,
    proto::rr::RData,
};
use tokio::sync::OnceCell;

/// A `host:port` as written in configuration. `[host]` brackets (as in
/// Postfix) and IPv6 literals in brackets are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// Parses `host`, `host:port`, `[host]:port` or `[2001:db8::1]:25`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: missing ']'"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("{text:?}: expected ':port' after ']'")),
            };
            (host, port)
        } else {
            match text.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, Some(p)),
                _ => (text, None),
            }
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!("{text:?}: expected host:port"));
        }
        let port = match port {
            None => 25,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("{text:?}: port must be a number from 1 to 65535"))?,
        };
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Where a recipient's mail goes next.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// A configured host.
    Host(HostPort),
    /// The MX hosts of the recipient's domain.
    Mx(String),
}

impl NextHop {
    /// Where mail to `domain` goes next: the configured hop for its side
    /// (`hops.internal` when the domain is `internal`, `hops.smart_host`
    /// otherwise), else the MX hosts of `domain`. A side without a
    /// configured hop never borrows the other side's: internal mail must
    /// not leave through the smart host, nor external mail through the
    /// internal mail hub.
    ///
    /// Pure: whether the domain is internal is the caller's (the policy
    /// set's) answer; the DNS is asked later, by [`Lookup::targets`].
    pub fn choose(domain: &str, internal: bool, hops: &ConfiguredHops) -> NextHop {
        let configured = if internal {
            &hops.internal
        } else {
            &hops.smart_host
        };
        match configured {
            Some(hp) => NextHop::Host(hp.clone()),
            None => NextHop::Mx(domain.to_owned()),
        }
    }
}

/// The next hops the administrator configured; each `None` means "the
/// recipient domain's MX hosts" for that side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfiguredHops {
    /// `relay.next_hop`: the smart host for external domains.
    pub smart_host: Option<HostPort>,
    /// `relay.internal_next_hop`: where internal domains' mail goes.
    pub internal: Option<HostPort>,
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextHop::Host(h) => write!(f, "{h}"),
            NextHop::Mx(d) => write!(f, "MX of {d}"),
        }
    }
}

/// One address to try, with the host name it came from (for TLS and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub addr: SocketAddr,
}

/// Why no address could be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The domain does not take mail; bounce with this reply (code,
    /// enhanced code and text).
    Permanent(String),
    /// DNS trouble; try later.
    Temporary(String),
}

/// Resolves next hops. One per gateway; cheap to share.
#[derive(Debug)]
pub struct Lookup {
    resolver: OnceCell<TokioResolver>,
    /// Name servers to ask (`relay.dns_servers`); empty means the system's
    /// (`/etc/resolv.conf`).
    servers: Vec<SocketAddr>,
    /// The port of MX hosts (`relay.mx_port`; 25 everywhere but tests).
    mx_port: u16,
    /// Our own host name (`server.hostname`), to spot ourselves among a
    /// domain's MX hosts.
    own_name: Option<String>,
}

impl Lookup {
    /// A lookup that asks `servers` (the system's resolvers when empty)
    /// and connects to MX hosts on `mx_port`.
    pub fn new(servers: Vec<SocketAddr>, mx_port: u16) -> Self {
        Lookup {
            resolver: OnceCell::new(),
            servers,
            mx_port,
            own_name: None,
        }
    }

    /// Names this gateway, so MX lists that include it are cut to the
    /// hosts preferred to it (RFC 5321 §5.1).
    pub fn with_own_name(mut self, name: &str) -> Self {
        self.own_name = Some(name.trim_end_matches('.').to_owned());
        self
    }

    async fn resolver(&self) -> Result<&TokioResolver, LookupError> {
        self.resolver
            .get_or_try_init(|| async {
                let built = if self.servers.is_empty() {
                    TokioResolver::builder_tokio().and_then(|b| b.build())
                } else {
                    let servers = self
                        .servers
                        .iter()
                        .map(|addr| {
                            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                            for c in &mut ns.connections {
                                c.port = addr.port();
                            }
                            ns
                        })
                        .collect();
                    TokioResolver::builder_with_config(
                        ResolverConfig::from_parts(None, Vec::new(), servers),
                        TokioRuntimeProvider::default(),
                    )
                    .build()
                };
                built.map_err(|e| LookupError::Temporary(format!("DNS resolver unavailable: {e}")))
            })
            .await
    }

    /// The addresses to try for `hop`, best first.
    pub async fn targets(&self, hop: &NextHop) -> Result<Vec<Target>, LookupError> {
        match hop {
            NextHop::Host(hp) => self.host_addresses(&hp.host, hp.port).await,
            NextHop::Mx(domain) => self.mx_targets(domain).await,
        }
    }

    /// The addresses of `host` on `port` (an IP literal as is).
    pub async fn addresses(&self, host: &str, port: u16) -> Result<Vec<Target>, LookupError> {
        self.host_addresses(host, port).await
    }

    /// The TXT records at `name`, each one string (its parts joined, as
    /// RFC 7208 §3.3 and RFC 8461 §3.1 read them). No records, or no such
    /// name: empty.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
        let resolver = self.resolver().await?;
        match resolver.txt_lookup(name).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(LookupError::Temporary(format!(
                "TXT lookup for {name} failed: {e}"
            ))),
        }
    }

    async fn host_addresses(&self, host: &str, port: u16) -> Result<Vec<Target>, LookupError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![Target {
                name: host.to_owned(),
                addr: SocketAddr::new(ip, port),
            }]);
        }
        let resolver = self.resolver().await?;
        match resolver.lookup_ip(host).await {
            Ok(ips) => Ok(ips
                .iter()
                .map(|ip| Target {
                    name: host.to_owned(),
                    addr: SocketAddr::new(ip, port),
                })
                .collect()),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Err(LookupError::Permanent(
                format!("550 5.1.2 Host or domain name not found: {host}"),
            )),
            Err(e) => Err(LookupError::Temporary(format!(
                "DNS lookup of {host} failed: {e}"
            ))),
        }
    }

    async fn mx_targets(&self, domain: &str) -> Result<Vec<Target>, LookupError> {
        if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
            let ip = literal.strip_prefix("ipv6:").unwrap_or(literal);
            return self.host_addresses(ip, self.mx_port).await;
        }
        let resolver = self.resolver().await?;
        let mut exchanges: Vec<(u16, String)> = match resolver.mx_lookup(domain).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect(),
            Err(e) if e.is_nx_domain() => {
                return Err(LookupError::Permanent(format!(
                    "550 5.1.2 Domain {domain} does not exist"
                )));
            }
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => {
                return Err(LookupError::Temporary(format!(
                    "MX lookup for {domain} failed: {e}"
                )));
            }
        };
        if exchanges.len() == 1 && matches!(exchanges[0].1.as_str(), "." | "") {
            // RFC 7505 §4.2 names this reply.
            return Err(LookupError::Permanent(format!(
                "556 5.1.10 Domain {domain} does not accept mail (null MX)"
            )));
        }
        if exchanges.is_empty() {
            return self.host_addresses(domain, self.mx_port).await;
        }
        exchanges.sort();
        if let Some(me) = &self.own_name {
            exchanges = preferred_to(exchanges, me).ok_or_else(|| {
                LookupError::Permanent(format!(
                    "554 5.4.6 Mail for {domain} loops back to this gateway, its best MX \
                     (set relay.internal_next_hop for internal domains)"
                ))
            })?;
        }
        let mut targets = Vec::new();
        let mut last_error = None;
        for (_, host) in exchanges {
            let host = host.trim_end_matches('.').to_owned();
            match self.host_addresses(&host, self.mx_port).await {
                Ok(mut t) => targets.append(&mut t),
                Err(e) => last_error = Some(e),
            }
        }
        if targets.is_empty() {
            // MX hosts that do not resolve are a DNS problem on the
            // recipient's side that may be fixed: defer.
            return Err(match last_error {
                Some(LookupError::Temporary(m)) => LookupError::Temporary(m),
                _ => LookupError::Temporary(format!("no MX host of {domain} resolves")),
            });
        }
        Ok(targets)
    }
}

/// RFC 5321 §5.1: if `me` is among the MX hosts (sorted by preference),
/// keep only those preferred to it; `None` if none is, as we are the best
/// and delivering would loop.
fn preferred_to(exchanges: Vec<(u16, String)>, me: &str) -> Option<Vec<(u16, String)>> {
    let is_me = |host: &str| host.trim_end_matches('.').eq_ignore_ascii_case(me);
    let Some(&(mine, _)) = exchanges.iter().find(|(_, host)| is_me(host)) else {
        return Some(exchanges);
    };
    let better: Vec<_> = exchanges.into_iter().filter(|&(p, _)| p < mine).collect();
    (!better.is_empty()).then_some(better)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mx_list_naming_us_keeps_only_better_hosts() {
        let mx = |list: &[(u16, &str)]| -> Vec<(u16, String)> {
            list.iter().map(|&(p, h)| (p, h.to_owned())).collect()
        };
        let list = mx(&[
            (10, "mx1.example."),
            (20, "GW.corp.example."),
            (20, "mx2.example."),
            (30, "mx3.example."),
        ]);
        assert_eq!(
            preferred_to(list, "gw.corp.example"),
            Some(mx(&[(10, "mx1.example.")]))
        );
        assert_eq!(
            preferred_to(
                mx(&[(10, "gw.corp.example."), (20, "mx2.example.")]),
                "gw.corp.example"
            ),
            None,
            "we are the best MX: delivering would loop"
        );
        let other = mx(&[(10, "mx1.example."), (20, "mx2.example.")]);
        assert_eq!(preferred_to(other.clone(), "gw.corp.example"), Some(other));
    }

    #[test]
    fn the_next_hop_is_the_configured_one_for_the_domains_side_else_its_mx() {
        let smart = HostPort::parse("smarthost.example:587").unwrap();
        let hub = HostPort::parse("mailhub.corp.example").unwrap();
        let both = ConfiguredHops {
            smart_host: Some(smart.clone()),
            internal: Some(hub.clone()),
        };
        let only_smart = ConfiguredHops {
            smart_host: Some(smart.clone()),
            internal: None,
        };
        let only_hub = ConfiguredHops {
            smart_host: None,
            internal: Some(hub.clone()),
        };
        let none = ConfiguredHops::default();
        let mx = |d: &str| NextHop::Mx(d.to_owned());
        let cases = [
            // (domain, internal, hops, expected)
            (
                "partner.example",
                false,
                &both,
                NextHop::Host(smart.clone()),
            ),
            ("corp.example", true, &both, NextHop::Host(hub.clone())),
            (
                "partner.example",
                false,
                &only_smart,
                NextHop::Host(smart.clone()),
            ),
            // No internal hop: internal mail goes to its own MX, never
            // out through the smart host.
            ("corp.example", true, &only_smart, mx("corp.example")),
            // No smart host: external mail goes to its MX, never to the
            // internal mail hub.
            ("partner.example", false, &only_hub, mx("partner.example")),
            ("corp.example", true, &only_hub, NextHop::Host(hub.clone())),
            ("partner.example", false, &none, mx("partner.example")),
            ("corp.example", true, &none, mx("corp.example")),
            // The domain is looked up as given (the MX of an A-label).
            (
                "xn--bcher-kva.example",
                false,
                &none,
                mx("xn--bcher-kva.example"),
            ),
        ];
        for (domain, internal, hops, expected) in cases {
            assert_eq!(
                NextHop::choose(domain, internal, hops),
                expected,
                "{domain} (internal: {internal}) with {hops:?}"
            );
        }
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(
            HostPort::parse("mx.example:2525").unwrap(),
            HostPort {
                host: "mx.example".into(),
                port: 2525
            }
        );
        assert_eq!(HostPort::parse("[mx.example]").unwrap().port, 25);
        assert_eq!(
            HostPort::parse("[::1]:2526").unwrap(),
            HostPort {
                host: "::1".into(),
                port: 2526
            }
        );
        assert_eq!(HostPort::parse("::1").unwrap().host, "::1");
        assert_eq!(
            HostPort::parse("[::1]:2526").unwrap().to_string(),
            "[::1]:2526"
        );
        for bad in ["", "host:0", "host:99999", "host:x", "[::1", "a b:25"] {
            assert!(HostPort::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn ip_hosts_need_no_dns() {
        let l = Lookup::new(Vec::new(), 25);
        let t = l
            .targets(&NextHop::Host(HostPort::parse("127.0.0.1:2525").unwrap()))
            .await
            .unwrap();
        assert_eq!(t[0].addr, "127.0.0.1:2525".parse().unwrap());
        assert!(
            l.resolver.get().is_none(),
            "no resolver built for an IP next hop"
        );
    }
}

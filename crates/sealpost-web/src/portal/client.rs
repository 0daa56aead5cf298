//! Who is asking: the client's IP and whether it reached us over TLS.
//!
//! Rate limits, lockouts and logs key on the client IP, and cookies are
//! `Secure` over TLS, so both must be right and unforgeable. Behind a
//! reverse proxy the peer is the proxy: its `X-Forwarded-For` and
//! `X-Forwarded-Proto` are believed only when the peer is in
//! `portal.trusted_proxies`; from anyone else they are ignored.

use std::net::IpAddr;
use std::sync::Arc;

use axum::{
    extract::{ConnectInfo, Request, State},
    http::HeaderMap,
    middleware::Next,
    response::Response,
};
use sealpost_policy::IpRanges;

/// How the portal is reached.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// The listener serves TLS itself.
    pub tls: bool,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: IpRanges,
}

/// The client of one request, in its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub ip: IpAddr,
    /// The client's own connection was TLS (ours, or the proxy's).
    pub over_tls: bool,
}

impl Client {
    /// The client as `reach` lets us believe: `peer` unless it is a
    /// trusted proxy, then the address that proxy says it served. Of
    /// `X-Forwarded-For`, the right-most address that is not itself a
    /// trusted proxy is taken, since every proxy appends the peer it saw
    /// and only those we trust can be believed.
    pub fn resolve(reach: &Reach, peer: IpAddr, headers: &HeaderMap) -> Client {
        if !reach.trusted_proxies.contains(peer) {
            return Client {
                ip: peer,
                over_tls: reach.tls,
            };
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .collect();
        let ip = forwarded
            .iter()
            .rev()
            .find(|a| !reach.trusted_proxies.contains(**a))
            .or(forwarded.first())
            .copied()
            .unwrap_or(peer);
        let proto = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim);
        Client {
            ip,
            over_tls: match proto {
                Some(p) => p.eq_ignore_ascii_case("https"),
                None => reach.tls,
            },
        }
    }
}

/// Puts the [`Client`] of each request in its extensions. Needs the
/// listener's `ConnectInfo<Peer>`; without it (a test calling the
/// router directly) the client is `127.0.0.1`.
pub async fn identify(
    State(reach): State<Arc<Reach>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<super::listener::Peer>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.0.ip());
    let client = Client::resolve(&reach, peer, request.headers());
    request.extensions_mut().insert(client);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealpost_policy::IpRange;

    fn reach(tls: bool, proxies: &[&str]) -> Reach {
        Reach {
            tls,
            trusted_proxies: IpRanges::new(
                proxies.iter().map(|p| IpRange::parse(p).unwrap()).collect(),
            ),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let forged = headers(&[
            ("x-forwarded-for", "192.0.2.7"),
            ("x-forwarded-proto", "https"),
        ]);
        let peer: IpAddr = "198.51.100.9".parse().unwrap();
        let direct = Client::resolve(&reach(false, &["10.0.0.0/8"]), peer, &forged);
        assert_eq!(
            direct,
            Client {
                ip: peer,
                over_tls: false
            },
            "ignored from a stranger"
        );

        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let via = Client::resolve(&reach(false, &["10.0.0.0/8"]), proxy, &forged);
        assert_eq!(via.ip.to_string(), "192.0.2.7");
        assert!(via.over_tls);

        // A client that sends its own X-Forwarded-For cannot choose its
        // address: the proxy appends the real peer, which is taken.
        let chained = headers(&[("x-forwarded-for", "203.0.113.1, 192.0.2.7, 10.0.0.3")]);
        let via = Client::resolve(&reach(true, &["10.0.0.0/8"]), proxy, &chained);
        assert_eq!(via.ip.to_string(), "192.0.2.7");
        assert!(via.over_tls, "no proto header: the listener's own");
        // Nothing usable: the proxy itself.
        let via = Client::resolve(
            &reach(false, &["10.0.0.0/8"]),
            proxy,
            &headers(&[("x-forwarded-for", "junk")]),
        );
        assert_eq!(via.ip, proxy);
    }
}

//! A minimal HTTP/1.1 client for the CLI's administration commands, which
//! go through the running gateway's REST API (so a change reaches its live
//! policy snapshot at once). Plain HTTP to an administration listener on
//! loopback or a management network; TLS when the listener serves it
//! (`admin.tls_cert`), trusting that certificate and nothing else.

use std::{
    io::{Read, Write},
    net::{TcpStream, ToSocketAddrs},
    path::Path,
    sync::Arc,
    time::Duration,
};

use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};

/// Where the API is and how to authenticate.
#[derive(Debug, Clone)]
pub struct ApiClient {
    /// `host:port` of the administration listener.
    pub authority: String,
    pub key: String,
    /// TLS to the listener, when it serves TLS.
    pub tls: Option<ClientTls>,
}

/// How the CLI speaks TLS to an admin listener that serves it: the
/// listener's own certificate file as the only trust anchors (the CLI runs
/// beside the gateway and reads the same configuration), checked for the
/// host of `admin.url`.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the certificates in `cert_file` (PEM) for `host`.
    ///
    /// # Errors
    /// A message naming the file or the host.
    pub fn trusting(cert_file: &Path, host: &str) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
            .and_then(|certs| certs.collect())
            .map_err(|e| format!("reading {} (admin.tls_cert): {e}", cert_file.display()))?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{} (admin.tls_cert): {e}", cert_file.display()))?;
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("{host:?} (the host of admin.url): {e}"))?;
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// A response: status and body.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl ApiResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The API's error as one line: `message (field: x)`.
    ///
    /// One clean line of bounded length: an error may quote what a sender
    /// or an imported file wrote, and it goes to the terminal.
    pub fn error_text(&self) -> String {
        sealpost_policy::text::one_line(&self.raw_error_text(), 2000)
    }

    fn raw_error_text(&self) -> String {
        let v = self.json();
        match (v["message"].as_str(), v["field"].as_str()) {
            (Some(m), Some(f)) => format!("{f}: {m} [{}]", v["code"].as_str().unwrap_or("")),
            (Some(m), None) => format!("{m} [{}]", v["code"].as_str().unwrap_or("")),
            _ => format!(
                "HTTP {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            ),
        }
    }
}

/// Longest time one request may take.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Largest response read, in bytes.
const MAX_RESPONSE: u64 = 256 * 1024 * 1024;

impl ApiClient {
    /// Sends one request to `/api/v1{path}`.
    ///
    /// # Errors
    /// A message naming the address when the gateway cannot be reached or
    /// answers something that is not HTTP.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<ApiResponse, String> {
        let addr = self
            .authority
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.authority))?
            .next()
            .ok_or_else(|| format!("{} has no address", self.authority))?;
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| {
            format!(
                "cannot reach the gateway's API at {} ({e}); is `sealpost serve` running, and is admin.listen right?",
                self.authority
            )
        })?;
        stream.set_read_timeout(Some(TIMEOUT)).ok();
        stream.set_write_timeout(Some(TIMEOUT)).ok();
        match &self.tls {
            None => self.exchange(stream, method, path, body),
            Some(tls) => {
                let connection =
                    rustls::ClientConnection::new(tls.config.clone(), tls.server_name.clone())
                        .map_err(|e| format!("TLS to {}: {e}", self.authority))?;
                self.exchange(
                    rustls::StreamOwned::new(connection, stream),
                    method,
                    path,
                    body,
                )
            }
        }
    }

    /// One request and its response over `stream` (`Connection: close`).
    fn exchange(
        &self,
        mut stream: impl Read + Write,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<ApiResponse, String> {
        let mut request = format!(
            "{method} /api/v1{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\nAccept: application/json\r\n",
            self.authority, self.key
        );
        let body = body.unwrap_or(("application/json", b""));
        if method != "GET" && method != "DELETE" {
            request.push_str(&format!(
                "Content-Type: {}\r\nContent-Length: {}\r\n",
                body.0,
                body.1.len()
            ));
        }
        request.push_str("\r\n");
        let io = |e: std::io::Error| format!("talking to {}: {e}", self.authority);
        stream.write_all(request.as_bytes()).map_err(io)?;
        if method != "GET" && method != "DELETE" {
            stream.write_all(body.1).map_err(io)?;
        }
        let mut raw = Vec::new();
        match stream.take(MAX_RESPONSE).read_to_end(&mut raw) {
            Ok(_) => {}
            // A TLS peer that closes without close_notify after a whole
            // response: what came is what there is.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(io(e)),
        }
        parse_response(&raw).ok_or_else(|| format!("{} did not answer with HTTP", self.authority))
    }
}

fn parse_response(raw: &[u8]) -> Option<ApiResponse> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut body = &raw[split + 4..];
    if !chunked {
        return Some(ApiResponse {
            status,
            body: body.to_vec(),
        });
    }
    let mut out = Vec::new();
    // Bounded: every round consumes at least the size line.
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(ApiResponse { status, body: out });
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_bodies() {
        let r = parse_response(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"{}"[..]));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(parse_response(b"garbage").is_none());
    }
}

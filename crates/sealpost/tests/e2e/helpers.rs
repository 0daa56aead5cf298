//! What the end-to-end tests share: a gateway on port 0, sinks, clients.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use sealpost::{config, serve::Application};
use sealpost_queue::Worker;
use sealpost_store::{QueueId, RecipientRecord, Store};
use tokio_util::sync::CancellationToken;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Fails clearly when a test tool is missing.
pub fn require(tool: &str) -> PathBuf {
    let path = PathBuf::from(tool);
    if path.is_absolute() {
        assert!(
            path.exists(),
            "{tool} is missing: run scripts/install-test-tools.sh"
        );
        return path;
    }
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|c| c.exists())
    });
    found.unwrap_or_else(|| panic!("{tool} is missing: run scripts/install-test-tools.sh"))
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free loopback port (bound and released; fine for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running gateway with its own data directory and its own runtime, so
/// tests can use blocking clients without starving the server.
pub struct TestGateway {
    pub smtp: SocketAddr,
    /// Submission listeners (STARTTLS; implicit TLS), when configured.
    pub submission: Vec<SocketAddr>,
    pub submission_tls: Vec<SocketAddr>,
    pub admin: SocketAddr,
    /// The recipients' portal listener.
    pub portal: SocketAddr,
    pub store: Arc<dyn Store>,
    pub secure: Arc<dyn sealpost_store::SecureStore>,
    pub console: Arc<dyn sealpost_store::ConsoleStore>,
    pub worker: Worker,
    /// The SMTP busy poller (`smtp.busy_poll`).
    pub busy_poll: Arc<sealpost_smtp::inbound::busy_poll::BusyPoll>,
    /// The super-admin API key created on the first start (None after a
    /// restart on the same data directory).
    pub api_key: Option<String>,
    /// The console administrator made on the first start: (name, one-time
    /// password).
    pub first_run_admin: Option<(String, String)>,
    pub dir: Option<tempfile::TempDir>,
    rt: Option<tokio::runtime::Runtime>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestGateway {
    /// Starts a gateway configured by `extra` TOML (merged over the test
    /// defaults: loopback listeners on port 0, fast retries).
    pub fn start(extra: &str) -> TestGateway {
        Self::start_in(tempfile::tempdir().unwrap(), extra)
    }

    /// Starts a gateway on an existing data directory (for restarts).
    pub fn start_in(dir: tempfile::TempDir, extra: &str) -> TestGateway {
        Self::start_with_workers(dir, extra, 2)
    }

    /// Starts a gateway whose runtime has `workers` worker threads.
    pub fn start_with_workers(dir: tempfile::TempDir, extra: &str, workers: usize) -> TestGateway {
        let toml = test_config(dir.path(), extra);
        let file = dir.path().join("sealpost.toml");
        std::fs::write(&file, &toml).unwrap();
        let config = config::load(Some(&file), Vec::new())
            .unwrap_or_else(|e| panic!("test config:\n{e}\n{toml}"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .unwrap();
        let app = rt
            .block_on(Application::build(config))
            .expect("gateway builds");
        let shutdown = app.shutdown_token();
        let api_key = app.first_run_api_key.clone();
        let first_run_admin = app
            .first_run_admin
            .as_ref()
            .map(|(name, password)| (name.to_string(), password.expose().to_owned()));
        let portal = app.portal_addr;
        let (submission, submission_tls) = (
            app.submission_addrs.clone(),
            app.submission_tls_addrs.clone(),
        );
        let (smtp, admin, store, worker) = (
            app.smtp_addrs[0],
            app.admin_addr,
            app.store.clone(),
            app.worker.clone(),
        );
        let secure = app.secure.clone();
        let console = app.console.clone();
        let busy_poll = app.busy_poll();
        let task = rt.spawn(app.run_until_stopped(std::future::pending()));
        TestGateway {
            smtp,
            submission,
            submission_tls,
            admin,
            portal,
            store,
            secure,
            console,
            worker,
            busy_poll,
            api_key,
            first_run_admin,
            dir: Some(dir),
            rt: Some(rt),
            shutdown,
            task: Some(task),
        }
    }

    /// Runs a future on the gateway's runtime (store queries).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().unwrap().block_on(f)
    }

    /// Stops the gateway gracefully and returns its data directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            self.block_on(async { tokio::time::timeout(Duration::from_secs(40), task).await })
                .expect("graceful stop within 40s")
                .unwrap()
                .unwrap();
        }
        self.dir.take().unwrap()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// The recipients of `id` once they all satisfy `done`.
    pub fn recipients_when(
        &self,
        id: &QueueId,
        what: &str,
        done: impl Fn(&RecipientRecord) -> bool,
    ) -> Vec<RecipientRecord> {
        wait_for(Duration::from_secs(20), what, || {
            let r = self.block_on(self.store.recipients(id)).unwrap();
            (!r.is_empty() && r.iter().all(&done)).then_some(r)
        })
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// The test defaults, then the test's own TOML (later tables win per key
/// because the test's keys are merged in).
fn test_config(dir: &Path, extra: &str) -> String {
    let mut base: toml::Table = toml::from_str(&format!(
        r#"
        [server]
        hostname = "gw.test"
        data_dir = "{}"
        [smtp]
        listen = ["127.0.0.1:0"]
        relay_networks = ["127.0.0.0/8"]
        idle_timeout = "20s"
        [relay]
        retry_schedule = ["1s"]
        connect_timeout = "5s"
        [admin]
        listen = "127.0.0.1:0"
        [portal]
        listen = "127.0.0.1:0"
        "#,
        dir.display()
    ))
    .unwrap();
    let extra: toml::Table = toml::from_str(extra).expect("extra TOML parses");
    for (section, values) in extra {
        let target = base
            .entry(section)
            .or_insert_with(|| toml::Value::Table(Default::default()));
        if let (toml::Value::Table(t), toml::Value::Table(v)) = (target, values) {
            t.extend(v);
        }
    }
    toml::to_string(&base).unwrap()
}

/// One message as the sink stored it.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub mail_options: Vec<String>,
    /// The sending side's `ip:port` as the sink saw it.
    pub peer: String,
    pub tls: bool,
    pub content: Vec<u8>,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.content).into_owned()
    }
    /// The body after the header block.
    pub fn body(&self) -> &[u8] {
        let c = &self.content;
        let at = c
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(c.len(), |i| i + 4);
        &c[at..]
    }
}

/// Starts a support script that prints `READY <port>` when listening, and
/// returns the process and the port.
fn spawn_ready(script: &str, args: &[&std::ffi::OsStr]) -> (Child, u16) {
    let mut child = Command::new(require("/usr/bin/python3"))
        .arg(repo_root().join("tests/support").join(script))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{script} starts: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .strip_prefix("READY ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!("{script} did not start (run scripts/install-test-tools.sh): {line:?}")
        });
    (child, port)
}

/// The aiosmtpd sink of `tests/support/sink.py`.
pub struct Sink {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Sink {
    pub fn start(args: &[&str]) -> Sink {
        Self::start_on(0, args)
    }

    pub fn start_on(port: u16, args: &[&str]) -> Sink {
        Self::start_at(&format!("127.0.0.1:{port}"), args)
    }

    /// A sink on `listen` (any loopback address, e.g. `127.0.0.3:2525`, so
    /// that several sinks share the port MX hosts are contacted on).
    pub fn start_at(listen: &str, args: &[&str]) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let mut all: Vec<&std::ffi::OsStr> = vec![
            "--listen".as_ref(),
            listen.as_ref(),
            "--dir".as_ref(),
            dir.path().as_os_str(),
        ];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        let (child, port) = spawn_ready("sink.py", &all);
        Sink { port, dir, child }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every complete message stored so far, in arrival order.
    pub fn messages(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|json| {
                let meta: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
                let content = std::fs::read(json.with_extension("eml")).unwrap();
                let strings = |k: &str| {
                    meta[k]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|v| v.as_str().unwrap_or_default().to_owned())
                                .collect()
                        })
                        .unwrap_or_default()
                };
                Received {
                    mail_from: meta["mail_from"].as_str().unwrap_or_default().to_owned(),
                    rcpt_tos: strings("rcpt_tos"),
                    mail_options: strings("mail_options"),
                    peer: meta["peer"].as_str().unwrap_or_default().to_owned(),
                    tls: meta["tls"].as_bool().unwrap_or(false),
                    content,
                }
            })
            .collect()
    }

    /// Waits until at least `n` messages arrived.
    pub fn wait_for(&self, n: usize) -> Vec<Received> {
        wait_for(
            Duration::from_secs(20),
            &format!("{n} message(s) at the sink"),
            || {
                let m = self.messages();
                (m.len() >= n).then_some(m)
            },
        )
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Postfix's smtp-sink, for soft and hard failures on command.
pub struct PostfixSink {
    pub port: u16,
    child: Child,
}

impl PostfixSink {
    /// `extra` are smtp-sink options such as `["-r", "RCPT"]`.
    pub fn start(port: u16, extra: &[&str]) -> PostfixSink {
        let bin = require("/usr/sbin/smtp-sink");
        let child = Command::new(bin)
            .args(["-u", "nobody"])
            .args(extra)
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "smtp-sink did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PostfixSink { port, child }
    }
}

impl Drop for PostfixSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs swaks against `server` and returns (success, transcript).
pub fn swaks(server: SocketAddr, args: &[&str]) -> (bool, String) {
    let bin = require("swaks");
    let out = Command::new(bin)
        .args([
            "--server",
            &server.to_string(),
            "--timeout",
            "20",
            "--hide-informational",
        ])
        .args(args)
        .output()
        .expect("swaks runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Runs a Python snippet with Debian's python3 (smtplib as a client).
pub fn python(script: &str) -> (bool, String) {
    let out = Command::new(require("/usr/bin/python3"))
        .args(["-c", script])
        .output()
        .expect("python3 runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The queue id from a `250 ... queued as ID` reply in a transcript.
pub fn queue_id(transcript: &str) -> QueueId {
    let at = transcript
        .find("queued as ")
        .unwrap_or_else(|| panic!("no queue id in:\n{transcript}"));
    QueueId::parse(&transcript[at + 10..at + 26]).expect("queue id")
}

/// A raw SMTP connection, for input no well-behaved client sends.
pub struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        Self::connect_from(addr, None)
    }

    /// Connects from a given loopback source address (e.g. 127.0.0.2).
    pub fn connect_from(addr: SocketAddr, source: Option<&str>) -> Raw {
        let stream = match source {
            None => TcpStream::connect(addr).unwrap(),
            Some(src) => connect_bound(src, addr),
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut raw = Raw {
            stream,
            buf: Vec::new(),
        };
        raw.expect("220");
        raw
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The socket, for tests that must see a write fail.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Reads one (possibly multi-line) reply.
    pub fn reply(&mut self) -> String {
        let mut lines = String::new();
        loop {
            let line = self.line();
            lines.push_str(&line);
            lines.push('\n');
            if line.as_bytes().get(3) != Some(&b'-') {
                return lines;
            }
        }
    }

    fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return String::from_utf8_lossy(&line).trim_end().to_owned();
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .stream
                .read(&mut chunk)
                .expect("reply within the timeout");
            assert!(
                n > 0,
                "connection closed; had {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads a reply and asserts it starts with `prefix` (code and, if
    /// given, enhanced code).
    pub fn expect(&mut self, prefix: &str) -> String {
        let r = self.reply();
        assert!(r.starts_with(prefix), "expected {prefix:?}, got {r:?}");
        r
    }

    /// Sends a command line and expects a reply.
    pub fn cmd(&mut self, line: &str, prefix: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.expect(prefix)
    }

    /// One whole transaction after EHLO: MAIL, each RCPT (all must be
    /// accepted), DATA and `data` (which must end with CRLF); returns the
    /// reply to the end of data.
    pub fn transaction(&mut self, mail: &str, rcpts: &[&str], data: &[u8]) -> String {
        self.cmd(&format!("MAIL FROM:{mail}"), "250");
        for r in rcpts {
            self.cmd(&format!("RCPT TO:{r}"), "250");
        }
        self.cmd("DATA", "354");
        self.send(data);
        self.send(b".\r\n");
        self.reply()
    }

    /// Whether the server closed the connection (reads to EOF).
    pub fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(self.stream.read(&mut chunk), Ok(0))
    }
}

/// Connects from a chosen loopback source address (std has no
/// bind-before-connect; tokio's TcpSocket does).
fn connect_bound(source: &str, addr: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(addr).await.unwrap().into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream
}

/// The loopback DNS server of `tests/support/dns.py`, serving a zone.
pub struct DnsServer {
    pub port: u16,
    _zone: tempfile::NamedTempFile,
    child: Child,
}

impl DnsServer {
    /// Serves `zone` (JSON, see tests/support/README.md); `extra` are
    /// dns.py options such as `["--servfail", "regex"]`.
    pub fn start(zone: &serde_json::Value, extra: &[&str]) -> DnsServer {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), zone.to_string()).unwrap();
        let mut all: Vec<&std::ffi::OsStr> = vec![
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--zone".as_ref(),
            file.path().as_os_str(),
        ];
        all.extend(extra.iter().map(std::ffi::OsStr::new));
        let (child, port) = spawn_ready("dns.py", &all);
        DnsServer {
            port,
            _zone: file,
            child,
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads lines from a child's output until one satisfies `last` (included),
/// the output ends, or `limit` lines were read; returns them.
pub fn read_lines_until(
    reader: &mut impl std::io::BufRead,
    limit: usize,
    last: impl Fn(&str) -> bool,
) -> String {
    let mut seen = String::new();
    for _ in 0..limit {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
        if last(&line) {
            break;
        }
    }
    seen
}

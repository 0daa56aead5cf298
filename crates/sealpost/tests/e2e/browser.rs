//! A real browser for the end-to-end tests: Debian's headless Chromium,
//! driven over WebDriver through Debian's chromedriver by `fantoccini`.
//!
//! [`Browser::start`] runs `chromedriver` on a free loopback port (killed
//! with its process group on drop), opens a session of
//! `/usr/bin/chromium --headless --no-sandbox ...` with a fresh temporary
//! profile, and gives the test blocking methods: the harness owns a small
//! tokio runtime, like [`TestGateway`](super::helpers::TestGateway), so the
//! tests stay plain `#[test]` functions. Every call is bounded
//! ([`STEP`]); any failure panics with what was being done.
//!
//! ```ignore
//! let mut b = Browser::start();
//! b.goto(&format!("http://{}/open/{token}", gw.portal));
//! b.fill("#password", "correct horse battery staple");
//! b.click("button[type=submit]");
//! b.set_width(390); // phone: device metrics emulated through CDP
//! b.screenshot(&repo_root().join("docs/screenshots/portal-inbox-390.png"));
//! ```
//!
//! Widths: headless Chromium will not make a window narrower than 500 px,
//! so [`Browser::set_width`] emulates the viewport with CDP's
//! `Emulation.setDeviceMetricsOverride` (mobile below 600 px, scale 1):
//! screenshots are exactly `width` pixels wide. Screenshots are of the
//! viewport; make it taller with [`Browser::set_size`] for long pages.
//!
//! Chromium and chromedriver come from `scripts/install-test-tools.sh`
//! (packages `chromium` and `chromium-driver`, one Debian source, same
//! version); a missing one fails the test with that command.

#![allow(dead_code)]

use std::{
    net::TcpStream,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, cookies::Cookie, wd::WebDriverCompatibleCommand};
use serde_json::{Value, json};

use super::helpers::free_port;

/// The longest any one browser call may take (page loads included).
pub const STEP: Duration = Duration::from_secs(15);
/// How long [`Browser::find`] and friends wait for an element to appear.
pub const FIND: Duration = Duration::from_secs(5);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The flags this machine needs (see `.library/env/machines/rust.md`):
/// headless as root, and no background traffic to hosts the closed
/// network refuses.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--lang=en-US",
];

/// A headless Chromium session; see the module documentation.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Driver,
    /// The Chromium profile (`--user-data-dir`) and chromedriver's log.
    dir: tempfile::TempDir,
    width: u32,
    height: u32,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("driver", &self.driver.0.id())
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

impl Browser {
    /// A fresh browser, 1280 × 900.
    pub fn start() -> Browser {
        Self::start_sized(1280, 900)
    }

    /// A fresh browser whose viewport is `width` × `height`.
    pub fn start_sized(width: u32, height: u32) -> Browser {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: run scripts/install-test-tools.sh \
                 (as root; it installs Debian's chromium and chromium-driver)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile");
        let log = dir.path().join("chromedriver.log");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();

        // The port is picked, released, then bound by chromedriver: retry
        // if another process took it in between.
        let mut attempt = 0;
        let (driver, port) = loop {
            attempt += 1;
            let port = free_port();
            let mut child = Driver(
                Command::new(CHROMEDRIVER)
                    .arg(format!("--port={port}"))
                    .arg(format!("--log-path={}", log.display()))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    // Its own process group, so that drop also reaches the
                    // Chromium processes it started.
                    .process_group(0)
                    .spawn()
                    .expect("chromedriver starts"),
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            let up = loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break true;
                }
                if child.0.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if up {
                break (child, port);
            }
            drop(child);
            assert!(
                attempt < 3,
                "chromedriver did not listen on 127.0.0.1:{port} within 10s\n{}",
                log_tail(&log)
            );
        };

        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={},{}", width.max(500), height));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            "timeouts": { "pageLoad": 10_000, "script": 5_000, "implicit": 0 },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        let session = rt.block_on(async {
            tokio::time::timeout(
                STEP,
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&url),
            )
            .await
        });
        let mut browser = Browser {
            rt,
            client: None,
            driver,
            dir,
            width,
            height,
        };
        match session {
            Ok(Ok(client)) => browser.client = Some(client),
            Ok(Err(e)) => panic!(
                "no Chromium session from chromedriver: {e}\n{}",
                log_tail(&log)
            ),
            Err(_) => panic!("no Chromium session within {STEP:?}\n{}", log_tail(&log)),
        }
        browser.set_size(width, height);
        browser
    }

    /// Runs one WebDriver call on the harness's runtime, bounded by [`STEP`].
    fn run<T, E: std::fmt::Display>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> T {
        match self
            .rt
            .block_on(async { tokio::time::timeout(STEP, f).await })
        {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => panic!("browser: {what}: {e}"),
            Err(_) => panic!("browser: {what}: no answer within {STEP:?}"),
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("browser session open")
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.run(&format!("goto {url}"), self.client().goto(url));
    }

    /// The address of the current page.
    pub fn current_url(&self) -> url::Url {
        self.run("current_url", self.client().current_url())
    }

    /// The current page's `<title>`.
    pub fn title(&self) -> String {
        self.run("title", self.client().title())
    }

    /// The current page's HTML as the browser now has it.
    pub fn source(&self) -> String {
        self.run("source", self.client().source())
    }

    /// The viewport's width in CSS pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Sets the viewport's width (1280 for desktop, 390 for a phone),
    /// keeping its height.
    pub fn set_width(&mut self, width: u32) {
        self.set_size(width, self.height);
    }

    /// Sets the viewport to `width` × `height` CSS pixels at scale 1;
    /// below 600 px wide the page is shown as on a phone (mobile viewport,
    /// `<meta name=viewport>` honoured, touch).
    pub fn set_size(&mut self, width: u32, height: u32) {
        let c = self.client();
        self.run("set window size", c.set_window_size(width.max(500), height));
        let mobile = width < 600;
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        );
        self.cdp(
            "Emulation.setTouchEmulationEnabled",
            json!({ "enabled": mobile }),
        );
        self.width = width;
        self.height = height;
    }

    /// The first element matching `css`, waiting up to [`FIND`] for it.
    pub fn find(&self, css: &str) -> Element<'_> {
        let inner = self.run(
            &format!("find {css:?} (waited {FIND:?})"),
            self.client()
                .wait()
                .at_most(FIND)
                .every(Duration::from_millis(50))
                .for_element(Locator::Css(css)),
        );
        Element {
            browser: self,
            css: css.to_owned(),
            inner,
        }
    }

    /// Every element matching `css` now (no waiting; may be empty).
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        self.run(
            &format!("find_all {css:?}"),
            self.client().find_all(Locator::Css(css)),
        )
        .into_iter()
        .map(|inner| Element {
            browser: self,
            css: css.to_owned(),
            inner,
        })
        .collect()
    }

    /// Whether an element matches `css` now (no waiting).
    pub fn exists(&self, css: &str) -> bool {
        !self.find_all(css).is_empty()
    }

    /// Replaces the value of the field at `css` with `text`, typed.
    pub fn fill(&self, css: &str, text: &str) {
        let e = self.find(css);
        e.clear();
        e.send_keys(text);
    }

    /// Clicks the element at `css` (a link or submit button: returns once
    /// the next page has loaded).
    pub fn click(&self, css: &str) {
        self.find(css).click();
    }

    /// Clicks the button at `css` that posts its form back to the same
    /// address, and waits until the next page has replaced this one (the
    /// URL cannot tell, and an element of the old page read meanwhile
    /// would be stale).
    pub fn click_and_reload(&self, css: &str) {
        self.execute("window.sealpostOldPage = true; return null;");
        self.click(css);
        let deadline = Instant::now() + FIND;
        loop {
            let fresh = self.execute(
                "return document.readyState === 'complete' && window.sealpostOldPage === undefined;",
            );
            if fresh == Value::Bool(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "browser: {css:?} did not lead to a new page within {FIND:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The rendered text of the element at `css`.
    pub fn text(&self, css: &str) -> String {
        self.find(css).text()
    }

    /// Waits up to [`FIND`] until the text of the element at `css` contains
    /// `needle` (for changes made by a script, or a page still loading),
    /// and returns that text. An element missing or gone stale while the
    /// next page replaces this one is waited for, not a failure.
    pub fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + FIND;
        let mut last = String::new();
        loop {
            if let Some(text) = self.try_text(css) {
                if text.contains(needle) {
                    return text;
                }
                last = text;
            }
            assert!(
                Instant::now() < deadline,
                "browser: text of {css:?} still {last:?} after {FIND:?}, waiting for {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The text of the element at `css` now, if there is one that answers.
    fn try_text(&self, css: &str) -> Option<String> {
        let client = self.client();
        self.rt
            .block_on(async {
                tokio::time::timeout(STEP, async {
                    let e = client.find(Locator::Css(css)).await.ok()?;
                    e.text().await.ok()
                })
                .await
            })
            .ok()
            .flatten()
    }

    /// Chooses the file at `path` in the `<input type=file>` at `css`.
    pub fn upload(&self, css: &str, path: &Path) {
        let abs = path
            .canonicalize()
            .unwrap_or_else(|e| panic!("upload {}: {e}", path.display()));
        self.find(css).send_keys(abs.to_str().expect("UTF-8 path"));
    }

    /// Every cookie the browser holds for the current page, `HttpOnly`
    /// ones included.
    pub fn cookies(&self) -> Vec<Cookie<'static>> {
        self.run("cookies", self.client().get_all_cookies())
    }

    /// The cookie called `name` for the current page, if any.
    pub fn cookie(&self, name: &str) -> Option<Cookie<'static>> {
        self.cookies().into_iter().find(|c| c.name() == name)
    }

    /// Runs `js` as the body of a function in the page and returns what it
    /// returns (`return window.portalHook;`).
    pub fn execute(&self, js: &str) -> Value {
        self.run("execute", self.client().execute(js, Vec::new()))
    }

    /// Saves a PNG of the viewport to `path` (parent folders created) and
    /// returns its bytes.
    pub fn screenshot(&self, path: &Path) -> Vec<u8> {
        let png = self.run("screenshot", self.client().screenshot());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        png
    }

    /// Sends a Chrome DevTools Protocol command through chromedriver
    /// (`POST /session/{id}/goog/cdp/execute`) and returns its result.
    pub fn cdp(&self, method: &str, params: Value) -> Value {
        let cmd = Cdp {
            body: json!({ "cmd": method, "params": params }).to_string(),
        };
        self.run(&format!("CDP {method}"), self.client().issue_cmd(cmd))
    }

    /// The folder holding this browser's profile and chromedriver's log.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session makes chromedriver quit Chromium; then the
        // `Driver` field's drop kills the group, for whatever is left (a
        // hung session, a panic mid-call).
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), client.close()).await
            });
        }
    }
}

/// The chromedriver process; dropping it kills its process group.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let pid = rustix::process::Pid::from_child(&self.0);
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.0.wait();
    }
}

/// One element found by [`Browser::find`], with blocking methods.
pub struct Element<'a> {
    browser: &'a Browser,
    css: String,
    inner: fantoccini::elements::Element,
}

impl std::fmt::Debug for Element<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Element").field("css", &self.css).finish()
    }
}

impl Element<'_> {
    fn what(&self, verb: &str) -> String {
        format!("{verb} {:?}", self.css)
    }

    pub fn click(&self) {
        self.browser.run(&self.what("click"), self.inner.click());
    }

    pub fn clear(&self) {
        self.browser.run(&self.what("clear"), self.inner.clear());
    }

    pub fn send_keys(&self, text: &str) {
        self.browser
            .run(&self.what("send keys to"), self.inner.send_keys(text));
    }

    /// The rendered (visible) text.
    pub fn text(&self) -> String {
        self.browser.run(&self.what("text of"), self.inner.text())
    }

    /// An HTML attribute as written in the page.
    pub fn attr(&self, name: &str) -> Option<String> {
        self.browser.run(
            &self.what(&format!("attribute {name} of")),
            self.inner.attr(name),
        )
    }

    /// A DOM property (`value` of a field, `checked` of a box).
    pub fn prop(&self, name: &str) -> Option<String> {
        self.browser.run(
            &self.what(&format!("property {name} of")),
            self.inner.prop(name),
        )
    }

    pub fn is_displayed(&self) -> bool {
        self.browser
            .run(&self.what("is_displayed"), self.inner.is_displayed())
    }
}

/// chromedriver's own command for CDP.
#[derive(Debug)]
struct Cdp {
    body: String,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let id = session_id.expect("a session for CDP");
        base_url.join(&format!("session/{id}/goog/cdp/execute"))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.clone()))
    }
}

/// The last entries of chromedriver's log (its timestamped lines, without
/// the JSON it dumps between them), for failure messages.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let entries: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| l.chars().take(300).collect())
        .collect();
    let from = entries.len().saturating_sub(12);
    format!(
        "chromedriver log, last entries:\n{}",
        entries[from..].join("\n")
    )
}

/// The width and height of a PNG, from its `IHDR` chunk; `None` if `png`
/// is not a PNG.
pub fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if png.len() < 24 || !png.starts_with(SIGNATURE) || &png[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    Some((be(&png[16..20]), be(&png[20..24])))
}

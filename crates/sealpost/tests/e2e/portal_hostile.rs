//! Issue 15, "Hostile HTML", in headless Chromium: the 212 payloads of
//! `crates/sealpost-web/tests/fixtures/hostile/` (see its README), mailed
//! to a secure recipient in four HTML messages, run no script and load
//! nothing remote when the recipient reads them; after "Show remote
//! images" only plain images (`/img/...`) are fetched, never `/x/...`.
//!
//! Script: a `message` listener on the portal page records the
//! `top.postMessage('pwn:NNN')` every payload would send if it ran; the
//! frame is reloaded after the listener is in place. Network: every
//! `remote.invalid` in the payloads points at a stand-in HTTP server on
//! loopback that records each connection. The frame's DOM is also checked
//! directly (no element off the allow-list, no `on*`, `style` or script
//! URL, no remote URL but a link's), so a sanitiser bypass fails the test
//! even where the sandbox and the frame's CSP would still hold.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use serde_json::{Value, json};

use crate::{
    browser::Browser,
    helpers::*,
    portal_journey::{at_path, base64, download_with_cookie, link_in},
    secure::{decoded_text, secure_policy},
};

const GOOD: &str = "violet-harbour-quietly-sixteen";

/// Messages the corpus is spread over.
const MESSAGES: usize = 4;

/// A 1 × 1 PNG, the stand-in's answer to every request.
const PIXEL: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x64, 0x60, 0xf8, 0x5f,
    0x0f, 0x00, 0x02, 0x87, 0x01, 0x80, 0xeb, 0x47, 0xba, 0x92, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The stand-in for `remote.invalid`: a loopback HTTP server recording
/// what each connection asked for (`GET /img/045.png`, or `<tls>` for a
/// TLS handshake, `<empty>` for a connection that sent nothing). Serves
/// one connection at a time; stops when dropped.
struct StandIn {
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StandIn {
    fn start() -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (log, stop) = (log.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let seen = answer(stream);
                            let mut log = log.lock().unwrap();
                            if log.len() < 1000 {
                                log.push(seen);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(_) => break,
                    }
                }
            }
        });
        StandIn {
            port,
            log,
            stop,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (bounded in size and time), answers the pixel, and
/// says what was asked.
fn answer(mut stream: TcpStream) -> String {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while buf.len() < 16 * 1024 && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.first() == Some(&0x16) {
            return "<tls>".to_owned();
        }
    }
    if buf.is_empty() {
        return "<empty>".to_owned();
    }
    let line =
        String::from_utf8_lossy(&buf[..buf.iter().position(|&b| b == b'\r').unwrap_or(buf.len())])
            .into_owned();
    let mut head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        PIXEL.len()
    )
    .into_bytes();
    head.extend_from_slice(PIXEL);
    let _ = stream.write_all(&head);
    line.rsplit_once(' ')
        .map_or(line.clone(), |(l, _)| l.to_owned())
}

/// `haystack` with every `from` (ASCII case-insensitive) replaced by `to`.
fn replace_ignore_case(haystack: &[u8], from: &str, to: &str) -> Vec<u8> {
    let from = from.as_bytes();
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].len() >= from.len()
            && haystack[i..i + from.len()].eq_ignore_ascii_case(from)
        {
            out.extend_from_slice(to.as_bytes());
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// The corpus, pointed at `port`, as `MESSAGES` HTML bodies (payloads
/// each followed by [`CLOSE`] twice, `<hr>` and an `end-of-NNN` marker the test
/// looks for; a payload left open until the end of the input is
/// put last in its body so that it swallows no other).
fn bodies(port: u16) -> Vec<(Vec<u8>, Vec<String>)> {
    let dir = repo_root().join("crates/sealpost-web/tests/fixtures/hostile");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 212, "the hostile corpus in {}", dir.display());
    let to = format!("127.0.0.1:{port}");
    let per = files.len().div_ceil(MESSAGES);
    files
        .chunks(per)
        .map(|chunk| {
            let mut chunk = chunk.to_vec();
            chunk.sort_by_key(|p| p.to_string_lossy().contains("-eof"));
            let mut body = Vec::new();
            let mut ends = Vec::new();
            for file in chunk {
                let payload = std::fs::read(&file).unwrap();
                body.extend_from_slice(&replace_ignore_case(&payload, "remote.invalid", &to));
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                let end = format!("end-of-{}", &name[..3]);
                body.extend_from_slice(format!("\n{CLOSE}{CLOSE}<hr><p>{end}</p>\n").as_bytes());
                if !name.contains("-eof") {
                    ends.push(end);
                }
            }
            (body, ends)
        })
        .collect()
}

/// Ends whatever a payload left open (a raw-text element, foreign
/// content, a table or form) so that it cannot swallow the next one.
const CLOSE: &str = "</script></style></title></textarea></xmp></noscript></noembed>\
    </noframes></iframe></option></select></table></mglyph></mtext></svg></math></table></form></a>";

/// A message whose HTML part is `html`, base64 (some payloads hold NUL
/// bytes and bare line ends).
fn eml(n: usize, html: &[u8]) -> Vec<u8> {
    let encoded = base64(html);
    let mut lines = String::new();
    for line in encoded.as_bytes().chunks(76) {
        lines.push_str(std::str::from_utf8(line).unwrap());
        lines.push_str("\r\n");
    }
    format!(
        "From: Mallory <alice@corp.example>\r\nTo: Bob <bob@partner.example>\r\n\
         Subject: hostile {n}\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{lines}"
    )
    .into_bytes()
}

/// Installs the script hook on the portal page, then reloads the frame so
/// that all of it runs under the hook.
const HOOK: &str = "window.__pwn = []; \
    window.addEventListener('message', e => window.__pwn.push(String(e.data))); \
    window.__loaded = false; \
    const f = document.querySelector('iframe.body-frame'); \
    f.addEventListener('load', () => { window.__loaded = true; }, { once: true }); \
    f.src = f.getAttribute('src'); \
    return true;";

/// What the page and its frame look like now; `REMOTE` is replaced by
/// whether remote images are allowed.
const INSPECT: &str = "const remote = REMOTE; \
    const f = document.querySelector('iframe.body-frame'); \
    const d = f.contentDocument; \
    const done = window.__loaded === true && !!d && d.readyState === 'complete' \
      && Array.from(d.images).every(i => i.complete); \
    const bad = []; \
    const banned = ['script','style','iframe','frame','frameset','object','embed','applet', \
      'form','input','button','textarea','select','option','base','meta','link','svg','math', \
      'video','audio','source','track','picture','template','noscript','portal','bgsound', \
      'marquee','isindex','keygen','xmp','title','plaintext','noembed','noframes','slot','area','map']; \
    if (d && d.body) { \
      for (const el of d.body.querySelectorAll('*')) { \
        const tag = el.localName; \
        if (banned.includes(tag) || tag.includes('-') || el.namespaceURI !== 'http://www.w3.org/1999/xhtml') \
          bad.push('<' + tag + '>'); \
        for (const a of el.attributes) { \
          const n = a.name.toLowerCase(), v = a.value; \
          const remoteUrl = /127\\.0\\.0\\.1|remote\\.invalid/i.test(v); \
          const allowedRemote = (tag === 'a' && n === 'href') || (remote && tag === 'img' && n === 'src'); \
          if (n.startsWith('on') || ['style','srcset','background','poster','formaction','action', \
                'ping','srcdoc','dynsrc','lowsrc','xlink:href','data','codebase','autofocus'].includes(n) \
              || /^[\\s\\u0000-\\u0020]*(javascript|vbscript|data|livescript):/i.test(v) \
              || (remoteUrl && !allowedRemote)) \
            bad.push('<' + tag + ' ' + n + '=' + JSON.stringify(v.slice(0, 80)) + '>'); \
        } \
      } \
      for (const el of d.querySelectorAll('script,base,link,meta[http-equiv],iframe,object,embed,form')) \
        bad.push('document: <' + el.localName + '>'); \
      if (d.querySelectorAll('style').length !== 1) bad.push('styles: ' + d.querySelectorAll('style').length); \
    } \
    return { done, pwn: window.__pwn || null, bad, title: document.title, top: location.href, \
      frame: d ? d.location.href : null, src: f.src, sandbox: f.getAttribute('sandbox'), \
      text: d && d.body ? d.body.textContent : '' };";

/// Reloads the frame under the hook, waits (bounded) until it and its
/// images loaded, and checks the script hook, the page and the frame's DOM.
fn check_frame(browser: &Browser, what: &str, ends: &[String], remote: bool) -> Value {
    let title = browser.title();
    let top = browser.current_url().to_string();
    assert_eq!(browser.execute(HOOK), json!(true), "{what}: the hook");
    let inspect = INSPECT.replace("REMOTE", if remote { "true" } else { "false" });
    wait_for(
        Duration::from_secs(15),
        &format!("{what}: the frame"),
        || {
            let v = browser.execute(&inspect);
            (v["done"] == json!(true)).then_some(v)
        },
    );
    // Late fetches and scripts (timers, lazy images, refreshes) get a moment.
    std::thread::sleep(Duration::from_millis(500));
    let seen = browser.execute(&inspect);
    assert_eq!(
        seen["pwn"],
        json!([]),
        "{what}: a payload ran script: {seen}"
    );
    assert_eq!(seen["bad"], json!([]), "{what}: unsafe markup in the frame");
    assert_eq!(
        seen["title"],
        json!(title),
        "{what}: the page's title changed"
    );
    assert_eq!(seen["top"], json!(top), "{what}: the page navigated");
    assert_eq!(seen["frame"], seen["src"], "{what}: the frame navigated");
    // Every payload was there to be tried: none swallowed the next one.
    let text = seen["text"].as_str().unwrap_or_default();
    let missing: Vec<&String> = ends.iter().filter(|e| !text.contains(e.as_str())).collect();
    assert!(
        missing.is_empty(),
        "{what}: payloads swallowed before {missing:?}: {text}"
    );
    let sandbox = seen["sandbox"].as_str().expect("a sandbox attribute");
    assert!(!sandbox.contains("allow-scripts"), "{sandbox}");
    assert!(!sandbox.contains("allow-forms"), "{sandbox}");
    assert!(!sandbox.contains("allow-top-navigation"), "{sandbox}");
    seen
}

/// The frame's CSP allows no script at all.
fn assert_frame_csp(url: &str, cookie: &str) {
    let (_, headers) = download_with_cookie(url, cookie);
    let csp = headers
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-security-policy")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no CSP on {url}:\n{headers}"));
    let directives: Vec<(&str, &str)> = csp
        .split(';')
        .map(|d| d.trim().split_once(' ').unwrap_or((d.trim(), "")))
        .collect();
    let value = |name: &str| directives.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    assert_eq!(value("default-src"), Some("'none'"), "{csp}");
    for name in ["script-src", "script-src-elem", "script-src-attr"] {
        assert!(matches!(value(name), None | Some("'none'")), "{csp}");
    }
    for name in [
        "object-src",
        "frame-src",
        "child-src",
        "connect-src",
        "media-src",
    ] {
        assert!(matches!(value(name), None | Some("'none'")), "{csp}");
    }
    let sandbox = value("sandbox").unwrap_or_else(|| panic!("no sandbox in {csp}"));
    assert!(!sandbox.contains("allow-scripts"), "{csp}");
}

#[test]
fn hostile_html_runs_no_script_and_loads_nothing_remote_until_allowed() {
    let stand_in = StandIn::start();
    let internal = Sink::start(&[]);
    let external = Sink::start(&[]);
    let gw = TestGateway::start(&format!(
        "[domains]\ninternal = [\"corp.example\"]\n[relay]\nnext_hop = \"{}\"\ninternal_next_hop = \"{}\"\n",
        external.addr(),
        internal.addr()
    ));
    let base = format!("http://localhost:{}", gw.portal.port());
    secure_policy(
        &gw,
        "partner.example",
        json!({"name": "Partners", "expiry_days": 14}),
    );

    let mut smtp = Raw::connect(gw.smtp);
    smtp.cmd("EHLO client.corp.example", "250");
    let ids: Vec<_> = bodies(stand_in.port)
        .iter()
        .enumerate()
        .map(|(n, (html, ends))| {
            let reply = smtp.transaction(
                "<alice@corp.example>",
                &["<bob@partner.example>"],
                &eml(n + 1, html),
            );
            assert!(reply.starts_with("250"), "{reply}");
            (queue_id(&reply), ends.clone())
        })
        .collect();
    assert_eq!(ids.len(), MESSAGES);
    let notification = decoded_text(&external.wait_for(MESSAGES)[0].content);
    let link = link_in(&notification, &base, "/open/");

    let browser = Browser::start();
    browser.goto(&link);
    browser.fill("#password", GOOD);
    browser.fill("#confirm", GOOD);
    browser.click("button.primary");
    at_path(&browser, "/messages/");
    let cookie = browser.cookie("sealpost_session").expect("a session");
    let cookie = format!("sealpost_session={}", cookie.value());

    // Every message, remote content blocked: nothing runs, nothing leaves.
    for (id, ends) in &ids {
        let what = format!("message {id}");
        browser.goto(&format!("{base}/messages/{id}/0"));
        check_frame(&browser, &what, ends, false);
        assert_eq!(
            stand_in.requests(),
            Vec::<String>::new(),
            "{what}: requests before \"Show remote images\""
        );
    }
    let src = browser
        .find("iframe.body-frame")
        .attr("src")
        .expect("a frame src");
    assert_frame_csp(&format!("{base}{src}"), &cookie);
    assert_frame_csp(&format!("{base}{src}?remote=1"), &cookie);
    assert_eq!(stand_in.requests(), Vec::<String>::new());

    // "Show remote images": only plain images arrive. The first message
    // holds the remote images; the others are opened with `?remote=1`
    // too, so every payload meets the permissive CSP.
    for (n, (id, ends)) in ids.iter().enumerate() {
        let what = format!("message {id} with remote images");
        browser.goto(&format!("{base}/messages/{id}/0"));
        if n == 0 {
            browser.click("p.remote a");
            wait_for(Duration::from_secs(10), "?remote=1", || {
                browser
                    .current_url()
                    .query()
                    .is_some_and(|q| q.contains("remote=1"))
                    .then_some(())
            });
        } else {
            browser.goto(&format!("{base}/messages/{id}/0?remote=1"));
        }
        check_frame(&browser, &what, ends, true);
        let requests = stand_in.requests();
        let wrong: Vec<&String> = requests
            .iter()
            .filter(|r| !(r.starts_with("GET /img/") || *r == "<tls>"))
            .collect();
        assert!(wrong.is_empty(), "{what}: {wrong:?} among {requests:?}");
        if n == 0 {
            assert!(
                requests.iter().any(|r| r.starts_with("GET /img/")),
                "{what}: no remote image loaded: {requests:?}"
            );
        }
    }
}

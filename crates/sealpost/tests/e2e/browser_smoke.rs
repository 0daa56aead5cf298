//! The browser harness itself, end to end: a page served on loopback by a
//! tiny server in the test, driven in headless Chromium.

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use crate::browser::{Browser, png_size};

const INDEX: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Harness smoke</title>
<style>
  body { font-family: sans-serif; margin: 1rem; }
  main { max-width: 40rem; margin: auto; padding: 1rem; border: 3px solid #2a6; }
  input, button { font-size: 1.1rem; }
</style>
<script src="/app.js" defer></script>
</head>
<body>
<main>
  <h1>Harness smoke</h1>
  <label for="name">Name</label> <input id="name" name="name">
  <button id="greet" type="button">Greet</button>
  <p id="out">not clicked</p>
  <label for="file">File</label> <input id="file" type="file">
  <p id="file-out">no file</p>
  <p id="width"></p>
  <a id="next" href="/second">Second page</a>
</main>
</body>
</html>
"#;

/// Same-origin script: the page's CSP allows no inline script.
const APP_JS: &str = r#"
window.smokeHook = { clicks: 0 };
document.getElementById("width").textContent = "width " + window.innerWidth;
document.getElementById("greet").addEventListener("click", function () {
  window.smokeHook.clicks += 1;
  document.getElementById("out").textContent =
    "Hello, " + document.getElementById("name").value + "!";
});
document.getElementById("file").addEventListener("change", function (e) {
  var f = e.target.files[0];
  document.getElementById("file-out").textContent = f.name + " " + f.size;
});
"#;

const SECOND: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Second</title></head>
<body><h1 id="second">Second page</h1></body></html>
"#;

/// Serves `/`, `/app.js` and `/second` on 127.0.0.1:0 from a thread per
/// connection; `/` sets an HttpOnly cookie. Lives until the test ends.
fn serve() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || answer(conn));
        }
    });
    addr
}

fn answer(conn: TcpStream) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(&conn);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return; // a speculative connection that never asked
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(n) if n > 0 && header != "\r\n" => {}
            _ => break,
        }
    }
    let path = request_line.split(' ').nth(1).unwrap_or("");
    let (status, ctype, body, extra) = match path {
        "/" => (
            "200 OK",
            "text/html; charset=utf-8",
            INDEX,
            "Set-Cookie: smoke=ok-123; Path=/; HttpOnly; SameSite=Strict\r\n",
        ),
        "/app.js" => ("200 OK", "text/javascript; charset=utf-8", APP_JS, ""),
        "/second" => ("200 OK", "text/html; charset=utf-8", SECOND, ""),
        _ => ("404 Not Found", "text/plain", "not found\n", ""),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Content-Security-Policy: default-src 'self'; style-src 'self' 'unsafe-inline'\r\n\
         Cache-Control: no-store\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    let mut conn = conn;
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body.as_bytes());
}

/// Set `SEALPOST_KEEP_SCREENSHOTS=<folder>` to keep its two screenshots.
#[test]
fn browser_harness_drives_chromium_on_loopback() {
    let addr = serve();
    let shots = tempfile::tempdir().unwrap();
    let mut b = Browser::start();
    let home = format!("http://{addr}/");
    b.goto(&home);
    assert_eq!(b.title(), "Harness smoke");
    assert_eq!(b.current_url().as_str(), home);

    // The same-origin script ran (CSP forbids inline script) and sees the
    // desktop width.
    assert_eq!(b.text("#width"), "width 1280");
    assert_eq!(b.text("#out"), "not clicked");
    b.fill("#name", "Ada Lovelace");
    b.click("#greet");
    assert_eq!(b.wait_for_text("#out", "Hello"), "Hello, Ada Lovelace!");
    assert_eq!(
        b.find("#name").prop("value").as_deref(),
        Some("Ada Lovelace")
    );
    assert_eq!(b.execute("return window.smokeHook.clicks;"), 1);

    // A file input receives a real file.
    let upload = shots.path().join("upload me.txt");
    std::fs::write(&upload, "twelve bytes").unwrap();
    b.upload("#file", &upload);
    assert_eq!(b.wait_for_text("#file-out", "upload"), "upload me.txt 12");

    // The server's HttpOnly cookie is in the browser but not in reach of
    // the page's scripts.
    let cookie = b.cookie("smoke").expect("cookie set by the server");
    assert_eq!(cookie.value(), "ok-123");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(b.execute("return document.cookie;"), "");

    // Screenshots at both widths are PNGs exactly that wide.
    let desktop = b.screenshot(&shots.path().join("smoke-1280.png"));
    assert_eq!(png_size(&desktop), Some((1280, 900)));
    b.set_width(390);
    b.goto(&home); // reload so the page measures the phone viewport
    assert_eq!(b.text("#width"), "width 390");
    let phone = b.screenshot(&shots.path().join("smoke-390.png"));
    assert_eq!(png_size(&phone), Some((390, 900)));
    b.set_width(1280);
    b.goto(&home);
    assert_eq!(b.text("#width"), "width 1280");

    // A link navigates.
    b.click("#next");
    assert_eq!(b.current_url().path(), "/second");
    assert_eq!(b.text("#second"), "Second page");
    assert!(!b.exists("#greet"));

    if let Ok(keep) = std::env::var("SEALPOST_KEEP_SCREENSHOTS") {
        for name in ["smoke-1280.png", "smoke-390.png"] {
            std::fs::copy(
                shots.path().join(name),
                std::path::Path::new(&keep).join(name),
            )
            .unwrap();
        }
    }
}

#[test]
fn png_size_reads_the_ihdr_chunk() {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    png.extend_from_slice(&1280u32.to_be_bytes());
    png.extend_from_slice(&900u32.to_be_bytes());
    assert_eq!(png_size(&png), Some((1280, 900)));
    assert_eq!(png_size(&png[..20]), None);
    png[1] = b'J';
    assert_eq!(png_size(&png), None);
}

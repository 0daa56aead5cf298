//! STARTTLS with real TLS clients, and the plaintext command injection
//! defence (CVE-2011-0411).

use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helpers::*;

#[test]
fn swaks_starttls_delivers_and_records_esmtps() {
    let sink = Sink::start(&[]);
    let gw = TestGateway::start(&format!("[relay]\nnext_hop = \"{}\"", sink.addr()));
    let (ok, out) = swaks(
        gw.smtp,
        &[
            "--tls",
            "--from",
            "alice@corp.example",
            "--to",
            "bob@ext.example",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("220 2.0.0 Ready to start TLS") && out.contains("<~  250 2.1.0"),
        "the transaction ran inside TLS:\n{out}"
    );
    let m = &sink.wait_for(1)[0];
    assert!(m.text().contains("with ESMTPS id"), "{}", m.text());
    // The self-signed pair was generated on first start, key private.
    let key = gw.data_dir().join("tls/key.pem");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn commands_pipelined_after_starttls_are_discarded() {
    let gw = TestGateway::start("");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(gw.smtp).await.unwrap();
        let mut plain = BufReader::new(tcp);
        let mut line = String::new();
        plain.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("220"));
        plain
            .get_mut()
            .write_all(b"EHLO client.example\r\n")
            .await
            .unwrap();
        loop {
            line.clear();
            plain.read_line(&mut line).await.unwrap();
            if line.as_bytes()[3] == b' ' {
                break;
            }
        }
        // The injected RSET/NOOP ride in the same packet as STARTTLS.
        plain
            .get_mut()
            .write_all(b"STARTTLS\r\nNOOP\r\nMAIL FROM:<injected@x.example>\r\n")
            .await
            .unwrap();
        line.clear();
        plain.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("220 2.0.0"), "{line}");
        assert!(
            plain.buffer().is_empty(),
            "no plaintext reply to the injected commands"
        );

        let config = sealpost_smtp::outbound::opportunistic_tls_config();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(ServerName::try_from("gw.test").unwrap(), plain.into_inner())
            .await
            .expect("TLS handshake");
        let mut tls = BufReader::new(tls);
        tls.get_mut()
            .write_all(b"EHLO client.example\r\n")
            .await
            .unwrap();
        line.clear();
        tokio::time::timeout(Duration::from_secs(10), tls.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        assert!(
            line.starts_with("250-gw.test"),
            "the first reply in TLS answers EHLO, not an injected command: {line}"
        );
        let mut ehlo = line.clone();
        while line.as_bytes()[3] != b' ' {
            line.clear();
            tls.read_line(&mut line).await.unwrap();
            ehlo.push_str(&line);
        }
        assert!(!ehlo.contains("STARTTLS"), "not offered twice: {ehlo}");
        tls.get_mut()
            .write_all(b"MAIL FROM:<a@corp.example>\r\n")
            .await
            .unwrap();
        line.clear();
        tls.read_line(&mut line).await.unwrap();
        assert!(
            line.starts_with("250 2.1.0"),
            "no transaction leaked across the upgrade: {line}"
        );
    });
}

#[test]
fn outbound_uses_starttls_when_the_next_hop_offers_it() {
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["sink.test".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
    let sink = Sink::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let gw = TestGateway::start(&format!("[relay]\nnext_hop = \"{}\"", sink.addr()));
    let (ok, out) = swaks(
        gw.smtp,
        &["--from", "alice@corp.example", "--to", "bob@ext.example"],
    );
    assert!(ok, "{out}");
    assert!(sink.wait_for(1)[0].tls, "the relay hop was encrypted");

    let plain = Sink::start(&[]);
    let gw = TestGateway::start(&format!(
        "[relay]\nnext_hop = \"{}\"\nopportunistic_tls = false",
        plain.addr()
    ));
    let (ok, out) = swaks(
        gw.smtp,
        &["--from", "alice@corp.example", "--to", "bob@ext.example"],
    );
    assert!(ok, "{out}");
    assert!(!plain.wait_for(1)[0].tls);
}

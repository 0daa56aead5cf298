//! SMTP smuggling (CVE-2023-51764/5/6): an end-of-data other than
//! `<CRLF>.<CRLF>` must never end the message, so commands hidden after it
//! can never become a second message.

use std::time::Duration;

use crate::helpers::*;

#[test]
fn no_end_of_data_variant_smuggles_a_second_message() {
    let sink = Sink::start(&[]);
    let gw = TestGateway::start(&format!("[relay]\nnext_hop = \"{}\"", sink.addr()));
    let variants: [&[u8]; 7] = [
        b"\n.\n",
        b"\r\n.\n",
        b"\n.\r\n",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\r\n.\r\r\n",
        b"\r\n\x00.\r\n",
    ];
    for variant in variants {
        let mut c = Raw::connect(gw.smtp);
        c.cmd("EHLO attacker.example", "250");
        c.cmd("MAIL FROM:<alice@corp.example>", "250");
        c.cmd("RCPT TO:<bob@ext.example>", "250");
        c.cmd("DATA", "354");
        let mut wire = b"Subject: innocent\r\n\r\nhello".to_vec();
        wire.extend_from_slice(variant);
        wire.extend_from_slice(
            b"MAIL FROM:<ceo@corp.example>\r\nRCPT TO:<victim@ext.example>\r\nDATA\r\nSubject: smuggled\r\n\r\nwire the money\r\n.\r\n",
        );
        c.send(&wire);
        let reply = c.reply();
        if variant == b"\r\n\x00.\r\n" {
            // A NUL is not a line break: this is one ordinary message.
            assert!(reply.starts_with("250"), "{reply}");
        } else {
            assert!(
                reply.starts_with("550 5.6.0"),
                "variant {variant:?}: {reply}"
            );
        }
        // Exactly one reply to the whole thing: the next one is for QUIT.
        c.cmd("QUIT", "221");
    }
    std::thread::sleep(Duration::from_secs(1));
    let got = sink.messages();
    assert_eq!(got.len(), 1, "only the NUL variant was a (single) message");
    assert!(!got[0].rcpt_tos.iter().any(|r| r.contains("victim")));
}

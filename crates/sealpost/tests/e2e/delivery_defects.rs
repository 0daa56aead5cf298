//! The delivery defects of issue 17 (item 5), each against real peers:
//! slow next hops (leases renewed), stale reused connections, delay
//! warnings, 8-bit mail to next hops without 8BITMIME, and DATA still
//! arriving at shutdown.

use std::time::Duration;

use sealpost_store::RecipientStatus;

use crate::helpers::*;

/// A next hop slower than the lease: the lease is renewed while it takes
/// the message, so it gets the message exactly once (without renewal the
/// lease runs out mid-delivery and the worker sends a second copy).
/// See: issue 17, item 5.
#[test]
fn issue_17_a_next_hop_slower_than_the_lease_gets_the_message_once() {
    // Longer than the worker's longest idle sleep (5 s), so it looks for
    // due work while the delivery still runs.
    let sink = Sink::start(&["--data-delay", "7"]);
    let gw = TestGateway::start(&format!(
        "[relay]\nnext_hop = \"{}\"\nlease_duration = \"1s\"\nretry_schedule = [\"1s\"]",
        sink.addr()
    ));
    let (ok, out) = swaks(
        gw.smtp,
        &["--from", "alice@corp.example", "--to", "bob@ext.example"],
    );
    assert!(ok, "{out}");
    let id = queue_id(&out);
    let done = gw.recipients_when(&id, "delivery", |r| r.status == RecipientStatus::Delivered);
    assert_eq!(done[0].attempts, 1, "{done:?}");
    // A second copy would arrive up to one data delay after the first.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(sink.messages().len(), 1, "delivered exactly once");
}

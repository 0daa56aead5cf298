//! One inbound SMTP session: the input is everything the client sends.
//! See `sealpost_smtp::inbound::fuzzing::session_on_bytes` for the checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    sealpost_smtp::inbound::fuzzing::session_on_bytes(input);
});

//! The DATA reader: the input is what the client sends after `354`.
//! See `sealpost_smtp::inbound::fuzzing::data_reader_on_bytes` for the checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    sealpost_smtp::inbound::fuzzing::data_reader_on_bytes(input);
});

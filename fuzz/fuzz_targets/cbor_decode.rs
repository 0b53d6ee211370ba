//! The CBOR decoder on arbitrary bytes: never panics, never allocates past the input, and
//! what it accepts re-encodes to a fixed point (decode ∘ encode is the identity on its output).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pathlight_wire::{Limits, cbor};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(batch) = cbor::decode(data, &limits) {
        let once = cbor::encode(&batch);
        let again = cbor::decode(&once, &limits).expect("our own encoding decodes");
        assert_eq!(
            once,
            cbor::encode(&again),
            "encode/decode is not a fixed point"
        );
    }
});

//! The JSON decoders (batch object and the simple array form) on arbitrary bytes: never
//! panic, and what they accept survives a CBOR round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pathlight_wire::{Encoding, Limits, cbor, decode};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    for site in [None, Some("shop")] {
        if let Ok(batch) = decode(data, Encoding::Json, site, &limits) {
            let bytes = cbor::encode(&batch);
            cbor::decode(&bytes, &limits).expect("a decoded JSON batch encodes to valid CBOR");
        }
    }
});

//! Golden fixtures: `fixtures/NAME.cbor` with its `NAME.json` twin, and `NAME.v2.cbor`, the same
//! batch in format v2. The v1 pair decode to the same batch, the v2 bytes to that batch as v2
//! holds it ([`super::roundtrip::as_v2`]); encoding gives the committed bytes back; and every
//! truncation and every two-way split of the CBOR bytes of both versions is handled without a
//! panic (truncations must be errors).
//!
//! `PATHLIGHT_BLESS=1 cargo test -p pathlight-wire` rewrites the fixtures from the code.

use pathlight_wire::{Limits, RawBatch, cbor, json, v2};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn cases() -> Vec<(&'static str, RawBatch)> {
    let mut one_click = super::typical_batch();
    one_click.events.retain(|e| e.kind.name() == "click");
    let mut unicode = super::typical_batch();
    unicode.site_id = "démo-站点".into();
    for e in &mut unicode.events {
        e.title = Some("Ünïcode — 商品 🛒".into());
        e.user_id = Some("user-1001".into());
        e.session_id.clear();
    }
    if let pathlight_wire::EventKind::Click(c) = &mut unicode.events[1].kind {
        c.x = -12;
        c.text = Some("Añadir 🛒".into());
        c.href = Some("https://shop.example/cart".into());
        c.rel_x = 1.0 / 3.0;
    }
    vec![
        ("typical", super::typical_batch()),
        ("click", one_click),
        ("unicode", unicode),
    ]
}

#[test]
fn fixtures_match_the_code_and_each_other() {
    let bless = std::env::var_os("PATHLIGHT_BLESS").is_some();
    let limits = Limits::default();
    for (name, batch) in cases() {
        let cbor_path = dir().join(format!("{name}.cbor"));
        let json_path = dir().join(format!("{name}.json"));
        let encoded = cbor::encode(&batch);
        if bless {
            std::fs::write(&cbor_path, &encoded).unwrap();
            let pretty = serde_json::to_string_pretty(&batch).unwrap() + "\n";
            std::fs::write(&json_path, pretty).unwrap();
        }
        let golden = std::fs::read(&cbor_path).unwrap_or_else(|e| panic!("{cbor_path:?}: {e}"));
        assert_eq!(
            encoded, golden,
            "{name}: encoder output changed; bless only on purpose"
        );
        let from_cbor = cbor::decode(&golden, &limits).unwrap();
        let from_json = json::decode(&std::fs::read(&json_path).unwrap(), None, &limits).unwrap();
        assert_eq!(from_cbor, batch, "{name}: CBOR fixture");
        assert_eq!(from_json, batch, "{name}: JSON twin");

        let v2_path = dir().join(format!("{name}.v2.cbor"));
        let encoded = v2::encode(&batch);
        if bless {
            std::fs::write(&v2_path, &encoded).unwrap();
        }
        let golden = std::fs::read(&v2_path).unwrap_or_else(|e| panic!("{v2_path:?}: {e}"));
        assert_eq!(
            encoded, golden,
            "{name}: v2 encoder output changed; bless only on purpose"
        );
        let from_v2 = cbor::decode(&golden, &limits).unwrap();
        assert_eq!(
            from_v2,
            super::roundtrip::as_v2(&batch, &from_v2),
            "{name}: v2 fixture"
        );
        assert_eq!(v2::encode(&from_v2), golden, "{name}: v2 re-encoded");
    }
}

/// Both versions' bytes of every case, with the batch each decodes to.
fn encoded_cases() -> Vec<(String, Vec<u8>, RawBatch)> {
    let limits = Limits::default();
    cases()
        .into_iter()
        .flat_map(|(name, batch)| {
            let two = v2::encode(&batch);
            let from_two = cbor::decode(&two, &limits).unwrap();
            [
                (name.to_string(), cbor::encode(&batch), batch),
                (format!("{name}.v2"), two, from_two),
            ]
        })
        .collect()
}

#[test]
fn every_truncation_is_an_error_and_never_a_panic() {
    let limits = Limits::default();
    for (name, bytes, _) in encoded_cases() {
        for cut in 0..bytes.len() {
            assert!(
                cbor::decode_with_refused(&bytes[..cut], &limits).is_err(),
                "{name}: a batch cut at {cut} of {} bytes decoded",
                bytes.len()
            );
        }
    }
    for (name, batch) in cases() {
        let json = json::encode(&batch);
        for cut in 0..json.len() {
            assert!(
                json::decode(&json[..cut], None, &limits).is_err(),
                "{name}: JSON cut at {cut}"
            );
        }
    }
}

#[test]
fn every_split_reassembles_to_the_same_batch() {
    // A receiver that gets the body in two chunks and joins them must see the same batch; a
    // decoder fed either half alone must fail cleanly.
    let limits = Limits::default();
    for (name, bytes, batch) in encoded_cases() {
        for split in 1..bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert!(cbor::decode(a, &limits).is_err(), "{name}: head at {split}");
            let _ = cbor::decode(b, &limits);
            let joined = [a, b].concat();
            assert_eq!(
                cbor::decode(&joined, &limits).unwrap(),
                batch,
                "{name}: split at {split}"
            );
        }
    }
}

#[test]
fn every_single_byte_corruption_is_handled() {
    let limits = Limits::default();
    let batch = super::typical_batch();
    for bytes in [cbor::encode(&batch), v2::encode(&batch)] {
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x20, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                let _ = cbor::decode_with_refused(&b, &limits);
            }
        }
    }
}

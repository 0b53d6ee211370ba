//! The collector's stages before storage (inflate → decode → authorize → validate →
//! rate-limit → enrich → flatten → RowBinary) on arbitrary requests: never panic, and every
//! accepted event becomes exactly one row. The first byte picks the content type, `?site=` and
//! `Content-Encoding: gzip`, the second the origin.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pathlight_collector::config::Config;
use pathlight_collector::dates::now_ms;
use pathlight_collector::pipeline::{IngestRequest, Stages};
use pathlight_wire::enrich::VisitorHasher;
use std::sync::{Arc, OnceLock};

fn stages() -> &'static Stages {
    static STAGES: OnceLock<Stages> = OnceLock::new();
    STAGES.get_or_init(|| {
        let mut config = Config::for_tests("http://127.0.0.1:1", "fuzz");
        config.sites[0].id = "shop".into();
        config.sites[0].origins = vec!["https://shop.example".into()];
        let metrics = Arc::new(pathlight_collector::metrics::Metrics::new());
        Stages::new(&config, VisitorHasher::new(&[], [7; 16]), metrics).expect("stages")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&[kind, origin], body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let content_type = match kind % 4 {
        0 => None,
        1 => Some("application/cbor"),
        2 => Some("application/json"),
        _ => Some("text/plain"),
    };
    let req = IngestRequest {
        body,
        content_type,
        // Gzip bodies are found by their first bytes too; the header makes any body one.
        content_encoding: (kind & 8 != 0).then_some("gzip"),
        site: (kind & 4 != 0).then_some("shop"),
        origin: [
            None,
            Some("https://shop.example"),
            Some("https://evil.example"),
        ]
        .get(usize::from(origin % 3))
        .copied()
        .flatten(),
        ip: Some([203, 0, 113, kind].into()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"),
        country: None,
        received_at: now_ms(),
        delivery: Default::default(),
        // Keyless, and a wrong key: refusals too must not break the stages.
        key: (kind & 8 != 0).then_some("not-a-key"),
    };
    let mut counted = 0;
    if let Ok(prepared) = stages().prepare(&req, &mut counted) {
        assert_eq!(prepared.rows.len(), counted, "one row per accepted event");
        let mut out = Vec::new();
        for row in &prepared.rows {
            row.write_row_binary(&mut out);
        }
        assert!(!out.is_empty());
    }
});

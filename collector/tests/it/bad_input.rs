//! Every class of bad input gets its status and a JSON reason naming the field, is counted in
//! the metrics, and costs nothing to the good batches sent on the same connection.

use crate::{TestServer, batch_now, post};
use pathlight_collector::config::SiteConfig;
use pathlight_wire::{EventKind, RawBatch, cbor, v2};

/// A good batch with ids unique to `n`, so every one of them is stored.
fn good(n: u8) -> Vec<u8> {
    let mut b = batch_now();
    for e in &mut b.events {
        e.id.0[15] = n;
    }
    cbor::encode(&b)
}

fn with(edit: impl FnOnce(&mut RawBatch)) -> Vec<u8> {
    let mut b = batch_now();
    edit(&mut b);
    cbor::encode(&b)
}

/// Name, content type, body, expected status, reason and field.
type Case = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
    Option<&'static str>,
);

#[tokio::test]
async fn each_bad_input_is_refused_with_its_reason_and_good_batches_still_land() {
    let server = TestServer::start_with("bad_input", |c| {
        c.sites[0].origins = vec!["https://shop.example".into()];
        c.sites.push(SiteConfig {
            id: "limited".into(),
            origins: vec![],
            max_events_per_sec: 1,
            api_token: String::new(),
            api_token_sha256: String::new(),
            ingest_keys_sha256: Vec::new(),
            search: Default::default(),
            require_key: false,
            base_url: String::new(),
            goals: Vec::new(),
            metric_paths: Vec::new(),
            anomalies: Default::default(),
        });
    })
    .await;
    // HTTP/2 with prior knowledge: one connection carries every request below.
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = server.url("/v1/batch");
    let typical = cbor::encode(&batch_now());
    // The encoder writes its own version (`a5 00 01 …`): another one by hand.
    let mut version_9 = typical.clone();
    version_9[2] = 9;
    let mut bad_crc = crate::gzip(&v2::encode(&batch_now()));
    let crc_at = bad_crc.len() - 8;
    bad_crc[crc_at] ^= 1;

    let cases: Vec<Case> = vec![
        ("empty body", None, vec![], 400, "empty", None),
        // Text is a valid CBOR string (0x68: 8 bytes), but not the map a batch is.
        ("text, not a batch", None, b"hello, collector".to_vec(), 400, "wrong_type", Some("batch")),
        ("not CBOR", None, vec![0xfc, 0x00, 0x01], 400, "malformed", None),
        ("truncated", None, typical[..typical.len() / 2].to_vec(), 400, "malformed", None),
        ("wrong version", None, version_9, 400, "version", Some("version")),
        // Gzip (by its first bytes, with no header, as the tracker's beacons): a bomb that
        // would inflate to 16 MiB is refused once past the 512 KiB of a batch, and gzip with
        // a wrong CRC-32 is broken.
        ("zip bomb", None, crate::gzip(&vec![0; 16 << 20]), 413, "inflated_too_large", None),
        ("corrupt gzip", None, bad_crc, 400, "corrupt_gzip", None),
        ("oversize body", None, vec![0xa0; 600 * 1024], 413, "too_large", None),
        (
            "too many events",
            None,
            with(|b| b.events = vec![b.events[0].clone(); 501]),
            400,
            "too_many_events",
            Some("events"),
        ),
        (
            "overlong string",
            None,
            with(|b| {
                b.events.truncate(1);
                b.events[0].url = format!("https://shop.example/{}", "a".repeat(3000));
            }),
            400,
            "too_long",
            Some("events[0].url"),
        ),
        (
            "coordinate out of range",
            None,
            with(|b| {
                b.events.retain(|e| e.kind.name() == "click");
                if let EventKind::Click(c) = &mut b.events[0].kind {
                    c.x = 5_000_000;
                }
            }),
            400,
            "out_of_range",
            Some("events[0].x"),
        ),
        (
            "wrong type",
            Some("application/json"),
            br#"{"version":1,"site_id":"test","sent_at":"yesterday","batch_id":"00000000-0000-0000-0000-000000000001","events":[]}"#.to_vec(),
            400,
            "wrong_type",
            Some("sent_at"),
        ),
        (
            "invalid UTF-8 in JSON",
            Some("application/json"),
            b"{\"version\":1,\"site_id\":\"te\xffst\",\"sent_at\":1,\"batch_id\":\"00000000-0000-0000-0000-000000000001\",\"events\":[]}".to_vec(),
            400,
            "malformed",
            None,
        ),
        (
            "deeply nested JSON",
            Some("application/json"),
            [
                &br#"{"version":1,"site_id":"test","sent_at":1,"batch_id":"00000000-0000-0000-0000-000000000001","events":[{"deep":"#[..],
                &b"[".repeat(100_000),
                &b"]".repeat(100_000),
                b"}]}",
            ]
            .concat(),
            400,
            "malformed",
            None,
        ),
        // {events: [{99: [[[…]]]}]}: arrays 100 000 deep under a key the decoder skips.
        ("deeply nested CBOR", None, [vec![0xa1, 0x04, 0x81, 0xa1, 0x18, 99], vec![0x81; 100_000]].concat(), 400, "too_deep", None),
        (
            "huge number",
            Some("application/json"),
            br#"{"version":1,"site_id":"test","sent_at":1e400,"batch_id":"00000000-0000-0000-0000-000000000001","events":[]}"#.to_vec(),
            400,
            "malformed",
            None,
        ),
        (
            "timestamp far in the future",
            None,
            with(|b| {
                b.events.truncate(1);
                b.events[0].timestamp = 4_000_000_000_000;
            }),
            400,
            "out_of_range",
            Some("events[0].timestamp"),
        ),
        (
            "timestamp far in the past",
            None,
            with(|b| {
                b.events.truncate(1);
                b.events[0].timestamp = 0;
            }),
            400,
            "out_of_range",
            Some("events[0].timestamp"),
        ),
        ("unknown site", None, with(|b| b.site_id = "nope".into()), 403, "unknown_site", Some("site_id")),
        ("unsupported content type", Some("text/html"), typical.clone(), 415, "unsupported_media_type", None),
    ];
    let mut stored = 0;
    for (i, (name, ct, body, status, reason, field)) in cases.into_iter().enumerate() {
        let (got, json) = post(&client, &url, ct, body).await;
        assert_eq!(got, status, "{name}: {json}");
        assert_eq!(json["reason"], reason, "{name}: {json}");
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}: {json}"
        );
        assert_eq!(json["field"].as_str(), field, "{name}: {json}");
        let (got, json) = post(&client, &url, None, good(i as u8)).await;
        assert_eq!(got, 204, "good batch after {name}: {json}");
        stored += 5;
    }

    // An origin the site does not list.
    let resp = client
        .post(&url)
        .header("origin", "https://evil.example")
        .body(good(100))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let json = crate::json_body(resp).await;
    assert_eq!(json["reason"], "origin_not_allowed");

    // One bad event in a batch: the others are stored and the answer lists the bad one.
    let partial = with(|b| {
        b.events[2].title = Some("t".repeat(10_000));
        for e in &mut b.events {
            e.id.0[15] = 200;
        }
    });
    let (got, json) = post(&client, &url, None, partial).await;
    assert_eq!(got, 200, "{json}");
    assert_eq!(json["accepted"], 4);
    assert_eq!(json["rejected"][0]["index"], 2);
    assert_eq!(json["rejected"][0]["field"], "events[2].title");
    assert_eq!(json["rejected"][0]["reason"], "too_long");
    stored += 4;

    // An event of a kind this collector does not know (a newer tracker's) costs only itself.
    let mut newer = with(|b| {
        for e in &mut b.events {
            e.id.0[15] = 201;
        }
        b.events[3].id.0 = [0xee; 16];
    });
    let mut id = vec![0x01, 0x50];
    id.extend([0xee; 16]);
    let at = newer.windows(id.len()).position(|w| w == id).unwrap();
    assert_eq!(
        newer[at - 2],
        0x00,
        "the kind's key comes just before the id"
    );
    newer[at - 1] = 0x06;
    let (got, json) = post(&client, &url, None, newer).await;
    assert_eq!(got, 200, "{json}");
    assert_eq!(json["accepted"], 4);
    assert_eq!(json["rejected"][0]["index"], 3);
    assert_eq!(json["rejected"][0]["field"], "events[3].type");
    stored += 4;

    // A site over its rate (1/s; bursts of ten seconds' worth, never less than one full
    // batch) gets 429 with Retry-After once its burst is spent.
    let limited = |n: u8| {
        with(|b| {
            b.site_id = "limited".into();
            for e in &mut b.events {
                e.id.0[14] = 0xaa;
                e.id.0[15] = n;
            }
        })
    };
    // Fewer than 256 batches, so each has its own id byte.
    let (accepted, resp) =
        crate::post_until_refused(&client, &url, 250, |n| limited(n as u8)).await;
    assert_eq!(resp.status(), 429);
    assert!(accepted >= 2, "the burst let {accepted} batches through");
    assert!(
        resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    stored += u64::from(accepted) * 5;

    let count = server.scalar("SELECT count() FROM events FINAL").await;
    assert_eq!(count, stored);

    let metrics = server.metrics().await;
    for line in [
        r#"pathlight_events_rejected_total{reason="empty"} 1"#,
        r#"pathlight_events_rejected_total{reason="too_many_events"} 1"#,
        r#"pathlight_events_rejected_total{reason="unknown_site"} 5"#,
        r#"pathlight_events_rejected_total{reason="rate_limited"} 5"#,
        r#"pathlight_events_rejected_total{reason="inflated_too_large"} 1"#,
        r#"pathlight_events_rejected_total{reason="corrupt_gzip"} 1"#,
        r#"pathlight_http_requests_total{route="batch",status="413"} 2"#,
        r#"pathlight_events_accepted_total{kind="click"}"#,
        "pathlight_sink_latency_seconds_count",
        "pathlight_queue_depth_events 0",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    // Every batch request, refused or not, is timed once.
    let sum = |prefix: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let answered = sum(r#"pathlight_http_requests_total{route="batch","#);
    assert!(answered > 100, "{answered}");
    assert_eq!(
        sum(r#"pathlight_ingest_request_seconds_count{route="batch"}"#),
        answered
    );
    server.stop().await;
}

/// `/v1/relay` (edge workers in relay mode): off without a configured token, 401 without the
/// token, 400 with a JSON reason for bytes that are not whole rows or rows of a layout it does
/// not know — nothing stored, the collector fine — and whole rows stored, those of a worker
/// from before rows named their layout too.
#[tokio::test]
async fn relay_refuses_strangers_and_malformed_rows() {
    use pathlight_collector::query::auth::digest_hex;
    use pathlight_ingest::EventRow;
    let off = TestServer::start("relay_off").await;
    let client = reqwest::Client::new();
    let resp = client
        .post(off.url("/v1/relay"))
        .body(vec![0u8; 8])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    off.stop().await;

    let server = TestServer::start_with("relay", |c| {
        c.relay_token_sha256 = digest_hex("edge-token");
    })
    .await;
    let relay_as = |body: Vec<u8>, token: &str, layout: Option<&str>| {
        let req = client
            .post(server.url("/v1/relay"))
            .bearer_auth(token)
            .body(body);
        match layout {
            Some(code) => req.header(pathlight_ingest::LAYOUT_HEADER, code),
            None => req,
        }
        .send()
    };
    let current = pathlight_ingest::Layout::CURRENT.code().to_string();
    let relay = |body: Vec<u8>, token: &str| relay_as(body, token, Some(&current));
    let stranger = relay(vec![1, 2, 3], "guess").await.unwrap();
    assert_eq!(stranger.status(), 401);
    let salts = client
        .get(server.url("/v1/relay/salts"))
        .send()
        .await
        .unwrap();
    assert_eq!(salts.status(), 401);

    let row = EventRow {
        site_id: "test".into(),
        event_id: uuid::Uuid::from_bytes([9; 16]),
        event_type: 1,
        timestamp: 1_790_000_000,
        url: "https://shop.example/".into(),
        path: "/".into(),
        colo: "TXL".into(),
        ..EventRow::default()
    };
    let mut body = Vec::new();
    row.write_row_binary(&mut body);
    let truncated = body[..body.len() - 1].to_vec();
    let bad = relay(truncated, "edge-token").await.unwrap();
    assert_eq!(bad.status(), 400);
    let reason = crate::json_body(bad).await;
    assert_eq!(reason["reason"], "body", "{reason}");
    assert_eq!(server.scalar("SELECT count() FROM events").await, 0);

    let unknown = relay_as(body.clone(), "edge-token", Some("9"))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    assert_eq!(server.scalar("SELECT count() FROM events").await, 0);

    assert_eq!(relay(body, "edge-token").await.unwrap().status(), 204);
    assert_eq!(
        server
            .scalar("SELECT count() FROM events WHERE colo = 'TXL'")
            .await,
        1
    );
    // A worker of the version before: no header, rows without `event_title` (one byte, as
    // it is empty).
    let mut old = Vec::new();
    EventRow {
        event_id: uuid::Uuid::from_bytes([8; 16]),
        colo: "AMS".into(),
        ..row.clone()
    }
    .write_row_binary(&mut old);
    old.pop();
    assert_eq!(
        relay_as(old, "edge-token", None).await.unwrap().status(),
        204
    );
    assert_eq!(
        server
            .scalar("SELECT count() FROM events WHERE colo = 'AMS' AND event_title = ''")
            .await,
        1
    );
    let salts = client
        .get(server.url("/v1/relay/salts"))
        .bearer_auth("edge-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(pathlight_ingest::salts::parse(&salts).len(), 1, "{salts}");
    server.stop().await;
}

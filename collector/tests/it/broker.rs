//! Scale-out mode through a real nats-server with JetStream: collectors publish, loaders (in
//! this process and as `pathlight load` processes) insert, and a loader that dies between its
//! insert and its acks costs no event and duplicates none; likewise on the input stream, a
//! loader that dies between storing producers' messages and acking them.

use crate::{TestServer, clickhouse_url, server_script};
use pathlight_bench::loadgen;
use pathlight_collector::cli::generate;
use pathlight_collector::config::Config;
use pathlight_collector::pipeline::Pipeline;
use pathlight_collector::storage::broker::load::{LoadOptions, LoadReport, run};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A nats-server with JetStream of this test process, started with `scripts/nats.sh` in a
/// temporary directory; it stops (and its directory goes) when the test process exits.
pub(crate) struct NatsProcess {
    pub(crate) url: String,
    dir: PathBuf,
}

impl NatsProcess {
    pub(crate) fn start(name: &str) -> NatsProcess {
        let dir =
            std::env::temp_dir().join(format!("pathlight-it-nats-{name}-{}", std::process::id()));
        let port = crate::free_port();
        let url = server_script(
            "nats",
            &["start", dir.to_str().unwrap(), &port.to_string()],
            &[],
        );
        NatsProcess { url, dir }
    }

    fn stop(&self) {
        server_script("nats", &["stop", self.dir.to_str().unwrap()], &[]);
    }

    /// Messages in the stream: published and not yet acked by a loader.
    async fn pending(&self, stream: &str) -> u64 {
        let client = async_nats::connect(&self.url).await.unwrap();
        let mut stream = async_nats::jetstream::new(client)
            .get_stream(stream)
            .await
            .unwrap();
        stream.info().await.unwrap().state.messages
    }
}

pub(crate) fn scale_out(c: &mut Config, nats: &str, stream: &str) {
    c.broker.url = nats.into();
    c.broker.stream = stream.into();
    // Short, so the test sees redelivery within seconds.
    c.broker.ack_wait_secs = 2;
    c.broker.batch_messages = 10;
    c.broker.batch_wait_ms = 100;
    c.broker.publish_timeout_ms = 1_000;
}

/// `requests` batches of 20 loadgen events (the same ones for the same seed), all answered 204.
async fn send(server: &TestServer, requests: u64, seed: u32) {
    let report = loadgen::run(loadgen::LoadOptions {
        url: server.url("/v1/batch"),
        site: "test".into(),
        batch: 20,
        concurrency: 8,
        rate: 0,
        duration: Duration::from_secs(60),
        max_requests: requests,
        http2: false,
        http3: false,
        insecure: false,
        seed,
    })
    .await
    .unwrap();
    assert_eq!(
        report.statuses.get(&204),
        Some(&requests),
        "{:?}",
        report.statuses
    );
}

#[tokio::test]
async fn two_loaders_and_one_dying_between_insert_and_ack_store_every_event_once() {
    let nats = NatsProcess::start("scale-out");
    let stream = "IT_SCALE_OUT";
    let server = TestServer::start_with("scale_out", |c| scale_out(c, &nats.url, stream)).await;
    // Published while no loader runs: the collector acknowledges without ClickHouse.
    send(&server, 150, 11).await;
    assert_eq!(nats.pending(stream).await, 150);
    assert_eq!(server.scalar("SELECT count() FROM events").await, 0);

    // A `pathlight load` process takes 50 messages, inserts their 1 000 rows and dies before
    // acking them.
    let mut config = Config::for_tests(clickhouse_url(), "it_scale_out");
    scale_out(&mut config, &nats.url, stream);
    config.broker.batch_messages = 50;
    let status = load_process(&nats, &config, &["--exit-after-inserts", "1"]).await;
    assert_eq!(status, Some(86), "the loader exits after its insert");
    assert_eq!(server.scalar("SELECT count() FROM events").await, 1_000);
    assert_eq!(nats.pending(stream).await, 150, "nothing was acked");

    // Two loaders share the rest, and the dead one's messages once `ack_wait` has passed.
    let mut loaders = Vec::new();
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_url = format!("http://{}/metrics", metrics.local_addr().unwrap());
    let mut metrics = Some(metrics);
    for _ in 0..2 {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = config.clone();
        let opts = LoadOptions {
            metrics: metrics.take(),
            ..LoadOptions::default()
        };
        let task = tokio::spawn(async move {
            let mut config = config;
            config.broker.batch_messages = 10;
            run(&config.broker, &config.clickhouse, opts, async {
                let _ = stopped.await;
            })
            .await
            .unwrap()
        });
        loaders.push((stop, task));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while nats.pending(stream).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the loaders never emptied the stream"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The first loader's metrics count what it wrote.
    let text = reqwest::get(&metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let written: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("pathlight_sink_rows_written_total "))
        .unwrap_or_else(|| panic!("{text}"))
        .parse()
        .unwrap();
    let mut reports: Vec<LoadReport> = Vec::new();
    for (stop, task) in loaders {
        let _ = stop.send(());
        reports.push(task.await.unwrap());
    }
    assert_eq!(written, reports[0].rows, "{text}");
    let sum = |f: fn(&LoadReport) -> u64| reports.iter().map(f).sum::<u64>();
    assert!(
        reports.iter().all(|r| r.messages > 0),
        "both loaders worked: {reports:?}"
    );
    assert_eq!(sum(|r| r.messages), 150, "{reports:?}");
    assert_eq!(sum(|r| r.rows), 2_000, "{reports:?}");
    assert_eq!(
        sum(|r| r.already_stored),
        1_000,
        "the redelivered rows were found stored: {reports:?}"
    );
    assert_eq!(sum(|r| r.dead), 0);
    assert_eq!(server.scalar("SELECT count() FROM events").await, 3_000);
    assert_eq!(
        server
            .scalar("SELECT uniqExact(event_id) FROM events")
            .await,
        3_000
    );
    // The marts count each insert: one per event means no row was inserted twice.
    assert_eq!(
        server
            .scalar("SELECT toUInt64(countMerge(events)) FROM sessions")
            .await,
        server
            .scalar("SELECT count() FROM events WHERE is_bot = 0")
            .await
    );
    server.stop().await;
}

#[tokio::test]
async fn a_retried_batch_is_one_message_and_without_nats_the_answer_is_503() {
    let nats = NatsProcess::start("publish");
    let stream = "IT_PUBLISH";
    let server = TestServer::start_with("publish", |c| scale_out(c, &nats.url, stream)).await;
    // The same seed sends the same events: a retry whose answer was lost.
    send(&server, 1, 5).await;
    send(&server, 1, 5).await;
    assert_eq!(nats.pending(stream).await, 1);

    // `pathlight gen --to nats://…`: generated traffic through this process's own stages,
    // published as a collector would.
    let mut config = Config::for_tests(clickhouse_url(), "it_publish");
    scale_out(&mut config, &nats.url, stream);
    let metrics = std::sync::Arc::new(pathlight_collector::metrics::Metrics::new());
    let (pipeline, task) = Pipeline::start(&config, metrics).await.unwrap();
    let opts = generate::GenOptions {
        events: 300,
        days: 0,
        seed: 3,
        base_url: "http://127.0.0.1:8080/demo/".into(),
        end_ms: pathlight_collector::dates::now_ms(),
    };
    let report = generate::send(
        generate::Generator::new(opts),
        "test",
        &generate::SendOptions {
            to: generate::Destination::Pipeline(pipeline.clone()),
            rate: 0,
            duration: Duration::from_secs(60),
        },
    )
    .await
    .unwrap();
    assert!(
        report.events >= 300 && report.failed.is_empty(),
        "{report:?}"
    );
    assert_eq!(nats.pending(stream).await, 1 + report.batches);
    pipeline.drain();
    drop(pipeline);
    task.await.unwrap();

    // Ready while NATS takes the writes; not ready, naming it, once it is gone.
    let readyz = || async {
        let r = reqwest::get(server.url("/readyz")).await.unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_slice::<serde_json::Value>(&r.bytes().await.unwrap()).unwrap(),
        )
    };
    let (status, body) = readyz().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["writes_to"], &body["components"]["nats"]["state"]),
        (&"nats".into(), &"up".into()),
        "{body}"
    );
    nats.stop();
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        let (status, body) = readyz().await;
        if status == 503 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "still ready without NATS: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["unavailable"], serde_json::json!(["nats"]), "{body}");
    assert_eq!(body["components"]["nats"]["state"], "down", "{body}");
    let batch = crate::batch_now();
    let resp = reqwest::Client::new()
        .post(server.url("/v1/batch"))
        .body(pathlight_wire::cbor::encode(&batch))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["reason"], "broker_unavailable", "{body}");
    assert!(
        server
            .metrics()
            .await
            .contains("reason=\"broker_unavailable\"")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_stream_cap_beyond_the_servers_store_stops_the_start_and_names_the_key() {
    let nats = NatsProcess::start("cap");
    let mut config = Config::for_tests(clickhouse_url(), "it_cap");
    scale_out(&mut config, &nats.url, "IT_CAP");
    // 1 EiB: more than any test machine's disk, so more than the server's store limit.
    config.broker.max_bytes = 1 << 60;
    let Err(e) = pathlight_collector::storage::broker::Publisher::connect(&config.broker).await
    else {
        panic!("a stream larger than the server's store was created");
    };
    let e = format!("{e:#}");
    assert!(e.contains("broker.max_bytes = 1152921504606846976"), "{e}");

    // The default (0) is bounded by the server's own limit, whatever the disk.
    config.broker.max_bytes = 0;
    pathlight_collector::storage::broker::Publisher::connect(&config.broker)
        .await
        .unwrap();
}

/// Runs `pathlight load` with `config` and `args` to its end; its exit code.
async fn load_process(nats: &NatsProcess, config: &Config, args: &[&str]) -> Option<i32> {
    let file = nats.dir.join("pathlight.toml");
    std::fs::write(&file, toml::to_string(config).unwrap()).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pathlight"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("PATHLIGHT_")) {
        cmd.env_remove(key);
    }
    cmd.arg("--config")
        .arg(&file)
        .args(["load", "--owner-pid", &std::process::id().to_string()]);
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.status().unwrap().code())
        .await
        .unwrap()
}

/// Runs the input source and a loader in this process until `stop` is sent; the loader
/// starts once `loader_from` resolves.
fn source_and_loader(
    config: &Config,
    stopping: tokio::sync::watch::Receiver<bool>,
    loader_from: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<pathlight_collector::source::nats::SourceReport> {
    let config = config.clone();
    tokio::spawn(async move {
        let metrics = std::sync::Arc::new(pathlight_collector::metrics::Metrics::new());
        let (pipeline, sink) = Pipeline::start(&config, metrics).await.unwrap();
        let source = tokio::spawn(pathlight_collector::source::nats::run(
            pipeline.clone(),
            config.broker.clone(),
            stopping.clone(),
            None,
        ));
        let mut stopped = stopping.clone();
        loader_from.await;
        run(
            &config.broker,
            &config.clickhouse,
            LoadOptions::default(),
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        )
        .await
        .unwrap();
        let report = source.await.unwrap().unwrap();
        pipeline.drain();
        drop(pipeline);
        sink.await.unwrap();
        report
    })
}

#[tokio::test]
async fn producers_publish_events_to_the_input_and_bad_messages_go_to_the_dead_subject() {
    let nats = NatsProcess::start("input");
    let server =
        TestServer::start_with("broker_input", |c| scale_out(c, &nats.url, "IT_ROWS")).await;
    let mut config = Config::for_tests(clickhouse_url(), "it_broker_input");
    scale_out(&mut config, &nats.url, "IT_ROWS");
    config.broker.input_stream = "IT_INPUT".into();
    let input = &config.broker;
    let (js, _) = input.connect_input("test-producer").await.unwrap();
    let publish = |subject: String, body: Vec<u8>, content_type: Option<&str>| {
        let js = js.clone();
        let mut headers = async_nats::HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert("Content-Type", ct);
        }
        async move {
            js.publish_with_headers(subject, headers, body.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    // Good: a JSON batch, a CBOR one, and the simple array form, whose site is the subject's.
    let mut json_batch = crate::batch_now();
    json_batch.events.truncate(3);
    publish(
        input.input_of("test"),
        pathlight_wire::json::encode(&json_batch),
        None,
    )
    .await;
    let mut cbor_batch = crate::batch_now();
    cbor_batch.events.truncate(2);
    for e in &mut cbor_batch.events {
        e.id.0[15] ^= 0x55;
    }
    cbor_batch.batch_id.0[15] ^= 0x55;
    publish(
        input.input_of("test"),
        pathlight_wire::cbor::encode(&cbor_batch),
        Some("application/cbor"),
    )
    .await;
    let now = chrono_free_rfc3339(pathlight_collector::dates::now_ms());
    let simple = format!(
        r##"[{{"type":"view","session_id":"s-1","url":"/pricing","created_at":"{now}","payload":{{"viewport_w":1280}}}},
            {{"type":"click","session_id":"s-1","url":"/pricing","created_at":"{now}","payload":{{"element_id":"#buy","x":10,"y":20}}}}]"##
    );
    publish(input.input_of("test"), simple.into_bytes(), None).await;
    // Bad: not a batch; a batch of another site on this site's subject; a site nobody serves;
    // one good event beside one without a type.
    publish(input.input_of("test"), b"not json".to_vec(), None).await;
    let mut other = crate::batch_now();
    other.site_id = "other".into();
    publish(
        input.input_of("test"),
        pathlight_wire::json::encode(&other),
        None,
    )
    .await;
    let mut nobody = json_batch.clone();
    nobody.site_id = "nobody".into();
    publish(
        input.input_of("nobody"),
        pathlight_wire::json::encode(&nobody),
        None,
    )
    .await;
    let mixed = format!(
        r#"[{{"type":"view","session_id":"s-2","url":"/a","created_at":"{now}"}},{{"session_id":"s-2","url":"/b","created_at":"{now}"}}]"#
    );
    publish(input.input_of("test"), mixed.into_bytes(), None).await;

    let (stop, stopping) = tokio::sync::watch::channel(false);
    let task = source_and_loader(&config, stopping, async {});
    let deadline = Instant::now() + Duration::from_secs(60);
    // 3 + 2 + 2 + 1 events.
    while server.scalar("SELECT count() FROM events").await < 8 {
        assert!(Instant::now() < deadline, "input events not stored in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The dead letters are all that is left in the input stream, once the rest was acked.
    let deadline = Instant::now() + Duration::from_secs(30);
    while nats.pending("IT_INPUT").await != 4 {
        assert!(
            Instant::now() < deadline,
            "input messages not settled in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send_replace(true);
    let report = task.await.unwrap();
    assert_eq!(
        (report.stored, report.dead, report.retried),
        (3, 4, 0),
        "{report:?}"
    );
    assert_eq!(server.scalar("SELECT count() FROM events").await, 8);
    assert_eq!(
        server
            .scalar("SELECT uniqExact(event_id) FROM events")
            .await,
        8
    );
    // Each dead letter says why.
    let dead = js.get_stream("IT_INPUT").await.unwrap();
    let last = dead
        .get_last_raw_message_by_subject(&input.input_dead_of("nobody"))
        .await
        .unwrap();
    let refused = |m: &async_nats::jetstream::message::StreamMessage| {
        m.headers
            .get("Pathlight-Refused")
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    assert!(
        refused(&last).contains("unknown_site"),
        "{}",
        refused(&last)
    );
    let last = dead
        .get_last_raw_message_by_subject(&input.input_dead_of("test"))
        .await
        .unwrap();
    assert!(
        refused(&last).contains("\"index\":1"),
        "the mixed batch's second event: {}",
        refused(&last)
    );
    server.stop().await;
    nats.stop();
}

#[tokio::test]
async fn an_input_loader_killed_between_store_and_ack_loses_and_doubles_nothing() {
    let nats = NatsProcess::start("input-crash");
    let server =
        TestServer::start_with("input_crash", |c| scale_out(c, &nats.url, "IT_CRASH_ROWS")).await;
    let mut config = Config::for_tests(clickhouse_url(), "it_input_crash");
    scale_out(&mut config, &nats.url, "IT_CRASH_ROWS");
    config.broker.input_stream = "IT_CRASH_INPUT".into();
    let (js, _) = config.broker.connect_input("test-producer").await.unwrap();
    // 30 JSON batches of 5 events and 10 simple-array messages of 2 (their ids come from their
    // content, so a message delivered twice gives the same ids).
    let now = chrono_free_rfc3339(pathlight_collector::dates::now_ms());
    let mut bodies = Vec::new();
    for i in 0..30u8 {
        let mut batch = crate::batch_now();
        batch.events.truncate(5);
        batch.batch_id.0[0] = i;
        for e in &mut batch.events {
            e.id.0[0] = i;
        }
        bodies.push(pathlight_wire::json::encode(&batch));
    }
    for i in 0..10 {
        bodies.push(
            format!(
                r#"[{{"type":"view","session_id":"s-{i}","url":"/a","created_at":"{now}"}},
                    {{"type":"click","session_id":"s-{i}","url":"/a","created_at":"{now}","payload":{{"x":1,"y":2}}}}]"#
            )
            .into_bytes(),
        );
    }
    for body in bodies {
        js.publish(config.broker.input_of("test"), body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    const EVENTS: u64 = 30 * 5 + 10 * 2;

    // A `pathlight load` process stores 7 messages' events (their rows are in the rows' stream,
    // some maybe in ClickHouse) and dies before acking any of them.
    config.broker.batch_messages = 10;
    let status = load_process(&nats, &config, &["--exit-after-input", "7"]).await;
    assert_eq!(status, Some(86), "the loader exits before its ack");
    assert!(
        nats.pending("IT_CRASH_INPUT").await > 33,
        "the stored messages were not acked"
    );

    // The next loader gets them again once `ack_wait` has passed, with the rest. Its rows'
    // loader starts only after the input is all taken: the redelivered messages are checked
    // against ClickHouse while their first rows still wait in the rows' stream, the case where
    // storing them again would double them.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (input_done, loader_from) = tokio::sync::oneshot::channel::<()>();
    let task = source_and_loader(&config, stopping, async {
        let _ = loader_from.await;
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while nats.pending("IT_CRASH_INPUT").await > 0 {
        assert!(Instant::now() < deadline, "input not taken in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = input_done.send(());
    while server.scalar("SELECT count() FROM events").await < EVENTS {
        assert!(Instant::now() < deadline, "input not stored in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Anything still on its way would show up now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.send_replace(true);
    let report = task.await.unwrap();
    assert_eq!((report.dead, report.retried), (0, 0), "{report:?}");
    // Nothing lost, nothing stored twice: the redelivered messages' rows are either found
    // stored or published as the first time, and the rows' stream drops the copy.
    assert_eq!(server.scalar("SELECT count() FROM events").await, EVENTS);
    assert_eq!(
        server
            .scalar("SELECT uniqExact(event_id) FROM events")
            .await,
        EVENTS
    );
    assert_eq!(
        server
            .scalar("SELECT toUInt64(countMerge(events)) FROM sessions")
            .await,
        server
            .scalar("SELECT count() FROM events WHERE is_bot = 0")
            .await,
        "the marts counted each event once"
    );
    server.stop().await;
    nats.stop();
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a time in ms.
fn chrono_free_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let day = pathlight_collector::dates::civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{day}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

//! `pathlight import`: files go through the same stages; bad lines are named and skipped; a
//! re-import stores nothing twice.

use crate::{TestServer, clickhouse_url};
use pathlight_collector::cli::import::{Format, ImportReport, run};
use pathlight_collector::config::Config;
use pathlight_collector::metrics::Metrics;
use pathlight_collector::pipeline::Pipeline;
use std::sync::Arc;

#[tokio::test]
async fn ndjson_and_csv_import_with_bad_lines_named() {
    let server = TestServer::start("import").await;
    let dir = std::env::temp_dir().join(format!("pathlight-it-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ndjson = dir.join("events.ndjson");
    let long = format!("/{}", "a".repeat(3000));
    std::fs::write(
        &ndjson,
        [
            r##"{"type":"click","session_id":"u-1","user_id":1,"url":"/catalog?x=1","created_at":"2025-01-01T10:00:00Z","ip":"203.0.113.5","user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36","payload":{"element_id":"#buy","x":10,"y":20}}"##.to_owned(),
            r#"{"type":"view","session_id":"u-1","user_id":1,"url":"/catalog","created_at":"2025-01-01T09:59:00Z","ip":"203.0.113.5","user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"}"#.to_owned(),
            "{not json".to_owned(),
            r#"{"type":"view","created_at":"2025-01-01T10:00:00Z"}"#.to_owned(),
            format!(r#"{{"type":"view","url":"{long}","created_at":"2025-01-01T10:01:00Z"}}"#),
            r#"{"type":"view","session_id":"u-2","url":"/","created_at":"2025-01-02T08:00:00Z","ip":"198.51.100.7"}"#.to_owned(),
        ]
        .join("\n"),
    )
    .unwrap();
    let csv = dir.join("events.csv");
    std::fs::write(
        &csv,
        "id,type,created_at,session_id,ip,user_id,url,referrer,device_type,user_agent,payload\n\
         ,view,2025-01-03T10:00:00Z,c-1,192.0.2.1,7,/pricing,https://news.example/,desktop,,\n\
         ,click,2025-01-03T10:00:05Z,c-1,192.0.2.1,7,/pricing,,desktop,,\"{\"\"element_id\"\":\"\"#plan\"\",\"\"x\"\":5,\"\"y\"\":6}\"\n\
         ,click,2025-01-03T10:00:06Z,c-1,192.0.2.1,7,/pricing,,desktop,,{broken\n",
    )
    .unwrap();

    let config = Config::for_tests(clickhouse_url(), "it_import");
    let (pipeline, sink) = Pipeline::start(&config, Arc::new(Metrics::new()))
        .await
        .unwrap();
    let report = run(&pipeline, "test", &ndjson, Format::Ndjson, |_| {})
        .await
        .unwrap();
    assert_eq!(
        (report.lines, report.stored, report.rejected),
        (6, 3, 3),
        "{report:?}"
    );
    let lines: Vec<u64> = report.errors.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [3, 4, 5]);
    assert!(
        report.errors[0].1.contains("not JSON"),
        "{:?}",
        report.errors
    );
    assert!(report.errors[1].1.contains("url"), "{:?}", report.errors);
    // The field, without the event's index in the chunk sent: the line number names it.
    assert!(
        report.errors[2].1.starts_with("url: "),
        "{:?}",
        report.errors
    );

    let again = run(&pipeline, "test", &ndjson, Format::Ndjson, |_| {})
        .await
        .unwrap();
    assert_eq!(again.stored, 3);

    let report = run(&pipeline, "test", &csv, Format::of(&csv), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (report.lines, report.stored, report.rejected),
        (3, 2, 1),
        "{report:?}"
    );
    assert_eq!(report.errors[0].0, 4, "the CSV line of the broken payload");
    pipeline.drain();
    drop(pipeline);
    sink.await.unwrap();

    // Ids derived from content: the re-import added nothing.
    assert_eq!(server.scalar("SELECT count() FROM events FINAL").await, 5);
    assert_eq!(server.scalar("SELECT count() FROM events FINAL WHERE user_id = '7' AND event_type = 'click' AND selector = '#plan' AND x = 5").await, 1);
    assert_eq!(
        server
            .scalar("SELECT uniqExact(visitor_id) FROM events FINAL WHERE session_id = 'u-1'")
            .await,
        1
    );
    let _ = std::fs::remove_dir_all(dir);
    server.stop().await;
}

// A chunk the pipeline refuses whole is halved until it is not: 500 lines of long URLs from one
// address (over 512 KiB once encoded together) are all stored, and a chunk of only bad lines
// gives each line its own reason rather than the first line's.
#[tokio::test]
async fn oversized_and_all_bad_chunks_are_split_not_lost() {
    let server = TestServer::start("import_split").await;
    let path =
        std::env::temp_dir().join(format!("pathlight-it-split-{}.ndjson", std::process::id()));
    let page = "p".repeat(1100);
    let mut lines: Vec<String> = (0..500)
        .map(|i| {
            format!(
                r#"{{"type":"view","session_id":"long","url":"/{page}/{i}","created_at":"2025-01-01T10:00:00Z","ip":"203.0.113.5"}}"#
            )
        })
        .collect();
    let long = "a".repeat(3000);
    lines.push(format!(
        r#"{{"type":"view","url":"/{long}","created_at":"2025-01-01T10:00:00Z","ip":"192.0.2.99"}}"#
    ));
    lines.push(
        r#"{"type":"view","url":"/","created_at":"2099-01-01T00:00:00Z","ip":"192.0.2.99"}"#
            .to_owned(),
    );
    std::fs::write(&path, lines.join("\n")).unwrap();

    let report = import_alone("import_split", &path, Format::Ndjson).await;
    assert_eq!(
        (report.lines, report.stored, report.rejected),
        (502, 500, 2),
        "{report:?}"
    );
    assert_eq!(report.errors[0].0, 501);
    assert!(report.errors[0].1.contains("url"), "{:?}", report.errors);
    assert_eq!(report.errors[1].0, 502);
    assert!(report.errors[1].1.contains("future"), "{:?}", report.errors);
    assert_eq!(
        server
            .scalar("SELECT count() FROM events FINAL WHERE session_id = 'long'")
            .await,
        500
    );
    let _ = std::fs::remove_file(path);
    server.stop().await;
}

// Every refused CSV line is named by its own number, whatever the csv crate knows of it.
#[tokio::test]
async fn csv_errors_name_their_line() {
    let server = TestServer::start("import_csv_lines").await;
    let path = std::env::temp_dir().join(format!("pathlight-it-csv-{}.csv", std::process::id()));
    let mut body = b"type,created_at,url\nview,2025-01-03T10:00:00Z,/a\n".to_vec();
    body.extend_from_slice(b"view,2025-01-03T10:00:01Z,/\xff\xfe\n");
    body.extend_from_slice(b"view,2025-01-03T10:00:02Z,/c\n");
    std::fs::write(&path, body).unwrap();
    let report = import_alone("import_csv_lines", &path, Format::Csv).await;
    assert_eq!((report.stored, report.rejected), (2, 1), "{report:?}");
    assert_eq!(report.errors[0].0, 3, "{report:?}");
    let _ = std::fs::remove_file(path);
    server.stop().await;
}

// History older than the retention window would be stored and then deleted: `pathlight
// import` refuses it line by line, says why on each, and counts it; the recent lines are
// stored.
#[tokio::test]
async fn history_older_than_the_retention_window_is_refused_per_line_and_counted() {
    let name = "import_too_old";
    let server = TestServer::start(name).await;
    let dir = std::env::temp_dir().join(format!("pathlight-it-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recent = pathlight_collector::dates::now_ms() - 86_400_000;
    let history = dir.join("history.ndjson");
    std::fs::write(
        &history,
        [
            r#"{"type":"view","session_id":"h","url":"/old-1","created_at":"2025-01-01T10:00:00Z"}"#.to_owned(),
            format!(r#"{{"type":"view","session_id":"h","url":"/recent","created_at":{recent}}}"#),
            r#"{"type":"view","session_id":"h","url":"/old-2","created_at":"2025-01-02T10:00:00Z"}"#.to_owned(),
        ]
        .join("\n"),
    )
    .unwrap();
    let mut config = Config::for_tests(clickhouse_url(), &format!("it_{name}"));
    config.clickhouse.retention_days = 30;
    let file = dir.join("pathlight.toml");
    std::fs::write(&file, toml::to_string(&config).unwrap()).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pathlight"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("PATHLIGHT_")) {
        cmd.env_remove(key);
    }
    cmd.arg("--config")
        .arg(&file)
        .args(["import", "--site", "test"])
        .arg(&history);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [1, 3] {
        let said = format!("history.ndjson:{line}: timestamp: ");
        let at = stderr
            .find(&said)
            .unwrap_or_else(|| panic!("{said} in {stderr}"));
        assert!(
            stderr[at..]
                .lines()
                .next()
                .unwrap()
                .contains("older than retention_days (30)"),
            "{stderr}"
        );
    }
    assert!(!stderr.contains("history.ndjson:2:"), "{stderr}");
    assert!(
        stdout.contains("3 lines, 1 events stored, 2 lines refused (2 too_old)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("2 lines are older than retention_days (30)"),
        "{stderr}"
    );
    let paths: Vec<String> = server
        .rows("SELECT path FROM events FINAL WHERE session_id = 'h'")
        .await;
    assert_eq!(paths, ["/recent"]);
    let _ = std::fs::remove_dir_all(dir);
    server.stop().await;
}

/// Imports `path` for the site `test` into `it_<db>` through a pipeline of its own, and waits
/// until what it stored is in ClickHouse.
async fn import_alone(db: &str, path: &std::path::Path, format: Format) -> ImportReport {
    let config = Config::for_tests(clickhouse_url(), &format!("it_{db}"));
    let (pipeline, sink) = Pipeline::start(&config, Arc::new(Metrics::new()))
        .await
        .unwrap();
    let report = run(&pipeline, "test", path, format, |_| {}).await.unwrap();
    pipeline.drain();
    drop(pipeline);
    sink.await.unwrap();
    report
}

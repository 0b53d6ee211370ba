//! Integration tests: the real collector on 127.0.0.1:0 against a real ClickHouse.
//!
//! ClickHouse is started once per test run by `scripts/clickhouse.sh` (installed if missing)
//! in a temporary directory, and stops by itself when this process exits. Each test works in
//! its own database, named after the test.

mod accounts;
mod anomalies;
mod api;
mod bad_input;
mod broker;
mod cache;
mod cluster;
mod durability;
mod endpoints;
mod generate;
mod hardening;
mod http;
mod http3;
mod identify;
mod import;
mod ingest;
mod loadgen;
mod marts;
mod ops;
mod outage;
mod privacy;
mod retention;
mod roles;
mod security;
mod sites;
mod upgrade;
mod websocket;

use pathlight_collector::config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use tokio::sync::oneshot;

/// URL of the run's shared ClickHouse, starting it on first use.
pub fn clickhouse_url() -> &'static str {
    static SHARED: OnceLock<ClickHouseProcess> = OnceLock::new();
    &SHARED
        .get_or_init(|| ClickHouseProcess::start("shared"))
        .url
}

/// A ClickHouse server of this test process, started with `scripts/clickhouse.sh` in a
/// temporary directory; it stops (and its directory goes) when the test process exits.
pub struct ClickHouseProcess {
    pub url: String,
    dir: PathBuf,
    port: u16,
    /// `scripts/clickhouse.sh` settings (`PL_CLICKHOUSE_*`).
    env: Vec<(String, String)>,
}

impl ClickHouseProcess {
    /// Starts a server named `name` on a free port.
    pub fn start(name: &str) -> ClickHouseProcess {
        Self::start_with(name, Vec::new())
    }

    /// Like [`ClickHouseProcess::start`], with settings for `scripts/clickhouse.sh`.
    pub fn start_with(name: &str, env: Vec<(String, String)>) -> ClickHouseProcess {
        let dir = std::env::temp_dir().join(format!(
            "pathlight-it-clickhouse-{name}-{}",
            std::process::id()
        ));
        let port = free_port();
        let mut ch = ClickHouseProcess {
            url: String::new(),
            dir,
            port,
            env,
        };
        ch.url = ch.script("start");
        ch
    }

    /// Kills the server, as a crash would (its data stays).
    pub fn kill(&self) {
        self.script("kill");
    }

    /// Starts it again on the same port and data.
    pub fn restart(&self) {
        self.script("start");
    }

    fn script(&self, cmd: &str) -> String {
        let args = [cmd, self.dir.to_str().unwrap(), &self.port.to_string()];
        server_script("clickhouse", &args, &self.env)
    }
}

/// A port free on 127.0.0.1 now, for a server started by a script.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `scripts/<name>.sh` with `args` and `env`, owned by this test process (the server
/// stops, and its directory goes, once the process exits); its standard output, trimmed.
pub fn server_script(name: &str, args: &[&str], env: &[(String, String)]) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let prefix = format!("PL_{}", name.to_uppercase());
    let out = std::process::Command::new(root.join(format!("scripts/{name}.sh")))
        .args(args)
        .env(format!("{prefix}_OWNER"), std::process::id().to_string())
        .env(format!("{prefix}_CLEANUP"), "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running scripts/{name}.sh: {e}"));
    assert!(out.status.success(), "scripts/{name}.sh {args:?} failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A collector serving one test, with its own database. Stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub db: clickhouse::Client,
    /// The server's `[clickhouse]`.
    pub clickhouse: pathlight_collector::storage::clickhouse::ClickHouseConfig,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Starts a collector with [`Config::for_tests`] for database `it_<name>`.
    pub async fn start(name: &str) -> TestServer {
        Self::start_with(name, |_| {}).await
    }

    /// Like [`TestServer::start`], after `adjust` has changed the config.
    pub async fn start_with(name: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_at(clickhouse_url(), name, adjust).await
    }

    /// Like [`TestServer::start_with`], against the ClickHouse at `url`.
    pub async fn start_at(url: &str, name: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let admin = drop_database(url, &format!("it_{name}")).await;
        Self::launch(url, name, admin, adjust).await
    }

    /// Like [`TestServer::start_at`], on the database a previous server of `name` left.
    pub async fn resume_at(url: &str, name: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let admin = clickhouse::Client::default()
            .with_url(url)
            .with_validation(false);
        Self::launch(url, name, admin, adjust).await
    }

    async fn launch(
        url: &str,
        name: &str,
        admin: clickhouse::Client,
        adjust: impl FnOnce(&mut Config),
    ) -> TestServer {
        let database = format!("it_{name}");
        let mut config = Config::for_tests(url, &database);
        adjust(&mut config);
        config.validate().unwrap();
        let clickhouse = config.clickhouse.clone();
        let tls = config.tls.enabled();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(pathlight_collector::serve(config, listener, async {
            let _ = stopped.await;
        }));
        // Over TLS the test probes with its own client.
        if !tls && !wait_healthy(&format!("http://{addr}"), 200).await {
            match task.await {
                Ok(Err(e)) => panic!("the collector did not start: {e:#}"),
                other => panic!("the collector did not become healthy: {other:?}"),
            }
        }
        TestServer {
            addr,
            db: admin.with_database(&database),
            clickhouse,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Rows of `sql` against the test's database.
    pub async fn rows<T: clickhouse::RowOwned + clickhouse::RowRead>(&self, sql: &str) -> Vec<T> {
        self.db
            .query(sql)
            .fetch_all::<T>()
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The single number `sql` answers.
    pub async fn scalar(&self, sql: &str) -> u64 {
        self.db
            .query(sql)
            .fetch_one::<u64>()
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The JSON answer to `GET /api/v1/{q}` with the test site's token; panics unless 200.
    pub async fn api(&self, q: &str) -> serde_json::Value {
        let resp = reqwest::Client::new()
            .get(self.url(&format!("/api/v1/{q}")))
            .bearer_auth("test-token")
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(status, 200, "{q}: {body}");
        body
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Stops the server and waits for its last flush.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A client of the ClickHouse at `url` (no database selected), after dropping `database`
/// left by an earlier run.
pub async fn drop_database(url: &str, database: &str) -> clickhouse::Client {
    let admin = clickhouse::Client::default()
        .with_url(url)
        .with_validation(false);
    admin
        .query(&format!("DROP DATABASE IF EXISTS {database}"))
        .execute()
        .await
        .unwrap();
    admin
}

/// Posts bodies made by `body(n)` for n = 0, 1, … until an answer is not 204; returns how
/// many were accepted and that answer. Panics past `max` accepted.
pub async fn post_until_refused(
    client: &reqwest::Client,
    url: &str,
    max: u32,
    mut body: impl FnMut(u32) -> Vec<u8>,
) -> (u32, reqwest::Response) {
    let mut accepted = 0;
    loop {
        let resp = client.post(url).body(body(accepted)).send().await.unwrap();
        if resp.status() != 204 {
            return (accepted, resp);
        }
        accepted += 1;
        assert!(
            accepted < max,
            "still accepted after {max} batches: the limit never applied"
        );
    }
}

/// Posts `body` with `content_type` (none: like `sendBeacon` with bytes).
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut req = client.post(url).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), json_body(resp).await)
}

/// The body of an answer as JSON (`null` when empty); panics on anything else.
pub async fn json_body(resp: reqwest::Response) -> serde_json::Value {
    let bytes = resp.bytes().await.unwrap();
    if bytes.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("non-JSON body: {}", String::from_utf8_lossy(&bytes)))
}

/// The refused events of a `200` answer to a batch: index, reason and field of each.
pub fn refused(ack: &serde_json::Value) -> Vec<(u64, &str, &str)> {
    ack["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["reason"].as_str().unwrap(),
                r["field"].as_str().unwrap(),
            )
        })
        .collect()
}

/// Polls `base`/healthz until it answers (migrations run before the first accept), at most
/// `tries` times 25 ms; whether it did.
pub async fn wait_healthy(base: &str, tries: usize) -> bool {
    let client = reqwest::Client::new();
    for _ in 0..tries {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    false
}

/// `data` as one gzip member, as a tracker's `CompressionStream("gzip")` sends it (CRC-32 by
/// crc32fast, not the collector's own).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
    out.extend(crc32fast::hash(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// The example batch, re-dated to now and addressed to site `test`.
pub fn batch_now() -> pathlight_wire::RawBatch {
    let mut b = pathlight_wire::sample::typical_batch();
    let now = pathlight_collector::dates::now_ms();
    let shift = now - b.sent_at;
    b.sent_at = now;
    b.site_id = "test".into();
    for e in &mut b.events {
        e.timestamp += shift;
    }
    b
}

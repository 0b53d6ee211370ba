//! ClickHouse over its HTTP interface with the Workers `fetch`: statements as the `query`
//! parameter, rows as a RowBinary body compressed with zlib (`Content-Encoding: deflate`, which
//! every ClickHouse version since 1.1 decompresses; RowBinary events shrink about 8×, and the
//! bytes leaving Cloudflare are what the operator pays for), credentials in
//! `X-ClickHouse-User`/`-Key` headers. Failures are classified by the same rules as the
//! collector's (`pathlight_ingest::retry`).

use crate::settings::ClickHouse;
use pathlight_ingest::retry::{Decision, decide_response};
use std::cell::Cell;
use worker::{Fetch, Headers, Method, Request, RequestInit, Url};

/// A failed ClickHouse request.
#[derive(Debug)]
pub struct Failure {
    /// Whether the same request may succeed later.
    pub decision: Decision,
    /// What happened, for logs and error answers.
    pub message: String,
}

impl Failure {
    fn transient(message: String) -> Failure {
        Failure {
            decision: Decision::Retry,
            message,
        }
    }
}

/// Runs `sql` (with `body` as its input data, if any) and returns the answer's text.
pub async fn run(
    ch: &ClickHouse,
    sql: &str,
    body: Option<Vec<u8>>,
    settings: &[(&str, &str)],
) -> Result<String, Failure> {
    let mut url = Url::parse(&ch.url).map_err(|e| Failure {
        decision: Decision::Fail,
        message: format!("CLICKHOUSE_URL: {e}"),
    })?;
    url.query_pairs_mut()
        .append_pair("database", &ch.database)
        .append_pair("query", sql)
        .extend_pairs(settings.iter().copied());
    let headers = Headers::new();
    let set = |k: &str, v: &str| {
        headers
            .set(k, v)
            .map_err(|e| Failure::transient(e.to_string()))
    };
    set("X-ClickHouse-User", &ch.user)?;
    if !ch.password.is_empty() {
        set("X-ClickHouse-Key", &ch.password)?;
    }
    let mut init = RequestInit::new();
    if let Some(body) = body {
        // Level 1: nearly all of the gain for a fraction of the CPU time.
        let packed = miniz_oxide::deflate::compress_to_vec_zlib(&body, 1);
        set("Content-Encoding", "deflate")?;
        init.with_body(Some(js_sys::Uint8Array::from(packed.as_slice()).into()));
    }
    init.with_method(Method::Post).with_headers(headers);
    let request = Request::new_with_init(url.as_str(), &init)
        .map_err(|e| Failure::transient(e.to_string()))?;
    let mut resp = Fetch::Request(request)
        .send()
        .await
        .map_err(|e| Failure::transient(format!("ClickHouse unreachable: {e}")))?;
    let text = resp.text().await.unwrap_or_default();
    match resp.status_code() {
        200 => Ok(text),
        status => Err(Failure {
            decision: decide_response(&text),
            message: format!("ClickHouse answered {status}: {}", text.trim()),
        }),
    }
}

thread_local! {
    /// The server's version, asked once per isolate: it decides the settings of every insert.
    static VERSION: Cell<Option<(u32, u32)>> = const { Cell::new(None) };
}

/// The server's version, e.g. `(18, 16)`.
pub async fn version(ch: &ClickHouse) -> Result<(u32, u32), Failure> {
    if let Some(v) = VERSION.get() {
        return Ok(v);
    }
    let text = run(ch, "SELECT version()", None, &[]).await?;
    let mut parts = text
        .trim()
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let v = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    VERSION.set(Some(v));
    Ok(v)
}

/// Inserts RowBinary `rows` into `events`, with `settings` and those every insert carries on
/// this server ([`pathlight_ingest::insert_settings`]).
pub async fn insert(
    ch: &ClickHouse,
    rows: Vec<u8>,
    settings: &[(&str, &str)],
) -> Result<(), Failure> {
    let all = [
        settings,
        pathlight_ingest::insert_settings(version(ch).await?),
    ]
    .concat();
    run(ch, &pathlight_ingest::insert_sql(), Some(rows), &all)
        .await
        .map(drop)
}

/// Inserts RowBinary users' rows (`pathlight_ingest::write_user_rows`) into `users`: few and
/// small, so synchronously on every server version.
pub async fn insert_users(ch: &ClickHouse, rows: Vec<u8>) -> Result<(), Failure> {
    run(ch, pathlight_ingest::USERS_INSERT, Some(rows), &[])
        .await
        .map(drop)
}

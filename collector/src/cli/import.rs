//! `pathlight import FILE`: history from files, through the same stages as live traffic
//! (decode → validate → enrich → batch → sink). Streamed: a window of at most 2000 events is
//! read, grouped by client address (the visitor hash needs it per request), sent as concurrent
//! chunks the sink gathers into few inserts, and acknowledged before the next window is read,
//! so memory stays constant whatever the file size. Each bad line is reported by number and skipped; the good lines around it are stored.
//! Lines older than the retention window (`[clickhouse] retention_days`) are refused as
//! `too_old` like any bad line, and counted apart: retention would delete them once stored.
//!
//! Formats: NDJSON with one event per line in the simple JSON form (`type`, `created_at`,
//! `url`, `session_id`, `user_id`, `user_agent`, `payload`, optional `id`, `referrer`, `title`,
//! `ip` and `country`), or CSV with a header row of the same columns (`payload` a JSON object,
//! `device_type` ignored: it is derived from the User-Agent). Events without `id` get one
//! derived from their content, so importing a file twice stores it once.
//!
//! `pathlight import --users FILE`: the site's users and their traits (as `identify` stores
//! them), from CSV with a header row: `user_id`, then one column per trait (its name the
//! trait's, its cells text; an empty cell is no trait). Each row is checked as an identify is;
//! a later row of the same user replaces an earlier one, as a later identify does.

use crate::dates::now_ms;
use crate::pipeline::{IngestRequest, Pipeline};
use crate::storage::clickhouse::users::UserRow;
use anyhow::Context;
use pathlight_wire::{FORMAT_VERSION, Id, RawBatch, RawEvent, WireError, cbor, json};
use std::io::BufRead;
use std::net::IpAddr;
use std::path::Path;

/// Events per chunk sent through the pipeline (the batch limit, unless `limits.max_events` is
/// lower; a chunk over `limits.max_batch_bytes` is halved until it fits).
const CHUNK: usize = 500;
/// Events read before a window is sent.
const WINDOW: usize = 2000;

/// The file formats read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON event per line.
    Ndjson,
    /// Header row, then one event per row.
    Csv,
}

impl Format {
    /// From the file name: `.csv` is CSV, anything else NDJSON.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::Ndjson,
        }
    }
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Data lines read (CSV: without the header).
    pub lines: u64,
    /// Events stored.
    pub stored: u64,
    /// Bad lines: (line number, reason); the first 100 are kept, all are counted.
    pub errors: Vec<(u64, String)>,
    /// Bad lines in all.
    pub rejected: u64,
    /// Bad lines by their stable reason (`too_old`, `missing_field`, ...; `malformed` for a
    /// line that is not an event at all).
    pub by_reason: std::collections::BTreeMap<&'static str, u64>,
}

impl ImportReport {
    /// Counts line `line` as refused for `reason` (a stable label), saying why in `message`.
    /// The pipeline names an event's fields by its index in the chunk sent (`events[3].url`),
    /// which means nothing in the file: the line number stands for it.
    fn reject(&mut self, line: u64, reason: &'static str, message: &str) {
        self.rejected += 1;
        *self.by_reason.entry(reason).or_default() += 1;
        if self.errors.len() < 100 {
            let message = match message.strip_prefix("events[") {
                Some(rest) => rest.split_once("].").map_or(message, |(_, field)| field),
                None => message,
            };
            self.errors.push((line, message.to_owned()));
        }
    }
}

/// Who sent an event, as far as the file says: the `ip` and `country` columns (the country
/// stands in for the trusted header a CDN would have set).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Client {
    ip: Option<IpAddr>,
    country: Option<String>,
}

/// A line of the file: its number, and the event's JSON with its client or why the line is
/// unreadable.
type Line = (u64, Result<(String, Client), String>);

/// A refused line: its number, the stable reason, and the message.
type Refused = (u64, &'static str, String);

/// Events of one client, with their line numbers.
#[derive(Default)]
struct Chunk {
    client: Client,
    events: Vec<RawEvent>,
    lines: Vec<u64>,
}

/// Imports `path` for `site` through `pipeline`; `progress` is called after every chunk.
pub async fn run(
    pipeline: &Pipeline,
    site: &str,
    path: &Path,
    format: Format,
    mut progress: impl FnMut(&ImportReport),
) -> anyhow::Result<ImportReport> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = std::io::BufReader::new(file);
    let limits = pipeline.limits().clone();
    let mut report = ImportReport::default();
    let mut window: Vec<(Client, RawEvent, u64)> = Vec::with_capacity(WINDOW);
    let mut lines: Box<dyn Iterator<Item = Line>> = match format {
        Format::Ndjson => Box::new(reader.lines().enumerate().map(|(i, l)| {
            let line = i as u64 + 1;
            (
                line,
                l.map_err(|e| e.to_string())
                    .and_then(|text| ndjson_event(&text)),
            )
        })),
        Format::Csv => Box::new(csv_events(reader)?),
    };
    for (line, parsed) in &mut lines {
        report.lines += 1;
        let decoded = parsed
            .map_err(|e| ("malformed", e))
            .and_then(|(event_json, client)| {
                let array = format!("[{event_json}]");
                json::decode(array.as_bytes(), Some(site), &limits)
                    .map(|b| (b.events.into_iter().next(), client))
                    .map_err(|e| (e.reason(), e.to_string()))
            });
        match decoded {
            Ok((Some(event), client)) => {
                window.push((client, event, line));
                if window.len() >= WINDOW {
                    send_window(pipeline, site, &mut window, &mut report).await?;
                    progress(&report);
                }
            }
            Ok((None, _)) => report.reject(line, "empty", "no event"),
            Err((reason, message)) => report.reject(line, reason, &message),
        }
    }
    send_window(pipeline, site, &mut window, &mut report).await?;
    progress(&report);
    report.errors.sort_by_key(|(line, _)| *line);
    Ok(report)
}

/// Sends a window as chunks of one address each, all at once; waits for every answer.
async fn send_window(
    pipeline: &Pipeline,
    site: &str,
    window: &mut Vec<(Client, RawEvent, u64)>,
    report: &mut ImportReport,
) -> anyhow::Result<()> {
    let per_chunk = CHUNK.min(pipeline.limits().max_events).max(1);
    let mut by_client: std::collections::BTreeMap<Client, Vec<Chunk>> = Default::default();
    for (client, event, line) in window.drain(..) {
        let chunks = by_client.entry(client.clone()).or_default();
        if chunks.last().is_none_or(|c| c.events.len() >= per_chunk) {
            chunks.push(Chunk {
                client,
                ..Chunk::default()
            });
        }
        let chunk = chunks.last_mut().expect("pushed above");
        chunk.events.push(event);
        chunk.lines.push(line);
    }
    let answers = futures_util::future::join_all(
        by_client
            .into_values()
            .flatten()
            .map(|c| send(pipeline, site, c)),
    )
    .await;
    for answer in answers {
        let (stored, refused) = answer?;
        report.stored += stored;
        for (line, reason, message) in refused {
            report.reject(line, reason, &message);
        }
    }
    Ok(())
}

/// A line of NDJSON: the event's JSON and its client.
fn ndjson_event(text: &str) -> Result<(String, Client), String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let field = |name| value.get(name).and_then(|v| v.as_str());
    let client = Client {
        ip: field("ip").and_then(|s| s.parse().ok()),
        country: field("country").map(str::to_owned),
    };
    Ok((text.to_owned(), client))
}

/// CSV rows as the JSON of simple-form events.
fn csv_events(reader: impl std::io::Read + 'static) -> anyhow::Result<impl Iterator<Item = Line>> {
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers = csv.headers().context("reading the CSV header row")?.clone();
    // The line of the record before, for an error the csv crate reports without a position
    // (it gives one for the errors seen so far; the type allows none): the bad record is at
    // least on the next line, never "line 0".
    let mut last = 1;
    Ok(csv.into_records().map(move |record| {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                last = e.position().map_or(last + 1, |p| p.line());
                return (last, Err(format!("bad CSV: {e}")));
            }
        };
        let line = record.position().map_or(last + 1, |p| p.line());
        last = line;
        let mut obj = serde_json::Map::new();
        let mut client = Client::default();
        for (name, value) in headers.iter().zip(record.iter()) {
            match name {
                "ip" => client.ip = value.parse().ok(),
                "country" if !value.is_empty() => client.country = Some(value.to_owned()),
                "device_type" => {}
                "payload" if !value.is_empty() => {
                    match serde_json::from_str::<serde_json::Value>(value) {
                        Ok(v) => {
                            obj.insert(name.into(), v);
                        }
                        Err(e) => return (line, Err(format!("payload: not JSON: {e}"))),
                    }
                }
                _ if value.is_empty() => {}
                _ => {
                    obj.insert(name.into(), serde_json::Value::String(value.into()));
                }
            }
        }
        (
            line,
            Ok((serde_json::Value::Object(obj).to_string(), client)),
        )
    }))
}

/// Stores the chunk: the events stored, and the lines refused with their reasons. A chunk the
/// pipeline refuses whole as bad input (over the size limit once encoded, say 500 lines of long
/// URLs, or every event bad, answered with the first one's reason) is sent again as two halves,
/// down to single events, so good lines are stored and each bad line gets its own reason.
async fn send(
    pipeline: &Pipeline,
    site: &str,
    mut chunk: Chunk,
) -> anyhow::Result<(u64, Vec<Refused>)> {
    let halves = |mut chunk: Chunk| {
        let mid = chunk.events.len() / 2;
        let second = Chunk {
            client: chunk.client.clone(),
            events: chunk.events.split_off(mid),
            lines: chunk.lines.split_off(mid),
        };
        [chunk, second]
    };
    let batch = RawBatch {
        version: FORMAT_VERSION,
        site_id: site.to_owned(),
        // Unknown: imported events keep their own times.
        sent_at: 0,
        batch_id: Id::default(),
        events: std::mem::take(&mut chunk.events),
    };
    let body = cbor::encode(&batch);
    chunk.events = batch.events;
    let splittable = chunk.events.len() > 1;
    if splittable && body.len() > pipeline.limits().max_batch_bytes {
        return send_halves(pipeline, site, halves(chunk)).await;
    }
    let n = chunk.events.len() as u64;
    let request = IngestRequest {
        body: &body,
        content_type: Some("application/cbor"),
        site: Some(site),
        ip: chunk.client.ip,
        country: chunk.client.country.as_deref(),
        received_at: now_ms(),
        ..IngestRequest::default()
    };
    let t = std::time::Instant::now();
    let answer = pipeline.ingest(request).await;
    tracing::debug!(
        events = n,
        ms = t.elapsed().as_millis() as u64,
        "chunk stored"
    );
    match answer {
        Ok(ack) => {
            let lines = &chunk.lines;
            let refused = ack
                .rejected
                .into_iter()
                .map(|r| (lines.get(r.index).copied().unwrap_or(0), r.reason, r.error));
            Ok((n - refused.len() as u64, refused.collect()))
        }
        Err(e) if splittable && halving_helps(&e) => {
            send_halves(pipeline, site, halves(chunk)).await
        }
        Err(e) if e.status().is_client_error() => Ok((
            0,
            chunk
                .lines
                .iter()
                .map(|l| (*l, e.reason(), e.to_string()))
                .collect(),
        )),
        Err(e) => Err(e).context(
            "storing a chunk; the import stopped (rerun it: stored events are not duplicated)",
        ),
    }
}

/// Whether sending a refused chunk as halves can store some of it: too large as a whole, or
/// refused for an event's fault (every event bad, the first one's reason given). Not for the
/// chunk's own faults (its site id, say), which every half would share.
fn halving_helps(e: &pathlight_ingest::IngestError) -> bool {
    match e {
        pathlight_ingest::IngestError::Wire(WireError::TooLarge { .. }) => true,
        pathlight_ingest::IngestError::Wire(w) => {
            w.field().is_some_and(|f| f.starts_with("events["))
        }
        _ => false,
    }
}

/// [`send`] of each half, one after the other; their results summed.
async fn send_halves(
    pipeline: &Pipeline,
    site: &str,
    halves: [Chunk; 2],
) -> anyhow::Result<(u64, Vec<Refused>)> {
    let (mut stored, mut refused) = (0, Vec::new());
    for half in halves {
        let (s, r) = Box::pin(send(pipeline, site, half)).await?;
        stored += s;
        refused.extend(r);
    }
    Ok((stored, refused))
}

/// Users per insert into `users`.
const USERS_CHUNK: usize = 1000;

/// Imports the users of `site` from the CSV at `path` (header `user_id,TRAIT,…`) through
/// `pipeline`; `progress` is called after every insert. Stored counts users' rows.
pub async fn users(
    pipeline: &Pipeline,
    site: &str,
    path: &Path,
    mut progress: impl FnMut(&ImportReport),
) -> anyhow::Result<ImportReport> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(file);
    let headers = csv.headers().context("reading the CSV header row")?.clone();
    anyhow::ensure!(
        headers.iter().any(|h| h == "user_id"),
        "{}: the header row has no user_id column",
        path.display()
    );
    let limits = pipeline.limits().clone();
    let mut report = ImportReport::default();
    // By user, so that a later row of a user replaces an earlier one of the same insert.
    let mut chunk: std::collections::HashMap<String, UserRow> = Default::default();
    let mut last = 1;
    for record in csv.records() {
        report.lines += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                last = e.position().map_or(last + 1, |p| p.line());
                report.reject(last, "malformed", &format!("bad CSV: {e}"));
                continue;
            }
        };
        let line = record.position().map_or(last + 1, |p| p.line());
        last = line;
        let mut traits = serde_json::Map::new();
        let mut user = serde_json::Value::Null;
        for (name, value) in headers.iter().zip(record.iter()) {
            match name {
                "user_id" => user = value.into(),
                _ if value.is_empty() => {}
                _ => {
                    traits.insert(name.into(), value.into());
                }
            }
        }
        let body = serde_json::json!({ "site": site, "user_id": user, "traits": traits });
        match pathlight_ingest::identify::decode(body.to_string().as_bytes(), None, &limits) {
            Ok(id) => {
                chunk.insert(
                    id.user_id.clone(),
                    UserRow {
                        traits: id.traits_json(),
                        site_id: id.site,
                        user_id: id.user_id,
                        updated_ms: 0,
                    },
                );
            }
            Err(e) => report.reject(line, e.reason(), &e.to_string()),
        }
        if chunk.len() >= USERS_CHUNK {
            store_users(pipeline, &mut chunk, &mut report).await?;
            progress(&report);
        }
    }
    store_users(pipeline, &mut chunk, &mut report).await?;
    progress(&report);
    report.errors.sort_by_key(|(line, _)| *line);
    Ok(report)
}

/// Inserts a chunk of users, versioned after every earlier chunk (a later row wins, even
/// within the same millisecond).
async fn store_users(
    pipeline: &Pipeline,
    chunk: &mut std::collections::HashMap<String, UserRow>,
    report: &mut ImportReport,
) -> anyhow::Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    let version = pipeline.users_version(now_ms());
    let rows: Vec<UserRow> = chunk
        .drain()
        .map(|(_, r)| UserRow {
            updated_ms: version,
            ..r
        })
        .collect();
    pipeline.store_users(&rows).await.context(
        "storing users; the import stopped (rerun it: a user's row is replaced, not doubled)",
    )?;
    report.stored += rows.len() as u64;
    Ok(())
}

/// `import`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The file; `.csv` is read as CSV with a header row, anything else as NDJSON.
    #[arg(required_unless_present = "users")]
    file: Option<std::path::PathBuf>,
    /// Import users and their traits instead: CSV with a header row, `user_id` then one
    /// column per trait.
    #[arg(long, value_name = "CSV", conflicts_with_all = ["file", "format"])]
    users: Option<std::path::PathBuf>,
    /// Site the events belong to (must be in `[[sites]]`).
    #[arg(long)]
    site: String,
    /// Override the format the file name implies.
    #[arg(long, value_parser = ["csv", "ndjson"])]
    format: Option<String>,
}

/// `pathlight import`: the file through a pipeline of this process, straight to ClickHouse,
/// with progress every 10,000 lines and each refused line named.
pub async fn command(mut config: crate::config::Config, args: Args) -> anyhow::Result<()> {
    let Args {
        file,
        users: users_file,
        site,
        format,
    } = args;
    anyhow::ensure!(
        config.sites.iter().any(|s| s.id == site),
        "site {site:?} is not in [[sites]]"
    );
    let (file, what) = match (file, users_file) {
        (_, Some(users)) => (users, "users"),
        (Some(file), None) => (file, "events"),
        (None, None) => anyhow::bail!("name a file of events, or --users FILE"),
    };
    let format = match format.as_deref() {
        Some("csv") => Format::Csv,
        Some(_) => Format::Ndjson,
        None => Format::of(&file),
    };
    // An operator's import is history, not traffic to police: no rate limits, and no ingest
    // key (whoever runs this holds the config and the database already).
    config.ip_events_per_sec = 0;
    // Straight to ClickHouse: no client waits for a durability promise (a rerun adds
    // what is missing), and the spool's directory may be a running collector's.
    config.spool.dir = None;
    for s in &mut config.sites {
        s.max_events_per_sec = 0;
        s.require_key = false;
    }
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let (pipeline, sink) = Pipeline::start(&config, metrics).await?;
    // No live traffic to gather: write each chunk at once, not at the flush interval.
    pipeline.drain();
    let started = std::time::Instant::now();
    let mut last = 0;
    let progress = |r: &ImportReport| {
        if r.lines >= last + 10_000 {
            last = r.lines;
            eprintln!(
                "{} lines, {} {what} stored, {} refused",
                r.lines, r.stored, r.rejected
            );
        }
    };
    let report = if what == "users" {
        users(&pipeline, &site, &file, progress).await
    } else {
        run(&pipeline, &site, &file, format, progress).await
    };
    drop(pipeline);
    sink.await?;
    let report = report?;
    for (line, reason) in &report.errors {
        eprintln!("{}:{line}: {reason}", file.display());
    }
    if report.rejected > report.errors.len() as u64 {
        eprintln!("(the first {} refused lines)", report.errors.len());
    }
    let reasons: Vec<String> = report
        .by_reason
        .iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    println!(
        "{}: {} lines, {} {what} stored, {} lines refused{}, {:.1} s",
        file.display(),
        report.lines,
        report.stored,
        report.rejected,
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        },
        started.elapsed().as_secs_f64()
    );
    if let Some(n) = report.by_reason.get("too_old") {
        eprintln!(
            "{n} lines are older than retention_days ({}), and retention would delete them: to \
             import them, raise [clickhouse] retention_days (0 keeps events for ever)",
            config.clickhouse.retention_days
        );
    }
    if report.stored == 0 && report.lines > 0 {
        anyhow::bail!("nothing imported");
    }
    Ok(())
}

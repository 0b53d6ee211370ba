//! Writing generated traffic to files: NDJSON and CSV in the simple array form (what
//! `pathlight import` reads), or CBOR batches as the tracker sends them.

use super::Visit;
use pathlight_wire::{cbor, json};
use std::io::Write;

/// The output file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// The simple array form, one event per line, with `ip` and `country`.
    Ndjson,
    /// The same columns as `pathlight import` reads, `payload` as JSON.
    Csv,
    /// Each page view as a CBOR batch (the tracker's request body), one after the other (an
    /// RFC 8742 CBOR sequence). Batches carry no address: for replaying, not importing.
    Cbor,
}

impl FileFormat {
    /// From the file name's extension.
    pub fn of(path: &std::path::Path) -> anyhow::Result<FileFormat> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("ndjson" | "jsonl" | "json") => Ok(FileFormat::Ndjson),
            Some("csv") => Ok(FileFormat::Csv),
            Some("cbor") => Ok(FileFormat::Cbor),
            _ => anyhow::bail!(
                "{}: the extension says the format: .ndjson, .csv or .cbor",
                path.display()
            ),
        }
    }
}

/// Writes every visit of `visits` to `out` as `format`; returns the events written.
pub fn write(
    visits: impl Iterator<Item = Visit>,
    site: &str,
    format: FileFormat,
    out: impl Write,
) -> anyhow::Result<u64> {
    let mut n = 0u64;
    if format == FileFormat::Csv {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(CSV_COLUMNS)?;
        for visit in visits {
            n += visit.events.len() as u64;
            for e in &visit.events {
                let v = json::to_simple(e);
                let text = |k: &str| match &v[k] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                w.write_record([
                    text("id"),
                    text("type"),
                    text("created_at"),
                    text("session_id"),
                    visit.ip.to_string(),
                    visit.country.to_owned(),
                    text("user_id"),
                    text("url"),
                    text("referrer"),
                    text("title"),
                    visit.device.to_owned(),
                    text("user_agent"),
                    v["payload"].to_string(),
                ])?;
            }
        }
        w.flush()?;
        return Ok(n);
    }
    let mut out = std::io::BufWriter::new(out);
    for visit in visits {
        n += visit.events.len() as u64;
        if format == FileFormat::Cbor {
            // No send time: the events keep their own (past) times.
            out.write_all(&cbor::encode(&visit.batch(site, 0)))?;
            continue;
        }
        for e in &visit.events {
            let mut v = json::to_simple(e);
            v["ip"] = visit.ip.to_string().into();
            v["country"] = visit.country.into();
            serde_json::to_writer(&mut out, &v)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(n)
}

/// The CSV header: the columns `pathlight import` reads.
const CSV_COLUMNS: [&str; 13] = [
    "id",
    "type",
    "created_at",
    "session_id",
    "ip",
    "country",
    "user_id",
    "url",
    "referrer",
    "title",
    "device_type",
    "user_agent",
    "payload",
];

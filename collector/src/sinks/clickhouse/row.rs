//! The third tier: one row of `events`, and its RowBinary encoding — the bytes the spool keeps
//! and the sink sends (`INSERT INTO events (COLUMNS) FORMAT RowBinary`). Names and types
//! follow `migrations.rs`; [`COLUMNS`] and [`EventRow::write_row_binary`] list the fields in
//! the same order, which a test checks against the struct.

use pathlight_wire::{EnrichedEvent, EventKind};
use serde::Serialize;

/// A row of the `events` table. Columns are documented where they are created, in `migrations.rs`.
#[allow(missing_docs)]
#[derive(Clone, Debug, Serialize, clickhouse::Row)]
pub struct EventRow {
    pub site_id: String,
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: uuid::Uuid,
    /// `Enum8`: the wire kind code.
    pub event_type: i8,
    /// `DateTime`, seconds; the milliseconds are in `timestamp_ms` because 18.x has no DateTime64.
    pub timestamp: u32,
    pub timestamp_ms: u16,
    pub received_at: u32,
    #[serde(with = "clickhouse::serde::uuid")]
    pub batch_id: uuid::Uuid,
    pub session_id: String,
    pub visitor_id: u64,
    pub user_id: String,
    pub url: String,
    pub host: String,
    pub path: String,
    pub query: String,
    pub referrer: String,
    pub referrer_host: String,
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
    pub utm_term: String,
    pub utm_content: String,
    pub title: String,
    pub viewport_w: u16,
    pub viewport_h: u16,
    pub document_w: u32,
    pub document_h: u32,
    pub x: i32,
    pub y: i32,
    pub element_id: String,
    pub selector: String,
    pub tag: String,
    pub text: String,
    pub href: String,
    pub rel_x: f32,
    pub rel_y: f32,
    pub box_x: i32,
    pub box_y: i32,
    pub box_w: i32,
    pub box_h: i32,
    pub scroll_depth: u8,
    pub visible_ms: u32,
    pub name: String,
    /// Custom properties as a JSON object.
    pub props: String,
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    /// `Enum8`: [`pathlight_wire::enrich::Device`] as its discriminant.
    pub device: i8,
    pub is_bot: u8,
    pub country: String,
    pub region: String,
    pub city: String,
    pub asn: u32,
    pub colo: String,
}

/// The columns [`EventRow::write_row_binary`] writes, in its order.
pub const COLUMNS: &str = "site_id, event_id, event_type, timestamp, timestamp_ms, received_at, \
batch_id, session_id, visitor_id, user_id, url, host, path, query, referrer, referrer_host, \
utm_source, utm_medium, utm_campaign, utm_term, utm_content, title, viewport_w, viewport_h, \
document_w, document_h, x, y, element_id, selector, tag, text, href, rel_x, rel_y, box_x, box_y, \
box_w, box_h, scroll_depth, visible_ms, name, props, browser, browser_version, os, os_version, \
device, is_bot, country, region, city, asn, colo";

/// The statement the sink sends RowBinary bodies with.
pub fn insert_sql() -> String {
    format!("INSERT INTO events ({COLUMNS}) FORMAT RowBinary")
}

impl EventRow {
    /// Flattens an enriched event into a row.
    pub fn from_enriched(e: EnrichedEvent) -> EventRow {
        let secs = |ms: i64| u32::try_from(ms.div_euclid(1000)).unwrap_or(0);
        let raw = e.raw;
        let mut row = EventRow {
            site_id: e.site_id,
            event_id: uuid::Uuid::from_bytes(raw.id.0),
            event_type: raw.kind.code() as i8,
            timestamp: secs(e.timestamp),
            timestamp_ms: e.timestamp.rem_euclid(1000) as u16,
            received_at: secs(e.received_at),
            batch_id: uuid::Uuid::from_bytes(e.batch_id.0),
            session_id: e.session_id,
            visitor_id: e.visitor_id,
            user_id: raw.user_id.unwrap_or_default(),
            url: raw.url,
            host: e.url.host,
            path: e.url.path,
            query: e.url.query,
            referrer: raw.referrer.unwrap_or_default(),
            referrer_host: e.referrer_host,
            utm_source: e.url.utm_source,
            utm_medium: e.url.utm_medium,
            utm_campaign: e.url.utm_campaign,
            utm_term: e.url.utm_term,
            utm_content: e.url.utm_content,
            title: raw.title.unwrap_or_default(),
            // Validation bounds these well inside the column types.
            viewport_w: raw.viewport.w.min(u16::MAX.into()) as u16,
            viewport_h: raw.viewport.h.min(u16::MAX.into()) as u16,
            document_w: raw.document.w,
            document_h: raw.document.h,
            x: 0,
            y: 0,
            element_id: String::new(),
            selector: String::new(),
            tag: String::new(),
            text: String::new(),
            href: String::new(),
            rel_x: 0.0,
            rel_y: 0.0,
            box_x: 0,
            box_y: 0,
            box_w: 0,
            box_h: 0,
            scroll_depth: 0,
            visible_ms: 0,
            name: String::new(),
            props: String::new(),
            browser: e.user_agent.browser,
            browser_version: e.user_agent.browser_version,
            os: e.user_agent.os,
            os_version: e.user_agent.os_version,
            device: e.user_agent.device as i8,
            is_bot: u8::from(e.user_agent.is_bot),
            country: e.geo.country,
            region: e.geo.region,
            city: e.geo.city,
            asn: e.geo.asn,
            colo: e.geo.colo,
        };
        match raw.kind {
            EventKind::Pageview => {}
            EventKind::Click(c) => {
                row.x = c.x;
                row.y = c.y;
                row.element_id = c.element_id.unwrap_or_default();
                row.selector = c.selector;
                row.tag = c.tag;
                row.text = c.text.unwrap_or_default();
                row.href = c.href.unwrap_or_default();
                row.rel_x = c.rel_x;
                row.rel_y = c.rel_y;
                [row.box_x, row.box_y, row.box_w, row.box_h] = c.element_box;
            }
            EventKind::Scroll { max_depth_pct } => row.scroll_depth = max_depth_pct,
            EventKind::Engagement { visible_ms } => row.visible_ms = visible_ms,
            EventKind::Custom { name, props } => {
                row.name = name;
                if !props.is_empty() {
                    // A map of scalars always serializes.
                    row.props = serde_json::to_string(&props).unwrap_or_default();
                }
            }
        }
        row
    }

    /// Appends the row in ClickHouse's RowBinary format: integers and floats little-endian at
    /// their column width, strings as a LEB128 length and bytes, `Enum8` as its `Int8` value,
    /// `DateTime` as `UInt32` seconds, `UUID` as its two 64-bit halves, high first, each
    /// little-endian. `LowCardinality(String)` is written as `String`.
    pub fn write_row_binary(&self, out: &mut Vec<u8>) {
        let mut w = RowBinary(out);
        w.str(&self.site_id);
        w.uuid(&self.event_id);
        w.0.push(self.event_type as u8);
        w.u32(self.timestamp);
        w.0.extend_from_slice(&self.timestamp_ms.to_le_bytes());
        w.u32(self.received_at);
        w.uuid(&self.batch_id);
        w.str(&self.session_id);
        w.0.extend_from_slice(&self.visitor_id.to_le_bytes());
        for s in [
            &self.user_id,
            &self.url,
            &self.host,
            &self.path,
            &self.query,
            &self.referrer,
            &self.referrer_host,
            &self.utm_source,
            &self.utm_medium,
            &self.utm_campaign,
            &self.utm_term,
            &self.utm_content,
            &self.title,
        ] {
            w.str(s);
        }
        w.0.extend_from_slice(&self.viewport_w.to_le_bytes());
        w.0.extend_from_slice(&self.viewport_h.to_le_bytes());
        w.u32(self.document_w);
        w.u32(self.document_h);
        w.i32(self.x);
        w.i32(self.y);
        for s in [
            &self.element_id,
            &self.selector,
            &self.tag,
            &self.text,
            &self.href,
        ] {
            w.str(s);
        }
        w.0.extend_from_slice(&self.rel_x.to_le_bytes());
        w.0.extend_from_slice(&self.rel_y.to_le_bytes());
        for v in [self.box_x, self.box_y, self.box_w, self.box_h] {
            w.i32(v);
        }
        w.0.push(self.scroll_depth);
        w.u32(self.visible_ms);
        for s in [
            &self.name,
            &self.props,
            &self.browser,
            &self.browser_version,
            &self.os,
            &self.os_version,
        ] {
            w.str(s);
        }
        w.0.push(self.device as u8);
        w.0.push(self.is_bot);
        for s in [&self.country, &self.region, &self.city] {
            w.str(s);
        }
        w.u32(self.asn);
        w.str(&self.colo);
    }
}

/// RowBinary's primitive encodings.
struct RowBinary<'a>(&'a mut Vec<u8>);

impl RowBinary<'_> {
    fn str(&mut self, s: &str) {
        let mut n = s.len() as u64;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.0.push(byte);
                break;
            }
            self.0.push(byte | 0x80);
        }
        self.0.extend_from_slice(s.as_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn uuid(&mut self, u: &uuid::Uuid) {
        let (high, low) = u.as_u64_pair();
        self.0.extend_from_slice(&high.to_le_bytes());
        self.0.extend_from_slice(&low.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::ClickHouseConfig;
    use super::super::migrations::{Dialect, migrations};
    use super::*;

    /// Each column written is declared by the migrations, once; the order against the struct
    /// is checked end to end (`it::ingest::every_column_round_trips`).
    #[test]
    fn columns_are_the_tables() {
        let ddl: String = migrations(Dialect::LEGACY, &ClickHouseConfig::for_tests())
            .into_iter()
            .flat_map(|m| m.statements)
            .collect();
        let columns: Vec<&str> = COLUMNS.split(',').map(str::trim).collect();
        for c in &columns {
            assert!(ddl.contains(&format!("\n    {c} ")), "{c} is not a column");
        }
        let declared = ddl
            .lines()
            .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
            .count();
        assert_eq!(declared, columns.len(), "a column is missing from COLUMNS");
    }

    #[test]
    fn strings_carry_leb128_lengths() {
        let mut out = Vec::new();
        RowBinary(&mut out).str(&"a".repeat(300));
        assert_eq!(out[..2], [0xac, 0x02]);
        assert_eq!(out.len(), 302);
    }
}

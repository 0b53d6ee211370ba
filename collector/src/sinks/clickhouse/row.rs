//! The third tier: one row of `events`, as the ClickHouse client serializes it (RowBinary).
//! Field order is irrelevant (the insert names its columns); names and types follow
//! `migrations.rs`.

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

/// Fixed part of a row's size in memory, for the batcher's byte bound.
const FIXED_BYTES: usize = std::mem::size_of::<EventRow>();

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

    /// Approximate memory taken by the row, bytes.
    pub fn size(&self) -> usize {
        FIXED_BYTES
            + [
                &self.site_id,
                &self.session_id,
                &self.user_id,
                &self.url,
                &self.host,
                &self.path,
                &self.query,
                &self.referrer,
                &self.title,
                &self.selector,
                &self.text,
                &self.href,
                &self.props,
            ]
            .iter()
            .map(|s| s.len())
            .sum::<usize>()
    }
}

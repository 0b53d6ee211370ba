//! The third tier: one row of `events`, and its RowBinary encoding — the bytes the collector's
//! spool keeps, the edge worker's queue carries and both send to ClickHouse
//! (`INSERT INTO events (COLUMNS) FORMAT RowBinary`). Names and types follow the collector's
//! `migrations.rs`; [`COLUMNS`], [`EventRow::write_row_binary`] and [`EventRow::read_row_binary`]
//! list the fields in the same order, which the collector's tests check against the table.

use pathlight_wire::{Click, EnrichedEvent, EventKind};

/// Declares the row once: the struct, [`COLUMNS`], the writer and the reader all follow this
/// list's order, so the three cannot disagree.
macro_rules! event_row {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty ),+ $(,)?) => {
        /// A row of the `events` table. Columns are documented where they are created, in the
        /// collector's `migrations.rs`.
        #[allow(missing_docs)]
        #[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
        pub struct EventRow {
            $( $(#[$doc])* pub $field: $ty, )+
        }

        /// The columns [`EventRow::write_row_binary`] writes, in its order.
        pub const COLUMNS: &str = event_row!(@names $($field),+);

        impl EventRow {
            /// Appends the row in ClickHouse's RowBinary format: integers and floats
            /// little-endian at their column width, strings as a LEB128 length and bytes,
            /// `Enum8` as its `Int8` value, `DateTime` as `UInt32` seconds, `UUID` as its two
            /// 64-bit halves, high first, each little-endian. `LowCardinality(String)` is
            /// written as `String`.
            pub fn write_row_binary(&self, out: &mut Vec<u8>) {
                $( Column::put(&self.$field, out); )+
            }

            /// Reads one row written by [`EventRow::write_row_binary`] from the front of
            /// `input`, advancing it. Strings must be UTF-8.
            pub fn read_row_binary(input: &mut &[u8]) -> Result<EventRow, RowError> {
                Ok(EventRow { $( $field: Column::get(input)?, )+ })
            }

            /// Reads one row written in `layout`: its leading columns; the later ones keep
            /// their defaults, as ClickHouse gives them to a row inserted without them.
            pub fn read_row_binary_of(input: &mut &[u8], layout: Layout) -> Result<EventRow, RowError> {
                let mut row = EventRow::default();
                let mut left = layout.columns();
                $(
                    if left > 0 {
                        row.$field = Column::get(input)?;
                        left -= 1;
                    }
                )+
                Ok(row)
            }
        }
    };
    (@names $first:ident $(, $rest:ident)*) => {
        concat!(stringify!($first) $(, ", ", stringify!($rest))*)
    };
}

event_row! {
    site_id: String,
    event_id: uuid::Uuid,
    /// `Enum8`: the wire kind code.
    event_type: i8,
    /// `DateTime`, seconds; the milliseconds are in `timestamp_ms` because 18.x has no DateTime64.
    timestamp: u32,
    timestamp_ms: u16,
    received_at: u32,
    batch_id: uuid::Uuid,
    session_id: String,
    visitor_id: u64,
    user_id: String,
    url: String,
    host: String,
    path: String,
    query: String,
    referrer: String,
    referrer_host: String,
    utm_source: String,
    utm_medium: String,
    utm_campaign: String,
    utm_term: String,
    utm_content: String,
    title: String,
    viewport_w: u16,
    viewport_h: u16,
    document_w: u32,
    document_h: u32,
    x: i32,
    y: i32,
    element_id: String,
    selector: String,
    tag: String,
    text: String,
    href: String,
    rel_x: f32,
    rel_y: f32,
    box_x: i32,
    box_y: i32,
    box_w: i32,
    box_h: i32,
    scroll_depth: u8,
    visible_ms: u32,
    name: String,
    /// The event's properties as a JSON object: a custom event's, or the simple array form's
    /// payload fields without a column of their own, on any kind.
    props: String,
    browser: String,
    browser_version: String,
    os: String,
    os_version: String,
    /// `Enum8`: [`pathlight_wire::enrich::Device`] as its discriminant.
    device: i8,
    is_bot: u8,
    country: String,
    region: String,
    city: String,
    asn: u32,
    colo: String,
    /// Appended in layout 1: the click's [`pathlight_wire::Click::fixed`].
    fixed: u8,
    /// Appended in layout 2: the sender's own name for the event,
    /// [`pathlight_wire::RawEvent::event_title`].
    event_title: String,
}

/// The header naming the [`Layout`] (its code) of RowBinary rows sent between processes: broker
/// messages, and relay bodies from edge workers to a collector.
pub const LAYOUT_HEADER: &str = "Pathlight-Row-Layout";

/// The columns a RowBinary body was written with. Columns of `events` are only ever appended,
/// so a layout is a number of leading columns of [`COLUMNS`]: 0 ends at `colo`, 1 adds
/// `fixed`, 2 `event_title`. A body written before a column was added — a spool segment the
/// previous version left, a broker message still in flight — says its layout (a spool
/// record's frame, a message's header) and is read with it; the columns it lacks get their
/// defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout(u8);

impl Layout {
    /// Every column up to `colo`: the rows written before layouts were named.
    pub const FIRST: Layout = Layout(0);
    /// With `fixed`: the rows of clicks in fixed or sticky contexts (schema migration 6).
    pub const FIXED: Layout = Layout(1);
    /// The layout [`EventRow::write_row_binary`] writes: with `event_title` (migration 13).
    pub const CURRENT: Layout = Layout(2);
    /// Columns per layout, by code.
    const COLUMNS: [usize; 3] = [count_columns() - 2, count_columns() - 1, count_columns()];

    /// The layout of code `code`, if this version knows it.
    pub fn from_code(code: u8) -> Option<Layout> {
        (usize::from(code) < Self::COLUMNS.len()).then_some(Layout(code))
    }

    /// The layout's code, as frames and headers carry it.
    pub fn code(self) -> u8 {
        self.0
    }

    /// How many leading columns of [`COLUMNS`] its rows hold.
    pub fn columns(self) -> usize {
        Self::COLUMNS[usize::from(self.0)]
    }
}

const fn count_columns() -> usize {
    let (bytes, mut i, mut n) = (COLUMNS.as_bytes(), 0, 1);
    while i < bytes.len() {
        if bytes[i] == b',' {
            n += 1;
        }
        i += 1;
    }
    n
}

/// The statement RowBinary bodies are inserted with.
pub fn insert_sql() -> String {
    format!("INSERT INTO events ({COLUMNS}) FORMAT RowBinary")
}

/// Settings every insert into `events` carries on a server of `version` (major, minor).
///
/// Since 19.5 a server refuses an insert whose rows fall in more than
/// `max_partitions_per_insert_block` (100) partitions, with code 252, which it shares with
/// "too many parts", an overload worth retrying. The tables are partitioned by month and
/// timestamps are accepted from 2015 on (imports and the simple JSON form carry old events),
/// so one request dated across nine years, or a spool segment gathering such requests, would
/// be retried for ever and hold every later row behind it. The limit guards against a
/// partition key finer than a month, which ours is not: at most one part per month per
/// insert, ~145 months up to now.
pub fn insert_settings(version: (u32, u32)) -> &'static [(&'static str, &'static str)] {
    if version >= (19, 5) {
        &[("max_partitions_per_insert_block", "0")]
    } else {
        &[]
    }
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
            fixed: 0,
            event_title: raw.event_title.unwrap_or_default(),
        };
        if !raw.props.is_empty() {
            // A map of scalars always serializes.
            row.props = serde_json::to_string(&raw.props).unwrap_or_default();
        }
        match raw.kind {
            EventKind::Pageview => {}
            EventKind::Click(c) => {
                row.x = c.x;
                row.y = c.y;
                row.element_id = c
                    .element_id
                    .or_else(|| Click::id_in_selector(&c.selector).map(str::to_owned))
                    .unwrap_or_default();
                row.selector = c.selector;
                row.tag = c.tag;
                row.text = c.text.unwrap_or_default();
                row.href = c.href.unwrap_or_default();
                row.rel_x = c.rel_x;
                row.rel_y = c.rel_y;
                [row.box_x, row.box_y, row.box_w, row.box_h] = c.element_box;
                row.fixed = c.fixed;
            }
            EventKind::Scroll { max_depth_pct } => row.scroll_depth = max_depth_pct,
            EventKind::Engagement { visible_ms } => row.visible_ms = visible_ms,
            EventKind::Custom { name } => row.name = name,
        }
        row
    }
}

/// A RowBinary body that is not a whole number of well-formed rows.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// The input ended inside a row.
    #[error("RowBinary input ends inside a row")]
    Truncated,
    /// A string column is not UTF-8.
    #[error("RowBinary string is not UTF-8")]
    NotUtf8,
}

/// `rows` as one RowBinary body.
pub fn write_rows(rows: &[EventRow]) -> Vec<u8> {
    let mut body = Vec::with_capacity(rows.len() * 512);
    rows.iter().for_each(|r| r.write_row_binary(&mut body));
    body
}

/// Reads every row of a RowBinary body.
pub fn read_rows(input: &[u8]) -> Result<Vec<EventRow>, RowError> {
    read_rows_of(input, Layout::CURRENT)
}

/// Reads every row of a RowBinary body written in `layout`.
pub fn read_rows_of(mut input: &[u8], layout: Layout) -> Result<Vec<EventRow>, RowError> {
    let mut rows = Vec::new();
    while !input.is_empty() {
        rows.push(EventRow::read_row_binary_of(&mut input, layout)?);
    }
    Ok(rows)
}

/// A body written in `layout`, re-encoded in the current one (callers skip bodies that
/// already are).
pub fn upgrade(body: &[u8], layout: Layout) -> Result<Vec<u8>, RowError> {
    Ok(write_rows(&read_rows_of(body, layout)?))
}

/// One identify, as the `users` table stores it (`identify.rs`): the collector, `pathlight
/// import --users` and the edge worker write it, so its RowBinary is defined here once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserRow {
    /// The site.
    pub site_id: String,
    /// The site's id of the user.
    pub user_id: String,
    /// The traits, a JSON object.
    pub traits: String,
    /// When the identify was received, ms since the epoch: the latest wins.
    pub updated_ms: u64,
}

/// The insert [`write_user_rows`]'s body is for.
pub const USERS_INSERT: &str =
    "INSERT INTO users (site_id, user_id, traits, updated_ms) FORMAT RowBinary";

/// `rows` as one RowBinary body, in the columns of [`USERS_INSERT`].
pub fn write_user_rows(rows: &[UserRow]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.iter().map(|r| r.traits.len() + 64).sum());
    for r in rows {
        r.site_id.put(&mut out);
        r.user_id.put(&mut out);
        r.traits.put(&mut out);
        r.updated_ms.put(&mut out);
    }
    out
}

/// Reads every row of a [`write_user_rows`] body (a relayed or queued one, checked before it
/// is stored).
pub fn read_user_rows(mut input: &[u8]) -> Result<Vec<UserRow>, RowError> {
    let mut rows = Vec::new();
    while !input.is_empty() {
        rows.push(UserRow {
            site_id: String::get(&mut input)?,
            user_id: String::get(&mut input)?,
            traits: String::get(&mut input)?,
            updated_ms: u64::get(&mut input)?,
        });
    }
    Ok(rows)
}

/// One column type's RowBinary encoding.
trait Column: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(input: &mut &[u8]) -> Result<Self, RowError>;
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], RowError> {
    let (head, tail) = input.split_at_checked(n).ok_or(RowError::Truncated)?;
    *input = tail;
    Ok(head)
}

macro_rules! little_endian {
    ($($t:ty),+) => {$(
        impl Column for $t {
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(input: &mut &[u8]) -> Result<Self, RowError> {
                let bytes = take(input, size_of::<$t>())?;
                Ok(<$t>::from_le_bytes(bytes.try_into().map_err(|_| RowError::Truncated)?))
            }
        }
    )+};
}
little_endian!(i8, u8, u16, u32, u64, i32, f32);

impl Column for String {
    fn put(&self, out: &mut Vec<u8>) {
        let mut n = self.len() as u64;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.extend_from_slice(self.as_bytes());
    }
    fn get(input: &mut &[u8]) -> Result<Self, RowError> {
        let mut len = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = take(input, 1)?[0];
            len |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                let len = usize::try_from(len).map_err(|_| RowError::Truncated)?;
                let bytes = take(input, len)?;
                return String::from_utf8(bytes.to_vec()).map_err(|_| RowError::NotUtf8);
            }
        }
        Err(RowError::Truncated)
    }
}

impl Column for uuid::Uuid {
    fn put(&self, out: &mut Vec<u8>) {
        let (high, low) = self.as_u64_pair();
        high.put(out);
        low.put(out);
    }
    fn get(input: &mut &[u8]) -> Result<Self, RowError> {
        Ok(uuid::Uuid::from_u64_pair(
            u64::get(input)?,
            u64::get(input)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_rows_are_row_binary_in_the_insert_order_and_read_back() {
        let row = UserRow {
            site_id: "s".into(),
            user_id: "u".repeat(130),
            traits: "{}".into(),
            updated_ms: 0x0102,
        };
        let bytes = write_user_rows(std::slice::from_ref(&row));
        // A length of 130 takes two LEB128 bytes.
        assert_eq!(&bytes[..4], &[1, b's', 130, 1]);
        assert_eq!(&bytes[134..137], &[2, b'{', b'}']);
        assert_eq!(&bytes[137..], &[2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(read_user_rows(&bytes), Ok(vec![row]));
        assert_eq!(read_user_rows(&bytes[..136]), Err(RowError::Truncated));
    }

    #[test]
    fn bodies_of_earlier_layouts_read_with_their_columns_and_upgrade() {
        let row = EventRow {
            site_id: "s".into(),
            selector: "#buy".into(),
            colo: "FRA".into(),
            fixed: 1,
            event_title: "checkout".into(),
            ..EventRow::default()
        };
        let one = write_rows(std::slice::from_ref(&row));
        // Each layout's rows end earlier: layout 1 before `event_title` (its length byte and
        // 8 bytes), layout 0 also before `fixed` (1 byte).
        let cut = |n: usize| [&one[..one.len() - n], &one[..one.len() - n]].concat();
        let earlier = [
            (
                Layout::FIXED,
                cut(9),
                EventRow {
                    event_title: String::new(),
                    ..row.clone()
                },
            ),
            (
                Layout::FIRST,
                cut(10),
                EventRow {
                    event_title: String::new(),
                    fixed: 0,
                    ..row.clone()
                },
            ),
        ];
        for (layout, body, read) in earlier {
            assert_eq!(
                read_rows_of(&body, layout).unwrap(),
                [read.clone(), read.clone()],
                "{layout:?}"
            );
            assert_eq!(
                upgrade(&body, layout).unwrap(),
                write_rows(&[read.clone(), read]),
                "{layout:?}"
            );
            assert!(
                read_rows(&body).is_err(),
                "{layout:?}: the current layout does not fit"
            );
        }
        for layout in [Layout::FIRST, Layout::FIXED, Layout::CURRENT] {
            assert_eq!(Layout::from_code(layout.code()), Some(layout));
        }
        assert_eq!(Layout::from_code(9), None);
        assert_eq!(Layout::CURRENT.columns(), COLUMNS.split(", ").count());
        assert_eq!(Layout::FIXED.columns() + 1, Layout::CURRENT.columns());
    }

    #[test]
    fn props_and_event_title_reach_the_row_whatever_the_kind() {
        let mut raw = pathlight_wire::sample::click_event(1);
        raw.event_title = Some("checkout".into());
        raw.props
            .insert("plan".into(), pathlight_wire::PropValue::Text("pro".into()));
        let enriched = pathlight_wire::EnrichedEvent {
            site_id: "s".into(),
            batch_id: pathlight_wire::Id::default(),
            raw,
            timestamp: 1_767_261_600_001,
            received_at: 1_767_261_600_100,
            session_id: "k".into(),
            visitor_id: 1,
            url: Default::default(),
            referrer_host: String::new(),
            user_agent: pathlight_wire::enrich::parse_user_agent(""),
            geo: Default::default(),
        };
        let row = EventRow::from_enriched(enriched);
        assert_eq!(
            (row.event_title.as_str(), row.title.as_str()),
            ("checkout", "Catalog · Example Shop"),
            "the event's title apart from the page's"
        );
        assert_eq!(row.props, r#"{"plan":"pro"}"#);
        assert_eq!((row.x, row.selector.as_str()), (642, "#add-to-cart"));
    }

    #[test]
    fn the_partition_limit_is_lifted_only_where_the_setting_exists() {
        assert!(
            insert_settings((18, 16)).is_empty(),
            "18.x refuses unknown settings"
        );
        assert!(insert_settings((19, 4)).is_empty());
        for v in [(19, 5), (26, 7)] {
            assert_eq!(
                insert_settings(v),
                &[("max_partitions_per_insert_block", "0")]
            );
        }
    }

    #[test]
    fn strings_carry_leb128_lengths() {
        let mut out = Vec::new();
        "a".repeat(300).put(&mut out);
        assert_eq!(out[..2], [0xac, 0x02]);
        assert_eq!(out.len(), 302);
    }

    #[test]
    fn rows_read_back_as_written() {
        let rows = [
            EventRow {
                site_id: "shop".into(),
                event_id: uuid::Uuid::from_bytes([7; 16]),
                event_type: 2,
                timestamp: 1_767_261_600,
                visitor_id: u64::MAX,
                title: "é".repeat(100),
                rel_x: 0.25,
                box_w: -3,
                colo: "FRA".into(),
                ..EventRow::default()
            },
            EventRow::default(),
        ];
        let mut body = Vec::new();
        rows[0].write_row_binary(&mut body);
        let first = body.len();
        rows[1].write_row_binary(&mut body);
        assert_eq!(read_rows(&body).unwrap(), rows);
        for cut in 1..body.len() {
            if cut != first {
                assert!(read_rows(&body[..cut]).is_err(), "cut at {cut}");
            }
        }
    }
}

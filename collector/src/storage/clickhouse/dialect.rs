//! What the connected ClickHouse supports ([`Dialect`]) and the column types every table
//! shares: what the schema (`migrations.rs`) and the marts (`marts.rs`) are both written
//! against, so neither needs the other for them.

/// What the connected server supports, from `SELECT version()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dialect {
    /// `(major, minor)` of the server.
    pub version: (u32, u32),
}

impl Dialect {
    /// Debian's 18.16, the oldest server we run on.
    pub const LEGACY: Dialect = Dialect { version: (18, 16) };
    /// A current server.
    pub const MODERN: Dialect = Dialect { version: (26, 7) };

    /// Parses `18.16.1` or `25.8.1.1`.
    pub fn parse(version: &str) -> Option<Dialect> {
        let mut it = version.trim().split('.').map(|p| p.parse::<u32>());
        Some(Dialect {
            version: (it.next()?.ok()?, it.next()?.ok()?),
        })
    }

    fn at_least(self, major: u32, minor: u32) -> bool {
        self.version >= (major, minor)
    }

    /// `LowCardinality(T)` without the experimental setting (19.x made it production-ready).
    pub fn low_cardinality(self) -> bool {
        self.at_least(20, 1)
    }

    /// Table TTL (19.6).
    pub fn ttl(self) -> bool {
        self.at_least(20, 1)
    }

    /// Server-side query parameters `{name:Type}` (19.11).
    pub fn query_parameters(self) -> bool {
        self.at_least(20, 1)
    }

    /// `async_insert` with `wait_for_async_insert` (21.11): the server merges small inserts
    /// from many collectors into one part, and still answers only once the data is written.
    pub fn async_insert(self) -> bool {
        self.at_least(21, 11)
    }

    /// `non_replicated_deduplication_window` on MergeTree tables (21.x).
    pub fn insert_dedup(self) -> bool {
        self.at_least(21, 11)
    }

    /// The client's RowBinaryWithNamesAndTypes validation, which needs a server that reports
    /// types in that format's header the way the crate parses them.
    pub fn client_validation(self) -> bool {
        self.at_least(24, 10)
    }

    /// `ALTER TABLE … ADD COLUMN IF NOT EXISTS` (after 18.16; the runner stands in before).
    pub fn add_column_if_not_exists(self) -> bool {
        self.at_least(20, 1)
    }

    pub(crate) fn lc(self, t: &str) -> String {
        if self.low_cardinality() {
            format!("LowCardinality({t})")
        } else {
            t.to_owned()
        }
    }
}

/// The `device` column's type, shared by `events` and the marts that keep it.
pub const DEVICE: &str =
    "Enum8('unknown' = 0, 'desktop' = 1, 'mobile' = 2, 'tablet' = 3, 'bot' = 4)";

//! The worker's configuration: `[vars]` in `wrangler.toml`, secrets set with
//! `wrangler secret put`, and the binding names, which are constants so the code and
//! `wrangler.toml` cannot drift apart silently (a missing binding is a clear error at the first
//! request that needs it).

use pathlight_ingest::SiteRules;
use pathlight_wire::session::DEFAULT_TIMEOUT_SECS;
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use worker::Env;

/// Queue producer binding for validated, enriched rows (queue mode).
pub const EVENTS_QUEUE: &str = "EVENTS";
/// Queue producer binding for messages ClickHouse refuses for good (poison), so one bad
/// message cannot block or drop the good ones batched with it.
pub const DEAD_LETTER_QUEUE: &str = "DEAD_LETTERS";
/// Static-assets binding holding the tracker's files (`[assets]`, laid out by
/// `scripts/build-worker.sh`).
pub const ASSETS: &str = "ASSETS";
/// Where the tracker's files and the batch endpoint live when `PATHLIGHT_PREFIX` is unset.
pub const DEFAULT_PREFIX: &str = "/_pl";
/// `PATHLIGHT_RETENTION_DAYS` when unset: the collector's default `[clickhouse] retention_days`.
pub const DEFAULT_RETENTION_DAYS: u32 = 400;

/// How accepted batches leave the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// To a Cloudflare Queue, answered at once; the queue consumer inserts into ClickHouse.
    Queue,
    /// Inserted into ClickHouse per request with `async_insert` (current ClickHouse only).
    Direct,
    /// Forwarded, enriched, to a Pathlight collector's `/v1/relay`.
    Relay,
}

/// A site as `PATHLIGHT_SITES` lists it: `[{"id": "shop", "origins": ["https://shop.example"]}]`.
#[derive(Clone, Debug, Deserialize)]
pub struct Site {
    /// The id the tracker sends.
    pub id: String,
    /// Origins allowed to send from a browser; `"*"` for any. Same rules as the collector.
    #[serde(default)]
    pub origins: Vec<String>,
    /// SHA-256 digests (hex) of the site's ingest keys, as the collector's
    /// `ingest_keys_sha256`: a request with one of the keys is accepted from anywhere.
    #[serde(default, deserialize_with = "digests")]
    pub ingest_keys_sha256: Vec<[u8; 32]>,
    /// As the collector's `require_key`.
    #[serde(default)]
    pub require_key: bool,
}

/// Hex SHA-256 digests, each checked.
fn digests<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|k| {
            pathlight_ingest::hex::decode(k).ok_or_else(|| {
                serde::de::Error::custom(format!("ingest key digest {k:?} is not 64 hex digits"))
            })
        })
        .collect()
}

impl SiteRules for Site {
    fn origins(&self) -> &[String] {
        &self.origins
    }
    fn ingest_keys(&self) -> &[[u8; 32]] {
        &self.ingest_keys_sha256
    }
    fn require_key(&self) -> bool {
        self.require_key
    }
}

/// ClickHouse over HTTP(S).
#[derive(Clone, Debug)]
pub struct ClickHouse {
    /// `CLICKHOUSE_URL`, e.g. `https://ch.example.com:8443`.
    pub url: String,
    /// `CLICKHOUSE_DATABASE` (default `pathlight`).
    pub database: String,
    /// `CLICKHOUSE_USER` (default `default`).
    pub user: String,
    /// Secret `CLICKHOUSE_PASSWORD` (may be unset).
    pub password: String,
}

/// Everything the worker reads from its environment.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `PATHLIGHT_MODE`: `queue` (default), `direct` or `relay`.
    pub mode: Mode,
    /// `PATHLIGHT_SITES`, by id.
    pub sites: HashMap<String, Site>,
    /// `PATHLIGHT_PREFIX` (default `/_pl`): the path under which the site's route sends
    /// requests here, e.g. `shop.example.com/_pl/*`. The tracker is `{prefix}/p.js` and takes
    /// batches at `{prefix}/v1/batch`. Normalized: a leading `/`, no trailing one (`""` is the
    /// root).
    pub prefix: String,
    /// Unset in relay mode.
    pub clickhouse: Option<ClickHouse>,
    /// `COLLECTOR_URL` (relay mode), e.g. `https://collect.example.com`.
    pub collector_url: Option<String>,
    /// Secret `RELAY_TOKEN` (relay mode): the collector's `relay_token`.
    pub relay_token: String,
    /// `RETRY_DELAY_SECONDS` (default 10): the first wait before a failed queue batch is
    /// retried; later waits grow with the message's age (see `consumer.rs`).
    pub retry_delay_secs: u32,
    /// `PATHLIGHT_SESSION_TIMEOUT_SECS` (default 1800, the collector's): a server-assigned
    /// session ends after this long without an event. Set it as the collector's
    /// `session_timeout_secs`, so that both split a visitor's events alike.
    pub session_timeout_secs: u64,
    /// `PATHLIGHT_RETENTION_DAYS` (default 400, the collector's): events older than this, at
    /// their corrected time, are refused (`too_old`), as the collector refuses them. Set it as
    /// the ClickHouse tables' retention (the collector's `[clickhouse] retention_days`, which
    /// made their TTL): the worker writes into them, and an older event would be acknowledged
    /// and then deleted. 0 takes any age.
    pub retention_days: u32,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Settings>>> = const { RefCell::new(None) };
}

/// This isolate's settings, read from `env` at its first request. An isolate's environment
/// does not change: new vars or secrets are a new deployment, which starts new isolates.
pub fn current(env: &Env) -> Result<Rc<Settings>, String> {
    if let Some(s) = CURRENT.with_borrow(Clone::clone) {
        return Ok(s);
    }
    let s = Rc::new(Settings::from_env(env)?);
    CURRENT.set(Some(s.clone()));
    Ok(s)
}

impl Settings {
    /// Reads and checks the settings; the message names what is wrong.
    pub fn from_env(env: &Env) -> Result<Settings, String> {
        Settings::from_vars(
            |name| env.var(name).ok().map(|v| v.to_string()),
            |name| env.secret(name).ok().map(|v| v.to_string()),
        )
    }

    /// [`Settings::from_env`] from `var` (the `[vars]`) and `secret`, each by name: plain
    /// functions, so the rules are tested without a worker runtime.
    pub(crate) fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        secret: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, String> {
        let mode = match var("PATHLIGHT_MODE").as_deref().unwrap_or("queue") {
            "queue" => Mode::Queue,
            "direct" => Mode::Direct,
            "relay" => Mode::Relay,
            other => {
                return Err(format!(
                    "PATHLIGHT_MODE is {other:?}; use queue, direct or relay"
                ));
            }
        };
        let sites: Vec<Site> =
            serde_json::from_str(&var("PATHLIGHT_SITES").ok_or("PATHLIGHT_SITES is not set")?)
                .map_err(|e| format!("PATHLIGHT_SITES: {e}"))?;
        let clickhouse = var("CLICKHOUSE_URL").map(|url| ClickHouse {
            url: url.trim_end_matches('/').to_owned(),
            database: var("CLICKHOUSE_DATABASE").unwrap_or_else(|| "pathlight".into()),
            user: var("CLICKHOUSE_USER").unwrap_or_else(|| "default".into()),
            password: secret("CLICKHOUSE_PASSWORD").unwrap_or_default(),
        });
        let collector_url = var("COLLECTOR_URL").map(|u| u.trim_end_matches('/').to_owned());
        match mode {
            Mode::Queue | Mode::Direct if clickhouse.is_none() => {
                return Err("CLICKHOUSE_URL is not set".into());
            }
            Mode::Relay if collector_url.is_none() => {
                return Err("COLLECTOR_URL is not set (relay mode)".into());
            }
            _ => {}
        }
        Ok(Settings {
            mode,
            sites: sites.into_iter().map(|s| (s.id.clone(), s)).collect(),
            prefix: prefix(var("PATHLIGHT_PREFIX").as_deref())?,
            clickhouse,
            collector_url,
            relay_token: secret("RELAY_TOKEN").unwrap_or_default(),
            retry_delay_secs: var("RETRY_DELAY_SECONDS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(10),
            session_timeout_secs: session_timeout(
                var("PATHLIGHT_SESSION_TIMEOUT_SECS").as_deref(),
            )?,
            retention_days: retention_days(var("PATHLIGHT_RETENTION_DAYS").as_deref())?,
        })
    }

    /// [`Settings::session_timeout_secs`] in ms.
    pub fn session_timeout_ms(&self) -> i64 {
        i64::try_from(self.session_timeout_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

/// `PATHLIGHT_SESSION_TIMEOUT_SECS`, checked as the collector checks `session_timeout_secs`:
/// whole seconds, more than 0. Refused rather than defaulted when wrong: sessions silently
/// split unlike the collector's would go unnoticed.
fn session_timeout(raw: Option<&str>) -> Result<u64, String> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_TIMEOUT_SECS);
    };
    match raw.trim().parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(secs),
        _ => Err(format!(
            "PATHLIGHT_SESSION_TIMEOUT_SECS is {raw:?}; use whole seconds above 0, the \
             collector's session_timeout_secs (default {DEFAULT_TIMEOUT_SECS})"
        )),
    }
}

/// `PATHLIGHT_RETENTION_DAYS`: whole days, 0 for no window. Refused rather than defaulted when
/// wrong, like the session timeout: a window unlike the tables' would go unnoticed.
fn retention_days(raw: Option<&str>) -> Result<u32, String> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_RETENTION_DAYS);
    };
    raw.trim().parse::<u32>().map_err(|_| {
        format!(
            "PATHLIGHT_RETENTION_DAYS is {raw:?}; use whole days (0: keep for ever), the \
             collector's [clickhouse] retention_days (default {DEFAULT_RETENTION_DAYS})"
        )
    })
}

/// `PATHLIGHT_PREFIX`, checked and normalized: a path of plain segments (letters, digits,
/// `-`, `_`, `.`, `~`), which a route pattern and a URL both carry unchanged.
fn prefix(raw: Option<&str>) -> Result<String, String> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_PREFIX.to_owned());
    };
    let trimmed = raw.trim_end_matches('/');
    let plain = |seg: &str| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    };
    if trimmed.is_empty() && raw.starts_with('/') {
        return Ok(String::new());
    }
    match trimmed.strip_prefix('/') {
        Some(rest) if rest.split('/').all(plain) => Ok(trimmed.to_owned()),
        _ => Err(format!(
            "PATHLIGHT_PREFIX is {raw:?}; use a path such as \"{DEFAULT_PREFIX}\" (plain \
             segments after a leading /)"
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn prefix_is_a_plain_path_without_trailing_slash() {
        assert_eq!(prefix(None).unwrap(), "/_pl");
        assert_eq!(prefix(Some("/_pl/")).unwrap(), "/_pl");
        assert_eq!(prefix(Some("/a/b-c.d~e")).unwrap(), "/a/b-c.d~e");
        assert_eq!(prefix(Some("/")).unwrap(), "");
        for bad in ["", "_pl", "/a//b", "/a/../b", "/a b", "/a?x", "/a*", "/ä"] {
            assert!(prefix(Some(bad)).is_err(), "{bad:?}");
        }
    }

    /// Settings from `vars` (queue mode needs a ClickHouse URL and the sites).
    pub(crate) fn settings(vars: &[(&str, &str)]) -> Result<Settings, String> {
        let vars: HashMap<String, String> = [
            ("PATHLIGHT_SITES", "[]"),
            ("CLICKHOUSE_URL", "https://ch.example:8443"),
        ]
        .iter()
        .chain(vars)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Settings::from_vars(|name| vars.get(name).cloned(), |_| None)
    }

    #[test]
    fn the_retention_window_is_read_from_its_var() {
        let days = |v: &str| settings(&[("PATHLIGHT_RETENTION_DAYS", v)]);
        assert_eq!(settings(&[]).unwrap().retention_days, 400, "the default");
        assert_eq!(days("30").unwrap().retention_days, 30);
        assert_eq!(days("0").unwrap().retention_days, 0, "no window");
        for bad in ["", "a month", "-1", "30.5", "99999999999"] {
            let e = days(bad).unwrap_err();
            assert!(
                e.starts_with("PATHLIGHT_RETENTION_DAYS is "),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn the_session_timeout_is_read_from_its_var() {
        let timeout = |v: &str| settings(&[("PATHLIGHT_SESSION_TIMEOUT_SECS", v)]);
        assert_eq!(
            settings(&[]).unwrap().session_timeout_secs,
            1800,
            "the default"
        );
        let ten = timeout("600").unwrap();
        assert_eq!(
            (ten.session_timeout_secs, ten.session_timeout_ms()),
            (600, 600_000)
        );
        for bad in ["0", "", "ten", "-600", "600.5", "1e3"] {
            let e = timeout(bad).unwrap_err();
            assert!(
                e.starts_with("PATHLIGHT_SESSION_TIMEOUT_SECS is "),
                "{bad:?}: {e}"
            );
        }
        assert_eq!(
            timeout(&u64::MAX.to_string()).unwrap().session_timeout_ms(),
            i64::MAX
        );
    }
}

//! The sites this collector serves and the keys that read and write them: the `[[sites]]` of
//! the config file and those made in the product (`POST /api/v1/sites`), as one registry that
//! every stage reads (issue 36).
//!
//! # One snapshot, read by everyone
//! [`Registry`] holds an `Arc<`[`Sites`]`>` behind a lock taken only to clone or swap the
//! `Arc`. A reader clones it once per request and works on that one snapshot: the pipeline
//! (the site of a batch, its origins and ingest keys, CORS), the query API (who may read, the
//! site's goals, search names and anomaly rules), the security headers (the viewer's
//! `frame-src`), the live feeds. A refresh builds a whole new snapshot and swaps it in, so no
//! request ever sees half of one.
//!
//! # Where the state lives
//! Sites made in the product and every site's API keys live in the ClickHouse database the
//! collectors share (`storage/clickhouse/sites.rs`), as the accounts do. Each collector reads
//! both tables whole every `accounts.refresh_ms` (2 s by default) and at once after a change
//! it makes itself, so a site made, or a key revoked, through one collector is honoured by all
//! within that time. The file's sites are merged in at each refresh and win on an id clash:
//! who manages config as code keeps the last word.
//!
//! # Keys
//! A key is `pl_<r|i>_<8 characters>_<32 random bytes, base64url>`, shown once; only its
//! SHA-256 is stored, and a request's key is found by that digest. Read keys carry scopes
//! ([`Scope`]: stats, heatmaps, export) and are taken as `Authorization: Bearer` on the query
//! API; ingest keys are taken on `/v1/batch` and `/v1/identify` beside the file's
//! `ingest_keys_sha256`. The file's `api_token` stays a read key of every scope. When a key was
//! last used is kept in memory and written at most once a minute per key ([`Registry::used`]).

mod manage;

pub use manage::{KeyInput, SiteError, SiteInput, snippet};

use crate::config::{Config, SiteConfig};
use crate::dates::now_ms;
use crate::storage::clickhouse::sites::{self as store, KeyRow, REVOKED, SiteRow};
use clickhouse::Client;
use pathlight_ingest::SiteRules;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// How often a key's "last used" is written at most, per key.
const USE_WRITE_EVERY_MS: u64 = 60_000;

/// Where a site is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `[[sites]]` in the config file: read-only in the product.
    File,
    /// Made through the API.
    Api,
}

impl Source {
    /// `file` or `api`.
    pub fn label(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Api => "api",
        }
    }
}

/// What a read key may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Dashboards: traffic, sessions, funnels, search, the live feed.
    Stats,
    /// Heatmaps and the elements under them.
    Heatmaps,
    /// Raw events (`export`).
    Export,
}

impl Scope {
    /// Every read scope, in the API's order.
    pub const ALL: [Scope; 3] = [Scope::Stats, Scope::Heatmaps, Scope::Export];

    /// Its name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Stats => "stats",
            Scope::Heatmaps => "heatmaps",
            Scope::Export => "export",
        }
    }

    fn named(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// An ingest key of a site: from the file (`ingest_keys_sha256`) or made in the product.
#[derive(Clone, Debug)]
pub struct IngestKey {
    /// Its label in the metrics: the digest's first 8 hex digits, or the key's prefix.
    pub label: String,
    /// The key's id when made in the product (its use is recorded).
    pub id: Option<String>,
    /// Until when it works, ms; 0: no end.
    pub expires_at: u64,
}

/// One site as every stage sees it.
#[derive(Debug)]
pub struct Site {
    /// Its settings: a file site's own; a product site's fields, every other one at its
    /// default (no rate of its own, default search names, goals and anomaly rules).
    pub config: SiteConfig,
    /// Where it is defined.
    pub source: Source,
    /// For people (a file site's is its id).
    pub name: String,
    /// Its time zone (`UTC` for file sites).
    pub timezone: String,
    /// When it was made in the product, ms; 0 for file sites.
    pub created_at: u64,
    /// SHA-256 of the file's `api_token`.
    read_digest: Option<[u8; 32]>,
    /// The digests of its ingest keys, in the order of `ingest_keys`.
    ingest_digests: Vec<[u8; 32]>,
    ingest_keys: Vec<IngestKey>,
    /// Whether a read key of it works now.
    has_read_keys: bool,
}

impl SiteRules for Site {
    fn origins(&self) -> &[String] {
        &self.config.origins
    }
    fn ingest_keys(&self) -> &[[u8; 32]] {
        &self.ingest_digests
    }
    fn require_key(&self) -> bool {
        self.config.require_key
    }
}

impl Site {
    fn of_file(c: &SiteConfig) -> Site {
        let read_digest = if !c.api_token_sha256.is_empty() {
            crate::hex::decode(&c.api_token_sha256)
        } else if !c.api_token.is_empty() {
            Some(Sha256::digest(c.api_token.as_bytes()).into())
        } else {
            None
        };
        let (ingest_digests, ingest_keys) = c
            .ingest_keys_sha256
            .iter()
            .filter_map(|k| {
                let label = k.get(..8).unwrap_or_default().to_ascii_lowercase();
                let key = IngestKey {
                    label,
                    id: None,
                    expires_at: 0,
                };
                Some((crate::hex::decode(k)?, key))
            })
            .unzip();
        Site {
            config: c.clone(),
            source: Source::File,
            name: c.id.clone(),
            timezone: "UTC".into(),
            created_at: 0,
            read_digest,
            ingest_digests,
            ingest_keys,
            has_read_keys: false,
        }
    }

    fn of_row(r: &SiteRow) -> Site {
        Site {
            config: SiteConfig {
                id: r.id.clone(),
                origins: r.origins.clone(),
                max_events_per_sec: 0,
                search: Default::default(),
                api_token: String::new(),
                api_token_sha256: String::new(),
                ingest_keys_sha256: Vec::new(),
                require_key: false,
                base_url: r.base_url.clone(),
                goals: Vec::new(),
                metric_paths: Vec::new(),
                anomalies: Default::default(),
            },
            source: Source::Api,
            name: r.name.clone(),
            timezone: r.timezone.clone(),
            created_at: r.created_at,
            read_digest: None,
            ingest_digests: Vec::new(),
            ingest_keys: Vec::new(),
            has_read_keys: false,
        }
    }

    /// The ingest key of index `i` (as `pathlight_ingest::check` names it).
    pub fn ingest_key(&self, i: usize) -> Option<&IngestKey> {
        self.ingest_keys.get(i)
    }

    /// Whether signed tokens (live, overlay, viewer) of the site are honoured: only for a site
    /// someone may read with a credential of its own (its API token, a read key, or, for a
    /// site made in the product, its managers' sessions), so that none is ever taken for a
    /// site nobody can read.
    pub fn takes_tokens(&self) -> bool {
        self.read_digest.is_some() || self.has_read_keys || self.source == Source::Api
    }
}

/// A read key, as requests are checked against it.
#[derive(Clone, Debug)]
struct ReadKey {
    id: String,
    site: String,
    scopes: Vec<Scope>,
    expires_at: u64,
}

/// What a request's `Authorization` may do on a site ([`Sites::read_access`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// The site's API token: every scope.
    Token,
    /// A read key with the scope asked for; its id.
    Key(String),
    /// A valid read key of the site without the scope asked for.
    OutOfScope(Scope),
    /// Nothing valid for the site.
    Denied,
}

/// The sites and keys at one instant: what every stage reads.
#[derive(Debug, Default)]
pub struct Sites {
    sites: HashMap<String, Site>,
    /// Live read keys by digest.
    read_keys: HashMap<[u8; 32], ReadKey>,
    /// Every key's latest row, revoked and expired ones included, for the lists.
    keys: Vec<KeyRow>,
}

impl Sites {
    /// The file's sites, the product's (removed ones and those whose id the file defines
    /// left out) and the keys, as live at `now` ms.
    pub fn build(file: &[SiteConfig], rows: &[SiteRow], keys: Vec<KeyRow>, now: u64) -> Sites {
        let mut sites: HashMap<String, Site> = file
            .iter()
            .map(|c| (c.id.clone(), Site::of_file(c)))
            .collect();
        for r in rows.iter().filter(|r| r.removed == 0) {
            sites.entry(r.id.clone()).or_insert_with(|| Site::of_row(r));
        }
        let mut read_keys = HashMap::new();
        let live = |k: &KeyRow| k.revoked == 0 && (k.expires_at == 0 || now < k.expires_at);
        for k in keys.iter().filter(|k| live(k)) {
            let (Some(site), Some(digest)) =
                (sites.get_mut(&k.site), crate::hex::decode(&k.sha256))
            else {
                continue;
            };
            match k.kind.as_str() {
                "read" => {
                    site.has_read_keys = true;
                    let scopes = k.scopes.iter().filter_map(|s| Scope::named(s)).collect();
                    read_keys.insert(
                        digest,
                        ReadKey {
                            id: k.id.clone(),
                            site: k.site.clone(),
                            scopes,
                            expires_at: k.expires_at,
                        },
                    );
                }
                "ingest" => {
                    site.ingest_digests.push(digest);
                    site.ingest_keys.push(IngestKey {
                        label: k.prefix.clone(),
                        id: Some(k.id.clone()),
                        expires_at: k.expires_at,
                    });
                }
                _ => {}
            }
        }
        Sites {
            sites,
            read_keys,
            keys,
        }
    }

    /// The site `id`.
    pub fn get(&self, id: &str) -> Option<&Site> {
        self.sites.get(id)
    }

    /// Every site by id (what `pathlight_ingest::check` looks a batch's site up in).
    pub fn by_id(&self) -> &HashMap<String, Site> {
        &self.sites
    }

    /// Every site, by id.
    pub fn sorted(&self) -> Vec<&Site> {
        let mut all: Vec<&Site> = self.sites.values().collect();
        all.sort_by(|a, b| a.config.id.cmp(&b.config.id));
        all
    }

    /// Whether some site allows browser pages of `origin` to send events (CORS answers are
    /// given before the body says which site a batch is for).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.sites
            .values()
            .any(|s| pathlight_ingest::origin_matches(&s.config.origins, origin))
    }

    /// Every site's origins but `*`, sorted and once each (the viewer frames these).
    pub fn origins(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .sites
            .values()
            .flat_map(|s| s.config.origins.iter().map(String::as_str))
            .filter(|o| *o != "*")
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The keys of `site`, newest first, revoked and expired ones included.
    pub fn keys_of(&self, site: &str) -> Vec<&KeyRow> {
        let mut out: Vec<&KeyRow> = self.keys.iter().filter(|k| k.site == site).collect();
        out.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        out
    }

    /// What `authorization` (`Bearer <token or key>`) may read of `site` at `now` ms, for an
    /// answer of `scope` (none: any read scope will do).
    pub fn read_access(
        &self,
        site: &str,
        authorization: Option<&str>,
        scope: Option<Scope>,
        now: u64,
    ) -> Access {
        let Some(entry) = self.sites.get(site) else {
            return Access::Denied;
        };
        let Some(given) = pathlight_ingest::keys::presented(None, authorization) else {
            return Access::Denied;
        };
        if let Some(digest) = &entry.read_digest
            && pathlight_ingest::keys::matching(std::slice::from_ref(digest), given).is_some()
        {
            return Access::Token;
        }
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        match self.read_keys.get(&digest) {
            Some(k) if k.site == site && (k.expires_at == 0 || now < k.expires_at) => match scope {
                Some(s) if !k.scopes.contains(&s) => Access::OutOfScope(s),
                _ => Access::Key(k.id.clone()),
            },
            _ => Access::Denied,
        }
    }
}

/// When a key was last used: here, and as last written.
#[derive(Clone, Copy, Debug, Default)]
struct Use {
    at: u64,
    written: u64,
}

/// The registry: the current [`Sites`], and how to read, change and refresh them.
pub struct Registry {
    /// `[[sites]]`.
    file: Vec<SiteConfig>,
    /// The longest site id (`limits.max_ident_len`), as the config's rule has it.
    max_id_len: usize,
    /// The deployment's database; none: the file's sites only (tools, benches, fuzzing).
    db: Option<Client>,
    current: RwLock<Arc<Sites>>,
    uses: Mutex<HashMap<String, Use>>,
    versions: crate::dates::VersionClock,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("sites", &self.snapshot().sites.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// The file's sites only, never refreshed.
    pub fn file_only(config: &Config) -> Arc<Registry> {
        Self::build(config, None)
    }

    /// The file's sites now, and the product's from `db` (the deployment's database) once
    /// [`Registry::refresh`] has read them.
    pub fn new(config: &Config, db: Client) -> Arc<Registry> {
        Self::build(config, Some(db))
    }

    fn build(config: &Config, db: Option<Client>) -> Arc<Registry> {
        let now = now_ms().max(0) as u64;
        Arc::new(Registry {
            current: RwLock::new(Arc::new(Sites::build(&config.sites, &[], Vec::new(), now))),
            file: config.sites.clone(),
            max_id_len: config.limits.max_ident_len,
            db,
            uses: Mutex::default(),
            versions: Default::default(),
        })
    }

    /// The sites and keys now.
    pub fn snapshot(&self) -> Arc<Sites> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads both tables again and swaps in the new snapshot.
    pub async fn refresh(&self) -> clickhouse::error::Result<()> {
        let Some(db) = &self.db else {
            return Ok(());
        };
        let (rows, keys) = tokio::try_join!(store::read_sites(db), store::read_keys(db))?;
        let now = now_ms().max(0) as u64;
        let sites = Sites::build(&self.file, &rows, keys, now);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(sites);
        Ok(())
    }

    /// Refreshes every `every` until `stopping` resolves; a failed read keeps the last
    /// snapshot (ingest and reads go on through a short ClickHouse outage).
    pub async fn run_refresh(
        self: Arc<Self>,
        every: std::time::Duration,
        stopping: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = &mut stopping => return,
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "reading the sites and keys failed; keeping the last ones");
            }
        }
    }

    /// A version later than any this collector gave.
    fn version(&self) -> u64 {
        self.versions.next()
    }

    /// Records that the key `id` was used now; writes it when its last write is a minute old
    /// (in the background: the request that used it does not wait).
    pub fn used(&self, id: &str) {
        let Some(row) = self.note_use(id, now_ms().max(0) as u64) else {
            return;
        };
        let (Some(db), Ok(runtime)) = (self.db.clone(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            if let Err(e) = store::insert_keys(&db, &[row]).await {
                tracing::warn!(error = %e, "writing a key's last use failed");
            }
        });
    }

    /// Records a use of the key `id` at `now` ms; the row to write when the key's last use
    /// was written (here, or by any collector as last read) a minute or more before.
    fn note_use(&self, id: &str, now: u64) -> Option<KeyRow> {
        let mut uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = uses.get_mut(id) {
            u.at = now;
            if now.saturating_sub(u.written) < USE_WRITE_EVERY_MS {
                return None;
            }
        }
        let snapshot = self.snapshot();
        let row = snapshot.keys.iter().find(|k| k.id == id)?;
        let u = uses.entry(id.to_owned()).or_insert(Use {
            at: now,
            written: row.last_used_at,
        });
        if now.saturating_sub(u.written) < USE_WRITE_EVERY_MS {
            return None;
        }
        u.written = now;
        Some(KeyRow {
            last_used_at: now,
            version: self.version(),
            ..row.clone()
        })
    }

    /// When the key of `row` was last used, ms: here or as written by any collector; 0: never.
    pub fn last_used(&self, row: &KeyRow) -> u64 {
        let uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
        uses.get(&row.id).map_or(0, |u| u.at).max(row.last_used_at)
    }

    /// The database, for changes.
    fn db(&self) -> Result<&Client, SiteError> {
        self.db
            .as_ref()
            .ok_or_else(|| SiteError::Storage("no database to store sites in".into()))
    }

    /// `row` revoked, with the version that no later write outranks.
    fn revoked(&self, row: &KeyRow) -> KeyRow {
        KeyRow {
            revoked: 1,
            version: self.version() | REVOKED,
            ..row.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn file_site(id: &str, token: &str) -> SiteConfig {
        let mut c = crate::config::Config::for_tests("", "").sites.remove(0);
        c.id = id.into();
        c.api_token = token.into();
        c.origins = vec!["https://a.example".into()];
        c
    }

    fn key(id: &str, site: &str, kind: &str, scopes: &[&str], secret: &str) -> KeyRow {
        KeyRow {
            id: id.into(),
            site: site.into(),
            kind: kind.into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            prefix: format!("pl_{}_{id}", &kind[..1]),
            sha256: crate::hex::encode(&Sha256::digest(secret.as_bytes())),
            ..KeyRow::default()
        }
    }

    #[test]
    fn file_sites_win_removed_ones_go_and_keys_are_found_by_digest_and_scope() {
        let file = [file_site("shop", "file-token")];
        let rows = [
            SiteRow {
                id: "shop".into(),
                origins: vec!["https://other.example".into()],
                ..SiteRow::default()
            },
            SiteRow {
                id: "blog".into(),
                name: "The blog".into(),
                origins: vec!["https://blog.example".into(), "*".into()],
                timezone: "Europe/Berlin".into(),
                ..SiteRow::default()
            },
            SiteRow {
                id: "gone".into(),
                removed: 1,
                ..SiteRow::default()
            },
        ];
        let mut expiring = key("k4", "blog", "read", &["stats"], "k4-secret");
        expiring.expires_at = 2_000;
        let mut revoked = key("k5", "blog", "read", &["stats"], "k5-secret");
        revoked.revoked = 1;
        let keys = vec![
            key("k1", "blog", "read", &["heatmaps"], "k1-secret"),
            key("k2", "blog", "ingest", &["ingest"], "k2-secret"),
            key("k3", "gone", "read", &["stats"], "k3-secret"),
            expiring,
            revoked,
        ];
        let sites = Sites::build(&file, &rows, keys, 1_000);
        let ids: Vec<&str> = sites
            .sorted()
            .iter()
            .map(|s| s.config.id.as_str())
            .collect();
        assert_eq!(ids, ["blog", "shop"]);
        let shop = sites.get("shop").unwrap();
        assert_eq!(
            (shop.source, &shop.config.origins[..]),
            (Source::File, &["https://a.example".to_owned()][..]),
            "the file's definition wins"
        );
        let blog = sites.get("blog").unwrap();
        assert_eq!((blog.source, blog.name.as_str()), (Source::Api, "The blog"));
        assert!(blog.takes_tokens() && shop.takes_tokens());
        assert_eq!(
            sites.origins(),
            ["https://a.example", "https://blog.example"]
        );
        assert!(
            sites.origin_allowed("https://anything.example"),
            "blog allows *"
        );

        let access = |site, auth: &str, scope| sites.read_access(site, Some(auth), scope, 1_000);
        let stats = Some(Scope::Stats);
        assert_eq!(access("shop", "Bearer file-token", stats), Access::Token);
        assert_eq!(access("blog", "Bearer file-token", stats), Access::Denied);
        assert_eq!(
            access("blog", "Bearer k1-secret", Some(Scope::Heatmaps)),
            Access::Key("k1".into())
        );
        assert_eq!(
            access("blog", "bearer  k1-secret", None),
            Access::Key("k1".into())
        );
        assert_eq!(
            access("blog", "Bearer k1-secret", stats),
            Access::OutOfScope(Scope::Stats)
        );
        assert_eq!(
            access("shop", "Bearer k1-secret", None),
            Access::Denied,
            "another site"
        );
        assert_eq!(
            access("blog", "Bearer k2-secret", None),
            Access::Denied,
            "an ingest key"
        );
        assert_eq!(access("gone", "Bearer k3-secret", stats), Access::Denied);
        assert_eq!(
            access("blog", "Bearer k4-secret", stats),
            Access::Key("k4".into())
        );
        assert_eq!(
            sites.read_access("blog", Some("Bearer k4-secret"), stats, 2_000),
            Access::Denied,
            "expired"
        );
        assert_eq!(
            access("blog", "Bearer k5-secret", stats),
            Access::Denied,
            "revoked"
        );
        assert_eq!(access("blog", "Basic k1-secret", None), Access::Denied);

        let ingest = pathlight_ingest::keys::matching(blog.ingest_keys(), "k2-secret");
        assert_eq!(ingest, Some(0));
        assert_eq!(blog.ingest_key(0).unwrap().id.as_deref(), Some("k2"));
        assert_eq!(sites.keys_of("blog").len(), 4);
    }

    #[test]
    fn a_keys_use_is_written_at_most_once_a_minute() {
        let config = crate::config::Config::for_tests("", "");
        let registry = Registry::file_only(&config);
        let mut seen = key("k1", "test", "read", &["stats"], "s");
        seen.last_used_at = 1_000_000;
        let keys = vec![key("k0", "test", "read", &["stats"], "s0"), seen.clone()];
        *registry.current.write().unwrap() = Arc::new(Sites::build(&config.sites, &[], keys, 0));
        let t = 2_000_000;
        let first = registry.note_use("k0", t).unwrap();
        assert_eq!((first.last_used_at, first.revoked), (t, 0));
        assert!(first.version < REVOKED);
        assert!(registry.note_use("k0", t + 59_999).is_none());
        assert_eq!(
            registry.note_use("k0", t + 60_000).unwrap().last_used_at,
            t + 60_000
        );
        // Written by another collector 40 s ago: not again for 20 s.
        assert!(registry.note_use("k1", 1_040_000).is_none());
        assert!(registry.note_use("k1", 1_060_000).is_some());
        assert_eq!(
            registry.last_used(&seen),
            1_060_000,
            "the latest use, as kept here"
        );
        assert!(registry.note_use("nope", t).is_none());
    }

    #[test]
    fn a_file_site_without_a_token_or_keys_takes_no_signed_tokens() {
        let sites = Sites::build(&[file_site("open", "")], &[], Vec::new(), 0);
        assert!(!sites.get("open").unwrap().takes_tokens());
        let keyed = Sites::build(
            &[file_site("open", "")],
            &[],
            vec![key("k", "open", "read", &["stats"], "s")],
            0,
        );
        assert!(keyed.get("open").unwrap().takes_tokens());
    }
}

//! Changes made in the product: sites made, changed and removed, keys made and revoked. Each
//! checks its input, re-reads the tables first (another collector may have just made the same
//! id), writes one new row version per change and refreshes, so the collector that made the
//! change honours it at once and the others at their next refresh.

use super::{Registry, Scope, Source};
use crate::dates::now_ms;
use crate::storage::clickhouse::sites::{self as store, KeyRow, SiteRow};
use serde::Deserialize;

/// Why a change of sites or keys was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum SiteError {
    /// A field is not acceptable.
    #[error("{field}: {detail}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A site with this id exists (in the file or made here).
    #[error("a site with id {0:?} exists")]
    Exists(String),
    /// The site is defined in the config file.
    #[error("site {0:?} is defined in the config file; change it there")]
    ReadOnly(String),
    /// No such site.
    #[error("no site {0:?}")]
    SiteNotFound(String),
    /// No such key of the site.
    #[error("no key {0:?} of this site")]
    KeyNotFound(String),
    /// ClickHouse could not store or check the change.
    #[error("storing the change failed: {0}")]
    Storage(String),
}

impl SiteError {
    /// The machine-readable reason of the JSON answer.
    pub fn reason(&self) -> &'static str {
        match self {
            SiteError::Invalid { .. } => "invalid",
            SiteError::Exists(_) => "site_exists",
            SiteError::ReadOnly(_) => "read_only",
            SiteError::SiteNotFound(_) => "site_not_found",
            SiteError::KeyNotFound(_) => "key_not_found",
            SiteError::Storage(_) => "storage_unavailable",
        }
    }

    /// The field at fault, for a 400.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            SiteError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

fn invalid(field: &'static str, detail: impl Into<String>) -> SiteError {
    SiteError::Invalid {
        field,
        detail: detail.into(),
    }
}

fn storage(e: clickhouse::error::Error) -> SiteError {
    tracing::warn!(error = %e, "storing a change of sites or keys failed");
    SiteError::Storage(e.to_string())
}

/// A site's fields in `POST /api/v1/sites` (all but `id` optional) and `PATCH
/// /api/v1/sites/{id}` (all optional, `id` refused).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteInput {
    /// What the tracker sends: 1 to `limits.max_ident_len` letters, digits, `.`, `_`, `-`.
    pub id: Option<String>,
    /// For people; the id when none.
    pub name: Option<String>,
    /// `https://shop.example` (scheme, host, port), or `*`.
    pub origins: Option<Vec<String>>,
    /// An IANA time zone ClickHouse knows; `UTC` when none.
    pub timezone: Option<String>,
    /// Where the pages live (an http(s) URL), for "Open on site"; empty: the first origin.
    pub base_url: Option<String>,
}

/// A key's fields in `POST /api/v1/sites/{id}/keys`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyInput {
    /// For people: 1 to 100 characters.
    #[serde(default)]
    pub name: String,
    /// `read` or `ingest`.
    #[serde(default)]
    pub kind: String,
    /// Read keys: some of `stats`, `heatmaps`, `export` (all when none); ingest keys:
    /// `ingest` or none.
    pub scopes: Option<Vec<String>>,
    /// RFC 3339; none: the key does not expire.
    pub expires_at: Option<String>,
}

/// The site owner's tag for `site` (README, "Add it to your site"): the tracker loaded
/// first-party, from a path of the site's own that forwards to the collector: `prefix` when the
/// collector is set up with one, else the README's `/_pl`. The one place this text is made.
pub fn snippet(site: &str, prefix: &str) -> String {
    let path = if prefix.is_empty() { "/_pl" } else { prefix };
    let mut id = String::with_capacity(site.len());
    for c in site.chars() {
        match c {
            '&' => id.push_str("&amp;"),
            '"' => id.push_str("&quot;"),
            '<' => id.push_str("&lt;"),
            '>' => id.push_str("&gt;"),
            c => id.push(c),
        }
    }
    format!(r#"<script async src="{path}/p.js" data-site="{id}"></script>"#)
}

// Each field is taken as sent or refused, never trimmed or mended, so that what the OpenAPI
// document's patterns accept is exactly what is stored (the contract test holds them together).

/// A name for people: 1 to 100 characters, not only spaces, no control characters.
fn name(field: &'static str, v: &str) -> Result<String, SiteError> {
    if v.trim().is_empty() || v.chars().count() > 100 || v.chars().any(char::is_control) {
        return Err(invalid(
            field,
            "1 to 100 characters, not only spaces, no control characters",
        ));
    }
    Ok(v.to_owned())
}

/// `http(s)://host[:port]` and nothing more, as browsers send `Origin`.
fn is_origin(v: &str) -> bool {
    v.len() <= 255
        && ["http://", "https://"].iter().any(|scheme| {
            v.strip_prefix(scheme).is_some_and(|host| {
                !host.is_empty()
                    && host.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                    })
            })
        })
}

impl Registry {
    /// The id rule: the config's (1 to `limits.max_ident_len` bytes), and, since the id goes
    /// into URLs and the snippet's HTML, letters, digits, `.`, `_` and `-` only.
    fn check_id(&self, id: &str) -> Result<(), SiteError> {
        let ok = !id.is_empty()
            && id.len() <= self.max_id_len
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if ok {
            Ok(())
        } else {
            Err(invalid(
                "id",
                format!("1 to {} letters, digits, '.', '_' or '-'", self.max_id_len),
            ))
        }
    }

    /// Checks `input`'s fields into `row` (those it names).
    async fn apply(&self, input: SiteInput, row: &mut SiteRow) -> Result<(), SiteError> {
        if let Some(n) = &input.name {
            row.name = name("name", n)?;
        }
        if let Some(origins) = input.origins {
            if origins.len() > 50 {
                return Err(invalid("origins", "50 at most"));
            }
            let mut seen = Vec::new();
            for o in origins {
                if o != "*" && !is_origin(&o) {
                    return Err(invalid(
                        "origins",
                        format!(
                            "{o:?} is not \"*\" or an origin such as https://shop.example (http or https, host, port; no path)"
                        ),
                    ));
                }
                // Browsers send hosts in lower case; matching ignores case, storing need not keep it.
                let o = o.to_ascii_lowercase();
                if !seen.contains(&o) {
                    seen.push(o);
                }
            }
            row.origins = seen;
        }
        if let Some(base) = input.base_url {
            if !base.is_empty() && (base.len() > 2048 || !crate::config::is_origin(&base)) {
                return Err(invalid(
                    "base_url",
                    "an http(s) URL without spaces, quotes, ';' or ','",
                ));
            }
            row.base_url = base;
        }
        if let Some(tz) = input.timezone {
            let tz = tz.as_str();
            let shaped = (1..=64).contains(&tz.len())
                && tz
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
            let unknown = || invalid("timezone", format!("unknown time zone {tz:?}"));
            if !shaped {
                return Err(unknown());
            }
            if let Some(db) = &self.db
                && !store::timezone_known(db, tz).await.map_err(storage)?
            {
                return Err(unknown());
            }
            row.timezone = tz.to_owned();
        }
        Ok(())
    }

    /// Makes a site: `POST /api/v1/sites`.
    pub async fn create_site(&self, input: SiteInput) -> Result<SiteRow, SiteError> {
        let id = input.id.clone().unwrap_or_default();
        self.check_id(&id)?;
        let version = self.version();
        let mut row = SiteRow {
            id: id.clone(),
            name: id.clone(),
            timezone: "UTC".into(),
            created_at: version,
            version,
            ..SiteRow::default()
        };
        self.apply(input, &mut row).await?;
        let db = self.db()?;
        self.refresh().await.map_err(storage)?;
        if self.snapshot().get(&id).is_some() {
            return Err(SiteError::Exists(id));
        }
        store::insert_site(db, &row).await.map_err(storage)?;
        self.refresh().await.map_err(storage)?;
        Ok(row)
    }

    /// The product's row of site `id`, refused for file sites.
    fn own_row(&self, id: &str) -> Result<SiteRow, SiteError> {
        let snapshot = self.snapshot();
        let site = snapshot
            .get(id)
            .ok_or_else(|| SiteError::SiteNotFound(id.to_owned()))?;
        if site.source == Source::File {
            return Err(SiteError::ReadOnly(id.to_owned()));
        }
        Ok(SiteRow {
            id: site.config.id.clone(),
            name: site.name.clone(),
            origins: site.config.origins.clone(),
            timezone: site.timezone.clone(),
            base_url: site.config.base_url.clone(),
            created_at: site.created_at,
            version: 0,
            removed: 0,
        })
    }

    /// Changes the fields `input` names: `PATCH /api/v1/sites/{id}`.
    pub async fn update_site(&self, id: &str, input: SiteInput) -> Result<SiteRow, SiteError> {
        if input.id.is_some() {
            return Err(invalid(
                "id",
                "a site's id is in its path and cannot change",
            ));
        }
        let db = self.db()?;
        self.refresh().await.map_err(storage)?;
        let mut row = self.own_row(id)?;
        self.apply(input, &mut row).await?;
        row.version = self.version();
        store::insert_site(db, &row).await.map_err(storage)?;
        self.refresh().await.map_err(storage)?;
        Ok(row)
    }

    /// Removes a site made in the product, revoking its keys first (so that a site made again
    /// with the id does not bring them back): `DELETE /api/v1/sites/{id}`. Its events stay.
    pub async fn remove_site(&self, id: &str) -> Result<(), SiteError> {
        let db = self.db()?;
        self.refresh().await.map_err(storage)?;
        let row = self.own_row(id)?;
        let keys: Vec<KeyRow> = self
            .snapshot()
            .keys_of(id)
            .into_iter()
            .filter(|k| k.revoked == 0)
            .map(|k| self.revoked(k))
            .collect();
        store::insert_keys(db, &keys).await.map_err(storage)?;
        let removed = SiteRow {
            removed: 1,
            version: self.version(),
            ..row
        };
        store::insert_site(db, &removed).await.map_err(storage)?;
        self.refresh().await.map_err(storage)
    }

    /// Makes a key of `site` for the account `by`: its row and its text, shown this once.
    pub async fn create_key(
        &self,
        site: &str,
        input: KeyInput,
        by: &str,
    ) -> Result<(KeyRow, String), SiteError> {
        if self.snapshot().get(site).is_none() {
            return Err(SiteError::SiteNotFound(site.to_owned()));
        }
        let name = name("name", &input.name)?;
        let (letter, scopes) = match input.kind.as_str() {
            "read" => {
                let asked = input
                    .scopes
                    .unwrap_or_else(|| Scope::ALL.iter().map(|s| s.name().to_owned()).collect());
                // In the API's order, once each, whatever order they were sent in.
                let scopes: Vec<String> = Scope::ALL
                    .iter()
                    .map(|s| s.name())
                    .filter(|s| asked.iter().any(|a| a == s))
                    .map(str::to_owned)
                    .collect();
                let unknown = asked.iter().find(|a| Scope::named(a).is_none());
                if scopes.len() < asked.len() && unknown.is_none() {
                    return Err(invalid("scopes", "each scope once"));
                }
                if let Some(u) = unknown {
                    return Err(invalid(
                        "scopes",
                        format!("{u:?}: a read key's scopes are stats, heatmaps and export"),
                    ));
                }
                if scopes.is_empty() {
                    return Err(invalid("scopes", "at least one of stats, heatmaps, export"));
                }
                ('r', scopes)
            }
            "ingest" => {
                let scopes = input.scopes.unwrap_or_else(|| vec!["ingest".into()]);
                if scopes != ["ingest"] {
                    return Err(invalid("scopes", "an ingest key's one scope is ingest"));
                }
                ('i', scopes)
            }
            _ => return Err(invalid("kind", "read or ingest")),
        };
        let now = now_ms().max(0) as u64;
        let expires_at = match input.expires_at.as_deref() {
            None => 0,
            Some(t) => {
                let at = crate::dates::parse_rfc3339(t).ok_or_else(|| {
                    invalid("expires_at", "an RFC 3339 time, 2026-12-31T23:59:59Z")
                })?;
                if at <= now as i64 {
                    return Err(invalid("expires_at", "must be in the future"));
                }
                at as u64
            }
        };
        let prefix = format!("pl_{letter}_{}", random_chars(8)?);
        let key = format!("{prefix}_{}", random_b64(32)?);
        let version = self.version();
        let row = KeyRow {
            id: random_chars(16)?,
            site: site.to_owned(),
            name,
            kind: input.kind,
            scopes,
            prefix,
            sha256: crate::hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes())),
            created_at: version,
            created_by: by.to_owned(),
            expires_at,
            last_used_at: 0,
            revoked: 0,
            version,
        };
        store::insert_keys(self.db()?, std::slice::from_ref(&row))
            .await
            .map_err(storage)?;
        self.refresh().await.map_err(storage)?;
        Ok((row, key))
    }

    /// Revokes the key `id` of `site`: `DELETE /api/v1/sites/{site}/keys/{id}`. Revoking a
    /// revoked key changes nothing.
    pub async fn revoke_key(&self, site: &str, id: &str) -> Result<(), SiteError> {
        let db = self.db()?;
        self.refresh().await.map_err(storage)?;
        let snapshot = self.snapshot();
        let row = snapshot
            .keys_of(site)
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SiteError::KeyNotFound(id.to_owned()))?;
        if row.revoked == 1 {
            return Ok(());
        }
        store::insert_keys(db, &[self.revoked(row)])
            .await
            .map_err(storage)?;
        self.refresh().await.map_err(storage)
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], SiteError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| SiteError::Storage(format!("no randomness: {e}")))?;
    Ok(b)
}

/// `n` random lowercase letters and digits (ids and the keys' recognisable prefixes).
fn random_chars(n: usize) -> Result<String, SiteError> {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let bytes = random_bytes::<32>()?;
    Ok(bytes[..n.min(32)]
        .iter()
        .map(|b| ALPHABET[usize::from(b & 31)] as char)
        .collect())
}

fn random_b64(n: usize) -> Result<String, SiteError> {
    use base64::Engine;
    let bytes = random_bytes::<32>()?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..n.min(32)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_snippet_is_the_readmes_first_party_tag() {
        let readme = include_str!("../../../README.md");
        let tag = snippet("shop", "");
        assert!(readme.contains(&format!("```html\n{tag}\n```")), "{tag}");
        assert_eq!(
            snippet("a\"b<c", "/stats"),
            r#"<script async src="/stats/p.js" data-site="a&quot;b&lt;c"></script>"#
        );
    }

    #[tokio::test]
    async fn bad_ids_origins_names_and_keys_are_refused_by_field() {
        let registry = Registry::file_only(&Config::for_tests("", ""));
        for bad in ["", "a b", "a/b", "é", &"a".repeat(300)] {
            let e = registry.check_id(bad).unwrap_err();
            assert_eq!(e.field(), Some("id"), "{bad:?}");
        }
        registry.check_id("shop-1.example_2").unwrap();
        let field = |input: SiteInput| {
            let registry = registry.clone();
            async move {
                let mut row = SiteRow::default();
                registry
                    .apply(input, &mut row)
                    .await
                    .err()
                    .and_then(|e| e.field())
            }
        };
        for origin in [
            "shop.example",
            "https://a.example/path",
            "https://a.example/",
            "HTTPS://a.example",
            " https://a.example",
            "ftp://a.example",
            "https://",
        ] {
            let input = SiteInput {
                origins: Some(vec![origin.into()]),
                ..SiteInput::default()
            };
            assert_eq!(field(input).await, Some("origins"), "{origin}");
        }
        for tz in ["", "Europe/Berlin; DROP", &"a".repeat(65)] {
            let input = SiteInput {
                timezone: Some(tz.into()),
                ..SiteInput::default()
            };
            assert_eq!(field(input).await, Some("timezone"), "{tz:?}");
        }
        let input = SiteInput {
            name: Some("\u{7}".into()),
            ..SiteInput::default()
        };
        assert_eq!(field(input).await, Some("name"));
        let input = SiteInput {
            base_url: Some("javascript:alert(1)".into()),
            ..SiteInput::default()
        };
        assert_eq!(field(input).await, Some("base_url"));
        let mut row = SiteRow::default();
        let fine = SiteInput {
            origins: Some(vec![
                "https://Shop.example".into(),
                "https://shop.example".into(),
                "*".into(),
            ]),
            ..SiteInput::default()
        };
        registry.apply(fine, &mut row).await.unwrap();
        assert_eq!(row.origins, ["https://shop.example", "*"]);

        let key = |kind: &str, scopes: Option<Vec<&str>>, expires: Option<&str>| KeyInput {
            name: "ci".into(),
            kind: kind.into(),
            scopes: scopes.map(|s| s.into_iter().map(str::to_owned).collect()),
            expires_at: expires.map(str::to_owned),
        };
        for (input, field) in [
            (key("write", None, None), "kind"),
            (key("read", Some(vec![]), None), "scopes"),
            (key("read", Some(vec!["stats", "admin"]), None), "scopes"),
            (key("ingest", Some(vec!["stats"]), None), "scopes"),
            (key("read", None, Some("tomorrow")), "expires_at"),
            (key("read", None, Some("")), "expires_at"),
            (key("read", Some(vec!["stats", "stats"]), None), "scopes"),
            (key("ingest", Some(vec![]), None), "scopes"),
            (
                key("read", None, Some("2001-01-01T00:00:00Z")),
                "expires_at",
            ),
        ] {
            let e = registry.create_key("test", input, "a").await.unwrap_err();
            assert_eq!(e.field(), Some(field), "{e}");
        }
        let unnamed = KeyInput {
            name: " ".into(),
            ..key("read", None, None)
        };
        let e = registry.create_key("test", unnamed, "a").await.unwrap_err();
        assert_eq!(e.field(), Some("name"));
        let e = registry
            .create_key("nope", key("read", None, None), "a")
            .await;
        assert_eq!(e.unwrap_err(), SiteError::SiteNotFound("nope".into()));
    }

    #[test]
    fn random_parts_are_of_their_alphabet_and_length() {
        let p = random_chars(8).unwrap();
        assert_eq!(p.len(), 8);
        assert!(
            p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_eq!(random_b64(32).unwrap().len(), 43);
        assert_ne!(random_chars(16).unwrap(), random_chars(16).unwrap());
    }
}

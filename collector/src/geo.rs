//! Country (and, with a City database, region and city) for a client address: from a MaxMind
//! `.mmdb` file when configured, else from a header a trusted proxy or CDN sets.

use crate::config::Config;
use anyhow::Context;
use pathlight_wire::Geo;
use std::net::IpAddr;

/// The configured lookup.
pub struct GeoLookup {
    reader: Option<maxminddb::Reader<Vec<u8>>>,
}

impl GeoLookup {
    /// Opens the database, if one is configured. A configured but unreadable file is an error
    /// at start, not a silent loss of every country.
    pub fn open(config: &Config) -> anyhow::Result<GeoLookup> {
        let reader = match &config.geoip_db {
            Some(path) => Some(
                maxminddb::Reader::open_readfile(path)
                    .with_context(|| format!("opening geoip_db {}", path.display()))?,
            ),
            None => None,
        };
        Ok(GeoLookup { reader })
    }

    /// Looks `ip` up; `header_country` is the trusted header's value, used when the database
    /// is absent or does not know the address.
    pub fn lookup(&self, ip: Option<IpAddr>, header_country: Option<&str>) -> Geo {
        let mut geo = Geo::default();
        let record = match (&self.reader, ip) {
            (Some(reader), Some(ip)) => reader.lookup::<maxminddb::geoip2::City>(ip).ok().flatten(),
            _ => None,
        };
        if let Some(rec) = record {
            let en = |names: Option<std::collections::BTreeMap<&str, &str>>| {
                names
                    .and_then(|n| n.get("en").map(|s| s.to_string()))
                    .unwrap_or_default()
            };
            geo.country = rec
                .country
                .and_then(|c| c.iso_code)
                .unwrap_or_default()
                .to_owned();
            geo.city = en(rec.city.and_then(|c| c.names));
            geo.region = rec
                .subdivisions
                .and_then(|s| s.into_iter().next())
                .and_then(|s| s.iso_code)
                .unwrap_or_default()
                .to_owned();
        }
        if geo.country.is_empty() {
            geo.country = header_country.and_then(country_code).unwrap_or_default();
        }
        geo
    }
}

/// An ISO 3166-1 alpha-2 code from a header, or none. Cloudflare's `XX` (unknown) and
/// `T1` (Tor) are not countries.
fn country_code(v: &str) -> Option<String> {
    let v = v.trim();
    (v.len() == 2 && v.bytes().all(|b| b.is_ascii_alphabetic()) && !v.eq_ignore_ascii_case("xx"))
        .then(|| v.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_countries_are_checked_and_normalised() {
        let g = GeoLookup { reader: None };
        assert_eq!(g.lookup(None, Some("de")).country, "DE");
        assert_eq!(g.lookup(None, Some("XX")).country, "");
        assert_eq!(g.lookup(None, Some("T1")).country, "");
        assert_eq!(g.lookup(None, Some("<script>")).country, "");
    }
}

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
            geo.country = header_country
                .and_then(pathlight_ingest::rules::country_code)
                .unwrap_or_default();
        }
        geo
    }
}

/// An ISO 3166-1 alpha-2 code from a header, or none. Cloudflare's `XX` (unknown) and
/// `T1` (Tor) are not countries.
#[cfg(test)]
mod tests {
    use super::*;

    /// A MaxMind DB (format 2.0, IPv4, 24-bit records) holding one network, 203.0.0.0/8, built
    /// byte by byte from the format spec, so the lookup runs through the real reader.
    fn one_network_mmdb() -> Vec<u8> {
        fn s(out: &mut Vec<u8>, v: &str) {
            out.push(0x40 | v.len() as u8);
            out.extend_from_slice(v.as_bytes());
        }
        fn map(out: &mut Vec<u8>, n: u8) {
            out.push(0xe0 | n);
        }
        fn u16_(out: &mut Vec<u8>, v: u16) {
            out.extend_from_slice(&[0xa2, (v >> 8) as u8, v as u8]);
        }
        let prefix = [1, 1, 0, 0, 1, 0, 1, 1]; // 203 = 0b1100_1011
        let node_count = prefix.len() as u32;
        let mut out = Vec::new();
        for (i, bit) in prefix.iter().enumerate() {
            let next = if i + 1 == prefix.len() {
                node_count + 16
            } else {
                i as u32 + 1
            };
            let (left, right) = if *bit == 0 {
                (next, node_count)
            } else {
                (node_count, next)
            };
            for r in [left, right] {
                out.extend_from_slice(&r.to_be_bytes()[1..]);
            }
        }
        out.extend_from_slice(&[0; 16]);
        map(&mut out, 3);
        s(&mut out, "country");
        map(&mut out, 1);
        s(&mut out, "iso_code");
        s(&mut out, "DE");
        s(&mut out, "city");
        map(&mut out, 1);
        s(&mut out, "names");
        map(&mut out, 1);
        s(&mut out, "en");
        s(&mut out, "Berlin");
        s(&mut out, "subdivisions");
        out.extend_from_slice(&[0x01, 0x04]); // array of 1 (extended type 11)
        map(&mut out, 1);
        s(&mut out, "iso_code");
        s(&mut out, "BE");
        out.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
        map(&mut out, 9);
        s(&mut out, "binary_format_major_version");
        u16_(&mut out, 2);
        s(&mut out, "binary_format_minor_version");
        u16_(&mut out, 0);
        s(&mut out, "build_epoch");
        out.extend_from_slice(&[0x04, 0x02, 0x65, 0x00, 0x00, 0x00]); // uint64 (extended type 9)
        s(&mut out, "database_type");
        s(&mut out, "GeoIP2-City");
        s(&mut out, "description");
        map(&mut out, 1);
        s(&mut out, "en");
        s(&mut out, "test");
        s(&mut out, "ip_version");
        u16_(&mut out, 4);
        s(&mut out, "languages");
        out.extend_from_slice(&[0x01, 0x04]);
        s(&mut out, "en");
        s(&mut out, "node_count");
        out.extend_from_slice(&[0xc1, node_count as u8]);
        s(&mut out, "record_size");
        u16_(&mut out, 24);
        out
    }

    #[test]
    fn database_answers_win_over_the_header_which_fills_the_gaps() {
        let reader = maxminddb::Reader::from_source(one_network_mmdb()).unwrap();
        let g = GeoLookup {
            reader: Some(reader),
        };
        let hit = g.lookup(Some("203.0.113.7".parse().unwrap()), Some("FR"));
        assert_eq!(
            (hit.country.as_str(), hit.region.as_str(), hit.city.as_str()),
            ("DE", "BE", "Berlin")
        );
        let miss = g.lookup(Some("10.1.2.3".parse().unwrap()), Some("fr"));
        assert_eq!((miss.country.as_str(), miss.city.as_str()), ("FR", ""));
        assert_eq!(g.lookup(None, None).country, "");
    }

    #[test]
    fn header_countries_are_checked_and_normalised() {
        let g = GeoLookup { reader: None };
        assert_eq!(g.lookup(None, Some("de")).country, "DE");
        assert_eq!(g.lookup(None, Some("XX")).country, "");
        assert_eq!(g.lookup(None, Some("T1")).country, "");
        assert_eq!(g.lookup(None, Some("<script>")).country, "");
    }
}

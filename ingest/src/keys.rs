//! Ingest keys: how a server writes into a site. A browser proves nothing but its page's
//! `Origin`, which the site lists; a server sends none, and so, without keys, anyone could
//! write into any site. A site may hold ingest keys (only their SHA-256 digests are
//! configured; `pathlight hash-token` prints one): a request with `X-API-Key: <key>` (or
//! `Authorization: Bearer <key>`) is then accepted from anywhere for that site, and with
//! `require_key` a request from no allowed origin without a valid key is refused (`401`).
//! A wrong key is always refused, origin or not: a sender that means to authenticate and
//! fails should hear so. Two keys may be valid at once, so one replaces the other without a
//! gap: deploy the new one beside the old, move the senders, remove the old.

use crate::error::IngestError;
use crate::stages::{SiteRules, origin_matches};
use sha2::{Digest, Sha256};

/// The key a request carries: `X-API-Key`, else a bearer token.
pub fn presented<'a>(
    x_api_key: Option<&'a str>,
    authorization: Option<&'a str>,
) -> Option<&'a str> {
    let bearer = authorization
        .map(str::trim)
        .and_then(|a| a.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    x_api_key
        .map(str::trim)
        .or(bearer)
        .filter(|k| !k.is_empty())
}

/// Which of `digests` is the SHA-256 of `key`, each compared in constant time.
pub fn matching(digests: &[[u8; 32]], key: &str) -> Option<usize> {
    let given: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    let same = |d: &[u8; 32]| d.iter().zip(&given).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    digests.iter().position(same)
}

/// Whether a request for `site` may write into it: the index of the key it carried, none
/// when it came without one from an allowed origin (or, the site requiring no key, from no
/// origin at all).
pub fn admit<S: SiteRules>(
    site: &S,
    key: Option<&str>,
    origin: Option<&str>,
    site_id: &str,
) -> Result<Option<usize>, IngestError> {
    if let Some(key) = key {
        return matching(site.ingest_keys(), key)
            .map(Some)
            .ok_or_else(|| IngestError::InvalidKey(site_id.to_owned()));
    }
    let allowed = origin.map(|o| origin_matches(site.origins(), o));
    match allowed {
        Some(true) => Ok(None),
        _ if site.require_key() => Err(IngestError::KeyRequired(site_id.to_owned())),
        Some(false) => Err(IngestError::OriginNotAllowed {
            origin: origin.unwrap_or_default().to_owned(),
            site: site_id.to_owned(),
        }),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Site {
        origins: Vec<String>,
        keys: Vec<[u8; 32]>,
        require_key: bool,
    }

    impl SiteRules for Site {
        fn origins(&self) -> &[String] {
            &self.origins
        }
        fn ingest_keys(&self) -> &[[u8; 32]] {
            &self.keys
        }
        fn require_key(&self) -> bool {
            self.require_key
        }
    }

    fn site(require_key: bool) -> Site {
        Site {
            origins: vec!["https://shop.example".into()],
            keys: ["old", "new"]
                .map(|k| Sha256::digest(k.as_bytes()).into())
                .to_vec(),
            require_key,
        }
    }

    fn reason(r: Result<Option<usize>, IngestError>) -> Result<Option<usize>, &'static str> {
        r.map_err(|e| e.reason())
    }

    #[test]
    fn a_key_opens_the_site_from_anywhere_and_a_wrong_one_is_refused() {
        for require in [false, true] {
            let s = site(require);
            let admit = |k, o| reason(admit(&s, k, o, "shop"));
            assert_eq!(admit(Some("old"), None), Ok(Some(0)));
            assert_eq!(
                admit(Some("new"), Some("https://else.example")),
                Ok(Some(1))
            );
            assert_eq!(admit(Some("guess"), None), Err("invalid_key"));
            assert_eq!(
                admit(Some("guess"), Some("https://shop.example")),
                Err("invalid_key")
            );
            assert_eq!(admit(None, Some("https://shop.example")), Ok(None));
        }
    }

    #[test]
    fn without_a_key_the_site_says_whether_servers_may_write() {
        let open = site(false);
        assert_eq!(reason(admit(&open, None, None, "shop")), Ok(None));
        assert_eq!(
            reason(admit(&open, None, Some("https://else.example"), "shop")),
            Err("origin_not_allowed")
        );
        let closed = site(true);
        assert_eq!(
            reason(admit(&closed, None, None, "shop")),
            Err("key_required")
        );
        assert_eq!(
            reason(admit(&closed, None, Some("https://else.example"), "shop")),
            Err("key_required")
        );
    }

    #[test]
    fn the_key_is_read_from_x_api_key_or_a_bearer_token() {
        assert_eq!(presented(Some(" k1 "), Some("Bearer k2")), Some("k1"));
        assert_eq!(presented(None, Some("bearer  k2")), Some("k2"));
        assert_eq!(presented(None, Some("Basic k2")), None);
        assert_eq!(presented(Some(""), None), None);
        assert_eq!(presented(None, None), None);
    }
}

//! Signed tokens for where the API token and keys must not go. Who may read a site by its API
//! token or a read key is the registry's to say (`crate::sites`, [`crate::sites::Access`]).
//! For the live overlay, which runs inside pages, the API hands out live tokens: bound to one
//! site, expiring, and signed with a key derived from `hash_secret` (so every collector of a
//! deployment accepts them), checked without a lookup. The query API honours them only for a
//! site someone may read by a credential of its own (`Site::takes_tokens`).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// How long a live token is valid, seconds.
pub const LIVE_TOKEN_TTL_SECS: u64 = 3600;

/// SHA-256 of a token, as `api_token_sha256` holds it (lowercase hex).
pub fn digest_hex(token: &str) -> String {
    crate::hex::encode(&Sha256::digest(token.as_bytes()))
}

/// Whether `authorization` is `Bearer <a token whose SHA-256 is digest>`, compared in constant
/// time. The scheme's case does not matter (RFC 9110, 11.1).
pub fn bearer_matches(digest: &[u8; 32], authorization: Option<&str>) -> bool {
    let given = authorization
        .map(str::trim)
        .and_then(|a| a.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim_start());
    same(digest, &Sha256::digest(given.as_bytes()).into())
}

/// Equal in time independent of where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The live-token key.
pub struct Auth {
    key: [u8; 32],
}

impl Auth {
    /// From the deployment's `hash_secret`.
    pub fn new(hash_secret: &str) -> Auth {
        let key = Sha256::digest(format!("pathlight live token\n{hash_secret}").as_bytes()).into();
        Auth { key }
    }

    /// The HMAC of a token of `purpose` (empty for live tokens, which came first) for `site`
    /// until `expires`: its own purpose line, so a token of one kind is never one of another.
    fn signature(&self, purpose: &[u8], site: &str, expires: u64) -> [u8; 32] {
        // A key of any length is accepted by HMAC.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(purpose);
        mac.update(site.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// `<expiry>.<hmac hex>` of `purpose` for `site`, valid `ttl` seconds from `now_secs`.
    fn issue(&self, purpose: &[u8], site: &str, now_secs: u64, ttl: u64) -> (String, u64) {
        let expires = now_secs + ttl;
        let sig = crate::hex::encode(&self.signature(purpose, site, expires));
        (format!("{expires}.{sig}"), expires)
    }

    /// Whether `token` is a token of `purpose` for `site` that has not expired.
    fn verify(&self, purpose: &[u8], site: &str, token: &str, now_secs: u64) -> bool {
        let Some((expires, sig)) = token.split_once('.') else {
            return false;
        };
        let (Ok(expires), Some(sig)) = (expires.parse::<u64>(), crate::hex::decode(sig)) else {
            return false;
        };
        now_secs < expires && same(&self.signature(purpose, site, expires), &sig)
    }

    /// A live token for `site`, valid until `now + LIVE_TOKEN_TTL_SECS`: `<expiry>.<hmac hex>`.
    pub fn issue_live(&self, site: &str, now_secs: u64) -> (String, u64) {
        self.issue(b"", site, now_secs, LIVE_TOKEN_TTL_SECS)
    }

    /// Whether `token` is a live token of `site` that has not expired.
    pub fn live(&self, site: &str, token: &str, now_secs: u64) -> bool {
        self.verify(b"", site, token, now_secs)
    }
}

/// How long an overlay token is valid, seconds: long enough to open the page and look, short
/// enough that a link found later (in a history, a chat) no longer reads anything.
pub const OVERLAY_TOKEN_TTL_SECS: u64 = 600;

impl Auth {
    /// An overlay token for `site`, valid until `now + OVERLAY_TOKEN_TTL_SECS`:
    /// `<expiry>.<hmac hex>`. It reads the site's heatmap and elements, nothing else.
    pub fn issue_overlay(&self, site: &str, now_secs: u64) -> (String, u64) {
        self.issue(b"overlay\n", site, now_secs, OVERLAY_TOKEN_TTL_SECS)
    }

    /// Whether `token` is an overlay token of `site` that has not expired.
    pub fn overlay(&self, site: &str, token: &str, now_secs: u64) -> bool {
        self.verify(b"overlay\n", site, token, now_secs)
    }

    /// A viewer token for `site`, bound to the origin the heatmap viewer runs on (`viewer`),
    /// as long-lived as an overlay token. A tracker framed by that viewer and loaded from the
    /// site's own origin (a first-party path) has the collector check it before it answers
    /// layout questions from an origin other than its script's.
    pub fn issue_viewer(&self, site: &str, viewer: &str, now_secs: u64) -> (String, u64) {
        let purpose = format!("viewer\n{viewer}\n");
        self.issue(purpose.as_bytes(), site, now_secs, OVERLAY_TOKEN_TTL_SECS)
    }

    /// Whether `token` is a viewer token of `site` for the viewer at origin `viewer`.
    pub fn viewer(&self, site: &str, viewer: &str, token: &str, now_secs: u64) -> bool {
        let purpose = format!("viewer\n{viewer}\n");
        self.verify(purpose.as_bytes(), site, token, now_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_tokens_are_bound_to_their_site_and_purpose_and_expire() {
        let auth = Auth::new("k");
        let (token, expires) = auth.issue_overlay("a", 1_000);
        assert_eq!(expires, 1_000 + OVERLAY_TOKEN_TTL_SECS);
        assert!(auth.overlay("a", &token, 1_000));
        let (viewer, _) = auth.issue_viewer("a", "https://pl.example.net", 1_000);
        assert!(auth.viewer("a", "https://pl.example.net", &viewer, 1_000));
        assert!(
            !auth.viewer("a", "https://evil.example", &viewer, 1_000),
            "another viewer"
        );
        assert!(
            !auth.overlay("a", &viewer, 1_000),
            "a viewer token is not an overlay token"
        );
        assert!(!auth.viewer("a", "https://pl.example.net", &token, 1_000));
        assert!(!auth.overlay("a", &token, expires), "expired");
        assert!(!auth.overlay("b", &token, 1_000), "another site");
        assert!(!auth.live("a", &token, 1_000), "not a live token");
        let (live, _) = auth.issue_live("a", 1_000);
        assert!(
            !auth.overlay("a", &live, 1_000),
            "a live token is not an overlay token"
        );
        assert!(
            !Auth::new("other").overlay("a", &token, 1_000),
            "another deployment's"
        );
    }

    #[test]
    fn bearers_match_by_digest_and_scheme() {
        let digest: [u8; 32] = Sha256::digest(b"secret-a").into();
        assert_eq!(digest_hex("secret-a"), crate::hex::encode(&digest));
        for scheme in [
            "Bearer secret-a",
            "bearer secret-a",
            "BEARER  secret-a",
            " Bearer secret-a ",
        ] {
            assert!(bearer_matches(&digest, Some(scheme)), "{scheme:?}");
        }
        for wrong in [
            "Basic secret-a",
            "Bearersecret-a",
            "secret-a",
            "Bearer secret-a x",
            "Bearer secret-b",
        ] {
            assert!(!bearer_matches(&digest, Some(wrong)), "{wrong:?}");
        }
        assert!(!bearer_matches(&digest, None));
    }

    #[test]
    fn live_tokens_are_bound_to_their_site_and_expire() {
        let auth = Auth::new("k");
        let (token, expires) = auth.issue_live("a", 1_000);
        assert_eq!(expires, 1_000 + LIVE_TOKEN_TTL_SECS);
        assert!(auth.live("a", &token, 1_001));
        assert!(!auth.live("b", &token, 1_001), "another site");
        assert!(!auth.live("a", &token, expires), "expired");
        let forged = format!("{}.{}", expires + 10_000, token.split_once('.').unwrap().1);
        assert!(
            !auth.live("a", &forged, 1_001),
            "a moved expiry breaks the signature"
        );
        assert!(
            !Auth::new("other").live("a", &token, 1_001),
            "another deployment's key"
        );
        assert!(!auth.live("a", "garbage", 1_001));
    }
}

/// How long a shared link's read token is valid at most, seconds (never past the share's own
/// expiry). Every read also asks whether the share still stands, so a revocation does not wait
/// for it.
pub const SHARE_TOKEN_TTL_SECS: u64 = 3600;

/// The share id a shared link's read token names (`<share id>.<expiry>.<hmac hex>`), if
/// `token` has that form; other tokens have one dot at most.
pub fn share_token_id(token: &str) -> Option<&str> {
    let (id, rest) = token.split_once('.')?;
    (rest.contains('.') && !id.is_empty() && id.len() <= 64).then_some(id)
}

impl Auth {
    /// A read token of the shared link `share_id` of `site`, valid until `now +
    /// SHARE_TOKEN_TTL_SECS` or `until_secs` (the share's expiry, 0: none), whichever comes
    /// first: `<share id>.<expiry>.<hmac hex>`. It is signed for the share, not for a scope: the
    /// query API reads the share's scope from the share itself, while it stands.
    pub fn issue_share(
        &self,
        site: &str,
        share_id: &str,
        now_secs: u64,
        until_secs: u64,
    ) -> (String, u64) {
        let mut ttl = SHARE_TOKEN_TTL_SECS;
        if until_secs != 0 {
            ttl = ttl.min(until_secs.saturating_sub(now_secs));
        }
        let purpose = format!("share\n{share_id}\n");
        let (token, expires) = self.issue(purpose.as_bytes(), site, now_secs, ttl);
        (format!("{share_id}.{token}"), expires)
    }

    /// Whether `token` is a read token of the shared link `share_id` of `site`, not expired.
    pub fn share(&self, site: &str, share_id: &str, token: &str, now_secs: u64) -> bool {
        let Some(rest) = token
            .strip_prefix(share_id)
            .and_then(|r| r.strip_prefix('.'))
        else {
            return false;
        };
        let purpose = format!("share\n{share_id}\n");
        self.verify(purpose.as_bytes(), site, rest, now_secs)
    }
}

#[cfg(test)]
mod share_tests {
    use super::*;

    #[test]
    fn share_tokens_are_bound_to_their_share_and_site_and_expire() {
        let auth = Auth::new("k");
        let (token, expires) = auth.issue_share("a", "s1", 1_000, 0);
        assert_eq!(expires, 1_000 + SHARE_TOKEN_TTL_SECS);
        assert_eq!(share_token_id(&token), Some("s1"));
        assert!(auth.share("a", "s1", &token, 1_000));
        assert!(!auth.share("a", "s2", &token, 1_000), "another share");
        assert!(!auth.share("b", "s1", &token, 1_000), "another site");
        assert!(!auth.share("a", "s1", &token, expires), "expired");
        let forged = token.replacen("s1.", "s2.", 1);
        assert!(!auth.share("a", "s2", &forged, 1_000), "the id is signed");
        let (overlay, _) = auth.issue_overlay("a", 1_000);
        assert_eq!(share_token_id(&overlay), None);
        assert!(!auth.share("a", "s1", &format!("s1.{overlay}"), 1_000));
        assert!(!auth.overlay("a", token.split_once('.').unwrap().1, 1_000));
        // Never past the share's own expiry.
        let (token, expires) = auth.issue_share("b", "s3", 1_000, 1_010);
        assert_eq!(expires, 1_010);
        assert!(auth.share("b", "s3", &token, 1_009) && !auth.share("b", "s3", &token, 1_010));
        assert!(!Auth::new("other").share("b", "s3", &token, 1_000));
    }
}

//! Two-factor codes: TOTP (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), as every
//! authenticator app reads them from an `otpauth://` link, and one-time recovery codes.

use hmac::{Hmac, Mac};
use sha1::Sha1;

const STEP_SECS: u64 = 30;
/// Codes of the step before and after are taken too: clocks drift, and people type slowly.
const SKEW_STEPS: u64 = 1;
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new secret: 20 random bytes (RFC 4226's recommended length), base32 without padding.
pub fn new_secret() -> anyhow::Result<String> {
    let mut key = [0u8; 20];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness for a secret: {e}"))?;
    Ok(base32(&key))
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| *c != b'=' && *c != b' ') {
        let v = ALPHABET.iter().position(|a| *a == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The code of `secret` for the 30-second step holding `unix_secs`.
pub fn code(secret: &str, unix_secs: u64) -> Option<String> {
    let key = unbase32(secret)?;
    let mut mac = Hmac::<Sha1>::new_from_slice(&key).ok()?;
    mac.update(&(unix_secs / STEP_SECS).to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let value = u32::from_be_bytes(digest[offset..offset + 4].try_into().ok()?) & 0x7fff_ffff;
    Some(format!("{:06}", value % 1_000_000))
}

/// Whether `given` is the code of `secret` at `unix_secs`, or of the step just before or after.
pub fn verify(secret: &str, given: &str, unix_secs: u64) -> bool {
    let given = given.trim();
    given.len() == 6
        && (0..=2 * SKEW_STEPS).any(|i| {
            let at = (unix_secs + i * STEP_SECS).checked_sub(SKEW_STEPS * STEP_SECS);
            at.and_then(|t| code(secret, t)).is_some_and(|c| c == given)
        })
}

/// The `otpauth://` link an authenticator app reads (as a QR code or pasted).
pub fn link(secret: &str, email: &str) -> String {
    let label: String =
        form_urlencoded::byte_serialize(format!("Pathlight:{email}").as_bytes()).collect();
    format!("otpauth://totp/{label}?secret={secret}&issuer=Pathlight&digits=6&period=30")
}

/// Ten recovery codes (`xxxxx-xxxxx`, 50 random bits each), each usable once in place of a code.
pub fn recovery_codes() -> anyhow::Result<Vec<String>> {
    (0..10)
        .map(|_| {
            let mut b = [0u8; 7];
            getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let s = base32(&b).to_ascii_lowercase();
            Ok(format!("{}-{}", &s[..5], &s[5..10]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_rfc_6238s_test_vectors() {
        // RFC 6238 appendix B, SHA-1, secret "12345678901234567890"; the RFC prints 8
        // digits, whose last 6 are these.
        let secret = base32(b"12345678901234567890");
        for (t, want) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code(&secret, t).as_deref(), Some(want), "t = {t}");
        }
        assert!(verify(&secret, "287082", 59));
        assert!(verify(&secret, "287082", 59 + 30), "one step late");
        assert!(!verify(&secret, "287082", 59 + 90), "three steps late");
        assert!(!verify(&secret, "287083", 59));
        assert_eq!(
            unbase32(&base32(b"any bytes at all")).unwrap(),
            b"any bytes at all"
        );
        let codes = recovery_codes().unwrap();
        assert_eq!(codes.len(), 10);
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-')
        );
    }
}

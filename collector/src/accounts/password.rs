//! Passwords: argon2id with the argon2 crate's defaults (19 MiB, 2 passes, 1 lane: OWASP's
//! recommended minimum), stored as PHC strings so a later change of parameters still verifies
//! the old hashes.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Shortest password taken: NIST SP 800-63B's minimum for a chosen secret.
pub const MIN_LEN: usize = 8;
/// Longest: argon2 hashes anything, but a megabyte "password" would be a cheap way to burn
/// the collector's CPU.
pub const MAX_LEN: usize = 256;

/// Why a new password is not taken.
pub fn weakness(password: &str) -> Option<String> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        Some(format!("a password has at least {MIN_LEN} characters"))
    } else if password.len() > MAX_LEN {
        Some(format!("a password has at most {MAX_LEN} bytes"))
    } else {
        None
    }
}

/// The PHC string of `password` with a fresh random salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?
        .to_string())
}

/// Whether `password` is the one `phc` was made from. A malformed hash matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    password.len() <= MAX_LEN
        && PasswordHash::new(phc).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
}

/// A hash nobody's password matches, verified when an email is unknown so that a wrong
/// address takes as long as a wrong password and does not tell which accounts exist.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("no account has this password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify_only_their_password() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify("correct horse", &a));
        assert!(!verify("correct horsE", &a));
        assert!(!verify("correct horse", "not a hash"));
        assert!(!verify("no account has this password!", decoy()));
        assert!(weakness("short").is_some());
        assert!(weakness(&"x".repeat(300)).is_some());
        assert_eq!(weakness("long enough"), None);
    }
}

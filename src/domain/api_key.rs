//! API keys: 256 random bits shown once; only their SHA-256 is stored.
//! A fast hash is enough because the secret is random, not a password.

use std::fmt;

use super::redact::Redacted;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const PREFIX: &str = "ctk_";
/// How much of the key is stored in clear to tell keys apart in `keys list`.
const SHOWN_PREFIX_CHARS: usize = 12;

/// A freshly generated key: the secret to hand out, and what is stored.
pub struct NewApiKey {
    pub secret: String,
    pub hash: String,
    pub prefix: String,
}

// The secret is shown once, to whoever created the key; a `{:?}` in a log
// line or a test failure must not show it again.
impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey")
            .field("secret", &Redacted)
            .field("hash", &self.hash)
            .field("prefix", &self.prefix)
            .finish()
    }
}

pub fn generate() -> Result<NewApiKey, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let secret = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    Ok(NewApiKey {
        hash: hash(&secret),
        prefix: secret.chars().take(SHOWN_PREFIX_CHARS).collect(),
        secret,
    })
}

/// The stored form of a key.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The key in an `Authorization: Bearer <key>` header value, if any.
pub fn from_authorization_header(value: &str) -> Option<&str> {
    let (scheme, key) = value.trim().split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hash_is_stable() {
        let a = generate().expect("os rng");
        let b = generate().expect("os rng");
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.hash, hash(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(a.secret.starts_with(&a.prefix));
        assert!(!a.hash.contains(&a.secret));
    }

    #[test]
    fn debug_shows_the_prefix_but_not_the_secret() {
        let key = generate().expect("os rng");
        let debug = format!("{key:?}");
        assert!(!debug.contains(&key.secret), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");
        assert!(debug.contains(&key.prefix), "{debug}");
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(from_authorization_header("Bearer ctk_abc"), Some("ctk_abc"));
        assert_eq!(
            from_authorization_header("bearer   ctk_abc "),
            Some("ctk_abc")
        );
        assert_eq!(from_authorization_header("Basic abc"), None);
        assert_eq!(from_authorization_header("Bearer "), None);
        assert_eq!(from_authorization_header("ctk_abc"), None);
    }
}

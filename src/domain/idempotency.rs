//! Stripe-style idempotency keys: a key replays the first result for the same
//! payload; the same key with a different payload is refused.

use sha2::{Digest, Sha256};

/// Longest accepted idempotency key.
pub const MAX_KEY_CHARS: usize = 255;

/// A digest of everything that makes a conversion request what it is. Fields
/// are length-prefixed so no two different payloads can collide by
/// concatenation.
pub fn fingerprint(fields: &[Option<&str>]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"v1");
    for field in fields {
        match field {
            None => hasher.update(b"-"),
            Some(v) => {
                hasher.update(b"+");
                hasher.update((v.len() as u64).to_be_bytes());
                hasher.update(v.as_bytes());
            }
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_payload_same_fingerprint() {
        let a = fingerprint(&[Some("cs_1"), Some("DAY_PASS_PURCHASED"), Some("p-1"), None]);
        let b = fingerprint(&[Some("cs_1"), Some("DAY_PASS_PURCHASED"), Some("p-1"), None]);
        assert_eq!(a, b);
    }

    #[test]
    fn any_change_changes_the_fingerprint() {
        let base = fingerprint(&[Some("ab"), Some("c")]);
        assert_ne!(base, fingerprint(&[Some("a"), Some("bc")]));
        assert_ne!(base, fingerprint(&[Some("ab"), None]));
        assert_ne!(base, fingerprint(&[Some("ab"), Some("")]));
    }
}

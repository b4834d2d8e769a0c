//! Session IDs: the secret that rides in links and identifies a conversation
//! to the agent runtime and the checkout. 192 bits from the operating
//! system's CSPRNG, URL-safe, with a prefix so a stray one is recognisable.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::InvalidInput;

const PREFIX: &str = "cs_";
pub const RANDOM_BYTES: usize = 24;
/// 24 bytes in unpadded base64.
const ENCODED_LEN: usize = 32;

/// A well-formed session ID. Being well-formed says nothing about existence.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh random session ID.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; RANDOM_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))))
    }

    /// Reads a session ID as a client sends it; surrounding whitespace (a
    /// copy-paste artefact) is ignored.
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let value = value.trim();
        if well_formed(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(not_a_session_id(value))
        }
    }

    /// Takes a session ID as it was stored, without copying it or checking
    /// each character again (it was parsed before it was written): every
    /// row of a list carries one. Its shape is still checked, so a row
    /// that is not one fails here, not where it is used.
    pub fn from_stored(value: String) -> Result<Self, InvalidInput> {
        if value.len() == PREFIX.len() + ENCODED_LEN && value.starts_with(PREFIX) {
            Ok(Self(value))
        } else {
            Err(not_a_session_id(&value))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The random bytes behind the ID, for compact binary encodings.
    pub fn to_bytes(&self) -> [u8; RANDOM_BYTES] {
        let mut bytes = [0u8; RANDOM_BYTES];
        if let Ok(decoded) = URL_SAFE_NO_PAD.decode(&self.0[PREFIX.len()..])
            && decoded.len() == RANDOM_BYTES
        {
            bytes.copy_from_slice(&decoded);
        }
        bytes
    }

    pub fn from_bytes(bytes: [u8; RANDOM_BYTES]) -> Self {
        Self(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn well_formed(value: &str) -> bool {
    value.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == ENCODED_LEN
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn not_a_session_id(value: &str) -> InvalidInput {
    InvalidInput::new(format!(
        "sessionId {} is not a session ID (they look like cs_ followed by 32 URL-safe characters)",
        super::text::quoted(value)
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn generated_ids_parse_are_url_safe_and_distinct() {
        let ids: HashSet<String> = (0..1000)
            .map(|_| SessionId::generate().expect("os rng").as_str().to_owned())
            .collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(20) {
            assert_eq!(SessionId::parse(id).map(|s| s.0), Ok(id.clone()));
            assert_eq!(id.len(), PREFIX.len() + ENCODED_LEN);
        }
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        let id = SessionId::generate().expect("os rng");
        assert_eq!(SessionId::parse(&format!("  {id}\n")), Ok(id));
    }

    #[test]
    fn bytes_round_trip() {
        let id = SessionId::generate().expect("os rng");
        assert_eq!(SessionId::from_bytes(id.to_bytes()), id);
    }

    #[test]
    fn malformed_ids_are_refused() {
        let good = SessionId::generate().expect("os rng").0;
        for bad in [
            "",
            "cs_",
            &good[..good.len() - 1],
            &format!("{good}x"),
            &good.replace("cs_", "xx_"),
            "cs_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa+",
        ] {
            assert!(SessionId::parse(bad).is_err(), "{bad}");
        }
    }
}

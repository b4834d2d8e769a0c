//! Call-to-action links: the actions an AI offers, and the token that
//! carries a session into the checkout, tour form or booking flow.
//!
//! A token is opaque: whoever sees the link (the target site's analytics, a
//! referrer log, a forwarded email) learns nothing from it, and any change
//! is detected. Format (URL-safe, 153 characters):
//! `ct2.<kid>.<sealed>` where `kid` names the link key and `sealed` is
//! base64url of a random 24-byte nonce ‖ XChaCha20-Poly1305 ciphertext and
//! tag of the claims (tenant id 16 bytes ‖ link id 16 ‖ session ID's random
//! bytes 24 ‖ action 1 ‖ issue time in microseconds 8, big endian), with
//! `ct2.<kid>` as associated data. The cipher key is derived from the link
//! key's secret with HKDF-SHA256.
//!
//! Tokens issued before encryption (`ct1.<kid>.<payload>.<signature>`,
//! HMAC-SHA256 over readable claims) still verify, but only until their
//! link's attribution window ends (see [`LinkClaims::legacy`]); nothing
//! issues them any more.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::InvalidInput;
use super::conversion::ConversionKind;
use super::redact::Redacted;
use super::session_id::{self, SessionId};

/// What the AI asks the person to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtaAction {
    DayPass,
    MembershipSignup,
    TourRequest,
    BookingConfirmation,
}

impl CtaAction {
    pub const ALL: [CtaAction; 4] = [
        CtaAction::DayPass,
        CtaAction::MembershipSignup,
        CtaAction::TourRequest,
        CtaAction::BookingConfirmation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CtaAction::DayPass => "DAY_PASS",
            CtaAction::MembershipSignup => "MEMBERSHIP_SIGNUP",
            CtaAction::TourRequest => "TOUR_REQUEST",
            CtaAction::BookingConfirmation => "BOOKING_CONFIRMATION",
        }
    }

    /// The outcome this action leads to.
    pub fn outcome(self) -> ConversionKind {
        match self {
            CtaAction::DayPass => ConversionKind::DayPassPurchased,
            CtaAction::MembershipSignup => ConversionKind::ContractCreated,
            CtaAction::TourRequest => ConversionKind::TourBooked,
            CtaAction::BookingConfirmation => ConversionKind::BookingCreated,
        }
    }

    fn code(self) -> u8 {
        match self {
            CtaAction::DayPass => 1,
            CtaAction::MembershipSignup => 2,
            CtaAction::TourRequest => 3,
            CtaAction::BookingConfirmation => 4,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.code() == code)
    }
}

impl fmt::Display for CtaAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CtaAction {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                InvalidInput::new(format!("unknown call-to-action {}", super::text::quoted(s)))
            })
    }
}

/// The query parameter that carries the token in a link.
pub const TOKEN_PARAMETER: &str = "ai_session";
/// Longest token this server issues or reads.
pub const MAX_TOKEN_CHARS: usize = 200;
const SEALED: &str = "ct2";
const LEGACY: &str = "ct1";
const PAYLOAD_BYTES: usize = 16 + 16 + session_id::RANDOM_BYTES + 1 + 8;
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
const MIN_SECRET_BYTES: usize = 32;
/// HKDF `info`: the cipher key is for link tokens of this format only.
const CIPHER_KEY_INFO: &[u8] = b"convtrack link token ct2 XChaCha20-Poly1305";

/// What a token says. Only trustworthy once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    pub tenant_id: Uuid,
    pub link_id: Uuid,
    pub session_id: SessionId,
    pub action: CtaAction,
    /// Microseconds since the Unix epoch.
    pub issued_at: i64,
    /// A signed (readable) token of the format before encryption: accepted
    /// only while its link's attribution window is open, since its session
    /// ID may have been read by whoever saw the link.
    pub legacy: bool,
}

impl LinkClaims {
    fn to_bytes(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(PAYLOAD_BYTES);
        payload.extend_from_slice(self.tenant_id.as_bytes());
        payload.extend_from_slice(self.link_id.as_bytes());
        payload.extend_from_slice(&self.session_id.to_bytes());
        payload.push(self.action.code());
        payload.extend_from_slice(&self.issued_at.to_be_bytes());
        payload
    }

    fn from_bytes(p: &[u8], legacy: bool) -> Result<Self, InvalidToken> {
        if p.len() != PAYLOAD_BYTES {
            return Err(InvalidToken);
        }
        let uuid_at = |at: usize| {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&p[at..at + 16]);
            Uuid::from_bytes(bytes)
        };
        let mut session = [0u8; session_id::RANDOM_BYTES];
        session.copy_from_slice(&p[32..32 + session_id::RANDOM_BYTES]);
        let action_at = 32 + session_id::RANDOM_BYTES;
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&p[action_at + 1..action_at + 9]);
        Ok(LinkClaims {
            tenant_id: uuid_at(0),
            link_id: uuid_at(16),
            session_id: SessionId::from_bytes(session),
            action: CtaAction::from_code(p[action_at]).ok_or(InvalidToken)?,
            issued_at: i64::from_be_bytes(issued),
            legacy,
        })
    }
}

/// A link key: seals new tokens and opens them (and verifies tokens of the
/// signed format before encryption).
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    secret: Vec<u8>,
}

// Keys end up in `{:?}` through the structs that hold them (services, test
// failures, panics); whoever reads those must not be able to forge links.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("secret", &Redacted)
            .finish()
    }
}

impl SigningKey {
    /// A fresh random key with a random id.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut secret = vec![0u8; 32];
        getrandom::fill(&mut secret)?;
        let mut kid = [0u8; 6];
        getrandom::fill(&mut kid)?;
        Ok(Self {
            kid: URL_SAFE_NO_PAD.encode(kid),
            secret,
        })
    }

    /// A key given by the operator (`CONVTRACK_LINK_SECRET`); its id is
    /// derived from it so every instance with the same secret agrees.
    pub fn from_operator_secret(secret: &str) -> Result<Self, InvalidInput> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(InvalidInput::new(format!(
                "a link secret must be at least {MIN_SECRET_BYTES} bytes long"
            )));
        }
        let digest = Sha256::digest(secret.as_bytes());
        Ok(Self {
            kid: URL_SAFE_NO_PAD.encode(&digest[..6]),
            secret: secret.as_bytes().to_vec(),
        })
    }

    /// A stored key: its id and its secret in base64url.
    pub fn from_stored(kid: &str, secret: &str) -> Option<Self> {
        let secret = URL_SAFE_NO_PAD.decode(secret).ok()?;
        (secret.len() >= MIN_SECRET_BYTES).then(|| Self {
            kid: kid.to_owned(),
            secret,
        })
    }

    /// The secret as stored.
    pub fn stored_secret(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.secret)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(None, &self.secret)
            .expand(CIPHER_KEY_INFO, &mut key)
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
        XChaCha20Poly1305::new(&key.into())
    }

    /// An opaque token for `claims`: encrypted and authenticated.
    pub fn seal(&self, claims: &LinkClaims) -> Result<String, getrandom::Error> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce)?;
        let header = format!("{SEALED}.{}", self.kid);
        let ciphertext = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &claims.to_bytes(),
                    aad: header.as_bytes(),
                },
            )
            .unwrap_or_else(|_| unreachable!("XChaCha20-Poly1305 seals any short message"));
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(format!("{header}.{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// A token of the signed format before encryption. The server no longer
    /// issues these; tests and migration tools make them to check that
    /// tokens already out in the world keep their rules.
    pub fn sign_legacy(&self, claims: &LinkClaims) -> String {
        let signed = format!(
            "{LEGACY}.{}.{}",
            self.kid,
            URL_SAFE_NO_PAD.encode(claims.to_bytes())
        );
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{signature}")
    }
}

/// A token whose shape is right but which is not opened or verified yet.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    pub kid: &'a str,
    form: Form<'a>,
}

#[derive(Debug)]
enum Form<'a> {
    Sealed {
        header: &'a str,
        sealed: Vec<u8>,
    },
    Legacy {
        signed: &'a str,
        payload: Vec<u8>,
        signature: Vec<u8>,
    },
}

/// Why a token was refused. Callers answer the same whatever the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the link token is not valid")]
pub struct InvalidToken;

impl<'a> UnverifiedToken<'a> {
    pub fn parse(token: &'a str) -> Result<Self, InvalidToken> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(InvalidToken);
        }
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| InvalidToken);
        let parts: Vec<&str> = token.split('.').collect();
        let (kid, form) = match parts.as_slice() {
            [SEALED, kid, sealed] => {
                let sealed = decode(sealed)?;
                if sealed.len() != NONCE_BYTES + PAYLOAD_BYTES + TAG_BYTES {
                    return Err(InvalidToken);
                }
                let header = &token[..SEALED.len() + 1 + kid.len()];
                (*kid, Form::Sealed { header, sealed })
            }
            [LEGACY, kid, payload, signature] => {
                let payload = decode(payload)?;
                let signature = decode(signature)?;
                if payload.len() != PAYLOAD_BYTES {
                    return Err(InvalidToken);
                }
                let signed = &token[..token.len() - parts[3].len() - 1];
                (
                    *kid,
                    Form::Legacy {
                        signed,
                        payload,
                        signature,
                    },
                )
            }
            _ => return Err(InvalidToken),
        };
        if kid.is_empty() {
            return Err(InvalidToken);
        }
        Ok(Self { kid, form })
    }

    /// Opens a sealed token (or checks a legacy signature in constant
    /// time), then reads the claims.
    pub fn verify(self, key: &SigningKey) -> Result<LinkClaims, InvalidToken> {
        if key.kid != self.kid {
            return Err(InvalidToken);
        }
        match self.form {
            Form::Sealed { header, sealed } => {
                let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
                let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| InvalidToken)?;
                let claims = key
                    .cipher()
                    .decrypt(
                        &XNonce::from(nonce),
                        Payload {
                            msg: ciphertext,
                            aad: header.as_bytes(),
                        },
                    )
                    .map_err(|_| InvalidToken)?;
                LinkClaims::from_bytes(&claims, false)
            }
            Form::Legacy {
                signed,
                payload,
                signature,
            } => {
                let mut mac = key.mac();
                mac.update(signed.as_bytes());
                mac.verify_slice(&signature).map_err(|_| InvalidToken)?;
                LinkClaims::from_bytes(&payload, true)
            }
        }
    }
}

/// The target URL with the token added as `ai_session`. The target's own
/// query and fragment are kept byte for byte; an `ai_session` it already
/// had is replaced.
pub fn with_token(target: &str, token: &str) -> String {
    let (before_fragment, fragment) = match target.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (target, None),
    };
    let (base, query) = match before_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_fragment, None),
    };
    let mut pairs: Vec<&str> = query
        .map(|q| {
            q.split('&')
                .filter(|pair| !pair.is_empty())
                .filter(|pair| pair.split('=').next() != Some(TOKEN_PARAMETER))
                .collect()
        })
        .unwrap_or_default();
    let token_pair = format!("{TOKEN_PARAMETER}={token}");
    pairs.push(&token_pair);
    let mut url = format!("{base}?{}", pairs.join("&"));
    if let Some(fragment) = fragment {
        url.push('#');
        url.push_str(fragment);
    }
    url
}

/// Longest link target.
pub const MAX_TARGET_CHARS: usize = 2000;

/// A link target: a public http(s) URL of at most 2,000 characters (see
/// [`super::public_url`]), normalised so it can go in a `Location` header
/// as it is.
pub fn parse_target(target: &str) -> Result<String, InvalidInput> {
    super::public_url::parse("targetUrl", target, MAX_TARGET_CHARS).map(String::from)
}

/// Refuses a parsed target whose host is not on the tenant's allowlist of
/// link target hosts (an empty allowlist allows every public host).
pub fn target_host_allowed(target: &str, allowed_hosts: &[String]) -> Result<(), InvalidInput> {
    let host = url::Url::parse(target)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    if super::public_url::host_allowed(&host, allowed_hosts) {
        Ok(())
    } else {
        Err(InvalidInput::new(format!(
            "targetUrl host {} is not among this tenant's link target hosts ({})",
            super::text::quoted(&host),
            allowed_hosts.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> LinkClaims {
        LinkClaims {
            tenant_id: Uuid::now_v7(),
            link_id: Uuid::now_v7(),
            session_id: SessionId::generate().expect("os rng"),
            action: CtaAction::TourRequest,
            issued_at: 1_750_000_000_123_456,
            legacy: false,
        }
    }

    fn seal(key: &SigningKey, claims: &LinkClaims) -> String {
        key.seal(claims).expect("os rng")
    }

    #[test]
    fn a_sealed_token_opens_and_round_trips() {
        let key = SigningKey::generate().expect("os rng");
        let claims = claims();
        let token = seal(&key, &claims);
        assert!(token.len() <= MAX_TOKEN_CHARS, "{}", token.len());
        assert!(token.starts_with("ct2."), "{token}");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
        let parsed = UnverifiedToken::parse(&token).expect("shape");
        assert_eq!(parsed.kid, key.kid);
        assert_eq!(parsed.verify(&key), Ok(claims.clone()));
        assert_ne!(seal(&key, &claims), token, "a fresh nonce every time");
    }

    #[test]
    fn a_sealed_token_reveals_nothing_of_its_claims() {
        let key = SigningKey::generate().expect("os rng");
        let claims = claims();
        let token = seal(&key, &claims);
        let sealed = token.rsplit('.').next().expect("parts");
        let bytes = URL_SAFE_NO_PAD.decode(sealed).expect("base64url");
        let session = claims.session_id.to_bytes();
        for needle in [
            &session[..],
            claims.tenant_id.as_bytes(),
            claims.link_id.as_bytes(),
        ] {
            assert!(!bytes.windows(8).any(|w| needle.windows(8).any(|n| n == w)));
        }
        assert!(!token.contains(claims.session_id.as_str()));
        assert!(!token.contains(&URL_SAFE_NO_PAD.encode(&session[..12])));
    }

    #[test]
    fn legacy_signed_tokens_still_verify_and_say_so() {
        let key = SigningKey::generate().expect("os rng");
        let claims = claims();
        let token = key.sign_legacy(&claims);
        assert!(token.starts_with("ct1."));
        let opened = UnverifiedToken::parse(&token)
            .and_then(|t| t.verify(&key))
            .expect("valid");
        assert!(opened.legacy);
        assert_eq!(
            LinkClaims {
                legacy: false,
                ..opened
            },
            claims
        );
    }

    #[test]
    fn any_change_is_refused() {
        let key = SigningKey::generate().expect("os rng");
        for token in [seal(&key, &claims()), key.sign_legacy(&claims())] {
            every_change_of(&key, &token);
        }
    }

    fn every_change_of(key: &SigningKey, token: &str) {
        let token = token.to_owned();
        let verify = |t: &str| UnverifiedToken::parse(t).and_then(|u| u.verify(key));
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).expect("ascii");
            if changed != token {
                assert_eq!(verify(&changed), Err(InvalidToken), "byte {i}");
            }
        }
        assert_eq!(verify(&token[..token.len() - 1]), Err(InvalidToken));
        assert_eq!(verify(&format!("{token}A")), Err(InvalidToken));
        assert_eq!(verify(""), Err(InvalidToken));
        let other = SigningKey::generate().expect("os rng");
        assert_eq!(
            UnverifiedToken::parse(&token).and_then(|u| u.verify(&other)),
            Err(InvalidToken)
        );
        let same_kid = SigningKey {
            kid: key.kid.clone(),
            secret: vec![7; 32],
        };
        assert_eq!(
            UnverifiedToken::parse(&token).and_then(|u| u.verify(&same_kid)),
            Err(InvalidToken)
        );
    }

    #[test]
    fn operator_secrets_derive_a_stable_kid() {
        let a = SigningKey::from_operator_secret(&"s".repeat(40)).expect("long enough");
        let b = SigningKey::from_operator_secret(&"s".repeat(40)).expect("long enough");
        assert_eq!(a.kid, b.kid);
        assert!(SigningKey::from_operator_secret("short").is_err());
        let stored = SigningKey::from_stored(&a.kid, &a.stored_secret()).expect("stored");
        assert_eq!(stored.secret, a.secret);
    }

    #[test]
    fn debug_shows_the_kid_but_not_the_secret() {
        let operator_secret = "operator-secret-".repeat(3);
        for key in [
            SigningKey::generate().expect("os rng"),
            SigningKey::from_operator_secret(&operator_secret).expect("long enough"),
        ] {
            let debug = format!("{key:?}");
            assert!(debug.contains(&key.kid), "{debug}");
            assert!(debug.contains("[redacted]"), "{debug}");
            assert!(!debug.contains(&key.stored_secret()), "{debug}");
            assert!(!debug.contains(&format!("{:?}", key.secret)), "{debug}");
            assert!(!debug.contains("operator-secret"), "{debug}");
        }
    }

    #[test]
    fn the_token_joins_the_target_keeping_query_and_fragment() {
        assert_eq!(
            with_token("https://x.example/pass", "T"),
            "https://x.example/pass?ai_session=T"
        );
        assert_eq!(
            with_token("https://x.example/pass?plan=day%20pass&a=1#pay", "T"),
            "https://x.example/pass?plan=day%20pass&a=1&ai_session=T#pay"
        );
        assert_eq!(
            with_token("https://x.example/p?ai_session=OLD&b=2", "T"),
            "https://x.example/p?b=2&ai_session=T"
        );
        assert_eq!(
            with_token("https://x.example/p?#f", "T"),
            "https://x.example/p?ai_session=T#f"
        );
    }

    #[test]
    fn targets_must_be_public_http_on_the_allowlist() {
        assert_eq!(
            parse_target("https://Book.example.com/tour?office=3"),
            Ok("https://book.example.com/tour?office=3".to_owned())
        );
        for bad in [
            "ftp://x.example/",
            "javascript:alert(1)",
            "https:///x",
            "http://[::1]/",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
        let allow = vec!["*.example.com".to_owned()];
        assert!(target_host_allowed("https://book.example.com/", &allow).is_ok());
        assert!(target_host_allowed("https://evil.example/", &[]).is_ok());
        let refused =
            target_host_allowed("https://evil.example/", &allow).expect_err("not allowed");
        assert!(refused.0.contains("link target hosts"), "{}", refused.0);
    }

    #[test]
    fn actions_lead_to_their_outcomes() {
        assert_eq!(
            CtaAction::DayPass.outcome(),
            ConversionKind::DayPassPurchased
        );
        assert_eq!(
            CtaAction::MembershipSignup.outcome(),
            ConversionKind::ContractCreated
        );
        assert_eq!(CtaAction::TourRequest.outcome(), ConversionKind::TourBooked);
        assert_eq!(
            CtaAction::BookingConfirmation.outcome(),
            ConversionKind::BookingCreated
        );
        for a in CtaAction::ALL {
            assert_eq!(CtaAction::from_code(a.code()), Some(a));
            assert_eq!(a.as_str().parse::<CtaAction>(), Ok(a));
        }
    }
}

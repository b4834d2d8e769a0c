//! Call-to-action links: the actions an AI offers, and the signed token that
//! carries a session into the checkout, tour form or booking flow.
//!
//! Token format (URL-safe, 144 characters):
//! `ct1.<kid>.<payload>.<signature>` where `kid` names the signing key,
//! `payload` is base64url of tenant id (16 bytes) ‖ link id (16) ‖ session
//! ID's random bytes (24) ‖ action (1) ‖ issue time in microseconds (8, big
//! endian), and `signature` is base64url of HMAC-SHA256 over everything
//! before the last dot.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::InvalidInput;
use super::conversion::ConversionKind;
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
            .ok_or_else(|| InvalidInput::new(format!("unknown call-to-action {s:?}")))
    }
}

/// The query parameter that carries the token in a link.
pub const TOKEN_PARAMETER: &str = "ai_session";
/// Longest token this server issues or reads.
pub const MAX_TOKEN_CHARS: usize = 200;
const VERSION: &str = "ct1";
const PAYLOAD_BYTES: usize = 16 + 16 + session_id::RANDOM_BYTES + 1 + 8;
const MIN_SECRET_BYTES: usize = 32;

/// What a token says. Only trustworthy once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    pub tenant_id: Uuid,
    pub link_id: Uuid,
    pub session_id: SessionId,
    pub action: CtaAction,
    /// Microseconds since the Unix epoch.
    pub issued_at: i64,
}

/// A key that signs and verifies tokens.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    secret: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
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

    pub fn sign(&self, claims: &LinkClaims) -> String {
        let mut payload = Vec::with_capacity(PAYLOAD_BYTES);
        payload.extend_from_slice(claims.tenant_id.as_bytes());
        payload.extend_from_slice(claims.link_id.as_bytes());
        payload.extend_from_slice(&claims.session_id.to_bytes());
        payload.push(claims.action.code());
        payload.extend_from_slice(&claims.issued_at.to_be_bytes());
        let signed = format!("{VERSION}.{}.{}", self.kid, URL_SAFE_NO_PAD.encode(payload));
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{signature}")
    }
}

/// A token whose shape is right but whose signature is not checked yet.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    pub kid: &'a str,
    signed: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
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
        let (signed, signature) = token.rsplit_once('.').ok_or(InvalidToken)?;
        let mut parts = signed.split('.');
        let (Some(VERSION), Some(kid), Some(payload), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidToken);
        };
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| InvalidToken)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| InvalidToken)?;
        if payload.len() != PAYLOAD_BYTES || kid.is_empty() {
            return Err(InvalidToken);
        }
        Ok(Self {
            kid,
            signed,
            payload,
            signature,
        })
    }

    /// Checks the signature in constant time, then reads the claims.
    pub fn verify(self, key: &SigningKey) -> Result<LinkClaims, InvalidToken> {
        if key.kid != self.kid {
            return Err(InvalidToken);
        }
        let mut mac = key.mac();
        mac.update(self.signed.as_bytes());
        mac.verify_slice(&self.signature)
            .map_err(|_| InvalidToken)?;
        let p = &self.payload;
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
        })
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

/// A link target: an absolute http(s) URL of at most 2,000 characters.
pub fn parse_target(target: &str) -> Result<String, InvalidInput> {
    let target = target.trim();
    let refuse = || {
        InvalidInput::new(format!(
            "targetUrl {target:?} is not an absolute http(s) URL of at most 2000 characters"
        ))
    };
    if target.len() > 2000 || target.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse());
    }
    let url = url::Url::parse(target).map_err(|_| refuse())?;
    let authority = target
        .strip_prefix("https://")
        .or_else(|| target.strip_prefix("http://"));
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || authority.is_none_or(|rest| rest.is_empty() || rest.starts_with('/'))
    {
        return Err(refuse());
    }
    Ok(target.to_owned())
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
        }
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips() {
        let key = SigningKey::generate().expect("os rng");
        let claims = claims();
        let token = key.sign(&claims);
        assert!(token.len() <= MAX_TOKEN_CHARS, "{}", token.len());
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
        let parsed = UnverifiedToken::parse(&token).expect("shape");
        assert_eq!(parsed.kid, key.kid);
        assert_eq!(parsed.verify(&key), Ok(claims));
    }

    #[test]
    fn any_change_is_refused() {
        let key = SigningKey::generate().expect("os rng");
        let token = key.sign(&claims());
        let verify = |t: &str| UnverifiedToken::parse(t).and_then(|u| u.verify(&key));
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
    fn targets_must_be_http() {
        assert!(parse_target("https://book.example.com/tour?office=3").is_ok());
        for bad in [
            "ftp://x.example/",
            "javascript:alert(1)",
            "//x.example/",
            "/relative",
            "https:///x",
            "http://a b",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
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

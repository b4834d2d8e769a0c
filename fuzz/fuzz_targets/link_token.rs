#![no_main]
//! Link tokens (`ct2.<kid>.<sealed>` and legacy `ct1.<kid>.<payload>.<sig>`)
//! arrive in the `ai_session` query parameter of anyone's request.
//!
//! Checks that:
//! - parsing and verifying any text never panics, and gives the same result
//!   every time;
//! - claims built from the input bytes, once sealed (or signed in the legacy
//!   format), open again to exactly those claims (`legacy` set only for the
//!   legacy format), within `MAX_TOKEN_CHARS`;
//! - replacing one character of such a token with another ASCII character
//!   (position and character taken from the input) makes it refused.

use std::sync::OnceLock;

use convtrack::domain::link::{
    CtaAction, InvalidToken, LinkClaims, MAX_TOKEN_CHARS, SigningKey, UnverifiedToken,
};
use convtrack::domain::session_id::{RANDOM_BYTES, SessionId};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

/// Tenant 16 ‖ link 16 ‖ session 24 ‖ action 1 ‖ `issued_at` 8.
const CLAIM_BYTES: usize = 16 + 16 + RANDOM_BYTES + 1 + 8;

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SigningKey::from_operator_secret(&"k".repeat(40)).expect("40 bytes is a valid secret")
    })
}

fn open(token: &str) -> Result<LinkClaims, InvalidToken> {
    UnverifiedToken::parse(token).and_then(|t| t.verify(key()))
}

fn claims_from(bytes: &[u8; CLAIM_BYTES]) -> LinkClaims {
    let (tenant, rest) = bytes.split_at(16);
    let (link, rest) = rest.split_at(16);
    let (session, rest) = rest.split_at(RANDOM_BYTES);
    let (action, issued) = rest.split_at(1);
    LinkClaims {
        tenant_id: Uuid::from_slice(tenant).expect("16 bytes"),
        link_id: Uuid::from_slice(link).expect("16 bytes"),
        session_id: SessionId::from_bytes(session.try_into().expect("24 bytes")),
        action: CtaAction::ALL[usize::from(action[0]) % CtaAction::ALL.len()],
        issued_at: i64::from_be_bytes(issued.try_into().expect("8 bytes")),
        legacy: false,
    }
}

/// `token` with its character at `at` (modulo its length) replaced by the
/// ASCII character `with`, or `None` if that changes nothing.
fn changed(token: &str, at: u8, with: u8) -> Option<String> {
    let mut bytes = token.as_bytes().to_vec();
    let at = usize::from(at) % bytes.len();
    let with = with & 0x7f;
    (bytes[at] != with).then(|| {
        bytes[at] = with;
        String::from_utf8(bytes).expect("ASCII replaced by ASCII")
    })
}

fn check_issued(token: &str, expected: &LinkClaims, edit: Option<(u8, u8)>) {
    assert!(
        token.len() <= MAX_TOKEN_CHARS,
        "{} chars: {token}",
        token.len()
    );
    assert_eq!(open(token).as_ref(), Ok(expected), "token {token}");
    if let Some(changed) = edit.and_then(|(at, with)| changed(token, at, with)) {
        assert_eq!(
            open(&changed),
            Err(InvalidToken),
            "{token} changed to {changed}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(token) = UnverifiedToken::parse(text)
    {
        let first = token.verify(key());
        let again = open(text);
        assert_eq!(first, again, "verifying {text:?} twice");
    }

    if let Some((claim_bytes, rest)) = data.split_first_chunk::<CLAIM_BYTES>() {
        let claims = claims_from(claim_bytes);
        let edit = match rest {
            [at, with, ..] => Some((*at, *with)),
            _ => None,
        };
        let sealed = key().seal(&claims).expect("OS random numbers");
        check_issued(&sealed, &claims, edit);
        let legacy = key().sign_legacy(&claims);
        let legacy_claims = LinkClaims {
            legacy: true,
            ..claims
        };
        check_issued(&legacy, &legacy_claims, edit);
    }
});

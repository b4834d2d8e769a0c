//! Webhooks as the Standard Webhooks specification has them: a signing
//! secret written `whsec_` + base64 of its bytes; each delivery signed as
//! `v1,` + base64 of HMAC-SHA256 over `id.timestamp.body`; retries on a
//! fixed schedule with jitter; targets on public HTTPS hosts unless the
//! operator allows a host.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use url::Url;

use super::InvalidInput;
use super::public_url;
use super::text::quoted;

/// What every secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a secret made here.
const SECRET_BYTES: usize = 32;

/// Longest target URL kept.
pub const MAX_URL_CHARS: usize = 2_000;

/// A signing secret. `{:?}` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl WebhookSecret {
    /// A new random secret.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// A secret as written (`whsec_` + base64), as stored or shown once.
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let refuse = || InvalidInput::new("a webhook secret is whsec_ followed by base64");
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or_else(refuse)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| refuse())?;
        if bytes.is_empty() {
            return Err(refuse());
        }
        Ok(Self(bytes))
    }

    /// The secret as written: `whsec_` + base64.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The signature of one delivery: `v1,` + base64 of HMAC-SHA256 over
    /// `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC-SHA256 takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: one signature per secret that signs
/// now (two while a rotation's old secret still does), space-separated.
pub fn signature_header(
    secrets: &[&WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How long after a failed attempt the next one is made, before jitter:
/// 11 attempts over about 24 hours (the first at once).
pub const RETRY_DELAYS: [Duration; 10] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(2 * 60 * 60),
    Duration::from_secs(4 * 60 * 60),
    Duration::from_secs(8 * 60 * 60),
    Duration::from_secs(8 * 60 * 60),
];

/// The wait before attempt `failed + 1` once `failed` attempts (at least
/// one) have failed, spread by `jitter` in `[0, 1)` over ±20%, so that
/// endpoints that failed together do not retry together; none once the
/// schedule is over (the event is dead-lettered).
pub fn retry_delay(failed: u32, jitter: f64) -> Option<Duration> {
    let base = RETRY_DELAYS.get(usize::try_from(failed.checked_sub(1)?).ok()?)?;
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    Some(base.mul_f64(factor))
}

/// A webhook target: an absolute HTTPS URL on a public host, or any
/// http(s) URL on a host the operator allows (`allowed_hosts`, exact
/// names or addresses as written in the URL, e.g. `127.0.0.1`).
pub fn parse_target(raw: &str, allowed_hosts: &[String]) -> Result<Url, InvalidInput> {
    let raw = raw.trim();
    if let Ok(url) = Url::parse(raw)
        && matches!(url.scheme(), "http" | "https")
        && url.username().is_empty()
        && url.password().is_none()
        && url
            .host_str()
            .is_some_and(|host| host_is_allowed(host, allowed_hosts))
        && raw.chars().count() <= MAX_URL_CHARS
    {
        return Ok(url);
    }
    let url = public_url::parse("url", raw, MAX_URL_CHARS)?;
    if url.scheme() != "https" {
        return Err(InvalidInput::new(format!(
            "url {} is not HTTPS: deliveries go to https:// URLs (an operator may allow a host with --webhook-allow-hosts)",
            quoted(raw)
        )));
    }
    Ok(url)
}

/// Whether deliveries to `host` skip the public-host rules.
pub fn host_is_allowed(host: &str, allowed_hosts: &[String]) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    allowed_hosts
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(host))
}

/// Whether a delivery may connect to `ip` (what the target's name resolved
/// to): only public addresses, unless its host is allowed.
pub fn address_is_public(ip: IpAddr) -> bool {
    public_url::public_ip(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_read_back_and_never_show_in_debug() {
        let secret = WebhookSecret::generate().expect("random");
        let text = secret.to_text();
        assert!(text.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&text), Ok(secret.clone()));
        assert!(!format!("{secret:?}").contains(&text[6..]));
        for bad in [
            "",
            "whsec_",
            "whsec_***",
            "sk_abc",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            assert!(WebhookSecret::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signatures_match_an_independent_hmac() {
        // Computed with Python's hmac module:
        // base64(hmac.new(b"convtrack-test-secret", b"evt_1.1700000000.{\"a\":1}", sha256).digest())
        let secret = WebhookSecret(b"convtrack-test-secret".to_vec());
        assert_eq!(
            secret.sign("evt_1", 1_700_000_000, br#"{"a":1}"#),
            "v1,8Btn0nka3OMS7WArCtEpMZhWke8RlYzJSTeRRjcSR9k="
        );
        let other = WebhookSecret(b"another".to_vec());
        let header = signature_header(&[&secret, &other], "evt_1", 1_700_000_000, br#"{"a":1}"#);
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], other.sign("evt_1", 1_700_000_000, br#"{"a":1}"#));
    }

    #[test]
    fn the_schedule_spreads_about_a_day_and_ends() {
        assert_eq!(
            retry_delay(0, 0.5),
            None,
            "the first attempt is not a retry"
        );
        assert_eq!(retry_delay(1, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(retry_delay(1, 0.0), Some(Duration::from_secs(4)));
        assert_eq!(retry_delay(10, 0.5), Some(Duration::from_secs(8 * 3600)));
        assert_eq!(retry_delay(11, 0.5), None, "dead-lettered");
        let total: Duration = RETRY_DELAYS.iter().sum();
        assert!(total > Duration::from_secs(23 * 3600) && total < Duration::from_secs(25 * 3600));
        for failed in 1..=10 {
            let low = retry_delay(failed, 0.0).expect("scheduled");
            let high = retry_delay(failed, 0.999).expect("scheduled");
            assert!(low < high && high <= low.mul_f64(1.5 + 1e-9), "{failed}");
        }
    }

    #[test]
    fn targets_are_public_https_unless_the_host_is_allowed() {
        let none: Vec<String> = Vec::new();
        assert!(parse_target("https://hooks.example.com/convtrack?x=1", &none).is_ok());
        for refused in [
            "http://hooks.example.com/",
            "https://127.0.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/",
            "https://10.0.0.8/",
            "https://metadata.google.internal/",
            "https://user:pw@hooks.example.com/",
            "ftp://hooks.example.com/",
            "hooks.example.com",
        ] {
            assert!(parse_target(refused, &none).is_err(), "{refused}");
        }
        let local = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        assert!(parse_target("http://127.0.0.1:9000/hook", &local).is_ok());
        assert!(parse_target("http://LOCALHOST:9000/hook", &local).is_ok());
        assert!(parse_target("http://127.0.0.2:9000/hook", &local).is_err());
        assert!(parse_target("http://u@127.0.0.1:9000/", &local).is_err());
    }

    #[test]
    fn only_public_addresses_are_connected_to() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "::1",
            "fd00:ec2::254",
            "::ffff:192.168.0.1",
        ] {
            let ip: IpAddr = private.parse().expect("address");
            assert!(!address_is_public(ip), "{private}");
        }
        for public in ["93.184.216.34", "2606:4700::1111"] {
            let ip: IpAddr = public.parse().expect("address");
            assert!(address_is_public(ip), "{public}");
        }
    }
}

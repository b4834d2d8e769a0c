//! Random input against every decoder of outside input and against the
//! request path: nothing panics, everything answers in bounded time.
//! A short pass runs with the suite; for longer, set the duration:
//! `CONVTRACK_FUZZ_SECONDS=300 cargo test --release --test api fuzz -- --nocapture`.

use std::time::{Duration, Instant};

use convtrack::config::parse_origin;
use convtrack::domain::api_key::from_authorization_header;
use convtrack::domain::channel::Channel as DomainChannel;
use convtrack::domain::contact;
use convtrack::domain::cursor::{
    ConversationCursor, EventCursor, FeedPosition, decode_conversion_cursor, decode_message_cursor,
    parse_global_id,
};
use convtrack::domain::link::{CtaAction, LinkClaims, SigningKey, UnverifiedToken, parse_target};
use convtrack::domain::query_text::count_tokens;
use convtrack::domain::session_id::SessionId;
use convtrack::domain::settings::parse_url_template;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::*;

/// How long each fuzz loop runs.
pub fn budget(default: Duration) -> Duration {
    std::env::var("CONVTRACK_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(default, Duration::from_secs)
}

/// SplitMix64: small, seeded, reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Random text: raw bytes, GraphQL-ish characters, or a mutation of a seed.
    fn text(&mut self, seeds: &[String]) -> String {
        const ALPHABET: &[u8] = b"{}()[]:$!@\"\\.,#=|&_-+0123456789abcxyzABCXYZ \n\t%";
        let len = self.below(300);
        match self.below(3) {
            0 => {
                let bytes: Vec<u8> = (0..len).map(|_| self.next() as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            1 => (0..len)
                .map(|_| ALPHABET[self.below(ALPHABET.len())] as char)
                .collect(),
            _ => {
                let mut bytes = seeds[self.below(seeds.len())].clone().into_bytes();
                for _ in 0..=self.below(4) {
                    if bytes.is_empty() {
                        break;
                    }
                    let at = self.below(bytes.len());
                    match self.below(3) {
                        0 => bytes[at] = self.next() as u8,
                        1 => {
                            bytes.remove(at);
                        }
                        _ => bytes.insert(at, ALPHABET[self.below(ALPHABET.len())]),
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }
}

#[test]
fn decoders_of_outside_input_never_panic() {
    let key = SigningKey::generate().expect("os rng");
    let tenant = Uuid::now_v7();
    let claims = LinkClaims {
        tenant_id: tenant,
        link_id: Uuid::now_v7(),
        session_id: SessionId::generate().expect("os rng"),
        action: CtaAction::DayPass,
        issued_at: 1,
        legacy: false,
    };
    let token = key.seal(&claims).expect("os rng");
    let legacy = key.sign_legacy(&claims);
    let seeds = vec![
        token.clone(),
        legacy.clone(),
        EventCursor {
            tenant_id: tenant,
            position: FeedPosition { xid: 7, seq: 5 },
        }
        .encode(),
        ConversationCursor {
            started_at: 1,
            id: Uuid::now_v7(),
        }
        .encode(),
        SessionId::generate().expect("os rng").to_string(),
        "https://admin.example.com/visitors/{id}".to_owned(),
        "{ conversations(first: 5) { nodes { id } } }".to_owned(),
        "Bearer ctk_abc".to_owned(),
        "+447700900123".to_owned(),
    ];
    let mut rng = Rng(0x5eed);
    let deadline = Instant::now() + budget(Duration::from_secs(2));
    let mut cases = 0u64;
    while Instant::now() < deadline {
        let input = rng.text(&seeds);
        let started = Instant::now();
        if let Ok(unverified) = UnverifiedToken::parse(&input) {
            let _ = unverified.verify(&key);
        }
        let _ = EventCursor::decode_for(&input, tenant);
        let _ = ConversationCursor::decode(&input);
        let _ = parse_global_id(&input);
        let _ = decode_message_cursor(&input);
        let _ = decode_conversion_cursor(&input);
        let _ = count_tokens(&input, 3_000);
        let _ = parse_target(&input);
        let _ = parse_url_template(&input);
        let _ = SessionId::parse(&input);
        let _ = parse_origin(&input);
        let _ = from_authorization_header(&input);
        for channel in DomainChannel::ALL {
            let _ = contact::parse(channel, Some(&input));
        }
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "slow on {input:?}"
        );
        cases += 1;
    }
    assert!(cases > 100, "the loop ran ({cases} cases)");
    // The genuine token still verifies: the fuzzing did not test a broken decoder.
    let genuine = UnverifiedToken::parse(&token).and_then(|t| t.verify(&key));
    assert!(genuine.is_ok());
}

async fn request_path_survives_random_bodies(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let seeds = vec![
        json!({ "query": "{ conversations(first: 5) { nodes { id openingMessage badges { label } } } }" }).to_string(),
        json!({ "query": "mutation($i: StartSessionInput!) { startSession(input: $i) { sessionId } }", "variables": { "i": { "channel": "CHAT" } } }).to_string(),
        json!({ "query": "query($a: String) { conversionsSince(after: $a) { nodes { cursor } } }", "variables": { "a": "e1" } }).to_string(),
        json!([{ "query": "{ badgeKinds { kind } }" }]).to_string(),
    ];
    let mut rng = Rng(0xfeed);
    let deadline = Instant::now() + budget(Duration::from_secs(3));
    let mut cases = 0u64;
    while Instant::now() < deadline || cases < 50 {
        let body = rng.text(&seeds);
        let response = app
            .client
            .post(format!("{}/graphql", app.address))
            .bearer_auth(&app.admin)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        assert!(
            matches!(status, 200 | 400 | 413 | 415 | 429),
            "status {status} for {body:?}"
        );
        cases += 1;
    }
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "still serving after {cases} cases"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_path_survives_random_bodies_sqlite() {
    request_path_survives_random_bodies(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_path_survives_random_bodies_postgres() {
    request_path_survives_random_bodies(Backend::Postgres).await;
}

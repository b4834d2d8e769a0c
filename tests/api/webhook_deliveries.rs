//! Webhook deliveries reach a receiver on 127.0.0.1 (allowed in tests):
//! signed (and checked by the standardwebhooks package when Node is on),
//! in cursor order, retried on the schedule driven by the manual clock,
//! dead-lettered when it runs out, and stopped by 410 Gone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::TimeDelta;
use entity::webhook_delivery;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{Value, json};

use crate::helpers::*;

/// One request the receiver got.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

/// In a receiver's script: answer only after the server gave up.
const HANG: u16 = 0;

/// A receiver that answers each request with the next status of its
/// script (200 once the script is over).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    /// Listens on 127.0.0.1; its URL.
    async fn start(script: Vec<u16>) -> (Self, String) {
        let receiver = Receiver::default();
        *receiver.script.lock().expect("script") = script;
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(answer))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bound");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, format!("http://{address}/hook"))
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().expect("got").clone()
    }

    /// Waits (up to 20 s) until `n` requests came.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..2_000 {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{n} requests never came: {:?}", self.got());
    }
}

async fn answer(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    receiver.got.lock().expect("got").push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let status = {
        let mut script = receiver.script.lock().expect("script");
        if script.is_empty() {
            200
        } else {
            script.remove(0)
        }
    };
    if status == HANG {
        // Past the server's 10 s deadline for an attempt.
        tokio::time::sleep(Duration::from_secs(30)).await;
        return StatusCode::OK;
    }
    StatusCode::from_u16(status).expect("status")
}

impl TestApp {
    /// An endpoint for `url`; its id and secret.
    async fn endpoint_to(&self, url: &str) -> (String, String) {
        let body = self
            .gql(
                &self.admin,
                "mutation($url: String!) { createWebhookEndpoint(input: { url: $url }) {
                    secret endpoint { id } } }",
                json!({ "url": url }),
            )
            .await;
        let made = data(&body, "createWebhookEndpoint");
        (
            made["endpoint"]["id"].as_str().expect("id").to_owned(),
            made["secret"].as_str().expect("secret").to_owned(),
        )
    }

    /// The stored deliveries, in the order they were queued.
    async fn deliveries(&self) -> Vec<webhook_delivery::Model> {
        webhook_delivery::Entity::find()
            .order_by_asc(webhook_delivery::Column::CreatedAt)
            .order_by_asc(webhook_delivery::Column::FeedXid)
            .order_by_asc(webhook_delivery::Column::FeedSeq)
            .all(&self.services.db)
            .await
            .expect("deliveries")
    }
}

impl TestApp {
    /// Waits (up to 20 s) until the deliveries' attempts add up to `n`.
    async fn attempts_recorded(&self, n: i32) {
        for _ in 0..2_000 {
            let made: i32 = self.deliveries().await.iter().map(|d| d.attempts).sum();
            if made >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{n} attempts were never recorded");
    }
}

/// The body's conversion id.
fn conversion_of(received: &Received) -> String {
    let body: Value = serde_json::from_str(&received.body).expect("JSON body");
    body["data"]["conversion"]["id"]
        .as_str()
        .expect("conversion id")
        .to_owned()
}

/// Checks the signatures with the standardwebhooks npm package.
async fn verified_independently(secret: &str, got: &[Received]) {
    if std::env::var_os("CONVTRACK_TEST_NODE").is_none() {
        return;
    }
    use tokio::io::AsyncWriteExt;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");
    let input = json!({
        "secret": secret,
        "deliveries": got.iter().map(|r| json!({
            "id": r.id, "timestamp": r.timestamp, "signature": r.signature, "body": r.body,
        })).collect::<Vec<_>>(),
    });
    let mut child = tokio::process::Command::new("node")
        .arg(format!("{dir}/verify-webhooks.mjs"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.to_string().as_bytes())
        .await
        .expect("written");
    drop(stdin);
    let output = child.wait_with_output().await.expect("node ends");
    assert!(
        output.status.success(),
        "standardwebhooks: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("verified {}", got.len())
    );
}

test_both!(deliveries_are_signed_in_order_and_retried, |app| {
    // The second request fails; the retry comes 5 s later (±20%).
    let (receiver, url) = Receiver::start(vec![200, 500]).await;
    let (_, secret) = app.endpoint_to(&url).await;
    let session = app.start_session(Channel::Chat).await;
    let mut recorded = Vec::new();
    for (kind, record) in [
        (ConversionKind::TourBooked, "v-1"),
        (ConversionKind::DayPassPurchased, "dp-1"),
        (ConversionKind::BookingCreated, "b-1"),
    ] {
        let body = app.record_conversion(&session, kind, record).await;
        recorded.push(
            data(&body, "recordConversion")["conversion"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let first_two = receiver.wait_for(2).await;
    app.attempts_recorded(2).await;
    // Nothing more until the retry is due: the third event waits its turn.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        receiver.got().len(),
        2,
        "the next event waits for the one failing"
    );
    app.advance(TimeDelta::seconds(7));
    let got = receiver.wait_for(4).await;
    assert_eq!(&got[..2], &first_two[..]);
    let order: Vec<String> = got.iter().map(conversion_of).collect();
    assert_eq!(
        order,
        [
            recorded[0].clone(),
            recorded[1].clone(),
            recorded[1].clone(),
            recorded[2].clone()
        ]
    );
    assert_eq!(got[1].id, got[2].id, "a retry keeps its webhook-id");
    assert_eq!(got[1].body, got[2].body, "and its body");
    assert_ne!(got[0].id, got[1].id);
    let body: Value = serde_json::from_str(&got[0].body).expect("JSON");
    assert_eq!(body["type"], "conversion.recorded");
    assert_eq!(body["data"]["change"], "RECORDED");
    assert_eq!(body["data"]["conversion"]["kind"], "TOUR_BOOKED");
    assert_eq!(
        body["data"]["conversation"]["sessionId"],
        json!(session.session_id)
    );
    assert!(body["data"]["cursor"].is_string());
    for received in &got {
        assert!(received.signature.starts_with("v1,"), "{received:?}");
    }
    verified_independently(&secret, &got).await;
    app.attempts_recorded(4).await;

    let deliveries = app.deliveries().await;
    let states: Vec<(&str, i32)> = deliveries
        .iter()
        .map(|d| (d.status.as_str(), d.attempts))
        .collect();
    assert_eq!(
        states,
        [("DELIVERED", 1), ("DELIVERED", 2), ("DELIVERED", 1)]
    );
    assert_eq!(deliveries[1].last_status_code, Some(200));
});

test_both!(
    a_dead_letter_lets_the_next_event_through_and_410_stops_the_endpoint,
    |app| {
        // The first event fails on every attempt of the schedule (11), the
        // second is delivered, the third gets 410 Gone.
        let mut script = vec![503; 11];
        script.extend([200, 410]);
        let (receiver, url) = Receiver::start(script).await;
        let (id, _) = app.endpoint_to(&url).await;
        let session = app.start_session(Channel::Chat).await;
        for (kind, record) in [
            (ConversionKind::TourBooked, "v-2"),
            (ConversionKind::BookingCreated, "b-2"),
            (ConversionKind::DayPassPurchased, "dp-2"),
            (ConversionKind::ContractCreated, "c-2"),
        ] {
            app.record_conversion(&session, kind, record).await;
        }
        for attempt in 1..=11 {
            receiver.wait_for(attempt).await;
            // Once the attempt is recorded (its retry scheduled from the
            // clock as it was), past the longest wait of the schedule
            // (8 h + 20%).
            app.attempts_recorded(attempt as i32).await;
            app.advance(TimeDelta::hours(10));
        }
        let got = receiver.wait_for(13).await;
        assert!(
            got[..11].iter().all(|r| r.id == got[0].id),
            "one event, retried"
        );
        assert_ne!(
            got[11].id, got[0].id,
            "the next event after the dead letter"
        );

        // 410: the endpoint is disabled and the fourth event is not sent.
        let endpoint = loop {
            let body = app
                .gql(
                    &app.admin,
                    "{ webhookEndpoints { id enabled disabledReason failing } }",
                    json!({}),
                )
                .await;
            let endpoint = data(&body, "webhookEndpoints")[0].clone();
            if endpoint["enabled"] == false {
                break endpoint;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(endpoint["id"], json!(id));
        assert_eq!(endpoint["failing"], true);
        assert!(
            endpoint["disabledReason"]
                .as_str()
                .is_some_and(|r| r.contains("410")),
            "{endpoint}"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(receiver.got().len(), 13);
        let states: Vec<(String, i32)> = app
            .deliveries()
            .await
            .into_iter()
            .map(|d| (d.status, d.attempts))
            .collect();
        assert_eq!(
            states,
            [
                ("DEAD".to_owned(), 11),
                ("DELIVERED".to_owned(), 1),
                ("DEAD".to_owned(), 1)
            ]
        );
    }
);

const DELIVERIES: &str = "query($id: ID!, $status: DeliveryStatus, $first: Int, $after: String) {
    webhookDeliveries(endpointId: $id, status: $status, first: $first, after: $after) {
        nodes { eventId cursor status attempts lastStatusCode lastError nextAttemptAt finishedAt }
        pageInfo { hasNextPage endCursor } } }";

test_both!(
    the_delivery_log_pages_replays_from_a_cursor_and_is_pruned,
    |app| {
        let (receiver, url) = Receiver::start(Vec::new()).await;
        let (id, _) = app.endpoint_to(&url).await;
        let session = app.start_session(Channel::Chat).await;
        for (kind, record) in [
            (ConversionKind::TourBooked, "v-3"),
            (ConversionKind::BookingCreated, "b-3"),
            (ConversionKind::DayPassPurchased, "dp-3"),
        ] {
            app.record_conversion(&session, kind, record).await;
        }
        let sent = receiver.wait_for(3).await;
        app.attempts_recorded(3).await;

        // Newest first, two to a page.
        let page = app
            .gql(&app.admin, DELIVERIES, json!({ "id": id, "first": 2 }))
            .await;
        let page = data(&page, "webhookDeliveries");
        let ids: Vec<&str> = page["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| n["eventId"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, [sent[2].id.as_str(), sent[1].id.as_str()]);
        assert_eq!(page["nodes"][0]["status"], "DELIVERED");
        assert_eq!(page["nodes"][0]["lastStatusCode"], 200);
        assert_eq!(page["pageInfo"]["hasNextPage"], true);
        let rest = app
            .gql(
                &app.admin,
                DELIVERIES,
                json!({ "id": id, "after": page["pageInfo"]["endCursor"] }),
            )
            .await;
        let rest = data(&rest, "webhookDeliveries");
        assert_eq!(rest["nodes"][0]["eventId"], json!(sent[0].id));
        assert_eq!(rest["pageInfo"]["hasNextPage"], false);
        let dead = app
            .gql(
                &app.admin,
                DELIVERIES,
                json!({ "id": id, "status": "DEAD" }),
            )
            .await;
        assert_eq!(data(&dead, "webhookDeliveries")["nodes"], json!([]));

        // Replaying after the first event sends the other two again, in
        // order, under their ids.
        let first_cursor = rest["nodes"][0]["cursor"].clone();
        let replay = app
        .gql(
            &app.admin,
            "mutation($id: ID!, $after: String!) { redeliverWebhooks(input: { endpointId: $id, after: $after }) {
                endpoint { id } } }",
            json!({ "id": id, "after": first_cursor }),
        )
        .await;
        assert_eq!(
            data(&replay, "redeliverWebhooks")["endpoint"]["id"],
            json!(id)
        );
        let again = receiver.wait_for(5).await;
        assert_eq!(again[3].id, sent[1].id);
        assert_eq!(again[4].id, sent[2].id);
        app.attempts_recorded(5).await;

        // Refusals: a cursor that is not one, another tenant's endpoint.
        for (key, after) in [
            (&app.admin, json!("not-a-cursor")),
            (&app.other_admin, first_cursor.clone()),
        ] {
            let body = app
            .gql(
                key,
                "mutation($id: ID!, $after: String!) { redeliverWebhooks(input: { endpointId: $id, after: $after }) {
                    endpoint { id } } }",
                json!({ "id": id, "after": after }),
            )
            .await;
            assert!(
                ["BAD_USER_INPUT", "NOT_FOUND"].contains(&error_code(&body).as_str()),
                "{body}"
            );
        }

        // Finished deliveries older than the retention window (30 days) go.
        app.advance(TimeDelta::days(31));
        for _ in 0..2_000 {
            if app.deliveries().await.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(app.deliveries().await.len(), 0, "pruned");
    }
);

test_both!(
    a_name_that_resolves_to_a_private_address_gets_nothing,
    |app| {
        use sea_orm::ConnectionTrait;
        let (receiver, url) = Receiver::start(Vec::new()).await;
        let (id, _) = app.endpoint_to(&url).await;
        // As if the endpoint had been made with a name that later resolved to
        // loopback: `localhost` is not allowed (only 127.0.0.1 is).
        let port = url
            .rsplit(':')
            .next()
            .expect("port")
            .trim_end_matches("/hook");
        app.services
            .db
            .execute_unprepared(&format!(
                "UPDATE webhook_endpoint SET url = 'http://localhost:{port}/hook'"
            ))
            .await
            .expect("moved");
        let session = app.start_session(Channel::Chat).await;
        app.record_conversion(&session, ConversionKind::TourBooked, "v-4")
            .await;
        app.attempts_recorded(1).await;
        let log = app.gql(&app.admin, DELIVERIES, json!({ "id": id })).await;
        let delivery = data(&log, "webhookDeliveries")["nodes"][0].clone();
        assert_eq!(delivery["status"], "RETRYING");
        assert!(
            delivery["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("not a public address")),
            "{delivery}"
        );
        assert!(receiver.got().is_empty(), "nothing reached the receiver");
    }
);

test_both!(
    an_endpoint_that_asks_to_pause_stops_at_a_dead_letter,
    |app| {
        let (receiver, url) = Receiver::start(vec![500; 11]).await;
        let body = app
        .gql(
            &app.admin,
            "mutation($url: String!) { createWebhookEndpoint(input: { url: $url, pauseOnDeadLetter: true }) {
                endpoint { id pauseOnDeadLetter } } }",
            json!({ "url": url }),
        )
        .await;
        let endpoint = data(&body, "createWebhookEndpoint")["endpoint"].clone();
        assert_eq!(endpoint["pauseOnDeadLetter"], true);
        let session = app.start_session(Channel::Chat).await;
        app.record_conversion(&session, ConversionKind::TourBooked, "v-5")
            .await;
        app.record_conversion(&session, ConversionKind::BookingCreated, "b-5")
            .await;
        for attempt in 1..=11 {
            receiver.wait_for(attempt).await;
            app.attempts_recorded(attempt as i32).await;
            app.advance(TimeDelta::hours(10));
        }
        let listed = app
            .gql(
                &app.admin,
                "{ webhookEndpoints { enabled disabledReason } }",
                json!({}),
            )
            .await;
        let listed = data(&listed, "webhookEndpoints")[0].clone();
        assert_eq!(listed["enabled"], false, "{listed}");
        assert!(
            listed["disabledReason"]
                .as_str()
                .is_some_and(|r| r.contains("dead letter"))
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(receiver.got().len(), 11, "the second event waits");

        // Enabled again, it goes on with the next event.
        let id = endpoint["id"].clone();
        let enabled = app
        .gql(
            &app.admin,
            "mutation($id: ID!) { updateWebhookEndpoint(input: { id: $id, enabled: true }) { enabled failing } }",
            json!({ "id": id }),
        )
        .await;
        assert_eq!(data(&enabled, "updateWebhookEndpoint")["enabled"], true);
        let got = receiver.wait_for(12).await;
        assert_ne!(got[11].id, got[0].id);
    }
);

test_both!(a_hanging_endpoint_does_not_delay_another, |app| {
    let (hanging, hanging_url) = Receiver::start(vec![HANG]).await;
    let (fast, fast_url) = Receiver::start(Vec::new()).await;
    app.endpoint_to(&hanging_url).await;
    app.endpoint_to(&fast_url).await;
    let session = app.start_session(Channel::Chat).await;
    for (kind, record) in [
        (ConversionKind::TourBooked, "v-6"),
        (ConversionKind::BookingCreated, "b-6"),
        (ConversionKind::DayPassPurchased, "dp-6"),
    ] {
        app.record_conversion(&session, kind, record).await;
    }
    // The fast endpoint gets all three while the other's first attempt is
    // still under way (not recorded: the attempt's deadline is 10 s).
    fast.wait_for(3).await;
    app.attempts_recorded(3).await;
    assert_eq!(hanging.got().len(), 1);
    let attempts: Vec<i32> = app.deliveries().await.iter().map(|d| d.attempts).collect();
    assert_eq!(
        attempts.iter().filter(|&&a| a == 0).count(),
        1,
        "{attempts:?}"
    );
});

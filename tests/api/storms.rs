//! Many clients at once against one conversation or one record: every
//! outcome stored exactly once, one feed event per stored row, and never a
//! raw database error.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::*;

/// Every conversion of the caller's tenant after `after`, by polling.
async fn feed_after(app: &TestApp, after: &Value) -> Vec<Value> {
    let query = "query($after: String) { conversionsSince(after: $after, first: 100) {
        nodes { conversion { id record { id } } } pageInfo { hasNextPage endCursor } } }";
    let mut after = after.clone();
    let mut nodes = Vec::new();
    loop {
        let body = app
            .gql(&app.integrator, query, json!({ "after": after }))
            .await;
        let page = data(&body, "conversionsSince");
        nodes.extend(page["nodes"].as_array().expect("nodes").iter().cloned());
        after = page["pageInfo"]["endCursor"].clone();
        assert!(after.is_string(), "{body}");
        if page["pageInfo"]["hasNextPage"] != true {
            return nodes;
        }
    }
}

test_both!(a_retry_storm_stores_one_row_and_sends_one_event, |app| {
    let start = app.feed_end(&app.integrator).await;
    let session = app.start_session(Channel::Chat).await;
    let same_key = json!({ "sessionId": session.session_id, "kind": "BOOKING_CREATED",
        "recordId": "storm-1", "idempotencyKey": "checkout-42" });
    let bodies = futures_util::future::join_all(
        (0..50).map(|_| app.record_as(&app.checkout, same_key.clone())),
    )
    .await;
    let other_keys = (0..50).map(|n| {
        app.record_as(
            &app.checkout,
            json!({ "sessionId": session.session_id, "kind": "BOOKING_CREATED",
                "recordId": "storm-1", "idempotencyKey": format!("retry-{n}") }),
        )
    });
    let more = futures_util::future::join_all(other_keys).await;
    let ids: HashSet<&str> = bodies
        .iter()
        .chain(&more)
        .map(|b| {
            data(b, "recordConversion")["conversion"]["id"]
                .as_str()
                .expect("every retry answers with the conversion")
        })
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(app.conversion_rows().await, 1);
    assert_eq!(feed_after(&app, &start).await.len(), 1, "one event");
});

test_both!(
    fifty_writers_on_one_session_store_every_record_once,
    |app| {
        const WRITERS: usize = 50;
        const EACH: usize = 20;
        let start = app.feed_end(&app.integrator).await;
        let session = app.start_session(Channel::Chat).await;
        let writers = (0..WRITERS).map(|w| {
            let app = &app;
            let session_id = session.session_id.clone();
            async move {
                let mut answers = Vec::new();
                for n in 0..EACH {
                    answers.push(
                        app.record_as(
                            &app.checkout,
                            json!({ "sessionId": session_id, "kind": "DAY_PASS_PURCHASED",
                            "recordId": format!("w{w}-{n}") }),
                        )
                        .await,
                    );
                }
                answers
            }
        });
        let answers: Vec<Value> = futures_util::future::join_all(writers)
            .await
            .into_iter()
            .flatten()
            .collect();
        for answer in &answers {
            // Never a raw "database is locked": every call is recorded.
            assert_eq!(
                data(answer, "recordConversion")["created"],
                true,
                "{answer}"
            );
        }
        assert_eq!(app.conversion_rows().await, (WRITERS * EACH) as i64);
        let events = feed_after(&app, &start).await;
        let records: HashSet<&str> = events
            .iter()
            .map(|e| e["conversion"]["record"]["id"].as_str().expect("record"))
            .collect();
        assert_eq!(events.len(), WRITERS * EACH, "one event per row");
        assert_eq!(records.len(), WRITERS * EACH, "no record twice");
    }
);

/// Another process holding SQLite's write lock longer than the busy
/// timeout (a `convtrack keys` command, a backup tool): the recording is
/// refused with a retryable 503 that names no database internals, nothing
/// is stored, and the same request succeeds once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_elsewhere_past_the_busy_timeout_is_a_retryable_503() {
    use sea_orm::sqlx::sqlite::SqliteConnection;
    use sea_orm::sqlx::{Connection, Executor};

    let app = TestApp::spawn(Backend::Sqlite).await.expect("SQLite");
    let session = app.start_session(Channel::Chat).await;
    let input = json!({ "sessionId": session.session_id, "kind": "BOOKING_CREATED",
        "recordId": "locked-out", "idempotencyKey": "while-locked" });
    let mut outsider = SqliteConnection::connect(&app.database_url)
        .await
        .expect("a second connection to the file");
    outsider
        .execute("BEGIN IMMEDIATE")
        .await
        .expect("take the write lock");

    let refused = app
        .post_graphql(
            Some(&app.checkout),
            "mutation($input: RecordConversionInput!) { recordConversion(input: $input) { created } }",
            json!({ "input": input }),
        )
        .await;
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let body: Value = refused.json().await.expect("json");
    assert_eq!(error_code(&body), "SERVICE_UNAVAILABLE");
    let text = body.to_string().to_lowercase();
    assert!(
        !text.contains("locked") && !text.contains("sqlite"),
        "{body}"
    );
    assert!(error_message(&body).contains("retry"), "{body}");
    assert_eq!(app.conversion_rows().await, 0, "nothing was committed");

    outsider.execute("COMMIT").await.expect("release the lock");
    let retried = app.record_as(&app.checkout, input).await;
    assert_no_errors(&retried);
    assert_eq!(data(&retried, "recordConversion")["created"], true);
    assert_eq!(app.conversion_rows().await, 1);
}

// Recordings that arrive together (on SQLite they share one group commit):
// each is answered as if it had come alone, and the ones that fail fail
// by themselves.
test_both!(
    recordings_arriving_together_are_each_answered_on_their_own,
    |app| {
        let start = app.feed_end(&app.integrator).await;
        let session = app.start_session(Channel::Chat).await;
        let unknown = convtrack::domain::session_id::SessionId::generate()
            .expect("os rng")
            .to_string();
        let booking = |record: &str, key: Option<&str>| {
            json!({ "sessionId": session.session_id, "kind": "BOOKING_CREATED",
            "recordId": record, "idempotencyKey": key })
        };
        let mut inputs: Vec<Value> = (0..20).map(|n| booking(&format!("g-{n}"), None)).collect();
        inputs.push(json!({ "sessionId": unknown, "kind": "BOOKING_CREATED", "recordId": "lost" }));
        inputs.push(booking("same-1", Some("same")));
        inputs.push(booking("same-1", Some("same")));
        inputs.push(booking("reused-a", Some("reused")));
        inputs.push(booking("reused-b", Some("reused")));
        let answers = futures_util::future::join_all(
            inputs
                .into_iter()
                .map(|input| app.record_as(&app.checkout, input)),
        )
        .await;

        for answer in &answers[..20] {
            assert_eq!(
                data(answer, "recordConversion")["created"],
                true,
                "{answer}"
            );
        }
        assert_eq!(error_code(&answers[20]), "NOT_FOUND");
        let same: Vec<&Value> = answers[21..23]
            .iter()
            .map(|a| &data(a, "recordConversion")["conversion"]["id"])
            .collect();
        assert_eq!(same[0], same[1], "a replay answers with the first result");
        let mut reused: Vec<String> = answers[23..25]
            .iter()
            .map(|a| match a.get("errors") {
                Some(_) => error_code(a),
                None => "created".to_owned(),
            })
            .collect();
        reused.sort();
        assert_eq!(reused, ["IDEMPOTENCY_KEY_REUSED", "created"]);
        assert_eq!(app.conversion_rows().await, 22);
        assert_eq!(
            feed_after(&app, &start).await.len(),
            22,
            "one event per row"
        );
    }
);

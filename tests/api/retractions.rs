//! retractConversion: a sale withdrawn after it was recorded leaves the
//! badges, "converted" and the stats, stays in the detail as withdrawn,
//! and is an event of the feed; a conversation's other outcomes take over
//! what it held first.

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::adjustments::eur;
use crate::helpers::*;

const RETRACT: &str = "mutation($input: RetractConversionInput!) {
    retractConversion(input: $input) {
        created
        conversion { id status value { amount currency } } } }";

const STATS: &str = "{ conversionStats {
    conversations convertedConversations medianSecondsToConvert
    byKind { kind count rate }
    revenue { currency total byKind { kind amount } byChannel { channel amount }
              convertedConversations perConvertedConversation } } }";

impl TestApp {
    pub(crate) async fn retract(
        &self,
        key: &str,
        conversion: &str,
        reason: &str,
        idempotency: &str,
    ) -> Value {
        self.gql(
            key,
            RETRACT,
            json!({ "input": {
                "conversionId": conversion,
                "reason": reason,
                "idempotencyKey": idempotency,
            } }),
        )
        .await
    }

    async fn stats(&self) -> Value {
        let body = self.gql(&self.admin, STATS, json!({})).await;
        data(&body, "conversionStats").clone()
    }

    /// The kinds on the list's badges of each conversation, newest first.
    async fn listed_badges(&self, filter: Value) -> Vec<Vec<String>> {
        let body = self
            .gql(
                &self.admin,
                "query($filter: ConversationFilter) { conversations(filter: $filter) {
                    nodes { badges { kind } } } }",
                json!({ "filter": filter }),
            )
            .await;
        data(&body, "conversations")["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|node| {
                node["badges"]
                    .as_array()
                    .expect("badges")
                    .iter()
                    .map(|b| b["kind"].as_str().expect("kind").to_owned())
                    .collect()
            })
            .collect()
    }
}

impl TestApp {
    /// The id of the `at`-th conversion of `session`.
    async fn conversion_id_of(&self, session: &Session, at: usize) -> String {
        let body = self
            .gql(
                &self.admin,
                "query($id: ID) { conversation(id: $id) { conversions { id } } }",
                json!({ "id": session.id }),
            )
            .await;
        data(&body, "conversation")["conversions"][at]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }
}

/// The revenue line of `currency` in `stats`.
fn revenue_in<'a>(stats: &'a Value, currency: &str) -> Option<&'a Value> {
    stats["revenue"]
        .as_array()
        .expect("revenue")
        .iter()
        .find(|r| r["currency"] == currency)
}

/// The median, which comes from a histogram within 2% of every value.
fn assert_median_about(stats: &Value, seconds: f64) {
    let median = stats["medianSecondsToConvert"].as_f64().expect("a median");
    assert!(
        (median - seconds).abs() <= 0.02 * seconds,
        "{median} vs {seconds}"
    );
}

fn count_of(stats: &Value, kind: &str) -> i64 {
    stats["byKind"]
        .as_array()
        .expect("byKind")
        .iter()
        .find(|k| k["kind"] == kind)
        .and_then(|k| k["count"].as_i64())
        .expect("kind listed")
}

test_both!(
    a_retracted_sale_leaves_badges_and_stats_and_stays_in_the_detail,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        app.advance(TimeDelta::minutes(10));
        let pass = app.sold(&session, "pass-1", "25.00").await;
        app.advance(TimeDelta::minutes(20));
        app.record_conversion(&session, ConversionKind::TourBooked, "tour-1")
            .await;
        let before = app.stats().await;
        assert_eq!(before["convertedConversations"], 1);
        assert_median_about(&before, 600.0);
        assert_eq!(revenue_in(&before, "EUR").expect("EUR")["total"], "25.00");

        let body = app
            .retract(&app.checkout, &pass, "day pass refunded", "x-1")
            .await;
        let retracted = data(&body, "retractConversion");
        assert_eq!(retracted["created"], true);
        assert_eq!(retracted["conversion"]["status"], "RETRACTED");
        assert_eq!(retracted["conversion"]["value"], eur("25.00"), "kept");

        // The list, its badge filter, the detail's badges: only the tour.
        assert_eq!(app.listed_badges(json!({})).await, [["TOUR_BOOKED"]]);
        let day_passes = app
            .listed_badges(json!({ "badges": ["DAY_PASS_PURCHASED"] }))
            .await;
        assert!(day_passes.is_empty(), "{day_passes:?}");
        let detail = app
            .gql(
                &app.admin,
                "query($id: ID) { conversation(id: $id) { badges { kind }
                    conversions { kind status value { amount } } } }",
                json!({ "id": session.id }),
            )
            .await;
        let conversation = data(&detail, "conversation");
        assert_eq!(conversation["badges"], json!([{ "kind": "TOUR_BOOKED" }]));
        assert_eq!(
            conversation["conversions"],
            json!([
                { "kind": "DAY_PASS_PURCHASED", "status": "RETRACTED", "value": { "amount": "25.00" } },
                { "kind": "TOUR_BOOKED", "status": "ACTIVE", "value": null },
            ])
        );
        // The record's lookup still finds the conversation, and says the
        // outcome was withdrawn.
        let lookup = app
            .gql(
                &app.admin,
                "{ conversationForRecord(recordType: COWORKER_PRODUCT, recordId: \"pass-1\") {
                    id badges { kind } conversions { record { id } status } } }",
                json!({}),
            )
            .await;
        let found = data(&lookup, "conversationForRecord");
        assert_eq!(found["id"], json!(session.id));
        assert_eq!(
            found["conversions"][0],
            json!({ "record": { "id": "pass-1" }, "status": "RETRACTED" })
        );

        // Still converted, now by the tour: 30 minutes after the start.
        let after = app.stats().await;
        assert_eq!(after["convertedConversations"], 1);
        assert_median_about(&after, 1800.0);
        assert_eq!(count_of(&after, "DAY_PASS_PURCHASED"), 0);
        assert_eq!(count_of(&after, "TOUR_BOOKED"), 1);
        assert_eq!(revenue_in(&after, "EUR"), None, "{after}");

        // Its only outcome withdrawn, the conversation is no longer converted.
        let tour = app.conversion_id_of(&session, 1).await;
        let body = app
            .retract(&app.admin, &tour, "tour cancelled", "x-2")
            .await;
        assert_eq!(data(&body, "retractConversion")["created"], true);
        let none = app.stats().await;
        assert_eq!(none["convertedConversations"], 0);
        assert_eq!(none["medianSecondsToConvert"], Value::Null);
        assert_eq!(app.listed_badges(json!({})).await, [Vec::<String>::new()]);
        let unconverted = app.listed_badges(json!({ "converted": false })).await;
        assert_eq!(unconverted.len(), 1);
        let converted = app.listed_badges(json!({ "converted": true })).await;
        assert!(converted.is_empty());
    }
);

test_both!(retracting_is_exactly_once_harmless_twice_and_final, |app| {
    let session = app.start_session(Channel::Chat).await;
    let pass = app.sold(&session, "pass-2", "30.00").await;
    let restated = app
        .restate(&app.checkout, &pass, eur("20"), "partial refund", "r-1")
        .await;
    assert_eq!(data(&restated, "restateConversion")["created"], true);
    let first = app.retract(&app.integrator, &pass, "refunded", "x-1").await;
    assert_eq!(data(&first, "retractConversion")["created"], true);

    // Replays of both keys answer without changing anything.
    let replay = app.retract(&app.integrator, &pass, "refunded", "x-1").await;
    let replay = data(&replay, "retractConversion");
    assert_eq!(replay["created"], false);
    assert_eq!(replay["conversion"]["status"], "RETRACTED");
    let restate_replay = app
        .restate(&app.checkout, &pass, eur("20"), "partial refund", "r-1")
        .await;
    assert_eq!(data(&restate_replay, "restateConversion")["created"], false);
    // Retracting again under another key is harmless.
    let again = app
        .retract(&app.admin, &pass, "refunded twice", "x-2")
        .await;
    assert_eq!(data(&again, "retractConversion")["created"], false);

    let refusals = [
        (app.agent.clone(), pass.clone(), "no", "x-3", "FORBIDDEN"),
        (
            app.checkout.clone(),
            pass.clone(),
            "other",
            "x-1",
            "IDEMPOTENCY_KEY_REUSED",
        ),
        (
            app.checkout.clone(),
            pass.clone(),
            " ",
            "x-4",
            "BAD_USER_INPUT",
        ),
        (
            app.checkout.clone(),
            pass.clone(),
            "why",
            "",
            "BAD_USER_INPUT",
        ),
        (
            app.checkout.clone(),
            "Q29udmVyc2lvbjow".to_owned(),
            "why",
            "x-5",
            "NOT_FOUND",
        ),
        (
            app.other_admin.clone(),
            pass.clone(),
            "why",
            "x-6",
            "NOT_FOUND",
        ),
    ];
    for (key, id, reason, idempotency, code) in refusals {
        let body = app.retract(&key, &id, reason, idempotency).await;
        assert_eq!(error_code(&body), code, "{body}");
    }
    // A withdrawn sale is not restated.
    let late = app
        .restate(&app.checkout, &pass, eur("25"), "re-sold", "r-2")
        .await;
    assert_eq!(error_code(&late), "CONFLICT", "{late}");

    let history = app.history(&session).await;
    let changes: Vec<(Value, Value, Value)> = history[0]["adjustments"]
        .as_array()
        .expect("adjustments")
        .iter()
        .map(|a| {
            (
                a["change"].clone(),
                a["previousValue"].clone(),
                a["value"].clone(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (json!("RESTATED"), eur("30.00"), eur("20.00")),
            (json!("RETRACTED"), eur("20.00"), Value::Null),
        ]
    );
    assert_eq!(history[0]["value"], eur("20.00"));
});

test_both!(
    the_feed_reports_a_retraction_after_what_it_withdrew,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let pass = app.sold(&session, "pass-3", "12.50").await;
        let cursor = app.feed_after(None).await[0]["cursor"]
            .as_str()
            .expect("cursor")
            .to_owned();
        app.restate(&app.checkout, &pass, eur("10"), "discount", "r-1")
            .await;
        app.retract(&app.checkout, &pass, "cancelled", "x-1").await;

        let body = app
            .gql(
                &app.integrator,
                "query($after: String) { conversionsSince(after: $after, first: 10) {
                    nodes { change conversion { id status value { amount } }
                            conversation { badges { kind } } } } }",
                json!({ "after": cursor }),
            )
            .await;
        let events = data(&body, "conversionsSince")["nodes"].clone();
        // Each event shows the conversion as its change left it; the
        // conversation as it is now.
        assert_eq!(
            events,
            json!([
                { "change": "RESTATED", "conversion": { "id": pass, "status": "ACTIVE", "value": { "amount": "10.00" } },
                  "conversation": { "badges": [] } },
                { "change": "RETRACTED", "conversion": { "id": pass, "status": "RETRACTED", "value": { "amount": "10.00" } },
                  "conversation": { "badges": [] } },
            ])
        );
        let recorded = app.feed_after(None).await;
        assert_eq!(recorded[0]["change"], "RECORDED");
    }
);

/// Conversations of the racing test (even, so the revenue is whole).
const ROUNDS: i64 = 12;

test_both!(recordings_racing_retractions_keep_the_stats_exact, |app| {
    // Each round: a conversation with one sale, then at once its
    // retraction and two more outcomes of the same conversation.
    for round in 0..ROUNDS {
        let session = app.start_session(Channel::Chat).await;
        let pass = app.sold(&session, &format!("p-{round}"), "10.00").await;
        app.advance(TimeDelta::seconds(5));
        let (x, t, d) = (
            format!("x-{round}"),
            format!("t-{round}"),
            format!("d-{round}"),
        );
        let retract = app.retract(&app.checkout, &pass, "refunded", &x);
        let tour = app.record_worth(&session, ConversionKind::TourBooked, &t, eur("0"), None);
        let booking = app.record_worth(
            &session,
            ConversionKind::DayPassPurchased,
            &d,
            eur("7.50"),
            None,
        );
        let (retracted, tour, booking) = tokio::join!(retract, tour, booking);
        for body in [&retracted, &tour, &booking] {
            assert!(body["errors"].is_null(), "{body}");
        }
    }
    let stats = app.stats().await;
    assert_eq!(stats["conversations"], ROUNDS);
    assert_eq!(stats["convertedConversations"], ROUNDS, "{stats}");
    assert_eq!(count_of(&stats, "DAY_PASS_PURCHASED"), ROUNDS);
    assert_eq!(count_of(&stats, "TOUR_BOOKED"), ROUNDS);
    let eur_revenue = revenue_in(&stats, "EUR").expect("EUR");
    assert_eq!(eur_revenue["total"], format!("{}.00", ROUNDS * 15 / 2));
    assert_eq!(eur_revenue["convertedConversations"], ROUNDS);
    assert_eq!(eur_revenue["perConvertedConversation"], "7.50");
    for kind in ["DAY_PASS_PURCHASED", "TOUR_BOOKED"] {
        let badged = app.listed_badges(json!({ "badges": [kind] })).await;
        assert_eq!(badged.len() as i64, ROUNDS, "{kind}");
    }
    // The median is of each conversation's first active outcome, which
    // came 5 s after the start.
    assert_median_about(&stats, 5.0);
});

/// PostgreSQL: a recording whose statement started while a retraction of
/// the same conversation was under way decided "not the first" on what the
/// retraction then undid; it is planned again and counts as the first.
/// The test holds the retracted conversion's row so that the retraction
/// waits there, holding the conversation, while the recording arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_that_raced_a_retraction_is_planned_again() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let Some(app) = TestApp::spawn_with(Backend::Postgres, |_| {}).await else {
        return;
    };
    let session = app.start_session(Channel::Chat).await;
    app.sold(&session, "pass-1", "10.00").await;
    let pass = app.conversion_id_of(&session, 0).await;
    let db = &app.services.db;
    let holder = db.begin().await.expect("a transaction");
    holder
        .execute_unprepared("SELECT id FROM conversion WHERE record_id = 'pass-1' FOR UPDATE")
        .await
        .expect("locked");
    let go = tokio::sync::Notify::new();
    let retraction = app.retract(&app.checkout, &pass, "refunded", "x-1");
    let recording = async {
        go.notified().await;
        app.record_conversion(&session, ConversionKind::TourBooked, "tour-1")
            .await
    };
    let referee = async {
        // The retraction holds the conversation and waits for the row.
        waiting_for_locks(db, 1).await;
        go.notify_one();
        // The recording waits for the conversation.
        waiting_for_locks(db, 2).await;
        holder.rollback().await.expect("released");
    };
    let (retracted, recorded, ()) = tokio::join!(retraction, recording, referee);
    assert_eq!(data(&retracted, "retractConversion")["created"], true);
    assert_eq!(data(&recorded, "recordConversion")["created"], true);

    let stats = app.stats().await;
    assert_eq!(stats["convertedConversations"], 1, "{stats}");
    let converted = app.listed_badges(json!({ "converted": true })).await;
    assert_eq!(converted, [["TOUR_BOOKED"]]);
}

/// Waits until `n` statements of the test's database wait for a lock.
async fn waiting_for_locks(db: &sea_orm::DatabaseConnection, n: i64) {
    use sea_orm::ConnectionTrait;
    for _ in 0..3_000 {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT COUNT(*) AS waiting FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            ))
            .await
            .expect("pg_stat_activity")
            .expect("a row");
        if row.try_get::<i64>("", "waiting").expect("count") >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{n} statements never waited for a lock");
}

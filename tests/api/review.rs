//! Reviewing unattributed conversions: an operator attributes one anyway
//! (recorded with who, when and why, shown in its history, an event of the
//! feed, counted in the stats as credited) or dismisses it (kept for audit,
//! gone from the review queue).

use convtrack::domain::channel::Channel;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::rollups::{STATS, assert_agree, scanned_among};

const ATTRIBUTE: &str = "mutation($input: ReviewConversionInput!) {
    attributeConversion(input: $input) { created conversion { id attributed kind
        adjustments { change reason role keyPrefix at } } } }";

const DISMISS: &str = "mutation($input: ReviewConversionInput!) {
    dismissConversion(input: $input) { created conversion { id attributed dismissed
        adjustments { change reason role keyPrefix } } } }";

const QUEUE: &str = "{ unattributedConversions { nodes { id record { id } } } }";

const FEED: &str = "{ conversionsSince(first: 50) { nodes { change
    conversion { id attributed record { id } } } } }";

/// A day pass bought through the AI's link a month late: unattributed.
async fn late_day_pass(app: &TestApp, record_id: &str) -> (Session, String) {
    let session = app.start_session(Channel::Chat).await;
    app.day_pass_a_month_late(&session, record_id).await;
    let body = app.gql(&app.admin, QUEUE, json!({})).await;
    let id = data(&body, "unattributedConversions")["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["record"]["id"] == record_id)
        .expect("in the queue")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    (session, id)
}

async fn queued(app: &TestApp) -> Vec<String> {
    let body = app.gql(&app.admin, QUEUE, json!({})).await;
    data(&body, "unattributedConversions")["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["record"]["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn stats(app: &TestApp) -> Value {
    let body = app.gql(&app.admin, STATS, json!({})).await;
    data(&body, "conversionStats").clone()
}

test_both!(an_operator_attributes_an_unattributed_conversion, |app| {
    let (session, id) = late_day_pass(&app, "dp-late").await;
    let before = stats(&app).await;
    assert_eq!(before["unattributed"], 1);
    assert_eq!(before["convertedConversations"], 0);
    let input = json!({ "input": { "conversionId": id, "reason": "Confirmed on the phone" } });

    // Only an ADMIN key reviews.
    for key in [&app.agent, &app.checkout, &app.integrator] {
        let body = app.gql(key, ATTRIBUTE, input.clone()).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
    }
    let body = app.gql(&app.admin, ATTRIBUTE, input.clone()).await;
    let payload = data(&body, "attributeConversion");
    assert_eq!(payload["created"], true);
    assert_eq!(payload["conversion"]["attributed"], true);
    let history = &payload["conversion"]["adjustments"];
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");
    assert_eq!(history[0]["change"], "ATTRIBUTED");
    assert_eq!(history[0]["reason"], "Confirmed on the phone");
    assert_eq!(history[0]["role"], "ADMIN");
    assert!(
        app.admin
            .starts_with(history[0]["keyPrefix"].as_str().expect("prefix")),
        "{history}"
    );
    assert!(history[0]["at"].is_string());

    // Again: nothing more happens.
    let again = app.gql(&app.admin, ATTRIBUTE, input).await;
    assert_eq!(data(&again, "attributeConversion")["created"], false);

    // The badge, the stats, the queue, the feed.
    let conversation = app.conversation(&app.admin, &session).await;
    let badges = &conversation["badges"];
    assert_eq!(badges[0]["kind"], "DAY_PASS_PURCHASED", "{conversation}");
    let after = stats(&app).await;
    assert_eq!(after["unattributed"], 0);
    assert_eq!(after["convertedConversations"], 1);
    assert_agree(
        &after,
        &scanned_among(&app, (i64::MIN, i64::MAX), None, None).await,
        "after attributing",
    );
    assert!(queued(&app).await.is_empty());
    let body = app.gql(&app.integrator, FEED, json!({})).await;
    let events: Vec<(Value, Value)> = data(&body, "conversionsSince")["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|e| e["conversion"]["id"] == id.as_str())
        .map(|e| (e["change"].clone(), e["conversion"]["attributed"].clone()))
        .collect();
    assert_eq!(
        events,
        vec![
            (json!("RECORDED"), json!(false)),
            (json!("ATTRIBUTED"), json!(true))
        ]
    );
});

test_both!(
    a_dismissed_conversion_leaves_the_queue_and_stays_for_audit,
    |app| {
        let (_, kept) = late_day_pass(&app, "dp-kept").await;
        let (_, dismissed) = late_day_pass(&app, "dp-dismissed").await;
        let input = json!({ "input": { "conversionId": dismissed, "reason": "Test purchase" } });
        let body = app.gql(&app.admin, DISMISS, input.clone()).await;
        let payload = data(&body, "dismissConversion");
        assert_eq!(payload["created"], true);
        assert_eq!(payload["conversion"]["dismissed"], true);
        assert_eq!(payload["conversion"]["attributed"], false);
        assert_eq!(
            payload["conversion"]["adjustments"][0]["change"],
            "DISMISSED"
        );
        assert_eq!(queued(&app).await, vec!["dp-kept".to_owned()]);
        let again = app.gql(&app.admin, DISMISS, input).await;
        assert_eq!(data(&again, "dismissConversion")["created"], false);
        // Still an unattributed conversion in the stats: dismissing reviews it,
        // it does not undo it.
        assert_eq!(stats(&app).await["unattributed"], 2);

        // Changing one's mind: a dismissed conversion can still be attributed;
        // an attributed one cannot be dismissed.
        let input =
            json!({ "input": { "conversionId": dismissed, "reason": "It was real after all" } });
        let body = app.gql(&app.admin, ATTRIBUTE, input).await;
        assert_eq!(data(&body, "attributeConversion")["created"], true);
        let input = json!({ "input": { "conversionId": dismissed, "reason": "no" } });
        let body = app.gql(&app.admin, DISMISS, input).await;
        assert_eq!(error_code(&body), "CONFLICT");
        assert_eq!(queued(&app).await, vec!["dp-kept".to_owned()]);
        let body = app
            .gql(
                &app.admin,
                "query($id: ID!) { node(id: $id) { ... on Conversion { attributed } } }",
                json!({ "id": kept }),
            )
            .await;
        assert_eq!(data(&body, "node")["attributed"], false);
    }
);

test_both!(review_refuses_what_it_cannot_do, |app| {
    let session = app.start_session(Channel::Chat).await;
    let body = app
        .record_conversion(
            &session,
            convtrack::domain::conversion::ConversionKind::TourBooked,
            "t-1",
        )
        .await;
    let credited = data(&body, "recordConversion")["conversion"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (_, late) = late_day_pass(&app, "dp-late").await;
    let cases = [
        (
            ATTRIBUTE,
            json!({ "conversionId": late, "reason": "" }),
            "BAD_USER_INPUT",
        ),
        (
            ATTRIBUTE,
            json!({ "conversionId": late, "reason": "x".repeat(501) }),
            "BAD_USER_INPUT",
        ),
        (
            ATTRIBUTE,
            json!({ "conversionId": "Q29udmVyc2lvbjow", "reason": "r" }),
            "NOT_FOUND",
        ),
        (
            DISMISS,
            json!({ "conversionId": credited, "reason": "r" }),
            "CONFLICT",
        ),
    ];
    for (mutation, input, code) in cases {
        let body = app
            .gql(&app.admin, mutation, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&body), code, "{input}");
    }
    // An attributed conversion is already credited: nothing to do.
    let input = json!({ "input": { "conversionId": credited, "reason": "r" } });
    let body = app.gql(&app.admin, ATTRIBUTE, input).await;
    assert_eq!(data(&body, "attributeConversion")["created"], false);
    assert_eq!(queued(&app).await, vec!["dp-late".to_owned()]);
});

test_both!(
    credited_conversions_keep_the_stats_exact_through_later_changes,
    |app| {
        let agree = |what: &'static str| {
            let app = &app;
            async move {
                let served = stats(app).await;
                let scan = scanned_among(app, (i64::MIN, i64::MAX), None, None).await;
                assert_agree(&served, &scan, what);
            }
        };
        // A tour credited at once; a month later a day pass through an expired
        // link, kept unattributed, then attributed by an operator.
        let session = app.start_session(Channel::Chat).await;
        let body = app
            .record_conversion(
                &session,
                convtrack::domain::conversion::ConversionKind::TourBooked,
                "t-1",
            )
            .await;
        let tour = data(&body, "recordConversion")["conversion"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        app.day_pass_a_month_late(&session, "dp-late").await;
        let body = app.gql(&app.admin, QUEUE, json!({})).await;
        let late = data(&body, "unattributedConversions")["nodes"][0]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        agree("before the review").await;
        let input = json!({ "input": { "conversionId": late, "reason": "real" } });
        assert_no_errors(&app.gql(&app.admin, ATTRIBUTE, input).await);
        agree("after attributing: the tour stays the first conversion").await;
        // The tour withdrawn: the credited day pass is now the first.
        assert_no_errors(&app.retract(&app.checkout, &tour, "cancelled", "r-1").await);
        agree("after retracting the tour").await;
        assert_eq!(stats(&app).await["convertedConversations"], 1);
        // And the credited one withdrawn too: nothing converted is left.
        assert_no_errors(&app.retract(&app.checkout, &late, "refunded", "r-2").await);
        agree("after retracting the credited day pass").await;
        assert_eq!(stats(&app).await["convertedConversations"], 0);
    }
);

//! restateConversion: a sale's value changes after it was recorded; the
//! change is kept in the conversion's history and is a feed event.

use serde_json::{Value, json};

use crate::helpers::*;

const RESTATE: &str = "mutation($input: RestateConversionInput!) {
    restateConversion(input: $input) {
        created
        conversion { id value { amount currency } } } }";

const HISTORY: &str = "query($id: ID) { conversation(id: $id) { conversions {
    value { amount currency }
    adjustments { change value { amount currency } previousValue { amount currency } reason role at } } } }";

pub(crate) fn eur(amount: &str) -> Value {
    json!({ "amount": amount, "currency": "EUR" })
}

impl TestApp {
    /// A day pass of `session` recorded by the checkout, worth `amount`
    /// EUR; its conversion id.
    pub(crate) async fn sold(&self, session: &Session, record_id: &str, amount: &str) -> String {
        let body = self
            .record_worth(
                session,
                ConversionKind::DayPassPurchased,
                record_id,
                eur(amount),
                None,
            )
            .await;
        data(&body, "recordConversion")["conversion"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    pub(crate) async fn restate(
        &self,
        key: &str,
        conversion: &str,
        value: Value,
        reason: &str,
        idempotency: &str,
    ) -> Value {
        self.gql(
            key,
            RESTATE,
            json!({ "input": {
                "conversionId": conversion,
                "value": value,
                "reason": reason,
                "idempotencyKey": idempotency,
            } }),
        )
        .await
    }

    /// The conversation's conversions with their histories.
    pub(crate) async fn history(&self, session: &Session) -> Value {
        let body = self
            .gql(&self.admin, HISTORY, json!({ "id": session.id }))
            .await;
        data(&body, "conversation")["conversions"].clone()
    }

    /// Every feed event after `after` (from the start without it).
    pub(crate) async fn feed_after(&self, after: Option<&str>) -> Vec<Value> {
        let body = self
            .gql(
                &self.integrator,
                "query($after: String) { conversionsSince(after: $after, first: 100) {
                    nodes { cursor change conversion { id value { amount } } } } }",
                json!({ "after": after }),
            )
            .await;
        data(&body, "conversionsSince")["nodes"]
            .as_array()
            .expect("nodes")
            .clone()
    }
}

test_both!(
    a_restatement_changes_the_value_everywhere_and_is_kept,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let pass = app.sold(&session, "pass-1", "25.00").await;

        let body = app
            .restate(
                &app.checkout,
                &pass,
                eur("40"),
                "upgraded to a week pass",
                "r-1",
            )
            .await;
        let restated = data(&body, "restateConversion");
        assert_eq!(restated["created"], true);
        assert_eq!(restated["conversion"]["value"], eur("40.00"));

        let history = app.history(&session).await;
        let conversion = &history[0];
        assert_eq!(conversion["value"], eur("40.00"));
        let adjustments = conversion["adjustments"].as_array().expect("list");
        assert_eq!(adjustments.len(), 1, "{history}");
        assert_eq!(adjustments[0]["change"], "RESTATED");
        assert_eq!(adjustments[0]["value"], eur("40.00"));
        assert_eq!(adjustments[0]["previousValue"], eur("25.00"));
        assert_eq!(adjustments[0]["reason"], "upgraded to a week pass");
        assert_eq!(adjustments[0]["role"], "CHECKOUT");
        assert!(adjustments[0]["at"].is_string());

        let list = app
            .gql(
                &app.admin,
                "{ conversations { nodes { badges { value { amount } } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            data(&list, "conversations")["nodes"][0]["badges"],
            json!([{ "value": { "amount": "40.00" } }])
        );

        // Each event reports the value as its change left it.
        let events = app.feed_after(None).await;
        let seen: Vec<(&str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e["change"].as_str().expect("change"),
                    e["conversion"]["value"]["amount"].as_str().expect("amount"),
                )
            })
            .collect();
        assert_eq!(seen, [("RECORDED", "25.00"), ("RESTATED", "40.00")]);
        assert_eq!(events[0]["conversion"]["id"], events[1]["conversion"]["id"]);
        assert_ne!(events[0]["cursor"], events[1]["cursor"]);
    }
);

test_both!(restatements_are_exactly_once_and_refused_cleanly, |app| {
    let session = app.start_session(Channel::Chat).await;
    let pass = app.sold(&session, "pass-2", "25.00").await;
    let first = app
        .restate(&app.integrator, &pass, eur("20"), "partial refund", "r-2")
        .await;
    assert_eq!(data(&first, "restateConversion")["created"], true);

    // The same key and input replays; another input under it is refused.
    let replay = app
        .restate(&app.integrator, &pass, eur("20"), "partial refund", "r-2")
        .await;
    let replay = data(&replay, "restateConversion");
    assert_eq!(replay["created"], false);
    assert_eq!(replay["conversion"]["value"], eur("20.00"));
    let reused = app
        .restate(&app.integrator, &pass, eur("15"), "partial refund", "r-2")
        .await;
    assert_eq!(error_code(&reused), "IDEMPOTENCY_KEY_REUSED", "{reused}");
    // The value it already has: nothing changes.
    let same = app
        .restate(&app.admin, &pass, eur("20.00"), "checked", "r-3")
        .await;
    assert_eq!(data(&same, "restateConversion")["created"], false);

    let refusals = [
        (
            app.agent.clone(),
            pass.clone(),
            eur("30"),
            "more",
            "FORBIDDEN",
        ),
        (
            app.checkout.clone(),
            pass.clone(),
            json!({ "amount": "30", "currency": "USD" }),
            "more",
            "CONFLICT",
        ),
        (
            app.checkout.clone(),
            pass.clone(),
            eur("30.001"),
            "more",
            "BAD_USER_INPUT",
        ),
        (
            app.checkout.clone(),
            pass.clone(),
            eur("30"),
            "  ",
            "BAD_USER_INPUT",
        ),
        (
            app.checkout.clone(),
            "Q29udmVyc2lvbjow".to_owned(),
            eur("30"),
            "more",
            "NOT_FOUND",
        ),
        (
            app.other_admin.clone(),
            pass.clone(),
            eur("30"),
            "more",
            "NOT_FOUND",
        ),
    ];
    for (at, (key, conversion, value, reason, code)) in refusals.into_iter().enumerate() {
        let body = app
            .restate(
                &key,
                &conversion,
                value.clone(),
                reason,
                &format!("refused-{at}"),
            )
            .await;
        assert_eq!(error_code(&body), code, "{value} {reason:?}: {body}");
    }
    let history = app.history(&session).await;
    assert_eq!(history[0]["value"], eur("20.00"));
    assert_eq!(
        history[0]["adjustments"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );
    assert_eq!(app.feed_after(None).await.len(), 2);
});

test_both!(
    concurrent_restatements_leave_one_consistent_history,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let pass = app.sold(&session, "pass-3", "100.00").await;
        let calls = (1..=20).map(|n| {
            let pass = pass.clone();
            let app = &app;
            async move {
                app.restate(
                    &app.checkout,
                    &pass,
                    eur(&format!("{}.00", 100 + n)),
                    "changed",
                    &format!("c-{n}"),
                )
                .await
            }
        });
        for body in futures_util::future::join_all(calls).await {
            assert_eq!(data(&body, "restateConversion")["created"], true, "{body}");
        }
        let history = app.history(&session).await;
        let adjustments = history[0]["adjustments"].as_array().expect("list");
        assert_eq!(adjustments.len(), 20);
        // Each change starts from the value the one before it left.
        let mut value = eur("100.00");
        for adjustment in adjustments {
            assert_eq!(adjustment["previousValue"], value, "{history}");
            value = adjustment["value"].clone();
        }
        assert_eq!(history[0]["value"], value, "the last change is the value");
        let list = app
            .gql(
                &app.admin,
                "{ conversations { nodes { badges { value { amount currency } } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            data(&list, "conversations")["nodes"][0]["badges"][0]["value"],
            value
        );
        // The feed has them in the history's order.
        let restated: Vec<Value> = app
            .feed_after(None)
            .await
            .into_iter()
            .filter(|e| e["change"] == "RESTATED")
            .map(|e| e["conversion"]["value"]["amount"].clone())
            .collect();
        let in_history: Vec<Value> = adjustments
            .iter()
            .map(|a| a["value"]["amount"].clone())
            .collect();
        assert_eq!(restated, in_history);
    }
);

test_both!(
    a_subscriber_resuming_from_a_cursor_receives_the_changes_it_missed,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let pass = app.sold(&session, "pass-4", "10.00").await;
        let recorded = app.feed_after(None).await;
        let cursor = recorded[0]["cursor"].as_str().expect("cursor").to_owned();
        for (n, amount) in ["12", "14", "9"].into_iter().enumerate() {
            let body = app
                .restate(
                    &app.checkout,
                    &pass,
                    eur(amount),
                    "changed",
                    &format!("m-{n}"),
                )
                .await;
            data(&body, "restateConversion");
        }
        let retracted = app
            .gql(
                &app.checkout,
                "mutation { retractConversion(input: { conversionId: \"PASS\", reason: \"refunded\",
                    idempotencyKey: \"m-x\" }) { created } }"
                    .replace("PASS", &pass)
                    .as_str(),
                json!({}),
            )
            .await;
        assert_eq!(data(&retracted, "retractConversion")["created"], true);
        let mut socket = app.subscriber(&app.integrator).await;
        socket
            .subscribe(
                "1",
                "subscription($after: String) { conversionRecorded(after: $after) {
                change conversion { id status value { amount } } } }",
                json!({ "after": cursor }),
            )
            .await;
        let missed = socket.events(4).await;
        let event = |change: &str, status: &str, amount: &str| {
            json!({ "change": change,
                    "conversion": { "id": pass, "status": status, "value": { "amount": amount } } })
        };
        assert_eq!(
            missed,
            [
                event("RESTATED", "ACTIVE", "12.00"),
                event("RESTATED", "ACTIVE", "14.00"),
                event("RESTATED", "ACTIVE", "9.00"),
                event("RETRACTED", "RETRACTED", "9.00"),
            ]
        );
        // And a live one after them.
        let again = app.sold(&session, "pass-5", "11.00").await;
        let live = socket.next_event().await;
        assert_eq!(live["change"], "RECORDED");
        assert_eq!(live["conversion"]["id"], json!(again));
    }
);

test_both!(changes_follow_the_feed_filters_and_pages, |app| {
    let chat = app.start_session(Channel::Chat).await;
    let pass = app.sold(&chat, "pass-5", "10.00").await;
    let tour = app
        .record_worth(&chat, ConversionKind::TourBooked, "v-5", eur("0"), None)
        .await;
    let tour = data(&tour, "recordConversion")["conversion"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for (conversion, amount, key) in [
        (&pass, "12", "f-1"),
        (&tour, "5", "f-2"),
        (&pass, "13", "f-3"),
    ] {
        data(
            &app.restate(&app.checkout, conversion, eur(amount), "changed", key)
                .await,
            "restateConversion",
        );
    }
    let page = |filter: &'static str, after: Option<String>| {
        let app = &app;
        async move {
            let body = app
                .gql(
                    &app.integrator,
                    &format!(
                        "query($after: String) {{ conversionsSince(after: $after, first: 1{filter}) {{
                            nodes {{ change conversion {{ kind value {{ amount }} }} }}
                            pageInfo {{ endCursor hasNextPage }} }} }}"
                    ),
                    json!({ "after": after }),
                )
                .await;
            data(&body, "conversionsSince").clone()
        }
    };
    // One event a page, across both kinds of rows, in the order made.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let answer = page(", kinds: [DAY_PASS_PURCHASED]", after).await;
        for node in answer["nodes"].as_array().expect("nodes") {
            seen.push(format!(
                "{} {}",
                node["change"].as_str().expect("change"),
                node["conversion"]["value"]["amount"]
                    .as_str()
                    .expect("amount")
            ));
        }
        if answer["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = answer["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, ["RECORDED 10.00", "RESTATED 12.00", "RESTATED 13.00"]);
    let whatsapp = page(", channels: [WHATSAPP]", None).await;
    assert_eq!(whatsapp["nodes"], json!([]));
    assert_eq!(app.feed_after(None).await.len(), 5);
});

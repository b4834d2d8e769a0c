//! Money on recordings: what a conversion earned, kept exactly in the
//! currency's minor units and shown wherever the conversion is.

use serde_json::{Value, json};

use crate::helpers::*;

const RECORD_WITH_VALUE: &str = "mutation($input: RecordConversionInput!) {
    recordConversion(input: $input) {
        created
        conversion { id kind value { amount currency } }
        conversions { kind value { amount currency } } } }";

impl TestApp {
    /// The checkout recording `kind` of `record_id` for `session`, worth
    /// `value` (`{ amount, currency }`), under `key` if given.
    pub(crate) async fn record_worth(
        &self,
        session: &Session,
        kind: ConversionKind,
        record_id: &str,
        value: Value,
        key: Option<&str>,
    ) -> Value {
        let mut input = json!({
            "sessionId": session.session_id,
            "kind": kind.as_str(),
            "recordId": record_id,
            "value": value,
        });
        if let Some(key) = key {
            input["idempotencyKey"] = json!(key);
        }
        self.gql(&self.checkout, RECORD_WITH_VALUE, json!({ "input": input }))
            .await
    }
}

fn money(amount: &str, currency: &str) -> Value {
    json!({ "amount": amount, "currency": currency })
}

test_both!(
    a_value_is_shown_on_the_conversion_its_badge_and_the_feed,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let body = app
            .record_worth(
                &session,
                ConversionKind::ContractCreated,
                "contract-12",
                money("1250", "EUR"),
                None,
            )
            .await;
        let recorded = data(&body, "recordConversion");
        assert_eq!(recorded["conversion"]["value"], money("1250.00", "EUR"));

        // The list answers from its own statement; the detail through the engine.
        let list = app
            .gql(
                &app.admin,
                "{ conversations { nodes { badges { kind value { amount currency } } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            data(&list, "conversations")["nodes"][0]["badges"],
            json!([{ "kind": "CONTRACT_CREATED", "value": money("1250.00", "EUR") }])
        );
        let detail = app
            .gql(
                &app.admin,
                "query($id: ID) { conversation(id: $id) {
                badges { value { amount currency } }
                conversions { value { amount currency } } } }",
                json!({ "id": session.id }),
            )
            .await;
        let detail = data(&detail, "conversation");
        assert_eq!(detail["badges"][0]["value"], money("1250.00", "EUR"));
        assert_eq!(detail["conversions"][0]["value"], money("1250.00", "EUR"));

        let feed = app
        .gql(
            &app.integrator,
            "{ conversionsSince(first: 10) { nodes { conversion { kind value { amount currency } } } } }",
            json!({}),
        )
        .await;
        assert_eq!(
            data(&feed, "conversionsSince")["nodes"],
            json!([{ "conversion": { "kind": "CONTRACT_CREATED", "value": money("1250.00", "EUR") } }])
        );
    }
);

test_both!(a_conversion_recorded_without_a_value_has_none, |app| {
    let session = app.start_session(Channel::Chat).await;
    data(
        &app.record_conversion(&session, ConversionKind::TourBooked, "visitor-1")
            .await,
        "recordConversion",
    );
    let list = app
        .gql(
            &app.admin,
            "{ conversations { nodes { badges { value { amount } } conversions { value { amount } } } } }",
            json!({}),
        )
        .await;
    let row = &data(&list, "conversations")["nodes"][0];
    assert_eq!(row["badges"], json!([{ "value": null }]));
    assert_eq!(row["conversions"], json!([{ "value": null }]));
});

test_both!(amounts_are_kept_in_each_currencys_minor_units, |app| {
    // (amount sent, currency, amount shown), at each currency's edges.
    let kept = [
        ("0", "JPY", "0"),
        ("500", "JPY", "500"),
        ("999999999", "JPY", "999999999"),
        ("0.01", "EUR", "0.01"),
        ("12.5", "EUR", "12.50"),
        ("999999999.99", "EUR", "999999999.99"),
        ("0.001", "KWD", "0.001"),
        ("12.3", "KWD", "12.300"),
        ("999999999.999", "KWD", "999999999.999"),
        ("7", "usd", "7.00"),
    ];
    for (at, (amount, currency, shown)) in kept.into_iter().enumerate() {
        let session = app.start_session(Channel::Chat).await;
        let body = app
            .record_worth(
                &session,
                ConversionKind::DayPassPurchased,
                &format!("pass-{at}"),
                money(amount, currency),
                None,
            )
            .await;
        assert_eq!(
            data(&body, "recordConversion")["conversion"]["value"],
            money(shown, &currency.to_ascii_uppercase()),
            "{amount} {currency}"
        );
    }
});

test_both!(
    malformed_amounts_and_currencies_are_refused_and_nothing_is_stored,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let refused = [
            ("0.5", "JPY"),
            ("12.345", "EUR"),
            ("12.340", "EUR"),
            ("12.3456", "KWD"),
            ("1000000000", "EUR"),
            ("1e3", "EUR"),
            ("0.1+0.2", "EUR"),
            ("NaN", "EUR"),
            ("-0", "EUR"),
            ("-5.00", "EUR"),
            ("123456789012345678901234567890", "EUR"),
            (" 5", "EUR"),
            ("", "EUR"),
            ("5", "EURO"),
            ("5", "XYZ"),
            ("5", "XAU"),
            ("5", ""),
        ];
        for (amount, currency) in refused {
            let body = app
                .record_worth(
                    &session,
                    ConversionKind::DayPassPurchased,
                    "pass-1",
                    money(amount, currency),
                    None,
                )
                .await;
            assert_eq!(
                error_code(&body),
                "BAD_USER_INPUT",
                "{amount:?} {currency:?}: {body}"
            );
        }
        let message = app
            .record_worth(
                &session,
                ConversionKind::DayPassPurchased,
                "pass-1",
                money("12.345", "EUR"),
                None,
            )
            .await["errors"][0]["message"]
            .clone();
        assert!(
            message
                .as_str()
                .is_some_and(|m| m.contains("EUR has 2 decimals")),
            "{message}"
        );
        // A float where a string belongs is refused by the schema.
        let body = app
            .record_worth(
                &session,
                ConversionKind::DayPassPurchased,
                "pass-1",
                json!({ "amount": 12.5, "currency": "EUR" }),
                None,
            )
            .await;
        assert!(!error_code(&body).is_empty(), "{body}");
        assert_eq!(app.conversion_rows().await, 0);
    }
);

test_both!(
    recording_again_with_another_value_is_a_restatement_not_a_replay,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let pass = ConversionKind::DayPassPurchased;
        let first = app
            .record_worth(&session, pass, "pass-9", money("25.00", "EUR"), Some("k-1"))
            .await;
        assert_eq!(data(&first, "recordConversion")["created"], true);

        // The same value (written another way) replays, as does no value at all.
        let same = app
            .record_worth(&session, pass, "pass-9", money("25", "EUR"), None)
            .await;
        assert_eq!(data(&same, "recordConversion")["created"], false);
        let without = app.record_conversion(&session, pass, "pass-9").await;
        assert_eq!(data(&without, "recordConversion")["created"], false);

        // Another value on the same record: a conflict, whatever the currency.
        for other in [money("30.00", "EUR"), money("25.00", "USD")] {
            let body = app
                .record_worth(&session, pass, "pass-9", other.clone(), None)
                .await;
            assert_eq!(error_code(&body), "CONFLICT", "{other}: {body}");
            let message = body["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(message.contains("was recorded with 25.00 EUR"), "{message}");
        }
        // The same idempotency key with another value: a reused key.
        let body = app
            .record_worth(&session, pass, "pass-9", money("30.00", "EUR"), Some("k-1"))
            .await;
        assert_eq!(error_code(&body), "IDEMPOTENCY_KEY_REUSED", "{body}");
        // The key replays with its own value.
        let replay = app
            .record_worth(&session, pass, "pass-9", money("25.00", "EUR"), Some("k-1"))
            .await;
        let replay = data(&replay, "recordConversion");
        assert_eq!(replay["created"], false);
        assert_eq!(replay["conversion"]["value"], money("25.00", "EUR"));

        // A record first recorded without a value cannot gain one by recording.
        let tour = app
            .record_conversion(&session, ConversionKind::TourBooked, "visitor-3")
            .await;
        assert_eq!(data(&tour, "recordConversion")["created"], true);
        let body = app
            .record_worth(
                &session,
                ConversionKind::TourBooked,
                "visitor-3",
                money("0", "EUR"),
                None,
            )
            .await;
        assert_eq!(error_code(&body), "CONFLICT", "{body}");
        assert_eq!(app.conversion_rows().await, 2);
    }
);

test_both!(
    the_value_goes_to_the_contract_not_the_customer_it_adds,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let body = app
            .gql(
                &app.checkout,
                RECORD_WITH_VALUE,
                json!({ "input": {
                "sessionId": session.session_id,
                "kind": "CONTRACT_CREATED",
                "recordId": "contract-7",
                "newCustomerId": "coworker-7",
                "value": money("480.00", "GBP"),
            } }),
            )
            .await;
        assert_eq!(
            data(&body, "recordConversion")["conversions"],
            json!([
                { "kind": "CONTRACT_CREATED", "value": money("480.00", "GBP") },
                { "kind": "CUSTOMER_CREATED", "value": null },
            ])
        );
    }
);

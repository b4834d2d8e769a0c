//! recordConversion: badges, idempotency, conflicts, atomicity, concurrency.

use std::collections::HashSet;

use serde_json::json;

use crate::helpers::*;

/// Concurrent answers all name one conversion, and exactly one created it.
fn assert_one_conversion_created(bodies: &[serde_json::Value]) {
    let ids: HashSet<&str> = bodies
        .iter()
        .map(|b| {
            data(b, "recordConversion")["conversion"]["id"]
                .as_str()
                .expect("id")
        })
        .collect();
    assert_eq!(ids.len(), 1, "every answer names the same conversion");
    let created = bodies
        .iter()
        .filter(|b| b["data"]["recordConversion"]["created"] == true)
        .count();
    assert_eq!(created, 1, "exactly one call created it");
}

test_both!(a_day_pass_shows_a_peach_badge, |app| {
    let session = app.start_session(Channel::Chat).await;
    data(
        &app.say(&session, "VISITOR", "Can I get a day pass for tomorrow?")
            .await,
        "appendMessage",
    );
    let body = app
        .record_conversion(&session, ConversionKind::DayPassPurchased, "product-881")
        .await;
    let recorded = data(&body, "recordConversion");
    assert_eq!(recorded["created"], true);
    assert_eq!(recorded["attributed"], true);
    assert_eq!(recorded["conversion"]["kind"], "DAY_PASS_PURCHASED");
    assert_eq!(recorded["conversion"]["source"], "DIRECT");
    assert_eq!(
        recorded["conversion"]["record"],
        json!({ "type": "COWORKER_PRODUCT", "id": "product-881", "url": null })
    );

    let list = app
        .gql(
            &app.admin,
            "{ conversations { nodes { openingMessage badges { kind label colour record { type id url } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&list, "conversations")["nodes"][0],
        json!({
            "openingMessage": "Can I get a day pass for tomorrow?",
            "badges": [{
                "kind": "DAY_PASS_PURCHASED", "label": "Day pass purchased", "colour": "PEACH",
                "record": { "type": "COWORKER_PRODUCT", "id": "product-881", "url": null }
            }]
        })
    );
});

test_both!(every_kind_has_its_badge, |app| {
    let session = app.start_session(Channel::Chat).await;
    let kinds = [
        (
            ConversionKind::TourBooked,
            "Tour booked",
            "LAVENDER",
            "VISITOR",
        ),
        (
            ConversionKind::CustomerCreated,
            "Customer created",
            "GREEN",
            "COWORKER",
        ),
        (
            ConversionKind::ContractCreated,
            "Contract created",
            "BLUE",
            "COWORKER_CONTRACT",
        ),
        (
            ConversionKind::BookingCreated,
            "Booking created",
            "TEAL",
            "BOOKING",
        ),
        (
            ConversionKind::DayPassPurchased,
            "Day pass purchased",
            "PEACH",
            "COWORKER_PRODUCT",
        ),
    ];
    for (kind, _, _, _) in kinds {
        data(
            &app.record_conversion(&session, kind, &format!("r-{kind}"))
                .await,
            "recordConversion",
        );
    }
    let conversation = app.conversation(&app.admin, &session).await;
    let badges = conversation["badges"].as_array().expect("badges");
    assert_eq!(badges.len(), 5);
    for ((kind, label, colour, record_type), badge) in kinds.iter().zip(badges) {
        assert_eq!(badge["kind"], kind.as_str());
        assert_eq!(badge["label"], *label);
        assert_eq!(badge["colour"], *colour);
        assert_eq!(badge["record"]["type"], *record_type);
        assert_eq!(badge["recordedAt"], "2026-03-02T09:00:00+00:00");
    }
});

test_both!(recording_again_returns_the_existing_conversion, |app| {
    let session = app.start_session(Channel::Chat).await;
    let first = app
        .record_conversion(&session, ConversionKind::BookingCreated, "b-1")
        .await;
    let again = app
        .record_conversion(&session, ConversionKind::BookingCreated, "b-1")
        .await;
    let (first, again) = (
        data(&first, "recordConversion"),
        data(&again, "recordConversion"),
    );
    assert_eq!(first["created"], true);
    assert_eq!(again["created"], false);
    assert_eq!(first["conversion"]["id"], again["conversion"]["id"]);
    assert_eq!(app.conversion_rows().await, 1);
});

test_both!(
    a_new_members_sign_up_records_contract_and_customer_together,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let body = app
            .record_as(
                &app.checkout,
                json!({ "sessionId": session.session_id, "kind": "CONTRACT_CREATED",
                    "recordId": "contract-7", "newCustomerId": "coworker-9" }),
            )
            .await;
        let recorded = data(&body, "recordConversion");
        assert_eq!(recorded["conversion"]["kind"], "CONTRACT_CREATED");
        let kinds: Vec<_> = recorded["conversions"]
            .as_array()
            .expect("conversions")
            .iter()
            .map(|c| (c["kind"].clone(), c["record"]["id"].clone()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (json!("CONTRACT_CREATED"), json!("contract-7")),
                (json!("CUSTOMER_CREATED"), json!("coworker-9"))
            ]
        );
        let colours: Vec<_> = app.conversation(&app.admin, &session).await["badges"]
            .as_array()
            .expect("badges")
            .iter()
            .map(|b| b["colour"].clone())
            .collect();
        assert_eq!(colours, vec![json!("BLUE"), json!("GREEN")]);
    }
);

test_both!(a_sign_up_whose_customer_conflicts_stores_nothing, |app| {
    let earlier = app.start_session(Channel::Chat).await;
    data(
        &app.record_conversion(&earlier, ConversionKind::CustomerCreated, "coworker-9")
            .await,
        "recordConversion",
    );
    let session = app.start_session(Channel::Chat).await;
    let body = app
        .record_as(
            &app.checkout,
            json!({ "sessionId": session.session_id, "kind": "CONTRACT_CREATED",
                    "recordId": "contract-7", "newCustomerId": "coworker-9" }),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT");
    assert_eq!(
        app.conversion_rows().await,
        1,
        "the contract was not stored either"
    );
    assert_eq!(
        app.conversation(&app.admin, &session).await["badges"],
        json!([])
    );
});

test_both!(
    a_record_belongs_to_one_conversation_except_visitors,
    |app| {
        let first = app.start_session(Channel::Chat).await;
        let second = app.start_session(Channel::Chat).await;
        data(
            &app.record_conversion(&first, ConversionKind::BookingCreated, "b-1")
                .await,
            "recordConversion",
        );
        let body = app
            .record_conversion(&second, ConversionKind::BookingCreated, "b-1")
            .await;
        assert_eq!(error_code(&body), "CONFLICT");

        data(
            &app.record_conversion(&first, ConversionKind::TourBooked, "visitor-3")
                .await,
            "recordConversion",
        );
        let again = app
            .record_conversion(&second, ConversionKind::TourBooked, "visitor-3")
            .await;
        assert_eq!(data(&again, "recordConversion")["created"], true);
        assert_eq!(
            app.conversation(&app.admin, &second).await["badges"][0]["label"],
            "Tour booked",
            "the later conversation gets its own badge"
        );
        assert_eq!(app.conversion_rows().await, 3);
    }
);

test_both!(
    an_idempotency_key_replays_and_refuses_a_different_payload,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let input = json!({ "sessionId": session.session_id, "kind": "DAY_PASS_PURCHASED",
                        "recordId": "p-1", "idempotencyKey": "order-123" });
        let first = app.record_as(&app.checkout, input.clone()).await;
        let replay = app.record_as(&app.checkout, input).await;
        assert_eq!(data(&replay, "recordConversion")["created"], false);
        assert_eq!(
            data(&first, "recordConversion")["conversion"]["id"],
            data(&replay, "recordConversion")["conversion"]["id"]
        );
        let different = json!({ "sessionId": session.session_id, "kind": "DAY_PASS_PURCHASED",
                            "recordId": "p-2", "idempotencyKey": "order-123" });
        let body = app.record_as(&app.checkout, different).await;
        assert_eq!(error_code(&body), "IDEMPOTENCY_KEY_REUSED");
        assert_eq!(app.conversion_rows().await, 1);
    }
);

test_both!(bad_recordings_are_refused_and_store_nothing, |app| {
    let session = app.start_session(Channel::Chat).await;
    let unknown = json!({ "sessionId": "cs_CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC",
                          "kind": "DAY_PASS_PURCHASED", "recordId": "p-1" });
    assert_eq!(
        error_code(&app.record_as(&app.checkout, unknown).await),
        "NOT_FOUND"
    );
    let customer_on_day_pass = json!({ "sessionId": session.session_id, "kind": "DAY_PASS_PURCHASED",
                                       "recordId": "p-1", "newCustomerId": "c-1" });
    assert_eq!(
        error_code(&app.record_as(&app.checkout, customer_on_day_pass).await),
        "BAD_USER_INPUT"
    );
    let empty_record =
        json!({ "sessionId": session.session_id, "kind": "BOOKING_CREATED", "recordId": "  " });
    assert_eq!(
        error_code(&app.record_as(&app.checkout, empty_record).await),
        "BAD_USER_INPUT"
    );
    let unknown_kind =
        json!({ "sessionId": session.session_id, "kind": "REFUND", "recordId": "x" });
    assert_eq!(
        error_code(&app.record_as(&app.checkout, unknown_kind).await),
        "BAD_USER_INPUT"
    );
    assert_eq!(app.conversion_rows().await, 0);
});

test_both!(fifty_identical_recordings_store_one_row, |app| {
    let session = app.start_session(Channel::Chat).await;
    let input =
        json!({ "sessionId": session.session_id, "kind": "BOOKING_CREATED", "recordId": "b-50" });
    let calls = (0..50).map(|_| app.record_as(&app.checkout, input.clone()));
    let bodies = futures_util::future::join_all(calls).await;
    assert_one_conversion_created(&bodies);
    assert_eq!(app.conversion_rows().await, 1);
});

test_both!(
    fifty_recordings_with_different_idempotency_keys_store_one_row,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let calls = (0..50).map(|n| {
            app.record_as(
                &app.checkout,
                json!({ "sessionId": session.session_id, "kind": "BOOKING_CREATED",
                    "recordId": "b-51", "idempotencyKey": format!("retry-{n}") }),
            )
        });
        let bodies = futures_util::future::join_all(calls).await;
        assert_one_conversion_created(&bodies);
        assert_eq!(app.conversion_rows().await, 1);
    }
);

test_both!(
    one_contract_raced_from_twenty_conversations_goes_to_one,
    |app| {
        let mut sessions = Vec::new();
        for _ in 0..20 {
            sessions.push(app.start_session(Channel::Chat).await);
        }
        let calls = sessions.iter().map(|s| {
            app.record_as(
                &app.checkout,
                json!({ "sessionId": s.session_id, "kind": "CONTRACT_CREATED", "recordId": "c-race" }),
            )
        });
        let bodies = futures_util::future::join_all(calls).await;
        let created = bodies
            .iter()
            .filter(|b| b["data"]["recordConversion"]["created"] == true)
            .count();
        assert_eq!(created, 1, "one conversation gets the contract");
        for body in bodies
            .iter()
            .filter(|b| b["data"]["recordConversion"].is_null())
        {
            assert_eq!(error_code(body), "CONFLICT", "the others are told why");
        }
        assert_eq!(app.conversion_rows().await, 1);
    }
);

test_both!(
    twenty_first_uses_of_one_idempotency_key_at_once_store_one_row,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let input = json!({ "sessionId": session.session_id, "kind": "DAY_PASS_PURCHASED",
            "recordId": "d-race", "idempotencyKey": "same-key" });
        let calls = (0..20).map(|_| app.record_as(&app.checkout, input.clone()));
        let bodies = futures_util::future::join_all(calls).await;
        assert_one_conversion_created(&bodies);
        assert_eq!(app.conversion_rows().await, 1);
    }
);

test_both!(
    a_key_first_used_on_a_replay_still_stands_for_that_payload,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let input = json!({ "sessionId": session.session_id, "kind": "BOOKING_CREATED", "recordId": "b-60" });
        data(
            &app.record_as(&app.checkout, input).await,
            "recordConversion",
        );
        // The first use of this key finds the booking recorded already...
        let replay = json!({ "sessionId": session.session_id, "kind": "BOOKING_CREATED",
                         "recordId": "b-60", "idempotencyKey": "late-key" });
        assert_eq!(
            data(
                &app.record_as(&app.checkout, replay).await,
                "recordConversion"
            )["created"],
            false
        );
        // ...and the key is still bound to that payload.
        let other = json!({ "sessionId": session.session_id, "kind": "BOOKING_CREATED",
                        "recordId": "b-61", "idempotencyKey": "late-key" });
        assert_eq!(
            error_code(&app.record_as(&app.checkout, other).await),
            "IDEMPOTENCY_KEY_REUSED"
        );
        assert_eq!(app.conversion_rows().await, 1);
    }
);

test_both!(checkout_records_but_cannot_read_conversations, |app| {
    let session = app.start_session(Channel::Chat).await;
    let body = app
        .gql(
            &app.checkout,
            "mutation($input: RecordConversionInput!) { recordConversion(input: $input) {
                conversion { id conversation { sessionId } } } }",
            json!({ "input": { "sessionId": session.session_id, "kind": "BOOKING_CREATED", "recordId": "b-9" } }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    assert_eq!(
        app.conversion_rows().await,
        1,
        "the outcome itself was recorded"
    );
    let list = app
        .gql(
            &app.checkout,
            "{ conversations { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&list), "FORBIDDEN");
    let agent = app
        .record_as(
            &app.agent,
            json!({ "sessionId": session.session_id, "kind": "BOOKING_CREATED", "recordId": "b-10" }),
        )
        .await;
    assert_eq!(
        data(&agent, "recordConversion")["created"],
        true,
        "the agent records bookings it confirms"
    );
    let integrator = app
        .record_as(
            &app.integrator,
            json!({ "sessionId": session.session_id, "kind": "BOOKING_CREATED", "recordId": "b-11" }),
        )
        .await;
    assert_eq!(error_code(&integrator), "FORBIDDEN");
});

test_both!(every_record_leads_back_to_its_conversation, |app| {
    let session = app.start_session(Channel::Chat).await;
    let kinds = [
        (ConversionKind::TourBooked, "VISITOR"),
        (ConversionKind::CustomerCreated, "COWORKER"),
        (ConversionKind::ContractCreated, "COWORKER_CONTRACT"),
        (ConversionKind::BookingCreated, "BOOKING"),
        (ConversionKind::DayPassPurchased, "COWORKER_PRODUCT"),
    ];
    for (kind, record_type) in kinds {
        data(
            &app.record_conversion(&session, kind, "rec-1").await,
            "recordConversion",
        );
        let body = app
            .gql(
                &app.admin,
                "query($t: RecordType!, $id: String!) { conversationForRecord(recordType: $t, recordId: $id) { sessionId } }",
                json!({ "t": record_type, "id": "rec-1" }),
            )
            .await;
        assert_eq!(
            data(&body, "conversationForRecord")["sessionId"],
            session.session_id.as_str()
        );
    }
    let none = app
        .gql(
            &app.admin,
            "{ conversationForRecord(recordType: BOOKING, recordId: \"nope\") { sessionId } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&none, "conversationForRecord"), &json!(null));
});

test_both!(a_reused_visitor_leads_to_the_latest_conversation, |app| {
    let first = app.start_session(Channel::Chat).await;
    let second = app.start_session(Channel::Chat).await;
    data(
        &app.record_conversion(&first, ConversionKind::TourBooked, "v-1")
            .await,
        "recordConversion",
    );
    data(
        &app.record_conversion(&second, ConversionKind::TourBooked, "v-1")
            .await,
        "recordConversion",
    );
    let body = app
        .gql(
            &app.admin,
            "{ conversationForRecord(recordType: VISITOR, recordId: \"v-1\") { sessionId } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&body, "conversationForRecord")["sessionId"],
        second.session_id.as_str()
    );
});

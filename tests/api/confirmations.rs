//! The confirmation flow: requestConfirmation, then confirm within the
//! channel's window.

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::*;

async fn request(app: &TestApp, session: &Session) -> Value {
    let body = app
        .gql(
            &app.agent,
            "mutation($input: RequestConfirmationInput!) { requestConfirmation(input: $input) { id expiresAt } }",
            json!({ "input": { "sessionId": session.session_id, "action": "BOOKING_CONFIRMATION",
                               "summary": "Meeting room Lisbon, Thu 14:00-15:00" } }),
        )
        .await;
    data(&body, "requestConfirmation").clone()
}

async fn confirm(app: &TestApp, key: &str, id: &Value, record_id: &str) -> Value {
    app.gql(
        key,
        "mutation($input: ConfirmInput!) { confirm(input: $input) {
            created attributed conversion { id kind source record { id } } } }",
        json!({ "input": { "confirmationId": id, "recordId": record_id } }),
    )
    .await
}

test_both!(confirming_records_a_booking_once, |app| {
    let session = app.start_session(Channel::Chat).await;
    let opened = request(&app, &session).await;
    assert_eq!(
        opened["expiresAt"], "2026-03-02T09:10:00+00:00",
        "chat: 10 minutes"
    );
    let body = confirm(&app, &app.agent, &opened["id"], "booking-1").await;
    let recorded = data(&body, "confirm");
    assert_eq!(recorded["created"], true);
    assert_eq!(recorded["conversion"]["kind"], "BOOKING_CREATED");
    assert_eq!(recorded["conversion"]["source"], "CONFIRMATION");

    let twice = confirm(&app, &app.agent, &opened["id"], "booking-1").await;
    let again = data(&twice, "confirm");
    assert_eq!(again["created"], false);
    assert_eq!(
        again["conversion"]["id"], recorded["conversion"]["id"],
        "the first result"
    );
    assert_eq!(again["conversion"]["record"]["id"], "booking-1");
    // Another record for the same confirmation is a mistake, said so.
    let other = confirm(&app, &app.agent, &opened["id"], "booking-2").await;
    assert_eq!(error_code(&other), "CONFLICT");
    assert!(error_message(&other).contains("\"booking-1\""), "{other}");
    assert_eq!(app.conversion_rows().await, 1);
    assert_eq!(
        app.conversation(&app.admin, &session).await["badges"][0]["colour"],
        "TEAL"
    );
});

test_both!(confirmation_windows_per_channel, |app| {
    let channels = [
        (json!({ "channel": "CHAT" }), TimeDelta::minutes(10)),
        (
            json!({ "channel": "EMAIL", "contact": "w@example.com", "threadKey": "t" }),
            TimeDelta::hours(4),
        ),
        (
            json!({ "channel": "WHATSAPP", "contact": "+447700900321" }),
            TimeDelta::hours(1),
        ),
        (json!({ "channel": "VOICE" }), TimeDelta::minutes(10)),
    ];
    for (n, (input, window)) in channels.into_iter().enumerate() {
        let session = app.start_session_with(input.clone()).await;
        let in_time = request(&app, &session).await;
        let too_late = request(&app, &session).await;
        app.advance(window);
        let body = confirm(&app, &app.agent, &in_time["id"], &format!("in-{n}")).await;
        assert_eq!(
            data(&body, "confirm")["created"],
            true,
            "{input}: at the edge"
        );
        app.advance(TimeDelta::seconds(1));
        let rows = app.conversion_rows().await;
        let body = confirm(&app, &app.agent, &too_late["id"], &format!("late-{n}")).await;
        assert_eq!(
            error_code(&body),
            "CONFIRMATION_EXPIRED",
            "{input}: one second past"
        );
        assert_eq!(app.conversion_rows().await, rows, "nothing stored");
    }
});

test_both!(confirmation_windows_follow_tenant_settings, |app| {
    let body = app
        .gql(
            &app.admin,
            "mutation { updateTenantSettings(input: { channelPolicies: [{ channel: CHAT, confirmationWindowSeconds: 120 }] }) { settings { attributionWindowDays } } }",
            json!({}),
        )
        .await;
    data(&body, "updateTenantSettings");
    let session = app.start_session(Channel::Chat).await;
    let opened = request(&app, &session).await;
    assert_eq!(opened["expiresAt"], "2026-03-02T09:02:00+00:00");
    app.advance(TimeDelta::seconds(121));
    assert_eq!(
        error_code(&confirm(&app, &app.agent, &opened["id"], "b-1").await),
        "CONFIRMATION_EXPIRED"
    );
});

test_both!(
    another_tenants_or_unknown_confirmations_are_not_found,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let opened = request(&app, &session).await;
        let theirs = confirm(&app, &app.other_admin, &opened["id"], "b-1").await;
        assert_eq!(error_code(&theirs), "NOT_FOUND");
        for id in [
            json!("nonsense"),
            json!("01960000-0000-7000-8000-000000000000"),
        ] {
            assert_eq!(
                error_code(&confirm(&app, &app.agent, &id, "b-1").await),
                "NOT_FOUND"
            );
        }
        let forbidden = confirm(&app, &app.integrator, &opened["id"], "b-1").await;
        assert_eq!(error_code(&forbidden), "FORBIDDEN");
        assert_eq!(app.conversion_rows().await, 0);
        data(
            &confirm(&app, &app.checkout, &opened["id"], "b-1").await,
            "confirm",
        );
    }
);

test_both!(confirmations_need_an_open_session, |app| {
    let session = app.start_session(Channel::Chat).await;
    data(&app.close(&session).await, "closeSession");
    let body = app
        .gql(
            &app.agent,
            "mutation($s: String!) { requestConfirmation(input: { sessionId: $s, action: BOOKING_CONFIRMATION, summary: \"x\" }) { id } }",
            json!({ "s": session.session_id }),
        )
        .await;
    assert_eq!(error_code(&body), "SESSION_CLOSED");
    let empty = app
        .gql(
            &app.agent,
            "mutation($s: String!) { requestConfirmation(input: { sessionId: $s, action: BOOKING_CONFIRMATION, summary: \" \" }) { id } }",
            json!({ "s": app.start_session(Channel::Chat).await.session_id }),
        )
        .await;
    assert_eq!(error_code(&empty), "BAD_USER_INPUT");
});

async fn cancel(app: &TestApp, key: &str, id: &Value) -> Value {
    app.gql(
        key,
        "mutation($input: CancelConfirmationInput!) { cancelConfirmation(input: $input) { cancelled } }",
        json!({ "input": { "confirmationId": id, "reason": "changed their mind" } }),
    )
    .await
}

test_both!(a_confirmation_can_end_both_ways, |app| {
    let session = app.start_session(Channel::Chat).await;

    // Declined: cancelled once, harmlessly again, never confirmed after.
    let declined = request(&app, &session).await;
    let body = cancel(&app, &app.agent, &declined["id"]).await;
    assert_eq!(data(&body, "cancelConfirmation")["cancelled"], true);
    let body = cancel(&app, &app.admin, &declined["id"]).await;
    assert_eq!(data(&body, "cancelConfirmation")["cancelled"], false);
    let late = confirm(&app, &app.checkout, &declined["id"], "booking-9").await;
    assert_eq!(error_code(&late), "CONFLICT");
    assert_eq!(app.conversion_rows().await, 0);

    // Confirmed: cannot be cancelled.
    let accepted = request(&app, &session).await;
    assert_no_errors(&confirm(&app, &app.checkout, &accepted["id"], "booking-10").await);
    let too_late = cancel(&app, &app.agent, &accepted["id"]).await;
    assert_eq!(error_code(&too_late), "CONFLICT");
    assert!(
        error_message(&too_late).contains("booking-10"),
        "{too_late}"
    );

    // Expired: confirming is refused as before; the person may still be
    // recorded as having declined.
    let expired = request(&app, &session).await;
    app.advance(TimeDelta::minutes(11));
    let body = confirm(&app, &app.checkout, &expired["id"], "booking-11").await;
    assert_eq!(error_code(&body), "CONFIRMATION_EXPIRED");
    let body = cancel(&app, &app.agent, &expired["id"]).await;
    assert_eq!(data(&body, "cancelConfirmation")["cancelled"], true);

    // Only the agent's roles cancel; an unknown id is not found.
    let refused = cancel(&app, &app.checkout, &accepted["id"]).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let unknown = cancel(
        &app,
        &app.agent,
        &json!("01960000-0000-7000-8000-000000000000"),
    )
    .await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
    assert_eq!(app.conversion_rows().await, 1);

    // The detail shows each in its state now.
    let open = request(&app, &session).await;
    let body = app
        .gql(
            &app.admin,
            "query($id: ID) { conversation(id: $id) { confirmations { id state summary cancelReason } } }",
            json!({ "id": session.id }),
        )
        .await;
    let shown = data(&body, "conversation")["confirmations"].clone();
    let states: Vec<&str> = shown
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["state"].as_str().expect("state"))
        .collect();
    assert_eq!(states, ["CANCELLED", "CONFIRMED", "CANCELLED", "OPEN"]);
    assert_eq!(shown[0]["cancelReason"], "changed their mind");
    assert_eq!(shown[3]["id"], open["id"]);
});

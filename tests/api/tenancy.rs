//! Tenant isolation: another tenant's data answers exactly like data that
//! does not exist, on every read and write path.

use serde_json::json;

use crate::helpers::*;

test_both!(another_tenant_sees_and_changes_nothing, |app| {
    let session = app.start_session(Channel::Chat).await;
    let said = app.say(&session, "VISITOR", "private message").await;
    let message_id = data(&said, "appendMessage")["message"]["id"].clone();
    let recorded = app
        .record_conversion(&session, ConversionKind::BookingCreated, "b-1")
        .await;
    let conversion_id = data(&recorded, "recordConversion")["conversion"]["id"].clone();
    let other = &app.other_admin;

    let by_id = app
        .gql(
            other,
            "query($id: ID) { conversation(id: $id) { id } }",
            json!({ "id": session.id }),
        )
        .await;
    assert_eq!(data(&by_id, "conversation"), &json!(null));
    let by_session = app
        .gql(
            other,
            "query($s: String) { conversation(sessionId: $s) { id } }",
            json!({ "s": session.session_id }),
        )
        .await;
    assert_eq!(data(&by_session, "conversation"), &json!(null));
    for id in [json!(session.id), message_id, conversion_id] {
        let node = app
            .gql(
                other,
                "query($id: ID!) { node(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(data(&node, "node"), &json!(null));
    }
    let list = app
        .gql(other, "{ conversations { nodes { id } } }", json!({}))
        .await;
    assert_eq!(data(&list, "conversations")["nodes"], json!([]));
    let filtered = app
        .gql(
            other,
            "query($s: String) { conversations(filter: { sessionId: $s }) { nodes { id } } }",
            json!({ "s": session.session_id }),
        )
        .await;
    assert_eq!(data(&filtered, "conversations")["nodes"], json!([]));
    let lookup = app
        .gql(
            other,
            "{ conversationForRecord(recordType: BOOKING, recordId: \"b-1\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&lookup, "conversationForRecord"), &json!(null));

    // Writes: the session is unknown to the other tenant, exactly like a made-up one.
    let record = app
        .record_as(
            other,
            json!({ "sessionId": session.session_id, "kind": "DAY_PASS_PURCHASED", "recordId": "p-1" }),
        )
        .await;
    assert_eq!(error_code(&record), "NOT_FOUND");
    let made_up = app
        .record_as(
            other,
            json!({ "sessionId": "cs_DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD", "kind": "DAY_PASS_PURCHASED", "recordId": "p-1" }),
        )
        .await;
    assert_eq!(error_message(&record), error_message(&made_up));
    let append = app
        .gql(
            &app.other_agent,
            "mutation($input: AppendMessageInput!) { appendMessage(input: $input) { message { id } } }",
            json!({ "input": { "sessionId": session.session_id, "role": "VISITOR", "content": "hi" } }),
        )
        .await;
    assert_eq!(error_code(&append), "NOT_FOUND");
    let close = app
        .gql(
            &app.other_agent,
            "mutation($input: CloseSessionInput!) { closeSession(input: $input) { conversation { id } } }",
            json!({ "input": { "sessionId": session.session_id } }),
        )
        .await;
    assert_eq!(error_code(&close), "NOT_FOUND");

    let mine = app.conversation(&app.admin, &session).await;
    assert_eq!(mine["messageCount"], 1);
    assert_eq!(mine["active"], true);
    assert_eq!(mine["conversions"].as_array().map(Vec::len), Some(1));
});

test_both!(the_same_record_id_in_two_tenants_does_not_conflict, |app| {
    let mine = app.start_session(Channel::Chat).await;
    data(
        &app.record_conversion(&mine, ConversionKind::BookingCreated, "b-1")
            .await,
        "recordConversion",
    );
    let theirs = app
        .gql(
            &app.other_agent,
            "mutation { startSession(input: { channel: CHAT }) { sessionId } }",
            json!({}),
        )
        .await;
    let their_session = data(&theirs, "startSession")["sessionId"].clone();
    let body = app
        .record_as(
            &app.other_admin,
            json!({ "sessionId": their_session, "kind": "BOOKING_CREATED", "recordId": "b-1" }),
        )
        .await;
    assert_eq!(data(&body, "recordConversion")["created"], true);
});

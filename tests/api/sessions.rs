//! startSession / closeSession and the channel rules.

use chrono::TimeDelta;
use serde_json::json;

use crate::helpers::*;

fn email(contact: &str, thread: &str) -> serde_json::Value {
    json!({ "channel": "EMAIL", "contact": contact, "threadKey": thread })
}

fn whatsapp(number: &str) -> serde_json::Value {
    json!({ "channel": "WHATSAPP", "contact": number })
}

async fn resumed(app: &TestApp, input: serde_json::Value) -> (String, bool) {
    let body = app.try_start_session(&app.agent, input).await;
    let payload = data(&body, "startSession");
    (
        payload["sessionId"].as_str().expect("sessionId").to_owned(),
        payload["resumed"].as_bool().expect("resumed"),
    )
}

test_both!(chat_and_voice_start_a_new_session_every_time, |app| {
    for channel in ["CHAT", "VOICE"] {
        let (first, first_resumed) = resumed(&app, json!({ "channel": channel })).await;
        let (second, second_resumed) = resumed(&app, json!({ "channel": channel })).await;
        assert_ne!(first, second, "{channel}");
        assert!(!first_resumed && !second_resumed, "{channel}");
        assert!(first.starts_with("cs_") && first.len() >= 32, "{first}");
    }
});

test_both!(a_new_session_is_active_and_carries_the_member, |app| {
    let body = app
        .try_start_session(
            &app.agent,
            json!({ "channel": "CHAT", "userId": "m-42", "userName": "Ada Lovelace" }),
        )
        .await;
    let payload = data(&body, "startSession");
    assert_eq!(payload["conversation"]["active"], true);
    assert_eq!(payload["conversation"]["channel"], "CHAT");
    assert_eq!(
        payload["conversation"]["startedAt"],
        "2026-03-02T09:00:00+00:00"
    );
    let session = Session {
        session_id: payload["sessionId"].as_str().expect("id").to_owned(),
        id: payload["conversation"]["id"]
            .as_str()
            .expect("id")
            .to_owned(),
    };
    let conversation = app.conversation(&app.admin, &session).await;
    assert_eq!(
        conversation["user"],
        json!({ "id": "m-42", "name": "Ada Lovelace" })
    );
    assert_eq!(conversation["sessionId"], session.session_id.as_str());
});

test_both!(
    email_resumes_the_same_sender_and_thread_within_48_hours,
    |app| {
        let (first, was_resumed) = resumed(&app, email("ada@example.com", "Desk prices")).await;
        assert!(!was_resumed);

        app.advance(TimeDelta::hours(47) + TimeDelta::minutes(59));
        let (again, was_resumed) = resumed(&app, email("ADA@example.com ", "Desk prices")).await;
        assert_eq!(
            again, first,
            "47 h 59 m after the last activity the thread resumes"
        );
        assert!(was_resumed);

        app.advance(TimeDelta::hours(48) + TimeDelta::minutes(1));
        let (later, was_resumed) = resumed(&app, email("ada@example.com", "Desk prices")).await;
        assert_ne!(
            later, first,
            "48 h 01 m without activity starts a new session"
        );
        assert!(!was_resumed);
    }
);

test_both!(
    email_on_a_new_thread_or_from_another_sender_is_a_new_session,
    |app| {
        let (first, _) = resumed(&app, email("ada@example.com", "Desk prices")).await;
        let (other_thread, r1) = resumed(&app, email("ada@example.com", "Parking")).await;
        let (other_sender, r2) = resumed(&app, email("bob@example.com", "Desk prices")).await;
        assert!(!r1 && !r2);
        assert_ne!(first, other_thread);
        assert_ne!(first, other_sender);
    }
);

test_both!(whatsapp_resumes_the_same_number_within_24_hours, |app| {
    let (first, _) = resumed(&app, whatsapp("+44 7700 900123")).await;
    app.advance(TimeDelta::hours(23) + TimeDelta::minutes(59));
    let (again, was_resumed) = resumed(&app, whatsapp("+447700900123")).await;
    assert_eq!(again, first);
    assert!(was_resumed);
    app.advance(TimeDelta::hours(24) + TimeDelta::minutes(1));
    let (later, was_resumed) = resumed(&app, whatsapp("+447700900123")).await;
    assert_ne!(later, first);
    assert!(!was_resumed);
});

test_both!(a_closed_whatsapp_session_is_not_resumed, |app| {
    let first = app.start_session_with(whatsapp("+14155550100")).await;
    data(&app.close(&first).await, "closeSession");
    let (next, was_resumed) = resumed(&app, whatsapp("+14155550100")).await;
    assert_ne!(next, first.session_id);
    assert!(!was_resumed);
});

test_both!(
    concurrent_starts_of_one_whatsapp_number_share_one_session,
    |app| {
        let (first, _) = resumed(&app, whatsapp("+14155550111")).await;
        app.advance(TimeDelta::hours(25));
        let starts = (0..10).map(|_| resumed(&app, whatsapp("+14155550111")));
        let results = futures_util::future::join_all(starts).await;
        let ids: std::collections::HashSet<_> = results.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(
            ids.len(),
            1,
            "all ten land in one new conversation: {results:?}"
        );
        assert!(!ids.contains(&first));
        assert_eq!(
            results.iter().filter(|(_, r)| !r).count(),
            1,
            "exactly one started it"
        );
    }
);

test_both!(contacts_are_validated_per_channel, |app| {
    let cases = [
        json!({ "channel": "EMAIL", "threadKey": "t" }),
        json!({ "channel": "EMAIL", "contact": "not-an-address", "threadKey": "t" }),
        json!({ "channel": "EMAIL", "contact": "ada@example.com" }),
        json!({ "channel": "WHATSAPP" }),
        json!({ "channel": "WHATSAPP", "contact": "07700 900123" }),
        json!({ "channel": "VOICE", "contact": "+12" }),
        json!({ "channel": "CHAT", "threadKey": "t" }),
        json!({ "channel": "CHAT", "userName": "x".repeat(201) }),
    ];
    for input in cases {
        let body = app.try_start_session(&app.agent, input.clone()).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}");
        assert!(!error_message(&body).is_empty());
    }
    let list = app
        .gql(&app.admin, "{ conversations { nodes { id } } }", json!({}))
        .await;
    assert_eq!(
        data(&list, "conversations")["nodes"],
        json!([]),
        "nothing was stored"
    );
});

test_both!(closing_a_session_ends_it, |app| {
    let session = app.start_session(Channel::Chat).await;
    let body = app.close(&session).await;
    let closed = data(&body, "closeSession");
    assert_eq!(closed["conversation"]["active"], false);
    assert_eq!(
        closed["conversation"]["closedAt"],
        "2026-03-02T09:00:00+00:00"
    );
    // Closing again is harmless and changes nothing.
    app.advance(TimeDelta::minutes(5));
    let again = app.close(&session).await;
    assert_eq!(
        data(&again, "closeSession")["conversation"]["closedAt"],
        "2026-03-02T09:00:00+00:00"
    );

    let body = app.say(&session, "VISITOR", "hello?").await;
    assert_eq!(error_code(&body), "SESSION_CLOSED");
});

test_both!(closing_an_unknown_session_is_not_found, |app| {
    let ghost = Session {
        session_id: "cs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        id: String::new(),
    };
    assert_eq!(error_code(&app.close(&ghost).await), "NOT_FOUND");
    let malformed = Session {
        session_id: "not a session".into(),
        id: String::new(),
    };
    assert_eq!(error_code(&app.close(&malformed).await), "BAD_USER_INPUT");
});

test_both!(only_agents_and_admins_start_sessions, |app| {
    for key in [&app.checkout, &app.integrator] {
        let body = app
            .try_start_session(key, json!({ "channel": "CHAT" }))
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN");
    }
    let body = app
        .try_start_session(&app.admin, json!({ "channel": "CHAT" }))
        .await;
    data(&body, "startSession");
});

test_both!(channel_policies_are_published, |app| {
    let body = app
        .gql(
            &app.agent,
            "{ channelPolicies { channel sessionRule inactivityTimeoutSeconds confirmationWindowSeconds } }",
            json!({}),
        )
        .await;
    let policies = data(&body, "channelPolicies");
    assert_eq!(
        policies,
        &json!([
            { "channel": "CHAT", "sessionRule": "NEW_EVERY_START", "inactivityTimeoutSeconds": 86400, "confirmationWindowSeconds": 600 },
            { "channel": "EMAIL", "sessionRule": "SAME_SENDER_AND_THREAD", "inactivityTimeoutSeconds": 172800, "confirmationWindowSeconds": 14400 },
            { "channel": "WHATSAPP", "sessionRule": "SAME_PHONE_NUMBER", "inactivityTimeoutSeconds": 86400, "confirmationWindowSeconds": 3600 },
            { "channel": "VOICE", "sessionRule": "NEW_EVERY_START", "inactivityTimeoutSeconds": 86400, "confirmationWindowSeconds": 600 },
        ])
    );
    let forbidden = app
        .gql(&app.checkout, "{ channelPolicies { channel } }", json!({}))
        .await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
});

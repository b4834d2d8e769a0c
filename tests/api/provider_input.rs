//! What real providers send reaches the right conversation: Meta's bare
//! digits and Twilio's `whatsapp:` numbers, withheld caller ids, raw email
//! `From` headers, reply subjects, and a shared inbox with two signed-in
//! people.

use serde_json::json;

use crate::helpers::*;

const START: &str = "mutation($input: StartSessionInput!) { startSession(input: $input) {
    sessionId resumed conversation { contact threadKey } } }";

async fn start(app: &TestApp, input: serde_json::Value) -> serde_json::Value {
    let body = app.gql(&app.agent, START, json!({ "input": input })).await;
    data(&body, "startSession").clone()
}

test_both!(provider_numbers_reach_one_whatsapp_conversation, |app| {
    let meta = start(
        &app,
        json!({ "channel": "WHATSAPP", "contact": "351912345678" }),
    )
    .await;
    assert_eq!(meta["conversation"]["contact"], "+351912345678");
    assert_eq!(meta["resumed"], false);
    for same in [
        "whatsapp:+351912345678",
        "00351 912 345 678",
        "+351 912-345-678",
    ] {
        let again = start(&app, json!({ "channel": "WHATSAPP", "contact": same })).await;
        assert_eq!(again["sessionId"], meta["sessionId"], "{same}");
        assert_eq!(again["resumed"], true);
    }
    let refused = app
        .try_start_session(
            &app.agent,
            json!({ "channel": "WHATSAPP", "contact": "call me maybe" }),
        )
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT");
    assert!(
        error_message(&refused).contains("00351912345678"),
        "{refused}"
    );
});

test_both!(a_withheld_caller_starts_an_anonymous_voice_session, |app| {
    for withheld in ["anonymous", "Restricted", "+266696687", "+8656696"] {
        let call = start(&app, json!({ "channel": "VOICE", "contact": withheld })).await;
        assert!(call["conversation"]["contact"].is_null(), "{withheld}");
    }
});

test_both!(email_headers_and_reply_subjects_find_the_thread, |app| {
    let first = start(
        &app,
        json!({ "channel": "EMAIL", "contact": "\"Maria Silva\" <Maria@Example.com>",
                "threadKey": "Tour next week" }),
    )
    .await;
    assert_eq!(first["conversation"]["contact"], "maria@example.com");
    assert_eq!(first["conversation"]["threadKey"], "tour next week");
    for (contact, subject) in [
        ("mailto:maria@example.com", "Re: Tour next week"),
        ("maria@example.com", "AW: RE[2]:  tour NEXT week"),
        ("Maria <MARIA@example.com>", "Fwd: Tour next week"),
    ] {
        let reply = start(
            &app,
            json!({ "channel": "EMAIL", "contact": contact, "threadKey": subject }),
        )
        .await;
        assert_eq!(
            reply["sessionId"], first["sessionId"],
            "{contact} / {subject}"
        );
    }
    let other = start(
        &app,
        json!({ "channel": "EMAIL", "contact": "maria@example.com", "threadKey": "Invoice" }),
    )
    .await;
    assert_ne!(other["sessionId"], first["sessionId"]);
});

test_both!(
    another_signed_in_person_starts_their_own_conversation,
    |app| {
        let shared = |user: Option<&str>| {
            let mut input =
                json!({ "channel": "EMAIL", "contact": "front@example.com", "threadKey": "Hello" });
            if let Some(user) = user {
                input["userId"] = json!(user);
            }
            input
        };
        let ana = start(&app, shared(Some("member-ana"))).await;
        let anonymous = start(&app, shared(None)).await;
        assert_eq!(
            anonymous["sessionId"], ana["sessionId"],
            "no user id: continued"
        );
        let ana_again = start(&app, shared(Some("member-ana"))).await;
        assert_eq!(ana_again["sessionId"], ana["sessionId"]);
        let rui = start(&app, shared(Some("member-rui"))).await;
        assert_ne!(
            rui["sessionId"], ana["sessionId"],
            "another user: a new session"
        );
        assert_eq!(rui["resumed"], false);
        let whatsapp = |user: &str| json!({ "channel": "WHATSAPP", "contact": "+351912000111", "userId": user });
        let one = start(&app, whatsapp("u-1")).await;
        let two = start(&app, whatsapp("u-2")).await;
        assert_ne!(one["sessionId"], two["sessionId"]);
    }
);

//! `conversationActivity`: the list kept live — conversations as they
//! start, get messages and close, for ADMIN keys of their own tenant, on
//! every instance.

use std::time::Duration;

use convtrack::domain::channel::Channel;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::ws::Socket;

const ACTIVITY: &str = "subscription { conversationActivity { change
    conversation { sessionId channel openingMessage messageCount closedAt } } }";

/// Subscribes `socket` and returns once the subscription hears: a probe
/// conversation is messaged until its activity arrives (the server does
/// not say when a subscription is in place).
async fn live(app: &TestApp, socket: &mut Socket) {
    socket.subscribe("1", ACTIVITY, json!({})).await;
    let probe = app.start_session(Channel::Chat).await;
    for _ in 0..100 {
        app.say(&probe, "VISITOR", "probe").await;
        if let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(100), socket.next_json()).await
        {
            assert_eq!(message["type"], "next", "{message}");
            // Probes sent before this one may still be on their way.
            while let Ok(Some(late)) =
                tokio::time::timeout(Duration::from_millis(300), socket.next_json()).await
            {
                let activity = &late["payload"]["data"]["conversationActivity"];
                assert_eq!(activity["change"], "MESSAGE", "{late}");
            }
            return;
        }
    }
    panic!("the subscription never heard the probe");
}

/// The next activity on `socket`.
async fn next(socket: &mut Socket) -> Value {
    let message = socket.next_json().await.expect("an event");
    assert_eq!(message["type"], "next", "{message}");
    message["payload"]["data"]["conversationActivity"].clone()
}

test_both!(
    the_live_list_hears_conversations_start_talk_and_close,
    |app| {
        let mut socket = app.subscriber(&app.admin).await;
        live(&app, &mut socket).await;
        let session = app.start_session(Channel::Chat).await;
        let started = next(&mut socket).await;
        assert_eq!(started["change"], "STARTED");
        assert_eq!(
            started["conversation"]["sessionId"],
            session.session_id.as_str()
        );
        assert_eq!(started["conversation"]["messageCount"], 0);
        app.say(&session, "VISITOR", "Is there parking near the building?")
            .await;
        let message = next(&mut socket).await;
        assert_eq!(message["change"], "MESSAGE");
        assert_eq!(message["conversation"]["messageCount"], 1);
        assert_eq!(
            message["conversation"]["openingMessage"],
            "Is there parking near the building?"
        );
        app.close(&session).await;
        let closed = next(&mut socket).await;
        assert_eq!(closed["change"], "CLOSED");
        assert!(closed["conversation"]["closedAt"].is_string(), "{closed}");
        // Another tenant's conversations are not heard; closing twice is one close.
        app.try_start_session(&app.other_agent, json!({ "channel": "CHAT" }))
            .await;
        app.close(&session).await;
        let quiet = tokio::time::timeout(Duration::from_millis(300), socket.next_json()).await;
        assert!(quiet.is_err(), "{quiet:?}");
    }
);

test_both!(only_admin_keys_watch_the_list, |app| {
    let mut socket = app.subscriber(&app.integrator).await;
    socket.subscribe("1", ACTIVITY, json!({})).await;
    let refused = socket.next_json().await.expect("an answer");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    assert_eq!(refused["payload"]["data"], Value::Null, "{refused}");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_on_one_instance_hears_conversations_started_on_another() {
    let Some(mut app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let second = app.second_instance().await;
    let mut on_second = app.subscriber_at(Some(&second), &app.admin).await;
    // The probe goes through the first instance: heard on the second, the
    // news crossed between them.
    live(&app, &mut on_second).await;
    let session = app.start_session(Channel::Chat).await;
    let started = next(&mut on_second).await;
    assert_eq!(started["change"], "STARTED");
    assert_eq!(
        started["conversation"]["sessionId"],
        session.session_id.as_str()
    );
    assert_eq!(started["conversation"]["channel"], "CHAT");
}

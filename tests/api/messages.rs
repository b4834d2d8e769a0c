//! appendMessage, the opening message, limits, expiry and the thread.

use chrono::TimeDelta;
use serde_json::json;

use crate::helpers::*;

test_both!(messages_keep_the_conversation_current, |app| {
    let session = app.start_session(Channel::Chat).await;
    let greeting = app.say(&session, "AI_AGENT", "Hi! How can I help?").await;
    assert_eq!(
        data(&greeting, "appendMessage")["conversation"]["openingMessage"],
        json!(null)
    );

    app.advance(TimeDelta::minutes(1));
    let body = app
        .say(
            &session,
            "VISITOR",
            "Do you have a quiet desk near the station?",
        )
        .await;
    let payload = data(&body, "appendMessage");
    assert_eq!(payload["message"]["label"], "Visitor");
    assert_eq!(payload["message"]["position"], 2);
    assert_eq!(
        payload["conversation"]["openingMessage"],
        "Do you have a quiet desk near the station?"
    );
    assert_eq!(payload["conversation"]["messageCount"], 2);
    assert_eq!(
        payload["conversation"]["lastActivityAt"],
        "2026-03-02T09:01:00+00:00"
    );

    app.advance(TimeDelta::minutes(1));
    let body = app.say(&session, "VISITOR", "Also, parking?").await;
    let payload = data(&body, "appendMessage");
    assert_eq!(
        payload["conversation"]["openingMessage"], "Do you have a quiet desk near the station?",
        "the opening message is the first visitor message"
    );
    assert_eq!(payload["conversation"]["messageCount"], 3);
    assert_eq!(
        payload["conversation"]["lastActivityAt"],
        "2026-03-02T09:02:00+00:00"
    );
});

test_both!(
    the_opening_message_is_cut_at_120_characters_never_inside_one,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let text = format!("{}👩🏽‍💻 café — {}", "é".repeat(110), "🙂".repeat(30));
        let body = app.say(&session, "VISITOR", &text).await;
        let opening = data(&body, "appendMessage")["conversation"]["openingMessage"]
            .as_str()
            .expect("opening")
            .to_owned();
        // 110 accents + the woman-technologist emoji (one character) + " café — " (8) + 1 smiley,
        // then the mark that there is more.
        let expected = format!("{}👩🏽‍💻 café — 🙂…", "é".repeat(110));
        assert_eq!(opening, expected);
        assert!(text.starts_with(opening.trim_end_matches('…')));
    }
);

test_both!(long_messages_are_stored_cut_never_refused, |app| {
    let session = app.start_session(Channel::Chat).await;
    let said = |role: &'static str, content: String| {
        let app = &app;
        let session = &session;
        async move {
            let body = app
                .gql(
                    &app.agent,
                    "mutation($input: AppendMessageInput!) { appendMessage(input: $input) {
                        message { id content truncated } } }",
                    json!({ "input": { "sessionId": session.session_id, "role": role, "content": content } }),
                )
                .await;
            data(&body, "appendMessage")["message"].clone()
        }
    };
    // A visitor pasting a long email: 10,000 characters kept whole.
    let pasted = "Dear team, ".repeat(1_000);
    let kept = said("VISITOR", pasted.clone()).await;
    assert_eq!(kept["content"], pasted);
    assert_eq!(kept["truncated"], false);

    // 40,000 characters: stored cut at 32 KiB, never refused; the 'é'
    // across the 32 KiB mark is left out whole, not split.
    let huge = format!("{}é{}", "a".repeat(32 * 1024 - 1), "b".repeat(7_232));
    assert_eq!(huge.chars().count(), 40_000);
    let cut = said("VISITOR", huge.clone()).await;
    let stored = cut["content"].as_str().expect("content");
    assert_eq!(cut["truncated"], true);
    assert_eq!(stored.len(), 32 * 1024 - 1);
    assert!(huge.starts_with(stored));
    let ai = said("AI_AGENT", "a".repeat(32 * 1024 + 1)).await;
    assert_eq!(ai["truncated"], true);
    assert_eq!(ai["content"].as_str().expect("content").len(), 32 * 1024);
    let tool = said("TOOL", "t".repeat(32 * 1024)).await;
    assert_eq!(tool["truncated"], false, "exactly at the limit is whole");

    // The detail reads it back the same.
    let thread = app
        .gql(
            &app.admin,
            "query($id: ID) { conversation(id: $id) { messages { nodes { truncated } } } }",
            json!({ "id": session.id }),
        )
        .await;
    assert_eq!(
        data(&thread, "conversation")["messages"]["nodes"],
        json!([{ "truncated": false }, { "truncated": true }, { "truncated": true }])
    );

    // Blank content still is not a message.
    assert_eq!(
        error_code(&app.say(&session, "VISITOR", "   ").await),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        app.conversation(&app.admin, &session).await["messageCount"],
        4
    );
});

test_both!(an_idle_session_expires, |app| {
    let chat = app.start_session(Channel::Chat).await;
    let whatsapp = app
        .start_session_with(json!({ "channel": "WHATSAPP", "contact": "+447700900123" }))
        .await;
    app.advance(TimeDelta::hours(24));
    data(
        &app.say(&whatsapp, "VISITOR", "still there?").await,
        "appendMessage",
    );
    app.advance(TimeDelta::hours(24) + TimeDelta::minutes(1));
    assert_eq!(
        error_code(&app.say(&chat, "VISITOR", "hello").await),
        "SESSION_EXPIRED"
    );
    assert_eq!(
        error_code(&app.say(&whatsapp, "VISITOR", "hello").await),
        "SESSION_EXPIRED"
    );
    assert_eq!(app.conversation(&app.admin, &chat).await["active"], false);
});

test_both!(unknown_and_malformed_sessions_are_told_apart, |app| {
    let ghost = Session {
        session_id: "cs_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB".into(),
        id: String::new(),
    };
    assert_eq!(
        error_code(&app.say(&ghost, "VISITOR", "hi").await),
        "NOT_FOUND"
    );
    let malformed = Session {
        session_id: "cs_short".into(),
        id: String::new(),
    };
    assert_eq!(
        error_code(&app.say(&malformed, "VISITOR", "hi").await),
        "BAD_USER_INPUT"
    );
});

const THREAD: &str = "query($id: ID, $tools: Boolean!, $first: Int, $after: String) {
    conversation(id: $id) { messages(first: $first, after: $after, includeToolCalls: $tools) {
        nodes { role label content position }
        pageInfo { hasNextPage endCursor } } } }";

test_both!(
    the_thread_is_in_order_with_tool_calls_hidden_by_default,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        for (role, content) in [
            ("VISITOR", "I need a day pass"),
            ("TOOL", "{\"call\":\"check_availability\"}"),
            (
                "AI_AGENT",
                "**Tomorrow** works: [get a day pass](https://example.com)",
            ),
            ("VISITOR", "Great"),
        ] {
            data(&app.say(&session, role, content).await, "appendMessage");
        }
        let body = app
            .gql(
                &app.admin,
                THREAD,
                json!({ "id": session.id, "tools": false }),
            )
            .await;
        let nodes = &data(&body, "conversation")["messages"]["nodes"];
        let labels: Vec<_> = nodes
            .as_array()
            .expect("nodes")
            .iter()
            .map(|m| m["label"].clone())
            .collect();
        assert_eq!(
            labels,
            vec![json!("Visitor"), json!("AI agent"), json!("Visitor")]
        );

        let body = app
            .gql(
                &app.admin,
                THREAD,
                json!({ "id": session.id, "tools": true }),
            )
            .await;
        let nodes = &data(&body, "conversation")["messages"]["nodes"];
        assert_eq!(nodes[1]["role"], "TOOL");
        assert_eq!(nodes[1]["label"], "Tool");
        assert_eq!(nodes.as_array().map(Vec::len), Some(4));

        let body = app
            .gql(
                &app.integrator,
                THREAD,
                json!({ "id": session.id, "tools": true }),
            )
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN", "only ADMIN sees tool calls");
    }
);

test_both!(a_long_thread_pages_in_order, |app| {
    let session = app.start_session(Channel::Chat).await;
    for n in 1..=7 {
        data(
            &app.say(&session, "VISITOR", &format!("message {n}")).await,
            "appendMessage",
        );
    }
    let mut after: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let body = app
            .gql(
                &app.admin,
                THREAD,
                json!({ "id": session.id, "tools": false, "first": 3, "after": after }),
            )
            .await;
        let messages = &data(&body, "conversation")["messages"];
        for m in messages["nodes"].as_array().expect("nodes") {
            seen.push(m["content"].as_str().expect("content").to_owned());
        }
        if messages["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = messages["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
    }
    let expected: Vec<_> = (1..=7).map(|n| format!("message {n}")).collect();
    assert_eq!(seen, expected);
});

test_both!(concurrent_messages_get_distinct_positions, |app| {
    let session = app.start_session(Channel::Chat).await;
    let sends = (0..20).map(|n| {
        let app = &app;
        let session = &session;
        async move { app.say(session, "VISITOR", &format!("burst {n}")).await }
    });
    let bodies = futures_util::future::join_all(sends).await;
    let mut positions: Vec<i64> = bodies
        .iter()
        .map(|b| {
            data(b, "appendMessage")["message"]["position"]
                .as_i64()
                .expect("position")
        })
        .collect();
    positions.sort_unstable();
    assert_eq!(positions, (1..=20).collect::<Vec<_>>());
    assert_eq!(
        app.conversation(&app.admin, &session).await["messageCount"],
        20
    );
});

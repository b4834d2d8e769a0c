//! Filters of the AI Conversations list, alone and combined, with paging
//! that visits every match exactly once.

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::*;

/// Six conversations an hour apart, newest last:
/// A chat about parking (booking), B WhatsApp with `50% off_for` (contract +
/// customer), C email with quotes and a backslash, D chat where the AI says
/// parking and a tool call says a secret (day pass), E voice "Hi",
/// F WhatsApp "parking?".
struct Fixture {
    a: String,
    b: String,
    c: String,
    d: String,
    e: String,
    f: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let a = app.start_session(Channel::Chat).await;
    data(
        &app.say(&a, "VISITOR", "Is there PARKING near the office?")
            .await,
        "appendMessage",
    );
    data(
        &app.record_conversion(&a, ConversionKind::BookingCreated, "b-1")
            .await,
        "recordConversion",
    );

    app.advance(TimeDelta::hours(1));
    let b = app
        .start_session_with(json!({ "channel": "WHATSAPP", "contact": "+447700900001" }))
        .await;
    data(
        &app.say(&b, "VISITOR", "Do you offer 50% off_for students?")
            .await,
        "appendMessage",
    );
    let signup = json!({ "sessionId": b.session_id, "kind": "CONTRACT_CREATED",
                         "recordId": "k-1", "newCustomerId": "cw-1" });
    data(
        &app.record_as(&app.checkout, signup).await,
        "recordConversion",
    );

    app.advance(TimeDelta::hours(1));
    let c = app
        .start_session_with(
            json!({ "channel": "EMAIL", "contact": "c@example.com", "threadKey": "q" }),
        )
        .await;
    data(
        &app.say(&c, "VISITOR", r#"Quote: "hot desk" and back\slash"#)
            .await,
        "appendMessage",
    );

    app.advance(TimeDelta::hours(1));
    let d = app.start_session(Channel::Chat).await;
    data(
        &app.say(&d, "AI_AGENT", "We have parking").await,
        "appendMessage",
    );
    data(
        &app.say(&d, "TOOL", "secret-tool-output").await,
        "appendMessage",
    );
    data(
        &app.record_conversion(&d, ConversionKind::DayPassPurchased, "p-1")
            .await,
        "recordConversion",
    );

    app.advance(TimeDelta::hours(1));
    let e = app.start_session(Channel::Voice).await;
    data(&app.say(&e, "VISITOR", "Hi").await, "appendMessage");

    app.advance(TimeDelta::hours(1));
    let f = app
        .start_session_with(json!({ "channel": "WHATSAPP", "contact": "+447700900002" }))
        .await;
    data(&app.say(&f, "VISITOR", "parking?").await, "appendMessage");

    Fixture {
        a: a.session_id,
        b: b.session_id,
        c: c.session_id,
        d: d.session_id,
        e: e.session_id,
        f: f.session_id,
    }
}

/// The filter's matches, fetched whole and one row per page: both must agree.
async fn matches(app: &TestApp, filter: Value) -> Vec<String> {
    let whole = all_pages(app, 250, filter.clone()).await;
    let paged = all_pages(app, 1, filter.clone()).await;
    assert_eq!(
        whole, paged,
        "paging one by one visits the same rows: {filter}"
    );
    whole
}

test_both!(
    search_is_a_case_insensitive_substring_of_any_message,
    |app| {
        let x = fixture(&app).await;
        assert_eq!(
            matches(&app, json!({ "search": "parking" })).await,
            vec![x.f.clone(), x.d.clone(), x.a.clone()]
        );
        assert_eq!(
            matches(&app, json!({ "search": "PaRkInG NEAR" })).await,
            vec![x.a.clone()]
        );
        assert_eq!(
            matches(&app, json!({ "search": "nothing like this" })).await,
            Vec::<String>::new()
        );
        assert_eq!(
            matches(&app, json!({ "search": "secret-tool" })).await,
            Vec::<String>::new(),
            "tool calls are not searched"
        );
    }
);

test_both!(
    search_treats_wildcards_quotes_and_backslashes_literally,
    |app| {
        let x = fixture(&app).await;
        assert_eq!(
            matches(&app, json!({ "search": "50%" })).await,
            vec![x.b.clone()]
        );
        assert_eq!(
            matches(&app, json!({ "search": "%" })).await,
            vec![x.b.clone()]
        );
        assert_eq!(
            matches(&app, json!({ "search": "_" })).await,
            vec![x.b.clone()]
        );
        assert_eq!(
            matches(&app, json!({ "search": "f_f" })).await,
            vec![x.b.clone()]
        );
        // As LIKE wildcards these would match "off" and everything.
        assert_eq!(
            matches(&app, json!({ "search": "o_f" })).await,
            Vec::<String>::new()
        );
        assert_eq!(
            matches(&app, json!({ "search": "%%%" })).await,
            Vec::<String>::new()
        );
        assert_eq!(
            matches(&app, json!({ "search": r#""hot desk""# })).await,
            vec![x.c.clone()]
        );
        assert_eq!(
            matches(&app, json!({ "search": r"back\slash" })).await,
            vec![x.c.clone()]
        );
        assert_eq!(
            matches(&app, json!({ "search": r"\" })).await,
            vec![x.c.clone()]
        );
        assert_eq!(
            matches(&app, json!({ "search": "'" })).await,
            Vec::<String>::new()
        );
    }
);

test_both!(searches_shorter_than_three_characters_still_work, |app| {
    let x = fixture(&app).await;
    assert_eq!(
        matches(&app, json!({ "search": "hi" })).await,
        vec![x.e.clone()]
    );
    assert_eq!(
        matches(&app, json!({ "search": "HI" })).await,
        vec![x.e.clone()]
    );
    assert_eq!(
        matches(&app, json!({ "search": "?" })).await,
        vec![x.f.clone(), x.b.clone(), x.a.clone()]
    );
    assert_eq!(
        matches(&app, json!({ "search": "" })).await.len(),
        6,
        "an empty search filters nothing"
    );
    let long = app
        .gql(
            &app.admin,
            LIST,
            json!({ "filter": { "search": "x".repeat(201) } }),
        )
        .await;
    assert_eq!(error_code(&long), "BAD_USER_INPUT");
});

test_both!(channel_badge_converted_and_date_filters, |app| {
    let x = fixture(&app).await;
    assert_eq!(
        matches(&app, json!({ "channels": ["WHATSAPP"] })).await,
        vec![x.f.clone(), x.b.clone()]
    );
    assert_eq!(
        matches(&app, json!({ "badges": ["CONTRACT_CREATED"] })).await,
        vec![x.b.clone()]
    );
    assert_eq!(
        matches(
            &app,
            json!({ "badges": ["CUSTOMER_CREATED", "DAY_PASS_PURCHASED"] })
        )
        .await,
        vec![x.d.clone(), x.b.clone()]
    );
    assert_eq!(
        matches(&app, json!({ "converted": true })).await,
        vec![x.d.clone(), x.b.clone(), x.a.clone()]
    );
    assert_eq!(
        matches(&app, json!({ "converted": false })).await,
        vec![x.f.clone(), x.e.clone(), x.c.clone()]
    );
    assert_eq!(
        matches(&app, json!({ "startedAfter": "2026-03-02T10:00:00Z", "startedBefore": "2026-03-02T13:00:00Z" })).await,
        vec![x.d.clone(), x.c.clone(), x.b.clone()]
    );
    assert_eq!(
        matches(&app, json!({ "sessionId": x.e })).await,
        vec![x.e.clone()]
    );
});

test_both!(filters_combine, |app| {
    let x = fixture(&app).await;
    assert_eq!(
        matches(
            &app,
            json!({ "search": "parking", "converted": true, "channels": ["CHAT"] })
        )
        .await,
        vec![x.d.clone(), x.a.clone()]
    );
    assert_eq!(
        matches(
            &app,
            json!({ "search": "parking", "converted": true, "channels": ["CHAT"],
                               "startedAfter": "2026-03-02T09:30:00Z" })
        )
        .await,
        vec![x.d.clone()]
    );
    assert_eq!(
        matches(
            &app,
            json!({ "channels": ["WHATSAPP"], "badges": ["CONTRACT_CREATED"] })
        )
        .await,
        vec![x.b.clone()],
        "which WhatsApp chats led to a contract?"
    );
    assert_eq!(
        matches(
            &app,
            json!({ "search": "parking", "converted": false, "sessionId": x.f })
        )
        .await,
        vec![x.f.clone()]
    );
    assert_eq!(
        matches(
            &app,
            json!({ "badges": ["BOOKING_CREATED"], "converted": false })
        )
        .await,
        Vec::<String>::new()
    );
});

test_both!(another_tenants_conversations_never_match, |app| {
    fixture(&app).await;
    let theirs = app
        .gql(
            &app.other_admin,
            LIST,
            json!({ "filter": { "search": "parking" } }),
        )
        .await;
    assert_eq!(data(&theirs, "conversations")["nodes"], json!([]));
    let badges = app
        .gql(
            &app.other_admin,
            LIST,
            json!({ "filter": { "converted": true } }),
        )
        .await;
    assert_eq!(data(&badges, "conversations")["nodes"], json!([]));
});

test_both!(integrators_and_agents_may_not_read_tool_calls, |app| {
    let session = app.start_session(Channel::Chat).await;
    data(
        &app.say(&session, "TOOL", "{\"call\":\"lookup\"}").await,
        "appendMessage",
    );
    for key in [&app.integrator, &app.agent] {
        let body = app
            .gql(
                key,
                "query($s: String) { conversation(sessionId: $s) { messages(includeToolCalls: true) { nodes { content } } } }",
                json!({ "s": session.session_id }),
            )
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN");
    }
    let admin = app
        .gql(
            &app.admin,
            "query($s: String) { conversation(sessionId: $s) { messages(includeToolCalls: true) { nodes { label } } } }",
            json!({ "s": session.session_id }),
        )
        .await;
    assert_eq!(
        data(&admin, "conversation")["messages"]["nodes"][0]["label"],
        "Tool"
    );
});

test_both!(
    search_text_that_looks_like_placeholders_is_just_text,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        app.say(
            &session,
            "VISITOR",
            "is it $1 or ? per hour, and 'why' \\n?",
        )
        .await;
        for text in ["$1 or ?", "'why' \\n", "?", "$1"] {
            let body = app
            .gql(
                &app.admin,
                "query($s: String) { conversations(filter: { search: $s }) { nodes { sessionId } } }",
                json!({ "s": text }),
            )
            .await;
            let nodes = &data(&body, "conversations")["nodes"];
            assert_eq!(nodes.as_array().map(Vec::len), Some(1), "{text}: {body}");
        }
    }
);

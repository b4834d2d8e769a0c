//! The AI Conversations list: order, keyset pagination, filters, batching, node(id).

use chrono::TimeDelta;
use convtrack::service::sessions::StartSession;
use serde_json::{Value, json};

use crate::helpers::*;

test_both!(
    newest_first_with_keyset_pages_that_neither_skip_nor_repeat,
    |app| {
        let mut started = Vec::new();
        for n in 0..7 {
            // Two conversations share each start time: the id breaks the tie.
            if n % 2 == 0 {
                app.advance(TimeDelta::minutes(3));
            }
            started.push(app.start_session(Channel::Chat).await.session_id);
        }
        started.reverse();
        assert_eq!(all_pages(&app, 3, json!(null)).await, started);
        assert_eq!(all_pages(&app, 250, json!(null)).await, started);
    }
);

test_both!(filters_by_session_channel_and_start_date, |app| {
    let chat = app.start_session(Channel::Chat).await;
    app.advance(TimeDelta::days(1));
    let voice = app.start_session(Channel::Voice).await;
    app.advance(TimeDelta::days(1));
    let email = app
        .start_session_with(
            json!({ "channel": "EMAIL", "contact": "ada@example.com", "threadKey": "t" }),
        )
        .await;

    assert_eq!(
        all_pages(&app, 2, json!({ "sessionId": voice.session_id })).await,
        vec![voice.session_id.clone()]
    );
    assert_eq!(
        all_pages(&app, 2, json!({ "channels": ["CHAT", "EMAIL"] })).await,
        vec![email.session_id.clone(), chat.session_id.clone()]
    );
    assert_eq!(
        all_pages(&app, 2, json!({ "startedAfter": "2026-03-03T09:00:00Z", "startedBefore": "2026-03-04T09:00:00Z" })).await,
        vec![voice.session_id.clone()],
        "startedAfter is inclusive, startedBefore exclusive"
    );
});

test_both!(bad_paging_arguments_are_refused, |app| {
    for (variables, code) in [
        (json!({ "first": 251 }), "BAD_USER_INPUT"),
        (json!({ "first": 0 }), "BAD_USER_INPUT"),
        (json!({ "first": -1 }), "BAD_USER_INPUT"),
        (json!({ "after": "not-a-cursor" }), "BAD_USER_INPUT"),
        (
            json!({ "filter": { "sessionId": "nope" } }),
            "BAD_USER_INPUT",
        ),
        (json!({ "first": "ten" }), "BAD_USER_INPUT"),
    ] {
        let body = app.gql(&app.admin, LIST, variables.clone()).await;
        assert_eq!(error_code(&body), code, "{variables}");
    }
});

test_both!(
    badges_cost_the_same_statements_for_5_and_250_conversations,
    |app| {
        for n in 0..250 {
            let started = app
                .services
                .start_session(
                    &app.acme_admin,
                    StartSession {
                        channel: Channel::Chat,
                        user_id: None,
                        user_name: None,
                        contact: None,
                        thread_key: None,
                        idempotency_key: None,
                        labels: Vec::new(),
                    },
                )
                .await
                .expect("start");
            if n % 3 == 0 {
                let session = Session {
                    session_id: started.conversation.session_id.to_string(),
                    id: String::new(),
                };
                data(
                    &app.record_conversion(
                        &session,
                        ConversionKind::BookingCreated,
                        &format!("b-{n}"),
                    )
                    .await,
                    "recordConversion",
                );
            }
        }
        let query = "query($first: Int) { conversations(first: $first) { nodes {
        openingMessage badges { label colour record { type id } } conversions { kind } } } }";
        let mut costs = Vec::new();
        // The key is verified once, then kept in memory.
        data(
            &app.gql(&app.admin, "{ badgeKinds { kind } }", json!({}))
                .await,
            "badgeKinds",
        );
        let with_fragments = "query($first: Int) { conversations(first: $first) {
            edges { node { ...Row } } } }
            fragment Row on Conversation { sessionId ... on Conversation { badges { label } } }";
        for (document, rows) in [(query, "nodes"), (with_fragments, "edges")] {
            for first in [5, 250] {
                costs.push(fewest_statements(&app, document, rows, first).await);
            }
        }
        assert!(
            costs.iter().all(|c| *c == costs[0]),
            "statements for 5 vs 250 rows, plain and through fragments: {costs:?}"
        );
        assert_eq!(
            costs[0], 1,
            "one statement for the page and its conversions (the key is in memory): {costs:?}"
        );
    }
);

/// The statements a page of `first` rows costs: the fewest of three tries,
/// since the server's background work (the feed's notices after a
/// recording) may run meanwhile and only ever adds some.
async fn fewest_statements(app: &TestApp, document: &str, rows: &str, first: usize) -> u64 {
    let mut fewest = u64::MAX;
    for _ in 0..3 {
        let before = app.sql_statements();
        let body = app
            .gql(&app.admin, document, json!({ "first": first }))
            .await;
        let got = data(&body, "conversations")[rows].as_array().map(Vec::len);
        assert_eq!(got, Some(first), "{body}");
        fewest = fewest.min(app.sql_statements() - before);
    }
    fewest
}

test_both!(node_finds_every_object_by_global_id, |app| {
    let session = app.start_session(Channel::Chat).await;
    let said = app.say(&session, "VISITOR", "hello").await;
    let message_id = data(&said, "appendMessage")["message"]["id"].clone();
    let recorded = app
        .record_conversion(&session, ConversionKind::TourBooked, "v-9")
        .await;
    let conversion_id = data(&recorded, "recordConversion")["conversion"]["id"].clone();

    let query = "query($id: ID!) { node(id: $id) { __typename id
        ... on Conversation { sessionId }
        ... on Message { content }
        ... on Conversion { kind } } }";
    let body = app
        .gql(&app.admin, query, json!({ "id": session.id }))
        .await;
    assert_eq!(
        data(&body, "node")["sessionId"],
        session.session_id.as_str()
    );
    let body = app
        .gql(&app.admin, query, json!({ "id": message_id }))
        .await;
    assert_eq!(data(&body, "node")["content"], "hello");
    let body = app
        .gql(&app.admin, query, json!({ "id": conversion_id }))
        .await;
    assert_eq!(data(&body, "node")["kind"], "TOUR_BOOKED");
    for garbage in ["", "nonsense", "Q29udmVyc2F0aW9uOjE"] {
        let body = app.gql(&app.admin, query, json!({ "id": garbage })).await;
        assert_eq!(data(&body, "node"), &json!(null), "{garbage}");
    }
});

test_both!(conversation_takes_exactly_one_of_id_and_session_id, |app| {
    let session = app.start_session(Channel::Chat).await;
    let by_session = app
        .gql(
            &app.agent,
            "query($s: String) { conversation(sessionId: $s) { id } }",
            json!({ "s": session.session_id }),
        )
        .await;
    assert_eq!(data(&by_session, "conversation")["id"], session.id.as_str());
    let both = app
        .gql(
            &app.admin,
            "query($s: String, $id: ID) { conversation(sessionId: $s, id: $id) { id } }",
            json!({ "s": session.session_id, "id": session.id }),
        )
        .await;
    assert_eq!(error_code(&both), "BAD_USER_INPUT");
    let neither = app
        .gql(&app.admin, "{ conversation { id } }", json!({}))
        .await;
    assert_eq!(error_code(&neither), "BAD_USER_INPUT");
});

/// Every field a row of the list can show, with aliases, fragments and
/// type names, as a client may ask for them.
const EVERY_ROW_FIELD: &str = "id __typename sessionId channel startedAt lastActivityAt
    closedAt active openingMessage contact threadKey messageCount
    user { id name __typename } member: user { name }
    badges { __typename kind label colour recordedAt record { __typename type id url } }
    outcomes: badges { kind } labels { __typename key value } tags: labels { value }
    ...Row ... on Node { gid: id } ... on Conversation { sid: sessionId }";
const ROW_FRAGMENT: &str =
    "fragment Row on Conversation { started: startedAt count: messageCount }";

test_both!(
    a_row_of_the_list_answers_every_field_as_the_conversation_itself,
    |app| {
        app.link_visitor_records().await;
        let member = app
            .start_session_with(
                json!({ "channel": "CHAT", "userId": "m-42", "userName": "Ada",
                                        "labels": [{ "key": "prompt", "value": "v7" },
                                                   { "key": "model", "value": "m1" }] }),
            )
            .await;
        app.say(&member, "VISITOR", "Can I see the space on Friday?")
            .await;
        app.record_conversion(&member, ConversionKind::TourBooked, "v-1")
            .await;
        app.record_conversion(&member, ConversionKind::BookingCreated, "b-1")
            .await;
        let email = app
            .start_session_with(
                json!({ "channel": "EMAIL", "contact": "ada@example.com", "threadKey": "t-1" }),
            )
            .await;
        app.close(&email).await;
        app.advance(TimeDelta::hours(30));
        app.start_session(Channel::Voice).await;

        let list = format!(
            "{{ conversations {{ nodes {{ {EVERY_ROW_FIELD} }} edges {{ node {{ {EVERY_ROW_FIELD} }} }} }} }} {ROW_FRAGMENT}"
        );
        let body = app.gql(&app.admin, &list, json!({})).await;
        let listed = data(&body, "conversations");
        let nodes = listed["nodes"].as_array().expect("nodes");
        assert_eq!(nodes.len(), 3);
        let one = format!(
            "query($id: ID) {{ conversation(id: $id) {{ {EVERY_ROW_FIELD} }} }} {ROW_FRAGMENT}"
        );
        for (n, node) in nodes.iter().enumerate() {
            let body = app.gql(&app.admin, &one, json!({ "id": node["id"] })).await;
            let alone = data(&body, "conversation");
            assert_eq!(node, alone, "row {n}");
            assert_eq!(&listed["edges"][n]["node"], alone, "edge {n}");
        }
        let member_row = &nodes[2];
        assert_eq!(member_row["user"]["name"], "Ada");
        assert_eq!(member_row["badges"][0]["label"], "Tour booked");
        assert_eq!(
            member_row["tags"],
            json!([{ "value": "m1" }, { "value": "v7" }])
        );
        assert_eq!(
            member_row["badges"][0]["record"]["url"],
            "https://admin.example.com/visitors/v-1"
        );
        assert_eq!(nodes[1]["active"], false, "closed");
        assert_eq!(nodes[0]["user"], json!(null));
    }
);

/// Every field of the list's connection, through fragments and aliases.
const EVERY_PAGE_FIELD: &str = "__typename
    pageInfo { __typename hasPreviousPage hasNextPage startCursor endCursor }
    edges { __typename cursor node { id } } nodes { id sessionId }
    ...Page ... on ConversationConnection { last: pageInfo { endCursor } }";
const PAGE_FRAGMENT: &str = "fragment Page on ConversationConnection { rows: edges { cursor } }";

test_both!(
    a_page_of_the_list_answers_as_the_engines_connection,
    |app| {
        for channel in [Channel::Chat, Channel::Voice, Channel::Chat] {
            app.start_session(channel).await;
            app.advance(TimeDelta::minutes(5));
        }
        // A row field without a plain answer (`conversions`) sends the
        // whole page through the engine's connection type.
        let query = |through_engine: bool| {
            let engine = if through_engine {
                "engine: nodes { conversions { kind } }"
            } else {
                ""
            };
            format!(
                "query($after: String) {{ conversations(first: 2, after: $after) {{ \
                 {EVERY_PAGE_FIELD} {engine} }} }} {PAGE_FRAGMENT}"
            )
        };
        let mut after = json!(null);
        for page in 0..2 {
            let variables = json!({ "after": after });
            let plain = app.gql(&app.admin, &query(false), variables.clone()).await;
            let engine = app.gql(&app.admin, &query(true), variables).await;
            let mut engine = data(&engine, "conversations").clone();
            assert!(engine["engine"].is_array(), "page {page}: {engine}");
            engine.as_object_mut().expect("object").remove("engine");
            let plain = data(&plain, "conversations");
            assert_eq!(plain, &engine, "page {page}");
            assert_eq!(plain["pageInfo"]["hasPreviousPage"], page == 1);
            assert_eq!(plain["pageInfo"]["hasNextPage"], page == 0);
            assert_eq!(plain["__typename"], "ConversationConnection");
            after = plain["pageInfo"]["endCursor"].clone();
        }
    }
);

test_both!(
    a_row_without_a_badge_keeps_its_unattributed_conversions,
    |app| {
        let only_late = app.start_session(Channel::Chat).await;
        let both = app.start_session(Channel::Chat).await;
        let none = app.start_session(Channel::Chat).await;
        app.record_conversion(&both, ConversionKind::BookingCreated, "b-in-time")
            .await;
        // Recorded after the attribution window: stored, no badge.
        app.advance(TimeDelta::days(31));
        for (session, record) in [(&only_late, "late-1"), (&both, "late-2")] {
            let late = app
                .record_conversion(session, ConversionKind::BookingCreated, record)
                .await;
            assert_eq!(data(&late, "recordConversion")["attributed"], false);
        }
        let rows = |body: &Value| -> Vec<(String, Vec<Value>, Value)> {
            data(body, "conversations")["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .map(|n| {
                    let ids = |list: &Value| -> Vec<Value> {
                        list.as_array()
                            .map(|l| l.iter().map(|c| c["record"]["id"].clone()).collect())
                            .unwrap_or_default()
                    };
                    (
                        n["sessionId"].as_str().expect("id").to_owned(),
                        ids(&n["badges"]),
                        n.get("conversions").map_or(Value::Null, |c| json!(ids(c))),
                    )
                })
                .collect()
        };
        let expected_badges = [
            (&none, vec![]),
            (&both, vec![json!("b-in-time")]),
            (&only_late, vec![]),
        ];
        // Badges alone, written by the list; then with a field only the
        // engine answers (the thread); then with every conversion.
        for query in [
            "{ conversations(first: 10) { nodes { sessionId badges { record { id } } } } }",
            "{ conversations(first: 10) { nodes { sessionId badges { record { id } } messages(first: 1) { nodes { content } } } } }",
            "{ conversations(first: 10) { nodes { sessionId badges { record { id } } conversions { record { id } } } } }",
        ] {
            let body = app.gql(&app.admin, query, json!({})).await;
            let rows = rows(&body);
            assert_eq!(rows.len(), 3, "{body}");
            for ((session, badges), (id, got, conversions)) in expected_badges.iter().zip(&rows) {
                assert_eq!(&session.session_id, id, "{body}");
                assert_eq!(badges, got, "{query}: {body}");
                if query.contains("conversions {") {
                    let all = match session.session_id.as_str() {
                        s if s == both.session_id => json!(["b-in-time", "late-2"]),
                        s if s == only_late.session_id => json!(["late-1"]),
                        _ => json!([]),
                    };
                    assert_eq!(conversions, &all, "{body}");
                }
            }
        }
    }
);

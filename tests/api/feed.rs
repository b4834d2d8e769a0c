//! The live conversion feed: subscriptions over WebSocket and polling with
//! conversionsSince, across restarts, instances and tenants.

use std::time::Duration;

use convtrack::domain::session_id::SessionId;
use convtrack::service::conversions::{Origin, RecordConversion};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::ws::*;

impl TestApp {
    /// Records straight through the service layer (for volume).
    async fn record_quickly(
        &self,
        caller: &convtrack::service::Caller,
        session: &Session,
        record_id: &str,
    ) {
        self.services
            .record_conversion(
                caller,
                RecordConversion {
                    origin: Origin::Session(SessionId::parse(&session.session_id).expect("id")),
                    kind: ConversionKind::BookingCreated,
                    record_id: record_id.to_owned(),
                    new_customer_id: None,
                    value: None,
                    idempotency_key: None,
                    attribution_window: chrono::TimeDelta::days(30),
                },
            )
            .await
            .expect("recorded");
    }
}

fn record_ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            e["conversion"]["record"]["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect()
}

test_both!(a_subscriber_receives_a_complete_event, |app| {
    let mut socket = app.subscriber(&app.integrator).await;
    let now = app.feed_end(&app.integrator).await;
    socket.subscribe("1", EVENT, json!({ "after": now })).await;
    let session = app.start_session(Channel::Chat).await;
    data(
        &app.record_conversion(&session, ConversionKind::DayPassPurchased, "p-1")
            .await,
        "recordConversion",
    );
    let event = socket.next_event().await;
    assert!(event["cursor"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(event["conversion"]["kind"], "DAY_PASS_PURCHASED");
    assert_eq!(event["conversion"]["attributed"], true);
    assert_eq!(event["conversion"]["source"], "DIRECT");
    assert_eq!(
        event["conversion"]["record"],
        json!({ "type": "COWORKER_PRODUCT", "id": "p-1" })
    );
    assert_eq!(
        event["conversion"]["recordedAt"],
        "2026-03-02T09:00:00+00:00"
    );
    assert_eq!(
        event["conversation"]["sessionId"],
        session.session_id.as_str()
    );
    assert_eq!(event["conversation"]["channel"], "CHAT");
    assert_eq!(
        event["conversation"]["badges"],
        json!([{ "label": "Day pass purchased", "colour": "PEACH" }])
    );
});

test_both!(filters_and_the_legacy_protocol, |app| {
    let mut modern = app.subscriber(&app.admin).await;
    let now = app.feed_end(&app.admin).await;
    modern
        .subscribe(
            "tours",
            EVENT,
            json!({ "kinds": ["TOUR_BOOKED"], "channels": ["CHAT"], "after": now }),
        )
        .await;
    let mut legacy = app.socket_to(None, LEGACY).await;
    legacy.init(&app.integrator).await;
    assert_eq!(
        legacy.next_json().await.expect("ack")["type"],
        "connection_ack"
    );
    legacy
        .subscribe("all", EVENT, json!({ "after": now }))
        .await;

    let chat = app.start_session(Channel::Chat).await;
    let voice = app.start_session(Channel::Voice).await;
    data(
        &app.record_conversion(&chat, ConversionKind::BookingCreated, "b-1")
            .await,
        "recordConversion",
    );
    data(
        &app.record_conversion(&voice, ConversionKind::TourBooked, "v-1")
            .await,
        "recordConversion",
    );
    data(
        &app.record_conversion(&chat, ConversionKind::TourBooked, "v-2")
            .await,
        "recordConversion",
    );

    assert_eq!(
        record_ids(&legacy.events(3).await),
        vec!["b-1", "v-1", "v-2"]
    );
    assert_eq!(record_ids(&[modern.next_event().await]), vec!["v-2"]);
    assert!(modern.quiet_for(Duration::from_millis(300)).await);
});

test_both!(
    a_reconnecting_subscriber_gets_exactly_what_it_missed_then_live_ones,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let mut socket = app.subscriber(&app.integrator).await;
        let now = app.feed_end(&app.integrator).await;
        socket.subscribe("1", EVENT, json!({ "after": now })).await;
        app.record_quickly(&app.acme_admin, &session, "r-0").await;
        let last_seen = socket.next_event().await["cursor"].clone();
        drop(socket);

        for n in 1..=500 {
            app.record_quickly(&app.acme_admin, &session, &format!("r-{n}"))
                .await;
        }
        let mut socket = app.subscriber(&app.integrator).await;
        socket
            .subscribe("1", EVENT, json!({ "after": last_seen }))
            .await;
        let replayed = record_ids(&socket.events(500).await);
        let expected: Vec<String> = (1..=500).map(|n| format!("r-{n}")).collect();
        assert_eq!(replayed, expected, "exactly the missed ones, in order");
        app.record_quickly(&app.acme_admin, &session, "r-live")
            .await;
        assert_eq!(
            record_ids(&[socket.next_event().await]),
            vec!["r-live"],
            "then live ones, no duplicate"
        );
    }
);

test_both!(polling_visits_every_conversion_once_in_feed_order, |app| {
    let mut socket = app.subscriber(&app.integrator).await;
    let now = app.feed_end(&app.integrator).await;
    socket.subscribe("1", EVENT, json!({ "after": now })).await;
    let sessions = [
        app.start_session(Channel::Chat).await,
        app.start_session(Channel::Voice).await,
    ];
    for n in 0..25 {
        app.record_quickly(&app.acme_admin, &sessions[n % 2], &format!("p-{n}"))
            .await;
    }
    let live = record_ids(&socket.events(25).await);

    let query = "query($after: String) { conversionsSince(after: $after, first: 10) {
        nodes { cursor conversion { record { id } } } pageInfo { hasNextPage endCursor } } }";
    let mut after: Option<String> = None;
    let mut polled = Vec::new();
    loop {
        let body = app
            .gql(&app.integrator, query, json!({ "after": after }))
            .await;
        let page = data(&body, "conversionsSince");
        for node in page["nodes"].as_array().expect("nodes") {
            polled.push(
                node["conversion"]["record"]["id"]
                    .as_str()
                    .expect("id")
                    .to_owned(),
            );
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
    }
    assert_eq!(polled, live);
    // Nothing new: the page is empty and the cursor stays where it was.
    let body = app
        .gql(&app.integrator, query, json!({ "after": after }))
        .await;
    let page = data(&body, "conversionsSince");
    assert_eq!(page["nodes"], json!([]));
    assert_eq!(page["pageInfo"]["endCursor"].as_str(), after.as_deref());
});

test_both!(
    feed_cursor_read_before_a_list_misses_nothing_committed_after_it,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        app.record_conversion(&session, ConversionKind::TourBooked, "v-before")
            .await;
        let cursor_query = "{ feedCursor }";
        let body = app.gql(&app.admin, cursor_query, json!({})).await;
        let cursor = data(&body, "feedCursor").clone();
        assert_eq!(
            cursor,
            app.feed_end(&app.admin).await,
            "the newest event's cursor"
        );

        // Committed after the cursor was read, before anyone subscribed.
        app.record_conversion(&session, ConversionKind::BookingCreated, "b-between")
            .await;
        let mut socket = app.subscriber(&app.admin).await;
        socket
            .subscribe("1", EVENT, json!({ "after": cursor }))
            .await;
        app.record_conversion(&session, ConversionKind::DayPassPurchased, "p-after")
            .await;
        assert_eq!(
            record_ids(&socket.events(2).await),
            vec!["b-between", "p-after"]
        );

        let refused = app.gql(&app.agent, cursor_query, json!({})).await;
        assert_eq!(error_code(&refused), "FORBIDDEN");
        // A tenant without events yet gets the start of its feed, which a
        // subscription accepts and resumes from.
        let theirs = app.gql(&app.other_admin, cursor_query, json!({})).await;
        let start = data(&theirs, "feedCursor").clone();
        let mut their_socket = app.subscriber(&app.other_admin).await;
        their_socket
            .subscribe("1", EVENT, json!({ "after": start }))
            .await;
        let started = app
            .try_start_session(&app.other_agent, json!({ "channel": "CHAT" }))
            .await;
        let their_session = data(&started, "startSession")["sessionId"].clone();
        let recorded = app
            .record_as(
                &app.other_admin,
                json!({ "sessionId": their_session, "kind": "TOUR_BOOKED", "recordId": "v-theirs" }),
            )
            .await;
        data(&recorded, "recordConversion");
        assert_eq!(record_ids(&their_socket.events(1).await), vec!["v-theirs"]);
    }
);

test_both!(another_tenants_subscriber_receives_none_of_it, |app| {
    let mut theirs = app.subscriber(&app.other_admin).await;
    let now = app.feed_end(&app.other_admin).await;
    theirs.subscribe("1", EVENT, json!({ "after": now })).await;
    let session = app.start_session(Channel::Chat).await;
    for n in 0..1000 {
        app.record_quickly(&app.acme_admin, &session, &format!("a-{n}"))
            .await;
    }
    let their_session = app
        .gql(
            &app.other_agent,
            "mutation { startSession(input: { channel: CHAT }) { sessionId } }",
            json!({}),
        )
        .await;
    let their_session = data(&their_session, "startSession")["sessionId"]
        .as_str()
        .expect("id")
        .to_owned();
    let body = app
        .record_as(
            &app.other_admin,
            json!({ "sessionId": their_session, "kind": "BOOKING_CREATED", "recordId": "g-1" }),
        )
        .await;
    data(&body, "recordConversion");
    assert_eq!(
        record_ids(&[theirs.next_event().await]),
        vec!["g-1"],
        "their own, nothing of acme's"
    );

    let polled = app
        .gql(
            &app.other_admin,
            "{ conversionsSince { nodes { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&polled, "conversionsSince")["nodes"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
});

test_both!(cursors_that_are_malformed_or_foreign_are_refused, |app| {
    let session = app.start_session(Channel::Chat).await;
    app.record_quickly(&app.acme_admin, &session, "c-1").await;
    let polled = app
        .gql(
            &app.integrator,
            "{ conversionsSince { nodes { cursor } } }",
            json!({}),
        )
        .await;
    let cursor = data(&polled, "conversionsSince")["nodes"][0]["cursor"].clone();

    let mut theirs = app.subscriber(&app.other_admin).await;
    for after in [cursor.clone(), json!("garbage")] {
        theirs
            .subscribe("x", EVENT, json!({ "after": after }))
            .await;
        let answer = theirs.next_json().await.expect("an answer");
        assert_eq!(
            answer["payload"]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{answer}"
        );
        assert_eq!(
            theirs.next_json().await.expect("complete")["type"],
            "complete"
        );
    }
    let body = app
        .gql(
            &app.other_admin,
            "query($a: String) { conversionsSince(after: $a) { nodes { cursor } } }",
            json!({ "a": cursor }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let forbidden = app
        .gql(
            &app.agent,
            "{ conversionsSince { nodes { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
});

test_both!(sockets_without_a_fitting_key_are_closed_with_4403, |app| {
    for key in [
        None,
        Some("ctk_unknown"),
        Some(app.agent.as_str()),
        Some(app.checkout.as_str()),
    ] {
        let mut socket = app.socket_to(None, MODERN).await;
        match key {
            Some(key) => socket.init(key).await,
            None => socket.send(json!({ "type": "connection_init" })).await,
        }
        let (code, _) = socket.close_frame().await.expect("a close frame");
        assert_eq!(code, 4403, "{key:?}");
    }
    let mut legacy = app.socket_to(None, LEGACY).await;
    legacy.init(&app.agent).await;
    assert_eq!(
        legacy.next_json().await.expect("an answer")["type"],
        "connection_error"
    );
});

test_both!(a_socket_that_never_initialises_is_closed_with_4408, |app| {
    let mut socket = app.socket_to(None, MODERN).await;
    let (code, reason) = socket.close_frame().await.expect("a close frame");
    assert_eq!(code, 4408, "{reason}");
});

test_both!(at_most_twenty_subscriptions_per_connection, |app| {
    let mut socket = app.subscriber(&app.integrator).await;
    let now = app.feed_end(&app.integrator).await;
    for n in 0..21 {
        socket
            .subscribe(&format!("s{n}"), EVENT, json!({ "after": now }))
            .await;
    }
    // Subscriptions start in no particular order: one of the 21 is refused.
    let answer = socket.next_json().await.expect("an answer");
    assert_eq!(
        answer["payload"]["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{answer}"
    );
    let refused = answer["id"].as_str().expect("id").to_owned();
    assert_eq!(
        socket.next_json().await.expect("complete")["type"],
        "complete"
    );
    // Completing one frees a place.
    let completed = if refused == "s0" { "s1" } else { "s0" };
    socket
        .send(json!({ "id": completed, "type": "complete" }))
        .await;
    socket
        .subscribe("s21", EVENT, json!({ "after": now }))
        .await;
    let session = app.start_session(Channel::Chat).await;
    app.record_quickly(&app.acme_admin, &session, "z-1").await;
    let mut ids = std::collections::HashSet::new();
    while ids.len() < 20 {
        let message = socket.next_json().await.expect("an event");
        if message["type"] == "complete" {
            assert_eq!(message["id"], completed, "{message}");
            continue;
        }
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"].get("errors").is_none(), "{message}");
        ids.insert(message["id"].as_str().expect("id").to_owned());
    }
    assert!(ids.contains("s21") && !ids.contains(completed) && !ids.contains(&refused));
});

test_both!(revoking_the_key_closes_its_sockets, |app| {
    let created = app
        .services
        .create_key("acme", convtrack::domain::role::Role::Integrator, false)
        .await
        .expect("key");
    let mut socket = app.subscriber(&created.secret).await;
    socket.subscribe("1", EVENT, json!({})).await;
    app.services
        .revoke_key(created.key.id)
        .await
        .expect("revoke");
    let (code, _) = socket.close_frame().await.expect("a close frame");
    assert_eq!(code, 4403);
});

test_both!(shutting_down_closes_sockets_with_a_close_frame, |app| {
    let mut app = app;
    let mut socket = app.subscriber(&app.integrator).await;
    let now = app.feed_end(&app.integrator).await;
    socket.subscribe("1", EVENT, json!({ "after": now })).await;
    app.restart().await;
    let (code, reason) = socket.close_frame().await.expect("a close frame");
    assert_eq!(code, 1001, "{reason}");
});

test_both!(get_without_an_upgrade_is_405, |app| {
    let response = app.get("/graphql").await;
    assert_eq!(response.status(), 405);
    assert_eq!(
        response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok()),
        Some("POST")
    );
});

/// Two instances on one PostgreSQL database.
async fn two_instances() -> Option<(TestApp, String)> {
    let mut app = TestApp::spawn(Backend::Postgres).await?;
    let second = app.second_instance().await;
    Some((app, second))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_one_instance_sees_conversions_recorded_on_another() {
    let Some((app, second)) = two_instances().await else {
        return;
    };
    let mut on_second = app.subscriber_at(Some(&second), &app.integrator).await;
    let now = app.feed_end(&app.integrator).await;
    on_second
        .subscribe("1", EVENT, json!({ "after": now }))
        .await;
    let session = app.start_session(Channel::Chat).await;
    for n in 0..5 {
        data(
            &app.record_conversion(&session, ConversionKind::BookingCreated, &format!("b-{n}"))
                .await,
            "recordConversion",
        );
    }
    assert_eq!(
        record_ids(&on_second.events(5).await),
        vec!["b-0", "b-1", "b-2", "b-3", "b-4"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_recorded_while_the_notify_connection_is_down_still_arrive() {
    let Some((app, second)) = two_instances().await else {
        return;
    };
    let mut on_second = app.subscriber_at(Some(&second), &app.integrator).await;
    let now = app.feed_end(&app.integrator).await;
    on_second
        .subscribe("1", EVENT, json!({ "after": now }))
        .await;
    let session = app.start_session(Channel::Chat).await;
    // The listeners connect in the background at start; wait for them (bounded).
    let mut killed = 0;
    for _ in 0..100 {
        killed = app
            .services
            .db
            .execute_unprepared(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
            )
            .await
            .expect("terminate")
            .rows_affected();
        if killed >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(killed >= 1, "the listeners were found");
    for n in 0..5 {
        app.record_quickly(&app.acme_admin, &session, &format!("k-{n}"))
            .await;
    }
    assert_eq!(
        record_ids(&on_second.events(5).await),
        vec!["k-0", "k-1", "k-2", "k-3", "k-4"]
    );
}

const RECORD_BY_SESSION: &str = "mutation($s: String, $r: String!) { recordConversion(input: { sessionId: $s, kind: BOOKING_CREATED, recordId: $r }) { created } }";
const SINCE: &str = "query($a: String) { conversionsSince(after: $a) { nodes { cursor conversion { record { id } } } pageInfo { endCursor } } }";

/// The record ids a `conversionsSince` page holds, and where it ends.
async fn poll_since(app: &TestApp, after: &Value) -> (Vec<String>, Value) {
    let page = app.gql(&app.integrator, SINCE, json!({ "a": after })).await;
    let since = data(&page, "conversionsSince");
    let ids = since["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            n["conversion"]["record"]["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    (ids, since["pageInfo"]["endCursor"].clone())
}

test_both!(a_recording_that_commits_late_is_not_skipped, |app| {
    let session = app.start_session(Channel::Chat).await;
    let mut socket = app.subscriber(&app.integrator).await;
    let now = app.feed_end(&app.integrator).await;
    socket.subscribe("1", EVENT, json!({ "after": now })).await;

    // A slow recording took its place in the feed and has not committed.
    let slow = begin_slow_recording(&app, &session).await;
    // Two more start after it; on PostgreSQL they commit while it is open,
    // on SQLite they wait for the one writer.
    let fast = {
        let (client, address) = (app.client.clone(), app.address.clone());
        let (key, session_id) = (app.checkout.clone(), session.session_id.clone());
        tokio::spawn(async move {
            for id in ["fast-1", "fast-2"] {
                let answer: Value = client
                    .post(format!("{address}/graphql"))
                    .bearer_auth(&key)
                    .json(&json!({ "query": RECORD_BY_SESSION, "variables": { "s": session_id, "r": id } }))
                    .send()
                    .await
                    .expect("answer")
                    .json()
                    .await
                    .expect("json");
                assert_eq!(
                    data(&answer, "recordConversion")["created"],
                    true,
                    "{answer}"
                );
            }
        })
    };
    if app.backend == Backend::Postgres {
        while !fast.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Committed, but behind an open transaction: not handed out yet,
        // so no one's cursor moves past the slow one's place.
        let (held, end) = poll_since(&app, &now).await;
        assert_eq!(held, Vec::<String>::new());
        assert_eq!(end, now);
    }
    slow.commit().await.expect("commit the slow one");
    fast.await.expect("joined");

    let in_order = vec!["slow", "fast-1", "fast-2"];
    assert_eq!(record_ids(&socket.events(3).await), in_order);
    let (polled, end) = poll_since(&app, &now).await;
    assert_eq!(polled, in_order);
    let (again, _) = poll_since(&app, &end).await;
    assert_eq!(again, Vec::<String>::new(), "each event once");
    app.record_quickly(&app.acme_admin, &session, "next").await;
    assert_eq!(record_ids(&socket.events(1).await), vec!["next"]);
});

/// Does what a recording does up to its commit, the way the server does
/// it (its place in the feed first), and leaves the transaction open.
async fn begin_slow_recording(app: &TestApp, session: &Session) -> convtrack::service::WriteTxn {
    use sea_orm::DatabaseBackend::{Postgres, Sqlite};
    let backend = app.services.db.get_database_backend();
    let tenant = app.acme_admin.tenant_id;
    let txn = app.services.begin_write().await.expect("begin");
    let (place, p) = if backend == Postgres {
        (
            "nextval('conversion_feed_seq'), \
             pg_current_xact_id()::text::bigint + (SELECT xid_offset FROM feed_clock)",
            ["$1", "$2"],
        )
    } else {
        txn.execute_raw(Statement::from_sql_and_values(
            Sqlite,
            "UPDATE tenant SET conversion_seq = conversion_seq + 1 WHERE id = ?",
            [tenant.into()],
        ))
        .await
        .expect("cursor");
        (
            "(SELECT conversion_seq FROM tenant WHERE id = c.tenant_id), 0",
            ["?", "?"],
        )
    };
    let sql = format!(
        "INSERT INTO conversion (id, tenant_id, conversation_id, kind, record_type, record_id, source, \
         attributed, feed_seq, feed_xid, recorded_at, conversation_started_at, conversation_channel) \
         SELECT {}, c.tenant_id, c.id, 'BOOKING_CREATED', 'BOOKING', 'slow', 'DIRECT', true, \
         {place}, c.started_at, c.started_at, c.channel FROM conversation c WHERE c.session_id = {}",
        p[0], p[1]
    );
    let values = [
        uuid::Uuid::now_v7().into(),
        session.session_id.clone().into(),
    ];
    let inserted = txn
        .execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
        .expect("insert");
    assert_eq!(inserted.rows_affected(), 1);
    txn
}

test_both!(a_cursor_from_the_future_is_refused, |app| {
    let future = convtrack::domain::cursor::EventCursor {
        tenant_id: app.acme_admin.tenant_id,
        position: convtrack::domain::cursor::FeedPosition {
            xid: i64::MAX / 2,
            seq: 1_000_000,
        },
    }
    .encode();
    let mut socket = app.subscriber(&app.integrator).await;
    socket
        .subscribe("1", EVENT, json!({ "after": future }))
        .await;
    let answer = socket.next_json().await.expect("an answer");
    assert_eq!(
        answer["payload"]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{answer}"
    );
    let polled = app
        .gql(
            &app.integrator,
            "query($a: String) { conversionsSince(after: $a) { nodes { cursor } } }",
            json!({ "a": future }),
        )
        .await;
    assert_eq!(error_code(&polled), "BAD_USER_INPUT");
});

test_both!(an_oversized_message_closes_the_socket_with_1009, |app| {
    let mut socket = app.subscriber(&app.integrator).await;
    let huge = "x".repeat(70 * 1024);
    socket
        .send(json!({ "id": "1", "type": "subscribe", "payload": { "query": huge } }))
        .await;
    let (code, _) = socket.close_frame().await.expect("a close frame");
    assert_eq!(code, 1009);
});

/// A feed cursor read while an older transaction is open (anywhere on the
/// cluster) waits for it to end rather than name an earlier place, so a
/// subscriber after it is not handed the newest event a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_cursor_waits_for_older_transactions_to_end() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let session = app.start_session(Channel::Chat).await;
    let older = app.services.begin_write().await.expect("begin");
    older
        .execute_raw(Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT pg_current_xact_id()",
        ))
        .await
        .expect("an id for the older transaction");
    app.record_conversion(&session, ConversionKind::TourBooked, "v-newest")
        .await;

    let reading = in_background(&app, &app.admin, "{ feedCursor }", json!({}));
    let polling = in_background(&app, &app.integrator, SINCE, json!({ "a": null }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !reading.is_finished(),
        "a cursor while the older one is open"
    );
    assert!(!polling.is_finished(), "a poll while the older one is open");
    older.rollback().await.expect("rollback");
    let cursor = data(&reading.await.expect("joined"), "feedCursor").clone();
    assert_eq!(cursor, app.feed_end(&app.admin).await);

    let mut socket = app.subscriber(&app.admin).await;
    socket
        .subscribe("1", EVENT, json!({ "after": cursor }))
        .await;
    app.record_conversion(&session, ConversionKind::DayPassPurchased, "p-after")
        .await;
    assert_eq!(record_ids(&socket.events(1).await), vec!["p-after"]);
    let polled = polling.await.expect("joined");
    let nodes = &data(&polled, "conversionsSince")["nodes"];
    assert_eq!(
        nodes[0]["conversion"]["record"]["id"], "v-newest",
        "{polled}"
    );
}

/// Sends a query on its own task, to see whether it has answered yet.
fn in_background(
    app: &TestApp,
    key: &str,
    query: &'static str,
    variables: Value,
) -> tokio::task::JoinHandle<Value> {
    let (client, address, key) = (app.client.clone(), app.address.clone(), key.to_owned());
    tokio::spawn(async move { graphql_at(&client, &address, &key, query, variables).await })
}

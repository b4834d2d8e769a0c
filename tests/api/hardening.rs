//! The second hardening round, as a black-box prober found the gaps: work
//! that grows exponentially from a small document, clients that never
//! finish a request, link tokens that could be read, control characters,
//! private link targets, WebSocket protocol details, client text in logs,
//! and `/l/` bookkeeping.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use convtrack::domain::link::UnverifiedToken;
use sea_orm::EntityTrait;

use crate::helpers::*;
use crate::links::{no_redirects, stored_key};
use crate::ws::{EVENT, MODERN, PATIENCE};

/// `n` fragments on `on`, each spreading the next twice: about 1 KB for 30
/// (the engine's parser refuses chains deeper than 32), and 2^30 selections.
fn fragment_bomb(operation: &str, on: &str, leaf: &str, n: usize) -> String {
    let mut doc = format!("{operation} {{ ...F0 }}\n");
    for i in 0..n {
        doc.push_str(&format!(
            "fragment F{i} on {on} {{ ...F{j} ...F{j} }}\n",
            j = i + 1
        ));
    }
    doc.push_str(&format!("fragment F{n} on {on} {{ {leaf} }}\n"));
    doc
}

fn tight_budget(config: &mut convtrack::config::ServerConfig) {
    config.rate_limit = convtrack::domain::rate_limit::Budget {
        capacity: 5_000.0,
        per_second: 1.0,
    };
}

test_both!(a_fragment_bomb_is_refused_at_once_and_charged, with tight_budget, |app| {
    let bomb = fragment_bomb("query", "Query", "badgeKinds { kind }", 30);
    assert!(bomb.len() < 2_000, "{}", bomb.len());
    // The least-privileged key, refused before validation walks the spreads.
    let body = app.gql(&app.checkout, &bomb, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert!(
        error_message(&body).contains("expands to more than"),
        "{body}"
    );
    assert!(body["data"].is_null());
    assert_eq!(app.get("/healthz").await.status(), 200);

    // Each refusal is paid for: 5,000 units buy two, not three.
    let third = app
        .post_graphql(Some(&app.checkout), &bomb, json!({}))
        .await;
    let fourth = app
        .post_graphql(Some(&app.checkout), &bomb, json!({}))
        .await;
    assert!(
        [third.status(), fourth.status()].contains(&reqwest::StatusCode::TOO_MANY_REQUESTS),
        "a fragment bomb is charged to the rate limiter"
    );

    // Deeper than the engine's recursion limit: refused by the same pass.
    let deep = fragment_bomb("query", "Query", "badgeKinds { kind }", 40);
    let body = app.gql(&app.admin, &deep, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");

    // A fragment that spreads itself is a mistake of the caller's.
    let cycle = app
        .gql(
            &app.admin,
            "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&cycle), "BAD_USER_INPUT", "{cycle}");
});

test_both!(a_fragment_bomb_over_a_websocket_is_refused_too, |app| {
    let mut socket = app.subscriber(&app.integrator).await;
    let bomb = fragment_bomb(
        "subscription",
        "Subscription",
        "conversionRecorded { cursor }",
        30,
    );
    socket.subscribe("1", &bomb, json!({})).await;
    let answer = socket.next_json().await.expect("an answer");
    assert_eq!(
        answer["payload"]["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX",
        "{answer}"
    );
    let done = socket.next_json().await.expect("complete");
    assert_eq!(
        (&done["type"], &done["id"]),
        (&json!("complete"), &json!("1"))
    );
    // The socket still serves.
    let now = app.feed_end(&app.integrator).await;
    socket.subscribe("2", EVENT, json!({ "after": now })).await;
    let session = app.start_session(Channel::Chat).await;
    app.record_conversion(&session, ConversionKind::BookingCreated, "b-1")
        .await;
    let event = socket.next_json().await.expect("an event");
    assert_eq!(event["id"], "2", "{event}");
});

/// Reads from `stream` until the server closes it; `false` if it is still
/// open after the test's patience.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn short_header_deadline(config: &mut convtrack::config::ServerConfig) {
    config.header_read_timeout = Duration::from_secs(1);
}

test_both!(clients_that_never_finish_a_request_are_cut_off, with short_header_deadline, |app| {
    let host = app.address.trim_start_matches("http://").to_owned();

    // Half a request line, then nothing.
    let mut half = TcpStream::connect(&host).await.expect("connect");
    half.write_all(b"POST /graphql HT").await.expect("write");
    assert!(closed_by_server(&mut half).await, "half a request line");

    // One header byte at a time, never finishing: the deadline is for the
    // whole head, not between bytes.
    let mut drip = TcpStream::connect(&host).await.expect("connect");
    drip.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut cut_off = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if drip.write_all(b"X").await.is_err() {
            cut_off = true;
            break;
        }
    }
    assert!(
        cut_off || closed_by_server(&mut drip).await,
        "a dripping client"
    );

    // A finished request, then an idle keep-alive connection.
    let mut idle = TcpStream::connect(&host).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert!(closed_by_server(&mut idle).await, "an idle keep-alive");

    assert_eq!(app.get("/healthz").await.status(), 200);
});

const TARGET: &str = "https://book.example.com/day-pass";

test_both!(a_link_reveals_nothing_of_its_session, |app| {
    let session = app.start_session(Channel::Chat).await;
    let link = app.create_link(&session, "DAY_PASS", TARGET).await;
    let token = link["token"].as_str().expect("token");
    let url = link["url"].as_str().expect("url");
    assert!(token.starts_with("ct2."), "{token}");
    let secret_part = session.session_id.trim_start_matches("cs_");
    for window in secret_part.as_bytes().windows(6) {
        let piece = std::str::from_utf8(window).expect("ascii");
        assert!(
            !url.contains(piece),
            "{piece} of the session ID is in {url}"
        );
    }
    // Two links for the same session and action look unrelated.
    let again = app.create_link(&session, "DAY_PASS", TARGET).await;
    let other = again["token"].as_str().expect("token");
    let sealed = |t: &str| t.rsplit('.').next().unwrap_or_default().to_owned();
    assert_ne!(sealed(token)[..20], sealed(other)[..20]);
});

test_both!(legacy_signed_tokens_work_until_their_window_ends, |app| {
    let session = app.start_session(Channel::Chat).await;
    let sealed = app.create_link(&session, "DAY_PASS", TARGET).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let key = stored_key(&app).await;
    let claims = UnverifiedToken::parse(&sealed)
        .and_then(|t| t.verify(&key))
        .expect("genuine");
    let legacy = key.sign_legacy(&claims);

    let inside = app
        .record_with_token(
            &app.checkout,
            &legacy,
            ConversionKind::DayPassPurchased,
            "p-1",
        )
        .await;
    assert_eq!(
        data(&inside, "recordConversion")["attributed"],
        true,
        "{inside}"
    );
    assert_eq!(
        no_redirect_get(&app, &format!("/l/{legacy}"))
            .await
            .status(),
        302
    );

    app.advance(chrono::TimeDelta::days(31));
    let late_legacy = app
        .record_with_token(
            &app.checkout,
            &legacy,
            ConversionKind::DayPassPurchased,
            "p-2",
        )
        .await;
    assert_eq!(
        error_code(&late_legacy),
        "INVALID_LINK_TOKEN",
        "{late_legacy}"
    );
    assert_eq!(
        no_redirect_get(&app, &format!("/l/{legacy}"))
            .await
            .status(),
        404
    );
    // The sealed token of the same link still records, unattributed.
    let late_sealed = app
        .record_with_token(
            &app.checkout,
            &sealed,
            ConversionKind::DayPassPurchased,
            "p-3",
        )
        .await;
    let recorded = data(&late_sealed, "recordConversion");
    assert_eq!(recorded["attributed"], false, "{late_sealed}");
    assert_eq!(
        recorded["conversion"]["unattributedReason"],
        "ATTRIBUTION_EXPIRED"
    );
});

test_both!(
    a_recording_by_session_id_keeps_the_attribution_window,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let inside = app
            .record_conversion(&session, ConversionKind::BookingCreated, "b-1")
            .await;
        assert_eq!(data(&inside, "recordConversion")["attributed"], true);
        app.advance(chrono::TimeDelta::days(31));
        let late = app
        .gql(
            &app.agent,
            "mutation($i: RecordConversionInput!) { recordConversion(input: $i) {
                attributed conversion { unattributedReason } } }",
            json!({ "i": { "sessionId": session.session_id, "kind": "BOOKING_CREATED", "recordId": "b-2" } }),
        )
        .await;
        let recorded = data(&late, "recordConversion");
        assert_eq!(recorded["attributed"], false, "{late}");
        assert_eq!(
            recorded["conversion"]["unattributedReason"],
            "ATTRIBUTION_EXPIRED"
        );
    }
);

async fn no_redirect_get(app: &TestApp, path: &str) -> reqwest::Response {
    no_redirects()
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .expect("answer")
}

test_both!(control_characters_are_refused_in_every_text_input, |app| {
    let session = app.start_session(Channel::Chat).await;
    let before = app.conversion_rows().await;
    let cases: Vec<(&str, Value)> = vec![
        (
            "mutation($i: StartSessionInput!) { startSession(input: $i) { sessionId } }",
            json!({ "i": { "channel": "CHAT", "userName": "Ann\u{0}" } }),
        ),
        (
            "mutation($i: AppendMessageInput!) { appendMessage(input: $i) { message { id } } }",
            json!({ "i": { "sessionId": session.session_id, "role": "VISITOR", "content": "hi\u{0}" } }),
        ),
        (
            "mutation($i: RecordConversionInput!) { recordConversion(input: $i) { created } }",
            json!({ "i": { "sessionId": session.session_id, "kind": "BOOKING_CREATED", "recordId": "b\u{7}1" } }),
        ),
        (
            "query($f: ConversationFilter) { conversations(filter: $f) { nodes { id } } }",
            json!({ "f": { "search": "\u{0}" } }),
        ),
        (
            r#"{ conversations(filter: { search: "a\u0000" }) { nodes { id } } }"#,
            json!({}),
        ),
    ];
    for (query, variables) in cases {
        let response = app.post_graphql(Some(&app.admin), query, variables).await;
        assert_eq!(response.status(), 200, "never 503 for {query}");
        assert!(response.headers().get("retry-after").is_none());
        let body: Value = response.json().await.expect("json");
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert!(error_message(&body).contains("U+00"), "{body}");
    }
    assert_eq!(app.conversion_rows().await, before, "nothing was written");
    let thread = app.conversation(&app.admin, &session).await;
    assert_eq!(thread["messageCount"], 0, "{thread}");
    // Lines and tabs are text.
    let fine = app.say(&session, "VISITOR", "line one\n\tline two").await;
    data(&fine, "appendMessage");
});

test_both!(link_targets_are_public_http_urls_only, |app| {
    let session = app.start_session(Channel::Chat).await;
    for bad in [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://[::1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/",
        "http://localhost:8000/",
        "https://good.example@evil.example/",
        "https://book.example.com/\u{202E}txt.exe",
        "https://book.example.com/\u{1b}[31m",
    ] {
        let body = app
            .try_create_link(&app.agent, &session, "DAY_PASS", bad)
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{bad}: {body}");
    }
    // Non-ASCII is normalised, so the redirect's Location is plain ASCII.
    let link = app
        .create_link(&session, "DAY_PASS", "https://Bücher.example/straße?q=ü")
        .await;
    let token = link["token"].as_str().expect("token");
    let response = no_redirect_get(&app, &format!("/l/{token}")).await;
    let location = response
        .headers()
        .get("location")
        .expect("location")
        .to_str()
        .expect("ASCII");
    assert!(
        location.starts_with("https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%BC&ai_session="),
        "{location}"
    );

    // A tenant's allowlist of target hosts.
    let set = app
        .gql(
            &app.admin,
            "mutation($i: UpdateTenantSettingsInput!) { updateTenantSettings(input: $i) { settings { linkTargetHosts } } }",
            json!({ "i": { "linkTargetHosts": ["*.example.com", "tours.example"] } }),
        )
        .await;
    assert_eq!(
        data(&set, "updateTenantSettings")["settings"]["linkTargetHosts"],
        json!(["*.example.com", "tours.example"])
    );
    app.create_link(&session, "DAY_PASS", "https://book.example.com/x")
        .await;
    app.create_link(&session, "TOUR_REQUEST", "https://tours.example/")
        .await;
    let outside = app
        .try_create_link(&app.agent, &session, "DAY_PASS", "https://evil.example/")
        .await;
    assert_eq!(error_code(&outside), "BAD_USER_INPUT", "{outside}");
    assert!(error_message(&outside).contains("link target hosts"));
    let bad_entry = app
        .gql(
            &app.admin,
            "mutation($i: UpdateTenantSettingsInput!) { updateTenantSettings(input: $i) { settings { linkTargetHosts } } }",
            json!({ "i": { "linkTargetHosts": ["10.0.0.1"] } }),
        )
        .await;
    assert_eq!(error_code(&bad_entry), "BAD_USER_INPUT");
});

test_both!(record_url_templates_keep_the_id_out_of_the_host, |app| {
    for bad in [
        "https://{id}.example.com/",
        "https://admin.example.com@{id}/",
        "http://10.0.0.1/visitors/{id}",
        "http://localhost/visitors/{id}",
    ] {
        let body = app
            .gql(
                &app.admin,
                "mutation($i: UpdateTenantSettingsInput!) { updateTenantSettings(input: $i) { settings { attributionWindowDays } } }",
                json!({ "i": { "recordUrlTemplates": [{ "recordType": "VISITOR", "template": bad }] } }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{bad}: {body}");
    }
});

/// Every close frame the server sends is valid: a reason of at most 123 bytes.
fn short(reason: &str) {
    assert!(reason.len() <= 123, "{} bytes: {reason}", reason.len());
}

test_both!(
    websocket_protocol_violations_close_with_the_protocols_codes,
    |app| {
        let mut socket = app.subscriber(&app.integrator).await;
        socket.send_raw("{ this is not json").await;
        let (code, reason) = socket.close_frame().await.expect("a close frame");
        assert_eq!(code, 4400, "{reason}");
        short(&reason);
        assert!(
            !reason.contains("line") && !reason.contains("column"),
            "{reason}"
        );

        let mut socket = app.subscriber(&app.integrator).await;
        socket.send(json!({ "type": "subscribe", "id": "1" })).await;
        let (code, reason) = socket.close_frame().await.expect("a close frame");
        assert_eq!(code, 4400, "a message without its payload: {reason}");
        short(&reason);

        let mut socket = app.subscriber(&app.integrator).await;
        let now = app.feed_end(&app.integrator).await;
        socket
            .subscribe("same", EVENT, json!({ "after": now }))
            .await;
        socket
            .subscribe("same", EVENT, json!({ "after": now }))
            .await;
        let (code, reason) = socket.close_frame().await.expect("a close frame");
        assert_eq!(code, 4409, "{reason}");
        short(&reason);

        let mut early = app.socket_to(None, MODERN).await;
        early.subscribe("1", EVENT, json!({})).await;
        let (code, reason) = early.close_frame().await.expect("a close frame");
        assert_eq!(code, 4401, "subscribe before connection_init: {reason}");
    }
);

test_both!(one_key_may_hold_a_bounded_number_of_sockets, |app| {
    let limit = convtrack::web::socket::MAX_SOCKETS_PER_KEY;
    let mut open = Vec::new();
    for _ in 0..limit {
        open.push(app.subscriber(&app.integrator).await);
    }
    let mut extra = app.socket_to(None, MODERN).await;
    extra.init(&app.integrator).await;
    let (code, reason) = extra.close_frame().await.expect("a close frame");
    assert_eq!(code, 1013, "a code the reference client retries: {reason}");
    short(&reason);
    // Another key is not affected, and closing one frees a place.
    app.subscriber(&app.admin).await;
    drop(open.pop());
    let mut retried = None;
    for _ in 0..50 {
        let mut socket = app.socket_to(None, MODERN).await;
        socket.init(&app.integrator).await;
        match socket.next_json().await {
            Some(ack) if ack["type"] == "connection_ack" => {
                retried = Some(socket);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(retried.is_some(), "a freed place is taken again");
});

test_both!(sockets_from_a_rebound_dns_name_are_refused, |app| {
    let host = app.address.trim_start_matches("http://").to_owned();
    let port = host.rsplit(':').next().expect("port");
    let upgrade = |origin: String, host: String| {
        let client = reqwest::Client::new();
        let url = format!("{}/graphql", app.address);
        async move {
            client
                .get(url)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                .header("sec-websocket-protocol", MODERN)
                .header("origin", origin)
                .header("host", host)
                .send()
                .await
                .expect("answer")
                .status()
        }
    };
    // The attacker's page: its Origin and Host agree, as after DNS rebinding.
    let rebound = format!("attacker.example:{port}");
    assert_eq!(
        upgrade(format!("http://{rebound}"), rebound.clone()).await,
        403
    );
    assert_eq!(
        upgrade(format!("http://127.0.0.1:{port}"), host.clone()).await,
        101
    );
    assert_eq!(
        upgrade(
            format!("http://localhost:{port}"),
            format!("localhost:{port}")
        )
        .await,
        101
    );
    assert_eq!(
        upgrade("https://admin.example.com".to_owned(), host.clone()).await,
        101
    );
});

test_both!(client_text_never_reaches_logs_or_errors_whole, |app| {
    let sent = |id: &'static str| {
        let request = app
            .client
            .post(format!("{}/graphql", app.address))
            .bearer_auth(&app.admin)
            .header("x-request-id", id)
            .json(&json!({ "query": "{ badgeKinds { kind } }" }));
        async move { request.send().await.expect("answer") }
    };
    let kept = sent("req-42.a_b").await;
    assert_eq!(kept.headers()["x-request-id"], "req-42.a_b");
    for hostile in [
        "a b",
        "x\" level=error msg=\"forged",
        "0123456789012345678901234567890123456789012345678901234567890123456789",
    ] {
        let replaced = sent(hostile).await;
        let id = replaced.headers()["x-request-id"].to_str().expect("ascii");
        assert_ne!(id, hostile);
        assert_eq!(id.len(), 36, "a generated UUID: {id}");
    }

    let session = app.start_session(Channel::Chat).await;
    let long_target = format!("https://10.0.0.1/{}", "a".repeat(60_000));
    let body = app
        .try_create_link(&app.agent, &session, "DAY_PASS", &long_target)
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(
        error_message(&body).len() < 400,
        "{}",
        error_message(&body).len()
    );
    let long_field = format!("{{ {} }}", "x".repeat(50_000));
    let unknown = app.gql(&app.admin, &long_field, json!({})).await;
    assert!(
        error_message(&unknown).chars().count() <= 301,
        "{}",
        error_message(&unknown).len()
    );
});

test_both!(
    a_link_counts_one_follow_per_client_a_minute_and_head_none,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let token = app.create_link(&session, "DAY_PASS", TARGET).await["token"]
            .as_str()
            .expect("token")
            .to_owned();
        let follows = || async {
            entity::cta_link::Entity::find()
                .one(&app.services.db)
                .await
                .expect("read")
                .expect("the link")
                .follow_count
        };
        let head = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .head(format!("{}/l/{token}", app.address))
            .send()
            .await
            .expect("answer");
        assert_eq!(head.status(), 302);
        assert_eq!(follows().await, 0, "HEAD is not a click");
        for _ in 0..5 {
            assert_eq!(
                no_redirect_get(&app, &format!("/l/{token}")).await.status(),
                302
            );
        }
        assert_eq!(follows().await, 1, "one click a minute per client");
        app.advance(chrono::TimeDelta::seconds(61));
        no_redirect_get(&app, &format!("/l/{token}")).await;
        assert_eq!(follows().await, 2);
    }
);

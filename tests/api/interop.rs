//! The reference JavaScript clients — `graphql-ws` and Apollo's legacy
//! `subscriptions-transport-ws` — and the `graphql-http` package's
//! GraphQL-over-HTTP audit against the real server. Runs when
//! `CONVTRACK_TEST_NODE` is set (`.ci/run` installs the clients with npm
//! and sets it); then Node and the clients must be there.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use serde_json::Value;

use crate::helpers::*;

const NODE_ENV: &str = "CONVTRACK_TEST_NODE";

test_both!(the_reference_javascript_clients_receive_events, |app| {
    if std::env::var_os(NODE_ENV).is_none() {
        return;
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");
    assert!(
        std::path::Path::new(dir).join("node_modules").exists(),
        "{NODE_ENV} is set but the clients are not installed: npm ci --prefix tests/interop"
    );
    let after = app.feed_end(&app.integrator).await;
    let url = format!("{}/graphql", app.address.replacen("http://", "ws://", 1));
    let clients = tokio::process::Command::new("node")
        .arg(format!("{dir}/clients.mjs"))
        .args([
            url.as_str(),
            app.integrator.as_str(),
            after.as_str().expect("cursor"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let session = app.start_session(Channel::Chat).await;
    data(
        &app.record_conversion(&session, ConversionKind::TourBooked, "v-js")
            .await,
        "recordConversion",
    );
    let output = clients.wait_with_output().await.expect("clients finish");
    assert!(
        output.status.success(),
        "clients failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let received: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    for client in ["modern", "legacy"] {
        assert_eq!(
            received[client]["conversion"]["kind"], "TOUR_BOOKED",
            "{client}: {received}"
        );
        assert_eq!(
            received[client]["conversion"]["record"]["id"], "v-js",
            "{client}"
        );
    }
});

test_both!(
    the_graphql_over_http_audit_finds_no_must_or_should_failures,
    |app| {
        if std::env::var_os(NODE_ENV).is_none() {
            return;
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");
        let url = format!("{}/graphql", app.address);
        let output = tokio::process::Command::new("node")
            .arg(format!("{dir}/audit.mjs"))
            .args([url.as_str(), app.integrator.as_str()])
            .kill_on_drop(true)
            .output()
            .await
            .expect("node runs the audit");
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "graphql-http audit: {report}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_str(&report).expect("JSON");
        assert!(report["audits"].as_u64().expect("a count") > 50, "{report}");
    }
);

/// Events in the slow-subscriber test: one before the client stops reading,
/// the rest while it does not.
const SLOW_EVENTS: usize = 10;

test_both!(
    the_stock_client_closed_as_too_slow_comes_back_and_misses_nothing,
    with | config | config.socket_send_timeout = std::time::Duration::from_millis(300),
    |app| {
        if std::env::var_os(NODE_ENV).is_none() {
            return;
        }
        let session = app.start_session(Channel::Chat).await;
        let long_answer = "x".repeat(30_000);
        for _ in 0..20 {
            assert_no_errors(&app.say(&session, "AI_AGENT", &long_answer).await);
        }
        let after = app.feed_end(&app.integrator).await;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");
        let url = format!("{}/graphql", app.address.replacen("http://", "ws://", 1));
        let mut client = tokio::process::Command::new("node")
            .arg(format!("{dir}/slow.mjs"))
            .args([
                url.as_str(),
                app.integrator.as_str(),
                after.as_str().expect("cursor"),
                &SLOW_EVENTS.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let mut lines = tokio::io::BufReader::new(client.stdout.take().expect("stdout")).lines();
        let records: Vec<String> = (0..SLOW_EVENTS).map(|i| format!("slow-{i}")).collect();
        data(
            &app.record_conversion(&session, ConversionKind::BookingCreated, &records[0])
                .await,
            "recordConversion",
        );
        let paused = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("the client reports the first event")
            .expect("stdout");
        assert_eq!(paused.as_deref(), Some("paused"));
        for record in &records[1..] {
            data(
                &app.record_conversion(&session, ConversionKind::BookingCreated, record)
                    .await,
                "recordConversion",
            );
        }
        // Several send timeouts pass while the client does not read.
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let mut stdin = client.stdin.take().expect("stdin");
        stdin.write_all(b"resume\n").await.expect("resume");
        let output = client.wait_with_output().await.expect("client finishes");
        let report = lines.next_line().await.expect("stdout").unwrap_or_default();
        assert!(
            output.status.success(),
            "client failed: {report}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_str(&report).expect("JSON");
        assert_eq!(
            report["received"],
            serde_json::json!(records),
            "every event, once, in order"
        );
        assert_eq!(report["closes"][0], 1013, "closed as too slow: {report}");
        assert!(report["connections"].as_u64() >= Some(2), "{report}");
    }
);

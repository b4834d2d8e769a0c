//! The reference JavaScript clients — `graphql-ws` and Apollo's legacy
//! `subscriptions-transport-ws` — and the `graphql-http` package's
//! GraphQL-over-HTTP audit against the real server. Runs when
//! `CONVTRACK_TEST_NODE` is set (`.ci/run` installs the clients with npm
//! and sets it); then Node and the clients must be there.

use std::process::Stdio;

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

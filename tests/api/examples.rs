//! The README's integration guide runs: every script in `examples/` against
//! a started server (curl, Python's standard library, the stock graphql-ws
//! client). Runs when `CONVTRACK_TEST_NODE` is set (`.ci/run` sets it and
//! installs `examples/node_modules`).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::helpers::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Runs `program script args…` from the repository root with the app's
/// URL and keys; returns what it printed, failing on a non-zero exit.
async fn run(app: &TestApp, program: &str, script: &str, args: &[&str]) -> String {
    let output = tokio::process::Command::new(program)
        .arg(examples().join(script))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CONVTRACK_URL", &app.address)
        .env("CONVTRACK_AGENT_KEY", &app.agent)
        .env("CONVTRACK_CHECKOUT_KEY", &app.checkout)
        .env("CONVTRACK_INTEGRATOR_KEY", &app.integrator)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{printed}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    printed
}

/// The value printed after `label ` on its own line.
fn printed<'a>(output: &'a str, label: &str) -> &'a str {
    output
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{output}"))
}

test_both!(the_readme_examples_run_against_a_server, |app| {
    if std::env::var_os("CONVTRACK_TEST_NODE").is_none() {
        return;
    }
    assert!(
        examples().join("node_modules").exists(),
        "CONVTRACK_TEST_NODE is set but graphql-ws is not installed: npm ci --prefix examples"
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let cursor = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    // Where the live feed starts: before anything the examples record.
    let start = app.gql(&app.integrator, "{ feedCursor }", json!({})).await;
    std::fs::write(
        cursor("live.cursor"),
        data(&start, "feedCursor").as_str().expect("cursor"),
    )
    .expect("cursor written");

    let quick = run(&app, "sh", "quickstart.sh", &[]).await;
    assert!(quick.contains("contact stored as +351912345678"), "{quick}");
    assert!(quick.contains("\"attributed\":true"), "{quick}");

    let agent = run(&app, "python3", "agent_loop.py", &[]).await;
    let session = printed(&agent, "session");
    let link = printed(&agent, "link");
    assert!(link.contains("ai_session=ct2."), "{link}");
    let conversation = app
        .gql(
            &app.admin,
            "query($s: String) { conversation(sessionId: $s) { messageCount labels { key value }
                confirmations { state } } }",
            json!({ "s": session }),
        )
        .await;
    let conversation = data(&conversation, "conversation");
    assert_eq!(
        conversation["messageCount"], 2,
        "retries stored nothing twice"
    );
    assert_eq!(
        conversation["confirmations"],
        json!([{ "state": "CONFIRMED" }, { "state": "CANCELLED" }])
    );

    let checkout = run(&app, "python3", "checkout.py", &[link]).await;
    assert!(checkout.contains("attributed: True"), "{checkout}");
    assert!(checkout.contains("INVALID_LINK_TOKEN"), "{checkout}");

    // Tour (quickstart), booking (confirmed), day pass (checkout): three
    // events; polled again from the saved cursor, none.
    let polled = run(&app, "python3", "feed_poller.py", &[&cursor("poll.cursor")]).await;
    assert!(polled.contains("3 events"), "{polled}");
    assert!(polled.contains("[model=m1, prompt=v7]"), "{polled}");
    let again = run(&app, "python3", "feed_poller.py", &[&cursor("poll.cursor")]).await;
    assert!(again.contains("0 events"), "{again}");

    let live = run(
        &app,
        "node",
        "live_feed.mjs",
        &[&cursor("live.cursor"), "3"],
    )
    .await;
    let kinds: Vec<&str> = live.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    assert_eq!(
        kinds,
        ["TOUR_BOOKED", "BOOKING_CREATED", "DAY_PASS_PURCHASED"],
        "{live}"
    );
});

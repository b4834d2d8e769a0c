//! `convtrack serve` as an operator meets it: the first ADMIN key printed
//! once, and readiness that follows the database.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;

use crate::helpers::*;

/// Runs `convtrack serve` on `database_url` until it logs that it listens;
/// returns whether it did, and what it printed on standard output by then.
fn serve_until_listening(database_url: &str) -> (bool, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_convtrack"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start convtrack serve");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let listened = stderr
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("convtrack listening"));
    // Whatever serve prints on stdout comes before it listens; closing the
    // child ends the pipe so reading stops.
    child.kill().expect("stop the server");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let printed = stdout.lines().map_while(Result::ok).collect();
    let _ = child.wait();
    (listened, printed)
}

async fn first_start_prints_one_admin_key_once(backend: Backend) {
    let Some((_database, url)) = TestDatabase::create(backend).await else {
        return;
    };
    let url_for_thread = url.clone();
    let (listened, first) =
        tokio::task::spawn_blocking(move || serve_until_listening(&url_for_thread))
            .await
            .expect("first start");
    assert!(listened, "the first start serves");
    let key = first.last().cloned().unwrap_or_default();
    assert!(
        key.starts_with("ctk_"),
        "first start prints the key last: {first:?}"
    );
    assert!(first.iter().any(|l| l.contains("ADMIN")), "{first:?}");

    let (listened, second) = tokio::task::spawn_blocking(move || serve_until_listening(&url))
        .await
        .expect("second start");
    assert!(listened, "the second start serves");
    assert!(
        second.is_empty(),
        "the key is printed only once: {second:?}"
    );
}

#[tokio::test]
async fn first_start_prints_one_admin_key_once_sqlite() {
    first_start_prints_one_admin_key_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn first_start_prints_one_admin_key_once_postgres() {
    first_start_prints_one_admin_key_once(Backend::Postgres).await;
}

test_both!(readiness_follows_the_database, |app| {
    assert_eq!(app.get("/readyz").await.status(), 200);
    // Closing the pool makes the database unreachable for this server.
    app.services.db.clone().close().await.expect("close pool");
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "the process itself is fine"
    );
    let response = app
        .post_graphql(
            Some(&app.admin),
            "{ channelPolicies { channel } }",
            json!({}),
        )
        .await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(error_code(&body), "SERVICE_UNAVAILABLE");
    let text = body.to_string().to_lowercase();
    for leak in ["pool", "sqlx", "closed", "select"] {
        assert!(!text.contains(leak), "no internals in {body}");
    }
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_sqlite_file_refuses_to_start() {
    let app = TestApp::spawn(Backend::Sqlite)
        .await
        .expect("SQLite is always available");
    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_convtrack"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &app.database_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run convtrack serve");
    assert!(!second.status.success(), "the second server must not start");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("already serving") && stderr.contains("PostgreSQL"),
        "says why and what to do instead: {stderr}"
    );
    // The first one is untouched.
    app.start_session(Channel::Chat).await;
}

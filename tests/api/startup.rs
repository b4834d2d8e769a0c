//! `convtrack serve` as an operator meets it: the first ADMIN key printed
//! once, and readiness that follows the database.

use std::process::Stdio;

use serde_json::json;

use crate::helpers::*;
use crate::process::{Served, healthcheck};

async fn first_start_prints_one_admin_key_once(backend: Backend) {
    let Some((_database, url)) = TestDatabase::create(backend).await else {
        return;
    };
    let url_for_thread = url.clone();
    // Served::start panics unless the server listens.
    let first = tokio::task::spawn_blocking(move || Served::start(&url_for_thread, &[]).stop())
        .await
        .expect("the first start serves");
    let key = first.last().cloned().unwrap_or_default();
    assert!(
        key.starts_with("ctk_"),
        "first start prints the key last: {first:?}"
    );
    assert!(first.iter().any(|l| l.contains("ADMIN")), "{first:?}");

    let second = tokio::task::spawn_blocking(move || Served::start(&url, &[]).stop())
        .await
        .expect("the second start serves");
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

/// Secrets from files, as a container gets them: the link secrets from
/// `--link-secret-file`, the first ADMIN key written to a file rather than
/// printed, and the health check a container runs.
async fn secrets_come_from_files(backend: Backend) {
    let Some((_database, url)) = TestDatabase::create(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let sealing = "file-secret-0123456789-0123456789-0123456789";
    let secret_file = dir.path().join("link-secret");
    std::fs::write(
        &secret_file,
        format!("{sealing}\n\nolder-secret-0123456789-0123456789-0123\n"),
    )
    .expect("write the secret file");
    // An earlier install's key, readable by all: replaced, not written through.
    let key_file = dir.path().join("first-admin-key");
    std::fs::write(&key_file, "ctk_old\n").expect("an old key file");
    let served = Served::start(
        &url,
        &[
            "--link-secret-file",
            secret_file.to_str().expect("path"),
            "--first-admin-key-file",
            key_file.to_str().expect("path"),
        ],
    );
    let admin = std::fs::read_to_string(&key_file).expect("the key file");
    let admin = admin.trim();
    assert!(admin.starts_with("ctk_"), "{admin}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only its owner reads the key");
    assert!(
        served
            .printed_until("written to")
            .iter()
            .all(|line| !line.contains(admin)),
        "the key is not printed"
    );
    assert!(healthcheck(served.listen()).await, "a ready server passes");

    let started = served
        .gql(
            admin,
            "mutation { startSession(input: { channel: CHAT }) { sessionId } }",
            json!({}),
        )
        .await;
    let session = started["data"]["startSession"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"))
        .to_owned();
    let link = served
        .gql(
            admin,
            "mutation($i: CreateCtaLinkInput!) { createCtaLink(input: $i) { token } }",
            json!({ "i": { "sessionId": session, "action": "DAY_PASS", "targetUrl": "https://book.example.com/day-pass" } }),
        )
        .await;
    let token = link["data"]["createCtaLink"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{link}"))
        .to_owned();
    assert!((300..400).contains(&served.follow(&token).await));
    let listen = served.listen().to_owned();
    drop(served);
    assert!(
        !healthcheck(&listen).await,
        "nothing listens there any more"
    );

    // The file's first secret sealed the token: the same secret on the
    // command line opens it, another one does not.
    let same = Served::start(&url, &["--link-secret", sealing]);
    assert!((300..400).contains(&same.follow(&token).await));
    drop(same);
    let other = Served::start(
        &url,
        &["--link-secret", "other-secret-0123456789-0123456789-012345"],
    );
    assert!(!(300..400).contains(&other.follow(&token).await));
    drop(other);

    // A file that cannot be read, or holds nothing, stops the start.
    for (file, says) in [
        (dir.path().join("missing"), "cannot read"),
        (dir.path().join("empty"), "holds no secret"),
    ] {
        std::fs::write(dir.path().join("empty"), "\n \n").expect("write");
        let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_convtrack"))
            .args(["serve", "--listen", "127.0.0.1:0", "--link-secret-file"])
            .arg(&file)
            .env("DATABASE_URL", &url)
            .output()
            .await
            .expect("run convtrack serve");
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(says), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_files_sqlite() {
    secrets_come_from_files(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_files_postgres() {
    secrets_come_from_files(Backend::Postgres).await;
}

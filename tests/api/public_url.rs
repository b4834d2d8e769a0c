//! Absolute tracked links: with `--public-url` the agent gets a URL it can
//! send as it is; without, none is guessed — least of all from the `Host`
//! a request claims.

use serde_json::{Value, json};

use crate::helpers::*;

const CREATE: &str = "mutation($input: CreateCtaLinkInput!) {
    createCtaLink(input: $input) { url token trackedPath trackedUrl } }";

async fn create_link_with_host(app: &TestApp, host: &str) -> Value {
    let session = app.start_session(Channel::Chat).await;
    let body: Value = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&app.agent)
        .header("host", host)
        .json(&json!({ "query": CREATE, "variables": { "input": {
            "sessionId": session.session_id, "action": "DAY_PASS",
            "targetUrl": "https://example.com/day-pass" } } }))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    data(&body, "createCtaLink").clone()
}

test_both!(
    a_public_url_makes_tracked_links_absolute,
    with | c | c.public_url = Some("https://track.example.com".to_owned()),
    |app| {
        let link = create_link_with_host(&app, "evil.example").await;
        let path = link["trackedPath"].as_str().expect("path");
        assert_eq!(
            link["trackedUrl"],
            format!("https://track.example.com{path}"),
            "the configured origin, not the request's Host"
        );
        // The path it ends in is this server's redirect.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let followed = client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("answer");
        assert_eq!(followed.status(), 302);
    }
);

test_both!(without_a_public_url_no_absolute_link_is_guessed, |app| {
    let link = create_link_with_host(&app, "evil.example").await;
    assert!(link["trackedUrl"].is_null(), "{link}");
    assert!(
        link["trackedPath"]
            .as_str()
            .expect("path")
            .starts_with("/l/")
    );
});

#[test]
fn a_public_url_that_is_not_an_origin_stops_the_start() {
    for bad in [
        "ftp://track.example.com",
        "https://track.example.com/l",
        "track.example.com",
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_convtrack"))
            .args(["serve", "--public-url", bad, "--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", "sqlite::memory:")
            .env("RUST_LOG", "warn")
            .output()
            .expect("run convtrack");
        assert!(!output.status.success(), "{bad}");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains("--public-url"), "{bad}: {said}");
    }
}

//! The HTTP rules around /graphql: JSON only, bounded bodies, timeouts.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

const START: &str =
    r#"{"query":"mutation { startSession(input: { channel: CHAT }) { sessionId } }"}"#;

async fn conversations(app: &TestApp) -> usize {
    let list = app
        .gql(&app.admin, "{ conversations { nodes { id } } }", json!({}))
        .await;
    data(&list, "conversations")["nodes"]
        .as_array()
        .map_or(0, Vec::len)
}

test_both!(only_json_bodies_are_read, |app| {
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let mut request = app
            .client
            .post(format!("{}/graphql", app.address))
            .bearer_auth(&app.admin)
            .body(START);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("answer");
        assert_eq!(response.status(), 415, "{content_type:?}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
    }
    assert_eq!(conversations(&app).await, 0, "nothing ran");
    let json = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json; charset=utf-8")
        .body(START)
        .send()
        .await
        .expect("answer");
    assert_eq!(json.status(), 200);
    assert_eq!(conversations(&app).await, 1);
});

test_both!(bodies_over_64_kib_get_413, |app| {
    let padding = " ".repeat(70 * 1024);
    let big = format!(r#"{{"query":"{{ channelPolicies {{ channel }} }}{padding}"}}"#);
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(error_code(&body), "PAYLOAD_TOO_LARGE");

    // The same without a Content-Length: chunked, cut off while read.
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.admin
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    for chunk in big.as_bytes().chunks(8 * 1024) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
});

async fn times_out(backend: Backend) {
    let Some(app) =
        TestApp::spawn_with(backend, |c| c.request_timeout = Duration::from_millis(100)).await
    else {
        return;
    };
    // A client that sends its body late keeps the request open past the
    // timeout, whatever the machine's speed.
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let body = r#"{"query":"{ badgeKinds { kind } }"}"#;
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.admin,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the server answered without waiting for the body"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_timeout_gets_504_sqlite() {
    times_out(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_timeout_gets_504_postgres() {
    times_out(Backend::Postgres).await;
}

test_both!(cors_answers_only_allowlisted_origins, |app| {
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.address))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://admin.example.com")
        .await
        .expect("answer");
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://admin.example.com")
    );
    assert!(
        allowed
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let other = preflight("https://evil.example.com").await.expect("answer");
    assert!(other.headers().get("access-control-allow-origin").is_none());
});

test_both!(websockets_from_other_origins_are_refused, |app| {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/graphql", app.address.replacen("http://", "ws://", 1));
    let host = app.address.trim_start_matches("http://").to_owned();
    for (origin, accepted) in [
        (Some("https://evil.example.com".to_owned()), false),
        (Some("https://admin.example.com".to_owned()), true),
        (Some(format!("http://{host}")), true),
        (None, true),
    ] {
        let mut request = url.as_str().into_client_request().expect("request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        if let Some(origin) = &origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().expect("header"));
        }
        let result = tokio_tungstenite::connect_async(request).await;
        assert_eq!(result.is_ok(), accepted, "{origin:?}");
    }
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_statements_are_cut_off_before_the_request_timeout() {
    use sea_orm::{ConnectionTrait, Statement};
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let row = app
        .services
        .db
        .query_one_raw(Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SHOW statement_timeout",
        ))
        .await
        .expect("show")
        .expect("a row");
    let timeout: String = row.try_get("", "statement_timeout").expect("text");
    assert_eq!(
        timeout, "29s",
        "30 s request timeout, statements stop a second before"
    );
}

test_both!(answers_come_in_the_media_type_the_client_accepts, |app| {
    for (accept, expected) in [
        (None, "application/json"),
        (Some("application/json"), "application/json"),
        (Some("*/*"), "application/json"),
        (
            Some("application/graphql-response+json"),
            "application/graphql-response+json",
        ),
        (
            Some("application/graphql-response+json, application/json;q=0.9"),
            "application/graphql-response+json",
        ),
    ] {
        let mut request = app
            .client
            .post(format!("{}/graphql", app.address))
            .bearer_auth(&app.admin)
            .json(&json!({ "query": "{ badgeKinds { kind } }" }));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let answer = request.send().await.expect("answer");
        assert_eq!(answer.status(), 200);
        assert_eq!(
            answer.headers()["content-type"],
            expected,
            "Accept: {accept:?}"
        );
        let body: serde_json::Value = answer.json().await.expect("json");
        assert!(body["data"]["badgeKinds"].is_array(), "{body}");
    }
});

test_both!(
    requests_that_never_ran_are_400_without_data_in_the_graphql_media_type,
    |app| {
        let ask = |accept: &'static str, body: serde_json::Value| {
            let request = app
                .client
                .post(format!("{}/graphql", app.address))
                .bearer_auth(&app.admin)
                .header("accept", accept)
                .json(&body);
            async move {
                let answer = request.send().await.expect("answer");
                let status = answer.status().as_u16();
                let body: serde_json::Value = answer.json().await.expect("json");
                (status, body)
            }
        };
        let never_ran = [
            ("unparsable", json!({ "query": "{" })),
            ("invalid", json!({ "query": "{ noSuchField }" })),
            (
                "variables that do not fit",
                json!({
                    "query": "query($first: Int) { conversations(first: $first) { nodes { id } } }",
                    "variables": { "first": "many" }
                }),
            ),
            (
                "over a limit",
                json!({ "query": format!("{{ {} }}", "a: __typename ".repeat(40)) }),
            ),
        ];
        for (what, request) in never_ran {
            let (status, body) = ask("application/graphql-response+json", request.clone()).await;
            assert_eq!(status, 400, "{what}: {body}");
            assert!(body.get("data").is_none(), "{what}: {body}");
            assert!(
                !error_code(&body).is_empty(),
                "{what}: the code stays: {body}"
            );
            // Plain JSON clients keep a 200 with `data: null`.
            let (status, plain) = ask("application/json", request).await;
            assert_eq!(status, 200, "{what}: {plain}");
            assert_eq!(plain["data"], serde_json::Value::Null, "{what}");
            assert_eq!(error_code(&plain), error_code(&body), "{what}");
        }
        // A request that ran is a 200 with `data`, even when a field failed.
        let (status, body) = ask(
            "application/graphql-response+json",
            json!({ "query": "{ conversations(first: -1) { nodes { id } } badgeKinds { kind } }" }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body["data"]["badgeKinds"].is_array(), "{body}");
        assert_eq!(body["errors"][0]["path"][0], "conversations", "{body}");
    }
);

//! What an operator's observability stack receives from `convtrack serve`:
//! OpenTelemetry spans over OTLP/HTTP (caught here by an in-process
//! receiver that decodes them with the OpenTelemetry protobuf types) and
//! JSON log lines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Attribute;
use prost::Message;
use serde_json::json;

use crate::helpers::*;
use crate::process::Served;

/// A span as received: ids in hex, attributes as text.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP trace receiver on 127.0.0.1:0 keeping every span sent to it.
struct Receiver {
    endpoint: String,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Self {
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let kept = spans.clone();
        let router = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| {
                let kept = kept.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut kept = kept.lock().expect("lock");
                    for span in request
                        .resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .flat_map(|s| &s.spans)
                    {
                        kept.push(Received {
                            name: span.name.clone(),
                            trace_id: hex(&span.trace_id),
                            span_id: hex(&span.span_id),
                            parent_span_id: hex(&span.parent_span_id),
                            attributes: span
                                .attributes
                                .iter()
                                .map(|kv| {
                                    let value =
                                        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                                            Some(Attribute::StringValue(s)) => s.clone(),
                                            Some(Attribute::IntValue(i)) => i.to_string(),
                                            Some(Attribute::BoolValue(b)) => b.to_string(),
                                            other => format!("{other:?}"),
                                        };
                                    (kv.key.clone(), value)
                                })
                                .collect(),
                        });
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { endpoint, spans }
    }

    /// The spans received so far once one satisfies `wanted` (10 s at most).
    async fn until(&self, wanted: impl Fn(&Received) -> bool) -> Vec<Received> {
        for _ in 0..200 {
            let spans = self.spans.lock().expect("lock").clone();
            if spans.iter().any(&wanted) {
                return spans;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "no such span arrived; got {:#?}",
            self.spans.lock().expect("lock")
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

async fn operations_and_statements_are_traced(backend: Backend) {
    let Some((_database, url)) = TestDatabase::create(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let key_file = dir.path().join("key");
    let served = Served::start_with_env(
        &url,
        &["--first-admin-key-file", key_file.to_str().expect("path")],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    let admin = std::fs::read_to_string(&key_file).expect("key");
    let client = reqwest::Client::new();
    let ask = |query: &'static str| {
        client
            .post(format!("{}/graphql", served.address))
            .bearer_auth(admin.trim())
            .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
            .json(&json!({ "query": query }))
            .send()
    };
    ask("query RecentChats { conversations(first: 5) { nodes { id badges { kind } } } }")
        .await
        .expect("answer");
    let refusal: serde_json::Value = ask(
        "mutation Refused { closeSession(input: { sessionId: \"cs_nope\" }) { conversation { active } } }",
    )
    .await
    .expect("answer")
    .json()
    .await
    .expect("json");
    let refused_code = error_code(&refusal);
    assert!(!refused_code.is_empty(), "{refusal}");

    let spans = receiver.until(|s| s.name == "mutation Refused").await;
    let spans = if spans.iter().any(|s| s.name == "query RecentChats") {
        spans
    } else {
        receiver.until(|s| s.name == "query RecentChats").await
    };
    let by_id: HashMap<&str, &Received> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let operation = spans
        .iter()
        .find(|s| s.name == "query RecentChats")
        .expect("the operation's span");
    assert_eq!(operation.trace_id, TRACE_ID, "the caller's trace continues");
    assert_eq!(
        operation.attributes["graphql.operation.name"],
        "RecentChats"
    );
    assert_eq!(operation.attributes["graphql.operation.type"], "query");
    assert_eq!(
        operation
            .attributes
            .get("convtrack.tenant")
            .map(String::len),
        Some(36),
        "{spans:#?}"
    );
    // Up the parents: the request's span, whose parent is the caller's.
    let mut ancestor = operation;
    while let Some(parent) = by_id.get(ancestor.parent_span_id.as_str()) {
        ancestor = parent;
    }
    assert_eq!(ancestor.parent_span_id, CALLER_SPAN, "{spans:#?}");

    let descends_from_operation = |span: &Received| {
        let mut at = span;
        while let Some(parent) = by_id.get(at.parent_span_id.as_str()) {
            if parent.span_id == operation.span_id {
                return true;
            }
            at = parent;
        }
        false
    };
    let system = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgresql",
    };
    let statement = spans
        .iter()
        .find(|s| {
            s.attributes.get("db.system").map(String::as_str) == Some(system)
                && descends_from_operation(s)
        })
        .unwrap_or_else(|| panic!("no SQL statement span under the operation: {spans:#?}"));
    assert_eq!(statement.trace_id, TRACE_ID);
    assert!(
        statement.attributes["db.statement"].contains("SELECT"),
        "{statement:?}"
    );

    let refused = spans
        .iter()
        .find(|s| s.name == "mutation Refused")
        .expect("the refused operation's span");
    assert_eq!(
        refused.attributes["convtrack.code"], refused_code,
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_and_statements_are_traced_sqlite() {
    operations_and_statements_are_traced(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_and_statements_are_traced_postgres() {
    operations_and_statements_are_traced(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_can_be_json_lines() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
    let served = Served::start(&url, &["--log-format", "json"]);
    let line: serde_json::Value =
        serde_json::from_str(&served.listening).expect("the log line is JSON");
    assert_eq!(line["level"], "INFO", "{line}");
    assert!(line["timestamp"].is_string(), "{line}");
    assert!(
        line["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("convtrack listening")),
        "{line}"
    );
}

#[tokio::test]
async fn an_https_trace_endpoint_is_refused_at_start() {
    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_convtrack"))
        .arg("schema")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector.example:4318",
        )
        .output()
        .await
        .expect("run convtrack");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("http://"), "says what works: {stderr}");
}

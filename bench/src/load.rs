//! `bench load`: fixed concurrency for a fixed time against the release
//! server, per scenario: (a) the 50 newest conversations with badges, (b) a
//! detail page, (c) recording conversions with distinct records. Reports
//! req/s, p50/p99, SQL statements per request (from `/metrics`) and the
//! server's peak memory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::queries::{Server, create_key, free_port, percentile_ms, wait_ready};

pub struct LoadArgs {
    pub database_url: String,
    pub concurrency: Vec<usize>,
    pub seconds: u64,
    pub scenarios: Vec<String>,
    pub server_bin: PathBuf,
}

const LIST: &str = "{ conversations(first: 50) { nodes { id openingMessage startedAt channel user { name } \
     badges { kind label colour } } pageInfo { hasNextPage endCursor } } }";
const DETAIL: &str = "query($id: ID) { conversation(id: $id) { id sessionId channel startedAt openingMessage \
     badges { kind label colour record { type id url } } \
     messages(first: 20) { nodes { role label content createdAt } } } }";
const RECORD: &str = "mutation($s: String, $r: String!) { recordConversion(input: \
     { sessionId: $s, kind: BOOKING_CREATED, recordId: $r }) { created } }";

struct Target {
    http: reqwest::Client,
    graphql: String,
    metrics: String,
    key: String,
}

impl Target {
    async fn post(&self, query: &str, variables: &Value) -> Result<Value, String> {
        let response = self
            .http
            .post(&self.graphql)
            .bearer_auth(&self.key)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() || body.get("errors").is_some() {
            return Err(format!("{status}: {body}"));
        }
        Ok(body)
    }

    async fn statements(&self) -> Option<f64> {
        let text = self
            .http
            .get(&self.metrics)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("convtrack_sql_statements_total "))
            .and_then(|v| v.trim().parse().ok())
    }
}

struct Row {
    scenario: String,
    concurrency: usize,
    requests: usize,
    errors: usize,
    per_second: f64,
    p50: f64,
    p99: f64,
    statements: Option<f64>,
}

pub async fn run(args: LoadArgs) -> Result<(), String> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| e.to_string())?;
    let mut server = Server::start(&args.server_bin, &args.database_url, &addr)?;
    let base = format!("http://{addr}");
    wait_ready(&http, &mut server, &base).await?;
    let key = create_key(&args.server_bin, &args.database_url, "bench-a")?;
    // Recordings go to a tenant of their own, so repeated runs do not pile
    // badges onto bench-a's newest conversations (which the list shows).
    let record_key = create_key(&args.server_bin, &args.database_url, "bench-record")?;
    let target = Arc::new(Target {
        http: http.clone(),
        graphql: format!("{base}/graphql"),
        metrics: format!("{base}/metrics"),
        key,
    });
    let recorder = Arc::new(Target {
        http,
        graphql: format!("{base}/graphql"),
        metrics: format!("{base}/metrics"),
        key: record_key,
    });

    let newest = target
        .post("{ conversations(first: 200) { nodes { id } } }", &json!({}))
        .await?;
    let ids: Arc<Vec<String>> = Arc::new(
        newest
            .pointer("/data/conversations/nodes")
            .and_then(Value::as_array)
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|n| n["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    );
    let max_workers = args.concurrency.iter().copied().max().unwrap_or(1);
    let mut sessions = Vec::with_capacity(max_workers);
    for _ in 0..max_workers {
        let started = recorder
            .post(
                "mutation { startSession(input: { channel: CHAT }) { sessionId } }",
                &json!({}),
            )
            .await?;
        sessions.push(
            started["data"]["startSession"]["sessionId"]
                .as_str()
                .ok_or("no sessionId")?
                .to_owned(),
        );
    }
    let sessions = Arc::new(sessions);
    let run_id = std::process::id();

    let mut rows = Vec::new();
    for scenario in &args.scenarios {
        for &concurrency in &args.concurrency {
            let before = target.statements().await;
            let deadline = Instant::now() + Duration::from_secs(args.seconds);
            let started = Instant::now();
            let mut workers = Vec::new();
            for worker in 0..concurrency {
                let target = if scenario == "record" {
                    recorder.clone()
                } else {
                    target.clone()
                };
                let ids = ids.clone();
                let sessions = sessions.clone();
                let scenario = scenario.clone();
                workers.push(tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut errors = 0usize;
                    let mut n = 0usize;
                    while Instant::now() < deadline {
                        let (query, variables) = match scenario.as_str() {
                            "list" => (LIST, json!({})),
                            "detail" => (DETAIL, json!({ "id": ids.get(n % ids.len().max(1)) })),
                            _ => (
                                RECORD,
                                json!({ "s": sessions[worker], "r": format!("load-{run_id}-{concurrency}-{worker}-{n}") }),
                            ),
                        };
                        let at = Instant::now();
                        if target.post(query, &variables).await.is_err() {
                            errors += 1;
                        }
                        latencies.push(at.elapsed());
                        n += 1;
                    }
                    (latencies, errors)
                }));
            }
            let mut latencies = Vec::new();
            let mut errors = 0;
            for worker in workers {
                let (l, e) = worker.await.map_err(|e| e.to_string())?;
                latencies.extend(l);
                errors += e;
            }
            let elapsed = started.elapsed().as_secs_f64();
            let after = target.statements().await;
            latencies.sort();
            let requests = latencies.len();
            rows.push(Row {
                scenario: scenario.clone(),
                concurrency,
                requests,
                errors,
                per_second: requests as f64 / elapsed,
                p50: percentile_ms(&latencies, 50.0),
                p99: percentile_ms(&latencies, 99.0),
                // The metrics scrape itself runs no SQL.
                statements: before
                    .zip(after)
                    .map(|(b, a)| (a - b) / requests.max(1) as f64),
            });
        }
    }

    println!(
        "{:<8} {:>5} {:>9} {:>7} {:>10} {:>8} {:>8} {:>10}",
        "scenario", "conc", "requests", "errors", "req/s", "p50 ms", "p99 ms", "SQL/req"
    );
    for r in &rows {
        println!(
            "{:<8} {:>5} {:>9} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>10}",
            r.scenario,
            r.concurrency,
            r.requests,
            r.errors,
            r.per_second,
            r.p50,
            r.p99,
            r.statements.map_or("-".to_owned(), |s| format!("{s:.2}"))
        );
    }
    if let Some((peak, _)) = server.memory() {
        println!("server peak RSS (VmHWM) {peak}");
    }
    Ok(())
}

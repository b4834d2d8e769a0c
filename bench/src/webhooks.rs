//! `bench webhooks`: how long a committed conversion takes to reach webhook
//! endpoints (the first delivery attempt), and how fast a burst of events
//! drains to them, with a receiver on 127.0.0.1 that answers at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::load::post;
use crate::queries::percentile_ms;
use crate::server::{Server, create_key, free_port, wait_ready};

#[derive(clap::Args)]
pub struct WebhooksArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Endpoints, each receiving every event.
    #[arg(long, default_value_t = 10)]
    pub endpoints: usize,
    /// Conversions recorded one after the other for the latency figure.
    #[arg(long, default_value_t = 200)]
    pub events: usize,
    /// Pause between those recordings, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub interval_ms: u64,
    /// Conversions recorded at once (8 writers) for the drain figure, to
    /// one endpoint.
    #[arg(long, default_value_t = 1000)]
    pub burst: usize,
    /// The server binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/convtrack")]
    pub server_bin: PathBuf,
}

/// (endpoint, record id, when it arrived).
type Receipt = (usize, String, Instant);

async fn receive(
    State(tx): State<mpsc::UnboundedSender<Receipt>>,
    Path(endpoint): Path<usize>,
    body: String,
) -> StatusCode {
    let at = Instant::now();
    let record = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|b| {
            b["data"]["conversion"]["record"]["id"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let _ = tx.send((endpoint, record, at));
    StatusCode::NO_CONTENT
}

pub async fn run(args: WebhooksArgs) -> Result<(), String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Receipt>();
    let receiver = axum::Router::new()
        .route("/hook/{n}", axum::routing::post(receive))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let hooks = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let http = reqwest::Client::new();
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mut server = Server::start_under(
        &[],
        &args.server_bin,
        &args.database_url,
        &addr,
        &[("CONVTRACK_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")],
    )?;
    let base = format!("http://{addr}");
    wait_ready(&http, &mut server, &base).await?;
    let key = create_key(&args.server_bin, &args.database_url, "bench-hooks")?;
    let graphql = format!("{base}/graphql");
    let gql = |query: &'static str, variables: Value| post(&http, &graphql, &key, query, variables);
    let mut endpoint_ids = Vec::new();
    for n in 0..args.endpoints.max(1) {
        let made = gql(
            "mutation($url: String!) { createWebhookEndpoint(input: { url: $url }) { endpoint { id } } }",
            json!({ "url": format!("http://{hooks}/hook/{n}") }),
        )
        .await?;
        endpoint_ids.push(made["data"]["createWebhookEndpoint"]["endpoint"]["id"].clone());
    }
    // The dispatcher looks for new endpoints every second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Ten outcomes per conversation: every event carries its
    // conversation's badges, and a conversation with thousands of them
    // would measure the payload, not the delivery.
    let mut sessions = Vec::new();
    for _ in 0..(args.events.max(args.burst) / 10 + 1) {
        let started = gql(
            "mutation { startSession(input: { channel: CHAT }) { sessionId } }",
            json!({}),
        )
        .await?;
        sessions.push(
            started["data"]["startSession"]["sessionId"]
                .as_str()
                .ok_or("no session")?
                .to_owned(),
        );
    }
    let record = "mutation($s: String, $r: String!) { recordConversion(input: { sessionId: $s, kind: BOOKING_CREATED, recordId: $r }) { created } }";
    let run = std::process::id();

    // Latency: one recording at a time, every endpoint receiving each.
    let mut sent: HashMap<String, Instant> = HashMap::new();
    for n in 0..args.events {
        let id = format!("hook-{run}-{n}");
        sent.insert(id.clone(), Instant::now());
        gql(record, json!({ "s": sessions[n / 10], "r": id })).await?;
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }
    let expected = args.events * args.endpoints.max(1);
    let mut latencies = Vec::with_capacity(expected);
    let mut seen = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while latencies.len() < expected {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((endpoint, id, at))) => {
                if let Some(t0) = sent.get(&id)
                    && seen.insert((endpoint, id.clone()))
                {
                    latencies.push(at.duration_since(*t0));
                }
            }
            _ => break,
        }
    }
    latencies.sort();
    println!(
        "webhook latency: {} endpoints, {} events, {} of {} first attempts received",
        args.endpoints.max(1),
        args.events,
        latencies.len(),
        expected
    );
    if latencies.is_empty() {
        return Err(format!(
            "no delivery arrived (server log: {})",
            server.keep_log().display()
        ));
    }
    println!(
        "  from sending recordConversion to the POST at the endpoint: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 90.0),
        percentile_ms(&latencies, 99.0),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );

    // Drain: a burst to the first endpoint alone (the others are disabled).
    for id in &endpoint_ids[1..] {
        gql(
            "mutation($id: ID!) { updateWebhookEndpoint(input: { id: $id, enabled: false }) { id } }",
            json!({ "id": id }),
        )
        .await?;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while rx.try_recv().is_ok() {}
    let started = Instant::now();
    let writers = 8;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (http, base, key, sessions) =
            (http.clone(), base.clone(), key.clone(), sessions.clone());
        let count = args.burst / writers + usize::from(w < args.burst % writers);
        tasks.push(tokio::spawn(async move {
            let graphql = format!("{base}/graphql");
            for n in 0..count {
                let session = &sessions[(w * 997 + n) % sessions.len()];
                let id = format!("burst-{run}-{w}-{n}");
                post(
                    &http,
                    &graphql,
                    &key,
                    record,
                    json!({ "s": session, "r": id }),
                )
                .await?;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let recorded = started.elapsed();
    let mut drained = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut burst_seen = std::collections::HashSet::new();
    while drained < args.burst {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((0, id, _))) if id.starts_with("burst-") => {
                if burst_seen.insert(id) {
                    drained += 1;
                }
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    let elapsed = started.elapsed();
    println!(
        "webhook drain: {} events recorded in {:.2} s (8 writers); {} of them delivered to one endpoint {:.2} s after the first was sent ({:.0}/s)",
        args.burst,
        recorded.as_secs_f64(),
        drained,
        elapsed.as_secs_f64(),
        drained as f64 / elapsed.as_secs_f64()
    );
    if let Some((peak, _)) = server.memory() {
        println!("  server peak RSS {peak}");
    }
    if drained < args.burst || latencies.len() < expected {
        return Err("some deliveries never arrived".into());
    }
    Ok(())
}

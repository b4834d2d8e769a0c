//! `bench feed-latency`: how long a committed conversion takes to reach
//! subscribers — on the instance that recorded it, or on another instance
//! sharing the PostgreSQL database — with many subscribers connected.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::queries::percentile_ms;
use crate::server::{Server, create_key, free_port, wait_ready};

/// Sockets the server lets one API key hold open at once.
const SOCKETS_PER_KEY: usize = 32;

#[derive(clap::Args)]
pub struct FeedArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Subscribers connected at once.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Conversions recorded, one after the other.
    #[arg(long, default_value_t = 200)]
    pub events: usize,
    /// 1: subscribers on the recording server; 2: on a second server
    /// sharing the PostgreSQL database.
    #[arg(long, default_value_t = 1)]
    pub instances: u8,
    /// Pause between recordings, in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub interval_ms: u64,
    /// The server binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/convtrack")]
    pub server_bin: PathBuf,
}

const SUBSCRIPTION: &str = "subscription { conversionRecorded { conversion { record { id } } } }";

/// A subscribed graphql-transport-ws connection.
pub type Subscription =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `url` with `key`, initialises and subscribes to `query` with
/// `variables`; the server's answers are left for the caller to read.
pub async fn subscribe(
    url: &str,
    key: &str,
    query: &str,
    variables: Value,
) -> Result<Subscription, String> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().map_err(|_| "header")?,
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| format!("connecting a subscriber: {e}"))?;
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {key}") } });
    ws.send(Message::Text(init.to_string().into()))
        .await
        .map_err(|e| e.to_string())?;
    let subscribe = json!({ "id": "1", "type": "subscribe",
        "payload": { "query": query, "variables": variables } });
    ws.send(Message::Text(subscribe.to_string().into()))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// One subscriber: connects, subscribes, and reports each event's record id
/// with the moment it arrived.
async fn subscriber(
    url: String,
    key: String,
    ready: mpsc::Sender<()>,
    received: mpsc::UnboundedSender<(String, Instant)>,
) -> Result<(), String> {
    let mut ws = subscribe(&url, &key, SUBSCRIPTION, json!({})).await?;
    let _ = ready.send(()).await;
    while let Some(message) = ws.next().await {
        let Ok(Message::Text(text)) = message else {
            continue;
        };
        let at = Instant::now();
        let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if value["type"] == "next" {
            if let Some(id) = value["payload"]["data"]["conversionRecorded"]["conversion"]["record"]
                ["id"]
                .as_str()
            {
                let _ = received.send((id.to_owned(), at));
            } else {
                return Err(format!("an event with errors: {text}"));
            }
        }
    }
    Ok(())
}

pub async fn run(args: FeedArgs) -> Result<(), String> {
    if !(1..=2).contains(&args.instances) {
        return Err("--instances is 1 or 2".into());
    }
    if args.instances == 2 && !args.database_url.starts_with("postgres") {
        return Err("two instances need PostgreSQL (SQLite serves one instance)".into());
    }
    let http = reqwest::Client::new();
    let mut servers = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..args.instances {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let mut server = Server::start(&args.server_bin, &args.database_url, &addr)?;
        let base = format!("http://{addr}");
        wait_ready(&http, &mut server, &base).await?;
        servers.push(server);
        bases.push(base);
    }
    // A tenant of its own, so the recordings do not pile onto bench-a's list.
    let key = create_key(&args.server_bin, &args.database_url, "bench-feed")?;
    let recorder = bases[0].clone();
    let listener = bases[bases.len() - 1].replacen("http://", "ws://", 1) + "/graphql";

    let gql = |query: &str, variables: Value| {
        http.post(format!("{recorder}/graphql"))
            .bearer_auth(&key)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
    };
    // Ten outcomes per conversation: every event carries its
    // conversation's badges, and one conversation with all of them would
    // measure an ever larger payload, not the feed.
    let mut sessions = Vec::new();
    for _ in 0..args.events / 10 + 1 {
        let started: Value = gql(
            "mutation { startSession(input: { channel: CHAT }) { sessionId } }",
            json!({}),
        )
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
        sessions.push(
            started["data"]["startSession"]["sessionId"]
                .as_str()
                .ok_or_else(|| format!("startSession failed: {started}"))?
                .to_owned(),
        );
    }

    // The server lets one key hold a bounded number of sockets (README
    // "Security"): the subscribers share as many keys as that takes.
    let mut keys = vec![key.clone()];
    while keys.len() * SOCKETS_PER_KEY < args.subscribers {
        keys.push(create_key(
            &args.server_bin,
            &args.database_url,
            "bench-feed",
        )?);
    }
    let (ready_tx, mut ready_rx) = mpsc::channel(args.subscribers);
    let (received_tx, mut received_rx) = mpsc::unbounded_channel();
    for n in 0..args.subscribers {
        tokio::spawn(subscriber(
            listener.clone(),
            keys[n / SOCKETS_PER_KEY].clone(),
            ready_tx.clone(),
            received_tx.clone(),
        ));
    }
    drop(received_tx);
    for _ in 0..args.subscribers {
        ready_rx
            .recv()
            .await
            .ok_or("a subscriber failed to connect")?;
    }
    // The subscriptions start right after their message arrives; give the
    // servers a moment so none starts after the first recording.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let run = std::process::id();
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mutation = "mutation($s: String, $r: String!) { recordConversion(input: { sessionId: $s, kind: BOOKING_CREATED, recordId: $r }) { created } }";
    for n in 0..args.events {
        let record = format!("latency-{run}-{n}");
        sent.insert(record.clone(), Instant::now());
        let answer: Value = gql(mutation, json!({ "s": sessions[n / 10], "r": record }))
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if answer.get("errors").is_some() {
            let log = servers[0].keep_log().display().to_string();
            return Err(format!("recording failed: {answer} (server log: {log})"));
        }
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }

    let expected = args.subscribers * args.events;
    let mut latencies = Vec::with_capacity(expected);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while latencies.len() < expected {
        match tokio::time::timeout_at(deadline, received_rx.recv()).await {
            Ok(Some((record, at))) => {
                if let Some(t0) = sent.get(&record) {
                    latencies.push(at.duration_since(*t0));
                }
            }
            _ => break,
        }
    }
    latencies.sort();
    println!(
        "feed latency: {} instance(s), {} subscribers, {} events, {} of {} deliveries",
        args.instances,
        args.subscribers,
        args.events,
        latencies.len(),
        expected
    );
    if latencies.is_empty() {
        return Err("no event reached a subscriber".into());
    }
    println!(
        "  from sending recordConversion to the event at the subscriber: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 90.0),
        percentile_ms(&latencies, 99.0),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
    for (n, server) in servers.iter().enumerate() {
        if let Some((peak, _)) = server.memory() {
            println!("  server {} peak RSS {peak}", n + 1);
        }
    }
    if latencies.len() < expected {
        return Err(format!("{} deliveries missing", expected - latencies.len()));
    }
    Ok(())
}

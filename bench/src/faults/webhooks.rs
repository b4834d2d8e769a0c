//! `bench faults webhooks`: webhook endpoints fed by instances sharing one
//! PostgreSQL database (or the single SQLite instance), under write load,
//! with a receiver that fails a share of requests with 500 and lets some
//! hang past the server's 10 s deadline; on PostgreSQL one instance gets
//! `kill -9` mid-run. Every event of the feed must reach every endpoint
//! with a 2xx, in feed order per endpoint, and a request seen twice only
//! under the same `webhook-id`. The servers run with
//! `--webhook-retry-scale 0.001`, so the retry schedule takes seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::cli::{Backend, Place, seconds};
use super::findings::Findings;
use super::instance::Instance;
use super::ledger::{Ledger, Tenant, WriterSetup, Writers, read_feed, verify};
use super::scratch::Scratch;
use crate::load::post;
use crate::rng::Rng;

#[derive(clap::Args)]
pub struct WebhooksArgs {
    #[command(flatten)]
    pub place: Place,
    /// Instances on PostgreSQL (one is killed); SQLite runs one.
    #[arg(long, default_value_t = 3)]
    pub instances: usize,
    #[arg(long, default_value_t = 2)]
    pub endpoints: usize,
    /// Every hang costs its endpoint the server's 10 s deadline (the next
    /// event waits), so the load is kept small.
    #[arg(long, default_value_t = 1)]
    pub writers: usize,
    /// Percent of requests the receiver answers with 500.
    #[arg(long, default_value_t = 30)]
    pub fail_percent: u64,
    /// Percent of requests the receiver answers only after 11 s.
    #[arg(long, default_value_t = 1)]
    pub hang_percent: u64,
    /// Seconds of load before the kill, and after it.
    #[arg(long, default_value = "1.5", value_parser = seconds)]
    pub interval: Duration,
}

/// One request the receiver got: the endpoint, its `webhook-id`, the
/// event's cursor, and whether it was answered with a 2xx in time.
#[derive(Debug, Clone)]
struct Request {
    endpoint: usize,
    id: String,
    cursor: String,
    acknowledged: bool,
}

#[derive(Clone)]
struct Receiver {
    rng: Arc<Mutex<Rng>>,
    got: Arc<Mutex<Vec<Request>>>,
    fail_percent: u64,
    hang_percent: u64,
}

/// How long a hanging answer takes: past the server's 10 s deadline.
const HANG: Duration = Duration::from_secs(11);

async fn answer(
    State(receiver): State<Receiver>,
    Path(endpoint): Path<usize>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let roll = receiver.rng.lock().map(|mut r| r.below(100)).unwrap_or(0);
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let cursor = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|b| b["data"]["cursor"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let hang = roll < receiver.hang_percent;
    let fail = !hang && roll < receiver.hang_percent + receiver.fail_percent;
    if hang {
        tokio::time::sleep(HANG).await;
    }
    if let Ok(mut got) = receiver.got.lock() {
        got.push(Request {
            endpoint,
            id,
            cursor,
            // A hanging answer comes after the server gave up on it.
            acknowledged: !fail && !hang,
        });
    }
    if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

pub async fn run(args: WebhooksArgs) -> Result<(), String> {
    Scratch::around(args.place.database, &args.place.postgres, async |scratch| {
        scenario(&args, scratch).await
    })
    .await
}

async fn scenario(args: &WebhooksArgs, scratch: &Scratch) -> Result<(), String> {
    let cluster = args.place.database == Backend::Postgres;
    let count = if cluster { args.instances.max(2) } else { 1 };
    println!(
        "webhooks: {count} instance(s), {} endpoints, {} writers; the receiver fails {}% and hangs {}%",
        args.endpoints, args.writers, args.fail_percent, args.hang_percent
    );
    let receiver = Receiver {
        rng: Arc::new(Mutex::new(Rng::new(0x0EB_400C))),
        got: Arc::new(Mutex::new(Vec::new())),
        fail_percent: args.fail_percent,
        hang_percent: args.hang_percent,
    };
    let app = axum::Router::new()
        .route("/hook/{n}", axum::routing::post(answer))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let hooks = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let env = vec![
        ("CONVTRACK_WEBHOOK_ALLOW_HOSTS", "127.0.0.1".to_owned()),
        ("CONVTRACK_WEBHOOK_RETRY_SCALE", "0.001".to_owned()),
    ];
    let mut instances = Vec::new();
    for _ in 0..count {
        instances
            .push(Instance::start_with(&args.place.server_bin, &scratch.url, env.clone()).await?);
    }
    let bases: Vec<String> = instances.iter().map(Instance::base).collect();
    let tenant = Tenant::create(
        &args.place.server_bin,
        &scratch.url,
        &bases[0],
        args.writers,
    )
    .await?;
    let http = reqwest::Client::new();
    for n in 0..args.endpoints {
        post(
            &http,
            &format!("{}/graphql", bases[0]),
            &tenant.api_key,
            "mutation($url: String!) { createWebhookEndpoint(input: { url: $url }) { endpoint { id } } }",
            json!({ "url": format!("http://{hooks}/hook/{n}") }),
        )
        .await?;
    }
    // Dispatchers look for new endpoints every second.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let ledger = Arc::new(Ledger::temporary("webhooks")?);
    let writers = Writers::start(
        WriterSetup::visiting(bases.clone(), &tenant, "webhooks"),
        args.writers,
        ledger.clone(),
    );
    tokio::time::sleep(args.interval).await;
    if cluster {
        let victim = count - 1;
        instances[victim].kill9();
        println!(
            "  killed instance {} after {} acknowledged recordings",
            victim + 1,
            writers.tally.acked()
        );
    }
    tokio::time::sleep(args.interval).await;
    let tally = writers.stop().await;
    println!("  writers: {}", tally.summary());

    let feed = read_feed(&bases[0], &tenant.api_key, &tenant.start).await?;
    let cursors: Vec<String> = feed.iter().map(|e| e.cursor.clone()).collect();
    // A lease an instance held when it was killed lapses after 30 s; the
    // retries of a hanging request take 11 s each.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let done =
            (0..args.endpoints).all(|n| acknowledged_order(&receiver, n).len() >= cursors.len());
        if done || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut findings = Findings::default();
    let got = receiver.got.lock().map(|g| g.clone()).unwrap_or_default();
    let failed = got.iter().filter(|r| !r.acknowledged).count();
    println!(
        "  receiver: {} requests, {failed} failed or hung, for {} events × {} endpoints",
        got.len(),
        cursors.len(),
        args.endpoints
    );
    for n in 0..args.endpoints {
        let order = acknowledged_order(&receiver, n);
        findings.check(
            order == cursors,
            format!(
                "endpoint {n}: {} of {} events acknowledged in feed order{}",
                order.len(),
                cursors.len(),
                first_difference(&order, &cursors)
            ),
        );
    }
    // The same event always comes under the same id, and one id is one event.
    let mut ids: HashMap<&str, &str> = HashMap::new();
    for request in &got {
        let known = ids
            .entry(request.id.as_str())
            .or_insert(request.cursor.as_str());
        findings.check(
            *known == request.cursor.as_str(),
            format!("webhook-id {} came with two events", request.id),
        );
    }
    let verdict = verify(ledger.path(), &scratch.url, &bases[0], &tenant, &[]).await?;
    println!("  verifier: {}", verdict.line());
    findings.settle(verdict.problems, &[&tally]);
    for instance in &mut instances {
        instance.kill9();
    }
    findings.verdict("webhooks")
}

/// The cursors endpoint `n` acknowledged (a 2xx in time), each once, in
/// the order of their first acknowledgement.
fn acknowledged_order(receiver: &Receiver, n: usize) -> Vec<String> {
    let got = receiver.got.lock().map(|g| g.clone()).unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    got.into_iter()
        .filter(|r| r.endpoint == n && r.acknowledged)
        .filter(|r| seen.insert(r.cursor.clone()))
        .map(|r| r.cursor)
        .collect()
}

/// Where two orders part, for the finding's message.
fn first_difference(got: &[String], want: &[String]) -> String {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(at) => format!("; they part at event {at}"),
        None => String::new(),
    }
}

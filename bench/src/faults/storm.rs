//! `bench faults storm`: many clients at once on one thing. The retry
//! storm sends the same conversion from many clients, first all with the
//! same idempotency key, then each with its own: one row, one event. The
//! same-session storm has many writers record different records on one
//! session: every one stored once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cli::Place;
use super::findings::Findings;
use super::instance::Instance;
use super::ledger::{Answer, Ledger, Tenant, WriterSetup, Writers, read_feed, record, verify};
use super::scratch::Scratch;

#[derive(clap::Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub place: Place,
    /// Clients in the retry storm, writers in the same-session storm.
    #[arg(long, default_value_t = 50)]
    pub clients: usize,
    /// Records per writer in the same-session storm.
    #[arg(long, default_value_t = 200)]
    pub records: u64,
}

pub async fn run(args: StormArgs) -> Result<(), String> {
    Scratch::around(args.place.database, &args.place.postgres, async |scratch| {
        scenario(&args, scratch).await
    })
    .await
}

async fn scenario(args: &StormArgs, scratch: &Scratch) -> Result<(), String> {
    let name = format!("storms ({:?})", args.place.database).to_lowercase();
    let bin = &args.place.server_bin;
    let mut server = Instance::start(bin, &scratch.url).await?;
    let tenant = Tenant::create(bin, &scratch.url, &server.base(), 2).await?;
    let mut findings = Findings::default();

    // The retry storm, on its own session.
    let base = server.base();
    let session = tenant.sessions[0].clone();
    let same_key = storm(args.clients, |_| {
        (
            base.clone(),
            tenant.api_key.clone(),
            session.clone(),
            "retry-storm-key".to_owned(),
        )
    })
    .await;
    let different_keys = storm(args.clients, |c| {
        (
            base.clone(),
            tenant.api_key.clone(),
            session.clone(),
            format!("retry-storm-key-{c}"),
        )
    })
    .await;
    let feed = read_feed(&base, &tenant.api_key, &tenant.start).await?;
    let ids: HashSet<&String> = same_key.ids.iter().chain(&different_keys.ids).collect();
    println!(
        "{name}: retry storm, {} clients × the same key then {} × different keys: {} + {} acknowledged ({} created), {} conversion id(s), {} feed event(s)",
        args.clients,
        args.clients,
        same_key.ids.len(),
        different_keys.ids.len(),
        same_key.created + different_keys.created,
        ids.len(),
        feed.len()
    );
    for (what, outcome) in [("same key", &same_key), ("different keys", &different_keys)] {
        for e in &outcome.errors {
            findings.add(format!("retry storm ({what}): {e}"));
        }
    }
    findings.check(
        ids.len() == 1,
        format!("the retry storm made {} conversions", ids.len()),
    );
    findings.check(
        same_key.created + different_keys.created == 1,
        format!(
            "{} answers said created",
            same_key.created + different_keys.created
        ),
    );
    findings.check(
        feed.len() == 1,
        format!("the retry storm made {} feed events", feed.len()),
    );

    // The same-session storm, on the other session; its ledger starts after
    // the retry storm's one event.
    let ledger = Arc::new(Ledger::temporary("storm")?);
    let started = Instant::now();
    let writers = Writers::start(
        WriterSetup {
            bases: Arc::new(vec![base.clone()]),
            api_key: tenant.api_key.clone(),
            sessions: Arc::new(vec![tenant.sessions[1].clone()]),
            run: "session-storm".into(),
            per_writer: Some(args.records),
            pace: None,
            give_up_after: Duration::from_secs(60),
            visits: None,
        },
        args.clients,
        ledger.clone(),
    );
    let tally = writers.finish().await;
    println!(
        "  same-session storm, {} writers × {} records on one session in {:.1} s: {}",
        args.clients,
        args.records,
        started.elapsed().as_secs_f64(),
        tally.summary()
    );
    // The retry storm's conversion is in the ledger too, so the verifier
    // sees the whole tenant.
    if let Some(id) = ids.iter().next() {
        ledger.append("storm-record", id)?;
    }
    let verdict = verify(ledger.path(), &scratch.url, &base, &tenant, &[]).await?;
    println!("  verifier: {}", verdict.line());
    let expected = args.clients as u64 * args.records;
    findings.check(
        tally.acked() == expected,
        format!("{} of {expected} acknowledged", tally.acked()),
    );
    findings.settle(verdict.problems, &[&tally]);
    // The storms ask for no retryable refusal either: none is expected
    // from a healthy server, however many clients write at once.
    findings.check(
        tally.unavailable.load(std::sync::atomic::Ordering::Relaxed) == 0,
        "the same-session storm got retryable refusals (the server could not keep up without them)",
    );
    findings.check(server.running(), "the server exited");
    server.kill9();
    findings.verdict(&name)
}

struct StormOutcome {
    ids: Vec<String>,
    created: usize,
    errors: Vec<String>,
}

/// `clients` recordings of record "storm-record" at once; `request(c)`
/// gives client `c`'s (base, API key, session, idempotency key).
async fn storm(
    clients: usize,
    request: impl Fn(usize) -> (String, String, String, String),
) -> StormOutcome {
    let http = reqwest::Client::new();
    let barrier = Arc::new(tokio::sync::Barrier::new(clients));
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (base, api_key, session, key) = request(c);
            let (http, barrier) = (http.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                record(&http, &base, &api_key, &session, "storm-record", &key).await
            })
        })
        .collect();
    let mut outcome = StormOutcome {
        ids: Vec::new(),
        created: 0,
        errors: Vec::new(),
    };
    for task in tasks {
        match task.await {
            Ok(Answer::Acked { id, created }) => {
                outcome.ids.push(id);
                outcome.created += usize::from(created);
            }
            Ok(Answer::Unavailable(e) | Answer::Transport(e) | Answer::Refused(e)) => {
                outcome.errors.push(e);
            }
            Err(e) => outcome.errors.push(e.to_string()),
        }
    }
    outcome
}

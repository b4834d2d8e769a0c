//! The bookkeeping load. Writers record conversions, each with its own
//! idempotency key, append every acknowledged `(key, conversion id)` to a
//! ledger file, and retry an unacknowledged request with the same key until
//! it is acknowledged. Followers read the live feed and resume from their
//! last cursor whenever their socket dies. The verifier holds the ledger
//! and the followers against the database.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, Database, DatabaseBackend, Statement};
use serde_json::{Value, json};
use tempfile::TempPath;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::feed::subscribe;
use crate::load::post;
use crate::server::create_key;

/// The tenant every scenario records into.
pub const TENANT: &str = "faults";

const RECORD: &str = "mutation($s: String, $r: String!, $k: String) { recordConversion(input: \
     { sessionId: $s, kind: BOOKING_CREATED, recordId: $r, idempotencyKey: $k }) \
     { created conversion { id } } }";

/// How the server answered one recording.
pub enum Answer {
    /// Recorded (now, or before: a retry returns the first result).
    Acked { id: String, created: bool },
    /// A retryable refusal: HTTP 503 or `SERVICE_UNAVAILABLE`.
    Unavailable(String),
    /// No answer: connection refused or reset, or a cut-off body.
    Transport(String),
    /// Any other error: a bug as far as these scenarios go.
    Refused(String),
}

/// Records `record_id` on `session` with `key` through the server at `base`.
pub async fn record(
    http: &reqwest::Client,
    base: &str,
    api_key: &str,
    session: &str,
    record_id: &str,
    key: &str,
) -> Answer {
    let sent = http
        .post(format!("{base}/graphql"))
        .bearer_auth(api_key)
        .json(&json!({ "query": RECORD, "variables": { "s": session, "r": record_id, "k": key } }))
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => return Answer::Transport(e.to_string()),
    };
    let status = response.status();
    let body: Value = match response.json().await {
        Ok(body) => body,
        Err(_) if status == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
            return Answer::Unavailable("HTTP 503".into());
        }
        Err(e) => return Answer::Transport(format!("reading the answer: {e}")),
    };
    if let Some(error) = body.pointer("/errors/0") {
        let code = error
            .pointer("/extensions/code")
            .and_then(Value::as_str)
            .unwrap_or("no code");
        let message = error["message"].as_str().unwrap_or("");
        let described = format!("HTTP {status} {code}: {message}");
        return if code == "SERVICE_UNAVAILABLE"
            || status == reqwest::StatusCode::SERVICE_UNAVAILABLE
        {
            Answer::Unavailable(described)
        } else {
            Answer::Refused(described)
        };
    }
    match body
        .pointer("/data/recordConversion/conversion/id")
        .and_then(Value::as_str)
    {
        Some(id) => Answer::Acked {
            id: id.to_owned(),
            created: body["data"]["recordConversion"]["created"] == true,
        },
        None => Answer::Refused(format!("HTTP {status}: {body}")),
    }
}

/// The value behind `mutex`: a writer that panicked holding it left
/// nothing half-done that the others could not read.
pub fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Acknowledged recordings, one `key<TAB>conversion id` line each, written
/// as they arrive.
pub struct Ledger {
    /// Removes the file when dropped.
    path: TempPath,
    file: Mutex<File>,
}

impl Ledger {
    /// A new ledger in the temporary directory for `scenario`, removed
    /// when dropped (also when the scenario ends early with an error).
    pub fn temporary(scenario: &str) -> Result<Self, String> {
        let (file, path) = tempfile::Builder::new()
            .prefix(&format!("convtrack-faults-{scenario}-"))
            .suffix(".ledger")
            .tempfile()
            .map_err(|e| format!("creating the {scenario} ledger in the temp directory: {e}"))?
            .into_parts();
        Ok(Self {
            path,
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&self, key: &str, id: &str) -> Result<(), String> {
        let mut file = locked(&self.file);
        writeln!(file, "{key}\t{id}").map_err(|e| format!("writing the ledger: {e}"))
    }

    /// key → conversion id, as written. A key acknowledged twice with two
    /// different ids is itself a finding.
    pub fn read(path: &Path) -> Result<(HashMap<String, String>, Vec<String>), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let mut acked = HashMap::new();
        let mut contradictions = Vec::new();
        for line in text.lines() {
            let (key, id) = line
                .split_once('\t')
                .ok_or_else(|| format!("a ledger line without a tab: {line:?}"))?;
            if let Some(earlier) = acked.insert(key.to_owned(), id.to_owned())
                && earlier != id
            {
                contradictions.push(format!("key {key} acknowledged as {earlier} and as {id}"));
            }
        }
        Ok((acked, contradictions))
    }
}

/// What the writers saw, counted as it happens.
#[derive(Default)]
pub struct Tally {
    pub acked: AtomicU64,
    /// Acknowledged by a retry as already recorded: the first attempt
    /// committed, but its answer never arrived.
    pub replayed: AtomicU64,
    pub unavailable: AtomicU64,
    pub transport: AtomicU64,
    first_unavailable: Mutex<Option<String>>,
    first_transport: Mutex<Option<String>>,
    refused: Mutex<Vec<String>>,
    unfinished: Mutex<Vec<String>>,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    fn note(slot: &Mutex<Option<String>>, what: String) {
        let mut slot = locked(slot);
        slot.get_or_insert(what);
    }

    /// Non-retryable answers (each one a finding).
    pub fn refused(&self) -> Vec<String> {
        locked(&self.refused).clone()
    }

    /// Keys still unacknowledged when the writers gave up.
    pub fn unfinished(&self) -> Vec<String> {
        locked(&self.unfinished).clone()
    }

    /// The writers' own failures (the ledger could not be written).
    pub fn failures(&self) -> Vec<String> {
        locked(&self.failures).clone()
    }

    pub fn summary(&self) -> String {
        let first = |slot: &Mutex<Option<String>>| {
            locked(slot)
                .clone()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        };
        format!(
            "{} acknowledged ({} by a retry that found it already recorded); retried after {} retryable refusals{} and {} lost connections{}; {} refused",
            self.acked(),
            self.replayed.load(Ordering::Relaxed),
            self.unavailable.load(Ordering::Relaxed),
            first(&self.first_unavailable),
            self.transport.load(Ordering::Relaxed),
            first(&self.first_transport),
            locked(&self.refused).len(),
        )
    }
}

/// Where and how writers record.
#[derive(Clone)]
pub struct WriterSetup {
    /// Servers to record through: writer `w` starts on `bases[w % len]` and
    /// moves to the next one when a server does not answer.
    pub bases: Arc<Vec<String>>,
    pub api_key: String,
    /// Writer `w` records on `sessions[w % len]`.
    pub sessions: Arc<Vec<String>>,
    /// Tells this run's keys from any other's.
    pub run: String,
    /// Stop after this many recordings per writer; None: until `stop`.
    pub per_writer: Option<u64>,
    /// At least this long between the starts of one writer's recordings.
    pub pace: Option<Duration>,
    /// Once `stop` is set, a pending key is retried this long at most.
    pub give_up_after: Duration,
    /// Some(k): each writer plays visits instead of using `sessions`: a new
    /// chat session, one visitor message, then k recordings on it.
    pub visits: Option<u64>,
}

impl WriterSetup {
    /// Writers that play visits (4 recordings each) through `bases` until
    /// stopped, unpaced.
    pub fn visiting(bases: Vec<String>, tenant: &Tenant, run: &str) -> Self {
        Self {
            bases: Arc::new(bases),
            api_key: tenant.api_key.clone(),
            sessions: tenant.sessions.clone(),
            run: run.to_owned(),
            per_writer: None,
            pace: None,
            give_up_after: Duration::from_secs(60),
            visits: Some(4),
        }
    }
}

/// Running writers.
pub struct Writers {
    pub tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl Writers {
    pub fn start(setup: WriterSetup, count: usize, ledger: Arc<Ledger>) -> Self {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        let handles = (0..count)
            .map(|w| {
                tokio::spawn(writer(
                    w,
                    setup.clone(),
                    http.clone(),
                    ledger.clone(),
                    tally.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        Self {
            tally,
            stop,
            handles,
        }
    }

    /// Asks the writers to stop after their pending key, and waits.
    pub async fn stop(self) -> Arc<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        self.finish().await
    }

    /// Waits for writers that stop by themselves (`per_writer`).
    pub async fn finish(self) -> Arc<Tally> {
        for handle in self.handles {
            if let Err(e) = handle.await {
                let mut failures = locked(&self.tally.failures);
                failures.push(format!("a writer panicked: {e}"));
            }
        }
        self.tally
    }
}

async fn writer(
    w: usize,
    setup: WriterSetup,
    http: reqwest::Client,
    ledger: Arc<Ledger>,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    let mut session = setup.sessions[w % setup.sessions.len()].clone();
    let mut target = w % setup.bases.len();
    let mut n = 0u64;
    // Paced writers keep a schedule, so a slow answer is made up for by
    // the next ones instead of lowering the rate.
    let mut next_start = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) || setup.per_writer.is_some_and(|max| n >= max) {
            return;
        }
        if let Some(k) = setup.visits
            && n.is_multiple_of(k.max(1))
        {
            match visit(&http, &setup, &mut target, &tally).await {
                Some(started) => session = started,
                None => return,
            }
        }
        let key = format!("{}-{w}-{n}", setup.run);
        let mut stopped_at: Option<Instant> = None;
        let mut backoff = Duration::from_millis(20);
        loop {
            match record(
                &http,
                &setup.bases[target],
                &setup.api_key,
                &session,
                &key,
                &key,
            )
            .await
            {
                Answer::Acked { id, created } => {
                    if !created {
                        tally.replayed.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Err(e) = ledger.append(&key, &id) {
                        locked(&tally.failures).push(e);
                        return;
                    }
                    tally.acked.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Answer::Refused(e) => {
                    locked(&tally.refused).push(format!("{key}: {e}"));
                    break;
                }
                Answer::Unavailable(e) => {
                    tally.unavailable.fetch_add(1, Ordering::Relaxed);
                    Tally::note(&tally.first_unavailable, e);
                }
                Answer::Transport(e) => {
                    tally.transport.fetch_add(1, Ordering::Relaxed);
                    Tally::note(&tally.first_transport, e);
                    target = (target + 1) % setup.bases.len();
                }
            }
            if stop.load(Ordering::Relaxed) {
                let since = *stopped_at.get_or_insert_with(Instant::now);
                if since.elapsed() > setup.give_up_after {
                    locked(&tally.unfinished).push(key);
                    return;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
        n += 1;
        if let Some(pace) = setup.pace {
            // Catch up at most a second: after an outage, carry on at the
            // pace rather than in a burst.
            let floor = Instant::now()
                .checked_sub(Duration::from_secs(1))
                .unwrap_or_else(Instant::now);
            next_start = (next_start + pace).max(floor);
            tokio::time::sleep_until(next_start.into()).await;
        }
    }
}

/// Starts a visit: a new chat session and the visitor's first message,
/// each retried like a recording. None when the server refused outright
/// (noted in the tally).
async fn visit(
    http: &reqwest::Client,
    setup: &WriterSetup,
    target: &mut usize,
    tally: &Tally,
) -> Option<String> {
    let mut session: Option<String> = None;
    let mut backoff = Duration::from_millis(20);
    loop {
        let (query, variables) = match &session {
            None => (
                "mutation { startSession(input: { channel: CHAT }) { sessionId } }",
                json!({}),
            ),
            Some(id) => (
                "mutation($s: String!) { appendMessage(input: { sessionId: $s, role: VISITOR, \
                 content: \"Do you have a **meeting room** for six tomorrow?\" }) { message { id } } }",
                json!({ "s": id }),
            ),
        };
        let sent = http
            .post(format!("{}/graphql", setup.bases[*target]))
            .bearer_auth(&setup.api_key)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await;
        let answer = match sent {
            Err(e) => Err((true, e.to_string())),
            Ok(response) => {
                let status = response.status();
                match response.json::<Value>().await {
                    Err(e) => Err((true, e.to_string())),
                    Ok(body) => match body
                        .pointer("/errors/0/extensions/code")
                        .and_then(Value::as_str)
                    {
                        Some("SERVICE_UNAVAILABLE") => Err((false, body.to_string())),
                        Some(_) => {
                            locked(&tally.refused)
                                .push(format!("starting a visit: HTTP {status} {body}"));
                            return None;
                        }
                        None => Ok(body),
                    },
                }
            }
        };
        match answer {
            Ok(body) => match &session {
                None => {
                    session = body
                        .pointer("/data/startSession/sessionId")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                }
                Some(id) => return Some(id.clone()),
            },
            Err((lost, e)) => {
                if lost {
                    tally.transport.fetch_add(1, Ordering::Relaxed);
                    Tally::note(&tally.first_transport, e);
                    *target = (*target + 1) % setup.bases.len();
                } else {
                    tally.unavailable.fetch_add(1, Ordering::Relaxed);
                    Tally::note(&tally.first_unavailable, e);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
        }
    }
}

/// One feed event as a follower saw it.
#[derive(Clone)]
pub struct Seen {
    pub cursor: String,
    pub conversion: String,
}

/// A live-feed subscriber that survives its server: when the socket dies it
/// connects again (to the next server in its list) with the last cursor it
/// saw, as an integrator's client would.
pub struct Follower {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub reconnects: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

const SUBSCRIPTION: &str = "subscription($after: String) { conversionRecorded(after: $after) \
     { cursor conversion { id } } }";

impl Follower {
    /// Follows from `after` (the start of the feed, or a cursor), first on
    /// `sockets[first]`.
    pub fn start(sockets: Vec<String>, first: usize, api_key: String, after: String) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reconnects = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = tokio::spawn(follow(
            sockets,
            first,
            api_key,
            after,
            seen.clone(),
            reconnects.clone(),
            stop.clone(),
        ));
        Self {
            seen,
            reconnects,
            stop,
            handle,
        }
    }

    pub fn count(&self) -> usize {
        locked(&self.seen).len()
    }

    /// Waits up to `limit` until it has seen `expected` events, then stops.
    pub async fn finish(self, expected: usize, limit: Duration) -> Vec<Seen> {
        let deadline = Instant::now() + limit;
        while self.count() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Late duplicates would show up right after the expected count.
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.stop.store(true, Ordering::Relaxed);
        self.handle.abort();
        let seen = locked(&self.seen);
        seen.clone()
    }
}

async fn follow(
    sockets: Vec<String>,
    first: usize,
    api_key: String,
    after: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    reconnects: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let mut target = first % sockets.len();
    let mut connected_once = false;
    while !stop.load(Ordering::Relaxed) {
        let cursor = locked(&seen)
            .last()
            .map_or_else(|| after.clone(), |e| e.cursor.clone());
        if connected_once {
            reconnects.fetch_add(1, Ordering::Relaxed);
        }
        let outcome = subscribe_once(&sockets[target], &api_key, &cursor, &seen).await;
        connected_once |= outcome.is_ok();
        if outcome.is_err() {
            // Its server is gone or refused: try the next one.
            target = (target + 1) % sockets.len();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One connection: subscribe after `cursor` and record events until the
/// socket ends. Err when it could not even connect.
async fn subscribe_once(
    url: &str,
    api_key: &str,
    cursor: &str,
    seen: &Mutex<Vec<Seen>>,
) -> Result<(), String> {
    let mut ws = subscribe(url, api_key, SUBSCRIPTION, json!({ "after": cursor })).await?;
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match value["type"].as_str() {
            Some("next") => {
                let event = &value["payload"]["data"]["conversionRecorded"];
                if let (Some(cursor), Some(id)) =
                    (event["cursor"].as_str(), event["conversion"]["id"].as_str())
                {
                    locked(seen).push(Seen {
                        cursor: cursor.to_owned(),
                        conversion: id.to_owned(),
                    });
                } else {
                    // An error event (the database went away): resubscribe.
                    return Ok(());
                }
            }
            Some("ping") => {
                let pong = json!({ "type": "pong" });
                let _ = ws.send(Message::Text(pong.to_string().into())).await;
            }
            Some("error" | "complete") => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}

/// A fresh tenant's API key, sessions to record on, and the cursor of the
/// start of its (empty) feed.
pub struct Tenant {
    pub api_key: String,
    pub sessions: Arc<Vec<String>>,
    pub start: String,
}

impl Tenant {
    /// Creates the tenant's key with the server binary's CLI and starts
    /// `sessions` chat sessions through `base`.
    pub async fn create(
        bin: &Path,
        database_url: &str,
        base: &str,
        sessions: usize,
    ) -> Result<Self, String> {
        let api_key = create_key(bin, database_url, TENANT)?;
        let http = reqwest::Client::new();
        let mut started = Vec::new();
        for _ in 0..sessions.max(1) {
            let body = post(
                &http,
                &format!("{base}/graphql"),
                &api_key,
                "mutation { startSession(input: { channel: CHAT }) { sessionId } }",
                json!({}),
            )
            .await?;
            started.push(
                body.pointer("/data/startSession/sessionId")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("startSession: {body}"))?
                    .to_owned(),
            );
        }
        let feed = post(
            &http,
            &format!("{base}/graphql"),
            &api_key,
            "{ conversionsSince(first: 1) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await?;
        let start = feed
            .pointer("/data/conversionsSince/pageInfo/endCursor")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("conversionsSince: {feed}"))?
            .to_owned();
        Ok(Self {
            api_key,
            sessions: Arc::new(started),
            start,
        })
    }
}

/// The feed as `conversionsSince` pages it, from `after` to its end.
pub async fn read_feed(base: &str, api_key: &str, after: &str) -> Result<Vec<Seen>, String> {
    let http = reqwest::Client::new();
    let mut events = Vec::new();
    let mut cursor = after.to_owned();
    loop {
        let page = post(
            &http,
            &format!("{base}/graphql"),
            api_key,
            "query($a: String) { conversionsSince(after: $a, first: 500) { edges { cursor \
             node { conversion { id } } } pageInfo { hasNextPage endCursor } } }",
            json!({ "a": cursor }),
        )
        .await?;
        let connection = &page["data"]["conversionsSince"];
        for edge in connection["edges"].as_array().into_iter().flatten() {
            events.push(Seen {
                cursor: edge["cursor"].as_str().unwrap_or_default().to_owned(),
                conversion: edge["node"]["conversion"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        cursor = connection["pageInfo"]["endCursor"]
            .as_str()
            .ok_or("no endCursor")?
            .to_owned();
        if connection["pageInfo"]["hasNextPage"] != true {
            return Ok(events);
        }
    }
}

/// The database's view of the tenant: record id → how many rows.
async fn stored(database_url: &str) -> Result<HashMap<String, i64>, String> {
    let db = Database::connect(database_url)
        .await
        .map_err(|e| e.to_string())?;
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            "SELECT record_id, COUNT(*) FROM conversion WHERE tenant_id = \
             (SELECT id FROM tenant WHERE name = $1) GROUP BY record_id"
        }
        _ => {
            "SELECT record_id, COUNT(*) FROM conversion WHERE tenant_id = \
             (SELECT id FROM tenant WHERE name = ?) GROUP BY record_id"
        }
    };
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [TENANT.into()],
        ))
        .await
        .map_err(|e| e.to_string())?;
    let mut stored = HashMap::new();
    for row in rows {
        let record: String = row.try_get_by_index(0).map_err(|e| e.to_string())?;
        let count: i64 = row.try_get_by_index(1).map_err(|e| e.to_string())?;
        stored.insert(record, count);
    }
    db.close().await.map_err(|e| e.to_string())?;
    Ok(stored)
}

/// The verifier's figures and what it found wrong.
pub struct Verdict {
    pub acknowledged: usize,
    pub stored: usize,
    pub events: usize,
    pub problems: Vec<String>,
}

impl Verdict {
    pub fn line(&self) -> String {
        format!(
            "acknowledged {}, stored {}, feed events {}; {}",
            self.acknowledged,
            self.stored,
            self.events,
            if self.problems.is_empty() {
                "0 lost, 0 duplicates".to_owned()
            } else {
                format!("{} problems", self.problems.len())
            }
        )
    }
}

/// Holds the ledger against the database (through SQL) and the feed
/// (through the server at `base`): every acknowledged key is stored once
/// under its acknowledged id, nothing is stored that was not acknowledged,
/// and the feed carries every row exactly once. Each follower must have
/// seen exactly the feed.
pub async fn verify(
    ledger: &Path,
    database_url: &str,
    base: &str,
    tenant: &Tenant,
    followers: &[(String, Vec<Seen>)],
) -> Result<Verdict, String> {
    let (acked, mut problems) = Ledger::read(ledger)?;
    let stored = stored(database_url).await?;
    let feed = read_feed(base, &tenant.api_key, &tenant.start).await?;
    let rows: i64 = stored.values().sum();

    let lost: Vec<&String> = acked.keys().filter(|k| !stored.contains_key(*k)).collect();
    if !lost.is_empty() {
        problems.push(format!(
            "{} acknowledged conversions are not stored (first: {})",
            lost.len(),
            lost[0]
        ));
    }
    let doubled: Vec<(&String, &i64)> = stored.iter().filter(|(_, n)| **n > 1).collect();
    if !doubled.is_empty() {
        problems.push(format!(
            "{} records stored more than once (first: {} × {})",
            doubled.len(),
            doubled[0].0,
            doubled[0].1
        ));
    }
    let unacked: Vec<&String> = stored.keys().filter(|k| !acked.contains_key(*k)).collect();
    if !unacked.is_empty() {
        problems.push(format!(
            "{} stored conversions were never acknowledged although every key was retried until it was (first: {})",
            unacked.len(),
            unacked[0]
        ));
    }

    let feed_ids: HashSet<&str> = feed.iter().map(|e| e.conversion.as_str()).collect();
    if feed_ids.len() != feed.len() {
        problems.push(format!(
            "the feed repeats events: {} events, {} distinct",
            feed.len(),
            feed_ids.len()
        ));
    }
    if feed.len() as i64 != rows {
        problems.push(format!("{} feed events for {rows} stored rows", feed.len()));
    }
    let acked_ids: HashSet<&str> = acked.values().map(String::as_str).collect();
    let missing_from_feed = acked_ids.difference(&feed_ids).count();
    if missing_from_feed > 0 {
        problems.push(format!(
            "{missing_from_feed} acknowledged conversion ids are not in the feed"
        ));
    }

    for (name, seen) in followers {
        let ids: HashSet<&str> = seen.iter().map(|e| e.conversion.as_str()).collect();
        if ids.len() != seen.len() {
            problems.push(format!(
                "{name} got {} events, {} distinct (duplicates)",
                seen.len(),
                ids.len()
            ));
        }
        let missed = feed_ids.difference(&ids).count();
        if missed > 0 {
            problems.push(format!("{name} missed {missed} of {} events", feed.len()));
        }
        let extra = ids.difference(&feed_ids).count();
        if extra > 0 {
            problems.push(format!("{name} got {extra} events the feed does not have"));
        }
        let in_feed_order = seen
            .iter()
            .map(|e| &e.conversion)
            .eq(feed.iter().map(|e| &e.conversion));
        if ids.len() == seen.len() && missed == 0 && extra == 0 && !in_feed_order {
            problems.push(format!(
                "{name} got every event, but not in the feed's order"
            ));
        }
    }
    Ok(Verdict {
        acknowledged: acked.len(),
        stored: stored.len(),
        events: feed.len(),
        problems,
    })
}

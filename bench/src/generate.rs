//! `bench generate`: fills an empty database with a realistic, deterministic
//! dataset, writing rows directly with multi-row INSERTs in big transactions.
//!
//! One thread generates batches of rows while the async side inserts the
//! previous batch, so generation and the database work overlap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    Statement, TransactionTrait, Value,
};
use tokio::sync::mpsc;
use uuid::{Builder, Uuid};

use crate::corpus;
use crate::rng::Rng;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

pub const TENANTS: [&str; 2] = ["bench-a", "bench-b"];
/// Share of conversations that belong to the first tenant.
const FIRST_TENANT_SHARE: f64 = 0.9;

const CHANNELS: [&str; 4] = ["CHAT", "EMAIL", "WHATSAPP", "VOICE"];
const CHANNEL_WEIGHTS: [f64; 4] = [60.0, 20.0, 15.0, 5.0];
/// Probability that a conversation on each channel converts (about 10% overall).
const CONVERSION_RATE: [f64; 4] = [0.10, 0.08, 0.14, 0.12];
/// Share of conversations closed explicitly, per channel.
const CLOSED_SHARE: [f64; 4] = [0.5, 0.1, 0.2, 0.8];

/// Weights of 1..=12 visitor/agent messages: about 3 on average.
const MESSAGE_COUNT_WEIGHTS: [f64; 12] = [
    26.0, 24.0, 20.0, 11.0, 7.0, 4.0, 3.0, 2.0, 1.2, 0.8, 0.5, 0.5,
];
const MAX_MESSAGES: usize = 12;
/// Probability that an agent reply is preceded by a tool call.
const TOOL_SHARE: f64 = 0.08;
/// Probability that a converted conversation leads to a second, different outcome.
const SECOND_OUTCOME_SHARE: f64 = 0.08;
/// Share of contracts that also create the customer.
const CUSTOMER_WITH_CONTRACT_SHARE: f64 = 1.0 / 3.0;

/// (kind, record_type, record id prefix)
const KINDS: [(&str, &str, &str); 5] = [
    ("TOUR_BOOKED", "VISITOR", "visitor"),
    ("CUSTOMER_CREATED", "COWORKER", "coworker"),
    ("CONTRACT_CREATED", "COWORKER_CONTRACT", "contract"),
    ("BOOKING_CREATED", "BOOKING", "booking"),
    ("DAY_PASS_PURCHASED", "COWORKER_PRODUCT", "product"),
];
const TOUR: usize = 0;
const CUSTOMER: usize = 1;
const CONTRACT: usize = 2;
const BOOKING: usize = 3;
const DAY_PASS: usize = 4;
/// The first outcome of a converted conversation: tours most often.
const FIRST_OUTCOMES: [(usize, f64); 4] = [
    (TOUR, 40.0),
    (BOOKING, 25.0),
    (DAY_PASS, 20.0),
    (CONTRACT, 15.0),
];

/// Conversations generated and inserted per transaction.
const BATCH_CONVERSATIONS: usize = 5_000;
/// Rows per INSERT statement.
const CONVERSATION_ROWS_PER_INSERT: usize = 500;
const MESSAGE_ROWS_PER_INSERT: usize = 1_000;
const CONVERSION_ROWS_PER_INSERT: usize = 500;
/// Conversions per transaction in the final pass.
const CONVERSIONS_PER_TRANSACTION: usize = 20_000;

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// sqlite://FILE?mode=rwc or postgres://user@host:port/db
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// How many conversations (about 3 messages each, ~10% converted).
    #[arg(long, default_value_t = 100_000)]
    pub conversations: u64,
    /// Seed of the generator: the same seed gives the same rows (times
    /// are relative to now).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

struct ConversationRow {
    id: Uuid,
    tenant: usize,
    session_id: String,
    channel: &'static str,
    thread_key: Option<String>,
    contact: Option<String>,
    user_id: Option<String>,
    user_name: Option<String>,
    started_at: i64,
    last_activity_at: i64,
    closed_at: Option<i64>,
    opening_message: Option<String>,
    message_count: i32,
    first_converted_at: Option<i64>,
    labels: String,
}

struct MessageRow {
    id: Uuid,
    conversation_id: Uuid,
    seq: i32,
    role: &'static str,
    content: String,
    created_at: i64,
}

struct ConversionRow {
    id: Uuid,
    tenant: usize,
    conversation_id: Uuid,
    kind: usize,
    record_id: String,
    recorded_at: i64,
    /// Generation order, to break ties of `recorded_at` the same way every run.
    order: u64,
    /// Assigned once every conversion is known, in recorded_at order.
    feed_seq: i64,
    /// Copies of the conversation's start and channel, as the server keeps them.
    conversation_started_at: i64,
    conversation_channel: &'static str,
}

#[derive(Default)]
struct Batch {
    conversations: Vec<ConversationRow>,
    messages: Vec<MessageRow>,
    conversions: Vec<ConversionRow>,
}

/// A UUID v7 carrying the given time, its random bits from the PRNG.
/// Every conversation's labels as the server stores them: an A/B test of
/// two prompts over the whole history, and a model on most. From the
/// index, not the generator, so the rest of the dataset is as before.
fn labels(index: u64) -> String {
    let prompt = if index.is_multiple_of(2) { "v7" } else { "v8" };
    match index % 5 {
        0 => format!("prompt={prompt}"),
        n => format!("model=m{}\nprompt={prompt}", n % 2),
    }
}

fn uuid_v7(rng: &mut Rng, micros: i64) -> Uuid {
    let mut random = [0u8; 10];
    rng.fill(&mut random);
    Builder::from_unix_timestamp_millis((micros / 1000).max(0) as u64, &random).into_uuid()
}

/// "cs_" and 32 URL-safe characters (192 bits), like the server's session ids.
fn session_id(rng: &mut Rng) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(35);
    out.push_str("cs_");
    let mut bits = 0u64;
    for i in 0..32 {
        if i % 10 == 0 {
            bits = rng.next_u64();
        }
        out.push(char::from(ALPHABET[(bits & 63) as usize]));
        bits >>= 6;
    }
    out
}

/// The server's rule, for text without multi-code-point graphemes (the corpus
/// has none): whitespace runs folded to one space, cut to 120 characters.
fn opening_message(content: &str) -> String {
    let folded = content.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut opening: String = folded.chars().take(120).collect();
    if folded.chars().nth(120).is_some() {
        opening.push('…');
    }
    opening
}

fn phone(rng: &mut Rng) -> String {
    format!("+4477009{:05}", rng.below(100_000))
}

struct Generator {
    rng: Rng,
    /// Last record number handed out, per tenant and kind.
    record_counters: [[u64; 5]; 2],
    conversions_made: u64,
    total: u64,
    next: u64,
    /// Conversations start between `start` and `start + total * step`.
    start: i64,
    step: i64,
    now: i64,
}

impl Generator {
    fn new(seed: u64, total: u64, now: i64) -> Self {
        // Conversations over the last 365 days, up to an hour ago, oldest first
        // (index inserts stay near the right edge of the B-trees).
        let end = now - MICROS_PER_HOUR;
        let start = end - 365 * MICROS_PER_DAY;
        let step = ((end - start) / total.max(1) as i64).max(1);
        Self {
            rng: Rng::new(seed),
            record_counters: [[0; 5]; 2],
            conversions_made: 0,
            total,
            next: 0,
            start,
            step,
            now,
        }
    }

    fn next_batch(&mut self, size: usize) -> Option<Batch> {
        if self.next >= self.total {
            return None;
        }
        let mut batch = Batch::default();
        let end = (self.next + size as u64).min(self.total);
        for i in self.next..end {
            self.conversation(i, &mut batch);
        }
        self.next = end;
        Some(batch)
    }

    fn conversation(&mut self, index: u64, batch: &mut Batch) {
        let now = self.now;
        let rng = &mut self.rng;
        let tenant = if rng.chance(FIRST_TENANT_SHARE) { 0 } else { 1 };
        let channel_index = rng.weighted(&CHANNEL_WEIGHTS);
        let channel = CHANNELS[channel_index];
        let started_at = self.start + index as i64 * self.step + rng.below(self.step as u64) as i64;
        let id = uuid_v7(rng, started_at);
        let session_id = session_id(rng);

        let first = *rng.pick(corpus::FIRST_NAMES);
        let last = *rng.pick(corpus::LAST_NAMES);
        let user_name = rng.chance(0.7).then(|| format!("{} {}", first.0, last.0));
        let user_id = rng
            .chance(0.35)
            .then(|| format!("usr_{:08x}", rng.next_u64() as u32));
        let (contact, thread_key) = match channel {
            "EMAIL" => {
                let domain = *rng.pick(corpus::EMAIL_DOMAINS);
                let contact = format!("{}.{}{}@{domain}", first.1, last.1, rng.below(100));
                let thread = format!("msg-{:016x}@mail.{domain}", rng.next_u64());
                (Some(contact), Some(thread))
            }
            "WHATSAPP" => (Some(phone(rng)), None),
            // Now and then a withheld caller id.
            "VOICE" => (rng.chance(0.9).then(|| phone(rng)), None),
            _ => (None, None),
        };

        // Messages: VISITOR, AI_AGENT, VISITOR, … with now and then a TOOL call
        // before an agent reply.
        let turns = 1 + rng.weighted(&MESSAGE_COUNT_WEIGHTS);
        let rare = rng.below(1000) == 0;
        let mut at = started_at + rng.range(MICROS_PER_SECOND, 30 * MICROS_PER_SECOND);
        let mut seq = 0i32;
        let mut opening = None;
        let mut push = |role: &'static str, content: String, at: i64, seq: &mut i32| {
            *seq += 1;
            batch.messages.push(MessageRow {
                id: Uuid::nil(),
                conversation_id: id,
                seq: *seq,
                role,
                content,
                created_at: at.min(now),
            });
        };
        for turn in 0..turns {
            if seq as usize >= MAX_MESSAGES {
                break;
            }
            if turn % 2 == 0 {
                let content = if turn == 0 {
                    let content = corpus::opener(rng, rare);
                    opening = Some(opening_message(&content));
                    content
                } else {
                    corpus::follow_up(rng)
                };
                push("VISITOR", content, at, &mut seq);
                // The agent answers within seconds.
                at += rng.range(2 * MICROS_PER_SECOND, 20 * MICROS_PER_SECOND);
            } else {
                if (seq as usize) < MAX_MESSAGES - 1 && rng.chance(TOOL_SHARE) {
                    push("TOOL", corpus::tool(rng), at, &mut seq);
                    at += rng.range(MICROS_PER_SECOND / 2, 3 * MICROS_PER_SECOND);
                }
                push("AI_AGENT", corpus::reply(rng), at, &mut seq);
                // The visitor takes longer; by email, much longer.
                at += match channel {
                    "EMAIL" => rng.log_uniform(10 * MICROS_PER_MINUTE, 2 * MICROS_PER_DAY),
                    "VOICE" => rng.range(3 * MICROS_PER_SECOND, 30 * MICROS_PER_SECOND),
                    _ => rng.log_uniform(10 * MICROS_PER_SECOND, 10 * MICROS_PER_MINUTE),
                };
            }
        }
        // Message ids: v7 at each message's time.
        let first_message = batch.messages.len() - seq as usize;
        let mut last_activity_at = started_at;
        for message in &mut batch.messages[first_message..] {
            message.id = uuid_v7(rng, message.created_at);
            last_activity_at = last_activity_at.max(message.created_at);
        }
        let closed_at = rng
            .chance(CLOSED_SHARE[channel_index])
            .then(|| last_activity_at + rng.range(MICROS_PER_SECOND, 10 * MICROS_PER_MINUTE))
            .filter(|&closed| closed <= now);

        // Outcomes.
        let mut first_converted_at = None;
        if rng.chance(CONVERSION_RATE[channel_index]) {
            let weights: Vec<f64> = FIRST_OUTCOMES.iter().map(|(_, w)| *w).collect();
            let kind = FIRST_OUTCOMES[rng.weighted(&weights)].0;
            let recorded_at = (started_at
                + rng.log_uniform(2 * MICROS_PER_MINUTE, 7 * MICROS_PER_DAY))
            .clamp(started_at + MICROS_PER_SECOND, now);
            first_converted_at = Some(recorded_at);
            self.conversion(batch, tenant, (id, started_at, channel), kind, recorded_at);
            if kind == CONTRACT && self.rng.chance(CUSTOMER_WITH_CONTRACT_SHARE) {
                // Recorded by the same call as the contract: same time.
                self.conversion(
                    batch,
                    tenant,
                    (id, started_at, channel),
                    CUSTOMER,
                    recorded_at,
                );
            }
            if self.rng.chance(SECOND_OUTCOME_SHARE) {
                let later: &[usize] = match kind {
                    TOUR => &[CONTRACT, DAY_PASS, BOOKING],
                    CONTRACT => &[BOOKING],
                    _ => &[CONTRACT, TOUR],
                };
                let second = *self.rng.pick(later);
                let at = (recorded_at + self.rng.log_uniform(MICROS_PER_HOUR, 20 * MICROS_PER_DAY))
                    .min(now);
                self.conversion(batch, tenant, (id, started_at, channel), second, at);
            }
        }

        batch.conversations.push(ConversationRow {
            id,
            tenant,
            session_id,
            channel,
            thread_key,
            contact,
            user_id,
            user_name,
            started_at,
            last_activity_at,
            closed_at,
            opening_message: opening,
            message_count: seq,
            first_converted_at,
            labels: labels(index),
        });
    }

    fn conversion(
        &mut self,
        batch: &mut Batch,
        tenant: usize,
        (conversation_id, conversation_started_at, conversation_channel): (Uuid, i64, &'static str),
        kind: usize,
        recorded_at: i64,
    ) {
        self.conversions_made += 1;
        let counter = &mut self.record_counters[tenant][kind];
        *counter += 1;
        let record_id = format!("{}-{:07}", KINDS[kind].2, *counter);
        batch.conversions.push(ConversionRow {
            id: uuid_v7(&mut self.rng, recorded_at),
            tenant,
            conversation_id,
            kind,
            record_id,
            recorded_at,
            order: self.conversions_made,
            feed_seq: 0,
            conversation_started_at,
            conversation_channel,
        });
    }
}

/// `INSERT INTO table (columns) VALUES (…), (…)` for `rows` rows, with the
/// backend's placeholders.
fn insert_sql(backend: DatabaseBackend, table: &str, columns: &[&str], rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns.len() {
            if column > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match backend {
                DatabaseBackend::Postgres => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql
}

/// Inserts `rows` in statements of `per_insert` rows; `values` appends one
/// row's values in `columns` order.
async fn insert_rows<C, T>(
    conn: &C,
    table: &str,
    columns: &[&str],
    per_insert: usize,
    rows: &[T],
    values: impl Fn(&T, &mut Vec<Value>),
) -> Result<(), DbErr>
where
    C: ConnectionTrait,
{
    let backend = conn.get_database_backend();
    let full_sql = insert_sql(backend, table, columns, per_insert);
    for chunk in rows.chunks(per_insert) {
        let mut params = Vec::with_capacity(chunk.len() * columns.len());
        for row in chunk {
            values(row, &mut params);
        }
        let sql = if chunk.len() == per_insert {
            full_sql.clone()
        } else {
            insert_sql(backend, table, columns, chunk.len())
        };
        conn.execute_raw(Statement::from_sql_and_values(backend, sql, params))
            .await?;
    }
    Ok(())
}

const CONVERSATION_COLUMNS: [&str; 15] = [
    "id",
    "tenant_id",
    "session_id",
    "channel",
    "thread_key",
    "contact",
    "user_id",
    "user_name",
    "started_at",
    "last_activity_at",
    "closed_at",
    "opening_message",
    "message_count",
    "first_converted_at",
    "labels",
];
const MESSAGE_COLUMNS: [&str; 6] = [
    "id",
    "conversation_id",
    "seq",
    "role",
    "content",
    "created_at",
];
const CONVERSION_COLUMNS: [&str; 12] = [
    "id",
    "tenant_id",
    "conversation_id",
    "kind",
    "record_type",
    "record_id",
    "source",
    "attributed",
    "feed_seq",
    "recorded_at",
    "conversation_started_at",
    "conversation_channel",
];

async fn insert_batch(
    db: &DatabaseConnection,
    tenant_ids: &[Uuid; 2],
    batch: &Batch,
) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    insert_rows(
        &txn,
        "conversation",
        &CONVERSATION_COLUMNS,
        CONVERSATION_ROWS_PER_INSERT,
        &batch.conversations,
        |c, v| {
            v.extend([
                Value::from(c.id),
                Value::from(tenant_ids[c.tenant]),
                Value::from(c.session_id.clone()),
                Value::from(c.channel),
                Value::from(c.thread_key.clone()),
                Value::from(c.contact.clone()),
                Value::from(c.user_id.clone()),
                Value::from(c.user_name.clone()),
                Value::from(c.started_at),
                Value::from(c.last_activity_at),
                Value::from(c.closed_at),
                Value::from(c.opening_message.clone()),
                Value::from(c.message_count),
                Value::from(c.first_converted_at),
                Value::from(c.labels.clone()),
            ])
        },
    )
    .await?;
    insert_rows(
        &txn,
        "message",
        &MESSAGE_COLUMNS,
        MESSAGE_ROWS_PER_INSERT,
        &batch.messages,
        |m, v| {
            v.extend([
                Value::from(m.id),
                Value::from(m.conversation_id),
                Value::from(m.seq),
                Value::from(m.role),
                Value::from(m.content.clone()),
                Value::from(m.created_at),
            ])
        },
    )
    .await?;
    txn.commit().await
}

async fn insert_conversions(
    db: &DatabaseConnection,
    tenant_ids: &[Uuid; 2],
    conversions: &[ConversionRow],
) -> Result<(), DbErr> {
    for chunk in conversions.chunks(CONVERSIONS_PER_TRANSACTION) {
        let txn = db.begin().await?;
        insert_rows(
            &txn,
            "conversion",
            &CONVERSION_COLUMNS,
            CONVERSION_ROWS_PER_INSERT,
            chunk,
            |c, v| {
                let (kind, record_type, _) = KINDS[c.kind];
                v.extend([
                    Value::from(c.id),
                    Value::from(tenant_ids[c.tenant]),
                    Value::from(c.conversation_id),
                    Value::from(kind),
                    Value::from(record_type),
                    Value::from(c.record_id.clone()),
                    Value::from("DIRECT"),
                    Value::from(true),
                    Value::from(c.feed_seq),
                    Value::from(c.recorded_at),
                    Value::from(c.conversation_started_at),
                    Value::from(c.conversation_channel),
                ])
            },
        )
        .await?;
        txn.commit().await?;
    }
    Ok(())
}

/// Connections writing batches at once: PostgreSQL indexes a batch on one
/// core while another is sent; SQLite has one writer.
fn writers(backend: DatabaseBackend) -> u32 {
    match backend {
        DatabaseBackend::Postgres => 2,
        _ => 1,
    }
}

async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    let sqlite = url.starts_with("sqlite:");
    options
        // One writer is all SQLite takes.
        .max_connections(if sqlite { 1 } else { 3 })
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(600))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            // WAL like the server; NORMAL sync is safe enough for a loader
            // (a crash means loading again), and a big page cache.
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true)
                .create_if_missing(true)
                .pragma("cache_size", "-262144")
                .pragma("temp_store", "memory")
        });
    Database::connect(options).await
}

async fn count(db: &DatabaseConnection, table: &str) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) FROM {table}"),
        ))
        .await?
        .ok_or_else(|| DbErr::Custom(format!("no row counting {table}")))?;
    row.try_get_by_index::<i64>(0)
}

fn per_second(rows: u64, elapsed: Duration) -> u64 {
    (rows as f64 / elapsed.as_secs_f64().max(1e-9)) as u64
}

pub async fn run(args: GenerateArgs) -> Result<(), String> {
    let started = Instant::now();
    let db = connect(&args.database_url)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.database_url))?;
    let backend = db.get_database_backend();
    Migrator::up(&db, None)
        .await
        .map_err(|e| format!("applying migrations: {e}"))?;
    let tenants = count(&db, "tenant").await.map_err(|e| e.to_string())?;
    if tenants > 0 {
        return Err(format!(
            "the database already has {tenants} tenant(s); bench generate only fills an empty \
             database. Use a new SQLite file or a freshly created PostgreSQL database."
        ));
    }

    let now = chrono::Utc::now().timestamp_micros();
    let mut seed_rng = Rng::new(args.seed ^ 0x7465_6e61_6e74);
    let tenant_created = now - 400 * MICROS_PER_DAY;
    let tenant_ids = [
        uuid_v7(&mut seed_rng, tenant_created),
        uuid_v7(&mut seed_rng, tenant_created),
    ];
    {
        let txn = db.begin().await.map_err(|e| e.to_string())?;
        for (name, id) in TENANTS.iter().zip(tenant_ids) {
            let stmt = Statement::from_sql_and_values(
                backend,
                match backend {
                    DatabaseBackend::Postgres => {
                        "INSERT INTO tenant (id, name, conversion_seq, created_at, settings) \
                         VALUES ($1, $2, 0, $3, '{}')"
                    }
                    _ => {
                        "INSERT INTO tenant (id, name, conversion_seq, created_at, settings) \
                         VALUES (?, ?, 0, ?, '{}')"
                    }
                },
                [
                    Value::from(id),
                    Value::from(*name),
                    Value::from(tenant_created),
                ],
            );
            txn.execute_raw(stmt).await.map_err(|e| e.to_string())?;
        }
        txn.commit().await.map_err(|e| e.to_string())?;
    }
    println!(
        "generating {} conversations (seed {}) into {backend:?}; tenants {} and {}",
        args.conversations, args.seed, TENANTS[0], TENANTS[1]
    );

    // Generation runs on its own thread, a couple of batches ahead; the
    // batches are written by `writers` connections at once.
    let (sender, receiver) = mpsc::channel::<Batch>(2);
    let mut generator = Generator::new(args.seed, args.conversations, now);
    let producer = std::thread::spawn(move || {
        while let Some(batch) = generator.next_batch(BATCH_CONVERSATIONS) {
            if sender.blocking_send(batch).is_err() {
                break;
            }
        }
    });
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let (done_sender, mut done) = mpsc::unbounded_channel::<Result<Batch, String>>();
    for _ in 0..writers(backend) {
        let (db, receiver, done_sender) = (db.clone(), receiver.clone(), done_sender.clone());
        tokio::spawn(async move {
            loop {
                let next = receiver.lock().await.recv().await;
                let Some(batch) = next else { break };
                let result = insert_batch(&db, &tenant_ids, &batch)
                    .await
                    .map(|()| batch)
                    .map_err(|e| format!("inserting conversations and messages: {e}"));
                let failed = result.is_err();
                if done_sender.send(result).is_err() || failed {
                    break;
                }
            }
        });
    }
    drop((receiver, done_sender));

    let load_started = Instant::now();
    let mut last_report = Instant::now();
    let (mut conversations, mut messages) = (0u64, 0u64);
    let mut conversions = Vec::new();
    while let Some(result) = done.recv().await {
        let mut batch = result?;
        conversations += batch.conversations.len() as u64;
        messages += batch.messages.len() as u64;
        conversions.append(&mut batch.conversions);
        if last_report.elapsed() >= Duration::from_secs(2) || conversations == args.conversations {
            last_report = Instant::now();
            let elapsed = load_started.elapsed();
            println!(
                "  {conversations:>9} / {} conversations ({:>3}%), {messages:>9} messages, \
                 {:>7} rows/s, {:.0?}",
                args.conversations,
                conversations * 100 / args.conversations.max(1),
                per_second(conversations + messages, elapsed),
                elapsed,
            );
        }
    }
    producer
        .join()
        .map_err(|_| "the generator thread panicked".to_owned())?;
    if conversations != args.conversations {
        return Err(format!(
            "only {conversations} of {} conversations were written",
            args.conversations
        ));
    }

    // The event feed: per tenant, cursors in recorded order.
    let conversions_started = Instant::now();
    conversions.sort_by_key(|c| (c.tenant, c.recorded_at, c.order));
    let mut last_seq = [0i64; 2];
    for c in &mut conversions {
        last_seq[c.tenant] += 1;
        c.feed_seq = last_seq[c.tenant];
    }
    insert_conversions(&db, &tenant_ids, &conversions)
        .await
        .map_err(|e| format!("inserting conversions: {e}"))?;
    for (id, seq) in tenant_ids.iter().zip(last_seq) {
        let sql = match backend {
            DatabaseBackend::Postgres => "UPDATE tenant SET conversion_seq = $1 WHERE id = $2",
            _ => "UPDATE tenant SET conversion_seq = ? WHERE id = ?",
        };
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [Value::from(seq), Value::from(*id)],
        ))
        .await
        .map_err(|e| e.to_string())?;
    }
    println!(
        "  {} conversions, {} rows/s",
        conversions.len(),
        per_second(conversions.len() as u64, conversions_started.elapsed())
    );
    let load_elapsed = load_started.elapsed();
    let rows = conversations + messages + conversions.len() as u64;
    println!(
        "loaded {rows} rows in {load_elapsed:.1?}: {} rows/s, {} conversations/s",
        per_second(rows, load_elapsed),
        per_second(conversations, load_elapsed)
    );

    // Rows written directly bypass the writes that keep the stats rollups;
    // they are counted as the migration counts an existing database's.
    let counting = Instant::now();
    migration::backfill_stats_rollups(&db)
        .await
        .map_err(|e| format!("counting the stats rollups: {e}"))?;
    println!("stats rollups counted in {:.1?}", counting.elapsed());
    // Feed numbers written directly: new recordings must come after them.
    migration::resync_feed(&db)
        .await
        .map_err(|e| format!("moving the feed's numbering past the rows: {e}"))?;
    if backend == DatabaseBackend::Sqlite {
        // The application writes SQLite's short-text search index with each
        // message; rows written directly get theirs the migration's way.
        let indexing = Instant::now();
        let written = migration::backfill_message_grams(&db)
            .await
            .map_err(|e| format!("indexing short search texts: {e}"))?;
        println!(
            "short search texts indexed for {written} messages in {:.1?}",
            indexing.elapsed()
        );
    }

    // Leave the database as a long-running one would be: statistics gathered
    // (autovacuum would soon) on PostgreSQL; the WAL folded back on SQLite.
    let finishing = Instant::now();
    let finish = match backend {
        DatabaseBackend::Postgres => "VACUUM ANALYZE",
        _ => "PRAGMA wal_checkpoint(TRUNCATE)",
    };
    db.execute_unprepared(finish)
        .await
        .map_err(|e| format!("{finish}: {e}"))?;
    println!("{finish}: {:.1?}", finishing.elapsed());

    let mut summary = Vec::new();
    for table in ["tenant", "conversation", "message", "conversion"] {
        let n = count(&db, table).await.map_err(|e| e.to_string())?;
        summary.push(format!("{table} {n}"));
    }
    println!("done in {:.1?}: {}", started.elapsed(), summary.join(", "));
    db.close().await.map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn sample(n: u64) -> Vec<Batch> {
        let mut generator = Generator::new(42, n, 1_800_000_000 * MICROS_PER_SECOND);
        std::iter::from_fn(|| generator.next_batch(1000)).collect()
    }

    #[test]
    fn the_mix_is_as_described() {
        let batches = sample(20_000);
        let conversations: Vec<&ConversationRow> =
            batches.iter().flat_map(|b| &b.conversations).collect();
        let messages: Vec<&MessageRow> = batches.iter().flat_map(|b| &b.messages).collect();
        let conversions: Vec<&ConversionRow> =
            batches.iter().flat_map(|b| &b.conversions).collect();
        assert_eq!(conversations.len(), 20_000);

        let share = |pred: &dyn Fn(&ConversationRow) -> bool| {
            conversations.iter().filter(|c| pred(c)).count() as f64 / 20_000.0
        };
        assert!((0.88..0.92).contains(&share(&|c| c.tenant == 0)));
        assert!((0.58..0.62).contains(&share(&|c| c.channel == "CHAT")));
        assert!((0.04..0.06).contains(&share(&|c| c.channel == "VOICE")));
        assert!((0.09..0.115).contains(&share(&|c| c.first_converted_at.is_some())));
        let mean = messages.len() as f64 / 20_000.0;
        assert!((2.8..3.4).contains(&mean), "{mean}");
        assert!(
            conversations
                .iter()
                .all(|c| (1..=12).contains(&c.message_count))
        );
        assert!(
            conversations
                .windows(2)
                .all(|w| w[0].started_at <= w[1].started_at)
        );

        let sessions: HashSet<&str> = conversations
            .iter()
            .map(|c| c.session_id.as_str())
            .collect();
        assert_eq!(sessions.len(), conversations.len());
        assert!(conversations.iter().all(|c| c.session_id.len() == 35));
        assert!(
            conversations
                .iter()
                .filter(|c| c.channel == "EMAIL")
                .all(|c| c.contact.is_some() && c.thread_key.is_some())
        );
        assert!(conversations.iter().any(|c| {
            c.opening_message
                .as_ref()
                .is_some_and(|o| o.chars().count() == 120 && o.len() > 120)
        }));

        let rare = messages
            .iter()
            .filter(|m| m.content.contains(corpus::RARE_TOKEN))
            .count();
        assert!((5..=50).contains(&rare), "{rare}");
        assert!(messages.iter().any(|m| m.role == "TOOL"));
        assert!(
            messages
                .iter()
                .filter(|m| m.seq == 1)
                .all(|m| m.role == "VISITOR")
        );

        let records: HashSet<(usize, usize, &str)> = conversions
            .iter()
            .map(|c| (c.tenant, c.kind, c.record_id.as_str()))
            .collect();
        assert_eq!(records.len(), conversions.len());
        assert!(conversions.iter().any(|c| c.kind == CUSTOMER));
        for c in &conversations {
            if let Some(first) = c.first_converted_at {
                assert!(first > c.started_at);
            }
        }
    }

    #[test]
    fn same_seed_same_data() {
        let a = sample(500);
        let b = sample(500);
        let ids = |batches: &[Batch]| -> Vec<Uuid> {
            batches
                .iter()
                .flat_map(|b| &b.messages)
                .map(|m| m.id)
                .collect()
        };
        assert_eq!(ids(&a), ids(&b));
    }

    #[test]
    fn placeholders_per_backend() {
        assert_eq!(
            insert_sql(DatabaseBackend::Postgres, "t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            insert_sql(DatabaseBackend::Sqlite, "t", &["a"], 2),
            "INSERT INTO t (a) VALUES (?), (?)"
        );
    }
}

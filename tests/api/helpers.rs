//! `TestApp`: a real convtrack server on a fresh database, a manual clock,
//! API keys for every role of tenant "acme" and an ADMIN of tenant "globex",
//! and helpers that read like the product.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use convtrack::app::Application;
use convtrack::config::ServerConfig;
use convtrack::domain::clock::ManualClock;
use convtrack::domain::role::Role;
use convtrack::service::{Caller, Services};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use uuid::Uuid;

pub use convtrack::domain::channel::Channel;
pub use convtrack::domain::conversion::ConversionKind;

pub const POSTGRES_ENV: &str = "CONVTRACK_TEST_POSTGRES";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database made for one test and removed after it.
pub enum TestDatabase {
    Sqlite { dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// A fresh, empty database and its URL; `None` for PostgreSQL when the
    /// PostgreSQL tests are not switched on.
    pub async fn create(backend: Backend) -> Option<(Self, String)> {
        let unique = Uuid::now_v7().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("convtrack.db");
                let url = format!("sqlite://{}?mode=rwc", path.display());
                Some((TestDatabase::Sqlite { dir }, url))
            }
            Backend::Postgres => {
                let admin_url = std::env::var(POSTGRES_ENV).ok()?;
                let name = format!("convtrack_test_{unique}");
                let admin = Database::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!(
                        "{POSTGRES_ENV} is set but PostgreSQL is unreachable at {admin_url}: {e}"
                    )
                });
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create the test database");
                let _ = admin.close().await;
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(base, _)| base)
                    .expect("admin URL ends in /DATABASE");
                let url = format!("{base}/{name}");
                Some((TestDatabase::Postgres { admin_url, name }, url))
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match self {
            // The TempDir goes next, with the file and its -wal and -shm.
            TestDatabase::Sqlite { .. } => {}
            TestDatabase::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime; the drop needs its own.
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    runtime.block_on(async {
                        if let Ok(admin) = Database::connect(&admin_url).await {
                            let _ = admin
                                .execute_unprepared(&format!(
                                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                                ))
                                .await;
                            let _ = admin.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// A session as the agent runtime knows it.
#[derive(Debug, Clone)]
pub struct Session {
    pub session_id: String,
    /// The conversation's global id.
    pub id: String,
}

pub struct TestApp {
    pub backend: Backend,
    pub address: String,
    pub database_url: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub services: Services,
    /// Tenant "acme".
    pub admin: String,
    pub agent: String,
    pub checkout: String,
    pub integrator: String,
    pub acme_admin: Caller,
    /// Tenant "globex".
    pub other_admin: String,
    pub other_agent: String,
    sql_statements: Arc<AtomicU64>,
    shutdown: Option<Running>,
    /// Further instances on the same database, stopped with the app.
    others: Vec<Running>,
    database: TestDatabase,
}

/// Starts a server on `database_url` with `clock`; returns its base URL,
/// its SQL statement counter, its services and the switch that stops it.
async fn start_server(
    database_url: &str,
    clock: &ManualClock,
    tweak: fn(&mut ServerConfig),
) -> (String, Arc<AtomicU64>, Services, Running) {
    let mut config = ServerConfig {
        database_url: database_url.to_owned(),
        db_max_connections: 8,
        listen: "127.0.0.1:0".to_owned(),
        link_secrets: Vec::new(),
        // Short, so the test of a late connection_init does not wait 10 s.
        socket_init_timeout: std::time::Duration::from_millis(500),
        socket_send_timeout: ServerConfig::DEFAULT_SOCKET_SEND_TIMEOUT,
        introspection: true,
        request_timeout: std::time::Duration::from_secs(30),
        header_read_timeout: ServerConfig::DEFAULT_HEADER_READ_TIMEOUT,
        rate_limit: convtrack::domain::rate_limit::Budget {
            capacity: 1e9,
            per_second: 1e9,
        },
        cors_origins: vec!["https://admin.example.com".to_owned()],
        search_steps: Default::default(),
        // Webhook receivers in tests listen on loopback.
        webhook_allow_hosts: vec!["127.0.0.1".to_owned()],
        webhook_retention: convtrack::service::webhook_deliveries::DEFAULT_RETENTION,
        webhook_ca_file: None,
        webhook_retry_scale: 1.0,
        retention_every: std::time::Duration::from_secs(60),
        public_url: None,
    };
    tweak(&mut config);
    let app = Application::build(&config, Arc::new(clock.clone()))
        .await
        .expect("server starts");
    let address = format!("http://{}", app.local_addr().expect("bound"));
    let services = app.services().clone();
    let counter = app.sql_statement_counter();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    (address, counter, services, Running { stop, done })
}

/// A server started by a test.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops the server and waits until it has (a SQLite file is free
    /// for the next server only then).
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.done.await;
    }
}

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .expect("valid")
        .with_timezone(&Utc)
}

impl TestApp {
    /// `None` for PostgreSQL when the PostgreSQL tests are not switched on.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// As [`TestApp::spawn`], with some configuration changed.
    pub async fn spawn_with(backend: Backend, tweak: fn(&mut ServerConfig)) -> Option<TestApp> {
        let (database, database_url) = TestDatabase::create(backend).await?;
        let clock = ManualClock::starting_at(start_time());
        let (address, sql_statements, services, shutdown) =
            start_server(&database_url, &clock, tweak).await;

        let key = |tenant: &'static str, role: Role| {
            let services = services.clone();
            async move {
                services
                    .create_key(tenant, role, true)
                    .await
                    .expect("create key")
            }
        };
        let admin = key("acme", Role::Admin).await;
        let acme_admin = Caller {
            tenant_id: admin.tenant.id,
            role: Role::Admin,
            key_id: admin.key.id,
        };
        Some(TestApp {
            backend,
            address,
            database_url,
            client: reqwest::Client::new(),
            clock,
            admin: admin.secret,
            agent: key("acme", Role::Agent).await.secret,
            checkout: key("acme", Role::Checkout).await.secret,
            integrator: key("acme", Role::Integrator).await.secret,
            acme_admin,
            other_admin: key("globex", Role::Admin).await.secret,
            other_agent: key("globex", Role::Agent).await.secret,
            services,
            sql_statements,
            shutdown: Some(shutdown),
            others: Vec::new(),
            database,
        })
    }

    /// Stops the server and starts a fresh one on the same database (what an
    /// operator's restart does); requests go to the new one from now on.
    pub async fn restart(&mut self) {
        if let Some(running) = self.shutdown.take() {
            running.stop().await;
        }
        let (address, counter, services, shutdown) =
            start_server(&self.database_url, &self.clock, |_| {}).await;
        self.address = address;
        self.sql_statements = counter;
        self.services = services;
        self.shutdown = Some(shutdown);
    }

    /// Another server on the same database, running alongside; returns its base URL.
    pub async fn second_instance(&mut self) -> String {
        self.second_instance_with(|_| {}).await
    }

    /// As [`TestApp::second_instance`], with some configuration changed.
    pub async fn second_instance_with(&mut self, tweak: fn(&mut ServerConfig)) -> String {
        let (address, _, _, shutdown) = start_server(&self.database_url, &self.clock, tweak).await;
        self.others.push(shutdown);
        address
    }

    /// POSTs a GraphQL request to another instance.
    pub async fn gql_at(&self, base: &str, key: &str, query: &str, variables: Value) -> Value {
        graphql_at(&self.client, base, key, query, variables).await
    }

    /// `createCtaLink` as the agent; returns the payload.
    pub async fn create_link(&self, session: &Session, action: &str, target: &str) -> Value {
        let body = self
            .try_create_link(&self.agent, session, action, target)
            .await;
        data(&body, "createCtaLink").clone()
    }

    pub async fn try_create_link(
        &self,
        key: &str,
        session: &Session,
        action: &str,
        target: &str,
    ) -> Value {
        self.gql(
            key,
            "mutation($input: CreateCtaLinkInput!) { createCtaLink(input: $input) { url token expiresAt trackedPath } }",
            json!({ "input": { "sessionId": session.session_id, "action": action, "targetUrl": target } }),
        )
        .await
    }

    /// The checkout recording an outcome with the link token it received.
    pub async fn record_with_token(
        &self,
        key: &str,
        token: &str,
        kind: ConversionKind,
        record_id: &str,
    ) -> Value {
        self.gql(
            key,
            "mutation($input: RecordConversionInput!) { recordConversion(input: $input) {
                created attributed
                conversion { id kind source attributed unattributedReason linkAction record { type id } } } }",
            json!({ "input": { "linkToken": token, "kind": kind.as_str(), "recordId": record_id } }),
        )
        .await
    }

    pub fn sql_statements(&self) -> u64 {
        self.sql_statements.load(Ordering::SeqCst)
    }

    pub fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
    }

    /// POSTs a GraphQL request with `key` and returns the JSON body.
    pub async fn gql(&self, key: &str, query: &str, variables: Value) -> Value {
        self.post_graphql(Some(key), query, variables)
            .await
            .json()
            .await
            .expect("JSON body")
    }

    pub async fn post_graphql(
        &self,
        key: Option<&str>,
        query: &str,
        variables: Value,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.address))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.expect("server answers")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("server answers")
    }

    /// `startSession` as the agent runtime; panics on an error.
    pub async fn start_session(&self, channel: Channel) -> Session {
        self.start_session_with(json!({ "channel": channel.as_str() }))
            .await
    }

    pub async fn start_session_with(&self, input: Value) -> Session {
        let body = self.try_start_session(&self.agent, input).await;
        let payload = data(&body, "startSession");
        Session {
            session_id: payload["sessionId"].as_str().expect("sessionId").to_owned(),
            id: payload["conversation"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        }
    }

    pub async fn try_start_session(&self, key: &str, input: Value) -> Value {
        self.gql(
            key,
            "mutation($input: StartSessionInput!) { startSession(input: $input) {
                sessionId resumed conversation { id channel contact active startedAt } } }",
            json!({ "input": input }),
        )
        .await
    }

    /// Links VISITOR badges to `https://admin.example.com/visitors/{id}`.
    pub async fn link_visitor_records(&self) {
        let settings = self
            .gql(
                &self.admin,
                "mutation { updateTenantSettings(input: { recordUrlTemplates: [
                    { recordType: VISITOR, template: \"https://admin.example.com/visitors/{id}\" }
                ] }) { settings { attributionWindowDays } } }",
                json!({}),
            )
            .await;
        data(&settings, "updateTenantSettings");
    }

    /// `appendMessage` as the agent runtime; returns the whole body.
    pub async fn say(&self, session: &Session, role: &str, content: &str) -> Value {
        self.gql(
            &self.agent,
            "mutation($input: AppendMessageInput!) { appendMessage(input: $input) {
                message { id role label content position createdAt }
                conversation { openingMessage messageCount lastActivityAt } } }",
            json!({ "input": { "sessionId": session.session_id, "role": role, "content": content } }),
        )
        .await
    }

    pub async fn close(&self, session: &Session) -> Value {
        self.gql(
            &self.agent,
            "mutation($input: CloseSessionInput!) { closeSession(input: $input) {
                conversation { active closedAt } } }",
            json!({ "input": { "sessionId": session.session_id } }),
        )
        .await
    }

    /// `recordConversion` with any input, as `key`; returns the whole body.
    pub async fn record_as(&self, key: &str, input: Value) -> Value {
        self.gql(
            key,
            "mutation($input: RecordConversionInput!) { recordConversion(input: $input) {
                created attributed
                conversion { id kind source attributed record { type id url } }
                conversions { id kind record { type id } } } }",
            json!({ "input": input }),
        )
        .await
    }

    /// A day pass bought through `session`'s link a month after it was
    /// issued: past the attribution window, so kept for review.
    pub async fn day_pass_a_month_late(&self, session: &Session, record_id: &str) {
        let token = self
            .create_link(session, "DAY_PASS", "https://example.com/day-pass")
            .await["token"]
            .as_str()
            .expect("token")
            .to_owned();
        self.advance(TimeDelta::days(31));
        let recorded = self
            .record_with_token(
                &self.checkout,
                &token,
                ConversionKind::DayPassPurchased,
                record_id,
            )
            .await;
        assert_eq!(data(&recorded, "recordConversion")["attributed"], false);
    }

    /// The checkout recording an outcome of `session`.
    pub async fn record_conversion(
        &self,
        session: &Session,
        kind: ConversionKind,
        record_id: &str,
    ) -> Value {
        self.record_as(
            &self.checkout,
            json!({ "sessionId": session.session_id, "kind": kind.as_str(), "recordId": record_id }),
        )
        .await
    }

    /// The conversation as the admin sees it, or null.
    pub async fn conversation(&self, key: &str, session: &Session) -> Value {
        let body = self
            .gql(
                key,
                "query($id: ID) { conversation(id: $id) {
                    id sessionId channel active openingMessage messageCount closedAt
                    user { id name } contact
                    badges { kind label colour record { type id url } recordedAt }
                    conversions { id kind attributed source } } }",
                json!({ "id": session.id }),
            )
            .await;
        assert_no_errors(&body);
        body["data"]["conversation"].clone()
    }

    /// Number of conversion rows in the whole database.
    pub async fn conversion_rows(&self) -> i64 {
        use sea_orm::{EntityTrait, PaginatorTrait};
        entity::conversion::Entity::find()
            .count(&self.services.db)
            .await
            .expect("count") as i64
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for running in self
            .shutdown
            .take()
            .into_iter()
            .chain(self.others.drain(..))
        {
            let _ = running.stop.send(());
        }
    }
}

pub const LIST: &str = "query($first: Int, $after: String, $filter: ConversationFilter) {
    conversations(first: $first, after: $after, filter: $filter) {
        edges { cursor node { sessionId channel } }
        nodes { sessionId }
        pageInfo { hasNextPage endCursor } } }";

/// Every session ID the list yields for `filter`, following `endCursor`
/// with pages of `first`.
pub async fn all_pages(app: &TestApp, first: i64, filter: Value) -> Vec<String> {
    let mut after: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let body = app
            .gql(
                &app.admin,
                LIST,
                json!({ "first": first, "after": after, "filter": filter }),
            )
            .await;
        let page = data(&body, "conversations");
        for node in page["nodes"].as_array().expect("nodes") {
            seen.push(node["sessionId"].as_str().expect("sessionId").to_owned());
        }
        if page["pageInfo"]["hasNextPage"] != true {
            return seen;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
}

/// The payload of `field` in a successful response; panics with the errors otherwise.
/// POSTs a GraphQL request to the server at `base` as `key`; the whole body.
pub async fn graphql_at(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    query: &str,
    variables: Value,
) -> Value {
    client
        .post(format!("{base}/graphql"))
        .bearer_auth(key)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("server answers")
        .json()
        .await
        .expect("JSON body")
}

pub fn data<'a>(body: &'a Value, field: &str) -> &'a Value {
    assert_no_errors(body);
    &body["data"][field]
}

pub fn assert_no_errors(body: &Value) {
    assert!(
        body.get("errors").is_none(),
        "unexpected errors: {}",
        serde_json::to_string_pretty(&body["errors"]).unwrap_or_default()
    );
}

/// The `extensions.code` of the first error; panics when there is none.
pub fn error_code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {body}"))
        .to_owned()
}

pub fn error_message(body: &Value) -> String {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

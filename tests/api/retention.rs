//! messageRetentionDays: chats idle longer than the tenant keeps them are
//! erased by the server on its own, as eraseContact would, with an audit
//! entry and figures in /metrics; newer chats and other tenants' stay.

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::*;

const SET_RETENTION: &str = "mutation($days: Int) {
    updateTenantSettings(input: { messageRetentionDays: $days }) {
        settings { messageRetentionDays attributionWindowDays } } }";

fn often(config: &mut convtrack::config::ServerConfig) {
    config.retention_every = Duration::from_millis(50);
}

impl TestApp {
    async fn keep_chats_for(&self, days: Value) -> Value {
        self.gql(&self.admin, SET_RETENTION, json!({ "days": days }))
            .await
    }

    /// Waits (at most ten seconds) until `session` shows as erased.
    async fn erased_in_time(&self, session: &Session) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let detail = self.detail(session).await;
            if detail["erasedAt"].is_string() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }
}

test_both!(chats_idle_past_the_retention_period_are_erased, with often, |app| {
    let old = app
        .start_session_with(json!({ "channel": "WHATSAPP", "contact": "+351912345678" }))
        .await;
    assert_no_errors(&app.say(&old, "VISITOR", "my passport is X1234567").await);
    assert_no_errors(&app.record_conversion(&old, ConversionKind::TourBooked, "tour-1").await);
    app.advance(TimeDelta::days(20));
    let recent = app
        .start_session_with(json!({ "channel": "WHATSAPP", "contact": "+351912000111" }))
        .await;
    assert_no_errors(&app.say(&recent, "VISITOR", "hello").await);
    let other_tenant = app
        .gql(
            &app.other_agent,
            "mutation { startSession(input: { channel: CHAT, contact: \"globex visitor\" }) {
                conversation { id } } }",
            json!({}),
        )
        .await;
    assert_no_errors(&other_tenant);
    let stats_before = app.stats_now().await;

    let set = app.keep_chats_for(json!(15)).await;
    assert_eq!(data(&set, "updateTenantSettings")["settings"]["messageRetentionDays"], 15);
    assert!(app.erased_in_time(&old).await, "the 20-day-old chat is erased");
    let detail = app.detail(&old).await;
    assert!(detail["contact"].is_null());
    assert_eq!(detail["messages"]["nodes"][0]["erased"], true);
    assert_eq!(detail["badges"][0]["record"]["id"], "tour-1");
    assert!(app.detail(&recent).await["erasedAt"].is_null(), "a recent chat stays");
    assert_eq!(app.stats_now().await, stats_before);

    let log = app
        .gql(
            &app.admin,
            "{ erasures { nodes { scope reason conversations messages keyPrefix } } }",
            json!({}),
        )
        .await;
    let entry = &data(&log, "erasures")["nodes"][0];
    assert_eq!(entry["scope"], "RETENTION");
    assert_eq!(entry["conversations"], 1);
    assert_eq!(entry["messages"], 1);
    assert!(entry["keyPrefix"].is_null());
    assert!(entry["reason"].as_str().expect("reason").contains("15 days"));

    // One recorder serves every server of this test process: the figures
    // are there, their values are shared.
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    for figure in [
        "convtrack_erased_conversations_total{scope=\"RETENTION\"}",
        "convtrack_erased_messages_total{scope=\"RETENTION\"}",
        "convtrack_retention_backlog_conversations",
        "convtrack_retention_last_pass_timestamp_seconds",
    ] {
        assert!(metrics.contains(figure), "{figure} in {metrics}");
    }

    // Once the recent chat has been idle long enough, it goes too.
    app.advance(TimeDelta::days(16));
    assert!(app.erased_in_time(&recent).await);
    let globex = app
        .gql(&app.other_admin, "{ conversations { nodes { erasedAt contact } } }", json!({}))
        .await;
    assert_eq!(data(&globex, "conversations")["nodes"][0]["contact"], "globex visitor");
});

test_both!(
    retention_takes_one_day_to_ten_years_and_can_be_removed,
    |app| {
        for days in [json!(0), json!(-3), json!(3651)] {
            let body = app.keep_chats_for(days.clone()).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{days}");
        }
        let set = app.keep_chats_for(json!(3650)).await;
        assert_eq!(
            data(&set, "updateTenantSettings")["settings"]["messageRetentionDays"],
            3650
        );
        // A change that leaves the period out keeps it.
        let other = app
            .gql(
                &app.admin,
                "mutation { updateTenantSettings(input: { attributionWindowDays: 10 }) {
                settings { messageRetentionDays } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            data(&other, "updateTenantSettings")["settings"]["messageRetentionDays"],
            3650
        );
        let removed = app.keep_chats_for(Value::Null).await;
        assert!(
            data(&removed, "updateTenantSettings")["settings"]["messageRetentionDays"].is_null()
        );
        let agent = app
            .gql(&app.agent, SET_RETENTION, json!({ "days": 30 }))
            .await;
        assert_eq!(error_code(&agent), "FORBIDDEN");
    }
);

/// Three instances on one PostgreSQL database apply the same period to
/// more conversations than one batch holds: each is erased once, and the
/// audit entries add up to exactly the conversations erased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_a_database_erase_each_chat_once() {
    let Some(mut app) = TestApp::spawn_with(Backend::Postgres, often).await else {
        return;
    };
    app.second_instance_with(often).await;
    app.second_instance_with(often).await;
    let total = convtrack::service::erasure::BATCH as usize + 37;
    let mut sessions = Vec::new();
    for n in 0..total {
        let session = app
            .start_session_with(json!({ "channel": "CHAT", "contact": format!("visitor {n}") }))
            .await;
        assert_no_errors(&app.say(&session, "VISITOR", "hi").await);
        sessions.push(session);
    }
    app.advance(TimeDelta::days(3));
    assert_no_errors(&app.keep_chats_for(json!(2)).await);
    for session in [&sessions[0], &sessions[total - 1]] {
        assert!(app.erased_in_time(session).await);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let counted = loop {
        let entries = app.erasure_log().await;
        let sum = |field: &str| {
            entries
                .iter()
                .map(|e| e[field].as_i64().expect("n"))
                .sum::<i64>()
        };
        if sum("conversations") == total as i64 || Instant::now() > deadline {
            break (sum("conversations"), sum("messages"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(counted, (total as i64, total as i64));
    let listed = app
        .gql(
            &app.admin,
            "{ conversations(first: 250) { nodes { erasedAt } } }",
            json!({}),
        )
        .await;
    for node in data(&listed, "conversations")["nodes"]
        .as_array()
        .expect("nodes")
    {
        assert!(node["erasedAt"].is_string());
    }
}

//! The exports an analyst downloads: every conversation (or conversion) the
//! filters match, as NDJSON or as CSV a spreadsheet opens safely, however
//! many pages the server reads to write it.

use chrono::TimeDelta;
use convtrack::domain::session_id::SessionId;
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};

use crate::helpers::*;

const CONVERSATION_COLUMNS: &str = "id,sessionId,channel,startedAt,lastActivityAt,closedAt,contact,\
userId,userName,threadKey,openingMessage,messageCount,converted,badges,revenue,erasedAt,labels";
const CONVERSION_COLUMNS: &str = "id,kind,recordType,recordId,recordedAt,status,attributed,\
unattributedReason,source,linkAction,value,currency,conversationId,sessionId,channel";

const FORMULA: &str = "=HYPERLINK(\"http://evil.example\",\"click\")";

impl TestApp {
    /// `GET path` with `key` (none: no Authorization header).
    pub async fn download(&self, key: Option<&str>, path: &str) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.address));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.expect("server answers")
    }

    /// The admin's export at `path`, as text; panics unless it is a 200.
    pub async fn export_text(&self, path: &str) -> String {
        let response = self.download(Some(&self.admin), path).await;
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.expect("whole body")
    }

    /// The admin's NDJSON export at `path`, one value per line.
    pub async fn export_lines(&self, path: &str) -> Vec<Value> {
        self.export_text(path)
            .await
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
            .collect()
    }
}

/// Records of an RFC 4180 text (quoted cells may hold commas, quotes and
/// line breaks).
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut cell) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        cell.is_empty() && record.is_empty(),
        "the last record ends with CRLF"
    );
    records
}

/// A CSV export as maps from column name to cell.
fn csv_rows(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let text = text
        .strip_prefix('\u{feff}')
        .expect("a byte order mark first");
    let mut records = csv_records(text).into_iter();
    let header = records.next().expect("a header");
    records
        .map(|record| {
            assert_eq!(record.len(), header.len(), "{record:?}");
            header.iter().cloned().zip(record).collect()
        })
        .collect()
}

test_both!(
    an_admin_exports_every_conversation_with_its_outcomes,
    |app| {
        let chat = app
            .start_session_with(json!({ "channel": "CHAT", "userId": "u-41", "userName": FORMULA }))
            .await;
        assert_no_errors(
            &app.say(&chat, "VISITOR", "Hello, I need\na \"quiet\" desk")
                .await,
        );
        app.advance(TimeDelta::minutes(5));
        let whatsapp = app
            .start_session_with(json!({ "channel": "WHATSAPP", "contact": "+351912345678" }))
            .await;
        assert_no_errors(&app.say(&whatsapp, "VISITOR", "Day pass please").await);
        let recorded = app
            .record_as(
                &app.checkout,
                json!({ "sessionId": whatsapp.session_id, "kind": "DAY_PASS_PURCHASED",
                    "recordId": "dp-7", "value": { "amount": "25.00", "currency": "EUR" } }),
            )
            .await;
        assert_no_errors(&recorded);

        let response = app
            .download(Some(&app.admin), "/export/conversations.ndjson")
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/x-ndjson");
        let disposition = response.headers()["content-disposition"]
            .to_str()
            .expect("ascii");
        assert!(
            disposition.starts_with("attachment; filename=\"conversations-"),
            "{disposition}"
        );
        let lines: Vec<Value> = response
            .text()
            .await
            .expect("body")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(lines.len(), 2, "newest first: {lines:?}");
        let (newest, oldest) = (&lines[0], &lines[1]);
        assert_eq!(newest["sessionId"], whatsapp.session_id);
        assert_eq!(newest["id"], whatsapp.id);
        assert_eq!(newest["channel"], "WHATSAPP");
        assert_eq!(newest["contact"], "+351912345678");
        assert_eq!(newest["converted"], true);
        assert_eq!(newest["badges"], json!(["DAY_PASS_PURCHASED"]));
        assert_eq!(
            newest["revenue"],
            json!([{ "amount": "25.00", "currency": "EUR" }])
        );
        assert_eq!(newest["messageCount"], 1);
        assert_eq!(oldest["userName"], FORMULA);
        assert_eq!(oldest["userId"], "u-41");
        assert_eq!(oldest["openingMessage"], "Hello, I need a \"quiet\" desk");
        assert_eq!(oldest["converted"], false);
        assert_eq!(oldest["erasedAt"], Value::Null);
        let keys: Vec<&str> = newest
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut columns: Vec<&str> = CONVERSATION_COLUMNS.split(',').collect();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort_unstable();
        columns.sort_unstable();
        assert_eq!(sorted_keys, columns, "NDJSON keys are the CSV columns");

        let csv = app.export_text("/export/conversations.csv").await;
        assert!(
            csv.starts_with(&format!("\u{feff}{CONVERSATION_COLUMNS}\r\n")),
            "{csv}"
        );
        let rows = csv_rows(&csv);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0]["contact"], "+351912345678",
            "a phone number stays a number"
        );
        assert_eq!(rows[0]["revenue"], "25.00 EUR");
        assert_eq!(rows[0]["badges"], "DAY_PASS_PURCHASED");
        assert_eq!(rows[0]["converted"], "true");
        assert_eq!(
            rows[1]["userName"],
            format!("'{FORMULA}"),
            "a formula is written as text"
        );
        assert_eq!(rows[1]["openingMessage"], "Hello, I need a \"quiet\" desk");
        assert_eq!(
            rows[1]["startedAt"],
            oldest["startedAt"].as_str().expect("time")
        );

        let one = app
            .export_lines(&format!(
                "/export/conversations.ndjson?sessionId={}",
                whatsapp.session_id
            ))
            .await;
        assert_eq!(one.len(), 1);
        assert_eq!(one[0]["sessionId"], whatsapp.session_id);
    }
);

test_both!(
    the_conversions_export_holds_credited_and_review_rows,
    |app| {
        let credited = app.start_session(Channel::Chat).await;
        assert_no_errors(
            &app.record_conversion(&credited, ConversionKind::TourBooked, "visitor-1")
                .await,
        );
        let late = app.start_session(Channel::Voice).await;
        app.day_pass_a_month_late(&late, "dp-late").await;

        let all = app.export_lines("/export/conversions.ndjson").await;
        assert_eq!(all.len(), 2, "oldest first: {all:?}");
        assert_eq!(all[0]["kind"], "TOUR_BOOKED");
        assert_eq!(all[0]["recordType"], "VISITOR");
        assert_eq!(all[0]["recordId"], "visitor-1");
        assert_eq!(all[0]["attributed"], true);
        assert_eq!(all[0]["status"], "ACTIVE");
        assert_eq!(all[0]["source"], "DIRECT");
        assert_eq!(all[0]["conversationId"], credited.id);
        assert_eq!(all[0]["sessionId"], credited.session_id);
        assert_eq!(all[0]["channel"], "CHAT");
        assert_eq!(all[1]["attributed"], false);
        assert_eq!(all[1]["unattributedReason"], "ATTRIBUTION_EXPIRED");
        assert_eq!(all[1]["linkAction"], "DAY_PASS");
        assert_eq!(all[1]["channel"], "VOICE");

        let review = app
            .export_lines("/export/conversions.ndjson?converted=false")
            .await;
        assert_eq!(review.len(), 1);
        assert_eq!(review[0]["recordId"], "dp-late");
        let tours = app
            .export_lines("/export/conversions.ndjson?badge=tour_booked&channel=CHAT")
            .await;
        assert_eq!(tours.len(), 1);
        assert_eq!(tours[0]["recordId"], "visitor-1");

        let csv = app.export_text("/export/conversions.csv").await;
        assert!(
            csv.starts_with(&format!("\u{feff}{CONVERSION_COLUMNS}\r\n")),
            "{csv}"
        );
        let rows = csv_rows(&csv);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["attributed"], "false");
        assert_eq!(rows[1]["sessionId"], late.session_id);
    }
);

/// Inserts `count` conversations of acme straight into the database, one
/// minute apart from `start_time()`, on the channels in turn.
async fn seed(app: &TestApp, count: i64) {
    use entity::conversation;
    let micros = start_time().timestamp_micros();
    let channels = ["CHAT", "EMAIL", "WHATSAPP", "VOICE"];
    let rows: Vec<conversation::ActiveModel> = (0..count)
        .map(|i| {
            let at = micros + i * 60_000_000;
            conversation::ActiveModel {
                id: Set(uuid::Uuid::now_v7()),
                tenant_id: Set(app.acme_admin.tenant_id),
                session_id: Set(SessionId::generate().expect("random").as_str().to_owned()),
                channel: Set(channels[(i % 4) as usize].to_owned()),
                thread_key: Set(None),
                contact: Set(None),
                user_id: Set(None),
                user_name: Set(None),
                started_at: Set(at),
                last_activity_at: Set(at),
                closed_at: Set(None),
                opening_message: Set(Some(format!("seeded {i}"))),
                message_count: Set(1),
                first_converted_at: Set(None),
                retractions: Set(0),
                erased_at: Set(None),
                labels: Set(String::new()),
            }
        })
        .collect();
    for chunk in rows.chunks(200) {
        conversation::Entity::insert_many(chunk.to_vec())
            .exec(&app.services.db)
            .await
            .expect("seeded");
    }
}

test_both!(an_export_of_many_pages_holds_each_row_once, |app| {
    seed(&app, 2_345).await;
    let all = app.export_lines("/export/conversations.ndjson").await;
    assert_eq!(all.len(), 2_345);
    let mut ids: Vec<&str> = all.iter().map(|r| r["id"].as_str().expect("id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2_345, "no row twice");
    assert_eq!(all[0]["openingMessage"], "seeded 2344", "newest first");

    // Voice conversations started in the first 1,000 minutes: indexes 3,
    // 7, … 999.
    let to = (start_time() + TimeDelta::minutes(1_000)).to_rfc3339();
    let path = format!(
        "/export/conversations.csv?channel=voice&from={}&to={}",
        start_time().format("%Y-%m-%d"),
        urlencode(&to)
    );
    let rows = csv_rows(&app.export_text(&path).await);
    assert_eq!(rows.len(), 250);
    assert!(rows.iter().all(|r| r["channel"] == "VOICE"));
    assert_eq!(rows[0]["openingMessage"], "seeded 999");
});

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

test_both!(an_export_refuses_other_roles_and_bad_parameters, |app| {
    let seen = app.start_session(Channel::Chat).await;
    let none = app.download(None, "/export/conversations.csv").await;
    assert_eq!(none.status(), 401);
    for key in [&app.agent, &app.checkout, &app.integrator] {
        let refused = app
            .download(Some(key), "/export/conversations.ndjson")
            .await;
        assert_eq!(refused.status(), 403);
        let body: Value = refused.json().await.expect("JSON error");
        assert_eq!(error_code(&body), "FORBIDDEN");
    }
    for (path, code, status) in [
        (
            "/export/conversations.ndjson?limit=5",
            "BAD_USER_INPUT",
            400,
        ),
        (
            "/export/conversations.csv?from=yesterday",
            "BAD_USER_INPUT",
            400,
        ),
        ("/export/conversions.csv?channel=FAX", "BAD_USER_INPUT", 400),
        (
            "/export/conversations.ndjson?converted=maybe",
            "BAD_USER_INPUT",
            400,
        ),
        (
            "/export/conversations.csv?label=prompt",
            "BAD_USER_INPUT",
            400,
        ),
        (
            "/export/conversations.csv?label=Prompt%3Dv7",
            "BAD_USER_INPUT",
            400,
        ),
        (
            "/export/conversions.csv?label=prompt%3Dv7",
            "BAD_USER_INPUT",
            400,
        ),
        ("/export/conversations.xlsx", "NOT_FOUND", 404),
        ("/export/people.csv", "NOT_FOUND", 404),
    ] {
        let refused = app.download(Some(&app.admin), path).await;
        assert_eq!(refused.status(), status, "{path}");
        let body: Value = refused.json().await.expect("JSON error");
        assert_eq!(error_code(&body), code, "{path}");
    }
    // Another tenant's admin exports its own rows only.
    let other = app
        .download(Some(&app.other_admin), "/export/conversations.ndjson")
        .await;
    let text = other.text().await.expect("body");
    assert!(!text.contains(&seen.session_id), "{text}");
});

test_both!(an_erased_person_is_absent_from_every_export, |app| {
    let maria = app.maria().await;
    let before = app.export_text("/export/conversations.ndjson").await;
    assert!(before.contains(crate::erasure::HER_NAME));
    let erased = app
        .erase(json!({ "contact": "maria.silva@example.org", "reason": "request #12" }))
        .await;
    assert_eq!(data(&erased, "eraseContact")["erased"], 1);
    for path in [
        "/export/conversations.ndjson",
        "/export/conversations.csv",
        "/export/conversions.ndjson",
        "/export/conversions.csv",
    ] {
        let text = app.export_text(path).await;
        for gone in [
            crate::erasure::HER_WORDS,
            crate::erasure::HER_EMAIL,
            crate::erasure::HER_NAME,
            "zqxvbn",
        ] {
            assert!(
                !text.to_lowercase().contains(&gone.to_lowercase()),
                "{path}: {gone} in {text}"
            );
        }
    }
    let lines = app.export_lines("/export/conversations.ndjson").await;
    assert_eq!(lines[0]["sessionId"], maria.session.session_id);
    assert!(lines[0]["erasedAt"].is_string());
    assert_eq!(
        lines[0]["badges"],
        json!(["TOUR_BOOKED"]),
        "the outcome stays"
    );
});

test_both!(exports_carry_labels_and_narrow_by_them, |app| {
    let v7 = app
        .start_session_with(json!({ "channel": "CHAT",
            "labels": [{ "key": "prompt", "value": "v7" }, { "key": "model", "value": "m 1" }] }))
        .await;
    app.start_session_with(
        json!({ "channel": "CHAT", "labels": [{ "key": "prompt", "value": "v8" }] }),
    )
    .await;
    app.start_session(Channel::Chat).await;
    let lines = app
        .export_lines("/export/conversations.ndjson?label=prompt%3Dv7")
        .await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["sessionId"], v7.session_id);
    assert_eq!(
        lines[0]["labels"],
        json!([{ "key": "model", "value": "m 1" }, { "key": "prompt", "value": "v7" }])
    );
    let csv = app.export_text("/export/conversations.csv").await;
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 3);
    let labelled = rows
        .iter()
        .find(|r| r["sessionId"] == v7.session_id)
        .expect("the v7 row");
    assert_eq!(labelled["labels"], "model=m 1; prompt=v7");
    let both = app
        .export_lines("/export/conversations.ndjson?label=prompt%3Dv7&label=model%3Dm%202")
        .await;
    assert!(both.is_empty(), "every label must hold: {both:?}");
});

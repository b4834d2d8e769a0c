//! Prompt and model experiments: labels on sessions, set at the start or
//! later, filter the list, ride on feed events and split the stats — with
//! a 95% interval per value, equal to a count of the rows on a randomised
//! history.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use convtrack::domain::label::wilson_interval;
use convtrack::domain::money::{Currency, format_minor};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;
use crate::rollups::{Dice, random_history, ranges, rfc3339};

const SET: &str = "mutation($input: SetSessionLabelsInput!) { setSessionLabels(input: $input) {
    conversation { sessionId labels { key value } } } }";
const BY_LABEL: &str = "query($key: String!, $from: DateTime, $to: DateTime, $channel: Channel) {
    conversionStats(from: $from, to: $to, channel: $channel) {
        conversations byLabel(key: $key) {
            value conversations converted rate rateLow rateHigh revenue { amount currency } } } }";
const LABELS: &str = "query($id: ID) { conversation(id: $id) { labels { key value } } }";

fn labels(pairs: &[(&str, &str)]) -> Value {
    json!(
        pairs
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect::<Vec<_>>()
    )
}

async fn labelled(app: &TestApp, pairs: &[(&str, &str)]) -> Session {
    app.start_session_with(json!({ "channel": "CHAT", "labels": labels(pairs) }))
        .await
}

async fn set(app: &TestApp, key: &str, session: &Session, pairs: &[(&str, &str)]) -> Value {
    app.gql(
        key,
        SET,
        json!({ "input": { "sessionId": session.session_id, "labels": labels(pairs) } }),
    )
    .await
}

async fn labels_of(app: &TestApp, session: &Session) -> Value {
    let body = app
        .gql(&app.admin, LABELS, json!({ "id": session.id }))
        .await;
    data(&body, "conversation")["labels"].clone()
}

async fn by_label(app: &TestApp, key: &str) -> Value {
    let body = app.gql(&app.admin, BY_LABEL, json!({ "key": key })).await;
    data(&body, "conversionStats")["byLabel"].clone()
}

test_both!(sessions_carry_labels_set_at_start_and_later, |app| {
    let session = labelled(&app, &[("prompt", "v7"), ("model", "gpt-4.1")]).await;
    assert_eq!(
        labels_of(&app, &session).await,
        json!([{ "key": "model", "value": "gpt-4.1" }, { "key": "prompt", "value": "v7" }])
    );
    // Later: one key replaced, one added, one kept.
    let body = set(
        &app,
        &app.agent,
        &session,
        &[("prompt", "v8"), ("experiment", "cta-b")],
    )
    .await;
    assert_eq!(
        data(&body, "setSessionLabels")["conversation"]["labels"],
        json!([{ "key": "experiment", "value": "cta-b" }, { "key": "model", "value": "gpt-4.1" },
               { "key": "prompt", "value": "v8" }])
    );
    assert_no_errors(&set(&app, &app.admin, &session, &[("prompt", "v8")]).await);

    // What is refused says why, and changes nothing.
    let before = labels_of(&app, &session).await;
    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
    let eleven: Vec<(&str, &str)> = eleven
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let too_long = "x".repeat(101);
    let eight: Vec<(String, String)> = (0..8).map(|i| (format!("e{i}"), "v".into())).collect();
    let eight: Vec<(&str, &str)> = eight
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (pairs, says) in [
        (vec![("Prompt", "v1")], "a-z, 0-9"),
        (vec![("", "v1")], "1 to 40"),
        (vec![("prompt", "")], "1 to 100"),
        (vec![("prompt", too_long.as_str())], "1 to 100"),
        (vec![("prompt", "two\nlines")], "control characters"),
        (vec![("prompt", "a"), ("prompt", "b")], "given twice"),
        (eleven.clone(), "at most 10"),
        // Three held plus eight new make eleven.
        (eight, "at most 10"),
    ] {
        let body = set(&app, &app.agent, &session, &pairs).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{pairs:?}: {body}");
        assert!(body.to_string().contains(says), "{pairs:?}: {body}");
    }
    let body = app
        .try_start_session(
            &app.agent,
            json!({ "channel": "CHAT", "labels": labels(&eleven) }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(labels_of(&app, &session).await, before);

    // Who may: the agent and the admin; not the integrator or checkout.
    for key in [&app.integrator, &app.checkout] {
        let body = set(&app, key, &session, &[("prompt", "v9")]).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    }
    // Another tenant's session is as unknown as a missing one.
    let body = set(&app, &app.other_agent, &session, &[("prompt", "v9")]).await;
    assert_eq!(error_code(&body), "NOT_FOUND");
});

test_both!(a_continued_conversation_takes_the_new_start_labels, |app| {
    let input = |prompt: &str| {
        json!({ "channel": "WHATSAPP", "contact": "+351912345678",
                "labels": [{ "key": "prompt", "value": prompt }] })
    };
    let first = app.start_session_with(input("v1")).await;
    app.record_conversion(&first, ConversionKind::TourBooked, "tour-1")
        .await;
    app.advance(TimeDelta::minutes(5));
    let again = app.try_start_session(&app.agent, input("v2")).await;
    assert_eq!(data(&again, "startSession")["resumed"], true);
    assert_eq!(
        labels_of(&app, &first).await,
        json!([{ "key": "prompt", "value": "v2" }])
    );
    // The conversation and its conversion moved with it.
    let split = by_label(&app, "prompt").await;
    assert_eq!(split.as_array().map(Vec::len), Some(1), "{split}");
    assert_eq!(split[0]["value"], "v2");
    assert_eq!(split[0]["converted"], 1);
});

test_both!(the_list_filters_by_every_label_given, |app| {
    let a = labelled(&app, &[("prompt", "v7"), ("model", "m1")]).await;
    let b = labelled(&app, &[("prompt", "v7"), ("model", "m2")]).await;
    let c = labelled(&app, &[("prompt", "V7")]).await;
    app.start_session(Channel::Chat).await;
    let app = &app;
    let find = |pairs: &[(&str, &str)]| {
        let filter = json!({ "labels": labels(pairs) });
        async move { all_pages(app, 10, filter).await }
    };
    let mut v7 = vec![a.session_id.clone(), b.session_id.clone()];
    v7.sort();
    let mut found = find(&[("prompt", "v7")]).await;
    found.sort();
    assert_eq!(found, v7, "case counts");
    assert_eq!(
        find(&[("prompt", "v7"), ("model", "m2")]).await,
        vec![b.session_id.clone()]
    );
    assert_eq!(find(&[("prompt", "V7")]).await, vec![c.session_id.clone()]);
    assert!(
        find(&[("prompt", "v")]).await.is_empty(),
        "no partial match"
    );
    assert!(
        find(&[("model", "m1"), ("model", "m2")]).await.is_empty(),
        "both must hold"
    );
    let body = app
        .gql(
            &app.admin,
            LIST,
            json!({ "filter": { "labels": labels(&[("Bad Key", "x")]) } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
});

test_both!(feed_events_carry_the_conversations_labels, |app| {
    let session = labelled(&app, &[("prompt", "v7")]).await;
    app.record_conversion(&session, ConversionKind::TourBooked, "tour-1")
        .await;
    let body = app
        .gql(
            &app.integrator,
            "{ conversionsSince(first: 10) { nodes { conversation { labels { key value } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&body, "conversionsSince")["nodes"][0]["conversation"]["labels"],
        json!([{ "key": "prompt", "value": "v7" }])
    );
});

test_both!(
    by_label_splits_outcomes_and_moves_them_with_the_labels,
    |app| {
        let mut v1 = Vec::new();
        for n in 0..4 {
            v1.push(labelled(&app, &[("prompt", "v1")]).await);
            if n < 3 {
                labelled(&app, &[("prompt", "v2")]).await;
            }
        }
        labelled(&app, &[("model", "m1")]).await;
        app.start_session(Channel::Chat).await;
        let input = |s: &Session, id: &str| {
            json!({ "sessionId": s.session_id, "kind": "CONTRACT_CREATED",
                "recordId": id, "value": { "amount": "100.00", "currency": "EUR" } })
        };
        assert_no_errors(&app.record_as(&app.checkout, input(&v1[0], "c-1")).await);
        assert_no_errors(&app.record_as(&app.checkout, input(&v1[1], "c-2")).await);
        app.record_conversion(&v1[1], ConversionKind::TourBooked, "t-1")
            .await;

        let split = by_label(&app, "prompt").await;
        assert_eq!(split[0]["value"], "v1");
        assert_eq!(split[0]["conversations"], 4);
        assert_eq!(split[0]["converted"], 2);
        assert_eq!(split[0]["rate"], 0.5);
        let (low, high) = wilson_interval(2, 4);
        assert_close(&split[0]["rateLow"], low, &split);
        assert_close(&split[0]["rateHigh"], high, &split);
        assert_eq!(
            split[0]["revenue"],
            json!([{ "amount": "200.00", "currency": "EUR" }])
        );
        assert_eq!(split[1]["value"], "v2");
        assert_eq!(split[1]["conversations"], 3);
        assert_eq!(split[1]["converted"], 0);
        assert_eq!(split[1]["revenue"], json!([]));
        assert_eq!(split.as_array().map(Vec::len), Some(2));

        // A converted session moved to v2 takes its outcome and revenue along.
        assert_no_errors(&set(&app, &app.agent, &v1[0], &[("prompt", "v2")]).await);
        let split = by_label(&app, "prompt").await;
        assert_eq!(
            (&split[0]["conversations"], &split[0]["converted"]),
            (&json!(3), &json!(1))
        );
        assert_eq!(
            (&split[1]["conversations"], &split[1]["converted"]),
            (&json!(4), &json!(1))
        );
        assert_eq!(
            split[1]["revenue"],
            json!([{ "amount": "100.00", "currency": "EUR" }])
        );
        assert_eq!(by_label(&app, "model").await[0]["conversations"], 1);
        assert_eq!(by_label(&app, "absent").await, json!([]));
        let body = app
            .gql(&app.admin, BY_LABEL, json!({ "key": "Not A Key" }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
    }
);

/// JSON numbers read back within an ulp or two of what was written.
fn assert_close(served: &Value, expected: f64, what: &Value) {
    let served = served.as_f64().expect("a number");
    assert!(
        (served - expected).abs() < 1e-12,
        "{served} ≠ {expected}: {what}"
    );
}

/// What a count of the rows gives for `key` in `[from, to)` on `channel`:
/// value → (conversations, converted, currency → minor units).
async fn counted(
    app: &TestApp,
    key: &str,
    (from, to): (i64, i64),
    channel: Option<&str>,
) -> BTreeMap<String, (i64, i64, BTreeMap<String, i64>)> {
    let db = &app.services.db;
    let conversations = entity::conversation::Entity::find()
        .filter(entity::conversation::Column::TenantId.eq(app.acme_admin.tenant_id))
        .all(db)
        .await
        .expect("conversations");
    let conversions = entity::conversion::Entity::find()
        .filter(entity::conversion::Column::Status.eq("ACTIVE"))
        .filter(entity::conversion::Column::Attributed.eq(true))
        .all(db)
        .await
        .expect("conversions");
    let mut earned: BTreeMap<Uuid, BTreeMap<String, i64>> = BTreeMap::new();
    for v in conversions {
        if let (Some(id), Some(minor), Some(currency)) =
            (v.conversation_id, v.value_minor, v.currency)
        {
            *earned.entry(id).or_default().entry(currency).or_default() += minor;
        }
    }
    let mut split = BTreeMap::new();
    for c in conversations {
        if c.started_at < from || c.started_at >= to || channel.is_some_and(|ch| ch != c.channel) {
            continue;
        }
        let prefix = format!("{key}=");
        let Some(value) = c.labels.lines().find_map(|l| l.strip_prefix(&prefix)) else {
            continue;
        };
        let entry: &mut (i64, i64, BTreeMap<String, i64>) =
            split.entry(value.to_owned()).or_default();
        entry.0 += 1;
        entry.1 += i64::from(c.first_converted_at.is_some());
        for (currency, minor) in earned.get(&c.id).into_iter().flatten() {
            *entry.2.entry(currency.clone()).or_default() += minor;
        }
    }
    split
}

test_both!(by_label_agrees_with_a_count_of_the_rows, |app| {
    let mut dice = Dice(0x001A_BE15);
    random_history(&app, &mut dice).await;
    let mut seen_converted = false;
    for (from, to) in ranges(&mut dice) {
        for channel in [None, Some("CHAT"), Some("EMAIL")] {
            for key in ["prompt", "model", "experiment"] {
                let variables = json!({ "key": key, "from": from.map(rfc3339),
                                        "to": to.map(rfc3339), "channel": channel });
                let body = app.gql(&app.admin, BY_LABEL, variables.clone()).await;
                let served = &data(&body, "conversionStats")["byLabel"];
                let range = (from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX));
                let expected = counted(&app, key, range, channel).await;
                let served = served.as_array().expect("rows");
                assert_eq!(served.len(), expected.len(), "{variables}: {served:?}");
                for (row, (value, (n, converted, revenue))) in served.iter().zip(&expected) {
                    assert_eq!(row["value"], json!(value), "{variables}");
                    assert_eq!(row["conversations"], json!(n), "{variables}");
                    assert_eq!(row["converted"], json!(converted), "{variables}");
                    let (low, high) = wilson_interval(*converted, *n);
                    assert_close(&row["rateLow"], low, &variables);
                    assert_close(&row["rateHigh"], high, &variables);
                    let earned: Vec<Value> = revenue
                        .iter()
                        .filter(|(_, minor)| **minor != 0)
                        .map(|(code, minor)| {
                            let currency = Currency::parse(code).expect("stored currency");
                            json!({ "amount": format_minor(*minor, currency), "currency": code })
                        })
                        .collect();
                    assert_eq!(row["revenue"], json!(earned), "{variables}");
                    seen_converted |= *converted > 0;
                }
            }
        }
    }
    assert!(
        seen_converted,
        "the history converts some labelled sessions"
    );
});

//! The stats header follows the list's filter: on a randomised history, the
//! figures for a filter (search, a person, badges, converted, channels,
//! dates, labels) are those of counting the rows the list shows for it, and
//! every conversion counts once.

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::rollups::{Dice, STATS, assert_agree, random_history, ranges, rfc3339, scanned_among};

const LISTED: &str = "query($after: String, $filter: ConversationFilter) {
    conversations(first: 250, after: $after, filter: $filter) {
        nodes { sessionId channel contact labels { key value } badges { kind } }
        pageInfo { hasNextPage endCursor } } }";

const BY_PROMPT: &str = "query($filter: ConversationFilter) {
    conversionStats(filter: $filter) { byLabel(key: \"prompt\") { value conversations converted } } }";

/// Every row the list shows for `filter`.
async fn listed(app: &TestApp, filter: &Value) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let body = app
            .gql(
                &app.admin,
                LISTED,
                json!({ "after": after, "filter": filter }),
            )
            .await;
        let page = data(&body, "conversations");
        rows.extend(page["nodes"].as_array().expect("nodes").iter().cloned());
        if page["pageInfo"]["hasNextPage"] != true {
            return rows;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
}

/// Messages on some of the history's conversations, so a search has
/// something to find (a closed session refuses them, as it would).
async fn talk(app: &TestApp) {
    let sessions = all_pages(app, 250, json!({})).await;
    for (n, session_id) in sessions.iter().enumerate() {
        let session = Session {
            session_id: session_id.clone(),
            id: String::new(),
        };
        let text = match n % 4 {
            0 => "Is there parking near the building?",
            1 => "Do you have a PARKING garage and a desk?",
            2 => "I'd like a hot desk.",
            _ => continue,
        };
        app.say(&session, "VISITOR", text).await;
        app.advance(TimeDelta::seconds(1));
    }
}

/// New conversations, each with a link: some followed, some of those
/// converted, so each step of the funnel differs under a filter.
async fn funnel(app: &TestApp) {
    let follower = crate::links::no_redirects();
    for n in 0..24usize {
        let session = app
            .start_session(convtrack::domain::channel::Channel::Chat)
            .await;
        if n % 3 == 0 {
            app.say(&session, "VISITOR", "Any parking for a day pass?")
                .await;
        }
        let link = app
            .create_link(&session, "DAY_PASS", "https://book.example.com/")
            .await;
        let token = link["token"].as_str().expect("token");
        if n % 2 == 0 {
            follower
                .get(format!("{}/l/{token}", app.address))
                .send()
                .await
                .expect("answer");
        }
        if n % 4 == 0 {
            let kind = convtrack::domain::conversion::ConversionKind::DayPassPurchased;
            app.record_with_token(&app.checkout, token, kind, &format!("funnel-{n}"))
                .await;
        }
        app.advance(TimeDelta::seconds(1));
    }
}

/// The filters compared: each kind alone and some together, with dates
/// from the random ranges.
fn filters(dice: &mut Dice, contacts: &[&str]) -> Vec<Value> {
    let mut filters = vec![
        json!({ "search": "parking" }),
        json!({ "search": "PARKING", "channels": ["EMAIL", "WHATSAPP"] }),
        json!({ "search": "desk", "converted": true }),
        // A start date: only the text index's matches since then are read.
        json!({ "search": "parking", "startedAfter": "2026-02-10T00:00:00Z" }),
        json!({ "search": "de", "startedAfter": "2026-02-20T06:00:00Z" }),
        json!({ "badges": ["TOUR_BOOKED", "DAY_PASS_PURCHASED"] }),
        json!({ "converted": true }),
        json!({ "converted": false, "channels": ["CHAT"] }),
        // Converted or not over part of the history, partial days included.
        json!({ "converted": true, "startedAfter": "2026-01-29T13:30:00Z",
                "startedBefore": "2026-02-17T08:00:00Z" }),
        json!({ "converted": false, "channels": ["EMAIL", "WHATSAPP", "VOICE"],
                "startedAfter": "2026-02-03T00:00:00Z" }),
        json!({ "labels": [{ "key": "prompt", "value": "v1" }] }),
        // One label over part of the history: its rollups, partial days
        // from rows.
        json!({ "labels": [{ "key": "prompt", "value": "v0" }],
                "startedAfter": "2026-01-29T13:30:00Z", "startedBefore": "2026-02-17T08:00:00Z" }),
        json!({ "labels": [{ "key": "prompt", "value": "v2" }, { "key": "prompt", "value": "v2" }],
                "channels": ["CHAT", "EMAIL"], "startedAfter": "2026-02-03T00:00:00Z" }),
        json!({ "labels": [{ "key": "model", "value": "M 0" }], "startedBefore": "2026-02-12T17:45:00Z" }),
        json!({ "labels": [{ "key": "experiment", "value": "cta-b" }], "channels": ["VOICE", "CHAT"] }),
        json!({ "labels": [{ "key": "prompt", "value": "v2" }], "badges": ["CONTRACT_CREATED"] }),
        json!({ "channels": ["CHAT", "VOICE"] }),
    ];
    // People, by their contact as stored and as typed differently.
    for contact in contacts {
        filters.push(json!({ "search": contact }));
        filters.push(json!({ "search": contact.to_uppercase() }));
    }
    for (from, to) in ranges(dice).into_iter().skip(1).take(6) {
        let mut filter = filters[dice.below(filters.len() as u64) as usize].clone();
        if let Some(from) = from {
            filter["startedAfter"] = json!(rfc3339(from));
        }
        if let Some(to) = to {
            filter["startedBefore"] = json!(rfc3339(to));
        }
        filters.push(filter);
    }
    filters
}

/// The stats for `filter`, and the same with its dates given as `from`
/// and `to` instead: both must be the same answer.
async fn stats(app: &TestApp, filter: &Value) -> Value {
    let body = app
        .gql(&app.admin, STATS, json!({ "filter": filter }))
        .await;
    let stats = data(&body, "conversionStats").clone();
    let mut undated = filter.clone();
    let from = undated["startedAfter"].take();
    let to = undated["startedBefore"].take();
    let variables = json!({ "filter": undated, "from": from, "to": to });
    let body = app.gql(&app.admin, STATS, variables).await;
    assert_eq!(data(&body, "conversionStats"), &stats, "{filter}");
    stats
}

/// What the list's rows say about the figures: counts per channel,
/// badges per kind, conversations per prompt.
fn counted(rows: &[Value]) -> Value {
    let mut channels: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    let mut kinds: BTreeMap<&str, i64> = BTreeMap::new();
    let mut prompts: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for row in rows {
        let badges = row["badges"].as_array().expect("badges");
        let converted = i64::from(!badges.is_empty());
        let channel = channels
            .entry(row["channel"].as_str().expect("channel"))
            .or_default();
        channel.0 += 1;
        channel.1 += converted;
        for badge in badges {
            *kinds
                .entry(badge["kind"].as_str().expect("kind"))
                .or_default() += 1;
        }
        for label in row["labels"].as_array().expect("labels") {
            if label["key"] == "prompt" {
                let prompt = prompts
                    .entry(label["value"].as_str().expect("value"))
                    .or_default();
                prompt.0 += 1;
                prompt.1 += converted;
            }
        }
    }
    json!({
        "conversations": rows.len(),
        "converted": channels.values().map(|c| c.1).sum::<i64>(),
        "channels": channels,
        "kinds": kinds,
        "prompts": prompts,
    })
}

/// The same, read from the stats.
fn reported(stats: &Value, by_label: &Value) -> Value {
    let mut channels: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for c in stats["byChannel"].as_array().expect("channels") {
        channels.insert(
            c["channel"].as_str().expect("channel"),
            (
                c["conversations"].as_i64().expect("n"),
                c["converted"].as_i64().expect("n"),
            ),
        );
    }
    let kinds: BTreeMap<&str, i64> = stats["byKind"]
        .as_array()
        .expect("kinds")
        .iter()
        .filter(|k| k["count"] != 0)
        .map(|k| {
            (
                k["kind"].as_str().expect("kind"),
                k["count"].as_i64().expect("n"),
            )
        })
        .collect();
    let prompts: BTreeMap<&str, (i64, i64)> = by_label
        .as_array()
        .expect("byLabel")
        .iter()
        .map(|p| {
            (
                p["value"].as_str().expect("value"),
                (
                    p["conversations"].as_i64().expect("n"),
                    p["converted"].as_i64().expect("n"),
                ),
            )
        })
        .collect();
    json!({
        "conversations": stats["conversations"],
        "converted": stats["convertedConversations"],
        "channels": channels,
        "kinds": kinds,
        "prompts": prompts,
    })
}

test_both!(filtered_stats_equal_a_count_of_the_listed_rows, |app| {
    let mut dice = Dice(0xF117_E2ED);
    random_history(&app, &mut dice).await;
    talk(&app).await;
    funnel(&app).await;
    let everyone = listed(&app, &json!({})).await;
    let mut contacts: Vec<&str> = Vec::new();
    for prefix in ["p", "+"] {
        contacts.extend(
            everyone
                .iter()
                .filter_map(|r| r["contact"].as_str())
                .find(|c| c.starts_with(prefix)),
        );
    }
    assert_eq!(contacts.len(), 2, "an email address and a phone number");
    let mut narrowed = 0;
    for filter in filters(&mut dice, &contacts) {
        let rows = listed(&app, &filter).await;
        let stats = stats(&app, &filter).await;
        let body = app
            .gql(&app.admin, BY_PROMPT, json!({ "filter": filter }))
            .await;
        let by_label = &data(&body, "conversionStats")["byLabel"];
        assert_eq!(reported(&stats, by_label), counted(&rows), "{filter}");
        // Every conversion once: the sources add up to the badges.
        let sum = |list: &Value, field: &str| -> i64 {
            list.as_array()
                .expect("list")
                .iter()
                .map(|x| x[field].as_i64().expect("n"))
                .sum()
        };
        assert_eq!(
            sum(&stats["bySource"], "count"),
            sum(&stats["byKind"], "count"),
            "{filter}"
        );
        // The rest (funnel, revenue, median, unattributed) as a scan of
        // the listed conversations' rows gives it.
        let sessions: BTreeSet<String> = rows
            .iter()
            .map(|r| r["sessionId"].as_str().expect("id").to_owned())
            .collect();
        let mut expected = scanned_among(&app, (i64::MIN, i64::MAX), None, Some(&sessions)).await;
        let mut served = stats.clone();
        if filter
            .as_object()
            .expect("filter")
            .keys()
            .all(|k| ["channels", "startedAfter", "startedBefore"].contains(&k.as_str()))
        {
            // Dates and channels alone: unattributed conversions count by
            // when they were recorded, with or without a conversation.
            served["unattributed"] = Value::Null;
            expected["unattributed"] = Value::Null;
        } else {
            narrowed += 1;
        }
        assert_agree(&served, &expected, &filter.to_string());
        if !rows.is_empty() {
            assert!(stats["conversations"].as_i64() > Some(0), "{filter}");
        }
    }
    assert!(narrowed >= 10, "{narrowed}");
    // The searches found something, and not everything.
    let all = everyone.len();
    for search in ["parking", contacts[0]] {
        let found = listed(&app, &json!({ "search": search })).await.len();
        assert!(found > 0 && found < all, "{search}: {found} of {all}");
    }
});

test_both!(a_filter_that_matches_nothing_has_zero_stats, |app| {
    let session = app
        .start_session(convtrack::domain::channel::Channel::Chat)
        .await;
    app.record_conversion(
        &session,
        convtrack::domain::conversion::ConversionKind::TourBooked,
        "t-1",
    )
    .await;
    for filter in [
        json!({ "channels": ["EMAIL"] }),
        json!({ "search": "nothing says this" }),
        json!({ "startedAfter": "2030-01-01T00:00:00Z" }),
    ] {
        let body = app
            .gql(
                &app.admin,
                STATS,
                json!({ "filter": filter, "channel": "CHAT" }),
            )
            .await;
        let stats = data(&body, "conversionStats");
        assert_eq!(stats["conversations"], 0, "{filter}");
        assert_eq!(stats["byChannel"], json!([]), "{filter}");
    }
    let body = app
        .gql(
            &app.admin,
            STATS,
            json!({ "filter": { "search": "x".repeat(201) } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
});

test_both!(a_link_that_converted_counts_as_followed_once, |app| {
    let session = app
        .start_session(convtrack::domain::channel::Channel::Chat)
        .await;
    let link = app
        .create_link(&session, "DAY_PASS", "https://book.example.com/")
        .await;
    let token = link["token"].as_str().expect("token");
    // Bought through the link's destination without its redirect.
    let body = app
        .record_with_token(
            &app.checkout,
            token,
            convtrack::domain::conversion::ConversionKind::DayPassPurchased,
            "dp-1",
        )
        .await;
    assert_no_errors(&body);
    let funnel = |body: &Value| data(body, "conversionStats")["funnel"][0].clone();
    let body = app.gql(&app.admin, STATS, json!({})).await;
    assert_eq!(
        funnel(&body),
        json!({ "action": "DAY_PASS", "issued": 1, "followed": 1, "converted": 1 })
    );
    assert_eq!(
        data(&body, "conversionStats")["bySource"],
        json!([{ "source": "LINK", "count": 1 }, { "source": "DIRECT", "count": 0 },
               { "source": "CONFIRMATION", "count": 0 }])
    );
    // The redirect taken later is a follow, not a second followed link.
    let answer = crate::links::no_redirects()
        .get(format!("{}/l/{token}", app.address))
        .send()
        .await
        .expect("answer");
    assert!(answer.status().is_redirection(), "{}", answer.status());
    let body = app.gql(&app.admin, STATS, json!({})).await;
    assert_eq!(funnel(&body)["followed"], 1);
    let filtered = app
        .gql(
            &app.admin,
            STATS,
            json!({ "filter": { "converted": true } }),
        )
        .await;
    assert_eq!(funnel(&filtered), funnel(&body));
});

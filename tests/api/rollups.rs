//! Stats come from rollups kept by every write; here they must agree with a
//! full scan of the rows on a randomised history that crosses days and
//! months: sessions on every channel, replays and conflicts, outcomes
//! inside and outside attribution, links issued, followed and converted,
//! sales in three currencies restated and retracted.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use convtrack::domain::channel::Channel;
use convtrack::domain::conversion::ConversionKind;
use convtrack::domain::link::CtaAction;
use convtrack::domain::money::{Currency, format_minor};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;
use crate::links::no_redirects;

pub(crate) const STATS: &str = "query($from: DateTime, $to: DateTime, $channel: Channel,
        $filter: ConversationFilter) {
    conversionStats(from: $from, to: $to, channel: $channel, filter: $filter) {
        conversations convertedConversations
        byKind { kind count rate } byChannel { channel conversations converted }
        bySource { source count }
        medianSecondsToConvert unattributed
        funnel { action issued followed converted }
        revenue { currency total byKind { kind amount } byChannel { channel amount }
                  convertedConversations perConvertedConversation } } }";

const BY_LABEL: &str = "query($key: String!, $from: DateTime, $to: DateTime) {
    conversionStats(from: $from, to: $to) {
        byLabel(key: $key) { value conversations converted rate rateLow rateHigh
                             revenue { amount currency } } } }";

/// Currencies of 0, 2 and 3 decimals.
const CURRENCIES: [&str; 3] = ["EUR", "JPY", "KWD"];

/// A random amount of `currency`, written with its decimals.
fn amount(dice: &mut Dice, currency: &str) -> String {
    match currency {
        "JPY" => format!("{}", dice.below(200_000)),
        "KWD" => format!("{}.{:03}", dice.below(900), dice.below(1000)),
        _ => format!("{}.{:02}", dice.below(3_000), dice.below(100)),
    }
}

/// Conversions recorded so far: (id, the currency of their value).
type Sales = Vec<(String, Option<&'static str>)>;

/// Keeps the conversion a recording answered with.
fn kept(sales: &mut Sales, body: &Value, currency: Option<&'static str>) {
    if let Some(id) = body["data"]["recordConversion"]["conversion"]["id"].as_str() {
        sales.push((id.to_owned(), currency));
    }
}

/// Restates or retracts one of `sales` (some refused, as they would be:
/// another currency, a retracted sale).
async fn adjust_one(app: &TestApp, dice: &mut Dice, sales: &mut Sales, n: u64) {
    let at = dice.below(sales.len().max(1) as u64) as usize;
    let Some((id, currency)) = sales.get_mut(at) else {
        return;
    };
    let key = format!("adjust-{n}");
    if dice.below(3) == 0 {
        app.gql(
            &app.checkout,
            "mutation($input: RetractConversionInput!) { retractConversion(input: $input) { created } }",
            json!({ "input": { "conversionId": id, "reason": "cancelled", "idempotencyKey": key } }),
        )
        .await;
        return;
    }
    let chosen = match currency {
        Some(currency) if dice.below(10) > 0 => *currency,
        _ => CURRENCIES[dice.below(3) as usize],
    };
    let body = app
        .gql(
            &app.checkout,
            "mutation($input: RestateConversionInput!) { restateConversion(input: $input) { created } }",
            json!({ "input": { "conversionId": id, "reason": "changed", "idempotencyKey": key,
                "value": { "amount": amount(dice, chosen), "currency": chosen } } }),
        )
        .await;
    if body["data"]["restateConversion"].is_object() {
        *currency = Some(chosen);
    }
}

/// A small deterministic generator (SplitMix64), so a failure repeats.
pub(crate) struct Dice(pub u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len() as u64) as usize)
        }
    }
}

fn session_input(channel: Channel, n: u64) -> Value {
    let mut input = unlabelled_input(channel, n);
    // Labels follow `n`, not the dice, so the history stays the same.
    if !n.is_multiple_of(5) {
        let mut labels = vec![json!({ "key": "prompt", "value": format!("v{}", n % 3) })];
        if n.is_multiple_of(2) {
            labels.push(json!({ "key": "model", "value": format!("M {}", n % 4) }));
        }
        input["labels"] = json!(labels);
    }
    input
}

fn unlabelled_input(channel: Channel, n: u64) -> Value {
    match channel {
        Channel::Chat => json!({ "channel": "CHAT" }),
        Channel::Email => {
            json!({ "channel": "EMAIL", "contact": format!("p{n}@example.com"), "threadKey": format!("t{n}") })
        }
        Channel::Whatsapp => json!({ "channel": "WHATSAPP", "contact": format!("+4477009{n:05}") }),
        Channel::Voice => json!({ "channel": "VOICE", "contact": format!("+4477008{n:05}") }),
    }
}

/// Two months of activity (from late January, across February), at
/// random moments; some requests fail (conflicts, closed sessions), as
/// they would.
pub(crate) async fn random_history(app: &TestApp, dice: &mut Dice) {
    app.clock.set(
        DateTime::parse_from_rfc3339("2026-01-27T21:00:00Z")
            .expect("valid")
            .with_timezone(&Utc),
    );
    let mut sessions: Vec<Session> = Vec::new();
    let mut tokens: Vec<String> = Vec::new();
    let mut sales: Sales = Vec::new();
    let follower = no_redirects();
    for n in 0..170u64 {
        let roll = dice.below(116);
        // Changes to sales come between other steps, taking no time.
        if roll < 100 {
            app.advance(TimeDelta::minutes(dice.below(60 * 14) as i64));
        }
        if n % 9 == 4 {
            relabel(app, &sessions, n).await;
        }
        let kind = *dice.pick(&ConversionKind::ALL).expect("kinds");
        let record_id = format!("r-{}", dice.below(12));
        match roll {
            0..35 => {
                let channel = *dice.pick(&Channel::ALL).expect("channels");
                let body = app
                    .try_start_session(&app.agent, session_input(channel, n))
                    .await;
                let payload = data(&body, "startSession");
                sessions.push(Session {
                    session_id: payload["sessionId"].as_str().expect("id").to_owned(),
                    id: payload["conversation"]["id"]
                        .as_str()
                        .expect("id")
                        .to_owned(),
                });
            }
            35..40 => {
                app.try_start_session(&app.other_agent, session_input(Channel::Chat, n))
                    .await;
            }
            40..52 => {
                if let Some(session) = dice.pick(&sessions) {
                    let body = app.record_conversion(session, kind, &record_id).await;
                    kept(&mut sales, &body, None);
                }
            }
            52..65 => {
                if let Some(session) = dice.pick(&sessions) {
                    let currency = CURRENCIES[dice.below(3) as usize];
                    let value = json!({ "amount": amount(dice, currency), "currency": currency });
                    let input = json!({ "sessionId": session.session_id, "kind": kind.as_str(),
                        "recordId": record_id, "value": value });
                    let body = app.record_as(&app.checkout, input).await;
                    kept(&mut sales, &body, Some(currency));
                }
            }
            65..72 => {
                if let Some(session) = dice.pick(&sessions) {
                    let input = json!({ "sessionId": session.session_id, "kind": "CONTRACT_CREATED",
                        "recordId": record_id, "newCustomerId": format!("cw-{}", dice.below(12)) });
                    app.record_as(&app.checkout, input).await;
                }
            }
            72..84 => {
                if let Some(session) = dice.pick(&sessions) {
                    let action = dice.pick(&CtaAction::ALL).expect("actions").as_str();
                    let body = app
                        .try_create_link(&app.agent, session, action, "https://book.example.com/")
                        .await;
                    if let Some(token) = body["data"]["createCtaLink"]["token"].as_str() {
                        tokens.push(token.to_owned());
                    }
                }
            }
            84..92 => {
                if let Some(token) = dice.pick(&tokens) {
                    follower
                        .get(format!("{}/l/{token}", app.address))
                        .send()
                        .await
                        .expect("answer");
                }
            }
            92..100 => {
                if let Some(token) = dice.pick(&tokens) {
                    let body = app
                        .record_with_token(&app.checkout, token, kind, &record_id)
                        .await;
                    kept(&mut sales, &body, None);
                }
            }
            _ => adjust_one(app, dice, &mut sales, n).await,
        }
    }
}

/// Moves one earlier session to another prompt (and sometimes a new
/// key), whatever it has converted to by now.
async fn relabel(app: &TestApp, sessions: &[Session], n: u64) {
    let Some(session) = sessions.get(n as usize % sessions.len().max(1)) else {
        return;
    };
    let mut labels = vec![json!({ "key": "prompt", "value": format!("v{}", (n / 9) % 3) })];
    if n % 2 == 1 {
        labels.push(json!({ "key": "experiment", "value": "cta-b" }));
    }
    let body = app
        .gql(
            &app.agent,
            "mutation($input: SetSessionLabelsInput!) { setSessionLabels(input: $input) {
                conversation { labels { key value } } } }",
            json!({ "input": { "sessionId": session.session_id, "labels": labels } }),
        )
        .await;
    assert_no_errors(&body);
}

/// The figures a full scan of the rows gives for `[from, to)` on `channel`.
async fn scanned(app: &TestApp, from: i64, to: i64, channel: Option<Channel>) -> Value {
    scanned_among(app, (from, to), channel, None).await
}

/// The figures a full scan of the rows gives for `[from, to)` on
/// `channel`, of the conversations with the session IDs `among` if given
/// (then only their unattributed conversions count, whenever recorded).
pub(crate) async fn scanned_among(
    app: &TestApp,
    (from, to): (i64, i64),
    channel: Option<Channel>,
    among: Option<&BTreeSet<String>>,
) -> Value {
    let tenant = app.acme_admin.tenant_id;
    let db = &app.services.db;
    let on_channel = |c: &str| channel.is_none_or(|ch| ch.as_str() == c);
    let conversations: Vec<entity::conversation::Model> = entity::conversation::Entity::find()
        .filter(entity::conversation::Column::TenantId.eq(tenant))
        .all(db)
        .await
        .expect("conversations");
    let conversions: Vec<entity::conversion::Model> = entity::conversion::Entity::find()
        .filter(entity::conversion::Column::TenantId.eq(tenant))
        .all(db)
        .await
        .expect("conversions");
    let links: Vec<entity::cta_link::Model> = entity::cta_link::Entity::find()
        .filter(entity::cta_link::Column::TenantId.eq(tenant))
        .all(db)
        .await
        .expect("links");
    let cohort: BTreeMap<Uuid, &entity::conversation::Model> = conversations
        .iter()
        .filter(|c| c.started_at >= from && c.started_at < to && on_channel(&c.channel))
        .filter(|c| among.is_none_or(|among| among.contains(&c.session_id)))
        .map(|c| (c.id, c))
        .collect();
    // Retracted conversions count nowhere.
    let conversions: Vec<entity::conversion::Model> = conversions
        .into_iter()
        .filter(|v| v.status == "ACTIVE")
        .collect();
    let attributed: Vec<&entity::conversion::Model> = conversions
        .iter()
        .filter(|v| v.attributed && v.conversation_id.is_some_and(|id| cohort.contains_key(&id)))
        .collect();
    let mut first: BTreeMap<Uuid, i64> = BTreeMap::new();
    for v in &attributed {
        let id = v.conversation_id.expect("attributed");
        let at = first.entry(id).or_insert(v.recorded_at);
        *at = (*at).min(v.recorded_at);
    }
    let mut delays: Vec<i64> = first
        .iter()
        .map(|(id, at)| at - cohort[id].started_at)
        .collect();
    delays.sort_unstable();
    let median = match delays.len() {
        0 => Value::Null,
        n => json!((delays[(n - 1) / 2] + delays[n / 2]) as f64 / 2.0 / 1e6),
    };
    let total = cohort.len();
    let by_kind: Vec<Value> = ConversionKind::ALL
        .iter()
        .map(|kind| {
            let of_kind: Vec<_> = attributed
                .iter()
                .filter(|v| v.kind == kind.as_str())
                .collect();
            let conversations: BTreeSet<_> = of_kind.iter().map(|v| v.conversation_id).collect();
            let rate = if total == 0 {
                0.0
            } else {
                conversations.len() as f64 / total as f64
            };
            json!({ "kind": kind.as_str(), "count": of_kind.len(), "rate": rate })
        })
        .collect();
    let by_channel: Vec<Value> = Channel::ALL
        .iter()
        .filter_map(|ch| {
            let on: Vec<_> = cohort
                .values()
                .filter(|c| c.channel == ch.as_str())
                .collect();
            let converted = on.iter().filter(|c| first.contains_key(&c.id)).count();
            (!on.is_empty()).then(|| {
                json!({ "channel": ch.as_str(), "conversations": on.len(), "converted": converted })
            })
        })
        .collect();
    let unattributed = match among {
        Some(_) => conversions
            .iter()
            .filter(|v| !v.attributed)
            .filter(|v| v.conversation_id.is_some_and(|id| cohort.contains_key(&id)))
            .count(),
        None => conversions
            .iter()
            .filter(|v| !v.attributed && v.recorded_at >= from && v.recorded_at < to)
            .filter(|v| {
                channel.is_none() || v.conversation_channel.as_deref().is_some_and(on_channel)
            })
            .count(),
    };
    let by_source: Vec<Value> = ["LINK", "DIRECT", "CONFIRMATION"]
        .iter()
        .map(|source| {
            let count = attributed.iter().filter(|v| v.source == *source).count();
            json!({ "source": source, "count": count })
        })
        .collect();
    let funnel: Vec<Value> = CtaAction::ALL
        .iter()
        .map(|action| {
            let issued: Vec<_> = links
                .iter()
                .filter(|l| l.action == action.as_str() && cohort.contains_key(&l.conversation_id))
                .collect();
            let followed = issued
                .iter()
                .filter(|l| l.first_followed_at.is_some())
                .count();
            let converted = issued
                .iter()
                .filter(|l| conversions.iter().any(|v| v.link_id == Some(l.id)))
                .count();
            json!({ "action": action.as_str(), "issued": issued.len(),
                    "followed": followed, "converted": converted })
        })
        .collect();
    json!({
        "revenue": revenue_of(&attributed, &cohort),
        "conversations": total,
        "convertedConversations": first.len(),
        "byKind": by_kind,
        "byChannel": by_channel,
        "bySource": by_source,
        "medianSecondsToConvert": median,
        "unattributed": unattributed,
        "funnel": funnel,
    })
}

/// The revenue a scan of the active attributed conversions `attributed`
/// (of conversations in `cohort`) gives, per currency.
fn revenue_of(
    attributed: &[&entity::conversion::Model],
    cohort: &BTreeMap<Uuid, &entity::conversation::Model>,
) -> Value {
    let mut currencies: Vec<&str> = attributed
        .iter()
        .filter(|v| v.value_minor.is_some())
        .filter_map(|v| v.currency.as_deref())
        .collect();
    currencies.sort_unstable();
    currencies.dedup();
    let revenue: Vec<Value> = currencies
        .into_iter()
        .map(|code| {
            let currency = Currency::parse(code).expect("stored currency");
            let valued: Vec<_> = attributed
                .iter()
                .filter(|v| v.currency.as_deref() == Some(code) && v.value_minor.is_some())
                .collect();
            let sum = |keep: &dyn Fn(&entity::conversion::Model) -> bool| -> i64 {
                valued
                    .iter()
                    .filter(|v| keep(v))
                    .map(|v| v.value_minor.expect("valued"))
                    .sum()
            };
            let total = sum(&|_| true);
            let by_kind: Vec<Value> = ConversionKind::ALL
                .iter()
                .map(|kind| {
                    let amount = sum(&|v| v.kind == kind.as_str());
                    json!({ "kind": kind.as_str(), "amount": format_minor(amount, currency) })
                })
                .collect();
            let by_channel: Vec<Value> = Channel::ALL
                .iter()
                .filter_map(|ch| {
                    let amount = sum(&|v| {
                        v.conversation_id
                            .is_some_and(|id| cohort[&id].channel == ch.as_str())
                    });
                    (amount != 0).then(|| {
                        json!({ "channel": ch.as_str(), "amount": format_minor(amount, currency) })
                    })
                })
                .collect();
            let conversations: BTreeSet<_> = valued.iter().map(|v| v.conversation_id).collect();
            let count = conversations.len() as i64;
            // Rounded to the minor unit, halves away from zero (amounts
            // here are never negative).
            let average = (total + count / 2) / count;
            json!({
                "currency": code,
                "total": format_minor(total, currency),
                "byKind": by_kind,
                "byChannel": by_channel,
                "convertedConversations": count,
                "perConvertedConversation": format_minor(average, currency),
            })
        })
        .collect();
    json!(revenue)
}

pub(crate) fn rfc3339(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .expect("in range")
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Compares everything exactly but the median, which must be within 2%.
pub(crate) fn assert_agree(served: &Value, scanned: &Value, what: &str) {
    let (mut served, mut scanned) = (served.clone(), scanned.clone());
    let served_median = served["medianSecondsToConvert"].take();
    let scanned_median = scanned["medianSecondsToConvert"].take();
    match (served_median.as_f64(), scanned_median.as_f64()) {
        (Some(s), Some(x)) => assert!((s - x).abs() <= 0.02 * x, "{what}: median {s} vs {x}"),
        _ => assert_eq!(served_median, scanned_median, "{what}: median"),
    }
    for kind in served["byKind"].as_array_mut().into_iter().flatten() {
        let rate = kind["rate"].take();
        kind["rate"] = json!((rate.as_f64().expect("rate") * 1e9).round() / 1e9);
    }
    for kind in scanned["byKind"].as_array_mut().into_iter().flatten() {
        let rate = kind["rate"].take();
        kind["rate"] = json!((rate.as_f64().expect("rate") * 1e9).round() / 1e9);
    }
    assert_eq!(served, scanned, "{what}");
}

/// Ranges of every shape: all time, whole days, whole months, parts of
/// days at either end, inside one day, open at one end.
pub(crate) fn ranges(dice: &mut Dice) -> Vec<(Option<i64>, Option<i64>)> {
    let day = 86_400_000_000i64;
    let start = DateTime::parse_from_rfc3339("2026-01-27T00:00:00Z")
        .expect("valid")
        .timestamp_micros();
    let february = DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z")
        .expect("valid")
        .timestamp_micros();
    let march = february + 28 * day;
    let mut ranges = vec![
        (None, None),
        (Some(february), Some(march)),
        (Some(february), None),
        (None, Some(march)),
        (Some(start + 3 * day), Some(start + 9 * day)),
    ];
    for _ in 0..10 {
        let from = start + dice.below(60 * day as u64) as i64;
        let length = 1 + dice.below(45 * day as u64) as i64;
        ranges.push((Some(from), Some(from + length)));
    }
    for _ in 0..3 {
        let from = start + dice.below(60 * day as u64) as i64;
        ranges.push((
            Some(from),
            Some(from + 1 + dice.below(20 * 3_600_000_000) as i64),
        ));
    }
    ranges
}

test_both!(stats_from_rollups_agree_with_a_full_scan, |app| {
    let mut dice = Dice(0x5EED_2026_1205);
    random_history(&app, &mut dice).await;
    for (from, to) in ranges(&mut dice) {
        for channel in [None, dice.pick(&Channel::ALL).copied()] {
            let mut variables = json!({});
            if let Some(from) = from {
                variables["from"] = json!(rfc3339(from));
            }
            if let Some(to) = to {
                variables["to"] = json!(rfc3339(to));
            }
            if let Some(channel) = channel {
                variables["channel"] = json!(channel.as_str());
            }
            let body = app.gql(&app.admin, STATS, variables.clone()).await;
            let expected = scanned(
                &app,
                from.unwrap_or(i64::MIN),
                to.unwrap_or(i64::MAX),
                channel,
            )
            .await;
            assert_agree(
                data(&body, "conversionStats"),
                &expected,
                &variables.to_string(),
            );
        }
    }
    // The history is not trivial: the comparison saw every kind of row.
    let all = scanned(&app, i64::MIN, i64::MAX, None).await;
    for step in all["funnel"].as_array().expect("funnel") {
        assert!(
            step["followed"].as_i64() >= step["converted"].as_i64(),
            "{step}"
        );
    }
    for source in ["LINK", "DIRECT"] {
        assert!(
            all["bySource"]
                .as_array()
                .expect("sources")
                .iter()
                .any(|s| s["source"] == source && s["count"].as_i64() > Some(0)),
            "{all}"
        );
    }
    assert!(all["conversations"].as_i64() > Some(30), "{all}");
    assert!(all["convertedConversations"].as_i64() > Some(5), "{all}");
    assert!(all["unattributed"].as_i64() > Some(0), "{all}");
    assert!(
        all["funnel"]
            .as_array()
            .expect("funnel")
            .iter()
            .any(|f| f["converted"].as_i64() > Some(0) && f["followed"].as_i64() > Some(0)),
        "{all}"
    );
    assert!(
        all["revenue"].as_array().expect("revenue").len() >= 2,
        "{all}"
    );
    let changes: Vec<entity::conversion_adjustment::Model> =
        entity::conversion_adjustment::Entity::find()
            .all(&app.services.db)
            .await
            .expect("adjustments");
    for change in ["RESTATED", "RETRACTED"] {
        let made = changes.iter().filter(|a| a.change == change).count();
        assert!(made >= 3, "{made} {change}");
    }
});

/// Labels whose stats the backfill must count as the writes did.
const LABELS_COUNTED: [(&str, &str); 3] =
    [("prompt", "v1"), ("experiment", "cta-b"), ("model", "M 2")];

/// The list's filter for conversations with `label`.
fn label_filter((key, value): (&str, &str)) -> Value {
    json!({ "labels": [{ "key": key, "value": value }] })
}

test_both!(
    the_migration_backfill_counts_what_the_writes_counted,
    |app| {
        use sea_orm::ConnectionTrait;
        let mut dice = Dice(0xBAC_F111);
        random_history(&app, &mut dice).await;
        let ranges = ranges(&mut dice);
        let mut before = Vec::new();
        for &(from, to) in &ranges {
            let variables = json!({ "from": from.map(rfc3339), "to": to.map(rfc3339) });
            before.push(app.gql(&app.admin, STATS, variables.clone()).await);
            for key in ["prompt", "model", "experiment"] {
                let mut variables = variables.clone();
                variables["key"] = json!(key);
                before.push(app.gql(&app.admin, BY_LABEL, variables).await);
            }
            for label in LABELS_COUNTED {
                let mut variables = variables.clone();
                variables["filter"] = label_filter(label);
                before.push(app.gql(&app.admin, STATS, variables).await);
            }
        }
        let db = &app.services.db;
        for wipe in [
            "DELETE FROM stats_rollup",
            "DELETE FROM delay_rollup",
            "DELETE FROM label_rollup",
            "DELETE FROM label_delay_rollup",
            "DELETE FROM conversation_kind",
            "DELETE FROM conversation_currency",
            "UPDATE cta_link SET first_converted_at = NULL",
        ] {
            db.execute_unprepared(wipe).await.expect("wiped");
        }
        let wiped = app.gql(&app.admin, STATS, json!({})).await;
        assert_eq!(data(&wiped, "conversionStats")["conversations"], 0);
        migration::backfill_stats_rollups(db)
            .await
            .expect("backfilled");
        let mut before = before.into_iter();
        for &(from, to) in &ranges {
            let variables = json!({ "from": from.map(rfc3339), "to": to.map(rfc3339) });
            let after = app.gql(&app.admin, STATS, variables.clone()).await;
            assert_eq!(Some(after), before.next(), "{variables}");
            for key in ["prompt", "model", "experiment"] {
                let mut variables = variables.clone();
                variables["key"] = json!(key);
                let after = app.gql(&app.admin, BY_LABEL, variables.clone()).await;
                assert_eq!(Some(after), before.next(), "{variables}");
            }
            for label in LABELS_COUNTED {
                let mut variables = variables.clone();
                variables["filter"] = label_filter(label);
                let after = app.gql(&app.admin, STATS, variables.clone()).await;
                assert_eq!(Some(after), before.next(), "{variables}");
            }
        }
    }
);

test_both!(racing_firsts_count_once, |app| {
    let session = app.start_session(Channel::Chat).await;
    let link = app
        .create_link(&session, "DAY_PASS", "https://book.example.com/")
        .await;
    let token = link["token"].as_str().expect("token").to_owned();
    // Twelve outcomes at once, three of each of four kinds, half through
    // the link; and the link followed from eight addresses at once.
    let kinds = [
        ConversionKind::TourBooked,
        ConversionKind::BookingCreated,
        ConversionKind::DayPassPurchased,
        ConversionKind::ContractCreated,
    ];
    let recordings = (0..12).map(|n| {
        let (app, session, token) = (&app, &session, &token);
        async move {
            let kind = kinds[n % 4];
            let record_id = format!("race-{n}");
            if n % 2 == 0 {
                app.record_with_token(&app.checkout, token, kind, &record_id)
                    .await
            } else {
                app.record_conversion(session, kind, &record_id).await
            }
        }
    });
    let follows = (0..8).map(|n| {
        let (app, token) = (&app, &token);
        async move {
            // Each from its own loopback address: a follow counts once a
            // minute per address.
            let local: std::net::IpAddr = format!("127.0.0.{}", n + 2).parse().expect("address");
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .local_address(local)
                .build()
                .expect("client")
                .get(format!("{}/l/{token}", app.address))
                .send()
                .await
                .expect("answer");
        }
    });
    let (bodies, _) = tokio::join!(
        futures_util::future::join_all(recordings),
        futures_util::future::join_all(follows)
    );
    for body in &bodies {
        assert_no_errors(body);
    }
    let body = app.gql(&app.admin, STATS, json!({})).await;
    let expected = scanned(&app, i64::MIN, i64::MAX, None).await;
    assert_agree(data(&body, "conversionStats"), &expected, "after the race");
    assert_eq!(expected["convertedConversations"], 1);
    assert_eq!(expected["funnel"][0]["converted"], 1);
    assert_eq!(expected["funnel"][0]["followed"], 1);
    let follows: i64 = entity::cta_link::Entity::find()
        .all(&app.services.db)
        .await
        .expect("links")
        .iter()
        .map(|l| i64::from(l.follow_count))
        .sum();
    assert_eq!(follows, 8, "every address's follow counted");
});

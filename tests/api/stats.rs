//! conversionStats on a fixture whose figures are worked out by hand.

use chrono::TimeDelta;
use serde_json::json;

use crate::helpers::*;

const STATS: &str = "query($from: DateTime, $to: DateTime, $channel: Channel) {
    conversionStats(from: $from, to: $to, channel: $channel) {
        conversations convertedConversations conversionRate
        byKind { kind count rate } byChannel { channel conversations converted rate }
        medianSecondsToConvert unattributed } }";

/// At 09:00 six conversations start: chats 1, 2, 3, WhatsApps 4, 5, email 6.
/// 09:10 chat 1 books twice (600 s), 09:30 chat 3 signs a contract as a new
/// customer (1800 s), 10:00 WhatsApp 4 books a tour (3600 s), 11:00 chat 3
/// buys a day pass (not its first conversion). A day earlier, another chat
/// converted: outside the range.
async fn fixture(app: &TestApp) {
    app.clock.set(start_time() - TimeDelta::days(1));
    let earlier = app.start_session(Channel::Chat).await;
    data(
        &app.record_conversion(&earlier, ConversionKind::BookingCreated, "b-0")
            .await,
        "recordConversion",
    );
    app.clock.set(start_time());

    let chat1 = app.start_session(Channel::Chat).await;
    let _chat2 = app.start_session(Channel::Chat).await;
    let chat3 = app.start_session(Channel::Chat).await;
    let whatsapp4 = app
        .start_session_with(json!({ "channel": "WHATSAPP", "contact": "+447700900004" }))
        .await;
    let _whatsapp5 = app
        .start_session_with(json!({ "channel": "WHATSAPP", "contact": "+447700900005" }))
        .await;
    let _email6 = app
        .start_session_with(
            json!({ "channel": "EMAIL", "contact": "six@example.com", "threadKey": "t" }),
        )
        .await;

    app.advance(TimeDelta::minutes(10));
    data(
        &app.record_conversion(&chat1, ConversionKind::BookingCreated, "b-1")
            .await,
        "recordConversion",
    );
    data(
        &app.record_conversion(&chat1, ConversionKind::BookingCreated, "b-2")
            .await,
        "recordConversion",
    );
    app.advance(TimeDelta::minutes(20));
    let signup = json!({ "sessionId": chat3.session_id, "kind": "CONTRACT_CREATED",
                         "recordId": "k-3", "newCustomerId": "cw-3" });
    data(
        &app.record_as(&app.checkout, signup).await,
        "recordConversion",
    );
    app.advance(TimeDelta::minutes(30));
    data(
        &app.record_conversion(&whatsapp4, ConversionKind::TourBooked, "v-4")
            .await,
        "recordConversion",
    );
    app.advance(TimeDelta::hours(1));
    data(
        &app.record_conversion(&chat3, ConversionKind::DayPassPurchased, "p-3")
            .await,
        "recordConversion",
    );
}

fn close(actual: &serde_json::Value, expected: f64) -> bool {
    actual.as_f64().is_some_and(|a| (a - expected).abs() < 1e-9)
}

/// Medians come from a histogram: README promises them within 2%.
fn near(actual: &serde_json::Value, expected: f64) -> bool {
    actual
        .as_f64()
        .is_some_and(|a| (a - expected).abs() <= 0.02 * expected)
}

test_both!(stats_over_a_range_match_the_hand_count, |app| {
    fixture(&app).await;
    let body = app
        .gql(
            &app.admin,
            STATS,
            json!({ "from": "2026-03-02T09:00:00Z", "to": "2026-03-02T10:00:00Z" }),
        )
        .await;
    let stats = data(&body, "conversionStats");
    assert_eq!(stats["conversations"], 6);
    assert_eq!(stats["convertedConversations"], 3);
    assert!(close(&stats["conversionRate"], 0.5));
    assert!(near(&stats["medianSecondsToConvert"], 1800.0), "{stats}");
    assert_eq!(stats["unattributed"], 0);

    let kinds = stats["byKind"].as_array().expect("byKind");
    let expected = [
        ("TOUR_BOOKED", 1, 1.0 / 6.0),
        ("CUSTOMER_CREATED", 1, 1.0 / 6.0),
        ("CONTRACT_CREATED", 1, 1.0 / 6.0),
        ("BOOKING_CREATED", 2, 1.0 / 6.0),
        ("DAY_PASS_PURCHASED", 1, 1.0 / 6.0),
    ];
    assert_eq!(kinds.len(), expected.len());
    for (row, (kind, count, rate)) in kinds.iter().zip(expected) {
        assert_eq!(row["kind"], kind);
        assert_eq!(row["count"], count, "{kind}");
        assert!(close(&row["rate"], rate), "{kind}: {row}");
    }

    let channels = stats["byChannel"].as_array().expect("byChannel");
    let expected = [
        ("CHAT", 3, 2, 2.0 / 3.0),
        ("EMAIL", 1, 0, 0.0),
        ("WHATSAPP", 2, 1, 0.5),
    ];
    assert_eq!(channels.len(), expected.len());
    for (row, (channel, conversations, converted, rate)) in channels.iter().zip(expected) {
        assert_eq!(row["channel"], channel);
        assert_eq!(row["conversations"], conversations, "{channel}");
        assert_eq!(row["converted"], converted, "{channel}");
        assert!(close(&row["rate"], rate), "{channel}: {row}");
    }
});

test_both!(stats_by_channel_and_the_median_of_an_even_count, |app| {
    fixture(&app).await;
    let range = json!({ "from": "2026-03-02T09:00:00Z", "to": "2026-03-02T10:00:00Z" });
    let mut chat = range.clone();
    chat["channel"] = json!("CHAT");
    let body = app.gql(&app.admin, STATS, chat).await;
    let stats = data(&body, "conversionStats");
    assert_eq!(stats["conversations"], 3);
    assert_eq!(stats["convertedConversations"], 2);
    assert!(
        near(&stats["medianSecondsToConvert"], 1200.0),
        "mean of 600 and 1800: {stats}"
    );
    assert_eq!(stats["byChannel"].as_array().map(Vec::len), Some(1));

    let mut whatsapp = range.clone();
    whatsapp["channel"] = json!("WHATSAPP");
    let body = app.gql(&app.admin, STATS, whatsapp).await;
    assert!(near(
        &data(&body, "conversionStats")["medianSecondsToConvert"],
        3600.0
    ));

    let mut voice = range;
    voice["channel"] = json!("VOICE");
    let body = app.gql(&app.admin, STATS, voice).await;
    let stats = data(&body, "conversionStats");
    assert_eq!(stats["conversations"], 0);
    assert!(close(&stats["conversionRate"], 0.0));
    assert_eq!(stats["medianSecondsToConvert"], json!(null));
});

test_both!(stats_without_a_range_cover_everything, |app| {
    fixture(&app).await;
    let body = app.gql(&app.integrator, STATS, json!({})).await;
    let stats = data(&body, "conversionStats");
    assert_eq!(stats["conversations"], 7);
    assert_eq!(stats["convertedConversations"], 4);
    let other = app.gql(&app.other_admin, STATS, json!({})).await;
    assert_eq!(data(&other, "conversionStats")["conversations"], 0);
    let backwards = app
        .gql(
            &app.admin,
            STATS,
            json!({ "from": "2026-03-03T00:00:00Z", "to": "2026-03-02T00:00:00Z" }),
        )
        .await;
    assert_eq!(error_code(&backwards), "BAD_USER_INPUT");
    let agent = app.gql(&app.agent, STATS, json!({})).await;
    assert_eq!(error_code(&agent), "FORBIDDEN");
});

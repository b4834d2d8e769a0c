//! The list's search finds a person by who they are, not only by what
//! they wrote: contact (any case; a phone number in any form the API
//! normalises), signed-in name and id, session ID, a badge's record id.

use serde_json::json;

use crate::helpers::*;

async fn found(app: &TestApp, search: &str, extra: serde_json::Value) -> Vec<String> {
    let mut filter = json!({ "search": search });
    if let Some(more) = extra.as_object() {
        for (k, v) in more {
            filter[k] = v.clone();
        }
    }
    let mut ids = all_pages(app, 10, filter).await;
    ids.sort();
    ids
}

test_both!(search_finds_a_person_by_who_they_are, |app| {
    let maria = app
        .start_session_with(json!({ "channel": "EMAIL",
            "contact": "\"Maria Silva\" <Maria@Example.com>", "threadKey": "Tour" }))
        .await;
    let phone = app
        .start_session_with(json!({ "channel": "WHATSAPP", "contact": "351912345678" }))
        .await;
    let ada = app
        .start_session_with(
            json!({ "channel": "CHAT", "userId": "m-42", "userName": "Ada Lovelace" }),
        )
        .await;
    let badged = app.start_session(Channel::Chat).await;
    app.record_conversion(&badged, ConversionKind::TourBooked, "visitor-99")
        .await;
    let talker = app.start_session(Channel::Chat).await;
    app.say(&talker, "VISITOR", "Is there parking? Ask Ada Lovelace")
        .await;
    // Another tenant's person of the same address stays out of sight.
    app.try_start_session(
        &app.other_agent,
        json!({ "channel": "EMAIL",
        "contact": "maria@example.com", "threadKey": "Tour" }),
    )
    .await;

    let one = |s: &Session| vec![s.session_id.clone()];
    assert_eq!(
        found(&app, "MARIA@example.COM", json!({})).await,
        one(&maria)
    );
    for form in [
        "+351912345678",
        "whatsapp:+351912345678",
        "00351912345678",
        "+351 912 345 678",
    ] {
        assert_eq!(found(&app, form, json!({})).await, one(&phone), "{form}");
    }
    assert_eq!(found(&app, "m-42", json!({})).await, one(&ada));
    assert_eq!(found(&app, &ada.session_id, json!({})).await, one(&ada));
    assert_eq!(found(&app, "visitor-99", json!({})).await, one(&badged));
    // A whole name in any case finds its person and the message naming them.
    let mut both = vec![ada.session_id.clone(), talker.session_id.clone()];
    both.sort();
    assert_eq!(found(&app, "ada LOVELACE", json!({})).await, both);
    // The other filters still apply.
    assert!(
        found(&app, "maria@example.com", json!({ "channels": ["CHAT"] }))
            .await
            .is_empty()
    );
    assert!(
        found(&app, "maria", json!({})).await.is_empty(),
        "a contact matches whole"
    );
});

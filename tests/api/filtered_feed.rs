//! A poller filtering the feed for rare events moves on: the cursor it gets
//! back is the newest event the page looked at, matching or not, so it
//! never reads the same window again — and never skips a matching event.

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::*;

const TOURS: &str =
    "query($after: String) { conversionsSince(after: $after, first: 10, kinds: [TOUR_BOOKED]) {
    nodes { cursor conversion { kind record { id } } } pageInfo { hasNextPage endCursor } } }";

async fn tours_after(app: &TestApp, after: &Value) -> Value {
    let body = app
        .gql(&app.integrator, TOURS, json!({ "after": after }))
        .await;
    data(&body, "conversionsSince").clone()
}

test_both!(
    a_filtered_poll_ends_on_the_newest_event_it_looked_at,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let tour = app
            .record_conversion(&session, ConversionKind::TourBooked, "visitor-1")
            .await;
        assert_no_errors(&tour);
        let first = tours_after(&app, &Value::Null).await;
        assert_eq!(first["nodes"].as_array().expect("nodes").len(), 1);
        let after_tour = first["pageInfo"]["endCursor"].clone();

        // A thousand day passes, none of them a tour.
        futures_util::stream::iter(0..1_000)
            .for_each_concurrent(8, |n| {
                let app = &app;
                let session = &session;
                async move {
                    assert_no_errors(
                        &app.record_conversion(
                            session,
                            ConversionKind::DayPassPurchased,
                            &format!("pass-{n}"),
                        )
                        .await,
                    );
                }
            })
            .await;
        let newest = app.feed_end(&app.integrator).await;

        let quiet = tours_after(&app, &after_tour).await;
        assert_eq!(quiet["nodes"], json!([]));
        assert_eq!(quiet["pageInfo"]["hasNextPage"], false);
        assert_eq!(
            quiet["pageInfo"]["endCursor"], newest,
            "the newest event looked at, not the cursor passed in"
        );
        let again = tours_after(&app, &quiet["pageInfo"]["endCursor"]).await;
        assert_eq!(again["pageInfo"]["endCursor"], newest);

        // The next tour is found from there, once.
        assert_no_errors(
            &app.record_conversion(&session, ConversionKind::TourBooked, "visitor-2")
                .await,
        );
        let next = tours_after(&app, &quiet["pageInfo"]["endCursor"]).await;
        let nodes = next["nodes"].as_array().expect("nodes");
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0]["conversion"]["record"]["id"], "visitor-2");
        assert_eq!(next["pageInfo"]["endCursor"], nodes[0]["cursor"]);
    }
);

test_both!(a_full_filtered_page_ends_on_its_last_event, |app| {
    let session = app.start_session(Channel::Chat).await;
    for n in 0..12 {
        assert_no_errors(
            &app.record_conversion(&session, ConversionKind::TourBooked, &format!("v-{n}"))
                .await,
        );
        assert_no_errors(
            &app.record_conversion(
                &session,
                ConversionKind::DayPassPurchased,
                &format!("p-{n}"),
            )
            .await,
        );
    }
    let page = tours_after(&app, &Value::Null).await;
    let nodes = page["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 10);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    assert_eq!(page["pageInfo"]["endCursor"], nodes[9]["cursor"]);
    let rest = tours_after(&app, &page["pageInfo"]["endCursor"]).await;
    let ids: Vec<&str> = rest["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["conversion"]["record"]["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["v-10", "v-11"], "nothing skipped");
});

const FEED: &str = "subscription($after: String) {
    conversionFeed(after: $after, kinds: [TOUR_BOOKED]) {
        __typename
        ... on ConversionEvent { cursor conversion { record { id } } }
        ... on FeedProgress { cursor } } }";

/// The next item of `conversionFeed` on `socket`.
async fn next_item(socket: &mut crate::ws::Socket) -> Value {
    let message = socket.next_json().await.expect("an item, not a close");
    assert_eq!(message["type"], "next", "{message}");
    message["payload"]["data"]["conversionFeed"].clone()
}

/// Items until a progress item at `cursor`; the tours seen on the way.
async fn tours_until_progress_at(socket: &mut crate::ws::Socket, cursor: &Value) -> Vec<String> {
    let mut tours = Vec::new();
    loop {
        let item = next_item(socket).await;
        match item["__typename"].as_str() {
            Some("ConversionEvent") => tours.push(
                item["conversion"]["record"]["id"]
                    .as_str()
                    .expect("id")
                    .to_owned(),
            ),
            Some("FeedProgress") if &item["cursor"] == cursor => return tours,
            Some("FeedProgress") => {}
            _ => panic!("unexpected item {item}"),
        }
    }
}

async fn day_passes(app: &TestApp, session: &Session, from: usize, to: usize) {
    for n in from..to {
        assert_no_errors(
            &app.record_conversion(
                session,
                ConversionKind::DayPassPurchased,
                &format!("pass-{n}"),
            )
            .await,
        );
    }
}

test_both!(a_filtered_subscription_says_how_far_it_has_read, |app| {
    let session = app.start_session(Channel::Chat).await;
    let start = app.feed_end(&app.integrator).await;
    assert_no_errors(
        &app.record_conversion(&session, ConversionKind::TourBooked, "visitor-1")
            .await,
    );
    day_passes(&app, &session, 0, 250).await;
    let newest = app.feed_end(&app.integrator).await;

    // Catching up from the start: the tour, then progress past every day
    // pass after it (at least every 100 of them, then the newest).
    let mut socket = app.subscriber(&app.integrator).await;
    socket.subscribe("1", FEED, json!({ "after": start })).await;
    assert_eq!(
        tours_until_progress_at(&mut socket, &newest).await,
        ["visitor-1"]
    );

    // Live: more day passes go by as progress, and a tour as an event.
    day_passes(&app, &session, 250, 260).await;
    let newest = app.feed_end(&app.integrator).await;
    assert!(
        tours_until_progress_at(&mut socket, &newest)
            .await
            .is_empty()
    );
    drop(socket);

    // Resumed from the progress cursor: only what came after it.
    day_passes(&app, &session, 260, 270).await;
    assert_no_errors(
        &app.record_conversion(&session, ConversionKind::TourBooked, "visitor-2")
            .await,
    );
    let mut socket = app.subscriber(&app.integrator).await;
    socket
        .subscribe("1", FEED, json!({ "after": newest }))
        .await;
    let item = next_item(&mut socket).await;
    assert_eq!(item["__typename"], "ConversionEvent", "{item}");
    assert_eq!(item["conversion"]["record"]["id"], "visitor-2");

    // The plain subscription never sends progress.
    let mut plain = app.subscriber(&app.integrator).await;
    plain
        .subscribe(
            "1",
            "subscription($after: String) { conversionRecorded(after: $after, kinds: [TOUR_BOOKED]) {
                cursor conversion { record { id } } } }",
            json!({ "after": start }),
        )
        .await;
    let ids: Vec<Value> = plain
        .events(2)
        .await
        .into_iter()
        .map(|e| e["conversion"]["record"]["id"].clone())
        .collect();
    assert_eq!(ids, [json!("visitor-1"), json!("visitor-2")]);
    assert!(plain.quiet_for(std::time::Duration::from_millis(300)).await);
});

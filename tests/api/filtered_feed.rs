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

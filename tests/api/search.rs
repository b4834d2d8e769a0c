//! Search read in small steps: the answers are the same as reading
//! everything, whatever the order in which messages arrived.

use chrono::TimeDelta;
use convtrack::service::search::SearchSteps;
use serde_json::{Value, json};

use crate::helpers::*;

/// Thirty conversations a minute apart (newest last), CHAT and WHATSAPP in
/// turn. Every one says "hello"; every third says "desk"; every fourth says
/// "zq"; only the first says "rare-word". Then, after all of them started,
/// four old ones get a late "desk", so the newest messages belong to old
/// conversations, more of them than a page of two. Another tenant says "desk" and "zq" last.
struct Thirty {
    sessions: Vec<String>,
}

impl Thirty {
    /// Session IDs of the conversations `keep` selects, newest first.
    fn newest_first(&self, keep: impl Fn(usize) -> bool) -> Vec<String> {
        (0..self.sessions.len())
            .rev()
            .filter(|&i| keep(i))
            .map(|i| self.sessions[i].clone())
            .collect()
    }
}

const LATE_DESK: [usize; 4] = [1, 4, 7, 10];

fn says_desk(i: usize) -> bool {
    i.is_multiple_of(3) || LATE_DESK.contains(&i)
}

async fn thirty(app: &TestApp) -> Thirty {
    let mut sessions = Vec::new();
    let mut started = Vec::new();
    for i in 0..30usize {
        app.advance(TimeDelta::minutes(1));
        let session = if i.is_multiple_of(2) {
            app.start_session(Channel::Chat).await
        } else {
            app.start_session_with(
                json!({ "channel": "WHATSAPP", "contact": format!("+4477009{i:05}") }),
            )
            .await
        };
        let mut text = format!("hello, this is conversation {i}");
        if i.is_multiple_of(3) {
            text.push_str(" about a desk");
        }
        if i.is_multiple_of(4) {
            text.push_str(" zq");
        }
        if i == 0 {
            text.push_str(" rare-word");
        }
        data(&app.say(&session, "VISITOR", &text).await, "appendMessage");
        data(
            &app.say(&session, "AI_AGENT", "Thanks, noted.").await,
            "appendMessage",
        );
        sessions.push(session.session_id.clone());
        started.push(session);
    }
    app.advance(TimeDelta::minutes(1));
    for i in LATE_DESK {
        data(
            &app.say(&started[i], "VISITOR", "One more thing: a DESK for two?")
                .await,
            "appendMessage",
        );
    }
    let other = data(
        &app.try_start_session(&app.other_agent, json!({ "channel": "CHAT" }))
            .await,
        "startSession",
    )["sessionId"]
        .as_str()
        .expect("sessionId")
        .to_owned();
    let said = app
        .gql(
            &app.other_agent,
            "mutation($input: AppendMessageInput!) { appendMessage(input: $input) { message { id } } }",
            json!({ "input": { "sessionId": other, "role": "VISITOR", "content": "desk zq hello" } }),
        )
        .await;
    data(&said, "appendMessage");
    Thirty { sessions }
}

/// Every match of `filter`, by pages of 2 and of 100: both must agree.
async fn found(app: &TestApp, filter: Value) -> Vec<String> {
    let small = all_pages(app, 2, filter.clone()).await;
    let whole = all_pages(app, 100, filter.clone()).await;
    assert_eq!(small, whole, "pages of 2 and of 100 agree: {filter}");
    whole
}

fn small_steps(config: &mut convtrack::config::ServerConfig) {
    config.search_steps = SearchSteps {
        window: 3,
        largest_window: 12,
        first_batch: 4,
        largest_batch: 8,
    };
}

test_both!(
    a_search_read_in_small_steps_finds_every_match_in_list_order,
    with small_steps,
    |app| {
        let x = thirty(&app).await;
        assert_eq!(
            found(&app, json!({ "search": "hello" })).await,
            x.newest_first(|_| true),
            "a text every conversation has"
        );
        assert_eq!(
            found(&app, json!({ "search": "desk" })).await,
            x.newest_first(says_desk),
            "late messages in old conversations are found in their conversation's place"
        );
        assert_eq!(
            found(&app, json!({ "search": "ZQ" })).await,
            x.newest_first(|i| i.is_multiple_of(4)),
            "a text too short for trigrams"
        );
        assert_eq!(
            found(&app, json!({ "search": "rare-word" })).await,
            x.newest_first(|i| i == 0),
            "the oldest conversation's text"
        );
        assert_eq!(
            found(&app, json!({ "search": "E-W" })).await,
            x.newest_first(|i| i == 0),
            "a text without three letters or digits in a row"
        );
        assert_eq!(
            found(&app, json!({ "search": "nowhere to be found" })).await,
            Vec::<String>::new()
        );
    }
);

test_both!(
    a_search_in_small_steps_applies_every_other_filter,
    with small_steps,
    |app| {
        let x = thirty(&app).await;
        assert_eq!(
            found(&app, json!({ "search": "desk", "channels": ["WHATSAPP"] })).await,
            x.newest_first(|i| says_desk(i) && i % 2 == 1)
        );
        let body = app
            .gql(
                &app.admin,
                "query { conversations(first: 30) { nodes { sessionId startedAt } } }",
                json!({}),
            )
            .await;
        let nodes = data(&body, "conversations")["nodes"]
            .as_array()
            .expect("nodes")
            .clone();
        // Conversations 10 to 19 by their start times.
        let after = nodes[19]["startedAt"].clone();
        let before = nodes[9]["startedAt"].clone();
        assert_eq!(
            found(
                &app,
                json!({ "search": "desk", "startedAfter": after, "startedBefore": before })
            )
            .await,
            x.newest_first(|i| says_desk(i) && (10..20).contains(&i))
        );
        assert_eq!(
            found(&app, json!({ "search": "zq", "converted": false })).await,
            x.newest_first(|i| i.is_multiple_of(4))
        );
    }
);

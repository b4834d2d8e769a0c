//! An agent runtime retries what timed out: with an idempotency key, a
//! retried `startSession` or `appendMessage` gets the first answer and
//! stores nothing twice, however many retries race, on one instance or
//! several.

use chrono::TimeDelta;
use futures_util::future::join_all;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::helpers::*;

const START: &str = "mutation($input: StartSessionInput!) { startSession(input: $input) {
    sessionId resumed } }";
const APPEND: &str = "mutation($input: AppendMessageInput!) { appendMessage(input: $input) {
    message { id position content } conversation { messageCount } } }";

impl TestApp {
    /// Rows in `table`, the whole database's.
    async fn rows(&self, table: &str) -> i64 {
        let db = &self.services.db;
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT count(*) FROM {table}"),
            ))
            .await
            .expect("count")
            .expect("a row");
        row.try_get_by_index::<i64>(0).expect("count")
    }
}

/// `document` with `input` sent twenty times at once, spread over `bases`.
async fn twenty(app: &TestApp, bases: &[String], document: &str, input: Value) -> Vec<Value> {
    join_all((0..20).map(|n| {
        let base = &bases[n % bases.len()];
        let input = input.clone();
        async move {
            app.gql_at(base, &app.agent, document, json!({ "input": input }))
                .await
        }
    }))
    .await
}

async fn retried_twenty_times(app: &TestApp, bases: &[String]) {
    let chat = json!({ "channel": "CHAT", "userId": "u-7", "idempotencyKey": "start-1" });
    let answers = twenty(app, bases, START, chat.clone()).await;
    let first = data(&answers[0], "startSession")["sessionId"].clone();
    for answer in &answers {
        assert_eq!(data(answer, "startSession")["sessionId"], first, "{answer}");
    }
    assert_eq!(app.rows("conversation").await, 1, "one session");

    let said = json!({ "sessionId": first, "role": "VISITOR", "content": "Is parking free?",
                       "idempotencyKey": "msg-1" });
    let answers = twenty(app, bases, APPEND, said.clone()).await;
    let message = data(&answers[0], "appendMessage")["message"].clone();
    assert_eq!(message["position"], 1);
    for answer in &answers {
        assert_eq!(
            data(answer, "appendMessage")["message"],
            message,
            "{answer}"
        );
    }
    assert_eq!(app.rows("message").await, 1, "one message");

    // The same key with other input is a mistake, said so; nothing stored.
    let mut other = chat.clone();
    other["userId"] = json!("u-8");
    let refused = app.gql(&app.agent, START, json!({ "input": other })).await;
    assert_eq!(error_code(&refused), "IDEMPOTENCY_KEY_REUSED");
    let mut changed = said.clone();
    changed["content"] = json!("Is parking paid?");
    let refused = app
        .gql(&app.agent, APPEND, json!({ "input": changed }))
        .await;
    assert_eq!(error_code(&refused), "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(app.rows("message").await, 1);

    // Keys are per operation: the session's key may name a message too,
    // and a new key is a new message.
    let mut next = said.clone();
    next["idempotencyKey"] = json!("start-1");
    let second = app.gql(&app.agent, APPEND, json!({ "input": next })).await;
    assert_eq!(data(&second, "appendMessage")["message"]["position"], 2);
}

test_both!(retries_with_a_key_store_one_row, |app| {
    let bases = vec![app.address.clone()];
    retried_twenty_times(&app, &bases).await;
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_across_instances_store_one_row() {
    let Some(mut app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let other = app.second_instance().await;
    let bases = vec![app.address.clone(), other];
    retried_twenty_times(&app, &bases).await;
}

test_both!(a_retried_email_start_answers_as_the_first_did, |app| {
    let input = json!({ "channel": "EMAIL", "contact": "ana@example.com", "threadKey": "Hello",
                        "idempotencyKey": "mail-1" });
    let first = app.gql(&app.agent, START, json!({ "input": input })).await;
    assert_eq!(data(&first, "startSession")["resumed"], false);
    let again = app.gql(&app.agent, START, json!({ "input": input })).await;
    assert_eq!(data(&again, "startSession"), data(&first, "startSession"));
    // Without a key the same start continues the thread, as always.
    let mut unkeyed = input.clone();
    unkeyed
        .as_object_mut()
        .expect("object")
        .remove("idempotencyKey");
    let resumed = app
        .gql(&app.agent, START, json!({ "input": unkeyed }))
        .await;
    assert_eq!(data(&resumed, "startSession")["resumed"], true);
});

test_both!(keys_are_kept_two_days_then_pruned, |app| {
    let input = json!({ "channel": "CHAT", "idempotencyKey": "k-old" });
    let start = || async { app.gql(&app.agent, START, json!({ "input": input })).await };
    let first = data(&start().await, "startSession")["sessionId"].clone();
    app.advance(TimeDelta::hours(47));
    assert_eq!(app.services.prune_request_keys().await.expect("prune"), 0);
    assert_eq!(data(&start().await, "startSession")["sessionId"], first);

    app.advance(TimeDelta::hours(2));
    assert_eq!(app.services.prune_request_keys().await.expect("prune"), 1);
    let later = data(&start().await, "startSession")["sessionId"].clone();
    assert_ne!(later, first, "a pruned key is a new request again");
});

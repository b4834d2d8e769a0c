//! Document limits: refused before any resolver runs, with
//! QUERY_TOO_COMPLEX and a message naming the limit; the admin front-end's
//! heaviest real queries pass.

use serde_json::json;

use crate::helpers::*;

/// The AI Conversations page at its largest.
const ADMIN_LIST: &str = "query List($after: String, $filter: ConversationFilter) {
  conversations(first: 250, after: $after, filter: $filter) {
    edges { cursor node { id } }
    nodes {
      id sessionId channel startedAt lastActivityAt closedAt active openingMessage
      user { id name } contact messageCount
      badges { kind label colour record { type id url } recordedAt }
    }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
  conversionStats { conversations convertedConversations conversionRate
    byKind { kind count rate } byChannel { channel conversations converted rate }
    medianSecondsToConvert unattributed funnel { action issued followed converted } }
}";

/// The detail panel at its largest.
const ADMIN_DETAIL: &str = "query Detail($id: ID) {
  conversation(id: $id) {
    id sessionId channel startedAt active openingMessage user { id name } contact
    badges { kind label colour record { type id url } recordedAt }
    conversions { id kind attributed source linkAction unattributedReason recordedAt record { type id url } }
    messages(first: 500, includeToolCalls: true) {
      nodes { id role label content position createdAt }
      pageInfo { hasNextPage endCursor }
    }
  }
}";

fn refused(body: &serde_json::Value, limit_word: &str) {
    assert_eq!(error_code(body), "QUERY_TOO_COMPLEX", "{body}");
    assert!(error_message(body).contains(limit_word), "{body}");
    assert!(body["data"].is_null(), "nothing ran: {body}");
}

test_both!(the_admin_front_ends_heaviest_queries_pass, |app| {
    let session = app.start_session(Channel::Chat).await;
    data(
        &app.say(&session, "VISITOR", "hello").await,
        "appendMessage",
    );
    let list = app.gql(&app.admin, ADMIN_LIST, json!({})).await;
    assert_eq!(
        data(&list, "conversations")["nodes"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let detail = app
        .gql(&app.admin, ADMIN_DETAIL, json!({ "id": session.id }))
        .await;
    assert_eq!(
        data(&detail, "conversation")["messages"]["nodes"][0]["content"],
        "hello"
    );
});

test_both!(deep_or_expensive_queries_are_refused, |app| {
    let deep = "{ conversations { nodes { conversions { conversation { conversions { conversation {
        conversions { conversation { conversions { conversation { conversions { id } } } } } } } } } } } }";
    refused(
        &app.gql(&app.admin, deep, json!({})).await,
        "deeper than 10",
    );
    let expensive =
        "{ conversations(first: 250) { nodes { messages(first: 500) { nodes { content } } } } }";
    refused(
        &app.gql(&app.admin, expensive, json!({})).await,
        "complexity",
    );
});

test_both!(aliases_directives_and_tokens_are_counted, |app| {
    let aliases = |n: usize| {
        let fields: Vec<String> = (0..n)
            .map(|i| format!("a{i}: channelPolicies {{ channel }}"))
            .collect();
        format!("{{ {} }}", fields.join(" "))
    };
    data(&app.gql(&app.admin, &aliases(15), json!({})).await, "a0");
    refused(
        &app.gql(&app.admin, &aliases(16), json!({})).await,
        "aliases",
    );

    let directives: String = (0..21).map(|_| " @include(if: true)").collect();
    let query = format!("{{ channelPolicies{directives} {{ channel }} }}");
    refused(&app.gql(&app.admin, &query, json!({})).await, "directives");

    let tokens = format!("{{ channelPolicies {{ {} }} }}", "channel ".repeat(3_000));
    refused(&app.gql(&app.admin, &tokens, json!({})).await, "tokens");
});

test_both!(introspection_is_on_by_default, |app| {
    let body = app
        .gql(&app.admin, "{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(data(&body, "__schema")["queryType"]["name"], "Query");
    let typo = app
        .gql(&app.admin, "{ conversation { sesionId } }", json!({}))
        .await;
    assert!(error_message(&typo).contains("Did you mean"), "{typo}");
});

async fn without_introspection(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.introspection = false).await else {
        return;
    };
    let body = app
        .gql(&app.admin, "{ __schema { queryType { name } } }", json!({}))
        .await;
    assert!(
        body["data"]["__schema"].is_null(),
        "no schema is revealed: {body}"
    );
    let typo = app
        .gql(&app.admin, "{ conversation { sesionId } }", json!({}))
        .await;
    assert!(!typo.to_string().contains("Did you mean"), "{typo}");
    assert_eq!(error_code(&typo), "BAD_USER_INPUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_introspection_also_hides_suggestions_sqlite() {
    without_introspection(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_introspection_also_hides_suggestions_postgres() {
    without_introspection(Backend::Postgres).await;
}

async fn rate_limited(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.rate_limit = convtrack::domain::rate_limit::Budget {
            capacity: 500.0,
            per_second: 1.0,
        }
    })
    .await
    else {
        return;
    };
    // Aliases multiply the cost: they cannot spread a query over the budget.
    let heavy = "{ a: conversations(first: 50) { nodes { id sessionId } }
                   b: conversations(first: 50) { nodes { id sessionId } } }";
    let mut refused = None;
    for attempt in 1..=20 {
        let response = app.post_graphql(Some(&app.admin), heavy, json!({})).await;
        if response.status() == 429 {
            refused = Some((attempt, response));
            break;
        }
        assert_eq!(response.status(), 200);
    }
    let (attempt, response) = refused.expect("the budget runs out");
    assert!(attempt > 1, "the first request fits the budget");
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry_after >= 1);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(error_code(&body), "RATE_LIMITED");

    let other = app
        .post_graphql(Some(&app.integrator), heavy, json!({}))
        .await;
    assert_eq!(other.status(), 200, "another key is unaffected");
    app.advance(chrono::TimeDelta::seconds(retry_after as i64));
    let again = app.post_graphql(Some(&app.admin), heavy, json!({})).await;
    assert_eq!(again.status(), 200, "the budget refills");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_per_key_and_cost_based_sqlite() {
    rate_limited(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_per_key_and_cost_based_postgres() {
    rate_limited(Backend::Postgres).await;
}

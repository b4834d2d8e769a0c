//! Least privilege and tenant isolation, enumerated: the role matrix of the
//! README against every root field of the served schema, and every
//! id-taking operation called across tenants with canary data.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;
use crate::ws::*;

const ROLES: [&str; 4] = ["ADMIN", "AGENT", "CHECKOUT", "INTEGRATOR"];

struct Rule {
    field: String,
    allowed: [bool; 4],
}

/// The role matrix as the README states it.
fn matrix() -> Vec<Rule> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let table = readme
        .split("<!-- role-matrix -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- /role-matrix -->").next())
        .expect("the README's role matrix");
    table
        .lines()
        .filter(|l| {
            l.starts_with("| query")
                || l.starts_with("| mutation")
                || l.starts_with("| subscription")
        })
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let allowed = [1, 2, 3, 4].map(|i| match cells[i] {
                "✓" => true,
                "–" => false,
                other => panic!("unreadable cell {other:?} in {line}"),
            });
            Rule {
                field: cells[0].to_owned(),
                allowed,
            }
        })
        .collect()
}

/// Every root field the server serves, as `query x` / `mutation x` / `subscription x`.
async fn served_fields(app: &TestApp) -> Vec<String> {
    let body = app
        .gql(
            &app.admin,
            "{ __schema { queryType { fields { name } } mutationType { fields { name } } subscriptionType { fields { name } } } }",
            json!({}),
        )
        .await;
    let schema = data(&body, "__schema");
    let mut fields = Vec::new();
    for (kind, key) in [
        ("query", "queryType"),
        ("mutation", "mutationType"),
        ("subscription", "subscriptionType"),
    ] {
        for field in schema[key]["fields"].as_array().expect("fields") {
            fields.push(format!("{kind} {}", field["name"].as_str().expect("name")));
        }
    }
    fields.sort();
    fields
}

/// A call of each root field that reaches its permission check.
fn example(field: &str, session: &str, conversation: &str) -> (String, Value) {
    let s = json!({ "s": session });
    let q = |query: &str| (query.to_owned(), json!({}));
    let with = |query: &str, vars: &Value| (query.to_owned(), vars.clone());
    match field {
        "query badgeKinds" => q("{ badgeKinds { kind } }"),
        "query channelPolicies" => q("{ channelPolicies { channel } }"),
        "query conversation" => with(
            "query($id: ID) { conversation(id: $id) { id } }",
            &json!({ "id": conversation }),
        ),
        "query conversationForRecord" => {
            q("{ conversationForRecord(recordType: BOOKING, recordId: \"x\") { id } }")
        }
        "query conversations" => q("{ conversations(first: 1) { nodes { id } } }"),
        "query conversionStats" => q("{ conversionStats { conversations } }"),
        "query conversionsSince" => q("{ conversionsSince(first: 1) { nodes { cursor } } }"),
        "query feedCursor" => q("{ feedCursor }"),
        "query node" => with(
            "query($id: ID!) { node(id: $id) { id } }",
            &json!({ "id": conversation }),
        ),
        "query tenantSettings" => q("{ tenantSettings { attributionWindowDays } }"),
        "query unattributedConversions" => {
            q("{ unattributedConversions(first: 1) { nodes { id } } }")
        }
        "mutation appendMessage" => with(
            "mutation($s: String!) { appendMessage(input: { sessionId: $s, role: VISITOR, content: \"hi\" }) { message { id } } }",
            &s,
        ),
        "mutation closeSession" => with(
            "mutation($s: String!) { closeSession(input: { sessionId: $s }) { conversation { id } } }",
            &s,
        ),
        "mutation cancelConfirmation" => q(
            "mutation { cancelConfirmation(input: { confirmationId: \"01960000-0000-7000-8000-000000000000\" }) { cancelled } }",
        ),
        "mutation confirm" => q(
            "mutation { confirm(input: { confirmationId: \"01960000-0000-7000-8000-000000000000\", recordId: \"r\" }) { created } }",
        ),
        "mutation createCtaLink" => with(
            "mutation($s: String!) { createCtaLink(input: { sessionId: $s, action: DAY_PASS, targetUrl: \"https://x.example/\" }) { token } }",
            &s,
        ),
        "mutation recordConversion" => with(
            "mutation($s: String) { recordConversion(input: { sessionId: $s, kind: BOOKING_CREATED, recordId: \"m-1\" }) { created } }",
            &s,
        ),
        "mutation attributeConversion" => q(
            "mutation { attributeConversion(input: { conversionId: \"Q29udmVyc2lvbjow\", reason: \"r\" }) { created } }",
        ),
        "mutation dismissConversion" => q(
            "mutation { dismissConversion(input: { conversionId: \"Q29udmVyc2lvbjow\", reason: \"r\" }) { created } }",
        ),
        "mutation retractConversion" => q(
            "mutation { retractConversion(input: { conversionId: \"Q29udmVyc2lvbjow\", reason: \"r\", idempotencyKey: \"k\" }) { created } }",
        ),
        "mutation restateConversion" => q(
            "mutation { restateConversion(input: { conversionId: \"Q29udmVyc2lvbjow\", value: { amount: \"1\", currency: \"EUR\" }, reason: \"r\", idempotencyKey: \"k\" }) { created } }",
        ),
        "mutation requestConfirmation" => with(
            "mutation($s: String!) { requestConfirmation(input: { sessionId: $s, action: BOOKING_CONFIRMATION, summary: \"x\" }) { id } }",
            &s,
        ),
        "mutation setSessionLabels" => with(
            "mutation($s: String!) { setSessionLabels(input: { sessionId: $s, labels: [{ key: \"prompt\", value: \"v7\" }] }) { conversation { id } } }",
            &s,
        ),
        "mutation startSession" => {
            q("mutation { startSession(input: { channel: CHAT }) { sessionId } }")
        }
        "query webhookEndpoints" => q("{ webhookEndpoints { id } }"),
        "query webhookDeliveries" => q(
            "{ webhookDeliveries(endpointId: \"00000000-0000-0000-0000-000000000000\") { nodes { eventId } } }",
        ),
        "mutation redeliverWebhooks" => q(
            "mutation { redeliverWebhooks(input: { endpointId: \"00000000-0000-0000-0000-000000000000\", after: \"x\" }) { endpoint { id } } }",
        ),
        "mutation createWebhookEndpoint" => q(
            "mutation { createWebhookEndpoint(input: { url: \"https://hooks.example.com/\" }) { secret } }",
        ),
        "mutation updateWebhookEndpoint" => q(
            "mutation { updateWebhookEndpoint(input: { id: \"00000000-0000-0000-0000-000000000000\", enabled: false }) { id } }",
        ),
        "mutation rotateWebhookSecret" => q(
            "mutation { rotateWebhookSecret(input: { id: \"00000000-0000-0000-0000-000000000000\" }) { secret } }",
        ),
        "mutation deleteWebhookEndpoint" => q(
            "mutation { deleteWebhookEndpoint(input: { id: \"00000000-0000-0000-0000-000000000000\" }) { id } }",
        ),
        "query erasures" => q("{ erasures(first: 1) { nodes { id } } }"),
        "query contactData" => q("{ contactData(contact: \"a@example.com\") }"),
        "mutation eraseContact" => q(
            "mutation { eraseContact(input: { contact: \"nobody@example.com\", reason: \"r\" }) { erased } }",
        ),
        "mutation updateTenantSettings" => q(
            "mutation { updateTenantSettings(input: { attributionWindowDays: 30 }) { settings { attributionWindowDays } } }",
        ),
        other => panic!(
            "no example call for {other}: add one here and a row to the README's role matrix"
        ),
    }
}

test_both!(every_root_field_follows_the_readme_role_matrix, |app| {
    let rules = matrix();
    let mut documented: Vec<String> = rules.iter().map(|r| r.field.clone()).collect();
    documented.sort();
    assert_eq!(
        served_fields(&app).await,
        documented,
        "every served field has exactly one rule"
    );

    let session = app.start_session(Channel::Chat).await;
    let keys = [&app.admin, &app.agent, &app.checkout, &app.integrator];
    for rule in &rules {
        for (role, (key, allowed)) in ROLES.iter().zip(keys.iter().zip(rule.allowed)) {
            let granted = if let Some(field) = rule.field.strip_prefix("subscription ") {
                subscribes(&app, key, field).await
            } else {
                let (query, variables) = example(&rule.field, &session.session_id, &session.id);
                let body = app.gql(key, &query, variables).await;
                body["errors"].as_array().is_none_or(|errors| {
                    errors
                        .iter()
                        .all(|e| e["extensions"]["code"] != "FORBIDDEN")
                })
            };
            assert_eq!(granted, allowed, "{} as {role}", rule.field);
        }
    }
});

/// Whether `key` may open `field`: a key refused at `connection_init`
/// may not; an accepted one is refused at once by a field it may not use,
/// while a field it may use waits quietly for events.
async fn subscribes(app: &TestApp, key: &str, field: &str) -> bool {
    let mut socket = app.socket_to(None, MODERN).await;
    socket.init(key).await;
    if !matches!(socket.next_json().await, Some(m) if m["type"] == "connection_ack") {
        return false;
    }
    let selection = match field {
        "conversionFeed" => "{ ... on FeedProgress { cursor } }",
        "conversationActivity" => "{ change }",
        _ => "{ cursor }",
    };
    socket
        .subscribe(
            "1",
            &format!("subscription {{ {field} {selection} }}"),
            json!({}),
        )
        .await;
    match tokio::time::timeout(std::time::Duration::from_millis(300), socket.next_json()).await {
        Err(_) => true,
        Ok(Some(refused)) => {
            assert_eq!(
                refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
                "{field}: {refused}"
            );
            false
        }
        Ok(None) => panic!("{field}: the socket closed"),
    }
}

/// Tenant A's data, every text field marked with a canary.
struct Seeded {
    session_id: String,
    conversation: String,
    message: String,
    conversion: String,
    token: String,
    confirmation: String,
    cursor: String,
}

async fn seed(app: &TestApp) -> Seeded {
    let body = app
        .try_start_session(
            &app.agent,
            json!({ "channel": "CHAT", "userId": "CANARY-user-id", "userName": "CANARY-user-name", "contact": "CANARY-contact" }),
        )
        .await;
    let started = data(&body, "startSession");
    let session = Session {
        session_id: started["sessionId"].as_str().expect("id").to_owned(),
        id: started["conversation"]["id"]
            .as_str()
            .expect("id")
            .to_owned(),
    };
    let said = app
        .say(&session, "VISITOR", "CANARY-message about parking")
        .await;
    let message = data(&said, "appendMessage")["message"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let body = app
        .record_as(
            &app.checkout,
            json!({ "sessionId": session.session_id, "kind": "BOOKING_CREATED", "recordId": "CANARY-record", "idempotencyKey": "CANARY-key" }),
        )
        .await;
    let conversion = data(&body, "recordConversion")["conversion"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let link = app
        .create_link(&session, "DAY_PASS", "https://canary.example/CANARY-target")
        .await;
    let body = app
        .gql(
            &app.agent,
            "mutation($s: String!) { requestConfirmation(input: { sessionId: $s, action: BOOKING_CONFIRMATION, summary: \"CANARY-summary\" }) { id } }",
            json!({ "s": session.session_id }),
        )
        .await;
    let confirmation = data(&body, "requestConfirmation")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let settings = app
        .gql(
            &app.admin,
            "mutation { updateTenantSettings(input: { recordUrlTemplates: [{ recordType: BOOKING, template: \"https://canary.example/CANARY/{id}\" }] }) { settings { attributionWindowDays } } }",
            json!({}),
        )
        .await;
    data(&settings, "updateTenantSettings");
    let polled = app
        .gql(
            &app.integrator,
            "{ conversionsSince { nodes { cursor } } }",
            json!({}),
        )
        .await;
    let cursor = data(&polled, "conversionsSince")["nodes"][0]["cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    Seeded {
        session_id: session.session_id,
        conversation: session.id,
        message,
        conversion,
        token: link["token"].as_str().expect("token").to_owned(),
        confirmation,
        cursor,
    }
}

/// The same operations with values that exist nowhere.
fn random_values(app: &TestApp, a: &Seeded) -> Seeded {
    use base64::Engine;
    let b64 = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let token = {
        let mut t = a.token.clone().into_bytes();
        let last = t.len() - 2;
        t[last] = if t[last] == b'x' { b'y' } else { b'x' };
        String::from_utf8(t).expect("ascii")
    };
    let _ = app;
    Seeded {
        session_id: "cs_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ".to_owned(),
        conversation: b64(format!("Conversation:{}", Uuid::now_v7())),
        message: b64(format!("Message:{}", Uuid::now_v7())),
        conversion: b64(format!("Conversion:{}", Uuid::now_v7())),
        token,
        confirmation: Uuid::now_v7().to_string(),
        cursor: "bm90LWEtY3Vyc29y".to_owned(),
    }
}

/// Every id-taking operation, as tenant B, with `v`'s values.
fn probes(v: &Seeded) -> Vec<(&'static str, String, Value)> {
    let s = json!({ "s": v.session_id });
    vec![
        ("admin", "query($id: ID) { conversation(id: $id) { id sessionId user { id name } contact openingMessage } }".into(), json!({ "id": v.conversation })),
        ("admin", "query($s: String) { conversation(sessionId: $s) { id messages { nodes { content } } } }".into(), s.clone()),
        ("admin", "query($a: ID!, $b: ID!, $c: ID!) { a: node(id: $a) { id ... on Conversation { contact } } b: node(id: $b) { id ... on Message { content } } c: node(id: $c) { id ... on Conversion { record { id url } } } }".into(), json!({ "a": v.conversation, "b": v.message, "c": v.conversion })),
        ("admin", "{ conversationForRecord(recordType: BOOKING, recordId: \"CANARY-record\") { id } }".into(), json!({})),
        ("admin", "query($s: String) { conversations(filter: { sessionId: $s }) { nodes { id openingMessage } } }".into(), s.clone()),
        ("admin", "{ conversations(filter: { search: \"CANARY\" }) { nodes { id } } byBadge: conversations(filter: { badges: [BOOKING_CREATED] }) { nodes { id } } }".into(), json!({})),
        ("admin", "mutation($s: String) { recordConversion(input: { sessionId: $s, kind: DAY_PASS_PURCHASED, recordId: \"b-1\" }) { created } }".into(), s.clone()),
        ("admin", "mutation($t: String) { recordConversion(input: { linkToken: $t, kind: DAY_PASS_PURCHASED, recordId: \"b-2\" }) { created } }".into(), json!({ "t": v.token })),
        ("agent", "mutation($s: String!) { appendMessage(input: { sessionId: $s, role: VISITOR, content: \"x\" }) { message { id } } }".into(), s.clone()),
        ("agent", "mutation($s: String!) { closeSession(input: { sessionId: $s }) { conversation { id } } }".into(), s.clone()),
        ("agent", "mutation($s: String!) { createCtaLink(input: { sessionId: $s, action: DAY_PASS, targetUrl: \"https://x.example/\" }) { token } }".into(), s.clone()),
        ("agent", "mutation($s: String!) { requestConfirmation(input: { sessionId: $s, action: BOOKING_CONFIRMATION, summary: \"x\" }) { id } }".into(), s),
        ("admin", "mutation($c: ID!) { confirm(input: { confirmationId: $c, recordId: \"b-3\" }) { created } }".into(), json!({ "c": v.confirmation })),
        ("admin", "query($a: String) { conversionsSince(after: $a) { nodes { cursor } } }".into(), json!({ "a": v.cursor })),
        ("admin", "{ unattributedConversions { nodes { id } } conversionStats { conversations } tenantSettings { recordUrlTemplates { template } } }".into(), json!({})),
    ]
}

test_both!(
    another_tenant_gets_no_canary_and_the_same_answer_as_for_a_random_id,
    |app| {
        let a = seed(&app).await;
        let random = random_values(&app, &a);
        let before = app
            .conversation(
                &app.admin,
                &Session {
                    session_id: a.session_id.clone(),
                    id: a.conversation.clone(),
                },
            )
            .await;
        for ((who, query, with_a), (_, _, with_random)) in
            probes(&a).into_iter().zip(probes(&random))
        {
            let key = if who == "agent" {
                &app.other_agent
            } else {
                &app.other_admin
            };
            let answer_a = app.gql(key, &query, with_a).await;
            let answer_random = app.gql(key, &query, with_random).await;
            let text = answer_a.to_string();
            for secret in [
                "CANARY",
                a.session_id.as_str(),
                a.conversation.as_str(),
                a.message.as_str(),
                a.conversion.as_str(),
            ] {
                assert!(!text.contains(secret), "{query}: {secret} leaked in {text}");
            }
            assert_eq!(
                answer_a, answer_random,
                "{query}: A's values answer like random ones"
            );
        }
        let after = app
            .conversation(
                &app.admin,
                &Session {
                    session_id: a.session_id.clone(),
                    id: a.conversation.clone(),
                },
            )
            .await;
        assert_eq!(before, after, "tenant A's conversation is untouched");
    }
);

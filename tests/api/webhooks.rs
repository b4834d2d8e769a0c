//! Webhook endpoints: an ADMIN creates, lists, changes, rotates and deletes
//! them; the secret is shown once; targets are public HTTPS unless the
//! operator allows a host (the tests allow 127.0.0.1).

use serde_json::{Value, json};

use crate::helpers::*;

const ENDPOINT_FIELDS: &str =
    "id url kinds channels description enabled disabledReason createdAt lastSuccessAt failing";

impl TestApp {
    async fn create_endpoint(&self, key: &str, input: Value) -> Value {
        self.gql(
            key,
            &format!(
                "mutation($input: CreateWebhookEndpointInput!) {{ createWebhookEndpoint(input: $input) {{
                    secret endpoint {{ {ENDPOINT_FIELDS} }} }} }}"
            ),
            json!({ "input": input }),
        )
        .await
    }

    async fn endpoints(&self) -> Value {
        let body = self
            .gql(
                &self.admin,
                &format!("{{ webhookEndpoints {{ {ENDPOINT_FIELDS} }} }}"),
                json!({}),
            )
            .await;
        data(&body, "webhookEndpoints").clone()
    }
}

test_both!(an_admin_manages_webhook_endpoints, |app| {
    let body = app
        .create_endpoint(
            &app.admin,
            json!({ "url": "https://hooks.example.com/convtrack", "kinds": ["CONTRACT_CREATED"],
                    "description": "CRM" }),
        )
        .await;
    let created = data(&body, "createWebhookEndpoint");
    let secret = created["secret"].as_str().expect("secret");
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    let endpoint = &created["endpoint"];
    assert_eq!(endpoint["url"], "https://hooks.example.com/convtrack");
    assert_eq!(endpoint["kinds"], json!(["CONTRACT_CREATED"]));
    assert_eq!(endpoint["channels"], json!([]));
    assert_eq!(endpoint["enabled"], true);
    assert_eq!(endpoint["failing"], false);
    assert_eq!(endpoint["lastSuccessAt"], Value::Null);
    let id = endpoint["id"].as_str().expect("id").to_owned();

    // The list never shows the secret again.
    let listed = app.endpoints().await;
    assert_eq!(listed, json!([endpoint]));
    assert!(!listed.to_string().contains(secret));

    let updated = app
        .gql(
            &app.admin,
            &format!(
                "mutation($input: UpdateWebhookEndpointInput!) {{ updateWebhookEndpoint(input: $input) {{ {ENDPOINT_FIELDS} }} }}"
            ),
            json!({ "input": { "id": id, "kinds": [], "channels": ["WHATSAPP", "CHAT"], "enabled": false,
                               "url": "http://127.0.0.1:9/hook" } }),
        )
        .await;
    let updated = data(&updated, "updateWebhookEndpoint");
    assert_eq!(updated["kinds"], json!([]));
    assert_eq!(updated["channels"], json!(["CHAT", "WHATSAPP"]));
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["url"], "http://127.0.0.1:9/hook");
    assert_eq!(updated["description"], "CRM", "unchanged");

    let rotated = app
        .gql(
            &app.admin,
            "mutation($id: ID!) { rotateWebhookSecret(input: { id: $id }) { secret endpoint { id } } }",
            json!({ "id": id }),
        )
        .await;
    let rotated = data(&rotated, "rotateWebhookSecret");
    let new_secret = rotated["secret"].as_str().expect("secret");
    assert!(new_secret.starts_with("whsec_"));
    assert_ne!(new_secret, secret);

    let deleted = app
        .gql(
            &app.admin,
            "mutation($id: ID!) { deleteWebhookEndpoint(input: { id: $id }) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data(&deleted, "deleteWebhookEndpoint")["id"], json!(id));
    assert_eq!(app.endpoints().await, json!([]));
    let again = app
        .gql(
            &app.admin,
            "mutation($id: ID!) { deleteWebhookEndpoint(input: { id: $id }) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&again), "NOT_FOUND");
});

test_both!(
    webhook_endpoints_refuse_unsafe_targets_and_other_roles,
    |app| {
        for url in [
            "http://hooks.example.com/",
            "https://10.0.0.8/hook",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::1]/",
            "https://metadata.google.internal/",
            "https://user:pw@hooks.example.com/",
            "http://127.0.0.2:9000/",
            "not a url",
        ] {
            let body = app.create_endpoint(&app.admin, json!({ "url": url })).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{url}: {body}");
        }
        let long = app
            .create_endpoint(
                &app.admin,
                json!({ "url": "https://hooks.example.com/", "description": "d".repeat(501) }),
            )
            .await;
        assert_eq!(error_code(&long), "BAD_USER_INPUT");
        for key in [&app.agent, &app.checkout, &app.integrator] {
            let body = app
                .create_endpoint(key, json!({ "url": "https://hooks.example.com/" }))
                .await;
            assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
        }
        assert_eq!(app.endpoints().await, json!([]), "nothing was made");

        // Another tenant's endpoint is not found, and never listed.
        let theirs = app
            .create_endpoint(
                &app.other_admin,
                json!({ "url": "https://hooks.example.com/" }),
            )
            .await;
        let theirs = data(&theirs, "createWebhookEndpoint")["endpoint"]["id"].clone();
        for (mutation, extra) in [
            ("rotateWebhookSecret(input: { id: $id }) { secret }", ""),
            ("deleteWebhookEndpoint(input: { id: $id }) { id }", ""),
            (
                "updateWebhookEndpoint(input: { id: $id, enabled: false }) { id }",
                "",
            ),
        ] {
            let body = app
                .gql(
                    &app.admin,
                    &format!("mutation($id: ID!) {{ {mutation}{extra} }}"),
                    json!({ "id": theirs }),
                )
                .await;
            assert_eq!(error_code(&body), "NOT_FOUND", "{mutation}: {body}");
        }
        assert_eq!(app.endpoints().await, json!([]));

        // At most 20 per tenant.
        for n in 0..20 {
            let body = app
                .create_endpoint(
                    &app.admin,
                    json!({ "url": format!("https://hooks{n}.example.com/") }),
                )
                .await;
            data(&body, "createWebhookEndpoint");
        }
        let one_more = app
            .create_endpoint(&app.admin, json!({ "url": "https://hooks.example.com/" }))
            .await;
        assert_eq!(error_code(&one_more), "BAD_USER_INPUT");
    }
);

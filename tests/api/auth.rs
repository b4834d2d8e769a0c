//! API keys: 401 without a valid one, the `keys` commands against a running
//! server's database, and the unauthenticated operational routes.

use std::process::Command;
use std::sync::Arc;

use chrono::TimeDelta;
use convtrack::domain::settings::SettingsChange;
use convtrack::service::Services;
use serde_json::json;

use crate::helpers::*;
use crate::ws::PATIENCE;

/// The same database seen by another process (the CLI, another instance),
/// with a memory of its own.
async fn elsewhere(app: &TestApp) -> Services {
    let db = convtrack::db::connect(&app.database_url, 1)
        .await
        .expect("second connection");
    Services::new(db, Arc::new(app.clock.clone()))
}

/// A new AGENT key of acme, used once so that the server remembers it.
async fn remembered_agent_key(app: &TestApp) -> convtrack::service::keys::CreatedKey {
    let created = app
        .services
        .create_key("acme", convtrack::domain::role::Role::Agent, false)
        .await
        .expect("key");
    let ok = app
        .post_graphql(
            Some(&created.secret),
            "{ channelPolicies { channel } }",
            json!({}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    created
}

const SETTINGS: &str = "{ tenantSettings { attributionWindowDays } }";

fn window(body: &serde_json::Value) -> i64 {
    data(body, "tenantSettings")["attributionWindowDays"]
        .as_i64()
        .unwrap_or_else(|| panic!("{body}"))
}

fn convtrack(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_convtrack"))
        .args(args)
        .env("DATABASE_URL", &app.database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run convtrack")
}

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "convtrack failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

test_both!(requests_without_a_valid_key_get_401, |app| {
    let query = "{ channelPolicies { channel } }";
    for key in [None, Some("ctk_unknown"), Some("")] {
        let response = app.post_graphql(key, query, json!({})).await;
        assert_eq!(response.status(), 401, "{key:?}");
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
    }
    let wrong_scheme = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("authorization", format!("Basic {}", app.admin))
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("answer");
    assert_eq!(wrong_scheme.status(), 401);
});

test_both!(
    keys_created_and_revoked_by_the_cli_take_effect_within_a_second,
    |app| {
        let created = stdout(&convtrack(
            &app,
            &["keys", "create", "--tenant", "acme", "--role", "agent"],
        ));
        let key = created.lines().last().expect("key line").trim().to_owned();
        assert!(key.starts_with("ctk_"), "{created}");

        let body = app
            .gql(
                &key,
                "mutation { startSession(input: { channel: CHAT }) { sessionId } }",
                json!({}),
            )
            .await;
        data(&body, "startSession");

        let listing = stdout(&convtrack(&app, &["keys", "list"]));
        let prefix: String = key.chars().take(12).collect();
        let line = listing
            .lines()
            .find(|l| l.contains(&prefix))
            .unwrap_or_else(|| panic!("new key listed: {listing}"));
        assert!(!listing.contains(&key), "the secret is never listed");
        let id = line
            .split_whitespace()
            .next()
            .expect("id column")
            .to_owned();

        stdout(&convtrack(&app, &["keys", "revoke", &id]));
        // Another process revoked it: the server's memory of the key lasts
        // until its next read of the change counter.
        app.advance(TimeDelta::seconds(1));
        let response = app
            .post_graphql(Some(&key), "{ channelPolicies { channel } }", json!({}))
            .await;
        assert_eq!(
            response.status(),
            401,
            "a revoked key is refused within a second"
        );
        let still = app
            .gql(&app.agent, "{ channelPolicies { channel } }", json!({}))
            .await;
        data(&still, "channelPolicies");
    }
);

test_both!(a_tenant_is_created_only_on_purpose, |app| {
    // A typo names no tenant: refused, with the known names and the way to
    // create one, and nothing is created.
    let typo = convtrack(
        &app,
        &["keys", "create", "--tenant", "acmee", "--role", "AGENT"],
    );
    assert!(!typo.status.success());
    let said = String::from_utf8_lossy(&typo.stderr);
    assert!(
        said.contains("\"acmee\"")
            && said.contains("acme, globex")
            && said.contains("--create-tenant"),
        "{said}"
    );
    assert!(
        !convtrack(&app, &["tenants", "show", "--tenant", "acmee"])
            .status
            .success()
    );

    let made = stdout(&convtrack(
        &app,
        &["tenants", "create", "--tenant", "initech"],
    ));
    assert!(made.contains("initech"), "{made}");
    let again = convtrack(&app, &["tenants", "create", "--tenant", "initech"]);
    assert!(!again.status.success(), "an existing name is refused");
    let key = stdout(&convtrack(
        &app,
        &["keys", "create", "--tenant", "initech", "--role", "AGENT"],
    ));
    assert!(key.lines().last().expect("key").starts_with("ctk_"));
    let with_flag = stdout(&convtrack(
        &app,
        &[
            "keys",
            "create",
            "--tenant",
            "hooli",
            "--role",
            "AGENT",
            "--create-tenant",
        ],
    ));
    assert!(with_flag.contains("\"hooli\""), "{with_flag}");
});

test_both!(keys_create_makes_a_new_tenant_with_its_own_data, |app| {
    let created = stdout(&convtrack(
        &app,
        &[
            "keys",
            "create",
            "--tenant",
            "initech",
            "--role",
            "ADMIN",
            "--create-tenant",
        ],
    ));
    let key = created.lines().last().expect("key").trim().to_owned();
    app.start_session(Channel::Chat).await;
    let list = app
        .gql(&key, "{ conversations { nodes { id } } }", json!({}))
        .await;
    assert_eq!(data(&list, "conversations")["nodes"], json!([]));
    let bad_role = convtrack(
        &app,
        &["keys", "create", "--tenant", "initech", "--role", "root"],
    );
    assert!(!bad_role.status.success());
});

test_both!(operational_routes_answer_without_a_key, |app| {
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    let graphiql = app.get("/graphiql").await;
    assert_eq!(graphiql.status(), 200);
    assert!(
        graphiql
            .text()
            .await
            .expect("html")
            .contains("/graphiql/graphiql-page.js")
    );
    let script = app.get("/graphiql/graphiql-page.js").await;
    assert_eq!(script.status(), 200);
    assert!(script.text().await.expect("js").contains("/graphql"));

    app.start_session(Channel::Chat).await;
    let metrics = app.get("/metrics").await.text().await.expect("text");
    for name in [
        "convtrack_sql_statements_total",
        "convtrack_graphql_requests_total",
        "convtrack_graphql_request_duration_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    assert!(metrics.contains("operation=\"mutation:startSession\""));
    let gauge = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    let (open, in_use, max) = (
        gauge("convtrack_db_pool_connections"),
        gauge("convtrack_db_pool_in_use"),
        gauge("convtrack_db_pool_max"),
    );
    assert!(
        open >= 1.0 && in_use <= open && open <= max,
        "pool {open} open, {in_use} in use, {max} max"
    );
});

test_both!(every_response_id_is_tagged_and_errors_carry_codes, |app| {
    let response = app
        .post_graphql(Some(&app.admin), "{ nosuchfield }", json!({}))
        .await;
    assert!(response.headers().contains_key("x-request-id"));
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let syntax = app.gql(&app.admin, "{ conversations { ", json!({})).await;
    assert_eq!(error_code(&syntax), "BAD_USER_INPUT");
});

test_both!(
    bodies_that_are_not_one_graphql_request_get_400_with_a_code,
    |app| {
        let batch = r#"[{"query": "{ channelPolicies { channel } }"}]"#;
        for body in ["not json", batch] {
            let response = app
                .client
                .post(format!("{}/graphql", app.address))
                .bearer_auth(&app.admin)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("answer");
            assert_eq!(response.status(), 400, "{body}");
            let json: serde_json::Value = response.json().await.expect("json");
            assert_eq!(error_code(&json), "BAD_USER_INPUT", "{body}");
        }
    }
);

test_both!(a_verified_key_costs_no_statement_until_keys_change, |app| {
    assert_eq!(window(&app.gql(&app.admin, SETTINGS, json!({})).await), 30);
    let before = app.sql_statements();
    for _ in 0..3 {
        window(&app.gql(&app.admin, SETTINGS, json!({})).await);
    }
    assert_eq!(
        app.sql_statements() - before,
        0,
        "key and tenant settings come from memory"
    );

    let change = SettingsChange {
        attribution_window_days: Some(7),
        ..Default::default()
    };
    elsewhere(&app)
        .await
        .update_tenant_settings_by_name("acme", change)
        .await
        .expect("settings changed elsewhere");
    app.advance(TimeDelta::seconds(1));
    assert_eq!(
        window(&app.gql(&app.admin, SETTINGS, json!({})).await),
        7,
        "a change made elsewhere is seen within a second"
    );
});

test_both!(
    a_key_revoked_through_this_instance_is_refused_at_once,
    |app| {
        let created = remembered_agent_key(&app).await;
        let query = "{ channelPolicies { channel } }";
        app.services
            .revoke_key(created.key.id)
            .await
            .expect("revoke");
        let refused = app
            .post_graphql(Some(&created.secret), query, json!({}))
            .await;
        assert_eq!(refused.status(), 401);
    }
);

test_both!(
    on_postgres_a_key_revoked_elsewhere_is_refused_on_notification,
    |app| {
        if app.backend != Backend::Postgres {
            return;
        }
        let created = remembered_agent_key(&app).await;
        let query = "{ channelPolicies { channel } }";
        elsewhere(&app)
            .await
            .revoke_key(created.key.id)
            .await
            .expect("revoke elsewhere");
        // The clock stands still: only the notification can tell.
        let refused = tokio::time::timeout(PATIENCE, async {
            loop {
                let answer = app
                    .post_graphql(Some(&created.secret), query, json!({}))
                    .await;
                if answer.status() == 401 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(refused.is_ok(), "the revocation was never heard");
    }
);

test_both!(
    a_flood_of_wrong_keys_costs_a_bounded_number_of_statements,
    |app| {
        let query = "{ channelPolicies { channel } }";
        app.gql(&app.admin, query, json!({})).await;
        let before = app.sql_statements();
        let mut refused = 0;
        let mut limited = 0;
        for n in 0..100 {
            let wrong = format!("ctk_wrong{n:04}");
            let response = app.post_graphql(Some(&wrong), query, json!({})).await;
            match response.status().as_u16() {
                401 => refused += 1,
                429 => {
                    let body: serde_json::Value = response.json().await.expect("json");
                    assert_eq!(error_code(&body), "RATE_LIMITED", "{body}");
                    limited += 1;
                }
                other => panic!("status {other}"),
            }
        }
        let statements = app.sql_statements() - before;
        assert!(
            statements <= 20,
            "one lookup per key of a burst: {statements}"
        );
        assert_eq!(statements, refused, "each refusal cost its one lookup");
        assert!(
            limited >= 80,
            "past the burst, no lookup: {refused} refused, {limited} limited"
        );
        let still = app.gql(&app.admin, query, json!({})).await;
        data(&still, "channelPolicies");
        app.advance(TimeDelta::seconds(5));
        let later = app
            .post_graphql(Some("ctk_wrong_again"), query, json!({}))
            .await;
        assert_eq!(later.status(), 401, "the budget refills");
    }
);

test_both!(a_new_keys_first_requests_at_once_all_pass, |app| {
    let created = app
        .services
        .create_key("acme", convtrack::domain::role::Role::Agent, false)
        .await
        .expect("key");
    let query = "{ channelPolicies { channel } }";
    let answers = futures_util::future::join_all(
        (0..40).map(|_| app.post_graphql(Some(&created.secret), query, json!({}))),
    )
    .await;
    for answer in answers {
        assert_eq!(answer.status(), 200, "a valid key is never rate limited");
    }
});

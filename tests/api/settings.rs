//! Tenant settings: record URL templates on badges, channel overrides, and
//! who may change them (the API and `convtrack tenants`).

use chrono::TimeDelta;
use serde_json::json;

use crate::helpers::*;

const UPDATE: &str = "mutation($input: UpdateTenantSettingsInput!) { updateTenantSettings(input: $input) {
    settings { attributionWindowDays recordUrlTemplates { recordType template }
               channelPolicies { channel inactivityTimeoutSeconds confirmationWindowSeconds } } } }";

async fn badge_urls(app: &TestApp, key: &str, session: &Session) -> Vec<serde_json::Value> {
    let body = app
        .gql(
            key,
            "query($s: String) { conversation(sessionId: $s) { badges { record { url } } conversions { record { url } } } }",
            json!({ "s": session.session_id }),
        )
        .await;
    let conversation = data(&body, "conversation");
    let mut urls: Vec<_> = conversation["badges"]
        .as_array()
        .expect("badges")
        .iter()
        .map(|b| b["record"]["url"].clone())
        .collect();
    urls.extend(
        conversation["conversions"]
            .as_array()
            .expect("conversions")
            .iter()
            .map(|c| c["record"]["url"].clone()),
    );
    urls
}

test_both!(a_record_url_template_makes_badges_links, |app| {
    let session = app.start_session(Channel::Chat).await;
    data(
        &app.record_conversion(&session, ConversionKind::TourBooked, "v 1/2")
            .await,
        "recordConversion",
    );
    assert_eq!(
        badge_urls(&app, &app.admin, &session).await,
        vec![json!(null), json!(null)]
    );

    let body = app
        .gql(
            &app.admin,
            UPDATE,
            json!({ "input": { "recordUrlTemplates": [
                { "recordType": "VISITOR", "template": "https://admin.example.com/visitors/{id}" } ] } }),
        )
        .await;
    let settings = &data(&body, "updateTenantSettings")["settings"];
    assert_eq!(
        settings["recordUrlTemplates"],
        json!([{ "recordType": "VISITOR", "template": "https://admin.example.com/visitors/{id}" }])
    );
    let url = json!("https://admin.example.com/visitors/v%201%2F2");
    assert_eq!(
        badge_urls(&app, &app.admin, &session).await,
        vec![url.clone(), url]
    );

    // Removing it makes the links null again.
    let body = app
        .gql(&app.admin, UPDATE, json!({ "input": { "recordUrlTemplates": [{ "recordType": "VISITOR", "template": null }] } }))
        .await;
    assert_eq!(
        data(&body, "updateTenantSettings")["settings"]["recordUrlTemplates"],
        json!([])
    );
    assert_eq!(
        badge_urls(&app, &app.admin, &session).await,
        vec![json!(null), json!(null)]
    );
});

test_both!(
    templates_that_are_not_http_urls_with_one_id_are_refused,
    |app| {
        for template in [
            "https://admin.example.com/visitors",
            "https://admin.example.com/{id}/{id}",
            "ftp://admin.example.com/{id}",
            "javascript:alert('{id}')",
            "/visitors/{id}",
            "",
        ] {
            let body = app
            .gql(
                &app.admin,
                UPDATE,
                json!({ "input": { "attributionWindowDays": 7,
                                   "recordUrlTemplates": [{ "recordType": "BOOKING", "template": template }] } }),
            )
            .await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{template:?}");
        }
        let body = app
            .gql(
                &app.admin,
                "{ tenantSettings { attributionWindowDays recordUrlTemplates { template } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            data(&body, "tenantSettings"),
            &json!({ "attributionWindowDays": 30, "recordUrlTemplates": [] }),
            "a refused change changes nothing"
        );
        for days in [0, 366, -1] {
            let body = app
                .gql(
                    &app.admin,
                    UPDATE,
                    json!({ "input": { "attributionWindowDays": days } }),
                )
                .await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{days}");
        }
    }
);

test_both!(only_admins_read_and_change_settings, |app| {
    for key in [&app.agent, &app.checkout, &app.integrator] {
        let change = app
            .gql(
                key,
                UPDATE,
                json!({ "input": { "attributionWindowDays": 7 } }),
            )
            .await;
        assert_eq!(error_code(&change), "FORBIDDEN");
        let read = app
            .gql(
                key,
                "{ tenantSettings { attributionWindowDays } }",
                json!({}),
            )
            .await;
        assert_eq!(error_code(&read), "FORBIDDEN");
    }
    data(
        &app.gql(
            &app.admin,
            UPDATE,
            json!({ "input": { "attributionWindowDays": 7 } }),
        )
        .await,
        "updateTenantSettings",
    );
    let theirs = app
        .gql(
            &app.other_admin,
            "{ tenantSettings { attributionWindowDays } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&theirs, "tenantSettings")["attributionWindowDays"],
        30,
        "another tenant is unaffected"
    );
});

test_both!(channel_overrides_change_the_session_rules, |app| {
    let body = app
        .gql(
            &app.admin,
            UPDATE,
            json!({ "input": { "channelPolicies": [
                { "channel": "CHAT", "inactivityTimeoutSeconds": 3600 },
                { "channel": "WHATSAPP", "inactivityTimeoutSeconds": 7200, "confirmationWindowSeconds": 600 } ] } }),
        )
        .await;
    let policies = &data(&body, "updateTenantSettings")["settings"]["channelPolicies"];
    assert_eq!(
        policies[0],
        json!({ "channel": "CHAT", "inactivityTimeoutSeconds": 3600, "confirmationWindowSeconds": 600 })
    );
    assert_eq!(
        policies[2],
        json!({ "channel": "WHATSAPP", "inactivityTimeoutSeconds": 7200, "confirmationWindowSeconds": 600 })
    );

    let chat = app.start_session(Channel::Chat).await;
    let whatsapp = app
        .start_session_with(json!({ "channel": "WHATSAPP", "contact": "+447700900123" }))
        .await;
    app.advance(TimeDelta::hours(1) + TimeDelta::minutes(1));
    assert_eq!(
        error_code(&app.say(&chat, "VISITOR", "hello?").await),
        "SESSION_EXPIRED"
    );
    let again = app
        .try_start_session(
            &app.agent,
            json!({ "channel": "WHATSAPP", "contact": "+447700900123" }),
        )
        .await;
    assert_eq!(
        data(&again, "startSession")["resumed"],
        true,
        "2 h for WhatsApp now"
    );
    assert_eq!(
        data(&again, "startSession")["sessionId"],
        whatsapp.session_id.as_str()
    );

    let too_short = app
        .gql(&app.admin, UPDATE, json!({ "input": { "channelPolicies": [{ "channel": "EMAIL", "inactivityTimeoutSeconds": 5 }] } }))
        .await;
    assert_eq!(error_code(&too_short), "BAD_USER_INPUT");
});

test_both!(the_tenants_command_sets_templates, |app| {
    let session = app.start_session(Channel::Chat).await;
    data(
        &app.record_conversion(&session, ConversionKind::BookingCreated, "b-7")
            .await,
        "recordConversion",
    );
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_convtrack"))
            .args(args)
            .env("DATABASE_URL", &app.database_url)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run convtrack")
    };
    let set = run(&[
        "tenants",
        "set",
        "--tenant",
        "acme",
        "--record-url",
        "BOOKING=https://admin.example.com/bookings/{id}",
        "--inactivity-timeout",
        "chat=7200",
        "--message-retention-days",
        "180",
    ]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert_eq!(
        badge_urls(&app, &app.admin, &session).await[0],
        json!("https://admin.example.com/bookings/b-7")
    );
    let shown = run(&["tenants", "show", "--tenant", "acme"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    assert_eq!(shown["channels"]["CHAT"]["inactivityTimeoutSeconds"], 7200);
    assert_eq!(shown["messageRetentionDays"], 180);
    let kept = run(&[
        "tenants",
        "set",
        "--tenant",
        "acme",
        "--message-retention-days",
        "none",
    ]);
    assert!(kept.status.success());
    let shown = run(&["tenants", "show", "--tenant", "acme"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    assert_eq!(shown["messageRetentionDays"], serde_json::Value::Null);
    for bad in ["0", "forever"] {
        let refused = run(&[
            "tenants",
            "set",
            "--tenant",
            "acme",
            "--message-retention-days",
            bad,
        ]);
        assert!(!refused.status.success(), "{bad}");
    }

    let refused = run(&[
        "tenants",
        "set",
        "--tenant",
        "acme",
        "--record-url",
        "BOOKING=ftp://x/{id}",
    ]);
    assert!(!refused.status.success());
    let unknown = run(&[
        "tenants",
        "set",
        "--tenant",
        "nobody",
        "--attribution-window-days",
        "5",
    ]);
    assert!(!unknown.status.success());
    assert_eq!(
        badge_urls(&app, &app.admin, &session).await[0],
        json!("https://admin.example.com/bookings/b-7"),
        "refused changes change nothing"
    );
});

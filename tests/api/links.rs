//! Signed call-to-action links: creating them, following them, recording
//! with their tokens, and every way a token can be wrong.

use chrono::TimeDelta;
use convtrack::domain::link::{SigningKey, UnverifiedToken};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

use crate::helpers::*;

const TARGET: &str = "https://book.example.com/day-pass?plan=day%20pass&ref=ai#pay";

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

test_both!(a_link_carries_the_token_and_keeps_the_target, |app| {
    let session = app.start_session(Channel::Chat).await;
    let link = app.create_link(&session, "DAY_PASS", TARGET).await;
    let token = link["token"].as_str().expect("token");
    assert!(token.len() <= 200, "{}", token.len());
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "{token}"
    );
    assert_eq!(
        link["url"],
        format!("https://book.example.com/day-pass?plan=day%20pass&ref=ai&ai_session={token}#pay")
    );
    assert_eq!(
        link["expiresAt"], "2026-04-01T09:00:00+00:00",
        "session start + 30 days"
    );
    assert_eq!(link["trackedPath"], format!("/l/{token}"));
});

test_both!(bad_link_requests_are_refused, |app| {
    let session = app.start_session(Channel::Chat).await;
    for target in [
        "ftp://files.example.com/x",
        "/relative",
        "javascript:alert(1)",
        "https://",
    ] {
        let body = app
            .try_create_link(&app.agent, &session, "DAY_PASS", target)
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{target}");
    }
    let body = app
        .try_create_link(&app.checkout, &session, "DAY_PASS", TARGET)
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let body = app
        .try_create_link(&app.other_agent, &session, "DAY_PASS", TARGET)
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    data(&app.close(&session).await, "closeSession");
    let body = app
        .try_create_link(&app.agent, &session, "DAY_PASS", TARGET)
        .await;
    assert_eq!(error_code(&body), "SESSION_CLOSED");
});

test_both!(
    recording_with_a_token_attributes_the_conversion_to_its_session,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let link = app
            .create_link(&session, "TOUR_REQUEST", "https://tours.example.com/book")
            .await;
        let token = link["token"].as_str().expect("token");
        let body = app
            .record_with_token(
                &app.checkout,
                token,
                ConversionKind::TourBooked,
                "visitor-1",
            )
            .await;
        let recorded = data(&body, "recordConversion");
        assert_eq!(recorded["attributed"], true);
        assert_eq!(recorded["conversion"]["source"], "LINK");
        assert_eq!(recorded["conversion"]["linkAction"], "TOUR_REQUEST");
        let again = app
            .record_with_token(
                &app.checkout,
                token,
                ConversionKind::TourBooked,
                "visitor-1",
            )
            .await;
        assert_eq!(
            data(&again, "recordConversion")["created"],
            false,
            "idempotent like any recording"
        );
        let conversation = app.conversation(&app.admin, &session).await;
        assert_eq!(conversation["badges"][0]["label"], "Tour booked");
        assert_eq!(app.conversion_rows().await, 1);

        let both = app
        .record_as(
            &app.checkout,
            json!({ "sessionId": session.session_id, "linkToken": token, "kind": "TOUR_BOOKED", "recordId": "v-2" }),
        )
        .await;
        assert_eq!(error_code(&both), "BAD_USER_INPUT");
        let neither = app
            .record_as(
                &app.checkout,
                json!({ "kind": "TOUR_BOOKED", "recordId": "v-2" }),
            )
            .await;
        assert_eq!(error_code(&neither), "BAD_USER_INPUT");
    }
);

/// The stored signing key, as the server would load it.
pub async fn stored_key(app: &TestApp) -> SigningKey {
    let row = entity::link_signing_key::Entity::find()
        .one(&app.services.db)
        .await
        .expect("read keys")
        .expect("a key exists");
    SigningKey::from_stored(&row.kid, &row.secret).expect("valid key")
}

test_both!(
    every_altered_token_is_refused_the_same_way_and_writes_nothing,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let token = app.create_link(&session, "DAY_PASS", TARGET).await["token"]
            .as_str()
            .expect("token")
            .to_owned();
        let mut forged = Vec::new();
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
            forged.push(String::from_utf8(bytes).expect("ascii"));
        }
        forged.push(token[..token.len() - 1].to_owned());
        forged.push(token[..token.len() / 2].to_owned());
        forged.push(format!(" {token}"));
        forged.push(format!("{token} "));
        forged.push(format!("{token}A"));
        forged.push(format!("{token}.x"));
        forged.push(String::new());
        forged.push("ct1.....".to_owned());
        forged.push("ct2...".to_owned());
        // Another key's id on this key's signature.
        let real = stored_key(&app).await;
        let other = SigningKey::generate().expect("os rng");
        forged.push(token.replacen(&real.kid, &other.kid, 1));
        // The same claims re-signed with another secret under the real key id.
        let claims = UnverifiedToken::parse(&token)
            .and_then(|t| t.verify(&real))
            .expect("genuine");
        let impostor = SigningKey::from_stored(&real.kid, &other.stored_secret()).expect("key");
        forged.push(impostor.seal(&claims).expect("os rng"));
        forged.push(impostor.sign_legacy(&claims));

        let mut messages = std::collections::HashSet::new();
        for bad in &forged {
            let body = app
                .record_with_token(&app.checkout, bad, ConversionKind::DayPassPurchased, "p-1")
                .await;
            assert_eq!(error_code(&body), "INVALID_LINK_TOKEN", "{bad}");
            messages.insert(error_message(&body));
        }
        // The genuine token with another tenant's key.
        let body = app
            .record_with_token(
                &app.other_admin,
                &token,
                ConversionKind::DayPassPurchased,
                "p-1",
            )
            .await;
        assert_eq!(error_code(&body), "INVALID_LINK_TOKEN");
        messages.insert(error_message(&body));
        assert_eq!(
            messages.len(),
            1,
            "one identical answer whatever was wrong: {messages:?}"
        );
        assert_eq!(app.conversion_rows().await, 0);

        let genuine = app
            .record_with_token(
                &app.checkout,
                &token,
                ConversionKind::DayPassPurchased,
                "p-1",
            )
            .await;
        assert_eq!(data(&genuine, "recordConversion")["attributed"], true);
    }
);

test_both!(the_attribution_window_edge, |app| {
    let session = app.start_session(Channel::Chat).await;
    let token = app.create_link(&session, "DAY_PASS", TARGET).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    app.advance(TimeDelta::days(30) - TimeDelta::seconds(1));
    let inside = app
        .record_with_token(
            &app.checkout,
            &token,
            ConversionKind::DayPassPurchased,
            "p-in",
        )
        .await;
    assert_eq!(data(&inside, "recordConversion")["attributed"], true);

    app.advance(TimeDelta::seconds(2));
    let past = app
        .record_with_token(
            &app.checkout,
            &token,
            ConversionKind::DayPassPurchased,
            "p-out",
        )
        .await;
    let recorded = data(&past, "recordConversion");
    assert_eq!(recorded["attributed"], false);
    assert_eq!(recorded["created"], true, "the outcome is kept");
    assert_eq!(
        recorded["conversion"]["unattributedReason"],
        "ATTRIBUTION_EXPIRED"
    );

    let conversation = app.conversation(&app.admin, &session).await;
    assert_eq!(
        conversation["badges"].as_array().map(Vec::len),
        Some(1),
        "no badge for the late one"
    );

    let review = app
        .gql(
            &app.admin,
            "{ unattributedConversions { nodes { record { id } unattributedReason conversation { sessionId } } pageInfo { hasNextPage } } }",
            json!({}),
        )
        .await;
    let nodes = &data(&review, "unattributedConversions")["nodes"];
    assert_eq!(nodes.as_array().map(Vec::len), Some(1));
    assert_eq!(nodes[0]["record"]["id"], "p-out");
    assert_eq!(
        nodes[0]["conversation"]["sessionId"],
        session.session_id.as_str()
    );
    let forbidden = app
        .gql(
            &app.integrator,
            "{ unattributedConversions { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");

    let stats = app
        .gql(
            &app.admin,
            "{ conversionStats { unattributed convertedConversations } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&stats, "conversionStats"),
        &json!({ "unattributed": 1, "convertedConversations": 1 })
    );
});

test_both!(
    following_a_link_counts_the_click_and_redirects_only_to_its_target,
    |app| {
        let session = app.start_session(Channel::Chat).await;
        let link = app.create_link(&session, "DAY_PASS", TARGET).await;
        let token = link["token"].as_str().expect("token");
        let client = no_redirects();
        for path in [
            format!("/l/{token}"),
            format!("/l/{token}?url=https://evil.example.com/"),
        ] {
            let response = client
                .get(format!("{}{path}", app.address))
                .send()
                .await
                .expect("answer");
            assert_eq!(response.status(), 302, "{path}");
            assert_eq!(
                response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok()),
                link["url"].as_str(),
                "{path}"
            );
        }
        for path in [
            "/l/not-a-token".to_owned(),
            format!("/l/{}", token.replacen('.', "x", 1)),
            format!("/l/{token}/https://evil.example.com"),
        ] {
            let response = client
                .get(format!("{}{path}", app.address))
                .send()
                .await
                .expect("answer");
            assert_eq!(response.status(), 404, "{path}");
            assert!(response.headers().get("location").is_none());
        }

        data(
            &app.record_with_token(
                &app.checkout,
                token,
                ConversionKind::DayPassPurchased,
                "p-1",
            )
            .await,
            "recordConversion",
        );
        app.create_link(&session, "DAY_PASS", "https://book.example.com/other")
            .await;
        app.create_link(&session, "TOUR_REQUEST", "https://tours.example.com/")
            .await;
        let stats = app
            .gql(
                &app.admin,
                "{ conversionStats { funnel { action issued followed converted } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            data(&stats, "conversionStats")["funnel"],
            json!([
                { "action": "DAY_PASS", "issued": 2, "followed": 1, "converted": 1 },
                { "action": "MEMBERSHIP_SIGNUP", "issued": 0, "followed": 0, "converted": 0 },
                { "action": "TOUR_REQUEST", "issued": 1, "followed": 0, "converted": 0 },
                { "action": "BOOKING_CONFIRMATION", "issued": 0, "followed": 0, "converted": 0 },
            ])
        );
    }
);

test_both!(
    a_token_survives_a_restart_and_works_on_another_instance,
    |app| {
        let mut app = app;
        let session = app.start_session(Channel::Chat).await;
        let token = app
            .create_link(
                &session,
                "BOOKING_CONFIRMATION",
                "https://rooms.example.com/b",
            )
            .await["token"]
            .as_str()
            .expect("token")
            .to_owned();
        app.restart().await;
        let after_restart = app
            .record_with_token(&app.checkout, &token, ConversionKind::BookingCreated, "b-1")
            .await;
        assert_eq!(data(&after_restart, "recordConversion")["attributed"], true);
        if !app.database_url.starts_with("postgres") {
            // SQLite mode is single-instance.
            return;
        }

        let second = app.second_instance().await;
        let on_second = app
        .gql_at(
            &second,
            &app.checkout,
            "mutation($t: String) { recordConversion(input: { linkToken: $t, kind: BOOKING_CREATED, recordId: \"b-2\" }) { attributed } }",
            json!({ "t": token }),
        )
        .await;
        assert_eq!(data(&on_second, "recordConversion")["attributed"], true);
        let keys = entity::link_signing_key::Entity::find()
            .count(&app.services.db)
            .await
            .expect("count");
        assert_eq!(keys, 1, "every instance signs with the one stored key");
    }
);

test_both!(rotated_keys_verify_until_removed, |app| {
    let session = app.start_session(Channel::Chat).await;
    let old = app.create_link(&session, "DAY_PASS", TARGET).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_convtrack"))
            .args(args)
            .env("DATABASE_URL", &app.database_url)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run convtrack");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let old_kid = UnverifiedToken::parse(&old).expect("shape").kid.to_owned();
    run(&["link-keys", "rotate"]);
    let new = app.create_link(&session, "DAY_PASS", TARGET).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_ne!(
        UnverifiedToken::parse(&new).expect("shape").kid,
        old_kid,
        "the new key signs"
    );
    data(
        &app.record_with_token(
            &app.checkout,
            &old,
            ConversionKind::DayPassPurchased,
            "p-old",
        )
        .await,
        "recordConversion",
    );
    assert!(run(&["link-keys", "list"]).contains(&old_kid));

    run(&["link-keys", "remove", &old_kid]);
    let refused = app
        .record_with_token(
            &app.checkout,
            &old,
            ConversionKind::DayPassPurchased,
            "p-old-2",
        )
        .await;
    assert_eq!(error_code(&refused), "INVALID_LINK_TOKEN");
    data(
        &app.record_with_token(
            &app.checkout,
            &new,
            ConversionKind::DayPassPurchased,
            "p-new",
        )
        .await,
        "recordConversion",
    );
});

test_both!(a_link_keeps_the_expiry_it_was_issued_with, |app| {
    let session = app
        .start_session_with(
            json!({ "channel": "EMAIL", "contact": "e@example.com", "threadKey": "t" }),
        )
        .await;
    let token = app.create_link(&session, "DAY_PASS", TARGET).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let body = app
        .gql(&app.admin, "mutation { updateTenantSettings(input: { attributionWindowDays: 1 }) { settings { attributionWindowDays } } }", json!({}))
        .await;
    data(&body, "updateTenantSettings");
    app.advance(TimeDelta::hours(25));
    let recorded = app
        .record_with_token(
            &app.checkout,
            &token,
            ConversionKind::DayPassPurchased,
            "p-1",
        )
        .await;
    assert_eq!(
        data(&recorded, "recordConversion")["attributed"],
        true,
        "issued with 30 days"
    );
    let later = app.create_link(&session, "DAY_PASS", TARGET).await;
    assert_eq!(
        later["expiresAt"], "2026-03-03T09:00:00+00:00",
        "new links get the new window"
    );
});

//! The admin page in a real browser: seeded data, then
//! `tests/browser/admin.mjs` drives headless Chromium through sign-in, the
//! list, filters, a detail, hostile messages and a live badge. Runs when
//! `CONVTRACK_TEST_BROWSER` is set (`.ci/run` installs Chromium and
//! playwright-core and sets it); screenshots land in
//! `target/browser-artifacts/<database>/`.

use std::process::Stdio;

use tokio::io::AsyncBufReadExt;

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::*;

const BROWSER_ENV: &str = "CONVTRACK_TEST_BROWSER";
const XSS_SCRIPT: &str = "<script>window.__xss = 1</script>";
const XSS_IMAGE: &str = "<img src=x onerror=\"window.__xss = 1\">";
/// A visitor's link dressed up as something else: shown as typed.
const DISGUISED_LINK: &str = "[Admin login](https://evil.example/login)";
/// Conversations beyond the seeded stories, so the list has a second page.
const FILLERS: usize = 250;

test_both!(the_admin_page_works_in_a_real_browser, |app| {
    if std::env::var_os(BROWSER_ENV).is_none() {
        return;
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
    assert!(
        std::path::Path::new(dir).join("node_modules").exists(),
        "{BROWSER_ENV} is set but playwright-core is not installed: npm ci --prefix tests/browser"
    );
    let seed = seed(&app).await;
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/browser-artifacts")
        .join(format!("{:?}", app.backend).to_lowercase());
    std::fs::create_dir_all(&artifacts).expect("artifacts directory");
    let seed_file = artifacts.join("seed.json");
    std::fs::write(&seed_file, seed.to_string()).expect("seed written");

    let output = tokio::process::Command::new("node")
        .arg(format!("{dir}/admin.mjs"))
        .env("CONVTRACK_URL", &app.address)
        .env("CONVTRACK_ADMIN_KEY", &app.admin)
        .env("CONVTRACK_ARTIFACTS", &artifacts)
        .env("CONVTRACK_SEED", &seed_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    let printed = String::from_utf8_lossy(&output.stdout);
    println!("{printed}");
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{printed}\n{}\n(screenshots in {})",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        artifacts.display()
    );
    for shot in ["list.png", "detail.png"] {
        assert!(artifacts.join(shot).exists(), "{shot} was not saved");
    }
});

/// A small operator's week: every channel and badge colour, a search
/// term in two threads, formatted text, hostile messages, one
/// conversation left for a live badge and one outcome too late to credit.
async fn seed(app: &TestApp) -> Value {
    app.link_visitor_records().await;

    // Older quiet chats, enough to need a second page of the list.
    for _ in 0..FILLERS {
        app.start_session(Channel::Chat).await;
    }

    // A day pass bought through a link a month after the chat started.
    let late = app.start_session(Channel::Chat).await;
    app.say(&late, "VISITOR", "Can I come in for a day next month?")
        .await;
    app.day_pass_a_month_late(&late, "dp-late-1").await;
    // And a booking the agent recorded by session the same day: outside
    // the window too.
    let body = app
        .record_conversion(&late, ConversionKind::BookingCreated, "b-late-2")
        .await;
    assert_eq!(data(&body, "recordConversion")["attributed"], false);

    // An endpoint nothing listens on: its deliveries fail, and the
    // Webhooks tab says so.
    let webhook_url = "http://127.0.0.1:9/convtrack";
    let endpoint = app
        .gql(
            &app.admin,
            "mutation($url: String!) { createWebhookEndpoint(input: { url: $url }) { secret } }",
            json!({ "url": webhook_url }),
        )
        .await;
    data(&endpoint, "createWebhookEndpoint");
    let tour = story(
        app,
        json!({ "channel": "CHAT", "userId": "m-1", "userName": "Ada Lovelace",
                "labels": [{ "key": "prompt", "value": "v7" }] }),
        &[
            (
                "VISITOR",
                "Is there parking near the Brussels office? I'd like to visit.",
            ),
            (
                "AI_AGENT",
                "Yes, there is a garage next door. Shall I book you a tour?",
            ),
        ],
        Some(json!({ "kind": "TOUR_BOOKED", "recordId": "v-1" })),
    )
    .await;
    // A day pass sold in the tour's conversation, then refunded: the
    // detail shows it withdrawn, the list no badge for it.
    let refunded = app
        .record_as(
            &app.checkout,
            json!({ "sessionId": tour.session_id, "kind": "DAY_PASS_PURCHASED",
                    "recordId": "dp-refunded", "value": { "amount": "15", "currency": "EUR" } }),
        )
        .await;
    let refunded = data(&refunded, "recordConversion")["conversion"]["id"].clone();
    let retracted = app
        .gql(
            &app.checkout,
            "mutation($input: RetractConversionInput!) { retractConversion(input: $input) { created } }",
            json!({ "input": { "conversionId": refunded, "reason": "refunded",
                               "idempotencyKey": "seed-refund" } }),
        )
        .await;
    assert_eq!(data(&retracted, "retractConversion")["created"], true);
    let signup = story(
        app,
        json!({ "channel": "EMAIL", "contact": "lin@example.com", "threadKey": "plans",
                "labels": [{ "key": "prompt", "value": "v8" }, { "key": "model", "value": "m1" }] }),
        &[(
            "VISITOR",
            "What does a fixed desk cost per month, and is parking included?",
        )],
        Some(json!({
            "kind": "CONTRACT_CREATED", "recordId": "ctr-1", "newCustomerId": "cw-1",
            "value": { "amount": "480", "currency": "EUR" },
        })),
    )
    .await;
    story(
        app,
        json!({ "channel": "WHATSAPP", "contact": "+447700900123",
                "labels": [{ "key": "prompt", "value": "v8" }] }),
        &[(
            "VISITOR",
            "Can I book the small meeting room tomorrow at 10?",
        )],
        Some(json!({ "kind": "BOOKING_CREATED", "recordId": "b-1" })),
    )
    .await;
    let voice = story(
        app,
        json!({ "channel": "VOICE" }),
        &[("VISITOR", "I need a day pass for Friday.")],
        Some(json!({ "kind": "DAY_PASS_PURCHASED", "recordId": "dp-1" })),
    )
    .await;
    let formatted = story(
        app,
        json!({ "channel": "CHAT" }),
        &[
            ("VISITOR", "How much is a hot desk?"),
            ("AI_AGENT", "A **Hot desk** is €250 a month; see [our prices](https://example.com/prices) for the rest."),
        ],
        None,
    )
    .await;
    // Two tours asked of the person: one declined, one left unanswered
    // (it expires as the later stories move the clock on).
    for declined in [true, false] {
        let asked = app
            .gql(
                &app.agent,
                "mutation($input: RequestConfirmationInput!) { requestConfirmation(input: $input) { id } }",
                json!({ "input": { "sessionId": formatted.session_id, "action": "TOUR_REQUEST",
                                   "summary": "Tour of Lisbon, Friday 10:00" } }),
            )
            .await;
        let id = data(&asked, "requestConfirmation")["id"].clone();
        if declined {
            let body = app
                .gql(
                    &app.agent,
                    "mutation($input: CancelConfirmationInput!) { cancelConfirmation(input: $input) { cancelled } }",
                    json!({ "input": { "confirmationId": id, "reason": "found another date" } }),
                )
                .await;
            assert_eq!(data(&body, "cancelConfirmation")["cancelled"], true);
        }
    }
    let long = "We are a team of twelve looking for a private office with a kitchen, good light and room to grow over the next two years. ".repeat(2);
    story(
        app,
        json!({ "channel": "CHAT" }),
        &[("VISITOR", &long)],
        None,
    )
    .await;
    let xss = story(
        app,
        json!({ "channel": "CHAT" }),
        &[
            ("VISITOR", XSS_SCRIPT),
            ("AI_AGENT", XSS_IMAGE),
            ("VISITOR", DISGUISED_LINK),
        ],
        None,
    )
    .await;
    story(
        app,
        json!({ "channel": "EMAIL", "contact": "quiet@example.com", "threadKey": "none" }),
        &[],
        None,
    )
    .await;
    let live = story(
        app,
        json!({ "channel": "CHAT", "userId": "m-2", "userName": "Grace Hopper" }),
        &[("VISITOR", "Is a day pass enough for one afternoon?")],
        None,
    )
    .await;

    let mut conversations = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = app
            .gql(
                &app.admin,
                "query($after: String) { conversations(first: 250, after: $after) {
                    nodes { id sessionId channel startedAt openingMessage contact
                            user { name } badges { kind label colour value { amount currency } } }
                    pageInfo { hasNextPage endCursor } } }",
                json!({ "after": after }),
            )
            .await;
        let page = data(&page, "conversations");
        conversations.extend(page["nodes"].as_array().expect("rows").iter().map(|c| {
            json!({
                "id": c["id"], "sessionId": c["sessionId"], "channel": c["channel"],
                "startedAt": c["startedAt"], "userName": c["user"]["name"], "contact": c["contact"],
                "openingMessage": c["openingMessage"], "badges": c["badges"],
            })
        }));
        after = page["pageInfo"]["endCursor"].clone();
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
    }
    assert_eq!(conversations.len(), FILLERS + 10);
    let stats = app
        .gql(
            &app.admin,
            "{ conversionStats { conversations convertedConversations unattributed
                byChannel { channel conversations converted }
                funnel { action issued followed converted }
                revenue { currency total perConvertedConversation } } }",
            json!({}),
        )
        .await;
    let stats = data(&stats, "conversionStats");
    let by_label = app
        .gql(
            &app.admin,
            "{ conversionStats { byLabel(key: \"prompt\") { value conversations converted
                rate rateLow rateHigh } } }",
            json!({}),
        )
        .await;
    let by_label = data(&by_label, "conversionStats")["byLabel"].clone();
    json!({
        "offline": {
            "sessionId": voice.session_id, "channel": "VOICE",
            "kind": "BOOKING_CREATED", "recordId": "b-offline",
        },
        "labels": {
            "tour": { "id": tour.id, "sessionId": tour.session_id, "chip": "prompt=v7" },
            "filter": "prompt=v8, model=m1", "filtered": [signup.session_id],
            "key": "prompt", "byLabel": by_label,
        },
        "conversations": conversations,
        "search": { "term": "parking", "sessionIds": [tour.session_id, signup.session_id] },
        "xss": { "id": xss.id, "sessionId": xss.session_id, "contents": [XSS_SCRIPT, XSS_IMAGE, DISGUISED_LINK] },
        "formatted": {
            "id": formatted.id, "boldText": "Hot desk",
            "confirmations": ["CANCELLED", "EXPIRED"], "declinedBecause": "found another date",
            "linkText": "our prices", "linkUrl": "https://example.com/prices",
        },
        "withRecordUrl": {
            "id": tour.id, "kind": "TOUR_BOOKED",
            "url": "https://admin.example.com/visitors/v-1",
            "withdrawn": [{ "kind": "DAY_PASS_PURCHASED", "text": "Day pass purchased · 15.00 EUR · withdrawn" }],
        },
        "live": {
            "id": live.id, "sessionId": live.session_id, "kind": "DAY_PASS_PURCHASED",
            "recordId": "dp-live-1", "label": "Day pass purchased", "colour": "PEACH",
        },
        "reconnect": {
            "sessionId": formatted.session_id, "kind": "TOUR_BOOKED",
            "recordId": "v-reconnect", "colour": "LAVENDER",
        },
        "unattributed": [
            { "kind": "DAY_PASS_PURCHASED", "recordId": "dp-late-1", "reason": "ATTRIBUTION_EXPIRED",
              "conversationId": late.id,
              "sentence": "Bought through the AI's link 31 days after the conversation started — outside the 30-day window" },
            { "kind": "BOOKING_CREATED", "recordId": "b-late-2", "reason": "ATTRIBUTION_EXPIRED",
              "sentence": "Recorded 31 days after the conversation started — outside the 30-day window" },
        ],
        "stats": {
            "conversations": stats["conversations"],
            "converted": stats["convertedConversations"],
            "funnel": stats["funnel"].as_array().expect("funnel").iter()
                .filter(|step| step["issued"].as_i64() > Some(0)).collect::<Vec<_>>(),
            "revenue": stats["revenue"],
            "byChannel": stats["byChannel"],
            "unattributed": stats["unattributed"],
        },
        "webhook": { "url": webhook_url },
        "pageSize": 250,
        "dateRange": { "from": "2026-04-02", "to": "2026-03-02" },
        "wrongKey": "ctk_not_a_real_key",
    })
}

/// An hour after the previous one: a conversation started with `start`,
/// its messages, and the outcome it led to, if any.
async fn story(
    app: &TestApp,
    start: Value,
    messages: &[(&str, &str)],
    outcome: Option<Value>,
) -> Session {
    app.advance(TimeDelta::hours(1));
    let session = app.start_session_with(start).await;
    for (role, content) in messages {
        app.say(&session, role, content).await;
    }
    if let Some(mut input) = outcome {
        input["sessionId"] = json!(session.session_id);
        let body = app.record_as(&app.checkout, input).await;
        assert_eq!(data(&body, "recordConversion")["attributed"], true);
    }
    session
}

test_both!(the_admin_page_is_served_whole_with_a_strict_policy, |app| {
    for (path, content_type) in [
        ("/admin", "text/html"),
        ("/admin/", "text/html"),
        ("/admin/admin.js", "text/javascript"),
        ("/admin/export.js", "text/javascript"),
        ("/admin/labels.js", "text/javascript"),
        ("/admin/time.js", "text/javascript"),
        ("/admin/scope.js", "text/javascript"),
        ("/admin/review.js", "text/javascript"),
        ("/admin/url-state.js", "text/javascript"),
        ("/admin/connectivity.js", "text/javascript"),
        ("/admin/admin.css", "text/css"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        let policy = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"));
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert!(!response.text().await.expect("body").is_empty(), "{path}");
    }
    // The page needs no API key to load: the key is asked for by the page.
    let page = app.get("/admin").await.text().await.expect("html");
    assert!(page.contains("/admin/admin.js") && page.contains("/admin/admin.css"));
});

/// The policy forbids inline code, and the page must not need any: every
/// script is an external file, no element carries a style or an event
/// handler attribute, and the script never turns data into markup.
#[test]
fn the_admin_page_needs_nothing_the_policy_forbids() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src/web/admin/");
    let html = std::fs::read_to_string(format!("{root}index.html")).expect("index.html");
    for tag in html.split("<script").skip(1) {
        let opening = tag.split('>').next().unwrap_or("");
        assert!(opening.contains("src="), "inline script: <script{opening}>");
    }
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains(" style="), "a style attribute");
    for handler in [
        " onclick=",
        " onload=",
        " onerror=",
        " onsubmit=",
        " oninput=",
        " onchange=",
    ] {
        assert!(!lower.contains(handler), "an inline handler{handler}");
    }
    for file in ["admin.js", "export.js"] {
        let script = std::fs::read_to_string(format!("{root}{file}")).expect(file);
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!script.contains(sink), "{file} uses {sink}");
        }
    }
}

test_both!(
    graphiql_works_offline_with_a_key_and_a_subscription,
    |app| {
        if std::env::var_os(BROWSER_ENV).is_none() {
            return;
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
        let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/browser-artifacts")
            .join(format!("{:?}", app.backend).to_lowercase());
        let after = app.feed_end(&app.integrator).await;
        let record = "graphiql-booking";
        let mut browser = tokio::process::Command::new("node")
            .arg(format!("{dir}/graphiql.mjs"))
            .env("CONVTRACK_URL", &app.address)
            .env("CONVTRACK_KEY", &app.integrator)
            .env("CONVTRACK_AFTER", after.as_str().expect("cursor"))
            .env("CONVTRACK_RECORD", record)
            .env("CONVTRACK_ARTIFACTS", &artifacts)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let mut lines = tokio::io::BufReader::new(browser.stdout.take().expect("stdout")).lines();
        let mut printed = Vec::new();
        while let Some(line) = lines.next_line().await.expect("stdout") {
            printed.push(line.clone());
            if line == "subscribed" {
                let session = app.start_session(Channel::Chat).await;
                data(
                    &app.record_conversion(&session, ConversionKind::BookingCreated, record)
                        .await,
                    "recordConversion",
                );
            }
        }
        let output = browser.wait_with_output().await.expect("node finishes");
        assert!(
            output.status.success(),
            "the GraphiQL browser test failed:\n{}\n{}",
            printed.join("\n"),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(printed.iter().any(|l| l == "PASS graphiql"), "{printed:?}");
    }
);

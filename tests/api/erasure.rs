//! eraseContact: a person who asks to be forgotten loses what they said and
//! who they are from every conversation with them; the operator keeps its
//! outcomes, and the stats do not move. The audit log says who erased how
//! much, never what.

use serde_json::{Value, json};

use crate::helpers::*;

pub const ERASE: &str = "mutation($input: EraseContactInput!) { eraseContact(input: $input) {
    erased erasure { id at scope reason conversations messages keyPrefix } } }";

const DETAIL: &str = "query($id: ID) { conversation(id: $id) {
    erasedAt contact threadKey openingMessage messageCount user { id name }
    messages(includeToolCalls: true) { nodes { role content erased position } }
    badges { kind record { id } } conversions { kind status record { id } } } }";

pub const STATS: &str = "{ conversionStats { conversations convertedConversations
    byKind { kind count } funnel { action issued followed converted } } }";

/// Maria's email conversation: she tells the agent who she is, follows a
/// link carrying her address, confirms a tour; the checkout records it.
pub struct Maria {
    pub session: Session,
    pub token: String,
}

/// What Maria typed and what identifies her, to look for once erased.
pub const HER_WORDS: &str = "zqxvbn: my flat is at Rua das Flores 17";
pub const HER_EMAIL: &str = "maria.silva@example.org";
pub const HER_NAME: &str = "Maria Quintela-Silva";

impl TestApp {
    pub async fn maria(&self) -> Maria {
        let session = self
            .start_session_with(json!({
                "channel": "EMAIL",
                "contact": "Maria.Silva@Example.org",
                "threadKey": "tour next week zqxvbn",
                "userId": "member-zqxvbn",
                "userName": HER_NAME,
            }))
            .await;
        assert_no_errors(&self.say(&session, "VISITOR", HER_WORDS).await);
        assert_no_errors(
            &self
                .say(
                    &session,
                    "AI_AGENT",
                    &format!("Thanks {HER_NAME}, here is the form"),
                )
                .await,
        );
        assert_no_errors(
            &self
                .say(&session, "TOOL", &format!("crm.lookup({HER_EMAIL})"))
                .await,
        );
        let link = self
            .create_link(
                &session,
                "TOUR_REQUEST",
                &format!("https://book.example.com/tour?email={HER_EMAIL}"),
            )
            .await;
        let token = link["token"].as_str().expect("token").to_owned();
        let asked = self
            .gql(
                &self.agent,
                "mutation($input: RequestConfirmationInput!) {
                    requestConfirmation(input: $input) { id } }",
                json!({ "input": { "sessionId": session.session_id, "action": "BOOKING_CONFIRMATION",
                                   "summary": format!("Meeting room for {HER_NAME}, Tuesday") } }),
            )
            .await;
        assert_no_errors(&asked);
        let recorded = self
            .record_with_token(
                &self.checkout,
                &token,
                ConversionKind::TourBooked,
                "tour-881",
            )
            .await;
        assert_no_errors(&recorded);
        Maria { session, token }
    }

    pub async fn erase(&self, input: Value) -> Value {
        self.gql(&self.admin, ERASE, json!({ "input": input }))
            .await
    }

    pub async fn detail(&self, session: &Session) -> Value {
        let body = self
            .gql(&self.admin, DETAIL, json!({ "id": session.id }))
            .await;
        data(&body, "conversation").clone()
    }

    pub async fn stats_now(&self) -> Value {
        let body = self.gql(&self.admin, STATS, json!({})).await;
        data(&body, "conversionStats").clone()
    }

    /// The audit log's entries, newest first (up to 250).
    pub async fn erasure_log(&self) -> Vec<Value> {
        let log = self
            .gql(
                &self.admin,
                "{ erasures(first: 250) { nodes { scope reason conversations messages } } }",
                json!({}),
            )
            .await;
        data(&log, "erasures")["nodes"]
            .as_array()
            .expect("nodes")
            .clone()
    }

    /// Conversations a search of the list finds.
    pub async fn found_by_search(&self, text: &str) -> usize {
        let body = self
            .gql(
                &self.admin,
                "query($filter: ConversationFilter) { conversations(filter: $filter) { nodes { id } } }",
                json!({ "filter": { "search": text } }),
            )
            .await;
        data(&body, "conversations")["nodes"]
            .as_array()
            .expect("nodes")
            .len()
    }
}

test_both!(
    erasing_a_contact_removes_what_they_said_and_keeps_the_outcomes,
    |app| {
        let maria = app.maria().await;
        let someone_else = app
            .start_session_with(
                json!({ "channel": "EMAIL", "contact": "joao@example.org", "threadKey": "t-2" }),
            )
            .await;
        assert_no_errors(
            &app.say(&someone_else, "VISITOR", "zqxvbn is my favourite word")
                .await,
        );
        let stats_before = app.stats_now().await;
        assert_eq!(app.found_by_search("Rua das Flores").await, 1);

        // The address in another case still names her.
        let body = app
        .erase(json!({ "contact": "MARIA.SILVA@example.ORG", "reason": "GDPR art. 17, ticket 5521" }))
        .await;
        let erased = data(&body, "eraseContact");
        assert_eq!(erased["erased"], 1);
        let log = &erased["erasure"];
        assert_eq!(log["scope"], "CONTACT");
        assert_eq!(log["conversations"], 1);
        assert_eq!(
            log["messages"], 3,
            "every message's text, tool calls included"
        );
        assert_eq!(log["reason"], "GDPR art. 17, ticket 5521");
        assert!(
            app.admin
                .starts_with(log["keyPrefix"].as_str().expect("prefix"))
        );

        let detail = app.detail(&maria.session).await;
        assert!(detail["erasedAt"].is_string(), "{detail}");
        for field in ["contact", "threadKey", "openingMessage", "user"] {
            assert!(detail[field].is_null(), "{field} erased: {detail}");
        }
        assert_eq!(detail["messageCount"], 3);
        for message in detail["messages"]["nodes"].as_array().expect("messages") {
            assert_eq!(message["content"], "");
            assert_eq!(message["erased"], true);
        }
        assert_eq!(detail["badges"][0]["kind"], "TOUR_BOOKED");
        assert_eq!(detail["badges"][0]["record"]["id"], "tour-881");
        assert_eq!(detail["conversions"][0]["status"], "ACTIVE");
        assert_eq!(app.stats_now().await, stats_before, "the stats do not move");

        // Search no longer finds her words; the other person's stay.
        assert_eq!(app.found_by_search("Rua das Flores").await, 0);
        assert_eq!(app.found_by_search("zqxvbn").await, 1);
        let other = app.detail(&someone_else).await;
        assert!(other["erasedAt"].is_null());
        assert_eq!(other["contact"], "joao@example.org");

        // Her link leads nowhere now: its target carried her address.
        let followed = app.get(&format!("/l/{}", maria.token)).await;
        assert_eq!(followed.status(), 404);

        // The feed still has the outcome, with nothing of her.
        let feed = app
            .gql(
                &app.integrator,
                "{ conversionsSince(first: 10) { nodes { conversion { kind }
                conversation { contact openingMessage user { name } erasedAt } } } }",
                json!({}),
            )
            .await;
        let event = &data(&feed, "conversionsSince")["nodes"][0];
        assert_eq!(event["conversion"]["kind"], "TOUR_BOOKED");
        assert!(event["conversation"]["contact"].is_null(), "{event}");
        assert!(event["conversation"]["openingMessage"].is_null());
        assert!(event["conversation"]["erasedAt"].is_string());

        // Asking again erases nothing more, and says so; both requests are logged.
        let again = app
            .erase(json!({ "contact": HER_EMAIL, "reason": "second request" }))
            .await;
        assert_eq!(data(&again, "eraseContact")["erased"], 0);
        let entries = app.erasure_log().await;
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["reason"], "second request");
        assert_eq!(entries[0]["conversations"], 0);
        let written = serde_json::to_string(&log).expect("json").to_lowercase();
        assert!(
            !written.contains("maria"),
            "the log never holds the value: {written}"
        );
    }
);

test_both!(erasing_by_user_id_or_session_takes_exactly_those, |app| {
    let signed_in = |user: &str| json!({ "channel": "CHAT", "userId": user, "userName": "Ana" });
    let first = app.start_session_with(signed_in("member-7")).await;
    let second = app.start_session_with(signed_in("member-7")).await;
    let other = app.start_session_with(signed_in("member-8")).await;
    for session in [&first, &second, &other] {
        assert_no_errors(&app.say(session, "VISITOR", "hello from Ana").await);
    }

    let by_user = app
        .erase(json!({ "userId": "member-7", "reason": "request 1" }))
        .await;
    assert_eq!(data(&by_user, "eraseContact")["erased"], 2);
    assert!(app.detail(&first).await["erasedAt"].is_string());
    assert!(app.detail(&second).await["erasedAt"].is_string());
    assert!(app.detail(&other).await["erasedAt"].is_null());

    let by_session = app
        .erase(json!({ "sessionId": other.session_id, "reason": "request 2" }))
        .await;
    let erased = data(&by_session, "eraseContact");
    assert_eq!(erased["erased"], 1);
    assert_eq!(erased["erasure"]["scope"], "SESSION_ID");
    let again = app
        .erase(json!({ "sessionId": other.session_id, "reason": "request 2" }))
        .await;
    assert_eq!(data(&again, "eraseContact")["erased"], 0, "idempotent");

    let nobody = app
        .erase(json!({ "contact": "+351 912 000 000", "reason": "r" }))
        .await;
    assert_eq!(data(&nobody, "eraseContact")["erased"], 0);
});

test_both!(an_erased_session_goes_on_without_personal_data, |app| {
    let maria = app.maria().await;
    let erased = app
        .erase(json!({ "sessionId": maria.session.session_id, "reason": "asked in chat" }))
        .await;
    assert_eq!(data(&erased, "eraseContact")["erased"], 1);

    // The agent's pipeline keeps working: the message counts, its text is not kept.
    let said = app
        .say(&maria.session, "VISITOR", "one more thing: zqxvbn")
        .await;
    let message = &data(&said, "appendMessage")["message"];
    assert_eq!(message["content"], "");
    assert_eq!(message["position"], 4);
    assert!(data(&said, "appendMessage")["conversation"]["openingMessage"].is_null());

    // Outcomes still record, by session and through her link's token.
    assert_no_errors(
        &app.record_conversion(&maria.session, ConversionKind::CustomerCreated, "cust-9")
            .await,
    );
    let through_link = app
        .record_with_token(
            &app.checkout,
            &maria.token,
            ConversionKind::DayPassPurchased,
            "pass-3",
        )
        .await;
    assert_eq!(data(&through_link, "recordConversion")["attributed"], true);
    let detail = app.detail(&maria.session).await;
    assert_eq!(detail["badges"].as_array().expect("badges").len(), 3);
    assert!(detail["contact"].is_null());
    assert_eq!(app.found_by_search("zqxvbn").await, 0);
});

test_both!(appends_racing_an_erasure_never_keep_text, |app| {
    let session = app
        .start_session_with(json!({ "channel": "WHATSAPP", "contact": "+351912345678" }))
        .await;
    let appends = (0..12).map(|i| {
        let (app, session) = (&app, &session);
        async move {
            app.say(session, "VISITOR", &format!("message {i} zqxvbn"))
                .await
        }
    });
    let erasure = app.erase(json!({ "contact": "+351 912 345 678", "reason": "race" }));
    let (said, erased) = tokio::join!(futures_util::future::join_all(appends), erasure);
    for body in said {
        assert_no_errors(&body);
    }
    assert_no_errors(&erased);
    let detail = app.detail(&session).await;
    assert_eq!(detail["messageCount"], 12);
    for message in detail["messages"]["nodes"].as_array().expect("messages") {
        assert_eq!(message["erased"], true, "{message}");
    }
    assert_eq!(app.found_by_search("zqxvbn").await, 0);
});

test_both!(bad_erasure_requests_change_nothing, |app| {
    let maria = app.maria().await;
    for (input, code) in [
        (json!({ "reason": "none named" }), "BAD_USER_INPUT"),
        (
            json!({ "contact": HER_EMAIL, "userId": "member-zqxvbn", "reason": "two" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "contact": HER_EMAIL, "reason": "  " }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "contact": HER_EMAIL, "reason": "x".repeat(501) }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "sessionId": "not-a-session", "reason": "r" }),
            "BAD_USER_INPUT",
        ),
    ] {
        assert_eq!(error_code(&app.erase(input.clone()).await), code, "{input}");
    }
    for key in [&app.agent, &app.integrator, &app.checkout] {
        let body = app
            .gql(
                key,
                ERASE,
                json!({ "input": { "contact": HER_EMAIL, "reason": "r" } }),
            )
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN");
    }
    // Another tenant's admin finds no one of acme's.
    let elsewhere = app
        .gql(
            &app.other_admin,
            ERASE,
            json!({ "input": { "contact": HER_EMAIL, "reason": "r" } }),
        )
        .await;
    assert_eq!(data(&elsewhere, "eraseContact")["erased"], 0);
    let detail = app.detail(&maria.session).await;
    assert!(detail["erasedAt"].is_null());
    assert_eq!(detail["contact"], HER_EMAIL);
    let log = app
        .gql(&app.admin, "{ erasures { nodes { id } } }", json!({}))
        .await;
    assert_eq!(data(&log, "erasures")["nodes"], json!([]));
});

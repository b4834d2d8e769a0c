//! contactData: a person's subject access request answered in one
//! document: every conversation, message, outcome, confirmation and link
//! held about them, and nothing about anyone else.

use serde_json::{Value, json};

use crate::erasure::{HER_EMAIL, HER_NAME, HER_WORDS};
use crate::helpers::*;

const CONTACT_DATA: &str =
    "query($contact: String, $userId: String) { contactData(contact: $contact, userId: $userId) }";

impl TestApp {
    async fn contact_data(&self, key: &str, contact: Option<&str>, user_id: Option<&str>) -> Value {
        self.gql(
            key,
            CONTACT_DATA,
            json!({ "contact": contact, "userId": user_id }),
        )
        .await
    }
}

test_both!(a_person_gets_everything_held_about_them, |app| {
    let maria = app.maria().await;
    // Signed in on the web chat too, with no contact there.
    let chat = app
        .start_session_with(
            json!({ "channel": "CHAT", "userId": "member-zqxvbn", "userName": HER_NAME }),
        )
        .await;
    assert_no_errors(&app.say(&chat, "VISITOR", "booking a desk").await);
    let stranger = app
        .start_session_with(
            json!({ "channel": "EMAIL", "contact": "joao@example.org", "threadKey": "x" }),
        )
        .await;
    assert_no_errors(&app.say(&stranger, "VISITOR", "not about Maria").await);

    let by_email = app
        .contact_data(&app.admin, Some("MARIA.SILVA@EXAMPLE.ORG"), None)
        .await;
    let document = data(&by_email, "contactData");
    assert_eq!(document["complete"], true);
    let conversations = document["conversations"].as_array().expect("conversations");
    assert_eq!(conversations.len(), 1);
    let held = &conversations[0];
    assert_eq!(held["id"], maria.session.id);
    assert_eq!(held["sessionId"], maria.session.session_id);
    assert_eq!(held["contact"], HER_EMAIL);
    assert_eq!(held["userName"], HER_NAME);
    let messages = held["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 3, "tool calls included");
    assert_eq!(messages[0]["content"], HER_WORDS);
    assert_eq!(messages[2]["role"], "TOOL");
    assert_eq!(held["conversions"][0]["kind"], "TOUR_BOOKED");
    assert_eq!(held["conversions"][0]["recordId"], "tour-881");
    assert!(
        held["confirmations"][0]["summary"]
            .as_str()
            .expect("summary")
            .contains(HER_NAME)
    );
    assert!(
        held["links"][0]["targetUrl"]
            .as_str()
            .expect("url")
            .contains("book.example.com")
    );

    // By user id: both of her conversations, newest first; with both, the same two.
    let by_user = app
        .contact_data(&app.admin, None, Some("member-zqxvbn"))
        .await;
    let ids: Vec<&Value> = data(&by_user, "contactData")["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(ids, [&json!(chat.id), &json!(maria.session.id)]);
    let by_both = app
        .contact_data(&app.admin, Some(HER_EMAIL), Some("member-zqxvbn"))
        .await;
    assert_eq!(
        data(&by_both, "contactData")["conversations"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let written = serde_json::to_string(&by_both).expect("json");
    assert!(!written.contains("joao"), "nothing about anyone else");

    // After erasure nothing is held about her any more.
    let erased = app
        .erase(json!({ "userId": "member-zqxvbn", "reason": "art. 17" }))
        .await;
    assert_eq!(data(&erased, "eraseContact")["erased"], 2);
    let after = app
        .contact_data(&app.admin, Some(HER_EMAIL), Some("member-zqxvbn"))
        .await;
    assert_eq!(data(&after, "contactData")["conversations"], json!([]));
});

test_both!(contact_data_needs_an_admin_and_a_person, |app| {
    app.maria().await;
    assert_eq!(
        error_code(&app.contact_data(&app.admin, None, None).await),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        error_code(&app.contact_data(&app.admin, Some(" "), None).await),
        "BAD_USER_INPUT"
    );
    for key in [&app.agent, &app.integrator, &app.checkout] {
        assert_eq!(
            error_code(&app.contact_data(key, Some(HER_EMAIL), None).await),
            "FORBIDDEN"
        );
    }
    let elsewhere = app
        .contact_data(&app.other_admin, Some(HER_EMAIL), None)
        .await;
    assert_eq!(data(&elsewhere, "contactData")["conversations"], json!([]));
});

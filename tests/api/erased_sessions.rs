//! What an erased person's conversations take afterwards, and how a person
//! is found: an agent that goes on talking, asking for a confirmation or
//! sending a link never puts their details back; a chat contact typed in
//! any case is still theirs.

use serde_json::json;

use crate::erasure::HER_EMAIL;
use crate::helpers::*;

const CONTACT_DATA: &str =
    "query($contact: String, $userId: String) { contactData(contact: $contact, userId: $userId) }";

test_both!(
    an_erased_session_keeps_no_new_summary_or_link_target,
    |app| {
        let maria = app.maria().await;
        let erased = app
            .erase(json!({ "contact": HER_EMAIL, "reason": "request #3" }))
            .await;
        assert_eq!(data(&erased, "eraseContact")["erased"], 1);

        let asked = app
            .gql(
                &app.agent,
                "mutation($input: RequestConfirmationInput!) {
                requestConfirmation(input: $input) { id } }",
                json!({ "input": { "sessionId": maria.session.session_id, "action": "TOUR_REQUEST",
                               "summary": format!("Tour for {HER_EMAIL} on Friday") } }),
            )
            .await;
        assert_no_errors(&asked);
        let target = format!("https://book.example.com/tour?email={HER_EMAIL}");
        let link = app
            .create_link(&maria.session, "TOUR_REQUEST", &target)
            .await;
        // The agent still gets a link it can send; the tracked redirect has
        // nowhere to go, since the target was not kept.
        assert!(
            link["url"].as_str().expect("url").starts_with(&target),
            "{link}"
        );
        let token = link["token"].as_str().expect("token");
        assert_eq!(app.get(&format!("/l/{token}")).await.status(), 404);

        // Nothing about her came back: the whole document holds no trace.
        let held = app
            .gql(
                &app.admin,
                CONTACT_DATA,
                json!({ "userId": "member-zqxvbn" }),
            )
            .await;
        assert_eq!(
            data(&held, "contactData")["conversations"],
            json!([]),
            "her user id is erased too"
        );
        let body = app
            .gql(
                &app.admin,
                "query($id: ID) { conversation(id: $id) { contact } }",
                json!({ "id": maria.session.id }),
            )
            .await;
        assert!(data(&body, "conversation")["contact"].is_null());
        let export = app.export_text("/export/conversations.ndjson").await;
        assert!(!export.to_lowercase().contains(HER_EMAIL), "{export}");
        let erased_again = app
            .erase(json!({ "sessionId": maria.session.session_id, "reason": "check" }))
            .await;
        assert_eq!(data(&erased_again, "eraseContact")["erased"], 0);
        let subject = app
            .gql(&app.admin, CONTACT_DATA, json!({ "contact": HER_EMAIL }))
            .await;
        assert_eq!(data(&subject, "contactData")["conversations"], json!([]));
        let stored = app.storage_text_of(&maria.session).await;
        assert!(
            !stored.contains(HER_EMAIL) && !stored.contains("Friday"),
            "{stored}"
        );
    }
);

test_both!(a_chat_contact_in_any_case_is_the_same_person, |app| {
    let typed = app
        .start_session_with(json!({ "channel": "CHAT", "contact": "MARIA.SILVA@EXAMPLE.ORG" }))
        .await;
    assert_no_errors(&app.say(&typed, "VISITOR", "my address is on file").await);
    let someone = app
        .start_session_with(json!({ "channel": "CHAT", "contact": "joao@example.org" }))
        .await;

    let held = app
        .gql(&app.admin, CONTACT_DATA, json!({ "contact": HER_EMAIL }))
        .await;
    let conversations = &data(&held, "contactData")["conversations"];
    assert_eq!(conversations.as_array().expect("list").len(), 1);
    assert_eq!(conversations[0]["sessionId"], typed.session_id);

    let erased = app
        .erase(json!({ "contact": "Maria.Silva@example.org", "reason": "request #4" }))
        .await;
    assert_eq!(data(&erased, "eraseContact")["erased"], 1);
    assert!(app.detail(&typed).await["erasedAt"].is_string());
    assert!(app.detail(&someone).await["erasedAt"].is_null());
});

test_both!(a_key_that_may_not_export_is_told_so_first, |app| {
    let refused = app
        .download(Some(&app.agent), "/export/conversations.csv?limit=5")
        .await;
    assert_eq!(refused.status(), 403);
});

impl TestApp {
    /// The confirmation summaries and link targets stored for `session`,
    /// read from the database.
    async fn storage_text_of(&self, session: &Session) -> String {
        use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
        let backend = self.services.db.get_database_backend();
        let sql = match backend {
            DatabaseBackend::Postgres => {
                "SELECT string_agg(summary, ' ') FROM confirmation f JOIN conversation c \
                 ON c.id = f.conversation_id WHERE c.session_id = $1 \
                 UNION ALL SELECT string_agg(target_url, ' ') FROM cta_link l JOIN conversation c \
                 ON c.id = l.conversation_id WHERE c.session_id = $1"
            }
            _ => {
                "SELECT group_concat(summary, ' ') FROM confirmation f JOIN conversation c \
                 ON c.id = f.conversation_id WHERE c.session_id = ?1 \
                 UNION ALL SELECT group_concat(target_url, ' ') FROM cta_link l JOIN conversation c \
                 ON c.id = l.conversation_id WHERE c.session_id = ?1"
            }
        };
        let rows = self
            .services
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [session.session_id.clone().into()],
            ))
            .await
            .expect("read");
        rows.iter()
            .filter_map(|r| r.try_get_by_index::<Option<String>>(0).ok().flatten())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

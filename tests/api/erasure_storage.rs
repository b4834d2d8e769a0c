//! Proof that an erased person is gone from the storage itself, not only
//! from the API: on SQLite the database file and its write-ahead log read
//! as raw bytes (free pages, the text index's shadow tables and the
//! planner's samples included); on PostgreSQL every table of the schema,
//! its TOAST tables and the planner's sampled values. Each test first finds
//! the values there, so it cannot pass by looking in the wrong place.

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use serde_json::json;

use crate::erasure::{HER_EMAIL, HER_NAME};
use crate::helpers::*;

/// What identifies Maria or what she said, as stored.
fn needles() -> Vec<&'static str> {
    vec![
        HER_EMAIL,
        HER_NAME,
        "Rua das Flores",
        "member-zqxvbn",
        "tour next week",
    ]
}

impl TestApp {
    /// The needles found in the storage, with where.
    async fn found_in_storage(&self) -> Vec<String> {
        match self.backend {
            Backend::Sqlite => self.found_in_sqlite_files(),
            Backend::Postgres => self.found_in_postgres().await,
        }
    }

    fn found_in_sqlite_files(&self) -> Vec<String> {
        let path = self
            .database_url
            .strip_prefix("sqlite://")
            .and_then(|rest| rest.split('?').next())
            .expect("a SQLite file URL");
        let mut found = Vec::new();
        for file in [path.to_owned(), format!("{path}-wal")] {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            for needle in needles() {
                if bytes
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes())
                {
                    found.push(format!("{needle} in {file}"));
                }
            }
        }
        found
    }

    async fn found_in_postgres(&self) -> Vec<String> {
        let db = &self.services.db;
        let rows = db
            .query_all_raw(Statement::from_string(
                DatabaseBackend::Postgres,
                "SELECT c.relname, t.relname FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_class t ON t.oid = c.reltoastrelid \
                 WHERE n.nspname = 'public' AND c.relkind = 'r'",
            ))
            .await
            .expect("tables");
        let mut found = Vec::new();
        for row in rows {
            let table: String = row.try_get_by_index(0).expect("name");
            let toast: Option<String> = row.try_get_by_index(1).expect("toast");
            for needle in needles() {
                let count = |sql: String| async move {
                    let row = db
                        .query_one_raw(Statement::from_sql_and_values(
                            DatabaseBackend::Postgres,
                            sql,
                            [format!("%{needle}%").into()],
                        ))
                        .await
                        .expect("scan")
                        .expect("a count");
                    row.try_get_by_index::<i64>(0).expect("count")
                };
                if count(format!(
                    "SELECT count(*) FROM \"{table}\" t WHERE t::text ILIKE $1"
                ))
                .await
                    > 0
                {
                    found.push(format!("{needle} in {table}"));
                }
                if let Some(toast) = &toast {
                    let sql = format!(
                        "SELECT count(*) FROM pg_toast.\"{toast}\" \
                         WHERE encode(chunk_data, 'escape') ILIKE $1"
                    );
                    if count(sql).await > 0 {
                        found.push(format!("{needle} in {toast}"));
                    }
                }
            }
        }
        for needle in needles() {
            let row = db
                .query_one_raw(Statement::from_sql_and_values(
                    DatabaseBackend::Postgres,
                    "SELECT count(*) FROM pg_stats WHERE schemaname = 'public' \
                     AND (most_common_vals::text ILIKE $1 OR histogram_bounds::text ILIKE $1)",
                    [format!("%{needle}%").into()],
                ))
                .await
                .expect("statistics")
                .expect("a count");
            if row.try_get_by_index::<i64>(0).expect("count") > 0 {
                found.push(format!("{needle} in the planner statistics"));
            }
        }
        found.sort();
        found.dedup();
        found
    }

    /// Makes the planner sample the tables now, as it would in time.
    async fn sample_statistics(&self) {
        let sql = match self.backend {
            Backend::Sqlite => "ANALYZE",
            Backend::Postgres => "ANALYZE conversation, message, confirmation, cta_link",
        };
        self.services
            .db
            .execute_unprepared(sql)
            .await
            .expect("analyze");
    }

    /// A long text (stored out of line: SQLite overflow pages, PostgreSQL
    /// TOAST) that carries her address too.
    async fn long_message(&self, session: &Session) {
        let long = format!("{HER_EMAIL} {}", "lorem ipsum dolor sit amet ".repeat(150));
        assert_no_errors(&self.say(session, "AI_AGENT", &long).await);
    }
}

test_both!(an_erased_person_is_gone_from_the_storage_itself, |app| {
    let maria = app.maria().await;
    app.long_message(&maria.session).await;
    // Other people's chats around hers, so her rows share pages with theirs.
    for n in 0..30 {
        let session = app
            .start_session_with(
                json!({ "channel": "EMAIL", "contact": format!("p{n}@example.org"),
                                        "threadKey": format!("t{n}") }),
            )
            .await;
        assert_no_errors(
            &app.say(&session, "VISITOR", &format!("hello number {n}"))
                .await,
        );
    }
    app.sample_statistics().await;
    let before = app.found_in_storage().await;
    for needle in needles() {
        assert!(
            before.iter().any(|place| place.starts_with(needle)),
            "{needle} is stored before the erasure: {before:?}"
        );
    }

    let erased = app
        .erase(json!({ "contact": HER_EMAIL, "reason": "storage proof" }))
        .await;
    assert_eq!(data(&erased, "eraseContact")["erased"], 1);

    assert_eq!(app.found_in_storage().await, Vec::<String>::new());
    if app.backend == Backend::Sqlite {
        // The text index's own view: no entry is left for her words.
        let matches = app
            .services
            .db
            .query_one_raw(Statement::from_string(
                DatabaseBackend::Sqlite,
                "SELECT count(*) FROM message_search WHERE message_search MATCH '\"Flores\"'",
            ))
            .await
            .expect("match")
            .expect("row");
        assert_eq!(matches.try_get_by_index::<i64>(0).expect("count"), 0);
    }
    for needle in ["Rua das Flores", HER_EMAIL, HER_NAME] {
        assert_eq!(app.found_by_search(needle).await, 0, "{needle}");
    }
});

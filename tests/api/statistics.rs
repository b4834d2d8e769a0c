//! Planner statistics kept fresh where the database does not: a server on
//! PostgreSQL without autovacuum analyzes the tables that grew.

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

use crate::helpers::*;

async fn autovacuum_is_on(app: &TestApp) -> bool {
    let row = app
        .services
        .db
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT current_setting('autovacuum')::boolean AS on",
        ))
        .await
        .expect("setting")
        .expect("row");
    row.try_get("", "on").expect("boolean")
}

async fn analyzed(app: &TestApp, table: &str) -> bool {
    let row = app
        .services
        .db
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT last_analyze IS NOT NULL AS done FROM pg_stat_user_tables WHERE relname = $1",
            [table.into()],
        ))
        .await
        .expect("statistics view")
        .expect("table listed");
    row.try_get("", "done").expect("boolean")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_that_grew_are_analyzed_when_autovacuum_is_off() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    for _ in 0..80 {
        app.start_session(Channel::Chat).await;
    }
    if autovacuum_is_on(&app).await {
        // PostgreSQL keeps its statistics itself; convtrack stays out of it.
        let tables = convtrack::db::refresh_statistics(&app.services.db)
            .await
            .expect("refresh");
        assert!(tables.is_empty(), "analyzed {tables:?} beside autovacuum");
        return;
    }
    assert!(!analyzed(&app, "conversation").await);
    // Backends report their row counts to the statistics view a moment
    // after their transactions end, so the growth may show up late.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let tables = loop {
        let tables = convtrack::db::refresh_statistics(&app.services.db)
            .await
            .expect("refresh");
        if tables.iter().any(|t| t == "conversation") || std::time::Instant::now() > deadline {
            break tables;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(
        tables.iter().any(|t| t == "conversation"),
        "80 new conversations did not get the table analyzed: {tables:?}"
    );
    assert!(analyzed(&app, "conversation").await);
    let again = convtrack::db::refresh_statistics(&app.services.db)
        .await
        .expect("refresh");
    assert!(
        !again.iter().any(|t| t == "conversation"),
        "analyzed again without a change: {again:?}"
    );
}

test_both!(refreshing_statistics_leaves_the_data_as_it_was, |app| {
    let session = app.start_session(Channel::Chat).await;
    app.say(&session, "VISITOR", "Do you have parking?").await;
    convtrack::db::refresh_statistics(&app.services.db)
        .await
        .expect("refresh");
    let conversation = app.conversation(&app.admin, &session).await;
    assert_eq!(conversation["openingMessage"], "Do you have parking?");
});

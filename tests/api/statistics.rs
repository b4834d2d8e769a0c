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
async fn tables_that_grew_are_analyzed_and_left_alone_beside_autovacuum() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    for _ in 0..80 {
        app.start_session(Channel::Chat).await;
    }
    assert!(!analyzed(&app, "conversation").await);
    // Backends report their row counts to the statistics view a moment
    // after their transactions end, so the growth may show up late; the
    // server's own round (every 30 s, autovacuum off) may get there first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let tables = convtrack::db::analyze_grown_tables(&app.services.db)
            .await
            .expect("analyze");
        assert!(
            tables.iter().all(|t| t != "seaql_migrations"),
            "only convtrack's own tables: {tables:?}"
        );
        if tables.iter().any(|t| t == "conversation") || analyzed(&app, "conversation").await {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "80 new conversations did not get the table analyzed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(analyzed(&app, "conversation").await);
    let again = convtrack::db::analyze_grown_tables(&app.services.db)
        .await
        .expect("analyze");
    assert!(
        !again.iter().any(|t| t == "conversation"),
        "analyzed again without a change: {again:?}"
    );

    // The periodic round only steps in where autovacuum is off.
    let tables = convtrack::db::refresh_statistics(&app.services.db)
        .await
        .expect("refresh");
    if autovacuum_is_on(&app).await {
        assert!(tables.is_empty(), "analyzed {tables:?} beside autovacuum");
    }
}

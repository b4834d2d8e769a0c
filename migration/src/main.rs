//! `cargo run -p migration -- up | down | status | fresh …` against
//! `DATABASE_URL`, or, without it, the SQLite file `convtrack serve` uses by
//! default in the working directory.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::Database;

const DEFAULT_DATABASE_URL: &str = "sqlite://convtrack.db?mode=rwc";

#[tokio::main]
async fn main() {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    cli::run_cli_with_custom_connection(migration::Migrator, async || Database::connect(url).await)
        .await;
}

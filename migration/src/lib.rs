//! Database migrations. Each file is `mYYYYMMDD_HHMMSS_verb_noun.rs` and is
//! never edited once landed: a change to the schema is a new migration.
//! Every migration runs unchanged on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_core_tables;
mod m20261125_000002_add_search_and_settings;
mod m20261125_000003_create_links_and_confirmations;
mod m20261125_000004_add_stats_columns;
mod m20261205_000005_create_auth_version;
mod m20261205_000006_create_stats_rollups;
mod m20261206_000007_index_search_in_list_order;
mod m20261206_000008_order_feed_by_transaction;
mod m20261206_000009_spread_rollup_rows;
mod m20261207_000010_add_conversion_values;
mod m20261207_000011_create_conversion_adjustments;
mod m20261207_000012_count_revenue_and_retractions;
mod m20261207_000013_create_webhooks;
mod m20261207_000014_add_erasure;
mod m20261207_000015_add_message_truncated;
mod m20261207_000016_add_confirmation_cancel;
mod m20261207_000017_create_request_keys;
mod m20261207_000018_add_conversation_labels;
mod m20261207_000019_index_people;
mod m20261207_000020_count_conversion_sources;
mod m20261207_000021_add_conversion_review;
mod m20261207_000022_index_search_by_time;
mod m20261207_000023_count_by_label;
mod m20261208_000024_index_badge_cohorts;

/// The delay histogram's buckets as (lower bound, representative), in µs,
/// as `delay_bucket` holds them.
pub use m20261205_000006_create_stats_rollups::delay_buckets;
/// SQLite's search watermark covers message rowids in blocks of `1 << this`.
pub use m20261206_000007_index_search_in_list_order::{
    WATERMARK_BLOCK_BITS, backfill_message_grams, message_grams, text_gram,
};
/// Moves the feed's sequence and transaction-id offset past stored rows.
pub use m20261206_000008_order_feed_by_transaction::resync_feed;
/// Counts rows written directly (a bulk load) into the stats rollups.
pub use m20261207_000012_count_revenue_and_retractions::backfill as backfill_stats_rollups;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_core_tables::Migration),
            Box::new(m20261125_000002_add_search_and_settings::Migration),
            Box::new(m20261125_000003_create_links_and_confirmations::Migration),
            Box::new(m20261125_000004_add_stats_columns::Migration),
            Box::new(m20261205_000005_create_auth_version::Migration),
            Box::new(m20261205_000006_create_stats_rollups::Migration),
            Box::new(m20261206_000007_index_search_in_list_order::Migration),
            Box::new(m20261206_000008_order_feed_by_transaction::Migration),
            Box::new(m20261206_000009_spread_rollup_rows::Migration),
            Box::new(m20261207_000010_add_conversion_values::Migration),
            Box::new(m20261207_000011_create_conversion_adjustments::Migration),
            Box::new(m20261207_000012_count_revenue_and_retractions::Migration),
            Box::new(m20261207_000013_create_webhooks::Migration),
            Box::new(m20261207_000014_add_erasure::Migration),
            Box::new(m20261207_000015_add_message_truncated::Migration),
            Box::new(m20261207_000016_add_confirmation_cancel::Migration),
            Box::new(m20261207_000017_create_request_keys::Migration),
            Box::new(m20261207_000018_add_conversation_labels::Migration),
            Box::new(m20261207_000019_index_people::Migration),
            Box::new(m20261207_000020_count_conversion_sources::Migration),
            Box::new(m20261207_000021_add_conversion_review::Migration),
            Box::new(m20261207_000022_index_search_by_time::Migration),
            Box::new(m20261207_000023_count_by_label::Migration),
            Box::new(m20261208_000024_index_badge_cohorts::Migration),
        ]
    }
}

//! The API, exercised through the real server over HTTP on 127.0.0.1:0,
//! on SQLite always and on PostgreSQL when `CONVTRACK_TEST_POSTGRES` names
//! an admin URL (for example `postgres://postgres@127.0.0.1:5432/postgres`).

/// Declares a test that runs once per backend: `name::sqlite` and
/// `name::postgres`. The PostgreSQL variant does nothing unless
/// `CONVTRACK_TEST_POSTGRES` is set, and fails if it is set but unreachable.
/// `test_both!(name, with tweak, |app| …)` starts the servers with
/// `tweak(&mut ServerConfig)` applied.
macro_rules! test_both {
    ($name:ident, |$app:ident| $body:block) => {
        test_both!($name, with | _ | {}, |$app| $body);
    };
    ($name:ident, with $tweak:expr, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $app =
                    crate::helpers::TestApp::spawn_with(crate::helpers::Backend::Sqlite, $tweak)
                        .await
                        .expect("SQLite is always available");
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($app) =
                    crate::helpers::TestApp::spawn_with(crate::helpers::Backend::Postgres, $tweak)
                        .await
                else {
                    return;
                };
                $body
            }
        }
    };
}

mod activity;
mod adjustments;
mod auth;
mod browser;
mod confirmations;
mod contact_data;
mod conversions;
mod erased_sessions;
mod erasure;
mod erasure_storage;
mod examples;
mod export;
mod feed;
mod filtered_feed;
mod filtered_stats;
mod filters;
mod fuzz;
mod fuzz_documents;
mod hardening;
mod helpers;
mod http;
mod interop;
mod labels;
mod limits;
mod links;
mod listing;
mod messages;
mod people_search;
mod process;
mod provider_input;
mod public_url;
mod retention;
mod retractions;
mod retries;
mod revenue;
mod review;
mod rollups;
mod schema;
mod search;
mod security;
mod sessions;
mod settings;
mod startup;
mod statistics;
mod stats;
mod storms;
mod telemetry;
mod tenancy;
mod tls;
mod webhook_deliveries;
mod webhook_tls;
mod webhooks;
mod ws;

//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::AppState;
use crate::db;

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// The process can serve: the database answers. 503 while it does not.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if db::ping(&state.services.db).await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Read at scrape time: the pool does not report changes as they happen.
    if let Some(pool) = db::pool_usage(&state.services.db) {
        metrics::gauge!("convtrack_db_pool_connections").set(pool.open);
        metrics::gauge!("convtrack_db_pool_in_use").set(pool.open.saturating_sub(pool.idle));
        metrics::gauge!("convtrack_db_pool_max").set(pool.max);
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

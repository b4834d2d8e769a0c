//! Liveness, readiness and metrics, and the readiness probe a container
//! health check runs.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

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

/// Asks the server listening at `listen` whether it is ready (`convtrack
/// healthcheck`): Ok when its `/readyz` answers 200 within 5 s.
pub async fn probe(listen: &str) -> Result<(), String> {
    let asked = tokio::time::timeout(Duration::from_secs(5), ask_ready(listen))
        .await
        .map_err(|_| format!("{listen} did not answer within 5 s"))??;
    if asked == StatusCode::OK {
        Ok(())
    } else {
        Err(format!("{listen} is not ready: /readyz answered {asked}"))
    }
}

async fn ask_ready(listen: &str) -> Result<StatusCode, String> {
    let stream = match listen.parse::<SocketAddr>() {
        Ok(mut address) => {
            // A server on every interface is reachable on loopback.
            if address.ip().is_unspecified() {
                address.set_ip(match address {
                    SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
                });
            }
            TcpStream::connect(address).await
        }
        Err(_) => TcpStream::connect(listen).await,
    }
    .map_err(|e| format!("cannot connect to {listen}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{listen}: {e}"))?;
    tokio::spawn(connection);
    let request = Request::get("/readyz")
        .header(HOST, listen)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{listen}: {e}"))?;
    Ok(answer.status())
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

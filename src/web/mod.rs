//! HTTP routes and middleware around the GraphQL endpoint.

mod auth;
mod graphql;
pub mod guards;
mod health;
mod links;
pub mod socket;

use axum::Router;
use axum::http::{HeaderName, Request, StatusCode};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    let request_timeout = state.request_timeout;
    Router::new()
        .route(
            "/graphql",
            post(graphql::execute)
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    auth::require_api_key,
                ))
                .layer(axum::middleware::from_fn(guards::json_only))
                .get(socket::upgrade),
        )
        .route("/graphiql", get(graphql::graphiql))
        .route("/l/{token}", get(links::follow))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                    let id = request_id_of(req.headers());
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                }))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::GATEWAY_TIMEOUT,
                    request_timeout,
                ))
                .layer(axum::middleware::from_fn(graphql::catch_panics)),
        )
}

/// The request id the outer layer assigned (or the client sent).
pub fn request_id_of(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

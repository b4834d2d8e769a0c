//! HTTP routes and middleware around the GraphQL endpoint.

mod admin;
pub mod auth;
pub mod error;
mod export;
mod graphiql;
mod graphql;
pub mod guards;
pub mod health;
mod links;
mod pages;
pub mod serve;
pub mod socket;
mod state;

pub use state::AppState;

use axum::Router;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    let request_timeout = state.request_timeout;
    let cors = cors(&state.cors_origins);
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
        .route(
            "/export/{file}",
            get(export::download).layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::require_api_key,
            )),
        )
        .route("/l/{token}", get(links::follow))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(admin::routes())
        .merge(graphiql::routes())
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::map_request(drop_unsafe_request_id))
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
                .layer(axum::middleware::from_fn(graphql::catch_panics))
                .layer(cors),
        )
}

/// Longest request id kept from a client.
const MAX_REQUEST_ID_CHARS: usize = 64;

/// Whether a client's `X-Request-Id` may be kept: a short token of safe
/// characters. Anything else would be copied into log lines (forging
/// them) and error answers, so the server makes its own id instead.
fn safe_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_CHARS).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

async fn drop_unsafe_request_id<B>(mut request: Request<B>) -> Request<B> {
    let headers = request.headers_mut();
    let all_safe = headers
        .get_all(REQUEST_ID_HEADER)
        .iter()
        .all(|v| safe_request_id(v.as_bytes()));
    if !all_safe || headers.get_all(REQUEST_ID_HEADER).iter().count() > 1 {
        headers.remove(REQUEST_ID_HEADER);
    }
    request
}

/// The request id the outer layer assigned (or the client sent).
pub fn request_id_of(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// CORS for the allowlisted origins only; no credentials (keys travel in
/// the Authorization header, never in cookies).
fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600))
}

/// Whether a browser page from `origin` may open a WebSocket: an allowed
/// origin, or one of the server's own (`own`, from the address it listens
/// on). The `Host` header is not trusted for this: a page on a rebound DNS
/// name sends a `Host` equal to its own origin.
pub fn origin_allowed(headers: &axum::http::HeaderMap, allowed: &[String], own: &[String]) -> bool {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        // No Origin: a server-side client, which still needs a key.
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.to_ascii_lowercase();
    own.contains(&origin) || allowed.contains(&origin)
}

/// The origins a browser uses for pages of a server listening on `addr`:
/// `http://127.0.0.1:PORT` and `http://localhost:PORT` on loopback (and
/// on every address, where the public name is unknown: that one goes in
/// `CONVTRACK_CORS_ORIGINS`), and the address itself otherwise.
pub fn own_origins(addr: Option<std::net::SocketAddr>) -> Vec<String> {
    let Some(addr) = addr else {
        return Vec::new();
    };
    let port = addr.port();
    let mut origins = vec![format!("http://{addr}")];
    if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        origins.push(format!("http://localhost:{port}"));
        origins.push(format!("http://127.0.0.1:{port}"));
        origins.push(format!("http://[::1]:{port}"));
    }
    origins.sort();
    origins.dedup();
    origins
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::*;

    fn with_origin(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("origin", HeaderValue::from_str(origin).expect("header"));
        headers.insert("host", HeaderValue::from_static("rebound.example:8000"));
        headers
    }

    #[test]
    fn only_short_safe_request_ids_are_kept() {
        assert!(safe_request_id(b"req-7"));
        assert!(safe_request_id(b"0f8c1a2e-9b7d-4c3e-8f6a-1b2c3d4e5f60"));
        for bad in [&b""[..], b"a b", b"x\ny=1", b"id\"}", &[b'a'; 65]] {
            assert!(!safe_request_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn only_own_and_allowed_origins_open_sockets() {
        let own = own_origins(Some("127.0.0.1:8000".parse().expect("addr")));
        let allowed = vec!["https://admin.example.com".to_owned()];
        assert!(origin_allowed(
            &with_origin("http://localhost:8000"),
            &allowed,
            &own
        ));
        assert!(origin_allowed(
            &with_origin("http://127.0.0.1:8000"),
            &allowed,
            &own
        ));
        assert!(origin_allowed(
            &with_origin("https://admin.example.com"),
            &allowed,
            &own
        ));
        // A DNS-rebinding page: its Origin matches the Host it sends.
        assert!(!origin_allowed(
            &with_origin("http://rebound.example:8000"),
            &allowed,
            &own
        ));
        assert!(!origin_allowed(
            &with_origin("http://localhost:9000"),
            &allowed,
            &own
        ));
        assert!(
            origin_allowed(&HeaderMap::new(), &allowed, &own),
            "server-side clients"
        );
    }
}

//! `POST /graphql`, and the panic guard around every request.

use std::panic::AssertUnwindSafe;

use async_graphql_axum::GraphQLRequest;
use async_graphql_axum::rejection::GraphQLRejection;
use axum::Extension;
use axum::extract::Request;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::FutureExt;

use super::error::{error_response, panic_response, too_large};
use super::guards::MAX_BODY_BYTES;
use super::{AppState, request_id_of};
use crate::error::ErrorCode;
use crate::graphql::RequestContext;
use crate::graphql::errors::finish_response;

pub async fn execute(
    State(state): State<AppState>,
    Extension(auth): Extension<super::auth::Authenticated>,
    headers: HeaderMap,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    let request = match request {
        Ok(request) => request.into_inner(),
        Err(rejection) if rejection.0.to_string().contains("length limit") => {
            return too_large(MAX_BODY_BYTES);
        }
        Err(rejection) => {
            let message = format!("the body is not a GraphQL request: {}", rejection.0);
            return error_response(ErrorCode::BadUserInput, &message);
        }
    };
    let context = RequestContext::with_settings(auth.caller, state.services.clone(), auth.settings);
    let mut request = request.data(context);
    if let Some(caller) = crate::telemetry::caller_trace(&headers) {
        request = request.data(caller);
    }
    let mut response = state.schema.execute(request).await;
    finish_response(&mut response, &request_id_of(&headers));
    let media_type = response_media_type(&headers);
    let status_and_wait = whole_answer_status(&response);
    // GraphQL over HTTP: with its own media type, a request that never ran
    // (unparsable, invalid, or with variables that do not fit) is a 400
    // without `data`; with plain JSON it stays a 200, as older clients expect.
    let refused =
        status_and_wait.is_none() && media_type == GRAPHQL_RESPONSE && is_request_error(&response);
    let mut answer = into_http(response, media_type, refused);
    if refused {
        *answer.status_mut() = StatusCode::BAD_REQUEST;
    }
    if let Some((status, seconds)) = status_and_wait {
        *answer.status_mut() = status;
        answer.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(seconds),
        );
    }
    answer
}

/// A response to a request that was never executed: no data, and errors
/// that belong to no field (a field's error carries its path, even when it
/// nulls the whole answer) and that are the client's doing (a server fault
/// outside any field stays a 200 with its code, as before).
fn is_request_error(response: &async_graphql::Response) -> bool {
    let client_error = |e: &async_graphql::ServerError| {
        e.path.is_empty()
            && match e.extensions.as_ref().and_then(|x| x.get("code")) {
                Some(async_graphql::Value::String(code)) => {
                    ErrorCode::parse(code).is_some_and(|c| c.http_status().is_client_error())
                }
                _ => true,
            }
    };
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(client_error)
}

/// The body of an answer without its `data` entry (a request error).
#[derive(serde::Serialize)]
struct WithoutData<'a> {
    errors: &'a [async_graphql::ServerError],
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
}

/// The response as `media_type` (without its `data` entry when asked), with the cache and other headers the
/// engine asked for (as async-graphql-axum writes them). Written by
/// sonic-rs: serde_json spent a seventh of a list request's CPU escaping
/// its strings byte by byte.
fn into_http(
    response: async_graphql::Response,
    media_type: &'static str,
    without_data: bool,
) -> Response {
    let cache_control = response
        .errors
        .is_empty()
        .then(|| response.cache_control.value())
        .flatten()
        .and_then(|value| axum::http::HeaderValue::from_str(&value).ok());
    // A page of the list is some 15 KB: room for it at once, rather than
    // growing (and copying) from a few bytes.
    let mut body = Vec::with_capacity(16 * 1024);
    let written = if without_data {
        let errors = WithoutData {
            errors: &response.errors,
            extensions: &response.extensions,
        };
        sonic_rs::to_writer(&mut body, &errors)
    } else {
        sonic_rs::to_writer(&mut body, &response)
    };
    match written {
        Ok(()) => {}
        Err(e) => {
            tracing::error!(error = %e, "a GraphQL response could not be written as JSON");
            return error_response(
                ErrorCode::InternalServerError,
                "the response could not be written",
            );
        }
    }
    // Taken after writing: the headers are not part of the body.
    let mut headers = response.http_headers;
    let mut answer = Response::new(axum::body::Body::from(body));
    answer.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(media_type),
    );
    if let Some(value) = cache_control {
        headers.insert(axum::http::header::CACHE_CONTROL, value);
    }
    answer.headers_mut().extend(headers.drain());
    answer
}

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// The media type an answer is written as, from the request's `Accept`
/// (GraphQL over HTTP): `application/graphql-response+json` when the
/// client accepts it at least as much as `application/json`, otherwise
/// `application/json` — also without an `Accept`, with `*/*`, or with
/// nothing this server writes (older clients know only that one).
fn response_media_type(headers: &HeaderMap) -> &'static str {
    let mut graphql_response = 0.0_f32;
    let mut json = 0.0_f32;
    for value in headers.get_all(axum::http::header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let quality = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                GRAPHQL_RESPONSE => graphql_response = graphql_response.max(quality),
                JSON | "application/*" | "*/*" => json = json.max(quality),
                _ => {}
            }
        }
    }
    if graphql_response > 0.0 && graphql_response >= json {
        GRAPHQL_RESPONSE
    } else {
        JSON
    }
}

/// The status (and `Retry-After` seconds) of an answer that is not 200: a
/// spent rate budget, or a request that failed as a whole because the
/// database was busy or away, which answers 503 as it would before the
/// engine ran (HTTP clients and proxies retry on it without reading the
/// body).
fn whole_answer_status(response: &async_graphql::Response) -> Option<(StatusCode, u64)> {
    let code_of = |e: &async_graphql::ServerError| match e.extensions.as_ref()?.get("code") {
        Some(async_graphql::Value::String(code)) => ErrorCode::parse(code),
        _ => None,
    };
    let retry_after = response.errors.iter().find_map(|e| {
        let wait = e.extensions.as_ref()?.get("retryAfter");
        match (code_of(e), wait) {
            (Some(ErrorCode::RateLimited), Some(async_graphql::Value::Number(n))) => n.as_u64(),
            _ => None,
        }
    });
    if let Some(seconds) = retry_after {
        return Some((ErrorCode::RateLimited.http_status(), seconds));
    }
    let unavailable = response.data == async_graphql::Value::Null
        && response
            .errors
            .iter()
            .any(|e| code_of(e) == Some(ErrorCode::ServiceUnavailable));
    unavailable.then_some((ErrorCode::ServiceUnavailable.http_status(), 1))
}

/// A panic anywhere in a request: logged with the request id, answered 500
/// without its message, and the server keeps serving.
pub async fn catch_panics(request: Request, next: Next) -> Response {
    let request_id = request_id_of(request.headers());
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => panic_response(panic, &request_id),
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use axum::routing::get;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    fn media_type_for(accept: &[&str]) -> &'static str {
        let mut headers = HeaderMap::new();
        for value in accept {
            headers.append(
                axum::http::header::ACCEPT,
                axum::http::HeaderValue::from_str(value).expect("header"),
            );
        }
        response_media_type(&headers)
    }

    #[test]
    fn the_answer_is_written_as_the_client_accepts() {
        let cases: [(&[&str], &str); 9] = [
            (&[], JSON),
            (&["application/json"], JSON),
            (&["*/*"], JSON),
            (&["text/html"], JSON),
            (&["application/graphql-response+json"], GRAPHQL_RESPONSE),
            (
                &["application/graphql-response+json, application/json;q=0.9"],
                GRAPHQL_RESPONSE,
            ),
            (
                &["application/json, application/graphql-response+json;q=0.5"],
                JSON,
            ),
            (
                &["Application/GraphQL-Response+JSON; charset=utf-8"],
                GRAPHQL_RESPONSE,
            ),
            (
                &["text/html", "application/graphql-response+json"],
                GRAPHQL_RESPONSE,
            ),
        ];
        for (accept, expected) in cases {
            assert_eq!(media_type_for(accept), expected, "{accept:?}");
        }
        assert_eq!(
            media_type_for(&["application/graphql-response+json;q=0"]),
            JSON
        );
    }

    async fn boom() -> &'static str {
        panic!("secret internals: relation \"conversion\" is broken")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_without_its_message_and_the_router_keeps_serving() {
        let router = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }))
            .layer(axum::middleware::from_fn(catch_panics));
        let request = HttpRequest::get("/boom")
            .header(super::super::REQUEST_ID_HEADER, "req-7")
            .body(Body::empty())
            .expect("request");
        let response = router.clone().oneshot(request).await.expect("answer");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let body: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "INTERNAL_SERVER_ERROR"
        );
        assert_eq!(body["errors"][0]["extensions"]["requestId"], "req-7");
        assert!(!String::from_utf8_lossy(&bytes).contains("secret"));

        let fine = HttpRequest::get("/fine")
            .body(Body::empty())
            .expect("request");
        assert_eq!(
            router.oneshot(fine).await.expect("answer").status(),
            StatusCode::OK
        );
    }
}

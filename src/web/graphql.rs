//! `POST /graphql`, GraphiQL, and GraphQL-shaped answers for failures that
//! happen outside the engine (database down during auth, a panic).

use std::any::Any;
use std::panic::AssertUnwindSafe;

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Extension;
use axum::extract::Request;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use futures_util::FutureExt;
use serde_json::{Value, json};

use super::request_id_of;
use crate::app::AppState;
use crate::error::AppError;
use crate::graphql::RequestContext;
use crate::graphql::errors::{
    BAD_USER_INPUT, INTERNAL_SERVER_ERROR, SERVICE_UNAVAILABLE, code, finish_response, log,
    public_message,
};

pub async fn execute(
    State(state): State<AppState>,
    Extension(auth): Extension<super::auth::Authenticated>,
    headers: HeaderMap,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    let request = match request {
        Ok(request) => request.into_inner(),
        Err(rejection) if rejection.0.to_string().contains("length limit") => {
            return super::guards::too_large();
        }
        Err(rejection) => {
            let message = format!("the body is not a GraphQL request: {}", rejection.0);
            let body = error_body(&message, BAD_USER_INPUT, None);
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    let context = RequestContext::with_settings(
        auth.caller,
        state.services.clone(),
        auth.settings.as_ref().clone(),
    );
    let mut response = state.schema.execute(request.data(context)).await;
    finish_response(&mut response, &request_id_of(&headers));
    let retry_after = response.errors.iter().find_map(|e| {
        let extensions = e.extensions.as_ref()?;
        match (extensions.get("code"), extensions.get("retryAfter")) {
            (Some(async_graphql::Value::String(code)), Some(async_graphql::Value::Number(n)))
                if code == "RATE_LIMITED" =>
            {
                n.as_u64()
            }
            _ => None,
        }
    });
    // A request that failed as a whole because the database was busy or
    // away answers 503, as it would before the engine ran: HTTP clients and
    // proxies retry on it without reading the body.
    let unavailable = response.data == async_graphql::Value::Null
        && response.errors.iter().any(|e| {
            e.extensions.as_ref().and_then(|x| x.get("code"))
                == Some(&async_graphql::Value::String(
                    SERVICE_UNAVAILABLE.to_owned(),
                ))
        });
    let mut answer = GraphQLResponse::from(response).into_response();
    let status_and_wait = match retry_after {
        Some(seconds) => Some((StatusCode::TOO_MANY_REQUESTS, seconds)),
        None if unavailable => Some((StatusCode::SERVICE_UNAVAILABLE, 1)),
        None => None,
    };
    if let Some((status, seconds)) = status_and_wait {
        *answer.status_mut() = status;
        answer.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(seconds),
        );
    }
    answer
}

pub async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .title("convtrack GraphiQL")
            .finish(),
    )
}

pub fn error_body(message: &str, code: &str, request_id: Option<&str>) -> Value {
    let mut extensions = json!({ "code": code });
    if let Some(id) = request_id {
        extensions["requestId"] = json!(id);
    }
    json!({ "errors": [{ "message": message, "extensions": extensions }] })
}

/// An [`AppError`] raised before the GraphQL engine ran.
pub fn error_response(e: &AppError, request_id: &str) -> Response {
    log(e);
    let code = code(e);
    let status = match e {
        AppError::Unavailable(_) | AppError::Raced => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let id = (code == INTERNAL_SERVER_ERROR).then_some(request_id);
    (status, axum::Json(error_body(&public_message(e), code, id))).into_response()
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

fn panic_response(panic: Box<dyn Any + Send + 'static>, request_id: &str) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-text panic");
    tracing::error!(panic = %detail, "request handler panicked");
    let body = error_body(
        "internal server error; quote the requestId when reporting it",
        INTERNAL_SERVER_ERROR,
        Some(request_id),
    );
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

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
            INTERNAL_SERVER_ERROR
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

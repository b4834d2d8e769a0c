//! `Authorization: Bearer <key>` → the caller, on every GraphQL request.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

use super::error::{app_error_response, unauthenticated};
use super::{AppState, request_id_of};
use crate::domain::api_key::from_authorization_header;
use crate::domain::settings::TenantSettings;
use crate::service::Caller;

/// Who is calling, with the tenant settings read in the same statement.
#[derive(Clone)]
pub struct Authenticated {
    pub caller: Caller,
    pub settings: Arc<TenantSettings>,
}

pub async fn require_api_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let key = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(from_authorization_header)
        .map(str::to_owned);
    let Some(key) = key else {
        return unauthenticated("send an API key: Authorization: Bearer <key>");
    };
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    match state
        .services
        .authenticate_with_settings(&key, client)
        .await
    {
        Ok(Some((caller, settings))) => {
            request
                .extensions_mut()
                .insert(Authenticated { caller, settings });
            next.run(request).await
        }
        Ok(None) => unauthenticated("the API key is unknown or revoked"),
        Err(e) => app_error_response(&e, &request_id_of(request.headers())),
    }
}

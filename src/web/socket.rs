//! GraphQL subscriptions over a WebSocket on `/graphql`: the modern
//! `graphql-transport-ws` protocol and the legacy `graphql-ws` one. The key
//! arrives in `connection_init`; the socket is closed when the key is
//! revoked, when the server shuts down, and when the client cannot keep up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::{WebSocket as GraphQLWebSocket, WsMessage};
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::header::{ALLOW, SEC_WEBSOCKET_PROTOCOL};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt, future};

pub use async_graphql::http::WebSocketProtocols as Protocols;

use super::graphql::error_body;
use crate::app::AppState;
use crate::domain::api_key::from_authorization_header;
use crate::domain::role::Operation;
use crate::graphql::RequestContext;
use crate::graphql::errors::BAD_USER_INPUT;
use crate::graphql::feed::SubscriptionBudget;
use crate::service::Caller;

/// Largest inbound message; larger ones end the connection.
pub const MAX_INBOUND_BYTES: usize = 64 * 1024;
/// How often an open socket checks that its key is still valid.
const KEY_CHECK_EVERY: Duration = Duration::from_secs(2);
/// A client that takes longer than this to accept a message is too slow.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

const FORBIDDEN: u16 = 4403;
const INIT_TIMED_OUT: u16 = 4408;
const TOO_SLOW: u16 = 4429;
const GOING_AWAY: u16 = 1001;
const TRY_AGAIN_LATER: u16 = 1013;
const MESSAGE_TOO_BIG: u16 = 1009;

/// `GET /graphql`: a WebSocket upgrade, or 405 (queries and mutations are POST only).
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        let body = error_body(
            "send queries and mutations with POST; GET /graphql is for WebSocket subscriptions only",
            BAD_USER_INPUT,
            None,
        );
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(ALLOW, "POST")],
            axum::Json(body),
        )
            .into_response();
    };
    if !super::origin_allowed(&headers, &state.cors_origins) {
        let body = error_body(
            "this Origin may not open a WebSocket; add it to CONVTRACK_CORS_ORIGINS",
            "FORBIDDEN",
            None,
        );
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    let Some(protocol) = choose_protocol(&headers) else {
        let body = error_body(
            "unsupported WebSocket subprotocol; use graphql-transport-ws (or the legacy graphql-ws)",
            BAD_USER_INPUT,
            None,
        );
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    };
    let tracked = state.sockets.token();
    upgrade
        .protocols([protocol.sec_websocket_protocol()])
        .max_message_size(MAX_INBOUND_BYTES)
        .max_frame_size(MAX_INBOUND_BYTES)
        .on_upgrade(move |socket| async move {
            serve(socket, protocol, state).await;
            drop(tracked);
        })
}

/// The protocol the client asked for; the modern one when it named none.
pub fn choose_protocol(headers: &HeaderMap) -> Option<Protocols> {
    let Some(offered) = headers.get(SEC_WEBSOCKET_PROTOCOL) else {
        return Some(Protocols::GraphQLWS);
    };
    let offered: Vec<&str> = offered.to_str().ok()?.split(',').map(str::trim).collect();
    if offered.contains(&"graphql-transport-ws") {
        Some(Protocols::GraphQLWS)
    } else if offered.contains(&"graphql-ws") {
        Some(Protocols::SubscriptionsTransportWS)
    } else {
        None
    }
}

/// What `connection_init` decided.
#[derive(Default)]
struct Session {
    caller: OnceLock<Caller>,
    refused: AtomicBool,
    unavailable: AtomicBool,
    /// The client sent a message over the size limit.
    oversized: AtomicBool,
}

async fn serve(socket: WebSocket, protocol: Protocols, state: AppState) {
    let (mut sink, source) = socket.split();
    let session = Arc::new(Session::default());
    let input = source
        .take_while({
            let session = session.clone();
            move |m| {
                let go = match m {
                    Ok(Message::Close(_)) => false,
                    Ok(_) => true,
                    Err(e) => {
                        let text = e.to_string();
                        if text.contains("too long") || text.contains("Space limit") {
                            session.oversized.store(true, Ordering::SeqCst);
                        }
                        false
                    }
                };
                future::ready(go)
            }
        })
        .filter_map(|m| {
            future::ready(match m {
                Ok(Message::Text(text)) => Some(text.as_str().as_bytes().to_vec()),
                Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
                _ => None,
            })
        });
    let on_init = {
        let session = session.clone();
        let services = state.services.clone();
        move |payload: serde_json::Value| async move {
            let key = payload
                .get("authorization")
                .or_else(|| payload.get("Authorization"))
                .and_then(|v| v.as_str())
                .and_then(from_authorization_header)
                .map(str::to_owned);
            let caller = match key {
                Some(key) => services.authenticate(&key).await,
                None => Ok(None),
            };
            match caller {
                Ok(Some(caller)) if caller.role.may(Operation::FollowConversionFeed) => {
                    let _ = session.caller.set(caller);
                    let mut data = Data::default();
                    data.insert(RequestContext::new(caller, services));
                    data.insert(SubscriptionBudget::default());
                    Ok(data)
                }
                Ok(_) => {
                    session.refused.store(true, Ordering::SeqCst);
                    Err(async_graphql::Error::new(
                        "Forbidden: connection_init needs {\"authorization\": \"Bearer <key>\"} of an INTEGRATOR or ADMIN key",
                    ))
                }
                Err(_) => {
                    session.unavailable.store(true, Ordering::SeqCst);
                    Err(async_graphql::Error::new(
                        "the service is unavailable; try again",
                    ))
                }
            }
        }
    };
    let mut messages =
        GraphQLWebSocket::new(state.schema.clone(), input, protocol).on_connection_init(on_init);
    let init_deadline = tokio::time::sleep(state.socket_init_timeout);
    tokio::pin!(init_deadline);
    let mut key_check = tokio::time::interval(KEY_CHECK_EVERY);
    let mut shutdown = state.shutdown.clone();

    let close = loop {
        if *shutdown.borrow() {
            break Some((
                GOING_AWAY,
                "server shutting down; reconnect with the last cursor you received".to_owned(),
            ));
        }
        tokio::select! {
            message = messages.next() => match message {
                Some(WsMessage::Text(text)) => {
                    let sent = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text.into()))).await;
                    match sent {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break None,
                        Err(_) => break Some((TOO_SLOW, "subscriber too slow; reconnect with the last cursor you received".to_owned())),
                    }
                    // The legacy protocol's connection_error went out; close
                    // as the modern protocol does.
                    if session.refused.load(Ordering::SeqCst) {
                        break Some((FORBIDDEN, "Forbidden".to_owned()));
                    }
                    if session.unavailable.load(Ordering::SeqCst) {
                        break Some((TRY_AGAIN_LATER, "the service is unavailable; try again".to_owned()));
                    }
                }
                Some(WsMessage::Close(code, reason)) => {
                    if session.refused.load(Ordering::SeqCst) {
                        break Some((FORBIDDEN, "Forbidden".to_owned()));
                    }
                    if session.unavailable.load(Ordering::SeqCst) {
                        break Some((TRY_AGAIN_LATER, "the service is unavailable; try again".to_owned()));
                    }
                    break Some((code, reason));
                }
                None if session.oversized.load(Ordering::SeqCst) => {
                    break Some((MESSAGE_TOO_BIG, format!("messages may be at most {MAX_INBOUND_BYTES} bytes")));
                }
                None => break None,
            },
            () = &mut init_deadline, if session.caller.get().is_none() => {
                break Some((INIT_TIMED_OUT, "Connection initialisation timeout".to_owned()));
            }
            _ = key_check.tick(), if session.caller.get().is_some() => {
                if let Some(caller) = session.caller.get()
                    && matches!(state.services.key_is_active(caller.key_id).await, Ok(false))
                {
                    break Some((FORBIDDEN, "Forbidden: the API key was revoked".to_owned()));
                }
            }
            _ = shutdown.changed() => {}
        }
    };
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            sink.send(Message::Close(Some(frame))),
        )
        .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}

//! GraphQL subscriptions over a WebSocket on `/graphql`: the modern
//! `graphql-transport-ws` protocol and the legacy `graphql-ws` one. The key
//! arrives in `connection_init`; the socket is closed when the key is
//! revoked, when the server shuts down, and when the client cannot keep up.

mod session;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::{WebSocket as GraphQLWebSocket, WsMessage};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::header::{ALLOW, SEC_WEBSOCKET_PROTOCOL};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, Stream, StreamExt, future};

pub use async_graphql::http::WebSocketProtocols as Protocols;
pub use session::{MAX_SOCKETS_PER_KEY, SocketCounts};

use self::session::{Closing, Ended, Session};
use super::AppState;
use super::error::{error_response, refusal};
use crate::domain::api_key::from_authorization_header;
use crate::domain::locked;
use crate::domain::role::Operation;
use crate::error::ErrorCode;
use crate::graphql::RequestContext;
use crate::graphql::feed::SubscriptionBudget;
use crate::service::Services;

/// Largest inbound message; larger ones end the connection.
pub const MAX_INBOUND_BYTES: usize = 64 * 1024;
/// How long a client closed as too slow has to take the close frame.
const SLOW_CLIENT_CLOSE_WAIT: Duration = Duration::from_secs(10);
/// How often an open socket checks that its key is still valid.
const KEY_CHECK_EVERY: Duration = Duration::from_secs(2);

/// `GET /graphql`: a WebSocket upgrade, or 405 (queries and mutations are POST only).
pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        let mut answer = refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadUserInput,
            "send queries and mutations with POST; GET /graphql is for WebSocket subscriptions only",
        );
        answer
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return answer;
    };
    if !super::origin_allowed(&headers, &state.cors_origins, &state.own_origins) {
        return error_response(
            ErrorCode::Forbidden,
            "this Origin may not open a WebSocket; add it to CONVTRACK_CORS_ORIGINS",
        );
    }
    let Some(protocol) = choose_protocol(&headers) else {
        return error_response(
            ErrorCode::BadUserInput,
            "unsupported WebSocket subprotocol; use graphql-transport-ws (or the legacy graphql-ws)",
        );
    };
    let tracked = state.sockets.token();
    upgrade
        .protocols([protocol.sec_websocket_protocol()])
        .max_message_size(MAX_INBOUND_BYTES)
        .max_frame_size(MAX_INBOUND_BYTES)
        .on_upgrade(move |socket| async move {
            serve(socket, protocol, state, client.ip()).await;
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

async fn serve(socket: WebSocket, protocol: Protocols, state: AppState, client: IpAddr) {
    let (mut sink, source) = socket.split();
    let session = Arc::new(Session::default());
    let input = screened(source, protocol, session.clone());
    let on_init = {
        let session = session.clone();
        let services = state.services.clone();
        let counts = state.socket_counts.clone();
        move |payload| connection_init(payload, session, services, counts, client)
    };
    let messages =
        GraphQLWebSocket::new(state.schema.clone(), input, protocol).on_connection_init(on_init);
    let ended = pump(messages, &mut sink, &session, &state).await;
    if let Some(closing) = session.close_reason(ended) {
        let (code, reason) = closing.frame();
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        // A slow client's buffers are full: it gets a while to take the
        // close frame, so it learns to come back later rather than seeing
        // the connection drop.
        let wait = if matches!(closing, Closing::TooSlow) {
            SLOW_CLIENT_CLOSE_WAIT
        } else {
            Duration::from_secs(1)
        };
        let _ = tokio::time::timeout(wait, sink.send(Message::Close(Some(frame)))).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}

/// The client's messages as the engine reads them: each screened first
/// ([`Session::admit`]); the input ends at a close, a refused message or
/// an oversized one.
fn screened(
    source: impl Stream<Item = Result<Message, axum::Error>>,
    protocol: Protocols,
    session: Arc<Session>,
) -> impl Stream<Item = Vec<u8>> {
    source
        .take_while(move |m| {
            let go = match m {
                Ok(Message::Close(_)) => false,
                Ok(Message::Text(text)) => session.admit(protocol, text.as_bytes()),
                Ok(Message::Binary(bytes)) => session.admit(protocol, bytes),
                Ok(_) => true,
                Err(e) => {
                    let text = e.to_string();
                    if text.contains("too long") || text.contains("Space limit") {
                        session.close_with(Closing::MessageTooBig);
                    }
                    false
                }
            };
            future::ready(go)
        })
        .filter_map(|m| {
            future::ready(match m {
                Ok(Message::Text(text)) => Some(text.as_str().as_bytes().to_vec()),
                Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
                _ => None,
            })
        })
}

/// `connection_init`: the key in its payload must belong to a role that
/// may follow the feed and have a socket to spare on this instance. A
/// refusal sets the close reason its code stands for.
async fn connection_init(
    payload: serde_json::Value,
    session: Arc<Session>,
    services: Services,
    counts: Arc<SocketCounts>,
    client: IpAddr,
) -> async_graphql::Result<Data> {
    let key = payload
        .get("authorization")
        .or_else(|| payload.get("Authorization"))
        .and_then(|v| v.as_str())
        .and_then(from_authorization_header)
        .map(str::to_owned);
    let caller = match key {
        Some(key) => services.authenticate(&key, Some(client)).await,
        None => Ok(None),
    };
    let refused = |code: ErrorCode, message: String| {
        session.close_with(Closing::refused(code));
        Err(async_graphql::Error::new(message))
    };
    let caller = match caller {
        Ok(Some(caller)) if caller.role.may(Operation::FollowConversionFeed) => caller,
        Ok(_) => {
            return refused(
                ErrorCode::Forbidden,
                "Forbidden: connection_init needs {\"authorization\": \"Bearer <key>\"} of an INTEGRATOR or ADMIN key".into(),
            );
        }
        Err(_) => {
            return refused(
                ErrorCode::ServiceUnavailable,
                "the service is unavailable; try again".into(),
            );
        }
    };
    let Some(slot) = counts.take(caller.key_id) else {
        return refused(
            ErrorCode::RateLimited,
            format!(
                "this API key has {MAX_SOCKETS_PER_KEY} sockets open on this server; close one first"
            ),
        );
    };
    *locked(&session.slot) = Some(slot);
    let _ = session.caller.set(caller);
    let mut data = Data::default();
    data.insert(RequestContext::new(caller, services));
    data.insert(SubscriptionBudget::default());
    Ok(data)
}

/// Carries the engine's messages to the client until something ends the
/// socket: the client, the engine, a deadline, a revoked key or shutdown.
async fn pump(
    mut messages: impl Stream<Item = WsMessage> + Unpin,
    sink: &mut SplitSink<WebSocket, Message>,
    session: &Session,
    state: &AppState,
) -> Ended {
    let init_deadline = tokio::time::sleep(state.socket_init_timeout);
    tokio::pin!(init_deadline);
    let mut key_check = tokio::time::interval(KEY_CHECK_EVERY);
    let mut shutdown = state.shutdown.clone();
    loop {
        if *shutdown.borrow() {
            return Ended::ShuttingDown;
        }
        tokio::select! {
            message = messages.next() => match message {
                Some(WsMessage::Text(text)) => {
                    session.outbound(&text);
                    let sent = tokio::time::timeout(state.socket_send_timeout, sink.send(Message::Text(text.into()))).await;
                    match sent {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return Ended::ClientGone,
                        Err(_) => return Ended::TooSlow,
                    }
                    // The legacy protocol's connection_error went out; close
                    // as the modern protocol does.
                    if session.closing.get().is_some() {
                        return Ended::Refused;
                    }
                }
                Some(WsMessage::Close(code, _)) => return Ended::EngineClosed(code),
                None => return Ended::InputClosed,
            },
            () = &mut init_deadline, if session.caller.get().is_none() => {
                return Ended::InitTimeout;
            }
            _ = key_check.tick(), if session.caller.get().is_some() => {
                if let Some(caller) = session.caller.get()
                    && matches!(state.services.key_is_active(caller.key_id).await, Ok(false))
                {
                    return Ended::Revoked;
                }
            }
            _ = shutdown.changed() => {}
        }
    }
}

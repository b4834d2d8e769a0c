//! GraphQL subscriptions over a WebSocket on `/graphql`: the modern
//! `graphql-transport-ws` protocol and the legacy `graphql-ws` one. The key
//! arrives in `connection_init`; the socket is closed when the key is
//! revoked, when the server shuts down, and when the client cannot keep up.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
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
use uuid::Uuid;

/// Largest inbound message; larger ones end the connection.
pub const MAX_INBOUND_BYTES: usize = 64 * 1024;
/// Most WebSocket connections one API key may hold open on one instance.
pub const MAX_SOCKETS_PER_KEY: usize = 32;
/// How often an open socket checks that its key is still valid.
const KEY_CHECK_EVERY: Duration = Duration::from_secs(2);
/// A client that takes longer than this to accept a message is too slow.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server closes a socket: each with its code (RFC 6455 or the
/// `graphql-transport-ws` protocol's) and a short fixed reason, well under
/// the 123 bytes a close frame may carry and never echoing input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    ShuttingDown,
    MessageTooBig,
    Unavailable,
    TooManySockets,
    TooSlow,
    InvalidMessage,
    Unauthorized,
    Forbidden,
    Revoked,
    InitTimeout,
    DuplicateSubscription,
    TooManyInits,
}

impl Closing {
    fn frame(self) -> (u16, &'static str) {
        match self {
            Closing::ShuttingDown => (
                1001,
                "server shutting down; reconnect with your last cursor",
            ),
            Closing::MessageTooBig => (1009, "message too big"),
            // 1013 (try again later): clients reconnect, with their cursor.
            Closing::Unavailable => (1013, "service unavailable; try again"),
            Closing::TooManySockets => (1013, "too many sockets for this key"),
            Closing::TooSlow => (1013, "subscriber too slow; reconnect with your last cursor"),
            Closing::InvalidMessage => (4400, "Invalid message received"),
            Closing::Unauthorized => (4401, "Unauthorized"),
            Closing::Forbidden => (4403, "Forbidden"),
            Closing::Revoked => (4403, "Forbidden: the API key was revoked"),
            Closing::InitTimeout => (4408, "Connection initialisation timeout"),
            Closing::DuplicateSubscription => (4409, "Subscriber for this id already exists"),
            Closing::TooManyInits => (4429, "Too many initialisation requests"),
        }
    }

    /// The engine's own close frames, given the protocol's codes and fixed
    /// reasons (the engine sends parser errors as the reason, with 1002).
    fn from_engine(code: u16) -> Self {
        match code {
            1011 => Closing::Unauthorized,
            4429 => Closing::TooManyInits,
            4408 | 3008 => Closing::InitTimeout,
            _ => Closing::InvalidMessage,
        }
    }
}

/// Open sockets per API key on this instance.
#[derive(Debug, Default)]
pub struct SocketCounts(Mutex<HashMap<Uuid, usize>>);

/// One open socket of a key; frees its place when dropped.
#[derive(Debug)]
struct SocketSlot {
    counts: Arc<SocketCounts>,
    key_id: Uuid,
}

impl SocketCounts {
    fn take(self: &Arc<Self>, key_id: Uuid) -> Option<SocketSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let open = counts.entry(key_id).or_default();
        if *open >= MAX_SOCKETS_PER_KEY {
            return None;
        }
        *open += 1;
        Some(SocketSlot {
            counts: self.clone(),
            key_id,
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = counts.get_mut(&self.key_id) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.key_id);
            }
        }
    }
}

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
    if !super::origin_allowed(&headers, &state.cors_origins, &state.own_origins) {
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

/// What `connection_init` decided, and what the client broke.
#[derive(Default)]
struct Session {
    caller: OnceLock<Caller>,
    /// This socket's place among its key's sockets.
    slot: Mutex<Option<SocketSlot>>,
    /// Set once: why the socket must close (refused init, bad message).
    closing: OnceLock<Closing>,
    /// Subscription ids the client has open (modern protocol).
    open_ids: Mutex<HashSet<String>>,
}

impl Session {
    fn close_with(&self, closing: Closing) {
        let _ = self.closing.set(closing);
    }

    /// Screens one inbound message before the engine reads it: JSON with a
    /// `type`, and no second subscription under an id that is open. `false`
    /// ends the input (the socket closes with the reason set here).
    fn admit(&self, protocol: Protocols, bytes: &[u8]) -> bool {
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            self.close_with(Closing::InvalidMessage);
            return false;
        };
        let Some(kind) = message.get("type").and_then(|t| t.as_str()) else {
            self.close_with(Closing::InvalidMessage);
            return false;
        };
        if protocol != Protocols::GraphQLWS {
            return true;
        }
        let id = message.get("id").and_then(|i| i.as_str());
        let mut open = self.open_ids.lock().unwrap_or_else(|p| p.into_inner());
        match (kind, id) {
            ("subscribe", Some(id)) if !open.insert(id.to_owned()) => {
                self.close_with(Closing::DuplicateSubscription);
                false
            }
            ("complete", Some(id)) => {
                open.remove(id);
                true
            }
            _ => true,
        }
    }

    /// Notes a subscription the server ended (`complete` or `error`), so
    /// its id may be used again.
    fn outbound(&self, text: &str) {
        if !(text.starts_with("{\"type\":\"complete\"") || text.starts_with("{\"type\":\"error\""))
        {
            return;
        }
        if let Ok(message) = serde_json::from_str::<serde_json::Value>(text)
            && let Some(id) = message.get("id").and_then(|i| i.as_str())
        {
            self.open_ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id);
        }
    }
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
        let socket_counts = state.socket_counts.clone();
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
                    let Some(slot) = socket_counts.take(caller.key_id) else {
                        session.close_with(Closing::TooManySockets);
                        return Err(async_graphql::Error::new(format!(
                            "this API key has {MAX_SOCKETS_PER_KEY} sockets open on this server; close one first"
                        )));
                    };
                    *session.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot);
                    let _ = session.caller.set(caller);
                    let mut data = Data::default();
                    data.insert(RequestContext::new(caller, services));
                    data.insert(SubscriptionBudget::default());
                    Ok(data)
                }
                Ok(_) => {
                    session.close_with(Closing::Forbidden);
                    Err(async_graphql::Error::new(
                        "Forbidden: connection_init needs {\"authorization\": \"Bearer <key>\"} of an INTEGRATOR or ADMIN key",
                    ))
                }
                Err(_) => {
                    session.close_with(Closing::Unavailable);
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
            break Some(Closing::ShuttingDown);
        }
        tokio::select! {
            message = messages.next() => match message {
                Some(WsMessage::Text(text)) => {
                    session.outbound(&text);
                    let sent = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text.into()))).await;
                    match sent {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break None,
                        Err(_) => break Some(Closing::TooSlow),
                    }
                    // The legacy protocol's connection_error went out; close
                    // as the modern protocol does.
                    if let Some(closing) = session.closing.get() {
                        break Some(*closing);
                    }
                }
                Some(WsMessage::Close(code, _)) => {
                    break Some(session.closing.get().copied().unwrap_or(Closing::from_engine(code)));
                }
                None => break session.closing.get().copied(),
            },
            () = &mut init_deadline, if session.caller.get().is_none() => {
                break Some(Closing::InitTimeout);
            }
            _ = key_check.tick(), if session.caller.get().is_some() => {
                if let Some(caller) = session.caller.get()
                    && matches!(state.services.key_is_active(caller.key_id).await, Ok(false))
                {
                    break Some(Closing::Revoked);
                }
            }
            _ = shutdown.changed() => {}
        }
    };
    if let Some(closing) = close {
        let (code, reason) = closing.frame();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_short_and_fixed() {
        for closing in [
            Closing::ShuttingDown,
            Closing::MessageTooBig,
            Closing::Unavailable,
            Closing::TooManySockets,
            Closing::TooSlow,
            Closing::InvalidMessage,
            Closing::Unauthorized,
            Closing::Forbidden,
            Closing::Revoked,
            Closing::InitTimeout,
            Closing::DuplicateSubscription,
            Closing::TooManyInits,
        ] {
            let (code, reason) = closing.frame();
            assert!(reason.len() <= 123, "{closing:?}");
            assert!(
                matches!(code, 1001 | 1009 | 1013 | 4400..=4499),
                "{closing:?}"
            );
        }
    }

    #[test]
    fn a_second_subscription_under_an_open_id_is_refused() {
        let session = Session::default();
        let subscribe =
            br#"{"type":"subscribe","id":"1","payload":{"query":"subscription { x }"}}"#;
        assert!(session.admit(Protocols::GraphQLWS, subscribe));
        assert!(!session.admit(Protocols::GraphQLWS, subscribe));
        assert_eq!(session.closing.get(), Some(&Closing::DuplicateSubscription));

        let again = Session::default();
        assert!(again.admit(Protocols::GraphQLWS, subscribe));
        again.outbound(r#"{"type":"complete","id":"1"}"#);
        assert!(
            again.admit(Protocols::GraphQLWS, subscribe),
            "the server completed it"
        );
        assert!(again.admit(Protocols::GraphQLWS, br#"{"type":"complete","id":"1"}"#));
        assert!(
            again.admit(Protocols::GraphQLWS, subscribe),
            "the client completed it"
        );
    }

    #[test]
    fn messages_that_are_not_json_objects_with_a_type_are_refused() {
        for bad in [&b"{not json"[..], b"[]", b"{}", b"{\"type\": 5}", b"\xff"] {
            let session = Session::default();
            assert!(!session.admit(Protocols::GraphQLWS, bad));
            assert_eq!(session.closing.get(), Some(&Closing::InvalidMessage));
        }
    }
}

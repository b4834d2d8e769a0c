//! The state of one WebSocket: why it will close, its place among its
//! key's sockets, and the screening of inbound messages.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::http::WebSocketProtocols as Protocols;
use uuid::Uuid;

use crate::domain::locked;
use crate::error::ErrorCode;
use crate::service::Caller;

/// Why the server closes a socket: each with its code (RFC 6455 or the
/// `graphql-transport-ws` protocol's) and a short fixed reason, well under
/// the 123 bytes a close frame may carry and never echoing input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closing {
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
    pub(super) fn frame(self) -> (u16, &'static str) {
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

    /// Why a refused `connection_init` closes the socket.
    pub(super) fn refused(code: ErrorCode) -> Self {
        match code {
            ErrorCode::Forbidden => Closing::Forbidden,
            ErrorCode::RateLimited => Closing::TooManySockets,
            ErrorCode::ServiceUnavailable => Closing::Unavailable,
            _ => Closing::Unauthorized,
        }
    }

    /// The engine's own close frames, given the protocol's codes and fixed
    /// reasons (the engine sends parser errors as the reason, with 1002).
    pub(super) fn from_engine(code: u16) -> Self {
        match code {
            1011 => Closing::Unauthorized,
            4429 => Closing::TooManyInits,
            4408 | 3008 => Closing::InitTimeout,
            _ => Closing::InvalidMessage,
        }
    }
}

/// Most WebSocket connections one API key may hold open on one instance.
pub const MAX_SOCKETS_PER_KEY: usize = 32;

/// Open sockets per API key on this instance.
#[derive(Debug, Default)]
pub struct SocketCounts(Mutex<HashMap<Uuid, usize>>);

/// One open socket of a key; frees its place when dropped.
#[derive(Debug)]
pub(super) struct SocketSlot {
    counts: Arc<SocketCounts>,
    key_id: Uuid,
}

impl SocketCounts {
    pub(super) fn take(self: &Arc<Self>, key_id: Uuid) -> Option<SocketSlot> {
        let mut counts = locked(&self.0);
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
        let mut counts = locked(&self.counts.0);
        if let Some(open) = counts.get_mut(&self.key_id) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.key_id);
            }
        }
    }
}

/// What `connection_init` decided, and what the client broke.
#[derive(Default)]
pub(super) struct Session {
    pub(super) caller: OnceLock<Caller>,
    /// This socket's place among its key's sockets.
    pub(super) slot: Mutex<Option<SocketSlot>>,
    /// Set once: why the socket must close (refused init, bad message).
    pub(super) closing: OnceLock<Closing>,
    /// Subscription ids the client has open (modern protocol).
    open_ids: Mutex<HashSet<String>>,
}

impl Session {
    pub(super) fn close_with(&self, closing: Closing) {
        let _ = self.closing.set(closing);
    }

    /// Screens one inbound message before the engine reads it: JSON with a
    /// `type`, and no second subscription under an id that is open. `false`
    /// ends the input (the socket closes with the reason set here).
    pub(super) fn admit(&self, protocol: Protocols, bytes: &[u8]) -> bool {
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
        let mut open = locked(&self.open_ids);
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
    pub(super) fn outbound(&self, text: &str) {
        if !(text.starts_with("{\"type\":\"complete\"") || text.starts_with("{\"type\":\"error\""))
        {
            return;
        }
        if let Ok(message) = serde_json::from_str::<serde_json::Value>(text)
            && let Some(id) = message.get("id").and_then(|i| i.as_str())
        {
            locked(&self.open_ids).remove(id);
        }
    }

    /// The one close frame the socket ends with, from why its loop ended
    /// and what the session decided before. `None`: the client is gone.
    pub(super) fn close_reason(&self, ended: Ended) -> Option<Closing> {
        let decided = self.closing.get().copied();
        match ended {
            Ended::ShuttingDown => Some(Closing::ShuttingDown),
            Ended::ClientGone => None,
            Ended::TooSlow => Some(Closing::TooSlow),
            Ended::InitTimeout => Some(Closing::InitTimeout),
            Ended::Revoked => Some(Closing::Revoked),
            Ended::Refused | Ended::InputClosed => decided,
            Ended::EngineClosed(code) => Some(decided.unwrap_or(Closing::from_engine(code))),
        }
    }
}

/// Why a socket's message loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    ShuttingDown,
    /// Sending failed: nobody is left to read a close frame.
    ClientGone,
    TooSlow,
    InitTimeout,
    Revoked,
    /// The session set its reason (a refused init, a bad message) and the
    /// engine's answer to it went out.
    Refused,
    /// The client's input ended (or was cut off by a screened message).
    InputClosed,
    /// The engine closed with this code.
    EngineClosed(u16),
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

    #[test]
    fn the_close_frame_is_the_sessions_reason_when_it_decided_one() {
        let quiet = Session::default();
        assert_eq!(quiet.close_reason(Ended::ClientGone), None);
        assert_eq!(quiet.close_reason(Ended::InputClosed), None);
        assert_eq!(
            quiet.close_reason(Ended::EngineClosed(4429)),
            Some(Closing::TooManyInits)
        );
        assert_eq!(
            quiet.close_reason(Ended::ShuttingDown),
            Some(Closing::ShuttingDown)
        );

        let refused = Session::default();
        refused.close_with(Closing::refused(ErrorCode::RateLimited));
        for ended in [
            Ended::Refused,
            Ended::InputClosed,
            Ended::EngineClosed(1011),
        ] {
            assert_eq!(
                refused.close_reason(ended),
                Some(Closing::TooManySockets),
                "{ended:?}"
            );
        }
        assert_eq!(
            Closing::refused(ErrorCode::Forbidden).frame().0,
            4403,
            "a key that may not follow the feed"
        );
        assert_eq!(
            Closing::refused(ErrorCode::ServiceUnavailable).frame().0,
            1013
        );
    }
}

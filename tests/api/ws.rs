//! A small GraphQL-over-WebSocket client for the tests: the modern
//! `graphql-transport-ws` protocol, and the legacy `graphql-ws` one.

#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::TestApp;

pub const MODERN: &str = "graphql-transport-ws";
pub const LEGACY: &str = "graphql-ws";
/// How long a test waits for something the server should send.
pub const PATIENCE: Duration = Duration::from_secs(15);

pub const EVENT: &str =
    "subscription($after: String, $kinds: [ConversionKind!], $channels: [Channel!]) {
    conversionRecorded(after: $after, kinds: $kinds, channels: $channels) {
        cursor
        conversion { id kind attributed source record { type id } recordedAt }
        conversation { sessionId channel badges { label colour } } } }";

pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub protocol: &'static str,
}

impl TestApp {
    /// A WebSocket to `base` (this app's address when `None`), not yet initialised.
    pub async fn socket_to(&self, base: Option<&str>, protocol: &'static str) -> Socket {
        let base = base.unwrap_or(&self.address);
        let url = format!("{}/graphql", base.replacen("http://", "ws://", 1));
        let mut request = url.into_client_request().expect("request");
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocol.parse().expect("header"));
        let (ws, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("upgrade");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(protocol)
        );
        Socket { ws, protocol }
    }

    /// The cursor of the newest event `key`'s tenant has: subscribing with it
    /// as `after` makes a subscription live from now, with no race between
    /// the server starting it and a recording that follows.
    pub async fn feed_end(&self, key: &str) -> Value {
        let mut after = Value::Null;
        loop {
            let body = self
                .gql(
                    key,
                    "query($after: String) { conversionsSince(after: $after, first: 500) { pageInfo { hasNextPage endCursor } } }",
                    json!({ "after": after }),
                )
                .await;
            let page = &body["data"]["conversionsSince"]["pageInfo"];
            after = page["endCursor"].clone();
            assert!(after.is_string(), "{body}");
            if page["hasNextPage"] != true {
                return after;
            }
        }
    }

    /// An initialised subscriber socket for `key`.
    pub async fn subscriber(&self, key: &str) -> Socket {
        self.subscriber_at(None, key).await
    }

    pub async fn subscriber_at(&self, base: Option<&str>, key: &str) -> Socket {
        let mut socket = self.socket_to(base, MODERN).await;
        socket.init(key).await;
        let ack = socket
            .next_json()
            .await
            .expect("an answer to connection_init");
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        socket
    }
}

impl Socket {
    pub async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send");
    }

    /// Sends `text` as it is, JSON or not.
    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("send");
    }

    pub async fn init(&mut self, key: &str) {
        self.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {key}") } }))
            .await;
    }

    /// Starts a subscription with `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.protocol == MODERN {
            "subscribe"
        } else {
            "start"
        };
        self.send(json!({ "id": id, "type": kind, "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// The next JSON message; `None` once the socket closed.
    pub async fn next_json(&mut self) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("the server answers in time")?;
            match message {
                Ok(Message::Text(text)) => {
                    let value: Value = serde_json::from_str(&text).expect("JSON");
                    if matches!(value["type"].as_str(), Some("ka" | "ping" | "pong")) {
                        continue;
                    }
                    return Some(value);
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The next event's `conversionRecorded`; panics on anything else.
    pub async fn next_event(&mut self) -> Value {
        let message = self.next_json().await.expect("an event, not a close");
        let expected = if self.protocol == MODERN {
            "next"
        } else {
            "data"
        };
        assert_eq!(message["type"], expected, "{message}");
        assert!(message["payload"].get("errors").is_none(), "{message}");
        message["payload"]["data"]["conversionRecorded"].clone()
    }

    /// `n` events in order.
    pub async fn events(&mut self, n: usize) -> Vec<Value> {
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            events.push(self.next_event().await);
        }
        events
    }

    /// Reads until the server closes; its close code and reason.
    pub async fn close_frame(&mut self) -> Option<(u16, String)> {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("the server closes in time");
            match message {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Nothing arrives for a short while (used after everything expected came).
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        match tokio::time::timeout(wait, self.ws.next()).await {
            Err(_) => true,
            Ok(Some(Ok(Message::Text(text)))) => panic!("unexpected message: {text}"),
            Ok(_) => true,
        }
    }
}

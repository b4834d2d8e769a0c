//! What every route shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::graphql::ApiSchema;
use crate::service::Services;

/// Shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    /// Database and clock, behind the service layer.
    pub services: Services,
    /// The GraphQL schema (built once; per-request data is added per request).
    pub schema: ApiSchema,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Turns true when the server starts shutting down; open sockets close
    /// with a proper close frame then.
    pub shutdown: watch::Receiver<bool>,
    /// Open WebSocket connections, so shutdown can wait for their close frames.
    pub sockets: TaskTracker,
    /// Time a WebSocket client has to send `connection_init`.
    pub socket_init_timeout: std::time::Duration,
    /// Longest a WebSocket client may take to accept a message.
    pub socket_send_timeout: std::time::Duration,
    /// Longest an HTTP request may take before it is answered 504.
    pub request_timeout: std::time::Duration,
    /// Browser origins allowed to call the API and open WebSockets.
    pub cors_origins: Arc<Vec<String>>,
    /// The origins of this server's own pages as it listens (GraphiQL and
    /// `/admin` open WebSockets from them); never taken from a request's
    /// `Host`, which a DNS-rebinding page chooses.
    pub own_origins: Arc<Vec<String>>,
    /// Open WebSockets per API key.
    pub socket_counts: Arc<super::socket::SocketCounts>,
}

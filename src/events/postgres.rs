//! The PostgreSQL side of the wake-ups: one LISTEN connection per instance,
//! for the feed and for key changes. NOTIFY is lost for a listener that is
//! not connected, so every (re)connection wakes all subscribers, who then
//! catch up from the table, and tells the key cache to forget everything.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::PgPool;
use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::watch;
use uuid::Uuid;

use super::{EventBus, KEYS_CHANNEL, KeyNews, NOTIFY_CHANNEL};

/// Listens until `shutdown` turns true, reconnecting whenever the
/// connection is lost.
pub async fn listen(
    pool: PgPool,
    bus: Arc<EventBus>,
    key_news: Arc<KeyNews>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let connected = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen_all([NOTIFY_CHANNEL, KEYS_CHANNEL]).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        }
        .await;
        match connected {
            Ok(mut listener) => {
                backoff = Duration::from_millis(100);
                tracing::debug!("listening for conversion notifications");
                bus.wake_all();
                key_news.heard();
                loop {
                    tokio::select! {
                        received = listener.try_recv() => match received {
                            Ok(Some(notification)) if notification.channel() == KEYS_CHANNEL => {
                                key_news.heard();
                            }
                            Ok(Some(notification)) => {
                                if let Ok(tenant) = Uuid::parse_str(notification.payload()) {
                                    bus.wake(tenant);
                                }
                            }
                            Ok(None) | Err(_) => {
                                tracing::warn!("lost the notification connection; reconnecting");
                                break;
                            }
                        },
                        _ = shutdown.changed() => return,
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for conversion notifications; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

//! The PostgreSQL side of the wake-ups: one LISTEN connection per instance,
//! for the feed and for key changes. NOTIFY is lost for a listener that is
//! not connected, so every (re)connection wakes all subscribers, who then
//! catch up from the table, and tells the key cache to forget everything.
//!
//! Recordings do not NOTIFY in their own transaction: PostgreSQL lets one
//! notifying transaction commit at a time, cluster-wide (its queue lock is
//! held through the commit's WAL flush), which made every recording wait
//! for every other. Each instance instead tells the others after its
//! commits, in one statement for all the tenants that moved meanwhile
//! ([`announce`]). News lost with an instance that stops just after a
//! commit costs the others at most their readers' idle tick.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::PgPool;
use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use tokio::sync::watch;
use uuid::Uuid;

use super::activity::{ACTIVITY_CHANNEL, ActivityBus};
use super::{EventBus, KEYS_CHANNEL, KeyNews, NOTIFY_CHANNEL, notify_payload};

/// What the listener hands on: feed wake-ups, key news, activity.
pub struct Heard {
    pub bus: Arc<EventBus>,
    pub key_news: Arc<KeyNews>,
    pub activity: Arc<ActivityBus>,
}

/// Listens until `shutdown` turns true, reconnecting whenever the
/// connection is lost.
pub async fn listen(pool: PgPool, heard: Heard, mut shutdown: watch::Receiver<bool>) {
    let Heard {
        bus,
        key_news,
        activity,
    } = heard;
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let connected = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener
                .listen_all([NOTIFY_CHANNEL, KEYS_CHANNEL, ACTIVITY_CHANNEL])
                .await?;
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
                            Ok(Some(notification)) if notification.channel() == ACTIVITY_CHANNEL => {
                                if let Some(news) = activity.heard(notification.payload()) {
                                    activity.deliver(news);
                                }
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

/// The least time between two announcements of one instance: news that
/// comes sooner waits and goes with the next (the first after a quiet spell
/// goes at once). Under load, one statement tells of many recordings.
const GATHER: Duration = Duration::from_millis(5);

/// Tells the other instances which tenants' feeds moved here, until
/// `shutdown` turns true: one NOTIFY per tenant, all in one statement, for
/// whatever moved since the previous one.
pub async fn announce(
    db: DatabaseConnection,
    bus: Arc<EventBus>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let tenants = tokio::select! {
            tenants = bus.untold() => tenants,
            _ = shutdown.changed() => return,
        };
        let payloads: Vec<String> = tenants.into_iter().map(notify_payload).collect();
        let told = db
            .execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_notify($1, t) FROM unnest(string_to_array($2, ',')) t",
                [NOTIFY_CHANNEL.into(), payloads.join(",").into()],
            ))
            .await;
        if let Err(e) = told {
            // Their readers find the rows on their idle tick anyway.
            tracing::warn!(error = %e, "cannot tell other instances of new conversions");
        }
        tokio::select! {
            () = tokio::time::sleep(GATHER) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Tells the other instances of the conversation activity here, until
/// `shutdown` turns true: one NOTIFY per event, all in one statement, for
/// whatever happened since the previous one.
pub async fn announce_activity(
    db: DatabaseConnection,
    activity: Arc<ActivityBus>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let news = tokio::select! {
            news = activity.untold() => news,
            _ = shutdown.changed() => return,
        };
        let payloads: Vec<String> = news.iter().map(|a| activity.payload(a)).collect();
        let told = db
            .execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_notify($1, t) FROM unnest(string_to_array($2, ',')) t",
                [ACTIVITY_CHANNEL.into(), payloads.join(",").into()],
            ))
            .await;
        if let Err(e) = told {
            // Their lists are right again at their next read.
            tracing::warn!(error = %e, "cannot tell other instances of conversation activity");
        }
        tokio::select! {
            () = tokio::time::sleep(GATHER) => {}
            _ = shutdown.changed() => return,
        }
    }
}

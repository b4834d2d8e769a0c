//! The conversion event feed's wake-ups. The conversion table is the log:
//! subscribers read it after their cursor, so nothing here carries events,
//! only the news that a tenant's feed moved. In-process on one instance;
//! PostgreSQL `LISTEN/NOTIFY` carries the news between instances.

pub mod postgres;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::locked;
use tokio::sync::watch;
use uuid::Uuid;

/// The NOTIFY channel instances tell each other on.
pub const NOTIFY_CHANNEL: &str = "convtrack_conversions";
/// The NOTIFY channel of changes to who may call (a key revoked, a
/// tenant's settings changed).
pub const KEYS_CHANNEL: &str = "convtrack_keys";

/// Counts the news that keys or tenant settings may have changed elsewhere:
/// a notification from another instance, or a (re)connected listener that
/// may have missed some. Whoever keeps keys in memory compares the count.
#[derive(Debug, Default)]
pub struct KeyNews(AtomicU64);

impl KeyNews {
    pub fn heard(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub fn count(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Wakes a tenant's subscribers when its feed moves.
#[derive(Debug, Default)]
pub struct EventBus {
    tenants: Mutex<HashMap<Uuid, watch::Sender<u64>>>,
}

impl EventBus {
    /// A receiver that changes whenever `tenant_id`'s feed may have moved.
    pub fn watch(&self, tenant_id: Uuid) -> watch::Receiver<u64> {
        let mut tenants = locked(&self.tenants);
        tenants
            .entry(tenant_id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    pub fn wake(&self, tenant_id: Uuid) {
        let mut tenants = locked(&self.tenants);
        if let Some(sender) = tenants.get(&tenant_id) {
            if sender.receiver_count() == 0 {
                tenants.remove(&tenant_id);
            } else {
                sender.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    /// Wakes everyone: after a lost NOTIFY connection, news may have been missed.
    pub fn wake_all(&self) {
        let mut tenants = locked(&self.tenants);
        tenants.retain(|_, sender| sender.receiver_count() > 0);
        for sender in tenants.values() {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// The NOTIFY payload for a tenant's feed moving.
pub fn notify_payload(tenant_id: Uuid) -> String {
    tenant_id.simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_reaches_only_that_tenants_watchers() {
        let bus = EventBus::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut watch_a = bus.watch(a);
        let watch_b = bus.watch(b);
        bus.wake(a);
        assert!(watch_a.has_changed().expect("open"));
        assert!(!watch_b.has_changed().expect("open"));
        watch_a.borrow_and_update();
        bus.wake_all();
        assert!(watch_a.has_changed().expect("open"));
        assert!(watch_b.has_changed().expect("open"));
        drop((watch_a, watch_b));
        bus.wake_all();
        assert!(
            bus.tenants.lock().expect("lock").is_empty(),
            "unwatched tenants are forgotten"
        );
    }
}

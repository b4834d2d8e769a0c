//! The conversion event feed's wake-ups. The conversion table is the log:
//! subscribers read it after their cursor, so nothing here carries events,
//! only the news that a tenant's feed moved. In-process on one instance;
//! PostgreSQL `LISTEN/NOTIFY` carries the news between instances.

pub mod activity;
pub mod postgres;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::locked;
use tokio::sync::{Notify, watch};
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

/// Wakes a tenant's subscribers when its feed moves, here and (through
/// [`postgres::announce`]) on the other instances.
#[derive(Debug, Default)]
pub struct EventBus {
    tenants: Mutex<HashMap<Uuid, watch::Sender<u64>>>,
    /// Tenants whose feed moved here and the other instances have not been
    /// told of yet; `None` when there is no one to tell (SQLite).
    untold: Mutex<Option<HashSet<Uuid>>>,
    to_tell: Notify,
}

impl EventBus {
    /// From now on, [`Self::moved`] news is kept for [`postgres::announce`].
    pub fn tell_other_instances(&self) {
        locked(&self.untold).get_or_insert_default();
    }

    /// `tenant_id`'s feed moved by a commit on this instance: wakes its
    /// subscribers here and queues the news for the other instances.
    pub fn moved(&self, tenant_id: Uuid) {
        self.wake(tenant_id);
        if let Some(untold) = locked(&self.untold).as_mut() {
            untold.insert(tenant_id);
            self.to_tell.notify_one();
        }
    }

    /// Waits for news the other instances have not been told of, and takes
    /// all of it.
    pub async fn untold(&self) -> Vec<Uuid> {
        loop {
            let news: Vec<Uuid> = locked(&self.untold)
                .as_mut()
                .map(|untold| untold.drain().collect())
                .unwrap_or_default();
            if !news.is_empty() {
                return news;
            }
            self.to_tell.notified().await;
        }
    }

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
        bus.moved(a);
        assert!(
            bus.untold.lock().expect("lock").is_none(),
            "no news is kept when no one tells other instances"
        );
        bus.wake_all();
        assert!(
            bus.tenants.lock().expect("lock").is_empty(),
            "unwatched tenants are forgotten"
        );
    }

    #[tokio::test]
    async fn news_for_other_instances_is_taken_at_once_each_tenant_once() {
        let bus = EventBus::default();
        bus.tell_other_instances();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut watch_a = bus.watch(a);
        bus.moved(a);
        bus.moved(b);
        bus.moved(a);
        assert!(watch_a.has_changed().expect("open"), "woken here at once");
        watch_a.borrow_and_update();
        let mut news = bus.untold().await;
        news.sort();
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(news, both);
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), bus.untold());
        assert!(waiting.await.is_err(), "nothing more to tell");
        bus.moved(b);
        assert_eq!(bus.untold().await, vec![b]);
    }
}

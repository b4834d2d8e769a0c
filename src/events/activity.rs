//! Live conversation activity: a conversation started, got a message, was
//! closed. Unlike the conversion feed this is not a log to resume from —
//! a list that was away reads the list again — so the news itself is
//! carried: in-process to this instance's subscribers, and by PostgreSQL
//! `NOTIFY` to the other instances' (each payload names the instance it
//! came from, so an instance skips its own).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

use crate::domain::activity::ActivityChange;
use crate::domain::locked;

/// The NOTIFY channel activity travels on.
pub const ACTIVITY_CHANNEL: &str = "convtrack_activity";

/// How many events a subscriber may fall behind before it misses some
/// (and is told so).
const BACKLOG: usize = 1024;

/// Most news kept for the other instances while the announcer is behind;
/// older news is dropped (their lists catch up on their next read).
const MOST_UNTOLD: usize = 10_000;

/// One thing that happened to one conversation of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    pub tenant_id: Uuid,
    pub conversation_id: Uuid,
    pub change: ActivityChange,
}

/// Delivers activity to this instance's subscribers, and keeps it for
/// [`super::postgres::announce_activity`] to tell the others.
#[derive(Debug)]
pub struct ActivityBus {
    /// This instance, as its NOTIFY payloads name it.
    instance: Uuid,
    tenants: Mutex<HashMap<Uuid, broadcast::Sender<Activity>>>,
    /// `None` when there is no one to tell (SQLite).
    untold: Mutex<Option<Vec<Activity>>>,
    to_tell: Notify,
}

impl Default for ActivityBus {
    fn default() -> Self {
        Self {
            instance: Uuid::new_v4(),
            tenants: Mutex::default(),
            untold: Mutex::default(),
            to_tell: Notify::new(),
        }
    }
}

impl ActivityBus {
    /// From now on, activity is kept for the other instances too.
    pub fn tell_other_instances(&self) {
        locked(&self.untold).get_or_insert_default();
    }

    /// Something happened here (after its commit).
    pub fn happened(&self, activity: Activity) {
        self.deliver(activity);
        if let Some(untold) = locked(&self.untold).as_mut() {
            if untold.len() >= MOST_UNTOLD {
                untold.remove(0);
            }
            untold.push(activity);
            self.to_tell.notify_one();
        }
    }

    /// Hands `activity` to this instance's subscribers of its tenant.
    pub fn deliver(&self, activity: Activity) {
        let mut tenants = locked(&self.tenants);
        if let Some(sender) = tenants.get(&activity.tenant_id)
            && sender.send(activity).is_err()
        {
            // Nobody listens any more.
            tenants.remove(&activity.tenant_id);
        }
    }

    /// Every activity of `tenant_id` from now on.
    pub fn subscribe(&self, tenant_id: Uuid) -> broadcast::Receiver<Activity> {
        locked(&self.tenants)
            .entry(tenant_id)
            .or_insert_with(|| broadcast::channel(BACKLOG).0)
            .subscribe()
    }

    /// Waits for activity the other instances have not been told of, and
    /// takes all of it.
    pub async fn untold(&self) -> Vec<Activity> {
        loop {
            let news = locked(&self.untold)
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            if !news.is_empty() {
                return news;
            }
            self.to_tell.notified().await;
        }
    }

    /// The NOTIFY payload of `activity` from this instance.
    pub fn payload(&self, activity: &Activity) -> String {
        format!(
            "{}:{}:{}:{}",
            self.instance.simple(),
            activity.tenant_id.simple(),
            activity.conversation_id.simple(),
            activity.change.as_str()
        )
    }

    /// The activity a payload from another instance carries; none for one
    /// of this instance's own or one that does not parse.
    pub fn heard(&self, payload: &str) -> Option<Activity> {
        let mut parts = payload.split(':');
        let instance = Uuid::parse_str(parts.next()?).ok()?;
        let tenant_id = Uuid::parse_str(parts.next()?).ok()?;
        let conversation_id = Uuid::parse_str(parts.next()?).ok()?;
        let change = parts.next()?.parse().ok()?;
        (instance != self.instance && parts.next().is_none()).then_some(Activity {
            tenant_id,
            conversation_id,
            change,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(tenant_id: Uuid, change: ActivityChange) -> Activity {
        Activity {
            tenant_id,
            conversation_id: Uuid::now_v7(),
            change,
        }
    }

    #[tokio::test]
    async fn activity_reaches_its_tenants_subscribers_and_waits_for_the_others() {
        let bus = ActivityBus::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut on_a = bus.subscribe(a);
        let mut on_b = bus.subscribe(b);
        let started = activity(a, ActivityChange::Started);
        bus.happened(started);
        assert_eq!(on_a.try_recv(), Ok(started));
        assert!(on_b.try_recv().is_err(), "another tenant hears nothing");
        assert!(
            locked(&bus.untold).is_none(),
            "nothing kept without other instances"
        );
        bus.tell_other_instances();
        let message = activity(b, ActivityChange::Message);
        bus.happened(message);
        assert_eq!(on_b.try_recv(), Ok(message));
        assert_eq!(bus.untold().await, vec![message]);
    }

    #[test]
    fn payloads_travel_between_instances_but_not_back() {
        let (here, there) = (ActivityBus::default(), ActivityBus::default());
        let closed = activity(Uuid::now_v7(), ActivityChange::Closed);
        let payload = here.payload(&closed);
        assert_eq!(there.heard(&payload), Some(closed));
        assert_eq!(here.heard(&payload), None, "its own news is skipped");
        for bad in [
            "",
            "x:y:z:STARTED",
            &format!("{payload}:more"),
            &payload.replace("CLOSED", "OPENED"),
        ] {
            assert_eq!(there.heard(bad), None, "{bad}");
        }
    }
}

//! Fan-out of a tenant's live events on one instance. One reader per tenant
//! follows the conversion table and broadcasts what it reads; subscribers
//! catch up from the table on their own, then switch to the broadcast. A
//! subscriber that falls behind the broadcast (its client reads slowly)
//! goes back to the table from its cursor: it never skips an event, and
//! memory stays bounded. A client that stops reading altogether is closed
//! by its socket.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use super::event::{FeedEvent, FeedFilter, FeedItem};
use crate::domain::cursor::FeedPosition;
use crate::domain::locked;
use crate::error::AppError;

/// Where the hub reads a tenant's events: the conversion table in service,
/// a fake in tests.
pub trait FeedSource: Clone + Send + Sync + 'static {
    /// The newest event's position that may be handed out (the start
    /// before the first).
    fn latest(
        &self,
        tenant_id: Uuid,
    ) -> impl Future<Output = Result<FeedPosition, AppError>> + Send;

    /// Up to `limit` events after `after` that match `filter`, oldest first.
    fn after(
        &self,
        tenant_id: Uuid,
        after: FeedPosition,
        filter: &FeedFilter,
        limit: u64,
    ) -> impl Future<Output = Result<Batch, AppError>> + Send;

    /// Changes whenever the tenant's feed may have moved.
    fn wake_ups(&self, tenant_id: Uuid) -> watch::Receiver<u64>;
}

/// Events a subscriber may be behind the live broadcast before it goes back
/// to reading the table.
const LIVE_BUFFER: usize = 4096;
/// Events read per statement.
const BATCH: u64 = 500;
/// A subscriber reporting progress says where it is at least once per
/// this many events its filter left out, even while more keep coming.
pub const PASSED_REPORT_EVERY: u64 = 100;
/// An idle reader re-reads the table this often even without a wake-up (so
/// no lost notification stalls the feed for long) and checks whether
/// anyone still listens.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// A reader that saw committed events held back (an older transaction is
/// still open) reads again this soon: the transaction it waits on may
/// end without a notification (rolled back, or not a recording). The
/// pause doubles while the same wait goes on, up to [`HELD_TICK_MAX`], so
/// a transaction left open for minutes costs a few reads a second.
const HELD_TICK: Duration = Duration::from_millis(5);
const HELD_TICK_MAX: Duration = Duration::from_millis(250);

/// The pauses of one wait for held-back events: [`HELD_TICK`], doubling up
/// to [`HELD_TICK_MAX`].
pub(super) struct HeldPause(Duration);

impl HeldPause {
    pub(super) fn new() -> Self {
        Self(HELD_TICK)
    }

    /// The pause to wait now; the next one is twice as long.
    pub(super) fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(HELD_TICK_MAX);
        now
    }
}

/// Events read from the feed.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<FeedEvent>,
    /// Whether committed events after these were held back, because a
    /// transaction that may still write before them has not ended.
    pub held: bool,
}

struct TenantFeed {
    events: broadcast::Sender<Arc<FeedEvent>>,
    /// The cursor the reader started after; `None` until it knows it.
    start: watch::Receiver<Option<FeedPosition>>,
}

/// The live readers of this instance, one per tenant with subscribers.
#[derive(Default)]
pub struct FeedHub {
    tenants: Mutex<HashMap<Uuid, TenantFeed>>,
}

impl std::fmt::Debug for FeedHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedHub").finish_non_exhaustive()
    }
}

impl FeedHub {
    /// Joins (or starts) the tenant's live broadcast.
    fn join<S: FeedSource>(
        self: &Arc<Self>,
        source: &S,
        tenant_id: Uuid,
    ) -> (
        broadcast::Receiver<Arc<FeedEvent>>,
        watch::Receiver<Option<FeedPosition>>,
    ) {
        let mut tenants = locked(&self.tenants);
        if let Some(feed) = tenants.get(&tenant_id) {
            return (feed.events.subscribe(), feed.start.clone());
        }
        let (events, receiver) = broadcast::channel(LIVE_BUFFER);
        let (start_tx, start) = watch::channel(None);
        tenants.insert(
            tenant_id,
            TenantFeed {
                events: events.clone(),
                start: start.clone(),
            },
        );
        tokio::spawn(read_tenant(
            self.clone(),
            source.clone(),
            tenant_id,
            events,
            start_tx,
        ));
        (receiver, start)
    }

    /// Ends a reader nobody listens to. Under the lock, so a subscriber
    /// either joins before (and keeps the reader) or starts a new one after.
    fn retire_if_unheard(
        &self,
        tenant_id: Uuid,
        events: &broadcast::Sender<Arc<FeedEvent>>,
    ) -> bool {
        let mut tenants = locked(&self.tenants);
        if events.receiver_count() > 0 {
            return false;
        }
        if tenants
            .get(&tenant_id)
            .is_some_and(|f| f.events.same_channel(events))
        {
            tenants.remove(&tenant_id);
        }
        true
    }

    /// How many tenants have a live reader.
    #[cfg(test)]
    fn readers(&self) -> usize {
        locked(&self.tenants).len()
    }

    /// A tenant's events after `after`, matching `filter`, without end.
    pub fn subscribe<S: FeedSource>(
        self: &Arc<Self>,
        source: S,
        tenant_id: Uuid,
        after: FeedPosition,
        filter: FeedFilter,
    ) -> impl Stream<Item = Result<FeedEvent, AppError>> + Send + use<S> {
        self.subscribe_items(source, tenant_id, after, filter, false)
            .filter_map(|item| async move {
                match item {
                    Ok(FeedItem::Event(event)) => Some(Ok(*event)),
                    Ok(FeedItem::Passed(_)) => None,
                    Err(e) => Some(Err(e)),
                }
            })
    }

    /// Like [`Self::subscribe`]; with `report_passed`, also the position
    /// past events the filter left out, once the subscriber has caught up
    /// with them (or every [`PASSED_REPORT_EVERY`] of them), so a resume
    /// need not read them again.
    pub fn subscribe_items<S: FeedSource>(
        self: &Arc<Self>,
        source: S,
        tenant_id: Uuid,
        after: FeedPosition,
        filter: FeedFilter,
        report_passed: bool,
    ) -> impl Stream<Item = Result<FeedItem, AppError>> + Send + use<S> {
        let (live, start) = self.join(&source, tenant_id);
        let state = Subscriber {
            source,
            tenant_id,
            cursor: after,
            filter,
            live,
            start,
            catching_up: true,
            buffer: VecDeque::new(),
            done: false,
            report_passed,
            passed: None,
            passed_count: 0,
        };
        futures_util::stream::unfold(state, |mut s| async move {
            if s.done {
                return None;
            }
            match s.next().await {
                Ok(event) => Some((Ok(event), s)),
                Err(e) => {
                    s.done = true;
                    Some((Err(e), s))
                }
            }
        })
    }
}

struct Subscriber<S> {
    source: S,
    tenant_id: Uuid,
    /// The last event this subscriber has passed (delivered or filtered out).
    cursor: FeedPosition,
    filter: FeedFilter,
    live: broadcast::Receiver<Arc<FeedEvent>>,
    start: watch::Receiver<Option<FeedPosition>>,
    catching_up: bool,
    buffer: VecDeque<FeedEvent>,
    done: bool,
    report_passed: bool,
    /// The newest position passed without an event handed out since the
    /// last item, and how many events that was.
    passed: Option<FeedPosition>,
    passed_count: u64,
}

impl<S: FeedSource> Subscriber<S> {
    async fn next(&mut self) -> Result<FeedItem, AppError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                if self.passed.is_some_and(|at| at < event.position()) {
                    self.passed = None;
                    self.passed_count = 0;
                }
                return Ok(FeedItem::Event(Box::new(event)));
            }
            if self.catching_up {
                // The broadcast covers everything after the reader's start;
                // read the table at least up to there, after knowing it.
                let reader_start = loop {
                    if let Some(start) = *self.start.borrow_and_update() {
                        break start;
                    }
                    if self.start.changed().await.is_err() {
                        return Err(AppError::internal("the live reader stopped"));
                    }
                };
                let batch = self
                    .source
                    .after(self.tenant_id, self.cursor, &self.filter, BATCH)
                    .await?
                    .events;
                match batch.last() {
                    Some(last) => {
                        self.cursor = last.position();
                        self.buffer.extend(batch);
                    }
                    None => {
                        if reader_start > self.cursor {
                            // Events up to the reader's start matched nothing.
                            self.passed = Some(reader_start);
                            self.passed_count += 1;
                        }
                        self.cursor = self.cursor.max(reader_start);
                        self.catching_up = false;
                    }
                }
                continue;
            }
            if self.report_passed
                && let Some(at) = self.passed
                && (self.live.is_empty() || self.passed_count >= PASSED_REPORT_EVERY)
            {
                self.passed = None;
                self.passed_count = 0;
                return Ok(FeedItem::Passed(at));
            }
            match self.live.recv().await {
                Ok(event) => {
                    if event.position() > self.cursor {
                        self.cursor = event.position();
                        if self.filter.matches(&event) {
                            self.buffer.push_back(event.as_ref().clone());
                        } else {
                            self.passed = Some(event.position());
                            self.passed_count += 1;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Rejoin first, then read the table from the cursor:
                    // whatever the broadcast dropped is there.
                    self.live = self.live.resubscribe();
                    self.catching_up = true;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(AppError::internal("the live reader stopped"));
                }
            }
        }
    }
}

/// Follows one tenant's conversion table and broadcasts every event, in
/// cursor order, until nobody listens.
async fn read_tenant<S: FeedSource>(
    hub: Arc<FeedHub>,
    source: S,
    tenant_id: Uuid,
    events: broadcast::Sender<Arc<FeedEvent>>,
    start: watch::Sender<Option<FeedPosition>>,
) {
    let mut wake = source.wake_ups(tenant_id);
    let mut cursor = loop {
        wake.borrow_and_update();
        match source.latest(tenant_id).await {
            Ok(position) => break position,
            Err(e) => {
                tracing::warn!(error = %e, "live reader cannot start; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                if hub.retire_if_unheard(tenant_id, &events) {
                    return;
                }
            }
        }
    };
    let _ = start.send(Some(cursor));
    let mut held_pause = HeldPause::new();
    loop {
        wake.borrow_and_update();
        let mut pause = IDLE_TICK;
        match source
            .after(tenant_id, cursor, &FeedFilter::default(), BATCH)
            .await
        {
            Ok(batch) if !batch.events.is_empty() => {
                for event in batch.events {
                    cursor = event.position();
                    let _ = events.send(Arc::new(event));
                }
                held_pause = HeldPause::new();
                continue;
            }
            Ok(batch) if batch.held => {
                pause = held_pause.next();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "live reader cannot read; retrying"),
        }
        if hub.retire_if_unheard(tenant_id, &events) {
            return;
        }
        tokio::select! {
            _ = wake.changed() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;

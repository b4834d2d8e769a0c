//! The hub against an in-memory feed. The fake answers at once (it never
//! yields), so on the single-threaded test runtime a task runs until it
//! waits on the hub itself: what interleaves is chosen by each test, not by
//! the scheduler. One test runs on several threads to let chance pick too.
//! The reader's one-second pauses (idle tick, start retry) pass in real
//! time: pausing tokio's clock needs its `test-util` feature, which the
//! crate does not enable.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use chrono::DateTime;
use futures_util::{FutureExt, StreamExt};

use super::*;
use crate::domain::channel::Channel;
use crate::domain::conversion::{ConversionKind, ConversionSource, RecordType};
use crate::domain::session_id::{RANDOM_BYTES, SessionId};
use crate::events::EventBus;
use crate::service::read_model::{Conversation, Conversion};

/// Only a guard against a hang: every wait below ends on an event.
const GUARD: Duration = Duration::from_secs(10);

type Feed = Pin<Box<dyn Stream<Item = Result<FeedEvent, AppError>> + Send>>;

/// The conversion table of a few tenants, in memory.
#[derive(Clone, Default)]
struct FakeFeed(Arc<Table>);

#[derive(Default)]
struct Table {
    events: Mutex<HashMap<Uuid, Vec<FeedEvent>>>,
    bus: EventBus,
    latest_calls: Mutex<HashMap<Uuid, usize>>,
    failing: AtomicBool,
    failures: AtomicUsize,
    land_after_latest: AtomicUsize,
    /// Events numbered from here on are committed but held back, as if an
    /// older transaction were still open; `None` holds nothing.
    held_from: Mutex<Option<i64>>,
}

impl FakeFeed {
    /// Commits `n` plain events (a tour booked in a chat).
    fn commit(&self, tenant_id: Uuid, n: usize) -> Vec<FeedEvent> {
        (0..n)
            .map(|_| self.commit_one(tenant_id, ConversionKind::TourBooked, Some(Channel::Chat)))
            .collect()
    }

    /// Commits one event; `channel: None` is an unattributed conversion.
    fn commit_one(
        &self,
        tenant_id: Uuid,
        kind: ConversionKind,
        channel: Option<Channel>,
    ) -> FeedEvent {
        let event = {
            let mut tables = locked(&self.0.events);
            let table = tables.entry(tenant_id).or_default();
            let seq = table.last().map_or(0, |e| e.position().seq) + 1;
            let event = feed_event(seq, kind, channel);
            table.push(event.clone());
            event
        };
        self.0.bus.wake(tenant_id);
        event
    }

    fn events(&self, tenant_id: Uuid) -> Vec<FeedEvent> {
        locked(&self.0.events)
            .get(&tenant_id)
            .cloned()
            .unwrap_or_default()
    }

    /// How often a reader asked where the feed ends: once per reader start
    /// (and once per failed attempt).
    fn latest_calls(&self, tenant_id: Uuid) -> usize {
        locked(&self.0.latest_calls)
            .get(&tenant_id)
            .copied()
            .unwrap_or(0)
    }

    /// While set, every read fails as an unreachable database would.
    fn fail(&self, failing: bool) {
        self.0.failing.store(failing, Ordering::SeqCst);
    }

    fn failures(&self) -> usize {
        self.0.failures.load(Ordering::SeqCst)
    }

    /// Has `n` events commit just after the next `latest` answers: the
    /// moment between a reader learning where it starts and its first read.
    fn land_after_next_latest(&self, n: usize) {
        self.0.land_after_latest.store(n, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), AppError> {
        if self.0.failing.load(Ordering::SeqCst) {
            self.0.failures.fetch_add(1, Ordering::SeqCst);
            return Err(AppError::internal("the fake table is unreachable"));
        }
        Ok(())
    }
}

impl FakeFeed {
    fn held(&self, event: &FeedEvent) -> bool {
        locked(&self.0.held_from).is_some_and(|from| event.position().seq >= from)
    }

    /// Holds back every event numbered `from` on (`None`: releases them).
    fn hold_from(&self, from: Option<i64>) {
        *locked(&self.0.held_from) = from;
    }
}

impl FeedSource for FakeFeed {
    async fn latest(&self, tenant_id: Uuid) -> Result<FeedPosition, AppError> {
        *locked(&self.0.latest_calls).entry(tenant_id).or_default() += 1;
        self.check()?;
        let latest = self
            .events(tenant_id)
            .iter()
            .rfind(|e| !self.held(e))
            .map_or(FeedPosition::default(), FeedEvent::position);
        let landing = self.0.land_after_latest.swap(0, Ordering::SeqCst);
        self.commit(tenant_id, landing);
        Ok(latest)
    }

    async fn after(
        &self,
        tenant_id: Uuid,
        after: FeedPosition,
        filter: &FeedFilter,
        limit: u64,
    ) -> Result<Batch, AppError> {
        self.check()?;
        let events = self.events(tenant_id);
        let later = || events.iter().filter(|e| e.position() > after);
        Ok(Batch {
            events: later()
                .take_while(|e| !self.held(e))
                .filter(|e| filter.matches(e))
                .take(usize::try_from(limit).expect("a small limit"))
                .cloned()
                .collect(),
            held: later().any(|e| self.held(e)),
        })
    }

    fn wake_ups(&self, tenant_id: Uuid) -> watch::Receiver<u64> {
        self.0.bus.watch(tenant_id)
    }
}

fn feed_event(seq: i64, kind: ConversionKind, channel: Option<Channel>) -> FeedEvent {
    let conversation = channel.map(|channel| Conversation {
        id: Uuid::now_v7(),
        session_id: SessionId::from_bytes([7; RANDOM_BYTES]),
        channel,
        thread_key: None,
        contact: None,
        user_id: None,
        user_name: None,
        started_at: DateTime::default(),
        last_activity_at: DateTime::default(),
        closed_at: None,
        opening_message: None,
        message_count: 1,
        erased_at: None,
        labels: Vec::new(),
    });
    FeedEvent {
        change: crate::domain::adjustment::ConversionChange::Recorded,
        position: FeedPosition { xid: 0, seq },
        conversion: Conversion {
            id: Uuid::now_v7(),
            conversation_id: conversation.as_ref().map(|c| c.id),
            kind,
            record_type: RecordType::Visitor,
            record_id: format!("visitor-{seq}"),
            source: ConversionSource::Direct,
            attributed: conversation.is_some(),
            unattributed_reason: None,
            position: FeedPosition { xid: 0, seq },
            recorded_at: DateTime::default(),
            link_action: None,
            value: None,
            status: crate::domain::adjustment::ConversionStatus::Active,
            review: None,
        },
        conversation,
    }
}

fn setup() -> (FakeFeed, Arc<FeedHub>, Uuid) {
    (
        FakeFeed::default(),
        Arc::new(FeedHub::default()),
        Uuid::now_v7(),
    )
}

fn follow(hub: &Arc<FeedHub>, feed: &FakeFeed, tenant_id: Uuid, after: i64) -> Feed {
    follow_filtered(hub, feed, tenant_id, after, FeedFilter::default())
}

fn follow_filtered(
    hub: &Arc<FeedHub>,
    feed: &FakeFeed,
    tenant_id: Uuid,
    after: i64,
    filter: FeedFilter,
) -> Feed {
    let after = FeedPosition { xid: 0, seq: after };
    Box::pin(hub.subscribe(feed.clone(), tenant_id, after, filter))
}

/// The next `n` events, failing on an error or an end.
async fn take(feed: &mut Feed, n: usize) -> Vec<FeedEvent> {
    let mut events = Vec::with_capacity(n);
    while events.len() < n {
        let next = tokio::time::timeout(GUARD, feed.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events arrived", events.len()));
        match next {
            Some(Ok(event)) => events.push(event),
            Some(Err(e)) => panic!("the feed failed after {} events: {e}", events.len()),
            None => panic!("the feed ended after {} events", events.len()),
        }
    }
    events
}

async fn take_seqs(feed: &mut Feed, n: usize) -> Vec<i64> {
    take(feed, n)
        .await
        .iter()
        .map(|e| e.position().seq)
        .collect()
}

/// Polls once. With the fake answering at once, a subscriber that has
/// nothing to deliver is then waiting on the broadcast (or on its reader's
/// start); nothing can be pending behind it.
fn assert_nothing_yet(feed: &mut Feed) {
    let polled = tokio::task::unconstrained(feed.next()).now_or_never();
    assert!(
        polled.is_none(),
        "expected nothing to deliver, got {polled:?}"
    );
}

/// What a repeat or a skipped event would show up as: the next event after
/// those checked is the one committed next, and nothing else.
async fn assert_next_is_the_next_commit(feed: &mut Feed, source: &FakeFeed, tenant_id: Uuid) {
    assert_nothing_yet(feed);
    let committed = source.commit(tenant_id, 1);
    assert_eq!(take(feed, 1).await, committed);
}

async fn until(what: &str, done: impl Fn() -> bool) {
    tokio::time::timeout(GUARD, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

fn seqs(range: std::ops::RangeInclusive<i64>) -> Vec<i64> {
    range.collect()
}

#[tokio::test]
async fn a_subscriber_replays_what_it_missed_then_follows_live() {
    let (feed, hub, tenant) = setup();
    feed.commit(tenant, 5);

    let mut events = follow(&hub, &feed, tenant, 2);
    assert_eq!(take(&mut events, 3).await, feed.events(tenant)[2..5]);
    assert_nothing_yet(&mut events);
    feed.commit(tenant, 3);

    assert_eq!(take_seqs(&mut events, 3).await, seqs(6..=8));
    assert_next_is_the_next_commit(&mut events, &feed, tenant).await;
}

#[tokio::test]
async fn events_committed_while_the_reader_starts_arrive_once_each() {
    let (feed, hub, tenant) = setup();
    feed.commit(tenant, 10);

    let mut events = follow(&hub, &feed, tenant, 0);
    // Before its reader knows where the broadcast starts, the subscriber
    // cannot know how far to read the table.
    assert_nothing_yet(&mut events);
    feed.commit(tenant, 3);
    // Seen by the reader (broadcast) and by the subscriber's table read.
    feed.land_after_next_latest(4);

    assert_eq!(take_seqs(&mut events, 17).await, seqs(1..=17));
    assert_nothing_yet(&mut events);
    feed.commit(tenant, 3);
    assert_eq!(take_seqs(&mut events, 3).await, seqs(18..=20));
    assert_next_is_the_next_commit(&mut events, &feed, tenant).await;
    assert_eq!(feed.latest_calls(tenant), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_committed_during_catch_up_on_other_threads_arrive_once_each() {
    for _ in 0..50 {
        let (feed, hub, tenant) = setup();
        feed.commit(tenant, 10);
        let committer = tokio::spawn({
            let feed = feed.clone();
            async move {
                for _ in 0..200 {
                    feed.commit(tenant, 1);
                    tokio::task::yield_now().await;
                }
            }
        });

        let mut events = follow(&hub, &feed, tenant, 0);
        assert_eq!(take_seqs(&mut events, 210).await, seqs(1..=210));
        committer.await.expect("the committer finished");
        // On several threads the subscriber may still be reading the table;
        // a repeat would be the next event, whenever it comes.
        let next = feed.commit(tenant, 1);
        assert_eq!(take(&mut events, 1).await, next);
    }
}

#[tokio::test]
async fn a_filtered_subscriber_gets_only_matches_and_moves_past_the_rest() {
    use Channel::{Chat, Whatsapp};
    use ConversionKind::{BookingCreated, DayPassPurchased, TourBooked};
    let (feed, hub, tenant) = setup();
    let filter = FeedFilter {
        kinds: Some(vec![DayPassPurchased, TourBooked]),
        channels: Some(vec![Whatsapp]),
    };
    let mut wanted = vec![feed.commit_one(tenant, DayPassPurchased, Some(Whatsapp))];
    feed.commit_one(tenant, DayPassPurchased, Some(Chat));
    feed.commit_one(tenant, BookingCreated, Some(Whatsapp));
    // Unattributed: no conversation, so on no channel.
    feed.commit_one(tenant, TourBooked, None);
    // More misses than one table read returns.
    feed.commit(tenant, 2 * BATCH as usize);
    wanted.push(feed.commit_one(tenant, TourBooked, Some(Whatsapp)));

    let mut events = follow_filtered(&hub, &feed, tenant, 0, filter);
    assert_eq!(take(&mut events, 2).await, wanted);

    // Now from the broadcast, which the hub filters itself.
    assert_nothing_yet(&mut events);
    feed.commit(tenant, 2 * BATCH as usize);
    let live = [
        feed.commit_one(tenant, DayPassPurchased, Some(Whatsapp)),
        feed.commit_one(tenant, TourBooked, None),
        feed.commit_one(tenant, BookingCreated, Some(Whatsapp)),
        feed.commit_one(tenant, TourBooked, Some(Whatsapp)),
    ];
    assert_eq!(
        take(&mut events, 2).await,
        [live[0].clone(), live[3].clone()]
    );

    assert_nothing_yet(&mut events);
    feed.commit(tenant, 3);
    let next = feed.commit_one(tenant, DayPassPurchased, Some(Whatsapp));
    assert_eq!(take(&mut events, 1).await, [next]);
}

#[tokio::test]
async fn a_lagging_subscriber_goes_back_to_the_table_and_misses_nothing() {
    let (feed, hub, tenant) = setup();
    let mut slow = follow(&hub, &feed, tenant, 0);
    let mut slow_filtered = follow_filtered(
        &hub,
        &feed,
        tenant,
        0,
        FeedFilter {
            kinds: Some(vec![ConversionKind::DayPassPurchased]),
            channels: None,
        },
    );
    let mut reading = follow(&hub, &feed, tenant, 0);
    feed.commit_one(
        tenant,
        ConversionKind::DayPassPurchased,
        Some(Channel::Voice),
    );
    assert_eq!(take_seqs(&mut slow, 1).await, [1]);
    assert_eq!(take_seqs(&mut slow_filtered, 1).await, [1]);
    assert_nothing_yet(&mut slow);
    assert_nothing_yet(&mut slow_filtered);

    let burst = LIVE_BUFFER + BATCH as usize;
    feed.commit(tenant, burst);
    let last = feed.commit_one(
        tenant,
        ConversionKind::DayPassPurchased,
        Some(Channel::Voice),
    );
    // Once a reading subscriber has the last event, the reader has
    // broadcast the whole burst past the slow ones.
    let end = i64::try_from(burst).expect("small") + 2;
    assert_eq!(take_seqs(&mut reading, burst + 2).await, seqs(1..=end));

    assert_eq!(take_seqs(&mut slow, burst + 1).await, seqs(2..=end));
    assert_eq!(take(&mut slow_filtered, 1).await, [last]);
    assert_next_is_the_next_commit(&mut slow, &feed, tenant).await;
    let next = feed.commit_one(tenant, ConversionKind::DayPassPurchased, None);
    assert_eq!(take(&mut slow_filtered, 1).await, [next]);
}

#[tokio::test]
async fn subscribers_of_a_tenant_share_one_reader_and_see_only_their_tenant() {
    let (feed, hub, tenant) = setup();
    let other = Uuid::now_v7();
    let mut first = follow(&hub, &feed, tenant, 0);
    let mut second = follow(&hub, &feed, tenant, 0);
    let mut theirs = follow(&hub, &feed, other, 0);
    feed.commit(tenant, 1);
    feed.commit(other, 1);
    take(&mut first, 1).await;
    take(&mut second, 1).await;
    take(&mut theirs, 1).await;

    // Live now; the tenants' positions overlap, their events do not.
    feed.commit(tenant, 3);
    feed.commit(other, 5);
    feed.commit(tenant, 2);
    let ours = feed.events(tenant)[1..].to_vec();
    assert_eq!(take(&mut first, 5).await, ours);
    assert_eq!(take(&mut second, 5).await, ours);
    assert_eq!(take(&mut theirs, 5).await, feed.events(other)[1..]);

    assert_eq!(feed.latest_calls(tenant), 1, "one reader for the tenant");
    assert_eq!(feed.latest_calls(other), 1);
    assert_eq!(hub.readers(), 2);
    feed.commit(other, 1);
    assert_next_is_the_next_commit(&mut first, &feed, tenant).await;
    assert_eq!(take(&mut second, 1).await, feed.events(tenant)[6..]);
}

#[tokio::test]
async fn a_reader_nobody_listens_to_retires_and_a_later_subscriber_starts_afresh() {
    let (feed, hub, tenant) = setup();
    let mut gone = follow(&hub, &feed, tenant, 0);
    feed.commit(tenant, 1);
    take(&mut gone, 1).await;
    assert_eq!(hub.readers(), 1);

    drop(gone);
    // The reader notices on its next look at the table.
    feed.commit(tenant, 1);
    until("the reader retires", || hub.readers() == 0).await;

    let mut events = follow(&hub, &feed, tenant, 1);
    assert_eq!(take_seqs(&mut events, 1).await, [2]);
    assert_eq!(feed.latest_calls(tenant), 2, "a fresh reader started");
    assert_next_is_the_next_commit(&mut events, &feed, tenant).await;
    assert_eq!(hub.readers(), 1);
}

#[tokio::test]
async fn an_idle_reader_nobody_listens_to_retires_on_its_tick() {
    let (feed, hub, tenant) = setup();
    let mut gone = follow(&hub, &feed, tenant, 0);
    feed.commit(tenant, 1);
    take(&mut gone, 1).await;

    drop(gone);
    // No wake-up: only the idle tick (real time, the runtime cannot pause
    // here) finds the reader unheard.
    until("the reader retires", || hub.readers() == 0).await;
}

#[tokio::test]
async fn a_reader_that_cannot_start_keeps_trying_then_delivers() {
    let (feed, hub, tenant) = setup();
    feed.commit(tenant, 3);
    feed.fail(true);

    let mut events = follow(&hub, &feed, tenant, 1);
    until("the reader tried to start", || feed.failures() > 0).await;
    assert_nothing_yet(&mut events);
    feed.commit(tenant, 2);
    feed.fail(false);

    // After its retry pause (one second of real time).
    assert_eq!(take_seqs(&mut events, 4).await, seqs(2..=5));
    assert!(feed.latest_calls(tenant) >= 2);
    assert_next_is_the_next_commit(&mut events, &feed, tenant).await;
}

#[tokio::test]
async fn a_reader_that_never_started_retires_when_its_subscribers_leave() {
    let (feed, hub, tenant) = setup();
    feed.fail(true);
    let gone = follow(&hub, &feed, tenant, 0);
    until("the reader tried to start", || feed.failures() > 0).await;

    drop(gone);
    until("the reader gives up", || hub.readers() == 0).await;

    feed.fail(false);
    let mut events = follow(&hub, &feed, tenant, 0);
    feed.commit(tenant, 1);
    assert_eq!(take_seqs(&mut events, 1).await, [1]);
}

#[tokio::test]
async fn a_reader_that_cannot_read_picks_up_where_it_stopped() {
    let (feed, hub, tenant) = setup();
    let mut events = follow(&hub, &feed, tenant, 0);
    feed.commit(tenant, 1);
    take(&mut events, 1).await;
    assert_nothing_yet(&mut events);

    feed.fail(true);
    feed.commit(tenant, 2);
    until("the reader tried to read", || feed.failures() > 0).await;
    feed.fail(false);
    feed.commit(tenant, 1);

    assert_eq!(take_seqs(&mut events, 3).await, seqs(2..=4));
    assert_next_is_the_next_commit(&mut events, &feed, tenant).await;
}

#[tokio::test]
async fn events_held_back_behind_an_open_transaction_arrive_once_it_ends_without_a_wake_up() {
    let (feed, hub, tenant) = setup();
    feed.commit(tenant, 2);
    let mut events = follow(&hub, &feed, tenant, 2);
    until("the reader started", || feed.latest_calls(tenant) == 1).await;
    // Event 3's transaction is still open; 4 and 5 commit after it took
    // its place.
    feed.hold_from(Some(3));
    feed.commit(tenant, 3);
    tokio::time::sleep(HELD_TICK * 4).await;
    assert_nothing_yet(&mut events);
    // It ends without a notification (no wake-up): the reader finds out
    // on its own, well before its idle tick.
    feed.hold_from(None);
    let released = tokio::time::timeout(IDLE_TICK / 2, take_seqs(&mut events, 3))
        .await
        .expect("held events arrive without waiting for the idle tick");
    assert_eq!(released, seqs(3..=5));
    assert_next_is_the_next_commit(&mut events, &feed, tenant).await;
}

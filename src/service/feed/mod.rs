//! The conversion event feed: every committed conversion of a tenant, in
//! cursor order, read from the table after a cursor; paged for those who
//! poll, followed live (through this instance's [`hub`]) for subscribers.

mod event;
pub mod hub;
mod table;

use entity::api_key;
use futures_util::Stream;
use sea_orm::{ConnectionTrait, DatabaseBackend, EntityTrait, Statement};
use uuid::Uuid;

pub use event::{FeedEvent, FeedFilter, FeedItem};

use super::{Caller, Page, Services};
use crate::domain::cursor::{EventCursor, FeedPosition};
use crate::domain::role::Operation;
use crate::error::AppError;
use hub::FeedSource;
use table::Newest;

/// A page of the feed for a client that polls.
#[derive(Debug)]
pub struct FeedPage {
    pub events: Page<FeedEvent>,
    /// Where the page started: after the given cursor, or at the start of
    /// the feed.
    pub start: FeedPosition,
    /// For a filtered page: a position every event up to which had
    /// committed before the page was read, so a page that is not full has
    /// looked at all of them, matching or not.
    pub looked_to: Option<FeedPosition>,
}

impl FeedPage {
    /// Where the next page starts: after the page's last event, or, for a
    /// filtered page that is not full, after every event it looked at, so
    /// a poller filtering for rare events does not read the same window
    /// again.
    pub fn end(&self) -> FeedPosition {
        let last = self
            .events
            .items
            .last()
            .map_or(self.start, FeedEvent::position);
        match self.looked_to {
            Some(looked) if !self.events.has_next_page => last.max(looked),
            _ => last,
        }
    }
}

impl Services {
    /// Refuses callers that may not follow the feed.
    fn may_follow_feed(&self, caller: &Caller) -> Result<(), AppError> {
        caller.require(
            Operation::FollowConversionFeed,
            "follow the conversion feed",
        )
    }

    /// The cursor of the newest committed event, to subscribe after.
    pub async fn feed_cursor(&self, caller: &Caller) -> Result<EventCursor, AppError> {
        self.may_follow_feed(caller)?;
        Ok(EventCursor {
            tenant_id: caller.tenant_id,
            position: self.settled_latest(caller.tenant_id).await?,
        })
    }

    /// The newest committed event's position, once the horizon has passed
    /// it. Right after a commit the horizon may still be held by an older
    /// transaction (of any database on the cluster); answering with the
    /// position below it would hand that event out again to whoever
    /// subscribes after the cursor, so the answer waits for up to
    /// [`SETTLE_WAIT`], then falls back to that position: a repeat, never
    /// a loss.
    pub(crate) async fn settled_latest(&self, tenant_id: Uuid) -> Result<FeedPosition, AppError> {
        if self.db.get_database_backend() != DatabaseBackend::Postgres {
            return self.latest(tenant_id).await;
        }
        let newest = self.newest(tenant_id, Newest::WithHorizon).await?;
        let Some((FeedPosition { xid, seq }, mut horizon)) = newest else {
            return Ok(FeedPosition::default());
        };
        let mut settling = Settling::new();
        while xid >= horizon {
            if !settling.wait().await {
                return self.latest(tenant_id).await;
            }
            horizon = self.horizon().await?;
        }
        Ok(FeedPosition { xid, seq })
    }

    /// PostgreSQL's commit horizon now, in feed terms.
    async fn horizon(&self) -> Result<i64, AppError> {
        let statement = Statement::from_string(
            DatabaseBackend::Postgres,
            format!("SELECT {HORIZON} AS horizon"),
        );
        let row = self
            .db
            .query_one_raw(statement)
            .await?
            .ok_or_else(|| AppError::internal("the horizon query returned no row"))?;
        Ok(row.try_get("", "horizon")?)
    }

    /// Up to `first` events after `after` (from the first without it).
    pub async fn feed_page(
        &self,
        caller: &Caller,
        after: Option<EventCursor>,
        first: u64,
        filter: &FeedFilter,
    ) -> Result<FeedPage, AppError> {
        self.may_follow_feed(caller)?;
        let start = self.start_after(caller, after).await?.unwrap_or_default();
        // Read first: what the page then reads includes every event up to
        // it (`latest` stops below PostgreSQL's horizon).
        let looked_to = if filter.narrows() {
            Some(self.latest(caller.tenant_id).await?)
        } else {
            None
        };
        // A short page with events held back waits for them (as a cursor
        // does), so a client that polls right after its own recording
        // sees it.
        let mut settling = Settling::new();
        let rows = loop {
            let batch = self
                .after(caller.tenant_id, start, filter, first + 1)
                .await?;
            if !batch.held || batch.events.len() as u64 > first || !settling.wait().await {
                break batch.events;
            }
        };
        Ok(FeedPage {
            events: Page::from_overfetch(rows, first),
            start,
            looked_to,
        })
    }

    /// The caller's events after `after` (without it, those committed from
    /// now on), replayed from the table and then live, without end.
    pub async fn follow_feed(
        &self,
        caller: &Caller,
        after: Option<EventCursor>,
        filter: FeedFilter,
    ) -> Result<impl Stream<Item = Result<FeedEvent, AppError>> + Send + use<>, AppError> {
        let start = self.follow_from(caller, after).await?;
        Ok(self
            .hub
            .subscribe(self.clone(), caller.tenant_id, start, filter))
    }

    /// Like [`Self::follow_feed`], with word of the position past events
    /// the filter left out ([`FeedItem::Passed`]).
    pub async fn follow_feed_items(
        &self,
        caller: &Caller,
        after: Option<EventCursor>,
        filter: FeedFilter,
    ) -> Result<impl Stream<Item = Result<FeedItem, AppError>> + Send + use<>, AppError> {
        let start = self.follow_from(caller, after).await?;
        Ok(self
            .hub
            .subscribe_items(self.clone(), caller.tenant_id, start, filter, true))
    }

    /// Where a follower starts: after `after`, or at the settled end of
    /// the feed; refused for a caller who may not follow it.
    async fn follow_from(
        &self,
        caller: &Caller,
        after: Option<EventCursor>,
    ) -> Result<FeedPosition, AppError> {
        self.may_follow_feed(caller)?;
        Ok(match self.start_after(caller, after).await? {
            Some(position) => position,
            None => self.settled_latest(caller.tenant_id).await?,
        })
    }

    /// The position an `after` cursor names. A cursor beyond the newest
    /// event was not handed out by this server: refused, rather than
    /// waited on.
    async fn start_after(
        &self,
        caller: &Caller,
        after: Option<EventCursor>,
    ) -> Result<Option<FeedPosition>, AppError> {
        let Some(after) = after else {
            return Ok(None);
        };
        if after.position > self.latest(caller.tenant_id).await? {
            return Err(AppError::BadInput(
                "after is not an event cursor of this tenant; pass the cursor of the last event you received"
                    .into(),
            ));
        }
        Ok(Some(after.position))
    }

    /// Whether an API key is still valid (checked by open sockets, so a
    /// revoked key loses its subscriptions on every instance).
    pub async fn key_is_active(&self, key_id: Uuid) -> Result<bool, AppError> {
        let key = api_key::Entity::find_by_id(key_id).one(&self.db).await?;
        Ok(key.is_some_and(|k| k.revoked_at.is_none()))
    }
}

/// The offset added to PostgreSQL's transaction ids (the `feed_clock`
/// table: raised at startup after a restore into another cluster). Written
/// and read positions must add the same one.
macro_rules! xid_offset {
    () => {
        "(SELECT xid_offset FROM feed_clock WHERE id = 1)"
    };
}

/// PostgreSQL: a new row's transaction id as the feed orders it, the
/// writing transaction's plus the offset.
pub(crate) const FEED_XID: &str =
    concat!("(pg_current_xact_id()::text::bigint + ", xid_offset!(), ")");

/// PostgreSQL: the feed position below which every transaction has ended
/// (the oldest transaction id still running, in the terms of [`FEED_XID`]).
/// A row below it that is not visible now never will be; one at or above
/// it may still have an older one commit before it.
const HORIZON: &str = concat!(
    "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint + ",
    xid_offset!(),
    ")"
);

/// How long a request waits for older transactions to end before it
/// answers without the events they hold back.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A request's wait for held-back events: the live readers' pauses, up to
/// [`SETTLE_WAIT`] in all.
struct Settling {
    deadline: tokio::time::Instant,
    pause: hub::HeldPause,
}

impl Settling {
    fn new() -> Self {
        Self {
            deadline: tokio::time::Instant::now() + SETTLE_WAIT,
            pause: hub::HeldPause::new(),
        }
    }

    /// Waits the next pause; false, without waiting, once it would end
    /// past the deadline.
    async fn wait(&mut self) -> bool {
        let pause = self.pause.next();
        if tokio::time::Instant::now() + pause > self.deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        true
    }
}

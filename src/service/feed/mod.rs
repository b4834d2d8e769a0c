//! The conversion event feed: every committed conversion of a tenant, in
//! cursor order, read from the table after a cursor; paged for those who
//! poll, followed live (through this instance's [`hub`]) for subscribers.

mod event;
pub mod hub;

use entity::{api_key, conversation, conversion};
use futures_util::Stream;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QueryResult, QuerySelect, Statement,
};
use tokio::sync::watch;
use uuid::Uuid;

pub use event::{FeedEvent, FeedFilter};

use super::read_model::{Conversion, read_all};
use super::{Caller, Page, Services};
use crate::domain::cursor::{EventCursor, FeedPosition};
use crate::domain::role::Operation;
use crate::error::AppError;
use hub::{Batch, FeedSource};

/// A page of the feed for a client that polls.
#[derive(Debug)]
pub struct FeedPage {
    pub events: Page<FeedEvent>,
    /// Where the page started: after the given cursor, or at the start of
    /// the feed.
    pub start: FeedPosition,
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
    async fn settled_latest(&self, tenant_id: Uuid) -> Result<FeedPosition, AppError> {
        if self.db.get_database_backend() != DatabaseBackend::Postgres {
            return self.latest(tenant_id).await;
        }
        let newest: Option<(i64, i64, i64)> = conversion::Entity::find()
            .select_only()
            .column(conversion::Column::FeedXid)
            .column(conversion::Column::FeedSeq)
            .column_as(Expr::cust(HORIZON), "horizon")
            .filter(conversion::Column::TenantId.eq(tenant_id))
            .order_by_desc(conversion::Column::FeedXid)
            .order_by_desc(conversion::Column::FeedSeq)
            .into_tuple()
            .one(&self.db)
            .await?;
        let Some((xid, seq, mut horizon)) = newest else {
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
        self.may_follow_feed(caller)?;
        let start = match self.start_after(caller, after).await? {
            Some(position) => position,
            None => self.settled_latest(caller.tenant_id).await?,
        };
        Ok(self
            .hub
            .subscribe(self.clone(), caller.tenant_id, start, filter))
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

/// The conversion table, read by this instance's live readers and by the
/// pages above. On PostgreSQL a row is handed out only below the commit
/// horizon: every transaction whose id is smaller than the row's has
/// ended, so no row can still appear before it (see [`HORIZON`]).
impl FeedSource for Services {
    /// The newest event's position below the horizon (the start before the
    /// first).
    async fn latest(&self, tenant_id: Uuid) -> Result<FeedPosition, AppError> {
        let mut query = conversion::Entity::find()
            .select_only()
            .column(conversion::Column::FeedXid)
            .column(conversion::Column::FeedSeq)
            .filter(conversion::Column::TenantId.eq(tenant_id));
        if self.db.get_database_backend() == DatabaseBackend::Postgres {
            query = query.filter(Expr::col(conversion::Column::FeedXid).lt(Expr::cust(HORIZON)));
        }
        let newest: Option<(i64, i64)> = query
            .order_by_desc(conversion::Column::FeedXid)
            .order_by_desc(conversion::Column::FeedSeq)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(
            newest.map_or_else(FeedPosition::default, |(xid, seq)| FeedPosition {
                xid,
                seq,
            }),
        )
    }

    /// Up to `limit` events after `after`, oldest first: two statements.
    async fn after(
        &self,
        tenant_id: Uuid,
        after: FeedPosition,
        filter: &FeedFilter,
        limit: u64,
    ) -> Result<Batch, AppError> {
        let position = || {
            Expr::tuple([
                Expr::col(conversion::Column::FeedXid),
                Expr::col(conversion::Column::FeedSeq),
            ])
        };
        let mut query = conversion::Entity::find()
            .filter(conversion::Column::TenantId.eq(tenant_id))
            .filter(position().gt(Expr::tuple([Expr::val(after.xid), Expr::val(after.seq)])));
        if let Some(kinds) = &filter.kinds {
            query = query.filter(conversion::Column::Kind.is_in(kinds.iter().map(|k| k.as_str())));
        }
        if let Some(channels) = &filter.channels {
            let on_channels = Query::select()
                .column(conversation::Column::Id)
                .from(conversation::Entity)
                .and_where(Expr::col(conversation::Column::TenantId).eq(tenant_id))
                .and_where(
                    Expr::col(conversation::Column::Channel)
                        .is_in(channels.iter().map(|c| c.as_str())),
                )
                .to_owned();
            query = query.filter(conversion::Column::ConversationId.in_subquery(on_channels));
        }
        // Rows past the horizon are read too (the same snapshot decides
        // both), only to learn that something is held back.
        let horizon = match self.db.get_database_backend() {
            DatabaseBackend::Postgres => HORIZON,
            _ => "9223372036854775807",
        };
        let rows = query
            .column_as(Expr::cust(horizon), "horizon")
            .order_by_asc(conversion::Column::FeedXid)
            .order_by_asc(conversion::Column::FeedSeq)
            .limit(limit)
            .into_model::<WithHorizon>()
            .all(&self.db)
            .await?;
        let held = rows.iter().any(|r| r.row.feed_xid >= r.horizon);
        let below = rows
            .into_iter()
            .take_while(|r| r.row.feed_xid < r.horizon)
            .map(|r| r.row);
        let rows: Vec<Conversion> = read_all(below)?;
        let ids: Vec<Uuid> = rows.iter().filter_map(|c| c.conversation_id).collect();
        let conversations = if ids.is_empty() {
            Default::default()
        } else {
            self.conversations_by_ids(tenant_id, &ids).await?
        };
        let events = rows
            .into_iter()
            .map(|conversion| FeedEvent {
                conversation: conversion
                    .conversation_id
                    .and_then(|id| conversations.get(&id).cloned()),
                conversion,
            })
            .collect();
        Ok(Batch { events, held })
    }

    fn wake_ups(&self, tenant_id: Uuid) -> watch::Receiver<u64> {
        self.events.watch(tenant_id)
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

/// A conversion row with the horizon the same statement saw.
struct WithHorizon {
    row: conversion::Model,
    horizon: i64,
}

impl FromQueryResult for WithHorizon {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Self {
            row: conversion::Model::from_query_result(res, pre)?,
            horizon: res.try_get(pre, "horizon")?,
        })
    }
}

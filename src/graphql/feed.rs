//! The conversion event feed for integrators: `conversionRecorded` over a
//! WebSocket, and `conversionsSince` for those who poll. Both read the
//! conversion table after a cursor, so a slow or reconnecting client
//! misses nothing and sees nothing twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::futures_util::{Stream, StreamExt};
use async_graphql::{Context, Object, Result, SimpleObject, Subscription, Union};
use uuid::Uuid;

use super::context::{RequestContext, request};
use super::enums::{Channel, ConversionChange, ConversionKind};
use super::objects::Conversation;
use super::objects::Conversion;
use super::pagination;
use crate::domain::cursor::EventCursor;
use crate::error::AppError;
use crate::service::feed::{self as service_feed, FeedEvent, FeedFilter};

pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 20;
/// A committed change of a conversion, as the feed delivers it.
#[derive(SimpleObject, Clone)]
pub struct ConversionEvent {
    /// Pass it as `after` to resume right after this event.
    pub cursor: String,
    /// What happened: `RECORDED` for a new conversion, `RESTATED` for a
    /// later change of one already delivered (the same `conversion.id`;
    /// upsert by it).
    pub change: ConversionChange,
    /// The conversion (attributed or not: `conversion.attributed` tells),
    /// with its `value` as this change left it.
    pub conversion: Conversion,
    /// The conversation it belongs to; null for an unattributed conversion
    /// without one.
    pub conversation: Option<Conversation>,
}

impl ConversionEvent {
    fn of(event: FeedEvent, tenant_id: Uuid) -> Self {
        ConversionEvent {
            cursor: EventCursor {
                tenant_id,
                position: event.position(),
            }
            .encode(),
            change: event.change.into(),
            conversion: Conversion(event.conversion),
            conversation: event.conversation.map(Conversation),
        }
    }
}

/// Word that the feed moved past events a filtered `conversionFeed` left
/// out: resume from `cursor` and they are not read again.
#[derive(SimpleObject, Clone)]
pub struct FeedProgress {
    /// The newest event passed without a match; pass it as `after` to
    /// resume after it.
    pub cursor: String,
}

/// What `conversionFeed` delivers: an event, or progress past events the
/// filter left out.
#[derive(Union, Clone)]
// Built once per item and handed straight to the engine: no copies to save.
#[allow(clippy::large_enum_variant)]
pub enum FeedItem {
    /// A committed change of a conversion that matches the filter.
    Event(ConversionEvent),
    /// The position past events that did not match.
    Progress(FeedProgress),
}

/// An edge of `conversionsSince`.
#[derive(SimpleObject)]
pub struct ConversionEventEdge {
    /// The event's cursor.
    pub cursor: String,
    /// The event.
    pub node: ConversionEvent,
}

/// Where a `conversionsSince` page ends.
#[derive(SimpleObject)]
pub struct EventPageInfo {
    /// True when more events follow right away.
    pub has_next_page: bool,
    /// The cursor to pass as `after` next time: the last event's, the one
    /// you passed when there was nothing new, or the start of the feed. A
    /// filtered page (`kinds`, `channels`) that is not full ends on the
    /// newest event it looked at, matching or not, so the next poll does
    /// not read the same events again.
    pub end_cursor: String,
}

/// A page of the conversion event feed.
#[derive(SimpleObject)]
pub struct ConversionEventConnection {
    /// The events with their cursors.
    pub edges: Vec<ConversionEventEdge>,
    /// The events, oldest first.
    pub nodes: Vec<ConversionEvent>,
    /// Where to continue.
    pub page_info: EventPageInfo,
}

/// Counts a WebSocket connection's open subscriptions.
#[derive(Debug, Default, Clone)]
pub struct SubscriptionBudget(Arc<AtomicUsize>);

/// One open subscription; frees its place when the subscription ends.
#[derive(Debug)]
pub struct SubscriptionSlot(Arc<AtomicUsize>);

impl SubscriptionBudget {
    fn take(&self) -> Result<SubscriptionSlot, AppError> {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |open| {
                (open < MAX_SUBSCRIPTIONS_PER_CONNECTION).then_some(open + 1)
            })
            .map(|_| SubscriptionSlot(self.0.clone()))
            .map_err(|_| {
                AppError::RateLimited(format!(
                    "at most {MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions per connection; complete one first"
                ))
            })
    }
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn feed_filter(kinds: Option<Vec<ConversionKind>>, channels: Option<Vec<Channel>>) -> FeedFilter {
    FeedFilter {
        kinds: kinds.map(|ks| ks.into_iter().map(Into::into).collect()),
        channels: channels.map(|cs| cs.into_iter().map(Into::into).collect()),
    }
}

/// An `after` argument read as an event cursor of the caller's tenant.
fn event_cursor(r: &RequestContext, after: Option<&str>) -> Result<Option<EventCursor>, AppError> {
    after
        .map(|after| EventCursor::decode_for(after, r.caller.tenant_id))
        .transpose()
        .map_err(AppError::from)
}

#[derive(Default)]
pub struct FeedQuery;

#[Object]
impl FeedQuery {
    /// The cursor of the newest committed conversion event (INTEGRATOR,
    /// ADMIN). Read it before loading a list or a report, then subscribe
    /// with `after:` it: every event committed since arrives, none is
    /// missed in between. On PostgreSQL it may wait (2 s at most) for
    /// transactions older than the newest event to end.
    async fn feed_cursor(&self, ctx: &Context<'_>) -> Result<String> {
        let r = request(ctx)?;
        Ok(r.services.feed_cursor(&r.caller).await?.encode())
    }

    /// The conversion event feed, for integrators that poll (INTEGRATOR,
    /// ADMIN): the events after `after` (from the first without it), in the
    /// order the subscription delivers them. A short page waits (2 s at
    /// most) for committed events that older transactions still hold back.
    #[graphql(
        complexity = "super::limits::connection_complexity(first, super::pagination::FEED_EVENTS.default, child_complexity)"
    )]
    async fn conversions_since(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Cursor of the last event already seen.")] after: Option<String>,
        #[graphql(desc = "Page size, 1 to 500; default 100.")] first: Option<i32>,
        kinds: Option<Vec<ConversionKind>>,
        channels: Option<Vec<Channel>>,
    ) -> Result<ConversionEventConnection> {
        let r = request(ctx)?;
        let first = pagination::FEED_EVENTS.first(first)?;
        let cursor = event_cursor(r, after.as_deref())?;
        let filter = feed_filter(kinds, channels);
        let page = r
            .services
            .feed_page(&r.caller, cursor, first, &filter)
            .await?;
        let tenant_id = r.caller.tenant_id;
        let end = page.end();
        let nodes: Vec<ConversionEvent> = page
            .events
            .items
            .into_iter()
            .map(|e| ConversionEvent::of(e, tenant_id))
            .collect();
        let end_cursor = match after {
            Some(after) if nodes.is_empty() && end == page.start => after,
            _ => EventCursor {
                tenant_id,
                position: end,
            }
            .encode(),
        };
        Ok(ConversionEventConnection {
            edges: nodes
                .iter()
                .map(|n| ConversionEventEdge {
                    cursor: n.cursor.clone(),
                    node: n.clone(),
                })
                .collect(),
            nodes,
            page_info: EventPageInfo {
                has_next_page: page.events.has_next_page,
                end_cursor,
            },
        })
    }
}

/// What every subscription starts from: the connection's context and a
/// slot of its budget (held while the subscription lives).
pub(super) fn subscriber(ctx: &Context<'_>) -> Result<(Arc<RequestContext>, SubscriptionSlot)> {
    let r = ctx
        .data::<Arc<RequestContext>>()
        .map_err(|_| AppError::internal("subscription without a connection context"))?
        .clone();
    let slot = ctx
        .data::<SubscriptionBudget>()
        .map_err(|_| AppError::internal("subscription without a budget"))?
        .take()?;
    Ok((r, slot))
}

/// A feed subscription's start: [`subscriber`] and where to start.
fn subscribing(
    ctx: &Context<'_>,
    after: Option<&str>,
) -> Result<(Arc<RequestContext>, SubscriptionSlot, Option<EventCursor>)> {
    let (r, slot) = subscriber(ctx)?;
    let cursor = event_cursor(&r, after)?;
    Ok((r, slot, cursor))
}

#[derive(Default)]
pub struct FeedSubscription;

#[Subscription]
impl FeedSubscription {
    /// Conversions as they are committed (INTEGRATOR, ADMIN), of this key's
    /// tenant only, and every later change of them (`change`: a
    /// restatement arrives as an event of its own, with the same
    /// `conversion.id`). With `after` (the last cursor you saw) every event since
    /// is replayed first, in order, then live ones follow, with no gap and no
    /// duplicate. Without it, only events committed from now on.
    async fn conversion_recorded(
        &self,
        ctx: &Context<'_>,
        kinds: Option<Vec<ConversionKind>>,
        channels: Option<Vec<Channel>>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<ConversionEvent>> + use<>> {
        let (r, slot, cursor) = subscribing(ctx, after.as_deref())?;
        let tenant_id = r.caller.tenant_id;
        let events = r
            .services
            .follow_feed(&r.caller, cursor, feed_filter(kinds, channels))
            .await?;
        Ok(events.map(move |event| {
            // Holding the slot for as long as the subscription lives.
            let _open = &slot;
            // Each event shows the data as it is now, not as an earlier
            // event on this socket cached it.
            r.forget();
            event
                .map(|e| ConversionEvent::of(e, tenant_id))
                .map_err(Into::into)
        }))
    }

    /// `conversionRecorded` for filtered consumers that resume: the same
    /// events (`... on ConversionEvent`), and, when events the filter left
    /// out have gone by, a `FeedProgress` with the cursor past them (once
    /// the subscription has caught up with them, and at least every 100 of
    /// them). Keep the cursor of whichever item came last and resume with
    /// it: a reconnect does not read the left-out events again.
    async fn conversion_feed(
        &self,
        ctx: &Context<'_>,
        kinds: Option<Vec<ConversionKind>>,
        channels: Option<Vec<Channel>>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<FeedItem>> + use<>> {
        let (r, slot, cursor) = subscribing(ctx, after.as_deref())?;
        let tenant_id = r.caller.tenant_id;
        let items = r
            .services
            .follow_feed_items(&r.caller, cursor, feed_filter(kinds, channels))
            .await?;
        Ok(items.map(move |item| {
            let _open = &slot;
            r.forget();
            let item = item.map_err(async_graphql::Error::from)?;
            Ok(match item {
                service_feed::FeedItem::Event(e) => {
                    FeedItem::Event(ConversionEvent::of(*e, tenant_id))
                }
                service_feed::FeedItem::Passed(position) => FeedItem::Progress(FeedProgress {
                    cursor: EventCursor {
                        tenant_id,
                        position,
                    }
                    .encode(),
                }),
            })
        }))
    }
}

//! `conversationActivity`: the AI Conversations list, live. Conversations
//! as they start, get messages and close, on every instance.

use async_graphql::futures_util::{Stream, StreamExt, stream};
use async_graphql::{Context, Enum, Result, SimpleObject, Subscription};
use tokio::sync::broadcast::error::RecvError;

use super::feed::subscriber;
use super::objects::Conversation;
use crate::domain;
use crate::domain::role::Operation;

/// What happened to a conversation.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::activity::ActivityChange")]
pub enum ActivityChange {
    /// A new conversation started.
    Started,
    /// A visitor or AI message was added (its opening, count and last
    /// activity may have changed).
    Message,
    /// The session was closed.
    Closed,
}

/// One change of one conversation, with the conversation as it is now.
#[derive(SimpleObject)]
pub struct ConversationActivity {
    /// What happened.
    pub change: ActivityChange,
    /// The conversation, read when the change is delivered.
    pub conversation: Conversation,
}

#[derive(Default)]
pub struct ActivitySubscription;

#[Subscription]
impl ActivitySubscription {
    /// Conversations of this key's tenant as they start, get a message and
    /// close (ADMIN), from every instance, for a list kept live. Not a log:
    /// nothing is replayed, and a subscriber that falls more than 1,024
    /// changes behind skips the oldest — after a reconnection, read the
    /// list again. The conversion feed (`conversionFeed`) is where outcomes
    /// are delivered exactly.
    async fn conversation_activity(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Result<ConversationActivity>> + use<>> {
        let (r, slot) = subscriber(ctx)?;
        r.caller
            .require(Operation::WatchConversations, "watch conversations live")?;
        let tenant_id = r.caller.tenant_id;
        let activity = r.services.activity.subscribe(tenant_id);
        let changes = stream::unfold(activity, |mut activity| async move {
            loop {
                match activity.recv().await {
                    Ok(news) => return Some((news, activity)),
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                }
            }
        });
        Ok(changes.filter_map(move |news| {
            let r = r.clone();
            // Holding the slot for as long as the subscription lives.
            let _open = &slot;
            async move {
                let found = r
                    .services
                    .conversation_in_tenant(tenant_id, news.conversation_id)
                    .await;
                match found {
                    // Erased or gone since: nothing to show.
                    Ok(None) => None,
                    Ok(Some(conversation)) => Some(Ok(ConversationActivity {
                        change: news.change.into(),
                        conversation: Conversation(conversation),
                    })),
                    Err(e) => Some(Err(e.into())),
                }
            }
        }))
    }
}

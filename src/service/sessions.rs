//! Starting, finding and closing sessions (conversations).

use chrono::{DateTime, Utc};
use entity::conversation;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Order};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::conversions::write::retry_raced;
use super::labels::relabel;
use super::read_model::Conversation;
use super::request_keys::{Answer, Keyed, KeyedOperation};
use super::rollups::Counted;
use super::tenants::settings_of;
use super::{Caller, Services, lock_key};
use crate::domain::activity::ActivityChange;
use crate::domain::channel::{Channel, ChannelPolicy, SessionRule};
use crate::domain::clock::{from_micros, to_micros};
use crate::domain::label::{Label, Labels};
use crate::domain::role::Operation;
use crate::domain::rollup::Metric;
use crate::domain::session_id::SessionId;
use crate::domain::settings::TenantSettings;
use crate::domain::{contact, text, thread_key};
use crate::error::{AppError, stored};
use crate::events::activity::Activity;

/// What the agent runtime knows when a conversation begins.
#[derive(Debug, Clone)]
pub struct StartSession {
    pub channel: Channel,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub contact: Option<String>,
    pub thread_key: Option<String>,
    /// Makes a retry return the first answer.
    pub idempotency_key: Option<String>,
    /// Labels to split its outcomes by; a continued conversation takes
    /// them as `setSessionLabels` would.
    pub labels: Vec<Label>,
}

/// A `startSession` checked: what it is stored as.
struct Checked {
    channel: Channel,
    contact: Option<String>,
    thread_key: Option<String>,
    user_id: Option<String>,
    user_name: Option<String>,
    labels: Labels,
}

#[derive(Debug, Clone)]
pub struct Started {
    pub conversation: Conversation,
    /// True when an open EMAIL / WHATSAPP conversation was continued.
    pub resumed: bool,
}

impl Services {
    #[tracing::instrument(skip(self, caller, input), fields(tenant = %caller.tenant_id, channel = %input.channel))]
    pub async fn start_session(
        &self,
        caller: &Caller,
        input: StartSession,
    ) -> Result<Started, AppError> {
        caller.require(Operation::ManageSessions, "start sessions")?;
        let channel = input.channel;
        let contact = contact::parse(channel, input.contact.as_deref())?;
        let thread_key = match (channel, input.thread_key.as_deref()) {
            (Channel::Email, Some(key)) => Some(thread_key::normalize(key)?),
            (Channel::Email, None) => {
                return Err(AppError::BadInput(
                    "EMAIL sessions need threadKey: the thread's id or normalised subject".into(),
                ));
            }
            (_, Some(_)) => {
                return Err(AppError::BadInput(format!(
                    "threadKey is only for EMAIL sessions, not {channel}"
                )));
            }
            (_, None) => None,
        };
        let user_id = text::optional("userId", input.user_id.as_deref(), 200)?;
        let user_name = text::optional("userName", input.user_name.as_deref(), 200)?;
        let labels = Labels::given(input.labels).map_err(|e| AppError::BadInput(e.to_string()))?;
        let stored_labels = labels.to_stored();
        let mut fields = vec![
            Some(channel.as_str()),
            input.contact.as_deref(),
            input.thread_key.as_deref(),
            input.user_id.as_deref(),
            input.user_name.as_deref(),
        ];
        // Only when given, so keys bound before labels existed still match.
        if !labels.is_empty() {
            fields.push(Some(stored_labels.as_str()));
        }
        let keyed = Keyed::of(
            KeyedOperation::StartSession,
            input.idempotency_key.as_deref(),
            &fields,
        )?;
        let checked = Checked {
            channel,
            contact,
            thread_key,
            user_id,
            user_name,
            labels,
        };
        let started = retry_raced(|| self.start_once(caller, &checked, keyed.as_ref())).await?;
        // A continued conversation is not new to the list.
        if !started.resumed {
            self.conversation_changed(caller, started.conversation.id, ActivityChange::Started);
        }
        Ok(started)
    }

    /// Tells live lists (here and on other instances) that a conversation
    /// changed, once the change is committed.
    pub(crate) fn conversation_changed(
        &self,
        caller: &Caller,
        conversation_id: Uuid,
        change: ActivityChange,
    ) {
        self.activity.happened(Activity {
            tenant_id: caller.tenant_id,
            conversation_id,
            change,
        });
    }

    /// One attempt of [`Self::start_session`], in one transaction.
    async fn start_once(
        &self,
        caller: &Caller,
        checked: &Checked,
        keyed: Option<&Keyed>,
    ) -> Result<Started, AppError> {
        let Checked {
            channel,
            contact,
            thread_key,
            user_id,
            user_name,
            labels,
        } = checked;
        let (channel, contact, thread_key) = (*channel, contact.clone(), thread_key.clone());
        let (user_id, user_name) = (user_id.clone(), user_name.clone());
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        if let Some(keyed) = keyed
            && let Some(first) = keyed.bound(&*txn, caller.tenant_id).await?
        {
            let conversation = conversation::Entity::find_by_id(first.conversation_id)
                .one(&*txn)
                .await?
                .ok_or(AppError::NotFound("session"))?;
            return Ok(Started {
                conversation: conversation.try_into()?,
                resumed: first.resumed,
            });
        }
        let policy = settings_of(&*txn, caller.tenant_id).await?.policy(channel);
        if policy.rule != SessionRule::NewEveryStart {
            // Two messages from the same sender arriving together must land in
            // one conversation, not open two.
            let identity = format!(
                "session:{}:{}:{}:{}",
                caller.tenant_id,
                channel,
                contact.as_deref().unwrap_or(""),
                thread_key.as_deref().unwrap_or("")
            );
            lock_key(&txn, identity.as_bytes()).await?;
            let open = conversation::Entity::find()
                .filter(conversation::Column::TenantId.eq(caller.tenant_id))
                .filter(conversation::Column::Channel.eq(channel.as_str()))
                .filter(conversation::Column::Contact.eq(contact.clone()))
                .filter(match &thread_key {
                    Some(key) => conversation::Column::ThreadKey.eq(key.clone()),
                    None => conversation::Column::ThreadKey.is_null(),
                })
                .filter(conversation::Column::ClosedAt.is_null())
                // Another signed-in person on the same address or number
                // (a shared inbox, a family phone) starts their own.
                .filter(match &user_id {
                    Some(user) => Condition::any()
                        .add(conversation::Column::UserId.is_null())
                        .add(conversation::Column::UserId.eq(user.clone())),
                    None => Condition::all(),
                })
                .order_by(conversation::Column::LastActivityAt, Order::Desc)
                .lock_exclusive()
                .one(&*txn)
                .await?;
            if let Some(open) =
                open.filter(|c| policy.resumes(from_micros(c.last_activity_at), now))
            {
                let mut active: conversation::ActiveModel = open.into();
                active.last_activity_at = Set(to_micros(now));
                if user_id.is_some() {
                    active.user_id = Set(user_id);
                }
                if user_name.is_some() {
                    active.user_name = Set(user_name);
                }
                let conversation = active.update(&*txn).await?;
                let conversation = relabel(&*txn, conversation, labels).await?;
                bind_start(&*txn, keyed, caller, conversation.id, true, now).await?;
                txn.commit().await?;
                return Ok(Started {
                    conversation: conversation.try_into()?,
                    resumed: true,
                });
            }
        }

        let conversation = conversation::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(caller.tenant_id),
            session_id: Set(SessionId::generate()?.to_string()),
            channel: Set(channel.as_str().to_owned()),
            thread_key: Set(thread_key),
            contact: Set(contact),
            user_id: Set(user_id),
            user_name: Set(user_name),
            started_at: Set(to_micros(now)),
            last_activity_at: Set(to_micros(now)),
            closed_at: Set(None),
            opening_message: Set(None),
            message_count: Set(0),
            first_converted_at: Set(None),
            retractions: Set(0),
            erased_at: Set(None),
            labels: Set(labels.to_stored()),
        }
        .insert(&*txn)
        .await?;
        let mut counted =
            Counted::new(caller.tenant_id, channel.as_str()).with_labels(labels.pairs());
        counted.add(conversation.started_at, Metric::Conversations, "");
        counted.save(&*txn).await?;
        bind_start(&*txn, keyed, caller, conversation.id, false, now).await?;
        txn.commit().await?;
        Ok(Started {
            conversation: conversation.try_into()?,
            resumed: false,
        })
    }

    /// Closes a session. Closing a closed session changes nothing.
    #[tracing::instrument(skip(self, caller, session_id), fields(tenant = %caller.tenant_id))]
    pub async fn close_session(
        &self,
        caller: &Caller,
        session_id: &SessionId,
    ) -> Result<Conversation, AppError> {
        caller.require(Operation::ManageSessions, "close sessions")?;
        let now = to_micros(self.clock.now());
        let txn = self.begin_write().await?;
        let found = lock_by_session_id(&*txn, caller.tenant_id, session_id)
            .await?
            .ok_or(AppError::NotFound("session"))?;
        if found.closed_at.is_some() {
            return found.try_into();
        }
        let mut active: conversation::ActiveModel = found.into();
        active.closed_at = Set(Some(now));
        let closed = active.update(&*txn).await?;
        txn.commit().await?;
        self.conversation_changed(caller, closed.id, ActivityChange::Closed);
        closed.try_into()
    }

    /// A conversation of the caller's tenant by its id; `None` for an id that
    /// does not exist and for another tenant's, alike.
    pub async fn conversation_by_id(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<Option<Conversation>, AppError> {
        caller.require(Operation::ReadConversation, "read conversations")?;
        self.conversation_in_tenant(caller.tenant_id, id).await
    }

    /// A conversation by id, if it belongs to `tenant_id`; the caller's
    /// right to read it is checked by whoever asks.
    pub(crate) async fn conversation_in_tenant(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Conversation>, AppError> {
        conversation::Entity::find_by_id(id)
            .filter(conversation::Column::TenantId.eq(tenant_id))
            .one(&self.db)
            .await?
            .map(Conversation::try_from)
            .transpose()
    }

    pub async fn conversation_by_session_id(
        &self,
        caller: &Caller,
        session_id: &SessionId,
    ) -> Result<Option<Conversation>, AppError> {
        caller.require(Operation::ReadConversation, "read conversations")?;
        find_by_session_id(&self.db, caller.tenant_id, session_id)
            .await?
            .map(Conversation::try_from)
            .transpose()
    }
}

pub(crate) async fn find_by_session_id<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    session_id: &SessionId,
) -> Result<Option<conversation::Model>, sea_orm::DbErr> {
    by_session_id(tenant_id, session_id).one(db).await
}

/// Like [`find_by_session_id`], holding the row until the transaction ends
/// (`FOR UPDATE` on PostgreSQL; SQLite write transactions are serial), so a
/// concurrent close cannot slip between a check and the write that follows.
pub(crate) async fn lock_by_session_id<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    session_id: &SessionId,
) -> Result<Option<conversation::Model>, sea_orm::DbErr> {
    by_session_id(tenant_id, session_id)
        .lock_exclusive()
        .one(txn)
        .await
}

fn by_session_id(tenant_id: Uuid, session_id: &SessionId) -> sea_orm::Select<conversation::Entity> {
    conversation::Entity::find()
        .filter(conversation::Column::SessionId.eq(session_id.as_str()))
        .filter(conversation::Column::TenantId.eq(tenant_id))
}

/// Marks a conversation as active now, claims the next message position,
/// and sets the opening message if it has none. One statement, so the row
/// lock on PostgreSQL orders concurrent appends.
pub(crate) fn touch_for_message(
    conversation_id: Uuid,
    now: DateTime<Utc>,
    opening: Option<String>,
) -> sea_orm::UpdateMany<conversation::Entity> {
    use sea_orm::sea_query::Func;
    let mut update = conversation::Entity::update_many()
        .col_expr(
            conversation::Column::MessageCount,
            Expr::col(conversation::Column::MessageCount).add(1),
        )
        .col_expr(
            conversation::Column::LastActivityAt,
            Expr::value(to_micros(now)),
        );
    if let Some(opening) = opening {
        update = update.col_expr(
            conversation::Column::OpeningMessage,
            Func::coalesce([
                Expr::col(conversation::Column::OpeningMessage),
                Expr::value(opening),
            ])
            .into(),
        );
    }
    update.filter(conversation::Column::Id.eq(conversation_id))
}

/// A session that may take part in the conversation now: locked for the
/// transaction, not closed, not past its channel's inactivity timeout.
pub(crate) struct OpenSession {
    pub conversation: conversation::Model,
    pub settings: TenantSettings,
    pub policy: ChannelPolicy,
}

pub(crate) async fn lock_open_session(
    txn: &DatabaseTransaction,
    tenant_id: Uuid,
    session_id: &SessionId,
    now: DateTime<Utc>,
) -> Result<OpenSession, AppError> {
    let conversation = lock_by_session_id(txn, tenant_id, session_id)
        .await?
        .ok_or(AppError::NotFound("session"))?;
    if conversation.closed_at.is_some() {
        return Err(AppError::SessionClosed);
    }
    let settings = settings_of(txn, tenant_id).await?;
    let channel: Channel = stored("conversation.channel", &conversation.channel)?;
    let policy = settings.policy(channel);
    if policy.has_expired(from_micros(conversation.last_activity_at), now) {
        return Err(AppError::SessionExpired(humanize(
            policy.inactivity_timeout,
        )));
    }
    Ok(OpenSession {
        conversation,
        settings,
        policy,
    })
}

/// A duration as a person reads it in an error message.
fn humanize(d: chrono::TimeDelta) -> String {
    if d.num_minutes() % 60 != 0 {
        format!("{} minutes", d.num_minutes())
    } else {
        format!("{} hours", d.num_hours())
    }
}

/// Binds a keyed `startSession` to its answer, in the answer's transaction.
async fn bind_start<C: ConnectionTrait>(
    txn: &C,
    keyed: Option<&Keyed>,
    caller: &Caller,
    conversation_id: Uuid,
    resumed: bool,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let Some(keyed) = keyed else {
        return Ok(());
    };
    let answer = Answer {
        conversation_id,
        message_id: None,
        resumed,
    };
    keyed
        .bind(txn, caller.tenant_id, answer, to_micros(now))
        .await
}

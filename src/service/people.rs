//! Finding a person by who they are: a search text that is a session ID,
//! a contact (an email address in any case, a phone number in any form the
//! API normalises), a signed-in user id or whole name (any case), or the
//! record id of a badge. Each is an exact match through its own index, so
//! it costs the same at any size; the list's search adds these matches to
//! those of the message text.

use entity::conversation;
use sea_orm::sea_query::{Expr, ExprTrait, Query, SelectStatement, SimpleExpr, UnionType};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::listing::{ConversationFilter, list_query_among};
use super::{Caller, Services};
use crate::domain::cursor::ConversationCursor;
use crate::domain::erasure::contact_forms;
use crate::error::AppError;

/// A conversation found: its list position and id.
pub(super) type Found = (i64, Uuid);

/// At most this many conversations per way of naming a person are
/// considered (a contact or a name with more is a shared inbox, not a
/// person; the newest of them are found by the message text as well).
const CANDIDATES: u64 = 2_000;

impl Services {
    /// Up to `first + 1` conversations after `after` passing `filter` whose
    /// session ID, contact, user id, name or badge record id is `text`.
    /// The candidates come from each identity's own index first, then the
    /// list's filters narrow them: walking the list in order and testing
    /// each conversation would cost the tenant's size.
    pub(super) async fn people_matching(
        &self,
        caller: &Caller,
        first: u64,
        after: Option<ConversationCursor>,
        filter: &ConversationFilter,
        text: &str,
    ) -> Result<Vec<Found>, AppError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let mut candidates: Vec<Uuid> = Vec::new();
        for who in identities(caller, text) {
            let ids = conversation::Entity::find()
                .filter(conversation::Column::TenantId.eq(caller.tenant_id))
                .filter(who)
                .select_only()
                .column(conversation::Column::Id)
                .limit(CANDIDATES)
                .into_tuple::<Uuid>()
                .all(&self.db)
                .await?;
            candidates.extend(ids);
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        candidates.sort_unstable();
        candidates.dedup();
        let backend = self.db.get_database_backend();
        let rows = list_query_among(backend, caller, after, filter, candidates)?
            .select_only()
            .column(conversation::Column::Id)
            .column(conversation::Column::StartedAt)
            .order_by_desc(conversation::Column::StartedAt)
            .order_by_desc(conversation::Column::Id)
            .limit(first + 1)
            .into_tuple::<(Uuid, i64)>()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, started_at)| (started_at, id))
            .collect())
    }
}

/// The conversations that name the person `text` in any of the ways above,
/// each read through its identity's index; none for a blank text.
pub(super) fn people_matches(caller: &Caller, text: &str) -> Option<SelectStatement> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut matches = identities(caller, text).into_iter().map(|who| {
        Query::select()
            .column(conversation::Column::Id)
            .from(conversation::Entity)
            .and_where(conversation::Column::TenantId.eq(caller.tenant_id))
            .and_where(who)
            .to_owned()
    });
    let mut all = matches.next()?;
    for other in matches {
        all.union(UnionType::All, other);
    }
    Some(all)
}

/// The conditions `text` may name a person by, each answered by an index.
fn identities(caller: &Caller, text: &str) -> Vec<SimpleExpr> {
    let lowered = text.to_lowercase();
    // `IS NOT NULL` lets SQLite use the partial indexes on expressions.
    let mut who = vec![
        conversation::Column::SessionId.eq(text),
        conversation::Column::UserId
            .is_not_null()
            .and(conversation::Column::UserId.eq(text)),
        conversation::Column::UserName
            .is_not_null()
            .and(Expr::cust("lower(user_name)").eq(lowered.clone())),
    ];
    let mut forms = contact_forms(text).unwrap_or_default();
    if !forms.contains(&lowered) {
        forms.push(lowered);
    }
    who.push(
        conversation::Column::Contact
            .is_not_null()
            .and(Expr::cust("lower(contact)").is_in(forms)),
    );
    let credited = Query::select()
        .column(entity::conversion::Column::ConversationId)
        .from(entity::conversion::Entity)
        .and_where(entity::conversion::Column::TenantId.eq(caller.tenant_id))
        .and_where(entity::conversion::Column::RecordId.eq(text))
        .and_where(entity::conversion::Column::ConversationId.is_not_null())
        .to_owned();
    who.push(conversation::Column::Id.in_subquery(credited));
    who
}

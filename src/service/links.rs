//! Call-to-action links: signing keys, issuing links, following them, and
//! turning a token back into its conversation.

use entity::{conversation, cta_link, link_signing_key};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LockType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use std::net::IpAddr;

use uuid::Uuid;

use super::rollups::Counted;
use super::sessions::{OpenSession, lock_open_session};
use super::{Caller, Services};
use crate::domain::clock::{from_micros, to_micros};
use crate::domain::label::Labels;
use crate::domain::link::{
    CtaAction, LinkClaims, SigningKey, UnverifiedToken, parse_target, target_host_allowed,
    with_token,
};
use crate::domain::role::Operation;
use crate::domain::rollup::Metric;
use crate::domain::session_id::SessionId;
use crate::error::AppError;

/// A link as `createCtaLink` returns it.
#[derive(Debug, Clone)]
pub struct IssuedLink {
    pub link: cta_link::Model,
    pub token: String,
    /// The target with the token in `ai_session`.
    pub url: String,
}

/// A signing key as `convtrack link-keys list` shows it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub kid: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl Services {
    /// Makes sure a key exists to sign with: the operator's, or one stored in
    /// the database (generated on the first start, shared by every instance).
    pub async fn ensure_link_key(&self) -> Result<(), AppError> {
        if !self.operator_link_keys.is_empty() || self.stored_signing_key().await?.is_some() {
            return Ok(());
        }
        self.rotate_link_key().await.map(|_| ())
    }

    /// Creates a new stored signing key; older ones stop signing but still
    /// verify until removed.
    pub async fn rotate_link_key(&self) -> Result<KeyInfo, AppError> {
        let now = to_micros(self.clock.now());
        let key = SigningKey::generate()?;
        let txn = self.begin_write().await?;
        link_signing_key::Entity::update_many()
            .col_expr(link_signing_key::Column::RetiredAt, Expr::value(now))
            .filter(link_signing_key::Column::RetiredAt.is_null())
            .exec(&*txn)
            .await?;
        let row = link_signing_key::ActiveModel {
            kid: Set(key.kid.clone()),
            secret: Set(key.stored_secret()),
            created_at: Set(now),
            retired_at: Set(None),
        }
        .insert(&*txn)
        .await?;
        txn.commit().await?;
        Ok(KeyInfo {
            kid: row.kid,
            created_at: row.created_at,
            retired_at: row.retired_at,
        })
    }

    pub async fn list_link_keys(&self) -> Result<Vec<KeyInfo>, AppError> {
        Ok(link_signing_key::Entity::find()
            .order_by_asc(link_signing_key::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|k| KeyInfo {
                kid: k.kid,
                created_at: k.created_at,
                retired_at: k.retired_at,
            })
            .collect())
    }

    /// Removes a stored key: tokens it signed stop verifying, everywhere, at once.
    pub async fn remove_link_key(&self, kid: &str) -> Result<(), AppError> {
        let removed = link_signing_key::Entity::delete_by_id(kid.to_owned())
            .exec(&self.db)
            .await?;
        if removed.rows_affected == 0 {
            return Err(AppError::NotFound("link signing key"));
        }
        Ok(())
    }

    async fn stored_signing_key(&self) -> Result<Option<SigningKey>, AppError> {
        let newest = link_signing_key::Entity::find()
            .filter(link_signing_key::Column::RetiredAt.is_null())
            .order_by_desc(link_signing_key::Column::CreatedAt)
            .one(&self.db)
            .await?;
        newest
            .map(|k| {
                SigningKey::from_stored(&k.kid, &k.secret).ok_or_else(|| {
                    AppError::internal(format!("stored link key {} is not valid", k.kid))
                })
            })
            .transpose()
    }

    async fn signing_key(&self) -> Result<SigningKey, AppError> {
        if let Some(key) = self.operator_link_keys.first() {
            return Ok(key.clone());
        }
        self.stored_signing_key().await?.ok_or_else(|| {
            AppError::internal("no link signing key; the server creates one at start")
        })
    }

    /// The key a token names, if it is still trusted. Stored keys are read
    /// on every use, so a removed key stops verifying on every instance.
    async fn verifying_key<C: ConnectionTrait>(
        &self,
        db: &C,
        kid: &str,
    ) -> Result<Option<SigningKey>, AppError> {
        if let Some(key) = self.operator_link_keys.iter().find(|k| k.kid == kid) {
            return Ok(Some(key.clone()));
        }
        let stored = link_signing_key::Entity::find_by_id(kid.to_owned())
            .one(db)
            .await?;
        Ok(stored.and_then(|k| SigningKey::from_stored(&k.kid, &k.secret)))
    }

    /// Checks a token's signature; any failure is the one `INVALID_LINK_TOKEN`.
    pub(crate) async fn verify_token<C: ConnectionTrait>(
        &self,
        db: &C,
        token: &str,
    ) -> Result<LinkClaims, AppError> {
        let unverified = UnverifiedToken::parse(token).map_err(|_| AppError::InvalidLinkToken)?;
        let key = self
            .verifying_key(db, unverified.kid)
            .await?
            .ok_or(AppError::InvalidLinkToken)?;
        unverified
            .verify(&key)
            .map_err(|_| AppError::InvalidLinkToken)
    }

    /// The conversation and link verified claims stand for, within the
    /// caller's tenant. Another tenant's token answers exactly like a forged
    /// one, and so does a legacy signed token past its link's window.
    pub(crate) async fn resolve_link_claims<C: ConnectionTrait>(
        &self,
        db: &C,
        tenant_id: Uuid,
        claims: &LinkClaims,
    ) -> Result<(conversation::Model, cta_link::Model), AppError> {
        if claims.tenant_id != tenant_id {
            return Err(AppError::InvalidLinkToken);
        }
        let conversation = super::sessions::find_by_session_id(db, tenant_id, &claims.session_id)
            .await?
            .ok_or(AppError::InvalidLinkToken)?;
        let link = cta_link::Entity::find_by_id(claims.link_id)
            .filter(cta_link::Column::TenantId.eq(tenant_id))
            .filter(cta_link::Column::ConversationId.eq(conversation.id))
            .one(db)
            .await?
            .ok_or(AppError::InvalidLinkToken)?;
        if claims.legacy && to_micros(self.clock.now()) > link.expires_at {
            return Err(AppError::InvalidLinkToken);
        }
        Ok((conversation, link))
    }

    /// Issues a signed link for a session (roles AGENT, ADMIN).
    #[tracing::instrument(skip(self, caller, session_id, target_url), fields(tenant = %caller.tenant_id, %action))]
    pub async fn create_cta_link(
        &self,
        caller: &Caller,
        session_id: &SessionId,
        action: CtaAction,
        target_url: &str,
    ) -> Result<IssuedLink, AppError> {
        caller.require(Operation::ManageSessions, "create call-to-action links")?;
        let target = parse_target(target_url)?;
        let key = self.signing_key().await?;
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        let OpenSession {
            conversation,
            settings,
            ..
        } = lock_open_session(&txn, caller.tenant_id, session_id, now).await?;
        target_host_allowed(&target, &settings.link_target_hosts)?;
        let link = cta_link::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(caller.tenant_id),
            conversation_id: Set(conversation.id),
            action: Set(action.as_str().to_owned()),
            // An erased person's link keeps no target (it may carry their
            // details): the agent still gets the direct URL below, and the
            // tracked redirect finds nothing to send them to.
            target_url: Set(if conversation.erased_at.is_some() {
                String::new()
            } else {
                target.clone()
            }),
            issued_at: Set(to_micros(now)),
            expires_at: Set(to_micros(
                from_micros(conversation.started_at) + settings.attribution_window(),
            )),
            first_followed_at: Set(None),
            last_followed_at: Set(None),
            follow_count: Set(0),
            first_converted_at: Set(None),
        }
        .insert(&*txn)
        .await?;
        let mut counted = Counted::new(caller.tenant_id, &conversation.channel)
            .with_labels(Labels::from_stored(&conversation.labels).pairs());
        counted.add(conversation.started_at, Metric::Issued, action.as_str());
        counted.save(&*txn).await?;
        txn.commit().await?;
        let token = key.seal(&LinkClaims {
            tenant_id: caller.tenant_id,
            link_id: link.id,
            session_id: session_id.clone(),
            action,
            issued_at: link.issued_at,
            legacy: false,
        })?;
        Ok(IssuedLink {
            url: with_token(&target, &token),
            token,
            link,
        })
    }

    /// Where a link sends the person: always the target stored when the
    /// link was issued, with the token. `None` for anything that is not a
    /// live link. `count` says whether this visit is a click to count (a
    /// GET; HEAD requests and link previews are not); a click counts once a
    /// minute per link and `client` address.
    pub async fn follow_link(
        &self,
        token: &str,
        client: IpAddr,
        count: bool,
    ) -> Result<Option<String>, AppError> {
        let claims = match self.verify_token(&self.db, token).await {
            Ok(claims) => claims,
            Err(AppError::InvalidLinkToken) => return Ok(None),
            Err(other) => return Err(other),
        };
        let now = to_micros(self.clock.now());
        let counted = count
            && self
                .recent_follows
                .charge((claims.link_id, client), 1.0, self.clock.now())
                .is_ok();
        let this_link = Expr::col(cta_link::Column::Id)
            .eq(claims.link_id)
            .and(Expr::col(cta_link::Column::TenantId).eq(claims.tenant_id));
        // A legacy token may have been read by whoever saw it: it works only
        // within its link's window.
        let live = if claims.legacy {
            this_link.and(Expr::col(cta_link::Column::ExpiresAt).gte(now))
        } else {
            this_link
        };
        let link = if counted {
            self.count_follow(live, now).await?
        } else {
            cta_link::Entity::find().filter(live).one(&self.db).await?
        };
        // An erased conversation's links lead nowhere: their targets may
        // have carried the person's details.
        let Some(link) = link.filter(|l| !l.target_url.is_empty()) else {
            return Ok(None);
        };
        // Targets stored before they were checked as strictly as now are
        // checked again: the redirect goes only to a public http(s) URL.
        match parse_target(&link.target_url) {
            Ok(target) => Ok(Some(with_token(&target, token))),
            Err(refused) => {
                tracing::warn!(link = %link.id, reason = %refused.0, "stored link target refused");
                Ok(None)
            }
        }
    }
}

impl Services {
    /// Counts a follow of the link `live` selects, if it is live. A link's
    /// first follow also counts in the stats funnel, in the same transaction.
    async fn count_follow(
        &self,
        live: sea_orm::sea_query::SimpleExpr,
        now: i64,
    ) -> Result<Option<cta_link::Model>, AppError> {
        let txn = self.begin_write().await?;
        // First under the row's lock: a conversion through the link may
        // have counted it as followed already (see the conversions' counts).
        let first = cta_link::Entity::update_many()
            .col_expr(cta_link::Column::FirstFollowedAt, Expr::value(now))
            .filter(live.clone())
            .filter(cta_link::Column::FirstFollowedAt.is_null())
            .exec(&*txn)
            .await?
            .rows_affected
            == 1;
        let link = cta_link::Entity::update_many()
            .col_expr(
                cta_link::Column::FirstFollowedAt,
                Func::coalesce([
                    Expr::col(cta_link::Column::FirstFollowedAt),
                    Expr::value(now),
                ])
                .into(),
            )
            .col_expr(cta_link::Column::LastFollowedAt, Expr::value(now))
            .col_expr(
                cta_link::Column::FollowCount,
                Expr::col(cta_link::Column::FollowCount).add(1),
            )
            .filter(live)
            .exec_with_returning(&*txn)
            .await?
            .pop();
        if let Some(link) = link.as_ref().filter(|_| first) {
            // Shared with other counts, not with a change of labels: that
            // moves the counts it sees, this one counts under the labels
            // it leaves.
            let conversation = conversation::Entity::find_by_id(link.conversation_id)
                .lock(LockType::KeyShare)
                .one(&*txn)
                .await?
                .ok_or_else(|| AppError::internal("a link's conversation is missing"))?;
            let mut counted = Counted::new(link.tenant_id, &conversation.channel)
                .with_labels(Labels::from_stored(&conversation.labels).pairs());
            counted.add(conversation.started_at, Metric::Followed, &link.action);
            counted.save(&*txn).await?;
        }
        txn.commit().await?;
        Ok(link)
    }
}

/// How often a follow of one link from one client address counts: once,
/// then again a minute later.
pub const FOLLOWS_COUNTED: crate::domain::rate_limit::Budget = crate::domain::rate_limit::Budget {
    capacity: 1.0,
    per_second: 1.0 / 60.0,
};

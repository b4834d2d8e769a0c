//! Tenants and API keys: creating, listing, revoking, and resolving a key
//! to its caller on every request.

use entity::{api_key, tenant};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, SqlErr,
};
use uuid::Uuid;

use super::Services;
use super::auth::keys_changed;
use crate::domain::api_key as secrets;
use crate::domain::clock::to_micros;
use crate::domain::redact::Redacted;
use crate::domain::role::Role;
use crate::domain::text;
use crate::error::AppError;

/// The tenant a fresh install creates.
pub const DEFAULT_TENANT: &str = "default";

/// A key as `keys list` shows it.
#[derive(Debug, Clone)]
pub struct KeyListing {
    pub key: api_key::Model,
    pub tenant_name: String,
}

pub struct CreatedKey {
    pub key: api_key::Model,
    pub tenant: tenant::Model,
    /// Shown once; only its hash is stored.
    pub secret: String,
}

// Shown once means not again in a `{:?}` (a log line, a test failure).
impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("key", &self.key)
            .field("tenant", &self.tenant)
            .field("secret", &Redacted)
            .finish()
    }
}

impl Services {
    /// Creates a key for the tenant `tenant_name`; an unknown tenant is
    /// created only when `create_tenant` says so (a typo in a name must not
    /// quietly start a tenant nobody looks at), else `NOT_FOUND`.
    pub async fn create_key(
        &self,
        tenant_name: &str,
        role: Role,
        create_tenant: bool,
    ) -> Result<CreatedKey, AppError> {
        let tenant_name = text::required("tenant", tenant_name, 100)?;
        let now = to_micros(self.clock.now());
        let txn = self.begin_write().await?;
        let tenant = match find_tenant(&*txn, &tenant_name).await? {
            Some(t) => t,
            None if create_tenant => insert_tenant(&*txn, &tenant_name, now).await?,
            None => return Err(AppError::NotFound("tenant")),
        };
        let (key, secret) = insert_key(&*txn, tenant.id, role, now).await?;
        txn.commit().await?;
        Ok(CreatedKey {
            key,
            tenant,
            secret,
        })
    }

    /// Creates the tenant `name`; `CONFLICT` when it exists.
    pub async fn create_tenant(&self, name: &str) -> Result<tenant::Model, AppError> {
        let name = text::required("tenant", name, 100)?;
        let now = to_micros(self.clock.now());
        let txn = self.begin_write().await?;
        if find_tenant(&*txn, &name).await?.is_some() {
            return Err(AppError::Conflict(format!(
                "tenant \"{name}\" exists already"
            )));
        }
        let tenant = insert_tenant(&*txn, &name, now).await?;
        txn.commit().await?;
        Ok(tenant)
    }

    /// Every tenant's name, alphabetically.
    pub async fn tenant_names(&self) -> Result<Vec<String>, AppError> {
        Ok(tenant::Entity::find()
            .select_only()
            .column(tenant::Column::Name)
            .order_by_asc(tenant::Column::Name)
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// On the first start of an empty database: tenant `default` and one
    /// ADMIN key. `None` when any tenant exists already, or when another
    /// instance starting at the same moment won the race.
    pub async fn bootstrap_first_admin(&self) -> Result<Option<CreatedKey>, AppError> {
        if tenant::Entity::find().count(&self.db).await? > 0 {
            return Ok(None);
        }
        let now = to_micros(self.clock.now());
        let txn = self.begin_write().await?;
        if tenant::Entity::find().count(&*txn).await? > 0 {
            return Ok(None);
        }
        let tenant = match insert_tenant(&*txn, DEFAULT_TENANT, now).await {
            Ok(t) => t,
            Err(AppError::Conflict(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let (key, secret) = insert_key(&*txn, tenant.id, Role::Admin, now).await?;
        match txn.commit().await {
            Ok(()) => Ok(Some(CreatedKey {
                key,
                tenant,
                secret,
            })),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyListing>, AppError> {
        let tenants = tenant::Entity::find().all(&self.db).await?;
        let keys = api_key::Entity::find()
            .order_by_asc(api_key::Column::CreatedAt)
            .all(&self.db)
            .await?;
        Ok(keys
            .into_iter()
            .map(|key| KeyListing {
                tenant_name: tenants
                    .iter()
                    .find(|t| t.id == key.tenant_id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
                key,
            })
            .collect())
    }

    /// Revokes a key by id. Revoking a revoked key changes nothing.
    /// Every instance refuses it within [`VERSION_CHECK_EVERY`] (this one
    /// at once).
    ///
    /// [`VERSION_CHECK_EVERY`]: super::auth::VERSION_CHECK_EVERY
    pub async fn revoke_key(&self, id: Uuid) -> Result<api_key::Model, AppError> {
        let now = to_micros(self.clock.now());
        let txn = self.begin_write().await?;
        let found = api_key::Entity::find_by_id(id)
            .one(&*txn)
            .await?
            .ok_or(AppError::NotFound("API key"))?;
        if found.revoked_at.is_some() {
            return Ok(found);
        }
        let mut active: api_key::ActiveModel = found.into();
        active.revoked_at = Set(Some(now));
        let revoked = active.update(&*txn).await?;
        keys_changed(&txn).await?;
        txn.commit().await?;
        self.key_cache.forget_all();
        Ok(revoked)
    }
}

async fn find_tenant<C: ConnectionTrait>(
    db: &C,
    name: &str,
) -> Result<Option<tenant::Model>, sea_orm::DbErr> {
    tenant::Entity::find()
        .filter(tenant::Column::Name.eq(name))
        .one(db)
        .await
}

async fn insert_tenant<C: ConnectionTrait>(
    db: &C,
    name: &str,
    now: i64,
) -> Result<tenant::Model, AppError> {
    tenant::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name.to_owned()),
        conversion_seq: Set(0),
        created_at: Set(now),
        settings: Set("{}".to_owned()),
    }
    .insert(db)
    .await
    .map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => AppError::Conflict(format!(
            "tenant {} exists already",
            crate::domain::text::quoted(name)
        )),
        _ => e.into(),
    })
}

async fn insert_key<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    role: Role,
    now: i64,
) -> Result<(api_key::Model, String), AppError> {
    let generated = secrets::generate()?;
    let key = api_key::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        role: Set(role.as_str().to_owned()),
        key_hash: Set(generated.hash),
        key_prefix: Set(generated.prefix),
        created_at: Set(now),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok((key, generated.secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_debugs_without_its_secret() {
        let generated = secrets::generate().expect("os rng");
        let tenant = tenant::Model {
            id: Uuid::now_v7(),
            name: "acme".to_owned(),
            conversion_seq: 0,
            created_at: 0,
            settings: "{}".to_owned(),
        };
        let created = CreatedKey {
            key: api_key::Model {
                id: Uuid::now_v7(),
                tenant_id: tenant.id,
                role: Role::Admin.as_str().to_owned(),
                key_hash: generated.hash,
                key_prefix: generated.prefix.clone(),
                created_at: 0,
                revoked_at: None,
            },
            tenant,
            secret: generated.secret,
        };
        let debug = format!("{created:?}");
        assert!(!debug.contains(&created.secret), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");
        assert!(debug.contains(&generated.prefix), "{debug}");
        assert!(debug.contains("acme"), "{debug}");
    }
}

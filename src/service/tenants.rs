//! Tenant settings: reading them for the rules they change, and updating them.

use entity::tenant;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set,
};
use uuid::Uuid;

use super::{Caller, Services};
use crate::domain::role::Operation;
use crate::domain::settings::{SettingsChange, TenantSettings};
use crate::error::AppError;

/// The settings of a tenant, as the rules read them.
pub(crate) async fn settings_of<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
) -> Result<TenantSettings, AppError> {
    let found = tenant::Entity::find_by_id(tenant_id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::internal(format!("tenant {tenant_id} is missing")))?;
    parse_settings(&found)
}

pub(crate) fn parse_settings(tenant: &tenant::Model) -> Result<TenantSettings, AppError> {
    TenantSettings::from_json(&tenant.settings)
        .map_err(|e| AppError::internal_from(format!("stored settings of tenant {}", tenant.id), e))
}

impl Services {
    pub async fn tenant_settings(&self, caller: &Caller) -> Result<TenantSettings, AppError> {
        settings_of(&self.db, caller.tenant_id).await
    }

    /// Applies a change to the caller's tenant (ADMIN only).
    pub async fn update_tenant_settings(
        &self,
        caller: &Caller,
        change: SettingsChange,
    ) -> Result<TenantSettings, AppError> {
        caller.require(Operation::ManageTenant, "change tenant settings")?;
        self.change_settings(tenant::Column::Id.eq(caller.tenant_id), change)
            .await
    }

    /// Applies a change to a tenant by name (the operator's command line).
    pub async fn update_tenant_settings_by_name(
        &self,
        tenant_name: &str,
        change: SettingsChange,
    ) -> Result<TenantSettings, AppError> {
        self.change_settings(tenant::Column::Name.eq(tenant_name), change)
            .await
    }

    pub async fn tenant_settings_by_name(
        &self,
        tenant_name: &str,
    ) -> Result<TenantSettings, AppError> {
        let found = tenant::Entity::find()
            .filter(tenant::Column::Name.eq(tenant_name))
            .one(&self.db)
            .await?
            .ok_or(AppError::NotFound("tenant"))?;
        parse_settings(&found)
    }

    async fn change_settings(
        &self,
        which: sea_orm::sea_query::SimpleExpr,
        change: SettingsChange,
    ) -> Result<TenantSettings, AppError> {
        let txn = self.begin_write().await?;
        // Locked so two concurrent changes apply one after the other.
        let found = tenant::Entity::find()
            .filter(which)
            .lock_exclusive()
            .one(&*txn)
            .await?
            .ok_or(AppError::NotFound("tenant"))?;
        let next = parse_settings(&found)?.apply(change)?;
        let mut active: tenant::ActiveModel = found.into();
        active.settings = Set(next.to_json());
        active.update(&*txn).await?;
        // Instances keep each key's tenant settings with the key.
        super::auth::keys_changed(&txn).await?;
        txn.commit().await?;
        self.key_cache.forget_all();
        Ok(next)
    }
}

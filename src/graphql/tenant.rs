//! Tenant settings: record URL templates, attribution window, channel timings.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, Result, SimpleObject};

use super::context::request;
use super::enums::{Channel, RecordType};
use super::policy::{ChannelPolicy, policies};
use crate::domain;
use crate::domain::role::Operation;
use crate::domain::settings::{ChannelOverride, SettingsChange};
use crate::error::AppError;

/// The settings of the API key's tenant.
#[derive(SimpleObject)]
pub struct TenantSettings {
    /// Days after a session starts during which a link still attributes a
    /// conversion to it.
    pub attribution_window_days: i64,
    /// The URL templates that turn badges into links to records.
    pub record_url_templates: Vec<RecordUrlTemplate>,
    /// The channel rules in force, overrides applied.
    pub channel_policies: Vec<ChannelPolicy>,
    /// Hosts `createCtaLink` targets must be on (`book.example.com`, or
    /// `*.example.com` for its subdomains); empty: any public host.
    pub link_target_hosts: Vec<String>,
    /// Days after a conversation's last activity its personal data is
    /// erased (README "Privacy"); null: kept until erased by request.
    pub message_retention_days: Option<i64>,
}

/// Where records of one type live in the operator's admin.
#[derive(SimpleObject)]
pub struct RecordUrlTemplate {
    /// The record type.
    pub record_type: RecordType,
    /// An http(s) URL with one `{id}`, replaced by the record's id.
    pub template: String,
}

impl From<&domain::settings::TenantSettings> for TenantSettings {
    fn from(s: &domain::settings::TenantSettings) -> Self {
        TenantSettings {
            attribution_window_days: i64::from(s.attribution_window_days()),
            record_url_templates: domain::conversion::RecordType::ALL
                .into_iter()
                .filter_map(|t| {
                    s.url_template(t).map(|template| RecordUrlTemplate {
                        record_type: t.into(),
                        template: template.to_owned(),
                    })
                })
                .collect(),
            channel_policies: policies(s),
            link_target_hosts: s.link_target_hosts.clone(),
            message_retention_days: s.message_retention_days.map(i64::from),
        }
    }
}

/// A change to the tenant's settings; what is left out stays as it is.
#[derive(InputObject)]
pub struct UpdateTenantSettingsInput {
    /// 1 to 365 days.
    pub attribution_window_days: Option<i64>,
    /// Templates to set (or, with a null template, to remove).
    pub record_url_templates: Option<Vec<RecordUrlTemplateInput>>,
    /// Channel timings to override.
    pub channel_policies: Option<Vec<ChannelPolicyInput>>,
    /// Replaces the hosts link targets must be on (at most 100 entries,
    /// `book.example.com` or `*.example.com`); an empty list allows any
    /// public host again.
    pub link_target_hosts: Option<Vec<String>>,
    /// 1 to 3,650 days after a conversation's last activity, then its
    /// personal data is erased; null keeps chats until erased by request.
    pub message_retention_days: MaybeUndefined<i64>,
}

/// A record URL template to set or remove.
#[derive(InputObject)]
pub struct RecordUrlTemplateInput {
    /// The record type.
    pub record_type: RecordType,
    /// An http(s) URL with exactly one `{id}`, e.g.
    /// `https://admin.example.com/visitors/{id}`; null removes the template.
    pub template: Option<String>,
}

/// New timings for one channel.
#[derive(InputObject)]
pub struct ChannelPolicyInput {
    /// The channel.
    pub channel: Channel,
    /// Inactivity after which a conversation expires, 60 s to 365 days.
    pub inactivity_timeout_seconds: Option<i64>,
    /// How long a confirmation stays open, 60 s to 30 days.
    pub confirmation_window_seconds: Option<i64>,
}

impl UpdateTenantSettingsInput {
    fn into_change(self) -> Result<SettingsChange, AppError> {
        let attribution_window_days = self
            .attribution_window_days
            .map(|d| {
                u32::try_from(d).map_err(|_| {
                    AppError::BadInput(format!(
                        "attributionWindowDays must be between 1 and 365, not {d}"
                    ))
                })
            })
            .transpose()?;
        Ok(SettingsChange {
            attribution_window_days,
            record_url_templates: self
                .record_url_templates
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.record_type.into(), t.template))
                .collect(),
            channels: self
                .channel_policies
                .unwrap_or_default()
                .into_iter()
                .map(|c| {
                    (
                        c.channel.into(),
                        ChannelOverride {
                            inactivity_timeout_seconds: c.inactivity_timeout_seconds,
                            confirmation_window_seconds: c.confirmation_window_seconds,
                        },
                    )
                })
                .collect(),
            link_target_hosts: self.link_target_hosts,
            message_retention_days: match self.message_retention_days {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(days) => Some(Some(days)),
            },
        })
    }
}

/// The result of `updateTenantSettings`.
#[derive(SimpleObject)]
pub struct UpdateTenantSettingsPayload {
    /// The settings now in force.
    pub settings: TenantSettings,
}

#[derive(Default)]
pub struct TenantQuery;

#[Object]
impl TenantQuery {
    /// The settings of this API key's tenant (ADMIN only).
    async fn tenant_settings(&self, ctx: &Context<'_>) -> Result<TenantSettings> {
        let r = request(ctx)?;
        r.caller
            .require(Operation::ManageTenant, "read tenant settings")?;
        Ok((&*r.settings().await?).into())
    }
}

#[derive(Default)]
pub struct TenantMutation;

#[Object]
impl TenantMutation {
    /// Changes this API key's tenant's settings (ADMIN only). A change with
    /// any invalid part is refused whole with `BAD_USER_INPUT`.
    async fn update_tenant_settings(
        &self,
        ctx: &Context<'_>,
        input: UpdateTenantSettingsInput,
    ) -> Result<UpdateTenantSettingsPayload> {
        let r = request(ctx)?;
        let change = input.into_change()?;
        let settings = r.services.update_tenant_settings(&r.caller, change).await?;
        Ok(UpdateTenantSettingsPayload {
            settings: (&settings).into(),
        })
    }
}

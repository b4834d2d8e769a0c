//! Webhook endpoints and their deliveries.
//!
//! - `webhook_endpoint`: where a tenant's feed events are POSTed, with the
//!   filters, the signing secret (and, for a day after a rotation, the one
//!   before it), and the endpoint's place in the feed: the last event it
//!   was handed (acknowledged or given up), so that its next event waits
//!   for that one; and which instance delivers to it until when (a lease,
//!   so that one attempt at a time is made across instances).
//! - `webhook_delivery`: one event for one endpoint, with the body every
//!   attempt sends, its attempts so far and when the next is due.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEndpoint {
    Table,
    Id,
    TenantId,
    Url,
    Kinds,
    Channels,
    Description,
    Enabled,
    DisabledReason,
    PauseOnDead,
    Secret,
    PreviousSecret,
    PreviousSecretUntil,
    CreatedAt,
    LastSuccessAt,
    ConsecutiveFailures,
    FeedXid,
    FeedSeq,
    LeaseOwner,
    LeaseUntil,
}

#[derive(DeriveIden)]
enum WebhookDelivery {
    Table,
    Id,
    TenantId,
    EndpointId,
    EventId,
    Body,
    FeedXid,
    FeedSeq,
    Status,
    Attempts,
    LastStatusCode,
    LastError,
    LastLatencyMs,
    NextAttemptAt,
    CreatedAt,
    FinishedAt,
}

fn big(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).big_integer().not_null().to_owned()
}

fn text(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).string().null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoint::Table)
                    .col(
                        ColumnDef::new(WebhookEndpoint::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(WebhookEndpoint::TenantId).uuid().not_null())
                    .col(ColumnDef::new(WebhookEndpoint::Url).string().not_null())
                    .col(text(WebhookEndpoint::Kinds))
                    .col(text(WebhookEndpoint::Channels))
                    .col(
                        ColumnDef::new(WebhookEndpoint::Description)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoint::Enabled)
                            .boolean()
                            .not_null(),
                    )
                    .col(text(WebhookEndpoint::DisabledReason))
                    .col(
                        ColumnDef::new(WebhookEndpoint::PauseOnDead)
                            .boolean()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookEndpoint::Secret).string().not_null())
                    .col(text(WebhookEndpoint::PreviousSecret))
                    .col(
                        ColumnDef::new(WebhookEndpoint::PreviousSecretUntil)
                            .big_integer()
                            .null(),
                    )
                    .col(big(WebhookEndpoint::CreatedAt))
                    .col(
                        ColumnDef::new(WebhookEndpoint::LastSuccessAt)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoint::ConsecutiveFailures)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(big(WebhookEndpoint::FeedXid))
                    .col(big(WebhookEndpoint::FeedSeq))
                    .col(ColumnDef::new(WebhookEndpoint::LeaseOwner).uuid().null())
                    .col(
                        ColumnDef::new(WebhookEndpoint::LeaseUntil)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_endpoint_tenant")
                    .table(WebhookEndpoint::Table)
                    .col(WebhookEndpoint::TenantId)
                    .col(WebhookEndpoint::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDelivery::Table)
                    .col(
                        ColumnDef::new(WebhookDelivery::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(WebhookDelivery::TenantId).uuid().not_null())
                    .col(
                        ColumnDef::new(WebhookDelivery::EndpointId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDelivery::EventId).string().not_null())
                    .col(ColumnDef::new(WebhookDelivery::Body).text().not_null())
                    .col(big(WebhookDelivery::FeedXid))
                    .col(big(WebhookDelivery::FeedSeq))
                    .col(
                        ColumnDef::new(WebhookDelivery::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDelivery::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(WebhookDelivery::LastStatusCode)
                            .integer()
                            .null(),
                    )
                    .col(text(WebhookDelivery::LastError))
                    .col(
                        ColumnDef::new(WebhookDelivery::LastLatencyMs)
                            .integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDelivery::NextAttemptAt)
                            .big_integer()
                            .null(),
                    )
                    .col(big(WebhookDelivery::CreatedAt))
                    .col(
                        ColumnDef::new(WebhookDelivery::FinishedAt)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            // The delivery under way of an endpoint (PENDING or RETRYING)
            // without walking the ones it finished.
            (
                "webhook_delivery_open",
                vec![
                    WebhookDelivery::EndpointId,
                    WebhookDelivery::Status,
                    WebhookDelivery::FeedXid,
                    WebhookDelivery::FeedSeq,
                ],
            ),
            // The log, newest first.
            (
                "webhook_delivery_log",
                vec![WebhookDelivery::EndpointId, WebhookDelivery::Id],
            ),
            ("webhook_delivery_age", vec![WebhookDelivery::CreatedAt]),
        ] {
            let mut index = Index::create();
            index.name(name).table(WebhookDelivery::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookDelivery::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WebhookEndpoint::Table).to_owned())
            .await
    }
}

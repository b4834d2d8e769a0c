//! Call-to-action links (signed, counted when followed), their signing
//! keys, and confirmations the agent requests before recording a booking.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LinkSigningKey {
    Table,
    Kid,
    Secret,
    CreatedAt,
    RetiredAt,
}

#[derive(DeriveIden)]
enum CtaLink {
    Table,
    Id,
    TenantId,
    ConversationId,
    Action,
    TargetUrl,
    IssuedAt,
    ExpiresAt,
    FirstFollowedAt,
    LastFollowedAt,
    FollowCount,
}

#[derive(DeriveIden)]
enum Confirmation {
    Table,
    Id,
    TenantId,
    ConversationId,
    Action,
    Summary,
    RequestedAt,
    ExpiresAt,
    ConfirmedAt,
    ConversionId,
}

#[derive(DeriveIden)]
enum Conversion {
    Table,
    LinkId,
    LinkAction,
}

#[derive(DeriveIden)]
enum Tenant {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Conversation {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Keys that sign link tokens when the operator gives none; the newest
        // unretired one signs, every one still here verifies.
        manager
            .create_table(
                Table::create()
                    .table(LinkSigningKey::Table)
                    .col(string(LinkSigningKey::Kid).primary_key())
                    .col(string(LinkSigningKey::Secret))
                    .col(big_integer(LinkSigningKey::CreatedAt))
                    .col(big_integer_null(LinkSigningKey::RetiredAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CtaLink::Table)
                    .col(pk_uuid(CtaLink::Id))
                    .col(uuid(CtaLink::TenantId))
                    .col(uuid(CtaLink::ConversationId))
                    .col(string(CtaLink::Action))
                    .col(text(CtaLink::TargetUrl))
                    .col(big_integer(CtaLink::IssuedAt))
                    .col(big_integer(CtaLink::ExpiresAt))
                    .col(big_integer_null(CtaLink::FirstFollowedAt))
                    .col(big_integer_null(CtaLink::LastFollowedAt))
                    .col(integer(CtaLink::FollowCount).default(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(CtaLink::Table, CtaLink::TenantId)
                            .to(Tenant::Table, Tenant::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CtaLink::Table, CtaLink::ConversationId)
                            .to(Conversation::Table, Conversation::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("cta_link_conversation")
                    .table(CtaLink::Table)
                    .col(CtaLink::ConversationId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Confirmation::Table)
                    .col(pk_uuid(Confirmation::Id))
                    .col(uuid(Confirmation::TenantId))
                    .col(uuid(Confirmation::ConversationId))
                    .col(string(Confirmation::Action))
                    .col(text(Confirmation::Summary))
                    .col(big_integer(Confirmation::RequestedAt))
                    .col(big_integer(Confirmation::ExpiresAt))
                    .col(big_integer_null(Confirmation::ConfirmedAt))
                    .col(uuid_null(Confirmation::ConversionId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Confirmation::Table, Confirmation::TenantId)
                            .to(Tenant::Table, Tenant::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Confirmation::Table, Confirmation::ConversationId)
                            .to(Conversation::Table, Conversation::Id),
                    )
                    .to_owned(),
            )
            .await?;

        // Which link (and so which call to action) led to a conversion.
        manager
            .alter_table(
                Table::alter()
                    .table(Conversion::Table)
                    .add_column(ColumnDef::new(Conversion::LinkId).uuid().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversion::Table)
                    .add_column(ColumnDef::new(Conversion::LinkAction).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("conversion_link")
                    .table(Conversion::Table)
                    .col(Conversion::LinkId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("conversion_link")
                    .table(Conversion::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Conversion::LinkAction, Conversion::LinkId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Conversion::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for table in [
            Confirmation::Table.into_iden(),
            CtaLink::Table.into_iden(),
            LinkSigningKey::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

//! Makes conversion stats single-table scans: each conversion carries its
//! conversation's start and channel (both never change), and conversations
//! get a covering index for the per-channel counts.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversion {
    Table,
    TenantId,
    ConversationStartedAt,
    ConversationChannel,
}

#[derive(DeriveIden)]
enum Conversation {
    Table,
    TenantId,
    StartedAt,
    Channel,
    FirstConvertedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Conversion::Table)
                    .add_column(
                        ColumnDef::new(Conversion::ConversationStartedAt)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversion::Table)
                    .add_column(
                        ColumnDef::new(Conversion::ConversationChannel)
                            .string()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE conversion SET \
                 conversation_started_at = (SELECT started_at FROM conversation WHERE conversation.id = conversion.conversation_id), \
                 conversation_channel = (SELECT channel FROM conversation WHERE conversation.id = conversion.conversation_id) \
                 WHERE conversation_id IS NOT NULL",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("conversion_stats")
                    .table(Conversion::Table)
                    .col(Conversion::TenantId)
                    .col(Conversion::ConversationStartedAt)
                    .to_owned(),
            )
            .await?;
        // Per-channel counts and the median read only this index.
        manager
            .create_index(
                Index::create()
                    .name("conversation_stats")
                    .table(Conversation::Table)
                    .col(Conversation::TenantId)
                    .col(Conversation::StartedAt)
                    .col(Conversation::Channel)
                    .col(Conversation::FirstConvertedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("conversation_stats")
                    .table(Conversation::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("conversion_stats")
                    .table(Conversion::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            Conversion::ConversationChannel,
            Conversion::ConversationStartedAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Conversion::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

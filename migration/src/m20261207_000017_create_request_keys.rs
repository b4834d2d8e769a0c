//! Idempotency keys of `startSession` and `appendMessage`: what each was
//! first used for, and what it answered, so a retry gets the same answer.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RequestKey {
    Table,
    TenantId,
    Operation,
    Key,
    PayloadFingerprint,
    ConversationId,
    MessageId,
    Resumed,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RequestKey::Table)
                    .col(ColumnDef::new(RequestKey::TenantId).uuid().not_null())
                    .col(
                        ColumnDef::new(RequestKey::Operation)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(RequestKey::Key).string_len(255).not_null())
                    .col(
                        ColumnDef::new(RequestKey::PayloadFingerprint)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(RequestKey::ConversationId).uuid().not_null())
                    .col(ColumnDef::new(RequestKey::MessageId).uuid().null())
                    .col(ColumnDef::new(RequestKey::Resumed).boolean().not_null())
                    .col(
                        ColumnDef::new(RequestKey::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(RequestKey::TenantId)
                            .col(RequestKey::Operation)
                            .col(RequestKey::Key),
                    )
                    .to_owned(),
            )
            .await?;
        // Pruning reads the oldest keys first.
        manager
            .create_index(
                Index::create()
                    .name("request_key_created")
                    .table(RequestKey::Table)
                    .col(RequestKey::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RequestKey::Table).to_owned())
            .await
    }
}

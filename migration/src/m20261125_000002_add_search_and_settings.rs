//! The list's search index, per-tenant settings, and the first-conversion
//! time that makes "converted" and stats single-table questions.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenant {
    Table,
    Settings,
}

#[derive(DeriveIden)]
enum Conversation {
    Table,
    TenantId,
    Channel,
    StartedAt,
    Id,
    FirstConvertedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Tenant settings as a JSON document: URL templates, attribution
        // window, channel overrides. Read and validated by the server only.
        manager
            .alter_table(
                Table::alter()
                    .table(Tenant::Table)
                    .add_column(
                        ColumnDef::new(Tenant::Settings)
                            .text()
                            .not_null()
                            .default("{}"),
                    )
                    .to_owned(),
            )
            .await?;
        // When the conversation's first attributed conversion was recorded;
        // null while it has none.
        manager
            .alter_table(
                Table::alter()
                    .table(Conversation::Table)
                    .add_column(
                        ColumnDef::new(Conversation::FirstConvertedAt)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE conversation SET first_converted_at = (SELECT MIN(recorded_at) FROM conversion \
             WHERE conversion.conversation_id = conversation.id AND conversion.attributed)",
        )
        .await?;
        // "Which WhatsApp chats last week…": channel filters stay on an index.
        manager
            .create_index(
                Index::create()
                    .name("conversation_tenant_channel_newest")
                    .table(Conversation::Table)
                    .col(Conversation::TenantId)
                    .col(Conversation::Channel)
                    .col((Conversation::StartedAt, IndexOrder::Desc))
                    .col((Conversation::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;

        // Substring search over what visitors and the agent said (tool calls
        // are not searchable: they are hidden from most roles).
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                    .await?;
                db.execute_unprepared(
                    "CREATE INDEX message_content_trgm ON message \
                     USING gin (content gin_trgm_ops) WHERE role <> 'TOOL'",
                )
                .await?;
            }
            _ => {
                db.execute_unprepared(
                    "CREATE VIRTUAL TABLE message_search USING fts5(\
                     content, conversation_id UNINDEXED, tokenize = 'trigram')",
                )
                .await?;
                // A trigger keeps the index in the message insert's own
                // transaction, whoever inserts (the server or a bulk loader).
                db.execute_unprepared(
                    "CREATE TRIGGER message_search_insert AFTER INSERT ON message \
                     WHEN new.role <> 'TOOL' BEGIN \
                     INSERT INTO message_search (content, conversation_id) \
                     VALUES (new.content, new.conversation_id); END",
                )
                .await?;
                db.execute_unprepared(
                    "INSERT INTO message_search (content, conversation_id) \
                     SELECT content, conversation_id FROM message WHERE role <> 'TOOL'",
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared("DROP INDEX message_content_trgm")
                    .await?;
            }
            _ => {
                db.execute_unprepared("DROP TRIGGER message_search_insert")
                    .await?;
                db.execute_unprepared("DROP TABLE message_search").await?;
            }
        }
        manager
            .drop_index(
                Index::drop()
                    .name("conversation_tenant_channel_newest")
                    .table(Conversation::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversation::Table)
                    .drop_column(Conversation::FirstConvertedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Tenant::Table)
                    .drop_column(Tenant::Settings)
                    .to_owned(),
            )
            .await
    }
}

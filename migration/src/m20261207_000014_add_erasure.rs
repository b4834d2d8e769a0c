//! Erasing people: when a conversation's personal data was erased, the
//! audit log of erasures, and the indexes that find a person's
//! conversations (by contact, by signed-in user id) and the conversations
//! past a retention period without reading the whole table.
//!
//! On SQLite the two full-text indexes are told to remove a deleted row's
//! entries from their segments (`secure-delete`) instead of adding a
//! tombstone that leaves the old entries on disk until a merge.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversation {
    Table,
    ErasedAt,
}

#[derive(DeriveIden)]
enum Erasure {
    Table,
    Id,
    TenantId,
    At,
    KeyId,
    Scope,
    Reason,
    Conversations,
    Messages,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Conversation::Table)
                    .add_column(ColumnDef::new(Conversation::ErasedAt).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Erasure::Table)
                    .col(ColumnDef::new(Erasure::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Erasure::TenantId).uuid().not_null())
                    .col(ColumnDef::new(Erasure::At).big_integer().not_null())
                    .col(ColumnDef::new(Erasure::KeyId).uuid().null())
                    .col(ColumnDef::new(Erasure::Scope).string().not_null())
                    .col(ColumnDef::new(Erasure::Reason).string().not_null())
                    .col(
                        ColumnDef::new(Erasure::Conversations)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Erasure::Messages).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for sql in [
            "CREATE INDEX erasure_tenant_newest ON erasure (tenant_id, id)",
            // Contacts are compared lower-cased: a chat contact is kept as
            // the person typed it.
            "CREATE INDEX conversation_tenant_contact ON conversation (tenant_id, lower(contact)) \
             WHERE contact IS NOT NULL",
            "CREATE INDEX conversation_tenant_user ON conversation (tenant_id, user_id) \
             WHERE user_id IS NOT NULL",
            "CREATE INDEX conversation_unerased_activity ON conversation \
             (tenant_id, last_activity_at) WHERE erased_at IS NULL",
        ] {
            db.execute_unprepared(sql).await?;
        }
        if manager.get_database_backend() == DatabaseBackend::Sqlite {
            db.execute_unprepared(
                "INSERT INTO message_search (message_search, rank) VALUES ('secure-delete', 1)",
            )
            .await?;
            db.execute_unprepared(
                "INSERT INTO message_grams (message_grams, rank) VALUES ('secure-delete', 1)",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DatabaseBackend::Sqlite {
            db.execute_unprepared(
                "INSERT INTO message_search (message_search, rank) VALUES ('secure-delete', 0)",
            )
            .await?;
            db.execute_unprepared(
                "INSERT INTO message_grams (message_grams, rank) VALUES ('secure-delete', 0)",
            )
            .await?;
        }
        for index in [
            "conversation_unerased_activity",
            "conversation_tenant_user",
            "conversation_tenant_contact",
        ] {
            db.execute_unprepared(&format!("DROP INDEX {index}"))
                .await?;
        }
        manager
            .drop_table(Table::drop().table(Erasure::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversation::Table)
                    .drop_column(Conversation::ErasedAt)
                    .to_owned(),
            )
            .await
    }
}

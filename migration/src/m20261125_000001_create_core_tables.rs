//! The core slice: tenants, API keys, conversations, messages, conversions.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenant {
    Table,
    Id,
    Name,
    ConversionSeq,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKey {
    Table,
    Id,
    TenantId,
    Role,
    KeyHash,
    KeyPrefix,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Conversation {
    Table,
    Id,
    TenantId,
    SessionId,
    Channel,
    ThreadKey,
    Contact,
    UserId,
    UserName,
    StartedAt,
    LastActivityAt,
    ClosedAt,
    OpeningMessage,
    MessageCount,
}

#[derive(DeriveIden)]
enum Message {
    Table,
    Id,
    ConversationId,
    Seq,
    Role,
    Content,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Conversion {
    Table,
    Id,
    TenantId,
    ConversationId,
    Kind,
    RecordType,
    RecordId,
    Source,
    Attributed,
    UnattributedReason,
    IdempotencyKey,
    PayloadFingerprint,
    FeedSeq,
    RecordedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKey {
    Table,
    TenantId,
    Key,
    PayloadFingerprint,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tenant::Table)
                    .col(pk_uuid(Tenant::Id))
                    .col(string_uniq(Tenant::Name))
                    .col(big_integer(Tenant::ConversionSeq).default(0))
                    .col(big_integer(Tenant::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKey::Table)
                    .col(pk_uuid(ApiKey::Id))
                    .col(uuid(ApiKey::TenantId))
                    .col(string(ApiKey::Role))
                    .col(string_uniq(ApiKey::KeyHash))
                    .col(string(ApiKey::KeyPrefix))
                    .col(big_integer(ApiKey::CreatedAt))
                    .col(big_integer_null(ApiKey::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKey::Table, ApiKey::TenantId)
                            .to(Tenant::Table, Tenant::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Conversation::Table)
                    .col(pk_uuid(Conversation::Id))
                    .col(uuid(Conversation::TenantId))
                    .col(string_uniq(Conversation::SessionId))
                    .col(string(Conversation::Channel))
                    .col(string_null(Conversation::ThreadKey))
                    .col(string_null(Conversation::Contact))
                    .col(string_null(Conversation::UserId))
                    .col(string_null(Conversation::UserName))
                    .col(big_integer(Conversation::StartedAt))
                    .col(big_integer(Conversation::LastActivityAt))
                    .col(big_integer_null(Conversation::ClosedAt))
                    .col(text_null(Conversation::OpeningMessage))
                    .col(integer(Conversation::MessageCount).default(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Conversation::Table, Conversation::TenantId)
                            .to(Tenant::Table, Tenant::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // The AI Conversations list: one tenant, newest first, keyset on (started_at, id).
        manager
            .create_index(
                Index::create()
                    .name("conversation_tenant_newest")
                    .table(Conversation::Table)
                    .col(Conversation::TenantId)
                    .col((Conversation::StartedAt, IndexOrder::Desc))
                    .col((Conversation::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        // Resuming an EMAIL / WHATSAPP session by its sender and thread.
        manager
            .create_index(
                Index::create()
                    .name("conversation_resume")
                    .table(Conversation::Table)
                    .col(Conversation::TenantId)
                    .col(Conversation::Channel)
                    .col(Conversation::Contact)
                    .col(Conversation::ThreadKey)
                    .col((Conversation::LastActivityAt, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Message::Table)
                    .col(pk_uuid(Message::Id))
                    .col(uuid(Message::ConversationId))
                    .col(integer(Message::Seq))
                    .col(string(Message::Role))
                    .col(text(Message::Content))
                    .col(big_integer(Message::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Message::Table, Message::ConversationId)
                            .to(Conversation::Table, Conversation::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("message_conversation_seq")
                    .table(Message::Table)
                    .col(Message::ConversationId)
                    .col(Message::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Conversion::Table)
                    .col(pk_uuid(Conversion::Id))
                    .col(uuid(Conversion::TenantId))
                    .col(uuid_null(Conversion::ConversationId))
                    .col(string(Conversion::Kind))
                    .col(string(Conversion::RecordType))
                    .col(string(Conversion::RecordId))
                    .col(string(Conversion::Source))
                    .col(boolean(Conversion::Attributed))
                    .col(string_null(Conversion::UnattributedReason))
                    .col(string_null(Conversion::IdempotencyKey))
                    .col(string_null(Conversion::PayloadFingerprint))
                    .col(big_integer(Conversion::FeedSeq))
                    .col(big_integer(Conversion::RecordedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Conversion::Table, Conversion::TenantId)
                            .to(Tenant::Table, Tenant::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Conversion::Table, Conversion::ConversationId)
                            .to(Conversation::Table, Conversation::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // Badges and conversions of a page of conversations.
        manager
            .create_index(
                Index::create()
                    .name("conversion_conversation")
                    .table(Conversion::Table)
                    .col(Conversion::ConversationId)
                    .col(Conversion::Kind)
                    .col(Conversion::RecordId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The event feed's cursor.
        manager
            .create_index(
                Index::create()
                    .name("conversion_feed")
                    .table(Conversion::Table)
                    .col(Conversion::TenantId)
                    .col(Conversion::FeedSeq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Record -> conversion (conversationForRecord, and the CONFLICT rule).
        manager
            .create_index(
                Index::create()
                    .name("conversion_record")
                    .table(Conversion::Table)
                    .col(Conversion::TenantId)
                    .col(Conversion::RecordType)
                    .col(Conversion::RecordId)
                    .to_owned(),
            )
            .await?;
        // Every idempotency key a tenant has used, with the payload it was
        // first used for; kept even when that first use was a replay.
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKey::Table)
                    .col(uuid(IdempotencyKey::TenantId))
                    .col(string(IdempotencyKey::Key))
                    .col(string(IdempotencyKey::PayloadFingerprint))
                    .col(big_integer(IdempotencyKey::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(IdempotencyKey::TenantId)
                            .col(IdempotencyKey::Key),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(IdempotencyKey::Table, IdempotencyKey::TenantId)
                            .to(Tenant::Table, Tenant::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // Partial unique indexes are not in the schema builder; this SQL is the
        // same on SQLite and PostgreSQL. They back the service's checks, so a
        // race that slipped past them still cannot store a record twice.
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE UNIQUE INDEX conversion_record_owner ON conversion \
             (tenant_id, kind, record_id) WHERE kind <> 'TOUR_BOOKED'",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX conversion_idempotency ON conversion \
             (tenant_id, idempotency_key, kind) WHERE idempotency_key IS NOT NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IdempotencyKey::Table.into_iden(),
            Conversion::Table.into_iden(),
            Message::Table.into_iden(),
            Conversation::Table.into_iden(),
            ApiKey::Table.into_iden(),
            Tenant::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

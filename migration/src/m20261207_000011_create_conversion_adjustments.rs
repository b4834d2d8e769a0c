//! Changes to a recorded sale: restatements (a new value) and retractions
//! (withdrawn), each kept as a row with its own place in the tenant's
//! feed, next to the conversion rows (the same sequence numbers them).
//!
//! A conversion now keeps its status and the value it was recorded with
//! (its feed event says what it was then); `value_minor` is its value now.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversion {
    Table,
    Status,
    RecordedValueMinor,
    ValueMinor,
}

#[derive(DeriveIden)]
enum ConversionAdjustment {
    Table,
    Id,
    TenantId,
    ConversionId,
    Change,
    ValueMinor,
    PreviousValueMinor,
    Currency,
    PreviousCurrency,
    Reason,
    Role,
    IdempotencyKey,
    At,
    FeedSeq,
    FeedXid,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let add = |column: ColumnDef| {
            Table::alter()
                .table(Conversion::Table)
                .add_column(column)
                .to_owned()
        };
        manager
            .alter_table(add(ColumnDef::new(Conversion::Status)
                .string_len(16)
                .not_null()
                .default("ACTIVE")
                .to_owned()))
            .await?;
        manager
            .alter_table(add(ColumnDef::new(Conversion::RecordedValueMinor)
                .big_integer()
                .null()
                .to_owned()))
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Conversion::Table)
                    .value(
                        Conversion::RecordedValueMinor,
                        Expr::col(Conversion::ValueMinor),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConversionAdjustment::Table)
                    .col(
                        ColumnDef::new(ConversionAdjustment::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ConversionAdjustment::TenantId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConversionAdjustment::ConversionId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConversionAdjustment::Change)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConversionAdjustment::ValueMinor)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ConversionAdjustment::PreviousValueMinor)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ConversionAdjustment::Currency)
                            .string_len(3)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ConversionAdjustment::PreviousCurrency)
                            .string_len(3)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ConversionAdjustment::Reason)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConversionAdjustment::Role)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConversionAdjustment::IdempotencyKey)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConversionAdjustment::At)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConversionAdjustment::FeedSeq)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConversionAdjustment::FeedXid)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            (
                "conversion_adjustment_feed_order",
                vec![
                    ConversionAdjustment::TenantId,
                    ConversionAdjustment::FeedXid,
                    ConversionAdjustment::FeedSeq,
                ],
            ),
            (
                "conversion_adjustment_history",
                vec![
                    ConversionAdjustment::ConversionId,
                    ConversionAdjustment::FeedXid,
                    ConversionAdjustment::FeedSeq,
                ],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(ConversionAdjustment::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("conversion_adjustment_key")
                    .table(ConversionAdjustment::Table)
                    .col(ConversionAdjustment::TenantId)
                    .col(ConversionAdjustment::IdempotencyKey)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ConversionAdjustment::Table).to_owned())
            .await?;
        for column in [Conversion::RecordedValueMinor, Conversion::Status] {
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

//! Reviewing unattributed conversions.
//!
//! - `conversion.review`: `ATTRIBUTED` when an operator credited it anyway
//!   (`attributed` is then true; the feed's `RECORDED` event still says it
//!   came in unattributed), `DISMISSED` when an operator took it out of the
//!   review queue; null otherwise.
//! - `conversion_adjustment.key_prefix`: the first characters of the API
//!   key that made a change (who), for every change from now on.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversion {
    Table,
    Review,
}

#[derive(DeriveIden)]
enum ConversionAdjustment {
    Table,
    KeyPrefix,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Conversion::Table)
                    .add_column(ColumnDef::new(Conversion::Review).string_len(16).null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ConversionAdjustment::Table)
                    .add_column(
                        ColumnDef::new(ConversionAdjustment::KeyPrefix)
                            .string_len(32)
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ConversionAdjustment::Table)
                    .drop_column(ConversionAdjustment::KeyPrefix)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversion::Table)
                    .drop_column(Conversion::Review)
                    .to_owned(),
            )
            .await
    }
}

//! What a conversion earned: an amount in minor units and its ISO 4217
//! currency, both empty for conversions recorded without a value.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversion {
    Table,
    ValueMinor,
    Currency,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Conversion::Table)
                    .add_column(ColumnDef::new(Conversion::ValueMinor).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversion::Table)
                    .add_column(ColumnDef::new(Conversion::Currency).string_len(3).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Conversion::Currency, Conversion::ValueMinor] {
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

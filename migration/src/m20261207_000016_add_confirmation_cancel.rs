//! A confirmation the person declined: when, and the agent's reason.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Confirmation {
    Table,
    CancelledAt,
    CancelReason,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Confirmation::Table)
                    .add_column(
                        ColumnDef::new(Confirmation::CancelledAt)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Confirmation::Table)
                    .add_column(ColumnDef::new(Confirmation::CancelReason).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Confirmation::CancelReason, Confirmation::CancelledAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Confirmation::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

//! The SHA-256 digest of each investigation snapshot's body, written with the body. A read
//! fetches the digest instead of the body, and the body only when the read cache holds
//! nothing built from a body with that digest (ARCHITECTURE.md, "Reads"). Snapshots written
//! before this migration get theirs when the server starts (`snapshot::backfill`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("investigation_snapshot")
                    .add_column(ColumnDef::new("digest").binary().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("investigation_snapshot")
                    .drop_column("digest")
                    .to_owned(),
            )
            .await
    }
}

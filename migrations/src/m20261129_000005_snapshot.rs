//! The investigation snapshot: per investigation, every row below it as one JSON document,
//! rewritten by the store in the same transaction as each change (the read model that lets a
//! listing read a page of investigations with one statement; see ARCHITECTURE.md, "Reads").
//! Rows of earlier investigations get theirs when the server starts (`snapshot::backfill`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("investigation_snapshot")
                    .col(pk_uuid("investigation_id"))
                    .col(integer("format"))
                    .col(text("body"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("investigation_snapshot", "investigation_id")
                            .to("investigation", "id"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_tables(manager, &["investigation_snapshot"]).await
    }
}

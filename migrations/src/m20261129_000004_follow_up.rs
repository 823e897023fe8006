//! Council submissions with their frozen bundles, council decisions (history kept, one current
//! per council and recommendation) and implementation updates.

use crate::{belongs_to_investigation, create_table, drop_tables, index};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_table(
            manager,
            Table::create()
                .table("council_submission")
                .col(pk_uuid("id"))
                .col(uuid("investigation_id"))
                .col(uuid("municipality_id"))
                .col(timestamp_with_time_zone("submitted_at"))
                .col(text("manifest"))
                .col(string("manifest_sha256"))
                .foreign_key(&mut belongs_to_investigation("council_submission")),
            vec![index("council_submission", &["investigation_id"], false)],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("submission_version")
                .col(uuid("submission_id"))
                .col(integer("position"))
                .col(uuid("version_id"))
                .primary_key(Index::create().col("submission_id").col("position"))
                .foreign_key(
                    ForeignKey::create()
                        .from("submission_version", "submission_id")
                        .to("council_submission", "id"),
                ),
            vec![],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("council_decision")
                .col(pk_uuid("id"))
                .col(uuid("recommendation_id"))
                .col(uuid("investigation_id"))
                .col(uuid("municipality_id"))
                .col(string("decision"))
                .col(text_null("note"))
                .col(boolean("current"))
                .col(uuid("recorded_by"))
                .col(timestamp_with_time_zone("recorded_at"))
                .foreign_key(&mut belongs_to_investigation("council_decision")),
            vec![
                index(
                    "council_decision",
                    &["recommendation_id", "municipality_id"],
                    false,
                ),
                index("council_decision", &["investigation_id"], false),
            ],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("implementation_update")
                .col(pk_uuid("id"))
                .col(uuid("recommendation_id"))
                .col(uuid("investigation_id"))
                .col(uuid("municipality_id"))
                .col(text("text"))
                .col(uuid("author_id"))
                .col(timestamp_with_time_zone("at"))
                .foreign_key(&mut belongs_to_investigation("implementation_update")),
            vec![index("implementation_update", &["investigation_id"], false)],
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "implementation_update",
                "council_decision",
                "submission_version",
                "council_submission",
            ],
        )
        .await
    }
}

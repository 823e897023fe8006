//! Investigations: participants, rapporteurs, documents and immutable versions, approvals,
//! recommendations and frozen version sets.

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
                .table("investigation")
                .col(pk_uuid("id"))
                .col(string("title"))
                .col(string("phase"))
                .col(boolean("suspended"))
                .col(timestamp_with_time_zone_null("suspended_at"))
                .col(text("research_questions"))
                .col(date_null("scope_start"))
                .col(date_null("scope_end"))
                .col(string_null("rebuttal_mode"))
                .col(date_null("rebuttal_due_date"))
                .col(boolean("proposal_approved"))
                .col(timestamp_with_time_zone_null("published_at"))
                .col(uuid("created_by"))
                .col(timestamp_with_time_zone("created_at")),
            vec![index("investigation", &["phase"], false)],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("investigation_commission")
                .col(uuid("investigation_id"))
                .col(uuid("commission_id"))
                .col(integer("position"))
                .primary_key(Index::create().col("investigation_id").col("commission_id"))
                .foreign_key(&mut belongs_to_investigation("investigation_commission"))
                .foreign_key(
                    ForeignKey::create()
                        .from("investigation_commission", "commission_id")
                        .to("commission", "id"),
                ),
            vec![index("investigation_commission", &["commission_id"], false)],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("rapporteur")
                .col(uuid("investigation_id"))
                .col(uuid("user_id"))
                .col(uuid("commission_id"))
                .col(timestamp_with_time_zone("assigned_at"))
                .primary_key(
                    Index::create()
                        .col("investigation_id")
                        .col("user_id")
                        .col("commission_id"),
                )
                .foreign_key(&mut belongs_to_investigation("rapporteur")),
            vec![index("rapporteur", &["user_id"], false)],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("document")
                .col(pk_uuid("id"))
                .col(uuid("investigation_id"))
                .col(string("kind"))
                .col(string("title"))
                .col(uuid_null("municipality_id"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut belongs_to_investigation("document")),
            vec![index("document", &["investigation_id"], false)],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("document_version")
                .col(pk_uuid("id"))
                .col(uuid("document_id"))
                .col(uuid("investigation_id"))
                .col(integer("number"))
                .col(string("sha256"))
                .col(big_integer("size_bytes"))
                .col(string("media_type"))
                .col(string_null("file_name"))
                .col(uuid("author_id"))
                .col(text_null("note"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("document_version", "document_id")
                        .to("document", "id"),
                ),
            vec![
                index("document_version", &["document_id", "number"], true),
                index("document_version", &["investigation_id"], false),
            ],
        )
        .await?;
        // Content apart from the metadata, so listing versions never reads the bytes.
        create_table(
            manager,
            Table::create()
                .table("version_content")
                .col(pk_uuid("version_id"))
                .col(blob("body"))
                .foreign_key(
                    ForeignKey::create()
                        .from("version_content", "version_id")
                        .to("document_version", "id"),
                ),
            vec![],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("approval")
                .col(pk_uuid("id"))
                .col(uuid("investigation_id"))
                .col(string("phase"))
                .col(uuid("commission_id"))
                .col(uuid("approved_by"))
                .col(timestamp_with_time_zone("approved_at"))
                .col(text_null("comment"))
                .col(string("fingerprint"))
                .col(timestamp_with_time_zone_null("voided_at"))
                .col(text_null("void_reason"))
                .foreign_key(&mut belongs_to_investigation("approval")),
            vec![index("approval", &["investigation_id", "phase"], false)],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("recommendation")
                .col(pk_uuid("id"))
                .col(uuid("investigation_id"))
                .col(integer("number"))
                .col(text("text"))
                .col(string("addressee"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut belongs_to_investigation("recommendation")),
            vec![index(
                "recommendation",
                &["investigation_id", "number"],
                true,
            )],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("frozen_version")
                .col(uuid("investigation_id"))
                .col(string("purpose"))
                .col(uuid("version_id"))
                .col(timestamp_with_time_zone("frozen_at"))
                .primary_key(
                    Index::create()
                        .col("investigation_id")
                        .col("purpose")
                        .col("version_id"),
                )
                .foreign_key(&mut belongs_to_investigation("frozen_version")),
            vec![],
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "frozen_version",
                "recommendation",
                "approval",
                "version_content",
                "document_version",
                "document",
                "rapporteur",
                "investigation_commission",
                "investigation",
            ],
        )
        .await
    }
}

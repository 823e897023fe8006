//! The factual check and the rebuttal round: deadlines, reminders, responses with their
//! colleges and positions, extension requests and the commissions' votes on them.

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
                .table("deadline")
                .col(pk_uuid("id"))
                .col(uuid("investigation_id"))
                .col(string("kind"))
                .col(uuid("municipality_id"))
                .col(timestamp_with_time_zone("due_at"))
                .col(string("status"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("closed_at"))
                .foreign_key(&mut belongs_to_investigation("deadline")),
            vec![
                index("deadline", &["investigation_id"], false),
                index("deadline", &["status", "due_at"], false),
            ],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("deadline_reminder")
                .col(uuid("deadline_id"))
                .col(big_integer("before_seconds"))
                .col(timestamp_with_time_zone("sent_at"))
                .primary_key(Index::create().col("deadline_id").col("before_seconds"))
                .foreign_key(
                    ForeignKey::create()
                        .from("deadline_reminder", "deadline_id")
                        .to("deadline", "id"),
                ),
            vec![],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("response")
                .col(pk_uuid("id"))
                .col(uuid("investigation_id"))
                .col(uuid("document_id"))
                .col(uuid("version_id"))
                .col(boolean("late"))
                .col(uuid("filed_by"))
                .col(timestamp_with_time_zone("filed_at"))
                .foreign_key(&mut belongs_to_investigation("response")),
            vec![index("response", &["investigation_id"], false)],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("response_college")
                .col(uuid("response_id"))
                .col(uuid("municipality_id"))
                .col(timestamp_with_time_zone_null("signed_at"))
                .col(uuid_null("signed_by"))
                .primary_key(Index::create().col("response_id").col("municipality_id"))
                .foreign_key(
                    ForeignKey::create()
                        .from("response_college", "response_id")
                        .to("response", "id"),
                ),
            vec![],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("response_position")
                .col(uuid("response_id"))
                .col(uuid("recommendation_id"))
                .col(string("position"))
                .primary_key(Index::create().col("response_id").col("recommendation_id"))
                .foreign_key(
                    ForeignKey::create()
                        .from("response_position", "response_id")
                        .to("response", "id"),
                ),
            vec![],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("extension_request")
                .col(pk_uuid("id"))
                .col(uuid("investigation_id"))
                .col(uuid("municipality_id"))
                .col(date("proposed_due_date"))
                .col(text("reason"))
                .col(uuid("requested_by"))
                .col(timestamp_with_time_zone("requested_at"))
                .col(boolean_null("granted"))
                .col(timestamp_with_time_zone_null("decided_at"))
                .foreign_key(&mut belongs_to_investigation("extension_request")),
            vec![index("extension_request", &["investigation_id"], false)],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("extension_vote")
                .col(uuid("request_id"))
                .col(uuid("commission_id"))
                .col(boolean("grant"))
                .col(text_null("comment"))
                .col(uuid("decided_by"))
                .col(timestamp_with_time_zone("decided_at"))
                .primary_key(Index::create().col("request_id").col("commission_id"))
                .foreign_key(
                    ForeignKey::create()
                        .from("extension_vote", "request_id")
                        .to("extension_request", "id"),
                ),
            vec![],
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "extension_vote",
                "extension_request",
                "response_position",
                "response_college",
                "response",
                "deadline_reminder",
                "deadline",
            ],
        )
        .await
    }
}

//! Accounts, sessions, login throttling, organisation, role grants and the audit log.

use crate::{create_table, drop_tables, index};
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
                .table("app_user")
                .col(pk_uuid("id"))
                .col(string("email"))
                .col(string("name"))
                .col(string("password_hash"))
                .col(boolean("disabled"))
                .col(timestamp_with_time_zone("created_at")),
            vec![index("app_user", &["email"], true)],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("session")
                .col(pk_uuid("id"))
                .col(uuid("user_id"))
                .col(string("token_hash"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("last_seen_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .col(timestamp_with_time_zone_null("revoked_at"))
                .col(string_null("client"))
                .foreign_key(
                    ForeignKey::create()
                        .from("session", "user_id")
                        .to("app_user", "id"),
                ),
            vec![
                index("session", &["token_hash"], true),
                index("session", &["user_id"], false),
            ],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("login_attempt")
                .col(big_pk_auto("id"))
                .col(string("account_key"))
                .col(string("client"))
                .col(boolean("succeeded"))
                .col(timestamp_with_time_zone("at")),
            vec![
                index("login_attempt", &["account_key", "at"], false),
                index("login_attempt", &["client", "at"], false),
            ],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("municipality")
                .col(pk_uuid("id"))
                .col(string("name"))
                .col(uuid("council_id"))
                .col(uuid("college_id"))
                .col(timestamp_with_time_zone("created_at")),
            vec![
                index("municipality", &["name"], true),
                index("municipality", &["council_id"], true),
                index("municipality", &["college_id"], true),
            ],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("commission")
                .col(pk_uuid("id"))
                .col(string("name"))
                .col(integer("rebuttal_term_days"))
                .col(integer("factual_check_term_days"))
                .col(timestamp_with_time_zone("created_at")),
            vec![index("commission", &["name"], true)],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("commission_municipality")
                .col(uuid("commission_id"))
                .col(uuid("municipality_id"))
                .primary_key(Index::create().col("commission_id").col("municipality_id"))
                .foreign_key(
                    ForeignKey::create()
                        .from("commission_municipality", "commission_id")
                        .to("commission", "id"),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from("commission_municipality", "municipality_id")
                        .to("municipality", "id"),
                ),
            vec![],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("role_grant")
                .col(pk_uuid("id"))
                .col(uuid("user_id"))
                .col(string("role"))
                .col(uuid_null("commission_id"))
                .col(uuid_null("municipality_id"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("role_grant", "user_id")
                        .to("app_user", "id"),
                ),
            vec![index("role_grant", &["user_id"], false)],
        )
        .await?;
        // The audit log: one row per state change, hash-chained. `audit_head` holds the last
        // sequence number and hash; writers lock it so the chain never forks.
        create_table(
            manager,
            Table::create()
                .table("audit_event")
                .col(big_integer("seq").primary_key())
                .col(timestamp_with_time_zone("at"))
                .col(uuid_null("actor_id"))
                .col(string("action"))
                .col(uuid_null("investigation_id"))
                .col(text("data"))
                .col(string_null("origin"))
                .col(string("prev_hash"))
                .col(string("hash")),
            vec![index("audit_event", &["investigation_id", "seq"], false)],
        )
        .await?;
        create_table(
            manager,
            Table::create()
                .table("audit_head")
                .col(integer("id").primary_key())
                .col(big_integer("seq"))
                .col(string("hash")),
            vec![],
        )
        .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table("audit_head")
                    .columns(["id", "seq", "hash"])
                    .values_panic([
                        1.into(),
                        0i64.into(),
                        "0000000000000000000000000000000000000000000000000000000000000000".into(),
                    ])
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "audit_head",
                "audit_event",
                "role_grant",
                "commission_municipality",
                "commission",
                "municipality",
                "login_attempt",
                "session",
                "app_user",
            ],
        )
        .await
    }
}

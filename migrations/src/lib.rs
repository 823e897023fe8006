//! rkflow's schema migrations. They use only sea-query builders and the schema helpers (no raw
//! SQL), so every migration runs on SQLite and PostgreSQL alike; both run in CI.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_organisation;
mod m20261129_000002_lifecycle;
mod m20261129_000003_rebuttal;
mod m20261129_000004_follow_up;
mod m20261129_000005_snapshot;
mod m20261130_000006_snapshot_digest;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_organisation::Migration),
            Box::new(m20261129_000002_lifecycle::Migration),
            Box::new(m20261129_000003_rebuttal::Migration),
            Box::new(m20261129_000004_follow_up::Migration),
            Box::new(m20261129_000005_snapshot::Migration),
            Box::new(m20261130_000006_snapshot_digest::Migration),
        ]
    }
}

/// Creates a table from its columns and indexes (shared by the migrations).
pub(crate) async fn create_table(
    manager: &SchemaManager<'_>,
    table: &mut TableCreateStatement,
    indexes: Vec<IndexCreateStatement>,
) -> Result<(), DbErr> {
    manager.create_table(table.to_owned()).await?;
    for index in indexes {
        manager.create_index(index).await?;
    }
    Ok(())
}

/// An index over `columns` of `table`, named after them.
pub(crate) fn index(
    table: &'static str,
    columns: &[&'static str],
    unique: bool,
) -> IndexCreateStatement {
    let mut statement = Index::create();
    statement
        .name(format!("ix_{}_{}", table, columns.join("_")))
        .table(table);
    for column in columns {
        statement.col(*column);
    }
    if unique {
        statement.unique();
    }
    statement.to_owned()
}

/// A foreign key from `table.investigation_id` to `investigation.id`.
pub(crate) fn belongs_to_investigation(table: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, "investigation_id")
        .to("investigation", "id")
        .to_owned()
}

/// Drops tables in the given order (a migration's `down`).
pub(crate) async fn drop_tables(
    manager: &SchemaManager<'_>,
    tables: &[&'static str],
) -> Result<(), DbErr> {
    for table in tables {
        manager
            .drop_table(Table::drop().table(*table).to_owned())
            .await?;
    }
    Ok(())
}

//! Table `investigation_snapshot`: the read model of one investigation (see `crate::snapshot`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, Default, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "investigation_snapshot")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub investigation_id: Uuid,
    /// The layout of `body` ([`crate::snapshot::FORMAT`]); another one is read as missing.
    pub format: i32,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    /// SHA-256 of `body` ([`crate::snapshot::digest`]); `None` until [`crate::snapshot::backfill`]
    /// has written it for a snapshot older than the column.
    pub digest: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

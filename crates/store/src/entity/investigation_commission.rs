//! Table `investigation_commission`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "investigation_commission")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub investigation_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub commission_id: Uuid,
    pub position: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! Table `extension_request`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "extension_request")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub investigation_id: Uuid,
    pub municipality_id: Uuid,
    pub proposed_due_date: Date,
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    pub requested_by: Uuid,
    pub requested_at: DateTimeUtc,
    pub granted: Option<bool>,
    pub decided_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

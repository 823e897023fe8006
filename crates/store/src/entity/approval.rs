//! Table `approval`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "approval")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub investigation_id: Uuid,
    pub phase: String,
    pub commission_id: Uuid,
    pub approved_by: Uuid,
    pub approved_at: DateTimeUtc,
    #[sea_orm(column_type = "Text", nullable)]
    pub comment: Option<String>,
    pub fingerprint: String,
    pub voided_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub void_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

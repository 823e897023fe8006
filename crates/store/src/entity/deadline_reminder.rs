//! Table `deadline_reminder`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "deadline_reminder")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub deadline_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub before_seconds: i64,
    pub sent_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

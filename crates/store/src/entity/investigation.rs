//! Table `investigation`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "investigation")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub title: String,
    pub phase: String,
    pub suspended: bool,
    pub suspended_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text")]
    pub research_questions: String,
    pub scope_start: Option<Date>,
    pub scope_end: Option<Date>,
    pub rebuttal_mode: Option<String>,
    pub rebuttal_due_date: Option<Date>,
    pub proposal_approved: bool,
    pub published_at: Option<DateTimeUtc>,
    pub created_by: Uuid,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

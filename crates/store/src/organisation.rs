//! Municipalities (with their council and college) and commissions.

use crate::Db;
use crate::audit::{self, Origin};
use crate::entity::{commission, commission_municipality, municipality};
use crate::error::{StoreError, StoreResult};
use crate::joins::{to_children, to_parent};
use crate::positional::Columns;
use crate::statements::{self, uuid_values};
use chrono::{DateTime, Utc};
use rkflow_domain::DomainError;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, JoinType, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
};
use serde_json::json;
use uuid::Uuid;

/// Default terms of a new commission (days), until its policy says otherwise.
pub const DEFAULT_REBUTTAL_TERM_DAYS: i32 = 21;
pub const DEFAULT_FACTUAL_CHECK_TERM_DAYS: i32 = 21;

/// A commission with the municipalities it serves (their rows, in the order of their ids).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommissionWithMunicipalities {
    pub commission: commission::Model,
    pub municipalities: Vec<municipality::Model>,
}

impl CommissionWithMunicipalities {
    pub fn municipality_ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.municipalities.iter().map(|m| m.id)
    }
}

fn unique_name(err: StoreError, what: &str) -> StoreError {
    if err.is_unique_violation() {
        DomainError::conflict(format!("a {what} with this name exists")).into()
    } else {
        err
    }
}

pub async fn create_municipality(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    name: &str,
) -> StoreResult<municipality::Model> {
    let txn = db.begin_write().await?;
    let model = municipality::Model {
        id: Uuid::now_v7(),
        name: name.to_string(),
        council_id: Uuid::now_v7(),
        college_id: Uuid::now_v7(),
        created_at: now,
    };
    municipality::Entity::insert(sea_orm::IntoActiveModel::into_active_model(model.clone()))
        .exec(&txn)
        .await
        .map_err(|err| unique_name(err.into(), "municipality"))?;
    audit::record(
        &txn,
        origin,
        now,
        "municipality.created",
        json!({ "municipality": model.id, "name": name }),
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

pub async fn create_commission(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    name: &str,
    municipality_ids: &[Uuid],
) -> StoreResult<CommissionWithMunicipalities> {
    let txn = db.begin_write().await?;
    let found = municipality::Entity::find()
        .filter(municipality::Column::Id.is_in(municipality_ids.iter().copied()))
        .all(&txn)
        .await?;
    if found.len() != municipality_ids.len() {
        return Err(DomainError::bad_input("municipalityIds", "unknown municipality").into());
    }
    let model = commission::Model {
        id: Uuid::now_v7(),
        name: name.to_string(),
        rebuttal_term_days: DEFAULT_REBUTTAL_TERM_DAYS,
        factual_check_term_days: DEFAULT_FACTUAL_CHECK_TERM_DAYS,
        created_at: now,
    };
    commission::Entity::insert(sea_orm::IntoActiveModel::into_active_model(model.clone()))
        .exec(&txn)
        .await
        .map_err(|err| unique_name(err.into(), "commission"))?;
    commission_municipality::Entity::insert_many(municipality_ids.iter().map(|m| {
        sea_orm::IntoActiveModel::into_active_model(commission_municipality::Model {
            commission_id: model.id,
            municipality_id: *m,
        })
    }))
    .exec(&txn)
    .await?;
    audit::record(
        &txn,
        origin,
        now,
        "commission.created",
        json!({ "commission": model.id, "name": name, "municipalities": municipality_ids }),
    )
    .await?;
    txn.commit().await?;
    let mut municipalities = found;
    municipalities.sort_by_key(|m| m.id);
    Ok(CommissionWithMunicipalities {
        commission: model,
        municipalities,
    })
}

pub async fn municipalities<C: ConnectionTrait>(db: &C) -> StoreResult<Vec<municipality::Model>> {
    Ok(municipality::Entity::find()
        .order_by_asc(municipality::Column::Name)
        .all(db)
        .await?)
}

pub async fn municipalities_by_ids<C: ConnectionTrait>(
    db: &C,
    ids: &[Uuid],
) -> StoreResult<Vec<municipality::Model>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(municipality::Entity::find()
        .filter(municipality::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

/// The municipality whose college (or council) has this id.
pub async fn municipality_of_body<C: ConnectionTrait>(
    db: &C,
    body_id: Uuid,
) -> StoreResult<Option<municipality::Model>> {
    Ok(municipality::Entity::find()
        .filter(
            municipality::Column::CollegeId
                .eq(body_id)
                .or(municipality::Column::CouncilId.eq(body_id)),
        )
        .one(db)
        .await?)
}

pub async fn commissions<C: ConnectionTrait>(
    db: &C,
) -> StoreResult<Vec<CommissionWithMunicipalities>> {
    let rows = with_municipalities(
        commission::Entity::find()
            .order_by_asc(commission::Column::Name)
            .order_by_asc(commission::Column::Id),
    )
    .all(db)
    .await?;
    grouped(rows.into_iter().map(Ok))
}

pub async fn commissions_by_ids<C: ConnectionTrait>(
    db: &C,
    ids: &[Uuid],
) -> StoreResult<Vec<CommissionWithMunicipalities>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = statements::query_all(
        db,
        "commissions by ids with municipalities",
        uuid_values(ids),
        |backend| {
            with_municipalities(
                commission::Entity::find()
                    .filter(commission::Column::Id.is_in(ids.iter().copied()))
                    .order_by_asc(commission::Column::Id),
            )
            .build(backend)
        },
    )
    .await?;
    // By position (`positional`): the commission's columns, then its municipality's.
    grouped(rows.iter().map(|row| {
        let mut columns = Columns::of(row);
        Ok((columns.model()?, columns.optional()?))
    }))
}

/// Commissions with their municipalities (in the order of their ids), in one statement: the
/// commissions joined to their links and the links to the municipalities, so that whoever
/// shows a commission's municipalities (or their councils and colleges) reads nothing more.
fn with_municipalities(
    commissions: sea_orm::Select<commission::Entity>,
) -> sea_orm::SelectTwo<commission::Entity, municipality::Entity> {
    commissions
        .select_also(municipality::Entity)
        .join(
            JoinType::LeftJoin,
            to_children::<commission::Entity, commission_municipality::Entity>(
                commission_municipality::Column::CommissionId,
                commission::Column::Id,
            ),
        )
        .join(
            JoinType::LeftJoin,
            to_parent::<commission_municipality::Entity, municipality::Entity>(
                commission_municipality::Column::MunicipalityId,
                municipality::Column::Id,
            ),
        )
        .order_by_asc(municipality::Column::Id)
}

/// The rows of [`with_municipalities`], each commission with its municipalities.
fn grouped<R>(rows: R) -> StoreResult<Vec<CommissionWithMunicipalities>>
where
    R: IntoIterator<Item = Result<(commission::Model, Option<municipality::Model>), DbErr>>,
{
    let mut found: Vec<CommissionWithMunicipalities> = Vec::new();
    for row in rows {
        let (commission, municipality) = row?;
        match found.last_mut() {
            Some(last) if last.commission.id == commission.id => {}
            _ => found.push(CommissionWithMunicipalities {
                commission,
                municipalities: Vec::new(),
            }),
        }
        if let (Some(last), Some(municipality)) = (found.last_mut(), municipality) {
            last.municipalities.push(municipality);
        }
    }
    Ok(found)
}

/// Municipalities by the ids of their colleges (for arguments that name colleges).
pub async fn municipalities_by_college_ids<C: ConnectionTrait>(
    db: &C,
    college_ids: &[Uuid],
) -> StoreResult<Vec<municipality::Model>> {
    if college_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(municipality::Entity::find()
        .filter(municipality::Column::CollegeId.is_in(college_ids.iter().copied()))
        .all(db)
        .await?)
}

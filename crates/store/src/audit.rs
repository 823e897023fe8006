//! Appending to and verifying the hash-chained audit log.

use crate::entity::{audit_event, audit_head};
use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use rkflow_domain::audit::{self, EventFields, Verification};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

/// Who caused a change and from where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub actor: Option<Uuid>,
    /// The client address, when known.
    pub client: Option<String>,
}

/// One event to append.
#[derive(Clone, Debug)]
pub struct NewEvent<'a> {
    pub action: &'a str,
    pub investigation: Option<Uuid>,
    pub data: serde_json::Value,
}

/// Appends events in the caller's transaction. Locks the chain head (`FOR UPDATE` on
/// PostgreSQL; SQLite write transactions are exclusive already), so concurrent writers extend
/// the chain one after the other and it never forks.
pub async fn append(
    txn: &DatabaseTransaction,
    origin: &Origin,
    at: DateTime<Utc>,
    events: &[NewEvent<'_>],
) -> StoreResult<Vec<audit_event::Model>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let head = audit_head::Entity::find_by_id(1)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| StoreError::corrupt("audit_head row missing"))?;
    let mut seq = head.seq;
    let mut previous = head.hash.clone();
    let mut written = Vec::with_capacity(events.len());
    let actor = origin.actor.map(|id| id.to_string());
    for event in events {
        seq += 1;
        let data = canonical_json(&event.data);
        let investigation = event.investigation.map(|id| id.to_string());
        let fields = EventFields {
            seq,
            at,
            actor: actor.as_deref(),
            action: event.action,
            investigation: investigation.as_deref(),
            data: &data,
            origin: origin.client.as_deref(),
        };
        let hash = audit::chain_hash(&previous, &fields);
        let model = audit_event::Model {
            seq,
            at,
            actor_id: origin.actor,
            action: event.action.to_string(),
            investigation_id: event.investigation,
            data,
            origin: origin.client.clone(),
            prev_hash: previous.clone(),
            hash: hash.clone(),
        };
        written.push(model);
        previous = hash;
    }
    let rows: Vec<audit_event::ActiveModel> = written
        .iter()
        .cloned()
        .map(sea_orm::IntoActiveModel::into_active_model)
        .collect();
    audit_event::Entity::insert_many(rows).exec(txn).await?;
    audit_head::Entity::update(audit_head::ActiveModel {
        id: Set(1),
        seq: Set(seq),
        hash: Set(previous),
    })
    .exec(txn)
    .await?;
    notify(txn, head.seq + 1, seq).await?;
    Ok(written)
}

/// The PostgreSQL channel on which every commit that appended audit events is announced.
pub const EVENTS_CHANNEL: &str = "rkflow_events";

/// What a notification on [`EVENTS_CHANNEL`] carries: the sequence numbers one `append`
/// wrote (a few dozen bytes, far below PostgreSQL's 8000-byte limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Appended {
    pub from: i64,
    pub to: i64,
}

/// On PostgreSQL, `pg_notify` in the same transaction as the events: PostgreSQL delivers it
/// to every listening replica when (and only when) the transaction commits, in commit order.
/// The audit head is locked until then, so commit order is sequence order.
async fn notify(txn: &DatabaseTransaction, from: i64, to: i64) -> StoreResult<()> {
    if txn.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    let payload = serde_json::to_string(&Appended { from, to }).unwrap_or_default();
    txn.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [EVENTS_CHANNEL.into(), payload.into()],
    ))
    .await?;
    Ok(())
}

/// The sequence number of the last committed event (0 for an empty log).
pub async fn head_seq<C: ConnectionTrait>(db: &C) -> StoreResult<i64> {
    Ok(audit_head::Entity::find_by_id(1)
        .one(db)
        .await?
        .map_or(0, |head| head.seq))
}

/// Events that belong to an investigation with `after < seq <= through`, oldest first, at
/// most `limit` (what the event listener hands to subscriptions).
pub async fn investigation_events_between<C: ConnectionTrait>(
    db: &C,
    after: i64,
    through: i64,
    limit: u64,
) -> StoreResult<Vec<audit_event::Model>> {
    Ok(audit_event::Entity::find()
        .filter(audit_event::Column::Seq.gt(after))
        .filter(audit_event::Column::Seq.lte(through))
        .filter(audit_event::Column::InvestigationId.is_not_null())
        .order_by_asc(audit_event::Column::Seq)
        .limit(limit)
        .all(db)
        .await?)
}

/// Appends one event that belongs to no investigation (accounts, organisation, the clock).
pub async fn record(
    txn: &DatabaseTransaction,
    origin: &Origin,
    at: DateTime<Utc>,
    action: &str,
    data: serde_json::Value,
) -> StoreResult<()> {
    append(
        txn,
        origin,
        at,
        &[NewEvent {
            action,
            investigation: None,
            data,
        }],
    )
    .await
    .map(drop)
}

/// JSON with sorted keys and no whitespace (serde_json's map is ordered).
pub fn canonical_json(value: &serde_json::Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Recomputes the whole chain, in pages, and reports the first broken event.
pub async fn verify_chain<C: ConnectionTrait>(db: &C) -> StoreResult<Verification> {
    const PAGE: u64 = 2_000;
    let mut previous = audit::GENESIS_HASH.to_string();
    let mut next_seq = 1;
    let mut checked = 0;
    loop {
        let page = audit_event::Entity::find()
            .filter(audit_event::Column::Seq.gte(next_seq))
            .order_by_asc(audit_event::Column::Seq)
            .limit(PAGE)
            .all(db)
            .await?;
        if page.is_empty() {
            break;
        }
        let actors: Vec<Option<String>> = page
            .iter()
            .map(|e| e.actor_id.map(|id| id.to_string()))
            .collect();
        let investigations: Vec<Option<String>> = page
            .iter()
            .map(|e| e.investigation_id.map(|id| id.to_string()))
            .collect();
        let result = audit::verify(
            page.iter().enumerate().map(|(i, e)| {
                (
                    EventFields {
                        seq: e.seq,
                        at: e.at,
                        actor: actors[i].as_deref(),
                        action: &e.action,
                        investigation: investigations[i].as_deref(),
                        data: &e.data,
                        origin: e.origin.as_deref(),
                    },
                    e.hash.as_str(),
                )
            }),
            &previous,
            next_seq,
        );
        checked += result.events_checked;
        if !result.intact {
            return Ok(Verification {
                intact: false,
                events_checked: checked,
                first_broken_seq: result.first_broken_seq,
            });
        }
        let last = page.last().expect("page is not empty");
        previous = last.hash.clone();
        next_seq = last.seq + 1;
    }
    // The head must agree with the last event: a deleted tail shows here.
    let head = audit_head::Entity::find_by_id(1).one(db).await?;
    if let Some(head) = head
        && (head.seq != next_seq - 1 || head.hash != previous)
    {
        return Ok(Verification {
            intact: false,
            events_checked: checked,
            first_broken_seq: Some(next_seq),
        });
    }
    Ok(Verification {
        intact: true,
        events_checked: checked,
        first_broken_seq: None,
    })
}

/// Events of one investigation, oldest first, from `after_seq` on.
pub async fn events_of<C: ConnectionTrait>(
    db: &C,
    investigation: Uuid,
    after_seq: Option<i64>,
    limit: u64,
) -> StoreResult<Vec<audit_event::Model>> {
    let mut query =
        audit_event::Entity::find().filter(audit_event::Column::InvestigationId.eq(investigation));
    if let Some(after) = after_seq {
        query = query.filter(audit_event::Column::Seq.gt(after));
    }
    Ok(query
        .order_by_asc(audit_event::Column::Seq)
        .limit(limit)
        .all(db)
        .await?)
}

pub async fn count_of<C: ConnectionTrait>(db: &C, investigation: Uuid) -> StoreResult<u64> {
    Ok(audit_event::Entity::find()
        .filter(audit_event::Column::InvestigationId.eq(investigation))
        .count(db)
        .await?)
}

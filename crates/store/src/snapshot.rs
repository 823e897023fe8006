//! The investigation snapshot (read model): per investigation, every row below it
//! ([`Children`]) as one JSON document in `investigation_snapshot`, rewritten from the tables
//! by [`refresh`] in the same transaction as every change (`investigations::write_changes`).
//! Reads take an investigation's rows from it with the investigation row itself, so a page of
//! a listing costs one statement however many tables lie below, and what it shows is one
//! consistent state. The tables stay the record; a snapshot that is missing, of another
//! [`FORMAT`] or unreadable is ignored and the rows are read from the tables instead, and
//! [`backfill`] (run when the server starts) writes the missing ones. Beside the body lies its
//! [`digest`]: reads fetch the digest, and the body only when the read cache holds nothing
//! built from that body (`investigations::load_rows`).

use crate::Db;
use crate::entity::{investigation, investigation_snapshot};
use crate::error::{StoreError, StoreResult};
use crate::investigations::{
    Children, fetch_children, fetch_with_snapshots, snapshot_of_investigation,
};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IsolationLevel,
    JoinType, QueryFilter, QuerySelect, TransactionTrait,
};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// The layout of a snapshot's body. Raise it whenever [`Children`] or the entities in it
/// change shape, or a migration changes rows below investigations: snapshots of another
/// format are then read from the tables until [`backfill`] has rewritten them.
pub const FORMAT: i32 = 1;

/// The rows a snapshot body holds, or `None` when it is of another format or cannot be read.
pub(crate) fn decode(investigation_id: Uuid, format: i32, body: &str) -> Option<Children> {
    if format != FORMAT {
        return None;
    }
    match serde_json::from_str(body) {
        Ok(children) => Some(children),
        Err(error) => {
            tracing::warn!(investigation = %investigation_id, %error,
                "unreadable investigation snapshot; reading the tables instead");
            None
        }
    }
}

/// The digest written beside a snapshot body (SHA-256): what reads fetch instead of the body
/// to find out whether the read cache holds what was built from it. Whoever writes a body
/// other than through rkflow (a repair by hand) writes its digest too, or NULL: a snapshot
/// without a digest is always read with its body, and the next start-up's backfill rewrites it.
pub fn digest(body: &str) -> Vec<u8> {
    Sha256::digest(body.as_bytes()).to_vec()
}

/// Rewrites an investigation's snapshot from its tables (inside the caller's transaction,
/// which has locked the investigation or holds SQLite's write lock); answers the row and the
/// rows below it that it wrote (`None`: no such investigation).
pub(crate) async fn refresh<C: ConnectionTrait>(
    txn: &C,
    id: Uuid,
) -> StoreResult<Option<(investigation::Model, Children)>> {
    let Some(row) = investigation::Entity::find_by_id(id).one(txn).await? else {
        return Ok(None);
    };
    let children = fetch_children(txn, std::slice::from_ref(&row)).await?;
    let body = serde_json::to_string(&children)
        .map_err(|e| StoreError::corrupt(format!("snapshot of {id} not serialisable: {e}")))?;
    investigation_snapshot::Entity::insert(investigation_snapshot::ActiveModel {
        investigation_id: Set(id),
        format: Set(FORMAT),
        digest: Set(Some(digest(&body))),
        body: Set(body),
    })
    .on_conflict(
        OnConflict::column(investigation_snapshot::Column::InvestigationId)
            .update_columns([
                investigation_snapshot::Column::Format,
                investigation_snapshot::Column::Body,
                investigation_snapshot::Column::Digest,
            ])
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    Ok(Some((row, children)))
}

/// Writes the snapshot of every investigation that has none, one of another format or one
/// without a digest (written before the digest column), each
/// in its own write transaction with the investigation locked; returns how many it wrote.
/// Safe beside running commands and other servers doing the same.
pub async fn backfill(db: &Db) -> StoreResult<u64> {
    const BATCH: u64 = 100;
    let mut written = 0;
    loop {
        let ids: Vec<Uuid> = investigation::Entity::find()
            .select_only()
            .column(investigation::Column::Id)
            .join(JoinType::LeftJoin, snapshot_of_investigation())
            .filter(
                Condition::any()
                    .add(investigation_snapshot::Column::InvestigationId.is_null())
                    .add(investigation_snapshot::Column::Format.ne(FORMAT))
                    .add(investigation_snapshot::Column::Digest.is_null()),
            )
            .limit(BATCH)
            .into_tuple()
            .all(&db.conn)
            .await?;
        if ids.is_empty() {
            return Ok(written);
        }
        for id in ids {
            let txn = db.begin_write().await?;
            investigation::Entity::find_by_id(id)
                .lock_exclusive()
                .one(&txn)
                .await?;
            refresh(&txn, id).await?;
            txn.commit().await?;
            written += 1;
        }
    }
}

/// The investigations whose snapshot is missing, of another format, unreadable, without the
/// digest of its body or not what their tables hold, read in one transaction (a consistent view on both backends). The
/// tests run it after every end-to-end test; an empty answer is the read model's invariant.
pub async fn verify(db: &Db) -> StoreResult<Vec<Uuid>> {
    let txn = db
        .conn
        .begin_with_config(Some(IsolationLevel::RepeatableRead), None)
        .await?;
    let ids: Vec<Uuid> = investigation::Entity::find()
        .select_only()
        .column(investigation::Column::Id)
        .into_tuple()
        .all(&txn)
        .await?;
    let mut differing = Vec::new();
    for batch in ids.chunks(100) {
        for (row, snapshot) in fetch_with_snapshots(&txn, batch, false).await? {
            let id = row.id;
            let stored = snapshot
                .as_ref()
                .filter(|snapshot| snapshot.digest == Some(digest(&snapshot.body)))
                .and_then(|snapshot| decode(id, snapshot.format, &snapshot.body));
            let fresh = fetch_children(&txn, &[row]).await?;
            if stored.as_ref() != Some(&fresh) {
                differing.push(id);
            }
        }
    }
    txn.commit().await?;
    Ok(differing)
}

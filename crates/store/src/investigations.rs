//! Investigations: loading the domain value (one or many at once), running commands in one
//! transaction, listing what a caller may see, and reading version content.

use crate::Db;
use crate::audit::{self, NewEvent, Origin};
use crate::db::WriteTransaction;
use crate::entity::{
    approval, audit_event, commission_municipality, council_decision, council_submission, deadline,
    deadline_reminder, document, document_version, extension_request, extension_vote,
    frozen_version, implementation_update, investigation, investigation_commission,
    investigation_snapshot, rapporteur, recommendation, response, response_college,
    response_position, submission_version, user, version_content,
};
use crate::error::{StoreError, StoreResult};
use crate::joins::{to_children, with_children};
use crate::positional::Columns;
use crate::read_cache::KeptSnapshot;
use crate::reads::Reader;
use crate::statements::{self, uuid_values};
use crate::{organisation, snapshot};
use chrono::{DateTime, Utc};
use rkflow_domain::deadline::Calendar;
use rkflow_domain::investigation::{
    ApprovalState, DocumentState, FreezePurpose, Frozen, Participant, Proposal, RebuttalTerms,
    RecommendationState, ResponseState, VersionInfo,
};
use rkflow_domain::rebuttal::{
    CollegePosition, DeadlineKind, DeadlineState, DeadlineStatus, ExtensionState, TermPolicy,
};
use rkflow_domain::visibility::ListingFilter;
use rkflow_domain::{
    Actor, Change, Command, DocumentKind, DomainError, Investigation, InvestigationId, Phase,
    RecommendationAddressee, ResponseMode,
};
use sea_orm::sea_query::{Alias, Asterisk, Expr, Order, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend,
    DatabaseTransaction, EntityTrait, ExprTrait, JoinType, PaginatorTrait, QueryFilter, QueryOrder,
    QueryResult, QuerySelect, QueryTrait, RelationDef, Select, SelectTwoModel, SelectorTrait,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

/// An investigation as loaded: the domain value plus what the API shows beside it.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub row: investigation::Model,
    pub domain: Investigation,
    /// Participating commission ids in the order they were listed.
    pub commission_ids: Vec<Uuid>,
    /// Those commissions with their municipalities, in the same order.
    pub commissions: Vec<organisation::CommissionWithMunicipalities>,
    pub rapporteurs: Vec<rapporteur::Model>,
    pub documents: Vec<document::Model>,
    /// Every version's metadata, by document then number.
    pub versions: Vec<document_version::Model>,
    /// The still-valid approvals of the current gate.
    pub approvals: Vec<approval::Model>,
    pub recommendations: Vec<recommendation::Model>,
    pub deadlines: Vec<deadline::Model>,
    pub responses: Vec<response::Model>,
    pub extensions: Vec<extension_request::Model>,
    /// One per concerned council once submitted, each with its bundle's version ids in order.
    pub submissions: Vec<(council_submission::Model, Vec<Uuid>)>,
    /// Every recorded council decision (history; `current` marks the one that counts).
    pub council_decisions: Vec<council_decision::Model>,
    pub implementation_updates: Vec<implementation_update::Model>,
    /// The current gate's fingerprint, computed at the first [`Loaded::missing_approvals`]
    /// (a value the read cache keeps is shared by the requests that reuse it).
    gate_fingerprint: OnceLock<String>,
}

impl Loaded {
    /// The commissions whose approval of the current gate is still missing
    /// ([`Investigation::missing_approvals`]), with the gate's fingerprint computed once per
    /// loaded value: hashing the gate's content was 2.3 % of a dashboard's instructions.
    pub fn missing_approvals(&self) -> Vec<&Participant> {
        let fingerprint = self
            .gate_fingerprint
            .get_or_init(|| self.domain.gate_fingerprint(self.domain.phase));
        self.domain.missing_approvals_given(fingerprint)
    }

    pub fn id(&self) -> Uuid {
        self.row.id
    }

    pub fn research_questions(&self) -> Vec<String> {
        serde_json::from_str(&self.row.research_questions).unwrap_or_default()
    }

    pub fn domain_document(&self, document: Uuid) -> Option<&DocumentState> {
        self.domain_document_index(document)
            .map(|index| &self.domain.documents[index])
    }

    /// The place in `domain.documents` of the document with this id.
    pub fn domain_document_index(&self, document: Uuid) -> Option<usize> {
        self.domain
            .documents
            .iter()
            .position(|d| d.id.0 == document)
    }
}

fn parse_phase(text: &str) -> StoreResult<Phase> {
    Phase::parse(text).ok_or_else(|| StoreError::corrupt(format!("unknown phase {text}")))
}

fn parse_kind(text: &str) -> StoreResult<DocumentKind> {
    DocumentKind::parse(text).ok_or_else(|| StoreError::corrupt(format!("unknown kind {text}")))
}

/// Every row below some investigations: for one investigation, what its snapshot holds
/// ([`crate::snapshot`]). The organisation's rows (commissions, municipalities) are not among
/// them: they change on their own and are read beside it. Each table's rows are in the order
/// [`fetch_children`] reads them, which is total, so a snapshot and a fresh read agree.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Children {
    participants: Vec<investigation_commission::Model>,
    rapporteurs: Vec<rapporteur::Model>,
    documents: Vec<document::Model>,
    /// Every version's metadata (not its content).
    versions: Vec<document_version::Model>,
    /// The approvals not voided, of every phase (`assemble` keeps the current gate's).
    approvals: Vec<approval::Model>,
    recommendations: Vec<recommendation::Model>,
    frozen: Vec<frozen_version::Model>,
    deadlines: Vec<deadline::Model>,
    reminders: Vec<deadline_reminder::Model>,
    responses: Vec<response::Model>,
    response_colleges: Vec<response_college::Model>,
    positions: Vec<response_position::Model>,
    extensions: Vec<extension_request::Model>,
    votes: Vec<extension_vote::Model>,
    submissions: Vec<council_submission::Model>,
    submission_versions: Vec<submission_version::Model>,
    decisions: Vec<council_decision::Model>,
    updates: Vec<implementation_update::Model>,
}

impl Children {
    /// Adds another investigation's rows after these.
    fn append(&mut self, mut other: Children) {
        self.participants.append(&mut other.participants);
        self.rapporteurs.append(&mut other.rapporteurs);
        self.documents.append(&mut other.documents);
        self.versions.append(&mut other.versions);
        self.approvals.append(&mut other.approvals);
        self.recommendations.append(&mut other.recommendations);
        self.frozen.append(&mut other.frozen);
        self.deadlines.append(&mut other.deadlines);
        self.reminders.append(&mut other.reminders);
        self.responses.append(&mut other.responses);
        self.response_colleges.append(&mut other.response_colleges);
        self.positions.append(&mut other.positions);
        self.extensions.append(&mut other.extensions);
        self.votes.append(&mut other.votes);
        self.submissions.append(&mut other.submissions);
        self.submission_versions
            .append(&mut other.submission_versions);
        self.decisions.append(&mut other.decisions);
        self.updates.append(&mut other.updates);
    }
}

/// The join from an investigation row to its snapshot.
pub(crate) fn snapshot_of_investigation() -> RelationDef {
    to_children::<investigation::Entity, investigation_snapshot::Entity>(
        investigation_snapshot::Column::InvestigationId,
        investigation::Column::Id,
    )
}

/// The investigations with these ids, joined to their snapshots (the columns are the
/// caller's).
fn by_ids_with_snapshots(ids: &[Uuid]) -> Select<investigation::Entity> {
    investigation::Entity::find()
        .filter(investigation::Column::Id.is_in(ids.iter().copied()))
        .join(JoinType::LeftJoin, snapshot_of_investigation())
}

/// Investigation rows with their snapshots (when they have one), one statement. With `lock`
/// on PostgreSQL the investigation rows are locked first, by a statement of their own: the
/// read after it then sees what the transaction that held the lock committed, snapshot
/// included (a locking read that joins would re-read only the locked row). SQLite's write
/// transaction holds the whole database.
pub(crate) async fn fetch_with_snapshots<C: ConnectionTrait>(
    db: &C,
    ids: &[Uuid],
    lock: bool,
) -> StoreResult<Vec<(investigation::Model, Option<investigation_snapshot::Model>)>> {
    if lock && db.get_database_backend() == DatabaseBackend::Postgres {
        investigation::Entity::find()
            .select_only()
            .column(investigation::Column::Id)
            .filter(investigation::Column::Id.is_in(ids.iter().copied()))
            .lock_exclusive()
            .into_tuple::<Uuid>()
            .all(db)
            .await?;
    }
    let rows = statements::query_all(
        db,
        "investigations by ids with snapshots",
        uuid_values(ids),
        |backend| {
            by_ids_with_snapshots(ids)
                .select_also(investigation_snapshot::Entity)
                .build(backend)
        },
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(SelectTwoModel::from_raw_query_result)
        .collect::<Result<_, _>>()?)
}

/// What a read fetched of an investigation's snapshot: its format and digest, and its body
/// where the statement read it (`None`: read by digest only, as the reads of the API do).
#[derive(Debug)]
pub(crate) struct FetchedSnapshot {
    pub format: i32,
    pub digest: Option<Vec<u8>>,
    pub body: Option<String>,
}

impl From<investigation_snapshot::Model> for FetchedSnapshot {
    fn from(snapshot: investigation_snapshot::Model) -> FetchedSnapshot {
        FetchedSnapshot {
            format: snapshot.format,
            digest: snapshot.digest,
            body: Some(snapshot.body),
        }
    }
}

/// The names under which reads select a snapshot's format and digest beside the row.
const SNAPSHOT_FORMAT: &str = "snapshot_format";
const SNAPSHOT_DIGEST: &str = "snapshot_digest";

/// An investigation row and its snapshot's format and digest (selected as [`SNAPSHOT_FORMAT`]
/// and [`SNAPSHOT_DIGEST`]), without its body.
fn row_with_snapshot_key(
    row: &QueryResult,
) -> StoreResult<(investigation::Model, Option<FetchedSnapshot>)> {
    // By position (`positional`): the investigation's columns come first.
    let investigation = Columns::of(row).model()?;
    let snapshot = match row.try_get::<Option<i32>>("", SNAPSHOT_FORMAT)? {
        Some(format) => Some(FetchedSnapshot {
            format,
            digest: row.try_get("", SNAPSHOT_DIGEST)?,
            body: None,
        }),
        None => None,
    };
    Ok((investigation, snapshot))
}

/// Investigation rows with their snapshots' format and digest but not their bodies, one
/// statement: the body is read only where the read cache holds nothing built from it
/// ([`load_rows`]).
async fn fetch_with_digests<C: ConnectionTrait>(
    db: &C,
    ids: &[Uuid],
) -> StoreResult<Vec<(investigation::Model, Option<FetchedSnapshot>)>> {
    let rows = statements::query_all(
        db,
        "investigations by ids with snapshot digests",
        uuid_values(ids),
        |backend| {
            by_ids_with_snapshots(ids)
                .column_as(investigation_snapshot::Column::Format, SNAPSHOT_FORMAT)
                .column_as(investigation_snapshot::Column::Digest, SNAPSHOT_DIGEST)
                .build(backend)
        },
    )
    .await?;
    rows.iter().map(row_with_snapshot_key).collect()
}

/// Where the rows below one investigation come from in [`load_rows`].
enum Source {
    /// The read cache's value, built from exactly this row and snapshot.
    Kept(Arc<Loaded>),
    /// Its snapshot, decoded; with the snapshot to keep the value built from it under (`None`:
    /// not kept, or a snapshot without a digest).
    Decoded(Box<Children>, Option<KeptSnapshot>),
    /// Its tables: it has no snapshot yet, or one of another format.
    Tables,
}

impl Source {
    /// A snapshot body read now: decoded, or the tables when it cannot be.
    fn decoded(id: Uuid, format: i32, digest: Option<Vec<u8>>, body: String, keep: bool) -> Source {
        match snapshot::decode(id, format, &body) {
            Some(children) => Source::Decoded(
                Box::new(children),
                digest
                    .filter(|_| keep)
                    .map(|digest| KeptSnapshot { format, digest }),
            ),
            None => Source::Tables,
        }
    }
}

/// The domain values of investigation rows, in their order: each one the read cache keeps
/// for exactly this row and a snapshot of this format and digest ([`crate::read_cache`]), else
/// built from its decoded snapshot, else from its tables (not yet backfilled, or of an older
/// format); then the commissions they name (one statement). Rows fetched without their
/// snapshot bodies whose value is not kept are read again, each with its body, in one
/// statement, so that row and body are of one moment also where the reads are not one
/// transaction; so are those whose kept value shows other commissions than those just read
/// (the cache keeps no bodies), which are then built anew. What is built from a snapshot is
/// kept when `keep_built`.
async fn load_rows<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    found: Vec<(investigation::Model, Option<FetchedSnapshot>)>,
    keep_built: bool,
) -> StoreResult<Vec<Arc<Loaded>>> {
    load_rows_cached(conn, db, found, keep_built, true).await
}

/// [`load_rows`], looking values up in the read cache only when `cached`.
async fn load_rows_cached<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    found: Vec<(investigation::Model, Option<FetchedSnapshot>)>,
    keep_built: bool,
    cached: bool,
) -> StoreResult<Vec<Arc<Loaded>>> {
    let mut rows = Vec::with_capacity(found.len());
    // `None`: the snapshot's body is still to be read (the read cache holds nothing built
    // from it).
    let mut sources: Vec<Option<Source>> = Vec::with_capacity(found.len());
    let mut unread = Vec::new();
    for (row, snapshot) in found {
        sources.push(match snapshot {
            Some(FetchedSnapshot {
                format,
                digest,
                body,
            }) => {
                let kept = digest
                    .as_deref()
                    .filter(|_| cached)
                    .and_then(|digest| db.read_cache.get(&row, format, digest));
                match (kept, digest, body) {
                    (Some(loaded), Some(_), _) => Some(Source::Kept(loaded)),
                    (_, digest, Some(body)) => {
                        Some(Source::decoded(row.id, format, digest, body, keep_built))
                    }
                    _ => {
                        unread.push(row.id);
                        None
                    }
                }
            }
            None => Some(Source::Tables),
        });
        rows.push(row);
    }
    let mut again: HashMap<Uuid, _> = if unread.is_empty() {
        HashMap::new()
    } else {
        fetch_with_snapshots(conn, &unread, false)
            .await?
            .into_iter()
            .map(|(row, snapshot)| (row.id, (row, snapshot)))
            .collect()
    };
    let sources: Vec<Source> = rows
        .iter_mut()
        .zip(sources)
        .map(|(row, source)| {
            source.unwrap_or_else(|| match again.remove(&row.id) {
                Some((read, snapshot)) => {
                    *row = read;
                    snapshot.map_or(Source::Tables, |snapshot| {
                        Source::decoded(
                            row.id,
                            snapshot.format,
                            snapshot.digest,
                            snapshot.body,
                            keep_built,
                        )
                    })
                }
                None => Source::Tables,
            })
        })
        .collect();
    let without: Vec<investigation::Model> = rows
        .iter()
        .zip(&sources)
        .filter(|(_, source)| matches!(source, Source::Tables))
        .map(|(row, _)| row.clone())
        .collect();
    let mut children = if without.is_empty() {
        Children::default()
    } else {
        fetch_children(conn, &without).await?
    };
    let mut commission_ids: BTreeSet<Uuid> = children
        .participants
        .iter()
        .map(|p| p.commission_id)
        .collect();
    for source in &sources {
        match source {
            Source::Kept(loaded) => commission_ids.extend(loaded.commission_ids.iter()),
            Source::Decoded(below, _) => {
                commission_ids.extend(below.participants.iter().map(|p| p.commission_id))
            }
            Source::Tables => {}
        }
    }
    let commission_ids: Vec<Uuid> = commission_ids.into_iter().collect();
    let commissions = organisation::commissions_by_ids(conn, &commission_ids).await?;
    let by_id: HashMap<Uuid, &organisation::CommissionWithMunicipalities> =
        commissions.iter().map(|c| (c.commission.id, c)).collect();
    // Kept values that show other commissions than those just read (one was renamed, say):
    // read again with their bodies and built anew, past the cache.
    let stale: Vec<Uuid> = rows
        .iter()
        .zip(&sources)
        .filter(|(_, source)| match source {
            Source::Kept(loaded) => !loaded
                .commission_ids
                .iter()
                .filter_map(|id| by_id.get(id).copied())
                .eq(loaded.commissions.iter()),
            _ => false,
        })
        .map(|(row, _)| row.id)
        .collect();
    let rebuilt: HashMap<Uuid, Arc<Loaded>> = if stale.is_empty() {
        HashMap::new()
    } else {
        let again = fetch_with_snapshots(conn, &stale, false)
            .await?
            .into_iter()
            .map(|(row, snapshot)| (row, snapshot.map(FetchedSnapshot::from)))
            .collect();
        // Past the cache, so at most once more.
        Box::pin(load_rows_cached(conn, db, again, keep_built, false))
            .await?
            .into_iter()
            .map(|loaded| (loaded.id(), loaded))
            .collect()
    };
    // The others are built together (one pass over their rows), then merged in order.
    let mut to_build = Vec::new();
    let mut slots = Vec::with_capacity(rows.len());
    for (row, source) in rows.into_iter().zip(sources) {
        // (A stale row that no longer reads keeps the value it had: it was read at the
        // first statement, where the reads are not one transaction.)
        if let Some(loaded) = rebuilt.get(&row.id) {
            slots.push(Ok(loaded.clone()));
            continue;
        }
        match source {
            Source::Kept(loaded) => slots.push(Ok(loaded)),
            Source::Decoded(below, kept) => {
                children.append(*below);
                to_build.push(row);
                slots.push(Err(kept));
            }
            Source::Tables => {
                to_build.push(row);
                slots.push(Err(None));
            }
        }
    }
    let mut built = assemble(&db.calendar, to_build, commissions, children)?.into_iter();
    let mut loaded = Vec::with_capacity(slots.len());
    for slot in slots {
        loaded.push(match slot {
            Ok(kept) => kept,
            Err(snapshot) => {
                let value = Arc::new(built.next().ok_or_else(|| {
                    StoreError::corrupt("an investigation was not assembled".to_string())
                })?);
                if let Some(snapshot) = snapshot {
                    db.read_cache.put(snapshot, value.clone());
                }
                value
            }
        });
    }
    Ok(loaded)
}

/// Reads the rows below the given investigations from their tables, one statement per table
/// (parent and child tables joined); follow-up tables only for published investigations and
/// the round's only for those with a deadline.
pub(crate) async fn fetch_children<C: ConnectionTrait>(
    db: &C,
    investigations: &[investigation::Model],
) -> StoreResult<Children> {
    let ids: Vec<Uuid> = investigations.iter().map(|i| i.id).collect();
    if ids.is_empty() {
        return Ok(Children::default());
    }
    let participants = investigation_commission::Entity::find()
        .filter(investigation_commission::Column::InvestigationId.is_in(ids.iter().copied()))
        .order_by_asc(investigation_commission::Column::InvestigationId)
        .order_by_asc(investigation_commission::Column::Position)
        .all(db)
        .await?;
    let rapporteurs = rapporteur::Entity::find()
        .filter(rapporteur::Column::InvestigationId.is_in(ids.iter().copied()))
        .order_by_asc(rapporteur::Column::AssignedAt)
        .order_by_asc(rapporteur::Column::InvestigationId)
        .order_by_asc(rapporteur::Column::UserId)
        .order_by_asc(rapporteur::Column::CommissionId)
        .all(db)
        .await?;
    let documents = document::Entity::find()
        .filter(document::Column::InvestigationId.is_in(ids.iter().copied()))
        .order_by_asc(document::Column::CreatedAt)
        .order_by_asc(document::Column::Id)
        .all(db)
        .await?;
    let versions = document_version::Entity::find()
        .filter(document_version::Column::InvestigationId.is_in(ids.iter().copied()))
        .order_by_asc(document_version::Column::DocumentId)
        .order_by_asc(document_version::Column::Number)
        .all(db)
        .await?;
    let approvals = approval::Entity::find()
        .filter(approval::Column::InvestigationId.is_in(ids.iter().copied()))
        .filter(approval::Column::VoidedAt.is_null())
        .order_by_asc(approval::Column::ApprovedAt)
        .order_by_asc(approval::Column::Id)
        .all(db)
        .await?;
    let recommendations = recommendation::Entity::find()
        .filter(recommendation::Column::InvestigationId.is_in(ids.iter().copied()))
        .order_by_asc(recommendation::Column::Number)
        .order_by_asc(recommendation::Column::Id)
        .all(db)
        .await?;
    let frozen = frozen_version::Entity::find()
        .filter(frozen_version::Column::InvestigationId.is_in(ids.iter().copied()))
        .order_by_asc(frozen_version::Column::InvestigationId)
        .order_by_asc(frozen_version::Column::Purpose)
        .order_by_asc(frozen_version::Column::VersionId)
        .all(db)
        .await?;
    let round = fetch_round(db, &ids).await?;
    let published: Vec<Uuid> = investigations
        .iter()
        .filter(|i| i.published_at.is_some())
        .map(|i| i.id)
        .collect();
    let follow_up = fetch_follow_up(db, &published).await?;
    Ok(Children {
        participants,
        rapporteurs,
        documents,
        versions,
        approvals,
        recommendations,
        frozen,
        deadlines: round.0,
        reminders: round.1,
        responses: round.2,
        response_colleges: round.3,
        positions: round.4,
        extensions: round.5,
        votes: round.6,
        submissions: follow_up.submissions,
        submission_versions: follow_up.submission_versions,
        decisions: follow_up.decisions,
        updates: follow_up.updates,
    })
}

type RoundRows = (
    Vec<deadline::Model>,
    Vec<deadline_reminder::Model>,
    Vec<response::Model>,
    Vec<response_college::Model>,
    Vec<response_position::Model>,
    Vec<extension_request::Model>,
    Vec<extension_vote::Model>,
);

/// The rows of the factual check and rebuttal rounds, each table with its child table in one
/// statement. Investigations that never reached them cost one statement (the deadlines); the
/// rest is read only where a round exists.
async fn fetch_round<C: ConnectionTrait>(db: &C, ids: &[Uuid]) -> StoreResult<RoundRows> {
    let (deadlines, reminders) = with_children::<_, _, deadline_reminder::Entity>(
        db,
        deadline::Entity::find()
            .filter(deadline::Column::InvestigationId.is_in(ids.iter().copied()))
            .order_by_asc(deadline::Column::CreatedAt)
            .order_by_asc(deadline::Column::Id),
        deadline_reminder::Column::DeadlineId,
        deadline::Column::Id,
        deadline_reminder::Column::BeforeSeconds,
        |d| d.id,
    )
    .await?;
    if deadlines.is_empty() {
        return Ok(Default::default());
    }
    let with_round: BTreeSet<Uuid> = deadlines.iter().map(|d| d.investigation_id).collect();
    let (responses, response_colleges) = with_children::<_, _, response_college::Entity>(
        db,
        response::Entity::find()
            .filter(response::Column::InvestigationId.is_in(with_round.iter().copied()))
            .order_by_asc(response::Column::FiledAt)
            .order_by_asc(response::Column::Id),
        response_college::Column::ResponseId,
        response::Column::Id,
        response_college::Column::MunicipalityId,
        |r| r.id,
    )
    .await?;
    let positions = if responses.is_empty() {
        Vec::new()
    } else {
        response_position::Entity::find()
            .filter(response_position::Column::ResponseId.is_in(responses.iter().map(|r| r.id)))
            .order_by_asc(response_position::Column::ResponseId)
            .order_by_asc(response_position::Column::RecommendationId)
            .all(db)
            .await?
    };
    let (extensions, votes) = with_children::<_, _, extension_vote::Entity>(
        db,
        extension_request::Entity::find()
            .filter(extension_request::Column::InvestigationId.is_in(with_round.iter().copied()))
            .order_by_asc(extension_request::Column::RequestedAt)
            .order_by_asc(extension_request::Column::Id),
        extension_vote::Column::RequestId,
        extension_request::Column::Id,
        extension_vote::Column::CommissionId,
        |e| e.id,
    )
    .await?;
    Ok((
        deadlines,
        reminders,
        responses,
        response_colleges,
        positions,
        extensions,
        votes,
    ))
}

/// Rows that exist only once an investigation has been submitted.
#[derive(Default)]
struct FollowUpRows {
    submissions: Vec<council_submission::Model>,
    submission_versions: Vec<submission_version::Model>,
    decisions: Vec<council_decision::Model>,
    updates: Vec<implementation_update::Model>,
}

/// The submission and follow-up rows of published investigations (none read otherwise).
async fn fetch_follow_up<C: ConnectionTrait>(
    db: &C,
    published: &[Uuid],
) -> StoreResult<FollowUpRows> {
    if published.is_empty() {
        return Ok(FollowUpRows::default());
    }
    let (submissions, submission_versions) = with_children::<_, _, submission_version::Entity>(
        db,
        council_submission::Entity::find()
            .filter(council_submission::Column::InvestigationId.is_in(published.iter().copied()))
            .order_by_asc(council_submission::Column::Id),
        submission_version::Column::SubmissionId,
        council_submission::Column::Id,
        submission_version::Column::Position,
        |s| s.id,
    )
    .await?;
    let decisions = council_decision::Entity::find()
        .filter(council_decision::Column::InvestigationId.is_in(published.iter().copied()))
        .order_by_asc(council_decision::Column::RecordedAt)
        .order_by_asc(council_decision::Column::Id)
        .all(db)
        .await?;
    let updates = implementation_update::Entity::find()
        .filter(implementation_update::Column::InvestigationId.is_in(published.iter().copied()))
        .order_by_asc(implementation_update::Column::At)
        .order_by_asc(implementation_update::Column::Id)
        .all(db)
        .await?;
    Ok(FollowUpRows {
        submissions,
        submission_versions,
        decisions,
        updates,
    })
}

fn group<T, K: Ord>(items: Vec<T>, key: impl Fn(&T) -> K) -> BTreeMap<K, Vec<T>> {
    let mut grouped: BTreeMap<K, Vec<T>> = BTreeMap::new();
    for item in items {
        grouped.entry(key(&item)).or_default().push(item);
    }
    grouped
}

fn assemble(
    calendar: &Calendar,
    investigations: Vec<investigation::Model>,
    commissions: Vec<organisation::CommissionWithMunicipalities>,
    rows: Children,
) -> StoreResult<Vec<Loaded>> {
    let commissions: HashMap<Uuid, organisation::CommissionWithMunicipalities> = commissions
        .into_iter()
        .map(|c| (c.commission.id, c))
        .collect();
    let mut participants = group(rows.participants, |p| p.investigation_id);
    let mut rapporteurs = group(rows.rapporteurs, |r| r.investigation_id);
    let mut documents = group(rows.documents, |d| d.investigation_id);
    let mut versions = group(rows.versions, |v| v.investigation_id);
    let mut approvals = group(rows.approvals, |a| a.investigation_id);
    let mut recommendations = group(rows.recommendations, |r| r.investigation_id);
    let mut frozen = group(rows.frozen, |f| f.investigation_id);
    let mut deadlines = group(rows.deadlines, |d| d.investigation_id);
    let mut reminders = group(rows.reminders, |r| r.deadline_id);
    let mut responses = group(rows.responses, |r| r.investigation_id);
    let mut response_colleges = group(rows.response_colleges, |r| r.response_id);
    let mut positions = group(rows.positions, |p| p.response_id);
    let mut extensions = group(rows.extensions, |e| e.investigation_id);
    let mut votes = group(rows.votes, |v| v.request_id);
    let mut submissions = group(rows.submissions, |s| s.investigation_id);
    let mut submission_versions = group(rows.submission_versions, |v| v.submission_id);
    let mut decisions = group(rows.decisions, |d| d.investigation_id);
    let mut updates = group(rows.updates, |u| u.investigation_id);

    let mut loaded = Vec::with_capacity(investigations.len());
    for row in investigations {
        let id = row.id;
        let phase = parse_phase(&row.phase)?;
        let participants = participants.remove(&id).unwrap_or_default();
        let rapporteurs = rapporteurs.remove(&id).unwrap_or_default();
        let documents = documents.remove(&id).unwrap_or_default();
        let versions = versions.remove(&id).unwrap_or_default();
        let approvals: Vec<approval::Model> = approvals
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a.phase == row.phase)
            .collect();
        let recommendations = recommendations.remove(&id).unwrap_or_default();
        let frozen_rows = frozen.remove(&id).unwrap_or_default();
        let deadline_rows = deadlines.remove(&id).unwrap_or_default();
        let response_rows = responses.remove(&id).unwrap_or_default();
        let extension_rows = extensions.remove(&id).unwrap_or_default();
        let mut domain_deadlines = Vec::with_capacity(deadline_rows.len());
        for d in &deadline_rows {
            domain_deadlines.push(DeadlineState {
                id: d.id.into(),
                kind: DeadlineKind::parse(&d.kind).ok_or_else(|| {
                    StoreError::corrupt(format!("unknown deadline kind {}", d.kind))
                })?,
                municipality: d.municipality_id.into(),
                due_at: d.due_at,
                status: DeadlineStatus::parse(&d.status).ok_or_else(|| {
                    StoreError::corrupt(format!("unknown deadline status {}", d.status))
                })?,
                reminders_sent: reminders
                    .remove(&d.id)
                    .unwrap_or_default()
                    .iter()
                    .map(|r| r.before_seconds)
                    .collect(),
            });
        }
        let mut domain_responses = Vec::with_capacity(response_rows.len());
        for r in &response_rows {
            let colleges = response_colleges.remove(&r.id).unwrap_or_default();
            let mut response_positions = Vec::new();
            for p in positions.remove(&r.id).unwrap_or_default() {
                response_positions.push((
                    p.recommendation_id.into(),
                    CollegePosition::parse(&p.position).ok_or_else(|| {
                        StoreError::corrupt(format!("unknown position {}", p.position))
                    })?,
                ));
            }
            domain_responses.push(ResponseState {
                id: r.id.into(),
                colleges: colleges.iter().map(|c| c.municipality_id.into()).collect(),
                signed_by: colleges
                    .iter()
                    .filter(|c| c.signed_at.is_some())
                    .map(|c| c.municipality_id.into())
                    .collect(),
                version: r.version_id.into(),
                document: r.document_id.into(),
                filed_at: r.filed_at,
                late: r.late,
                positions: response_positions,
            });
        }
        let domain_extensions = extension_rows
            .iter()
            .map(|e| ExtensionState {
                id: e.id.into(),
                municipality: e.municipality_id.into(),
                proposed_due_date: e.proposed_due_date,
                reason: e.reason.clone(),
                votes: votes
                    .remove(&e.id)
                    .unwrap_or_default()
                    .iter()
                    .map(|v| (v.commission_id.into(), v.grant))
                    .collect(),
                granted: e.granted,
            })
            .collect();

        let mut domain_documents = Vec::with_capacity(documents.len());
        for d in &documents {
            domain_documents.push(DocumentState {
                id: d.id.into(),
                kind: parse_kind(&d.kind)?,
                title: d.title.clone(),
                municipality: d.municipality_id.map(Into::into),
                versions: versions
                    .iter()
                    .filter(|v| v.document_id == d.id)
                    .map(|v| VersionInfo {
                        id: v.id.into(),
                        number: v.number,
                        sha256: v.sha256.clone(),
                        media_type: v.media_type.clone(),
                        size_bytes: v.size_bytes,
                        created_at: v.created_at,
                    })
                    .collect(),
            });
        }
        let mut domain_frozen = Frozen::default();
        for f in &frozen_rows {
            if let Some(purpose) = FreezePurpose::parse(&f.purpose) {
                domain_frozen.insert(purpose, &[f.version_id.into()]);
            }
        }
        let rebuttal_terms = match &row.rebuttal_mode {
            Some(mode) => Some(RebuttalTerms {
                mode: ResponseMode::parse(mode)
                    .ok_or_else(|| StoreError::corrupt(format!("unknown mode {mode}")))?,
                due_date: row.rebuttal_due_date,
            }),
            None => None,
        };
        let domain = Investigation {
            id: id.into(),
            title: row.title.clone(),
            phase,
            suspended: row.suspended,
            commissions: participants
                .iter()
                .filter_map(|p| commissions.get(&p.commission_id))
                .map(|c| Participant {
                    id: c.commission.id.into(),
                    name: c.commission.name.clone(),
                    municipalities: c.municipality_ids().map(Into::into).collect(),
                })
                .collect(),
            rapporteurs: rapporteurs
                .iter()
                .map(|r| rkflow_domain::investigation::Rapporteur {
                    user: r.user_id.into(),
                    commission: r.commission_id.into(),
                })
                .collect(),
            documents: domain_documents,
            recommendations: recommendations
                .iter()
                .map(|r| {
                    Ok(RecommendationState {
                        id: r.id.into(),
                        number: r.number,
                        text: r.text.clone(),
                        addressee: RecommendationAddressee::parse(&r.addressee).ok_or_else(
                            || StoreError::corrupt(format!("unknown addressee {}", r.addressee)),
                        )?,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?,
            rebuttal_terms,
            approvals: approvals
                .iter()
                .map(|a| ApprovalState {
                    id: a.id.into(),
                    phase,
                    commission: a.commission_id.into(),
                    fingerprint: a.fingerprint.clone(),
                })
                .collect(),
            frozen: domain_frozen,
            responses: domain_responses,
            published: row.published_at.is_some(),
            suspended_since: if row.suspended {
                row.suspended_at
            } else {
                None
            },
            deadlines: domain_deadlines,
            extensions: domain_extensions,
            policies: participants
                .iter()
                .filter_map(|p| commissions.get(&p.commission_id))
                .map(|c| {
                    (
                        c.commission.id.into(),
                        TermPolicy {
                            factual_check_days: u32::try_from(c.commission.factual_check_term_days)
                                .unwrap_or(0),
                            rebuttal_days: u32::try_from(c.commission.rebuttal_term_days)
                                .unwrap_or(0),
                        },
                    )
                })
                .collect(),
            calendar: calendar.clone(),
        };
        loaded.push(Loaded {
            commission_ids: participants.iter().map(|p| p.commission_id).collect(),
            commissions: participants
                .iter()
                .filter_map(|p| commissions.get(&p.commission_id).cloned())
                .collect(),
            row,
            domain,
            rapporteurs,
            documents,
            versions,
            approvals,
            recommendations,
            deadlines: deadline_rows,
            responses: response_rows,
            extensions: extension_rows,
            submissions: submissions
                .remove(&id)
                .unwrap_or_default()
                .into_iter()
                .map(|submission| {
                    let versions = submission_versions
                        .remove(&submission.id)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|v| v.version_id)
                        .collect();
                    (submission, versions)
                })
                .collect(),
            council_decisions: decisions.remove(&id).unwrap_or_default(),
            implementation_updates: updates.remove(&id).unwrap_or_default(),
            gate_fingerprint: OnceLock::new(),
        });
    }
    Ok(loaded)
}

/// Loads many investigations with a fixed number of statements, whatever their number: the
/// rows with their snapshots' digests, then the commissions (and, before them, the rows whose
/// snapshot bodies the read cache does not hold, again with their bodies).
pub async fn load_many<R: Reader>(reads: &R, ids: &[Uuid]) -> StoreResult<Vec<Arc<Loaded>>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found = fetch_with_digests(reads, ids).await?;
    load_rows(reads, reads.db(), found, true).await
}

pub async fn load<R: Reader>(reads: &R, id: Uuid) -> StoreResult<Option<Arc<Loaded>>> {
    Ok(load_many(reads, &[id]).await?.into_iter().next())
}

/// Loads one investigation inside a write transaction, locking its row (PostgreSQL) so that
/// concurrent commands on it run one after the other and each decides on fresh state.
///
/// The command rewrites the snapshot it loads, so what it builds is not kept and what the read
/// cache kept for the investigation is dropped: neither would match again. (Kept, they held
/// the largest snapshots — those of the investigations being written — until the next read
/// or eviction, and on SQLite that pinned memory beside every burst of writes; BENCHMARKS.md.)
async fn load_for_update(
    txn: &DatabaseTransaction,
    db: &Db,
    id: Uuid,
) -> StoreResult<Option<Arc<Loaded>>> {
    let found = fetch_with_snapshots(txn, &[id], true)
        .await?
        .into_iter()
        .map(|(row, snapshot)| (row, snapshot.map(FetchedSnapshot::from)))
        .collect();
    let loaded = load_rows(txn, db, found, false).await?.into_iter().next();
    db.read_cache.forget(id);
    Ok(loaded)
}

/// Content bytes that a command stores with a new version.
#[derive(Clone, Debug, Default)]
pub struct VersionBody {
    pub bytes: Vec<u8>,
    pub file_name: Option<String>,
}

/// The audit events a command wrote (for the subscription).
pub type Written = Vec<audit_event::Model>;

/// Starts an investigation.
/// What `proposeInvestigation` asks for, with commissions by id.
#[derive(Clone, Debug)]
pub struct NewInvestigation {
    pub commission_ids: Vec<Uuid>,
    pub title: String,
    pub research_questions: Vec<String>,
    pub scope_start: Option<chrono::NaiveDate>,
    pub scope_end: Option<chrono::NaiveDate>,
}

pub async fn propose(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    actor: &Actor,
    new: NewInvestigation,
) -> StoreResult<Executed> {
    let commission_ids = &new.commission_ids;
    let txn = db.begin_write().await?;
    let found = organisation::commissions_by_ids(&txn, commission_ids).await?;
    let distinct: BTreeSet<&Uuid> = commission_ids.iter().collect();
    if found.len() != distinct.len() {
        return Err(DomainError::bad_input("commissionIds", "unknown commission").into());
    }
    let by_id: HashMap<Uuid, &organisation::CommissionWithMunicipalities> =
        found.iter().map(|c| (c.commission.id, c)).collect();
    let participants = commission_ids
        .iter()
        .filter_map(|id| by_id.get(id))
        .map(|c| Participant {
            id: c.commission.id.into(),
            name: c.commission.name.clone(),
            municipalities: c.municipality_ids().map(Into::into).collect(),
        })
        .collect();
    let id = InvestigationId::new();
    let (_, changes) = rkflow_domain::investigation::propose(
        actor,
        id,
        Proposal {
            title: new.title,
            commissions: participants,
            research_questions: new.research_questions,
            scope_start: new.scope_start,
            scope_end: new.scope_end,
        },
    )?;
    commit_changes(txn, db, origin, now, id.0, &changes, None).await
}

/// What a command did: its audit events (for the subscription) and the investigation as it
/// left it, read in its own transaction, so that its answer shows exactly that state and
/// needs no second connection after the commit (`db::concurrent_writers`).
#[derive(Debug)]
pub struct Executed {
    pub written: Written,
    pub investigation: Arc<Loaded>,
}

/// The investigation as a transaction's last snapshot refresh read it, with its commissions.
/// Not kept in the read cache, as in [`load_for_update`].
async fn assemble_after(
    txn: &DatabaseTransaction,
    db: &Db,
    (row, children): (investigation::Model, Children),
) -> StoreResult<Arc<Loaded>> {
    let commission_ids: Vec<Uuid> = children
        .participants
        .iter()
        .map(|p| p.commission_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let commissions = organisation::commissions_by_ids(txn, &commission_ids).await?;
    assemble(&db.calendar, vec![row], commissions, children)?
        .pop()
        .map(Arc::new)
        .ok_or_else(|| StoreError::corrupt("an investigation was not assembled".to_string()))
}

/// Runs one command on one investigation in one transaction: lock and re-read, decide, write
/// the changes and their audit events, read the result, commit.
pub async fn execute(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    actor: &Actor,
    id: Uuid,
    command: Command,
    body: Option<VersionBody>,
) -> StoreResult<Executed> {
    let txn = db.begin_write().await?;
    let Some(loaded) = load_for_update(&txn, db, id).await? else {
        return Err(DomainError::NotFound.into());
    };
    let referenced_user = match &command {
        Command::AssignRapporteur { user, .. } => Some(user.0),
        _ => None,
    };
    let changes = loaded.domain.execute(actor, command, now)?;
    if let Some(user_id) = referenced_user {
        let exists = user::Entity::find_by_id(user_id).one(&txn).await?;
        if exists.is_none_or(|u| u.disabled) {
            return Err(DomainError::bad_input("userId", "no active user with this id").into());
        }
    }
    commit_changes(txn, db, origin, now, id, &changes, body.as_ref()).await
}

/// Writes a command's changes with their audit events ([`write_changes`]), reads the
/// investigation as they left it, and commits.
async fn commit_changes(
    txn: WriteTransaction,
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    id: Uuid,
    changes: &[Change],
    body: Option<&VersionBody>,
) -> StoreResult<Executed> {
    let (written, after) = write_changes(&txn, origin, now, id, changes, body).await?;
    let investigation = assemble_after(&txn, db, after).await?;
    txn.commit().await?;
    Ok(Executed {
        written,
        investigation,
    })
}

async fn update_investigation(
    txn: &DatabaseTransaction,
    id: Uuid,
    edit: impl FnOnce(&mut investigation::ActiveModel),
) -> StoreResult<()> {
    let mut active = investigation::ActiveModel {
        id: Set(id),
        ..Default::default()
    };
    edit(&mut active);
    investigation::Entity::update(active).exec(txn).await?;
    Ok(())
}

/// Writes a command's changes, refreshes the snapshot and appends the audit events; answers
/// the events and the investigation's rows as the refresh read them.
async fn write_changes(
    txn: &DatabaseTransaction,
    origin: &Origin,
    now: DateTime<Utc>,
    id: Uuid,
    changes: &[Change],
    body: Option<&VersionBody>,
) -> StoreResult<(Written, (investigation::Model, Children))> {
    for change in changes {
        write_change(txn, origin, now, id, change, body).await?;
    }
    let after = snapshot::refresh(txn, id)
        .await?
        .ok_or_else(|| StoreError::corrupt(format!("investigation {id} vanished while written")))?;
    let events: Vec<NewEvent<'_>> = changes
        .iter()
        .map(|change| NewEvent {
            action: change.action(),
            investigation: Some(id),
            data: serde_json::to_value(change).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Ok((audit::append(txn, origin, now, &events).await?, after))
}

async fn write_change(
    txn: &DatabaseTransaction,
    origin: &Origin,
    now: DateTime<Utc>,
    id: Uuid,
    change: &Change,
    body: Option<&VersionBody>,
) -> StoreResult<()> {
    let actor = origin.actor.unwrap_or_default();
    match change {
        Change::Proposed {
            title,
            commissions,
            research_questions,
            scope_start,
            scope_end,
        } => {
            investigation::Entity::insert(sea_orm::IntoActiveModel::into_active_model(
                investigation::Model {
                    id,
                    title: title.clone(),
                    phase: Phase::Proposal.as_str().into(),
                    suspended: false,
                    suspended_at: None,
                    research_questions: serde_json::to_string(research_questions)
                        .unwrap_or_else(|_| "[]".into()),
                    scope_start: *scope_start,
                    scope_end: *scope_end,
                    rebuttal_mode: None,
                    rebuttal_due_date: None,
                    proposal_approved: false,
                    published_at: None,
                    created_by: actor,
                    created_at: now,
                },
            ))
            .exec(txn)
            .await?;
            investigation_commission::Entity::insert_many(commissions.iter().enumerate().map(
                |(position, commission)| {
                    sea_orm::IntoActiveModel::into_active_model(investigation_commission::Model {
                        investigation_id: id,
                        commission_id: commission.0,
                        position: position as i32,
                    })
                },
            ))
            .exec(txn)
            .await?;
        }
        Change::RapporteurAssigned { user, commission } => {
            rapporteur::Entity::insert(sea_orm::IntoActiveModel::into_active_model(
                rapporteur::Model {
                    investigation_id: id,
                    user_id: user.0,
                    commission_id: commission.0,
                    assigned_at: now,
                },
            ))
            .exec(txn)
            .await?;
        }
        Change::DocumentCreated {
            document: document_id,
            kind,
            title,
            municipality,
        } => {
            document::Entity::insert(sea_orm::IntoActiveModel::into_active_model(
                document::Model {
                    id: document_id.0,
                    investigation_id: id,
                    kind: kind.as_str().into(),
                    title: title.clone(),
                    municipality_id: municipality.map(|m| m.0),
                    created_at: now,
                },
            ))
            .exec(txn)
            .await?;
        }
        Change::DocumentRetitled {
            document: document_id,
            title,
        } => {
            document::Entity::update(document::ActiveModel {
                id: Set(document_id.0),
                title: Set(title.clone()),
                ..Default::default()
            })
            .exec(txn)
            .await?;
        }
        Change::VersionAdded {
            document: document_id,
            version,
            number,
            sha256,
            size_bytes,
            media_type,
            note,
        } => {
            let body = body.ok_or_else(|| StoreError::corrupt("a version without content"))?;
            let inserted = document_version::Entity::insert(
                sea_orm::IntoActiveModel::into_active_model(document_version::Model {
                    id: version.0,
                    document_id: document_id.0,
                    investigation_id: id,
                    number: *number,
                    sha256: sha256.clone(),
                    size_bytes: *size_bytes,
                    media_type: media_type.clone(),
                    file_name: body.file_name.clone(),
                    author_id: actor,
                    note: note.clone(),
                    created_at: now,
                }),
            )
            .exec(txn)
            .await;
            if let Err(err) = inserted {
                let err = StoreError::from(err);
                if err.is_unique_violation() {
                    return Err(DomainError::conflict(
                        "another version was submitted at the same moment; reload and submit again",
                    )
                    .into());
                }
                return Err(err);
            }
            version_content::Entity::insert(sea_orm::IntoActiveModel::into_active_model(
                version_content::Model {
                    version_id: version.0,
                    body: body.bytes.clone(),
                },
            ))
            .exec(txn)
            .await?;
        }
        Change::RecommendationAdded {
            recommendation: recommendation_id,
            number,
            text,
            addressee,
        } => {
            recommendation::Entity::insert(sea_orm::IntoActiveModel::into_active_model(
                recommendation::Model {
                    id: recommendation_id.0,
                    investigation_id: id,
                    number: *number,
                    text: text.clone(),
                    addressee: addressee.as_str().into(),
                    created_at: now,
                },
            ))
            .exec(txn)
            .await?;
        }
        Change::RebuttalTermsSet { mode, due_date } => {
            update_investigation(txn, id, |row| {
                row.rebuttal_mode = Set(Some(mode.as_str().into()));
                row.rebuttal_due_date = Set(*due_date);
            })
            .await?;
        }
        Change::Approved {
            approval: approval_id,
            phase,
            commission,
            fingerprint,
            comment,
        } => {
            approval::Entity::insert(sea_orm::IntoActiveModel::into_active_model(
                approval::Model {
                    id: approval_id.0,
                    investigation_id: id,
                    phase: phase.as_str().into(),
                    commission_id: commission.0,
                    approved_by: actor,
                    approved_at: now,
                    comment: comment.clone(),
                    fingerprint: fingerprint.clone(),
                    voided_at: None,
                    void_reason: None,
                },
            ))
            .exec(txn)
            .await?;
        }
        Change::ApprovalsVoided { approvals, reason } => {
            if !approvals.is_empty() {
                approval::Entity::update_many()
                    .col_expr(approval::Column::VoidedAt, Expr::value(now))
                    .col_expr(approval::Column::VoidReason, Expr::value(reason.clone()))
                    .filter(approval::Column::Id.is_in(approvals.iter().map(|a| a.0)))
                    .exec(txn)
                    .await?;
            }
        }
        Change::VersionsFrozen { purpose, versions } => {
            if !versions.is_empty() {
                frozen_version::Entity::insert_many(versions.iter().map(|v| {
                    sea_orm::IntoActiveModel::into_active_model(frozen_version::Model {
                        investigation_id: id,
                        purpose: purpose.as_str().into(),
                        version_id: v.0,
                        frozen_at: now,
                    })
                }))
                .exec(txn)
                .await?;
            }
            if *purpose == FreezePurpose::ApprovedProposal {
                update_investigation(txn, id, |row| row.proposal_approved = Set(true)).await?;
            }
        }
        Change::PhaseAdvanced { to, .. } => {
            update_investigation(txn, id, |row| row.phase = Set(to.as_str().into())).await?;
        }
        Change::Suspended { .. } => {
            update_investigation(txn, id, |row| {
                row.suspended = Set(true);
                row.suspended_at = Set(Some(now));
            })
            .await?;
        }
        Change::Resumed => {
            update_investigation(txn, id, |row| {
                row.suspended = Set(false);
                row.suspended_at = Set(None);
            })
            .await?;
        }
        Change::Cancelled { .. } => {
            update_investigation(txn, id, |row| {
                row.phase = Set(Phase::Cancelled.as_str().into());
                row.suspended = Set(false);
                row.suspended_at = Set(None);
            })
            .await?;
        }
        Change::DeadlineOpened {
            deadline: deadline_id,
            kind,
            municipality,
            due_at,
        } => {
            deadline::Entity::insert(sea_orm::IntoActiveModel::into_active_model(
                deadline::Model {
                    id: deadline_id.0,
                    investigation_id: id,
                    kind: kind.as_str().into(),
                    municipality_id: municipality.0,
                    due_at: *due_at,
                    status: DeadlineStatus::Open.as_str().into(),
                    created_at: now,
                    closed_at: None,
                },
            ))
            .exec(txn)
            .await?;
        }
        Change::DeadlineClosed {
            deadline: deadline_id,
            status,
            ..
        } => {
            deadline::Entity::update(deadline::ActiveModel {
                id: Set(deadline_id.0),
                status: Set(status.as_str().into()),
                closed_at: Set(Some(now)),
                ..Default::default()
            })
            .exec(txn)
            .await?;
        }
        Change::DeadlineMoved {
            deadline: deadline_id,
            due_at,
            ..
        } => {
            deadline::Entity::update(deadline::ActiveModel {
                id: Set(deadline_id.0),
                due_at: Set(*due_at),
                ..Default::default()
            })
            .exec(txn)
            .await?;
            // Reminders count down to the new due instant again.
            deadline_reminder::Entity::delete_many()
                .filter(deadline_reminder::Column::DeadlineId.eq(deadline_id.0))
                .exec(txn)
                .await?;
        }
        Change::ReminderDue {
            deadline: deadline_id,
            before_seconds,
            also_covers,
            ..
        } => {
            deadline_reminder::Entity::insert_many(
                std::iter::once(*before_seconds)
                    .chain(also_covers.iter().copied())
                    .map(|seconds| {
                        sea_orm::IntoActiveModel::into_active_model(deadline_reminder::Model {
                            deadline_id: deadline_id.0,
                            before_seconds: seconds,
                            sent_at: now,
                        })
                    }),
            )
            .exec(txn)
            .await?;
        }
        Change::ResponseFiled {
            response: response_id,
            document: document_id,
            version,
            colleges,
            signed_by,
            late,
            positions,
        } => {
            response::Entity::insert(sea_orm::IntoActiveModel::into_active_model(
                response::Model {
                    id: response_id.0,
                    investigation_id: id,
                    document_id: document_id.0,
                    version_id: version.0,
                    late: *late,
                    filed_by: actor,
                    filed_at: now,
                },
            ))
            .exec(txn)
            .await?;
            response_college::Entity::insert_many(colleges.iter().map(|college| {
                let signed = signed_by.contains(college);
                sea_orm::IntoActiveModel::into_active_model(response_college::Model {
                    response_id: response_id.0,
                    municipality_id: college.0,
                    signed_at: signed.then_some(now),
                    signed_by: signed.then_some(actor),
                })
            }))
            .exec(txn)
            .await?;
            if !positions.is_empty() {
                response_position::Entity::insert_many(positions.iter().map(
                    |(recommendation_id, position)| {
                        sea_orm::IntoActiveModel::into_active_model(response_position::Model {
                            response_id: response_id.0,
                            recommendation_id: recommendation_id.0,
                            position: position.as_str().into(),
                        })
                    },
                ))
                .exec(txn)
                .await?;
            }
        }
        Change::ResponseCosigned {
            response: response_id,
            colleges,
            late,
        } => {
            for college in colleges {
                response_college::Entity::update(response_college::ActiveModel {
                    response_id: Set(response_id.0),
                    municipality_id: Set(college.0),
                    signed_at: Set(Some(now)),
                    signed_by: Set(Some(actor)),
                })
                .exec(txn)
                .await?;
            }
            if *late {
                response::Entity::update(response::ActiveModel {
                    id: Set(response_id.0),
                    late: Set(true),
                    ..Default::default()
                })
                .exec(txn)
                .await?;
            }
        }
        // Recorded by its audit event alone.
        Change::NoResponse { .. } => {}
        Change::ExtensionRequested {
            request,
            municipality,
            proposed_due_date,
            reason,
        } => {
            extension_request::Entity::insert(sea_orm::IntoActiveModel::into_active_model(
                extension_request::Model {
                    id: request.0,
                    investigation_id: id,
                    municipality_id: municipality.0,
                    proposed_due_date: *proposed_due_date,
                    reason: reason.clone(),
                    requested_by: actor,
                    requested_at: now,
                    granted: None,
                    decided_at: None,
                },
            ))
            .exec(txn)
            .await?;
        }
        Change::ExtensionVoted {
            request,
            commission,
            grant,
            comment,
        } => {
            extension_vote::Entity::insert(sea_orm::IntoActiveModel::into_active_model(
                extension_vote::Model {
                    request_id: request.0,
                    commission_id: commission.0,
                    grant: *grant,
                    comment: comment.clone(),
                    decided_by: actor,
                    decided_at: now,
                },
            ))
            .exec(txn)
            .await?;
        }
        Change::Submitted {
            submissions,
            versions,
            manifest,
            manifest_sha256,
        } => {
            for (submission, municipality) in submissions {
                council_submission::Entity::insert(sea_orm::IntoActiveModel::into_active_model(
                    council_submission::Model {
                        id: submission.0,
                        investigation_id: id,
                        municipality_id: municipality.0,
                        submitted_at: now,
                        manifest: manifest.clone(),
                        manifest_sha256: manifest_sha256.clone(),
                    },
                ))
                .exec(txn)
                .await?;
                if !versions.is_empty() {
                    submission_version::Entity::insert_many(versions.iter().enumerate().map(
                        |(position, version)| {
                            sea_orm::IntoActiveModel::into_active_model(submission_version::Model {
                                submission_id: submission.0,
                                position: position as i32 + 1,
                                version_id: version.0,
                            })
                        },
                    ))
                    .exec(txn)
                    .await?;
                }
            }
            update_investigation(txn, id, |row| row.published_at = Set(Some(now))).await?;
        }
        Change::CouncilDecisionRecorded {
            recommendation,
            municipality,
            decision,
            note,
        } => {
            council_decision::Entity::update_many()
                .col_expr(council_decision::Column::Current, Expr::value(false))
                .filter(council_decision::Column::RecommendationId.eq(recommendation.0))
                .filter(council_decision::Column::MunicipalityId.eq(municipality.0))
                .exec(txn)
                .await?;
            council_decision::Entity::insert(sea_orm::IntoActiveModel::into_active_model(
                council_decision::Model {
                    id: Uuid::now_v7(),
                    recommendation_id: recommendation.0,
                    investigation_id: id,
                    municipality_id: municipality.0,
                    decision: decision.as_str().into(),
                    note: note.clone(),
                    current: true,
                    recorded_by: actor,
                    recorded_at: now,
                },
            ))
            .exec(txn)
            .await?;
        }
        Change::ImplementationUpdated {
            recommendation,
            municipality,
            text,
        } => {
            implementation_update::Entity::insert(sea_orm::IntoActiveModel::into_active_model(
                implementation_update::Model {
                    id: Uuid::now_v7(),
                    recommendation_id: recommendation.0,
                    investigation_id: id,
                    municipality_id: municipality.0,
                    text: text.clone(),
                    author_id: actor,
                    at: now,
                },
            ))
            .exec(txn)
            .await?;
        }
        Change::ExtensionResolved { request, granted } => {
            extension_request::Entity::update(extension_request::ActiveModel {
                id: Set(request.0),
                granted: Set(Some(*granted)),
                decided_at: Set(Some(now)),
                ..Default::default()
            })
            .exec(txn)
            .await?;
        }
    }
    Ok(())
}

/// One page of investigations, newest first.
#[derive(Clone, Debug)]
pub struct Page {
    pub investigations: Vec<Arc<Loaded>>,
    pub has_next: bool,
    pub total: u64,
}

/// The SQL form of the domain's [`ListingFilter`] (the e2e tests check the two agree).
fn listing_condition(filter: &ListingFilter) -> Condition {
    let mut any = Condition::any();
    if !filter.team_commissions.is_empty() {
        any = any.add(
            investigation::Column::Id.in_subquery(
                Query::select()
                    .column(investigation_commission::Column::InvestigationId)
                    .from(investigation_commission::Entity)
                    .and_where(
                        investigation_commission::Column::CommissionId
                            .is_in(filter.team_commissions.iter().map(|c| c.0)),
                    )
                    .to_owned(),
            ),
        );
    }
    if let Some(user) = filter.rapporteur {
        any = any.add(
            investigation::Column::Id.in_subquery(
                Query::select()
                    .column(rapporteur::Column::InvestigationId)
                    .from(rapporteur::Entity)
                    .and_where(rapporteur::Column::UserId.eq(user.0))
                    .to_owned(),
            ),
        );
    }
    if !filter.municipalities_after_proposal.is_empty() {
        any = any.add(
            Condition::all()
                .add(investigation::Column::ProposalApproved.eq(true))
                .add(
                    investigation::Column::Id.in_subquery(
                        Query::select()
                            .column((
                                investigation_commission::Entity,
                                investigation_commission::Column::InvestigationId,
                            ))
                            .from(investigation_commission::Entity)
                            .inner_join(
                                commission_municipality::Entity,
                                Expr::col((
                                    commission_municipality::Entity,
                                    commission_municipality::Column::CommissionId,
                                ))
                                .equals((
                                    investigation_commission::Entity,
                                    investigation_commission::Column::CommissionId,
                                )),
                            )
                            .and_where(
                                Expr::col((
                                    commission_municipality::Entity,
                                    commission_municipality::Column::MunicipalityId,
                                ))
                                .is_in(filter.municipalities_after_proposal.iter().map(|m| m.0)),
                            )
                            .to_owned(),
                    ),
                ),
        );
    }
    if filter.published {
        any = any.add(investigation::Column::PublishedAt.is_not_null());
    }
    any
}

/// The investigations the filter admits, newest first, after the cursor id: the page, each
/// row's snapshot and the total in one statement (the total a scalar subquery over the
/// filter, the page read along the primary key and cut by cursor and limit, the snapshots
/// joined to the page only), then the commissions ([`load_rows`]).
pub async fn list<R: Reader>(
    reads: &R,
    filter: &ListingFilter,
    phase: Option<Phase>,
    after: Option<Uuid>,
    first: u64,
) -> StoreResult<Page> {
    const TOTAL: &str = "listing_total";
    let mut condition = Condition::all().add(listing_condition(filter));
    if let Some(phase) = phase {
        condition = condition.add(investigation::Column::Phase.eq(phase.as_str()));
    }
    // The total is an uncorrelated scalar subquery, run once, that only counts: the page
    // itself can then walk the primary key backwards from the cursor and stop at `first + 1`
    // admitted rows, instead of every admitted row being kept for a window count and sorted.
    let total = Query::select()
        .expr(Expr::cust("COUNT(*)"))
        .from(investigation::Entity)
        .cond_where(condition.clone())
        .to_owned();
    let mut on_page = condition.clone();
    if let Some(after) = after {
        on_page = on_page.add(investigation::Column::Id.lt(after));
    }
    // The page is cut (order, cursor, limit) before the snapshots are joined, so that only
    // the listed rows' snapshots are read, not those of every admitted investigation.
    let cut = investigation::Entity::find()
        .filter(on_page)
        .expr_as(Expr::from(total), TOTAL)
        .order_by_desc(investigation::Column::Id)
        .limit(first + 1)
        .into_query();
    let page_alias = Alias::new("page");
    let mut page = Query::select();
    page.column((page_alias.clone(), Asterisk))
        .expr_as(
            Expr::col((
                investigation_snapshot::Entity,
                investigation_snapshot::Column::Format,
            )),
            SNAPSHOT_FORMAT,
        )
        .expr_as(
            Expr::col((
                investigation_snapshot::Entity,
                investigation_snapshot::Column::Digest,
            )),
            SNAPSHOT_DIGEST,
        )
        .from_subquery(cut, page_alias.clone())
        .left_join(
            investigation_snapshot::Entity,
            Expr::col((
                investigation_snapshot::Entity,
                investigation_snapshot::Column::InvestigationId,
            ))
            .equals((page_alias.clone(), investigation::Column::Id)),
        )
        .order_by((page_alias, investigation::Column::Id), Order::Desc);
    let rows = reads.query_all(&page).await?;
    let mut total = None;
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        total = Some(row.try_get::<i64>("", TOTAL)?);
        found.push(row_with_snapshot_key(&row)?);
    }
    let total = match total {
        Some(total) => u64::try_from(total).unwrap_or(0),
        // An empty page (past the end) has no row to carry the total.
        None => {
            investigation::Entity::find()
                .filter(condition)
                .count(reads)
                .await?
        }
    };
    let has_next = found.len() as u64 > first;
    found.truncate(first as usize);
    Ok(Page {
        investigations: load_rows(reads, reads.db(), found, true).await?,
        has_next,
        total,
    })
}

/// A version's metadata and the investigation it belongs to.
pub async fn find_version<C: ConnectionTrait>(
    db: &C,
    version: Uuid,
) -> StoreResult<Option<document_version::Model>> {
    Ok(document_version::Entity::find_by_id(version)
        .one(db)
        .await?)
}

/// The stored bytes of a version.
pub async fn version_body<C: ConnectionTrait>(db: &C, version: Uuid) -> StoreResult<Vec<u8>> {
    version_content::Entity::find_by_id(version)
        .one(db)
        .await?
        .map(|c| c.body)
        .ok_or_else(|| StoreError::corrupt(format!("content of version {version} missing")))
}

/// The Markdown text of many versions at once (for the `content` field).
pub async fn markdown_bodies<C: ConnectionTrait>(
    db: &C,
    versions: &[Uuid],
) -> StoreResult<HashMap<Uuid, String>> {
    if versions.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(version_content::Entity::find()
        .filter(version_content::Column::VersionId.is_in(versions.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|c| (c.version_id, String::from_utf8_lossy(&c.body).into_owned()))
        .collect())
}

/// Audits a read of confidential content (who opened which version, when).
pub async fn record_read(
    db: &Db,
    origin: &Origin,
    now: DateTime<Utc>,
    investigation: Uuid,
    versions: &[Uuid],
    via: &str,
) -> StoreResult<()> {
    if versions.is_empty() {
        return Ok(());
    }
    let txn = db.begin_write().await?;
    audit::append(
        &txn,
        origin,
        now,
        &[NewEvent {
            action: "document.read",
            investigation: Some(investigation),
            data: serde_json::json!({ "versions": versions, "via": via }),
        }],
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The investigation a response belongs to.
pub async fn investigation_of_response(db: &Db, response_id: Uuid) -> StoreResult<Option<Uuid>> {
    Ok(response::Entity::find_by_id(response_id)
        .one(&db.conn)
        .await?
        .map(|r| r.investigation_id))
}

/// The investigation an extension request belongs to.
pub async fn investigation_of_extension(db: &Db, request_id: Uuid) -> StoreResult<Option<Uuid>> {
    Ok(extension_request::Entity::find_by_id(request_id)
        .one(&db.conn)
        .await?
        .map(|e| e.investigation_id))
}

/// The scheduler's pass: for every investigation with an open deadline that has passed or
/// whose reminder is due, one transaction that locks the investigation, asks the domain's
/// `tick`, and writes its changes with their audit events. Safe to run in several processes
/// at once: the row lock serialises them and each re-reads what the other wrote, so every
/// MISSED marking and reminder happens once.
pub async fn tick(
    db: &Db,
    now: DateTime<Utc>,
    reminder_offsets: &[chrono::Duration],
) -> StoreResult<Written> {
    let horizon = now
        + reminder_offsets
            .iter()
            .copied()
            .max()
            .unwrap_or_else(chrono::Duration::zero);
    let candidates: Vec<Uuid> = deadline::Entity::find()
        .select_only()
        .column(deadline::Column::InvestigationId)
        .filter(deadline::Column::Status.eq(DeadlineStatus::Open.as_str()))
        .filter(deadline::Column::DueAt.lte(horizon))
        .distinct()
        .into_tuple()
        .all(&db.conn)
        .await?;
    let system = Origin {
        actor: None,
        client: Some("scheduler".into()),
    };
    let mut written = Vec::new();
    for id in candidates {
        let txn = db.begin_write().await?;
        let Some(loaded) = load_for_update(&txn, db, id).await? else {
            continue;
        };
        let changes = loaded.domain.tick(now, reminder_offsets);
        if changes.is_empty() {
            txn.rollback().await?;
            continue;
        }
        written.extend(
            write_changes(&txn, &system, now, id, &changes, None)
                .await?
                .0,
        );
        txn.commit().await?;
    }
    Ok(written)
}

/// The investigation a recommendation belongs to.
pub async fn investigation_of_recommendation(
    db: &Db,
    recommendation_id: Uuid,
) -> StoreResult<Option<Uuid>> {
    Ok(recommendation::Entity::find_by_id(recommendation_id)
        .one(&db.conn)
        .await?
        .map(|r| r.investigation_id))
}

/// A council submission and its investigation, for the bundle download.
pub async fn find_submission(
    db: &Db,
    submission_id: Uuid,
) -> StoreResult<Option<council_submission::Model>> {
    Ok(council_submission::Entity::find_by_id(submission_id)
        .one(&db.conn)
        .await?)
}

/// Filters of the recommendations register.
#[derive(Clone, Debug, Default)]
pub struct RegisterFilter {
    pub addressee: Option<RecommendationAddressee>,
    pub decision: Option<rkflow_domain::submission::CouncilDecision>,
    pub municipality: Option<Uuid>,
}

/// One row of the register: a recommendation for one concerned municipality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterKey {
    pub recommendation: Uuid,
    pub municipality: Uuid,
    pub investigation: Uuid,
}

/// A page of the register.
#[derive(Clone, Debug)]
pub struct RegisterPage {
    pub keys: Vec<RegisterKey>,
    pub has_next: bool,
    pub total: u64,
}

/// The recommendations register ("aanbevelingenmonitor"): every recommendation of a submitted
/// investigation the filter admits, once per concerned municipality, newest recommendation
/// first. Filtering, counting and paging happen in SQL.
pub async fn register<C: ConnectionTrait>(
    db: &C,
    listing: &ListingFilter,
    filter: &RegisterFilter,
    after: Option<(Uuid, Uuid)>,
    first: u64,
) -> StoreResult<RegisterPage> {
    use sea_orm::sea_query::{Alias, Asterisk, Func, JoinType, SelectStatement};
    let r = Alias::new("r");
    let ic = Alias::new("ic");
    let cm = Alias::new("cm");
    let visible = Query::select()
        .column(investigation::Column::Id)
        .from(investigation::Entity)
        .cond_where(
            Condition::all()
                .add(investigation::Column::PublishedAt.is_not_null())
                .add(listing_condition(listing)),
        )
        .to_owned();
    let base = |with_cursor: bool| -> SelectStatement {
        let mut query = Query::select();
        query
            .distinct()
            .expr_as(
                Expr::col((r.clone(), recommendation::Column::Id)),
                Alias::new("recommendation_id"),
            )
            .expr_as(
                Expr::col((cm.clone(), commission_municipality::Column::MunicipalityId)),
                Alias::new("municipality_id"),
            )
            .expr_as(
                Expr::col((r.clone(), recommendation::Column::InvestigationId)),
                Alias::new("investigation_id"),
            )
            .from_as(recommendation::Entity, r.clone())
            .join_as(
                JoinType::InnerJoin,
                investigation_commission::Entity,
                ic.clone(),
                Expr::col((
                    ic.clone(),
                    investigation_commission::Column::InvestigationId,
                ))
                .equals((r.clone(), recommendation::Column::InvestigationId)),
            )
            .join_as(
                JoinType::InnerJoin,
                commission_municipality::Entity,
                cm.clone(),
                Expr::col((cm.clone(), commission_municipality::Column::CommissionId))
                    .equals((ic.clone(), investigation_commission::Column::CommissionId)),
            )
            .and_where(
                Expr::col((r.clone(), recommendation::Column::InvestigationId))
                    .in_subquery(visible.clone()),
            );
        if let Some(addressee) = filter.addressee {
            query.and_where(
                Expr::col((r.clone(), recommendation::Column::Addressee)).eq(addressee.as_str()),
            );
        }
        if let Some(municipality) = filter.municipality {
            query.and_where(
                Expr::col((cm.clone(), commission_municipality::Column::MunicipalityId))
                    .eq(municipality),
            );
        }
        if let Some(decision) = filter.decision {
            query.and_where(Expr::exists(
                Query::select()
                    .expr(Expr::val(1))
                    .from(council_decision::Entity)
                    .and_where(
                        Expr::col((
                            council_decision::Entity,
                            council_decision::Column::RecommendationId,
                        ))
                        .equals((r.clone(), recommendation::Column::Id)),
                    )
                    .and_where(
                        Expr::col((
                            council_decision::Entity,
                            council_decision::Column::MunicipalityId,
                        ))
                        .equals((cm.clone(), commission_municipality::Column::MunicipalityId)),
                    )
                    .and_where(
                        Expr::col((council_decision::Entity, council_decision::Column::Current))
                            .eq(true),
                    )
                    .and_where(
                        Expr::col((council_decision::Entity, council_decision::Column::Decision))
                            .eq(decision.as_str()),
                    )
                    .to_owned(),
            ));
        }
        if with_cursor && let Some((recommendation_id, municipality_id)) = after {
            let rec = Expr::col((r.clone(), recommendation::Column::Id));
            query.cond_where(
                Condition::any().add(rec.clone().lt(recommendation_id)).add(
                    Condition::all().add(rec.eq(recommendation_id)).add(
                        Expr::col((cm.clone(), commission_municipality::Column::MunicipalityId))
                            .gt(municipality_id),
                    ),
                ),
            );
        }
        query.to_owned()
    };
    let count_query = Query::select()
        .expr(Func::count(Expr::col(Asterisk)))
        .from_subquery(base(false), Alias::new("entries"))
        .to_owned();
    let total = db
        .query_one(&count_query)
        .await?
        .map(|row| row.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0);
    let mut page_query = base(true);
    page_query
        .order_by(Alias::new("recommendation_id"), sea_orm::Order::Desc)
        .order_by(Alias::new("municipality_id"), sea_orm::Order::Asc)
        .limit(first + 1);
    let rows = db.query_all(&page_query).await?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        keys.push(RegisterKey {
            recommendation: row.try_get("", "recommendation_id")?,
            municipality: row.try_get("", "municipality_id")?,
            investigation: row.try_get("", "investigation_id")?,
        });
    }
    let has_next = keys.len() as u64 > first;
    keys.truncate(first as usize);
    Ok(RegisterPage {
        keys,
        has_next,
        total: u64::try_from(total).unwrap_or(0),
    })
}

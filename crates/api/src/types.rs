//! GraphQL object types. They wrap store rows and the caller's [`View`], and ask the domain's
//! visibility rules for every nested list, so no path shows more than the root would.

use crate::context::{load_failed, loaders, request, state};
use crate::error::{ApiError, ApiResult};
use crate::plain::{self, Plain, PlainFields};
use async_graphql::dataloader::{CacheFactory, DataLoader, Loader};
use async_graphql::{
    Context, Enum, ID, InputValueError, InputValueResult, Object, Scalar, ScalarType, Value,
};
use chrono::{DateTime, NaiveDate, Utc};
use rkflow_domain::role::StoredGrant;
use rkflow_domain::visibility::View;
use rkflow_domain::{Actor, Scope};
use rkflow_store::accounts::UserCard;
use rkflow_store::entity::{
    approval, audit_event, council_decision, council_submission, deadline, document,
    document_version, extension_request, implementation_update, municipality, recommendation, user,
};
use rkflow_store::investigations::Loaded;
use rkflow_store::organisation::CommissionWithMunicipalities;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use uuid::Uuid;

/// A calendar day, `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date(pub NaiveDate);

#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(Date)
                .map_err(|_| InputValueError::custom("expected a date as YYYY-MM-DD")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "rkflow_domain::Role")]
pub enum Role {
    Admin,
    Chair,
    Member,
    Secretary,
    CollegeContact,
    CivilServiceContact,
    Griffier,
    CouncilMember,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "rkflow_domain::Phase")]
pub enum Phase {
    Proposal,
    Research,
    AdministrativeRebuttal,
    Epilogue,
    CouncilSubmission,
    FollowUp,
    Closed,
    Cancelled,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "rkflow_domain::DocumentKind")]
pub enum DocumentKind {
    Proposal,
    ResearchReport,
    Conclusions,
    FactualResponse,
    AdministrativeResponse,
    Epilogue,
    CoverLetter,
    Annex,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "rkflow_domain::ResponseMode")]
pub enum ResponseMode {
    Joint,
    Separate,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "rkflow_domain::rebuttal::DeadlineKind")]
pub enum DeadlineKind {
    FactualCheck,
    AdministrativeResponse,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "rkflow_domain::rebuttal::DeadlineStatus")]
pub enum DeadlineStatus {
    Open,
    Met,
    Missed,
    Waived,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "rkflow_domain::rebuttal::CollegePosition")]
pub enum CollegePosition {
    Agrees,
    Partly,
    Disagrees,
    NoPosition,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "rkflow_domain::submission::CouncilDecision")]
pub enum CouncilDecision {
    Adopted,
    Amended,
    Rejected,
    Noted,
    NotTreated,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "rkflow_domain::RecommendationAddressee")]
pub enum RecommendationAddressee {
    Council,
    College,
    Administration,
}

/// Parses an `ID` argument; anything but a UUID is NOT_FOUND (no object has that id).
pub fn parse_id(id: &ID) -> ApiResult<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| ApiError::not_found())
}

/// Parses an `ID` argument that names something to act on; a malformed id is BAD_USER_INPUT.
pub fn parse_input_id(field: &str, id: &ID) -> ApiResult<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| ApiError::bad_input(field, "not a valid id"))
}

#[derive(Clone)]
pub struct UserObject {
    /// Shared with the request's user loader (a page names the same authors many times).
    pub model: Arc<UserCard>,
    /// The user's own record (`me`, the login payload): grants and state are shown.
    pub own: bool,
}

impl UserObject {
    pub fn of(card: Arc<UserCard>) -> UserObject {
        UserObject {
            model: card,
            own: false,
        }
    }

    /// A user just written (created, disabled or enabled).
    pub fn written(user: &user::Model) -> UserObject {
        UserObject::of(Arc::new(UserCard::from(user)))
    }

    pub fn own(user: &user::Model) -> UserObject {
        UserObject {
            model: Arc::new(UserCard::from(user)),
            own: true,
        }
    }

    /// Whether the caller may see the user's grants and account state: the user and ADMINs.
    fn shows_private(&self, ctx: &Context<'_>) -> bool {
        let actor = request(ctx).actor();
        self.own || actor.user == Some(self.model.id.into()) || actor.is_admin()
    }

    /// The email address as the caller may see it.
    fn shown_email(&self, ctx: &Context<'_>) -> &str {
        if self.own || request(ctx).session.is_some() {
            &self.model.email
        } else {
            ""
        }
    }
}

#[Object(name = "User")]
impl UserObject {
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }

    /// The email address; empty for callers without a session (the public sees the names of
    /// a published bundle's authors, not their addresses).
    async fn email(&self, ctx: &Context<'_>) -> &str {
        self.shown_email(ctx)
    }

    async fn name(&self) -> &str {
        &self.model.name
    }

    /// The user's role grants: shown to the user and to ADMINs only.
    async fn roles(&self, ctx: &Context<'_>) -> ApiResult<Vec<RoleGrantObject>> {
        if !self.shows_private(ctx) {
            return Ok(Vec::new());
        }
        let grants = loaders(ctx)
            .grants
            .load_one(self.model.id)
            .await
            .map_err(load_failed)?
            .unwrap_or_default();
        Ok(grants.0.into_iter().map(RoleGrantObject).collect())
    }

    /// Whether the account is disabled (shown to the user and to ADMINs).
    async fn disabled(&self, ctx: &Context<'_>) -> bool {
        self.shows_private(ctx) && self.model.disabled
    }
}

impl PlainFields for UserObject {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        match ctx.item.node.name.node.as_str() {
            "id" => plain::id(out, self.model.id),
            "email" => plain::string(out, self.shown_email(ctx)),
            "name" => plain::string(out, &self.model.name),
            "disabled" => plain::boolean(out, self.shows_private(ctx) && self.model.disabled),
            _ => return None,
        }
        Some(())
    }
}

/// A user loaded up front, answered at once (`None`: not loaded yet, so not plain).
fn plain_user(ctx: &Context<'_>, out: &mut String, id: Uuid) -> Option<()> {
    plain::object(ctx, out, &UserObject::of(loaders(ctx).known_user(id)?))
}

pub struct RoleGrantObject(pub StoredGrant);

#[Object(name = "RoleGrant")]
impl RoleGrantObject {
    async fn id(&self) -> ID {
        ID(self.0.id.0.to_string())
    }

    async fn role(&self) -> Role {
        self.0.grant.role.into()
    }

    async fn commission(&self, ctx: &Context<'_>) -> ApiResult<Option<CommissionObject>> {
        match self.0.grant.scope {
            Scope::Commission(id) => load_commission(ctx, id.0).await,
            _ => Ok(None),
        }
    }

    async fn municipality(&self, ctx: &Context<'_>) -> ApiResult<Option<MunicipalityObject>> {
        match self.0.grant.scope {
            Scope::Municipality(id) => load_municipality(ctx, id.0).await,
            _ => Ok(None),
        }
    }
}

pub async fn load_commission(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<CommissionObject>> {
    Ok(loaders(ctx)
        .commissions
        .load_one(id)
        .await
        .map_err(load_failed)?
        .map(CommissionObject))
}

pub async fn load_municipality(
    ctx: &Context<'_>,
    id: Uuid,
) -> ApiResult<Option<MunicipalityObject>> {
    Ok(loaders(ctx)
        .municipalities
        .load_one(id)
        .await
        .map_err(load_failed)?
        .map(MunicipalityObject))
}

/// The values of `ids` in their order, in one batch of `loader` (a loop of `load_one` would be
/// one batch per key: each waits for the previous one's). A key the database does not hold is
/// INTERNAL: it was referenced by a row that does.
async fn load_in_order<L, C>(
    loader: &DataLoader<L, C>,
    ids: impl Iterator<Item = Uuid> + Clone,
    what: &str,
) -> ApiResult<Vec<L::Value>>
where
    L: Loader<Uuid, Error = Arc<String>>,
    C: CacheFactory,
{
    let found = loader.load_many(ids.clone()).await.map_err(load_failed)?;
    ids.map(|id| {
        found
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::internal(&format!("{what} {id} referenced but missing")))
    })
    .collect()
}

async fn load_users(
    ctx: &Context<'_>,
    ids: impl Iterator<Item = Uuid> + Clone,
) -> ApiResult<Vec<UserObject>> {
    let users = load_in_order(&loaders(ctx).users, ids, "user").await?;
    Ok(users.into_iter().map(UserObject::of).collect())
}

async fn load_user(ctx: &Context<'_>, id: Uuid) -> ApiResult<UserObject> {
    loaders(ctx)
        .users
        .load_one(id)
        .await
        .map_err(load_failed)?
        .map(UserObject::of)
        .ok_or_else(|| ApiError::internal(&format!("user {id} referenced but missing")))
}

pub struct MunicipalityObject(pub municipality::Model);

#[Object(name = "Municipality")]
impl MunicipalityObject {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The gemeenteraad.
    async fn council(&self) -> Plain<CouncilObject> {
        Plain(CouncilObject(self.0.clone()))
    }

    /// The college van burgemeester en wethouders.
    async fn college(&self) -> Plain<CollegeObject> {
        Plain(CollegeObject(self.0.clone()))
    }
}

impl PlainFields for MunicipalityObject {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        match ctx.item.node.name.node.as_str() {
            "id" => plain::id(out, self.0.id),
            "name" => plain::string(out, &self.0.name),
            "council" => plain::object(ctx, out, &CouncilObject(self.0.clone()))?,
            "college" => plain::object(ctx, out, &CollegeObject(self.0.clone()))?,
            _ => return None,
        }
        Some(())
    }
}

pub struct CouncilObject(pub municipality::Model);

#[Object(name = "Council")]
impl CouncilObject {
    async fn id(&self) -> ID {
        ID(self.0.council_id.to_string())
    }

    async fn name(&self) -> String {
        self.display_name()
    }

    async fn municipality(&self) -> Plain<MunicipalityObject> {
        Plain(MunicipalityObject(self.0.clone()))
    }
}

impl CouncilObject {
    fn display_name(&self) -> String {
        format!("Gemeenteraad {}", self.0.name)
    }
}

impl PlainFields for CouncilObject {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        match ctx.item.node.name.node.as_str() {
            "id" => plain::id(out, self.0.council_id),
            "name" => plain::string(out, &self.display_name()),
            "municipality" => plain::object(ctx, out, &MunicipalityObject(self.0.clone()))?,
            _ => return None,
        }
        Some(())
    }
}

pub struct CollegeObject(pub municipality::Model);

#[Object(name = "College")]
impl CollegeObject {
    async fn id(&self) -> ID {
        ID(self.0.college_id.to_string())
    }

    async fn name(&self) -> String {
        self.display_name()
    }

    async fn municipality(&self) -> Plain<MunicipalityObject> {
        Plain(MunicipalityObject(self.0.clone()))
    }
}

impl CollegeObject {
    fn display_name(&self) -> String {
        format!("College van B&W {}", self.0.name)
    }
}

impl PlainFields for CollegeObject {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        match ctx.item.node.name.node.as_str() {
            "id" => plain::id(out, self.0.college_id),
            "name" => plain::string(out, &self.display_name()),
            "municipality" => plain::object(ctx, out, &MunicipalityObject(self.0.clone()))?,
            _ => return None,
        }
        Some(())
    }
}

/// The college of a municipality loaded up front, answered at once.
fn plain_college(ctx: &Context<'_>, out: &mut String, municipality: Uuid) -> Option<()> {
    plain::object(
        ctx,
        out,
        &CollegeObject(loaders(ctx).known_municipality(municipality)?),
    )
}

/// The colleges of municipalities loaded up front, in their order, answered at once.
fn plain_colleges(
    ctx: &Context<'_>,
    out: &mut String,
    municipalities: impl Iterator<Item = Uuid>,
) -> Option<()> {
    let loaders = loaders(ctx);
    let colleges = municipalities
        .map(|m| loaders.known_municipality(m).map(CollegeObject))
        .collect::<Option<Vec<_>>>()?;
    plain::list(ctx, out, colleges)
}

pub struct CommissionObject(pub CommissionWithMunicipalities);

#[Object(name = "Commission")]
impl CommissionObject {
    async fn id(&self) -> ID {
        ID(self.0.commission.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.commission.name
    }

    // Read with the commission (`organisation::with_municipalities`).
    async fn municipalities(&self) -> Vec<Plain<MunicipalityObject>> {
        self.municipality_objects().map(Plain).collect()
    }

    /// Term of the administrative rebuttal in days (the commission's policy).
    async fn rebuttal_term_days(&self) -> i32 {
        self.0.commission.rebuttal_term_days
    }

    /// Term of the factual check in days (the commission's policy).
    async fn factual_check_term_days(&self) -> i32 {
        self.0.commission.factual_check_term_days
    }
}

impl CommissionObject {
    fn municipality_objects(&self) -> impl Iterator<Item = MunicipalityObject> + '_ {
        self.0
            .municipalities
            .iter()
            .cloned()
            .map(MunicipalityObject)
    }
}

impl PlainFields for CommissionObject {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        let commission = &self.0.commission;
        match ctx.item.node.name.node.as_str() {
            "id" => plain::id(out, commission.id),
            "name" => plain::string(out, &commission.name),
            "municipalities" => plain::list(ctx, out, self.municipality_objects())?,
            "rebuttalTermDays" => plain::int(out, commission.rebuttal_term_days),
            "factualCheckTermDays" => plain::int(out, commission.factual_check_term_days),
            _ => return None,
        }
        Some(())
    }
}

/// A commission loaded up front, answered at once.
fn plain_commission(ctx: &Context<'_>, out: &mut String, id: Uuid) -> Option<()> {
    plain::object(
        ctx,
        out,
        &CommissionObject(loaders(ctx).known_commission(id)?),
    )
}

/// An investigation as one caller sees it.
#[derive(Clone)]
pub struct InvestigationObject {
    pub loaded: Arc<Loaded>,
    pub view: Arc<View>,
    /// Whom `view` was made for (the anonymous public for `publishedInvestigations`, whoever
    /// asks).
    pub actor: Actor,
}

impl InvestigationObject {
    /// `None` when the actor may not see it (indistinguishable from not existing).
    pub fn for_actor(loaded: Arc<Loaded>, actor: &Actor) -> Option<InvestigationObject> {
        let view = View::of(&loaded.domain, actor);
        view.investigation.then(|| InvestigationObject {
            loaded,
            view: Arc::new(view),
            actor: actor.clone(),
        })
    }

    /// The recommendations with positions, council decisions and updates, as the caller may
    /// see them (empty when they may not see recommendations at all).
    pub fn recommendation_objects(&self) -> Vec<RecommendationObject> {
        if !self.view.sees_recommendations(&self.loaded.domain) {
            return Vec::new();
        }
        // Each college's position, from its counted response (as far as the caller sees it).
        let domain = &self.loaded.domain;
        let mut positions: Vec<(Uuid, Uuid, rkflow_domain::rebuttal::CollegePosition)> = Vec::new();
        for (college, response) in domain.counted_by_college() {
            if !self.view.sees_response(domain, response) {
                continue;
            }
            for (recommendation, position) in &response.positions {
                positions.push((recommendation.0, college.0, *position));
            }
        }
        self.loaded
            .recommendations
            .iter()
            .cloned()
            .map(|model| RecommendationObject {
                positions: positions
                    .iter()
                    .filter(|(r, _, _)| *r == model.id)
                    .map(|(_, college, position)| (*college, *position))
                    .collect(),
                decisions: self
                    .loaded
                    .council_decisions
                    .iter()
                    .filter(|d| d.recommendation_id == model.id)
                    .cloned()
                    .collect(),
                updates: self
                    .loaded
                    .implementation_updates
                    .iter()
                    .filter(|u| u.recommendation_id == model.id)
                    .cloned()
                    .collect(),
                model,
            })
            .collect()
    }

    fn commission_objects(&self) -> impl Iterator<Item = CommissionObject> + '_ {
        self.loaded
            .commissions
            .iter()
            .cloned()
            .map(CommissionObject)
    }

    fn missing_approval_objects(&self) -> Vec<CommissionObject> {
        if !self.view.sees_gate(&self.loaded.domain) {
            return Vec::new();
        }
        self.loaded
            .missing_approvals()
            .iter()
            .filter_map(|participant| {
                self.loaded
                    .commissions
                    .iter()
                    .find(|c| c.commission.id == participant.id.0)
            })
            .cloned()
            .map(CommissionObject)
            .collect()
    }

    fn shown_research_questions(&self) -> Vec<String> {
        if self.view.sees_research_questions(&self.loaded.domain) {
            self.loaded.research_questions()
        } else {
            Vec::new()
        }
    }

    /// The rapporteurs, for the team only.
    fn shown_rapporteurs(&self) -> &[rkflow_store::entity::rapporteur::Model] {
        if self.view.sees_internals() {
            &self.loaded.rapporteurs
        } else {
            &[]
        }
    }

    fn approval_objects(&self) -> impl Iterator<Item = ApprovalObject> + '_ {
        let approvals = if self.view.sees_internals() {
            &self.loaded.approvals[..]
        } else {
            &[]
        };
        approvals.iter().cloned().map(ApprovalObject)
    }

    fn shown_gate_requirements(&self, ctx: &Context<'_>) -> Vec<String> {
        if !self.view.sees_gate(&self.loaded.domain) {
            return Vec::new();
        }
        self.loaded.domain.gate_guard(state(ctx).clock.now())
    }

    fn shown_rebuttal_mode(&self) -> Option<ResponseMode> {
        if self.view.sees_rebuttal_terms(&self.loaded.domain) {
            self.loaded.domain.rebuttal_terms.map(|t| t.mode.into())
        } else {
            None
        }
    }

    fn deadline_objects(&self) -> impl Iterator<Item = DeadlineObject> + '_ {
        self.loaded
            .deadlines
            .iter()
            .zip(&self.loaded.domain.deadlines)
            .filter(|(_, domain)| self.view.sees_deadline(domain))
            .map(|(model, _)| DeadlineObject(model.clone()))
    }

    fn response_objects(&self) -> impl Iterator<Item = ResponseObject> + '_ {
        let domain = &self.loaded.domain;
        // Once for all responses (each college's latest), not once per response.
        let counted: Vec<_> = domain.counted_responses().iter().map(|c| c.id).collect();
        domain
            .responses
            .iter()
            .filter(|r| self.view.sees_response(domain, r))
            .filter_map(move |r| {
                let version = self.loaded.versions.iter().find(|v| v.id == r.version.0)?;
                Some(ResponseObject {
                    state: r.clone(),
                    version: version.clone(),
                    counted: counted.contains(&r.id),
                })
            })
    }

    /// Documents with at least one version the caller may see, with only those versions.
    fn document_objects(&self) -> impl Iterator<Item = DocumentObject> + '_ {
        (0..self.loaded.documents.len()).filter_map(|index| self.document_object(index))
    }

    fn document_object(&self, index: usize) -> Option<DocumentObject> {
        let model = &self.loaded.documents[index];
        let domain_index = self.loaded.domain_document_index(model.id)?;
        let domain = &self.loaded.domain.documents[domain_index];
        let title = if self.view.sees_title(&self.loaded.domain, domain) {
            None
        } else {
            Some(domain.kind.default_title())
        };
        // Listed when the caller sees at least one of its versions.
        let latest = visible_versions(&self.loaded, &self.view, domain_index).next_back()?;
        Some(DocumentObject {
            loaded: self.loaded.clone(),
            view: self.view.clone(),
            index,
            domain: domain_index,
            title,
            latest,
        })
    }
}

#[Object(name = "Investigation")]
impl InvestigationObject {
    async fn id(&self) -> ID {
        ID(self.loaded.row.id.to_string())
    }

    async fn title(&self) -> &str {
        &self.loaded.row.title
    }

    async fn phase(&self) -> Phase {
        self.loaded.domain.phase.into()
    }

    async fn suspended(&self) -> bool {
        self.loaded.domain.suspended
    }

    // Read with the investigation, in the order they were listed.
    async fn commissions(&self) -> Vec<Plain<CommissionObject>> {
        self.commission_objects().map(Plain).collect()
    }

    /// The concerned municipalities: those the participating commissions serve.
    async fn municipalities(&self, ctx: &Context<'_>) -> ApiResult<Vec<MunicipalityObject>> {
        let ids: Vec<Uuid> = self
            .loaded
            .domain
            .municipalities()
            .into_iter()
            .map(|m| m.0)
            .collect();
        let found = loaders(ctx)
            .municipalities
            .load_many(ids.iter().copied())
            .await
            .map_err(load_failed)?;
        let mut list: Vec<municipality::Model> =
            ids.iter().filter_map(|id| found.get(id).cloned()).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(list.into_iter().map(MunicipalityObject).collect())
    }

    /// Shown to the team, and to whoever sees the approved proposal they come from.
    async fn research_questions(&self) -> Vec<String> {
        self.shown_research_questions()
    }

    /// Start of the period under investigation.
    async fn scope_start(&self) -> Option<Date> {
        self.view
            .sees_research_questions(&self.loaded.domain)
            .then_some(self.loaded.row.scope_start.map(Date))
            .flatten()
    }

    /// End of the period under investigation.
    async fn scope_end(&self) -> Option<Date> {
        self.view
            .sees_research_questions(&self.loaded.domain)
            .then_some(self.loaded.row.scope_end.map(Date))
            .flatten()
    }

    async fn rapporteurs(&self, ctx: &Context<'_>) -> ApiResult<Vec<Plain<RapporteurObject>>> {
        let rapporteurs = self.shown_rapporteurs();
        let users = load_users(ctx, rapporteurs.iter().map(|r| r.user_id)).await?;
        Ok(users
            .into_iter()
            .zip(rapporteurs)
            .map(|(user, r)| {
                Plain(RapporteurObject {
                    user,
                    commission: r.commission_id,
                })
            })
            .collect())
    }

    /// Documents with at least one version the caller may see, with only those versions.
    async fn documents(&self) -> Vec<Plain<DocumentObject>> {
        self.document_objects().map(Plain).collect()
    }

    /// The still-valid approvals of the current phase's gate.
    async fn approvals(&self) -> Vec<Plain<ApprovalObject>> {
        self.approval_objects().map(Plain).collect()
    }

    /// The commissions whose approval of the current gate is still missing (team only).
    async fn missing_approvals(&self) -> Vec<Plain<CommissionObject>> {
        self.missing_approval_objects()
            .into_iter()
            .map(Plain)
            .collect()
    }

    /// What the current gate still lacks besides approvals (team only; empty when complete).
    async fn gate_requirements(&self, ctx: &Context<'_>) -> Vec<String> {
        self.shown_gate_requirements(ctx)
    }

    async fn rebuttal_mode(&self) -> Option<ResponseMode> {
        self.shown_rebuttal_mode()
    }

    /// The explicit due date of the rebuttal, when one was set.
    async fn rebuttal_due_date(&self) -> Option<Date> {
        if self.view.sees_rebuttal_terms(&self.loaded.domain) {
            self.loaded
                .domain
                .rebuttal_terms
                .and_then(|t| t.due_date)
                .map(Date)
        } else {
            None
        }
    }

    async fn recommendations(&self) -> Vec<Plain<RecommendationObject>> {
        self.recommendation_objects()
            .into_iter()
            .map(Plain)
            .collect()
    }

    /// One per concerned council once the bundle is submitted, all at the same instant.
    async fn submissions(&self) -> Vec<CouncilSubmissionObject> {
        self.loaded
            .submissions
            .iter()
            .map(|(submission, versions)| CouncilSubmissionObject {
                submission: submission.clone(),
                versions: versions
                    .iter()
                    .filter_map(|id| self.loaded.versions.iter().find(|v| v.id == *id))
                    .cloned()
                    .collect(),
            })
            .collect()
    }

    /// The deadlines of the factual check and the rebuttal the caller may see.
    async fn deadlines(&self) -> Vec<Plain<DeadlineObject>> {
        self.deadline_objects().map(Plain).collect()
    }

    /// Extension requests: the team, and a college's contacts for their own college.
    async fn extension_requests(&self) -> Vec<ExtensionRequestObject> {
        self.loaded
            .extensions
            .iter()
            .filter(|e| self.view.sees_college_round(e.municipality_id.into()))
            .cloned()
            .map(ExtensionRequestObject)
            .collect()
    }

    /// Filed responses the caller may see, oldest first (a college's latest one counts).
    async fn responses(&self) -> Vec<Plain<ResponseObject>> {
        self.response_objects().map(Plain).collect()
    }

    async fn published_at(&self) -> Option<DateTime<Utc>> {
        self.loaded.row.published_at
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.loaded.row.created_at
    }
}

impl PlainFields for InvestigationObject {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        let loaded = &self.loaded;
        match ctx.item.node.name.node.as_str() {
            "id" => plain::id(out, loaded.row.id),
            "title" => plain::string(out, &loaded.row.title),
            "phase" => plain::enumeration(out, Phase::from(loaded.domain.phase))?,
            "suspended" => plain::boolean(out, loaded.domain.suspended),
            "commissions" => plain::list(ctx, out, self.commission_objects())?,
            "researchQuestions" => plain::strings(out, &self.shown_research_questions()),
            "rapporteurs" => {
                let loaders = loaders(ctx);
                let rapporteurs = self
                    .shown_rapporteurs()
                    .iter()
                    .map(|r| {
                        Some(RapporteurObject {
                            user: UserObject::of(loaders.known_user(r.user_id)?),
                            commission: r.commission_id,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                plain::list(ctx, out, rapporteurs)?
            }
            "documents" => plain::list(ctx, out, self.document_objects())?,
            "approvals" => plain::list(ctx, out, self.approval_objects())?,
            "missingApprovals" => plain::list(ctx, out, self.missing_approval_objects())?,
            "gateRequirements" => plain::strings(out, &self.shown_gate_requirements(ctx)),
            "rebuttalMode" => plain::optional_enumeration(out, self.shown_rebuttal_mode())?,
            "recommendations" => plain::list(ctx, out, self.recommendation_objects())?,
            "deadlines" => plain::list(ctx, out, self.deadline_objects())?,
            "responses" => plain::list(ctx, out, self.response_objects())?,
            "publishedAt" => plain::optional_date_time(out, loaded.row.published_at.as_ref()),
            "createdAt" => plain::date_time(out, &loaded.row.created_at),
            _ => return None,
        }
        Some(())
    }
}

pub struct RapporteurObject {
    pub user: UserObject,
    pub commission: Uuid,
}

#[Object(name = "Rapporteur")]
impl RapporteurObject {
    async fn user(&self) -> Plain<UserObject> {
        Plain(self.user.clone())
    }

    async fn commission(&self, ctx: &Context<'_>) -> ApiResult<Plain<CommissionObject>> {
        load_commission(ctx, self.commission)
            .await?
            .map(Plain)
            .ok_or_else(|| ApiError::internal(&"rapporteur of a missing commission"))
    }
}

impl PlainFields for RapporteurObject {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        match ctx.item.node.name.node.as_str() {
            "user" => plain::object(ctx, out, &self.user)?,
            "commission" => plain_commission(ctx, out, self.commission)?,
            _ => return None,
        }
        Some(())
    }
}

/// A document as one caller sees it: a view into the loaded investigation (versions are
/// copied out only when asked for; a dashboard asks for the latest alone).
pub struct DocumentObject {
    loaded: Arc<Loaded>,
    view: Arc<View>,
    /// The document's place in `loaded.documents`.
    index: usize,
    /// Its place in `loaded.domain.documents`.
    domain: usize,
    /// The kind's default title when the caller may not see the document's own
    /// (`View::sees_title`).
    title: Option<&'static str>,
    /// The place in `loaded.versions` of the latest version the caller sees (a document is
    /// listed only when there is one).
    latest: usize,
}

impl DocumentObject {
    fn model(&self) -> &document::Model {
        &self.loaded.documents[self.index]
    }

    fn version(&self, index: usize) -> VersionObject {
        VersionObject(self.loaded.versions[index].clone())
    }

    fn parsed_kind(&self) -> Option<DocumentKind> {
        rkflow_domain::DocumentKind::parse(&self.model().kind).map(Into::into)
    }

    fn shown_title(&self) -> &str {
        self.title.unwrap_or(&self.model().title)
    }

    /// The places in `loaded.versions` of the versions the caller may see, oldest first.
    fn visible(&self) -> impl DoubleEndedIterator<Item = usize> + '_ {
        visible_versions(&self.loaded, &self.view, self.domain)
    }

    fn version_objects(&self) -> impl Iterator<Item = VersionObject> + '_ {
        self.visible().map(|i| self.version(i))
    }

    fn latest_version_object(&self) -> VersionObject {
        self.version(self.latest)
    }
}

/// The places in `loaded.versions` of the versions of a document (its place in
/// `loaded.domain.documents`) that `view` may see, oldest first. Asked from the end, the
/// latest costs one visibility check, not one per version (a dashboard asks for the latest
/// alone).
fn visible_versions<'a>(
    loaded: &'a Loaded,
    view: &'a View,
    document: usize,
) -> impl DoubleEndedIterator<Item = usize> + 'a {
    let investigation = &loaded.domain;
    let domain = &investigation.documents[document];
    let id = domain.id.0;
    loaded
        .versions
        .iter()
        .enumerate()
        .filter(move |(_, v)| {
            v.document_id == id && view.sees_version(investigation, domain, v.id.into())
        })
        .map(|(i, _)| i)
}

#[Object(name = "Document")]
impl DocumentObject {
    async fn id(&self) -> ID {
        ID(self.model().id.to_string())
    }

    async fn kind(&self) -> ApiResult<DocumentKind> {
        self.parsed_kind()
            .ok_or_else(|| ApiError::internal(&"unknown document kind"))
    }

    async fn title(&self) -> &str {
        self.shown_title()
    }

    async fn versions(&self) -> Vec<Plain<VersionObject>> {
        self.version_objects().map(Plain).collect()
    }

    async fn latest_version(&self) -> Option<Plain<VersionObject>> {
        Some(Plain(self.latest_version_object()))
    }
}

impl PlainFields for DocumentObject {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        match ctx.item.node.name.node.as_str() {
            "id" => plain::id(out, self.model().id),
            "kind" => plain::enumeration(out, self.parsed_kind()?)?,
            "title" => plain::string(out, self.shown_title()),
            "versions" => plain::list_of::<VersionObject, _>(
                ctx,
                out,
                self.visible().map(|i| &self.loaded.versions[i]),
                |version, ctx, out| plain_version_field(version, ctx, out),
            )?,
            "latestVersion" => plain::object_of::<VersionObject>(ctx, out, |ctx, out| {
                plain_version_field(&self.loaded.versions[self.latest], ctx, out)
            })?,
            _ => return None,
        }
        Some(())
    }
}

pub struct VersionObject(pub document_version::Model);

/// The URL path at which a version's bytes are served.
pub fn download_path(version: Uuid) -> String {
    format!("/files/versions/{version}")
}

#[Object(name = "DocumentVersion")]
impl VersionObject {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn number(&self) -> i32 {
        self.0.number
    }

    async fn sha256(&self) -> &str {
        &self.0.sha256
    }

    async fn size_bytes(&self) -> i32 {
        size_as_int(&self.0)
    }

    async fn media_type(&self) -> &str {
        &self.0.media_type
    }

    /// The file name of an uploaded version.
    async fn file_name(&self) -> Option<&str> {
        self.0.file_name.as_deref()
    }

    /// The text, for Markdown versions.
    async fn content(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        if self.0.media_type != rkflow_domain::content::MARKDOWN {
            return Ok(None);
        }
        let text = loaders(ctx)
            .markdown
            .load_one(self.0.id)
            .await
            .map_err(load_failed)?;
        // Reads by logged-in users are audited; anonymous callers only ever reach published
        // bundle versions.
        if text.is_some() && request(ctx).session.is_some() {
            request(ctx)
                .reads
                .record(self.0.investigation_id, self.0.id);
        }
        Ok(text)
    }

    /// An authenticated HTTP GET of the exact bytes (send the same Bearer token).
    async fn download_url(&self) -> String {
        download_path(self.0.id)
    }

    async fn author(&self, ctx: &Context<'_>) -> ApiResult<Plain<UserObject>> {
        load_user(ctx, self.0.author_id).await.map(Plain)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
}

/// A version's size as GraphQL's `Int` (at most `i32::MAX`; uploads are far smaller).
fn size_as_int(version: &document_version::Model) -> i32 {
    i32::try_from(version.size_bytes).unwrap_or(i32::MAX)
}

impl PlainFields for VersionObject {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        plain_version_field(&self.0, ctx, out)
    }
}

/// A `DocumentVersion`'s plain field, written from the row itself: a document's versions and
/// a response's version are written from the loaded investigation's rows, not from copies.
fn plain_version_field(
    version: &document_version::Model,
    ctx: &Context<'_>,
    out: &mut String,
) -> Option<()> {
    match ctx.item.node.name.node.as_str() {
        "id" => plain::id(out, version.id),
        "number" => plain::int(out, version.number),
        "sha256" => plain::string(out, &version.sha256),
        "sizeBytes" => plain::int(out, size_as_int(version)),
        "mediaType" => plain::string(out, &version.media_type),
        "fileName" => plain::optional_string(out, version.file_name.as_deref()),
        "downloadUrl" => plain::string(out, &download_path(version.id)),
        "author" => plain_user(ctx, out, version.author_id)?,
        "createdAt" => plain::date_time(out, &version.created_at),
        "note" => plain::optional_string(out, version.note.as_deref()),
        // `content` loads the text and records the read.
        _ => return None,
    }
    Some(())
}

pub struct ApprovalObject(pub approval::Model);

#[Object(name = "Approval")]
impl ApprovalObject {
    async fn phase(&self) -> ApiResult<Phase> {
        self.parsed_phase()
            .ok_or_else(|| ApiError::internal(&"unknown phase"))
    }

    async fn commission(&self, ctx: &Context<'_>) -> ApiResult<Plain<CommissionObject>> {
        load_commission(ctx, self.0.commission_id)
            .await?
            .map(Plain)
            .ok_or_else(|| ApiError::internal(&"approval of a missing commission"))
    }

    async fn approved_by(&self, ctx: &Context<'_>) -> ApiResult<Plain<UserObject>> {
        load_user(ctx, self.0.approved_by).await.map(Plain)
    }

    async fn approved_at(&self) -> DateTime<Utc> {
        self.0.approved_at
    }

    async fn comment(&self) -> Option<&str> {
        self.0.comment.as_deref()
    }
}

impl ApprovalObject {
    fn parsed_phase(&self) -> Option<Phase> {
        rkflow_domain::Phase::parse(&self.0.phase).map(Into::into)
    }
}

impl PlainFields for ApprovalObject {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        let approval = &self.0;
        match ctx.item.node.name.node.as_str() {
            "phase" => plain::enumeration(out, self.parsed_phase()?)?,
            "commission" => plain_commission(ctx, out, approval.commission_id)?,
            "approvedBy" => plain_user(ctx, out, approval.approved_by)?,
            "approvedAt" => plain::date_time(out, &approval.approved_at),
            "comment" => plain::optional_string(out, approval.comment.as_deref()),
            _ => return None,
        }
        Some(())
    }
}

pub struct RecommendationObject {
    pub model: recommendation::Model,
    /// (college by municipality, position) from the counted responses the caller sees.
    pub positions: Vec<(Uuid, rkflow_domain::rebuttal::CollegePosition)>,
    /// Every recorded council decision on it (history).
    pub decisions: Vec<council_decision::Model>,
    pub updates: Vec<implementation_update::Model>,
}

#[Object(name = "Recommendation")]
impl RecommendationObject {
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }

    async fn number(&self) -> i32 {
        self.model.number
    }

    async fn text(&self) -> &str {
        &self.model.text
    }

    async fn addressee(&self) -> ApiResult<RecommendationAddressee> {
        self.parsed_addressee()
            .ok_or_else(|| ApiError::internal(&"unknown addressee"))
    }

    /// The current decision of each council (a later record replaces an earlier one).
    async fn council_decisions(&self) -> Vec<CouncilDecisionRecordObject> {
        self.decisions
            .iter()
            .filter(|d| d.current)
            .cloned()
            .map(CouncilDecisionRecordObject)
            .collect()
    }

    /// Every decision ever recorded, oldest first.
    async fn council_decision_history(&self) -> Vec<CouncilDecisionRecordObject> {
        self.decisions
            .iter()
            .cloned()
            .map(CouncilDecisionRecordObject)
            .collect()
    }

    /// The colleges' implementation reports, oldest first (append-only).
    async fn implementation_updates(&self) -> Vec<ImplementationUpdateObject> {
        self.updates
            .iter()
            .cloned()
            .map(ImplementationUpdateObject)
            .collect()
    }

    /// Each college's position, from its counted response.
    async fn positions(&self, ctx: &Context<'_>) -> ApiResult<Vec<RecommendationPositionObject>> {
        let found = loaders(ctx)
            .municipalities
            .load_many(self.positions.iter().map(|(municipality, _)| *municipality))
            .await
            .map_err(load_failed)?;
        Ok(self
            .positions
            .iter()
            .filter_map(|(municipality, position)| {
                Some(RecommendationPositionObject {
                    college: CollegeObject(found.get(municipality)?.clone()),
                    position: (*position).into(),
                })
            })
            .collect())
    }
}

impl RecommendationObject {
    fn parsed_addressee(&self) -> Option<RecommendationAddressee> {
        rkflow_domain::RecommendationAddressee::parse(&self.model.addressee).map(Into::into)
    }
}

impl PlainFields for RecommendationObject {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        match ctx.item.node.name.node.as_str() {
            "id" => plain::id(out, self.model.id),
            "number" => plain::int(out, self.model.number),
            "text" => plain::string(out, &self.model.text),
            "addressee" => plain::enumeration(out, self.parsed_addressee()?)?,
            // Decisions, updates and positions name councils, users and colleges: loaded.
            _ => return None,
        }
        Some(())
    }
}

pub struct CouncilDecisionRecordObject(pub council_decision::Model);

#[Object(name = "CouncilDecisionRecord")]
impl CouncilDecisionRecordObject {
    async fn council(&self, ctx: &Context<'_>) -> ApiResult<CouncilObject> {
        load_municipality(ctx, self.0.municipality_id)
            .await?
            .map(|m| CouncilObject(m.0))
            .ok_or_else(|| ApiError::internal(&"a decision of a missing council"))
    }

    async fn decision(&self) -> ApiResult<CouncilDecision> {
        rkflow_domain::submission::CouncilDecision::parse(&self.0.decision)
            .map(Into::into)
            .ok_or_else(|| ApiError::internal(&"unknown council decision"))
    }

    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }

    async fn recorded_at(&self) -> DateTime<Utc> {
        self.0.recorded_at
    }

    /// The griffier who recorded it.
    async fn recorded_by(&self, ctx: &Context<'_>) -> ApiResult<UserObject> {
        load_user(ctx, self.0.recorded_by).await
    }

    /// Whether this is the council's current decision.
    async fn current(&self) -> bool {
        self.0.current
    }
}

pub struct ImplementationUpdateObject(pub implementation_update::Model);

#[Object(name = "ImplementationUpdate")]
impl ImplementationUpdateObject {
    async fn municipality(&self, ctx: &Context<'_>) -> ApiResult<MunicipalityObject> {
        load_municipality(ctx, self.0.municipality_id)
            .await?
            .ok_or_else(|| ApiError::internal(&"an update of a missing municipality"))
    }

    async fn text(&self) -> &str {
        &self.0.text
    }

    async fn author(&self, ctx: &Context<'_>) -> ApiResult<UserObject> {
        load_user(ctx, self.0.author_id).await
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}

/// The URL path of a bundle's ZIP.
pub fn bundle_path(submission: Uuid) -> String {
    format!("/files/bundles/{submission}")
}

pub struct CouncilSubmissionObject {
    pub submission: council_submission::Model,
    /// The bundle's versions, in bundle order.
    pub versions: Vec<document_version::Model>,
}

#[Object(name = "CouncilSubmission")]
impl CouncilSubmissionObject {
    async fn id(&self) -> ID {
        ID(self.submission.id.to_string())
    }

    async fn council(&self, ctx: &Context<'_>) -> ApiResult<CouncilObject> {
        load_municipality(ctx, self.submission.municipality_id)
            .await?
            .map(|m| CouncilObject(m.0))
            .ok_or_else(|| ApiError::internal(&"a submission to a missing council"))
    }

    async fn submitted_at(&self) -> DateTime<Utc> {
        self.submission.submitted_at
    }

    /// SHA-256 over the bundle's manifest (the `manifest` text).
    async fn manifest_sha256(&self) -> &str {
        &self.submission.manifest_sha256
    }

    /// The manifest as JSON: every version's kind, title, number, sha256, media type, size
    /// and file name, in bundle order.
    async fn manifest(&self) -> &str {
        &self.submission.manifest
    }

    async fn documents(&self) -> Vec<VersionObject> {
        self.versions.iter().cloned().map(VersionObject).collect()
    }

    /// An HTTP GET of the bundle as one ZIP: public once published.
    async fn bundle_url(&self) -> String {
        bundle_path(self.submission.id)
    }
}

#[derive(async_graphql::SimpleObject)]
#[graphql(name = "RecommendationPosition")]
pub struct RecommendationPositionObject {
    pub college: CollegeObject,
    pub position: CollegePosition,
}

/// The colleges of municipalities, in their order, in one batch.
async fn colleges_of(
    ctx: &Context<'_>,
    municipalities: impl Iterator<Item = Uuid> + Clone,
) -> ApiResult<Vec<Plain<CollegeObject>>> {
    let found = load_in_order(&loaders(ctx).municipalities, municipalities, "municipality").await?;
    Ok(found.into_iter().map(|m| Plain(CollegeObject(m))).collect())
}

/// The college of a municipality (by municipality id).
async fn college_of(ctx: &Context<'_>, municipality: Uuid) -> ApiResult<CollegeObject> {
    load_municipality(ctx, municipality)
        .await?
        .map(|m| CollegeObject(m.0))
        .ok_or_else(|| ApiError::internal(&"a college of a missing municipality"))
}

pub struct DeadlineObject(pub deadline::Model);

#[Object(name = "Deadline")]
impl DeadlineObject {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn kind(&self) -> ApiResult<DeadlineKind> {
        self.parsed_kind()
            .ok_or_else(|| ApiError::internal(&"unknown deadline kind"))
    }

    /// The college (or, for the factual check, the municipality's college) this deadline binds.
    async fn college(&self, ctx: &Context<'_>) -> ApiResult<Option<Plain<CollegeObject>>> {
        Ok(Some(Plain(college_of(ctx, self.0.municipality_id).await?)))
    }

    async fn due_at(&self) -> DateTime<Utc> {
        self.0.due_at
    }

    async fn status(&self) -> ApiResult<DeadlineStatus> {
        self.parsed_status()
            .ok_or_else(|| ApiError::internal(&"unknown deadline status"))
    }
}

impl DeadlineObject {
    fn parsed_kind(&self) -> Option<DeadlineKind> {
        rkflow_domain::rebuttal::DeadlineKind::parse(&self.0.kind).map(Into::into)
    }

    fn parsed_status(&self) -> Option<DeadlineStatus> {
        rkflow_domain::rebuttal::DeadlineStatus::parse(&self.0.status).map(Into::into)
    }
}

impl PlainFields for DeadlineObject {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        let deadline = &self.0;
        match ctx.item.node.name.node.as_str() {
            "id" => plain::id(out, deadline.id),
            "kind" => plain::enumeration(out, self.parsed_kind()?)?,
            "college" => plain_college(ctx, out, deadline.municipality_id)?,
            "dueAt" => plain::date_time(out, &deadline.due_at),
            "status" => plain::enumeration(out, self.parsed_status()?)?,
            _ => return None,
        }
        Some(())
    }
}

pub struct ExtensionRequestObject(pub extension_request::Model);

#[Object(name = "ExtensionRequest")]
impl ExtensionRequestObject {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn college(&self, ctx: &Context<'_>) -> ApiResult<CollegeObject> {
        college_of(ctx, self.0.municipality_id).await
    }

    async fn proposed_due_date(&self) -> Date {
        Date(self.0.proposed_due_date)
    }

    async fn reason(&self) -> &str {
        &self.0.reason
    }

    /// Null while undecided.
    async fn granted(&self) -> Option<bool> {
        self.0.granted
    }
}

pub struct ResponseObject {
    pub state: rkflow_domain::investigation::ResponseState,
    pub version: document_version::Model,
    /// Whether it is the counted response of at least one college.
    pub counted: bool,
}

#[Object(name = "Response")]
impl ResponseObject {
    async fn id(&self) -> ID {
        ID(self.state.id.to_string())
    }

    async fn colleges(&self, ctx: &Context<'_>) -> ApiResult<Vec<Plain<CollegeObject>>> {
        colleges_of(ctx, self.state.colleges.iter().map(|c| c.0)).await
    }

    /// The colleges that have filed or co-signed it: it counts for exactly these.
    async fn signed_by(&self, ctx: &Context<'_>) -> ApiResult<Vec<Plain<CollegeObject>>> {
        colleges_of(ctx, self.state.signed_by.iter().map(|c| c.0)).await
    }

    async fn version(&self) -> Plain<VersionObject> {
        Plain(VersionObject(self.version.clone()))
    }

    async fn filed_at(&self) -> DateTime<Utc> {
        self.state.filed_at
    }

    async fn late(&self) -> bool {
        self.state.late
    }

    /// Whether it is the latest response of at least one of its signing colleges.
    async fn counted(&self) -> bool {
        self.counted
    }
}

impl PlainFields for ResponseObject {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        let state = &self.state;
        match ctx.item.node.name.node.as_str() {
            "id" => plain::id(out, state.id.0),
            "colleges" => plain_colleges(ctx, out, state.colleges.iter().map(|c| c.0))?,
            "signedBy" => plain_colleges(ctx, out, state.signed_by.iter().map(|c| c.0))?,
            "version" => plain::object_of::<VersionObject>(ctx, out, |ctx, out| {
                plain_version_field(&self.version, ctx, out)
            })?,
            "filedAt" => plain::date_time(out, &state.filed_at),
            "late" => plain::boolean(out, state.late),
            "counted" => plain::boolean(out, self.counted),
            _ => return None,
        }
        Some(())
    }
}

pub struct AuditEventObject(pub Arc<audit_event::Model>);

#[Object(name = "AuditEvent")]
impl AuditEventObject {
    async fn seq(&self) -> i32 {
        i32::try_from(self.0.seq).unwrap_or(i32::MAX)
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }

    async fn actor(&self, ctx: &Context<'_>) -> ApiResult<Option<UserObject>> {
        match self.0.actor_id {
            Some(id) => Ok(Some(load_user(ctx, id).await?)),
            None => Ok(None),
        }
    }

    async fn action(&self) -> &str {
        &self.0.action
    }

    async fn investigation_id(&self) -> Option<ID> {
        self.0.investigation_id.map(|id| ID(id.to_string()))
    }

    /// The changed values, as canonical JSON.
    async fn data(&self) -> &str {
        &self.0.data
    }

    async fn hash(&self) -> &str {
        &self.0.hash
    }
}

#[derive(async_graphql::SimpleObject)]
#[graphql(name = "AuditVerification")]
pub struct AuditVerification {
    pub intact: bool,
    pub events_checked: i32,
    /// The first event whose hash does not match, when not intact.
    pub first_broken_seq: Option<i32>,
}

#[derive(async_graphql::SimpleObject)]
#[graphql(name = "PageInfo")]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

#[derive(async_graphql::SimpleObject)]
#[graphql(name = "InvestigationEdge")]
pub struct InvestigationEdge {
    pub cursor: String,
    pub node: Plain<InvestigationObject>,
}

#[derive(async_graphql::SimpleObject)]
#[graphql(name = "InvestigationConnection")]
pub struct InvestigationConnection {
    pub edges: Vec<InvestigationEdge>,
    pub page_info: PageInfo,
    pub total_count: i32,
}

impl PlainFields for PageInfo {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        match ctx.item.node.name.node.as_str() {
            "hasNextPage" => plain::boolean(out, self.has_next_page),
            "endCursor" => plain::optional_string(out, self.end_cursor.as_deref()),
            _ => return None,
        }
        Some(())
    }
}

impl PlainFields for InvestigationEdge {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        match ctx.item.node.name.node.as_str() {
            "cursor" => plain::string(out, &self.cursor),
            "node" => plain::object(ctx, out, &self.node.0)?,
            _ => return None,
        }
        Some(())
    }
}

impl PlainFields for InvestigationConnection {
    fn plain_field(&self, ctx: &Context<'_>, out: &mut String) -> Option<()> {
        match ctx.item.node.name.node.as_str() {
            "edges" => plain::list(ctx, out, &self.edges)?,
            "pageInfo" => plain::object(ctx, out, &self.page_info)?,
            "totalCount" => plain::int(out, self.total_count),
            _ => return None,
        }
        Some(())
    }

    /// The last page's length per edge, times this page's edges (a page's answer is ~100
    /// KB; growing its text by doubling copied it three times, 1.7 % of a dashboard's
    /// instructions). Pages of other shapes in between cost a copy or some spare capacity.
    fn answer_len_hint(&self) -> usize {
        256 + self.edges.len() * ANSWER_LEN_PER_EDGE.load(Ordering::Relaxed)
    }

    fn answer_written(&self, len: usize) {
        if let Some(per_edge) = len.checked_div(self.edges.len()) {
            // An eighth to spare, for nodes longer than the last page's.
            ANSWER_LEN_PER_EDGE.store(per_edge + per_edge / 8, Ordering::Relaxed);
        }
    }
}

/// See [`InvestigationConnection::answer_len_hint`]; the first page assumes 2 KB per node.
static ANSWER_LEN_PER_EDGE: AtomicUsize = AtomicUsize::new(2048);

#[derive(async_graphql::SimpleObject)]
#[graphql(name = "AuditEventEdge")]
pub struct AuditEventEdge {
    pub cursor: String,
    pub node: AuditEventObject,
}

#[derive(async_graphql::SimpleObject)]
#[graphql(name = "AuditEventConnection")]
pub struct AuditEventConnection {
    pub edges: Vec<AuditEventEdge>,
    pub page_info: PageInfo,
    pub total_count: i32,
}

#[derive(async_graphql::SimpleObject)]
#[graphql(name = "LoginPayload")]
pub struct LoginPayload {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserObject,
}

/// One line of the recommendations register: a recommendation as it stands in one concerned
/// municipality.
pub struct RegisterEntryObject {
    pub investigation: InvestigationObject,
    pub recommendation: RecommendationObject,
    pub municipality: Uuid,
}

#[Object(name = "RecommendationRegisterEntry")]
impl RegisterEntryObject {
    async fn recommendation(&self) -> &RecommendationObject {
        &self.recommendation
    }

    async fn investigation(&self) -> &InvestigationObject {
        &self.investigation
    }

    async fn municipality(&self, ctx: &Context<'_>) -> ApiResult<MunicipalityObject> {
        load_municipality(ctx, self.municipality)
            .await?
            .ok_or_else(|| ApiError::internal(&"a register entry of a missing municipality"))
    }

    /// The position of this municipality's college, from its counted response.
    async fn college_position(&self) -> Option<CollegePosition> {
        self.recommendation
            .positions
            .iter()
            .find(|(college, _)| *college == self.municipality)
            .map(|(_, position)| (*position).into())
    }

    /// The current decision of this municipality's council, if it decided.
    async fn council_decision(&self) -> Option<CouncilDecisionRecordObject> {
        self.recommendation
            .decisions
            .iter()
            .find(|d| d.current && d.municipality_id == self.municipality)
            .cloned()
            .map(CouncilDecisionRecordObject)
    }

    /// This municipality's implementation reports, oldest first.
    async fn implementation_updates(&self) -> Vec<ImplementationUpdateObject> {
        self.recommendation
            .updates
            .iter()
            .filter(|u| u.municipality_id == self.municipality)
            .cloned()
            .map(ImplementationUpdateObject)
            .collect()
    }
}

#[derive(async_graphql::SimpleObject)]
#[graphql(name = "RecommendationRegisterEdge")]
pub struct RegisterEdge {
    pub cursor: String,
    pub node: RegisterEntryObject,
}

#[derive(async_graphql::SimpleObject)]
#[graphql(name = "RecommendationRegisterConnection")]
pub struct RegisterConnection {
    pub edges: Vec<RegisterEdge>,
    pub page_info: PageInfo,
    pub total_count: i32,
}

/// One login session.
pub struct SessionObject {
    pub model: rkflow_store::entity::session::Model,
    /// Whether it is the session of this very request.
    pub current: bool,
    /// When it ends unless used again (idle and absolute limits).
    pub expires_at: DateTime<Utc>,
}

#[Object(name = "Session")]
impl SessionObject {
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }

    async fn last_seen_at(&self) -> DateTime<Utc> {
        self.model.last_seen_at
    }

    async fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// The client address it was opened from.
    async fn client(&self) -> Option<&str> {
        self.model.client.as_deref()
    }

    /// Whether this is the session of the request asking.
    async fn current(&self) -> bool {
        self.current
    }
}

//! One investigation as a value, and every command on it as a pure function that returns the
//! changes to store (or the refusal). The store loads an [`Investigation`], calls a command,
//! writes the returned [`Change`]s and one audit event per change in one transaction.
//!
//! Gates: every participating commission approves the current phase once; the approval that
//! completes the set advances the phase. Each approval carries a fingerprint of the gate's
//! content ([`Investigation::gate_fingerprint`]); [`Investigation::execute`] voids approvals
//! whose fingerprint no longer matches after any change, so no command can forget it.

use crate::content::ContentMeta;
use crate::deadline::Calendar;
use crate::error::DomainError;
use crate::ids::{
    ApprovalId, CommissionId, DeadlineId, DocumentId, ExtensionId, InvestigationId, MunicipalityId,
    RecommendationId, ResponseId, SubmissionId, UserId, VersionId,
};
use crate::permission::{self, Action, ActionContext, Capacity, Parties, Relation};
use crate::phase::{DocumentKind, Phase, RecommendationAddressee, ResponseMode};
use crate::rebuttal::{
    CollegePosition, DeadlineKind, DeadlineState, DeadlineStatus, ExtensionState, NewResponse,
    TermPolicy,
};
use crate::role::Actor;
use crate::submission::CouncilDecision;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Most participating commissions in one investigation.
pub const MAX_COMMISSIONS: usize = 20;
/// Most research questions.
pub const MAX_RESEARCH_QUESTIONS: usize = 50;
/// Longest title, research question or reason, in characters (one line each).
pub const MAX_LINE_CHARS: usize = 500;
/// Longest recommendation text, comment or note, in characters (may span lines).
pub const MAX_RECOMMENDATION_CHARS: usize = 10_000;

/// A participating commission with the municipalities it serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub id: CommissionId,
    pub name: String,
    pub municipalities: BTreeSet<MunicipalityId>,
}

/// A rapporteur: a user assigned on behalf of one participating commission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rapporteur {
    pub user: UserId,
    pub commission: CommissionId,
}

/// What the domain knows of one stored version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub id: VersionId,
    pub number: i32,
    pub sha256: String,
    pub media_type: String,
    pub size_bytes: i64,
    pub created_at: DateTime<Utc>,
}

/// A document and its versions (ascending by number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentState {
    pub id: DocumentId,
    pub kind: DocumentKind,
    pub title: String,
    /// The municipality a FACTUAL_RESPONSE document belongs to.
    pub municipality: Option<MunicipalityId>,
    pub versions: Vec<VersionInfo>,
}

impl DocumentState {
    pub fn latest(&self) -> Option<&VersionInfo> {
        self.versions.last()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecommendationState {
    pub id: RecommendationId,
    pub number: i32,
    pub text: String,
    pub addressee: RecommendationAddressee,
}

/// The rebuttal terms a chair sets in RESEARCH: the mode and, optionally, an explicit due date
/// (otherwise the policy term applies from the moment the rebuttal opens).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuttalTerms {
    pub mode: ResponseMode,
    pub due_date: Option<NaiveDate>,
}

/// A still-valid approval of the current gate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalState {
    pub id: ApprovalId,
    pub phase: Phase,
    pub commission: CommissionId,
    pub fingerprint: String,
}

/// A filed administrative response (bestuurlijke reactie).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseState {
    pub id: ResponseId,
    /// The colleges (by municipality) the response speaks for.
    pub colleges: BTreeSet<MunicipalityId>,
    /// The colleges that filed or co-signed it.
    pub signed_by: BTreeSet<MunicipalityId>,
    pub version: VersionId,
    /// The ADMINISTRATIVE_RESPONSE document holding it.
    pub document: DocumentId,
    pub filed_at: DateTime<Utc>,
    /// Filed or co-signed after a signing college's deadline.
    pub late: bool,
    /// The colleges' positions on recommendations.
    pub positions: Vec<(RecommendationId, CollegePosition)>,
}

/// Why a set of versions was frozen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FreezePurpose {
    /// The PROPOSAL version approved at the PROPOSAL gate (sent ter kennisname).
    ApprovedProposal,
    /// The CONCLUSIONS and RESEARCH_REPORT versions sent for rebuttal.
    RebuttalDraft,
    /// The RESEARCH_REPORT version current when the factual check started.
    FactualCheckBase,
    /// The versions submitted to the councils (public from then on).
    Bundle,
}

impl FreezePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            FreezePurpose::ApprovedProposal => "APPROVED_PROPOSAL",
            FreezePurpose::RebuttalDraft => "REBUTTAL_DRAFT",
            FreezePurpose::FactualCheckBase => "FACTUAL_CHECK_BASE",
            FreezePurpose::Bundle => "BUNDLE",
        }
    }

    pub fn parse(text: &str) -> Option<FreezePurpose> {
        [
            FreezePurpose::ApprovedProposal,
            FreezePurpose::RebuttalDraft,
            FreezePurpose::FactualCheckBase,
            FreezePurpose::Bundle,
        ]
        .into_iter()
        .find(|purpose| purpose.as_str() == text)
    }
}

/// Version sets frozen at gates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frozen {
    pub approved_proposal: Option<VersionId>,
    pub rebuttal_draft: BTreeSet<VersionId>,
    pub factual_check_base: Option<VersionId>,
    /// Versions in a council submission bundle.
    pub bundle: BTreeSet<VersionId>,
}

impl Frozen {
    pub fn insert(&mut self, purpose: FreezePurpose, versions: &[VersionId]) {
        match purpose {
            FreezePurpose::ApprovedProposal => self.approved_proposal = versions.first().copied(),
            FreezePurpose::RebuttalDraft => self.rebuttal_draft.extend(versions.iter().copied()),
            FreezePurpose::FactualCheckBase => self.factual_check_base = versions.first().copied(),
            FreezePurpose::Bundle => self.bundle.extend(versions.iter().copied()),
        }
    }
}

/// An investigation as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Investigation {
    pub id: InvestigationId,
    pub title: String,
    pub phase: Phase,
    pub suspended: bool,
    pub commissions: Vec<Participant>,
    pub rapporteurs: BTreeSet<Rapporteur>,
    pub documents: Vec<DocumentState>,
    pub recommendations: Vec<RecommendationState>,
    pub rebuttal_terms: Option<RebuttalTerms>,
    /// The still-valid approvals of the current phase's gate.
    pub approvals: Vec<ApprovalState>,
    pub frozen: Frozen,
    pub responses: Vec<ResponseState>,
    pub published: bool,
    /// Since when it is suspended (the deadlines' clocks stand still from then).
    pub suspended_since: Option<DateTime<Utc>>,
    /// Deadlines of the factual check and the rebuttal.
    pub deadlines: Vec<DeadlineState>,
    pub extensions: Vec<ExtensionState>,
    /// The participating commissions' terms (defaults where absent).
    pub policies: BTreeMap<CommissionId, TermPolicy>,
    /// Rest days for the deadline rule.
    pub calendar: Calendar,
}

/// What `proposeInvestigation` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub title: String,
    pub commissions: Vec<Participant>,
    pub research_questions: Vec<String>,
    pub scope_start: Option<NaiveDate>,
    pub scope_end: Option<NaiveDate>,
}

/// A new version to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewVersion {
    pub kind: DocumentKind,
    pub title: Option<String>,
    pub base_version: Option<i32>,
    pub content: ContentMeta,
    pub note: Option<String>,
    /// For a FACTUAL_RESPONSE: the municipality it answers for (needed only when the author is
    /// the contact of several concerned municipalities).
    pub municipality: Option<MunicipalityId>,
}

/// One stored change. Each becomes one audit event with this value as its data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    Proposed {
        title: String,
        commissions: Vec<CommissionId>,
        research_questions: Vec<String>,
        scope_start: Option<NaiveDate>,
        scope_end: Option<NaiveDate>,
    },
    RapporteurAssigned {
        user: UserId,
        commission: CommissionId,
    },
    DocumentCreated {
        document: DocumentId,
        kind: DocumentKind,
        title: String,
        municipality: Option<MunicipalityId>,
    },
    DocumentRetitled {
        document: DocumentId,
        title: String,
    },
    VersionAdded {
        document: DocumentId,
        version: VersionId,
        number: i32,
        sha256: String,
        size_bytes: i64,
        media_type: String,
        note: Option<String>,
    },
    RecommendationAdded {
        recommendation: RecommendationId,
        number: i32,
        text: String,
        addressee: RecommendationAddressee,
    },
    RebuttalTermsSet {
        mode: ResponseMode,
        due_date: Option<NaiveDate>,
    },
    Approved {
        approval: ApprovalId,
        phase: Phase,
        commission: CommissionId,
        fingerprint: String,
        comment: Option<String>,
    },
    ApprovalsVoided {
        approvals: Vec<ApprovalId>,
        reason: String,
    },
    VersionsFrozen {
        purpose: FreezePurpose,
        versions: Vec<VersionId>,
    },
    PhaseAdvanced {
        from: Phase,
        to: Phase,
    },
    Suspended {
        reason: String,
    },
    Resumed,
    Cancelled {
        from: Phase,
        reason: String,
    },
    DeadlineOpened {
        deadline: DeadlineId,
        kind: DeadlineKind,
        municipality: MunicipalityId,
        due_at: DateTime<Utc>,
    },
    DeadlineClosed {
        deadline: DeadlineId,
        municipality: MunicipalityId,
        status: DeadlineStatus,
    },
    DeadlineMoved {
        deadline: DeadlineId,
        due_at: DateTime<Utc>,
        reason: String,
    },
    ReminderDue {
        deadline: DeadlineId,
        kind: DeadlineKind,
        municipality: MunicipalityId,
        due_at: DateTime<Utc>,
        before_seconds: i64,
        /// Earlier reminders this one stands in for (after a jump of the clock).
        also_covers: Vec<i64>,
    },
    ResponseFiled {
        response: ResponseId,
        document: DocumentId,
        version: VersionId,
        colleges: Vec<MunicipalityId>,
        signed_by: Vec<MunicipalityId>,
        late: bool,
        positions: Vec<(RecommendationId, CollegePosition)>,
    },
    ResponseCosigned {
        response: ResponseId,
        colleges: Vec<MunicipalityId>,
        late: bool,
    },
    /// Colleges without a counted response when the rebuttal gate passed.
    NoResponse {
        colleges: Vec<MunicipalityId>,
    },
    ExtensionRequested {
        request: ExtensionId,
        municipality: MunicipalityId,
        proposed_due_date: NaiveDate,
        reason: String,
    },
    ExtensionVoted {
        request: ExtensionId,
        commission: CommissionId,
        grant: bool,
        comment: Option<String>,
    },
    ExtensionResolved {
        request: ExtensionId,
        granted: bool,
    },
    /// The bundle went to every concerned council at this instant, which publishes it.
    Submitted {
        submissions: Vec<(SubmissionId, MunicipalityId)>,
        versions: Vec<VersionId>,
        manifest: String,
        manifest_sha256: String,
    },
    CouncilDecisionRecorded {
        recommendation: RecommendationId,
        municipality: MunicipalityId,
        decision: CouncilDecision,
        note: Option<String>,
    },
    ImplementationUpdated {
        recommendation: RecommendationId,
        municipality: MunicipalityId,
        text: String,
    },
}

impl Change {
    /// The audit action name.
    pub fn action(&self) -> &'static str {
        match self {
            Change::Proposed { .. } => "investigation.proposed",
            Change::RapporteurAssigned { .. } => "rapporteur.assigned",
            Change::DocumentCreated { .. } => "document.created",
            Change::DocumentRetitled { .. } => "document.retitled",
            Change::VersionAdded { .. } => "document.version_added",
            Change::RecommendationAdded { .. } => "recommendation.added",
            Change::RebuttalTermsSet { .. } => "rebuttal.terms_set",
            Change::Approved { .. } => "gate.approved",
            Change::ApprovalsVoided { .. } => "gate.approvals_voided",
            Change::VersionsFrozen { .. } => "documents.frozen",
            Change::PhaseAdvanced { .. } => "phase.advanced",
            Change::Suspended { .. } => "investigation.suspended",
            Change::Resumed => "investigation.resumed",
            Change::Cancelled { .. } => "investigation.cancelled",
            Change::DeadlineOpened { .. } => "deadline.opened",
            Change::DeadlineClosed { status, .. } => match status {
                DeadlineStatus::Met => "deadline.met",
                DeadlineStatus::Missed => "deadline.missed",
                DeadlineStatus::Waived => "deadline.waived",
                DeadlineStatus::Open => "deadline.reopened",
            },
            Change::DeadlineMoved { .. } => "deadline.moved",
            Change::ReminderDue { .. } => "deadline.reminder",
            Change::ResponseFiled { .. } => "response.filed",
            Change::ResponseCosigned { .. } => "response.cosigned",
            Change::NoResponse { .. } => "rebuttal.no_response",
            Change::ExtensionRequested { .. } => "extension.requested",
            Change::ExtensionVoted { .. } => "extension.voted",
            Change::ExtensionResolved { .. } => "extension.resolved",
            Change::Submitted { .. } => "submission.submitted",
            Change::CouncilDecisionRecorded { .. } => "council_decision.recorded",
            Change::ImplementationUpdated { .. } => "implementation.updated",
        }
    }
}

fn check_line(field: &str, text: &str) -> Result<String, DomainError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DomainError::bad_input(field, "must not be empty"));
    }
    if trimmed.chars().count() > MAX_LINE_CHARS {
        return Err(DomainError::bad_input(
            field,
            format!("at most {MAX_LINE_CHARS} characters"),
        ));
    }
    if trimmed.chars().any(|ch| ch.is_control()) {
        return Err(DomainError::bad_input(
            field,
            "must be one line without control characters",
        ));
    }
    Ok(trimmed.to_string())
}

fn check_optional_line(field: &str, text: Option<&str>) -> Result<Option<String>, DomainError> {
    match text {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => {
            if text.chars().count() > MAX_RECOMMENDATION_CHARS {
                return Err(DomainError::bad_input(
                    field,
                    format!("at most {MAX_RECOMMENDATION_CHARS} characters"),
                ));
            }
            Ok(Some(text.trim().to_string()))
        }
    }
}

/// Starts an investigation. The proposer must be CHAIR, MEMBER or SECRETARY of at least one of
/// the listed commissions; every listed commission then approves each gate.
pub fn propose(
    actor: &Actor,
    id: InvestigationId,
    proposal: Proposal,
) -> Result<(Investigation, Vec<Change>), DomainError> {
    if actor.user.is_none() {
        return Err(DomainError::Unauthenticated);
    }
    let title = check_line("title", &proposal.title)?;
    if proposal.commissions.is_empty() {
        return Err(DomainError::bad_input(
            "commissionIds",
            "name at least one commission",
        ));
    }
    if proposal.commissions.len() > MAX_COMMISSIONS {
        return Err(DomainError::bad_input(
            "commissionIds",
            format!("at most {MAX_COMMISSIONS} commissions"),
        ));
    }
    let distinct: BTreeSet<_> = proposal.commissions.iter().map(|c| c.id).collect();
    if distinct.len() != proposal.commissions.len() {
        return Err(DomainError::bad_input(
            "commissionIds",
            "a commission is listed twice",
        ));
    }
    let staff: BTreeSet<CommissionId> = [
        crate::Role::Chair,
        crate::Role::Member,
        crate::Role::Secretary,
    ]
    .into_iter()
    .flat_map(|role| actor.commissions_with(role))
    .collect();
    if staff.is_disjoint(&distinct) {
        return Err(DomainError::forbidden(
            "only a CHAIR, MEMBER or SECRETARY of one of the listed commissions may propose an investigation",
        ));
    }
    if proposal.research_questions.len() > MAX_RESEARCH_QUESTIONS {
        return Err(DomainError::bad_input(
            "researchQuestions",
            format!("at most {MAX_RESEARCH_QUESTIONS} questions"),
        ));
    }
    let research_questions = proposal
        .research_questions
        .iter()
        .map(|question| check_line("researchQuestions", question))
        .collect::<Result<Vec<_>, _>>()?;
    if let (Some(start), Some(end)) = (proposal.scope_start, proposal.scope_end)
        && start > end
    {
        return Err(DomainError::bad_input(
            "scopeEnd",
            "the scope ends before it starts",
        ));
    }
    let investigation = Investigation {
        id,
        title: title.clone(),
        phase: Phase::Proposal,
        suspended: false,
        commissions: proposal.commissions.clone(),
        rapporteurs: BTreeSet::new(),
        documents: Vec::new(),
        recommendations: Vec::new(),
        rebuttal_terms: None,
        approvals: Vec::new(),
        frozen: Frozen::default(),
        responses: Vec::new(),
        published: false,
        suspended_since: None,
        deadlines: Vec::new(),
        extensions: Vec::new(),
        policies: BTreeMap::new(),
        calendar: Calendar::default(),
    };
    let change = Change::Proposed {
        title,
        commissions: proposal.commissions.iter().map(|c| c.id).collect(),
        research_questions,
        scope_start: proposal.scope_start,
        scope_end: proposal.scope_end,
    };
    Ok((investigation, vec![change]))
}

/// The commands that act on an existing investigation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Approve {
        comment: Option<String>,
        /// The phase the approver means; CONFLICT when the investigation is elsewhere (a
        /// repeated click after the phase moved must not approve the next gate).
        phase: Option<Phase>,
    },
    RequestChanges {
        reason: String,
    },
    SubmitVersion {
        version: NewVersion,
        /// Ids for a document and version the command may create.
        new_document: DocumentId,
        new_version: VersionId,
    },
    AddRecommendation {
        id: RecommendationId,
        text: String,
        addressee: RecommendationAddressee,
    },
    AssignRapporteur {
        user: UserId,
        commission: CommissionId,
    },
    SetRebuttalTerms {
        terms: RebuttalTerms,
    },
    Suspend {
        reason: String,
    },
    Resume,
    Cancel {
        reason: String,
    },
    StartFactualCheck {
        due_date: Option<NaiveDate>,
    },
    FileResponse(NewResponse),
    CosignResponse {
        response: ResponseId,
    },
    RequestExtension {
        id: ExtensionId,
        college: MunicipalityId,
        proposed_due_date: NaiveDate,
        reason: String,
    },
    DecideExtension {
        request: ExtensionId,
        grant: bool,
        comment: Option<String>,
    },
    RecordCouncilDecision {
        recommendation: RecommendationId,
        municipality: MunicipalityId,
        decision: CouncilDecision,
        note: Option<String>,
    },
    AddImplementationUpdate {
        recommendation: RecommendationId,
        municipality: MunicipalityId,
        text: String,
    },
}

impl Command {
    /// The permission-table action this command is decided as.
    pub fn action(&self) -> Action {
        match self {
            Command::Approve { .. } => Action::ApprovePhase,
            Command::RequestChanges { .. } => Action::RequestChanges,
            Command::SubmitVersion { version, .. } => Action::SubmitVersion(version.kind),
            Command::AddRecommendation { .. } => Action::AddRecommendation,
            Command::AssignRapporteur { .. } => Action::AssignRapporteur,
            Command::SetRebuttalTerms { .. } => Action::SetRebuttalTerms,
            Command::Suspend { .. } => Action::Suspend,
            Command::Resume => Action::Resume,
            Command::Cancel { .. } => Action::Cancel,
            Command::StartFactualCheck { .. } => Action::StartFactualCheck,
            Command::FileResponse(_) => Action::FileResponse,
            Command::CosignResponse { .. } => Action::CosignResponse,
            Command::RequestExtension { .. } => Action::RequestExtension,
            Command::DecideExtension { .. } => Action::DecideExtension,
            Command::RecordCouncilDecision { .. } => Action::RecordCouncilDecision,
            Command::AddImplementationUpdate { .. } => Action::AddImplementationUpdate,
        }
    }
}

impl Investigation {
    /// The participating commissions and concerned municipalities.
    pub fn parties(&self) -> Parties {
        Parties {
            commissions: self.commissions.iter().map(|c| c.id).collect(),
            municipalities: self.municipalities(),
            rapporteurs: self
                .rapporteurs
                .iter()
                .map(|r| (r.user, r.commission))
                .collect(),
        }
    }

    /// The concerned municipalities: those the participating commissions serve.
    pub fn municipalities(&self) -> BTreeSet<MunicipalityId> {
        self.commissions
            .iter()
            .flat_map(|c| c.municipalities.iter().copied())
            .collect()
    }

    pub fn relation(&self, actor: &Actor) -> Relation {
        permission::relation(actor, &self.parties())
    }

    /// Whether the PROPOSAL gate has passed (the approved proposal went out).
    pub fn proposal_gate_passed(&self) -> bool {
        self.frozen.approved_proposal.is_some()
    }

    /// Whether `actor` may see this investigation at all.
    pub fn visible_to(&self, actor: &Actor) -> bool {
        crate::visibility::can_see_investigation(
            &self.relation(actor),
            self.proposal_gate_passed(),
            self.published,
        )
    }

    /// Decides an action against the permission table.
    ///
    /// Acting needs standing: a published bundle is public to read, but it makes nobody outside
    /// the investigation's parties a party to it. For them every action stays NOT_FOUND, as
    /// before publication (its recommendations and audit trail are not theirs to see either).
    pub fn authorize(&self, actor: &Actor, action: Action) -> Result<Relation, DomainError> {
        let relation = self.relation(actor);
        let context = ActionContext {
            authenticated: actor.user.is_some(),
            visible: crate::visibility::can_see_investigation(
                &relation,
                self.proposal_gate_passed(),
                false,
            ),
            phase: self.phase,
            suspended: self.suspended,
        };
        permission::authorize(&relation, context, action)?;
        Ok(relation)
    }

    pub fn document(&self, kind: DocumentKind) -> Option<&DocumentState> {
        self.documents.iter().find(|d| d.kind == kind)
    }

    fn latest_of(&self, kind: DocumentKind) -> Option<&VersionInfo> {
        self.document(kind).and_then(DocumentState::latest)
    }

    /// The counted response of each college that has one: the latest response it filed or
    /// co-signed. A JOINT response that a college has since replaced with a newer one still
    /// counts for the other colleges that signed it, but no longer for that college.
    pub fn counted_by_college(&self) -> BTreeMap<MunicipalityId, &ResponseState> {
        self.municipalities()
            .into_iter()
            .filter_map(|college| {
                self.responses
                    .iter()
                    .filter(|r| r.signed_by.contains(&college))
                    .max_by_key(|r| (r.filed_at, r.id))
                    .map(|response| (college, response))
            })
            .collect()
    }

    /// The responses that count: per college, the latest response it filed or co-signed.
    pub fn counted_responses(&self) -> Vec<&ResponseState> {
        let mut counted: Vec<&ResponseState> = Vec::new();
        for response in self.counted_by_college().into_values() {
            if !counted.iter().any(|r| r.id == response.id) {
                counted.push(response);
            }
        }
        counted.sort_by_key(|r| (r.filed_at, r.id));
        counted
    }

    /// The canonical lines of a gate's content (see the contract's table).
    pub fn gate_content(&self, phase: Phase) -> Vec<String> {
        let mut lines = Vec::new();
        let documents = |kinds: &[DocumentKind], lines: &mut Vec<String>| {
            for document in self.documents.iter().filter(|d| kinds.contains(&d.kind)) {
                if let Some(latest) = document.latest() {
                    lines.push(format!(
                        "document {} {} {} v{} {}",
                        document.kind.as_str(),
                        document.id,
                        document.title,
                        latest.number,
                        latest.sha256
                    ));
                }
            }
        };
        let responses = |lines: &mut Vec<String>| {
            for response in self.counted_responses() {
                let signed: Vec<String> =
                    response.signed_by.iter().map(|m| m.to_string()).collect();
                lines.push(format!(
                    "response {} {} signed {}",
                    response.id,
                    response.version,
                    signed.join(",")
                ));
            }
        };
        match phase {
            Phase::Proposal => documents(&[DocumentKind::Proposal], &mut lines),
            Phase::Research => {
                documents(
                    &[
                        DocumentKind::ResearchReport,
                        DocumentKind::Conclusions,
                        DocumentKind::Annex,
                    ],
                    &mut lines,
                );
                for recommendation in &self.recommendations {
                    lines.push(format!(
                        "recommendation {} {} {} {}",
                        recommendation.id,
                        recommendation.number,
                        recommendation.addressee.as_str(),
                        crate::content::sha256_hex(recommendation.text.as_bytes())
                    ));
                }
                if let Some(terms) = self.rebuttal_terms {
                    lines.push(format!(
                        "terms {} {}",
                        terms.mode.as_str(),
                        terms
                            .due_date
                            .map(|d| d.to_string())
                            .unwrap_or_else(|| "policy".into())
                    ));
                }
            }
            Phase::AdministrativeRebuttal => responses(&mut lines),
            Phase::Epilogue => {
                documents(
                    &[
                        DocumentKind::Epilogue,
                        DocumentKind::CoverLetter,
                        DocumentKind::Annex,
                    ],
                    &mut lines,
                );
                responses(&mut lines);
            }
            Phase::CouncilSubmission => documents(
                &[DocumentKind::CoverLetter, DocumentKind::Annex],
                &mut lines,
            ),
            Phase::FollowUp | Phase::Closed | Phase::Cancelled => {}
        }
        lines.sort();
        lines
    }

    /// SHA-256 over the gate's content: an approval is valid while this stays the same.
    pub fn gate_fingerprint(&self, phase: Phase) -> String {
        let mut hasher = Sha256::new();
        hasher.update(phase.as_str().as_bytes());
        for line in self.gate_content(phase) {
            hasher.update(b"\n");
            hasher.update(line.as_bytes());
        }
        hex::encode(hasher.finalize())
    }

    /// The commissions whose approval of the current gate is still missing.
    pub fn missing_approvals(&self) -> Vec<&Participant> {
        self.missing_approvals_given(&self.gate_fingerprint(self.phase))
    }

    /// [`Investigation::missing_approvals`] for a caller that keeps the current gate's
    /// fingerprint (`gate_fingerprint(self.phase)`, a SHA-256 over the gate's content).
    pub fn missing_approvals_given(&self, fingerprint: &str) -> Vec<&Participant> {
        self.commissions
            .iter()
            .filter(|c| {
                !self.approvals.iter().any(|a| {
                    a.commission == c.id && a.phase == self.phase && a.fingerprint == fingerprint
                })
            })
            .collect()
    }

    /// What the current gate still lacks besides approvals; empty when it may pass.
    pub fn gate_guard(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut missing = Vec::new();
        let need_document = |kind: DocumentKind, missing: &mut Vec<String>| {
            if self.latest_of(kind).is_none() {
                missing.push(format!("a {} document", kind.as_str()));
            }
        };
        match self.phase {
            Phase::Proposal => need_document(DocumentKind::Proposal, &mut missing),
            Phase::Research => {
                need_document(DocumentKind::ResearchReport, &mut missing);
                need_document(DocumentKind::Conclusions, &mut missing);
                if self.recommendations.is_empty() {
                    missing.push("at least one recommendation".into());
                }
                match self.rebuttal_terms {
                    None => missing.push("rebuttal terms (setRebuttalTerms)".into()),
                    Some(terms) => {
                        if let Some(due) = terms.due_date
                            && crate::deadline::due_at_end_of(self.calendar.align(due)) <= now
                        {
                            missing.push(format!(
                                "a rebuttal due date in the future ({due} has passed; set new terms)"
                            ));
                        }
                    }
                }
                if self.factual_check_running(now) {
                    missing.push(
                        "a closed factual check (its deadline passed or every municipality answered)"
                            .into(),
                    );
                }
            }
            Phase::Epilogue => {
                if let Some(epilogue) = self.latest_of(DocumentKind::Epilogue) {
                    let stale = self
                        .counted_responses()
                        .into_iter()
                        // Same instant (a manual clock stands still): the ids, time-ordered
                        // UUIDs, tell which came first.
                        .any(|r| (r.filed_at, r.version.0) >= (epilogue.created_at, epilogue.id.0));
                    if stale {
                        missing
                            .push("an EPILOGUE version newer than every counted response".into());
                    }
                }
            }
            Phase::AdministrativeRebuttal => {
                let awaited = self.colleges_still_awaited(now);
                if !awaited.is_empty() {
                    missing.push(format!(
                        "a counted response, or a passed deadline, of {} college(s) (municipality {})",
                        awaited.len(),
                        awaited
                            .iter()
                            .map(|m| m.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            Phase::CouncilSubmission | Phase::FollowUp | Phase::Closed | Phase::Cancelled => {}
        }
        missing
    }

    /// Runs a command: decides it, then voids the approvals of the current gate whose
    /// fingerprint the command's changes invalidated.
    pub fn execute(
        &self,
        actor: &Actor,
        command: Command,
        now: DateTime<Utc>,
    ) -> Result<Vec<Change>, DomainError> {
        let action = command.action();
        let relation = self.authorize(actor, action)?;
        let mut changes = self.decide(&relation, command, now)?;
        let mut after = self.clone();
        for change in &changes {
            after.apply_at(change, now);
        }
        if after.phase == self.phase && !after.approvals.is_empty() {
            let fingerprint = after.gate_fingerprint(after.phase);
            let stale: Vec<ApprovalId> = after
                .approvals
                .iter()
                .filter(|a| a.fingerprint != fingerprint)
                .map(|a| a.id)
                .collect();
            if !stale.is_empty() {
                changes.push(Change::ApprovalsVoided {
                    approvals: stale,
                    reason: format!(
                        "the content of the {} gate changed ({})",
                        self.phase.as_str(),
                        action.name()
                    ),
                });
            }
        }
        Ok(changes)
    }

    fn decide(
        &self,
        relation: &Relation,
        command: Command,
        now: DateTime<Utc>,
    ) -> Result<Vec<Change>, DomainError> {
        match command {
            Command::Approve { comment, phase } => {
                if let Some(meant) = phase
                    && meant != self.phase
                {
                    return Err(DomainError::conflict(format!(
                        "the investigation is in {}, not in {}: nothing was approved",
                        self.phase.as_str(),
                        meant.as_str()
                    )));
                }
                self.approve(relation, comment, now)
            }
            Command::RequestChanges { reason } => {
                let reason = check_line("reason", &reason)?;
                Ok(vec![Change::ApprovalsVoided {
                    approvals: self.approvals.iter().map(|a| a.id).collect(),
                    reason: format!("changes requested: {reason}"),
                }])
            }
            Command::SubmitVersion {
                version,
                new_document,
                new_version,
            } => self.submit_version(relation, version, new_document, new_version, now),
            Command::AddRecommendation {
                id,
                text,
                addressee,
            } => {
                let text = check_optional_line("text", Some(&text))?
                    .ok_or_else(|| DomainError::bad_input("text", "must not be empty"))?;
                let number = self.recommendations.len() as i32 + 1;
                Ok(vec![Change::RecommendationAdded {
                    recommendation: id,
                    number,
                    text,
                    addressee,
                }])
            }
            Command::AssignRapporteur { user, commission } => {
                if !self.commissions.iter().any(|c| c.id == commission) {
                    return Err(DomainError::bad_input(
                        "commissionId",
                        "the commission does not participate in this investigation",
                    ));
                }
                if !relation.chaired_commissions.contains(&commission) {
                    return Err(DomainError::forbidden(
                        "only the commission's own CHAIR assigns its rapporteurs",
                    ));
                }
                let rapporteur = Rapporteur { user, commission };
                if self.rapporteurs.contains(&rapporteur) {
                    return Err(DomainError::conflict(
                        "this user is already a rapporteur for that commission",
                    ));
                }
                Ok(vec![Change::RapporteurAssigned { user, commission }])
            }
            Command::SetRebuttalTerms { terms } => {
                if let Some(due) = terms.due_date
                    && due < crate::deadline::local_day(now)
                {
                    return Err(DomainError::bad_input(
                        "dueDate",
                        "the due date lies in the past",
                    ));
                }
                if terms.mode == ResponseMode::Joint && self.municipalities().len() < 2 {
                    return Err(DomainError::bad_input(
                        "mode",
                        "a JOINT response needs at least two concerned colleges",
                    ));
                }
                if self.rebuttal_terms == Some(terms) {
                    return Err(DomainError::conflict(
                        "these rebuttal terms are already set",
                    ));
                }
                Ok(vec![Change::RebuttalTermsSet {
                    mode: terms.mode,
                    due_date: terms.due_date,
                }])
            }
            Command::Suspend { reason } => {
                let reason = check_line("reason", &reason)?;
                if self.suspended {
                    return Err(DomainError::conflict(
                        "the investigation is already suspended",
                    ));
                }
                let mut changes = self.close_overdue(now);
                changes.push(Change::Suspended { reason });
                Ok(changes)
            }
            Command::Resume => {
                if !self.suspended {
                    return Err(DomainError::conflict("the investigation is not suspended"));
                }
                let mut changes = vec![Change::Resumed];
                changes.extend(self.shift_open(now));
                Ok(changes)
            }
            Command::Cancel { reason } => {
                let reason = check_line("reason", &reason)?;
                let mut changes = self.waive_open();
                changes.push(Change::Cancelled {
                    from: self.phase,
                    reason,
                });
                Ok(changes)
            }
            Command::StartFactualCheck { due_date } => self.start_factual_check(due_date, now),
            Command::FileResponse(new) => self.file_response(relation, new, now),
            Command::CosignResponse { response } => self.cosign_response(relation, response, now),
            Command::RequestExtension {
                id,
                college,
                proposed_due_date,
                reason,
            } => self.request_extension(relation, college, proposed_due_date, &reason, id, now),
            Command::DecideExtension {
                request,
                grant,
                comment,
            } => {
                let comment = check_optional_line("comment", comment.as_deref())?;
                self.decide_extension(relation, request, grant, comment, now)
            }
            Command::RecordCouncilDecision {
                recommendation,
                municipality,
                decision,
                note,
            } => {
                self.record_council_decision(relation, recommendation, municipality, decision, note)
            }
            Command::AddImplementationUpdate {
                recommendation,
                municipality,
                text,
            } => self.add_implementation_update(relation, recommendation, municipality, text),
        }
    }

    fn approve(
        &self,
        relation: &Relation,
        comment: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Change>, DomainError> {
        let comment = check_optional_line("comment", comment.as_deref())?;
        let missing = self.missing_approvals();
        let pending: Vec<&Participant> = missing
            .iter()
            .copied()
            .filter(|c| relation.chaired_commissions.contains(&c.id))
            .collect();
        if pending.is_empty() {
            return Err(DomainError::conflict(format!(
                "your commission has already approved the {} gate",
                self.phase.as_str()
            )));
        }
        let lacking = self.gate_guard(now);
        if !lacking.is_empty() {
            return Err(DomainError::conflict(format!(
                "the {} gate cannot be approved yet: missing {}",
                self.phase.as_str(),
                lacking.join("; ")
            )));
        }
        let fingerprint = self.gate_fingerprint(self.phase);
        let mut changes: Vec<Change> = pending
            .iter()
            .map(|c| Change::Approved {
                approval: ApprovalId::new(),
                phase: self.phase,
                commission: c.id,
                fingerprint: fingerprint.clone(),
                comment: comment.clone(),
            })
            .collect();
        if pending.len() == missing.len()
            && let Some(next) = self.phase.next()
        {
            changes.extend(self.freezes_on_leaving(now));
            changes.push(Change::PhaseAdvanced {
                from: self.phase,
                to: next,
            });
        }
        Ok(changes)
    }

    /// What a passing gate freezes.
    fn freezes_on_leaving(&self, now: DateTime<Utc>) -> Vec<Change> {
        let latest = |kinds: &[DocumentKind]| -> Vec<VersionId> {
            kinds
                .iter()
                .filter_map(|kind| self.latest_of(*kind).map(|v| v.id))
                .collect()
        };
        let freeze =
            |purpose, versions: Vec<VersionId>| Change::VersionsFrozen { purpose, versions };
        match self.phase {
            Phase::Proposal => vec![freeze(
                FreezePurpose::ApprovedProposal,
                latest(&[DocumentKind::Proposal]),
            )],
            Phase::Research => {
                let mut changes = vec![freeze(
                    FreezePurpose::RebuttalDraft,
                    latest(&[DocumentKind::Conclusions, DocumentKind::ResearchReport]),
                )];
                changes.extend(self.open_rebuttal(now));
                changes
            }
            Phase::AdministrativeRebuttal => self.close_rebuttal(now),
            Phase::CouncilSubmission => self.submit_to_councils(),
            _ => Vec::new(),
        }
    }

    fn submit_version(
        &self,
        relation: &Relation,
        version: NewVersion,
        new_document: DocumentId,
        new_version: VersionId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Change>, DomainError> {
        let title = match version.title.as_deref() {
            Some(title) => Some(check_line("title", title)?),
            None => None,
        };
        let note = check_optional_line("note", version.note.as_deref())?;
        let mut answered = None;
        if version.kind == DocumentKind::FactualResponse {
            if !self.factual_check_running(now) {
                return Err(DomainError::conflict(
                    "no factual check is open: FACTUAL_RESPONSE documents are accepted only during one",
                ));
            }
            answered = Some(self.factual_response_municipality(relation, version.municipality)?);
        }
        let existing = if let Some(municipality) = answered {
            self.documents.iter().find(|d| {
                d.kind == DocumentKind::FactualResponse && d.municipality == Some(municipality)
            })
        } else if version.kind == DocumentKind::Annex {
            let Some(title) = title.as_deref() else {
                return Err(DomainError::bad_input(
                    "title",
                    "an ANNEX needs a title (annexes are told apart by title)",
                ));
            };
            self.documents
                .iter()
                .find(|d| d.kind == DocumentKind::Annex && d.title == title)
        } else {
            self.document(version.kind)
        };
        let mut changes = Vec::new();
        let (document, latest_number) = match existing {
            Some(document) => {
                if let Some(title) = &title
                    && *title != document.title
                    && version.kind != DocumentKind::Annex
                {
                    changes.push(Change::DocumentRetitled {
                        document: document.id,
                        title: title.clone(),
                    });
                }
                (document.id, document.latest().map_or(0, |v| v.number))
            }
            None => {
                changes.push(Change::DocumentCreated {
                    document: new_document,
                    kind: version.kind,
                    title: title
                        .clone()
                        .unwrap_or_else(|| version.kind.default_title().to_string()),
                    municipality: answered,
                });
                (new_document, 0)
            }
        };
        if let Some(base) = version.base_version
            && base != latest_number
        {
            return Err(DomainError::conflict(format!(
                "version {base} is not the latest: the document is at version {latest_number}; \
                 merge your edits into version {latest_number} and submit again"
            )));
        }
        changes.push(Change::VersionAdded {
            document,
            version: new_version,
            number: latest_number + 1,
            sha256: version.content.sha256,
            size_bytes: version.content.size_bytes,
            media_type: version.content.media_type,
            note,
        });
        if let Some(municipality) = answered {
            changes.extend(self.factual_response_met(municipality, now));
        }
        Ok(changes)
    }

    /// Applies one change to the value (used by the tests' model and by `execute`).
    /// `now` stamps new versions.
    pub fn apply(&mut self, change: &Change) {
        self.apply_at(change, DateTime::<Utc>::MIN_UTC);
    }

    /// As [`Investigation::apply`], with the time new versions get.
    pub fn apply_at(&mut self, change: &Change, now: DateTime<Utc>) {
        match change {
            Change::Proposed { .. } => {}
            Change::RapporteurAssigned { user, commission } => {
                self.rapporteurs.insert(Rapporteur {
                    user: *user,
                    commission: *commission,
                });
            }
            Change::DocumentCreated {
                document,
                kind,
                title,
                municipality,
            } => self.documents.push(DocumentState {
                id: *document,
                kind: *kind,
                title: title.clone(),
                municipality: *municipality,
                versions: Vec::new(),
            }),
            Change::DocumentRetitled { document, title } => {
                if let Some(d) = self.documents.iter_mut().find(|d| d.id == *document) {
                    d.title = title.clone();
                }
            }
            Change::VersionAdded {
                document,
                version,
                number,
                sha256,
                size_bytes,
                media_type,
                ..
            } => {
                if let Some(d) = self.documents.iter_mut().find(|d| d.id == *document) {
                    d.versions.push(VersionInfo {
                        id: *version,
                        number: *number,
                        sha256: sha256.clone(),
                        media_type: media_type.clone(),
                        size_bytes: *size_bytes,
                        created_at: now,
                    });
                }
            }
            Change::RecommendationAdded {
                recommendation,
                number,
                text,
                addressee,
            } => self.recommendations.push(RecommendationState {
                id: *recommendation,
                number: *number,
                text: text.clone(),
                addressee: *addressee,
            }),
            Change::RebuttalTermsSet { mode, due_date } => {
                self.rebuttal_terms = Some(RebuttalTerms {
                    mode: *mode,
                    due_date: *due_date,
                })
            }
            Change::Approved {
                approval,
                phase,
                commission,
                fingerprint,
                ..
            } => self.approvals.push(ApprovalState {
                id: *approval,
                phase: *phase,
                commission: *commission,
                fingerprint: fingerprint.clone(),
            }),
            Change::ApprovalsVoided { approvals, .. } => {
                self.approvals.retain(|a| !approvals.contains(&a.id))
            }
            Change::VersionsFrozen { purpose, versions } => self.frozen.insert(*purpose, versions),
            Change::PhaseAdvanced { to, .. } => {
                self.phase = *to;
                self.approvals.clear();
            }
            Change::Suspended { .. } => {
                self.suspended = true;
                self.suspended_since = Some(now);
            }
            Change::Resumed => {
                self.suspended = false;
                self.suspended_since = None;
            }
            Change::Cancelled { .. } => {
                self.phase = Phase::Cancelled;
                self.suspended = false;
                self.suspended_since = None;
                self.approvals.clear();
            }
            Change::DeadlineOpened { .. }
            | Change::DeadlineClosed { .. }
            | Change::DeadlineMoved { .. }
            | Change::ReminderDue { .. }
            | Change::ResponseFiled { .. }
            | Change::ResponseCosigned { .. }
            | Change::NoResponse { .. }
            | Change::ExtensionRequested { .. }
            | Change::ExtensionVoted { .. }
            | Change::ExtensionResolved { .. } => self.apply_round(change, now),
            Change::Submitted { .. } => self.published = true,
            Change::CouncilDecisionRecorded { .. } | Change::ImplementationUpdated { .. } => {}
        }
    }

    /// The capacities of a caller (for tests and diagnostics).
    pub fn capacities(&self, actor: &Actor) -> BTreeSet<Capacity> {
        self.relation(actor).capacities
    }
}

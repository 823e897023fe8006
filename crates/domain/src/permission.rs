//! Who may do what, in which phase: the permission table as data, and the one function that
//! decides an investigation action from it.
//!
//! The order of the checks is fixed and shared by every command:
//! 1. no user → UNAUTHENTICATED;
//! 2. the caller cannot see the investigation (and the action is not an ADMIN one) → NOT_FOUND;
//! 3. none of the caller's capacities is listed for the action → FORBIDDEN;
//! 4. the phase is not one the action is allowed in → CONFLICT;
//! 5. the investigation is suspended and the action is one suspension blocks → CONFLICT.

use crate::error::DomainError;
use crate::ids::{CommissionId, MunicipalityId, UserId};
use crate::phase::{DocumentKind, Phase};
use crate::role::{Actor, Role};
use std::collections::BTreeSet;

/// How a caller relates to one investigation. One caller may have several capacities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capacity {
    /// CHAIR of a participating commission.
    ParticipatingChair,
    /// MEMBER of a participating commission.
    ParticipatingMember,
    /// SECRETARY of a participating commission.
    ParticipatingSecretary,
    /// Assigned rapporteur of the investigation.
    Rapporteur,
    /// COLLEGE_CONTACT of a concerned municipality.
    CollegeContact,
    /// CIVIL_SERVICE_CONTACT of a concerned municipality.
    CivilServiceContact,
    /// GRIFFIER of a concerned municipality.
    Griffier,
    /// COUNCIL_MEMBER of a concerned municipality.
    CouncilMember,
    /// Platform ADMIN.
    Admin,
}

impl Capacity {
    pub const ALL: [Capacity; 9] = [
        Capacity::ParticipatingChair,
        Capacity::ParticipatingMember,
        Capacity::ParticipatingSecretary,
        Capacity::Rapporteur,
        Capacity::CollegeContact,
        Capacity::CivilServiceContact,
        Capacity::Griffier,
        Capacity::CouncilMember,
        Capacity::Admin,
    ];

    /// Capacities that make a caller part of the investigation team: they see everything.
    pub fn is_team(self) -> bool {
        matches!(
            self,
            Capacity::ParticipatingChair
                | Capacity::ParticipatingMember
                | Capacity::ParticipatingSecretary
                | Capacity::Rapporteur
        )
    }
}

/// Authors of the commission's own documents.
const AUTHORS: &[Capacity] = &[
    Capacity::ParticipatingChair,
    Capacity::ParticipatingMember,
    Capacity::ParticipatingSecretary,
    Capacity::Rapporteur,
];
const CHAIR: &[Capacity] = &[Capacity::ParticipatingChair];
const CHAIR_OR_ADMIN: &[Capacity] = &[Capacity::ParticipatingChair, Capacity::Admin];
const COLLEGE: &[Capacity] = &[Capacity::CollegeContact];
const CIVIL_SERVICE: &[Capacity] = &[Capacity::CivilServiceContact];
const GRIFFIER: &[Capacity] = &[Capacity::Griffier];
const NOBODY: &[Capacity] = &[];

const GATED: &[Phase] = &Phase::WITH_GATE;
const BEFORE_FOLLOW_UP: &[Phase] = &[
    Phase::Proposal,
    Phase::Research,
    Phase::AdministrativeRebuttal,
    Phase::Epilogue,
    Phase::CouncilSubmission,
];
const RESEARCH: &[Phase] = &[Phase::Research];
const REBUTTAL: &[Phase] = &[Phase::AdministrativeRebuttal];
const REBUTTAL_AND_EPILOGUE: &[Phase] = &[Phase::AdministrativeRebuttal, Phase::Epilogue];
const FOLLOW_UP: &[Phase] = &[Phase::FollowUp];
const EVERY_PHASE: &[Phase] = &Phase::ALL;

/// Everything a caller can do to one investigation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// `approvePhase`: record the commission's approval of the current gate.
    ApprovePhase,
    /// `requestChanges`: void the current gate's approvals.
    RequestChanges,
    /// `submitDocumentVersion` of one kind.
    SubmitVersion(DocumentKind),
    AddRecommendation,
    AssignRapporteur,
    SetRebuttalTerms,
    StartFactualCheck,
    Suspend,
    Resume,
    Cancel,
    FileResponse,
    CosignResponse,
    RequestExtension,
    DecideExtension,
    RecordCouncilDecision,
    AddImplementationUpdate,
    /// Read the investigation's audit trail (and subscribe to its events).
    ViewAuditTrail,
    /// Recompute the audit chain.
    VerifyAuditTrail,
}

/// One row of the permission table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    /// The capacities that may act; anyone else who sees the investigation gets FORBIDDEN.
    pub who: &'static [Capacity],
    /// The phases in which the action is allowed; elsewhere CONFLICT.
    pub phases: &'static [Phase],
    /// Whether a suspended investigation refuses the action (CONFLICT).
    pub blocked_while_suspended: bool,
    /// Whether the caller must be able to see the investigation (else NOT_FOUND). Only the
    /// audit-chain verification is open to ADMIN, who sees no content.
    pub needs_visibility: bool,
}

impl Action {
    /// Every action, for exhaustive tests and for printing the table.
    pub fn all() -> Vec<Action> {
        let mut actions = vec![Action::ApprovePhase, Action::RequestChanges];
        actions.extend(DocumentKind::ALL.into_iter().map(Action::SubmitVersion));
        actions.extend([
            Action::AddRecommendation,
            Action::AssignRapporteur,
            Action::SetRebuttalTerms,
            Action::StartFactualCheck,
            Action::Suspend,
            Action::Resume,
            Action::Cancel,
            Action::FileResponse,
            Action::CosignResponse,
            Action::RequestExtension,
            Action::DecideExtension,
            Action::RecordCouncilDecision,
            Action::AddImplementationUpdate,
            Action::ViewAuditTrail,
            Action::VerifyAuditTrail,
        ]);
        actions
    }

    /// The permission table.
    pub fn rule(self) -> Rule {
        let rule = |who, phases, blocked_while_suspended| Rule {
            action: self,
            who,
            phases,
            blocked_while_suspended,
            needs_visibility: true,
        };
        match self {
            Action::ApprovePhase | Action::RequestChanges => rule(CHAIR, GATED, true),
            Action::SubmitVersion(kind) => {
                let who = match kind {
                    DocumentKind::FactualResponse => CIVIL_SERVICE,
                    DocumentKind::AdministrativeResponse => NOBODY,
                    _ => AUTHORS,
                };
                rule(who, kind.writable_in(), true)
            }
            Action::AddRecommendation => rule(AUTHORS, RESEARCH, true),
            Action::AssignRapporteur => rule(CHAIR, GATED, false),
            Action::SetRebuttalTerms | Action::StartFactualCheck => rule(CHAIR, RESEARCH, true),
            Action::Suspend | Action::Resume => rule(CHAIR, BEFORE_FOLLOW_UP, false),
            Action::Cancel => rule(CHAIR, GATED, false),
            Action::FileResponse | Action::CosignResponse => {
                rule(COLLEGE, REBUTTAL_AND_EPILOGUE, true)
            }
            Action::RequestExtension => rule(COLLEGE, REBUTTAL, true),
            Action::DecideExtension => rule(CHAIR, REBUTTAL, true),
            Action::RecordCouncilDecision => rule(GRIFFIER, FOLLOW_UP, false),
            Action::AddImplementationUpdate => rule(COLLEGE, FOLLOW_UP, false),
            Action::ViewAuditTrail => rule(AUTHORS, EVERY_PHASE, false),
            Action::VerifyAuditTrail => Rule {
                needs_visibility: false,
                ..rule(CHAIR_OR_ADMIN, EVERY_PHASE, false)
            },
        }
    }

    pub fn name(self) -> String {
        match self {
            Action::SubmitVersion(kind) => format!("submitDocumentVersion({})", kind.as_str()),
            other => {
                let debug = format!("{other:?}");
                let mut name = String::new();
                for (index, ch) in debug.chars().enumerate() {
                    if index == 0 {
                        name.extend(ch.to_lowercase());
                    } else {
                        name.push(ch);
                    }
                }
                name
            }
        }
    }
}

/// The facts about an investigation that decide a caller's capacities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parties {
    pub commissions: BTreeSet<CommissionId>,
    /// The concerned municipalities: those the participating commissions serve.
    pub municipalities: BTreeSet<MunicipalityId>,
    pub rapporteurs: BTreeSet<(UserId, CommissionId)>,
}

/// A caller's relation to one investigation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relation {
    pub capacities: BTreeSet<Capacity>,
    /// Participating commissions the caller chairs.
    pub chaired_commissions: BTreeSet<CommissionId>,
    /// Concerned municipalities per municipality role of the caller.
    pub college_of: BTreeSet<MunicipalityId>,
    pub civil_service_of: BTreeSet<MunicipalityId>,
    pub griffier_of: BTreeSet<MunicipalityId>,
    pub council_member_of: BTreeSet<MunicipalityId>,
}

impl Relation {
    pub fn has(&self, capacity: Capacity) -> bool {
        self.capacities.contains(&capacity)
    }

    /// Part of the investigation team (chair, member, secretary, rapporteur).
    pub fn is_team(&self) -> bool {
        self.capacities.iter().any(|capacity| capacity.is_team())
    }

    /// Holds any role of a concerned municipality.
    pub fn is_concerned_municipality(&self) -> bool {
        !(self.college_of.is_empty()
            && self.civil_service_of.is_empty()
            && self.griffier_of.is_empty()
            && self.council_member_of.is_empty())
    }
}

/// Derives the caller's capacities from their grants and the investigation's parties.
pub fn relation(actor: &Actor, parties: &Parties) -> Relation {
    let mut relation = Relation::default();
    if actor.user.is_none() {
        return relation;
    }
    let on_commission = |role: Role| -> BTreeSet<CommissionId> {
        actor
            .commissions_with(role)
            .intersection(&parties.commissions)
            .copied()
            .collect()
    };
    let in_municipality = |role: Role| -> BTreeSet<MunicipalityId> {
        actor
            .municipalities_with(role)
            .intersection(&parties.municipalities)
            .copied()
            .collect()
    };
    relation.chaired_commissions = on_commission(Role::Chair);
    relation.college_of = in_municipality(Role::CollegeContact);
    relation.civil_service_of = in_municipality(Role::CivilServiceContact);
    relation.griffier_of = in_municipality(Role::Griffier);
    relation.council_member_of = in_municipality(Role::CouncilMember);

    let mut add = |present: bool, capacity: Capacity| {
        if present {
            relation.capacities.insert(capacity);
        }
    };
    add(
        !relation.chaired_commissions.is_empty(),
        Capacity::ParticipatingChair,
    );
    add(
        !on_commission(Role::Member).is_empty(),
        Capacity::ParticipatingMember,
    );
    add(
        !on_commission(Role::Secretary).is_empty(),
        Capacity::ParticipatingSecretary,
    );
    add(
        parties
            .rapporteurs
            .iter()
            .any(|(user, _)| Some(*user) == actor.user),
        Capacity::Rapporteur,
    );
    add(!relation.college_of.is_empty(), Capacity::CollegeContact);
    add(
        !relation.civil_service_of.is_empty(),
        Capacity::CivilServiceContact,
    );
    add(!relation.griffier_of.is_empty(), Capacity::Griffier);
    add(
        !relation.council_member_of.is_empty(),
        Capacity::CouncilMember,
    );
    add(actor.is_admin(), Capacity::Admin);
    relation
}

/// The state an action is decided against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActionContext {
    pub authenticated: bool,
    pub visible: bool,
    pub phase: Phase,
    pub suspended: bool,
}

/// The outcome the table gives, for the exhaustive tests: `Ok(())` or the error code.
pub fn authorize(
    relation: &Relation,
    context: ActionContext,
    action: Action,
) -> Result<(), DomainError> {
    let rule = action.rule();
    if !context.authenticated {
        return Err(DomainError::Unauthenticated);
    }
    let listed = rule
        .who
        .iter()
        .any(|capacity| relation.capacities.contains(capacity));
    // Only ADMIN is exempt from seeing the investigation (it sees no content); anyone else
    // who cannot see it gets NOT_FOUND, whatever the action.
    let visible =
        context.visible || (!rule.needs_visibility && listed && relation.has(Capacity::Admin));
    if !visible {
        return Err(DomainError::NotFound);
    }
    if !listed {
        return Err(DomainError::forbidden(format!(
            "{} is for {}",
            action.name(),
            describe_capacities(rule.who)
        )));
    }
    if !rule.phases.contains(&context.phase) {
        return Err(DomainError::conflict(format!(
            "{} is possible in phase {}; the investigation is in {}",
            action.name(),
            rule.phases
                .iter()
                .map(|phase| phase.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
            context.phase.as_str()
        )));
    }
    if rule.blocked_while_suspended && context.suspended {
        return Err(DomainError::conflict(format!(
            "the investigation is suspended: {} is not accepted until it is resumed",
            action.name()
        )));
    }
    Ok(())
}

fn describe_capacities(who: &[Capacity]) -> String {
    if who.is_empty() {
        return "nobody directly (administrative responses are filed with fileResponse)".into();
    }
    who.iter()
        .map(|capacity| match capacity {
            Capacity::ParticipatingChair => "a CHAIR of a participating commission",
            Capacity::ParticipatingMember => "a MEMBER of a participating commission",
            Capacity::ParticipatingSecretary => "a SECRETARY of a participating commission",
            Capacity::Rapporteur => "an assigned rapporteur",
            Capacity::CollegeContact => "a COLLEGE_CONTACT of a concerned municipality",
            Capacity::CivilServiceContact => "a CIVIL_SERVICE_CONTACT of a concerned municipality",
            Capacity::Griffier => "a GRIFFIER of a concerned municipality",
            Capacity::CouncilMember => "a COUNCIL_MEMBER of a concerned municipality",
            Capacity::Admin => "an ADMIN",
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The permission table as text (for `rkflow permissions` and the docs).
pub fn render_table() -> String {
    let mut out = String::from("action | who | phases | blocked while suspended\n");
    for action in Action::all() {
        let rule = action.rule();
        out.push_str(&format!(
            "{} | {} | {} | {}\n",
            action.name(),
            rule.who
                .iter()
                .map(|capacity| format!("{capacity:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            rule.phases
                .iter()
                .map(|phase| phase.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if rule.blocked_while_suspended {
                "yes"
            } else {
                "no"
            }
        ));
    }
    out
}

//! Exhaustive and property tests of the pure rules of `rkflow-domain`: the permission table,
//! the phase machine, gates and approval fingerprints, and the visibility table.
//!
//! The expectations are written from the behaviour contract (`shared/contract/README.md`,
//! sections "Investigation and phases", "Documents" and "Who sees what"), never derived from
//! the crate's own tables: `Action::rule()` is only ever compared against, not called to build
//! an expectation.

use chrono::{DateTime, Days, NaiveDate, Utc};
use proptest::prelude::*;
use rkflow_domain::content::markdown;
use rkflow_domain::investigation::{
    self, DocumentState, FreezePurpose, NewVersion, Participant, Proposal, RebuttalTerms,
    ResponseState,
};
use rkflow_domain::permission::{self, ActionContext, Relation};
use rkflow_domain::visibility::{self, View};
use rkflow_domain::{
    Action, Actor, Capacity, Change, Command, CommissionId, DocumentId, DocumentKind, DomainError,
    Grant, Investigation, InvestigationId, MunicipalityId, Phase, RecommendationAddressee,
    RecommendationId, ResponseId, ResponseMode, Role, Scope, UserId, VersionId,
};
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------------------------
// Time, grants and actors
// ---------------------------------------------------------------------------------------------

/// 2019-03-21T08:00:00Z, a Thursday.
const T0: i64 = 1_553_155_200;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + seconds, 0).expect("a valid timestamp")
}

fn grant(role: Role, scope: Scope) -> Grant {
    Grant::new(role, scope).expect("the role fits the scope")
}

fn on_commission(role: Role, commission: CommissionId) -> Grant {
    grant(role, Scope::Commission(commission))
}

fn in_municipality(role: Role, municipality: MunicipalityId) -> Grant {
    grant(role, Scope::Municipality(municipality))
}

fn user(grants: impl IntoIterator<Item = Grant>) -> Actor {
    Actor::user(UserId::new(), grants)
}

fn code<T>(result: &Result<T, DomainError>) -> &'static str {
    match result {
        Ok(_) => "OK",
        Err(error) => error.code(),
    }
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

fn version(kind: DocumentKind, title: Option<&str>, base: Option<i32>, text: &str) -> Command {
    Command::SubmitVersion {
        version: NewVersion {
            kind,
            title: title.map(str::to_string),
            base_version: base,
            content: markdown(text).expect("valid markdown"),
            note: None,
            municipality: None,
        },
        new_document: DocumentId::new(),
        new_version: VersionId::new(),
    }
}

fn write(kind: DocumentKind, text: &str) -> Command {
    let title = (kind == DocumentKind::Annex).then_some("Bijlage A");
    version(kind, title, None, text)
}

fn approve() -> Command {
    Command::Approve {
        comment: None,
        phase: None,
    }
}

fn recommendation(text: &str) -> Command {
    Command::AddRecommendation {
        id: RecommendationId::new(),
        text: text.to_string(),
        addressee: RecommendationAddressee::College,
    }
}

fn terms(mode: ResponseMode, due_date: Option<NaiveDate>) -> Command {
    Command::SetRebuttalTerms {
        terms: RebuttalTerms { mode, due_date },
    }
}

fn request_changes(reason: &str) -> Command {
    Command::RequestChanges {
        reason: reason.to_string(),
    }
}

fn suspend(reason: &str) -> Command {
    Command::Suspend {
        reason: reason.to_string(),
    }
}

fn cancel(reason: &str) -> Command {
    Command::Cancel {
        reason: reason.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// A small world: one investigation, its organisation and a pool of actors
// ---------------------------------------------------------------------------------------------

/// The actors of the pool, symbolically (so that proptest can generate and shrink them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    /// CHAIR of participating commission `i % n`.
    Chair(usize),
    /// CHAIR of the first two participating commissions (of the first only when n = 1).
    DoubleChair,
    /// CHAIR of a commission that does not participate.
    OutsiderChair,
    /// MEMBER of the last participating commission.
    Member,
    /// SECRETARY of the first participating commission.
    Secretary,
    /// A user without grants who may be assigned as rapporteur.
    Rapporteur,
    /// COLLEGE_CONTACT of the first concerned municipality.
    College,
    /// CIVIL_SERVICE_CONTACT of the first concerned municipality.
    CivilService,
    /// GRIFFIER of the last commission's first municipality.
    Griffier,
    /// COUNCIL_MEMBER of the last commission's first municipality.
    CouncilMember,
    /// COLLEGE_CONTACT of a municipality no participating commission serves.
    OutsiderCollege,
    Admin,
    Anonymous,
}

struct World {
    inv: Investigation,
    clock: i64,
    commissions: Vec<CommissionId>,
    /// The municipalities each participating commission serves.
    served: Vec<Vec<MunicipalityId>>,
    chairs: Vec<Actor>,
    double_chair: Actor,
    outsider_chair: Actor,
    member: Actor,
    secretary: Actor,
    rapporteur: Actor,
    college: Actor,
    civil_service: Actor,
    griffier: Actor,
    council_member: Actor,
    outsider_college: Actor,
    admin: Actor,
}

impl World {
    /// `shape[i]` municipalities for participating commission i; with `shared`, the second
    /// commission also serves the first commission's first municipality.
    fn new(shape: &[usize], shared: bool) -> World {
        assert!(!shape.is_empty());
        let commissions: Vec<CommissionId> = shape.iter().map(|_| CommissionId::new()).collect();
        let mut served: Vec<Vec<MunicipalityId>> = shape
            .iter()
            .map(|count| {
                (0..(*count).max(1))
                    .map(|_| MunicipalityId::new())
                    .collect()
            })
            .collect();
        if shared && served.len() >= 2 {
            let first = served[0][0];
            served[1].push(first);
        }
        let outsider_commission = CommissionId::new();
        let outsider_municipality = MunicipalityId::new();
        let last = commissions.len() - 1;
        let proposer = user([on_commission(Role::Member, commissions[0])]);
        let participants = commissions
            .iter()
            .zip(&served)
            .enumerate()
            .map(|(index, (id, municipalities))| Participant {
                id: *id,
                name: format!("Rekenkamer {index}"),
                municipalities: municipalities.iter().copied().collect(),
            })
            .collect();
        let (inv, changes) = investigation::propose(
            &proposer,
            InvestigationId::new(),
            Proposal {
                title: "Jeugdzorg in de regio".into(),
                commissions: participants,
                research_questions: vec!["Is de jeugdzorg doeltreffend?".into()],
                scope_start: NaiveDate::from_ymd_opt(2018, 1, 1),
                scope_end: NaiveDate::from_ymd_opt(2018, 12, 31),
            },
        )
        .expect("a member of a listed commission may propose");
        assert!(matches!(changes.as_slice(), [Change::Proposed { .. }]));
        let first_municipality = served[0][0];
        let last_municipality = served[last][0];
        World {
            inv,
            clock: 0,
            chairs: commissions
                .iter()
                .map(|c| user([on_commission(Role::Chair, *c)]))
                .collect(),
            double_chair: user(
                commissions
                    .iter()
                    .take(2)
                    .map(|c| on_commission(Role::Chair, *c)),
            ),
            outsider_chair: user([on_commission(Role::Chair, outsider_commission)]),
            member: user([on_commission(Role::Member, commissions[last])]),
            secretary: user([on_commission(Role::Secretary, commissions[0])]),
            rapporteur: user([]),
            college: user([in_municipality(Role::CollegeContact, first_municipality)]),
            civil_service: user([in_municipality(
                Role::CivilServiceContact,
                first_municipality,
            )]),
            griffier: user([in_municipality(Role::Griffier, last_municipality)]),
            council_member: user([in_municipality(Role::CouncilMember, last_municipality)]),
            outsider_college: user([in_municipality(Role::CollegeContact, outsider_municipality)]),
            admin: user([grant(Role::Admin, Scope::Global)]),
            commissions,
            served,
        }
    }

    fn n(&self) -> usize {
        self.commissions.len()
    }

    fn actor(&self, who: Who) -> Actor {
        match who {
            Who::Chair(index) => self.chairs[index % self.n()].clone(),
            Who::DoubleChair => self.double_chair.clone(),
            Who::OutsiderChair => self.outsider_chair.clone(),
            Who::Member => self.member.clone(),
            Who::Secretary => self.secretary.clone(),
            Who::Rapporteur => self.rapporteur.clone(),
            Who::College => self.college.clone(),
            Who::CivilService => self.civil_service.clone(),
            Who::Griffier => self.griffier.clone(),
            Who::CouncilMember => self.council_member.clone(),
            Who::OutsiderCollege => self.outsider_college.clone(),
            Who::Admin => self.admin.clone(),
            Who::Anonymous => Actor::anonymous(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        at(self.clock)
    }

    /// Executes a command a few seconds later and applies its changes when it succeeds.
    fn exec(&mut self, who: Who, command: Command) -> Result<Vec<Change>, DomainError> {
        self.clock += 5;
        let now = self.now();
        let actor = self.actor(who);
        let result = self.inv.execute(&actor, command, now);
        if let Ok(changes) = &result {
            for change in changes {
                self.inv.apply_at(change, now);
            }
        }
        result
    }

    /// As [`World::exec`], for a command that must succeed.
    fn ok(&mut self, who: Who, command: Command) -> Vec<Change> {
        let shown = format!("{command:?}");
        self.exec(who, command)
            .unwrap_or_else(|error| panic!("{who:?} {shown} was refused: {error:?}"))
    }

    /// As [`World::exec`], for a command that must fail; returns the error.
    fn err(&mut self, who: Who, command: Command) -> DomainError {
        let shown = format!("{command:?}");
        match self.exec(who, command) {
            Ok(changes) => panic!("{who:?} {shown} was accepted: {changes:?}"),
            Err(error) => error,
        }
    }

    /// Every chair whose commission has not yet approved approves the current gate.
    fn approve_all(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        for index in 0..self.n() {
            let id = self.commissions[index];
            if self.inv.missing_approvals().iter().any(|c| c.id == id) {
                changes.extend(self.ok(Who::Chair(index), approve()));
            }
        }
        changes
    }

    /// Fulfils the current gate's guard the simplest way and lets every chair approve.
    fn pass_gate(&mut self) -> Vec<Change> {
        match self.inv.phase {
            Phase::Proposal if self.inv.document(DocumentKind::Proposal).is_none() => {
                self.ok(Who::Member, write(DocumentKind::Proposal, "# Voorstel"));
            }
            Phase::Research => {
                for kind in [DocumentKind::ResearchReport, DocumentKind::Conclusions] {
                    if self.inv.document(kind).is_none() {
                        self.ok(Who::Secretary, write(kind, "# Concept"));
                    }
                }
                if self.inv.recommendations.is_empty() {
                    self.ok(Who::Member, recommendation("Meet de wachttijden."));
                }
                if self.inv.rebuttal_terms.is_none() {
                    self.ok(Who::Chair(0), terms(ResponseMode::Separate, None));
                }
            }
            Phase::AdministrativeRebuttal => {
                // Let every college's deadline pass without a response.
                self.clock += 60 * 86_400;
            }
            _ => {}
        }
        self.approve_all()
    }

    fn advance_to(&mut self, target: Phase) {
        assert!(target != Phase::Cancelled);
        while self.inv.phase < target {
            let from = self.inv.phase;
            let changes = self.pass_gate();
            assert!(
                changes.contains(&Change::PhaseAdvanced {
                    from,
                    to: from.next().unwrap()
                }),
                "passing the {from:?} gate"
            );
        }
        assert_eq!(self.inv.phase, target);
    }

    fn document_titled(&self, kind: DocumentKind, title: &str) -> Option<&DocumentState> {
        self.inv
            .documents
            .iter()
            .find(|d| d.kind == kind && d.title == title)
    }

    fn latest_version(&self, kind: DocumentKind) -> VersionId {
        self.inv
            .document(kind)
            .and_then(|d| d.latest())
            .map(|v| v.id)
            .unwrap_or_else(|| panic!("no {kind:?} version"))
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The permission table, exhaustively
// ---------------------------------------------------------------------------------------------

/// One row of the permission table as the contract reads.
struct ContractRow {
    who: &'static [Capacity],
    phases: &'static [Phase],
    blocked_while_suspended: bool,
}

const TEAM: &[Capacity] = &[
    Capacity::ParticipatingChair,
    Capacity::ParticipatingMember,
    Capacity::ParticipatingSecretary,
    Capacity::Rapporteur,
];
const ONLY_CHAIR: &[Capacity] = &[Capacity::ParticipatingChair];
const CHAIR_AND_ADMIN: &[Capacity] = &[Capacity::ParticipatingChair, Capacity::Admin];
const ONLY_COLLEGE: &[Capacity] = &[Capacity::CollegeContact];
const ONLY_CIVIL_SERVICE: &[Capacity] = &[Capacity::CivilServiceContact];
const ONLY_GRIFFIER: &[Capacity] = &[Capacity::Griffier];
const NO_ONE: &[Capacity] = &[];

/// Every phase that is not terminal (each ends with a gate).
const NOT_TERMINAL: &[Phase] = &[
    Phase::Proposal,
    Phase::Research,
    Phase::AdministrativeRebuttal,
    Phase::Epilogue,
    Phase::CouncilSubmission,
    Phase::FollowUp,
];
/// "Suspension (any phase before FOLLOW_UP …)".
const SUSPENDABLE: &[Phase] = &[
    Phase::Proposal,
    Phase::Research,
    Phase::AdministrativeRebuttal,
    Phase::Epilogue,
    Phase::CouncilSubmission,
];
const ALL_PHASES: &[Phase] = &[
    Phase::Proposal,
    Phase::Research,
    Phase::AdministrativeRebuttal,
    Phase::Epilogue,
    Phase::CouncilSubmission,
    Phase::FollowUp,
    Phase::Closed,
    Phase::Cancelled,
];

/// The permission table, written from the contract. Where the contract is silent the choice
/// is noted.
fn contract_row(action: Action) -> ContractRow {
    let row = |who, phases, blocked_while_suspended| ContractRow {
        who,
        phases,
        blocked_while_suspended,
    };
    match action {
        // "approvePhase by a CHAIR of a participating commission"; "no gate … is accepted
        // while suspended".
        Action::ApprovePhase => row(ONLY_CHAIR, NOT_TERMINAL, true),
        // "requestChanges by a participating chair voids all approvals of the current gate";
        // treated as part of the gate, so refused while suspended.
        Action::RequestChanges => row(ONLY_CHAIR, NOT_TERMINAL, true),
        // Documents: the "Who writes what" paragraph and the "writable in" table; "no …
        // document … is accepted while suspended".
        Action::SubmitVersion(DocumentKind::Proposal) => row(TEAM, &[Phase::Proposal], true),
        Action::SubmitVersion(DocumentKind::ResearchReport)
        | Action::SubmitVersion(DocumentKind::Conclusions) => row(TEAM, &[Phase::Research], true),
        Action::SubmitVersion(DocumentKind::FactualResponse) => {
            row(ONLY_CIVIL_SERVICE, &[Phase::Research], true)
        }
        // "ADMINISTRATIVE_RESPONSE is written only through fileResponse": nobody may submit a
        // version directly, so everyone who sees the investigation gets FORBIDDEN.
        Action::SubmitVersion(DocumentKind::AdministrativeResponse) => row(
            NO_ONE,
            &[Phase::AdministrativeRebuttal, Phase::Epilogue],
            true,
        ),
        Action::SubmitVersion(DocumentKind::Epilogue) => row(TEAM, &[Phase::Epilogue], true),
        Action::SubmitVersion(DocumentKind::CoverLetter) => {
            row(TEAM, &[Phase::Epilogue, Phase::CouncilSubmission], true)
        }
        Action::SubmitVersion(DocumentKind::Annex) => row(
            TEAM,
            &[Phase::Research, Phase::Epilogue, Phase::CouncilSubmission],
            true,
        ),
        // "Recommendations are added in RESEARCH only" (by the authors; the contract names no
        // one else).
        Action::AddRecommendation => row(TEAM, &[Phase::Research], true),
        // Rapporteurs are assigned "for one participating commission": by its chair. The
        // contract names no phase limit, so every phase that is not terminal; an assignment is
        // no gate, document or filing, so it stays possible while suspended.
        Action::AssignRapporteur => row(ONLY_CHAIR, NOT_TERMINAL, false),
        // "setRebuttalTerms and startFactualCheck are a participating chair's, in RESEARCH";
        // the terms are gate content, so refused while suspended.
        Action::SetRebuttalTerms | Action::StartFactualCheck => {
            row(ONLY_CHAIR, &[Phase::Research], true)
        }
        // "any phase before FOLLOW_UP; a chair of any participating commission may suspend or
        // resume".
        Action::Suspend | Action::Resume => row(ONLY_CHAIR, SUSPENDABLE, false),
        // "Cancel is terminal and needs a reason": by a chair (as suspension), in any phase
        // that is not yet terminal.
        Action::Cancel => row(ONLY_CHAIR, NOT_TERMINAL, false),
        // "fileResponse by a COLLEGE_CONTACT …"; late responses "accepted until the EPILOGUE
        // gate passes"; "no … filing is accepted while suspended".
        Action::FileResponse | Action::CosignResponse => row(
            ONLY_COLLEGE,
            &[Phase::AdministrativeRebuttal, Phase::Epilogue],
            true,
        ),
        // Extensions of the rebuttal deadline: asked by a COLLEGE_CONTACT, decided by chairs.
        Action::RequestExtension => row(ONLY_COLLEGE, &[Phase::AdministrativeRebuttal], true),
        Action::DecideExtension => row(ONLY_CHAIR, &[Phase::AdministrativeRebuttal], true),
        // FOLLOW_UP: "griffiers record council decisions …; colleges report implementation".
        // Suspension is impossible in FOLLOW_UP, so whether these are blocked never matters;
        // they are not.
        Action::RecordCouncilDecision => row(ONLY_GRIFFIER, &[Phase::FollowUp], false),
        Action::AddImplementationUpdate => row(ONLY_COLLEGE, &[Phase::FollowUp], false),
        // The team sees "everything …, its audit trail included", in every phase.
        Action::ViewAuditTrail => row(TEAM, ALL_PHASES, false),
        // api.graphql: verifyAuditTrail is for "ADMIN or a participating chair".
        Action::VerifyAuditTrail => row(CHAIR_AND_ADMIN, ALL_PHASES, false),
    }
}

/// Every action, enumerated by hand (to check `Action::all()`).
fn every_action() -> Vec<Action> {
    let mut actions = vec![Action::ApprovePhase, Action::RequestChanges];
    for kind in [
        DocumentKind::Proposal,
        DocumentKind::ResearchReport,
        DocumentKind::Conclusions,
        DocumentKind::FactualResponse,
        DocumentKind::AdministrativeResponse,
        DocumentKind::Epilogue,
        DocumentKind::CoverLetter,
        DocumentKind::Annex,
    ] {
        actions.push(Action::SubmitVersion(kind));
    }
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

/// The outcome code the contract expects. `capacities` is `None` for an unauthenticated
/// caller.
fn expected_outcome(
    capacities: Option<&BTreeSet<Capacity>>,
    phase: Phase,
    suspended: bool,
    visible: bool,
    action: Action,
) -> &'static str {
    let Some(capacities) = capacities else {
        return "UNAUTHENTICATED";
    };
    let row = contract_row(action);
    let admin_verifies =
        action == Action::VerifyAuditTrail && capacities.contains(&Capacity::Admin);
    if !visible && !admin_verifies {
        return "NOT_FOUND";
    }
    if !row.who.iter().any(|c| capacities.contains(c)) {
        return "FORBIDDEN";
    }
    if !row.phases.contains(&phase) {
        return "CONFLICT";
    }
    if suspended && row.blocked_while_suspended {
        return "CONFLICT";
    }
    "OK"
}

fn relation_with(capacities: &BTreeSet<Capacity>) -> Relation {
    Relation {
        capacities: capacities.clone(),
        ..Relation::default()
    }
}

const EVERY_CAPACITY: [Capacity; 9] = [
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

#[test]
fn action_all_lists_every_action_once_and_every_rule_names_its_action() {
    let all = Action::all();
    assert_eq!(all.len(), 25);
    let distinct: BTreeSet<Action> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "an action is listed twice");
    let expected: BTreeSet<Action> = every_action().into_iter().collect();
    assert_eq!(distinct, expected);
    for action in all {
        assert_eq!(action.rule().action, action);
    }
    assert_eq!(
        Capacity::ALL.iter().copied().collect::<BTreeSet<_>>(),
        EVERY_CAPACITY.into_iter().collect::<BTreeSet<_>>()
    );
}

#[test]
fn permission_table_matches_the_contract_for_every_single_capacity() {
    let mut callers: Vec<(String, Option<BTreeSet<Capacity>>)> = vec![
        ("unauthenticated".into(), None),
        ("outsider".into(), Some(BTreeSet::new())),
    ];
    for capacity in EVERY_CAPACITY {
        callers.push((format!("{capacity:?}"), Some(BTreeSet::from([capacity]))));
    }
    let mut mismatches = Vec::new();
    let mut checked = 0;
    for (name, capacities) in &callers {
        let relation = capacities.as_ref().map(relation_with).unwrap_or_default();
        for phase in Phase::ALL {
            for action in Action::all() {
                for suspended in [false, true] {
                    for visible in [false, true] {
                        let context = ActionContext {
                            authenticated: capacities.is_some(),
                            visible,
                            phase,
                            suspended,
                        };
                        let actual = permission::authorize(&relation, context, action);
                        let expected = expected_outcome(
                            capacities.as_ref(),
                            phase,
                            suspended,
                            visible,
                            action,
                        );
                        checked += 1;
                        if code(&actual) != expected {
                            mismatches.push(format!(
                                "{name} {} in {phase:?} suspended={suspended} visible={visible}: \
                                 expected {expected}, got {actual:?}",
                                action.name()
                            ));
                        }
                    }
                }
            }
        }
    }
    assert_eq!(checked, 11 * 8 * 25 * 2 * 2);
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn refusals_say_why() {
    let member = relation_with(&BTreeSet::from([Capacity::ParticipatingMember]));
    let chair = relation_with(&BTreeSet::from([Capacity::ParticipatingChair]));
    let context = |phase, suspended| ActionContext {
        authenticated: true,
        visible: true,
        phase,
        suspended,
    };
    let forbidden = permission::authorize(
        &member,
        context(Phase::Proposal, false),
        Action::ApprovePhase,
    )
    .unwrap_err();
    assert!(forbidden.to_string().contains("CHAIR"), "{forbidden}");
    let wrong_phase = permission::authorize(
        &chair,
        context(Phase::Proposal, false),
        Action::SetRebuttalTerms,
    )
    .unwrap_err();
    assert!(
        wrong_phase.to_string().contains("RESEARCH"),
        "{wrong_phase}"
    );
    assert!(
        wrong_phase.to_string().contains("PROPOSAL"),
        "{wrong_phase}"
    );
    let suspended =
        permission::authorize(&chair, context(Phase::Research, true), Action::ApprovePhase)
            .unwrap_err();
    assert!(suspended.to_string().contains("suspended"), "{suspended}");
    let administrative = permission::authorize(
        &chair,
        context(Phase::Epilogue, false),
        Action::SubmitVersion(DocumentKind::AdministrativeResponse),
    )
    .unwrap_err();
    assert_eq!(administrative.code(), "FORBIDDEN");
    assert!(
        administrative.to_string().contains("fileResponse"),
        "{administrative}"
    );
}

fn capacity_set() -> impl Strategy<Value = BTreeSet<Capacity>> {
    proptest::sample::subsequence(EVERY_CAPACITY.to_vec(), 0..=EVERY_CAPACITY.len())
        .prop_map(|capacities| capacities.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Several capacities at once: the contract's order still decides, and holding one more
    /// capacity never takes a permission away.
    #[test]
    fn permission_table_matches_the_contract_for_capacity_sets(
        capacities in capacity_set(),
        phase in proptest::sample::select(Phase::ALL.to_vec()),
        action in proptest::sample::select(every_action()),
        suspended in any::<bool>(),
        visible in any::<bool>(),
    ) {
        let relation = relation_with(&capacities);
        let context = ActionContext { authenticated: true, visible, phase, suspended };
        let actual = permission::authorize(&relation, context, action);
        let expected = expected_outcome(Some(&capacities), phase, suspended, visible, action);
        prop_assert_eq!(code(&actual), expected);
        if actual.is_ok() {
            for extra in EVERY_CAPACITY {
                let mut more = capacities.clone();
                more.insert(extra);
                prop_assert!(permission::authorize(&relation_with(&more), context, action).is_ok());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The phase machine
// ---------------------------------------------------------------------------------------------

#[test]
fn phase_next_walks_the_phases_in_order() {
    let mut walk = vec![Phase::Proposal];
    while let Some(next) = walk.last().unwrap().next() {
        walk.push(next);
        assert!(walk.len() <= Phase::ALL.len(), "the phase machine loops");
    }
    assert_eq!(
        walk,
        [
            Phase::Proposal,
            Phase::Research,
            Phase::AdministrativeRebuttal,
            Phase::Epilogue,
            Phase::CouncilSubmission,
            Phase::FollowUp,
            Phase::Closed,
        ]
    );
    assert_eq!(Phase::Closed.next(), None);
    assert_eq!(Phase::Cancelled.next(), None);
    for phase in Phase::ALL {
        assert_eq!(phase.is_terminal(), phase.next().is_none(), "{phase:?}");
        assert_eq!(Phase::WITH_GATE.contains(&phase), !phase.is_terminal());
        assert_eq!(Phase::parse(phase.as_str()), Some(phase));
        if let Some(next) = phase.next() {
            assert!(next > phase);
            assert_eq!(next.ordinal(), phase.ordinal() + 1);
        }
    }
    let suspendable: Vec<Phase> = Phase::ALL.into_iter().filter(|p| p.may_suspend()).collect();
    assert_eq!(suspendable, SUSPENDABLE);
    assert_eq!(Phase::parse("proposal"), None);
    assert_eq!(Phase::Cancelled.ordinal(), Phase::ALL.len() - 1);
}

#[test]
fn document_kinds_are_writable_where_the_contract_says() {
    for kind in DocumentKind::ALL {
        assert_eq!(DocumentKind::parse(kind.as_str()), Some(kind));
        let Action::SubmitVersion(_) = Action::SubmitVersion(kind) else {
            unreachable!()
        };
        assert_eq!(
            kind.writable_in(),
            contract_row(Action::SubmitVersion(kind)).phases,
            "{kind:?}"
        );
    }
    let plural: Vec<DocumentKind> = DocumentKind::ALL
        .into_iter()
        .filter(|k| !k.is_singular())
        .collect();
    assert_eq!(
        plural,
        [
            DocumentKind::FactualResponse,
            DocumentKind::AdministrativeResponse,
            DocumentKind::Annex
        ]
    );
}

#[test]
fn a_full_investigation_walks_every_gate_to_closed() {
    let mut world = World::new(&[1, 2, 1], true);
    let mut walked = vec![world.inv.phase];
    while !world.inv.phase.is_terminal() {
        world.pass_gate();
        walked.push(world.inv.phase);
        assert!(world.inv.approvals.is_empty());
    }
    assert_eq!(
        walked,
        [
            Phase::Proposal,
            Phase::Research,
            Phase::AdministrativeRebuttal,
            Phase::Epilogue,
            Phase::CouncilSubmission,
            Phase::FollowUp,
            Phase::Closed,
        ]
    );
    // Closed is terminal: nothing more is possible.
    for who in [Who::Chair(0), Who::Chair(1), Who::Chair(2)] {
        assert_eq!(world.err(who, approve()).code(), "CONFLICT");
        assert_eq!(world.err(who, cancel("te laat")).code(), "CONFLICT");
        assert_eq!(world.err(who, suspend("pauze")).code(), "CONFLICT");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Random command sequences
// ---------------------------------------------------------------------------------------------

/// Which document kind a generated submission targets.
#[derive(Clone, Copy, Debug)]
enum KindPick {
    /// One of the commission's own kinds writable in the current phase (any kind when none is).
    Writable(usize),
    /// Any kind at all.
    Any(usize),
}

/// Which `baseVersion` a generated submission names.
#[derive(Clone, Copy, Debug)]
enum BasePick {
    None,
    Latest,
    /// Anything but the latest.
    Stale(i32),
}

/// A command, symbolically: resolved against the investigation when it runs.
#[derive(Clone, Debug)]
enum Cmd {
    Approve {
        comment: bool,
    },
    RequestChanges {
        blank_reason: bool,
    },
    Submit {
        kind: KindPick,
        title: usize,
        base: BasePick,
        text: usize,
    },
    AddRecommendation {
        text: usize,
    },
    AssignRapporteur {
        commission: usize,
    },
    SetTerms {
        joint: bool,
        due_in_days: Option<i8>,
    },
    Suspend,
    Resume,
    Cancel {
        blank_reason: bool,
    },
    /// Supplies the first thing the current gate's guard misses (else approves), so that
    /// sequences also get past the harder gates.
    Fulfil,
}

const TITLES: [Option<&str>; 5] = [
    None,
    Some("Bijlage A"),
    Some("Bijlage B"),
    Some("   "),
    Some("Andere titel"),
];
const TEXTS: [&str; 3] = ["# Versie een", "# Versie twee\n\nMet meer tekst.", "# Drie"];

fn own_kinds_writable_in(phase: Phase) -> Vec<DocumentKind> {
    DocumentKind::ALL
        .into_iter()
        .filter(|kind| {
            !matches!(
                kind,
                DocumentKind::FactualResponse | DocumentKind::AdministrativeResponse
            ) && kind.writable_in().contains(&phase)
        })
        .collect()
}

impl World {
    fn resolve(&self, cmd: &Cmd) -> Command {
        match cmd {
            Cmd::Approve { comment } => Command::Approve {
                comment: comment.then(|| "Akkoord.".to_string()),
                phase: None,
            },
            Cmd::RequestChanges { blank_reason } => request_changes(if *blank_reason {
                " "
            } else {
                "Graag aanpassen"
            }),
            Cmd::Submit {
                kind,
                title,
                base,
                text,
            } => {
                let kind = match kind {
                    KindPick::Writable(index) => {
                        let kinds = own_kinds_writable_in(self.inv.phase);
                        if kinds.is_empty() {
                            DocumentKind::ALL[index % DocumentKind::ALL.len()]
                        } else {
                            kinds[index % kinds.len()]
                        }
                    }
                    KindPick::Any(index) => DocumentKind::ALL[index % DocumentKind::ALL.len()],
                };
                let title = TITLES[title % TITLES.len()];
                let existing = if kind == DocumentKind::Annex {
                    title.and_then(|t| self.document_titled(kind, t.trim()))
                } else {
                    self.inv.document(kind)
                };
                let latest = existing.and_then(|d| d.latest()).map_or(0, |v| v.number);
                let base = match base {
                    BasePick::None => None,
                    BasePick::Latest => Some(latest),
                    BasePick::Stale(offset) => Some(latest + 1 + offset),
                };
                version(kind, title, base, TEXTS[text % TEXTS.len()])
            }
            Cmd::AddRecommendation { text } => recommendation(TEXTS[text % TEXTS.len()]),
            Cmd::AssignRapporteur { commission } => Command::AssignRapporteur {
                user: self.rapporteur.user.unwrap(),
                // One index past the participants names a commission that does not take part.
                commission: self
                    .commissions
                    .get(commission % (self.n() + 1))
                    .copied()
                    .unwrap_or_else(CommissionId::new),
            },
            Cmd::SetTerms { joint, due_in_days } => terms(
                if *joint {
                    ResponseMode::Joint
                } else {
                    ResponseMode::Separate
                },
                due_in_days.map(|days| {
                    let today = self.now().date_naive();
                    if days >= 0 {
                        today + Days::new(days as u64)
                    } else {
                        today - Days::new(days.unsigned_abs() as u64)
                    }
                }),
            ),
            Cmd::Suspend => suspend("Onderzoek gepauzeerd"),
            Cmd::Resume => Command::Resume,
            Cmd::Cancel { blank_reason } => {
                cancel(if *blank_reason { "" } else { "Geen capaciteit" })
            }
            Cmd::Fulfil => {
                let inv = &self.inv;
                let missing = |kind| inv.document(kind).is_none();
                match inv.phase {
                    Phase::Proposal if missing(DocumentKind::Proposal) => {
                        write(DocumentKind::Proposal, "# Voorstel")
                    }
                    Phase::Research if missing(DocumentKind::ResearchReport) => {
                        write(DocumentKind::ResearchReport, "# Rapport")
                    }
                    Phase::Research if missing(DocumentKind::Conclusions) => {
                        write(DocumentKind::Conclusions, "# Conclusies")
                    }
                    Phase::Research if inv.recommendations.is_empty() => {
                        recommendation("Maak een plan.")
                    }
                    Phase::Research if inv.rebuttal_terms.is_none() => {
                        terms(ResponseMode::Separate, None)
                    }
                    _ => approve(),
                }
            }
        }
    }
}

fn who_strategy() -> impl Strategy<Value = Who> {
    prop_oneof![
        12 => (0..4usize).prop_map(Who::Chair),
        1 => Just(Who::DoubleChair),
        1 => Just(Who::OutsiderChair),
        2 => Just(Who::Member),
        2 => Just(Who::Secretary),
        2 => Just(Who::Rapporteur),
        1 => Just(Who::College),
        1 => Just(Who::CivilService),
        1 => Just(Who::Griffier),
        1 => Just(Who::CouncilMember),
        1 => Just(Who::OutsiderCollege),
        1 => Just(Who::Admin),
        1 => Just(Who::Anonymous),
    ]
}

fn cmd_strategy() -> impl Strategy<Value = Cmd> {
    let kind = prop_oneof![
        6 => (0..8usize).prop_map(KindPick::Writable),
        1 => (0..8usize).prop_map(KindPick::Any),
    ];
    let base = prop_oneof![
        3 => Just(BasePick::None),
        3 => Just(BasePick::Latest),
        1 => (-3..3i32).prop_map(BasePick::Stale),
    ];
    let title = prop_oneof![4 => 0..3usize, 1 => 3..5usize];
    prop_oneof![
        10 => any::<bool>().prop_map(|comment| Cmd::Approve { comment }),
        8 => (kind, title, base, 0..3usize).prop_map(|(kind, title, base, text)| Cmd::Submit {
            kind,
            title,
            base,
            text
        }),
        3 => (0..3usize).prop_map(|text| Cmd::AddRecommendation { text }),
        3 => (any::<bool>(), proptest::option::of(-2..30i8))
            .prop_map(|(joint, due_in_days)| Cmd::SetTerms { joint, due_in_days }),
        1 => proptest::bool::weighted(0.2)
            .prop_map(|blank_reason| Cmd::RequestChanges { blank_reason }),
        1 => (0..5usize).prop_map(|commission| Cmd::AssignRapporteur { commission }),
        1 => Just(Cmd::Suspend),
        2 => Just(Cmd::Resume),
        1 => proptest::bool::weighted(0.3).prop_map(|blank_reason| Cmd::Cancel { blank_reason }),
        6 => Just(Cmd::Fulfil),
    ]
}

#[derive(Clone, Debug)]
struct Scenario {
    shape: Vec<usize>,
    shared: bool,
    /// The phase the investigation is driven to before the random steps.
    start: Phase,
    steps: Vec<(Who, Cmd)>,
}

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    (
        proptest::collection::vec(1..=2usize, 1..=4),
        any::<bool>(),
        prop_oneof![
            3 => Just(Phase::Proposal),
            3 => Just(Phase::Research),
            1 => Just(Phase::AdministrativeRebuttal),
            1 => Just(Phase::Epilogue),
            1 => Just(Phase::CouncilSubmission),
            1 => Just(Phase::FollowUp),
        ],
        proptest::collection::vec((who_strategy(), cmd_strategy()), 1..=40),
    )
        .prop_map(|(shape, shared, start, steps)| Scenario {
            shape,
            shared,
            start,
            steps,
        })
}

/// Checks the invariants the contract gives for gate approvals, over the whole value.
fn check_state(inv: &Investigation) -> Result<(), TestCaseError> {
    let fingerprint = inv.gate_fingerprint(inv.phase);
    let mut per_commission: BTreeMap<(CommissionId, Phase), usize> = BTreeMap::new();
    for approval in &inv.approvals {
        prop_assert_eq!(
            approval.phase,
            inv.phase,
            "an approval of another phase stays"
        );
        prop_assert_eq!(
            &approval.fingerprint,
            &fingerprint,
            "an approval with a stale fingerprint stays in approvals"
        );
        prop_assert!(
            inv.commissions.iter().any(|c| c.id == approval.commission),
            "an approval of a commission that does not take part"
        );
        *per_commission
            .entry((approval.commission, approval.phase))
            .or_default() += 1;
    }
    prop_assert!(
        per_commission.values().all(|count| *count == 1),
        "a commission has two approvals of one phase: {:?}",
        inv.approvals
    );
    if inv.phase.is_terminal() {
        prop_assert!(inv.approvals.is_empty());
        prop_assert!(!inv.suspended);
    }
    if inv.suspended {
        prop_assert!(inv.phase.may_suspend());
    }
    for document in &inv.documents {
        let numbers: Vec<i32> = document.versions.iter().map(|v| v.number).collect();
        let expected: Vec<i32> = (1..=document.versions.len() as i32).collect();
        prop_assert_eq!(numbers, expected, "version numbers of {:?}", document.kind);
    }
    let singular: Vec<DocumentKind> = inv
        .documents
        .iter()
        .map(|d| d.kind)
        .filter(|k| k.is_singular())
        .collect();
    let distinct: BTreeSet<DocumentKind> = singular.iter().copied().collect();
    prop_assert_eq!(
        singular.len(),
        distinct.len(),
        "a singular kind exists twice"
    );
    let annexes: Vec<&str> = inv
        .documents
        .iter()
        .filter(|d| d.kind == DocumentKind::Annex)
        .map(|d| d.title.as_str())
        .collect();
    let distinct: BTreeSet<&str> = annexes.iter().copied().collect();
    prop_assert_eq!(annexes.len(), distinct.len(), "two annexes with one title");
    if inv.phase > Phase::Proposal {
        prop_assert!(inv.proposal_gate_passed() || inv.phase == Phase::Cancelled);
    }
    Ok(())
}

/// The commands the contract refuses while suspended ("no gate, document or filing").
fn refused_while_suspended(command: &Command) -> bool {
    matches!(
        command,
        Command::Approve { .. }
            | Command::RequestChanges { .. }
            | Command::SubmitVersion { .. }
            | Command::AddRecommendation { .. }
            | Command::SetRebuttalTerms { .. }
    )
}

/// Checks one step: `before` is the value the command ran against, `world.inv` the value after
/// its changes were applied (unchanged when it was refused).
fn check_step(
    world: &World,
    before: &Investigation,
    who: Who,
    command: &Command,
    result: &Result<Vec<Change>, DomainError>,
    now: DateTime<Utc>,
) -> Result<(), TestCaseError> {
    let after = &world.inv;
    let actor = world.actor(who);
    let relation = before.relation(&actor);
    let action = command.action();

    // The permission table decides first, with exactly its refusal.
    if let Err(refusal) = before.authorize(&actor, action) {
        prop_assert_eq!(result, &Err(refusal));
    }
    // Who may never act.
    match who {
        Who::Anonymous => prop_assert_eq!(result, &Err(DomainError::Unauthenticated)),
        Who::Admin | Who::OutsiderChair | Who::OutsiderCollege if !before.published => {
            prop_assert_eq!(result, &Err(DomainError::NotFound), "{:?}", who);
        }
        Who::Admin | Who::OutsiderChair | Who::OutsiderCollege => {
            // Published: everybody sees it, nobody outside acts on it.
            prop_assert!(result.is_err(), "{:?}", who);
        }
        Who::College | Who::CivilService | Who::Griffier | Who::CouncilMember
            if !before.proposal_gate_passed() =>
        {
            prop_assert_eq!(result, &Err(DomainError::NotFound), "{:?}", who);
        }
        _ => {}
    }
    if result.is_ok() {
        // Every command of the domain is the team's (FACTUAL_RESPONSE needs an open check,
        // which no command opens).
        prop_assert!(relation.is_team(), "{:?} acted: {:?}", who, result);
    }
    if before.suspended && refused_while_suspended(command) {
        prop_assert!(result.is_err(), "accepted while suspended: {:?}", command);
        let own_kind = !matches!(
            action,
            Action::SubmitVersion(DocumentKind::FactualResponse)
                | Action::SubmitVersion(DocumentKind::AdministrativeResponse)
        );
        if relation.has(Capacity::ParticipatingChair) && own_kind {
            prop_assert_eq!(code(result), "CONFLICT");
        }
    }
    if let (Command::Approve { .. }, Ok(())) = (command, before.authorize(&actor, action).map(drop))
    {
        let already = relation
            .chaired_commissions
            .iter()
            .all(|c| !before.missing_approvals().iter().any(|m| m.id == *c));
        if already {
            prop_assert_eq!(code(result), "CONFLICT", "a second approval");
        }
    }

    let Ok(changes) = result else {
        prop_assert_eq!(before, after);
        return Ok(());
    };

    // The phase moves one step forward or to CANCELLED, never skips.
    let advanced: Vec<&Change> = changes
        .iter()
        .filter(|c| matches!(c, Change::PhaseAdvanced { .. }))
        .collect();
    prop_assert!(advanced.len() <= 1);
    if after.phase != before.phase {
        prop_assert!(
            Some(after.phase) == before.phase.next() || after.phase == Phase::Cancelled,
            "{:?} -> {:?}",
            before.phase,
            after.phase
        );
    }
    if after.phase == Phase::Cancelled && before.phase != Phase::Cancelled {
        prop_assert!(
            matches!(command, Command::Cancel { .. }),
            "cancelled by {:?}",
            command
        );
        prop_assert!(advanced.is_empty());
    } else if after.phase != before.phase {
        prop_assert_eq!(
            advanced.as_slice(),
            &[&Change::PhaseAdvanced {
                from: before.phase,
                to: after.phase
            }]
        );
    } else {
        prop_assert!(advanced.is_empty());
    }

    // Only a chair of the approving commission approves, for the current phase.
    for change in changes {
        if let Change::Approved {
            phase,
            commission,
            fingerprint,
            ..
        } = change
        {
            prop_assert!(
                matches!(command, Command::Approve { .. }),
                "approved by {:?}",
                command
            );
            prop_assert!(relation.has(Capacity::ParticipatingChair));
            prop_assert!(
                relation.chaired_commissions.contains(commission),
                "{:?} approved for a commission it does not chair",
                who
            );
            prop_assert_eq!(*phase, before.phase);
            prop_assert_eq!(fingerprint, &before.gate_fingerprint(before.phase));
        }
    }

    // A phase advances only when, after this step's approvals, every commission has a valid
    // approval of the phase, the guard is met and the investigation is not suspended.
    let mut replay = before.clone();
    for change in changes {
        if let Change::PhaseAdvanced { from, .. } = change {
            prop_assert_eq!(*from, before.phase);
            prop_assert!(!before.suspended);
            prop_assert!(before.gate_guard(now).is_empty());
            let fingerprint = replay.gate_fingerprint(*from);
            for commission in &replay.commissions {
                prop_assert!(
                    replay
                        .approvals
                        .iter()
                        .any(|a| a.commission == commission.id
                            && a.phase == *from
                            && a.fingerprint == fingerprint),
                    "the {:?} gate passed without a valid approval of {:?}",
                    from,
                    commission.id
                );
            }
        }
        replay.apply_at(change, now);
    }
    prop_assert_eq!(&replay, after);

    // Content changes void every earlier approval of the gate, with an audited change.
    if after.phase == before.phase
        && after.gate_fingerprint(after.phase) != before.gate_fingerprint(before.phase)
    {
        prop_assert!(after.approvals.is_empty());
        let voided: BTreeSet<_> = changes
            .iter()
            .filter_map(|c| match c {
                Change::ApprovalsVoided { approvals, .. } => Some(approvals.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect();
        let earlier: BTreeSet<_> = before.approvals.iter().map(|a| a.id).collect();
        prop_assert_eq!(voided, earlier);
    }
    if matches!(command, Command::RequestChanges { .. }) {
        prop_assert!(after.approvals.is_empty());
    }

    // What a gate freezes stays frozen.
    if before.proposal_gate_passed() {
        prop_assert_eq!(
            before.frozen.approved_proposal,
            after.frozen.approved_proposal
        );
    } else if after.proposal_gate_passed() {
        let latest = before
            .document(DocumentKind::Proposal)
            .and_then(|d| d.latest())
            .map(|v| v.id);
        prop_assert_eq!(after.frozen.approved_proposal, latest);
        prop_assert_eq!(after.phase, Phase::Research);
    }
    if before.phase == Phase::Research && after.phase == Phase::AdministrativeRebuttal {
        let draft: BTreeSet<VersionId> = [DocumentKind::Conclusions, DocumentKind::ResearchReport]
            .into_iter()
            .filter_map(|k| before.document(k).and_then(|d| d.latest()).map(|v| v.id))
            .collect();
        prop_assert_eq!(draft.len(), 2);
        prop_assert_eq!(&after.frozen.rebuttal_draft, &draft);
    } else {
        prop_assert_eq!(&before.frozen.rebuttal_draft, &after.frozen.rebuttal_draft);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_command_sequences_keep_the_gate_invariants(scenario in scenario_strategy()) {
        let mut world = World::new(&scenario.shape, scenario.shared);
        world.advance_to(scenario.start);
        check_state(&world.inv)?;
        for (who, cmd) in &scenario.steps {
            let before = world.inv.clone();
            let command = world.resolve(cmd);
            let result = world.exec(*who, command.clone());
            check_step(&world, &before, *who, &command, &result, world.now())?;
            check_state(&world.inv)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Gates, guards and approvals
// ---------------------------------------------------------------------------------------------

#[test]
fn the_proposal_guard_says_the_proposal_is_missing() {
    let mut world = World::new(&[1], false);
    let guard = world.inv.gate_guard(world.now());
    assert_eq!(guard, ["a PROPOSAL document"]);
    let error = world.err(Who::Chair(0), approve());
    assert_eq!(error.code(), "CONFLICT");
    assert!(error.to_string().contains("PROPOSAL document"), "{error}");
    assert!(world.inv.approvals.is_empty());
    world.ok(Who::Secretary, write(DocumentKind::Proposal, "# Voorstel"));
    assert!(world.inv.gate_guard(world.now()).is_empty());
}

#[test]
fn the_research_guard_lists_everything_missing() {
    let mut world = World::new(&[1, 1], false);
    world.advance_to(Phase::Research);
    let guard = world.inv.gate_guard(world.now()).join("; ");
    for needed in [
        "RESEARCH_REPORT",
        "CONCLUSIONS",
        "recommendation",
        "rebuttal terms",
    ] {
        assert!(guard.contains(needed), "{needed} missing from: {guard}");
    }
    let error = world.err(Who::Chair(1), approve());
    assert_eq!(error.code(), "CONFLICT");
    for needed in [
        "RESEARCH_REPORT",
        "CONCLUSIONS",
        "recommendation",
        "rebuttal terms",
    ] {
        assert!(error.to_string().contains(needed), "{error}");
    }
    assert!(world.inv.approvals.is_empty());
}

#[test]
fn the_research_guard_shrinks_as_items_are_supplied() {
    let mut world = World::new(&[1, 1], false);
    world.advance_to(Phase::Research);
    let missing = |world: &World| world.inv.gate_guard(world.now()).len();
    assert_eq!(missing(&world), 4);
    world.ok(
        Who::Member,
        write(DocumentKind::ResearchReport, "# Rapport"),
    );
    assert_eq!(missing(&world), 3);
    world.ok(
        Who::Secretary,
        write(DocumentKind::Conclusions, "# Conclusies"),
    );
    assert_eq!(missing(&world), 2);
    world.ok(Who::Member, recommendation("Verbeter de monitoring."));
    assert_eq!(missing(&world), 1);
    world.ok(Who::Chair(1), terms(ResponseMode::Joint, None));
    assert_eq!(missing(&world), 0);
    world.ok(Who::Chair(0), approve());
    let changes = world.ok(Who::Chair(1), approve());
    assert!(changes.contains(&Change::PhaseAdvanced {
        from: Phase::Research,
        to: Phase::AdministrativeRebuttal
    }));
    let draft: BTreeSet<VersionId> = [
        world.latest_version(DocumentKind::ResearchReport),
        world.latest_version(DocumentKind::Conclusions),
    ]
    .into();
    assert_eq!(world.inv.frozen.rebuttal_draft, draft);
    assert!(changes.iter().any(|c| matches!(
        c,
        Change::VersionsFrozen {
            purpose: FreezePurpose::RebuttalDraft,
            ..
        }
    )));
}

#[test]
fn one_chair_alone_does_not_advance_and_the_second_advances_and_freezes() {
    let mut world = World::new(&[1, 1], false);
    world.ok(Who::Member, write(DocumentKind::Proposal, "# Voorstel v1"));
    world.ok(
        Who::Secretary,
        version(DocumentKind::Proposal, None, Some(1), "# Voorstel v2"),
    );
    let approved = world.latest_version(DocumentKind::Proposal);

    let first = world.ok(Who::Chair(0), approve());
    assert!(matches!(
        first.as_slice(),
        [Change::Approved { phase: Phase::Proposal, commission, .. }] if *commission == world.commissions[0]
    ));
    assert_eq!(world.inv.phase, Phase::Proposal);
    assert_eq!(world.inv.approvals.len(), 1);
    assert_eq!(world.inv.missing_approvals().len(), 1);
    assert!(!world.inv.proposal_gate_passed());
    // Before the gate the college does not see the investigation at all.
    assert_eq!(world.err(Who::College, approve()), DomainError::NotFound);

    let second = world.ok(Who::Chair(1), approve());
    assert!(matches!(
        second.as_slice(),
        [
            Change::Approved { commission, .. },
            Change::VersionsFrozen { purpose: FreezePurpose::ApprovedProposal, versions },
            Change::PhaseAdvanced { from: Phase::Proposal, to: Phase::Research },
        ] if *commission == world.commissions[1] && versions == &vec![approved]
    ));
    assert_eq!(world.inv.phase, Phase::Research);
    assert!(world.inv.approvals.is_empty());
    assert_eq!(world.inv.frozen.approved_proposal, Some(approved));
    // The approved proposal can no longer change.
    assert_eq!(
        world
            .err(
                Who::Member,
                version(DocumentKind::Proposal, None, Some(2), "# v3")
            )
            .code(),
        "CONFLICT"
    );
}

#[test]
fn a_chair_of_two_commissions_approves_for_both() {
    let mut world = World::new(&[1, 1, 1], false);
    world.ok(Who::Member, write(DocumentKind::Proposal, "# Voorstel"));
    let changes = world.ok(Who::DoubleChair, approve());
    let approved: BTreeSet<CommissionId> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Approved { commission, .. } => Some(*commission),
            _ => None,
        })
        .collect();
    assert_eq!(
        approved,
        BTreeSet::from([world.commissions[0], world.commissions[1]])
    );
    assert_eq!(world.inv.phase, Phase::Proposal);
    assert_eq!(world.err(Who::Chair(1), approve()).code(), "CONFLICT");
    world.ok(Who::Chair(2), approve());
    assert_eq!(world.inv.phase, Phase::Research);
}

#[test]
fn a_new_proposal_version_voids_an_earlier_approval() {
    let mut world = World::new(&[1, 1], false);
    world.ok(Who::Member, write(DocumentKind::Proposal, "# Voorstel v1"));
    world.ok(Who::Chair(0), approve());
    let approval = world.inv.approvals[0].id;
    let changes = world.ok(
        Who::Secretary,
        version(DocumentKind::Proposal, None, Some(1), "# Voorstel v2"),
    );
    assert!(matches!(
        changes.last(),
        Some(Change::ApprovalsVoided { approvals, reason })
            if approvals == &vec![approval] && reason.contains("PROPOSAL")
    ));
    assert!(world.inv.approvals.is_empty());
    // The second chair's approval alone does not pass the gate: the first must approve again.
    world.ok(Who::Chair(1), approve());
    assert_eq!(world.inv.phase, Phase::Proposal);
    world.ok(Who::Chair(0), approve());
    assert_eq!(world.inv.phase, Phase::Research);
}

#[test]
fn a_change_outside_the_gate_content_keeps_the_approvals() {
    let mut world = World::new(&[1, 1], false);
    world.ok(Who::Member, write(DocumentKind::Proposal, "# Voorstel"));
    world.ok(Who::Chair(0), approve());
    let rapporteur = world.rapporteur.user.unwrap();
    let changes = world.ok(
        Who::Chair(0),
        Command::AssignRapporteur {
            user: rapporteur,
            commission: world.commissions[0],
        },
    );
    assert_eq!(changes.len(), 1);
    assert_eq!(world.inv.approvals.len(), 1);
    // The rapporteur is now part of the team and writes the proposal; that voids.
    let changes = world.ok(
        Who::Rapporteur,
        version(DocumentKind::Proposal, None, Some(1), "# Voorstel herzien"),
    );
    assert!(matches!(
        changes.last(),
        Some(Change::ApprovalsVoided { .. })
    ));
    assert!(world.inv.approvals.is_empty());
}

#[test]
fn research_content_changes_void_research_approvals() {
    let mut world = World::new(&[1, 1], false);
    world.advance_to(Phase::Research);
    world.ok(
        Who::Member,
        write(DocumentKind::ResearchReport, "# Rapport"),
    );
    world.ok(
        Who::Member,
        write(DocumentKind::Conclusions, "# Conclusies"),
    );
    world.ok(Who::Member, recommendation("Eén"));
    world.ok(Who::Chair(0), terms(ResponseMode::Separate, None));
    type Edit = fn(&World) -> Command;
    let edits: [(Who, Edit); 5] = [
        (Who::Secretary, |_| recommendation("Twee")),
        (Who::Chair(1), |w| {
            terms(
                ResponseMode::Joint,
                Some(w.now().date_naive() + Days::new(30)),
            )
        }),
        (Who::Member, |_| {
            version(DocumentKind::Annex, Some("Bijlage A"), None, "# Bijlage")
        }),
        (Who::Secretary, |w| {
            let latest = w
                .inv
                .document(DocumentKind::Conclusions)
                .unwrap()
                .latest()
                .unwrap()
                .number;
            version(DocumentKind::Conclusions, None, Some(latest), "# Nieuw")
        }),
        (Who::Chair(0), |_| {
            version(DocumentKind::ResearchReport, None, None, "# Nieuw rapport")
        }),
    ];
    for (who, edit) in edits {
        world.ok(Who::Chair(0), approve());
        assert_eq!(world.inv.approvals.len(), 1);
        let command = edit(&world);
        let changes = world.ok(who, command);
        assert!(
            matches!(changes.last(), Some(Change::ApprovalsVoided { .. })),
            "{changes:?}"
        );
        assert!(world.inv.approvals.is_empty());
    }
}

#[test]
fn a_stale_base_version_is_a_conflict() {
    let mut world = World::new(&[1], false);
    world.ok(
        Who::Member,
        version(DocumentKind::Proposal, None, Some(0), "# v1"),
    );
    world.ok(
        Who::Member,
        version(DocumentKind::Proposal, None, Some(1), "# v2"),
    );
    let error = world.err(
        Who::Secretary,
        version(DocumentKind::Proposal, None, Some(1), "# v3 op v1"),
    );
    assert_eq!(error.code(), "CONFLICT");
    assert!(error.to_string().contains("version 2"), "{error}");
    assert_eq!(
        world
            .err(
                Who::Secretary,
                version(DocumentKind::Proposal, None, Some(7), "# x")
            )
            .code(),
        "CONFLICT"
    );
    // A first version on base 1 is stale too.
    world.advance_to(Phase::Research);
    assert_eq!(
        world
            .err(
                Who::Secretary,
                version(DocumentKind::ResearchReport, None, Some(1), "# x")
            )
            .code(),
        "CONFLICT"
    );
    world.ok(
        Who::Secretary,
        version(DocumentKind::ResearchReport, None, Some(0), "# x"),
    );
}

#[test]
fn an_annex_needs_a_title() {
    let mut world = World::new(&[1], false);
    world.advance_to(Phase::Research);
    let error = world.err(Who::Member, version(DocumentKind::Annex, None, None, "# B"));
    assert!(
        matches!(&error, DomainError::BadInput { field, .. } if field == "title"),
        "{error:?}"
    );
    assert_eq!(error.code(), "BAD_USER_INPUT");
    let blank = world.err(
        Who::Member,
        version(DocumentKind::Annex, Some("  "), None, "# B"),
    );
    assert_eq!(blank.code(), "BAD_USER_INPUT");
    // Annexes are told apart by title.
    world.ok(
        Who::Member,
        version(DocumentKind::Annex, Some("A"), None, "# A"),
    );
    world.ok(
        Who::Member,
        version(DocumentKind::Annex, Some("B"), None, "# B"),
    );
    world.ok(
        Who::Member,
        version(DocumentKind::Annex, Some("A"), Some(1), "# A2"),
    );
    let annexes: Vec<(&str, usize)> = world
        .inv
        .documents
        .iter()
        .filter(|d| d.kind == DocumentKind::Annex)
        .map(|d| (d.title.as_str(), d.versions.len()))
        .collect();
    assert_eq!(annexes, [("A", 2), ("B", 1)]);
}

#[test]
fn request_changes_voids_every_approval() {
    let mut world = World::new(&[1, 1, 1], false);
    world.ok(Who::Member, write(DocumentKind::Proposal, "# Voorstel"));
    world.ok(Who::Chair(0), approve());
    world.ok(Who::Chair(1), approve());
    let ids: Vec<_> = world.inv.approvals.iter().map(|a| a.id).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        world.err(Who::Member, request_changes("Anders")).code(),
        "FORBIDDEN"
    );
    assert_eq!(
        world.err(Who::Chair(2), request_changes("  ")).code(),
        "BAD_USER_INPUT"
    );
    let changes = world.ok(Who::Chair(2), request_changes("Scherper formuleren"));
    assert!(matches!(
        changes.as_slice(),
        [Change::ApprovalsVoided { approvals, reason }]
            if approvals == &ids && reason.contains("Scherper formuleren")
    ));
    assert!(world.inv.approvals.is_empty());
    assert_eq!(world.inv.phase, Phase::Proposal);
}

#[test]
fn a_second_approval_by_the_same_commission_is_a_conflict() {
    let mut world = World::new(&[1, 1], false);
    world.ok(Who::Member, write(DocumentKind::Proposal, "# Voorstel"));
    world.ok(Who::Chair(0), approve());
    let error = world.err(Who::Chair(0), approve());
    assert_eq!(error.code(), "CONFLICT");
    assert!(error.to_string().contains("already approved"), "{error}");
    assert_eq!(world.inv.approvals.len(), 1);
    // Another chair of the same commission is the same commission.
    let other_chair = user([on_commission(Role::Chair, world.commissions[0])]);
    let result = world.inv.execute(&other_chair, approve(), world.now());
    assert_eq!(code(&result), "CONFLICT");
}

#[test]
fn cancel_is_terminal_and_needs_a_reason() {
    let mut world = World::new(&[1, 1], false);
    world.advance_to(Phase::Research);
    world.ok(
        Who::Member,
        write(DocumentKind::ResearchReport, "# Rapport"),
    );
    assert_eq!(world.err(Who::Member, cancel("Stop")).code(), "FORBIDDEN");
    assert_eq!(
        world.err(Who::Chair(0), cancel(" ")).code(),
        "BAD_USER_INPUT"
    );
    world.ok(Who::Chair(0), suspend("Even wachten"));
    let changes = world.ok(Who::Chair(1), cancel("Geen budget"));
    assert_eq!(
        changes,
        [Change::Cancelled {
            from: Phase::Research,
            reason: "Geen budget".into()
        }]
    );
    assert_eq!(world.inv.phase, Phase::Cancelled);
    assert!(!world.inv.suspended);
    assert_eq!(world.inv.phase.next(), None);
    // No gate left to show, not even to the team.
    assert!(!View::of(&world.inv, &world.member).sees_gate(&world.inv));
    let rapporteur = world.rapporteur.user.unwrap();
    let commission = world.commissions[0];
    let commands = [
        approve(),
        request_changes("x"),
        write(DocumentKind::ResearchReport, "# Na"),
        recommendation("Na"),
        terms(ResponseMode::Separate, None),
        suspend("x"),
        Command::Resume,
        cancel("nogmaals"),
        Command::AssignRapporteur {
            user: rapporteur,
            commission,
        },
    ];
    for command in commands {
        assert_eq!(world.err(Who::Chair(0), command).code(), "CONFLICT");
    }
    assert_eq!(world.inv.phase, Phase::Cancelled);
}

#[test]
fn suspension_refuses_gates_documents_and_recommendations() {
    let mut world = World::new(&[1, 1], false);
    world.advance_to(Phase::Research);
    world.ok(
        Who::Member,
        write(DocumentKind::ResearchReport, "# Rapport"),
    );
    assert_eq!(world.err(Who::Member, suspend("x")).code(), "FORBIDDEN");
    assert_eq!(world.err(Who::Chair(0), Command::Resume).code(), "CONFLICT");
    world.ok(Who::Chair(0), suspend("Verkiezingen"));
    assert!(world.inv.suspended);
    assert_eq!(world.err(Who::Chair(1), suspend("x")).code(), "CONFLICT");
    for (who, command) in [
        (Who::Chair(0), approve()),
        (Who::Member, write(DocumentKind::Conclusions, "# C")),
        (Who::Secretary, recommendation("R")),
        (Who::Chair(1), terms(ResponseMode::Separate, None)),
        (Who::Chair(1), request_changes("x")),
    ] {
        let error = world.err(who, command);
        assert_eq!(error.code(), "CONFLICT");
        assert!(error.to_string().contains("suspended"), "{error}");
    }
    // Not refused while suspended: assigning a rapporteur.
    let rapporteur = world.rapporteur.user.unwrap();
    let commission = world.commissions[1];
    world.ok(
        Who::Chair(1),
        Command::AssignRapporteur {
            user: rapporteur,
            commission,
        },
    );
    // Either chair resumes.
    world.ok(Who::Chair(1), Command::Resume);
    assert!(!world.inv.suspended);
    world.ok(Who::Member, write(DocumentKind::Conclusions, "# C"));
}

#[test]
fn a_non_participating_chair_never_finds_the_investigation() {
    let mut world = World::new(&[1, 1], true);
    let commands = || {
        vec![
            approve(),
            request_changes("x"),
            write(DocumentKind::Proposal, "# x"),
            suspend("x"),
            cancel("x"),
        ]
    };
    for command in commands() {
        assert_eq!(
            world.err(Who::OutsiderChair, command),
            DomainError::NotFound
        );
    }
    world.advance_to(Phase::Research);
    for command in commands() {
        assert_eq!(
            world.err(Who::OutsiderChair, command),
            DomainError::NotFound
        );
    }
    // Anonymous callers are told to log in, whatever the state.
    assert_eq!(
        world.err(Who::Anonymous, approve()),
        DomainError::Unauthenticated
    );
}

#[test]
fn rapporteurs_are_assigned_by_their_own_commissions_chair() {
    let mut world = World::new(&[1, 1], false);
    let rapporteur = world.rapporteur.user.unwrap();
    let assign = |commission| Command::AssignRapporteur {
        user: rapporteur,
        commission,
    };
    // Before assignment the rapporteur does not see the investigation.
    assert_eq!(
        world.err(Who::Rapporteur, write(DocumentKind::Proposal, "# x")),
        DomainError::NotFound
    );
    let other = world.commissions[1];
    assert_eq!(world.err(Who::Chair(0), assign(other)).code(), "FORBIDDEN");
    assert_eq!(
        world.err(Who::Chair(0), assign(CommissionId::new())).code(),
        "BAD_USER_INPUT"
    );
    let own = world.commissions[0];
    world.ok(Who::Chair(0), assign(own));
    assert_eq!(world.err(Who::Chair(0), assign(own)).code(), "CONFLICT");
    world.ok(Who::Rapporteur, write(DocumentKind::Proposal, "# Voorstel"));
    // A rapporteur writes but does not approve.
    assert_eq!(world.err(Who::Rapporteur, approve()).code(), "FORBIDDEN");
}

#[test]
fn rebuttal_terms_are_validated() {
    let mut world = World::new(&[1], false);
    world.advance_to(Phase::Research);
    let yesterday = world.now().date_naive() - Days::new(1);
    assert_eq!(
        world
            .err(
                Who::Chair(0),
                terms(ResponseMode::Separate, Some(yesterday))
            )
            .code(),
        "BAD_USER_INPUT"
    );
    // One concerned college cannot respond jointly.
    assert_eq!(
        world
            .err(Who::Chair(0), terms(ResponseMode::Joint, None))
            .code(),
        "BAD_USER_INPUT"
    );
    world.ok(Who::Chair(0), terms(ResponseMode::Separate, None));
    assert_eq!(
        world
            .err(Who::Chair(0), terms(ResponseMode::Separate, None))
            .code(),
        "CONFLICT"
    );
    assert_eq!(
        world
            .err(Who::Member, terms(ResponseMode::Separate, None))
            .code(),
        "FORBIDDEN"
    );
}

#[test]
fn direct_writes_of_administrative_responses_and_factual_responses_are_refused() {
    let mut world = World::new(&[1, 1], false);
    world.advance_to(Phase::Research);
    assert_eq!(
        world
            .err(
                Who::Chair(0),
                write(DocumentKind::AdministrativeResponse, "# x")
            )
            .code(),
        "FORBIDDEN"
    );
    assert_eq!(
        world
            .err(Who::Member, write(DocumentKind::FactualResponse, "# x"))
            .code(),
        "FORBIDDEN"
    );
    // The civil service contact may write one, but only during an open factual check.
    let error = world.err(
        Who::CivilService,
        write(DocumentKind::FactualResponse, "# x"),
    );
    assert_eq!(error.code(), "CONFLICT");
    assert!(error.to_string().contains("factual check"), "{error}");
    // An author outside the kind's phases gets CONFLICT, a non-author FORBIDDEN.
    assert_eq!(
        world
            .err(Who::Member, write(DocumentKind::Epilogue, "# x"))
            .code(),
        "CONFLICT"
    );
    assert_eq!(
        world
            .err(Who::College, write(DocumentKind::Epilogue, "# x"))
            .code(),
        "FORBIDDEN"
    );
}

#[test]
fn the_epilogue_must_be_newer_than_every_counted_response() {
    let mut world = World::new(&[1, 1], false);
    world.advance_to(Phase::Epilogue);
    assert!(
        world.inv.gate_guard(world.now()).is_empty(),
        "the nawoord is optional"
    );
    world.ok(Who::Member, write(DocumentKind::Epilogue, "# Nawoord"));
    assert!(world.inv.gate_guard(world.now()).is_empty());
    // A response filed after the nawoord (as the store's fileResponse would record it).
    let college = world.served[0][0];
    world.clock += 60;
    world.inv.responses.push(ResponseState {
        id: ResponseId::new(),
        colleges: BTreeSet::from([college]),
        signed_by: BTreeSet::from([college]),
        version: VersionId::new(),
        document: DocumentId::new(),
        filed_at: world.now(),
        late: false,
        positions: Vec::new(),
    });
    let guard = world.inv.gate_guard(world.now());
    assert_eq!(guard.len(), 1);
    assert!(guard[0].contains("EPILOGUE"), "{guard:?}");
    assert_eq!(world.err(Who::Chair(0), approve()).code(), "CONFLICT");
    world.ok(
        Who::Member,
        version(
            DocumentKind::Epilogue,
            None,
            Some(1),
            "# Nawoord op de reactie",
        ),
    );
    assert!(world.inv.gate_guard(world.now()).is_empty());
    world.approve_all();
    assert_eq!(world.inv.phase, Phase::CouncilSubmission);
}

#[test]
fn the_gate_content_follows_the_contract_table() {
    let mut world = World::new(&[1, 1], false);
    world.advance_to(Phase::Epilogue);
    let before = world.inv.gate_fingerprint(Phase::Epilogue);
    let submission = world.inv.gate_fingerprint(Phase::CouncilSubmission);
    world.ok(Who::Member, write(DocumentKind::Epilogue, "# Nawoord"));
    assert_ne!(world.inv.gate_fingerprint(Phase::Epilogue), before);
    assert_eq!(
        world.inv.gate_fingerprint(Phase::CouncilSubmission),
        submission,
        "the nawoord is no content of the COUNCIL_SUBMISSION gate"
    );
    world.ok(Who::Member, write(DocumentKind::CoverLetter, "# Brief"));
    assert_ne!(
        world.inv.gate_fingerprint(Phase::CouncilSubmission),
        submission
    );
    // FOLLOW_UP has no content; its fingerprint only depends on the phase.
    let follow_up = world.inv.gate_fingerprint(Phase::FollowUp);
    world.ok(Who::Member, write(DocumentKind::Annex, "# Bijlage"));
    assert_eq!(world.inv.gate_fingerprint(Phase::FollowUp), follow_up);
    assert!(world.inv.gate_content(Phase::FollowUp).is_empty());
}

// ---------------------------------------------------------------------------------------------
// 5. Visibility
// ---------------------------------------------------------------------------------------------

fn sees(world: &World, who: Who, version: VersionId) -> bool {
    let view = View::of(&world.inv, &world.actor(who));
    world
        .inv
        .documents
        .iter()
        .find(|d| d.versions.iter().any(|v| v.id == version))
        .is_some_and(|document| view.sees_version(&world.inv, document, version))
}

fn every_version(inv: &Investigation) -> Vec<VersionId> {
    inv.documents
        .iter()
        .flat_map(|d| d.versions.iter().map(|v| v.id))
        .collect()
}

#[test]
fn a_college_contact_sees_the_approved_proposal_not_the_research_drafts() {
    let mut world = World::new(&[1, 1], true);
    world.ok(Who::Member, write(DocumentKind::Proposal, "# Voorstel v1"));
    let first_proposal = world.latest_version(DocumentKind::Proposal);
    world.ok(
        Who::Member,
        version(DocumentKind::Proposal, None, Some(1), "# Voorstel v2"),
    );
    let approved = world.latest_version(DocumentKind::Proposal);
    assert!(!world.inv.visible_to(&world.college));
    assert!(!sees(&world, Who::College, approved));

    world.advance_to(Phase::Research);
    assert!(world.inv.visible_to(&world.college));
    assert!(sees(&world, Who::College, approved));
    assert!(!sees(&world, Who::College, first_proposal));
    world.ok(
        Who::Member,
        write(DocumentKind::ResearchReport, "# Concept"),
    );
    world.ok(Who::Member, write(DocumentKind::Conclusions, "# Concept"));
    world.ok(
        Who::Member,
        version(DocumentKind::ResearchReport, None, Some(1), "# Concept 2"),
    );
    let first_report = world
        .inv
        .document(DocumentKind::ResearchReport)
        .unwrap()
        .versions[0]
        .id;
    let report = world.latest_version(DocumentKind::ResearchReport);
    let conclusions = world.latest_version(DocumentKind::Conclusions);
    for draft in [first_report, report, conclusions] {
        assert!(!sees(&world, Who::College, draft));
        assert!(sees(&world, Who::Member, draft));
    }
    let view = View::of(&world.inv, &world.college);
    assert!(!view.sees_internals());
    assert!(!view.sees_gate(&world.inv));
    assert!(!view.sees_audit_trail());
    assert!(!view.sees_recommendations(&world.inv));
    assert!(View::of(&world.inv, &world.member).sees_gate(&world.inv));

    world.advance_to(Phase::AdministrativeRebuttal);
    assert!(sees(&world, Who::College, report));
    assert!(sees(&world, Who::College, conclusions));
    assert!(
        !sees(&world, Who::College, first_report),
        "only the frozen version"
    );
    assert!(sees(&world, Who::College, approved));
    assert!(View::of(&world.inv, &world.college).sees_recommendations(&world.inv));

    world.advance_to(Phase::Epilogue);
    world.ok(Who::Member, write(DocumentKind::Epilogue, "# Nawoord"));
    world.ok(Who::Member, write(DocumentKind::Annex, "# Bijlage"));
    assert!(!sees(
        &world,
        Who::College,
        world.latest_version(DocumentKind::Epilogue)
    ));
    assert!(!sees(
        &world,
        Who::College,
        world.latest_version(DocumentKind::Annex)
    ));
    assert!(sees(&world, Who::College, report));

    // A contact of a college no participating commission serves sees nothing.
    assert!(!world.inv.visible_to(&world.outsider_college));
    for version in every_version(&world.inv) {
        assert!(!sees(&world, Who::OutsiderCollege, version));
    }
}

#[test]
fn a_college_contact_sees_its_own_colleges_responses_only() {
    let mut world = World::new(&[1, 1], false);
    world.advance_to(Phase::AdministrativeRebuttal);
    let own = world.served[0][0];
    let other = world.served[1][0];
    let response = |college| ResponseState {
        id: ResponseId::new(),
        colleges: BTreeSet::from([college]),
        signed_by: BTreeSet::from([college]),
        version: VersionId::new(),
        document: DocumentId::new(),
        filed_at: world.now(),
        late: false,
        positions: Vec::new(),
    };
    let mine = response(own);
    let theirs = response(other);
    let view = View::of(&world.inv, &world.college);
    assert!(view.sees_response(&world.inv, &mine));
    assert!(!view.sees_response(&world.inv, &theirs));
    assert!(view.sees_college_round(own));
    assert!(!view.sees_college_round(other));
    let council = View::of(&world.inv, &world.griffier);
    assert!(!council.sees_response(&world.inv, &mine));
    let team = View::of(&world.inv, &world.member);
    assert!(team.sees_response(&world.inv, &theirs));
    assert!(team.sees_college_round(other));
}

#[test]
fn a_council_member_sees_the_approved_proposal_and_no_later_drafts() {
    let mut world = World::new(&[2], false);
    world.council_member = user([in_municipality(Role::CouncilMember, world.served[0][1])]);
    world.advance_to(Phase::Research);
    let approved = world.latest_version(DocumentKind::Proposal);
    assert!(world.inv.visible_to(&world.council_member));
    assert!(sees(&world, Who::CouncilMember, approved));
    assert!(sees(&world, Who::Griffier, approved));
    assert!(sees(&world, Who::CivilService, approved));
    world.advance_to(Phase::Epilogue);
    world.ok(Who::Member, write(DocumentKind::Epilogue, "# Nawoord"));
    world.advance_to(Phase::CouncilSubmission);
    for version in every_version(&world.inv) {
        let expected = version == approved;
        assert_eq!(sees(&world, Who::CouncilMember, version), expected);
        assert_eq!(sees(&world, Who::Griffier, version), expected);
    }
    // From submission on, the bundle too, and still no draft outside it.
    world.advance_to(Phase::FollowUp);
    assert!(world.inv.published);
    for version in every_version(&world.inv) {
        let expected = version == approved || world.inv.frozen.bundle.contains(&version);
        assert_eq!(sees(&world, Who::CouncilMember, version), expected);
        assert_eq!(sees(&world, Who::Griffier, version), expected);
    }
    let view = View::of(&world.inv, &world.council_member);
    assert!(view.investigation);
    assert!(!view.everything);
    assert!(!view.sees_internals());
}

#[test]
fn the_civil_service_sees_the_factual_check_base() {
    let mut world = World::new(&[1], false);
    world.advance_to(Phase::Research);
    world.ok(
        Who::Member,
        write(DocumentKind::ResearchReport, "# Rapport"),
    );
    let base = world.latest_version(DocumentKind::ResearchReport);
    assert!(!sees(&world, Who::CivilService, base));
    world
        .inv
        .frozen
        .insert(FreezePurpose::FactualCheckBase, &[base]);
    assert!(sees(&world, Who::CivilService, base));
    assert!(!sees(&world, Who::College, base));
    assert!(!sees(&world, Who::CouncilMember, base));
}

#[test]
fn a_title_set_by_a_version_shows_only_with_that_version() {
    let mut world = World::new(&[1], false);
    world.advance_to(Phase::Research);
    world.ok(
        Who::Member,
        version(
            DocumentKind::ResearchReport,
            Some("Concept"),
            None,
            "# Rapport",
        ),
    );
    let base = world.latest_version(DocumentKind::ResearchReport);
    world
        .inv
        .frozen
        .insert(FreezePurpose::FactualCheckBase, &[base]);
    let title_seen = |world: &World, who: Who| {
        let view = View::of(&world.inv, &world.actor(who));
        let document = world.inv.document(DocumentKind::ResearchReport).unwrap();
        view.sees_title(&world.inv, document)
    };
    assert!(title_seen(&world, Who::CivilService));
    // A revision under a new title: the civil service still sees the base, not the new title.
    world.ok(
        Who::Member,
        version(
            DocumentKind::ResearchReport,
            Some("Definitief: de raad heeft geen grip"),
            Some(1),
            "# Rapport 2",
        ),
    );
    assert!(sees(&world, Who::CivilService, base));
    assert!(!title_seen(&world, Who::CivilService));
    assert!(title_seen(&world, Who::Member));
}

#[test]
fn an_admin_sees_nothing() {
    let mut world = World::new(&[1, 2], true);
    let admin = world.admin.clone();
    for target in [
        Phase::Proposal,
        Phase::Research,
        Phase::AdministrativeRebuttal,
        Phase::Epilogue,
        Phase::CouncilSubmission,
    ] {
        world.advance_to(target);
        if let Some(kind) = own_kinds_writable_in(target).first() {
            world.ok(Who::Secretary, write(*kind, "# Inhoud"));
        }
        assert!(!world.inv.visible_to(&admin), "{target:?}");
        assert!(!visibility::listing_filter(&admin).admits(&world.inv));
        let view = View::of(&world.inv, &admin);
        assert!(!view.investigation && !view.everything);
        assert!(!view.sees_audit_trail());
        assert!(!view.sees_recommendations(&world.inv));
        for version in every_version(&world.inv) {
            assert!(!sees(&world, Who::Admin, version));
        }
        // ... but verifies the audit chain.
        assert!(
            world
                .inv
                .authorize(&admin, Action::VerifyAuditTrail)
                .is_ok()
        );
        assert_eq!(
            world
                .inv
                .authorize(&admin, Action::ViewAuditTrail)
                .unwrap_err(),
            DomainError::NotFound
        );
    }
}

#[test]
fn published_investigations_are_visible_to_everyone() {
    let mut world = World::new(&[1], false);
    world.advance_to(Phase::CouncilSubmission);
    world.inv.published = true;
    for actor in [
        Actor::anonymous(),
        world.admin.clone(),
        world.outsider_chair.clone(),
    ] {
        assert!(world.inv.visible_to(&actor));
        assert!(visibility::listing_filter(&actor).admits(&world.inv));
        let view = View::of(&world.inv, &actor);
        assert!(!view.everything);
        // No bundle was frozen: no draft becomes public.
        for version in every_version(&world.inv) {
            let document = world
                .inv
                .documents
                .iter()
                .find(|d| d.versions.iter().any(|v| v.id == version))
                .unwrap();
            assert!(!view.sees_version(&world.inv, document, version));
        }
    }
}

/// A random investigation and a random caller, for the listing property.
#[derive(Clone, Debug)]
struct VisibilityCase {
    shape: Vec<usize>,
    phase: Phase,
    proposal_gate_passed: bool,
    published: bool,
    authenticated: bool,
    /// (role index into `Role::ALL`, target index; one past the parties names an outsider).
    grants: Vec<(usize, usize)>,
    self_rapporteur: bool,
    other_rapporteurs: usize,
}

fn visibility_case() -> impl Strategy<Value = VisibilityCase> {
    (
        proptest::collection::vec(1..=2usize, 1..=3),
        proptest::sample::select(Phase::ALL.to_vec()),
        any::<bool>(),
        proptest::bool::weighted(0.25),
        proptest::bool::weighted(0.9),
        proptest::collection::vec((0..8usize, 0..8usize), 0..4),
        proptest::bool::weighted(0.2),
        0..3usize,
    )
        .prop_map(
            |(
                shape,
                phase,
                proposal_gate_passed,
                published,
                authenticated,
                grants,
                self_rapporteur,
                other_rapporteurs,
            )| VisibilityCase {
                shape,
                phase,
                proposal_gate_passed,
                published,
                authenticated,
                grants,
                self_rapporteur,
                other_rapporteurs,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_listing_filter_admits_exactly_the_visible_investigations(case in visibility_case()) {
        let mut world = World::new(&case.shape, false);
        let inv = &mut world.inv;
        inv.phase = case.phase;
        inv.published = case.published;
        if case.proposal_gate_passed {
            inv.frozen.insert(FreezePurpose::ApprovedProposal, &[VersionId::new()]);
        }
        let me = UserId::new();
        let commissions: Vec<CommissionId> = world.commissions.clone();
        let municipalities: Vec<MunicipalityId> =
            world.served.iter().flatten().copied().collect();
        if case.self_rapporteur {
            inv.rapporteurs.insert(investigation::Rapporteur {
                user: me,
                commission: commissions[0],
            });
        }
        for index in 0..case.other_rapporteurs {
            inv.rapporteurs.insert(investigation::Rapporteur {
                user: UserId::new(),
                commission: commissions[index % commissions.len()],
            });
        }
        let mut team = false;
        let mut concerned = false;
        let mut grants = Vec::new();
        for (role, target) in &case.grants {
            let role = Role::ALL[*role];
            let scope = match role {
                Role::Admin => Scope::Global,
                Role::Chair | Role::Member | Role::Secretary => {
                    match commissions.get(*target % (commissions.len() + 1)) {
                        Some(id) => {
                            team = true;
                            Scope::Commission(*id)
                        }
                        None => Scope::Commission(CommissionId::new()),
                    }
                }
                _ => match municipalities.get(*target % (municipalities.len() + 1)) {
                    Some(id) => {
                        concerned = true;
                        Scope::Municipality(*id)
                    }
                    None => Scope::Municipality(MunicipalityId::new()),
                },
            };
            grants.push(grant(role, scope));
        }
        team |= case.self_rapporteur;
        let actor = if case.authenticated {
            Actor::user(me, grants)
        } else {
            // Grants without a session count for nothing.
            Actor { user: None, grants: grants.into_iter().collect() }
        };
        let inv = &world.inv;
        let expected = if case.authenticated {
            team || (case.proposal_gate_passed && concerned) || case.published
        } else {
            case.published
        };
        let visible = inv.visible_to(&actor);
        prop_assert_eq!(visible, expected, "the contract's visibility table");
        prop_assert_eq!(visibility::listing_filter(&actor).admits(inv), visible);
        let view = View::of(inv, &actor);
        prop_assert_eq!(view.investigation, visible);
        prop_assert_eq!(view.everything, case.authenticated && team);
        if !visible {
            let code = code(&inv.authorize(&actor, Action::ViewAuditTrail));
            prop_assert!(code == "NOT_FOUND" || code == "UNAUTHENTICATED");
        }
    }
}

#[test]
fn a_rebuttal_due_date_that_has_passed_blocks_the_research_gate() {
    let mut world = World::new(&[1, 1], false);
    world.advance_to(Phase::Research);
    for kind in [DocumentKind::ResearchReport, DocumentKind::Conclusions] {
        world.ok(Who::Secretary, write(kind, "# Concept"));
    }
    world.ok(Who::Member, recommendation("Meet de wachttijden."));
    let due = world.now().date_naive() + chrono::Days::new(30);
    world.ok(Who::Chair(0), terms(ResponseMode::Joint, Some(due)));
    assert!(world.inv.gate_guard(world.now()).is_empty());
    world.clock += 60 * 86_400;
    let guard = world.inv.gate_guard(world.now());
    assert_eq!(guard.len(), 1, "{guard:?}");
    assert!(guard[0].contains("due date"), "{guard:?}");
    assert_eq!(world.err(Who::Chair(0), approve()).code(), "CONFLICT");
}

#[test]
fn an_approval_meant_for_an_earlier_phase_is_a_conflict() {
    let mut world = World::new(&[1, 1], false);
    world.advance_to(Phase::Research);
    let stale = Command::Approve {
        comment: None,
        phase: Some(Phase::Proposal),
    };
    let error = world.err(Who::Chair(0), stale);
    assert_eq!(error.code(), "CONFLICT");
    assert!(error.to_string().contains("RESEARCH"), "{error}");
    assert!(world.inv.approvals.is_empty());
}

//! Unit and property tests of the factual check (ambtelijk wederhoor) and the administrative
//! rebuttal (bestuurlijk wederhoor): deadlines, responses (JOINT and SEPARATE), co-signing,
//! extensions, the scheduler's `tick`, suspension and cancellation.
//!
//! Pure domain, no IO. The expectations come from the behaviour contract
//! (`shared/contract/README.md`, sections "Rebuttal round", "Deadlines", "Who sees what" and
//! "Manual clock") and from real calendar dates, never from the crate's own arithmetic: due
//! instants are written out as RFC 3339 text.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use proptest::prelude::*;
use rkflow_domain::content::markdown;
use rkflow_domain::investigation::{
    self, FreezePurpose, NewVersion, Participant, Proposal, RebuttalTerms,
};
use rkflow_domain::rebuttal::{
    CollegePosition, DeadlineKind, DeadlineState, DeadlineStatus, NewResponse, TermPolicy,
};
use rkflow_domain::{
    Actor, Change, Command, CommissionId, DocumentId, DocumentKind, DomainError, ExtensionId,
    Grant, Investigation, InvestigationId, MunicipalityId, Phase, RecommendationAddressee,
    RecommendationId, ResponseId, ResponseMode, Role, Scope, UserId, VersionId,
};
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// An instant from RFC 3339 text with its offset, e.g. `2019-10-24T10:00:00+02:00`.
fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|_| panic!("{text} is RFC 3339"))
        .with_timezone(&Utc)
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("YYYY-MM-DD")
}

/// The reminder offsets of the contract's defaults: 7 days and 1 day before.
fn offsets() -> Vec<Duration> {
    vec![Duration::days(7), Duration::days(1)]
}

const WEEK: i64 = 7 * 86_400;
const DAY: i64 = 86_400;

// ---------------------------------------------------------------------------------------------
// A joint Bloemendaal (b) + Heemstede (h) investigation and its people
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum P {
    ChairB,
    ChairH,
    /// CHAIR of both participating commissions.
    DoubleChair,
    /// CHAIR of a commission that does not participate.
    ChairX,
    MemberB,
    SecretaryH,
    CollegeB,
    CollegeH,
    /// COLLEGE_CONTACT of a municipality that is not concerned.
    CollegeX,
    CivilB,
    CivilH,
}

struct World {
    inv: Investigation,
    now: DateTime<Utc>,
    b: MunicipalityId,
    h: MunicipalityId,
    people: BTreeMap<&'static str, Actor>,
    /// Every change accepted so far, with the instant it was made.
    history: Vec<(DateTime<Utc>, Change)>,
}

fn grant(role: Role, scope: Scope) -> Grant {
    Grant::new(role, scope).expect("the role fits the scope")
}

fn actor(grants: impl IntoIterator<Item = Grant>) -> Actor {
    Actor::user(UserId::new(), grants)
}

fn name(p: P) -> &'static str {
    match p {
        P::ChairB => "chair_b",
        P::ChairH => "chair_h",
        P::DoubleChair => "double_chair",
        P::ChairX => "chair_x",
        P::MemberB => "member_b",
        P::SecretaryH => "secretary_h",
        P::CollegeB => "college_b",
        P::CollegeH => "college_h",
        P::CollegeX => "college_x",
        P::CivilB => "civil_b",
        P::CivilH => "civil_h",
    }
}

impl World {
    /// A joint investigation of b and h with these commission policies, proposed at `start`
    /// and past its PROPOSAL gate (so in RESEARCH).
    fn new(policy_b: TermPolicy, policy_h: TermPolicy, start: DateTime<Utc>) -> World {
        let (cb, ch, cx) = (
            CommissionId::new(),
            CommissionId::new(),
            CommissionId::new(),
        );
        let (b, h, x) = (
            MunicipalityId::new(),
            MunicipalityId::new(),
            MunicipalityId::new(),
        );
        let commission = |role, c| grant(role, Scope::Commission(c));
        let municipality = |role, m| grant(role, Scope::Municipality(m));
        let people: BTreeMap<&'static str, Actor> = [
            (P::ChairB, actor([commission(Role::Chair, cb)])),
            (P::ChairH, actor([commission(Role::Chair, ch)])),
            (
                P::DoubleChair,
                actor([commission(Role::Chair, cb), commission(Role::Chair, ch)]),
            ),
            (P::ChairX, actor([commission(Role::Chair, cx)])),
            (P::MemberB, actor([commission(Role::Member, cb)])),
            (P::SecretaryH, actor([commission(Role::Secretary, ch)])),
            (P::CollegeB, actor([municipality(Role::CollegeContact, b)])),
            (P::CollegeH, actor([municipality(Role::CollegeContact, h)])),
            (P::CollegeX, actor([municipality(Role::CollegeContact, x)])),
            (
                P::CivilB,
                actor([municipality(Role::CivilServiceContact, b)]),
            ),
            (
                P::CivilH,
                actor([municipality(Role::CivilServiceContact, h)]),
            ),
        ]
        .into_iter()
        .map(|(p, a)| (name(p), a))
        .collect();
        let (mut inv, _) = investigation::propose(
            &people["member_b"],
            InvestigationId::new(),
            Proposal {
                title: "Grip op het sociaal domein".into(),
                commissions: vec![
                    Participant {
                        id: cb,
                        name: "Rekenkamercommissie Bloemendaal".into(),
                        municipalities: BTreeSet::from([b]),
                    },
                    Participant {
                        id: ch,
                        name: "Rekenkamercommissie Heemstede".into(),
                        municipalities: BTreeSet::from([h]),
                    },
                ],
                research_questions: vec!["Heeft de raad grip?".into()],
                scope_start: None,
                scope_end: None,
            },
        )
        .expect("a member of a listed commission proposes");
        // The store fills the policies from the commissions' rows.
        inv.policies = BTreeMap::from([(cb, policy_b), (ch, policy_h)]);
        let mut world = World {
            inv,
            now: start,
            b,
            h,
            people,
            history: Vec::new(),
        };
        world.ok(P::MemberB, write(DocumentKind::Proposal, "# Voorstel"));
        world.ok(P::ChairB, approve());
        world.ok(P::ChairH, approve());
        assert_eq!(world.inv.phase, Phase::Research);
        world
    }

    /// Both commissions with the default policy (21 days for both rounds).
    fn defaults(start: DateTime<Utc>) -> World {
        World::new(TermPolicy::default(), TermPolicy::default(), start)
    }

    fn actor(&self, p: P) -> Actor {
        self.people[name(p)].clone()
    }

    /// Runs a command at the current instant; applies the changes when accepted.
    fn exec(&mut self, p: P, command: Command) -> Result<Vec<Change>, DomainError> {
        let actor = self.actor(p);
        let result = self.inv.execute(&actor, command, self.now);
        if let Ok(changes) = &result {
            self.apply(changes);
        }
        result
    }

    fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            self.inv.apply_at(change, self.now);
            self.history.push((self.now, change.clone()));
        }
    }

    fn ok(&mut self, p: P, command: Command) -> Vec<Change> {
        let shown = format!("{command:?}");
        self.exec(p, command)
            .unwrap_or_else(|e| panic!("{p:?} {shown} was refused: {e:?}"))
    }

    fn err(&mut self, p: P, command: Command) -> DomainError {
        let shown = format!("{command:?}");
        match self.exec(p, command) {
            Ok(changes) => panic!("{p:?} {shown} was accepted: {changes:?}"),
            Err(error) => error,
        }
    }

    /// The scheduler's pass at the current instant, applied.
    fn tick(&mut self) -> Vec<Change> {
        let changes = self.inv.tick(self.now, &offsets());
        self.apply(&changes);
        changes
    }

    fn at(&mut self, text: &str) {
        let to = t(text);
        assert!(to >= self.now, "the test clock moves forward only");
        self.now = to;
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Writes what the RESEARCH gate needs: report, conclusions, a recommendation, terms.
    fn research_ready(&mut self, mode: ResponseMode, due_date: Option<NaiveDate>) {
        if self.inv.document(DocumentKind::ResearchReport).is_none() {
            self.ok(
                P::SecretaryH,
                write(DocumentKind::ResearchReport, "# Rapport"),
            );
        }
        self.ok(P::MemberB, write(DocumentKind::Conclusions, "# Conclusies"));
        self.ok(P::MemberB, recommendation("Stel meetbare doelen."));
        self.ok(P::ChairB, terms(mode, due_date));
    }

    /// Both chairs approve the RESEARCH gate; the rebuttal round opens.
    fn pass_research(&mut self) -> Vec<Change> {
        let mut changes = self.ok(P::ChairB, approve());
        changes.extend(self.ok(P::ChairH, approve()));
        assert_eq!(self.inv.phase, Phase::AdministrativeRebuttal);
        changes
    }

    /// A world in ADMINISTRATIVE_REBUTTAL, the RESEARCH gate passed at `sent`.
    fn in_rebuttal(mode: ResponseMode, due_date: Option<NaiveDate>, sent: &str) -> World {
        let mut world = World::defaults(t("2019-09-02T10:00:00+02:00"));
        world.research_ready(mode, due_date);
        world.at(sent);
        world.pass_research();
        world
    }

    fn deadline(&self, kind: DeadlineKind, m: MunicipalityId) -> &DeadlineState {
        let found: Vec<&DeadlineState> = self
            .inv
            .deadlines
            .iter()
            .filter(|d| d.kind == kind && d.municipality == m)
            .collect();
        assert_eq!(found.len(), 1, "one {kind:?} deadline per municipality");
        found[0]
    }

    fn rebuttal(&self, m: MunicipalityId) -> &DeadlineState {
        self.deadline(DeadlineKind::AdministrativeResponse, m)
    }

    fn factual(&self, m: MunicipalityId) -> &DeadlineState {
        self.deadline(DeadlineKind::FactualCheck, m)
    }

    fn recommendation(&self) -> RecommendationId {
        self.inv.recommendations[0].id
    }

    fn latest(&self, kind: DocumentKind) -> VersionId {
        self.inv
            .document(kind)
            .and_then(|d| d.latest())
            .map(|v| v.id)
            .unwrap_or_else(|| panic!("no {kind:?} version"))
    }

    /// Files a response for `colleges` as `p`; its id with the outcome.
    fn file(
        &mut self,
        p: P,
        colleges: &[MunicipalityId],
        positions: Vec<(RecommendationId, CollegePosition)>,
    ) -> (ResponseId, Result<Vec<Change>, DomainError>) {
        let response = ResponseId::new();
        let command = Command::FileResponse(NewResponse {
            colleges: colleges.iter().copied().collect(),
            content: markdown("# Bestuurlijke reactie").expect("markdown"),
            positions,
            response,
            document: DocumentId::new(),
            version: VersionId::new(),
        });
        (response, self.exec(p, command))
    }

    fn file_ok(&mut self, p: P, colleges: &[MunicipalityId]) -> (ResponseId, Vec<Change>) {
        let (id, result) = self.file(p, colleges, Vec::new());
        (
            id,
            result.unwrap_or_else(|e| panic!("{p:?} filing was refused: {e:?}")),
        )
    }

    fn request_extension(
        &mut self,
        p: P,
        college: MunicipalityId,
        proposed: &str,
    ) -> (ExtensionId, Result<Vec<Change>, DomainError>) {
        let id = ExtensionId::new();
        let command = Command::RequestExtension {
            id,
            college,
            proposed_due_date: day(proposed),
            reason: "De raad vergadert pas op 20 november".into(),
        };
        (id, self.exec(p, command))
    }

    fn counted_for(&self, college: MunicipalityId) -> Option<ResponseId> {
        self.inv.counted_by_college().get(&college).map(|r| r.id)
    }

    /// How many times the history closed this deadline.
    fn closings(&self, deadline: rkflow_domain::DeadlineId) -> usize {
        self.history
            .iter()
            .filter(
                |(_, c)| matches!(c, Change::DeadlineClosed { deadline: d, .. } if *d == deadline),
            )
            .count()
    }
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

fn write(kind: DocumentKind, text: &str) -> Command {
    Command::SubmitVersion {
        version: NewVersion {
            kind,
            title: (kind == DocumentKind::Annex).then(|| "Bijlage A".to_string()),
            base_version: None,
            content: markdown(text).expect("markdown"),
            note: None,
            municipality: None,
        },
        new_document: DocumentId::new(),
        new_version: VersionId::new(),
    }
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
        text: text.into(),
        addressee: RecommendationAddressee::College,
    }
}

fn terms(mode: ResponseMode, due_date: Option<NaiveDate>) -> Command {
    Command::SetRebuttalTerms {
        terms: RebuttalTerms { mode, due_date },
    }
}

fn factual_check(due: Option<&str>) -> Command {
    Command::StartFactualCheck {
        due_date: due.map(day),
    }
}

fn cosign(response: ResponseId) -> Command {
    Command::CosignResponse { response }
}

fn decide(request: ExtensionId, grant: bool) -> Command {
    Command::DecideExtension {
        request,
        grant,
        comment: Some("Akkoord in de vergadering".into()),
    }
}

fn suspend() -> Command {
    Command::Suspend {
        reason: "Gemeentelijke herindeling".into(),
    }
}

fn cancel() -> Command {
    Command::Cancel {
        reason: "Onderzoek overbodig geworden".into(),
    }
}

fn code(error: &DomainError) -> &'static str {
    error.code()
}

/// The deadline-opening changes of a list: (kind, municipality, due).
fn opened(changes: &[Change]) -> Vec<(DeadlineKind, MunicipalityId, DateTime<Utc>)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::DeadlineOpened {
                kind,
                municipality,
                due_at,
                ..
            } => Some((*kind, *municipality, *due_at)),
            _ => None,
        })
        .collect()
}

/// The deadline-closing changes of a list: (municipality, status).
fn closed(changes: &[Change]) -> Vec<(MunicipalityId, DeadlineStatus)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::DeadlineClosed {
                municipality,
                status,
                ..
            } => Some((*municipality, *status)),
            _ => None,
        })
        .collect()
}

fn reminders(changes: &[Change]) -> Vec<(MunicipalityId, i64, Vec<i64>)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::ReminderDue {
                municipality,
                before_seconds,
                also_covers,
                ..
            } => Some((*municipality, *before_seconds, also_covers.clone())),
            _ => None,
        })
        .collect()
}

fn moved(changes: &[Change]) -> Vec<DateTime<Utc>> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::DeadlineMoved { due_at, .. } => Some(*due_at),
            _ => None,
        })
        .collect()
}

fn policy(factual_check_days: u32, rebuttal_days: u32) -> TermPolicy {
    TermPolicy {
        factual_check_days,
        rebuttal_days,
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The factual check (ambtelijk wederhoor)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_factual_check_opens_one_deadline_per_municipality_with_the_shortest_term() {
    // Bloemendaal's policy gives 21 days, Heemstede's 14: the joint term is 14 days.
    // Started Monday 2 September 2019 → Monday 16 September, 23:59:59 CEST.
    let mut world = World::new(
        policy(21, 21),
        policy(14, 28),
        t("2019-09-02T10:00:00+02:00"),
    );
    world.ok(P::SecretaryH, write(DocumentKind::ResearchReport, "# v1"));
    let base = world.latest(DocumentKind::ResearchReport);
    let changes = world.ok(P::ChairH, factual_check(None));
    let due = t("2019-09-16T23:59:59+02:00");
    let mut deadlines = opened(&changes);
    deadlines.sort();
    let mut expected = vec![
        (DeadlineKind::FactualCheck, world.b, due),
        (DeadlineKind::FactualCheck, world.h, due),
    ];
    expected.sort();
    assert_eq!(deadlines, expected);
    assert!(changes.contains(&Change::VersionsFrozen {
        purpose: FreezePurpose::FactualCheckBase,
        versions: vec![base],
    }));
    assert_eq!(world.factual(world.b).status, DeadlineStatus::Open);
    assert_eq!(world.inv.frozen.factual_check_base, Some(base));

    // A later report version does not change what the civil service checks.
    world.ok(P::SecretaryH, write(DocumentKind::ResearchReport, "# v2"));
    assert_eq!(world.inv.frozen.factual_check_base, Some(base));

    // Once per investigation; a chair's, in RESEARCH.
    assert_eq!(code(&world.err(P::ChairB, factual_check(None))), "CONFLICT");
    assert_eq!(
        code(&world.err(P::CivilB, factual_check(None))),
        "FORBIDDEN"
    );
    assert_eq!(
        code(&world.err(P::MemberB, factual_check(None))),
        "FORBIDDEN"
    );
    assert_eq!(
        code(&world.err(P::ChairX, factual_check(None))),
        "NOT_FOUND"
    );
}

#[test]
fn a_factual_check_term_follows_the_default_policy_and_the_deadline_rule() {
    // 21 days from Thursday 5 December 2019 is Thursday 26 December (tweede Kerstdag) →
    // Friday 27 December.
    let mut world = World::defaults(t("2019-12-05T09:00:00+01:00"));
    world.ok(
        P::SecretaryH,
        write(DocumentKind::ResearchReport, "# Rapport"),
    );
    let changes = world.ok(P::ChairB, factual_check(None));
    for (_, _, due) in opened(&changes) {
        assert_eq!(due, t("2019-12-27T23:59:59+01:00"));
    }
}

#[test]
fn an_explicit_factual_check_due_date_is_aligned_to_the_algemene_termijnenwet() {
    for (given, expected) in [
        // A Wednesday stays.
        ("2019-09-18", "2019-09-18T23:59:59+02:00"),
        // Saturday → Monday.
        ("2019-09-21", "2019-09-23T23:59:59+02:00"),
        // Eerste Kerstdag (Wednesday) → tweede Kerstdag → Friday 27 December.
        ("2019-12-25", "2019-12-27T23:59:59+01:00"),
        // Hemelvaartsdag 2020 (Thursday 21 May) → Friday 22 May.
        ("2020-05-21", "2020-05-22T23:59:59+02:00"),
    ] {
        let mut world = World::defaults(t("2019-09-02T10:00:00+02:00"));
        world.ok(
            P::SecretaryH,
            write(DocumentKind::ResearchReport, "# Rapport"),
        );
        let changes = world.ok(P::ChairB, factual_check(Some(given)));
        let dues: BTreeSet<DateTime<Utc>> = opened(&changes).iter().map(|d| d.2).collect();
        assert_eq!(dues, BTreeSet::from([t(expected)]), "due date {given}");
    }
}

#[test]
fn a_factual_check_needs_a_report_and_a_future_due_date() {
    let mut world = World::defaults(t("2019-09-02T10:00:00+02:00"));
    assert_eq!(code(&world.err(P::ChairB, factual_check(None))), "CONFLICT");
    world.ok(
        P::SecretaryH,
        write(DocumentKind::ResearchReport, "# Rapport"),
    );
    for past in ["2019-09-01", "2019-09-02"] {
        let error = world.err(P::ChairB, factual_check(Some(past)));
        assert!(
            matches!(&error, DomainError::BadInput { field, .. } if field == "dueDate"),
            "{past}: {error:?}"
        );
    }
    assert!(world.inv.deadlines.is_empty());
}

#[test]
fn due_dates_are_judged_by_the_amsterdam_calendar_day() {
    // 00:30 CEST on 24 October 2019 is still 23 October in UTC. "Today" is the 24th.
    let mut world = World::defaults(t("2019-10-24T00:30:00+02:00"));
    world.ok(
        P::SecretaryH,
        write(DocumentKind::ResearchReport, "# Rapport"),
    );
    assert_eq!(
        code(&world.err(P::ChairB, factual_check(Some("2019-10-24")))),
        "BAD_USER_INPUT",
        "a factual check due today (Amsterdam) does not lie in the future"
    );
    assert_eq!(
        code(&world.err(
            P::ChairB,
            terms(ResponseMode::Joint, Some(day("2019-10-23")))
        )),
        "BAD_USER_INPUT",
        "yesterday (Amsterdam) lies in the past"
    );
    world.ok(P::ChairB, factual_check(Some("2019-10-25")));
}

#[test]
fn a_factual_response_by_a_civil_service_contact_meets_its_municipalitys_deadline() {
    let mut world = World::defaults(t("2019-09-02T10:00:00+02:00"));
    world.ok(
        P::SecretaryH,
        write(DocumentKind::ResearchReport, "# Rapport"),
    );
    // Before the check starts, nothing is accepted.
    assert_eq!(
        code(&world.err(P::CivilB, write(DocumentKind::FactualResponse, "# Reactie"))),
        "CONFLICT"
    );
    world.ok(P::ChairB, factual_check(None));
    let due = world.factual(world.b).due_at;
    assert_eq!(due, t("2019-09-23T23:59:59+02:00"));

    world.advance(Duration::days(3));
    let changes = world.ok(
        P::CivilB,
        write(DocumentKind::FactualResponse, "# Feitelijke reactie"),
    );
    assert_eq!(closed(&changes), vec![(world.b, DeadlineStatus::Met)]);
    assert!(changes.iter().any(|c| matches!(c,
        Change::DocumentCreated { kind: DocumentKind::FactualResponse, municipality, .. }
            if *municipality == Some(world.b))));
    assert_eq!(world.factual(world.b).status, DeadlineStatus::Met);
    assert_eq!(world.factual(world.h).status, DeadlineStatus::Open);

    // A second version is accepted and closes nothing again.
    let again = world.ok(
        P::CivilB,
        write(DocumentKind::FactualResponse, "# Aanvulling"),
    );
    assert!(closed(&again).is_empty());
    let b_documents = world
        .inv
        .documents
        .iter()
        .filter(|d| d.kind == DocumentKind::FactualResponse && d.municipality == Some(world.b))
        .count();
    assert_eq!(
        b_documents, 1,
        "one FACTUAL_RESPONSE document per municipality"
    );

    // Only civil-service contacts write it.
    for p in [P::CollegeB, P::MemberB, P::ChairB] {
        assert_eq!(
            code(&world.err(p, write(DocumentKind::FactualResponse, "# x"))),
            "FORBIDDEN",
            "{p:?}"
        );
    }

    // Exactly at the due instant it is still in time; a second later it is not.
    world.now = due;
    assert!(world.inv.factual_check_running(world.now));
    world.now = due + Duration::seconds(1);
    assert_eq!(
        code(&world.err(P::CivilH, write(DocumentKind::FactualResponse, "# Te laat"))),
        "CONFLICT"
    );
    let ticked = world.tick();
    assert_eq!(closed(&ticked), vec![(world.h, DeadlineStatus::Missed)]);
    assert_eq!(world.factual(world.b).status, DeadlineStatus::Met);
}

#[test]
fn the_research_gate_waits_for_an_open_factual_check() {
    let mut world = World::defaults(t("2019-09-02T10:00:00+02:00"));
    world.research_ready(ResponseMode::Joint, None);
    world.ok(P::ChairB, factual_check(None));
    let error = world.err(P::ChairB, approve());
    assert_eq!(code(&error), "CONFLICT");
    assert!(error.to_string().contains("factual check"), "{error}");

    // One municipality answering is not enough.
    world.ok(
        P::CivilB,
        write(DocumentKind::FactualResponse, "# Reactie b"),
    );
    assert_eq!(code(&world.err(P::ChairB, approve())), "CONFLICT");
    world.ok(
        P::CivilH,
        write(DocumentKind::FactualResponse, "# Reactie h"),
    );
    assert!(world.inv.gate_guard(world.now).is_empty());
    let changes = world.pass_research();
    assert!(
        closed(&changes)
            .iter()
            .all(|(_, status)| *status != DeadlineStatus::Missed),
        "both answered: {changes:?}"
    );
}

#[test]
fn the_research_gate_passes_once_the_factual_check_deadline_passed() {
    let mut world = World::defaults(t("2019-09-02T10:00:00+02:00"));
    world.research_ready(ResponseMode::Separate, None);
    world.ok(P::ChairB, factual_check(None));
    world.ok(
        P::CivilB,
        write(DocumentKind::FactualResponse, "# Reactie b"),
    );
    world.at("2019-09-23T23:59:59+02:00");
    assert_eq!(code(&world.err(P::ChairB, approve())), "CONFLICT");
    world.at("2019-09-24T00:00:00+02:00");
    // No scheduler pass in between: passing the gate itself closes the open check.
    let changes = world.pass_research();
    assert_eq!(closed(&changes), vec![(world.h, DeadlineStatus::Missed)]);
    assert_eq!(world.factual(world.h).status, DeadlineStatus::Missed);
    assert_eq!(world.factual(world.b).status, DeadlineStatus::Met);
    for d in world.inv.deadlines.clone() {
        assert!(world.closings(d.id) <= 1);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Opening the rebuttal round
// ---------------------------------------------------------------------------------------------

#[test]
fn the_research_gate_opens_one_rebuttal_deadline_per_college_with_the_joint_term() {
    // Bloemendaal gives 28 days, Heemstede 21: the shortest applies. Sent on Thursday
    // 24 October 2019 at 10:00 CEST; 21 days later is Thursday 14 November, after the change
    // to CET: 23:59:59+01:00 = 22:59:59Z.
    let mut world = World::new(
        policy(21, 28),
        policy(21, 21),
        t("2019-09-02T10:00:00+02:00"),
    );
    world.research_ready(ResponseMode::Joint, None);
    let report = world.latest(DocumentKind::ResearchReport);
    let conclusions = world.latest(DocumentKind::Conclusions);
    world.at("2019-10-24T10:00:00+02:00");
    let changes = world.pass_research();
    let mut deadlines = opened(&changes);
    deadlines.sort();
    let mut expected = vec![
        (
            DeadlineKind::AdministrativeResponse,
            world.b,
            t("2019-11-14T22:59:59Z"),
        ),
        (
            DeadlineKind::AdministrativeResponse,
            world.h,
            t("2019-11-14T22:59:59Z"),
        ),
    ];
    expected.sort();
    assert_eq!(deadlines, expected);
    assert_eq!(world.rebuttal(world.b).status, DeadlineStatus::Open);

    // The approved draft is frozen and can no longer change.
    assert_eq!(
        world.inv.frozen.rebuttal_draft,
        BTreeSet::from([report, conclusions])
    );
    assert_eq!(
        code(&world.err(P::MemberB, write(DocumentKind::Conclusions, "# Anders"))),
        "CONFLICT"
    );
    assert_eq!(
        code(&world.err(P::MemberB, recommendation("Nog een"))),
        "CONFLICT"
    );
}

#[test]
fn an_explicit_rebuttal_due_date_wins_over_the_policy_and_is_aligned() {
    // Saturday 16 November 2019 → Monday 18 November.
    let world = World::in_rebuttal(
        ResponseMode::Separate,
        Some(day("2019-11-16")),
        "2019-10-24T10:00:00+02:00",
    );
    for m in [world.b, world.h] {
        assert_eq!(world.rebuttal(m).due_at, t("2019-11-18T23:59:59+01:00"));
    }
    // An explicit date later than the policy term is kept too.
    let world = World::in_rebuttal(
        ResponseMode::Joint,
        Some(day("2019-12-20")),
        "2019-10-24T10:00:00+02:00",
    );
    assert_eq!(
        world.rebuttal(world.h).due_at,
        t("2019-12-20T23:59:59+01:00")
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Responses: JOINT and SEPARATE, co-signing, replacing
// ---------------------------------------------------------------------------------------------

#[test]
fn a_separate_response_names_exactly_one_college() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let (b, h) = (world.b, world.h);
    let (_, result) = world.file(P::CollegeB, &[b, h], Vec::new());
    let error = result.expect_err("two colleges in a SEPARATE round");
    assert!(
        matches!(&error, DomainError::BadInput { field, .. } if field == "collegeIds"),
        "{error:?}"
    );
    let (_, result) = world.file(P::CollegeB, &[], Vec::new());
    assert_eq!(code(&result.expect_err("no college")), "BAD_USER_INPUT");
    // A contact files only for its own college.
    let (_, result) = world.file(P::CollegeB, &[h], Vec::new());
    assert_eq!(code(&result.expect_err("another college")), "FORBIDDEN");
    // Others than college contacts do not file; outsiders do not find it.
    let (_, result) = world.file(P::ChairB, &[b], Vec::new());
    assert_eq!(code(&result.expect_err("a chair")), "FORBIDDEN");
    let (_, result) = world.file(P::CivilB, &[b], Vec::new());
    assert_eq!(code(&result.expect_err("civil service")), "FORBIDDEN");
    let (_, result) = world.file(P::CollegeX, &[b], Vec::new());
    assert_eq!(code(&result.expect_err("an outsider")), "NOT_FOUND");
    assert!(world.inv.responses.is_empty());

    let (response, changes) = world.file_ok(P::CollegeB, &[b]);
    assert_eq!(closed(&changes), vec![(b, DeadlineStatus::Met)]);
    assert_eq!(world.counted_for(b), Some(response));
    assert_eq!(world.rebuttal(h).status, DeadlineStatus::Open);
}

#[test]
fn a_joint_response_counts_for_a_college_only_once_its_contact_signed() {
    let mut world = World::in_rebuttal(ResponseMode::Joint, None, "2019-10-24T10:00:00+02:00");
    let (b, h) = (world.b, world.h);
    world.at("2019-11-12T11:00:00+01:00");
    let recommendation = world.recommendation();
    let (response, result) = world.file(
        P::CollegeB,
        &[b, h],
        vec![(recommendation, CollegePosition::Agrees)],
    );
    let changes = result.expect("a joint response");
    assert!(changes.iter().any(|c| matches!(c,
        Change::ResponseFiled { colleges, signed_by, late: false, .. }
            if colleges.len() == 2 && signed_by == &vec![b])));
    assert_eq!(closed(&changes), vec![(b, DeadlineStatus::Met)]);
    assert_eq!(world.counted_for(b), Some(response));
    assert_eq!(world.counted_for(h), None, "Heemstede has not signed yet");
    assert_eq!(world.rebuttal(h).status, DeadlineStatus::Open);
    let guard = world.inv.gate_guard(world.now);
    assert_eq!(guard.len(), 1, "{guard:?}");
    assert!(guard[0].contains(&h.to_string()), "{guard:?}");
    assert_eq!(code(&world.err(P::ChairB, approve())), "CONFLICT");

    // Co-signing: by Heemstede only, once.
    assert_eq!(code(&world.err(P::CollegeB, cosign(response))), "CONFLICT");
    assert_eq!(code(&world.err(P::ChairH, cosign(response))), "FORBIDDEN");
    assert_eq!(code(&world.err(P::CollegeX, cosign(response))), "NOT_FOUND");
    assert_eq!(
        code(&world.err(P::CollegeH, cosign(ResponseId::new()))),
        "NOT_FOUND"
    );
    let changes = world.ok(P::CollegeH, cosign(response));
    assert!(changes.contains(&Change::ResponseCosigned {
        response,
        colleges: vec![h],
        late: false,
    }));
    assert_eq!(closed(&changes), vec![(h, DeadlineStatus::Met)]);
    assert_eq!(code(&world.err(P::CollegeH, cosign(response))), "CONFLICT");

    // One response, counted for both, with the position it gave.
    let counted = world.inv.counted_responses();
    assert_eq!(counted.len(), 1);
    assert_eq!(counted[0].signed_by, BTreeSet::from([b, h]));
    assert_eq!(
        counted[0].positions,
        vec![(recommendation, CollegePosition::Agrees)]
    );
    assert!(world.inv.gate_guard(world.now).is_empty());
    world.ok(P::ChairB, approve());
    let changes = world.ok(P::ChairH, approve());
    assert_eq!(world.inv.phase, Phase::Epilogue);
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::NoResponse { .. })),
        "both answered"
    );
    assert_eq!(world.rebuttal(b).status, DeadlineStatus::Met);
    assert_eq!(world.rebuttal(h).status, DeadlineStatus::Met);
}

#[test]
fn a_response_position_must_name_one_of_the_investigations_recommendations_once() {
    let mut world = World::in_rebuttal(ResponseMode::Joint, None, "2019-10-24T10:00:00+02:00");
    let b = world.b;
    let recommendation = world.recommendation();
    let (_, result) = world.file(
        P::CollegeB,
        &[b],
        vec![(RecommendationId::new(), CollegePosition::Agrees)],
    );
    assert_eq!(code(&result.expect_err("unknown")), "BAD_USER_INPUT");
    let (_, result) = world.file(
        P::CollegeB,
        &[b],
        vec![
            (recommendation, CollegePosition::Agrees),
            (recommendation, CollegePosition::Disagrees),
        ],
    );
    assert_eq!(code(&result.expect_err("twice")), "BAD_USER_INPUT");
}

#[test]
fn a_newer_response_of_a_college_replaces_its_earlier_one_as_counted() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let b = world.b;
    world.at("2019-11-01T10:00:00+01:00");
    let (first, changes) = world.file_ok(P::CollegeB, &[b]);
    assert_eq!(closed(&changes), vec![(b, DeadlineStatus::Met)]);
    world.advance(Duration::hours(2));
    let (second, changes) = world.file_ok(P::CollegeB, &[b]);
    assert!(closed(&changes).is_empty(), "MET once");
    assert_eq!(world.inv.responses.len(), 2, "both are kept");
    assert_eq!(world.counted_for(b), Some(second));
    assert_ne!(first, second);
    assert_eq!(world.inv.counted_responses().len(), 1);
    assert_eq!(world.closings(world.rebuttal(b).id), 1);
}

#[test]
fn in_a_joint_round_each_college_counts_its_own_latest_signature() {
    let mut world = World::in_rebuttal(ResponseMode::Joint, None, "2019-10-24T10:00:00+02:00");
    let (b, h) = (world.b, world.h);
    world.at("2019-11-01T10:00:00+01:00");
    let (joint, _) = world.file_ok(P::CollegeB, &[b, h]);
    world.ok(P::CollegeH, cosign(joint));
    world.advance(Duration::days(1));
    let (own, _) = world.file_ok(P::CollegeH, &[h]);
    assert_eq!(world.counted_for(b), Some(joint));
    assert_eq!(world.counted_for(h), Some(own));
    assert_eq!(world.inv.counted_responses().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 4. Late responses and the EPILOGUE
// ---------------------------------------------------------------------------------------------

#[test]
fn late_responses_are_accepted_until_the_epilogue_gate_passes_and_marked_late() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let (b, h) = (world.b, world.h);
    world.at("2019-11-15T09:00:00+01:00");
    let ticked = world.tick();
    let mut marked = closed(&ticked);
    marked.sort();
    let mut expected = vec![(b, DeadlineStatus::Missed), (h, DeadlineStatus::Missed)];
    expected.sort();
    assert_eq!(marked, expected);

    let (late, changes) = world.file_ok(P::CollegeB, &[b]);
    assert!(changes.iter().any(|c| matches!(c,
        Change::ResponseFiled { response, late: true, .. } if *response == late)));
    assert!(closed(&changes).is_empty());
    assert_eq!(
        world.rebuttal(b).status,
        DeadlineStatus::Missed,
        "stays MISSED"
    );
    assert_eq!(world.counted_for(b), Some(late), "a late response counts");

    world.ok(P::ChairB, approve());
    let changes = world.ok(P::ChairH, approve());
    assert_eq!(world.inv.phase, Phase::Epilogue);
    assert!(changes.contains(&Change::NoResponse { colleges: vec![h] }));

    // During the EPILOGUE still accepted, late.
    world.advance(Duration::days(1));
    let (in_epilogue, changes) = world.file_ok(P::CollegeH, &[h]);
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::ResponseFiled { late: true, .. }))
    );
    assert_eq!(world.rebuttal(h).status, DeadlineStatus::Missed);
    assert_eq!(world.counted_for(h), Some(in_epilogue));

    // Not after the EPILOGUE gate.
    world.advance(Duration::days(1));
    world.ok(P::ChairB, approve());
    world.ok(P::ChairH, approve());
    assert_eq!(world.inv.phase, Phase::CouncilSubmission);
    let (_, result) = world.file(P::CollegeH, &[h], Vec::new());
    assert_eq!(
        code(&result.expect_err("after the EPILOGUE gate")),
        "CONFLICT"
    );
}

#[test]
fn a_late_response_before_the_scheduler_ran_leaves_the_deadline_missed() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let b = world.b;
    // One second after the due instant, before any scheduler pass.
    world.now = world.rebuttal(b).due_at + Duration::seconds(1);
    let (_, changes) = world.file_ok(P::CollegeB, &[b]);
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::ResponseFiled { late: true, .. }))
    );
    assert_eq!(world.rebuttal(b).status, DeadlineStatus::Missed);
    assert!(world.tick().iter().all(|c| !matches!(c,
        Change::DeadlineClosed { municipality, .. } if *municipality == b)));
    assert_eq!(world.closings(world.rebuttal(b).id), 1);
}

#[test]
fn a_revised_response_after_the_deadline_is_late_even_when_the_first_was_in_time() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let b = world.b;
    world.at("2019-11-12T10:00:00+01:00");
    let (_, changes) = world.file_ok(P::CollegeB, &[b]);
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::ResponseFiled { late: false, .. }))
    );
    world.at("2019-11-20T10:00:00+01:00");
    let (revised, changes) = world.file_ok(P::CollegeB, &[b]);
    assert!(
        changes.iter().any(|c| matches!(c,
            Change::ResponseFiled { response, late: true, .. } if *response == revised)),
        "{changes:?}"
    );
    assert_eq!(
        world.rebuttal(b).status,
        DeadlineStatus::Met,
        "the first one met it"
    );
}

#[test]
fn a_response_filed_during_the_epilogue_voids_the_epilogue_approvals() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let (b, h) = (world.b, world.h);
    world.at("2019-11-12T10:00:00+01:00");
    world.file_ok(P::CollegeB, &[b]);
    world.file_ok(P::CollegeH, &[h]);

    // In ADMINISTRATIVE_REBUTTAL a new counted response voids that gate's approvals too.
    world.ok(P::ChairB, approve());
    assert_eq!(world.inv.approvals.len(), 1);
    world.advance(Duration::hours(1));
    let (_, changes) = world.file_ok(P::CollegeB, &[b]);
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::ApprovalsVoided { .. }))
    );
    assert!(world.inv.approvals.is_empty());
    world.ok(P::ChairB, approve());
    world.ok(P::ChairH, approve());
    assert_eq!(world.inv.phase, Phase::Epilogue);

    world.advance(Duration::days(1));
    world.ok(P::ChairH, approve());
    assert_eq!(world.inv.approvals.len(), 1);
    world.advance(Duration::days(1));
    let (_, changes) = world.file_ok(P::CollegeH, &[h]);
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::ApprovalsVoided { .. })),
        "{changes:?}"
    );
    assert!(world.inv.approvals.is_empty());
    assert_eq!(world.inv.phase, Phase::Epilogue);
}

// ---------------------------------------------------------------------------------------------
// 5. The rebuttal gate
// ---------------------------------------------------------------------------------------------

#[test]
fn the_rebuttal_gate_waits_for_every_college_within_its_term() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let (b, h) = (world.b, world.h);
    assert_eq!(world.inv.gate_guard(world.now).len(), 1);
    assert!(world.inv.gate_guard(world.now)[0].contains("2 college(s)"));
    world.at("2019-11-12T10:00:00+01:00");
    world.file_ok(P::CollegeB, &[b]);
    let error = world.err(P::ChairB, approve());
    assert_eq!(code(&error), "CONFLICT");
    assert!(error.to_string().contains(&h.to_string()), "{error}");

    // At the due instant Heemstede is still within its term.
    world.now = world.rebuttal(h).due_at;
    assert_eq!(code(&world.err(P::ChairB, approve())), "CONFLICT");

    // One second later the gate may pass, even before a scheduler pass marked it.
    world.advance(Duration::seconds(1));
    assert_eq!(world.rebuttal(h).status, DeadlineStatus::Open);
    world.ok(P::ChairB, approve());
    let changes = world.ok(P::ChairH, approve());
    assert_eq!(world.inv.phase, Phase::Epilogue);
    assert_eq!(closed(&changes), vec![(h, DeadlineStatus::Missed)]);
    assert!(changes.contains(&Change::NoResponse { colleges: vec![h] }));
    assert_eq!(world.rebuttal(b).status, DeadlineStatus::Met);
    assert_eq!(world.rebuttal(h).status, DeadlineStatus::Missed);
    // Nothing for the scheduler left to do.
    assert!(world.tick().is_empty());
}

#[test]
fn the_rebuttal_gate_records_every_silent_college() {
    let mut world = World::in_rebuttal(ResponseMode::Joint, None, "2019-10-24T10:00:00+02:00");
    let (b, h) = (world.b, world.h);
    world.at("2019-11-20T10:00:00+01:00");
    world.tick();
    world.ok(P::ChairB, approve());
    let changes = world.ok(P::ChairH, approve());
    let silent: Vec<&Change> = changes
        .iter()
        .filter(|c| matches!(c, Change::NoResponse { .. }))
        .collect();
    let mut expected = vec![b, h];
    expected.sort();
    assert_eq!(silent, vec![&Change::NoResponse { colleges: expected }]);
    // Already MISSED by the scheduler: not closed a second time.
    assert!(closed(&changes).is_empty());
}

// ---------------------------------------------------------------------------------------------
// 6. Extensions
// ---------------------------------------------------------------------------------------------

#[test]
fn an_extension_is_granted_only_when_every_participating_commission_agrees() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let (b, h) = (world.b, world.h);
    world.at("2019-11-05T10:00:00+01:00");

    // Only for one's own college, later than the current due date, one at a time.
    let (_, result) = world.request_extension(P::CollegeH, b, "2019-11-28");
    assert_eq!(code(&result.expect_err("another college")), "FORBIDDEN");
    let (_, result) = world.request_extension(P::ChairH, h, "2019-11-28");
    assert_eq!(code(&result.expect_err("a chair")), "FORBIDDEN");
    let (_, result) = world.request_extension(P::CollegeX, h, "2019-11-28");
    assert_eq!(code(&result.expect_err("an outsider")), "NOT_FOUND");
    let (_, result) = world.request_extension(P::CollegeH, h, "2019-11-14");
    assert_eq!(code(&result.expect_err("not later")), "BAD_USER_INPUT");

    let (request, result) = world.request_extension(P::CollegeH, h, "2019-11-28");
    result.expect("a request");
    let (_, result) = world.request_extension(P::CollegeH, h, "2019-11-29");
    assert_eq!(
        code(&result.expect_err("one undecided at a time")),
        "CONFLICT"
    );

    // Deciding is a participating chair's; each commission once.
    assert_eq!(
        code(&world.err(P::CollegeB, decide(request, true))),
        "FORBIDDEN"
    );
    assert_eq!(
        code(&world.err(P::ChairX, decide(request, true))),
        "NOT_FOUND"
    );
    assert_eq!(
        code(&world.err(P::ChairB, decide(ExtensionId::new(), true))),
        "NOT_FOUND"
    );
    let changes = world.ok(P::ChairB, decide(request, true));
    assert!(moved(&changes).is_empty(), "one commission is not enough");
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::ExtensionResolved { .. }))
    );
    assert_eq!(world.inv.extensions[0].granted, None);
    assert_eq!(
        code(&world.err(P::ChairB, decide(request, true))),
        "CONFLICT"
    );
    assert_eq!(world.rebuttal(h).due_at, t("2019-11-14T23:59:59+01:00"));

    let changes = world.ok(P::ChairH, decide(request, true));
    assert!(changes.contains(&Change::ExtensionResolved {
        request,
        granted: true
    }));
    assert_eq!(moved(&changes), vec![t("2019-11-28T23:59:59+01:00")]);
    assert_eq!(world.rebuttal(h).due_at, t("2019-11-28T23:59:59+01:00"));
    assert_eq!(world.rebuttal(h).status, DeadlineStatus::Open);
    assert_eq!(
        world.rebuttal(b).due_at,
        t("2019-11-14T23:59:59+01:00"),
        "only that college's deadline moves"
    );
    assert_eq!(
        code(&world.err(P::ChairH, decide(request, false))),
        "CONFLICT"
    );

    // With the extension Heemstede files in time after Bloemendaal's deadline passed.
    world.at("2019-11-25T10:00:00+01:00");
    world.tick();
    assert_eq!(world.rebuttal(b).status, DeadlineStatus::Missed);
    assert_eq!(world.rebuttal(h).status, DeadlineStatus::Open);
    let (_, changes) = world.file_ok(P::CollegeH, &[h]);
    assert_eq!(closed(&changes), vec![(h, DeadlineStatus::Met)]);
}

#[test]
fn one_refusal_refuses_an_extension() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let b = world.b;
    world.at("2019-11-05T10:00:00+01:00");
    let (request, result) = world.request_extension(P::CollegeB, b, "2019-11-29");
    result.expect("a request");
    let changes = world.ok(P::ChairH, decide(request, false));
    assert!(changes.contains(&Change::ExtensionResolved {
        request,
        granted: false
    }));
    assert!(moved(&changes).is_empty());
    assert_eq!(world.inv.extensions[0].granted, Some(false));
    assert_eq!(world.rebuttal(b).due_at, t("2019-11-14T23:59:59+01:00"));
    assert_eq!(
        code(&world.err(P::ChairB, decide(request, true))),
        "CONFLICT"
    );
    // After a refusal a new request may be made.
    let (_, result) = world.request_extension(P::CollegeB, b, "2019-11-21");
    result.expect("a new request");
}

#[test]
fn a_chair_of_both_commissions_decides_for_both_and_the_new_date_is_aligned() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let b = world.b;
    // Saturday 30 November 2019 → Monday 2 December.
    let (request, result) = world.request_extension(P::CollegeB, b, "2019-11-30");
    result.expect("a request");
    let changes = world.ok(P::DoubleChair, decide(request, true));
    let votes = changes
        .iter()
        .filter(|c| matches!(c, Change::ExtensionVoted { .. }))
        .count();
    assert_eq!(votes, 2);
    assert_eq!(moved(&changes), vec![t("2019-12-02T23:59:59+01:00")]);
}

#[test]
fn extensions_are_asked_while_the_deadline_is_open_and_decided_in_the_rebuttal_phase() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let (b, h) = (world.b, world.h);
    world.at("2019-11-15T10:00:00+01:00");
    let (_, result) = world.request_extension(P::CollegeB, b, "2019-11-29");
    assert_eq!(code(&result.expect_err("passed")), "CONFLICT");
    world.ok(P::ChairB, approve());
    world.ok(P::ChairH, approve());
    let (_, result) = world.request_extension(P::CollegeH, h, "2019-11-29");
    assert_eq!(code(&result.expect_err("in EPILOGUE")), "CONFLICT");
}

#[test]
fn an_extension_cannot_be_granted_once_the_deadline_has_passed() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let h = world.h;
    world.at("2019-11-12T10:00:00+01:00");
    let (request, result) = world.request_extension(P::CollegeH, h, "2019-11-28");
    result.expect("a request");
    world.ok(P::ChairB, decide(request, true));
    // The chairs of Heemstede decide only after the deadline passed.
    world.at("2019-11-18T10:00:00+01:00");
    world.tick();
    assert_eq!(world.rebuttal(h).status, DeadlineStatus::Missed);
    let error = world.err(P::ChairH, decide(request, true));
    assert_eq!(code(&error), "CONFLICT");
    assert_eq!(world.rebuttal(h).due_at, t("2019-11-14T23:59:59+01:00"));
    // Refusing is still possible, and closes the request.
    world.ok(P::ChairH, decide(request, false));
    assert_eq!(world.inv.extensions[0].granted, Some(false));
    assert_eq!(world.rebuttal(h).status, DeadlineStatus::Missed);
}

#[test]
fn a_granted_extension_never_moves_a_deadline_earlier() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let h = world.h;
    world.at("2019-11-04T10:00:00+01:00");
    let (request, result) = world.request_extension(P::CollegeH, h, "2019-11-21");
    result.expect("a request");
    // A suspension of 14 days moves the deadline past the proposed date.
    world.ok(P::ChairB, suspend());
    world.advance(Duration::days(14));
    world.ok(P::ChairB, Command::Resume);
    let shifted = world.rebuttal(h).due_at;
    assert_eq!(shifted, t("2019-11-28T23:59:59+01:00"));
    world.ok(P::ChairB, decide(request, true));
    let changes = world.ok(P::ChairH, decide(request, true));
    assert!(changes.contains(&Change::ExtensionResolved {
        request,
        granted: true
    }));
    assert_eq!(world.rebuttal(h).due_at, shifted, "{changes:?}");
}

// ---------------------------------------------------------------------------------------------
// 7. The scheduler's tick
// ---------------------------------------------------------------------------------------------

#[test]
fn tick_sends_each_reminder_once_and_marks_missed_once() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let (b, h) = (world.b, world.h);
    let due = world.rebuttal(b).due_at;
    assert_eq!(due, t("2019-11-14T22:59:59Z"));

    world.now = due - Duration::days(7) - Duration::seconds(1);
    assert!(world.tick().is_empty());
    world.now = due - Duration::days(7);
    let mut sent = reminders(&world.tick());
    sent.sort();
    let mut expected = vec![(b, WEEK, vec![]), (h, WEEK, vec![])];
    expected.sort();
    assert_eq!(sent, expected);
    assert!(world.tick().is_empty(), "a reminder once");
    world.advance(Duration::days(3));
    assert!(world.tick().is_empty());

    // Bloemendaal answers; only Heemstede is reminded again.
    world.file_ok(P::CollegeB, &[b]);
    world.now = due - Duration::days(1);
    let changes = world.tick();
    assert_eq!(reminders(&changes).len(), 1, "{changes:?}");
    let (m, before, covers) = &reminders(&changes)[0];
    assert_eq!((*m, *before), (h, DAY));
    assert!(
        covers.is_empty(),
        "the 7-day reminder went out already: {covers:?}"
    );
    assert!(world.tick().is_empty());

    world.now = due;
    assert!(world.tick().is_empty(), "still in time at the due instant");
    world.now = due + Duration::seconds(1);
    let changes = world.tick();
    assert_eq!(closed(&changes), vec![(h, DeadlineStatus::Missed)]);
    assert!(world.tick().is_empty(), "MISSED once");
    world.advance(Duration::days(30));
    assert!(world.tick().is_empty());
    assert_eq!(world.closings(world.rebuttal(h).id), 1);
    assert_eq!(world.rebuttal(b).status, DeadlineStatus::Met);
}

#[test]
fn after_a_jump_of_the_clock_one_reminder_stands_in_for_the_skipped_ones() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let due = world.rebuttal(world.b).due_at;
    world.now = due - Duration::hours(12);
    let changes = world.tick();
    let sent = reminders(&changes);
    assert_eq!(sent.len(), 2);
    for (_, before, covers) in sent {
        assert_eq!(before, DAY);
        assert_eq!(covers, vec![WEEK]);
    }
    assert!(world.tick().is_empty());
    // Straight past the due instant: MISSED, no reminders.
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    world.now = due + Duration::days(1);
    let changes = world.tick();
    assert!(reminders(&changes).is_empty());
    assert_eq!(closed(&changes).len(), 2);
}

#[test]
fn a_moved_deadline_counts_down_again() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let due = world.rebuttal(world.b).due_at;
    world.now = due - Duration::days(7);
    assert_eq!(reminders(&world.tick()).len(), 2);
    // Suspended for ten days: the deadlines move and the 7-day reminder comes again.
    world.ok(P::ChairH, suspend());
    world.advance(Duration::days(10));
    world.ok(P::ChairH, Command::Resume);
    let moved = world.rebuttal(world.b).due_at;
    assert!(moved > due);
    assert!(
        world.tick().is_empty(),
        "not yet: the new due instant is further away"
    );
    world.now = moved - Duration::days(7);
    let again = reminders(&world.tick());
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(again.iter().all(|(_, before, _)| *before == WEEK));
    assert!(world.tick().is_empty());
}

#[test]
fn tick_does_nothing_while_suspended_or_after_cancel() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    world.at("2019-11-01T10:00:00+01:00");
    world.ok(P::ChairH, suspend());
    for when in ["2019-11-08T10:00:00+01:00", "2019-11-20T10:00:00+01:00"] {
        world.at(when);
        assert!(world.tick().is_empty(), "suspended at {when}");
    }
    let mut cancelled =
        World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    cancelled.ok(P::ChairB, cancel());
    cancelled.at("2019-12-01T10:00:00+01:00");
    assert!(cancelled.tick().is_empty());
}

// ---------------------------------------------------------------------------------------------
// 8. Suspension and cancellation
// ---------------------------------------------------------------------------------------------

#[test]
fn resume_shifts_open_deadlines_by_the_suspended_time() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let (b, h) = (world.b, world.h);
    world.at("2019-11-05T10:00:00+01:00");
    world.file_ok(P::CollegeB, &[b]);
    let before = world.rebuttal(h).due_at;
    world.at("2019-11-10T12:00:00+01:00");
    world.ok(P::ChairH, suspend());
    // Nothing is accepted while suspended.
    let (_, result) = world.file(P::CollegeH, &[h], Vec::new());
    assert_eq!(code(&result.expect_err("suspended")), "CONFLICT");
    let (_, result) = world.request_extension(P::CollegeH, h, "2019-11-29");
    assert_eq!(code(&result.expect_err("suspended")), "CONFLICT");
    assert_eq!(code(&world.err(P::ChairB, approve())), "CONFLICT");

    // Ten days, past the original due date.
    world.at("2019-11-20T12:00:00+01:00");
    assert!(world.tick().is_empty());
    let changes = world.ok(P::ChairB, Command::Resume);
    // 14 November 23:59:59 + 10 days = Sunday 24 November → Monday 25 November.
    assert_eq!(moved(&changes), vec![t("2019-11-25T23:59:59+01:00")]);
    let after = world.rebuttal(h).due_at;
    assert!(after >= before + Duration::days(10));
    assert_eq!(world.rebuttal(h).status, DeadlineStatus::Open);
    assert_eq!(
        world.rebuttal(b).due_at,
        before,
        "a MET deadline does not move"
    );
    assert!(
        world
            .tick()
            .iter()
            .all(|c| !matches!(c, Change::DeadlineClosed { .. }))
    );
    let (_, changes) = world.file_ok(P::CollegeH, &[h]);
    assert_eq!(closed(&changes), vec![(h, DeadlineStatus::Met)]);
}

#[test]
fn a_short_suspension_never_shortens_a_term() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let h = world.h;
    let before = world.rebuttal(h).due_at;
    world.at("2019-11-12T10:00:00+01:00");
    world.ok(P::ChairH, suspend());
    world.advance(Duration::minutes(30));
    let changes = world.ok(P::ChairH, Command::Resume);
    let after = world.rebuttal(h).due_at;
    assert!(after >= before + Duration::minutes(30), "{changes:?}");
    // Into Friday 15 November, then to its end.
    assert_eq!(after, t("2019-11-15T23:59:59+01:00"));
}

#[test]
fn a_factual_check_deadline_shifts_on_resume_too() {
    let mut world = World::defaults(t("2019-09-02T10:00:00+02:00"));
    world.ok(
        P::SecretaryH,
        write(DocumentKind::ResearchReport, "# Rapport"),
    );
    world.ok(P::ChairB, factual_check(None));
    world.at("2019-09-10T10:00:00+02:00");
    world.ok(P::ChairB, suspend());
    world.at("2019-09-17T10:00:00+02:00");
    world.ok(P::ChairB, Command::Resume);
    // 23 September + 7 days = Monday 30 September.
    assert_eq!(
        world.factual(world.b).due_at,
        t("2019-09-30T23:59:59+02:00")
    );
}

#[test]
fn a_deadline_that_passed_before_the_suspension_is_missed_not_revived() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let h = world.h;
    let due = world.rebuttal(h).due_at;
    // The deadline passed a minute ago; no scheduler pass has run yet.
    world.now = due + Duration::minutes(1);
    world.ok(P::ChairB, suspend());
    world.advance(Duration::days(10));
    let changes = world.ok(P::ChairB, Command::Resume);
    assert!(moved(&changes).is_empty(), "{changes:?}");
    assert_eq!(world.rebuttal(h).due_at, due);
    assert_eq!(world.rebuttal(h).status, DeadlineStatus::Missed);
    assert_eq!(world.closings(world.rebuttal(h).id), 1);
}

#[test]
fn cancel_waives_the_open_deadlines() {
    let mut world = World::in_rebuttal(ResponseMode::Separate, None, "2019-10-24T10:00:00+02:00");
    let (b, h) = (world.b, world.h);
    world.at("2019-11-05T10:00:00+01:00");
    world.file_ok(P::CollegeB, &[b]);
    let changes = world.ok(P::ChairH, cancel());
    assert_eq!(closed(&changes), vec![(h, DeadlineStatus::Waived)]);
    assert_eq!(world.inv.phase, Phase::Cancelled);
    assert_eq!(world.rebuttal(b).status, DeadlineStatus::Met);
    assert_eq!(world.rebuttal(h).status, DeadlineStatus::Waived);

    // Also a running factual check, also while suspended.
    let mut world = World::defaults(t("2019-09-02T10:00:00+02:00"));
    world.ok(
        P::SecretaryH,
        write(DocumentKind::ResearchReport, "# Rapport"),
    );
    world.ok(P::ChairB, factual_check(None));
    world.ok(P::ChairB, suspend());
    let changes = world.ok(P::ChairB, cancel());
    assert_eq!(closed(&changes).len(), 2);
    assert!(
        closed(&changes)
            .iter()
            .all(|(_, s)| *s == DeadlineStatus::Waived)
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Properties over random interleavings
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Tick,
    /// Move the clock forward by this many hours; then, when `tick`, a scheduler pass.
    Advance {
        hours: i64,
        tick: bool,
    },
    /// A civil-service contact of b (true) or h writes a FACTUAL_RESPONSE.
    CivilFile(bool),
    /// The chair of b (true) or h approves the current gate.
    Approve(bool),
    /// The college contact of b (true) or h files a response; `joint` lists both colleges.
    File {
        by_b: bool,
        joint: bool,
    },
    /// The college contact co-signs the `index`-th response (modulo their number).
    Cosign {
        by_b: bool,
        index: usize,
    },
    Suspend(bool),
    Resume(bool),
    /// The college contact asks to move its deadline by this many days.
    RequestExtension {
        by_b: bool,
        days: u64,
    },
    /// A chair decides the latest undecided request.
    Decide {
        by_b: bool,
        grant: bool,
    },
    Cancel,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Tick),
        12 => (1i64..96, proptest::bool::weighted(0.5))
            .prop_map(|(hours, tick)| Op::Advance { hours, tick }),
        2 => any::<bool>().prop_map(Op::CivilFile),
        8 => any::<bool>().prop_map(Op::Approve),
        3 => (any::<bool>(), any::<bool>()).prop_map(|(by_b, joint)| Op::File { by_b, joint }),
        3 => (any::<bool>(), 0usize..4).prop_map(|(by_b, index)| Op::Cosign { by_b, index }),
        2 => any::<bool>().prop_map(Op::Suspend),
        3 => any::<bool>().prop_map(Op::Resume),
        5 => (any::<bool>(), 1u64..30)
            .prop_map(|(by_b, days)| Op::RequestExtension { by_b, days }),
        6 => (any::<bool>(), proptest::bool::weighted(0.8))
            .prop_map(|(by_b, grant)| Op::Decide { by_b, grant }),
    ]
}

/// What the properties remember of each deadline.
#[derive(Clone, Debug, Default)]
struct Seen {
    due: BTreeMap<rkflow_domain::DeadlineId, DateTime<Utc>>,
    status: BTreeMap<rkflow_domain::DeadlineId, DeadlineStatus>,
    closings: BTreeMap<rkflow_domain::DeadlineId, usize>,
    reminders: BTreeSet<(rkflow_domain::DeadlineId, DateTime<Utc>, i64)>,
    /// Deadlines observed OPEN past their due instant while the clock ran (not suspended).
    passed: BTreeSet<rkflow_domain::DeadlineId>,
}

fn run_op(world: &mut World, op: &Op) -> Result<Vec<Change>, DomainError> {
    let (b, h) = (world.b, world.h);
    let college = |by_b: bool| if by_b { P::CollegeB } else { P::CollegeH };
    let chair = |by_b: bool| if by_b { P::ChairB } else { P::ChairH };
    let own = |by_b: bool| if by_b { b } else { h };
    match op {
        Op::Tick => Ok(world.tick()),
        Op::Advance { hours, tick } => {
            world.advance(Duration::hours(*hours));
            Ok(if *tick { world.tick() } else { Vec::new() })
        }
        Op::CivilFile(by_b) => world.exec(
            if *by_b { P::CivilB } else { P::CivilH },
            write(DocumentKind::FactualResponse, "# Feitelijke reactie"),
        ),
        Op::Approve(by_b) => world.exec(chair(*by_b), approve()),
        Op::File { by_b, joint } => {
            let colleges = if *joint { vec![b, h] } else { vec![own(*by_b)] };
            let positions = vec![(world.recommendation(), CollegePosition::Partly)];
            world.file(college(*by_b), &colleges, positions).1
        }
        Op::Cosign { by_b, index } => {
            let Some(response) = (!world.inv.responses.is_empty())
                .then(|| world.inv.responses[index % world.inv.responses.len()].id)
            else {
                return Ok(Vec::new());
            };
            world.exec(college(*by_b), cosign(response))
        }
        Op::Suspend(by_b) => world.exec(chair(*by_b), suspend()),
        Op::Resume(by_b) => world.exec(chair(*by_b), Command::Resume),
        Op::RequestExtension { by_b, days } => {
            let current = world
                .inv
                .deadlines
                .iter()
                .find(|d| {
                    d.kind == DeadlineKind::AdministrativeResponse && d.municipality == own(*by_b)
                })
                .map_or(world.now, |d| d.due_at);
            let proposed = current.date_naive() + chrono::Days::new(*days);
            let id = ExtensionId::new();
            world.exec(
                college(*by_b),
                Command::RequestExtension {
                    id,
                    college: own(*by_b),
                    proposed_due_date: proposed,
                    reason: "Meer tijd nodig".into(),
                },
            )
        }
        Op::Decide { by_b, grant } => {
            let Some(request) = world
                .inv
                .extensions
                .iter()
                .rev()
                .find(|e| e.granted.is_none())
                .map(|e| e.id)
            else {
                return Ok(Vec::new());
            };
            world.exec(chair(*by_b), decide(request, *grant))
        }
        Op::Cancel => world.exec(P::ChairB, cancel()),
    }
}

fn check(
    world: &World,
    before_now: DateTime<Utc>,
    changes: &[Change],
    seen: &mut Seen,
) -> Result<(), TestCaseError> {
    let now = world.now;
    // Every closing in this step: from an OPEN deadline, in time for MET, late for MISSED.
    for change in changes {
        match change {
            Change::DeadlineClosed {
                deadline, status, ..
            } => {
                let count = seen.closings.entry(*deadline).or_default();
                *count += 1;
                prop_assert!(*count == 1, "deadline {deadline:?} closed twice");
                let due = seen.due.get(deadline).copied();
                if let Some(due) = due {
                    match status {
                        DeadlineStatus::Met => prop_assert!(now <= due, "MET after {due}"),
                        DeadlineStatus::Missed => {
                            prop_assert!(now > due, "MISSED before {due} (now {now})")
                        }
                        DeadlineStatus::Waived => {}
                        DeadlineStatus::Open => prop_assert!(false, "closed as OPEN"),
                    }
                }
            }
            Change::ReminderDue {
                deadline,
                due_at,
                before_seconds,
                also_covers,
                ..
            } => {
                // Once per due instant: a deadline that moved counts down again.
                for seconds in std::iter::once(before_seconds).chain(also_covers) {
                    prop_assert!(
                        seen.reminders.insert((*deadline, *due_at, *seconds)),
                        "reminder {seconds} of {deadline:?} for {due_at} sent twice"
                    );
                }
            }
            _ => {}
        }
    }
    prop_assert!(before_now <= now);
    // Deadlines never disappear; due instants never move earlier; statuses only leave OPEN.
    prop_assert!(world.inv.deadlines.len() >= seen.due.len());
    for deadline in &world.inv.deadlines {
        if let Some(previous) = seen.due.get(&deadline.id) {
            prop_assert!(
                deadline.due_at >= *previous,
                "{:?} moved earlier: {} → {}",
                deadline.id,
                previous,
                deadline.due_at
            );
            if seen.passed.contains(&deadline.id) {
                prop_assert_eq!(
                    deadline.due_at,
                    *previous,
                    "a deadline that passed moved again"
                );
            }
        }
        if let Some(previous) = seen.status.get(&deadline.id)
            && *previous != DeadlineStatus::Open
        {
            prop_assert_eq!(deadline.status, *previous, "status left {:?}", previous);
        }
        let closings = seen.closings.get(&deadline.id).copied().unwrap_or(0);
        prop_assert_eq!(
            closings,
            usize::from(deadline.status != DeadlineStatus::Open),
            "status {:?} after {} closings",
            deadline.status,
            closings
        );
        if deadline.status == DeadlineStatus::Open && !world.inv.suspended && deadline.due_at < now
        {
            seen.passed.insert(deadline.id);
        }
        if seen.passed.contains(&deadline.id) {
            prop_assert!(
                deadline.status != DeadlineStatus::Met,
                "a passed deadline was MET"
            );
        }
        seen.due.insert(deadline.id, deadline.due_at);
        seen.status.insert(deadline.id, deadline.status);
    }
    // The counted responses are each college's latest signed response.
    for response in world.inv.counted_responses() {
        prop_assert!(!response.signed_by.is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_rounds_keep_the_deadline_invariants(
        factual_due in proptest::option::of(1u64..40),
        joint in any::<bool>(),
        mut ops in proptest::collection::vec(op_strategy(), 1..120),
        cancel_at in proptest::option::weighted(0.2, any::<proptest::sample::Index>()),
    ) {
        if let Some(index) = cancel_at {
            ops.insert(index.index(ops.len() + 1), Op::Cancel);
        }
        let mut world = World::defaults(t("2019-09-02T10:00:00+02:00"));
        world.research_ready(
            if joint { ResponseMode::Joint } else { ResponseMode::Separate },
            None,
        );
        let due = factual_due.map(|days| {
            (t("2019-09-02T10:00:00+02:00").date_naive() + chrono::Days::new(days)).to_string()
        });
        world.ok(P::ChairB, factual_check(due.as_deref()));
        let mut seen = Seen::default();
        check(&world, world.now, &[], &mut seen)?;
        for op in &ops {
            let before = world.now;
            let changes = run_op(&mut world, op).unwrap_or_default();
            check(&world, before, &changes, &mut seen)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 10. Audit names of the round's changes (the e2e tests count these)
// ---------------------------------------------------------------------------------------------

#[test]
fn the_round_actions_have_their_audit_names() {
    let id = rkflow_domain::DeadlineId::new();
    let m = MunicipalityId::new();
    let names: Vec<&str> = [
        Change::DeadlineOpened {
            deadline: id,
            kind: DeadlineKind::AdministrativeResponse,
            municipality: m,
            due_at: t("2019-11-14T22:59:59Z"),
        },
        Change::DeadlineClosed {
            deadline: id,
            municipality: m,
            status: DeadlineStatus::Met,
        },
        Change::DeadlineClosed {
            deadline: id,
            municipality: m,
            status: DeadlineStatus::Missed,
        },
        Change::DeadlineClosed {
            deadline: id,
            municipality: m,
            status: DeadlineStatus::Waived,
        },
        Change::ReminderDue {
            deadline: id,
            kind: DeadlineKind::AdministrativeResponse,
            municipality: m,
            due_at: t("2019-11-14T22:59:59Z"),
            before_seconds: DAY,
            also_covers: vec![],
        },
        Change::NoResponse { colleges: vec![m] },
    ]
    .iter()
    .map(Change::action)
    .collect();
    assert_eq!(
        names,
        [
            "deadline.opened",
            "deadline.met",
            "deadline.missed",
            "deadline.waived",
            "deadline.reminder",
            "rebuttal.no_response",
        ]
    );
}

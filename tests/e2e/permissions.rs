//! The exhaustive permission probe: for every capacity, every phase an investigation can be in
//! today (and its suspended variant) and every action that has an endpoint, the server must
//! answer what the domain's permission table (`rkflow_domain::permission::authorize`) and
//! visibility table (`rkflow_domain::visibility::can_see_investigation`) say.

use crate::support::{
    ADD_RECOMMENDATION, APPROVE, ASSIGN_RAPPORTEUR, AUDIT_TRAIL, CANCEL, Flow, REQUEST_CHANGES,
    RESUME, SET_REBUTTAL_TERMS, SUBMIT, SUSPEND, VERIFY,
};
use rkflow_domain::permission::{ActionContext, authorize};
use rkflow_domain::visibility::can_see_investigation;
use rkflow_domain::{Action, Actor, Capacity, DocumentKind, DomainError, Phase, UserId};
use rkflow_e2e::{Gql, TestServer, for_each_backend, org};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// One fixture user per capacity, plus a chair of a commission that does not participate and
/// an anonymous caller; with the capacities each must have (checked, so that every probe tests
/// what it claims to).
const CALLERS: &[(&str, &[Capacity])] = &[
    ("chair_b", &[Capacity::ParticipatingChair]),
    ("member_b", &[Capacity::ParticipatingMember]),
    ("secretary_b", &[Capacity::ParticipatingSecretary]),
    ("external", &[Capacity::Rapporteur]),
    ("college_b", &[Capacity::CollegeContact]),
    ("civil_b", &[Capacity::CivilServiceContact]),
    ("griffier_b", &[Capacity::Griffier]),
    ("council_b", &[Capacity::CouncilMember]),
    ("admin", &[Capacity::Admin]),
    ("chair_x", &[]),
    (crate::support::ANONYMOUS, &[]),
];

/// A state a probe runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct State {
    phase: Phase,
    suspended: bool,
    /// For CANCELLED: whether it was cancelled before the PROPOSAL gate passed.
    before_gate: bool,
}

impl State {
    fn label(self) -> String {
        let mut label = self.phase.as_str().to_string();
        if self.suspended {
            label.push_str(" (suspended)");
        }
        if self.before_gate {
            label.push_str(" (before the PROPOSAL gate)");
        }
        label
    }
}

const fn state(phase: Phase, suspended: bool) -> State {
    State {
        phase,
        suspended,
        before_gate: false,
    }
}

const STATES: &[State] = &[
    state(Phase::Proposal, false),
    state(Phase::Proposal, true),
    state(Phase::Research, false),
    state(Phase::Research, true),
    state(Phase::AdministrativeRebuttal, false),
    state(Phase::AdministrativeRebuttal, true),
    state(Phase::Cancelled, false),
    State {
        phase: Phase::Cancelled,
        suspended: false,
        before_gate: true,
    },
];

/// The operation that performs `action` on investigation `id`, when it has an endpoint today.
fn operation(flow: &Flow<'_>, action: Action, id: &str) -> Option<(&'static str, Value)> {
    let plain = json!({ "id": id });
    let with_reason = json!({ "id": id, "reason": "Een goede reden" });
    Some(match action {
        Action::ApprovePhase => (APPROVE, plain),
        Action::RequestChanges => (REQUEST_CHANGES, with_reason),
        Action::SubmitVersion(kind) => {
            let mut input = json!({
                "investigationId": id,
                "kind": kind.as_str(),
                "content": format!("# {}", kind.as_str()),
            });
            if kind == DocumentKind::Annex {
                input["title"] = json!("Bijlage bij de probe");
            }
            (SUBMIT, json!({ "input": input }))
        }
        Action::AddRecommendation => (
            ADD_RECOMMENDATION,
            json!({ "id": id, "text": "Doe het beter", "addressee": "COUNCIL" }),
        ),
        Action::AssignRapporteur => (
            ASSIGN_RAPPORTEUR,
            json!({
                "id": id,
                "commission": flow.commission_id("b"),
                "user": flow.user_id("outsider"),
            }),
        ),
        Action::SetRebuttalTerms => (SET_REBUTTAL_TERMS, json!({ "id": id, "mode": "SEPARATE" })),
        Action::Suspend => (SUSPEND, with_reason),
        Action::Resume => (RESUME, plain),
        Action::Cancel => (CANCEL, with_reason),
        Action::ViewAuditTrail => (AUDIT_TRAIL, plain),
        Action::VerifyAuditTrail => (VERIFY, plain),
        // The rebuttal round, submission and follow-up (issues 4 and 5) need set-ups of their
        // own (responses, deadlines, a published bundle): not probed here.
        Action::StartFactualCheck
        | Action::FileResponse
        | Action::CosignResponse
        | Action::RequestExtension
        | Action::DecideExtension
        | Action::RecordCouncilDecision
        | Action::AddImplementationUpdate => return None,
    })
}

fn is_query(action: Action) -> bool {
    matches!(action, Action::ViewAuditTrail | Action::VerifyAuditTrail)
}

/// The actor the server builds for a fixture user: the user and its stored grants.
async fn actor(flow: &Flow<'_>, who: &str) -> Actor {
    if flow.token(who).is_none() {
        return Actor::anonymous();
    }
    let person = flow.org.person(who);
    let grants = rkflow_store::accounts::grants_of(&flow.server.db().conn, person.id)
        .await
        .expect("grants");
    Actor::user(UserId(person.id), grants.into_iter().map(|g| g.grant))
}

/// Builds a fresh investigation in `state` (external is Bloemendaal's rapporteur).
async fn build(flow: &Flow<'_>, state: State) -> String {
    let id = if state.phase == Phase::Cancelled && state.before_gate {
        let id = flow.investigation_in(Phase::Proposal).await;
        flow.cancel("chair_b", &id).await.data();
        id
    } else {
        flow.investigation_in(state.phase).await
    };
    if state.suspended {
        flow.suspend("chair_h", &id).await.data();
    }
    id
}

/// Loads the investigation as the server will decide on it, checking that it is in `state`.
async fn load(flow: &Flow<'_>, state: State, id: &str) -> rkflow_domain::Investigation {
    let id = Uuid::parse_str(id).expect("an id");
    let loaded = rkflow_store::investigations::load(flow.server.db(), id)
        .await
        .expect("load")
        .expect("the investigation exists");
    let domain = loaded.domain.clone();
    assert_eq!(
        (domain.phase, domain.suspended),
        (state.phase, state.suspended),
        "the probe runs against {}",
        state.label()
    );
    assert_eq!(
        domain.proposal_gate_passed(),
        !state.before_gate && state.phase != Phase::Proposal,
        "{}",
        state.label()
    );
    domain
}

/// What the tables say `actor` gets for `action`.
fn expected(
    domain: &rkflow_domain::Investigation,
    who: &str,
    actor: &Actor,
    action: Action,
) -> Result<(), DomainError> {
    let relation = domain.relation(actor);
    let wanted: BTreeSet<Capacity> = CALLERS
        .iter()
        .find(|(key, _)| *key == who)
        .map(|(_, capacities)| capacities.iter().copied().collect())
        .unwrap_or_default();
    assert_eq!(relation.capacities, wanted, "{who}'s capacities");
    let context = ActionContext {
        authenticated: actor.user.is_some(),
        visible: can_see_investigation(&relation, domain.proposal_gate_passed(), domain.published),
        phase: domain.phase,
        suspended: domain.suspended,
    };
    authorize(&relation, context, action)
}

/// Whether the server's answer agrees with the table's outcome; the reason when not.
fn disagreement(expected: &Result<(), DomainError>, answer: &Gql) -> Option<String> {
    let got = answer.code();
    match expected {
        Err(DomainError::NotFound | DomainError::Forbidden(_) | DomainError::Unauthenticated)
        | Err(DomainError::Conflict(_)) => {
            let want = expected.as_ref().err().map(DomainError::code);
            (got != want).then(|| format!("expected {want:?}, got {got:?}"))
        }
        Err(DomainError::BadInput { .. }) => Some("the table never answers BAD_USER_INPUT".into()),
        // Allowed: the command may still refuse on its own checks (an incomplete gate, terms
        // already set, no factual check open), but never as a permission error.
        Ok(()) => match got {
            None | Some("CONFLICT") | Some("BAD_USER_INPUT") => None,
            Some(other) => Some(format!("allowed by the table, but {other}")),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_agrees_with_the_permission_table() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let mut actors = BTreeMap::new();
        for (who, _) in CALLERS {
            actors.insert(*who, actor(&flow, who).await);
        }
        let actions: Vec<Action> = Action::all()
            .into_iter()
            .filter(|action| operation(&flow, *action, "").is_some())
            .collect();
        assert_eq!(actions.len(), 18, "the actions with an endpoint today");

        // Every state is probed on its own investigation; the states run side by side.
        let probe_state = |state: State| {
            let flow = &flow;
            let actors = &actors;
            let actions = &actions;
            async move {
                let mut problems = Vec::new();
                let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
                let mut id = build(flow, state).await;
                let mut domain = load(flow, state, &id).await;
                for (who, _) in CALLERS {
                    let actor = &actors[who];
                    for action in actions {
                        let want = expected(&domain, who, actor, *action);
                        let (query, variables) =
                            operation(flow, *action, &id).expect("an endpoint");
                        let answer = flow.gql(who, query, variables).await;
                        if let Some(problem) = disagreement(&want, &answer) {
                            problems.push(format!(
                                "{} {who} {}: {problem} ({})",
                                state.label(),
                                action.name(),
                                answer.message()
                            ));
                        }
                        *outcomes
                            .entry(answer.code().unwrap_or("OK").to_string())
                            .or_default() += 1;
                        // A change (or an unexpected one) gets the next probe a fresh
                        // investigation in the intended state.
                        if answer.code().is_none() && !is_query(*action) {
                            id = build(flow, state).await;
                            domain = load(flow, state, &id).await;
                        }
                    }
                }
                (problems, outcomes)
            }
        };
        let results = futures::future::join_all(STATES.iter().map(|s| probe_state(*s))).await;
        let mut problems = Vec::new();
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        for (state_problems, state_outcomes) in results {
            problems.extend(state_problems);
            for (code, count) in state_outcomes {
                *outcomes.entry(code).or_default() += count;
            }
        }
        assert!(
            problems.is_empty(),
            "{}: {} disagreements:\n{}",
            server.label,
            problems.len(),
            problems.join("\n")
        );
        // The probe covered every kind of answer.
        let total: usize = outcomes.values().sum();
        assert_eq!(total, STATES.len() * CALLERS.len() * actions.len());
        for code in [
            "OK",
            "NOT_FOUND",
            "FORBIDDEN",
            "CONFLICT",
            "UNAUTHENTICATED",
        ] {
            assert!(
                outcomes.get(code).copied().unwrap_or(0) > 0,
                "{code}: {outcomes:?}"
            );
        }
        server.stop().await;
    })
    .await;
}

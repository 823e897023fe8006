//! Leak tests (issue 6, item 6): no path shows more than the contract's "Who sees what" table.
//!
//! One server per backend holds a joint investigation of Bloemendaal (b) and Heemstede (h) in
//! every state that changes what someone may see: PROPOSAL before its gate; cancelled before
//! that gate; RESEARCH with a running factual check and a FACTUAL_RESPONSE; ADMINISTRATIVE_
//! REBUTTAL with a JOINT response listing both colleges, single-college responses (one of them
//! replaced, so no longer counted), deadlines and extension requests; the same round suspended,
//! and cancelled; EPILOGUE; COUNCIL_SUBMISSION; FOLLOW_UP (published, with council decisions and
//! implementation updates); CLOSED. Beside them a published investigation of Haarlem (x) alone.
//!
//! Every piece of content carries a unique marker `SECRET-<state>-<piece>` (titles, research
//! questions, every version's text, document titles, recommendation texts, responses, extension
//! reasons, approval comments, council-decision notes, implementation updates). For every
//! fixture user and the anonymous caller, the expected visible set is computed from the table
//! as written below ([`Rule`] per piece, [`sees`]); it does not ask the server's own rules.
//! Then every path is asked and its raw answer scanned for every marker and every id of every
//! investigation (versions, documents, recommendations, responses, extension requests,
//! deadlines, submissions, the investigations themselves):
//!
//! - `investigation(id)` asking for every nested field: exactly the expected markers and ids,
//!   and the expected phase, rapporteurs, approvals, rebuttal terms, positions, submissions;
//! - `investigations` (edges, totalCount, the phase filter), `publishedInvestigations`,
//!   `recommendationRegister`;
//! - `auditTrail` (the team only; FORBIDDEN for the municipalities' roles; NOT_FOUND else);
//! - every version's download URL (200 exactly for the expected versions, 404 otherwise) and
//!   every bundle URL (public, holding exactly the bundle);
//! - every mutation an outsider might try on the investigation or on its responses, extension
//!   requests and recommendations: NOT_FOUND with the same status and the same bytes as for an
//!   id that does not exist (the parties get the permission table's answer instead);
//! - the `investigationEvents` subscription: accepted for the team (an event arrives), refused
//!   with UNAUTHENTICATED, FORBIDDEN or NOT_FOUND (the latter identical to a missing id).
//!
//! Failures are collected and reported together, each naming the caller, the path and the
//! secret it saw or missed.

use crate::support::{
    ADD_RECOMMENDATION, ANONYMOUS, ASSIGN_RAPPORTEUR, Flow, PROPOSE, SUBMIT, Socket, id_of, open_ws,
};
use futures::{SinkExt, StreamExt};
use rkflow_e2e::{PEOPLE, TestServer, for_each_backend, org};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------------------------
// The contract's table, as data
// ---------------------------------------------------------------------------------------------

/// A municipality of the fixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum M {
    B,
    H,
    X,
}

impl M {
    fn parse(key: &str) -> Option<M> {
        match key {
            "b" => Some(M::B),
            "h" => Some(M::H),
            "x" => Some(M::X),
            _ => None,
        }
    }

    fn key(self) -> &'static str {
        match self {
            M::B => "b",
            M::H => "h",
            M::X => "x",
        }
    }
}

/// How a caller stands to one investigation (each fixture user holds one grant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rel {
    /// CHAIR, MEMBER, SECRETARY of a participating commission, or an assigned rapporteur.
    Team,
    College(M),
    Civil(M),
    /// GRIFFIER or COUNCIL_MEMBER.
    Council(M),
    /// Anyone else: other commissions and municipalities, users without a grant, ADMIN, and
    /// the anonymous caller.
    Public,
}

impl Rel {
    fn municipal(self) -> bool {
        matches!(self, Rel::College(_) | Rel::Civil(_) | Rel::Council(_))
    }

    fn college(self) -> bool {
        matches!(self, Rel::College(_))
    }
}

/// The facts about an investigation's state that the table depends on.
#[derive(Clone, Copy, Debug)]
struct Stage {
    phase: &'static str,
    suspended: bool,
    /// The PROPOSAL gate has passed (the approved proposal went out).
    gate: bool,
    /// A factual check has started.
    check: bool,
    /// Rebuttal terms are set.
    terms: bool,
    /// The RESEARCH gate has passed: the draft under rebuttal went to the colleges.
    draft: bool,
    /// The bundle is published.
    published: bool,
}

/// Who sees one piece of content: the rows of the contract's table.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    /// Title, phase, commissions (and the investigation's id): the team; the concerned
    /// municipalities' roles once the PROPOSAL gate passed; anyone once published.
    Investigation,
    /// Drafts, superseded versions, approvals, rapporteurs: the team only.
    TeamOnly,
    /// The PROPOSAL version approved at the gate, and the research questions and scope (part of
    /// the proposal, ARCHITECTURE.md): also every role of a concerned municipality once the gate
    /// passed. Not public (not in the bundle).
    Proposal,
    /// The RESEARCH_REPORT version current when the factual check started: also the concerned
    /// civil-service contacts from that moment.
    CheckBase,
    /// A municipality's FACTUAL_RESPONSE: also that municipality's civil-service contact.
    FactualResponse(M),
    /// The draft under rebuttal (CONCLUSIONS, RESEARCH_REPORT approved at the RESEARCH gate):
    /// also the college contacts from ADMINISTRATIVE_REBUTTAL on; public once in the bundle.
    Draft,
    /// Part of the published bundle (or a document it holds): public once published.
    Bundle,
    /// Recommendations with their positions, council decisions and implementation updates:
    /// also college contacts from the rebuttal on, every concerned municipal role once
    /// published; never the public (ARCHITECTURE.md).
    Recommendations,
    /// A response: also the contacts of the colleges it lists; public when it is in the bundle.
    Response { listed: Vec<M>, bundled: bool },
    /// A college's rebuttal deadline and extension requests: also that college's contacts.
    CollegeRound(M),
    /// A municipality's factual-check deadline: also its civil-service contact and (it is its
    /// college's deadline, ARCHITECTURE.md) its college contact.
    FactualDeadline(M),
    /// Visible when any of these is (a document: when any of its versions is).
    AnyOf(Vec<Rule>),
}

/// The contract's table: whether a caller standing `rel` to an investigation in `stage` sees a
/// piece of it under `rule`.
fn sees(rule: &Rule, rel: Rel, stage: &Stage) -> bool {
    let team = rel == Rel::Team;
    // "Before the PROPOSAL gate passes, an investigation exists only for its participating
    // commissions": nothing of it is seen by anybody who cannot see the investigation itself.
    let investigation = team || (stage.gate && rel.municipal()) || stage.published;
    if !investigation {
        return false;
    }
    match rule {
        Rule::Investigation => true,
        Rule::TeamOnly => team,
        Rule::Proposal => team || rel.municipal(),
        Rule::CheckBase => team || (stage.check && matches!(rel, Rel::Civil(_))),
        Rule::FactualResponse(m) => team || rel == Rel::Civil(*m),
        Rule::Draft => team || (stage.draft && rel.college()) || stage.published,
        Rule::Bundle => team || stage.published,
        Rule::Recommendations => {
            team || (stage.draft && rel.college()) || (stage.published && rel.municipal())
        }
        Rule::Response { listed, bundled } => {
            team || matches!(rel, Rel::College(m) if listed.contains(&m))
                || (stage.published && *bundled)
        }
        Rule::CollegeRound(m) => team || rel == Rel::College(*m),
        Rule::FactualDeadline(m) => team || rel == Rel::Civil(*m) || rel == Rel::College(*m),
        Rule::AnyOf(rules) => rules.iter().any(|r| sees(r, rel, stage)),
    }
}

/// A party to the investigation: the team, or a concerned municipality's role once the
/// PROPOSAL gate passed. Publication makes nobody a party (ARCHITECTURE.md): for everyone else
/// every action and the audit trail stay NOT_FOUND.
fn party(rel: Rel, stage: &Stage) -> bool {
    rel == Rel::Team || (stage.gate && rel.municipal())
}

/// The fixture role of a caller ("" for none and for the anonymous caller).
fn role_of(who: &str) -> &'static str {
    PEOPLE
        .iter()
        .find(|(key, _, _)| *key == who)
        .map_or("", |(_, role, _)| role)
}

/// Every caller: the fixture users and the anonymous caller.
fn callers() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = PEOPLE.iter().map(|(key, _, _)| *key).collect();
    all.push(ANONYMOUS);
    all
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// Every field of an investigation, nested to the bottom.
const FRAGMENTS: &str = "
fragment V on DocumentVersion { id number sha256 sizeBytes mediaType fileName content
    downloadUrl author { id name email } createdAt note }
fragment D on CouncilDecisionRecord { council { id name } decision note recordedAt
    recordedBy { id name } current }
fragment R on Recommendation { id number text addressee
    councilDecisions { ...D } councilDecisionHistory { ...D }
    implementationUpdates { municipality { id name } text author { id name } at }
    positions { college { id name } position } }
fragment I on Investigation { id title phase suspended publishedAt createdAt
    commissions { id name municipalities { id name } }
    municipalities { id name council { id name } college { id name } }
    researchQuestions scopeStart scopeEnd
    rapporteurs { user { id name email } commission { id name } }
    approvals { phase commission { id name } approvedBy { id name } approvedAt comment }
    missingApprovals { id name }
    gateRequirements rebuttalMode rebuttalDueDate
    documents { id kind title versions { ...V } latestVersion { ...V } }
    recommendations { ...R }
    submissions { id council { id name } submittedAt manifestSha256 manifest bundleUrl
        documents { ...V } }
    deadlines { id kind college { id name } dueAt status }
    extensionRequests { id college { id name } proposedDueDate reason granted }
    responses { id colleges { id name } signedBy { id name } version { ...V } filedAt late
        counted } }";

fn with_fragments(operation: &str) -> String {
    format!("{operation} {FRAGMENTS}")
}

fn one_query() -> String {
    with_fragments("query($id: ID!) { investigation(id: $id) { ...I } }")
}

fn list_query() -> String {
    with_fragments(
        "query { investigations(first: 20) { totalCount pageInfo { hasNextPage endCursor }
            edges { cursor node { ...I } } } }",
    )
}

fn published_query() -> String {
    with_fragments(
        "query { publishedInvestigations(first: 20) { totalCount
            pageInfo { hasNextPage endCursor } edges { cursor node { ...I } } } }",
    )
}

fn register_query() -> String {
    with_fragments(
        "query { recommendationRegister(first: 10) { totalCount
            pageInfo { hasNextPage endCursor }
            edges { cursor node {
                recommendation { ...R } investigation { ...I } municipality { id name }
                collegePosition councilDecision { ...D }
                implementationUpdates { municipality { id name } text author { id name } at }
            } } } }",
    )
}

const BY_PHASE: &str = "query($phase: Phase) {
    investigations(first: 20, phase: $phase) { totalCount edges { node { id } } } }";

const AUDIT: &str = "query($id: ID!, $after: String) {
    auditTrail(investigationId: $id, first: 100, after: $after) {
        totalCount pageInfo { hasNextPage endCursor }
        edges { cursor node { seq at action actor { id name } investigationId data hash } } } }";

const APPROVE: &str = "mutation($id: ID!, $comment: String) {
    approvePhase(investigationId: $id, comment: $comment) { id phase } }";

const FACTUAL_CHECK: &str = "mutation($id: ID!) { startFactualCheck(investigationId: $id) { id } }";

const FILE: &str = "mutation($input: FileResponseInput!) { fileResponse(input: $input) { id } }";

const REQUEST_EXTENSION: &str =
    "mutation($id: ID!, $college: ID!, $date: Date!, $reason: String!) {
    requestExtension(investigationId: $id, collegeId: $college, proposedDueDate: $date,
        reason: $reason) { id } }";

const DECIDE: &str = "mutation($id: ID!, $grant: Boolean!) {
    decideExtension(requestId: $id, grant: $grant) { id granted } }";

const DECISION: &str = "mutation($r: ID!, $c: ID!, $d: CouncilDecision!, $n: String) {
    recordCouncilDecision(recommendationId: $r, councilId: $c, decision: $d, note: $n) { id } }";

const UPDATE: &str = "mutation($r: ID!, $m: ID!, $t: String!) {
    addImplementationUpdate(recommendationId: $r, municipalityId: $m, text: $t) { id } }";

const EVENTS: &str = "subscription($id: ID!) { investigationEvents(investigationId: $id) {
    seq action actor { id name } investigationId data } }";

/// What an operation an outsider might try names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Investigation,
    Response,
    Extension,
    Recommendation,
}

/// An operation that names an object by id; run on a real id and on one that does not exist.
struct Op {
    name: &'static str,
    target: Target,
    query: &'static str,
}

const OPS: &[Op] = &[
    Op {
        name: "assignRapporteur",
        target: Target::Investigation,
        query: "mutation($id: ID!, $c: ID!, $u: ID!) {
            assignRapporteur(investigationId: $id, commissionId: $c, userId: $u) { id } }",
    },
    Op {
        name: "submitDocumentVersion",
        target: Target::Investigation,
        query: "mutation($input: SubmitDocumentVersionInput!) {
            submitDocumentVersion(input: $input) { id } }",
    },
    Op {
        name: "addRecommendation",
        target: Target::Investigation,
        query: "mutation($id: ID!) {
            addRecommendation(investigationId: $id, text: \"Poging\", addressee: COLLEGE) { id } }",
    },
    Op {
        name: "setRebuttalTerms",
        target: Target::Investigation,
        query: "mutation($id: ID!) {
            setRebuttalTerms(investigationId: $id, mode: JOINT) { id } }",
    },
    Op {
        name: "approvePhase",
        target: Target::Investigation,
        query: "mutation($id: ID!) { approvePhase(investigationId: $id) { id } }",
    },
    Op {
        name: "requestChanges",
        target: Target::Investigation,
        query: "mutation($id: ID!) {
            requestChanges(investigationId: $id, reason: \"Poging\") { id } }",
    },
    Op {
        name: "startFactualCheck",
        target: Target::Investigation,
        query: "mutation($id: ID!) { startFactualCheck(investigationId: $id) { id } }",
    },
    Op {
        name: "fileResponse",
        target: Target::Investigation,
        query: "mutation($input: FileResponseInput!) { fileResponse(input: $input) { id } }",
    },
    Op {
        name: "requestExtension",
        target: Target::Investigation,
        query: "mutation($id: ID!, $college: ID!) {
            requestExtension(investigationId: $id, collegeId: $college,
                proposedDueDate: \"2019-12-31\", reason: \"Poging\") { id } }",
    },
    Op {
        name: "suspendInvestigation",
        target: Target::Investigation,
        query: "mutation($id: ID!) {
            suspendInvestigation(investigationId: $id, reason: \"Poging\") { id } }",
    },
    Op {
        name: "resumeInvestigation",
        target: Target::Investigation,
        query: "mutation($id: ID!) { resumeInvestigation(investigationId: $id) { id } }",
    },
    Op {
        name: "cancelInvestigation",
        target: Target::Investigation,
        query: "mutation($id: ID!) {
            cancelInvestigation(investigationId: $id, reason: \"Poging\") { id } }",
    },
    Op {
        name: "verifyAuditTrail",
        target: Target::Investigation,
        query: "query($id: ID!) { verifyAuditTrail(investigationId: $id) { intact } }",
    },
    Op {
        name: "cosignResponse",
        target: Target::Response,
        query: "mutation($id: ID!) { cosignResponse(responseId: $id) { id } }",
    },
    Op {
        name: "decideExtension",
        target: Target::Extension,
        query: "mutation($id: ID!) { decideExtension(requestId: $id, grant: true) { id } }",
    },
    Op {
        name: "recordCouncilDecision",
        target: Target::Recommendation,
        query: "mutation($id: ID!, $c: ID!) {
            recordCouncilDecision(recommendationId: $id, councilId: $c, decision: NOTED) { id } }",
    },
    Op {
        name: "addImplementationUpdate",
        target: Target::Recommendation,
        query: "mutation($id: ID!, $m: ID!) {
            addImplementationUpdate(recommendationId: $id, municipalityId: $m, text: \"Poging\")
            { id } }",
    },
];

// ---------------------------------------------------------------------------------------------
// HTTP with raw answers (the scans read the exact text)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Raw {
    status: u16,
    text: String,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn code(&self) -> Option<String> {
        self.json()["errors"][0]["extensions"]["code"]
            .as_str()
            .map(str::to_string)
    }
}

async fn post(flow: &Flow<'_>, who: &str, query: &str, variables: Value) -> Raw {
    let mut request = flow
        .server
        .http
        .post(format!("{}/graphql", flow.server.base))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = flow.token(who) {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let id = request_id(&response);
    let text = response.text().await.expect("a body");
    Raw {
        status,
        text: without_request_id(text, &id),
    }
}

/// The response's `X-Request-Id`.
fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The text without the request id that every error carries (`extensions.requestId`, the same
/// as the header): it differs per request, and answers are compared as text.
fn without_request_id(text: String, id: &str) -> String {
    if id.is_empty() {
        return text;
    }
    text.replace(&format!(",\"requestId\":\"{id}\""), "")
}

/// A GET: status and body (bytes read as text; Markdown and stored ZIPs keep markers readable).
async fn get(flow: &Flow<'_>, who: &str, path: &str) -> Raw {
    let response = flow.get(who, path).await;
    let status = response.status().as_u16();
    let id = request_id(&response);
    let bytes = response.bytes().await.expect("a body");
    Raw {
        status,
        text: without_request_id(String::from_utf8_lossy(&bytes).into_owned(), &id),
    }
}

/// One operation that must succeed during the set-up; its data.
async fn ok(flow: &Flow<'_>, who: &str, query: &str, variables: Value) -> Value {
    let answer = flow.gql(who, query, variables.clone()).await;
    if let Some(errors) = answer.body.get("errors") {
        panic!("set-up step failed for {who}: {errors}\n{query}\n{variables}");
    }
    answer.body["data"].clone()
}

// ---------------------------------------------------------------------------------------------
// Building the investigations
// ---------------------------------------------------------------------------------------------

/// The organisation's ids by fixture key.
#[derive(Clone, Debug)]
struct Body {
    municipality: String,
    council: String,
    college: String,
    college_name: String,
}

async fn organisation(flow: &Flow<'_>) -> BTreeMap<M, Body> {
    let data = ok(
        flow,
        "admin",
        "{ municipalities { id name council { id } college { id name } } }",
        json!({}),
    )
    .await;
    let mut found = BTreeMap::new();
    for m in data["municipalities"].as_array().expect("a list") {
        let key = match m["name"].as_str() {
            Some("Bloemendaal") => M::B,
            Some("Heemstede") => M::H,
            Some("Haarlem") => M::X,
            other => panic!("unexpected municipality {other:?}"),
        };
        found.insert(
            key,
            Body {
                municipality: id_of(m),
                council: id_of(&m["council"]),
                college: id_of(&m["college"]),
                college_name: m["college"]["name"].as_str().expect("a name").to_string(),
            },
        );
    }
    found
}

/// The states of the joint investigation, in the order the scenario reaches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stop {
    Proposal,
    CancelledEarly,
    Research,
    Rebuttal,
    Suspended,
    Cancelled,
    Epilogue,
    Submission,
    FollowUp,
    Closed,
}

impl Stop {
    const ALL: [Stop; 10] = [
        Stop::Proposal,
        Stop::CancelledEarly,
        Stop::Research,
        Stop::Rebuttal,
        Stop::Suspended,
        Stop::Cancelled,
        Stop::Epilogue,
        Stop::Submission,
        Stop::FollowUp,
        Stop::Closed,
    ];

    fn label(self) -> &'static str {
        match self {
            Stop::Proposal => "P",
            Stop::CancelledEarly => "PC",
            Stop::Research => "R",
            Stop::Rebuttal => "RB",
            Stop::Suspended => "SU",
            Stop::Cancelled => "CA",
            Stop::Epilogue => "E",
            Stop::Submission => "CS",
            Stop::FollowUp => "FU",
            Stop::Closed => "CL",
        }
    }

    fn stage(self) -> Stage {
        let phase = match self {
            Stop::Proposal => "PROPOSAL",
            Stop::CancelledEarly | Stop::Cancelled => "CANCELLED",
            Stop::Research => "RESEARCH",
            Stop::Rebuttal | Stop::Suspended => "ADMINISTRATIVE_REBUTTAL",
            Stop::Epilogue => "EPILOGUE",
            Stop::Submission => "COUNCIL_SUBMISSION",
            Stop::FollowUp => "FOLLOW_UP",
            Stop::Closed => "CLOSED",
        };
        let gate = self >= Stop::Research;
        Stage {
            phase,
            suspended: self == Stop::Suspended,
            gate,
            check: gate,
            terms: gate,
            draft: self >= Stop::Rebuttal,
            published: self >= Stop::FollowUp,
        }
    }
}

/// One investigation as built: its state, its markers and what the survey found of it.
struct Inv {
    label: &'static str,
    id: String,
    stage: Stage,
    municipalities: Vec<M>,
    /// `external` is an assigned rapporteur.
    rapporteur: bool,
    /// A team member who reads it whole.
    reader: &'static str,
    /// The chair and commission that write one harmless event (a rapporteur assignment).
    event_chair: &'static str,
    event_commission: M,
    /// Markers, their rule, and whether they must show (a superseded title may, need not).
    markers: Vec<(String, Rule, bool)>,
    /// Each college's position (college name, position) and the rule of the response it is in.
    positions: Vec<(String, &'static str, Rule)>,
    recommendations: Vec<String>,
    /// Filled by the survey: ids with their rules.
    versions: Vec<(String, Rule)>,
    responses: Vec<(String, Rule)>,
    extensions: Vec<(String, Rule)>,
    submissions: Vec<String>,
}

impl Inv {
    fn new(label: &'static str, municipalities: Vec<M>, stage: Stage) -> Inv {
        let joint = municipalities.contains(&M::B);
        Inv {
            label,
            id: String::new(),
            stage,
            municipalities,
            rapporteur: joint,
            reader: if joint { "chair_b" } else { "chair_x" },
            event_chair: if joint { "chair_h" } else { "chair_x" },
            event_commission: if joint { M::H } else { M::X },
            markers: Vec::new(),
            positions: Vec::new(),
            recommendations: Vec::new(),
            versions: Vec::new(),
            responses: Vec::new(),
            extensions: Vec::new(),
            submissions: Vec::new(),
        }
    }

    /// A new marker that must show exactly where `rule` says.
    fn mark(&mut self, piece: &str, rule: Rule) -> String {
        let text = format!("SECRET-{}-{piece}", self.label);
        self.markers.push((text.clone(), rule, true));
        text
    }

    /// A new marker that may show only where `rule` says, but need not show there.
    fn mark_optional(&mut self, piece: &str, rule: Rule) -> String {
        let text = format!("SECRET-{}-{piece}", self.label);
        self.markers.push((text.clone(), rule, false));
        text
    }

    /// How a caller stands to this investigation.
    fn rel(&self, who: &str) -> Rel {
        if who == ANONYMOUS {
            return Rel::Public;
        }
        if who == "external" && self.rapporteur {
            return Rel::Team;
        }
        let Some((_, role, scope)) = PEOPLE.iter().find(|(key, _, _)| *key == who) else {
            panic!("no fixture user {who}");
        };
        let Some(m) = M::parse(scope).filter(|m| self.municipalities.contains(m)) else {
            return Rel::Public;
        };
        match *role {
            "CHAIR" | "MEMBER" | "SECRETARY" => Rel::Team,
            "COLLEGE_CONTACT" => Rel::College(m),
            "CIVIL_SERVICE_CONTACT" => Rel::Civil(m),
            "GRIFFIER" | "COUNCIL_MEMBER" => Rel::Council(m),
            _ => Rel::Public,
        }
    }

    fn visible_to(&self, who: &str) -> bool {
        sees(&Rule::Investigation, self.rel(who), &self.stage)
    }
}

/// Writes a Markdown version; its id.
async fn submit(
    flow: &Flow<'_>,
    who: &str,
    id: &str,
    kind: &str,
    title: Option<&str>,
    text: &str,
) -> String {
    let mut input = json!({ "investigationId": id, "kind": kind, "content": text });
    if let Some(title) = title {
        input["title"] = json!(title);
    }
    let data = ok(flow, who, SUBMIT, json!({ "input": input })).await;
    id_of(&data["submitDocumentVersion"])
}

async fn approve(flow: &Flow<'_>, who: &str, id: &str, comment: Option<&str>) -> String {
    let data = ok(flow, who, APPROVE, json!({ "id": id, "comment": comment })).await;
    data["approvePhase"]["phase"]
        .as_str()
        .expect("a phase")
        .to_string()
}

async fn approve_both(flow: &Flow<'_>, id: &str, expected: &str) {
    approve(flow, "chair_b", id, None).await;
    let phase = approve(flow, "chair_h", id, None).await;
    assert_eq!(phase, expected, "the gate passes");
}

async fn recommend(flow: &Flow<'_>, who: &str, id: &str, text: &str, addressee: &str) -> String {
    let data = ok(
        flow,
        who,
        ADD_RECOMMENDATION,
        json!({ "id": id, "text": text, "addressee": addressee }),
    )
    .await;
    id_of(&data["addRecommendation"])
}

async fn file_response(
    flow: &Flow<'_>,
    who: &str,
    id: &str,
    colleges: Vec<&str>,
    text: &str,
    recommendations: &[String],
    position: &str,
) {
    let positions: Vec<Value> = recommendations
        .iter()
        .map(|r| json!({ "recommendationId": r, "position": position }))
        .collect();
    ok(
        flow,
        who,
        FILE,
        json!({ "input": {
            "investigationId": id,
            "collegeIds": colleges,
            "content": text,
            "positions": positions,
        }}),
    )
    .await;
}

/// The joint investigation of b and h, driven to `stop`.
async fn build_joint(flow: &Flow<'_>, org: &BTreeMap<M, Body>, stop: Stop) -> Inv {
    let mut inv = Inv::new(stop.label(), vec![M::B, M::H], stop.stage());
    let (b, h) = (&org[&M::B], &org[&M::H]);
    let title = inv.mark("TITLE", Rule::Investigation);
    let question = inv.mark("RQ", Rule::Proposal);
    let data = ok(
        flow,
        "chair_b",
        PROPOSE,
        json!({ "input": {
            "title": format!("{title} Onderzoek naar de Wmo"),
            "commissionIds": [flow.commission_id("b"), flow.commission_id("h")],
            "researchQuestions": [format!("{question} Werkt het beleid?")],
            "scopeStart": "2015-01-01",
            "scopeEnd": "2018-12-31",
        }}),
    )
    .await;
    let id = id_of(&data["proposeInvestigation"]);
    inv.id = id.clone();
    ok(
        flow,
        "chair_b",
        ASSIGN_RAPPORTEUR,
        json!({ "id": id, "commission": flow.commission_id("b"), "user": flow.user_id("external") }),
    )
    .await;

    // PROPOSAL: a first draft and the version that will be approved.
    let proposal_title = inv.mark("PROP-TITLE", Rule::Proposal);
    let text = format!("# {} Eerste opzet", inv.mark("PROP-1", Rule::TeamOnly));
    submit(
        flow,
        "member_b",
        &id,
        "PROPOSAL",
        Some(&proposal_title),
        &text,
    )
    .await;
    let text = format!("# {} Voorstel", inv.mark("PROP-2", Rule::Proposal));
    submit(flow, "external", &id, "PROPOSAL", None, &text).await;
    match stop {
        Stop::Proposal => {
            let comment = format!("{} Akkoord", inv.mark("APPR", Rule::TeamOnly));
            approve(flow, "chair_b", &id, Some(&comment)).await;
            return inv;
        }
        Stop::CancelledEarly => {
            ok(
                flow,
                "chair_h",
                crate::support::CANCEL,
                json!({ "id": id, "reason": "Overbodig geworden" }),
            )
            .await;
            return inv;
        }
        _ => {}
    }
    approve_both(flow, &id, "RESEARCH").await;

    // RESEARCH: the report as the factual check starts, then a revision under a new title.
    let title_1 = inv.mark_optional("REPORT-TITLE-1", Rule::CheckBase);
    let text = format!("# {} Concept", inv.mark("REPORT-1", Rule::CheckBase));
    submit(
        flow,
        "secretary_b",
        &id,
        "RESEARCH_REPORT",
        Some(&title_1),
        &text,
    )
    .await;
    ok(flow, "chair_h", FACTUAL_CHECK, json!({ "id": id })).await;
    let title_2 = inv.mark("REPORT-TITLE-2", Rule::Draft);
    let text = format!("# {} Rapport", inv.mark("REPORT-2", Rule::Draft));
    submit(
        flow,
        "secretary_h",
        &id,
        "RESEARCH_REPORT",
        Some(&title_2),
        &text,
    )
    .await;
    let fact_title = inv.mark("FACT-B-TITLE", Rule::FactualResponse(M::B));
    let text = format!(
        "# {} Feiten",
        inv.mark("FACT-B", Rule::FactualResponse(M::B))
    );
    submit(
        flow,
        "civil_b",
        &id,
        "FACTUAL_RESPONSE",
        Some(&fact_title),
        &text,
    )
    .await;
    let conclusions_title = inv.mark("CONCL-TITLE", Rule::Draft);
    let text = format!("# {} Conclusies", inv.mark("CONCL-1", Rule::TeamOnly));
    submit(
        flow,
        "member_h",
        &id,
        "CONCLUSIONS",
        Some(&conclusions_title),
        &text,
    )
    .await;
    let annex_title = inv.mark("ANNEX-TITLE", Rule::Bundle);
    let text = format!("# {} Bijlage", inv.mark("ANNEX-1", Rule::TeamOnly));
    submit(flow, "member_b", &id, "ANNEX", Some(&annex_title), &text).await;
    let text = format!(
        "{} Stel meetbare doelen",
        inv.mark("REC-1", Rule::Recommendations)
    );
    inv.recommendations
        .push(recommend(flow, "member_b", &id, &text, "COUNCIL").await);
    let text = format!(
        "{} Rapporteer jaarlijks",
        inv.mark("REC-2", Rule::Recommendations)
    );
    inv.recommendations
        .push(recommend(flow, "member_h", &id, &text, "COLLEGE").await);
    ok(
        flow,
        "chair_b",
        crate::support::SET_REBUTTAL_TERMS,
        json!({ "id": id, "mode": "JOINT" }),
    )
    .await;
    if stop == Stop::Research {
        // Heemstede's civil service has not answered: the factual check is still running.
        return inv;
    }
    let text = format!(
        "# {} Feiten",
        inv.mark("FACT-H", Rule::FactualResponse(M::H))
    );
    submit(flow, "civil_h", &id, "FACTUAL_RESPONSE", None, &text).await;
    let text = format!("# {} Conclusies", inv.mark("CONCL-2", Rule::Draft));
    submit(flow, "secretary_b", &id, "CONCLUSIONS", None, &text).await;
    let text = format!("# {} Bijlage", inv.mark("ANNEX-2", Rule::Bundle));
    submit(flow, "member_b", &id, "ANNEX", Some(&annex_title), &text).await;
    approve_both(flow, &id, "ADMINISTRATIVE_REBUTTAL").await;

    // ADMINISTRATIVE_REBUTTAL: extension requests (one granted, one open), then responses:
    // Bloemendaal alone (later replaced), a JOINT one of Heemstede listing both colleges, and
    // Bloemendaal's replacement.
    let reason = format!(
        "{} Collegevergadering",
        inv.mark("EXT-B", Rule::CollegeRound(M::B))
    );
    let data = ok(
        flow,
        "college_b",
        REQUEST_EXTENSION,
        json!({ "id": id, "college": b.college, "date": "2019-10-15", "reason": reason }),
    )
    .await;
    let request = id_of(&data["requestExtension"]);
    for chair in ["chair_b", "chair_h"] {
        ok(flow, chair, DECIDE, json!({ "id": request, "grant": true })).await;
    }
    let reason = format!("{} Zomerreces", inv.mark("EXT-H", Rule::CollegeRound(M::H)));
    ok(
        flow,
        "college_h",
        REQUEST_EXTENSION,
        json!({ "id": id, "college": h.college, "date": "2019-10-16", "reason": reason }),
    )
    .await;
    let recommendations = inv.recommendations.clone();
    let old = Rule::Response {
        listed: vec![M::B],
        bundled: false,
    };
    let text = format!("# {} Eerste reactie", inv.mark("RESP-B-OLD", old));
    file_response(
        flow,
        "college_b",
        &id,
        vec![&b.college],
        &text,
        &recommendations,
        "AGREES",
    )
    .await;
    let joint = Rule::Response {
        listed: vec![M::B, M::H],
        bundled: true,
    };
    let text = format!(
        "# {} Gezamenlijke reactie",
        inv.mark("RESP-JOINT", joint.clone())
    );
    file_response(
        flow,
        "college_h",
        &id,
        vec![&b.college, &h.college],
        &text,
        &recommendations,
        "PARTLY",
    )
    .await;
    let own = Rule::Response {
        listed: vec![M::B],
        bundled: true,
    };
    let text = format!("# {} Reactie", inv.mark("RESP-B", own.clone()));
    file_response(
        flow,
        "college_b",
        &id,
        vec![&b.college],
        &text,
        &recommendations,
        "DISAGREES",
    )
    .await;
    // Each college's position comes from its counted response: Bloemendaal's latest own one,
    // Heemstede's the joint one.
    inv.positions = vec![
        (b.college_name.clone(), "DISAGREES", own),
        (h.college_name.clone(), "PARTLY", joint),
    ];
    match stop {
        Stop::Rebuttal | Stop::Suspended => {
            let comment = format!("{} Akkoord", inv.mark("APPR", Rule::TeamOnly));
            approve(flow, "chair_b", &id, Some(&comment)).await;
            if stop == Stop::Suspended {
                ok(
                    flow,
                    "chair_h",
                    crate::support::SUSPEND,
                    json!({ "id": id, "reason": "Raadsverkiezingen" }),
                )
                .await;
            }
            return inv;
        }
        Stop::Cancelled => {
            ok(
                flow,
                "chair_b",
                crate::support::CANCEL,
                json!({ "id": id, "reason": "Overbodig geworden" }),
            )
            .await;
            return inv;
        }
        _ => {}
    }
    approve_both(flow, &id, "EPILOGUE").await;

    // EPILOGUE: the nawoord and a first cover letter.
    let text = format!("# {} Nawoord", inv.mark("EPI-1", Rule::Bundle));
    submit(flow, "member_b", &id, "EPILOGUE", None, &text).await;
    let cover_title = inv.mark("COVER-TITLE", Rule::Bundle);
    let text = format!("# {} Brief", inv.mark("COVER-1", Rule::TeamOnly));
    submit(
        flow,
        "secretary_h",
        &id,
        "COVER_LETTER",
        Some(&cover_title),
        &text,
    )
    .await;
    if stop == Stop::Epilogue {
        let comment = format!("{} Akkoord", inv.mark("APPR", Rule::TeamOnly));
        approve(flow, "chair_h", &id, Some(&comment)).await;
        return inv;
    }
    approve_both(flow, &id, "COUNCIL_SUBMISSION").await;

    // COUNCIL_SUBMISSION: the cover letter revised.
    let text = format!("# {} Brief", inv.mark("COVER-2", Rule::Bundle));
    submit(flow, "secretary_b", &id, "COVER_LETTER", None, &text).await;
    if stop == Stop::Submission {
        let comment = format!("{} Akkoord", inv.mark("APPR", Rule::TeamOnly));
        approve(flow, "chair_b", &id, Some(&comment)).await;
        return inv;
    }
    approve_both(flow, &id, "FOLLOW_UP").await;

    // FOLLOW_UP: council decisions (one replaced) and implementation updates.
    let first = &inv.recommendations[0].clone();
    let second = &inv.recommendations[1].clone();
    for (who, council, decision, piece) in [
        ("griffier_b", &b.council, "ADOPTED", "DEC-B-1"),
        ("griffier_b", &b.council, "AMENDED", "DEC-B-2"),
        ("griffier_h", &h.council, "REJECTED", "DEC-H"),
    ] {
        let note = format!("{} Raadsbesluit", inv.mark(piece, Rule::Recommendations));
        ok(
            flow,
            who,
            DECISION,
            json!({ "r": first, "c": council, "d": decision, "n": note }),
        )
        .await;
    }
    for (who, recommendation, municipality, piece) in [
        ("college_b", first, &b.municipality, "UPD-B"),
        ("college_h", second, &h.municipality, "UPD-H"),
    ] {
        let text = format!("{} In uitvoering", inv.mark(piece, Rule::Recommendations));
        ok(
            flow,
            who,
            UPDATE,
            json!({ "r": recommendation, "m": municipality, "t": text }),
        )
        .await;
    }
    if stop == Stop::FollowUp {
        let comment = format!("{} Akkoord", inv.mark("APPR", Rule::TeamOnly));
        approve(flow, "chair_b", &id, Some(&comment)).await;
        return inv;
    }
    approve_both(flow, &id, "CLOSED").await;
    inv
}

/// Haarlem's own investigation, published: only its chair and college are parties.
async fn build_haarlem(flow: &Flow<'_>, org: &BTreeMap<M, Body>) -> Inv {
    let stage = Stage {
        phase: "FOLLOW_UP",
        suspended: false,
        gate: true,
        check: false,
        terms: true,
        draft: true,
        published: true,
    };
    let mut inv = Inv::new("X", vec![M::X], stage);
    let x = &org[&M::X];
    let title = inv.mark("TITLE", Rule::Investigation);
    let question = inv.mark("RQ", Rule::Proposal);
    let data = ok(
        flow,
        "chair_x",
        PROPOSE,
        json!({ "input": {
            "title": format!("{title} Onderzoek naar parkeren"),
            "commissionIds": [flow.commission_id("x")],
            "researchQuestions": [format!("{question} Wat kost het?")],
        }}),
    )
    .await;
    let id = id_of(&data["proposeInvestigation"]);
    inv.id = id.clone();
    let text = format!("# {} Voorstel", inv.mark("PROP-1", Rule::Proposal));
    submit(flow, "chair_x", &id, "PROPOSAL", None, &text).await;
    assert_eq!(approve(flow, "chair_x", &id, None).await, "RESEARCH");
    let text = format!("# {} Rapport", inv.mark("REPORT-1", Rule::Draft));
    submit(flow, "chair_x", &id, "RESEARCH_REPORT", None, &text).await;
    let text = format!("# {} Conclusies", inv.mark("CONCL-1", Rule::Draft));
    submit(flow, "chair_x", &id, "CONCLUSIONS", None, &text).await;
    let text = format!(
        "{} Handhaaf beter",
        inv.mark("REC-1", Rule::Recommendations)
    );
    inv.recommendations
        .push(recommend(flow, "chair_x", &id, &text, "COLLEGE").await);
    ok(
        flow,
        "chair_x",
        crate::support::SET_REBUTTAL_TERMS,
        json!({ "id": id, "mode": "SEPARATE" }),
    )
    .await;
    assert_eq!(
        approve(flow, "chair_x", &id, None).await,
        "ADMINISTRATIVE_REBUTTAL"
    );
    let rule = Rule::Response {
        listed: vec![M::X],
        bundled: true,
    };
    let text = format!("# {} Reactie", inv.mark("RESP-X", rule.clone()));
    let recommendations = inv.recommendations.clone();
    file_response(
        flow,
        "college_x",
        &id,
        vec![&x.college],
        &text,
        &recommendations,
        "AGREES",
    )
    .await;
    inv.positions = vec![(x.college_name.clone(), "AGREES", rule)];
    for phase in ["EPILOGUE", "COUNCIL_SUBMISSION", "FOLLOW_UP"] {
        assert_eq!(approve(flow, "chair_x", &id, None).await, phase);
    }
    inv
}

// ---------------------------------------------------------------------------------------------
// The secrets and the scan
// ---------------------------------------------------------------------------------------------

/// One string that must show only to whom its rule allows: a marker or an id.
struct Secret {
    inv: usize,
    text: String,
    rule: Rule,
    /// Whether the full `investigation(id)` answer must hold it for whoever may see it.
    required: bool,
    what: String,
}

/// Everything built, with every secret, and the answers for ids that do not exist.
struct World {
    invs: Vec<Inv>,
    secrets: Vec<Secret>,
    index: HashMap<String, usize>,
    org: BTreeMap<M, Body>,
    /// An id no object has.
    missing: String,
    /// Arguments of the operations outsiders try: Bloemendaal's commission, a user.
    commission_b: String,
    outsider: String,
    /// Per (caller, path): the answer for `missing`.
    baselines: HashMap<(&'static str, String), Raw>,
}

/// Collects assertion outcomes; failures are reported together at the end.
#[derive(Default)]
struct Report {
    checks: AtomicUsize,
    scanned: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Report {
    fn check(&self, ok: bool, message: impl FnOnce() -> String) {
        self.checks.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failures.lock().expect("the lock").push(message());
        }
    }
}

/// The markers (`SECRET-…`) and UUIDs in a text.
fn tokens(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    for (start, _) in text.match_indices("SECRET-") {
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-'))
            .map_or(text.len(), |n| start + n);
        found.push(&text[start..end]);
    }
    let bytes = text.as_bytes();
    let uuid_at = |i: usize| {
        bytes[i..i + 36].iter().enumerate().all(|(k, c)| {
            if [8, 13, 18, 23].contains(&k) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
    };
    let mut i = 0;
    while i + 36 <= bytes.len() {
        if uuid_at(i) && (i == 0 || !bytes[i - 1].is_ascii_hexdigit()) {
            found.push(&text[i..i + 36]);
            i += 36;
        } else {
            i += 1;
        }
    }
    found
}

impl World {
    fn register(&mut self, inv: usize, text: String, rule: Rule, required: bool, what: String) {
        assert!(
            !self.index.contains_key(&text),
            "{text} registered twice ({what})"
        );
        self.index.insert(text.clone(), self.secrets.len());
        self.secrets.push(Secret {
            inv,
            text,
            rule,
            required,
            what,
        });
    }

    /// The rule of the one marker in a text (a version's content, a reason).
    fn rule_of_marker(&self, inv: usize, text: &str) -> Rule {
        let markers: Vec<&Secret> = tokens(text)
            .into_iter()
            .filter(|t| t.starts_with("SECRET-"))
            .filter_map(|t| self.index.get(t).map(|&i| &self.secrets[i]))
            .collect();
        assert_eq!(markers.len(), 1, "one marker in {text}");
        assert_eq!(markers[0].inv, inv, "{text}");
        markers[0].rule.clone()
    }

    /// Reads every investigation as its team does and registers every id in it with the rule
    /// of the content it stands for.
    async fn survey(flow: &Flow<'_>, invs: Vec<Inv>, org: BTreeMap<M, Body>) -> World {
        let mut world = World {
            invs: Vec::new(),
            secrets: Vec::new(),
            index: HashMap::new(),
            org,
            missing: uuid::Uuid::now_v7().to_string(),
            commission_b: flow.commission_id("b"),
            outsider: flow.user_id("outsider"),
            baselines: HashMap::new(),
        };
        for (i, inv) in invs.iter().enumerate() {
            for (text, rule, required) in &inv.markers {
                world.register(i, text.clone(), rule.clone(), *required, "marker".into());
            }
        }
        world.invs = invs;
        let query = one_query();
        for i in 0..world.invs.len() {
            let (reader, id) = (world.invs[i].reader, world.invs[i].id.clone());
            let data = ok(flow, reader, &query, json!({ "id": id })).await;
            let node = &data["investigation"];
            world.register(
                i,
                id.clone(),
                Rule::Investigation,
                true,
                "investigation id".into(),
            );
            let mut versions = Vec::new();
            for document in list(&node["documents"]) {
                let mut rules = Vec::new();
                for version in list(&document["versions"]) {
                    let rule =
                        world.rule_of_marker(i, version["content"].as_str().unwrap_or_default());
                    rules.push(rule.clone());
                    versions.push((id_of(version), rule));
                }
                let what = format!("{} document", document["kind"]);
                world.register(i, id_of(document), Rule::AnyOf(rules), true, what);
            }
            for (version, rule) in &versions {
                world.register(i, version.clone(), rule.clone(), true, "version id".into());
            }
            for recommendation in list(&node["recommendations"]) {
                let what = "recommendation id".to_string();
                world.register(i, id_of(recommendation), Rule::Recommendations, true, what);
            }
            let mut responses = Vec::new();
            for response in list(&node["responses"]) {
                let content = response["version"]["content"].as_str().unwrap_or_default();
                let rule = world.rule_of_marker(i, content);
                world.register(i, id_of(response), rule.clone(), true, "response id".into());
                responses.push((id_of(response), rule));
            }
            let mut extensions = Vec::new();
            for request in list(&node["extensionRequests"]) {
                let rule = world.rule_of_marker(i, request["reason"].as_str().unwrap_or_default());
                let what = "extension request id".to_string();
                world.register(i, id_of(request), rule.clone(), true, what);
                extensions.push((id_of(request), rule));
            }
            for deadline in list(&node["deadlines"]) {
                let name = deadline["college"]["name"].as_str().unwrap_or_default();
                let m = *world
                    .org
                    .iter()
                    .find(|(_, body)| body.college_name == name)
                    .expect("a fixture college")
                    .0;
                let rule = match deadline["kind"].as_str() {
                    Some("FACTUAL_CHECK") => Rule::FactualDeadline(m),
                    _ => Rule::CollegeRound(m),
                };
                let what = format!("{} deadline of {}", deadline["kind"], m.key());
                world.register(i, id_of(deadline), rule, true, what);
            }
            let mut submissions = Vec::new();
            for submission in list(&node["submissions"]) {
                let what = "submission id".to_string();
                world.register(i, id_of(submission), Rule::Investigation, true, what);
                submissions.push(id_of(submission));
            }
            let inv = &mut world.invs[i];
            inv.versions = versions;
            inv.responses = responses;
            inv.extensions = extensions;
            inv.submissions = submissions;
        }
        world
    }

    /// The secrets of investigation `inv` that `who` may see.
    fn allowed(&self, who: &str, inv: usize) -> BTreeSet<usize> {
        let rel = self.invs[inv].rel(who);
        let stage = &self.invs[inv].stage;
        self.secrets
            .iter()
            .enumerate()
            .filter(|(_, s)| s.inv == inv && sees(&s.rule, rel, stage))
            .map(|(i, _)| i)
            .collect()
    }

    /// Of those, the ones a full answer must hold.
    fn required(&self, who: &str, inv: usize) -> BTreeSet<usize> {
        self.allowed(who, inv)
            .into_iter()
            .filter(|&i| self.secrets[i].required)
            .collect()
    }

    fn describe(&self, secrets: &BTreeSet<usize>) -> String {
        secrets
            .iter()
            .map(|&i| {
                let s = &self.secrets[i];
                format!("{} ({} of {})", s.text, s.what, self.invs[s.inv].label)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Scans one answer: nothing outside `allowed` (and no unknown marker), everything in
    /// `required`.
    fn scan(
        &self,
        report: &Report,
        context: &str,
        text: &str,
        allowed: &BTreeSet<usize>,
        required: &BTreeSet<usize>,
    ) {
        report.scanned.fetch_add(1, Ordering::Relaxed);
        let mut found = BTreeSet::new();
        let mut unknown = BTreeSet::new();
        for token in tokens(text) {
            match self.index.get(token) {
                Some(&i) => {
                    found.insert(i);
                }
                None if token.starts_with("SECRET-") => {
                    unknown.insert(token.to_string());
                }
                None => {}
            }
        }
        report.check(unknown.is_empty(), || {
            format!("{context}: unregistered markers {unknown:?}")
        });
        let leaked: BTreeSet<usize> = found.difference(allowed).copied().collect();
        report.check(leaked.is_empty(), || {
            format!("{context}: LEAK of {}", self.describe(&leaked))
        });
        let missing: BTreeSet<usize> = required.difference(&found).copied().collect();
        report.check(missing.is_empty(), || {
            format!("{context}: missing {}", self.describe(&missing))
        });
    }

    fn baseline(&self, who: &'static str, path: &str) -> &Raw {
        &self.baselines[&(who, path.to_string())]
    }

    /// The variables of an operation on `target_id`.
    fn op_variables(&self, op: &Op, target_id: &str) -> Value {
        let b = &self.org[&M::B];
        match op.name {
            "assignRapporteur" => json!({
                "id": target_id,
                "c": self.commission_b.clone(),
                "u": self.outsider.clone(),
            }),
            "submitDocumentVersion" => json!({ "input": {
                "investigationId": target_id, "kind": "ANNEX", "title": "Poging",
                "content": "# Poging",
            }}),
            "fileResponse" => json!({ "input": {
                "investigationId": target_id, "collegeIds": [b.college], "content": "# Poging",
            }}),
            "requestExtension" => json!({ "id": target_id, "college": b.college }),
            "recordCouncilDecision" => json!({ "id": target_id, "c": b.council }),
            "addImplementationUpdate" => json!({ "id": target_id, "m": b.municipality }),
            _ => json!({ "id": target_id }),
        }
    }
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// Whether a list field holds anything.
fn shown(value: &Value) -> bool {
    !list(value).is_empty()
}

// ---------------------------------------------------------------------------------------------
// The answers for an id that does not exist
// ---------------------------------------------------------------------------------------------

const DOWNLOAD: &str = "download";
const BUNDLE: &str = "bundle";
const ONE: &str = "investigation";
const TRAIL: &str = "auditTrail";

/// A request for an id that does not exist: a GET of a path, or a GraphQL operation.
enum Probe {
    Get(String),
    Post(String, Value),
}

/// Per caller, the answers of every path for an id that does not exist.
async fn baselines(world: &mut World, flow: &Flow<'_>) {
    let missing = world.missing.clone();
    let mut probes: Vec<(&'static str, Probe)> = vec![
        (DOWNLOAD, Probe::Get(format!("/files/versions/{missing}"))),
        (BUNDLE, Probe::Get(format!("/files/bundles/{missing}"))),
        (ONE, Probe::Post(one_query(), json!({ "id": missing }))),
        (
            TRAIL,
            Probe::Post(AUDIT.to_string(), json!({ "id": missing })),
        ),
    ];
    for op in OPS {
        let variables = world.op_variables(op, &missing);
        probes.push((op.name, Probe::Post(op.query.to_string(), variables)));
    }
    let probes = &probes;
    let jobs = callers()
        .into_iter()
        .flat_map(|who| probes.iter().map(move |(path, probe)| (who, *path, probe)));
    let answers: Vec<((&'static str, String), Raw)> = futures::stream::iter(jobs)
        .map(|(who, path, probe)| async move {
            let raw = match probe {
                Probe::Get(url) => get(flow, who, url).await,
                Probe::Post(query, variables) => post(flow, who, query, variables.clone()).await,
            };
            ((who, path.to_string()), raw)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    world.baselines = answers.into_iter().collect();
}

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

/// Asserts that a refusal is `code` and, for NOT_FOUND, byte for byte the answer for an id
/// that does not exist.
fn expect_refusal(
    world: &World,
    report: &Report,
    who: &'static str,
    path: &str,
    context: &str,
    raw: &Raw,
    code: &str,
) {
    report.check(raw.code().as_deref() == Some(code), || {
        format!(
            "{context}: expected {code}, got {} {}",
            raw.status, raw.text
        )
    });
    if code == "NOT_FOUND" || code == "UNAUTHENTICATED" {
        let baseline = world.baseline(who, path);
        report.check(
            raw.status == baseline.status && raw.text == baseline.text,
            || {
                format!(
                    "{context}: differs from the answer for a missing id: {} {} vs {} {}",
                    raw.status, raw.text, baseline.status, baseline.text
                )
            },
        );
    }
}

/// `investigation(id)` with every nested field.
async fn check_investigation(
    world: &World,
    flow: &Flow<'_>,
    report: &Report,
    who: &'static str,
    i: usize,
) {
    let inv = &world.invs[i];
    let context = format!("{who} investigation({}) [{}]", inv.label, inv.stage.phase);
    let raw = post(flow, who, &one_query(), json!({ "id": inv.id })).await;
    let body = raw.json();
    report.check(raw.status == 200 && body.get("errors").is_none(), || {
        format!("{context}: errors {}", raw.text)
    });
    world.scan(
        report,
        &context,
        &raw.text,
        &world.allowed(who, i),
        &world.required(who, i),
    );
    let node = &body["data"]["investigation"];
    let rel = inv.rel(who);
    let stage = &inv.stage;
    if !inv.visible_to(who) {
        report.check(node.is_null(), || format!("{context}: not null"));
        let baseline = world.baseline(who, ONE);
        report.check(raw.text == baseline.text, || {
            format!(
                "{context}: differs from a missing id: {} vs {}",
                raw.text, baseline.text
            )
        });
        return;
    }
    let team = rel == Rel::Team;
    report.check(node["phase"] == stage.phase, || {
        format!("{context}: phase {}", node["phase"])
    });
    report.check(node["suspended"] == stage.suspended, || {
        format!("{context}: suspended {}", node["suspended"])
    });
    let proposal = sees(&Rule::Proposal, rel, stage);
    report.check(shown(&node["researchQuestions"]) == proposal, || {
        format!("{context}: researchQuestions {}", node["researchQuestions"])
    });
    let scoped = inv.label != "X";
    report.check(
        node["scopeStart"].is_string() == (proposal && scoped),
        || format!("{context}: scopeStart {}", node["scopeStart"]),
    );
    report.check(
        shown(&node["rapporteurs"]) == (team && inv.rapporteur),
        || format!("{context}: rapporteurs {}", node["rapporteurs"]),
    );
    let approvals_expected = inv.markers.iter().any(|(m, _, _)| m.ends_with("-APPR"));
    report.check(
        shown(&node["approvals"]) == (team && approvals_expected),
        || format!("{context}: approvals {}", node["approvals"]),
    );
    let terminal = matches!(stage.phase, "CLOSED" | "CANCELLED");
    report.check(
        shown(&node["missingApprovals"]) == (team && !terminal),
        || format!("{context}: missingApprovals {}", node["missingApprovals"]),
    );
    if !team {
        report.check(list(&node["gateRequirements"]).is_empty(), || {
            format!("{context}: gateRequirements {}", node["gateRequirements"])
        });
    }
    let terms = stage.terms && (team || (rel.college() && stage.draft));
    report.check(node["rebuttalMode"].is_string() == terms, || {
        format!("{context}: rebuttalMode {}", node["rebuttalMode"])
    });
    let councils = if stage.published {
        inv.municipalities.len()
    } else {
        0
    };
    report.check(list(&node["submissions"]).len() == councils, || {
        format!(
            "{context}: {} submissions",
            list(&node["submissions"]).len()
        )
    });
    for document in list(&node["documents"]) {
        let versions = list(&document["versions"]);
        report.check(!versions.is_empty(), || {
            format!("{context}: a document without versions {document}")
        });
        report.check(
            versions.last().map(id_of)
                == document["latestVersion"]["id"].as_str().map(str::to_string),
            || format!("{context}: latestVersion is not the last visible version {document}"),
        );
    }
    // Positions: each college's, from its counted response, as far as the caller sees it.
    let expected: BTreeSet<(String, String)> = inv
        .positions
        .iter()
        .filter(|(_, _, rule)| sees(rule, rel, stage))
        .map(|(college, position, _)| (college.clone(), position.to_string()))
        .collect();
    for recommendation in list(&node["recommendations"]) {
        let positions: BTreeSet<(String, String)> = list(&recommendation["positions"])
            .iter()
            .map(|p| {
                (
                    p["college"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    p["position"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        report.check(positions == expected, || {
            format!("{context}: positions {positions:?}, expected {expected:?}")
        });
    }
}

/// `investigations` (every field, edges and totalCount, the phase filter),
/// `publishedInvestigations` and `recommendationRegister`.
async fn check_lists(world: &World, flow: &Flow<'_>, report: &Report, who: &'static str) {
    let visible: Vec<usize> = (0..world.invs.len())
        .filter(|&i| world.invs[i].visible_to(who))
        .collect();
    let union = |of: &dyn Fn(usize) -> BTreeSet<usize>, among: &[usize]| -> BTreeSet<usize> {
        among.iter().flat_map(|&i| of(i)).collect()
    };
    let ids_of = |among: &[usize]| -> BTreeSet<String> {
        among.iter().map(|&i| world.invs[i].id.clone()).collect()
    };

    // investigations
    let context = format!("{who} investigations");
    let raw = post(flow, who, &list_query(), json!({})).await;
    let connection = &raw.json()["data"]["investigations"];
    let listed: BTreeSet<String> = list(&connection["edges"])
        .iter()
        .map(|e| id_of(&e["node"]))
        .collect();
    report.check(listed == ids_of(&visible), || {
        format!("{context}: listed {} of {}", listed.len(), visible.len())
    });
    report.check(
        connection["totalCount"].as_u64() == Some(visible.len() as u64),
        || format!("{context}: totalCount {}", connection["totalCount"]),
    );
    report.check(connection["pageInfo"]["hasNextPage"] == false, || {
        format!("{context}: more pages")
    });
    world.scan(
        report,
        &context,
        &raw.text,
        &union(&|i| world.allowed(who, i), &visible),
        &union(&|i| world.required(who, i), &visible),
    );

    // the phase filter: the same rule per phase
    let phases: BTreeSet<&str> = world.invs.iter().map(|inv| inv.stage.phase).collect();
    for phase in phases {
        let raw = post(flow, who, BY_PHASE, json!({ "phase": phase })).await;
        let connection = &raw.json()["data"]["investigations"];
        let listed: BTreeSet<String> = list(&connection["edges"])
            .iter()
            .map(|e| id_of(&e["node"]))
            .collect();
        let expected: Vec<usize> = visible
            .iter()
            .copied()
            .filter(|&i| world.invs[i].stage.phase == phase)
            .collect();
        report.check(
            listed == ids_of(&expected)
                && connection["totalCount"].as_u64() == Some(expected.len() as u64),
            || format!("{who} investigations(phase: {phase}): {}", raw.text),
        );
    }

    // publishedInvestigations: the public's view, whoever asks
    let context = format!("{who} publishedInvestigations");
    let published: Vec<usize> = (0..world.invs.len())
        .filter(|&i| world.invs[i].stage.published)
        .collect();
    let raw = post(flow, who, &published_query(), json!({})).await;
    let connection = &raw.json()["data"]["publishedInvestigations"];
    let listed: BTreeSet<String> = list(&connection["edges"])
        .iter()
        .map(|e| id_of(&e["node"]))
        .collect();
    report.check(
        listed == ids_of(&published)
            && connection["totalCount"].as_u64() == Some(published.len() as u64),
        || format!("{context}: {}", connection),
    );
    world.scan(
        report,
        &context,
        &raw.text,
        &union(&|i| world.allowed(ANONYMOUS, i), &published),
        &union(&|i| world.required(ANONYMOUS, i), &published),
    );

    // recommendationRegister: per submitted investigation whose recommendations the caller
    // reads, every recommendation once per concerned municipality
    let context = format!("{who} recommendationRegister");
    let raw = post(flow, who, &register_query(), json!({})).await;
    if who == ANONYMOUS {
        report.check(raw.code().as_deref() == Some("UNAUTHENTICATED"), || {
            format!("{context}: {}", raw.text)
        });
    } else {
        let mut expected = BTreeSet::new();
        for inv in &world.invs {
            if inv.stage.published && sees(&Rule::Recommendations, inv.rel(who), &inv.stage) {
                for recommendation in &inv.recommendations {
                    for m in &inv.municipalities {
                        let municipality = world.org[m].municipality.clone();
                        expected.insert((recommendation.clone(), municipality));
                    }
                }
            }
        }
        let connection = &raw.json()["data"]["recommendationRegister"];
        let entries: BTreeSet<(String, String)> = list(&connection["edges"])
            .iter()
            .map(|e| {
                (
                    id_of(&e["node"]["recommendation"]),
                    id_of(&e["node"]["municipality"]),
                )
            })
            .collect();
        report.check(
            entries == expected
                && connection["totalCount"].as_u64() == Some(expected.len() as u64)
                && connection["pageInfo"]["hasNextPage"] == false,
            || {
                format!(
                    "{context}: {entries:?} (total {}), expected {expected:?}",
                    connection["totalCount"]
                )
            },
        );
    }
    world.scan(
        report,
        &context,
        &raw.text,
        &union(&|i| world.allowed(who, i), &visible),
        &BTreeSet::new(),
    );
}

/// `auditTrail`: every event to the team, FORBIDDEN to the other parties, NOT_FOUND (as for a
/// missing id) to everyone else, UNAUTHENTICATED without login.
async fn check_audit(world: &World, flow: &Flow<'_>, report: &Report, who: &'static str, i: usize) {
    let inv = &world.invs[i];
    let rel = inv.rel(who);
    let context = format!("{who} auditTrail({}) [{}]", inv.label, inv.stage.phase);
    let mut after: Option<String> = None;
    let mut events = 0;
    loop {
        let raw = post(flow, who, AUDIT, json!({ "id": inv.id, "after": after })).await;
        world.scan(
            report,
            &context,
            &raw.text,
            &world.allowed(who, i),
            &BTreeSet::new(),
        );
        if who == ANONYMOUS {
            return expect_refusal(world, report, who, TRAIL, &context, &raw, "UNAUTHENTICATED");
        }
        if rel != Rel::Team {
            let code = if party(rel, &inv.stage) {
                "FORBIDDEN"
            } else {
                "NOT_FOUND"
            };
            return expect_refusal(world, report, who, TRAIL, &context, &raw, code);
        }
        let trail = &raw.json()["data"]["auditTrail"];
        for edge in list(&trail["edges"]) {
            events += 1;
            report.check(edge["node"]["investigationId"] == inv.id.as_str(), || {
                format!("{context}: an event of another investigation {edge}")
            });
        }
        if trail["pageInfo"]["hasNextPage"] != true {
            report.check(
                events > 0 && trail["totalCount"].as_u64() == Some(events),
                || {
                    format!(
                        "{context}: {events} events, totalCount {}",
                        trail["totalCount"]
                    )
                },
            );
            return;
        }
        after = trail["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
}

/// The team of an investigation, in a fixed order.
fn team_of(inv: &Inv) -> Vec<&'static str> {
    callers()
        .into_iter()
        .filter(|who| inv.rel(who) == Rel::Team)
        .collect()
}

/// Every version's download URL: 200 with its bytes exactly where the table allows, else 404
/// as for a version that does not exist. Every caller outside an investigation's team fetches
/// every version of it. The team sees everything, and every read of a draft is audited (one
/// write each), so its members share the work: each version is fetched by one of them, in
/// turn, and each member fetches versions of every kind.
async fn check_downloads(world: &World, flow: &Flow<'_>, report: &Report, who: &'static str) {
    let jobs: Vec<(usize, &String, &Rule)> = world
        .invs
        .iter()
        .enumerate()
        .flat_map(|(i, inv)| {
            let team = team_of(inv);
            inv.versions
                .iter()
                .enumerate()
                .filter(move |(j, _)| match team.iter().position(|t| *t == who) {
                    Some(member) => (i + j) % team.len() == member,
                    None => true,
                })
                .map(move |(_, (id, rule))| (i, id, rule))
        })
        .collect();
    futures::stream::iter(jobs)
        .for_each_concurrent(8, |(i, version, rule)| async move {
            let inv = &world.invs[i];
            let context = format!(
                "{who} GET version {version} of {} [{}]",
                inv.label, inv.stage.phase
            );
            let raw = get(flow, who, &format!("/files/versions/{version}")).await;
            if sees(rule, inv.rel(who), &inv.stage) {
                report.check(raw.status == 200, || {
                    format!("{context}: expected 200, got {} {}", raw.status, raw.text)
                });
                let own: BTreeSet<usize> = tokens(&raw.text)
                    .into_iter()
                    .filter_map(|t| world.index.get(t).copied())
                    .collect();
                report.check(own.len() == 1, || {
                    format!("{context}: the bytes hold {}", world.describe(&own))
                });
                world.scan(
                    report,
                    &context,
                    &raw.text,
                    &world.allowed(who, i),
                    &BTreeSet::new(),
                );
            } else {
                report.check(raw.status == 404, || {
                    format!("{context}: expected 404, got {} {}", raw.status, raw.text)
                });
                let baseline = world.baseline(who, DOWNLOAD);
                report.check(raw.text == baseline.text, || {
                    format!("{context}: differs from a missing version: {}", raw.text)
                });
                world.scan(
                    report,
                    &context,
                    &raw.text,
                    &BTreeSet::new(),
                    &BTreeSet::new(),
                );
            }
        })
        .await;
}

/// Every bundle URL: public (with or without a token), holding exactly the bundle: every public
/// version's text and its document's title (in the manifest), nothing else; ids of other
/// objects are no bundles.
async fn check_bundles(world: &World, flow: &Flow<'_>, report: &Report, who: &'static str) {
    for (i, inv) in world.invs.iter().enumerate() {
        let public = world.allowed(ANONYMOUS, i);
        let bundle: BTreeSet<usize> = inv
            .markers
            .iter()
            .filter(|(_, rule, _)| {
                *rule != Rule::Investigation && sees(rule, Rel::Public, &inv.stage)
            })
            .map(|(text, _, _)| world.index[text])
            .collect();
        for submission in &inv.submissions {
            let context = format!("{who} GET bundle {submission} of {}", inv.label);
            let raw = get(flow, who, &format!("/files/bundles/{submission}")).await;
            report.check(raw.status == 200, || {
                format!("{context}: {} {}", raw.status, raw.text)
            });
            world.scan(report, &context, &raw.text, &public, &bundle);
        }
        // An investigation id and a draft's version id are no bundle ids.
        let others = [
            Some(inv.id.clone()),
            inv.versions.first().map(|(id, _)| id.clone()),
        ];
        for other in others.into_iter().flatten() {
            let context = format!("{who} GET bundle {other} (no bundle) of {}", inv.label);
            let raw = get(flow, who, &format!("/files/bundles/{other}")).await;
            let baseline = world.baseline(who, BUNDLE);
            report.check(raw.status == 404 && raw.text == baseline.text, || {
                format!("{context}: {} {}", raw.status, raw.text)
            });
        }
    }
}

/// The objects an operation can name in one investigation.
fn targets(inv: &Inv, target: Target) -> Vec<(String, Rule)> {
    match target {
        Target::Investigation => vec![(inv.id.clone(), Rule::Investigation)],
        Target::Response => inv.responses.clone(),
        Target::Extension => inv.extensions.clone(),
        Target::Recommendation => inv
            .recommendations
            .iter()
            .take(1)
            .map(|id| (id.clone(), Rule::Recommendations))
            .collect(),
    }
}

/// What a party that sees the investigation but not the object an operation names gets: the
/// permission table's answer in its fixed order (NOT_FOUND for the investigation, FORBIDDEN for
/// the role, CONFLICT for the phase), as for any action on an investigation it knows; a college
/// not listed on a response finds no such response.
fn party_answer(who: &str, op: &Op, stage: &Stage) -> &'static str {
    let role = role_of(who);
    let (allowed_role, phases, blocked_while_suspended): (&str, &[&str], bool) = match op.name {
        "cosignResponse" => (
            "COLLEGE_CONTACT",
            &["ADMINISTRATIVE_REBUTTAL", "EPILOGUE"],
            true,
        ),
        "decideExtension" => ("CHAIR", &["ADMINISTRATIVE_REBUTTAL"], true),
        "recordCouncilDecision" => ("GRIFFIER", &["FOLLOW_UP"], false),
        "addImplementationUpdate" => ("COLLEGE_CONTACT", &["FOLLOW_UP"], false),
        other => panic!("{other} names no object within an investigation"),
    };
    if role != allowed_role {
        "FORBIDDEN"
    } else if !phases.contains(&stage.phase) || (blocked_while_suspended && stage.suspended) {
        "CONFLICT"
    } else {
        "NOT_FOUND"
    }
}

/// The operations an outsider might try on an investigation and on the objects in it: NOT_FOUND
/// byte for byte as for ids that do not exist. Parties that see the investigation but not the
/// object: the permission table's answer, and no content in it.
async fn check_operations(
    world: &World,
    flow: &Flow<'_>,
    report: &Report,
    who: &'static str,
    i: usize,
) {
    let inv = &world.invs[i];
    let rel = inv.rel(who);
    let outsider = !party(rel, &inv.stage);
    for op in OPS {
        if op.name == "verifyAuditTrail" && role_of(who) == "ADMIN" {
            // ADMIN verifies the audit chain of any investigation (it sees no content): the
            // contract's table gives ADMIN "the audit-chain verification".
            continue;
        }
        for (target, rule) in targets(inv, op.target) {
            let hidden = !sees(&rule, rel, &inv.stage);
            if !outsider && !hidden {
                continue;
            }
            let context = format!(
                "{who} {}({}) on {} [{}]",
                op.name, target, inv.label, inv.stage.phase
            );
            let raw = post(flow, who, op.query, world.op_variables(op, &target)).await;
            world.scan(
                report,
                &context,
                &raw.text,
                &world.allowed(who, i),
                &BTreeSet::new(),
            );
            let code = if who == ANONYMOUS {
                "UNAUTHENTICATED"
            } else if outsider {
                "NOT_FOUND"
            } else {
                party_answer(who, op, &inv.stage)
            };
            expect_refusal(world, report, who, op.name, &context, &raw, code);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Subscriptions (graphql-transport-ws)
// ---------------------------------------------------------------------------------------------

/// The next text message, or `None` after `wait`.
async fn receive(socket: &mut Socket, wait: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??
            .ok()?;
        match message {
            Message::Text(text) => return Some(text.as_str().to_string()),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// A connection as `who` (none for the anonymous caller) subscribed to `id`'s events.
async fn subscribe(flow: &Flow<'_>, who: &str, id: &str) -> Socket {
    let mut socket = open_ws(flow.server).await;
    let payload = match flow.token(who) {
        Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
        None => json!({}),
    };
    let init = json!({ "type": "connection_init", "payload": payload });
    socket
        .send(Message::text(init.to_string()))
        .await
        .expect("sent");
    let ack = receive(&mut socket, Duration::from_secs(5)).await;
    assert!(
        ack.as_deref().is_some_and(|a| a.contains("connection_ack")),
        "{who}: {ack:?}"
    );
    let subscribe = json!({
        "id": "1",
        "type": "subscribe",
        "payload": { "query": EVENTS, "variables": { "id": id } },
    });
    socket
        .send(Message::text(subscribe.to_string()))
        .await
        .expect("sent");
    socket
}

/// The refusal's code of a subscription, or `None` when nothing came within `wait`.
async fn refusal(socket: &mut Socket, wait: Duration) -> Option<(String, String)> {
    let text = receive(socket, wait).await?;
    let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let code = message["payload"]["errors"][0]["extensions"]["code"]
        .as_str()
        .or(message["payload"][0]["extensions"]["code"].as_str())
        .unwrap_or("(no code)")
        .to_string();
    Some((code, text))
}

/// Subscribes every caller to one investigation's events at once: refused ones get their code
/// (NOT_FOUND as for a missing id), accepted ones (the team) receive the next event of it.
async fn check_subscriptions(
    world: &World,
    flow: &Flow<'_>,
    report: &Report,
    baselines: &BTreeMap<&'static str, String>,
    i: usize,
) {
    let inv = &world.invs[i];
    let who_all = callers();
    let mut sockets: Vec<(&'static str, Socket)> = futures::future::join_all(
        who_all
            .iter()
            .map(|who| async move { (*who, subscribe(flow, who, &inv.id).await) }),
    )
    .await;
    let mut accepted = Vec::new();
    for (who, socket) in sockets.iter_mut() {
        let rel = inv.rel(who);
        let context = format!(
            "{who} investigationEvents({}) [{}]",
            inv.label, inv.stage.phase
        );
        let expected = if *who == ANONYMOUS {
            Some("UNAUTHENTICATED")
        } else if rel == Rel::Team {
            None
        } else if party(rel, &inv.stage) {
            Some("FORBIDDEN")
        } else {
            Some("NOT_FOUND")
        };
        match expected {
            Some(code) => {
                let answer = refusal(socket, Duration::from_secs(5)).await;
                report.check(answer.as_ref().is_some_and(|(c, _)| c == code), || {
                    format!("{context}: expected {code}, got {answer:?}")
                });
                if let Some((_, text)) = &answer {
                    world.scan(report, &context, text, &BTreeSet::new(), &BTreeSet::new());
                    if code == "NOT_FOUND" {
                        report.check(Some(text) == baselines.get(who), || {
                            format!("{context}: differs from a missing id: {text}")
                        });
                    }
                }
            }
            None => accepted.push((*who, context)),
        }
    }
    // The accepted ones have nothing to say until an event of this investigation happens.
    let quiet = futures::future::join_all(
        sockets
            .iter_mut()
            .filter(|(who, _)| accepted.iter().any(|(a, _)| a == who))
            .map(|(who, socket)| async move {
                (*who, receive(socket, Duration::from_millis(300)).await)
            }),
    )
    .await;
    for (who, said) in quiet {
        report.check(said.is_none(), || {
            format!(
                "{who} investigationEvents({}): refused or spoke early: {said:?}",
                inv.label
            )
        });
    }
    if matches!(inv.stage.phase, "CLOSED" | "CANCELLED") {
        // Terminal: no event can happen; silence is all there is to see.
        return;
    }
    // A harmless event: a chair assigns a rapporteur (the scans are done by now).
    let mut waiting: BTreeSet<&'static str> = accepted.iter().map(|(who, _)| *who).collect();
    for user in ["external", "outsider", "chair_b"] {
        if waiting.is_empty() {
            break;
        }
        let answer = post(
            flow,
            inv.event_chair,
            ASSIGN_RAPPORTEUR,
            json!({
                "id": inv.id,
                "commission": flow.commission_id(inv.event_commission.key()),
                "user": flow.user_id(user),
            }),
        )
        .await;
        if answer.code().is_some() {
            continue;
        }
        let heard = futures::future::join_all(
            sockets
                .iter_mut()
                .filter(|(who, _)| waiting.contains(who))
                .map(|(who, socket)| async move {
                    (*who, receive(socket, Duration::from_secs(3)).await)
                }),
        )
        .await;
        for (who, said) in heard {
            if let Some(text) = said {
                let context = format!("{who} investigationEvents({}) event", inv.label);
                let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                report.check(
                    message["type"] == "next"
                        && message["payload"]["data"]["investigationEvents"]["investigationId"]
                            == inv.id.as_str(),
                    || format!("{context}: {text}"),
                );
                world.scan(
                    report,
                    &context,
                    &text,
                    &world.allowed(who, i),
                    &BTreeSet::new(),
                );
                waiting.remove(who);
            }
        }
    }
    report.check(waiting.is_empty(), || {
        format!(
            "investigationEvents({}): no event reached {waiting:?}",
            inv.label
        )
    });
}

/// Per caller: the refusal for a subscription to an id that does not exist.
async fn subscription_baselines(world: &World, flow: &Flow<'_>) -> BTreeMap<&'static str, String> {
    let answers = futures::future::join_all(callers().into_iter().map(|who| async move {
        let mut socket = subscribe(flow, who, &world.missing).await;
        let answer = refusal(&mut socket, Duration::from_secs(5)).await;
        (who, answer.map(|(_, text)| text).unwrap_or_default())
    }))
    .await;
    answers.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn no_path_shows_more_than_the_visibility_table_for_any_role_in_any_phase() {
    for_each_backend(|db| async move {
        let started = Instant::now();
        let mut lap = Instant::now();
        let mut timings: Vec<(&str, Duration)> = Vec::new();
        let mut time = |section: &'static str, lap: &mut Instant| {
            timings.push((section, lap.elapsed()));
            *lap = Instant::now();
        };
        // A manual clock that never moves: the fixture's sessions (12 hours from its start)
        // stay valid and the deadlines do not depend on the day the test runs.
        let start = chrono::DateTime::parse_from_rfc3339("2019-09-02T10:00:00+02:00")
            .expect("a time")
            .with_timezone(&chrono::Utc);
        let server = TestServer::start_with(&db, |config| config.manual_clock = Some(start)).await;
        let fixture = org(&server).await;
        let flow = Flow::new(&server, &fixture);
        let bodies = organisation(&flow).await;

        let mut invs: Vec<Inv> = futures::future::join_all(
            Stop::ALL.iter().map(|stop| build_joint(&flow, &bodies, *stop)),
        )
        .await;
        invs.push(build_haarlem(&flow, &bodies).await);
        time("build", &mut lap);
        let mut world = World::survey(&flow, invs, bodies).await;
        baselines(&mut world, &flow).await;
        time("survey and baselines", &mut lap);
        let world = &world;
        let report = &Report::default();
        let flow = &flow;
        let all = callers();
        let pairs: Vec<(&'static str, usize)> = all
            .iter()
            .flat_map(|who| (0..world.invs.len()).map(move |i| (*who, i)))
            .collect();

        futures::stream::iter(pairs.clone())
            .for_each_concurrent(6, |(who, i)| check_investigation(world, flow, report, who, i))
            .await;
        time("investigation(id)", &mut lap);
        futures::stream::iter(all.clone())
            .for_each_concurrent(4, |who| check_lists(world, flow, report, who))
            .await;
        time("lists and register", &mut lap);
        futures::stream::iter(pairs.clone())
            .for_each_concurrent(6, |(who, i)| check_audit(world, flow, report, who, i))
            .await;
        time("auditTrail", &mut lap);
        futures::stream::iter(all.clone())
            .for_each_concurrent(4, |who| check_downloads(world, flow, report, who))
            .await;
        time("downloads", &mut lap);
        futures::stream::iter(all.clone())
            .for_each_concurrent(4, |who| check_bundles(world, flow, report, who))
            .await;
        time("bundles", &mut lap);
        futures::stream::iter(pairs.clone())
            .for_each_concurrent(12, |(who, i)| check_operations(world, flow, report, who, i))
            .await;
        time("operations", &mut lap);
        let refusals = subscription_baselines(world, flow).await;
        futures::stream::iter(0..world.invs.len())
            .for_each_concurrent(4, |i| check_subscriptions(world, flow, report, &refusals, i))
            .await;
        time("subscriptions", &mut lap);

        let failures = report.failures.lock().expect("the lock").clone();
        for failure in &failures {
            eprintln!("{failure}");
        }
        eprintln!(
            "leaks on {}: {} callers × {} investigations, {} secrets, {} answers scanned, {} checks, {} failures, {:.1} s ({})",
            server.label,
            all.len(),
            world.invs.len(),
            world.secrets.len(),
            report.scanned.load(Ordering::Relaxed),
            report.checks.load(Ordering::Relaxed),
            failures.len(),
            started.elapsed().as_secs_f64(),
            timings
                .iter()
                .map(|(s, d)| format!("{s} {:.1} s", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(
            failures.is_empty(),
            "{} of {} checks failed on {}:\n{}",
            failures.len(),
            report.checks.load(Ordering::Relaxed),
            server.label,
            failures
                .iter()
                .take(60)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        server.stop().await;
    })
    .await;
}

//! Helpers for driving investigations through the GraphQL API, as a front-end would: propose a
//! joint Bloemendaal + Heemstede investigation, write documents, approve gates as both chairs,
//! and bring a fresh investigation to a given phase.

use futures::SinkExt;
use rkflow_domain::{DocumentKind, Phase};
use rkflow_e2e::{Gql, Org, TestServer};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The fixture key that stands for "no token".
pub const ANONYMOUS: &str = "anonymous";

/// The fields the tests read of an investigation.
pub const INVESTIGATION_FIELDS: &str = "id title phase suspended
    commissions { name }
    researchQuestions
    rapporteurs { user { name } commission { name } }
    approvals { phase commission { name } approvedBy { name } comment }
    documents { id kind title
        versions { id number sha256 sizeBytes mediaType content downloadUrl author { name } note }
        latestVersion { id number } }
    recommendations { id number text addressee }";

pub const PROPOSE: &str = "mutation($input: ProposeInvestigationInput!) {
    proposeInvestigation(input: $input) { id phase } }";

pub const SUBMIT: &str = "mutation($input: SubmitDocumentVersionInput!) {
    submitDocumentVersion(input: $input) {
        id number sha256 sizeBytes mediaType content downloadUrl author { name } note } }";

pub const APPROVE: &str = "mutation($id: ID!) {
    approvePhase(investigationId: $id) { id phase approvals { commission { name } } } }";

pub const REQUEST_CHANGES: &str = "mutation($id: ID!, $reason: String!) {
    requestChanges(investigationId: $id, reason: $reason) { id phase } }";

pub const SUSPEND: &str = "mutation($id: ID!, $reason: String!) {
    suspendInvestigation(investigationId: $id, reason: $reason) { id phase suspended } }";

pub const RESUME: &str = "mutation($id: ID!) {
    resumeInvestigation(investigationId: $id) { id phase suspended } }";

pub const CANCEL: &str = "mutation($id: ID!, $reason: String!) {
    cancelInvestigation(investigationId: $id, reason: $reason) { id phase suspended } }";

pub const ADD_RECOMMENDATION: &str =
    "mutation($id: ID!, $text: String!, $addressee: RecommendationAddressee!) {
    addRecommendation(investigationId: $id, text: $text, addressee: $addressee) { id number } }";

pub const SET_REBUTTAL_TERMS: &str = "mutation($id: ID!, $mode: ResponseMode!) {
    setRebuttalTerms(investigationId: $id, mode: $mode) { id } }";

pub const ASSIGN_RAPPORTEUR: &str = "mutation($id: ID!, $commission: ID!, $user: ID!) {
    assignRapporteur(investigationId: $id, commissionId: $commission, userId: $user) { id } }";

pub const AUDIT_TRAIL: &str = "query($id: ID!, $first: Int, $after: String) {
    auditTrail(investigationId: $id, first: $first, after: $after) {
        edges { cursor node { seq at action actor { name } investigationId hash } }
        pageInfo { hasNextPage endCursor }
        totalCount } }";

pub const VERIFY: &str = "query($id: ID!) {
    verifyAuditTrail(investigationId: $id) { intact eventsChecked firstBrokenSeq } }";

/// One server with the fixture organisation, spoken to as its users.
pub struct Flow<'a> {
    pub server: &'a TestServer,
    pub org: &'a Org,
}

impl<'a> Flow<'a> {
    pub fn new(server: &'a TestServer, org: &'a Org) -> Flow<'a> {
        Flow { server, org }
    }

    /// The token of a fixture user; none for [`ANONYMOUS`].
    pub fn token(&self, who: &str) -> Option<&'a str> {
        (who != ANONYMOUS).then(|| self.org.token(who))
    }

    pub fn user_id(&self, who: &str) -> String {
        self.org.person(who).id.to_string()
    }

    pub fn commission_id(&self, key: &str) -> String {
        self.org.commission(key).to_string()
    }

    /// One GraphQL operation as `who`.
    pub async fn gql(&self, who: &str, query: &str, variables: Value) -> Gql {
        self.server.gql(self.token(who), query, variables).await
    }

    /// A GET as `who`.
    pub async fn get(&self, who: &str, path: &str) -> reqwest::Response {
        self.server.get(self.token(who), path).await
    }

    /// Proposes an investigation of the given commissions ("b", "h", "x") as `who`.
    pub async fn propose(&self, who: &str, commissions: &[&str], title: &str) -> Gql {
        let ids: Vec<String> = commissions.iter().map(|c| self.commission_id(c)).collect();
        self.gql(
            who,
            PROPOSE,
            json!({ "input": {
                "title": title,
                "commissionIds": ids,
                "researchQuestions": ["Werkt het beleid?", "Wat kost het?"],
            }}),
        )
        .await
    }

    /// A joint investigation of Bloemendaal and Heemstede, proposed by chair_b; its id.
    pub async fn propose_joint(&self, title: &str) -> String {
        self.propose_ok("chair_b", &["b", "h"], title).await
    }

    pub async fn propose_ok(&self, who: &str, commissions: &[&str], title: &str) -> String {
        let answer = self.propose(who, commissions, title).await;
        let data = answer.data();
        assert_eq!(data["proposeInvestigation"]["phase"], "PROPOSAL");
        id_of(&data["proposeInvestigation"])
    }

    /// Submits a version with a raw input object (the investigation id is added).
    pub async fn submit_input(&self, who: &str, id: &str, mut input: Value) -> Gql {
        input["investigationId"] = json!(id);
        self.gql(who, SUBMIT, json!({ "input": input })).await
    }

    /// Submits a Markdown version (ANNEX versions get the title "Bijlage A").
    pub async fn submit(&self, who: &str, id: &str, kind: DocumentKind, text: &str) -> Gql {
        let mut input = json!({ "kind": kind.as_str(), "content": text });
        if kind == DocumentKind::Annex {
            input["title"] = json!("Bijlage A");
        }
        self.submit_input(who, id, input).await
    }

    /// Submits a Markdown version that must be accepted; the version.
    pub async fn submit_ok(&self, who: &str, id: &str, kind: DocumentKind, text: &str) -> Value {
        self.submit(who, id, kind, text).await.data()["submitDocumentVersion"].clone()
    }

    pub async fn approve(&self, who: &str, id: &str) -> Gql {
        self.gql(who, APPROVE, json!({ "id": id })).await
    }

    pub async fn request_changes(&self, who: &str, id: &str, reason: &str) -> Gql {
        self.gql(who, REQUEST_CHANGES, json!({ "id": id, "reason": reason }))
            .await
    }

    pub async fn suspend(&self, who: &str, id: &str) -> Gql {
        self.gql(
            who,
            SUSPEND,
            json!({ "id": id, "reason": "Raadsverkiezingen" }),
        )
        .await
    }

    pub async fn resume(&self, who: &str, id: &str) -> Gql {
        self.gql(who, RESUME, json!({ "id": id })).await
    }

    pub async fn cancel(&self, who: &str, id: &str) -> Gql {
        self.gql(
            who,
            CANCEL,
            json!({ "id": id, "reason": "Overbodig geworden" }),
        )
        .await
    }

    pub async fn add_recommendation(&self, who: &str, id: &str, text: &str) -> Gql {
        self.gql(
            who,
            ADD_RECOMMENDATION,
            json!({ "id": id, "text": text, "addressee": "COLLEGE" }),
        )
        .await
    }

    pub async fn set_rebuttal_terms(&self, who: &str, id: &str, mode: &str) -> Gql {
        self.gql(who, SET_REBUTTAL_TERMS, json!({ "id": id, "mode": mode }))
            .await
    }

    /// `who` assigns fixture user `user` as rapporteur for commission `commission`.
    pub async fn assign_rapporteur(
        &self,
        who: &str,
        id: &str,
        commission: &str,
        user: &str,
    ) -> Gql {
        self.gql(
            who,
            ASSIGN_RAPPORTEUR,
            json!({
                "id": id,
                "commission": self.commission_id(commission),
                "user": self.user_id(user),
            }),
        )
        .await
    }

    /// The investigation as `who` sees it: null when hidden.
    pub async fn investigation(&self, who: &str, id: &str) -> Value {
        let query =
            format!("query($id: ID!) {{ investigation(id: $id) {{ {INVESTIGATION_FIELDS} }} }}");
        self.gql(who, &query, json!({ "id": id })).await.data()["investigation"].clone()
    }

    /// The current phase, as the team (chair_b) sees it.
    pub async fn phase(&self, id: &str) -> String {
        let answer = self
            .gql(
                "chair_b",
                "query($id: ID!) { investigation(id: $id) { phase } }",
                json!({ "id": id }),
            )
            .await;
        answer.data()["investigation"]["phase"]
            .as_str()
            .expect("a phase")
            .to_string()
    }

    /// Writes what the gate of `phase` needs (on a fresh investigation in that phase).
    pub async fn complete_gate(&self, id: &str, phase: Phase) {
        match phase {
            Phase::Proposal => {
                self.submit_ok(
                    "member_b",
                    id,
                    DocumentKind::Proposal,
                    "# Voorstel\n\nWat en waarom.",
                )
                .await;
            }
            Phase::Research => {
                self.submit_ok(
                    "secretary_b",
                    id,
                    DocumentKind::ResearchReport,
                    "# Rapport\n\nBevindingen.",
                )
                .await;
                self.submit_ok(
                    "secretary_h",
                    id,
                    DocumentKind::Conclusions,
                    "# Conclusies\n\nHet beleid werkt deels.",
                )
                .await;
                self.add_recommendation("member_h", id, "Stel een meetbaar doel vast.")
                    .await
                    .data();
                self.set_rebuttal_terms("chair_b", id, "SEPARATE")
                    .await
                    .data();
            }
            other => panic!("the tests cannot complete the {} gate yet", other.as_str()),
        }
    }

    /// Approves the current gate of a joint b + h investigation as chair_b, then chair_h;
    /// asserts that only the second approval advanced the phase, and returns the new phase.
    pub async fn approve_all(&self, id: &str) -> Phase {
        let first = self.approve("chair_b", id).await;
        let before = first.data()["approvePhase"]["phase"].clone();
        let second = self.approve("chair_h", id).await;
        let after = second.data()["approvePhase"]["phase"].clone();
        assert_ne!(after, before, "the second approval passes the gate");
        Phase::parse(after.as_str().expect("a phase")).expect("a known phase")
    }

    /// Drives an investigation (of b and h) forward until it is in `target`.
    pub async fn drive_to(&self, id: &str, target: Phase) {
        let mut phase = Phase::parse(&self.phase(id).await).expect("a known phase");
        while phase != target {
            assert!(
                Phase::WITH_GATE.contains(&phase),
                "cannot drive from {} to {}",
                phase.as_str(),
                target.as_str()
            );
            self.complete_gate(id, phase).await;
            phase = self.approve_all(id).await;
        }
    }

    /// A fresh joint investigation of b and h, with `external` assigned as Bloemendaal's
    /// rapporteur, in `target`: PROPOSAL (with a PROPOSAL version, no approvals), RESEARCH (no
    /// research documents yet), ADMINISTRATIVE_REBUTTAL, or CANCELLED (cancelled in RESEARCH,
    /// so after the PROPOSAL gate).
    pub async fn investigation_in(&self, target: Phase) -> String {
        let id = self
            .propose_joint(&format!(
                "Onderzoek naar {}",
                target.as_str().to_lowercase()
            ))
            .await;
        self.assign_rapporteur("chair_b", &id, "b", "external")
            .await
            .data();
        match target {
            Phase::Proposal => self.complete_gate(&id, Phase::Proposal).await,
            Phase::Cancelled => {
                self.drive_to(&id, Phase::Research).await;
                let cancelled = self.cancel("chair_h", &id).await;
                assert_eq!(
                    cancelled.data()["cancelInvestigation"]["phase"],
                    "CANCELLED"
                );
            }
            other => self.drive_to(&id, other).await,
        }
        id
    }

    /// The audit trail of an investigation as `who` (everything, oldest first): (action,
    /// actor name).
    pub async fn audit_actions(&self, who: &str, id: &str) -> Vec<(String, Option<String>)> {
        let answer = self
            .gql(who, AUDIT_TRAIL, json!({ "id": id, "first": 100 }))
            .await;
        let trail = &answer.data()["auditTrail"];
        assert_eq!(
            trail["pageInfo"]["hasNextPage"], false,
            "more than 100 events"
        );
        trail["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|edge| {
                (
                    edge["node"]["action"]
                        .as_str()
                        .expect("an action")
                        .to_string(),
                    edge["node"]["actor"]["name"].as_str().map(str::to_string),
                )
            })
            .collect()
    }

    /// How many audit events with `action` the investigation has.
    pub async fn count_events(&self, id: &str, action: &str) -> usize {
        self.audit_actions("chair_b", id)
            .await
            .iter()
            .filter(|(a, _)| a == action)
            .count()
    }
}

/// The `id` field of an object.
pub fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_string()
}

/// The `approvals` of an investigation as commission names.
pub fn approval_commissions(investigation: &Value) -> Vec<String> {
    investigation["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .map(|a| {
            a["commission"]["name"]
                .as_str()
                .expect("a name")
                .to_string()
        })
        .collect()
}

/// The documents of an investigation of one kind.
pub fn documents_of(investigation: &Value, kind: DocumentKind) -> Vec<&Value> {
    investigation["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .filter(|d| d["kind"] == kind.as_str())
        .collect()
}

/// The version numbers of the one document of `kind` (empty when absent).
pub fn version_numbers(investigation: &Value, kind: DocumentKind) -> Vec<i64> {
    let documents = documents_of(investigation, kind);
    assert!(documents.len() <= 1, "several {} documents", kind.as_str());
    documents
        .first()
        .map(|d| {
            d["versions"]
                .as_array()
                .expect("versions")
                .iter()
                .map(|v| v["number"].as_i64().expect("a number"))
                .collect()
        })
        .unwrap_or_default()
}

/// The error code of a plain HTTP error answer (downloads).
pub async fn http_error_code(response: reqwest::Response) -> (u16, Option<String>) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .map(str::to_string),
    )
}

/// Polls `check` until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the server issues no more SQL on its own (the scheduler's pass at start), so
/// that a request's statements can be counted.
pub async fn quiet(server: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let before = server.db().statement_count();
        tokio::time::sleep(Duration::from_millis(50)).await;
        if server.db().statement_count() == before || Instant::now() > deadline {
            return;
        }
    }
}

/// An operation and the SQL statements it caused.
pub async fn counted(server: &TestServer, token: Option<&str>, query: &str) -> (Gql, u64) {
    let before = server.db().statement_count();
    let answer = server.gql(token, query, json!({})).await;
    (answer, server.db().statement_count() - before)
}

/// A graphql-transport-ws connection to the server (not yet initialised).
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket on `/graphql/ws` speaking graphql-transport-ws.
pub async fn open_ws(server: &TestServer) -> Socket {
    let mut request = format!("ws://{}/graphql/ws", server.server.addr)
        .into_client_request()
        .expect("a request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("a header"),
    );
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("a WebSocket");
    socket
}

/// Sends one JSON message.
pub async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .expect("sent");
}

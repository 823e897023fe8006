//! The factual check (ambtelijk wederhoor) and the administrative rebuttal (bestuurlijk
//! wederhoor) end to end, on both databases, with a manual clock that replays real dates:
//! deadlines, JOINT and SEPARATE responses, co-signing, late responses, extensions, suspension,
//! the scheduler (reminders and MISSED marking, also when nobody calls the API) and two servers
//! sharing one database.
//!
//! Sessions. The fixture's sessions are stored with an expiry 12 hours after the clock's start,
//! so they end as soon as `advanceClock` moves the clock by days. Replay tests therefore start
//! the server with sessions that last 400 days (`config.auth.idle_timeout` and
//! `absolute_timeout`) and log every fixture user in again ([`Replay::start`]): the clock can
//! then move by weeks without anybody logging in again.

use crate::support::{Flow, Socket, eventually, id_of, open_ws, send};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rkflow_domain::{DocumentKind, Phase};
use rkflow_e2e::{Backend, Gql, Org, PASSWORD, Person, TestServer, for_each_backend, org};
use rkflow_server::config::ServerConfig;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

const ADVANCE: &str = "mutation($to: DateTime!) { advanceClock(to: $to) }";

const ROUND: &str = "query($id: ID!) { investigation(id: $id) {
    id phase suspended rebuttalMode
    deadlines { id kind college { id name } dueAt status }
    extensionRequests { id college { name } proposedDueDate reason granted }
    responses { id colleges { name } signedBy { name } version { id content } filedAt late }
    recommendations { id number positions { college { name } position } }
    documents { id kind title versions { id number } }
} }";

const TERMS: &str = "mutation($id: ID!, $mode: ResponseMode!, $due: Date) {
    setRebuttalTerms(investigationId: $id, mode: $mode, dueDate: $due) { id } }";

const FACTUAL_CHECK: &str = "mutation($id: ID!, $due: Date) {
    startFactualCheck(investigationId: $id, dueDate: $due) {
        id deadlines { kind college { name } dueAt status } } }";

const FILE: &str = "mutation($input: FileResponseInput!) { fileResponse(input: $input) {
    id colleges { name } signedBy { name } late filedAt version { id number content } } }";

const COSIGN: &str = "mutation($id: ID!) {
    cosignResponse(responseId: $id) { id colleges { name } signedBy { name } late } }";

const REQUEST_EXTENSION: &str =
    "mutation($id: ID!, $college: ID!, $date: Date!, $reason: String!) {
    requestExtension(investigationId: $id, collegeId: $college, proposedDueDate: $date,
        reason: $reason) { id college { name } proposedDueDate reason granted } }";

const DECIDE_EXTENSION: &str = "mutation($id: ID!, $grant: Boolean!) {
    decideExtension(requestId: $id, grant: $grant, comment: \"Besproken in de vergadering\") {
        id granted } }";

const AUDIT: &str = "query($id: ID!, $after: String) {
    auditTrail(investigationId: $id, first: 100, after: $after) {
        edges { node { seq at action actor { name } data } }
        pageInfo { hasNextPage endCursor } } }";

const VERIFY: &str = "query($id: ID!) {
    verifyAuditTrail(investigationId: $id) { intact eventsChecked firstBrokenSeq } }";

const BLOEMENDAAL: &str = "College van B&W Bloemendaal";
const HEEMSTEDE: &str = "College van B&W Heemstede";

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|_| panic!("{text} is RFC 3339"))
        .with_timezone(&Utc)
}

/// A `DateTime` field of an answer as an instant.
fn instant_of(value: &Value) -> DateTime<Utc> {
    instant(
        value
            .as_str()
            .unwrap_or_else(|| panic!("no DateTime in {value}")),
    )
}

// ---------------------------------------------------------------------------------------------
// A server with a manual clock and long sessions
// ---------------------------------------------------------------------------------------------

/// Manual clock at `start`, sessions of 400 days (see the module comment).
fn replay_clock(config: &mut ServerConfig, start: &str) {
    config.manual_clock = Some(instant(start));
    config.auth.idle_timeout = chrono::Duration::days(400);
    config.auth.absolute_timeout = chrono::Duration::days(400);
}

/// Every fixture user logged in again, on a server whose sessions outlive the replayed weeks.
async fn relogin(server: &TestServer, fixture: Org) -> Org {
    let logins = fixture.people.iter().map(|(key, person)| async move {
        let token = server.login(&person.email, PASSWORD).await;
        (
            *key,
            Person {
                token,
                ..person.clone()
            },
        )
    });
    let people = futures::future::join_all(logins)
        .await
        .into_iter()
        .collect();
    Org {
        municipalities: fixture.municipalities,
        commissions: fixture.commissions,
        people,
    }
}

/// One replay server with the fixture organisation (fresh long sessions) and the colleges'
/// ids by fixture key ("b", "h", "x").
struct Replay {
    server: TestServer,
    org: Org,
    colleges: BTreeMap<&'static str, String>,
}

impl Replay {
    async fn start(db: &Backend, start: &str) -> Replay {
        Replay::start_with(db, start, |_| {}).await
    }

    async fn start_with(db: &Backend, start: &str, more: impl FnOnce(&mut ServerConfig)) -> Replay {
        let server = TestServer::start_with(db, |config| {
            replay_clock(config, start);
            more(config);
        })
        .await;
        let fixture = org(&server).await;
        let org = relogin(&server, fixture).await;
        let colleges = college_ids(&server, &org).await;
        Replay {
            server,
            org,
            colleges,
        }
    }

    fn flow(&self) -> Flow<'_> {
        Flow::new(&self.server, &self.org)
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

async fn college_ids(server: &TestServer, org: &Org) -> BTreeMap<&'static str, String> {
    let answer = server
        .gql(
            Some(org.token("chair_b")),
            "{ municipalities { id college { id } } }",
            json!({}),
        )
        .await;
    let mut colleges = BTreeMap::new();
    for m in answer.data()["municipalities"].as_array().expect("a list") {
        for key in ["b", "h", "x"] {
            if m["id"] == org.municipality(key).to_string() {
                colleges.insert(key, id_of(&m["college"]));
            }
        }
    }
    assert_eq!(colleges.len(), 3);
    colleges
}

/// `advanceClock` as ADMIN on one server; the new instant.
async fn advance_on(server: &TestServer, org: &Org, to: &str) -> Gql {
    server
        .gql(Some(org.token("admin")), ADVANCE, json!({ "to": to }))
        .await
}

async fn advance(flow: &Flow<'_>, to: &str) {
    let answer = advance_on(flow.server, flow.org, to).await;
    assert_eq!(instant_of(&answer.data()["advanceClock"]), instant(to));
}

// ---------------------------------------------------------------------------------------------
// Driving a round
// ---------------------------------------------------------------------------------------------

/// Writes the RESEARCH gate's content with the given terms.
async fn research_ready(flow: &Flow<'_>, id: &str, mode: &str, due: Option<&str>) {
    if crate::support::version_numbers(
        &flow.investigation("chair_b", id).await,
        DocumentKind::ResearchReport,
    )
    .is_empty()
    {
        flow.submit_ok(
            "secretary_b",
            id,
            DocumentKind::ResearchReport,
            "# Rapport\n\nBevindingen.",
        )
        .await;
    }
    flow.submit_ok(
        "secretary_h",
        id,
        DocumentKind::Conclusions,
        "# Conclusies\n\nDe raad heeft beperkt grip.",
    )
    .await;
    flow.add_recommendation("member_h", id, "Stel meetbare doelen vast.")
        .await
        .data();
    flow.gql(
        "chair_b",
        TERMS,
        json!({ "id": id, "mode": mode, "due": due }),
    )
    .await
    .data();
}

/// A joint investigation of b and h in RESEARCH.
async fn in_research(flow: &Flow<'_>, title: &str) -> String {
    let id = flow.propose_joint(title).await;
    flow.drive_to(&id, Phase::Research).await;
    id
}

/// A joint investigation whose RESEARCH gate passes at the clock's current instant.
async fn in_rebuttal(flow: &Flow<'_>, title: &str, mode: &str) -> String {
    let id = in_research(flow, title).await;
    research_ready(flow, &id, mode, None).await;
    flow.approve_all(&id).await;
    assert_eq!(flow.phase(&id).await, "ADMINISTRATIVE_REBUTTAL");
    id
}

async fn round(flow: &Flow<'_>, who: &str, id: &str) -> Value {
    flow.gql(who, ROUND, json!({ "id": id })).await.data()["investigation"].clone()
}

/// The deadlines `who` sees: (kind, college name, due instant, status).
async fn deadlines(
    flow: &Flow<'_>,
    who: &str,
    id: &str,
) -> Vec<(String, String, DateTime<Utc>, String)> {
    let found = round(flow, who, id).await;
    let mut list: Vec<_> = found["deadlines"]
        .as_array()
        .expect("deadlines")
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().expect("kind").to_string(),
                d["college"]["name"].as_str().expect("college").to_string(),
                instant_of(&d["dueAt"]),
                d["status"].as_str().expect("status").to_string(),
            )
        })
        .collect();
    list.sort();
    list
}

/// The status and due instant of one college's rebuttal deadline (as chair_b sees it).
async fn rebuttal_deadline(flow: &Flow<'_>, id: &str, college: &str) -> (DateTime<Utc>, String) {
    deadlines(flow, "chair_b", id)
        .await
        .into_iter()
        .find(|(kind, name, _, _)| kind == "ADMINISTRATIVE_RESPONSE" && name == college)
        .map(|(_, _, due, status)| (due, status))
        .unwrap_or_else(|| panic!("no rebuttal deadline of {college}"))
}

async fn file(
    flow: &Flow<'_>,
    colleges: &BTreeMap<&str, String>,
    who: &str,
    id: &str,
    keys: &[&str],
    positions: Value,
) -> Gql {
    let ids: Vec<&String> = keys.iter().map(|k| &colleges[k]).collect();
    flow.gql(
        who,
        FILE,
        json!({ "input": {
            "investigationId": id,
            "collegeIds": ids,
            "content": format!("# Bestuurlijke reactie van {who}\n\nWij danken de rekenkamer."),
            "positions": positions,
        }}),
    )
    .await
}

async fn request_extension(
    flow: &Flow<'_>,
    colleges: &BTreeMap<&str, String>,
    who: &str,
    id: &str,
    key: &str,
    date: &str,
) -> Gql {
    flow.gql(
        who,
        REQUEST_EXTENSION,
        json!({
            "id": id,
            "college": colleges[key],
            "date": date,
            "reason": "Het college vergadert pas na de deadline",
        }),
    )
    .await
}

async fn decide(flow: &Flow<'_>, who: &str, request: &str, grant: bool) -> Gql {
    flow.gql(
        who,
        DECIDE_EXTENSION,
        json!({ "id": request, "grant": grant }),
    )
    .await
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["name"].as_str().expect("a name").to_string())
        .collect();
    names.sort();
    names
}

/// One audit event as the tests read it.
#[derive(Clone, Debug)]
struct Event {
    at: DateTime<Utc>,
    action: String,
    actor: Option<String>,
    data: Value,
}

/// The whole audit trail of an investigation (as chair_b, every page).
async fn audit(flow: &Flow<'_>, id: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let answer = flow
            .gql("chair_b", AUDIT, json!({ "id": id, "after": after }))
            .await;
        let trail = &answer.data()["auditTrail"];
        for edge in trail["edges"].as_array().expect("edges") {
            let node = &edge["node"];
            events.push(Event {
                at: instant_of(&node["at"]),
                action: node["action"].as_str().expect("action").to_string(),
                actor: node["actor"]["name"].as_str().map(str::to_string),
                data: serde_json::from_str(node["data"].as_str().unwrap_or("null"))
                    .unwrap_or(Value::Null),
            });
        }
        if trail["pageInfo"]["hasNextPage"] != true {
            return events;
        }
        after = trail["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
}

fn count(events: &[Event], action: &str) -> usize {
    events.iter().filter(|e| e.action == action).count()
}

// ---------------------------------------------------------------------------------------------
// Subscriptions (graphql-transport-ws)
// ---------------------------------------------------------------------------------------------

/// The next JSON message, or `None` after `wait` without one.
async fn receive(socket: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??
            .ok()?;
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).ok(),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// A subscription to `investigationEvents` of `id` as `who`, acknowledged.
async fn subscribe(flow: &Flow<'_>, who: &str, id: &str) -> Socket {
    let mut socket = open_ws(flow.server).await;
    let token = flow.token(who).expect("a token");
    send(
        &mut socket,
        json!({ "type": "connection_init",
                "payload": { "Authorization": format!("Bearer {token}") } }),
    )
    .await;
    let ack = receive(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(
        ack.as_ref().map(|m| &m["type"]),
        Some(&json!("connection_ack"))
    );
    send(
        &mut socket,
        json!({
            "id": "1",
            "type": "subscribe",
            "payload": {
                "query": "subscription($id: ID!) { investigationEvents(investigationId: $id) {
                    seq action actor { name } investigationId } }",
                "variables": { "id": id },
            },
        }),
    )
    .await;
    socket
}

/// Reads events until `wanted` of `action` arrived (or `wait` passed); their count.
async fn await_events(socket: &mut Socket, action: &str, wanted: usize, wait: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen = 0;
    while seen < wanted {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(message) = receive(socket, left).await else {
            break;
        };
        assert_eq!(message["type"], "next", "{message}");
        if message["payload"]["data"]["investigationEvents"]["action"] == action {
            seen += 1;
        }
    }
    seen
}

/// Makes sure the subscription is live: the stream starts asynchronously, so an event is
/// written (a rapporteur assignment, harmless) until one arrives.
async fn until_live(flow: &Flow<'_>, socket: &mut Socket, id: &str) {
    for user in [
        "external",
        "outsider",
        "member_b",
        "member_h",
        "secretary_b",
    ] {
        flow.assign_rapporteur("chair_b", id, "b", user)
            .await
            .data();
        if receive(socket, Duration::from_millis(500)).await.is_some() {
            while receive(socket, Duration::from_millis(100)).await.is_some() {}
            return;
        }
    }
    panic!("the subscription never delivered an event");
}

// ---------------------------------------------------------------------------------------------
// 1. The 2019 timeline
// ---------------------------------------------------------------------------------------------

/// Sent for rebuttal on Thursday 24 October 2019 at 10:00 CEST with JOINT terms and no due
/// date: both colleges' deadlines fall 21 days later, on Thursday 14 November, after the change
/// to winter time (23:59:59+01:00 = 22:59:59Z). On 12 November Bloemendaal files one response
/// for both colleges, Heemstede co-signs it: MET for both, one response counted for both, with
/// each college's position on the recommendation.
#[tokio::test]
async fn the_2019_timeline_joint_response_met_for_both_once_cosigned() {
    for_each_backend(|db| async move {
        let replay = Replay::start(&db, "2019-10-01T09:00:00+02:00").await;
        let flow = replay.flow();
        let colleges = &replay.colleges;
        let id = in_research(&flow, "Grip op het sociaal domein").await;
        research_ready(&flow, &id, "JOINT", None).await;
        advance(&flow, "2019-10-24T10:00:00+02:00").await;
        flow.approve_all(&id).await;

        let due = instant("2019-11-14T23:59:59+01:00");
        assert_eq!(due, instant("2019-11-14T22:59:59Z"));
        assert_eq!(
            deadlines(&flow, "chair_b", &id).await,
            vec![
                (
                    "ADMINISTRATIVE_RESPONSE".to_string(),
                    BLOEMENDAAL.to_string(),
                    due,
                    "OPEN".to_string()
                ),
                (
                    "ADMINISTRATIVE_RESPONSE".to_string(),
                    HEEMSTEDE.to_string(),
                    due,
                    "OPEN".to_string()
                ),
            ]
        );
        let before = round(&flow, "college_b", &id).await;
        assert_eq!(before["rebuttalMode"], "JOINT");
        let recommendation = id_of(&before["recommendations"][0]);

        advance(&flow, "2019-11-12T10:00:00+01:00").await;
        let filed = file(
            &flow,
            colleges,
            "college_b",
            &id,
            &["b", "h"],
            json!([{ "recommendationId": recommendation, "position": "AGREES" }]),
        )
        .await;
        let response = &filed.data()["fileResponse"];
        assert_eq!(names(&response["colleges"]), [BLOEMENDAAL, HEEMSTEDE]);
        assert_eq!(names(&response["signedBy"]), [BLOEMENDAAL]);
        assert_eq!(response["late"], false);
        assert_eq!(
            instant_of(&response["filedAt"]),
            instant("2019-11-12T10:00:00+01:00")
        );
        let response_id = id_of(response);
        assert_eq!(rebuttal_deadline(&flow, &id, BLOEMENDAAL).await.1, "MET");
        assert_eq!(rebuttal_deadline(&flow, &id, HEEMSTEDE).await.1, "OPEN");
        // Heemstede has not signed: the gate still waits for it.
        let refused = flow.approve("chair_b", &id).await;
        refused.expect_code("CONFLICT");
        assert!(
            refused.message().contains("college"),
            "{}",
            refused.message()
        );

        let cosigned = flow
            .gql("college_h", COSIGN, json!({ "id": response_id }))
            .await;
        let cosigned = &cosigned.data()["cosignResponse"];
        assert_eq!(names(&cosigned["signedBy"]), [BLOEMENDAAL, HEEMSTEDE]);
        assert_eq!(cosigned["late"], false);
        flow.gql("college_h", COSIGN, json!({ "id": response_id }))
            .await
            .expect_code("CONFLICT");
        for (_, _, at, status) in deadlines(&flow, "chair_b", &id).await {
            assert_eq!((at, status.as_str()), (due, "MET"));
        }

        // One response, counted for both, with both colleges' positions; both colleges see it.
        for who in ["chair_b", "college_b", "college_h"] {
            let seen = round(&flow, who, &id).await;
            let responses = seen["responses"].as_array().expect("responses");
            assert_eq!(responses.len(), 1, "{who}");
            assert_eq!(names(&responses[0]["signedBy"]), [BLOEMENDAAL, HEEMSTEDE]);
            let positions: BTreeSet<(String, String)> = seen["recommendations"][0]["positions"]
                .as_array()
                .expect("positions")
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
            assert_eq!(
                positions,
                BTreeSet::from([
                    (BLOEMENDAAL.to_string(), "AGREES".to_string()),
                    (HEEMSTEDE.to_string(), "AGREES".to_string()),
                ]),
                "{who}"
            );
        }

        flow.approve_all(&id).await;
        assert_eq!(flow.phase(&id).await, "EPILOGUE");
        advance(&flow, "2019-11-20T10:00:00+01:00").await;
        let events = audit(&flow, &id).await;
        assert_eq!(count(&events, "deadline.opened"), 2);
        assert_eq!(count(&events, "deadline.met"), 2);
        assert_eq!(count(&events, "deadline.missed"), 0);
        assert_eq!(count(&events, "rebuttal.no_response"), 0);
        // The jump to 12 November passed the 7-day reminder (not the 1-day one) of both.
        assert_eq!(count(&events, "deadline.reminder"), 2);
        replay.stop().await;
    })
    .await;
}

/// The positions per recommendation `who` sees: (college, position).
async fn positions(flow: &Flow<'_>, who: &str, id: &str) -> Vec<(String, String)> {
    let seen = round(flow, who, id).await;
    let mut list: Vec<(String, String)> = seen["recommendations"][0]["positions"]
        .as_array()
        .expect("positions")
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
    list.sort();
    list
}

/// A college that files a newer response of its own after co-signing a JOINT one: both are
/// kept, the newer one counts for that college (the JOINT one still for the other), and each
/// college has exactly one position per recommendation, from its counted response.
#[tokio::test]
async fn a_newer_response_replaces_a_colleges_earlier_one_as_counted() {
    for_each_backend(|db| async move {
        let replay = Replay::start(&db, "2019-10-24T10:00:00+02:00").await;
        let flow = replay.flow();
        let colleges = &replay.colleges;
        let id = in_rebuttal(&flow, "Mantelzorg", "JOINT").await;
        let recommendation = id_of(&round(&flow, "chair_b", &id).await["recommendations"][0]);
        advance(&flow, "2019-11-01T10:00:00+01:00").await;
        let joint = file(
            &flow,
            colleges,
            "college_b",
            &id,
            &["b", "h"],
            json!([{ "recommendationId": recommendation, "position": "AGREES" }]),
        )
        .await;
        let joint = id_of(&joint.data()["fileResponse"]);
        flow.gql("college_h", COSIGN, json!({ "id": joint }))
            .await
            .data();
        advance(&flow, "2019-11-02T10:00:00+01:00").await;
        let own = file(
            &flow,
            colleges,
            "college_h",
            &id,
            &["h"],
            json!([{ "recommendationId": recommendation, "position": "DISAGREES" }]),
        )
        .await;
        assert_eq!(own.data()["fileResponse"]["late"], false);

        let team = round(&flow, "chair_b", &id).await;
        assert_eq!(
            team["responses"].as_array().map(Vec::len),
            Some(2),
            "both kept"
        );
        let agrees = (BLOEMENDAAL.to_string(), "AGREES".to_string());
        let disagrees = (HEEMSTEDE.to_string(), "DISAGREES".to_string());
        assert_eq!(
            positions(&flow, "chair_b", &id).await,
            vec![agrees.clone(), disagrees.clone()]
        );
        assert_eq!(
            positions(&flow, "college_h", &id).await,
            vec![agrees.clone(), disagrees]
        );
        // Bloemendaal is not listed on Heemstede's own response: it sees neither that response
        // nor a stale position of Heemstede.
        assert_eq!(positions(&flow, "college_b", &id).await, vec![agrees]);
        let seen = round(&flow, "college_b", &id).await;
        assert_eq!(seen["responses"].as_array().map(Vec::len), Some(1));
        for college in [BLOEMENDAAL, HEEMSTEDE] {
            assert_eq!(rebuttal_deadline(&flow, &id, college).await.1, "MET");
        }
        assert_eq!(count(&audit(&flow, &id).await, "deadline.met"), 2);
        replay.stop().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 2. MISSED, late responses and the gate
// ---------------------------------------------------------------------------------------------

/// A SEPARATE round: Bloemendaal answers only after its deadline (accepted, late, the deadline
/// stays MISSED), Heemstede never (MISSED when `advanceClock` passes it, "no response" at the
/// gate); SEPARATE responses name one college.
#[tokio::test]
async fn a_separate_round_with_a_late_and_a_silent_college() {
    for_each_backend(|db| async move {
        let replay = Replay::start(&db, "2019-10-24T10:00:00+02:00").await;
        let flow = replay.flow();
        let colleges = &replay.colleges;
        let id = in_rebuttal(&flow, "Afvalinzameling", "SEPARATE").await;
        let due = instant("2019-11-14T22:59:59Z");
        assert_eq!(
            rebuttal_deadline(&flow, &id, HEEMSTEDE).await,
            (due, "OPEN".into())
        );

        let both = file(&flow, colleges, "college_b", &id, &["b", "h"], json!([])).await;
        both.expect_code("BAD_USER_INPUT");
        file(&flow, colleges, "college_b", &id, &["h"], json!([]))
            .await
            .expect_code("FORBIDDEN");
        flow.approve("chair_b", &id).await.expect_code("CONFLICT");

        // Nobody but the clock acts: both deadlines are MISSED by the scheduler's pass.
        advance(&flow, "2019-11-15T09:00:00+01:00").await;
        assert_eq!(rebuttal_deadline(&flow, &id, BLOEMENDAAL).await.1, "MISSED");
        assert_eq!(rebuttal_deadline(&flow, &id, HEEMSTEDE).await.1, "MISSED");
        let missed: Vec<Event> = audit(&flow, &id)
            .await
            .into_iter()
            .filter(|e| e.action == "deadline.missed")
            .collect();
        assert_eq!(missed.len(), 2);
        for event in &missed {
            assert_eq!(event.actor, None, "the scheduler acts for nobody");
            assert_eq!(event.at, instant("2019-11-15T09:00:00+01:00"));
        }

        let late = file(&flow, colleges, "college_b", &id, &["b"], json!([])).await;
        assert_eq!(late.data()["fileResponse"]["late"], true);
        assert_eq!(rebuttal_deadline(&flow, &id, BLOEMENDAAL).await.1, "MISSED");

        flow.approve_all(&id).await;
        assert_eq!(flow.phase(&id).await, "EPILOGUE");
        let events = audit(&flow, &id).await;
        let silent: Vec<&Event> = events
            .iter()
            .filter(|e| e.action == "rebuttal.no_response")
            .collect();
        assert_eq!(silent.len(), 1);
        assert_eq!(
            silent[0].data["colleges"],
            json!([replay.org.municipality("h").to_string()])
        );

        // Still accepted during the EPILOGUE, late; never marked twice.
        advance(&flow, "2019-11-18T09:00:00+01:00").await;
        let in_epilogue = file(&flow, colleges, "college_h", &id, &["h"], json!([])).await;
        assert_eq!(in_epilogue.data()["fileResponse"]["late"], true);
        assert_eq!(rebuttal_deadline(&flow, &id, HEEMSTEDE).await.1, "MISSED");
        let events = audit(&flow, &id).await;
        assert_eq!(count(&events, "deadline.missed"), 2);
        assert_eq!(count(&events, "deadline.met"), 0);
        assert_eq!(
            count(&events, "deadline.reminder"),
            0,
            "the clock jumped past"
        );
        replay.stop().await;
    })
    .await;
}

/// The gate refuses while a college is still within its term without a response, and passes
/// once the term has run out, recording "no response".
#[tokio::test]
async fn the_rebuttal_gate_waits_while_a_college_is_within_its_term() {
    for_each_backend(|db| async move {
        let replay = Replay::start(&db, "2019-10-24T10:00:00+02:00").await;
        let flow = replay.flow();
        let id = in_rebuttal(&flow, "Parkeerbeleid", "SEPARATE").await;
        advance(&flow, "2019-11-12T10:00:00+01:00").await;
        file(&flow, &replay.colleges, "college_b", &id, &["b"], json!([]))
            .await
            .data();
        // At the due instant itself Heemstede is still within its term.
        advance(&flow, "2019-11-14T23:59:59+01:00").await;
        let refused = flow.approve("chair_b", &id).await;
        refused.expect_code("CONFLICT");
        assert!(
            refused
                .message()
                .contains(&replay.org.municipality("h").to_string()),
            "{}",
            refused.message()
        );
        assert_eq!(rebuttal_deadline(&flow, &id, HEEMSTEDE).await.1, "OPEN");
        advance(&flow, "2019-11-15T00:00:00+01:00").await;
        assert_eq!(rebuttal_deadline(&flow, &id, HEEMSTEDE).await.1, "MISSED");
        flow.approve_all(&id).await;
        assert_eq!(flow.phase(&id).await, "EPILOGUE");
        assert_eq!(rebuttal_deadline(&flow, &id, BLOEMENDAAL).await.1, "MET");
        let events = audit(&flow, &id).await;
        assert_eq!(count(&events, "rebuttal.no_response"), 1);
        assert_eq!(count(&events, "deadline.missed"), 1);
        replay.stop().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 3. The scheduler without requests; reminders
// ---------------------------------------------------------------------------------------------

/// The background loop marks deadlines MISSED although nobody calls the API.
///
/// The manual clock moves only by `advanceClock`, which runs a scheduler pass itself, so it
/// cannot show the loop at work. Instead two servers share the database: server A (clock on
/// 24 October 2019) drives the investigation; server B's clock stands still on 20 November
/// 2019, past the deadlines, and B gets no request at all. B's loop (a pass every second) finds
/// the deadlines A opened and marks them MISSED, with B's clock as their time.
#[tokio::test]
async fn the_background_scheduler_marks_missed_without_any_request() {
    for_each_backend(|db| async move {
        let quiet = TestServer::start_with(&db, |config| {
            replay_clock(config, "2019-11-20T12:00:00+01:00");
            config.scheduler_interval = Duration::from_secs(1);
        })
        .await;
        let replay = Replay::start_with(&db, "2019-10-24T10:00:00+02:00", |config| {
            // A's own loop stays out of the way (its first pass, at start, finds nothing).
            config.scheduler_interval = Duration::from_secs(3600);
        })
        .await;
        let flow = replay.flow();
        let id = in_rebuttal(&flow, "Jeugdzorg", "SEPARATE").await;
        let marked = eventually(Duration::from_secs(15), || {
            let (flow, id) = (&flow, &id);
            async move {
                let list = deadlines(flow, "chair_b", id).await;
                list.iter()
                    .all(|(_, _, _, status)| status == "MISSED")
                    .then_some(list)
            }
        })
        .await;
        assert!(marked.is_some(), "B's loop marked nothing");
        let missed: Vec<Event> = audit(&flow, &id)
            .await
            .into_iter()
            .filter(|e| e.action == "deadline.missed")
            .collect();
        assert_eq!(missed.len(), 2);
        for event in missed {
            assert_eq!(event.at, instant("2019-11-20T12:00:00+01:00"), "B's clock");
            assert_eq!(event.actor, None);
        }
        // More passes of B change nothing.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(count(&audit(&flow, &id).await, "deadline.missed"), 2);
        replay.stop().await;
        quiet.stop().await;
    })
    .await;
}

/// With the system clock, the loop sends reminders by itself and the subscription carries
/// them. A reminder offset of 30 days is longer than the 21-day term, so the reminder is due
/// the moment the round opens; it is sent once however often the loop passes.
#[tokio::test]
async fn the_background_scheduler_reminds_on_the_system_clock() {
    for_each_backend(|db| async move {
        let server = TestServer::start_with(&db, |config| {
            config.scheduler_interval = Duration::from_secs(1);
            config.reminder_offsets = vec![chrono::Duration::days(30)];
        })
        .await;
        let fixture = org(&server).await;
        let flow = Flow::new(&server, &fixture);
        let id = in_research(&flow, "Subsidiebeleid").await;
        research_ready(&flow, &id, "SEPARATE", None).await;
        let mut socket = subscribe(&flow, "chair_b", &id).await;
        until_live(&flow, &mut socket, &id).await;
        flow.approve_all(&id).await;
        let reminded =
            await_events(&mut socket, "deadline.reminder", 2, Duration::from_secs(10)).await;
        assert_eq!(reminded, 2, "both colleges reminded by the loop");
        // Two more passes: nothing new.
        assert_eq!(
            await_events(
                &mut socket,
                "deadline.reminder",
                1,
                Duration::from_millis(2_500)
            )
            .await,
            0
        );
        let events = audit(&flow, &id).await;
        let reminders: Vec<&Event> = events
            .iter()
            .filter(|e| e.action == "deadline.reminder")
            .collect();
        assert_eq!(reminders.len(), 2);
        for event in reminders {
            assert_eq!(event.data["before_seconds"], 30 * 86_400);
            assert_eq!(event.actor, None);
        }
        let _ = socket.close(None).await;
        server.stop().await;
    })
    .await;
}

/// Reminders 7 days and 1 day before, each once, as audit events and on the subscription.
#[tokio::test]
async fn reminders_go_out_seven_days_and_one_day_before_once_each() {
    for_each_backend(|db| async move {
        let replay = Replay::start(&db, "2019-10-24T10:00:00+02:00").await;
        let flow = replay.flow();
        let id = in_rebuttal(&flow, "Schuldhulpverlening", "SEPARATE").await;
        let mut socket = subscribe(&flow, "chair_b", &id).await;
        until_live(&flow, &mut socket, &id).await;

        // Due 14 November 22:59:59Z: not yet on 7 November 22:59:58Z.
        advance(&flow, "2019-11-07T23:59:58+01:00").await;
        assert_eq!(count(&audit(&flow, &id).await, "deadline.reminder"), 0);
        advance(&flow, "2019-11-07T23:59:59+01:00").await;
        let week = await_events(&mut socket, "deadline.reminder", 2, Duration::from_secs(5)).await;
        assert_eq!(week, 2);
        advance(&flow, "2019-11-10T10:00:00+01:00").await;
        advance(&flow, "2019-11-14T09:00:00+01:00").await;
        let day = await_events(&mut socket, "deadline.reminder", 2, Duration::from_secs(5)).await;
        assert_eq!(day, 2);
        advance(&flow, "2019-11-14T20:00:00+01:00").await;

        let events = audit(&flow, &id).await;
        let mut sent: Vec<i64> = events
            .iter()
            .filter(|e| e.action == "deadline.reminder")
            .map(|e| e.data["before_seconds"].as_i64().expect("before_seconds"))
            .collect();
        sent.sort();
        assert_eq!(sent, [86_400, 86_400, 604_800, 604_800]);
        assert_eq!(count(&events, "deadline.missed"), 0);
        let _ = socket.close(None).await;
        replay.stop().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 4. Extensions
// ---------------------------------------------------------------------------------------------

/// Heemstede asks for more time: granted only after both chairs agree, which moves its
/// deadline (and only its). Bloemendaal's request is refused by one chair.
#[tokio::test]
async fn an_extension_is_granted_by_both_chairs_and_refused_by_one() {
    for_each_backend(|db| async move {
        let replay = Replay::start(&db, "2019-10-24T10:00:00+02:00").await;
        let flow = replay.flow();
        let colleges = &replay.colleges;
        let id = in_rebuttal(&flow, "Wmo-voorzieningen", "SEPARATE").await;
        let due = instant("2019-11-14T22:59:59Z");
        advance(&flow, "2019-11-05T10:00:00+01:00").await;

        request_extension(&flow, colleges, "college_b", &id, "h", "2019-11-28")
            .await
            .expect_code("FORBIDDEN");
        request_extension(&flow, colleges, "college_h", &id, "h", "2019-11-14")
            .await
            .expect_code("BAD_USER_INPUT");
        let asked = request_extension(&flow, colleges, "college_h", &id, "h", "2019-11-28").await;
        let asked = &asked.data()["requestExtension"];
        assert_eq!(asked["granted"], Value::Null);
        assert_eq!(asked["college"]["name"], HEEMSTEDE);
        assert_eq!(asked["proposedDueDate"], "2019-11-28");
        let request = id_of(asked);

        let first = decide(&flow, "chair_b", &request, true).await;
        assert_eq!(first.data()["decideExtension"]["granted"], Value::Null);
        assert_eq!(rebuttal_deadline(&flow, &id, HEEMSTEDE).await.0, due);
        decide(&flow, "chair_b", &request, true)
            .await
            .expect_code("CONFLICT");
        decide(&flow, "college_h", &request, true)
            .await
            .expect_code("FORBIDDEN");
        let second = decide(&flow, "chair_h", &request, true).await;
        assert_eq!(second.data()["decideExtension"]["granted"], true);
        assert_eq!(
            rebuttal_deadline(&flow, &id, HEEMSTEDE).await,
            (instant("2019-11-28T23:59:59+01:00"), "OPEN".into())
        );
        assert_eq!(rebuttal_deadline(&flow, &id, BLOEMENDAAL).await.0, due);

        // Refused by one chair: refused at once, nothing moves.
        let asked = request_extension(&flow, colleges, "college_b", &id, "b", "2019-11-29").await;
        let refused_request = id_of(&asked.data()["requestExtension"]);
        let refused = decide(&flow, "chair_h", &refused_request, false).await;
        assert_eq!(refused.data()["decideExtension"]["granted"], false);
        decide(&flow, "chair_b", &refused_request, true)
            .await
            .expect_code("CONFLICT");
        assert_eq!(rebuttal_deadline(&flow, &id, BLOEMENDAAL).await.0, due);

        // Past 14 November Bloemendaal is MISSED; Heemstede still answers in time.
        advance(&flow, "2019-11-20T10:00:00+01:00").await;
        assert_eq!(rebuttal_deadline(&flow, &id, BLOEMENDAAL).await.1, "MISSED");
        assert_eq!(rebuttal_deadline(&flow, &id, HEEMSTEDE).await.1, "OPEN");
        let answer = file(&flow, colleges, "college_h", &id, &["h"], json!([])).await;
        assert_eq!(answer.data()["fileResponse"]["late"], false);
        assert_eq!(rebuttal_deadline(&flow, &id, HEEMSTEDE).await.1, "MET");

        let events = audit(&flow, &id).await;
        assert_eq!(count(&events, "extension.requested"), 2);
        assert_eq!(count(&events, "extension.voted"), 3);
        assert_eq!(count(&events, "extension.resolved"), 2);
        assert_eq!(count(&events, "deadline.moved"), 1);
        replay.stop().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 5. Who sees what
// ---------------------------------------------------------------------------------------------

/// The (kind, version numbers) of the documents `who` sees.
async fn documents_seen(flow: &Flow<'_>, who: &str, id: &str) -> Vec<(String, Vec<i64>)> {
    let found = round(flow, who, id).await;
    let mut list: Vec<(String, Vec<i64>)> = found["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().expect("kind").to_string(),
                d["versions"]
                    .as_array()
                    .expect("versions")
                    .iter()
                    .map(|v| v["number"].as_i64().expect("number"))
                    .collect(),
            )
        })
        .collect();
    list.sort();
    list
}

fn doc(kind: &str, versions: &[i64]) -> (String, Vec<i64>) {
    (kind.to_string(), versions.to_vec())
}

/// The factual check's and the rebuttal's visibility: civil-service contacts see the
/// RESEARCH_REPORT version frozen when the check started and their own FACTUAL_RESPONSEs; a
/// college contact sees its own college's deadlines, extension requests and the responses its
/// college is listed on; a college that is not concerned finds nothing.
#[tokio::test]
async fn each_contact_sees_only_its_own_part_of_the_round() {
    for_each_backend(|db| async move {
        let replay = Replay::start(&db, "2019-09-02T10:00:00+02:00").await;
        let flow = replay.flow();
        let colleges = &replay.colleges;
        let id = in_research(&flow, "Binnenstedelijke woningbouw").await;
        flow.submit_ok(
            "secretary_b",
            &id,
            DocumentKind::ResearchReport,
            "# Rapport v1",
        )
        .await;
        let started = flow
            .gql("chair_h", FACTUAL_CHECK, json!({ "id": id }))
            .await;
        let opened = started.data()["startFactualCheck"]["deadlines"]
            .as_array()
            .expect("deadlines")
            .clone();
        assert_eq!(opened.len(), 2);
        for deadline in &opened {
            assert_eq!(deadline["kind"], "FACTUAL_CHECK");
            assert_eq!(deadline["status"], "OPEN");
            // 21 days from Monday 2 September 2019: Monday 23 September, end of day (CEST).
            assert_eq!(
                instant_of(&deadline["dueAt"]),
                instant("2019-09-23T23:59:59+02:00")
            );
        }
        flow.submit_ok(
            "secretary_b",
            &id,
            DocumentKind::ResearchReport,
            "# Rapport v2",
        )
        .await;
        flow.submit_ok("civil_b", &id, DocumentKind::FactualResponse, "# Feiten b")
            .await;
        let civil_h = flow
            .submit_ok("civil_h", &id, DocumentKind::FactualResponse, "# Feiten h")
            .await;

        // The civil service: the report as it was at the start, and its own answer only.
        assert_eq!(
            documents_seen(&flow, "civil_b", &id).await,
            vec![
                doc("FACTUAL_RESPONSE", &[1]),
                doc("PROPOSAL", &[1]),
                doc("RESEARCH_REPORT", &[1]),
            ]
        );
        let seen = round(&flow, "civil_b", &id).await;
        let own = seen["documents"]
            .as_array()
            .expect("documents")
            .iter()
            .find(|d| d["kind"] == "FACTUAL_RESPONSE")
            .cloned()
            .expect("its own factual response");
        assert!(!own["versions"].to_string().contains(&id_of(&civil_h)));
        let download = flow
            .get(
                "civil_b",
                civil_h["downloadUrl"].as_str().expect("a download URL"),
            )
            .await;
        assert_eq!(download.status().as_u16(), 404);
        assert!(seen["responses"].as_array().expect("responses").is_empty());
        assert!(
            deadlines(&flow, "civil_b", &id)
                .await
                .iter()
                .all(|(_, college, _, _)| college == BLOEMENDAAL),
            "never another municipality's deadline"
        );
        // A college contact sees no research draft and no factual response before the rebuttal.
        assert_eq!(
            documents_seen(&flow, "college_b", &id).await,
            vec![doc("PROPOSAL", &[1])]
        );

        // Both answered: the check is closed, the RESEARCH gate may pass.
        research_ready(&flow, &id, "SEPARATE", None).await;
        advance(&flow, "2019-10-24T10:00:00+02:00").await;
        flow.approve_all(&id).await;
        advance(&flow, "2019-11-05T10:00:00+01:00").await;
        request_extension(&flow, colleges, "college_h", &id, "h", "2019-11-28")
            .await
            .data();
        let response_b = file(&flow, colleges, "college_b", &id, &["b"], json!([])).await;
        let response_b = id_of(&response_b.data()["fileResponse"]);
        file(&flow, colleges, "college_h", &id, &["h"], json!([]))
            .await
            .data();

        // The team sees everything of the round.
        let team = round(&flow, "chair_b", &id).await;
        assert_eq!(team["deadlines"].as_array().map(Vec::len), Some(4));
        assert_eq!(team["extensionRequests"].as_array().map(Vec::len), Some(1));
        assert_eq!(team["responses"].as_array().map(Vec::len), Some(2));

        // A college contact: its own college only.
        let seen = round(&flow, "college_b", &id).await;
        let own: Vec<(String, String)> = seen["deadlines"]
            .as_array()
            .expect("deadlines")
            .iter()
            .map(|d| {
                (
                    d["kind"].as_str().unwrap_or_default().to_string(),
                    d["college"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(own.len(), 2, "{own:?}");
        assert!(
            own.iter().all(|(_, college)| college == BLOEMENDAAL),
            "{own:?}"
        );
        assert!(
            seen["extensionRequests"]
                .as_array()
                .expect("list")
                .is_empty()
        );
        let responses = seen["responses"].as_array().expect("responses");
        assert_eq!(responses.len(), 1);
        assert_eq!(id_of(&responses[0]), response_b);
        let seen_h = round(&flow, "college_h", &id).await;
        assert_eq!(
            seen_h["extensionRequests"].as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(seen_h["responses"].as_array().map(Vec::len), Some(1));
        assert_ne!(id_of(&seen_h["responses"][0]), response_b);
        // The draft under rebuttal is the report and conclusions approved at the gate.
        assert_eq!(
            documents_seen(&flow, "college_b", &id).await,
            vec![
                doc("ADMINISTRATIVE_RESPONSE", &[1]),
                doc("CONCLUSIONS", &[1]),
                doc("PROPOSAL", &[1]),
                doc("RESEARCH_REPORT", &[2]),
            ]
        );
        // The civil service still sees only what it saw.
        assert_eq!(
            documents_seen(&flow, "civil_b", &id).await,
            vec![
                doc("FACTUAL_RESPONSE", &[1]),
                doc("PROPOSAL", &[1]),
                doc("RESEARCH_REPORT", &[1]),
            ]
        );

        // Haarlem is not concerned: the investigation does not exist for it.
        let hidden = flow.gql("college_x", ROUND, json!({ "id": id })).await;
        assert_eq!(hidden.data()["investigation"], Value::Null);
        file(&flow, colleges, "college_x", &id, &["x"], json!([]))
            .await
            .expect_code("NOT_FOUND");
        request_extension(&flow, colleges, "college_x", &id, "x", "2019-11-28")
            .await
            .expect_code("NOT_FOUND");
        flow.gql("college_x", COSIGN, json!({ "id": response_b }))
            .await
            .expect_code("NOT_FOUND");
        let request = id_of(&team["extensionRequests"][0]);
        decide(&flow, "chair_x", &request, true)
            .await
            .expect_code("NOT_FOUND");
        replay.stop().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 6. Suspension stops the clock
// ---------------------------------------------------------------------------------------------

/// Suspended for 10 days across the due date: the open deadline is not MISSED and moves by
/// the suspended time on resume (14 November + 10 days = Sunday 24 November → Monday 25
/// November); a MET deadline stays where it was.
#[tokio::test]
async fn suspension_stops_the_clock_and_resume_moves_the_open_deadline() {
    for_each_backend(|db| async move {
        let replay = Replay::start(&db, "2019-10-24T10:00:00+02:00").await;
        let flow = replay.flow();
        let colleges = &replay.colleges;
        let id = in_rebuttal(&flow, "Sportaccommodaties", "SEPARATE").await;
        let due = instant("2019-11-14T22:59:59Z");
        advance(&flow, "2019-11-05T10:00:00+01:00").await;
        file(&flow, colleges, "college_b", &id, &["b"], json!([]))
            .await
            .data();
        advance(&flow, "2019-11-10T12:00:00+01:00").await;
        flow.suspend("chair_h", &id).await.data();
        file(&flow, colleges, "college_h", &id, &["h"], json!([]))
            .await
            .expect_code("CONFLICT");

        advance(&flow, "2019-11-20T12:00:00+01:00").await;
        assert_eq!(
            rebuttal_deadline(&flow, &id, HEEMSTEDE).await,
            (due, "OPEN".into()),
            "the clock stands still while suspended"
        );
        flow.resume("chair_b", &id).await.data();
        assert_eq!(
            rebuttal_deadline(&flow, &id, HEEMSTEDE).await,
            (instant("2019-11-25T23:59:59+01:00"), "OPEN".into())
        );
        assert_eq!(
            rebuttal_deadline(&flow, &id, BLOEMENDAAL).await,
            (due, "MET".into())
        );

        advance(&flow, "2019-11-26T09:00:00+01:00").await;
        assert_eq!(rebuttal_deadline(&flow, &id, HEEMSTEDE).await.1, "MISSED");
        let events = audit(&flow, &id).await;
        assert_eq!(count(&events, "deadline.moved"), 1);
        assert_eq!(count(&events, "deadline.missed"), 1);
        let missed = events
            .iter()
            .find(|e| e.action == "deadline.missed")
            .expect("missed");
        assert_eq!(missed.at, instant("2019-11-26T09:00:00+01:00"));
        replay.stop().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 7. Two servers on one database
// ---------------------------------------------------------------------------------------------

/// Two servers on one database with the same manual clock run their scheduler passes at the
/// same moment: every reminder and every MISSED marking happens exactly once, and the audit
/// chain stays intact. First `advanceClock` on both servers at once (each runs a pass); then,
/// to make the passes overlap for certain, both clocks are moved without a pass and each
/// server's scheduler pass (the same function the background loop runs) is started three
/// times concurrently. Meant for PostgreSQL (row locks); it runs on SQLite too, where write
/// transactions are exclusive.
#[tokio::test]
async fn two_servers_on_one_database_mark_and_remind_exactly_once() {
    for_each_backend(|db| async move {
        let start = "2019-10-24T10:00:00+02:00";
        let quiet = |config: &mut ServerConfig| {
            // Only the passes this test starts count.
            config.scheduler_interval = Duration::from_secs(3600);
        };
        let replay = Replay::start_with(&db, start, quiet).await;
        let other = TestServer::start_with(&db, |config| {
            replay_clock(config, start);
            quiet(config);
        })
        .await;
        let flow = replay.flow();
        let mut ids = Vec::new();
        for title in [
            "Armoedebeleid",
            "Duurzaamheid",
            "Digitalisering",
            "Veiligheid",
        ] {
            ids.push(in_rebuttal(&flow, title, "SEPARATE").await);
        }

        // The 7-day reminders: advanceClock on both servers at the same time.
        let to = "2019-11-08T12:00:00+01:00";
        let (a, b) = tokio::join!(
            advance_on(&replay.server, &replay.org, to),
            advance_on(&other, &replay.org, to)
        );
        assert_eq!(instant_of(&a.data()["advanceClock"]), instant(to));
        assert_eq!(instant_of(&b.data()["advanceClock"]), instant(to));

        // The 1-day reminders, then MISSED: six overlapping passes each time.
        let states = [&replay.server.server.state.api, &other.server.state.api];
        for to in ["2019-11-14T12:00:00+01:00", "2019-11-15T12:00:00+01:00"] {
            for state in states {
                assert_eq!(state.clock.advance(instant(to)), Some(Ok(instant(to))));
            }
            let passes = states
                .iter()
                .flat_map(|state| std::iter::repeat_n(*state, 3))
                .map(rkflow_api::scheduler::run_tick);
            for pass in futures::future::join_all(passes).await {
                assert!(pass.is_ok(), "a scheduler pass failed: {:?}", pass.err());
            }
        }

        for id in &ids {
            let events = audit(&flow, id).await;
            let mut reminders: Vec<(String, i64)> = events
                .iter()
                .filter(|e| e.action == "deadline.reminder")
                .map(|e| {
                    (
                        e.data["deadline"].as_str().expect("deadline").to_string(),
                        e.data["before_seconds"].as_i64().expect("seconds"),
                    )
                })
                .collect();
            reminders.sort();
            let distinct: BTreeSet<&(String, i64)> = reminders.iter().collect();
            assert_eq!(reminders.len(), 4, "{reminders:?}");
            assert_eq!(distinct.len(), 4, "each reminder once: {reminders:?}");
            let missed: Vec<String> = events
                .iter()
                .filter(|e| e.action == "deadline.missed")
                .map(|e| e.data["deadline"].as_str().expect("deadline").to_string())
                .collect();
            assert_eq!(missed.len(), 2, "{missed:?}");
            assert_ne!(missed[0], missed[1]);
            for (_, _, _, status) in deadlines(&flow, "chair_b", id).await {
                assert_eq!(status, "MISSED");
            }
            let verified = flow.gql("chair_b", VERIFY, json!({ "id": id })).await;
            assert_eq!(verified.data()["verifyAuditTrail"]["intact"], true);
        }
        other.stop().await;
        replay.stop().await;
    })
    .await;
}

//! The audit trail: every change appends a hash-chained event, the chain verifies and detects
//! tampering, the trail pages and is the team's, events stream over WebSocket; and listing
//! investigations costs a fixed number of statements.

use crate::support::{AUDIT_TRAIL, Flow, Socket, VERIFY, open_ws, send};
use futures::StreamExt;
use rkflow_domain::{DocumentKind, Phase};
use rkflow_e2e::{TestServer, for_each_backend, org};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// The audit trail as (seq, action, actor) with every node checked for shape.
async fn trail(flow: &Flow<'_>, id: &str) -> Vec<(i64, String, Option<String>)> {
    let answer = flow
        .gql("chair_b", AUDIT_TRAIL, json!({ "id": id, "first": 100 }))
        .await;
    let edges = answer.data()["auditTrail"]["edges"]
        .as_array()
        .expect("edges")
        .clone();
    edges
        .iter()
        .map(|edge| {
            let node = &edge["node"];
            assert_eq!(node["investigationId"], id);
            let hash = node["hash"].as_str().expect("a hash");
            assert_eq!(hash.len(), 64);
            assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
            assert!(node["at"].as_str().is_some_and(|at| at.contains('T')));
            (
                node["seq"].as_i64().expect("a seq"),
                node["action"].as_str().expect("an action").to_string(),
                node["actor"]["name"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// (action, actor) of every event but the audited reads (`document.read`: whoever is shown a
/// version's content, such as an author in the answer to their own submission).
fn pairs(events: &[(i64, String, Option<String>)]) -> Vec<(&str, &str)> {
    events
        .iter()
        .filter(|(_, action, _)| action != "document.read")
        .map(|(_, action, actor)| (action.as_str(), actor.as_deref().unwrap_or("-")))
        .collect()
}

async fn verify(flow: &Flow<'_>, who: &str, id: &str) -> Value {
    flow.gql(who, VERIFY, json!({ "id": id })).await.data()["verifyAuditTrail"].clone()
}

#[tokio::test]
async fn every_change_appends_an_event_with_its_actor() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.propose_joint("Afvalinzameling").await;
        flow.assign_rapporteur("chair_h", &id, "h", "external")
            .await
            .data();
        flow.submit_ok("external", &id, DocumentKind::Proposal, "# Voorstel")
            .await;
        flow.approve("chair_b", &id).await.data();
        flow.submit_ok("member_b", &id, DocumentKind::Proposal, "# Voorstel 2")
            .await;
        flow.approve("chair_b", &id).await.data();
        flow.approve("chair_h", &id).await.data();
        flow.complete_gate(&id, Phase::Research).await;
        flow.request_changes("chair_h", &id, "Eerst de cijfers controleren")
            .await
            .data();
        flow.suspend("chair_b", &id).await.data();
        flow.resume("chair_h", &id).await.data();
        flow.cancel("chair_b", &id).await.data();
        // Refusals change nothing and are not audited as changes.
        flow.approve("chair_h", &id).await.expect_code("CONFLICT");

        let events = trail(&flow, &id).await;
        assert_eq!(
            pairs(&events),
            [
                ("investigation.proposed", "chair_b"),
                ("rapporteur.assigned", "chair_h"),
                ("document.created", "external"),
                ("document.version_added", "external"),
                ("gate.approved", "chair_b"),
                ("document.version_added", "member_b"),
                ("gate.approvals_voided", "member_b"),
                ("gate.approved", "chair_b"),
                ("gate.approved", "chair_h"),
                ("documents.frozen", "chair_h"),
                ("phase.advanced", "chair_h"),
                ("document.created", "secretary_b"),
                ("document.version_added", "secretary_b"),
                ("document.created", "secretary_h"),
                ("document.version_added", "secretary_h"),
                ("recommendation.added", "member_h"),
                ("rebuttal.terms_set", "chair_b"),
                ("gate.approvals_voided", "chair_h"),
                ("investigation.suspended", "chair_b"),
                ("investigation.resumed", "chair_h"),
                ("investigation.cancelled", "chair_b"),
            ]
        );
        assert!(
            events.windows(2).all(|w| w[0].0 < w[1].0),
            "sequence numbers increase"
        );

        // Downloading a confidential version is audited as a read.
        let team = flow.investigation("chair_b", &id).await;
        let url = team["documents"][0]["versions"][0]["downloadUrl"]
            .as_str()
            .expect("a URL")
            .to_string();
        assert_eq!(flow.get("member_h", &url).await.status().as_u16(), 200);
        let events = trail(&flow, &id).await;
        let last = events.last().expect("events");
        assert_eq!(
            (last.1.as_str(), last.2.as_deref()),
            ("document.read", Some("member_h"))
        );
        // So is reading a version's text: each submission's answer showed it to its author.
        let reads: Vec<&str> = events
            .iter()
            .filter(|(_, action, _)| action == "document.read")
            .filter_map(|(_, _, actor)| actor.as_deref())
            .collect();
        for author in [
            "external",
            "member_b",
            "secretary_b",
            "secretary_h",
            "chair_b",
        ] {
            assert!(reads.contains(&author), "{author} read content: {reads:?}");
        }

        let verification = verify(&flow, "chair_b", &id).await;
        assert_eq!(verification["intact"], true);
        assert!(verification["firstBrokenSeq"].is_null());
        let last_seq = events.last().map(|e| e.0).expect("events");
        assert_eq!(
            verification["eventsChecked"], last_seq,
            "the whole log is checked"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn verification_finds_a_tampered_event() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.investigation_in(Phase::Research).await;
        assert_eq!(verify(&flow, "chair_h", &id).await["intact"], true);
        let stored = rkflow_store::audit::verify_chain(&server.db().conn)
            .await
            .expect("verify");
        assert!(stored.intact);

        let events = trail(&flow, &id).await;
        let (target, action, _) = events
            .iter()
            .find(|(_, action, _)| action == "gate.approved")
            .cloned()
            .expect("an approval event");
        assert_eq!(action, "gate.approved");
        server
            .db()
            .conn
            .execute_unprepared(&format!(
                "UPDATE audit_event SET action = 'tampered' WHERE seq = {target}"
            ))
            .await
            .expect("tamper");

        for who in ["chair_b", "admin"] {
            let verification = verify(&flow, who, &id).await;
            assert_eq!(verification["intact"], false, "{who}");
            assert_eq!(verification["firstBrokenSeq"], target, "{who}");
        }
        let stored = rkflow_store::audit::verify_chain(&server.db().conn)
            .await
            .expect("verify");
        assert!(!stored.intact);
        assert_eq!(stored.first_broken_seq, Some(target));

        // New events extend the chain, and the break stays reported where it is.
        flow.submit_ok("member_b", &id, DocumentKind::ResearchReport, "# Verder")
            .await;
        assert_eq!(
            verify(&flow, "chair_b", &id).await["firstBrokenSeq"],
            target
        );

        // Repairing the row restores the chain; removing the newest event breaks it again.
        server
            .db()
            .conn
            .execute_unprepared(&format!(
                "UPDATE audit_event SET action = 'gate.approved' WHERE seq = {target}"
            ))
            .await
            .expect("repair");
        assert_eq!(verify(&flow, "chair_b", &id).await["intact"], true);
        let last = trail(&flow, &id).await.last().map(|e| e.0).expect("events");
        server
            .db()
            .conn
            .execute_unprepared(&format!("DELETE FROM audit_event WHERE seq = {last}"))
            .await
            .expect("delete");
        let verification = verify(&flow, "chair_b", &id).await;
        assert_eq!(verification["intact"], false);
        assert_eq!(verification["firstBrokenSeq"], last);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_audit_trail_pages_and_belongs_to_the_team() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.investigation_in(Phase::Research).await;
        let other = flow.investigation_in(Phase::Proposal).await;
        let all = trail(&flow, &id).await;
        assert!(all.len() > 7);

        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let answer = flow
                .gql(
                    "member_h",
                    AUDIT_TRAIL,
                    json!({ "id": id, "first": 3, "after": after }),
                )
                .await;
            let connection = answer.data()["auditTrail"].clone();
            assert_eq!(connection["totalCount"], all.len());
            let edges = connection["edges"].as_array().expect("edges").clone();
            assert!(edges.len() <= 3);
            seen.extend(
                edges
                    .iter()
                    .map(|e| e["node"]["seq"].as_i64().expect("seq")),
            );
            let more = connection["pageInfo"]["hasNextPage"]
                .as_bool()
                .expect("a flag");
            assert_eq!(more, seen.len() < all.len());
            if !more {
                break;
            }
            after = connection["pageInfo"]["endCursor"]
                .as_str()
                .map(str::to_string);
        }
        let expected: Vec<i64> = all.iter().map(|e| e.0).collect();
        assert_eq!(seen, expected, "each event once, oldest first");
        // Only this investigation's events.
        let other_seqs: Vec<i64> = trail(&flow, &other).await.iter().map(|e| e.0).collect();
        assert!(other_seqs.iter().all(|s| !expected.contains(s)));

        for who in ["chair_b", "member_b", "secretary_h", "external"] {
            flow.gql(who, AUDIT_TRAIL, json!({ "id": id })).await.data();
        }
        for (who, code) in [
            ("chair_x", "NOT_FOUND"),
            ("college_x", "NOT_FOUND"),
            ("admin", "NOT_FOUND"),
            ("outsider", "NOT_FOUND"),
            ("college_b", "FORBIDDEN"),
            ("civil_h", "FORBIDDEN"),
            ("griffier_b", "FORBIDDEN"),
            ("council_h", "FORBIDDEN"),
            ("anonymous", "UNAUTHENTICATED"),
        ] {
            flow.gql(who, AUDIT_TRAIL, json!({ "id": id }))
                .await
                .expect_code(code);
        }
        // Before the PROPOSAL gate the college does not even see it.
        flow.gql("college_b", AUDIT_TRAIL, json!({ "id": other }))
            .await
            .expect_code("NOT_FOUND");
        // Verification: the chairs and the admin only.
        for who in ["member_b", "external", "college_b"] {
            flow.gql(who, VERIFY, json!({ "id": id }))
                .await
                .expect_code("FORBIDDEN");
        }
        flow.gql("chair_x", VERIFY, json!({ "id": id }))
            .await
            .expect_code("NOT_FOUND");
        server.stop().await;
    })
    .await;
}

/// Opens a graphql-transport-ws connection with the token in `connection_init`.
async fn connect(server: &TestServer, payload: Value) -> Socket {
    let mut socket = open_ws(server).await;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": payload }),
    )
    .await;
    socket
}

/// The next JSON message, or `None` after `wait` without one (or when the socket closed).
async fn receive(socket: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??
            .ok()?;
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).ok(),
            Message::Close(frame) => {
                return Some(json!({
                    "type": "close",
                    "reason": frame.map(|f| f.reason.to_string()),
                }));
            }
            _ => continue,
        }
    }
}

async fn subscribe(socket: &mut Socket, id: &str) {
    send(
        socket,
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
}

#[tokio::test]
async fn investigation_events_stream_to_the_team_only() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.investigation_in(Phase::Proposal).await;
        let unrelated = flow.propose_joint("Iets anders").await;

        let mut socket = connect(
            &server,
            json!({ "Authorization": format!("Bearer {}", org.token("chair_b")) }),
        )
        .await;
        let ack = receive(&mut socket, Duration::from_secs(5)).await;
        assert_eq!(
            ack.as_ref().map(|m| &m["type"]),
            Some(&json!("connection_ack"))
        );
        subscribe(&mut socket, &id).await;

        // The subscription starts asynchronously: write until its first event arrives.
        let mut first = None;
        for attempt in 0..20 {
            flow.submit_ok(
                "member_h",
                &id,
                DocumentKind::Proposal,
                &format!("# Versie {attempt}"),
            )
            .await;
            if let Some(message) = receive(&mut socket, Duration::from_millis(300)).await {
                first = Some(message);
                break;
            }
        }
        let first = first.expect("an event reached the subscriber");
        assert_eq!(first["type"], "next", "{first}");
        assert_eq!(first["id"], "1");
        let event = &first["payload"]["data"]["investigationEvents"];
        assert_eq!(event["investigationId"], id);
        assert_eq!(event["actor"]["name"], "member_h");
        // Drain what else that write produced.
        while receive(&mut socket, Duration::from_millis(200))
            .await
            .is_some()
        {}

        // Another investigation's events do not arrive; this one's do, in order.
        flow.submit_ok("member_b", &unrelated, DocumentKind::Proposal, "# Anders")
            .await;
        flow.approve("chair_h", &id).await.data();
        flow.approve("chair_b", &id).await.data();
        let mut received = Vec::new();
        while let Some(message) = receive(&mut socket, Duration::from_secs(3)).await {
            assert_eq!(message["type"], "next", "{message}");
            let event = message["payload"]["data"]["investigationEvents"].clone();
            assert_eq!(event["investigationId"], id, "{event}");
            received.push(event);
            if received.len() == 4 {
                break;
            }
        }
        let actions: Vec<(&str, &str)> = received
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap_or_default(),
                    e["actor"]["name"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            actions,
            [
                ("gate.approved", "chair_h"),
                ("gate.approved", "chair_b"),
                ("documents.frozen", "chair_b"),
                ("phase.advanced", "chair_b"),
            ]
        );
        let seqs: Vec<i64> = received
            .iter()
            .map(|e| e["seq"].as_i64().unwrap_or(0))
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        let _ = socket.close(None).await;

        // Refused: a chair of another commission, a college contact, nobody.
        for (who, code) in [
            ("chair_x", "NOT_FOUND"),
            ("college_b", "FORBIDDEN"),
            ("admin", "NOT_FOUND"),
            ("anonymous", "UNAUTHENTICATED"),
        ] {
            let payload = match flow.token(who) {
                Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
                None => json!({}),
            };
            let mut socket = connect(&server, payload).await;
            let ack = receive(&mut socket, Duration::from_secs(5)).await;
            assert_eq!(
                ack.as_ref().map(|m| &m["type"]),
                Some(&json!("connection_ack"))
            );
            subscribe(&mut socket, &id).await;
            let refusal = receive(&mut socket, Duration::from_secs(5))
                .await
                .expect("an answer");
            assert_eq!(refusal["type"], "next", "{who}: {refusal}");
            assert_eq!(
                refusal["payload"]["errors"][0]["extensions"]["code"], code,
                "{who}: {refusal}"
            );
            assert!(refusal["payload"]["data"].is_null());
            let complete = receive(&mut socket, Duration::from_secs(5)).await;
            assert_eq!(
                complete.as_ref().map(|m| &m["type"]),
                Some(&json!("complete")),
                "{who}"
            );
            let _ = socket.close(None).await;
        }

        // A bad token ends the connection at its start.
        let mut socket = connect(&server, json!({ "Authorization": "Bearer nonsense" })).await;
        let closed = receive(&mut socket, Duration::from_secs(5)).await;
        assert!(
            closed.is_none() || closed.as_ref().is_some_and(|m| m["type"] == "close"),
            "{closed:?}"
        );
        server.stop().await;
    })
    .await;
}

const BIG_LIST: &str = "{ investigations(first: 50) { edges { node {
    id title phase
    commissions { name municipalities { name } }
    documents { kind latestVersion { number sha256 author { name } } }
    approvals { commission { name } approvedBy { name } }
} } totalCount } }";

/// The statements one listing of up to 50 investigations costs, as chair_b.
async fn listing_cost(flow: &Flow<'_>, expected: usize) -> u64 {
    // Warm up (a session touched now is not touched again in the measured request).
    flow.gql("chair_b", "{ me { id } }", json!({})).await.data();
    let before = flow.server.db().statement_count();
    let answer = flow.gql("chair_b", BIG_LIST, json!({})).await;
    let after = flow.server.db().statement_count();
    let connection = &answer.data()["investigations"];
    assert_eq!(connection["totalCount"], expected);
    let edges = connection["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), expected);
    for edge in edges {
        let node = &edge["node"];
        assert_eq!(
            node["documents"][0]["latestVersion"]["author"]["name"],
            "member_h"
        );
        assert_eq!(node["approvals"][0]["approvedBy"]["name"], "chair_b");
        assert_eq!(
            node["commissions"][1]["municipalities"][0]["name"],
            "Heemstede"
        );
    }
    after - before
}

#[tokio::test]
async fn listing_costs_a_fixed_number_of_statements() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let mut created = Vec::new();
        let mut costs = Vec::new();
        for target in [5, 50] {
            while created.len() < target {
                let id = flow
                    .propose_ok(
                        "secretary_b",
                        &["b", "h"],
                        &format!("Onderzoek {}", created.len()),
                    )
                    .await;
                flow.submit_ok("member_h", &id, DocumentKind::Proposal, "# Voorstel")
                    .await;
                flow.approve("chair_b", &id).await.data();
                created.push(id);
            }
            costs.push(listing_cost(&flow, target).await);
        }
        assert_eq!(
            costs[0], costs[1],
            "{}: the cost does not grow with the number of investigations: {costs:?}",
            server.label
        );
        assert!(costs[1] <= 13, "{}: {costs:?} statements", server.label);
        server.stop().await;
    })
    .await;
}

const HISTORY_LIST: &str = "{ investigations(first: 10) { edges { node {
    documents { kind latestVersion { number } versions { number } }
} } } }";

/// A listing reads only the latest and the frozen versions; asking for a document's
/// `versions` loads its whole history, as far as the caller may see it.
#[tokio::test]
async fn listing_reads_the_history_only_when_asked() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow
            .propose_ok("secretary_b", &["b", "h"], "Onderzoek met geschiedenis")
            .await;
        for text in ["# Voorstel 1", "# Voorstel 2", "# Voorstel 3"] {
            flow.submit_ok("member_h", &id, DocumentKind::Proposal, text)
                .await;
        }
        flow.approve("chair_b", &id).await.data();
        flow.approve("chair_h", &id).await.data();
        for text in ["# Rapport 1", "# Rapport 2"] {
            flow.submit_ok("member_h", &id, DocumentKind::ResearchReport, text)
                .await;
        }
        let documents = |answer: &Value| {
            let mut seen: Vec<(String, i64, Vec<i64>)> =
                answer["investigations"]["edges"][0]["node"]["documents"]
                    .as_array()
                    .expect("documents")
                    .iter()
                    .map(|d| {
                        (
                            d["kind"].as_str().unwrap_or_default().to_string(),
                            d["latestVersion"]["number"].as_i64().unwrap_or_default(),
                            d["versions"]
                                .as_array()
                                .expect("versions")
                                .iter()
                                .filter_map(|v| v["number"].as_i64())
                                .collect(),
                        )
                    })
                    .collect();
            seen.sort();
            seen
        };
        let team = flow.gql("chair_b", HISTORY_LIST, json!({})).await;
        let team = documents(team.data());
        assert_eq!(
            team,
            vec![
                ("PROPOSAL".to_string(), 3, vec![1, 2, 3]),
                ("RESEARCH_REPORT".to_string(), 2, vec![1, 2]),
            ],
            "{}",
            server.label
        );
        // A college contact of a concerned municipality sees the approved proposal only.
        let college = flow.gql("college_h", HISTORY_LIST, json!({})).await;
        let college = documents(college.data());
        assert_eq!(
            college,
            vec![("PROPOSAL".to_string(), 3, vec![3])],
            "{}",
            server.label
        );
        server.stop().await;
    })
    .await;
}

//! Who sees what: single lookups, lists and counts, nested documents and downloads all follow
//! the contract's visibility table.

use crate::support::{
    Flow, VERIFY, approval_commissions, documents_of, http_error_code, id_of, version_numbers,
};
use rkflow_domain::{DocumentKind, Phase};
use rkflow_e2e::{TestServer, for_each_backend, org};
use serde_json::{Value, json};

const LIST: &str = "query($first: Int, $after: String, $phase: Phase) {
    investigations(first: $first, after: $after, phase: $phase) {
        edges { cursor node { id title phase } }
        pageInfo { hasNextPage endCursor }
        totalCount } }";

/// The ids `who` finds in `investigations` (first 100) and the totalCount.
async fn listed(flow: &Flow<'_>, who: &str, phase: Option<&str>) -> (Vec<String>, i64) {
    let answer = flow
        .gql(who, LIST, json!({ "first": 100, "phase": phase }))
        .await;
    let connection = &answer.data()["investigations"];
    let ids = connection["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| id_of(&edge["node"]))
        .collect();
    (ids, connection["totalCount"].as_i64().expect("a count"))
}

/// Asserts that `who` does not see the investigation anywhere: null, absent from the list and
/// not counted.
async fn assert_hidden(flow: &Flow<'_>, who: &str, id: &str) {
    assert!(
        flow.investigation(who, id).await.is_null(),
        "{who} sees investigation {id}"
    );
    let (ids, total) = listed(flow, who, None).await;
    assert!(!ids.contains(&id.to_string()), "{who} lists {id}");
    assert_eq!(
        total as usize,
        ids.len(),
        "{who} counts what it does not list"
    );
}

/// The ids of every version of every document, as the team sees them.
fn version_ids(investigation: &Value, kind: DocumentKind) -> Vec<String> {
    documents_of(investigation, kind)
        .iter()
        .flat_map(|d| d["versions"].as_array().expect("versions").iter())
        .map(id_of)
        .collect()
}

fn download_path(version_id: &str) -> String {
    format!("/files/versions/{version_id}")
}

/// Asserts that `who` gets 404 NOT_FOUND for a version's bytes.
async fn assert_download_hidden(flow: &Flow<'_>, who: &str, version_id: &str) {
    let (status, code) = http_error_code(flow.get(who, &download_path(version_id)).await).await;
    assert_eq!(
        (status, code.as_deref()),
        (404, Some("NOT_FOUND")),
        "{who} downloads version {version_id}"
    );
}

/// Asserts that `who` may download a version and gets `text`.
async fn assert_download_is(flow: &Flow<'_>, who: &str, version_id: &str, text: &str) {
    let response = flow.get(who, &download_path(version_id)).await;
    assert_eq!(
        response.status().as_u16(),
        200,
        "{who} downloads {version_id}"
    );
    assert_eq!(response.text().await.expect("a body"), text);
}

#[tokio::test]
async fn a_commission_that_does_not_participate_sees_nothing() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let in_proposal = flow.investigation_in(Phase::Proposal).await;
        let in_research = flow.investigation_in(Phase::Research).await;
        let own = flow
            .propose_ok("chair_x", &["x"], "Haarlems eigen onderzoek")
            .await;

        for id in [&in_proposal, &in_research] {
            for who in ["chair_x", "college_x", "outsider"] {
                assert_hidden(&flow, who, id).await;
            }
            let approve = flow.approve("chair_x", id).await;
            approve.expect_code("NOT_FOUND");
            flow.submit("chair_x", id, DocumentKind::Proposal, "# Ingebroken")
                .await
                .expect_code("NOT_FOUND");
            flow.submit("chair_x", id, DocumentKind::ResearchReport, "# Ingebroken")
                .await
                .expect_code("NOT_FOUND");
            flow.cancel("chair_x", id).await.expect_code("NOT_FOUND");
            // Indistinguishable from an investigation that does not exist.
            let missing = flow
                .approve("chair_x", &uuid::Uuid::now_v7().to_string())
                .await;
            missing.expect_code("NOT_FOUND");
            assert_eq!(approve.message(), missing.message());
        }
        let (ids, total) = listed(&flow, "chair_x", None).await;
        assert_eq!((ids, total), (vec![own.clone()], 1));
        // Nothing changed.
        assert_eq!(
            version_numbers(
                &flow.investigation("chair_b", &in_proposal).await,
                DocumentKind::Proposal
            ),
            [1]
        );
        assert_eq!(flow.phase(&in_research).await, "RESEARCH");
        // And the other way round.
        assert_hidden(&flow, "chair_b", &own).await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn before_the_proposal_gate_only_the_commissions_see_it() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.investigation_in(Phase::Proposal).await;
        flow.approve("chair_b", &id).await.data();

        for who in [
            "college_b",
            "college_h",
            "civil_b",
            "civil_h",
            "griffier_b",
            "griffier_h",
            "council_b",
            "council_h",
            "admin",
        ] {
            assert_hidden(&flow, who, &id).await;
            flow.approve(who, &id).await.expect_code("NOT_FOUND");
        }
        for who in [
            "chair_b",
            "chair_h",
            "member_b",
            "member_h",
            "secretary_b",
            "secretary_h",
        ] {
            let seen = flow.investigation(who, &id).await;
            assert_eq!(seen["phase"], "PROPOSAL", "{who}");
            assert_eq!(version_numbers(&seen, DocumentKind::Proposal), [1], "{who}");
            let (ids, _) = listed(&flow, who, None).await;
            assert_eq!(ids, std::slice::from_ref(&id), "{who}");
        }
        let version = &version_ids(
            &flow.investigation("chair_b", &id).await,
            DocumentKind::Proposal,
        )[0];
        for who in ["college_b", "council_h", "griffier_b", "admin", "chair_x"] {
            assert_download_hidden(&flow, who, version).await;
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn after_the_proposal_gate_municipalities_see_only_the_approved_proposal() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.propose_joint("Armoedebeleid").await;
        flow.submit_ok("member_b", &id, DocumentKind::Proposal, "# Concept")
            .await;
        flow.submit_ok(
            "member_h",
            &id,
            DocumentKind::Proposal,
            "# Definitief voorstel",
        )
        .await;
        flow.approve_all(&id).await;
        flow.complete_gate(&id, Phase::Research).await;
        flow.submit_ok(
            "secretary_h",
            &id,
            DocumentKind::ResearchReport,
            "# Rapport v2",
        )
        .await;
        flow.approve("chair_h", &id).await.data();

        let team = flow.investigation("chair_b", &id).await;
        let proposal = version_ids(&team, DocumentKind::Proposal);
        let report = version_ids(&team, DocumentKind::ResearchReport);
        let conclusions = version_ids(&team, DocumentKind::Conclusions);
        assert_eq!((proposal.len(), report.len(), conclusions.len()), (2, 2, 1));
        assert_eq!(
            approval_commissions(&team),
            ["Rekenkamercommissie Heemstede"]
        );
        assert_eq!(team["recommendations"].as_array().map(Vec::len), Some(1));

        for who in [
            "college_b",
            "college_h",
            "civil_b",
            "griffier_h",
            "council_b",
            "council_h",
        ] {
            let seen = flow.investigation(who, &id).await;
            assert_eq!(seen["title"], "Armoedebeleid", "{who}");
            assert_eq!(seen["phase"], "RESEARCH", "{who}");
            let kinds: Vec<&Value> = seen["documents"]
                .as_array()
                .expect("documents")
                .iter()
                .map(|d| &d["kind"])
                .collect();
            assert_eq!(kinds, ["PROPOSAL"], "{who} sees only the proposal");
            assert_eq!(
                version_numbers(&seen, DocumentKind::Proposal),
                [2],
                "{who} sees only the approved version"
            );
            assert_eq!(
                seen["documents"][0]["versions"][0]["content"],
                "# Definitief voorstel"
            );
            assert_eq!(seen["researchQuestions"].as_array().map(Vec::len), Some(2));
            assert!(approval_commissions(&seen).is_empty(), "{who}: {seen}");
            assert_eq!(seen["rapporteurs"], json!([]), "{who}");
            assert_eq!(seen["recommendations"], json!([]), "{who}");
            let (ids, total) = listed(&flow, who, None).await;
            assert_eq!((ids, total), (vec![id.clone()], 1), "{who}");

            assert_download_is(&flow, who, &proposal[1], "# Definitief voorstel").await;
            assert_download_hidden(&flow, who, &proposal[0]).await;
            for version in report.iter().chain(&conclusions) {
                assert_download_hidden(&flow, who, version).await;
            }
        }
        // The audit trail and its chain stay with the team.
        flow.gql(
            "college_b",
            crate::support::AUDIT_TRAIL,
            json!({ "id": id }),
        )
        .await
        .expect_code("FORBIDDEN");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn after_the_research_gate_colleges_see_the_frozen_draft() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.investigation_in(Phase::Research).await;
        flow.submit_ok(
            "secretary_b",
            &id,
            DocumentKind::ResearchReport,
            "# Eerste opzet",
        )
        .await;
        flow.complete_gate(&id, Phase::Research).await;
        flow.approve_all(&id).await;

        let team = flow.investigation("chair_b", &id).await;
        assert_eq!(team["phase"], "ADMINISTRATIVE_REBUTTAL");
        let report = version_ids(&team, DocumentKind::ResearchReport);
        let conclusions = version_ids(&team, DocumentKind::Conclusions);
        assert_eq!((report.len(), conclusions.len()), (2, 1));

        for who in ["college_b", "college_h"] {
            let seen = flow.investigation(who, &id).await;
            assert_eq!(seen["phase"], "ADMINISTRATIVE_REBUTTAL");
            assert_eq!(version_numbers(&seen, DocumentKind::Proposal), [1], "{who}");
            assert_eq!(
                version_numbers(&seen, DocumentKind::ResearchReport),
                [2],
                "{who} sees the frozen report only"
            );
            assert_eq!(
                version_numbers(&seen, DocumentKind::Conclusions),
                [1],
                "{who}"
            );
            let recommendations = seen["recommendations"].as_array().expect("a list");
            assert_eq!(recommendations.len(), 1, "{who}");
            assert_eq!(recommendations[0]["text"], "Stel een meetbaar doel vast.");
            assert!(approval_commissions(&seen).is_empty());
            assert_download_is(&flow, who, &report[1], "# Rapport\n\nBevindingen.").await;
            assert_download_is(
                &flow,
                who,
                &conclusions[0],
                "# Conclusies\n\nHet beleid werkt deels.",
            )
            .await;
            assert_download_hidden(&flow, who, &report[0]).await;
        }
        // Councils, griffiers and civil servants get the draft only with the bundle.
        for who in ["council_b", "griffier_h", "civil_b"] {
            let seen = flow.investigation(who, &id).await;
            assert_eq!(seen["phase"], "ADMINISTRATIVE_REBUTTAL", "{who}");
            assert_eq!(
                version_numbers(&seen, DocumentKind::ResearchReport),
                Vec::<i64>::new()
            );
            assert_eq!(
                version_numbers(&seen, DocumentKind::Conclusions),
                Vec::<i64>::new()
            );
            assert_eq!(seen["recommendations"], json!([]), "{who}");
            for version in report.iter().chain(&conclusions) {
                assert_download_hidden(&flow, who, version).await;
            }
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_admin_sees_no_content_but_verifies_the_chain() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let proposal = flow.investigation_in(Phase::Proposal).await;
        let research = flow.investigation_in(Phase::Research).await;
        flow.submit_ok(
            "member_b",
            &research,
            DocumentKind::ResearchReport,
            "# Geheim",
        )
        .await;

        for id in [&proposal, &research] {
            assert_hidden(&flow, "admin", id).await;
            let team = flow.investigation("chair_b", id).await;
            for kind in [DocumentKind::Proposal, DocumentKind::ResearchReport] {
                for version in version_ids(&team, kind) {
                    assert_download_hidden(&flow, "admin", &version).await;
                }
            }
            flow.gql("admin", crate::support::AUDIT_TRAIL, json!({ "id": id }))
                .await
                .expect_code("NOT_FOUND");
            flow.approve("admin", id).await.expect_code("NOT_FOUND");
            let verified = flow.gql("admin", VERIFY, json!({ "id": id })).await;
            let verification = &verified.data()["verifyAuditTrail"];
            assert_eq!(verification["intact"], true);
            assert!(verification["eventsChecked"].as_i64().unwrap_or(0) > 10);
        }
        assert_eq!(listed(&flow, "admin", None).await, (vec![], 0));
        // An id that does not exist is NOT_FOUND for the admin too.
        flow.gql(
            "admin",
            VERIFY,
            json!({ "id": uuid::Uuid::now_v7().to_string() }),
        )
        .await
        .expect_code("NOT_FOUND");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_assigned_rapporteur_sees_everything() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.propose_joint("Duurzaamheid").await;
        flow.complete_gate(&id, Phase::Proposal).await;
        assert_hidden(&flow, "external", &id).await;

        flow.assign_rapporteur("chair_h", &id, "h", "external")
            .await
            .data();
        // Assigning for another commission than one's own is refused.
        flow.assign_rapporteur("chair_h", &id, "b", "outsider")
            .await
            .expect_code("FORBIDDEN");
        let seen = flow.investigation("external", &id).await;
        assert_eq!(seen["phase"], "PROPOSAL");
        assert_eq!(seen["rapporteurs"][0]["user"]["name"], "external");
        assert_eq!(
            seen["rapporteurs"][0]["commission"]["name"],
            "Rekenkamercommissie Heemstede"
        );
        flow.submit_ok(
            "external",
            &id,
            DocumentKind::Proposal,
            "# Herzien door de rapporteur",
        )
        .await;
        flow.approve_all(&id).await;
        flow.submit_ok("member_b", &id, DocumentKind::ResearchReport, "# Concept")
            .await;
        flow.add_recommendation("external", &id, "Rapporteer jaarlijks")
            .await
            .data();
        flow.approve("chair_b", &id).await.expect_code("CONFLICT");

        let mine = flow.investigation("external", &id).await;
        let team = flow.investigation("chair_b", &id).await;
        assert_eq!(mine, team, "the rapporteur sees what the chair sees");
        assert_eq!(version_numbers(&mine, DocumentKind::Proposal), [1, 2]);
        assert_eq!(version_numbers(&mine, DocumentKind::ResearchReport), [1]);
        assert_eq!(mine["recommendations"].as_array().map(Vec::len), Some(1));
        for version in version_ids(&mine, DocumentKind::Proposal)
            .iter()
            .chain(&version_ids(&mine, DocumentKind::ResearchReport))
        {
            let response = flow.get("external", &download_path(version)).await;
            assert_eq!(response.status().as_u16(), 200);
        }
        let trail = flow.audit_actions("external", &id).await;
        assert_eq!(trail[0].0, "investigation.proposed");
        assert_eq!(listed(&flow, "external", None).await, (vec![id.clone()], 1));
        // The rapporteur is no chair.
        flow.gql("external", VERIFY, json!({ "id": id }))
            .await
            .expect_code("FORBIDDEN");
        assert_hidden(&flow, "outsider", &id).await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn investigations_are_paged_with_stable_cursors_and_filtered_by_phase() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let mut created = Vec::new();
        for n in 0..7 {
            created.push(
                flow.propose_ok("secretary_h", &["h"], &format!("Onderzoek {n}"))
                    .await,
            );
        }
        // Something member_h may not see.
        flow.propose_ok("chair_b", &["b"], "Alleen Bloemendaal")
            .await;
        let newest_first: Vec<String> = created.iter().rev().cloned().collect();

        let page = |after: Option<String>| {
            let flow = &flow;
            async move {
                let answer = flow
                    .gql("member_h", LIST, json!({ "first": 3, "after": after }))
                    .await;
                answer.data()["investigations"].clone()
            }
        };
        let mut seen = Vec::new();
        let mut cursors = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let connection = page(after.clone()).await;
            pages += 1;
            assert_eq!(connection["totalCount"], 7);
            let edges = connection["edges"].as_array().expect("edges").clone();
            assert!(edges.len() <= 3);
            for edge in &edges {
                seen.push(id_of(&edge["node"]));
                cursors.push(edge["cursor"].as_str().expect("a cursor").to_string());
            }
            assert_eq!(
                connection["pageInfo"]["endCursor"].as_str(),
                edges.last().and_then(|e| e["cursor"].as_str())
            );
            let more = connection["pageInfo"]["hasNextPage"]
                .as_bool()
                .expect("a flag");
            assert_eq!(
                more,
                seen.len() < 7,
                "hasNextPage after {} items",
                seen.len()
            );
            if !more {
                break;
            }
            after = connection["pageInfo"]["endCursor"]
                .as_str()
                .map(str::to_string);
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, newest_first, "every investigation once, newest first");

        // Cursors are stable: asking again gives the same pages, also after a new
        // investigation appeared in front of them.
        let again = page(None).await;
        let first_cursors: Vec<&str> = again["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["cursor"].as_str().expect("a cursor"))
            .collect();
        assert_eq!(first_cursors, cursors[..3]);
        let newer = flow.propose_ok("chair_h", &["h"], "Nieuwer").await;
        let second = page(Some(cursors[2].clone())).await;
        let ids: Vec<String> = second["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| id_of(&e["node"]))
            .collect();
        assert_eq!(ids, newest_first[3..6]);
        assert_eq!(second["totalCount"], 8);
        let first = page(None).await;
        assert_eq!(id_of(&first["edges"][0]["node"]), newer);

        // A page of zero, and an invalid cursor.
        let empty = flow.gql("member_h", LIST, json!({ "first": 0 })).await;
        assert_eq!(empty.data()["investigations"]["edges"], json!([]));
        assert_eq!(
            empty.data()["investigations"]["pageInfo"]["hasNextPage"],
            true
        );
        flow.gql(
            "member_h",
            LIST,
            json!({ "first": 3, "after": "nonsense!" }),
        )
        .await
        .expect_code("BAD_USER_INPUT");

        // The phase filter, for the team and for a college that sees only part of it.
        for id in &created[..2] {
            flow.submit_ok("member_h", id, DocumentKind::Proposal, "# Voorstel")
                .await;
            let advanced = flow.approve("chair_h", id).await;
            assert_eq!(advanced.data()["approvePhase"]["phase"], "RESEARCH");
        }
        let (research, total) = listed(&flow, "member_h", Some("RESEARCH")).await;
        assert_eq!(total, 2);
        assert_eq!(research, [created[1].clone(), created[0].clone()]);
        let (proposals, total) = listed(&flow, "member_h", Some("PROPOSAL")).await;
        assert_eq!(total, 6);
        assert_eq!(proposals.len(), 6);
        assert!(!proposals.contains(&created[0]));
        assert_eq!(
            listed(&flow, "member_h", Some("CANCELLED")).await,
            (vec![], 0)
        );
        assert_eq!(
            listed(&flow, "college_h", Some("RESEARCH")).await,
            (vec![created[1].clone(), created[0].clone()], 2)
        );
        assert_eq!(
            listed(&flow, "college_h", Some("PROPOSAL")).await,
            (vec![], 0)
        );
        assert_eq!(listed(&flow, "college_h", None).await.1, 2);
        server.stop().await;
    })
    .await;
}

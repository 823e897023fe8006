//! The investigation lifecycle: gates, their guards and approvals, voiding, suspension,
//! cancellation, and what happens when two people act at the same instant.

use crate::support::{Flow, approval_commissions, version_numbers};
use rkflow_domain::{DocumentKind, Phase};
use rkflow_e2e::{TestServer, for_each_backend, org};

/// Asserts a CONFLICT whose message names every one of `needles`.
fn assert_conflict_naming(answer: &rkflow_e2e::Gql, needles: &[&str]) {
    answer.expect_code("CONFLICT");
    for needle in needles {
        assert!(
            answer.message().contains(needle),
            "the message {:?} does not name {needle:?}",
            answer.message()
        );
    }
}

#[tokio::test]
async fn a_joint_investigation_passes_two_gates_with_both_chairs() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.propose_joint("Jeugdzorg in de regio").await;

        // PROPOSAL: the gate needs a PROPOSAL document.
        let early = flow.approve("chair_b", &id).await;
        assert_conflict_naming(&early, &["PROPOSAL"]);
        assert!(approval_commissions(&flow.investigation("chair_b", &id).await).is_empty());

        flow.submit_ok("member_b", &id, DocumentKind::Proposal, "# Voorstel")
            .await;
        let first = flow.approve("chair_b", &id).await;
        assert_eq!(first.data()["approvePhase"]["phase"], "PROPOSAL");
        let seen = flow.investigation("chair_h", &id).await;
        assert_eq!(seen["phase"], "PROPOSAL");
        assert_eq!(
            approval_commissions(&seen),
            ["Rekenkamercommissie Bloemendaal"]
        );
        assert_eq!(seen["approvals"][0]["approvedBy"]["name"], "chair_b");
        assert_eq!(seen["approvals"][0]["phase"], "PROPOSAL");

        let second = flow.approve("chair_h", &id).await;
        assert_eq!(second.data()["approvePhase"]["phase"], "RESEARCH");
        let seen = flow.investigation("chair_b", &id).await;
        assert_eq!(seen["phase"], "RESEARCH");
        assert!(
            approval_commissions(&seen).is_empty(),
            "a new gate starts without approvals"
        );

        // RESEARCH: the guard lists everything missing, and shrinks as it is supplied.
        let early = flow.approve("chair_h", &id).await;
        assert_conflict_naming(
            &early,
            &[
                "RESEARCH_REPORT",
                "CONCLUSIONS",
                "recommendation",
                "rebuttal terms",
            ],
        );
        flow.submit_ok(
            "secretary_b",
            &id,
            DocumentKind::ResearchReport,
            "# Rapport",
        )
        .await;
        // Someone outside the team cannot write (or see) it.
        flow.submit("external", &id, DocumentKind::Conclusions, "# Conclusies")
            .await
            .expect_code("NOT_FOUND");
        let early = flow.approve("chair_h", &id).await;
        assert_conflict_naming(&early, &["CONCLUSIONS", "recommendation", "rebuttal terms"]);
        assert!(!early.message().contains("RESEARCH_REPORT"));

        flow.submit_ok("member_h", &id, DocumentKind::Conclusions, "# Conclusies")
            .await;
        flow.add_recommendation("secretary_h", &id, "Meet de wachttijden.")
            .await
            .data();
        let early = flow.approve("chair_h", &id).await;
        assert_conflict_naming(&early, &["rebuttal terms"]);
        assert!(!early.message().contains("recommendation"));
        assert!(!early.message().contains("CONCLUSIONS"));

        flow.set_rebuttal_terms("chair_h", &id, "JOINT")
            .await
            .data();
        let first = flow.approve("chair_h", &id).await;
        assert_eq!(first.data()["approvePhase"]["phase"], "RESEARCH");
        assert_eq!(
            approval_commissions(&flow.investigation("chair_b", &id).await),
            ["Rekenkamercommissie Heemstede"]
        );
        let second = flow.approve("chair_b", &id).await;
        assert_eq!(
            second.data()["approvePhase"]["phase"],
            "ADMINISTRATIVE_REBUTTAL"
        );
        let seen = flow.investigation("member_h", &id).await;
        assert_eq!(seen["phase"], "ADMINISTRATIVE_REBUTTAL");
        assert!(approval_commissions(&seen).is_empty());

        // The audit trail saw each gate pass once.
        let advanced: Vec<_> = flow
            .audit_actions("chair_b", &id)
            .await
            .into_iter()
            .filter(|(action, _)| action == "phase.advanced")
            .collect();
        assert_eq!(advanced.len(), 2);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn one_chair_never_advances_and_approves_only_once() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.investigation_in(Phase::Proposal).await;

        let first = flow.approve("chair_h", &id).await;
        assert_eq!(first.data()["approvePhase"]["phase"], "PROPOSAL");
        let again = flow.approve("chair_h", &id).await;
        assert_conflict_naming(&again, &["already approved"]);
        let seen = flow.investigation("chair_b", &id).await;
        assert_eq!(seen["phase"], "PROPOSAL");
        assert_eq!(
            approval_commissions(&seen),
            ["Rekenkamercommissie Heemstede"]
        );
        assert_eq!(flow.count_events(&id, "gate.approved").await, 1);
        assert_eq!(flow.count_events(&id, "phase.advanced").await, 0);

        // A single-commission investigation advances on its one chair.
        let solo = flow
            .propose_ok("secretary_b", &["b"], "Alleen Bloemendaal")
            .await;
        flow.complete_gate(&solo, Phase::Proposal).await;
        let approved = flow.approve("chair_b", &solo).await;
        assert_eq!(approved.data()["approvePhase"]["phase"], "RESEARCH");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_new_proposal_version_voids_the_earlier_approval() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.investigation_in(Phase::Proposal).await;

        flow.approve("chair_b", &id).await.data();
        assert_eq!(
            approval_commissions(&flow.investigation("chair_h", &id).await),
            ["Rekenkamercommissie Bloemendaal"]
        );
        flow.submit_ok(
            "external",
            &id,
            DocumentKind::Proposal,
            "# Voorstel, herzien",
        )
        .await;
        let seen = flow.investigation("chair_h", &id).await;
        assert!(
            approval_commissions(&seen).is_empty(),
            "the approval of the old version is void: {seen}"
        );
        let trail = flow.audit_actions("chair_b", &id).await;
        let actions: Vec<&str> = trail.iter().map(|(a, _)| a.as_str()).collect();
        let voided = actions
            .iter()
            .rposition(|a| *a == "gate.approvals_voided")
            .expect("a gate.approvals_voided event");
        let added = actions
            .iter()
            .rposition(|a| *a == "document.version_added")
            .expect("the new version");
        assert!(
            voided > added,
            "voided after the version that changed the gate"
        );
        assert_eq!(trail[voided].1.as_deref(), Some("external"));

        // chair_h's approval alone does not pass the gate: chair_b must approve again.
        let second = flow.approve("chair_h", &id).await;
        assert_eq!(second.data()["approvePhase"]["phase"], "PROPOSAL");
        let third = flow.approve("chair_b", &id).await;
        assert_eq!(third.data()["approvePhase"]["phase"], "RESEARCH");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn request_changes_voids_every_approval_of_the_gate() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        // Three commissions, so that two approvals can stand while the gate is still open.
        let id = flow
            .propose_ok("chair_b", &["b", "h", "x"], "Regionale samenwerking")
            .await;
        flow.complete_gate(&id, Phase::Proposal).await;
        flow.approve("chair_b", &id).await.data();
        flow.approve("chair_h", &id).await.data();
        let seen = flow.investigation("chair_x", &id).await;
        assert_eq!(seen["phase"], "PROPOSAL");
        assert_eq!(approval_commissions(&seen).len(), 2);

        let requested = flow
            .request_changes("chair_x", &id, "De onderzoeksvragen zijn te breed")
            .await;
        assert_eq!(requested.data()["requestChanges"]["phase"], "PROPOSAL");
        let seen = flow.investigation("chair_b", &id).await;
        assert!(approval_commissions(&seen).is_empty(), "{seen}");
        assert_eq!(flow.count_events(&id, "gate.approvals_voided").await, 1);

        // Only a chair may ask for changes.
        flow.request_changes("member_b", &id, "Nee")
            .await
            .expect_code("FORBIDDEN");

        // The gate is open again: all three must approve.
        flow.approve("chair_b", &id).await.data();
        flow.approve("chair_x", &id).await.data();
        assert_eq!(flow.phase(&id).await, "PROPOSAL");
        let last = flow.approve("chair_h", &id).await;
        assert_eq!(last.data()["approvePhase"]["phase"], "RESEARCH");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn suspension_blocks_gates_and_documents_until_resumed() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.investigation_in(Phase::Proposal).await;

        let suspended = flow.suspend("chair_h", &id).await;
        assert_eq!(suspended.data()["suspendInvestigation"]["suspended"], true);
        assert_eq!(flow.investigation("member_b", &id).await["suspended"], true);
        assert_conflict_naming(&flow.approve("chair_b", &id).await, &["suspended"]);
        assert_conflict_naming(
            &flow
                .submit(
                    "member_b",
                    &id,
                    DocumentKind::Proposal,
                    "# Tijdens schorsing",
                )
                .await,
            &["suspended"],
        );
        flow.suspend("chair_b", &id).await.expect_code("CONFLICT");
        assert_eq!(
            version_numbers(
                &flow.investigation("chair_b", &id).await,
                DocumentKind::Proposal
            ),
            [1]
        );

        // The other commission's chair may resume.
        let resumed = flow.resume("chair_b", &id).await;
        assert_eq!(resumed.data()["resumeInvestigation"]["suspended"], false);
        flow.resume("chair_b", &id).await.expect_code("CONFLICT");
        flow.submit_ok("member_b", &id, DocumentKind::Proposal, "# Na de schorsing")
            .await;
        flow.approve("chair_b", &id).await.data();
        let last = flow.approve("chair_h", &id).await;
        assert_eq!(last.data()["approvePhase"]["phase"], "RESEARCH");
        assert_eq!(flow.count_events(&id, "investigation.suspended").await, 1);
        assert_eq!(flow.count_events(&id, "investigation.resumed").await, 1);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn cancel_is_terminal() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.investigation_in(Phase::Research).await;

        flow.cancel("member_b", &id).await.expect_code("FORBIDDEN");
        let cancelled = flow.cancel("chair_b", &id).await;
        assert_eq!(
            cancelled.data()["cancelInvestigation"]["phase"],
            "CANCELLED"
        );
        assert_eq!(flow.phase(&id).await, "CANCELLED");

        flow.approve("chair_b", &id).await.expect_code("CONFLICT");
        flow.approve("chair_h", &id).await.expect_code("CONFLICT");
        flow.cancel("chair_h", &id).await.expect_code("CONFLICT");
        flow.suspend("chair_h", &id).await.expect_code("CONFLICT");
        flow.submit("member_b", &id, DocumentKind::ResearchReport, "# Te laat")
            .await
            .expect_code("CONFLICT");
        flow.add_recommendation("member_b", &id, "Te laat")
            .await
            .expect_code("CONFLICT");
        assert_eq!(flow.phase(&id).await, "CANCELLED");
        assert_eq!(flow.count_events(&id, "investigation.cancelled").await, 1);

        // A suspended investigation may still be cancelled, and is no longer suspended.
        let other = flow.investigation_in(Phase::Proposal).await;
        flow.suspend("chair_b", &other).await.data();
        let cancelled = flow.cancel("chair_h", &other).await;
        assert_eq!(
            cancelled.data()["cancelInvestigation"]["phase"],
            "CANCELLED"
        );
        assert_eq!(cancelled.data()["cancelInvestigation"]["suspended"], false);
        flow.resume("chair_b", &other).await.expect_code("CONFLICT");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_last_approvals_advance_the_phase_once() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        for round in 0..10 {
            let id = flow.propose_joint(&format!("Gelijktijdig {round}")).await;
            flow.complete_gate(&id, Phase::Proposal).await;
            let (b, h) = tokio::join!(flow.approve("chair_b", &id), flow.approve("chair_h", &id));
            b.data();
            h.data();
            let phases = [
                b.data()["approvePhase"]["phase"].clone(),
                h.data()["approvePhase"]["phase"].clone(),
            ];
            assert!(
                phases.contains(&"RESEARCH".into()),
                "round {round}: one of the two completed the gate: {phases:?}"
            );
            assert_eq!(flow.phase(&id).await, "RESEARCH", "round {round}");
            assert_eq!(
                flow.count_events(&id, "phase.advanced").await,
                1,
                "round {round}"
            );
            assert_eq!(flow.count_events(&id, "gate.approved").await, 2);

            // The same chair twice at once: one approval, one CONFLICT, no advance.
            flow.complete_gate(&id, Phase::Research).await;
            let (one, two) =
                tokio::join!(flow.approve("chair_h", &id), flow.approve("chair_h", &id));
            let codes = [one.code(), two.code()];
            assert!(
                codes.contains(&None) && codes.contains(&Some("CONFLICT")),
                "{} round {round}: {codes:?}",
                server.label
            );
            assert_eq!(flow.phase(&id).await, "RESEARCH");
            assert_eq!(flow.count_events(&id, "gate.approved").await, 3);

            let approvals = if round % 2 == 0 {
                // Changes requested: the RESEARCH gate is open again, and both chairs approve
                // it at the same instant.
                flow.request_changes("chair_b", &id, "Nog een keer lezen")
                    .await
                    .data();
                let (b, h) =
                    tokio::join!(flow.approve("chair_b", &id), flow.approve("chair_h", &id));
                let phases = [
                    b.data()["approvePhase"]["phase"].clone(),
                    h.data()["approvePhase"]["phase"].clone(),
                ];
                assert!(
                    phases.contains(&"ADMINISTRATIVE_REBUTTAL".into()),
                    "{} round {round}: {phases:?}",
                    server.label
                );
                5
            } else {
                // The last approval, twice at once (a double click): the one that passes the
                // gate, and one refused, not an approval of the next gate.
                let (one, two) =
                    tokio::join!(flow.approve("chair_b", &id), flow.approve("chair_b", &id));
                let codes = [one.code(), two.code()];
                assert!(
                    codes.contains(&None) && codes.contains(&Some("CONFLICT")),
                    "{} round {round}: {codes:?}",
                    server.label
                );
                4
            };
            let seen = flow.investigation("chair_b", &id).await;
            assert_eq!(seen["phase"], "ADMINISTRATIVE_REBUTTAL");
            assert!(
                approval_commissions(&seen).is_empty(),
                "no approval spilled over into the next gate: {seen}"
            );
            assert_eq!(flow.count_events(&id, "phase.advanced").await, 2);
            assert_eq!(flow.count_events(&id, "gate.approved").await, approvals);
            assert_eq!(flow.count_events(&id, "documents.frozen").await, 2);
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_submissions_on_one_base_version() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        for round in 0..5 {
            let id = flow
                .propose_joint(&format!("Samen schrijven {round}"))
                .await;
            // Both start the document (base version 0) at the same instant.
            let first = |who: &'static str| {
                let id = id.clone();
                let flow = &flow;
                async move {
                    flow.submit_input(
                        who,
                        &id,
                        serde_json::json!({
                            "kind": "PROPOSAL",
                            "content": format!("# Voorstel van {who}"),
                            "baseVersion": 0,
                        }),
                    )
                    .await
                }
            };
            let (a, b) = tokio::join!(first("member_b"), first("secretary_h"));
            let codes = [a.code(), b.code()];
            assert!(
                codes.contains(&None) && codes.contains(&Some("CONFLICT")),
                "{} round {round}: {codes:?} {} {}",
                server.label,
                a.body,
                b.body
            );

            // Both edit version 1 at the same instant.
            let edit = |who: &'static str| {
                let id = id.clone();
                let flow = &flow;
                async move {
                    flow.submit_input(
                        who,
                        &id,
                        serde_json::json!({
                            "kind": "PROPOSAL",
                            "content": format!("# Bewerking van {who}"),
                            "baseVersion": 1,
                        }),
                    )
                    .await
                }
            };
            let (a, b) = tokio::join!(edit("member_h"), edit("secretary_b"));
            let codes = [a.code(), b.code()];
            assert!(
                codes.contains(&None) && codes.contains(&Some("CONFLICT")),
                "{} round {round}: {codes:?} {} {}",
                server.label,
                a.body,
                b.body
            );
            let loser = if a.code().is_some() { &a } else { &b };
            assert!(
                loser.message().contains("version"),
                "the conflict says what happened: {}",
                loser.message()
            );
            let seen = flow.investigation("chair_b", &id).await;
            assert_eq!(
                crate::support::documents_of(&seen, DocumentKind::Proposal).len(),
                1,
                "one PROPOSAL document"
            );
            assert_eq!(version_numbers(&seen, DocumentKind::Proposal), [1, 2]);
            assert_eq!(flow.count_events(&id, "document.version_added").await, 2);
        }
        server.stop().await;
    })
    .await;
}

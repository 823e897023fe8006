//! Plain fields (`rkflow_api::plain`) answer exactly what async-graphql's own resolvers answer:
//! two servers on one database, one of them with plain answering off
//! (`RKFLOW_PLAIN_FIELDS=false`), give every reader the same answers — the benchmark's and the
//! front-ends' operations, every field of the types that answer plain fields, and selections
//! with fragments, aliases, `__typename` and fields selected twice (answered without plain
//! answers, `rkflow_api::documents::repeats_response_keys`).

use crate::support::{Flow, id_of};
use rkflow_domain::{DocumentKind, Phase};
use rkflow_e2e::{TestServer, for_each_backend, org};
use serde_json::json;

const DASHBOARD: &str = include_str!("../../graphql/examples/dashboard.graphql");
const INVESTIGATION: &str = include_str!("../../graphql/examples/investigation.graphql");

const USER: &str = "id name email disabled";
const MUNICIPALITY: &str = "id name council { id name municipality { id name } }
    college { id name municipality { name } }";

/// Every field of an investigation and of what it nests.
fn everything() -> String {
    format!(
        "query($id: ID!) {{ investigation(id: $id) {{
        __typename id title phase suspended researchQuestions scopeStart scopeEnd
        commissions {{ id name rebuttalTermDays factualCheckTermDays municipalities {{ {MUNICIPALITY} }} }}
        municipalities {{ {MUNICIPALITY} }}
        rapporteurs {{ user {{ {USER} }} commission {{ id name }} }}
        documents {{ id kind title
            versions {{ id number sha256 sizeBytes mediaType fileName downloadUrl createdAt note
                author {{ {USER} }} }}
            latestVersion {{ id number content author {{ name }} }} }}
        approvals {{ phase commission {{ id name }} approvedBy {{ {USER} }} approvedAt comment }}
        missingApprovals {{ id name }}
        gateRequirements rebuttalMode rebuttalDueDate
        recommendations {{ id number text addressee positions {{ college {{ name }} position }}
            councilDecisions {{ decision }} implementationUpdates {{ text }} }}
        submissions {{ id }}
        deadlines {{ id kind college {{ id name municipality {{ name }} }} dueAt status }}
        extensionRequests {{ id }}
        responses {{ id colleges {{ id name }} signedBy {{ id name }} filedAt late counted
            version {{ id number sha256 sizeBytes author {{ name }} }} }}
        publishedAt createdAt
    }} }}"
    )
}

/// Fragments, aliases, `__typename`.
const TRICKY: &str = "query($id: ID!) { investigation(id: $id) {
    __typename
    ...Head
    t: title
    title
    documents {
        ... on Document { kind }
        k: kind
        ... { title }
        latestVersion { __typename number author { ...Who } }
    }
    commissions { name }
    c: commissions { id municipalities { name } }
    deadlines { ... on Deadline { dueAt } kind }
} }
fragment Head on Investigation { id phase }
fragment Who on User { name email }";

/// Response keys named twice, whose answers async-graphql merges: in an investigation, through
/// a fragment, and at the root.
const REPEATED: &str = "query($id: ID!) {
    investigation(id: $id) {
        commissions { name }
        commissions { id municipalities { name } }
        documents { kind }
        ...Documents
    }
    again: investigation(id: $id) { title }
    again: investigation(id: $id) { phase documents { latestVersion { number } } }
}
fragment Documents on Investigation { documents { title latestVersion { author { name } } } }";

#[tokio::test]
async fn plain_answers_are_async_graphql_s_answers() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let reference = TestServer::start_with(&db, |config| {
            config.limits.plain_fields = false;
        })
        .await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);

        // An investigation in the rebuttal with a response filed, and one whose proposal has
        // half its approvals (of its second version).
        let rebuttal = flow.investigation_in(Phase::AdministrativeRebuttal).await;
        let colleges = flow
            .gql(
                "admin",
                "{ municipalities { name college { id } } }",
                json!({}),
            )
            .await;
        let bloemendaal = colleges.data()["municipalities"]
            .as_array()
            .expect("municipalities")
            .iter()
            .find(|m| m["name"] == "Bloemendaal")
            .map(|m| id_of(&m["college"]))
            .expect("Bloemendaal's college");
        flow.gql(
            "college_b",
            "mutation($input: FileResponseInput!) { fileResponse(input: $input) { id } }",
            json!({ "input": {
                "investigationId": rebuttal,
                "collegeIds": [bloemendaal],
                "content": "# Reactie\n\nWij nemen de aanbeveling over.",
            }}),
        )
        .await
        .data();
        let proposal = flow.investigation_in(Phase::Proposal).await;
        flow.submit_ok(
            "secretary_b",
            &proposal,
            DocumentKind::Proposal,
            "# Voorstel v2",
        )
        .await;
        flow.approve("chair_b", &proposal).await.data();

        let readers = [
            "admin",
            "chair_b",
            "member_h",
            "secretary_b",
            "external",
            "college_b",
            "civil_b",
            "griffier_b",
            "council_b",
            "outsider",
            "anonymous",
        ];
        let everything = everything();
        let mut compared = 0;
        for who in readers {
            let token = flow.token(who);
            let mut asks = vec![(DASHBOARD, json!({ "first": 50 }))];
            for id in [&rebuttal, &proposal] {
                for query in [INVESTIGATION, everything.as_str(), TRICKY, REPEATED] {
                    asks.push((query, json!({ "id": id })));
                }
            }
            for (query, variables) in asks {
                let plain = server.gql(token, query, variables.clone()).await;
                let generic = reference.gql(token, query, variables).await;
                assert_eq!(
                    plain.body, generic.body,
                    "{}: {who} got another answer with plain fields to {query}",
                    server.label
                );
                compared += 1;
            }
        }
        assert_eq!(compared, readers.len() * 9);

        // The comparison covered answers with content, not empty ones.
        let chair = server
            .gql(
                flow.token("chair_b"),
                &everything,
                json!({ "id": rebuttal }),
            )
            .await;
        let investigation = &chair.data()["investigation"];
        for list in ["documents", "recommendations", "deadlines", "responses"] {
            assert!(
                investigation[list]
                    .as_array()
                    .is_some_and(|l| !l.is_empty()),
                "{}: no {list} in {investigation}",
                server.label
            );
        }
        assert!(investigation["documents"][0]["versions"][0]["author"]["name"].is_string());
        assert!(investigation["responses"][0]["colleges"][0]["name"].is_string());
        let half = server
            .gql(
                flow.token("chair_b"),
                &everything,
                json!({ "id": proposal }),
            )
            .await;
        let half = &half.data()["investigation"];
        assert_eq!(half["missingApprovals"].as_array().map(Vec::len), Some(1));
        assert_eq!(half["approvals"][0]["approvedBy"]["name"], "chair_b");
        reference.stop().await;
        server.stop().await;
    })
    .await;
}

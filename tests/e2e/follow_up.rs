//! The end of the lifecycle (issue 5): the epilogue (nawoord), the council submission with its
//! frozen bundles, publication without login, council decisions, implementation updates, the
//! recommendations register and closing; with the replay of the 2019 joint investigation of
//! Bloemendaal and Heemstede on its real dates.

use crate::support::{
    ANONYMOUS, AUDIT_TRAIL, Flow, PROPOSE, SUBMIT, documents_of, http_error_code, id_of,
    version_numbers,
};
use chrono::{DateTime, FixedOffset, Utc};
use rkflow_domain::{DocumentKind, Phase};
use rkflow_e2e::{Backend, Gql, Org, PASSWORD, TestServer, for_each_backend, org};
use rkflow_server::demo::{RECOMMENDATIONS, RESEARCH_QUESTIONS, TITLE};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// Everything the tests read of an investigation.
const FULL: &str = "query($id: ID!) { investigation(id: $id) {
    id title phase publishedAt
    commissions { name }
    municipalities { name }
    researchQuestions
    rapporteurs { user { name } }
    approvals { phase commission { name } approvedBy { name } approvedAt }
    documents { id kind title
        versions { id number sha256 sizeBytes mediaType downloadUrl createdAt } }
    deadlines { kind college { name } dueAt status }
    responses { id colleges { name } signedBy { name } late filedAt counted
        version { id number sha256 } }
    recommendations { id number text addressee
        positions { college { name } position }
        councilDecisions { council { name } decision note recordedAt }
        councilDecisionHistory { council { name } decision note recordedAt }
        implementationUpdates { municipality { name } text author { name } at } }
    submissions { id council { id name } submittedAt manifestSha256 manifest bundleUrl
        documents { id number sha256 sizeBytes mediaType downloadUrl } }
} }";

const RESPONSE_FIELDS: &str = "id colleges { name } signedBy { name } late filedAt counted
    version { id number sha256 }";

const RECOMMENDATION_FIELDS: &str = "id number
    councilDecisions { council { name } decision note recordedAt }
    councilDecisionHistory { council { name } decision note recordedAt }
    implementationUpdates { municipality { name } text author { name } at }";

const PUBLISHED: &str = "query { publishedInvestigations(first: 50) {
    totalCount edges { node { id title publishedAt } } } }";

const REGISTER: &str = "query($first: Int, $after: String, $addressee: RecommendationAddressee,
        $decision: CouncilDecision, $municipality: ID) {
    recommendationRegister(first: $first, after: $after, addressee: $addressee,
            decision: $decision, municipalityId: $municipality) {
        totalCount
        pageInfo { hasNextPage endCursor }
        edges { cursor node {
            investigation { id }
            recommendation { id number addressee }
            municipality { id name }
            collegePosition
            councilDecision { council { name } decision }
            implementationUpdates { text } } } } }";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn instant(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).unwrap_or_else(|_| panic!("not RFC 3339: {text}"))
}

/// Asserts that a DateTime field names the given instant (whatever its offset).
fn assert_instant(value: &Value, expected: &str) {
    let found = value
        .as_str()
        .unwrap_or_else(|| panic!("no time in {value}"));
    assert_eq!(
        instant(found),
        instant(expected),
        "{found} is not {expected}"
    );
}

fn list(value: &Value) -> &Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
}

fn names(value: &Value, field: &str) -> Vec<String> {
    list(value)
        .iter()
        .map(|v| v[field].as_str().expect("a name").to_string())
        .collect()
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_string()
}

/// A server whose clock stands at `start` (the fixture's sessions start there too).
async fn start_at(db: &Backend, start: &str) -> TestServer {
    let start = instant(start).with_timezone(&Utc);
    TestServer::start_with(db, |config| {
        config.manual_clock = Some(start);
        config.auth.idle_timeout = chrono::Duration::days(400);
        config.auth.absolute_timeout = chrono::Duration::days(400);
    })
    .await
}

/// The fixture stores its sessions with an expiry 12 hours after the clock's start, whatever
/// the server's session settings; a replay that moves the clock by months therefore logs its
/// users in once at the start, which gives them sessions of the server's 400 days.
async fn long_sessions(server: &TestServer, org: &mut Org, keys: &[&str]) {
    for key in keys {
        let email = org.person(key).email.clone();
        let token = server.login(&email, PASSWORD).await;
        org.people.get_mut(*key).expect("a fixture person").token = token;
    }
}

/// Moves the manual clock (as admin).
async fn advance(flow: &Flow<'_>, to: &str) {
    let answer = flow
        .gql(
            "admin",
            "mutation($to: DateTime!) { advanceClock(to: $to) }",
            json!({ "to": to }),
        )
        .await;
    assert_instant(&answer.data()["advanceClock"], to);
}

/// A municipality's ids: its own, its council's and its college's.
#[derive(Clone, Debug)]
struct Bodies {
    municipality: String,
    council: String,
    college: String,
}

async fn bodies(flow: &Flow<'_>) -> BTreeMap<&'static str, Bodies> {
    let answer = flow
        .gql(
            "admin",
            "{ municipalities { id name council { id } college { id } } }",
            json!({}),
        )
        .await;
    let mut found = BTreeMap::new();
    for m in list(&answer.data()["municipalities"]) {
        let key = match m["name"].as_str() {
            Some("Bloemendaal") => "b",
            Some("Heemstede") => "h",
            Some("Haarlem") => "x",
            other => panic!("unexpected municipality {other:?}"),
        };
        found.insert(
            key,
            Bodies {
                municipality: id_of(m),
                council: id_of(&m["council"]),
                college: id_of(&m["college"]),
            },
        );
    }
    found
}

async fn full(flow: &Flow<'_>, who: &str, id: &str) -> Value {
    flow.gql(who, FULL, json!({ "id": id })).await.data()["investigation"].clone()
}

/// Approves the current gate as each of `chairs` in turn; the phase after the last.
async fn approve_as(flow: &Flow<'_>, id: &str, chairs: &[&str]) -> String {
    let mut phase = String::new();
    for chair in chairs {
        phase = text(&flow.approve(chair, id).await.data()["approvePhase"]["phase"]);
    }
    phase
}

async fn file_response(
    flow: &Flow<'_>,
    who: &str,
    id: &str,
    colleges: &[&str],
    content: &str,
    positions: Value,
) -> Gql {
    let query = format!(
        "mutation($input: FileResponseInput!) {{ fileResponse(input: $input) {{ {RESPONSE_FIELDS} }} }}"
    );
    flow.gql(
        who,
        &query,
        json!({ "input": {
            "investigationId": id,
            "collegeIds": colleges,
            "content": content,
            "positions": positions,
        }}),
    )
    .await
}

async fn cosign(flow: &Flow<'_>, who: &str, response: &str) -> Gql {
    let query =
        format!("mutation($id: ID!) {{ cosignResponse(responseId: $id) {{ {RESPONSE_FIELDS} }} }}");
    flow.gql(who, &query, json!({ "id": response })).await
}

async fn record_decision(
    flow: &Flow<'_>,
    who: &str,
    recommendation: &str,
    council: &str,
    decision: &str,
    note: Option<&str>,
) -> Gql {
    let query = format!(
        "mutation($r: ID!, $c: ID!, $d: CouncilDecision!, $n: String) {{
            recordCouncilDecision(recommendationId: $r, councilId: $c, decision: $d, note: $n)
            {{ {RECOMMENDATION_FIELDS} }} }}"
    );
    flow.gql(
        who,
        &query,
        json!({ "r": recommendation, "c": council, "d": decision, "n": note }),
    )
    .await
}

async fn add_update(
    flow: &Flow<'_>,
    who: &str,
    recommendation: &str,
    municipality: &str,
    update: &str,
) -> Gql {
    let query = format!(
        "mutation($r: ID!, $m: ID!, $t: String!) {{
            addImplementationUpdate(recommendationId: $r, municipalityId: $m, text: $t)
            {{ {RECOMMENDATION_FIELDS} }} }}"
    );
    flow.gql(
        who,
        &query,
        json!({ "r": recommendation, "m": municipality, "t": update }),
    )
    .await
}

async fn add_recommendation(
    flow: &Flow<'_>,
    who: &str,
    id: &str,
    text: &str,
    addressee: &str,
) -> String {
    let answer = flow
        .gql(
            who,
            "mutation($id: ID!, $text: String!, $addressee: RecommendationAddressee!) {
                addRecommendation(investigationId: $id, text: $text, addressee: $addressee)
                { id number } }",
            json!({ "id": id, "text": text, "addressee": addressee }),
        )
        .await;
    id_of(&answer.data()["addRecommendation"])
}

/// `submitDocumentVersion` with an uploaded file (GraphQL multipart request).
async fn upload(
    flow: &Flow<'_>,
    who: &str,
    id: &str,
    kind: DocumentKind,
    title: &str,
    file_name: &str,
    bytes: Vec<u8>,
) -> Gql {
    let operations = json!({ "query": SUBMIT, "variables": { "input": {
        "investigationId": id, "kind": kind.as_str(), "title": title, "file": null,
    }}});
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.input.file"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(bytes)
                .file_name(file_name.to_string())
                .mime_str("application/pdf")
                .expect("a mime type"),
        );
    let mut request = flow
        .server
        .http
        .post(format!("{}/graphql", flow.server.base))
        .multipart(form);
    if let Some(token) = flow.token(who) {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Gql { status, body }
}

/// A small PDF with bytes that are no UTF-8, so that byte-exactness shows.
fn pdf(marker: &str) -> Vec<u8> {
    let mut bytes = format!(
        "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
         2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n% {marker}\n"
    )
    .into_bytes();
    bytes.extend_from_slice(&[0xff, 0x00, 0xfe, 0x80, b'\r', b'\n']);
    bytes.extend_from_slice(b"trailer << /Root 1 0 R >>\n%%EOF\n");
    bytes
}

/// A GET as `who`: status and body.
async fn download(flow: &Flow<'_>, who: &str, path: &str) -> (u16, Vec<u8>) {
    let response = flow.get(who, path).await;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("a body").to_vec();
    (status, bytes)
}

fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a ZIP");
    let mut files = BTreeMap::new();
    for index in 0..archive.len() {
        let mut file = archive.by_index(index).expect("a ZIP entry");
        let mut content = Vec::new();
        file.read_to_end(&mut content).expect("a readable entry");
        files.insert(file.name().to_string(), content);
    }
    files
}

/// Downloads a submission's bundle without a token and checks it against the submission: the
/// manifest's SHA-256, and every version's exact bytes in the manifest's order. Returns the
/// files of the ZIP as (name, SHA-256).
async fn check_bundle(flow: &Flow<'_>, submission: &Value) -> BTreeMap<String, String> {
    let url = text(&submission["bundleUrl"]);
    let response = flow.get(ANONYMOUS, &url).await;
    assert_eq!(response.status().as_u16(), 200, "the bundle is public");
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/zip"
    );
    let files = unzip(&response.bytes().await.expect("a body"));
    let manifest = files.get("manifest.json").expect("a manifest.json");
    assert_eq!(
        sha256_hex(manifest),
        text(&submission["manifestSha256"]),
        "manifestSha256 is the SHA-256 of the manifest in the ZIP"
    );
    assert_eq!(
        String::from_utf8(manifest.clone()).unwrap(),
        text(&submission["manifest"])
    );
    let entries: Vec<Value> = serde_json::from_slice(manifest).expect("manifest JSON");
    let documents = list(&submission["documents"]);
    assert_eq!(entries.len(), documents.len());
    assert_eq!(
        files.len(),
        entries.len() + 1,
        "the manifest and one file per version"
    );
    for (entry, version) in entries.iter().zip(documents) {
        assert_eq!(entry["sha256"], version["sha256"]);
        assert_eq!(entry["number"], version["number"]);
        let bytes = files
            .get(entry["file"].as_str().expect("a file name"))
            .unwrap_or_else(|| panic!("{} is missing from the ZIP", entry["file"]));
        assert_eq!(sha256_hex(bytes), text(&version["sha256"]), "{entry}");
        assert_eq!(bytes.len() as i64, version["sizeBytes"].as_i64().unwrap());
        // The same bytes are served one by one, also without a token.
        let (status, single) = download(flow, ANONYMOUS, &text(&version["downloadUrl"])).await;
        assert_eq!(status, 200);
        assert_eq!(&single, bytes);
    }
    files
        .iter()
        .map(|(name, bytes)| (name.clone(), sha256_hex(bytes)))
        .collect()
}

/// The kind (and annex title) of every version of an investigation, by version id, as the
/// team sees it.
fn kinds_by_version(investigation: &Value) -> BTreeMap<String, (String, String)> {
    let mut kinds = BTreeMap::new();
    for document in list(&investigation["documents"]) {
        for version in list(&document["versions"]) {
            kinds.insert(
                id_of(version),
                (text(&document["kind"]), text(&document["title"])),
            );
        }
    }
    kinds
}

/// The version ids of a submission's bundle, in order.
fn bundle_ids(submission: &Value) -> Vec<String> {
    list(&submission["documents"]).iter().map(id_of).collect()
}

/// Every version id the caller sees in `documents`.
fn visible_version_ids(investigation: &Value) -> BTreeSet<String> {
    kinds_by_version(investigation).into_keys().collect()
}

/// The submissions as they can be compared over time (the manifest, hash, time, council and
/// every version of the bundle).
fn submissions_snapshot(investigation: &Value) -> Value {
    let mut submissions = list(&investigation["submissions"]).clone();
    submissions.sort_by_key(|s| text(&s["council"]["name"]));
    Value::Array(submissions)
}

fn positions_all(recommendations: &[String], position: &str) -> Value {
    Value::Array(
        recommendations
            .iter()
            .map(|r| json!({ "recommendationId": r, "position": position }))
            .collect(),
    )
}

/// The chair of a fixture commission ("b", "h").
fn chair_of(commission: &str) -> &'static str {
    match commission {
        "b" => "chair_b",
        "h" => "chair_h",
        other => panic!("no chair for {other}"),
    }
}

/// A fresh investigation of `commissions` brought to ADMINISTRATIVE_REBUTTAL with SEPARATE
/// terms and the given recommendations (text, addressee); its id and the recommendations' ids.
async fn in_rebuttal(
    flow: &Flow<'_>,
    commissions: &[&str],
    title: &str,
    recommendations: &[(&str, &str)],
) -> (String, Vec<String>) {
    let chairs: Vec<&str> = commissions.iter().map(|c| chair_of(c)).collect();
    let id = flow.propose_ok("chair_b", commissions, title).await;
    flow.submit_ok("member_b", &id, DocumentKind::Proposal, "# Voorstel")
        .await;
    assert_eq!(approve_as(flow, &id, &chairs).await, "RESEARCH");
    flow.submit_ok(
        "secretary_b",
        &id,
        DocumentKind::ResearchReport,
        "# Rapport\n\nBevindingen.",
    )
    .await;
    flow.submit_ok(
        "secretary_b",
        &id,
        DocumentKind::Conclusions,
        "# Conclusies\n\nHet beleid werkt deels.",
    )
    .await;
    let mut ids = Vec::new();
    for (text, addressee) in recommendations {
        ids.push(add_recommendation(flow, "member_b", &id, text, addressee).await);
    }
    flow.set_rebuttal_terms("chair_b", &id, "SEPARATE")
        .await
        .data();
    assert_eq!(
        approve_as(flow, &id, &chairs).await,
        "ADMINISTRATIVE_REBUTTAL"
    );
    (id, ids)
}

/// From ADMINISTRATIVE_REBUTTAL to FOLLOW_UP: the given responses (who, college id,
/// positions) are filed, the commissions write an epilogue and a cover letter when `letters`
/// (both are optional), and `chairs` pass the three gates.
async fn publish(
    flow: &Flow<'_>,
    id: &str,
    chairs: &[&str],
    responses: &[(&str, &str, Value)],
    letters: bool,
) {
    for (who, college, positions) in responses {
        file_response(
            flow,
            who,
            id,
            &[college],
            "# Reactie van het college\n\nWij nemen de aanbevelingen over.",
            positions.clone(),
        )
        .await
        .data();
    }
    assert_eq!(approve_as(flow, id, chairs).await, "EPILOGUE");
    if letters {
        flow.submit_ok(
            "member_b",
            id,
            DocumentKind::Epilogue,
            "# Nawoord\n\nDe commissies danken de colleges.",
        )
        .await;
    }
    assert_eq!(approve_as(flow, id, chairs).await, "COUNCIL_SUBMISSION");
    if letters {
        flow.submit_ok(
            "secretary_b",
            id,
            DocumentKind::CoverLetter,
            "# Aanbiedingsbrief\n\nGeachte raadsleden,",
        )
        .await;
    }
    assert_eq!(approve_as(flow, id, chairs).await, "FOLLOW_UP");
}

/// [`publish`] for a joint investigation of b and h in which each college answers for itself.
async fn publish_joint(flow: &Flow<'_>, id: &str, bodies: &BTreeMap<&str, Bodies>) {
    publish(
        flow,
        id,
        &["chair_b", "chair_h"],
        &[
            ("college_b", &bodies["b"].college, json!([])),
            ("college_h", &bodies["h"].college, json!([])),
        ],
        true,
    )
    .await;
}

#[tokio::test]
async fn the_2019_joint_investigation_replays_from_proposal_to_closing() {
    for_each_backend(|db| async move {
        let server = start_at(&db, "2019-03-21T09:00:00+01:00").await;
        let mut org = org(&server).await;
        long_sessions(
            &server,
            &mut org,
            &[
                "admin",
                "chair_b",
                "chair_h",
                "member_b",
                "member_h",
                "secretary_b",
                "external",
                "outsider",
                "college_b",
                "college_h",
                "griffier_b",
                "griffier_h",
                "council_b",
            ],
        )
        .await;
        let flow = Flow::new(&server, &org);
        let bodies = bodies(&flow).await;

        // 21 March 2019: the proposal, approved by both chairs and sent ter kennisname.
        let proposed = flow
            .gql(
                "member_b",
                PROPOSE,
                json!({ "input": {
                    "title": TITLE,
                    "commissionIds": [flow.commission_id("b"), flow.commission_id("h")],
                    "researchQuestions": RESEARCH_QUESTIONS,
                    "scopeStart": "2015-01-01",
                    "scopeEnd": "2019-06-30",
                }}),
            )
            .await;
        let id = id_of(&proposed.data()["proposeInvestigation"]);
        flow.assign_rapporteur("chair_h", &id, "h", "external")
            .await
            .data();
        flow.submit_ok(
            "member_b",
            &id,
            DocumentKind::Proposal,
            "# Onderzoeksvoorstel\n\nGezamenlijk onderzoek naar de ICT-samenwerking.",
        )
        .await;
        assert_eq!(
            approve_as(&flow, &id, &["chair_b", "chair_h"]).await,
            "RESEARCH"
        );
        let seen = full(&flow, "chair_b", &id).await;
        assert_eq!(seen["title"], TITLE);
        assert_eq!(seen["researchQuestions"], json!(RESEARCH_QUESTIONS));

        // The research, March to September; the report revised after the benchmark.
        advance(&flow, "2019-09-20T10:00:00+02:00").await;
        flow.submit_ok(
            "external",
            &id,
            DocumentKind::ResearchReport,
            "# Evaluatie van de samenwerking\n\nConcept zonder benchmark.",
        )
        .await;
        upload(
            &flow,
            "member_b",
            &id,
            DocumentKind::Annex,
            "Bijlage B Benchmark ICT-kosten",
            "benchmark.pdf",
            pdf("benchmark, concept"),
        )
        .await
        .data();
        advance(&flow, "2019-10-01T10:00:00+02:00").await;
        flow.submit_ok(
            "external",
            &id,
            DocumentKind::ResearchReport,
            "# Evaluatie van de samenwerking\n\nDe gemeenten zitten ruim boven het gemiddelde \
             kostenniveau voor ICT.",
        )
        .await;
        let benchmark = pdf("benchmark, september 2019");
        upload(
            &flow,
            "member_b",
            &id,
            DocumentKind::Annex,
            "Bijlage B Benchmark ICT-kosten",
            "benchmark.pdf",
            benchmark.clone(),
        )
        .await
        .data();
        flow.submit_ok(
            "member_b",
            &id,
            DocumentKind::Conclusions,
            "# Conclusies en aanbevelingen\n\nDe gemeenten zijn goed op weg, maar de bestuurlijke \
             aansturing door de raden en de colleges behoeft veel meer aandacht.",
        )
        .await;
        let mut recommendations = Vec::new();
        for (text, addressee) in RECOMMENDATIONS {
            recommendations
                .push(add_recommendation(&flow, "member_b", &id, text, addressee.as_str()).await);
        }
        flow.set_rebuttal_terms("chair_b", &id, "JOINT")
            .await
            .data();
        let seen = full(&flow, "chair_b", &id).await;
        let addressees: Vec<String> = list(&seen["recommendations"])
            .iter()
            .map(|r| text(&r["addressee"]))
            .collect();
        assert_eq!(
            addressees,
            [["COUNCIL"; 5], ["ADMINISTRATION"; 5]].concat(),
            "five for the councils and colleges, five for the administration"
        );

        // 24 October 2019: the draft goes to both colleges for the bestuurlijk wederhoor.
        advance(&flow, "2019-10-24T10:00:00+02:00").await;
        assert_eq!(
            approve_as(&flow, &id, &["chair_b", "chair_h"]).await,
            "ADMINISTRATIVE_REBUTTAL"
        );
        let seen = full(&flow, "chair_b", &id).await;
        let deadlines = list(&seen["deadlines"]);
        assert_eq!(deadlines.len(), 2);
        for deadline in deadlines {
            assert_eq!(deadline["kind"], "ADMINISTRATIVE_RESPONSE");
            assert_eq!(deadline["status"], "OPEN");
            assert_instant(&deadline["dueAt"], "2019-11-14T23:59:59+01:00");
        }

        // 12 November 2019: one joint response of both colleges.
        advance(&flow, "2019-11-12T14:00:00+01:00").await;
        let filed = file_response(
            &flow,
            "college_b",
            &id,
            &[&bodies["b"].college, &bodies["h"].college],
            "# Gezamenlijke reactie van de colleges van Bloemendaal en Heemstede\n\n\
             De colleges kunnen zich vinden in de aanbevelingen van de rekenkamercommissies.",
            positions_all(&recommendations, "AGREES"),
        )
        .await;
        let response = filed.data()["fileResponse"].clone();
        assert_eq!(
            names(&response["colleges"], "name"),
            ["College van B&W Bloemendaal", "College van B&W Heemstede"]
        );
        assert_eq!(
            names(&response["signedBy"], "name"),
            ["College van B&W Bloemendaal"]
        );
        let response_id = id_of(&response);
        let cosigned = cosign(&flow, "college_h", &response_id).await;
        let response = cosigned.data()["cosignResponse"].clone();
        assert_eq!(
            names(&response["signedBy"], "name"),
            ["College van B&W Bloemendaal", "College van B&W Heemstede"]
        );
        assert_eq!(response["late"], false);
        assert_instant(&response["filedAt"], "2019-11-12T14:00:00+01:00");
        let seen = full(&flow, "chair_b", &id).await;
        let statuses: Vec<(String, String)> = list(&seen["deadlines"])
            .iter()
            .map(|d| (text(&d["college"]["name"]), text(&d["status"])))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            statuses,
            [
                ("College van B&W Bloemendaal".to_string(), "MET".to_string()),
                ("College van B&W Heemstede".to_string(), "MET".to_string()),
            ]
        );
        let responses = list(&seen["responses"]);
        assert_eq!(
            responses.len(),
            1,
            "one response, counted for both colleges"
        );
        assert_eq!(responses[0]["counted"], true);
        assert_eq!(responses[0]["late"], false);
        // Each college sees its own deadline, the response and both colleges' positions.
        for (who, college) in [
            ("college_b", "College van B&W Bloemendaal"),
            ("college_h", "College van B&W Heemstede"),
        ] {
            let seen = full(&flow, who, &id).await;
            let deadlines = list(&seen["deadlines"]);
            assert_eq!(deadlines.len(), 1, "{who} sees its own college's deadline");
            assert_eq!(deadlines[0]["college"]["name"], college);
            assert_eq!(deadlines[0]["status"], "MET");
            assert_eq!(list(&seen["responses"]).len(), 1);
            let recommendations = list(&seen["recommendations"]);
            assert_eq!(recommendations.len(), 10);
            for recommendation in recommendations {
                let positions: BTreeSet<(String, String)> = list(&recommendation["positions"])
                    .iter()
                    .map(|p| (text(&p["college"]["name"]), text(&p["position"])))
                    .collect();
                assert_eq!(
                    positions,
                    BTreeSet::from([
                        ("College van B&W Bloemendaal".into(), "AGREES".into()),
                        ("College van B&W Heemstede".into(), "AGREES".into()),
                    ])
                );
            }
        }
        assert_eq!(
            approve_as(&flow, &id, &["chair_b", "chair_h"]).await,
            "EPILOGUE"
        );

        // 13 November 2019: the nawoord and an introduction as annex; the bundle is set.
        advance(&flow, "2019-11-13T10:00:00+01:00").await;
        flow.submit_ok(
            "member_h",
            &id,
            DocumentKind::Epilogue,
            "# Nawoord\n\nDe rekenkamercommissies danken de colleges voor hun reactie.",
        )
        .await;
        flow.submit_input(
            "secretary_b",
            &id,
            json!({ "kind": "ANNEX", "title": "Bijlage A Inleiding",
                    "content": "# Inleiding\n\nAanleiding en aanpak." }),
        )
        .await
        .data();
        assert_eq!(
            approve_as(&flow, &id, &["chair_b", "chair_h"]).await,
            "COUNCIL_SUBMISSION"
        );

        // 15 November 2019: the cover letter, signed by both chairs: to both councils.
        advance(&flow, "2019-11-15T09:00:00+01:00").await;
        flow.submit_ok(
            "secretary_b",
            &id,
            DocumentKind::CoverLetter,
            "Aan de gemeenteraad van Bloemendaal\nAan de gemeenteraad van Heemstede\n\n\
             Datum: 15 november 2019\n\nGeachte raadsleden,",
        )
        .await;
        assert_eq!(
            approve_as(&flow, &id, &["chair_b"]).await,
            "COUNCIL_SUBMISSION"
        );
        assert_eq!(approve_as(&flow, &id, &["chair_h"]).await, "FOLLOW_UP");
        let team = full(&flow, "chair_b", &id).await;
        assert_eq!(team["phase"], "FOLLOW_UP");
        assert_instant(&team["publishedAt"], "2019-11-15T09:00:00+01:00");
        let submissions = list(&team["submissions"]);
        assert_eq!(
            names(
                &Value::Array(submissions.iter().map(|s| s["council"].clone()).collect()),
                "name"
            )
            .into_iter()
            .collect::<BTreeSet<_>>(),
            BTreeSet::from([
                "Gemeenteraad Bloemendaal".to_string(),
                "Gemeenteraad Heemstede".to_string()
            ])
        );
        for submission in submissions {
            assert_eq!(submission["submittedAt"], team["publishedAt"]);
            assert_eq!(
                submission["manifestSha256"],
                submissions[0]["manifestSha256"]
            );
            assert_eq!(bundle_ids(submission), bundle_ids(&submissions[0]));
        }
        let kinds = kinds_by_version(&team);
        let order: Vec<(String, String)> = bundle_ids(&submissions[0])
            .iter()
            .map(|v| kinds[v].clone())
            .collect();
        let order: Vec<&str> = order
            .iter()
            .map(|(kind, title)| match kind.as_str() {
                "ANNEX" => title.as_str(),
                other => other,
            })
            .collect();
        assert_eq!(
            order,
            [
                "COVER_LETTER",
                "CONCLUSIONS",
                "ADMINISTRATIVE_RESPONSE",
                "EPILOGUE",
                "RESEARCH_REPORT",
                "Bijlage A Inleiding",
                "Bijlage B Benchmark ICT-kosten",
            ],
            "the contract's bundle order"
        );
        // The latest versions went in: report v2, benchmark v2, the joint response.
        let numbers: Vec<i64> = list(&submissions[0]["documents"])
            .iter()
            .map(|v| v["number"].as_i64().unwrap())
            .collect();
        assert_eq!(numbers, [1, 1, 1, 1, 2, 1, 2]);
        assert_eq!(
            bundle_ids(&submissions[0])[2],
            id_of(&responses[0]["version"])
        );
        for submission in submissions {
            let files = check_bundle(&flow, submission).await;
            assert!(files.values().any(|sha| *sha == sha256_hex(&benchmark)));
        }

        // The public, without a token: the title, commissions, publication and the bundle.
        let public = flow.gql(ANONYMOUS, PUBLISHED, json!({})).await;
        let published = &public.data()["publishedInvestigations"];
        assert_eq!(published["totalCount"], 1);
        assert_eq!(published["edges"][0]["node"]["id"], json!(id));
        assert_eq!(published["edges"][0]["node"]["title"], TITLE);
        let bundle: BTreeSet<String> = bundle_ids(&submissions[0]).into_iter().collect();
        for who in [ANONYMOUS, "outsider"] {
            let seen = full(&flow, who, &id).await;
            assert_eq!(seen["title"], TITLE, "{who}");
            assert_eq!(
                names(&seen["commissions"], "name"),
                [
                    "Rekenkamercommissie Bloemendaal",
                    "Rekenkamercommissie Heemstede"
                ]
            );
            assert_eq!(seen["publishedAt"], team["publishedAt"]);
            assert_eq!(visible_version_ids(&seen), bundle, "{who}: only the bundle");
            assert!(documents_of(&seen, DocumentKind::Proposal).is_empty());
            assert_eq!(version_numbers(&seen, DocumentKind::ResearchReport), [2]);
            assert_eq!(version_numbers(&team, DocumentKind::ResearchReport), [1, 2]);
            assert_eq!(seen["researchQuestions"], json!([]), "{who}");
            assert_eq!(seen["rapporteurs"], json!([]), "{who}");
            assert_eq!(seen["deadlines"], json!([]), "{who}");
            assert_eq!(seen["recommendations"], json!([]), "{who}");
            assert_eq!(list(&seen["submissions"]).len(), 2);
            // Earlier versions stay confidential, also as downloads.
            for (version, _) in kinds.iter().filter(|(v, _)| !bundle.contains(*v)) {
                let (status, _) = download(&flow, who, &format!("/files/versions/{version}")).await;
                assert_eq!(status, 404, "{who} downloads an unpublished version");
            }
        }
        flow.gql(ANONYMOUS, AUDIT_TRAIL, json!({ "id": id }))
            .await
            .expect_code("UNAUTHENTICATED");
        let outsider_trail = flow.gql("outsider", AUDIT_TRAIL, json!({ "id": id })).await;
        outsider_trail.expect_code("NOT_FOUND");
        assert!(outsider_trail.body["data"]["auditTrail"].is_null());

        // December 2019 / January 2020: the councils decide differently.
        let first = &recommendations[0];
        advance(&flow, "2019-12-19T21:00:00+01:00").await;
        record_decision(
            &flow,
            "griffier_b",
            first,
            &bodies["b"].council,
            "ADOPTED",
            Some("Raadsbesluit 19 december 2019"),
        )
        .await
        .data();
        advance(&flow, "2020-01-30T21:00:00+01:00").await;
        record_decision(
            &flow,
            "griffier_h",
            first,
            &bodies["h"].council,
            "NOTED",
            None,
        )
        .await
        .data();
        advance(&flow, "2020-02-27T21:00:00+01:00").await;
        let answer = record_decision(
            &flow,
            "griffier_h",
            first,
            &bodies["h"].council,
            "REJECTED",
            Some("Amendement aangenomen"),
        )
        .await;
        let decided = &answer.data()["recordCouncilDecision"];
        let current: BTreeSet<(String, String)> = list(&decided["councilDecisions"])
            .iter()
            .map(|d| (text(&d["council"]["name"]), text(&d["decision"])))
            .collect();
        assert_eq!(
            current,
            BTreeSet::from([
                ("Gemeenteraad Bloemendaal".into(), "ADOPTED".into()),
                ("Gemeenteraad Heemstede".into(), "REJECTED".into()),
            ])
        );
        let history: Vec<(String, String)> = list(&decided["councilDecisionHistory"])
            .iter()
            .map(|d| (text(&d["council"]["name"]), text(&d["decision"])))
            .collect();
        assert_eq!(
            history,
            [
                (
                    "Gemeenteraad Bloemendaal".to_string(),
                    "ADOPTED".to_string()
                ),
                ("Gemeenteraad Heemstede".to_string(), "NOTED".to_string()),
                ("Gemeenteraad Heemstede".to_string(), "REJECTED".to_string()),
            ]
        );
        let history = list(&decided["councilDecisionHistory"]);
        assert_instant(&history[0]["recordedAt"], "2019-12-19T21:00:00+01:00");
        assert_instant(&history[1]["recordedAt"], "2020-01-30T21:00:00+01:00");
        assert_instant(&history[2]["recordedAt"], "2020-02-27T21:00:00+01:00");
        assert_eq!(history[0]["note"], "Raadsbesluit 19 december 2019");
        // The register: ten recommendations in each municipality, the joint response's
        // position for both colleges, each council's own current decision.
        let register = register_page(&flow, "griffier_h", 100, None, json!({})).await;
        assert_eq!(register["totalCount"], 20);
        let first_entries: Vec<(String, Value, Value)> = list(&register["edges"])
            .iter()
            .filter(|e| e["node"]["recommendation"]["id"] == json!(first))
            .map(|e| {
                (
                    text(&e["node"]["municipality"]["name"]),
                    e["node"]["collegePosition"].clone(),
                    e["node"]["councilDecision"]["decision"].clone(),
                )
            })
            .collect();
        assert_eq!(
            first_entries,
            [
                ("Bloemendaal".to_string(), json!("AGREES"), json!("ADOPTED")),
                ("Heemstede".to_string(), json!("AGREES"), json!("REJECTED")),
            ]
        );
        let adopted = register_page(
            &flow,
            "council_b",
            100,
            None,
            json!({ "decision": "ADOPTED" }),
        )
        .await;
        assert_eq!(adopted["totalCount"], 1);
        assert_eq!(
            adopted["edges"][0]["node"]["municipality"]["name"],
            "Bloemendaal"
        );
        // A council member of Bloemendaal reads the same decisions.
        let seen = full(&flow, "council_b", &id).await;
        let recommendation = &list(&seen["recommendations"])[0];
        assert_eq!(recommendation["id"], json!(first));
        assert_eq!(
            recommendation["councilDecisionHistory"],
            decided["councilDecisionHistory"]
        );
        // The other recommendations have no decision yet.
        assert!(
            list(&seen["recommendations"])[1..]
                .iter()
                .all(|r| list(&r["councilDecisions"]).is_empty())
        );

        // The college reports on the implementation, append-only.
        let sixth = &recommendations[5];
        let answer = add_update(
            &flow,
            "college_b",
            sixth,
            &bodies["b"].municipality,
            "Functioneel beheer is belegd bij de afdelingen.",
        )
        .await;
        let before = answer.data()["addImplementationUpdate"]["implementationUpdates"].clone();
        assert_eq!(list(&before).len(), 1);
        advance(&flow, "2020-03-05T10:00:00+01:00").await;
        let answer = add_update(
            &flow,
            "college_b",
            sixth,
            &bodies["b"].municipality,
            "Gebruikersoverleg per kwartaal ingesteld.",
        )
        .await;
        let updates =
            list(&answer.data()["addImplementationUpdate"]["implementationUpdates"]).clone();
        assert_eq!(updates.len(), 2);
        assert_eq!(updates[0], before[0], "an update is never rewritten");
        assert_eq!(
            updates[1]["text"],
            "Gebruikersoverleg per kwartaal ingesteld."
        );
        assert_eq!(updates[1]["author"]["name"], "college_b");
        assert_eq!(updates[1]["municipality"]["name"], "Bloemendaal");
        assert_instant(&updates[1]["at"], "2020-03-05T10:00:00+01:00");

        // Closing: both chairs approve.
        assert_eq!(approve_as(&flow, &id, &["chair_b"]).await, "FOLLOW_UP");
        let anonymous = full(&flow, ANONYMOUS, &id).await;
        assert_eq!(
            anonymous["approvals"],
            json!([]),
            "approvals are not public"
        );
        assert_eq!(
            list(&full(&flow, "chair_b", &id).await["approvals"]).len(),
            1
        );
        assert_eq!(approve_as(&flow, &id, &["chair_h"]).await, "CLOSED");
        let closed = full(&flow, "chair_b", &id).await;
        assert_eq!(closed["phase"], "CLOSED");
        assert_eq!(
            submissions_snapshot(&closed),
            submissions_snapshot(&team),
            "the bundles never change"
        );
        record_decision(
            &flow,
            "griffier_b",
            first,
            &bodies["b"].council,
            "AMENDED",
            None,
        )
        .await
        .expect_code("CONFLICT");
        let public = full(&flow, ANONYMOUS, &id).await;
        assert_eq!(public["phase"], "CLOSED");
        assert_eq!(visible_version_ids(&public), bundle);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_late_response_filed_in_the_epilogue_voids_the_epilogue_approvals() {
    for_each_backend(|db| async move {
        let server = start_at(&db, "2019-03-21T09:00:00+01:00").await;
        let mut org = org(&server).await;
        long_sessions(
            &server,
            &mut org,
            &[
                "admin",
                "chair_b",
                "chair_h",
                "member_b",
                "member_h",
                "secretary_b",
                "secretary_h",
                "college_b",
                "college_h",
            ],
        )
        .await;
        let flow = Flow::new(&server, &org);
        let bodies = bodies(&flow).await;
        let id = flow.investigation_in(Phase::AdministrativeRebuttal).await;
        let seen = full(&flow, "chair_b", &id).await;
        assert_eq!(list(&seen["deadlines"]).len(), 2);
        for deadline in list(&seen["deadlines"]) {
            assert_instant(&deadline["dueAt"], "2019-04-11T23:59:59+02:00");
        }

        // The deadline passes; moving the clock runs the scheduler, which marks it MISSED.
        advance(&flow, "2019-04-12T10:00:00+02:00").await;
        let seen = full(&flow, "chair_b", &id).await;
        assert!(
            list(&seen["deadlines"])
                .iter()
                .all(|d| d["status"] == "MISSED"),
            "{}",
            seen["deadlines"]
        );
        assert_eq!(
            approve_as(&flow, &id, &["chair_b", "chair_h"]).await,
            "EPILOGUE"
        );
        flow.submit_ok(
            "member_b",
            &id,
            DocumentKind::Epilogue,
            "# Nawoord\n\nDe colleges hebben niet gereageerd.",
        )
        .await;
        assert_eq!(approve_as(&flow, &id, &["chair_b"]).await, "EPILOGUE");
        assert_eq!(
            names(
                &Value::Array(
                    list(&full(&flow, "chair_b", &id).await["approvals"])
                        .iter()
                        .map(|a| a["commission"].clone())
                        .collect()
                ),
                "name"
            ),
            ["Rekenkamercommissie Bloemendaal"]
        );

        // Three days later Bloemendaal's college still responds.
        advance(&flow, "2019-04-15T10:00:00+02:00").await;
        let filed = file_response(
            &flow,
            "college_b",
            &id,
            &[&bodies["b"].college],
            "# Reactie van het college van Bloemendaal\n\nExcuses voor de late reactie.",
            json!([]),
        )
        .await;
        let response = filed.data()["fileResponse"].clone();
        assert_eq!(response["late"], true, "filed after the deadline");
        assert_eq!(response["counted"], true);
        let seen = full(&flow, "chair_b", &id).await;
        assert_eq!(seen["phase"], "EPILOGUE");
        assert_eq!(
            seen["approvals"],
            json!([]),
            "the response is part of the EPILOGUE gate's content: its approvals are void"
        );
        assert!(
            list(&seen["deadlines"])
                .iter()
                .all(|d| d["status"] == "MISSED"),
            "the deadline stays MISSED: {}",
            seen["deadlines"]
        );
        assert_eq!(list(&seen["responses"]).len(), 1);
        assert_eq!(seen["responses"][0]["late"], true);
        let actions: Vec<String> = flow
            .audit_actions("chair_b", &id)
            .await
            .into_iter()
            .map(|(action, _)| action)
            .collect();
        let filed_at = actions.iter().rposition(|a| a == "response.filed").unwrap();
        assert_eq!(
            actions[filed_at..]
                .iter()
                .filter(|a| *a == "gate.approvals_voided")
                .count(),
            1,
            "{actions:?}"
        );
        assert!(!actions[filed_at..].contains(&"deadline.met".to_string()));

        // The epilogue must now answer the response before the gate can pass.
        let early = flow.approve("chair_h", &id).await;
        early.expect_code("CONFLICT");
        assert!(early.message().contains("EPILOGUE"), "{}", early.message());
        flow.submit_ok(
            "member_b",
            &id,
            DocumentKind::Epilogue,
            "# Nawoord\n\nDe commissies nemen kennis van de late reactie van Bloemendaal.",
        )
        .await;
        assert_eq!(
            approve_as(&flow, &id, &["chair_b", "chair_h"]).await,
            "COUNCIL_SUBMISSION"
        );
        // Once the EPILOGUE gate has passed, no response is accepted any more.
        file_response(
            &flow,
            "college_h",
            &id,
            &[&bodies["h"].college],
            "# Reactie van het college van Heemstede\n\nTe laat.",
            json!([]),
        )
        .await
        .expect_code("CONFLICT");
        assert_eq!(
            approve_as(&flow, &id, &["chair_b", "chair_h"]).await,
            "FOLLOW_UP"
        );
        let seen = full(&flow, "chair_b", &id).await;
        assert_eq!(list(&seen["responses"]).len(), 1);
        let bundle = bundle_ids(&seen["submissions"][0]);
        assert!(
            bundle.contains(&id_of(&response["version"])),
            "the late response is in the bundle"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bundles_never_change_after_submission() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let bodies = bodies(&flow).await;
        let id = flow.investigation_in(Phase::AdministrativeRebuttal).await;
        for (who, key) in [("college_b", "b"), ("college_h", "h")] {
            file_response(
                &flow,
                who,
                &id,
                &[&bodies[key].college],
                "# Reactie\n\nAkkoord.",
                json!([]),
            )
            .await
            .data();
        }
        assert_eq!(
            approve_as(&flow, &id, &["chair_b", "chair_h"]).await,
            "EPILOGUE"
        );
        flow.submit_ok("member_h", &id, DocumentKind::Epilogue, "# Nawoord")
            .await;
        flow.submit_ok("secretary_b", &id, DocumentKind::CoverLetter, "# Brief v1")
            .await;
        flow.submit_ok("secretary_b", &id, DocumentKind::Annex, "# Bijlage v1")
            .await;
        assert_eq!(
            approve_as(&flow, &id, &["chair_b", "chair_h"]).await,
            "COUNCIL_SUBMISSION"
        );
        // A later cover letter before the last signature voids the signature given, and is
        // what the councils get.
        assert_eq!(
            approve_as(&flow, &id, &["chair_b"]).await,
            "COUNCIL_SUBMISSION"
        );
        flow.submit_ok("secretary_b", &id, DocumentKind::CoverLetter, "# Brief v2")
            .await;
        flow.submit_ok("secretary_b", &id, DocumentKind::Annex, "# Bijlage v2")
            .await;
        assert_eq!(full(&flow, "chair_b", &id).await["approvals"], json!([]));
        // Both chairs sign at the same instant: one of them is the last, and the councils
        // get one bundle each.
        let (first, second) =
            futures::join!(flow.approve("chair_h", &id), flow.approve("chair_b", &id));
        first.data();
        second.data();
        let submitted = full(&flow, "chair_b", &id).await;
        assert_eq!(submitted["phase"], "FOLLOW_UP");
        assert_eq!(flow.count_events(&id, "submission.submitted").await, 1);
        let snapshot = submissions_snapshot(&submitted);
        assert_eq!(list(&snapshot).len(), 2);
        let kinds = kinds_by_version(&submitted);
        let cover = bundle_ids(&snapshot[0])
            .into_iter()
            .find(|v| kinds[v].0 == "COVER_LETTER")
            .expect("a cover letter in the bundle");
        assert_eq!(
            documents_of(&submitted, DocumentKind::CoverLetter)[0]["versions"][1]["id"],
            json!(cover),
            "the bundle holds the cover letter's version 2"
        );
        let mut zips = Vec::new();
        for submission in list(&snapshot) {
            zips.push(check_bundle(&flow, submission).await);
        }
        let documents = submitted["documents"].clone();
        let unchanged = |label: &'static str| {
            let flow = &flow;
            let id = &id;
            let snapshot = &snapshot;
            let zips = &zips;
            let documents = &documents;
            async move {
                let seen = full(flow, "chair_b", id).await;
                assert_eq!(&submissions_snapshot(&seen), snapshot, "after {label}");
                assert_eq!(&seen["documents"], documents, "after {label}");
                for (submission, files) in list(snapshot).iter().zip(zips) {
                    assert_eq!(
                        &check_bundle(flow, submission).await,
                        files,
                        "after {label}"
                    );
                }
            }
        };

        // No document can be written any more.
        for (who, kind, title) in [
            ("secretary_b", "COVER_LETTER", None),
            ("secretary_b", "ANNEX", Some("Bijlage A")),
            ("secretary_b", "ANNEX", Some("Bijlage Z")),
            ("member_h", "EPILOGUE", None),
            ("member_h", "CONCLUSIONS", None),
            ("member_h", "RESEARCH_REPORT", None),
            ("member_b", "PROPOSAL", None),
        ] {
            let answer = flow
                .submit_input(
                    who,
                    &id,
                    json!({ "kind": kind, "title": title, "content": "# Later" }),
                )
                .await;
            answer.expect_code("CONFLICT");
        }
        file_response(
            &flow,
            "college_b",
            &id,
            &[&bodies["b"].college],
            "# Nog een reactie",
            json!([]),
        )
        .await
        .expect_code("CONFLICT");
        let recommendation = id_of(&submitted["recommendations"][0]);
        flow.add_recommendation("member_b", &id, "Nog een aanbeveling.")
            .await
            .expect_code("CONFLICT");
        flow.set_rebuttal_terms("chair_b", &id, "JOINT")
            .await
            .expect_code("CONFLICT");
        flow.suspend("chair_b", &id).await.expect_code("CONFLICT");
        unchanged("refused writes").await;

        // What may still change leaves the bundles alone; nor does it void a closing
        // approval (the FOLLOW_UP gate has no content).
        assert_eq!(approve_as(&flow, &id, &["chair_b"]).await, "FOLLOW_UP");
        record_decision(
            &flow,
            "griffier_b",
            &recommendation,
            &bodies["b"].council,
            "ADOPTED",
            None,
        )
        .await
        .data();
        add_update(
            &flow,
            "college_h",
            &recommendation,
            &bodies["h"].municipality,
            "In uitvoering.",
        )
        .await
        .data();
        flow.assign_rapporteur("chair_h", &id, "h", "outsider")
            .await
            .data();
        assert_eq!(
            list(&full(&flow, "chair_b", &id).await["approvals"]).len(),
            1,
            "closing is not voided"
        );
        unchanged("a council decision, an implementation update and a rapporteur").await;
        flow.approve("chair_b", &id).await.expect_code("CONFLICT");
        flow.request_changes("chair_h", &id, "Eerst de raadsbehandeling afwachten")
            .await
            .data();
        assert_eq!(approve_as(&flow, &id, &["chair_b"]).await, "FOLLOW_UP");
        unchanged("approving closing again").await;
        assert_eq!(approve_as(&flow, &id, &["chair_h"]).await, "CLOSED");
        flow.approve("chair_b", &id).await.expect_code("CONFLICT");
        flow.submit(
            "secretary_b",
            &id,
            DocumentKind::CoverLetter,
            "# Na sluiting",
        )
        .await
        .expect_code("CONFLICT");
        flow.cancel("chair_b", &id).await.expect_code("CONFLICT");
        record_decision(
            &flow,
            "griffier_b",
            &recommendation,
            &bodies["b"].council,
            "REJECTED",
            None,
        )
        .await
        .expect_code("CONFLICT");
        unchanged("closing").await;
        server.stop().await;
    })
    .await;
}

/// Asserts that an anonymous client (and a logged-in user without any part in it) finds no
/// trace of the investigation, and that no version of it downloads.
async fn assert_hidden_from_the_public(flow: &Flow<'_>, id: &str) {
    let team = full(flow, "chair_b", id).await;
    assert_eq!(team["submissions"], json!([]));
    assert!(team["publishedAt"].is_null());
    for who in [ANONYMOUS, "outsider"] {
        assert!(
            full(flow, who, id).await.is_null(),
            "{who} sees it in {}",
            team["phase"]
        );
        let published = flow.gql(who, PUBLISHED, json!({})).await;
        let published = &published.data()["publishedInvestigations"];
        assert!(
            list(&published["edges"])
                .iter()
                .all(|e| e["node"]["id"] != json!(id))
        );
        let listed = flow
            .gql(
                who,
                "{ investigations(first: 50) { totalCount edges { node { id } } } }",
                json!({}),
            )
            .await;
        assert!(
            list(&listed.data()["investigations"]["edges"])
                .iter()
                .all(|e| e["node"]["id"] != json!(id))
        );
        for version in kinds_by_version(&team).keys() {
            let response = flow.get(who, &format!("/files/versions/{version}")).await;
            assert_eq!(
                http_error_code(response).await,
                (404, Some("NOT_FOUND".to_string())),
                "{who} in {}",
                team["phase"]
            );
        }
    }
}

#[tokio::test]
async fn the_public_sees_nothing_before_publication_and_only_the_bundle_after() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let bodies = bodies(&flow).await;
        let anonymous = ANONYMOUS;
        for path in [
            format!("/files/bundles/{}", uuid::Uuid::new_v4()),
            "/files/bundles/not-a-submission".to_string(),
        ] {
            assert_eq!(
                http_error_code(flow.get(anonymous, &path).await).await,
                (404, Some("NOT_FOUND".to_string())),
                "{path}"
            );
        }
        let other = flow.investigation_in(Phase::Research).await;
        let id = flow.investigation_in(Phase::Proposal).await;
        assert_hidden_from_the_public(&flow, &id).await;
        flow.approve_all(&id).await;
        flow.complete_gate(&id, Phase::Research).await;
        assert_hidden_from_the_public(&flow, &id).await;
        flow.approve_all(&id).await;
        for (who, key) in [("college_b", "b"), ("college_h", "h")] {
            file_response(
                &flow,
                who,
                &id,
                &[&bodies[key].college],
                "# Reactie",
                json!([]),
            )
            .await
            .data();
        }
        assert_hidden_from_the_public(&flow, &id).await;
        flow.approve_all(&id).await;
        flow.submit_ok("member_h", &id, DocumentKind::Epilogue, "# Nawoord")
            .await;
        flow.submit_ok("secretary_b", &id, DocumentKind::CoverLetter, "# Brief v1")
            .await;
        assert_hidden_from_the_public(&flow, &id).await;
        flow.approve_all(&id).await;
        flow.submit_ok("secretary_b", &id, DocumentKind::CoverLetter, "# Brief v2")
            .await;
        assert_eq!(
            approve_as(&flow, &id, &["chair_b"]).await,
            "COUNCIL_SUBMISSION"
        );
        assert_hidden_from_the_public(&flow, &id).await;
        assert_eq!(approve_as(&flow, &id, &["chair_h"]).await, "FOLLOW_UP");

        // Published: the bundle, and nothing else.
        let team = full(&flow, "chair_b", &id).await;
        let bundle: BTreeSet<String> = bundle_ids(&team["submissions"][0]).into_iter().collect();
        assert_eq!(
            bundle.len(),
            6,
            "cover letter, conclusions, two responses, epilogue, report"
        );
        let published = flow.gql(anonymous, PUBLISHED, json!({})).await;
        let published = &published.data()["publishedInvestigations"];
        assert_eq!(published["totalCount"], 1);
        assert_eq!(published["edges"][0]["node"]["id"], json!(id));
        for who in [anonymous, "outsider", "chair_x"] {
            let seen = full(&flow, who, &id).await;
            assert_eq!(seen["id"], json!(id), "{who}");
            assert_eq!(visible_version_ids(&seen), bundle, "{who}");
            assert_eq!(seen["approvals"], json!([]));
            assert_eq!(seen["researchQuestions"], json!([]));
            assert_eq!(seen["recommendations"], json!([]));
            assert_eq!(seen["deadlines"], json!([]));
            for (version, (kind, _)) in kinds_by_version(&team) {
                let response = flow.get(who, &format!("/files/versions/{version}")).await;
                if bundle.contains(&version) {
                    assert_eq!(response.status().as_u16(), 200, "{who} {kind}");
                } else {
                    assert_eq!(
                        http_error_code(response).await,
                        (404, Some("NOT_FOUND".to_string())),
                        "{who} downloads an unpublished {kind} version"
                    );
                }
            }
            // The other investigation stays hidden.
            assert!(full(&flow, who, &other).await.is_null(), "{who}");
        }
        let mut zips = Vec::new();
        for submission in list(&team["submissions"]) {
            zips.push(check_bundle(&flow, submission).await);
        }
        // The text of a bundle version reads without a token too.
        let conclusions = flow
            .gql(
                anonymous,
                "query($id: ID!) { investigation(id: $id) {
                    documents { kind versions { content } } } }",
                json!({ "id": id }),
            )
            .await;
        let conclusions = list(&conclusions.data()["investigation"]["documents"])
            .iter()
            .find(|d| d["kind"] == "CONCLUSIONS")
            .expect("the conclusions are public")
            .clone();
        assert_eq!(
            conclusions["versions"][0]["content"],
            "# Conclusies\n\nHet beleid werkt deels."
        );

        // Publication cannot be undone: a cancelled investigation keeps its public bundle.
        // (Cancel is allowed in any phase before CLOSED, see ARCHITECTURE.)
        let cancelled = flow.cancel("chair_h", &id).await;
        assert_eq!(
            cancelled.data()["cancelInvestigation"]["phase"],
            "CANCELLED"
        );
        let after = full(&flow, anonymous, &id).await;
        assert_eq!(visible_version_ids(&after), bundle);
        assert_eq!(submissions_snapshot(&after), submissions_snapshot(&team));
        for (submission, files) in list(&team["submissions"]).iter().zip(&zips) {
            assert_eq!(&check_bundle(&flow, submission).await, files);
        }
        assert_eq!(
            http_error_code(
                flow.get(
                    anonymous,
                    &format!("/files/bundles/{}", uuid::Uuid::new_v4())
                )
                .await
            )
            .await,
            (404, Some("NOT_FOUND".to_string()))
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn council_decisions_are_the_griffier_of_that_council_s_municipality_only() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let bodies = bodies(&flow).await;
        let id = flow.investigation_in(Phase::AdministrativeRebuttal).await;
        let recommendation = id_of(&full(&flow, "chair_b", &id).await["recommendations"][0]);
        let (b, h, x) = (&bodies["b"], &bodies["h"], &bodies["x"]);

        // Before the submission: not yet (CONFLICT, naming the phase).
        let early = record_decision(
            &flow,
            "griffier_b",
            &recommendation,
            &b.council,
            "ADOPTED",
            None,
        )
        .await;
        early.expect_code("CONFLICT");
        assert!(early.message().contains("FOLLOW_UP"), "{}", early.message());
        add_update(
            &flow,
            "college_b",
            &recommendation,
            &b.municipality,
            "Al gestart.",
        )
        .await
        .expect_code("CONFLICT");
        publish_joint(&flow, &id, &bodies).await;

        // The griffier of Heemstede records for Heemstede's council only.
        record_decision(
            &flow,
            "griffier_h",
            &recommendation,
            &b.council,
            "REJECTED",
            None,
        )
        .await
        .expect_code("FORBIDDEN");
        // Neither does any other role of the investigation record council decisions.
        for who in [
            "college_b",
            "civil_b",
            "council_b",
            "chair_b",
            "member_b",
            "external",
        ] {
            record_decision(&flow, who, &recommendation, &b.council, "ADOPTED", None)
                .await
                .expect_code("FORBIDDEN");
        }
        // Outsiders see the published bundle, but not its recommendations.
        for who in ["chair_x", "college_x", "outsider"] {
            let seen = full(&flow, who, &id).await;
            assert_eq!(seen["recommendations"], json!([]), "{who}");
            record_decision(&flow, who, &recommendation, &b.council, "ADOPTED", None)
                .await
                .expect_code("NOT_FOUND");
            add_update(&flow, who, &recommendation, &b.municipality, "Klaar.")
                .await
                .expect_code("NOT_FOUND");
        }
        record_decision(
            &flow,
            ANONYMOUS,
            &recommendation,
            &b.council,
            "ADOPTED",
            None,
        )
        .await
        .expect_code("UNAUTHENTICATED");
        // A council the investigation did not go to, and a recommendation that does not exist.
        record_decision(
            &flow,
            "griffier_b",
            &recommendation,
            &x.council,
            "ADOPTED",
            None,
        )
        .await
        .expect_code("BAD_USER_INPUT");
        // A college is no council.
        record_decision(
            &flow,
            "griffier_b",
            &recommendation,
            &b.college,
            "ADOPTED",
            None,
        )
        .await
        .expect_code("BAD_USER_INPUT");
        add_update(
            &flow,
            "college_b",
            &recommendation,
            &x.municipality,
            "Klaar.",
        )
        .await
        .expect_code("BAD_USER_INPUT");
        record_decision(
            &flow,
            "griffier_b",
            &uuid::Uuid::now_v7().to_string(),
            &b.council,
            "ADOPTED",
            None,
        )
        .await
        .expect_code("NOT_FOUND");

        let answer = record_decision(
            &flow,
            "griffier_h",
            &recommendation,
            &h.council,
            "NOTED",
            None,
        )
        .await;
        let decisions = &answer.data()["recordCouncilDecision"]["councilDecisions"];
        assert_eq!(list(decisions).len(), 1);
        assert_eq!(decisions[0]["council"]["name"], "Gemeenteraad Heemstede");
        assert_eq!(decisions[0]["decision"], "NOTED");
        let answer = record_decision(
            &flow,
            "griffier_b",
            &recommendation,
            &b.council,
            "ADOPTED",
            None,
        )
        .await;
        assert_eq!(
            list(&answer.data()["recordCouncilDecision"]["councilDecisions"]).len(),
            2
        );

        // Implementation updates: a college contact of that municipality.
        add_update(
            &flow,
            "college_h",
            &recommendation,
            &b.municipality,
            "Klaar.",
        )
        .await
        .expect_code("FORBIDDEN");
        add_update(
            &flow,
            "griffier_b",
            &recommendation,
            &b.municipality,
            "Klaar.",
        )
        .await
        .expect_code("FORBIDDEN");
        let answer = add_update(
            &flow,
            "college_b",
            &recommendation,
            &b.municipality,
            "Klaar.",
        )
        .await;
        let updates = &answer.data()["addImplementationUpdate"]["implementationUpdates"];
        assert_eq!(list(updates).len(), 1);
        assert_eq!(updates[0]["municipality"]["name"], "Bloemendaal");
        server.stop().await;
    })
    .await;
}

/// One page of the register as `who`.
async fn register_page(
    flow: &Flow<'_>,
    who: &str,
    first: i64,
    after: Option<&str>,
    filters: Value,
) -> Value {
    let mut variables = json!({ "first": first, "after": after });
    if let Value::Object(filters) = filters {
        variables
            .as_object_mut()
            .expect("an object")
            .extend(filters);
    }
    flow.gql(who, REGISTER, variables).await.data()["recommendationRegister"].clone()
}

/// Every entry of the register as `who` (one page of 100): (recommendation id, municipality
/// name).
async fn register_keys(flow: &Flow<'_>, who: &str, filters: Value) -> Vec<(String, String)> {
    let page = register_page(flow, who, 100, None, filters).await;
    assert_eq!(page["pageInfo"]["hasNextPage"], false);
    let keys: Vec<(String, String)> = list(&page["edges"])
        .iter()
        .map(|e| {
            (
                id_of(&e["node"]["recommendation"]),
                text(&e["node"]["municipality"]["name"]),
            )
        })
        .collect();
    assert_eq!(page["totalCount"], json!(keys.len()));
    keys
}

#[tokio::test]
async fn the_recommendations_register_lists_every_recommendation_per_municipality() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let bodies = bodies(&flow).await;
        let (b, h) = (&bodies["b"], &bodies["h"]);

        // A: joint, three recommendations; B: Bloemendaal alone, two; C: joint, unpublished.
        let (a, r) = in_rebuttal(
            &flow,
            &["b", "h"],
            "Gezamenlijk onderzoek",
            &[
                ("Stuur op de kosten.", "COUNCIL"),
                ("Rapporteer elk kwartaal.", "COLLEGE"),
                ("Harmoniseer de processen.", "ADMINISTRATION"),
            ],
        )
        .await;
        let (bl, s) = in_rebuttal(
            &flow,
            &["b"],
            "Onderzoek in Bloemendaal",
            &[
                ("Stel kaders vast.", "COUNCIL"),
                ("Evalueer zaakgericht werken.", "ADMINISTRATION"),
            ],
        )
        .await;
        let (_c, _) = in_rebuttal(
            &flow,
            &["b", "h"],
            "Nog niet gepubliceerd",
            &[("Nog geheim.", "COUNCIL")],
        )
        .await;
        let position =
            |rec: &str, position: &str| json!({ "recommendationId": rec, "position": position });
        publish(
            &flow,
            &a,
            &["chair_b", "chair_h"],
            &[
                (
                    "college_b",
                    &b.college,
                    json!([
                        position(&r[0], "AGREES"),
                        position(&r[1], "PARTLY"),
                        position(&r[2], "AGREES")
                    ]),
                ),
                (
                    "college_h",
                    &h.college,
                    json!([position(&r[0], "DISAGREES"), position(&r[1], "AGREES")]),
                ),
            ],
            true,
        )
        .await;
        publish(
            &flow,
            &bl,
            &["chair_b"],
            &[(
                "college_b",
                &b.college,
                json!([position(&s[0], "NO_POSITION")]),
            )],
            false,
        )
        .await;
        // Without a nawoord and a cover letter (both optional) the bundle is the rest, in
        // order.
        let seen = full(&flow, "chair_b", &bl).await;
        let kinds = kinds_by_version(&seen);
        let submissions = list(&seen["submissions"]);
        assert_eq!(submissions.len(), 1, "Bloemendaal's council alone");
        assert_eq!(
            submissions[0]["council"]["name"],
            "Gemeenteraad Bloemendaal"
        );
        let order: Vec<String> = bundle_ids(&submissions[0])
            .iter()
            .map(|v| kinds[v].0.clone())
            .collect();
        assert_eq!(
            order,
            ["CONCLUSIONS", "ADMINISTRATIVE_RESPONSE", "RESEARCH_REPORT"]
        );
        check_bundle(&flow, &submissions[0]).await;
        for (who, rec, council, decision) in [
            ("griffier_b", &r[0], &b.council, "ADOPTED"),
            ("griffier_h", &r[0], &h.council, "REJECTED"),
            ("griffier_b", &r[1], &b.council, "ADOPTED"),
            ("griffier_b", &r[1], &b.council, "REJECTED"),
            ("griffier_b", &s[0], &b.council, "NOTED"),
        ] {
            record_decision(&flow, who, rec, council, decision, None)
                .await
                .data();
        }
        add_update(
            &flow,
            "college_b",
            &r[2],
            &b.municipality,
            "Programma gestart.",
        )
        .await
        .data();

        // Newest first: B's recommendations, then A's; per recommendation each municipality.
        let entry = |rec: &String, m: &str| (rec.clone(), m.to_string());
        let everything = vec![
            entry(&s[1], "Bloemendaal"),
            entry(&s[0], "Bloemendaal"),
            entry(&r[2], "Bloemendaal"),
            entry(&r[2], "Heemstede"),
            entry(&r[1], "Bloemendaal"),
            entry(&r[1], "Heemstede"),
            entry(&r[0], "Bloemendaal"),
            entry(&r[0], "Heemstede"),
        ];
        assert_eq!(register_keys(&flow, "chair_b", json!({})).await, everything);
        assert_eq!(
            register_keys(&flow, "griffier_b", json!({})).await,
            everything
        );
        let only_a = everything[2..].to_vec();
        assert_eq!(register_keys(&flow, "chair_h", json!({})).await, only_a);
        assert_eq!(register_keys(&flow, "college_h", json!({})).await, only_a);
        assert_eq!(register_keys(&flow, "griffier_h", json!({})).await, only_a);
        for who in ["chair_x", "college_x", "outsider", "admin"] {
            assert_eq!(register_keys(&flow, who, json!({})).await, [], "{who}");
        }
        flow.gql(ANONYMOUS, REGISTER, json!({}))
            .await
            .expect_code("UNAUTHENTICATED");

        // Pages of three, and a cursor resumes right after its entry.
        let mut paged = Vec::new();
        let mut cursors = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = register_page(&flow, "chair_b", 3, after.as_deref(), json!({})).await;
            assert_eq!(page["totalCount"], 8);
            for edge in list(&page["edges"]) {
                paged.push((
                    id_of(&edge["node"]["recommendation"]),
                    text(&edge["node"]["municipality"]["name"]),
                ));
                cursors.push(text(&edge["cursor"]));
            }
            assert_eq!(page["pageInfo"]["endCursor"], json!(cursors.last()));
            if page["pageInfo"]["hasNextPage"] == false {
                break;
            }
            after = cursors.last().cloned();
        }
        assert_eq!(paged, everything);
        for (index, cursor) in cursors.iter().enumerate() {
            let page = register_page(&flow, "chair_b", 2, Some(cursor), json!({})).await;
            let keys: Vec<(String, String)> = list(&page["edges"])
                .iter()
                .map(|e| {
                    (
                        id_of(&e["node"]["recommendation"]),
                        text(&e["node"]["municipality"]["name"]),
                    )
                })
                .collect();
            let rest = &everything[index + 1..];
            assert_eq!(keys, rest[..rest.len().min(2)], "after entry {index}");
            assert_eq!(page["pageInfo"]["hasNextPage"], json!(rest.len() > 2));
        }
        let bad = flow
            .gql("chair_b", REGISTER, json!({ "after": "bm9uc2Vuc2U" }))
            .await;
        bad.expect_code("BAD_USER_INPUT");

        // Filters: addressee, current decision, municipality, and combined.
        let pick = |indices: &[usize]| -> Vec<(String, String)> {
            indices.iter().map(|i| everything[*i].clone()).collect()
        };
        let cases = [
            (json!({ "addressee": "COUNCIL" }), pick(&[1, 6, 7])),
            (json!({ "addressee": "COLLEGE" }), pick(&[4, 5])),
            (json!({ "addressee": "ADMINISTRATION" }), pick(&[0, 2, 3])),
            (json!({ "decision": "ADOPTED" }), pick(&[6])),
            (json!({ "decision": "REJECTED" }), pick(&[4, 7])),
            (json!({ "decision": "NOTED" }), pick(&[1])),
            (json!({ "decision": "AMENDED" }), pick(&[])),
            (json!({ "municipality": h.municipality }), pick(&[3, 5, 7])),
            (
                json!({ "municipality": b.municipality }),
                pick(&[0, 1, 2, 4, 6]),
            ),
            (
                json!({ "addressee": "COUNCIL", "municipality": h.municipality }),
                pick(&[7]),
            ),
            (
                json!({ "decision": "REJECTED", "municipality": b.municipality }),
                pick(&[4]),
            ),
        ];
        for (filters, expected) in cases {
            assert_eq!(
                register_keys(&flow, "chair_b", filters.clone()).await,
                expected,
                "{filters}"
            );
        }

        // Each entry carries its municipality's college position, council decision and
        // implementation reports.
        for who in ["chair_b", "griffier_b"] {
            let page = register_page(&flow, who, 100, None, json!({})).await;
            let entries: Vec<(Value, Value, Value)> = list(&page["edges"])
                .iter()
                .map(|e| {
                    (
                        e["node"]["collegePosition"].clone(),
                        e["node"]["councilDecision"]["decision"].clone(),
                        e["node"]["implementationUpdates"].clone(),
                    )
                })
                .collect();
            assert_eq!(
                entries,
                [
                    (json!(null), json!(null), json!([])),
                    (json!("NO_POSITION"), json!("NOTED"), json!([])),
                    (
                        json!("AGREES"),
                        json!(null),
                        json!([{ "text": "Programma gestart." }])
                    ),
                    (json!(null), json!(null), json!([])),
                    (json!("PARTLY"), json!("REJECTED"), json!([])),
                    (json!("AGREES"), json!(null), json!([])),
                    (json!("AGREES"), json!("ADOPTED"), json!([])),
                    (json!("DISAGREES"), json!("REJECTED"), json!([])),
                ],
                "{who}"
            );
            assert_eq!(page["edges"][0]["node"]["investigation"]["id"], json!(bl));
            assert_eq!(
                page["edges"][0]["node"]["recommendation"]["addressee"],
                "ADMINISTRATION"
            );
        }
        server.stop().await;
    })
    .await;
}

//! Documents and their versions: Markdown and uploads, fingerprints, byte-exact downloads,
//! optimistic concurrency, annexes, and who may write which kind when.

use crate::support::{Flow, SUBMIT, documents_of, http_error_code, version_numbers};
use rkflow_domain::{DocumentKind, Phase};
use rkflow_e2e::{Gql, TestServer, for_each_backend, org};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A small but well-formed PDF.
fn pdf(marker: &str) -> Vec<u8> {
    format!(
        "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
         2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n% {marker}\n\
         trailer << /Root 1 0 R >>\n%%EOF\n"
    )
    .into_bytes()
}

/// A PDF of exactly `size` bytes.
fn pdf_of_size(size: usize) -> Vec<u8> {
    let mut bytes = b"%PDF-1.7\n".to_vec();
    bytes.resize(size, b'x');
    bytes
}

/// `submitDocumentVersion` as a GraphQL multipart request (operations, map, file part "0").
async fn upload(
    flow: &Flow<'_>,
    who: &str,
    id: &str,
    mut input: Value,
    file_name: &str,
    mime: &str,
    bytes: Vec<u8>,
) -> Gql {
    input["investigationId"] = json!(id);
    input["file"] = Value::Null;
    let operations = json!({ "query": SUBMIT, "variables": { "input": input } });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.input.file"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(bytes)
                .file_name(file_name.to_string())
                .mime_str(mime)
                .expect("a valid mime type"),
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

/// Everything stored for an investigation, as its chair sees it: the documents and the audit
/// events that record changes (reads, such as this one, are audited too and left out).
async fn stored(flow: &Flow<'_>, id: &str) -> (Value, usize) {
    let documents = flow.investigation("chair_b", id).await["documents"].clone();
    let events = flow
        .audit_actions("chair_b", id)
        .await
        .iter()
        .filter(|(action, _)| action != "document.read")
        .count();
    (documents, events)
}

#[tokio::test]
async fn markdown_versions_carry_their_fingerprint_and_text() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.propose_joint("Wmo-voorzieningen").await;
        let text = "# Onderzoeksvoorstel\n\nDoeltreffendheid van één ‘gemeenschappelijke’ aanpak — € 1,2 mln.\n";
        let version = flow
            .submit_input(
                "secretary_h",
                &id,
                json!({ "kind": "PROPOSAL", "content": text, "note": "eerste opzet", "title": "Voorstel Wmo" }),
            )
            .await
            .data()["submitDocumentVersion"]
            .clone();
        assert_eq!(version["number"], 1);
        assert_eq!(version["sha256"], sha256_hex(text.as_bytes()));
        assert_eq!(version["sizeBytes"], text.len());
        assert_ne!(text.len(), text.chars().count(), "sizes are bytes, not characters");
        assert_eq!(version["mediaType"], "text/markdown; charset=utf-8");
        assert_eq!(version["content"], text);
        assert_eq!(version["author"]["name"], "secretary_h");
        assert_eq!(version["note"], "eerste opzet");

        let response = flow
            .get("chair_b", version["downloadUrl"].as_str().expect("a URL"))
            .await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/markdown; charset=utf-8"
        );
        assert_eq!(
            response.headers()["x-content-sha256"],
            sha256_hex(text.as_bytes()).as_str()
        );
        assert_eq!(response.bytes().await.expect("bytes").as_ref(), text.as_bytes());

        // baseVersion: the latest is accepted, a stale or future one is CONFLICT.
        let second = flow
            .submit_input(
                "member_b",
                &id,
                json!({ "kind": "PROPOSAL", "content": "# Tweede", "baseVersion": 1 }),
            )
            .await;
        assert_eq!(second.data()["submitDocumentVersion"]["number"], 2);
        for base in [1, 0, 7] {
            let stale = flow
                .submit_input(
                    "member_h",
                    &id,
                    json!({ "kind": "PROPOSAL", "content": "# Oud", "baseVersion": base }),
                )
                .await;
            stale.expect_code("CONFLICT");
            assert!(
                stale.message().contains("version 2"),
                "the conflict names the latest version: {}",
                stale.message()
            );
        }
        let seen = flow.investigation("chair_h", &id).await;
        assert_eq!(version_numbers(&seen, DocumentKind::Proposal), [1, 2]);
        let document = documents_of(&seen, DocumentKind::Proposal)[0];
        assert_eq!(document["title"], "Voorstel Wmo");
        assert_eq!(document["latestVersion"]["number"], 2);
        assert_eq!(document["versions"][0]["content"], text, "old versions stay as they were");
        assert_eq!(document["versions"][1]["content"], "# Tweede");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_uploaded_pdf_is_served_byte_exact() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.propose_joint("Grondexploitatie").await;
        let bytes = pdf("onderzoeksvoorstel");
        let answer = upload(
            &flow,
            "member_b",
            &id,
            json!({ "kind": "PROPOSAL", "note": "als PDF" }),
            "voorstel.pdf",
            "application/pdf",
            bytes.clone(),
        )
        .await;
        let version = answer.data()["submitDocumentVersion"].clone();
        assert_eq!(version["number"], 1);
        assert_eq!(version["mediaType"], "application/pdf");
        assert_eq!(version["sizeBytes"], bytes.len());
        assert_eq!(version["sha256"], sha256_hex(&bytes));
        assert!(version["content"].is_null(), "no text for a PDF");

        let url = version["downloadUrl"].as_str().expect("a URL").to_string();
        for who in ["member_b", "chair_h", "secretary_h"] {
            let response = flow.get(who, &url).await;
            assert_eq!(response.status().as_u16(), 200);
            assert_eq!(response.headers()["content-type"], "application/pdf");
            let disposition = response.headers()["content-disposition"]
                .to_str()
                .expect("ascii")
                .to_string();
            assert!(disposition.contains("voorstel.pdf"), "{disposition}");
            assert_eq!(
                response.bytes().await.expect("bytes").as_ref(),
                bytes.as_slice()
            );
        }
        for who in ["chair_x", "college_b", "admin", "anonymous"] {
            let (status, code) = http_error_code(flow.get(who, &url).await).await;
            assert_eq!((status, code.as_deref()), (404, Some("NOT_FOUND")), "{who}");
        }

        // A DOCX (recognised by its package header and name) is accepted too.
        let docx = upload(
            &flow,
            "member_b",
            &id,
            json!({ "kind": "PROPOSAL", "baseVersion": 1 }),
            "voorstel.docx",
            "application/octet-stream",
            b"PK\x03\x04 docx body".to_vec(),
        )
        .await;
        assert_eq!(
            docx.data()["submitDocumentVersion"]["mediaType"],
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn only_pdf_docx_and_odt_and_exactly_one_of_content_and_file() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.propose_joint("Parkeerbeleid").await;
        let before = stored(&flow, &id).await;

        let refused = [
            (
                "setup.pdf",
                "application/pdf",
                b"MZ\x90\x00 a program".to_vec(),
            ),
            ("notes.txt", "text/plain", b"plain text".to_vec()),
            (
                "page.html",
                "text/html",
                b"<html><script></script></html>".to_vec(),
            ),
            (
                "archive.zip",
                "application/zip",
                b"PK\x03\x04 just a zip".to_vec(),
            ),
            ("empty.pdf", "application/pdf", Vec::new()),
        ];
        for (name, mime, bytes) in refused {
            let answer = upload(
                &flow,
                "member_b",
                &id,
                json!({ "kind": "PROPOSAL" }),
                name,
                mime,
                bytes,
            )
            .await;
            answer.expect_code("BAD_USER_INPUT");
            assert_eq!(
                answer.body["errors"][0]["extensions"]["field"], "file",
                "{name}: {}",
                answer.body
            );
        }
        // Both a text and a file, or neither.
        upload(
            &flow,
            "member_b",
            &id,
            json!({ "kind": "PROPOSAL", "content": "# En ook tekst" }),
            "voorstel.pdf",
            "application/pdf",
            pdf("both"),
        )
        .await
        .expect_code("BAD_USER_INPUT");
        flow.submit_input("member_b", &id, json!({ "kind": "PROPOSAL" }))
            .await
            .expect_code("BAD_USER_INPUT");
        flow.submit_input(
            "member_b",
            &id,
            json!({ "kind": "PROPOSAL", "content": "  \n" }),
        )
        .await
        .expect_code("BAD_USER_INPUT");
        assert_eq!(stored(&flow, &id).await, before, "nothing was stored");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn uploads_up_to_25_mib_are_accepted_and_larger_ones_refused() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.propose_joint("Sociaal domein").await;
        let before = stored(&flow, &id).await;

        for size in [25 * MIB + 1, 26 * MIB, 30 * MIB] {
            let answer = upload(
                &flow,
                "member_b",
                &id,
                json!({ "kind": "PROPOSAL" }),
                "groot.pdf",
                "application/pdf",
                pdf_of_size(size),
            )
            .await;
            answer.expect_code("BAD_USER_INPUT");
            assert!(
                answer.message().contains("25 MiB"),
                "{size} bytes: the message names the limit: {}",
                answer.message()
            );
        }
        assert_eq!(stored(&flow, &id).await, before, "nothing was stored");

        // Exactly 25 MiB is allowed, and comes back byte-exact.
        let bytes = pdf_of_size(25 * MIB);
        let answer = upload(
            &flow,
            "member_b",
            &id,
            json!({ "kind": "PROPOSAL" }),
            "precies.pdf",
            "application/pdf",
            bytes.clone(),
        )
        .await;
        let version = answer.data()["submitDocumentVersion"].clone();
        assert_eq!(version["sizeBytes"], 25 * MIB);
        let response = flow
            .get("chair_h", version["downloadUrl"].as_str().expect("a URL"))
            .await;
        assert_eq!(response.status().as_u16(), 200);
        let body = response.bytes().await.expect("bytes");
        assert_eq!(body.len(), bytes.len());
        assert_eq!(sha256_hex(&body), sha256_hex(&bytes));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn annexes_are_told_apart_by_title() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.investigation_in(Phase::Research).await;

        let untitled = flow
            .submit_input("member_b", &id, json!({ "kind": "ANNEX", "content": "# Bijlage" }))
            .await;
        untitled.expect_code("BAD_USER_INPUT");
        assert_eq!(untitled.body["errors"][0]["extensions"]["field"], "title");

        let annex = |title: &str, base: Option<i32>, text: &str| {
            let flow = &flow;
            let id = id.clone();
            let input = json!({ "kind": "ANNEX", "title": title, "content": text, "baseVersion": base });
            async move { flow.submit_input("external", &id, input).await }
        };
        assert_eq!(
            annex("Bijlage A: interviews", None, "# A1").await.data()["submitDocumentVersion"]["number"],
            1
        );
        assert_eq!(
            annex("Bijlage B: cijfers", Some(0), "# B1").await.data()["submitDocumentVersion"]["number"],
            1
        );
        assert_eq!(
            annex("Bijlage A: interviews", Some(1), "# A2").await.data()["submitDocumentVersion"]["number"],
            2
        );
        annex("Bijlage B: cijfers", Some(0), "# B-oud")
            .await
            .expect_code("CONFLICT");

        let seen = flow.investigation("chair_h", &id).await;
        let mut annexes: Vec<(String, Vec<String>)> = documents_of(&seen, DocumentKind::Annex)
            .iter()
            .map(|d| {
                (
                    d["title"].as_str().expect("a title").to_string(),
                    d["versions"]
                        .as_array()
                        .expect("versions")
                        .iter()
                        .map(|v| v["content"].as_str().expect("text").to_string())
                        .collect(),
                )
            })
            .collect();
        annexes.sort();
        assert_eq!(
            annexes,
            [
                (
                    "Bijlage A: interviews".to_string(),
                    vec!["# A1".to_string(), "# A2".to_string()]
                ),
                ("Bijlage B: cijfers".to_string(), vec!["# B1".to_string()]),
            ]
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn each_kind_is_written_in_its_phase_by_its_authors() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let proposal = flow.investigation_in(Phase::Proposal).await;
        let research = flow.investigation_in(Phase::Research).await;
        let before = (
            stored(&flow, &proposal).await,
            stored(&flow, &research).await,
        );

        // An author outside the kind's phases: CONFLICT, naming the phases.
        let cases = [
            (&proposal, "member_b", DocumentKind::ResearchReport),
            (&proposal, "chair_h", DocumentKind::Conclusions),
            (&proposal, "external", DocumentKind::Annex),
            (&proposal, "secretary_b", DocumentKind::Epilogue),
            (&proposal, "secretary_b", DocumentKind::CoverLetter),
            (&research, "member_h", DocumentKind::Proposal),
            (&research, "chair_b", DocumentKind::Epilogue),
            (&research, "external", DocumentKind::CoverLetter),
        ];
        for (id, who, kind) in cases {
            let answer = flow.submit(who, id, kind, "# Buiten de fase").await;
            answer.expect_code("CONFLICT");
            assert!(
                answer.message().contains("phase"),
                "{who} {}: {}",
                kind.as_str(),
                answer.message()
            );
        }
        // A role that may never write the kind: FORBIDDEN.
        let cases = [
            (&research, "college_b", DocumentKind::Conclusions),
            (&research, "griffier_h", DocumentKind::ResearchReport),
            (&research, "council_b", DocumentKind::Annex),
            (&research, "civil_h", DocumentKind::ResearchReport),
            (&research, "chair_b", DocumentKind::AdministrativeResponse),
            (&research, "chair_h", DocumentKind::FactualResponse),
            (&research, "college_h", DocumentKind::AdministrativeResponse),
            (&proposal, "chair_b", DocumentKind::AdministrativeResponse),
        ];
        for (id, who, kind) in cases {
            flow.submit(who, id, kind, "# Niet van jou")
                .await
                .expect_code("FORBIDDEN");
        }
        // Before the PROPOSAL gate the municipalities do not see it at all.
        flow.submit("college_b", &proposal, DocumentKind::Proposal, "# ?")
            .await
            .expect_code("NOT_FOUND");
        // A civil servant writes FACTUAL_RESPONSE only during a factual check.
        flow.submit(
            "civil_b",
            &research,
            DocumentKind::FactualResponse,
            "# Reactie",
        )
        .await
        .expect_code("CONFLICT");
        assert_eq!(
            (
                stored(&flow, &proposal).await,
                stored(&flow, &research).await
            ),
            before,
            "nothing was stored"
        );

        // The allowed authors in the right phase.
        for who in ["chair_b", "member_h", "secretary_b", "external"] {
            flow.submit_ok(
                who,
                &research,
                DocumentKind::ResearchReport,
                &format!("# Door {who}"),
            )
            .await;
        }
        let seen = flow.investigation("chair_b", &research).await;
        assert_eq!(
            version_numbers(&seen, DocumentKind::ResearchReport),
            [1, 2, 3, 4]
        );
        let authors: Vec<&str> = documents_of(&seen, DocumentKind::ResearchReport)[0]["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .map(|v| v["author"]["name"].as_str().expect("a name"))
            .collect();
        assert_eq!(authors, ["chair_b", "member_h", "secretary_b", "external"]);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn downloads_answer_404_for_what_the_caller_may_not_see() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.investigation_in(Phase::Research).await;
        let draft = flow
            .submit_ok(
                "member_b",
                &id,
                DocumentKind::ResearchReport,
                "# Vertrouwelijk concept",
            )
            .await;
        let url = draft["downloadUrl"].as_str().expect("a URL").to_string();
        assert_eq!(flow.get("member_h", &url).await.status().as_u16(), 200);

        for who in [
            "chair_x",
            "college_b",
            "council_h",
            "griffier_b",
            "civil_h",
            "admin",
            "outsider",
            "anonymous",
        ] {
            let (status, code) = http_error_code(flow.get(who, &url).await).await;
            assert_eq!((status, code.as_deref()), (404, Some("NOT_FOUND")), "{who}");
        }
        // Unknown and malformed ids look the same.
        for path in [
            format!("/files/versions/{}", uuid::Uuid::now_v7()),
            "/files/versions/not-a-uuid".to_string(),
        ] {
            let (status, code) = http_error_code(flow.get("chair_b", &path).await).await;
            assert_eq!(
                (status, code.as_deref()),
                (404, Some("NOT_FOUND")),
                "{path}"
            );
        }
        // A bad token is UNAUTHENTICATED, not a silent anonymous read.
        let (status, code) = http_error_code(server.get(Some("not-a-token"), &url).await).await;
        assert_eq!((status, code.as_deref()), (401, Some("UNAUTHENTICATED")));
        server.stop().await;
    })
    .await;
}

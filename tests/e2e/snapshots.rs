//! The investigation snapshot (read model): listings and single reads answer the same whether
//! an investigation's rows come from its snapshot or, when the snapshot is missing, of another
//! format or unreadable, from its tables; the start-up backfill rewrites those; a dashboard
//! costs the same few statements for one row and for fifty. (Every test's `stop` also checks
//! that each snapshot holds what its tables hold.)

use crate::support::{Flow, INVESTIGATION_FIELDS, quiet};
use rkflow_domain::{DocumentKind, Phase};
use rkflow_e2e::{TestServer, for_each_backend, org};
use rkflow_store::entity::{commission, investigation, investigation_snapshot};
use rkflow_store::snapshot;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

const DASHBOARD: &str = include_str!("../../graphql/examples/dashboard.graphql");
const ME: &str = "{ me { id } }";

#[tokio::test]
async fn reads_agree_with_or_without_snapshots_and_the_backfill_restores_them() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let proposal = flow.investigation_in(Phase::Proposal).await;
        let research = flow.investigation_in(Phase::Research).await;
        flow.submit_ok(
            "external",
            &research,
            DocumentKind::ResearchReport,
            "# Bevindingen",
        )
        .await;
        let rebuttal = flow.investigation_in(Phase::AdministrativeRebuttal).await;
        let ids = [&proposal, &research, &rebuttal];

        let read_all = || async {
            let mut answers: Vec<Value> = Vec::new();
            for who in ["chair_b", "member_h", "college_b", "external"] {
                let dashboard = flow.gql(who, DASHBOARD, json!({ "first": 50 })).await;
                answers.push(dashboard.data().clone());
                for id in ids {
                    let query = format!(
                        "query($id: ID!) {{ investigation(id: $id) {{ {INVESTIGATION_FIELDS} }} }}"
                    );
                    answers.push(flow.gql(who, &query, json!({ "id": id })).await.body);
                }
            }
            answers
        };
        let with_snapshots = read_all().await;
        assert_eq!(
            with_snapshots[0]["investigations"]["totalCount"], 3,
            "{}",
            server.label
        );

        // One snapshot gone, one unreadable, one of an older format.
        let conn = &server.db().conn;
        let uuid = |id: &str| -> Uuid { id.parse().expect("a uuid") };
        investigation_snapshot::Entity::delete_by_id(uuid(&proposal))
            .exec(conn)
            .await
            .expect("delete");
        for (id, column, value) in [
            (
                &research,
                investigation_snapshot::Column::Body,
                Expr::val("{\"participants\": 1"),
            ),
            (
                &rebuttal,
                investigation_snapshot::Column::Format,
                Expr::val(0),
            ),
        ] {
            investigation_snapshot::Entity::update_many()
                .col_expr(column, value)
                .filter(investigation_snapshot::Column::InvestigationId.eq(uuid(id)))
                .exec(conn)
                .await
                .expect("update");
        }
        let mut differing = snapshot::verify(server.db()).await.expect("verify");
        differing.sort();
        let mut expected: Vec<Uuid> = ids.iter().map(|id| uuid(id)).collect();
        expected.sort();
        assert_eq!(differing, expected, "{}", server.label);
        assert_eq!(
            read_all().await,
            with_snapshots,
            "{}: read from the tables",
            server.label
        );

        // A command writes the snapshot of its investigation whatever it found; the backfill
        // writes those missing, of another format or without a digest.
        flow.approve("chair_b", &proposal).await.data();
        flow.submit_ok(
            "external",
            &research,
            DocumentKind::ResearchReport,
            "# Tweede versie",
        )
        .await;
        // A snapshot without its digest (written before the column, or repaired by hand).
        investigation_snapshot::Entity::update_many()
            .col_expr(
                investigation_snapshot::Column::Digest,
                Expr::val(None::<Vec<u8>>),
            )
            .filter(investigation_snapshot::Column::InvestigationId.eq(uuid(&research)))
            .exec(conn)
            .await
            .expect("update");
        let mut differing = snapshot::verify(server.db()).await.expect("verify");
        differing.sort();
        let mut expected = vec![uuid(&research), uuid(&rebuttal)];
        expected.sort();
        assert_eq!(differing, expected, "{}", server.label);
        assert_eq!(snapshot::backfill(server.db()).await.expect("backfill"), 2);
        assert!(
            snapshot::verify(server.db())
                .await
                .expect("verify")
                .is_empty()
        );
        assert_eq!(snapshot::backfill(server.db()).await.expect("backfill"), 0);
        server.stop().await;
    })
    .await;
}

/// The dashboard of `graphql/examples` costs the same statements for pages of 1 and 50 and
/// at most 6: the session, the page with its snapshots' digests and total, the commissions with
/// their municipalities, the authors; with the read cache off (every snapshot body read), one
/// more: the bodies.
#[tokio::test]
async fn a_dashboard_costs_at_most_six_statements_whatever_its_length() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        for phase in [
            Phase::Proposal,
            Phase::Research,
            Phase::AdministrativeRebuttal,
        ] {
            flow.investigation_in(phase).await;
        }
        let warm = dashboard_statements(&server, org.token("chair_b")).await;
        server.stop().await;
        let server = TestServer::start_with(&db, |config| config.read_cache_entries = 0).await;
        let cold = dashboard_statements(&server, org.token("chair_b")).await;
        assert_eq!(warm[0], warm[1], "{}: {warm:?}", server.label);
        assert_eq!(cold[0], cold[1], "{}: {cold:?}", server.label);
        assert_eq!(cold[0], warm[0] + 1, "{}: {cold:?} {warm:?}", server.label);
        assert!(cold[1] <= 6, "{}: {cold:?}", server.label);
        server.stop().await;
    })
    .await;
}

/// The statements of the dashboard with pages of 1 and 50, each after the same page once: the
/// fewest of three answers, since a server just started may still run SQL of its own (its
/// scheduler pass, the backfill) beside them.
async fn dashboard_statements(server: &TestServer, token: &str) -> Vec<u64> {
    let chair = Some(token);
    server.gql(chair, ME, json!({})).await.data();
    quiet(server).await;
    let mut counts = Vec::new();
    for first in [1, 50] {
        server
            .gql(chair, DASHBOARD, json!({ "first": first }))
            .await
            .data();
        let mut fewest = u64::MAX;
        for _ in 0..3 {
            quiet(server).await;
            let before = server.db().statement_count();
            let page = server
                .gql(chair, DASHBOARD, json!({ "first": first }))
                .await;
            let listed = page.data()["investigations"]["edges"]
                .as_array()
                .map(Vec::len);
            assert_eq!(listed, Some(first.min(3)), "{}", server.label);
            fewest = fewest.min(server.db().statement_count() - before);
        }
        counts.push(fewest);
    }
    counts
}

/// The read cache saves reading snapshot bodies and decoding them, never a read of the rows: a
/// second dashboard decodes nothing, and a snapshot (written with its digest, as another
/// replica does, or by hand with the digest cleared), an investigation row or a commission
/// changed behind the server's back shows at once. With no room it keeps nothing.
#[tokio::test]
async fn the_read_cache_shows_only_what_the_database_holds() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let research = flow.investigation_in(Phase::Research).await;
        flow.investigation_in(Phase::Proposal).await;
        let id: Uuid = research.parse().expect("a uuid");
        let conn = &server.db().conn;
        let cache = &server.db().read_cache;
        let dashboard = || async {
            flow.gql("chair_b", DASHBOARD_WITH_NAMES, json!({}))
                .await
                .data()
                .clone()
        };
        let node = |answer: &Value| -> Value {
            answer["investigations"]["edges"]
                .as_array()
                .and_then(|edges| edges.iter().find(|e| e["node"]["id"] == research.as_str()))
                .map(|edge| edge["node"].clone())
                .expect("the investigation is listed")
        };

        let first = dashboard().await;
        let (hits, misses) = cache.hits_and_misses();
        assert_eq!(dashboard().await, first, "{}", server.label);
        let (hits_after, misses_after) = cache.hits_and_misses();
        assert_eq!(misses_after, misses, "{}: decoded again", server.label);
        assert!(
            hits_after >= hits + 2,
            "{}: {hits} → {hits_after}",
            server.label
        );

        // Another writer changes the snapshot: a document's title in it.
        let stored = investigation_snapshot::Entity::find_by_id(id)
            .one(conn)
            .await
            .expect("read")
            .expect("a snapshot");
        let mut body: Value = serde_json::from_str(&stored.body).expect("json");
        body["documents"][0]["title"] = json!("Elders gewijzigd");
        set_snapshot_body(&server, id, body.to_string()).await;
        let titles = |answer: &Value| node(answer)["documents"].to_string();
        assert!(
            titles(&dashboard().await).contains("Elders gewijzigd"),
            "{}",
            server.label
        );
        set_snapshot_body(&server, id, stored.body.clone()).await;
        assert_eq!(dashboard().await, first, "{}", server.label);
        // … by hand, clearing the digest: read with its body every time, kept never.
        body["documents"][0]["title"] = json!("Met de hand gewijzigd");
        write_snapshot(&server, id, body.to_string(), None).await;
        for _ in 0..2 {
            assert!(
                titles(&dashboard().await).contains("Met de hand gewijzigd"),
                "{}",
                server.label
            );
        }
        set_snapshot_body(&server, id, stored.body.clone()).await;
        assert_eq!(dashboard().await, first, "{}", server.label);

        // … the investigation row itself.
        investigation::Entity::update_many()
            .col_expr(investigation::Column::Title, Expr::val("Elders hernoemd"))
            .filter(investigation::Column::Id.eq(id))
            .exec(conn)
            .await
            .expect("update");
        assert_eq!(node(&dashboard().await)["title"], "Elders hernoemd");
        let title = node(&first)["title"].as_str().expect("a title").to_string();
        investigation::Entity::update_many()
            .col_expr(investigation::Column::Title, Expr::val(title))
            .filter(investigation::Column::Id.eq(id))
            .exec(conn)
            .await
            .expect("update");

        // … a commission it names (not in the snapshot).
        let bloemendaal = commission::Entity::find()
            .filter(commission::Column::Name.contains("Bloemendaal"))
            .one(conn)
            .await
            .expect("read")
            .expect("Bloemendaal's commission");
        let rename = |name: String| async move {
            commission::Entity::update_many()
                .col_expr(commission::Column::Name, Expr::val(name))
                .filter(commission::Column::Id.eq(bloemendaal.id))
                .exec(conn)
                .await
                .expect("update");
        };
        rename("Rekenkamer Zuid-Kennemerland".to_string()).await;
        let renamed = dashboard().await;
        for shown in [
            node(&renamed)["commissions"].to_string(),
            node(&renamed)["missingApprovals"].to_string(),
        ] {
            assert!(
                shown.contains("Rekenkamer Zuid-Kennemerland") && !shown.contains("Bloemendaal"),
                "{}: {shown}",
                server.label
            );
        }
        // The values built anew (the cache keeps no bodies: read again) are kept in turn.
        let (_, misses) = cache.hits_and_misses();
        assert_eq!(dashboard().await, renamed, "{}", server.label);
        assert_eq!(cache.hits_and_misses().1, misses, "{}", server.label);
        rename(bloemendaal.name.clone()).await;
        assert_eq!(dashboard().await, first, "{}", server.label);
        server.stop().await;

        // With no room it keeps nothing and answers the same.
        let server = TestServer::start_with(&db, |config| config.read_cache_entries = 0).await;
        let answer = server
            .gql(Some(org.token("chair_b")), DASHBOARD_WITH_NAMES, json!({}))
            .await;
        assert_eq!(answer.data(), &first, "{}", server.label);
        assert_eq!(server.db().read_cache.hits_and_misses(), (0, 0));
        assert!(server.db().read_cache.is_empty());
        server.stop().await;
    })
    .await;
}

/// A command rewrites the snapshot it loads: it drops what the read cache kept for its
/// investigation (that would never match again) and keeps nothing of what it loaded itself.
/// The next read builds the new state and keeps that.
#[tokio::test]
async fn a_command_drops_what_the_read_cache_kept_for_its_investigation() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let research = flow.investigation_in(Phase::Research).await;
        let cache = &server.db().read_cache;
        flow.gql("chair_b", DASHBOARD_WITH_NAMES, json!({}))
            .await
            .data();
        let kept = cache.len();
        assert!(
            kept >= 1,
            "{}: the dashboard keeps what it read",
            server.label
        );

        let id: Uuid = research.parse().expect("a uuid");
        let view = rkflow_store::ReadView::pooled(server.db());
        let load = || async {
            rkflow_store::investigations::load(&view, id)
                .await
                .expect("read")
                .expect("found")
        };
        let before = load().await;
        assert_eq!(
            cache.len(),
            kept,
            "{}: a kept read keeps no more",
            server.label
        );
        flow.submit_ok(
            "member_b",
            &research,
            DocumentKind::ResearchReport,
            "# Verder",
        )
        .await;
        assert_eq!(
            cache.len(),
            kept - 1,
            "{}: the command dropped the investigation and kept nothing",
            server.label
        );

        let (_, misses) = cache.hits_and_misses();
        let after = load().await;
        assert_eq!(cache.hits_and_misses().1, misses + 1, "{}", server.label);
        assert_eq!(cache.len(), kept, "{}: the new state is kept", server.label);
        assert_eq!(
            after.versions.len(),
            before.versions.len() + 1,
            "{}",
            server.label
        );
        server.stop().await;
    })
    .await;
}

const DASHBOARD_WITH_NAMES: &str = "{ investigations(first: 50) { edges { node {
    id title phase commissions { name } missingApprovals { name }
    documents { kind title latestVersion { number author { name } } } } } } }";

/// Writes a snapshot body with its digest, as another rkflow process would.
async fn set_snapshot_body(server: &TestServer, id: Uuid, body: String) {
    let digest = snapshot::digest(&body);
    write_snapshot(server, id, body, Some(digest)).await;
}

/// Writes a snapshot body and this digest (NULL: a repair by hand that clears it).
async fn write_snapshot(server: &TestServer, id: Uuid, body: String, digest: Option<Vec<u8>>) {
    investigation_snapshot::Entity::update_many()
        .col_expr(investigation_snapshot::Column::Digest, Expr::val(digest))
        .col_expr(investigation_snapshot::Column::Body, Expr::val(body))
        .filter(investigation_snapshot::Column::InvestigationId.eq(id))
        .exec(&server.db().conn)
        .await
        .expect("update");
}

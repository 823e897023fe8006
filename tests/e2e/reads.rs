//! A query reads one moment of the database, through one connection (`rkflow_store::reads`):
//! what another writer commits meanwhile shows in the next answer, not halfway through this
//! one; and requests that each hold a read transaction never wait for a second connection, so
//! more of them than the pool has connections all answer — also when their sessions' activity
//! is due to be written.

use crate::support::{Flow, counted, quiet};
use chrono::{Duration, Utc};
use rkflow_domain::Phase;
use rkflow_e2e::{TestServer, for_each_backend, org};
use rkflow_store::entity::{investigation, session};
use rkflow_store::{ReadView, investigations};
use sea_orm::sea_query::Expr;
use sea_orm::sqlx;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement};
use serde_json::json;
use uuid::Uuid;

const DASHBOARD: &str = include_str!("../../graphql/examples/dashboard.graphql");

async fn rename(server: &TestServer, id: Uuid, title: &str) {
    investigation::Entity::update_many()
        .col_expr(investigation::Column::Title, Expr::val(title))
        .filter(investigation::Column::Id.eq(id))
        .exec(&server.db().conn)
        .await
        .expect("update");
}

async fn title_through<R: rkflow_store::Reader>(reads: &R, id: Uuid) -> String {
    investigations::load(reads, id)
        .await
        .expect("load")
        .expect("found")
        .domain
        .title
        .clone()
}

async fn plan_cache_mode(view: &ReadView) -> String {
    view.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        "SHOW plan_cache_mode",
    ))
    .await
    .expect("show")
    .expect("a row")
    .try_get("", "plan_cache_mode")
    .expect("the setting")
}

#[tokio::test]
async fn a_read_view_shows_one_moment_and_the_pool_the_latest() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id: Uuid = flow
            .investigation_in(Phase::Research)
            .await
            .parse()
            .expect("a uuid");
        let before = title_through(server.db(), id).await;

        let view = ReadView::snapshot(server.db());
        assert_eq!(title_through(&view, id).await, before, "{}", server.label);
        // Another writer commits while the view is open.
        rename(&server, id, "Tussentijds hernoemd").await;
        assert_eq!(
            title_through(&view, id).await,
            before,
            "{}: the view moved on within one answer",
            server.label
        );
        let pooled = ReadView::pooled(server.db());
        assert_eq!(
            title_through(&pooled, id).await,
            "Tussentijds hernoemd",
            "{}",
            server.label
        );
        view.finish().await;
        // After it ended, the same view reads the latest (through the pool).
        assert_eq!(
            title_through(&view, id).await,
            "Tussentijds hernoemd",
            "{}",
            server.label
        );
        // Read-only: a write through a PostgreSQL view is refused, nothing is written.
        if server.label == "postgres" {
            let view = ReadView::snapshot(server.db());
            let refused = investigation::Entity::update_many()
                .col_expr(investigation::Column::Title, Expr::val("Mag niet"))
                .filter(investigation::Column::Id.eq(id))
                .exec(&view)
                .await;
            assert!(refused.is_err(), "a write in a read view was accepted");
            view.finish().await;
            assert_eq!(title_through(server.db(), id).await, "Tussentijds hernoemd");

            // The view's statements are planned once per connection (generic plans), and only
            // within the view: its `SET LOCAL` ends with it.
            let view = ReadView::snapshot(server.db());
            assert_eq!(plan_cache_mode(&view).await, "force_generic_plan");
            assert_eq!(title_through(&view, id).await, "Tussentijds hernoemd");
            view.finish().await;
            // The pool takes the view's connection back in a task of its own (its `ROLLBACK`
            // and ping): give it a moment, then check every idle connection, held at once.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let pool = server.db().conn.get_postgres_connection_pool();
            let mut held = Vec::new();
            while let Some(conn) = pool.try_acquire() {
                held.push(conn);
            }
            assert!(!held.is_empty(), "no idle connection to check");
            for conn in &mut held {
                let (mode,): (String,) = sqlx::query_as("SHOW plan_cache_mode")
                    .fetch_one(&mut **conn)
                    .await
                    .expect("show");
                assert_eq!(
                    mode, "auto",
                    "a pooled connection kept the view's plan mode"
                );
            }
        }
        rename(&server, id, &before).await;
        server.stop().await;
    })
    .await;
}

/// Three times as many concurrent dashboards as the pool has connections, all from sessions
/// whose last activity is older than a minute (so each request also writes it): every answer
/// arrives without error, and the activity is recorded.
#[tokio::test]
async fn more_queries_than_connections_all_answer_and_keep_their_sessions_alive() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        flow.investigation_in(Phase::Proposal).await;
        let connections = if server.label == "postgres" {
            rkflow_store::db::default_postgres_connections()
        } else {
            rkflow_store::db::DEFAULT_SQLITE_CONNECTIONS
        } as usize;
        let stale = Utc::now() - Duration::minutes(5);
        session::Entity::update_many()
            .col_expr(session::Column::LastSeenAt, Expr::val(stale))
            .exec(&server.db().conn)
            .await
            .expect("age the sessions");

        let who = ["chair_b", "chair_h", "member_b", "member_h"];
        let answers = futures::future::join_all(
            (0..connections * 3).map(|i| flow.gql(who[i % who.len()], DASHBOARD, json!({}))),
        )
        .await;
        for answer in &answers {
            assert_eq!(answer.status, 200, "{}: {}", server.label, answer.body);
            assert!(answer.data()["investigations"]["totalCount"].as_i64() >= Some(1));
        }
        let sessions = session::Entity::find()
            .all(&server.db().conn)
            .await
            .expect("sessions");
        for key in who {
            let user = org.person(key).id;
            assert!(
                sessions
                    .iter()
                    .filter(|s| s.user_id == user)
                    .all(|s| s.last_seen_at > stale),
                "{}: {key}'s activity was not recorded",
                server.label
            );
        }
        server.stop().await;
    })
    .await;
}

/// The whole of one investigation — documents, versions and their authors, approvals,
/// rapporteurs, commissions with their municipalities, deadlines and responses with the
/// colleges that signed — costs the same statements every time: the session, the
/// investigation, its commissions with their municipalities (one join, which also answers
/// every council and college asked for), then one batch of users, asked for in one pass
/// (`context::LoadQueue`), however the execution's joins interleave; the first read one more,
/// the snapshot's body.
#[tokio::test]
async fn one_investigation_costs_the_same_statements_every_time() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.investigation_in(Phase::AdministrativeRebuttal).await;
        // Each college responds (the helper's rebuttal is SEPARATE).
        let municipalities = flow
            .gql("chair_b", "{ municipalities { id college { id } } }", json!({}))
            .await;
        for key in ["b", "h"] {
            let college = municipalities.data()["municipalities"]
                .as_array()
                .expect("a list")
                .iter()
                .find(|m| m["id"] == org.municipality(key).to_string())
                .map(|m| m["college"]["id"].clone())
                .expect("the municipality");
            flow.gql(
                &format!("college_{key}"),
                "mutation($input: FileResponseInput!) { fileResponse(input: $input) { id } }",
                json!({ "input": {
                    "investigationId": id,
                    "collegeIds": [college],
                    "content": "# Bestuurlijke reactie\n\nWij danken de rekenkamer.",
                    "positions": [],
                }}),
            )
            .await
            .data();
        }
        let query = format!(
            r#"{{ investigation(id: "{id}") {{
                id title phase
                commissions {{ name municipalities {{ name council {{ id name }} college {{ id name }} }} }}
                rapporteurs {{ user {{ name }} commission {{ name }} }}
                documents {{ kind versions {{ number author {{ name }} }} }}
                approvals {{ commission {{ name }} approvedBy {{ name }} }}
                missingApprovals {{ name }}
                deadlines {{ kind college {{ name }} }}
                responses {{ signedBy {{ name }} colleges {{ name }} version {{ number }} }}
            }} }}"#
        );
        // The first read reads the snapshot's body too (a statement more): the commands kept
        // nothing in the read cache.
        quiet(&server).await;
        let (_, first) = counted(&server, Some(org.token("chair_b")), &query).await;
        quiet(&server).await;
        let mut counts = Vec::new();
        for _ in 0..10 {
            let (answer, statements) = counted(&server, Some(org.token("chair_b")), &query).await;
            let found = &answer.data()["investigation"];
            assert!(
                !found["responses"].as_array().expect("responses").is_empty(),
                "{}: the fixture has responses",
                server.label
            );
            counts.push(statements);
        }
        assert!(
            counts.iter().all(|&n| n == 4),
            "{}: statements per answer {counts:?}",
            server.label
        );
        assert!(first <= 5, "{}: the first answer {first}", server.label);
        server.stop().await;
    })
    .await;
}

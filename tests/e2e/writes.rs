//! Concurrent writers: every write is kept, in turn, and the writers of one process queue for
//! their turns without holding pooled connections (`Db::begin_write`).

use crate::support::{Flow, version_numbers};
use chrono::Utc;
use rkflow_domain::DocumentKind;
use rkflow_e2e::{TestDb, TestServer, for_each_backend, org};
use rkflow_store::Db;
use rkflow_store::audit::{self, Origin};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::time::Duration;

/// Sixteen versions of one document submitted at the same moment by three authors, without
/// `baseVersion`: every one is stored, numbered 1 to 16 without gaps or doubles, each with its
/// own text; the audit chain and the snapshot stay intact (checked when the server stops).
#[tokio::test]
async fn concurrent_versions_of_one_document_are_all_kept_in_turn() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.propose_joint("Gelijktijdige versies").await;
        let authors = ["secretary_h", "member_b", "member_h"];
        let texts: Vec<String> = (0..16)
            .map(|i| format!("# Voorstel, versie van auteur {}\n\nTekst {i}.\n", i % 3))
            .collect();
        let answers = futures::future::join_all(texts.iter().enumerate().map(|(i, text)| {
            flow.submit_input(
                authors[i % authors.len()],
                &id,
                json!({ "kind": "PROPOSAL", "content": text }),
            )
        }))
        .await;
        let mut numbers = BTreeSet::new();
        for answer in &answers {
            let number = answer.data()["submitDocumentVersion"]["number"]
                .as_i64()
                .expect("a version number");
            assert!(numbers.insert(number), "number {number} given twice");
        }
        assert_eq!(numbers, (1..=16).collect::<BTreeSet<i64>>());

        let seen = flow.investigation("chair_b", &id).await;
        assert_eq!(
            version_numbers(&seen, DocumentKind::Proposal),
            (1..=16).collect::<Vec<i64>>()
        );
        let stored: BTreeSet<String> = seen["documents"]
            .as_array()
            .expect("documents")
            .iter()
            .flat_map(|document| document["versions"].as_array().expect("versions"))
            .map(|version| version["sha256"].as_str().expect("sha256").to_string())
            .collect();
        let submitted: BTreeSet<String> = texts
            .iter()
            .map(|text| hex::encode(Sha256::digest(text.as_bytes())))
            .collect();
        assert_eq!(stored, submitted, "every text is kept exactly once");
        let chain = audit::verify_chain(&server.db().conn)
            .await
            .expect("the chain can be read");
        assert!(chain.intact, "{}: {chain:?}", db.label);
        server.stop().await;
    })
    .await;
}

/// SQLite writes one transaction at a time. With a pool of two connections, one writer in its
/// transaction and three more waiting for their turn, a read still gets the second connection:
/// the waiting writers do not hold connections (before the turn existed they held them while
/// SQLite made them poll for its lock, and the read failed after the pool's acquire timeout).
/// When the first writer commits, the others write one after another.
#[tokio::test]
async fn waiting_sqlite_writers_leave_the_connections_to_readers() {
    let file = TestDb::sqlite().await;
    let db = Db::connect_with(&file.backend.url, Some(2))
        .await
        .expect("connects");
    db.migrate().await.expect("migrates");
    let origin = Origin {
        actor: None,
        client: Some("test".into()),
    };
    let first = db.begin_write().await.expect("the first writer's turn");
    let waiting: Vec<_> = (0..3)
        .map(|i| {
            let db = db.clone();
            let origin = origin.clone();
            tokio::spawn(async move {
                let txn = db.begin_write().await?;
                audit::record(
                    &txn,
                    &origin,
                    Utc::now(),
                    "test.write",
                    json!({ "writer": i }),
                )
                .await?;
                txn.commit().await?;
                Ok::<_, rkflow_store::StoreError>(())
            })
        })
        .collect();
    // Let the three reach their wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let read = db
        .conn
        .query_one_raw(Statement::from_string(
            db.backend(),
            "SELECT count(*) AS n FROM audit_event",
        ))
        .await;
    assert!(read.is_ok(), "a read while writers wait: {read:?}");
    assert!(
        waiting.iter().all(|writer| !writer.is_finished()),
        "the others wait for the first writer"
    );
    audit::record(
        &first,
        &origin,
        Utc::now(),
        "test.write",
        json!({ "writer": "first" }),
    )
    .await
    .expect("the first writes");
    first.commit().await.expect("the first commits");
    for writer in waiting {
        writer
            .await
            .expect("the writer ran")
            .expect("the writer wrote in its turn");
    }
    let chain = audit::verify_chain(&db.conn)
        .await
        .expect("the chain can be read");
    assert!(chain.intact, "{chain:?}");
    assert_eq!(chain.events_checked, 4, "{chain:?}");
    db.close().await;
    file.remove().await;
}

/// Writers stuck behind another session's lock — PostgreSQL's audit chain head, which every
/// write takes last, or SQLite's write lock — hold no more than their turns' connections
/// (`db::concurrent_writers`): with a pool of 4 and eight writes waiting, a query still
/// answers. (Before the turns, on PostgreSQL the writers held every connection and the query
/// failed after the pool's acquire timeout; a command's answer, then read after its commit,
/// waited too.) Once the lock is gone every write is answered, numbered in turn.
#[tokio::test]
async fn writers_waiting_for_a_lock_leave_connections_to_queries() {
    for_each_backend(|db| async move {
        let server = TestServer::start_with(&db, |config| {
            config.database_max_connections = Some(4);
        })
        .await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.propose_joint("Wachtende schrijvers").await;

        let blocker = Db::connect(&db.url).await.expect("a second session");
        let lock = blocker.begin_write().await.expect("a write transaction");
        if blocker.is_postgres() {
            lock.execute_unprepared("SELECT seq FROM audit_head FOR UPDATE")
                .await
                .expect("lock the audit chain's head");
        }
        let writes = futures::future::join_all((0..8).map(|i| {
            flow.submit_input(
                "secretary_h",
                &id,
                json!({ "kind": "PROPOSAL", "content": format!("# Versie {i}\n") }),
            )
        }));
        let read_while_stuck = async {
            // Let the writes reach the lock.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let read = flow.investigation("chair_b", &id).await;
            lock.rollback().await.expect("release the lock");
            read
        };
        let (answers, read) = tokio::join!(writes, read_while_stuck);
        assert_eq!(read["id"], json!(id), "{}: {read}", db.label);
        let numbers: BTreeSet<i64> = answers
            .iter()
            .map(|answer| {
                answer.data()["submitDocumentVersion"]["number"]
                    .as_i64()
                    .expect("a version number")
            })
            .collect();
        assert_eq!(numbers, (1..=8).collect(), "{}", db.label);
        blocker.close().await;
        server.stop().await;
    })
    .await;
}

/// sqlx leaves Nagle's algorithm on; `Db` switches it off on every PostgreSQL connection
/// (`crates/store/src/nodelay.rs`), or a statement of more than 16 KB over TLS — a 20 KB
/// version's text — waits for the backend's delayed acknowledgement (40 ms). Each connection
/// the pool hands out names its own port (`inet_client_port()`), and this process's socket
/// with that local port has `TCP_NODELAY`.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn postgres_connections_send_without_waiting_for_acknowledgements() {
    let Some(admin_url) = std::env::var("RKFLOW_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        return;
    };
    let db = Db::connect_with(&admin_url, Some(3))
        .await
        .expect("connect");
    let held = futures::future::join_all((0..3).map(|_| db.begin_read())).await;
    let mut ports = BTreeSet::new();
    for transaction in held {
        let transaction = transaction.expect("a connection");
        let row = transaction
            .query_one_raw(Statement::from_string(
                transaction.get_database_backend(),
                "SELECT inet_client_port() AS port",
            ))
            .await
            .expect("the client port")
            .expect("a row");
        let port: i32 = row.try_get("", "port").expect("a port");
        ports.insert(u16::try_from(port).expect("a port number"));
        transaction.rollback().await.expect("rollback");
    }
    assert_eq!(ports.len(), 3, "three connections at once: {ports:?}");
    for port in ports {
        assert_eq!(
            nodelay_of_local_port(port),
            Some(true),
            "the connection from port {port}"
        );
    }
    db.close().await;
}

/// `TCP_NODELAY` of this process's TCP socket bound to local `port`, if there is one.
#[cfg(target_os = "linux")]
fn nodelay_of_local_port(port: u16) -> Option<bool> {
    let mut found = None;
    rkflow_store::nodelay::for_each_socket(|socket| {
        let local = socket.local_addr().ok().and_then(|a| a.as_socket());
        if local.is_some_and(|a| a.port() == port) {
            found = socket.tcp_nodelay().ok();
        }
    });
    found
}

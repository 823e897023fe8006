//! Several replicas on one database (issue 8, "Replicas" and "Graceful shutdown").
//!
//! Two (or three) servers share one PostgreSQL database, as replicas behind a load balancer
//! do. Everything that lives in one process must work across them:
//!
//! - subscriptions: an event committed through replica A reaches a subscriber on replica B
//!   (PostgreSQL LISTEN/NOTIFY), and every subscriber gets every event exactly once, in order,
//!   whichever replica wrote it, also when the listeners' connections are cut meanwhile;
//! - the background schedulers of both replicas remind once, and both replicas' subscribers
//!   hear that reminder once (that two servers mark and remind exactly once, also with
//!   overlapping passes, is `rebuttal::two_servers_on_one_database_mark_and_remind_exactly_once`);
//! - login throttling counts the failures on every replica against one limit;
//! - replicas starting together on an empty database migrate it once, without errors;
//! - stopping a server ends its subscriptions cleanly: `complete`, then a close frame.
//!
//! The tests that need PostgreSQL print a notice and pass when `RKFLOW_TEST_POSTGRES_URL` is
//! not set; the others run on SQLite too (two servers on one SQLite file share it as well).

use crate::support::{AUDIT_TRAIL, Flow, Socket, open_ws, send};
use futures::StreamExt;
use rkflow_domain::{DocumentKind, Phase};
use rkflow_e2e::{Gql, PASSWORD, TestDb, TestServer, for_each_backend, org};
use rkflow_server::config::ServerConfig;
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A fresh PostgreSQL database, or `None` with a notice when none is configured.
async fn postgres(test: &str) -> Option<TestDb> {
    match std::env::var("RKFLOW_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(TestDb::postgres(&url).await),
        _ => {
            eprintln!(
                "{test}: skipped, replicas share a PostgreSQL database and \
                 RKFLOW_TEST_POSTGRES_URL is not set"
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Subscriptions (graphql-transport-ws)
// ---------------------------------------------------------------------------------------------

/// What a socket says next.
#[derive(Debug, PartialEq)]
enum Heard {
    /// A JSON message.
    Message(Value),
    /// A close frame with its code.
    Closed(Option<u16>),
    /// The connection ended without a close frame.
    Gone,
    /// Nothing within the wait.
    Silence,
}

async fn hear(socket: &mut Socket, wait: Duration) -> Heard {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return Heard::Silence,
            Ok(None | Some(Err(_))) => return Heard::Gone,
            Ok(Some(Ok(Message::Text(text)))) => {
                return Heard::Message(serde_json::from_str(text.as_str()).expect("JSON"));
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Heard::Closed(frame.map(|frame| u16::from(frame.code)));
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// A graphql-transport-ws connection as the holder of `token`, acknowledged.
async fn connect(server: &TestServer, token: &str) -> Socket {
    let mut socket = open_ws(server).await;
    send(
        &mut socket,
        json!({ "type": "connection_init",
                "payload": { "Authorization": format!("Bearer {token}") } }),
    )
    .await;
    match hear(&mut socket, Duration::from_secs(5)).await {
        Heard::Message(ack) if ack["type"] == "connection_ack" => socket,
        other => panic!("no connection_ack: {other:?}"),
    }
}

/// `investigationEvents` of `id` (subscription "1") as the holder of `token`, on `server`.
async fn subscribe(server: &TestServer, token: &str, id: &str) -> Socket {
    let mut socket = connect(server, token).await;
    send(
        &mut socket,
        json!({
            "id": "1",
            "type": "subscribe",
            "payload": {
                "query": "subscription($id: ID!) { investigationEvents(investigationId: $id) {
                    seq action investigationId } }",
                "variables": { "id": id },
            },
        }),
    )
    .await;
    socket
}

/// The events a socket delivers until it has been quiet for `quiet` (or `wanted` arrived and
/// then `quiet` passed): (seq, action), in the order received.
async fn events(socket: &mut Socket, wanted: usize, wait: Duration) -> Vec<(i64, String)> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen = Vec::new();
    loop {
        // Once the wanted number is there, wait a little longer: a duplicate would show.
        let left = if seen.len() >= wanted {
            Duration::from_millis(1_500)
        } else {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        match hear(socket, left).await {
            Heard::Message(message) => {
                assert_eq!(message["type"], "next", "{message}");
                let event = &message["payload"]["data"]["investigationEvents"];
                seen.push((
                    event["seq"].as_i64().expect("seq"),
                    event["action"].as_str().expect("action").to_string(),
                ));
            }
            Heard::Silence => return seen,
            other => panic!("the subscription ended: {other:?} after {seen:?}"),
        }
    }
}

/// The seqs of the reminders a socket delivers: until `wanted` arrived (at most `wait`), and
/// then for three seconds more, in which a duplicate would show.
async fn reminders_heard(socket: &mut Socket, wanted: usize, wait: Duration) -> Vec<i64> {
    let mut deadline = tokio::time::Instant::now() + wait;
    let mut seqs = Vec::new();
    let mut complete = false;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match hear(socket, left).await {
            Heard::Message(message) => {
                assert_eq!(message["type"], "next", "{message}");
                let event = &message["payload"]["data"]["investigationEvents"];
                if event["action"] == "deadline.reminder" {
                    seqs.push(event["seq"].as_i64().expect("seq"));
                }
            }
            Heard::Silence => return seqs,
            other => panic!("the subscription ended: {other:?} after {seqs:?}"),
        }
        if !complete && seqs.len() >= wanted {
            complete = true;
            deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        }
    }
}

/// Makes sure every socket's subscription is live (they start asynchronously): rapporteur
/// assignments (harmless events) are written on `flow`'s server until each socket has heard
/// one; then the sockets are drained.
async fn until_live(flow: &Flow<'_>, sockets: &mut [&mut Socket], id: &str) {
    let mut live = vec![false; sockets.len()];
    for user in [
        "external",
        "outsider",
        "member_b",
        "member_h",
        "secretary_b",
        "secretary_h",
    ] {
        flow.assign_rapporteur("chair_b", id, "b", user)
            .await
            .data();
        for (socket, live) in sockets.iter_mut().zip(live.iter_mut()) {
            if matches!(
                hear(socket, Duration::from_millis(700)).await,
                Heard::Message(_)
            ) {
                *live = true;
            }
        }
        if live.iter().all(|live| *live) {
            for socket in sockets.iter_mut() {
                while matches!(
                    hear(socket, Duration::from_millis(300)).await,
                    Heard::Message(_)
                ) {}
            }
            return;
        }
    }
    panic!("a subscription never delivered an event: {live:?}");
}

/// Both subscribers (on A and on B) hear exactly the investigation's announced events after
/// `before`, in order: `count` of them (audited reads are not announced).
async fn assert_both_heard(
    flow: &Flow<'_>,
    id: &str,
    before: i64,
    [at_a, at_b]: [&mut Socket; 2],
    count: usize,
    wait: Duration,
) {
    let expected: Vec<(i64, String)> = trail_after(flow, id, before)
        .await
        .into_iter()
        .filter(|(_, action)| action != "document.read")
        .collect();
    assert_eq!(expected.len(), count, "{expected:?}");
    let (heard_a, heard_b) = tokio::join!(
        events(at_a, expected.len(), wait),
        events(at_b, expected.len(), wait)
    );
    assert_eq!(heard_a, expected, "the subscriber on A");
    assert_eq!(heard_b, expected, "the subscriber on B");
}

/// The investigation's audit trail after `after`: (seq, action), oldest first.
async fn trail_after(flow: &Flow<'_>, id: &str, after: i64) -> Vec<(i64, String)> {
    let answer = flow
        .gql("chair_b", AUDIT_TRAIL, json!({ "id": id, "first": 100 }))
        .await;
    let trail = &answer.data()["auditTrail"];
    assert_eq!(trail["pageInfo"]["hasNextPage"], false, "over 100 events");
    trail["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| {
            (
                edge["node"]["seq"].as_i64().expect("seq"),
                edge["node"]["action"].as_str().expect("action").to_string(),
            )
        })
        .filter(|(seq, _)| *seq > after)
        .collect()
}

/// Subscribers on replica A and replica B; versions written through A, through B, and through
/// both at once. Each subscriber receives exactly the events of the audit trail, each once and
/// in order, whichever replica committed them.
#[tokio::test]
async fn every_subscriber_gets_every_replicas_events_exactly_once() {
    let Some(db) = postgres("every_subscriber_gets_every_replicas_events_exactly_once").await
    else {
        return;
    };
    let a = TestServer::start(&db.backend).await;
    let b = TestServer::start(&db.backend).await;
    let org = org(&a).await;
    let (on_a, on_b) = (Flow::new(&a, &org), Flow::new(&b, &org));
    let id = on_a.propose_joint("Huisvesting van statushouders").await;
    let mut at_a = subscribe(&a, org.token("chair_b"), &id).await;
    let mut at_b = subscribe(&b, org.token("chair_h"), &id).await;
    until_live(&on_a, &mut [&mut at_a, &mut at_b], &id).await;
    let before = trail_after(&on_a, &id, 0).await.last().expect("events").0;

    // Through A, then through B (a subscriber on B hears B's own events once, too).
    on_a.submit_ok(
        "member_b",
        &id,
        DocumentKind::Proposal,
        "# Voorstel\n\nVan A.",
    )
    .await;
    on_b.submit_ok(
        "member_h",
        &id,
        DocumentKind::Proposal,
        "# Voorstel\n\nVan B.",
    )
    .await;
    // Through both at the same moment, several times.
    for round in 0..3 {
        let (text_a, text_b) = (format!("# A {round}"), format!("# B {round}"));
        let (x, y) = tokio::join!(
            on_a.submit("member_b", &id, DocumentKind::Proposal, &text_a),
            on_b.submit("member_h", &id, DocumentKind::Proposal, &text_b),
        );
        x.data();
        y.data();
    }
    // Audited reads (the versions returned by `submitDocumentVersion`) are not announced.
    assert_both_heard(
        &on_a,
        &id,
        before,
        [&mut at_a, &mut at_b],
        9,
        Duration::from_secs(10),
    )
    .await;

    let _ = at_a.close(None).await;
    let _ = at_b.close(None).await;
    a.stop().await;
    b.stop().await;
    db.remove().await;
}

/// Ends the event listeners' connections to the test's database (as a failover or a proxy's
/// idle timeout would); how many.
async fn cut_listeners(database: &str) -> usize {
    let admin_url = std::env::var("RKFLOW_TEST_POSTGRES_URL").expect("set");
    let admin = rkflow_store::Db::connect(&admin_url)
        .await
        .expect("connect as admin");
    let rows = admin
        .conn
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{database}' AND query LIKE 'LISTEN%'"
            ),
        ))
        .await
        .expect("terminate the listeners");
    admin.close().await;
    rows.len()
}

/// The listeners' connections are cut while both replicas write. First B's listener cannot
/// come back at once: the test holds every connection of B's pool while the cut listener is
/// away, and an event committed through A meanwhile is not heard on B; once the pool is free
/// again B's listener listens again and reads what it missed from the table. Then the
/// listeners are cut twice more during writes on both replicas. The subscribers on both
/// replicas get every event exactly once, in order.
#[tokio::test]
async fn after_the_listeners_lose_their_connection_no_event_is_lost_or_doubled() {
    let Some(db) = postgres("after_the_listeners_lose_their_connection").await else {
        return;
    };
    let database = db
        .backend
        .url
        .rsplit('/')
        .next()
        .expect("a name")
        .to_string();
    let a = TestServer::start(&db.backend).await;
    let b = TestServer::start(&db.backend).await;
    let org = org(&a).await;
    let (on_a, on_b) = (Flow::new(&a, &org), Flow::new(&b, &org));
    let id = on_a.propose_joint("Openbare verlichting").await;
    let mut at_a = subscribe(&a, org.token("chair_b"), &id).await;
    let mut at_b = subscribe(&b, org.token("chair_h"), &id).await;
    until_live(&on_a, &mut [&mut at_a, &mut at_b], &id).await;
    let before = trail_after(&on_a, &id, 0).await.last().expect("events").0;

    // B's pool full: every connection but the listener's held here, and one more asked for,
    // which gets the listener's as soon as it is cut.
    let pool = b.db().conn.get_postgres_connection_pool().clone();
    let max = pool.options().get_max_connections() as usize;
    let mut held = Vec::new();
    for _ in 1..max {
        held.push(pool.acquire().await.expect("a connection of B's pool"));
    }
    let last = tokio::spawn({
        let pool = pool.clone();
        async move { pool.acquire().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(cut_listeners(&database).await >= 2, "no listener was cut");
    held.push(
        tokio::time::timeout(Duration::from_secs(5), last)
            .await
            .expect("the cut listener's connection is free")
            .expect("the task")
            .expect("a connection"),
    );
    on_a.submit_ok(
        "member_b",
        &id,
        DocumentKind::Proposal,
        "# Terwijl B niet luistert",
    )
    .await;
    assert_eq!(
        hear(&mut at_b, Duration::from_millis(1_500)).await,
        Heard::Silence,
        "B heard an event while its listener was away"
    );
    drop(held);

    // Cut during writes on both replicas, twice.
    for round in 0..2 {
        cut_listeners(&database).await;
        let (text_a, text_b) = (format!("# A {round}"), format!("# B {round}"));
        on_a.submit_ok("member_b", &id, DocumentKind::Proposal, &text_a)
            .await;
        on_b.submit_ok("member_h", &id, DocumentKind::Proposal, &text_b)
            .await;
    }
    assert_both_heard(
        &on_a,
        &id,
        before,
        [&mut at_a, &mut at_b],
        6,
        Duration::from_secs(15),
    )
    .await;

    let _ = at_a.close(None).await;
    let _ = at_b.close(None).await;
    a.stop().await;
    b.stop().await;
    db.remove().await;
}

/// Both replicas' background schedulers run every second on the system clock. A reminder
/// offset of 30 days is longer than the 21-day term, so both colleges' reminders are due the
/// moment the round opens: they are written once, and the subscribers on both replicas hear
/// each of them once.
#[tokio::test]
async fn both_replicas_schedulers_remind_once_and_both_replicas_subscribers_hear_it_once() {
    let Some(db) = postgres("both_replicas_schedulers_remind_once").await else {
        return;
    };
    let configure = |config: &mut ServerConfig| {
        config.scheduler_interval = Duration::from_secs(1);
        config.reminder_offsets = vec![chrono::Duration::days(30)];
    };
    let a = TestServer::start_with(&db.backend, configure).await;
    let b = TestServer::start_with(&db.backend, configure).await;
    let org = org(&a).await;
    let flow = Flow::new(&a, &org);
    let id = flow.propose_joint("Subsidiebeleid").await;
    flow.drive_to(&id, Phase::Research).await;
    flow.complete_gate(&id, Phase::Research).await;
    let mut at_a = subscribe(&a, org.token("chair_b"), &id).await;
    let mut at_b = subscribe(&b, org.token("chair_h"), &id).await;
    until_live(&flow, &mut [&mut at_a, &mut at_b], &id).await;

    flow.approve_all(&id).await;
    // Both reminders (with the gate's own events), then three more passes of both loops.
    let (heard_a, heard_b) = tokio::join!(
        reminders_heard(&mut at_a, 2, Duration::from_secs(15)),
        reminders_heard(&mut at_b, 2, Duration::from_secs(15)),
    );
    let written: Vec<i64> = trail_after(&flow, &id, 0)
        .await
        .into_iter()
        .filter(|(_, action)| action == "deadline.reminder")
        .map(|(seq, _)| seq)
        .collect();
    assert_eq!(written.len(), 2, "one reminder per college: {written:?}");
    assert_eq!(heard_a, written, "the subscriber on A");
    assert_eq!(heard_b, written, "the subscriber on B");

    let _ = at_a.close(None).await;
    let _ = at_b.close(None).await;
    a.stop().await;
    b.stop().await;
    db.remove().await;
}

// ---------------------------------------------------------------------------------------------
// Login throttling
// ---------------------------------------------------------------------------------------------

const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";

async fn try_login(server: &TestServer, client: &str, email: &str, password: &str) -> Gql {
    server
        .gql_from(
            None,
            Some(client),
            LOGIN,
            json!({ "e": email, "p": password }),
        )
        .await
}

/// The failures of one account, and of one client address, spread over two replicas count
/// against one limit: the limit is reached at the configured total, not per process.
#[tokio::test]
async fn login_throttling_counts_the_failures_on_every_replica() {
    for_each_backend(|db| async move {
        let limits = |config: &mut ServerConfig| {
            config.auth.max_failures_per_account = 4;
            config.auth.max_failures_per_client = 6;
        };
        let a = TestServer::start_with(&db, limits).await;
        let b = TestServer::start_with(&db, limits).await;
        org(&a).await;
        let replicas = [&a, &b];

        // Per account: 4 failures, alternately on A and B, each from another address.
        let account = "chair_b@fixture.test";
        for attempt in 0..4 {
            try_login(
                replicas[attempt % 2],
                &format!("198.51.100.{attempt}"),
                account,
                "a wrong password",
            )
            .await
            .expect_code("UNAUTHENTICATED");
        }
        for replica in replicas {
            try_login(replica, "198.51.100.99", account, PASSWORD)
                .await
                .expect_code("TOO_MANY_REQUESTS");
        }

        // Per client: 6 failures from one address, for six accounts, alternately on A and B.
        let client = "203.0.113.7";
        let accounts = [
            "member_b",
            "member_h",
            "secretary_b",
            "secretary_h",
            "college_b",
            "college_h",
        ];
        for (attempt, key) in accounts.iter().enumerate() {
            try_login(
                replicas[attempt % 2],
                client,
                &format!("{key}@fixture.test"),
                "a wrong password",
            )
            .await
            .expect_code("UNAUTHENTICATED");
        }
        for replica in replicas {
            try_login(replica, client, "civil_b@fixture.test", PASSWORD)
                .await
                .expect_code("TOO_MANY_REQUESTS");
        }
        // Another address logs in to that account on either replica.
        for replica in replicas {
            try_login(replica, "203.0.113.8", "civil_b@fixture.test", PASSWORD)
                .await
                .data();
        }
        a.stop().await;
        b.stop().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Migrations
// ---------------------------------------------------------------------------------------------

async fn count(server: &TestServer, sql: &str) -> i64 {
    let row = server
        .db()
        .conn
        .query_one_raw(Statement::from_string(DatabaseBackend::Postgres, sql))
        .await
        .expect("a count")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("a number")
}

/// Three replicas start at the same moment on a fresh, empty PostgreSQL database: one
/// migrates while the others wait for its advisory lock, all start without an error, every
/// migration is applied once and no lock is left behind.
#[tokio::test]
async fn replicas_starting_together_migrate_an_empty_database_once() {
    let Some(db) = postgres("replicas_starting_together_migrate_an_empty_database_once").await
    else {
        return;
    };
    let (a, b, c) = tokio::join!(
        TestServer::start(&db.backend),
        TestServer::start(&db.backend),
        TestServer::start(&db.backend),
    );
    for server in [&a, &b, &c] {
        assert_eq!(
            server.db().pending_migrations().await.expect("pending"),
            Vec::<String>::new()
        );
        assert_eq!(server.get(None, "/readyz").await.status(), 200);
    }
    let applied = count(&a, "SELECT count(*) FROM seaql_migrations").await;
    let distinct = count(&a, "SELECT count(DISTINCT version) FROM seaql_migrations").await;
    assert!(applied > 0);
    assert_eq!(applied, distinct, "each migration recorded once");
    assert_eq!(
        count(
            &a,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        .await,
        0,
        "the migration lock is released"
    );
    // The schema works through every replica: an organisation made on A is seen on C.
    let org = org(&a).await;
    let id = Flow::new(&a, &org).propose_joint("Wegbeheer").await;
    assert_eq!(Flow::new(&c, &org).phase(&id).await, "PROPOSAL");
    for server in [a, b, c] {
        server.stop().await;
    }
    db.remove().await;
}

// ---------------------------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------------------------

/// Stopping a server ends its subscriptions cleanly: the subscriber is sent `complete` for its
/// subscription, then the socket is closed with 1001 (going away); a connection without a
/// subscription is closed the same way; the server stops promptly.
#[tokio::test]
async fn stopping_a_server_completes_its_subscriptions_and_closes_the_sockets() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let flow = Flow::new(&server, &org);
        let id = flow.propose_joint("Afvalinzameling").await;
        let mut subscribed = subscribe(&server, org.token("chair_b"), &id).await;
        until_live(&flow, &mut [&mut subscribed], &id).await;
        let mut idle = connect(&server, org.token("chair_h")).await;

        let started = tokio::time::Instant::now();
        let stopping = tokio::spawn(server.stop());
        let wait = Duration::from_secs(5);
        assert_eq!(
            hear(&mut subscribed, wait).await,
            Heard::Message(json!({ "type": "complete", "id": "1" }))
        );
        let going_away = Some(u16::from(CloseCode::Away));
        assert_eq!(hear(&mut subscribed, wait).await, Heard::Closed(going_away));
        assert_eq!(hear(&mut idle, wait).await, Heard::Closed(going_away));
        tokio::time::timeout(wait, stopping)
            .await
            .expect("the server stops")
            .expect("stop");
        assert!(started.elapsed() < wait, "{:?}", started.elapsed());
    })
    .await;
}

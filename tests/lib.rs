//! The end-to-end harness: a real server on a real database, spoken to over HTTP.
//!
//! Every test runs once on SQLite (a fresh file) and, when `RKFLOW_TEST_POSTGRES_URL` is set,
//! once on PostgreSQL (a fresh `CREATE DATABASE test_<uuid>`), so tests run in parallel.

use rkflow_server::RunningServer;
use rkflow_server::config::ServerConfig;
use rkflow_store::{Db, Origin, accounts};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use uuid::Uuid;

/// The password every fixture user has (the fixture stores one precomputed hash).
pub const PASSWORD: &str = "correct horse battery staple";

/// Which database a test runs on.
#[derive(Clone, Debug)]
pub struct Backend {
    pub label: &'static str,
    pub url: String,
}

/// A database for one test, removed afterwards.
pub struct TestDb {
    pub backend: Backend,
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let path = std::env::temp_dir().join(format!("rkflow-test-{}.db", Uuid::new_v4().simple()));
        TestDb {
            backend: Backend {
                label: "sqlite",
                url: format!("sqlite://{}?mode=rwc", path.display()),
            },
            cleanup: Cleanup::File(path),
        }
    }

    pub async fn postgres(admin_url: &str) -> TestDb {
        let name = format!("test_{}", Uuid::new_v4().simple());
        let admin = Db::connect(admin_url)
            .await
            .expect("connect to RKFLOW_TEST_POSTGRES_URL");
        admin
            .conn
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url, |(base, _)| base);
        TestDb {
            backend: Backend {
                label: "postgres",
                url: format!("{base}/{name}"),
            },
            cleanup: Cleanup::Postgres {
                admin_url: admin_url.to_string(),
                name,
            },
        }
    }

    pub async fn remove(self) {
        match self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                if let Ok(admin) = Db::connect(&admin_url).await {
                    let _ = admin
                        .conn
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    admin.close().await;
                }
            }
        }
    }
}

/// Runs `test` on SQLite and, when configured, on PostgreSQL.
pub async fn for_each_backend<F, Fut>(test: F)
where
    F: Fn(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut databases = vec![TestDb::sqlite().await];
    if let Ok(url) = std::env::var("RKFLOW_TEST_POSTGRES_URL")
        && !url.is_empty()
    {
        databases.push(TestDb::postgres(&url).await);
    }
    for db in databases {
        test(db.backend.clone()).await;
        db.remove().await;
    }
}

/// A GraphQL answer.
#[derive(Debug, Clone)]
pub struct Gql {
    pub status: u16,
    pub body: Value,
}

impl Gql {
    /// The data, failing the test when there are errors.
    pub fn data(&self) -> &Value {
        if let Some(errors) = self.body.get("errors") {
            panic!("unexpected errors: {errors}");
        }
        &self.body["data"]
    }

    /// The `extensions.code` of the first error.
    pub fn code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    pub fn message(&self) -> &str {
        self.body["errors"][0]["message"].as_str().unwrap_or("")
    }

    /// Asserts the first error's code and returns the answer.
    pub fn expect_code(&self, code: &str) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "expected {code}, got {} (status {})",
            self.body,
            self.status
        );
        self
    }
}

/// Every error carries the request id of its response in `extensions.requestId` (checked
/// here); it differs per request, so it is taken out, and answers can be compared whole (an
/// unknown email answers exactly like a wrong password).
fn take_request_ids(body: &mut Value, request_id: Option<&str>) {
    let Some(errors) = body.get_mut("errors").and_then(Value::as_array_mut) else {
        return;
    };
    for error in errors {
        let id = error
            .get_mut("extensions")
            .and_then(Value::as_object_mut)
            .and_then(|extensions| extensions.remove("requestId"));
        assert_eq!(
            id.as_ref().and_then(Value::as_str),
            request_id,
            "an error without the request id of its response: {error}"
        );
    }
}

/// A server for one test.
pub struct TestServer {
    pub server: RunningServer,
    pub base: String,
    pub http: reqwest::Client,
    pub label: &'static str,
}

impl TestServer {
    pub async fn start(db: &Backend) -> TestServer {
        TestServer::start_with(db, |_| {}).await
    }

    pub async fn start_with(db: &Backend, configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let mut config = ServerConfig::for_tests(&db.url);
        configure(&mut config);
        let server = rkflow_server::start(config, false)
            .await
            .expect("the server starts");
        TestServer {
            base: format!("http://{}", server.addr),
            server,
            http: reqwest::Client::new(),
            label: db.label,
        }
    }

    pub fn db(&self) -> &Db {
        &self.server.state.api.db
    }

    /// Stops the server after checking that every investigation's snapshot (the read model)
    /// holds what its tables hold, whatever the test did.
    pub async fn stop(self) {
        let differing = rkflow_store::snapshot::verify(self.db())
            .await
            .expect("the snapshots can be checked");
        assert!(
            differing.is_empty(),
            "{}: snapshots differ from their tables for {differing:?}",
            self.label
        );
        self.server.stop().await;
    }

    /// POSTs one operation as JSON.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Gql {
        self.gql_from(token, None, query, variables).await
    }

    /// POSTs one operation as JSON from a given client address (X-Forwarded-For).
    pub async fn gql_from(
        &self,
        token: Option<&str>,
        client: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Gql {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(client) = client {
            request = request.header("x-forwarded-for", client);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let mut body = response.json().await.unwrap_or(Value::Null);
        take_request_ids(&mut body, request_id.as_deref());
        Gql { status, body }
    }

    /// Logs in over GraphQL and returns the token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let answer = self
            .gql(
                None,
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
                json!({ "e": email, "p": password }),
            )
            .await;
        answer.data()["login"]["token"]
            .as_str()
            .expect("a token")
            .to_string()
    }

    /// GETs a path with an optional token.
    pub async fn get(&self, token: Option<&str>, path: &str) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{}", self.base, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("the server answers")
    }
}

/// One fixture user: id and a session token.
#[derive(Clone, Debug)]
pub struct Person {
    pub id: Uuid,
    pub email: String,
    pub token: String,
}

/// The fixture organisation: three municipalities, each with its own commission, and users in
/// every role. Bloemendaal (b) and Heemstede (h) run joint investigations; Haarlem (x) is the
/// outsider.
pub struct Org {
    pub municipalities: BTreeMap<&'static str, Uuid>,
    pub commissions: BTreeMap<&'static str, Uuid>,
    pub people: BTreeMap<&'static str, Person>,
}

impl Org {
    pub fn person(&self, key: &str) -> &Person {
        self.people
            .get(key)
            .unwrap_or_else(|| panic!("no fixture person {key}"))
    }

    pub fn token(&self, key: &str) -> &str {
        &self.person(key).token
    }

    pub fn commission(&self, key: &str) -> Uuid {
        self.commissions[key]
    }

    pub fn municipality(&self, key: &str) -> Uuid {
        self.municipalities[key]
    }
}

/// Fixture users: key, role, scope key ("b", "h", "x" or "" for none / global).
pub const PEOPLE: &[(&str, &str, &str)] = &[
    ("admin", "ADMIN", ""),
    ("chair_b", "CHAIR", "b"),
    ("chair_h", "CHAIR", "h"),
    ("chair_x", "CHAIR", "x"),
    ("member_b", "MEMBER", "b"),
    ("member_h", "MEMBER", "h"),
    ("secretary_b", "SECRETARY", "b"),
    ("secretary_h", "SECRETARY", "h"),
    ("college_b", "COLLEGE_CONTACT", "b"),
    ("college_h", "COLLEGE_CONTACT", "h"),
    ("college_x", "COLLEGE_CONTACT", "x"),
    ("civil_b", "CIVIL_SERVICE_CONTACT", "b"),
    ("civil_h", "CIVIL_SERVICE_CONTACT", "h"),
    ("griffier_b", "GRIFFIER", "b"),
    ("griffier_h", "GRIFFIER", "h"),
    ("council_b", "COUNCIL_MEMBER", "b"),
    ("council_h", "COUNCIL_MEMBER", "h"),
    ("external", "", ""),
    ("outsider", "", ""),
];

/// Builds the organisation directly in the store (fast: one argon2 hash for everybody, and
/// sessions created without a login round trip), as an operator's set-up would.
pub async fn org(server: &TestServer) -> Org {
    let db = server.db();
    let now = server.server.state.api.clock.now();
    let system = Origin {
        actor: None,
        client: Some("fixture".into()),
    };
    let hash = server
        .server
        .state
        .api
        .passwords
        .hash(PASSWORD)
        .await
        .map_err(|e| e.message)
        .expect("hash");
    let mut municipalities = BTreeMap::new();
    let mut commissions = BTreeMap::new();
    for (key, name) in [("b", "Bloemendaal"), ("h", "Heemstede"), ("x", "Haarlem")] {
        let m = rkflow_store::organisation::create_municipality(db, &system, now, name)
            .await
            .expect("municipality");
        let c = rkflow_store::organisation::create_commission(
            db,
            &system,
            now,
            &format!("Rekenkamercommissie {name}"),
            &[m.id],
        )
        .await
        .expect("commission");
        municipalities.insert(key, m.id);
        commissions.insert(key, c.commission.id);
    }
    let mut people = BTreeMap::new();
    for (key, role, scope) in PEOPLE {
        let email = format!("{key}@fixture.test");
        let user = accounts::create_user(db, &system, now, &email, key, &hash)
            .await
            .expect("user");
        if let Some(role) = rkflow_domain::Role::parse(role) {
            let scope = match role.scope_kind() {
                rkflow_domain::role::ScopeKind::Global => rkflow_domain::Scope::Global,
                rkflow_domain::role::ScopeKind::Commission => {
                    rkflow_domain::Scope::Commission(commissions[scope].into())
                }
                rkflow_domain::role::ScopeKind::Municipality => {
                    rkflow_domain::Scope::Municipality(municipalities[scope].into())
                }
            };
            accounts::grant_role(
                db,
                &system,
                now,
                user.id,
                rkflow_domain::Grant { role, scope },
            )
            .await
            .expect("grant");
        }
        let token = rkflow_api::auth::new_token()
            .map_err(|e| e.message)
            .expect("token");
        accounts::create_session(
            db,
            &system,
            now,
            user.id,
            &rkflow_api::auth::token_hash(&token),
            now + chrono::Duration::hours(12),
            &rkflow_api::auth::account_key(&email),
        )
        .await
        .expect("session");
        people.insert(
            *key,
            Person {
                id: user.id,
                email,
                token,
            },
        );
    }
    Org {
        municipalities,
        commissions,
        people,
    }
}

//! Metrics for `GET /metrics` in the Prometheus text format (0.0.4), with `prometheus-client`.
//! One [`Metrics`] per server: the GraphQL requests by operation and outcome, their
//! durations, the other HTTP routes, the database pool, the scheduler, logins and open
//! subscriptions. Label values are bounded: operations are root field names of the schema
//! (else `unknown`), outcomes are error codes, routes are route templates.

use async_graphql::parser::types::{ExecutableDocument, Selection};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use rkflow_api::auth::LoginOutcome;
use rkflow_api::documents::executed_operation;
use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The label value of an operation that is not a root field of the schema (or not known).
pub const UNKNOWN_OPERATION: &str = "unknown";

/// The buckets of the GraphQL duration histogram, in seconds (5 ms to 30 s).
const DURATION_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GraphqlLabels {
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// The server's metrics and the registry they are encoded from.
pub struct Metrics {
    registry: Registry,
    /// Root field names of the schema (query, mutation, subscription, introspection).
    operations: BTreeSet<String>,
    graphql_requests: Family<GraphqlLabels, Counter>,
    graphql_duration: Family<OperationLabels, Histogram>,
    http_requests: Family<HttpLabels, Counter>,
    pool_connections: Family<StateLabels, Gauge>,
    pool_max: Gauge,
    scheduler_lag: Gauge<f64, AtomicU64>,
    scheduler_passes: Family<OutcomeLabels, Counter>,
    /// When the scheduler last finished a pass without error (start-up before the first).
    scheduler_last_success: Mutex<Instant>,
    logins: Family<OutcomeLabels, Counter>,
    read_cache_lookups: CacheLookups,
    document_cache_lookups: CacheLookups,
    subscriptions: Gauge,
}

impl Metrics {
    /// The metrics of a server whose schema has this SDL (its root fields become the
    /// operation label values).
    pub fn new(sdl: &str) -> Metrics {
        let mut registry = Registry::with_prefix("rkflow");
        let graphql_requests = Family::<GraphqlLabels, Counter>::default();
        registry.register(
            "graphql_requests",
            "GraphQL requests by operation (first root field) and outcome (ok or the first error code)",
            graphql_requests.clone(),
        );
        let graphql_duration = Family::<OperationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS)
        });
        registry.register(
            "graphql_request_duration_seconds",
            "Time to answer a GraphQL request, by operation",
            graphql_duration.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests other than GraphQL operations (files, probes, GraphiQL, subscriptions, metrics) by route and status",
            http_requests.clone(),
        );
        let pool_connections = Family::<StateLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections by state (idle, in_use)",
            pool_connections.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "Largest number of connections the database pool opens",
            pool_max.clone(),
        );
        let scheduler_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "scheduler_lag_seconds",
            "Seconds since the deadline scheduler last finished a pass without error",
            scheduler_lag.clone(),
        );
        let scheduler_passes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "scheduler_passes",
            "Deadline scheduler passes by outcome (ok, error)",
            scheduler_passes.clone(),
        );
        let logins = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "logins",
            "Login attempts by outcome (success, failure, throttled)",
            logins.clone(),
        );
        let read_cache_lookups = CacheLookups::register(
            &mut registry,
            "read_cache_lookups",
            "Investigations looked up in the read cache by outcome (hit: reused; miss: decoded)",
        );
        let document_cache_lookups = CacheLookups::register(
            &mut registry,
            "document_cache_lookups",
            "GraphQL documents looked up in the document cache by outcome (hit: copied; miss: parsed)",
        );
        let subscriptions = Gauge::default();
        registry.register(
            "subscriptions_active",
            "Open GraphQL subscription (WebSocket) connections",
            subscriptions.clone(),
        );
        registry.register(
            "build",
            "The running rkflow version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        // Present from the first scrape, so that alerts on them need no absent() clause.
        for outcome in ["success", "failure", "throttled"] {
            let _ = logins.get_or_create(&OutcomeLabels { outcome });
        }
        for outcome in ["ok", "error"] {
            let _ = scheduler_passes.get_or_create(&OutcomeLabels { outcome });
        }
        Metrics {
            registry,
            operations: root_fields(sdl),
            graphql_requests,
            graphql_duration,
            http_requests,
            pool_connections,
            pool_max,
            scheduler_lag,
            scheduler_passes,
            scheduler_last_success: Mutex::new(Instant::now()),
            logins,
            read_cache_lookups,
            document_cache_lookups,
            subscriptions,
        }
    }

    /// The operation label for a root field name: the name when the schema has it.
    pub fn operation_label<'a>(&'a self, root_field: Option<&'a str>) -> &'a str {
        match root_field {
            Some(name) if self.operations.contains(name) => name,
            _ => UNKNOWN_OPERATION,
        }
    }

    /// Counts one answered GraphQL request.
    pub fn graphql_request(&self, operation: &str, outcome: &str, elapsed: Duration) {
        self.graphql_requests
            .get_or_create(&GraphqlLabels {
                operation: operation.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.graphql_duration
            .get_or_create(&OperationLabels {
                operation: operation.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one answered HTTP request of a route other than `POST /graphql`.
    pub fn http_request(&self, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_string(),
                status,
            })
            .inc();
    }

    /// Counts one scheduler pass.
    pub fn scheduler_pass(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.scheduler_passes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        if ok && let Ok(mut last) = self.scheduler_last_success.lock() {
            *last = Instant::now();
        }
    }

    /// Counts one login.
    pub fn login(&self, outcome: LoginOutcome) {
        let outcome = match outcome {
            LoginOutcome::Success => "success",
            LoginOutcome::Failure => "failure",
            LoginOutcome::Throttled => "throttled",
        };
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Marks a subscription connection open until the guard is dropped.
    pub fn subscription_opened(self: &Arc<Self>) -> SubscriptionGuard {
        self.subscriptions.inc();
        SubscriptionGuard(self.clone())
    }

    /// The text to serve: the values read now (pool, scheduler lag, the read cache's and the
    /// document cache's `(hits, misses)` since start), then every metric.
    pub fn render(
        &self,
        pool: Option<PoolState>,
        read_cache: (u64, u64),
        documents: (u64, u64),
    ) -> String {
        if let Some(pool) = pool {
            self.pool_connections
                .get_or_create(&StateLabels { state: "idle" })
                .set(pool.idle);
            self.pool_connections
                .get_or_create(&StateLabels { state: "in_use" })
                .set(pool.in_use);
            self.pool_max.set(pool.max);
        }
        if let Ok(last) = self.scheduler_last_success.lock() {
            self.scheduler_lag.set(last.elapsed().as_secs_f64());
        }
        self.read_cache_lookups.catch_up(read_cache);
        self.document_cache_lookups.catch_up(documents);
        let mut text = String::new();
        if prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry).is_err()
        {
            tracing::error!("encoding the metrics failed");
        }
        text
    }
}

/// A cache's lookups by outcome (hit, miss), counted by the cache itself and carried over at
/// each scrape.
struct CacheLookups {
    counters: Family<OutcomeLabels, Counter>,
    /// The cache's (hits, misses) at the last scrape.
    seen: Mutex<(u64, u64)>,
}

impl CacheLookups {
    fn register(registry: &mut Registry, name: &str, help: &str) -> CacheLookups {
        let counters = Family::<OutcomeLabels, Counter>::default();
        registry.register(name, help, counters.clone());
        // Present from the first scrape, so that alerts on them need no absent() clause.
        for outcome in ["hit", "miss"] {
            let _ = counters.get_or_create(&OutcomeLabels { outcome });
        }
        CacheLookups {
            counters,
            seen: Mutex::new((0, 0)),
        }
    }

    /// Adds what the cache counted since the last scrape.
    fn catch_up(&self, (hits, misses): (u64, u64)) {
        if let Ok(mut seen) = self.seen.lock() {
            for (outcome, now, before) in [("hit", hits, seen.0), ("miss", misses, seen.1)] {
                self.counters
                    .get_or_create(&OutcomeLabels { outcome })
                    .inc_by(now.saturating_sub(before));
            }
            *seen = (hits.max(seen.0), misses.max(seen.1));
        }
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Keeps `rkflow_subscriptions_active` raised while a subscription connection is open.
pub struct SubscriptionGuard(Arc<Metrics>);

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.0.subscriptions.dec();
    }
}

/// The database pool's connections at one moment.
#[derive(Clone, Copy, Debug)]
pub struct PoolState {
    pub idle: i64,
    pub in_use: i64,
    pub max: i64,
}

impl PoolState {
    /// Reads the sqlx pool behind a sea-orm connection.
    pub fn of(conn: &sea_orm::DatabaseConnection) -> Option<PoolState> {
        fn state(size: u32, idle: usize, max: u32) -> PoolState {
            let idle = i64::try_from(idle).unwrap_or(i64::MAX);
            PoolState {
                idle,
                in_use: (i64::from(size) - idle).max(0),
                max: i64::from(max),
            }
        }
        match conn.get_database_backend() {
            sea_orm::DatabaseBackend::Sqlite => {
                let pool = conn.get_sqlite_connection_pool();
                Some(state(
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                ))
            }
            sea_orm::DatabaseBackend::Postgres => {
                let pool = conn.get_postgres_connection_pool();
                Some(state(
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                ))
            }
            _ => None,
        }
    }
}

/// The root field names of a schema's SDL, plus the introspection fields.
fn root_fields(sdl: &str) -> BTreeSet<String> {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let mut names: BTreeSet<String> = ["__schema", "__type", "__typename"]
        .into_iter()
        .map(str::to_string)
        .collect();
    let Ok(document) = async_graphql::parser::parse_schema(sdl) else {
        return names;
    };
    for definition in document.definitions {
        if let TypeSystemDefinition::Type(definition) = definition
            && matches!(
                definition.node.name.node.as_str(),
                "Query" | "Mutation" | "Subscription"
            )
            && let TypeKind::Object(object) = definition.node.kind
        {
            names.extend(
                object
                    .fields
                    .into_iter()
                    .map(|field| field.node.name.node.to_string()),
            );
        }
    }
    names
}

/// Where the operation label of a request is noted once its document is parsed (the handler
/// keeps one copy, the request's check notes it in another).
#[derive(Clone, Debug, Default)]
pub struct OperationSlot {
    /// The `operationName` of the request.
    wanted: Option<String>,
    /// The label: the executed operation's first root field, or `unknown`.
    label: Arc<OnceLock<String>>,
}

impl OperationSlot {
    /// A copy for the request data, for the operation the request names.
    pub fn for_operation(&self, operation_name: Option<&str>) -> OperationSlot {
        OperationSlot {
            wanted: operation_name.map(str::to_string),
            label: self.label.clone(),
        }
    }

    /// The label, once the document was parsed.
    pub fn label(&self) -> Option<&str> {
        self.label.get().map(String::as_str)
    }

    /// Notes the label (the executed operation's first root field when the schema has it)
    /// here and on the request's span, right after parsing: also when a check then refuses
    /// the document, and before any resolver logs.
    pub fn record(&self, metrics: &Metrics, document: &ExecutableDocument) {
        let first = first_root_field(document, self.wanted.as_deref());
        let label = metrics.operation_label(first.as_deref());
        tracing::Span::current().record("operation", label);
        let _ = self.label.set(label.to_string());
    }
}

/// The first root field (by name, not alias) of the operation a request executes; fragments
/// are followed.
pub fn first_root_field(document: &ExecutableDocument, wanted: Option<&str>) -> Option<String> {
    let operation = executed_operation(document, wanted)?;
    fn first(
        document: &ExecutableDocument,
        set: &async_graphql::parser::types::SelectionSet,
        depth: usize,
    ) -> Option<String> {
        if depth > 16 {
            return None;
        }
        set.items
            .iter()
            .find_map(|selection| match &selection.node {
                Selection::Field(field) => Some(field.node.name.node.to_string()),
                Selection::InlineFragment(fragment) => {
                    first(document, &fragment.node.selection_set.node, depth + 1)
                }
                Selection::FragmentSpread(spread) => document
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .and_then(|fragment| {
                        first(document, &fragment.node.selection_set.node, depth + 1)
                    }),
            })
    }
    first(document, &operation.node.selection_set.node, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_root_fields_of_the_schema() {
        let metrics = Metrics::new(&rkflow_api::schema::sdl());
        assert_eq!(metrics.operation_label(Some("login")), "login");
        assert_eq!(
            metrics.operation_label(Some("investigations")),
            "investigations"
        );
        assert_eq!(metrics.operation_label(Some("__schema")), "__schema");
        assert_eq!(
            metrics.operation_label(Some("noSuchField")),
            UNKNOWN_OPERATION
        );
        assert_eq!(metrics.operation_label(None), UNKNOWN_OPERATION);
    }

    #[test]
    fn the_first_root_field_of_the_executed_operation() {
        let parse = |query: &str| async_graphql::parser::parse_query(query).expect("parses");
        let document = parse("{ me { id } investigations(first: 1) { totalCount } }");
        assert_eq!(first_root_field(&document, None).as_deref(), Some("me"));
        let document = parse("mutation M { a: login(email: \"x\", password: \"y\") { token } }");
        assert_eq!(first_root_field(&document, None).as_deref(), Some("login"));
        let document =
            parse("query A { me { id } } query B { ...F } fragment F on Query { sessions { id } }");
        assert_eq!(
            first_root_field(&document, Some("B")).as_deref(),
            Some("sessions")
        );
        assert_eq!(first_root_field(&document, Some("C")), None);
        assert_eq!(first_root_field(&document, None), None);
        let document = parse("{ ... on Query { me { id } } }");
        assert_eq!(first_root_field(&document, None).as_deref(), Some("me"));
    }

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::new(&rkflow_api::schema::sdl());
        metrics.graphql_request("login", "ok", Duration::from_millis(30));
        metrics.http_request("/healthz", 200);
        metrics.login(LoginOutcome::Failure);
        let pool = Some(PoolState {
            idle: 1,
            in_use: 2,
            max: 8,
        });
        metrics.render(pool, (3, 1), (7, 2));
        let text = metrics.render(pool, (5, 2), (9, 3));
        for line in [
            "rkflow_read_cache_lookups_total{outcome=\"hit\"} 5",
            "rkflow_read_cache_lookups_total{outcome=\"miss\"} 2",
            "rkflow_document_cache_lookups_total{outcome=\"hit\"} 9",
            "rkflow_document_cache_lookups_total{outcome=\"miss\"} 3",
            "rkflow_graphql_requests_total{operation=\"login\",outcome=\"ok\"} 1",
            "rkflow_graphql_request_duration_seconds_bucket{operation=\"login\",le=\"0.05\"} 1",
            "rkflow_http_requests_total{route=\"/healthz\",status=\"200\"} 1",
            "rkflow_logins_total{outcome=\"failure\"} 1",
            "rkflow_logins_total{outcome=\"success\"} 0",
            "rkflow_db_pool_connections{state=\"in_use\"} 2",
            "rkflow_db_pool_max_connections 8",
            "rkflow_build_info{version=\"",
            "# TYPE rkflow_scheduler_lag_seconds gauge",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}

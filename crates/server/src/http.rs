//! HTTP: the routes, our own GraphQL request handling (content types, size limits, no
//! batches, errors that always carry a code and never Debug text), downloads, probes and
//! metrics.

use crate::AppState;
use crate::metrics::{OperationSlot, PoolState, UNKNOWN_OPERATION};
use crate::request_id;
use async_graphql::http::{GraphiQLSource, MultipartOptions};
use async_graphql::parser::types::OperationType;
use async_graphql::{Data, ServerError};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Path, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rkflow_api::context::{Loaders, RequestContext};
use rkflow_api::documents::{KnownDocument, executed_operation};
use rkflow_api::error::{ApiError, Code};
use rkflow_api::{auth, files};
use rkflow_store::ReadView;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// Largest JSON request body: a long Markdown report fits.
pub const MAX_JSON_BODY: usize = 2 * 1024 * 1024;
/// Largest multipart request body: one 25 MiB upload plus the operation.
pub const MAX_MULTIPART_BODY: usize = rkflow_domain::content::MAX_UPLOAD_BYTES + 1024 * 1024;

pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.config.cors_origins);
    let mut routes = Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(subscriptions))
        .route("/files/versions/{id}", get(download_version))
        .route("/files/bundles/{id}", get(download_bundle))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if state.config.metrics && state.config.metrics_listen.is_none() {
        routes = routes.route("/metrics", get(serve_metrics));
    }
    let router = routes
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        )
        .with_state(state);
    match cors {
        Some(cors) => router.layer(cors).layer(axum::middleware::map_response(
            cors_only_for_allowed_origins,
        )),
        None => router,
    }
}

/// The router of the separate metrics listener (`RKFLOW_METRICS_LISTEN`): `/metrics` only.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(state)
}

/// `GET /metrics`: Prometheus text, read at the moment of the scrape.
async fn serve_metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics.render(
        PoolState::of(&state.api.db.conn),
        state.api.db.read_cache.hits_and_misses(),
        state.schema.documents.hits_and_misses(),
    );
    (
        [
            (header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

/// What a GraphQL answer was, for the metrics: the first error's code or `ok`.
#[derive(Clone, Copy, Debug)]
struct Outcome(&'static str);

/// The operation label of a GraphQL answer.
#[derive(Clone, Debug)]
struct OperationLabel(String);

/// Counts every request: `POST /graphql` by operation and outcome (with its duration), every
/// other route by its template and status. Outside the panic catcher, so a panic counts too.
async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string());
    let graphql = request.method() == Method::POST && route.as_deref() == Some("/graphql");
    let response = next.run(request).await;
    if graphql {
        let operation = response
            .extensions()
            .get::<OperationLabel>()
            .map_or(UNKNOWN_OPERATION, |label| label.0.as_str());
        let outcome = response.extensions().get::<Outcome>().map_or(
            if response.status().is_success() {
                "ok"
            } else {
                Code::Internal.as_str()
            },
            |outcome| outcome.0,
        );
        state
            .metrics
            .graphql_request(operation, outcome, started.elapsed());
    } else {
        state.metrics.http_request(
            route.as_deref().unwrap_or("unmatched"),
            response.status().as_u16(),
        );
    }
    response
}

/// tower-http answers every preflight with the allowed methods and headers and leaves out only
/// Access-Control-Allow-Origin for an origin it does not allow. A browser refuses such an
/// answer anyway; here such an origin gets no CORS headers at all.
async fn cors_only_for_allowed_origins(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        for name in [
            header::ACCESS_CONTROL_ALLOW_METHODS,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            header::ACCESS_CONTROL_MAX_AGE,
        ] {
            headers.remove(name);
        }
    }
    response
}

/// CORS for the configured browser origins only: GET and POST, the Authorization and
/// Content-Type headers, no cookies (tokens travel in the header).
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::Internal,
        "internal error",
    )
}

/// A GraphQL-shaped error body, with the request id.
fn error_response(status: StatusCode, code: Code, message: &str) -> Response {
    let mut extensions = json!({ "code": code.as_str() });
    if let Some(id) = request_id::current() {
        extensions["requestId"] = json!(id);
    }
    let mut response = (
        status,
        Json(json!({ "errors": [{ "message": message, "extensions": extensions }] })),
    )
        .into_response();
    response.extensions_mut().insert(Outcome(code.as_str()));
    response
}

/// Marks an answer given before the request's body was read to its end (a refused content
/// type, a body over the limit): the server closes the connection after it, and says so
/// (`Connection: close`, RFC 9112 §9.6), so that the client does not send its next request on
/// a connection that is about to close. (hyper closes such a connection anyway when the rest
/// of the body has not arrived yet, without saying so: a client that reused it then lost its
/// next request, which the fuzz test in `tests/e2e/robustness.rs` met once.)
fn closing_connection(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn api_error_response(err: ApiError) -> Response {
    let status = match err.code {
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Forbidden => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::BadUserInput => StatusCode::BAD_REQUEST,
        Code::Conflict => StatusCode::CONFLICT,
        Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_response(status, err.code, &err.message)
}

async fn healthz() -> &'static str {
    "ok"
}

/// Whether the database answers within a second.
///
/// One failed ping is not yet an outage: the connection it used may have died a moment ago
/// (`pg_terminate_backend`, a backend that crashed) and a connection the pool opened to replace
/// such a one can be ended by the same sweep. The pool drops a connection whose ping fails, so
/// the next attempt runs on another; only a database that answers none within the second is
/// unreachable.
async fn database_reachable(state: &AppState) -> bool {
    let attempts = async {
        loop {
            if state.api.db.ping().await {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(1), attempts)
        .await
        .is_ok()
}

async fn readyz(State(state): State<AppState>) -> Response {
    if database_reachable(&state).await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
    }
}

/// An internal failure while the database is unreachable is an outage: 503 with Retry-After,
/// so that clients and load balancers back off instead of treating it as a bug.
async fn outage(state: &AppState) -> Option<Response> {
    if database_reachable(state).await {
        return None;
    }
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::Internal,
        "the database is unreachable; try again shortly",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    Some(response)
}

async fn graphiql(State(state): State<AppState>) -> Response {
    if !state.config.graphiql {
        return StatusCode::NOT_FOUND.into_response();
    }
    let page = GraphiQLSource::build()
        .endpoint("/graphql")
        .subscription_endpoint("/graphql/ws")
        .title("rkflow GraphiQL")
        .finish();
    let mut response = Html(page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The client address: the socket peer, or the first X-Forwarded-For entry when configured.
fn client_address(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> String {
    if state.config.trust_forwarded_for
        && let Some(forwarded) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 64)
    {
        return forwarded.to_string();
    }
    peer.ip().to_string()
}

fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::new(Code::Unauthenticated, "malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::new(
            Code::Unauthenticated,
            "use Authorization: Bearer <token>",
        )),
    }
}

/// Builds the request context from the headers: the session (when a token is sent, read
/// through the request's view) and the client address.
async fn request_context(
    state: &AppState,
    view: &ReadView,
    headers: &HeaderMap,
    client: String,
) -> Result<RequestContext, ApiError> {
    let token = bearer_token(headers)?;
    let session =
        auth::resolve_session(view, &state.api.auth, state.api.clock.now(), token).await?;
    Ok(RequestContext {
        session,
        client: Some(client),
        request_id: request_id::current().unwrap_or_else(request_id::generate),
        reads: Default::default(),
    })
}

/// The request context outside GraphQL over HTTP (downloads, the WebSocket upgrade): the
/// session read through the pool, its activity recorded at once.
async fn pooled_request_context(
    state: &AppState,
    headers: &HeaderMap,
    client: String,
) -> Result<RequestContext, ApiError> {
    let view = ReadView::pooled(&state.api.db);
    let context = request_context(state, &view, headers, client).await?;
    if let Some(session) = &context.session {
        auth::keep_alive(&state.api.db, session, state.api.clock.now()).await?;
    }
    Ok(context)
}

/// The `extensions.code` of an error (empty when it has none).
fn code_of(error: &ServerError) -> String {
    let code = error
        .extensions
        .as_ref()
        .and_then(|extensions| extensions.get("code"))
        .map(|code| code.to_string())
        .unwrap_or_default();
    code.trim_matches('"').to_string()
}

/// Denied requests (no session, refused, hidden, throttled) are logged on the security
/// target with who and from where, so that peaks can be watched; never with arguments.
fn log_denials(errors: &[ServerError], origin: &rkflow_store::Origin) {
    for error in errors {
        let code = code_of(error);
        let code = code.as_str();
        if matches!(
            code,
            "UNAUTHENTICATED" | "FORBIDDEN" | "NOT_FOUND" | "TOO_MANY_REQUESTS"
        ) {
            let path: Vec<String> = error
                .path
                .iter()
                .map(|segment| match segment {
                    async_graphql::PathSegment::Field(name) => name.clone(),
                    async_graphql::PathSegment::Index(index) => index.to_string(),
                })
                .collect();
            tracing::info!(
                target: "rkflow::security",
                code,
                field = %path.join("."),
                user = ?origin.actor,
                client = origin.client.as_deref().unwrap_or(""),
                "request denied"
            );
        }
    }
}

/// Every error leaves with a code (errors from parsing, validation and limits, which
/// async-graphql raises without one, are BAD_USER_INPUT) and the request id.
fn ensure_codes(errors: &mut [ServerError], request_id: &str) {
    for error in errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", Code::BadUserInput.as_str());
        }
        extensions.set("requestId", request_id);
    }
}

/// The outcome label of an executed operation: `ok`, or the first error's code.
fn outcome_of(errors: &[ServerError]) -> &'static str {
    let Some(error) = errors.first() else {
        return "ok";
    };
    let code = code_of(error);
    [
        Code::Unauthenticated,
        Code::Forbidden,
        Code::NotFound,
        Code::BadUserInput,
        Code::Conflict,
        Code::TooManyRequests,
    ]
    .into_iter()
    .map(Code::as_str)
    .find(|known| *known == code)
    .unwrap_or(Code::Internal.as_str())
}

/// `POST /graphql`; the answer carries the operation label for [`count_requests`].
async fn graphql(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let slot = OperationSlot::default();
    let mut response = execute_graphql(&state, peer, &headers, body, &slot).await;
    let label = slot.label().unwrap_or(UNKNOWN_OPERATION).to_string();
    response.extensions_mut().insert(OperationLabel(label));
    response
}

async fn execute_graphql(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
    slot: &OperationSlot,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let multipart = content_type.starts_with("multipart/form-data");
    let json = content_type.starts_with("application/json")
        || content_type.starts_with("application/graphql-response+json");
    if !multipart && !json {
        return closing_connection(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::BadUserInput,
            "send operations as application/json (or multipart/form-data for uploads)",
        ));
    }
    let limit = if multipart {
        MAX_MULTIPART_BODY
    } else {
        MAX_JSON_BODY
    };
    let bytes: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) if multipart => return closing_connection(upload_too_large()),
        Err(_) => {
            return closing_connection(error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::BadUserInput,
                &format!("the request body exceeds {limit} bytes"),
            ));
        }
    };
    let request = if json {
        if bytes.first() == Some(&b'[') {
            return error_response(
                StatusCode::BAD_REQUEST,
                Code::BadUserInput,
                "batched operations are not accepted; send one operation per request",
            );
        }
        match serde_json::from_slice::<async_graphql::Request>(&bytes) {
            Ok(request) => request,
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    Code::BadUserInput,
                    "the body is not a GraphQL request in JSON",
                );
            }
        }
    } else {
        // Each part at most one upload; the whole body is bounded above. (A files limit here
        // would cap the whole stream, operation and map included, at one upload's size, so a
        // file of exactly 25 MiB would be refused.)
        let options =
            MultipartOptions::default().max_file_size(rkflow_domain::content::MAX_UPLOAD_BYTES);
        match async_graphql::http::receive_body(
            Some(&content_type),
            futures::io::Cursor::new(bytes),
            options,
        )
        .await
        {
            Ok(request) => request,
            Err(async_graphql::ParseRequestError::PayloadTooLarge) => return upload_too_large(),
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    Code::BadUserInput,
                    "the body is not a GraphQL multipart request",
                );
            }
        }
    };
    let slot = slot.for_operation(request.operation_name.as_deref());
    let mut request = request;
    // A query reads everything in one read transaction (one connection, one moment of the
    // database); mutations write on connections of their own (`rkflow_store::reads`).
    let mut query = false;
    let mut known = KnownDocument::default();
    let operation_name = request.operation_name.clone();
    if let Ok((document, kept)) = state.schema.parse(&mut request) {
        slot.record(&state.metrics, document);
        query = executed_operation(document, operation_name.as_deref())
            .is_some_and(|operation| operation.node.ty == OperationType::Query);
        known = kept;
    }
    let view = Arc::new(if query {
        ReadView::snapshot(&state.api.db)
    } else {
        ReadView::pooled(&state.api.db)
    });
    let client = client_address(state, headers, peer);
    let context = request_context(state, &view, headers, client).await;
    let context = match context {
        Ok(context) => context,
        Err(err) => {
            view.finish().await;
            if err.code == Code::Internal
                && let Some(response) = outage(state).await
            {
                return response;
            }
            return api_error_response(err);
        }
    };
    let reads = context.reads.clone();
    let origin = context.origin();
    let request_id = context.request_id.clone();
    let session = context.session.clone();
    let (loaders, loads) = Loaders::driven(view.clone());
    let request = request.data(context).data(loaders);
    // The request's loads run in this task, when the execution waits for them (`LoadQueue`).
    let execution = loads.execute(state.schema.execute_parsed(request, known));
    let executed = tokio::time::timeout(state.config.request_timeout, execution).await;
    // The reads have ended before anything below waits for a pooled connection.
    view.finish().await;
    let Ok(mut response) = executed else {
        tracing::warn!("a GraphQL request exceeded the request timeout");
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal,
            &format!(
                "the request took longer than {} s and was stopped",
                state.config.request_timeout.as_secs()
            ),
        );
    };
    if let Some(session) = &session
        && let Err(err) = auth::keep_alive(&state.api.db, session, state.api.clock.now()).await
    {
        tracing::error!(
            code = err.code.as_str(),
            "recording the session's activity failed"
        );
    }
    if let Err(err) = reads.flush(&state.api, &origin).await {
        tracing::error!(code = err.code.as_str(), "auditing content reads failed");
    }
    ensure_codes(&mut response.errors, &request_id);
    log_denials(&response.errors, &origin);
    let internal = response.errors.iter().any(|error| {
        error
            .extensions
            .as_ref()
            .and_then(|extensions| extensions.get("code"))
            .is_some_and(|code| code.to_string().contains("INTERNAL"))
    });
    if internal && let Some(outage) = outage(state).await {
        return outage;
    }
    let outcome = outcome_of(&response.errors);
    let mut http = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        rkflow_api::json::to_json(&response),
    )
        .into_response();
    http.extensions_mut().insert(Outcome(outcome));
    http.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    http
}

/// An upload over the limit (refused before anything is stored).
fn upload_too_large() -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        Code::BadUserInput,
        &format!(
            "file: at most {} bytes (25 MiB) are accepted",
            rkflow_domain::content::MAX_UPLOAD_BYTES
        ),
    )
}

async fn subscriptions(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let client = client_address(&state, &headers, peer);
    // A token may come in the upgrade request or in the connection_init payload.
    let header_context = match pooled_request_context(&state, &headers, client.clone()).await {
        Ok(context) => context,
        Err(err) => return api_error_response(err),
    };
    let schema = state.schema.clone();
    let metrics = state.metrics.clone();
    upgrade
        .protocols(["graphql-transport-ws", "graphql-ws"])
        .on_upgrade(move |socket| async move {
            let _open = metrics.subscription_opened();
            // Ends cleanly at shutdown: `complete` for each subscription, then close (1001).
            let (sink, stream) = state.shutdown.websocket(socket);
            GraphQLWebSocket::new_with_pair(sink, stream, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let mut context = header_context;
                    let token = payload
                        .get("Authorization")
                        .or_else(|| payload.get("authorization"))
                        .and_then(|v| v.as_str())
                        .map(|v| v.trim_start_matches("Bearer ").trim().to_string())
                        .or_else(|| {
                            payload
                                .get("token")
                                .and_then(|v| v.as_str())
                                .map(str::to_string)
                        });
                    if let Some(token) = token {
                        let now = state.api.clock.now();
                        context.session = auth::resolve_session(
                            &state.api.db,
                            &state.api.auth,
                            now,
                            Some(&token),
                        )
                        .await
                        .map_err(async_graphql::Error::from)?;
                        if let Some(session) = &context.session {
                            auth::keep_alive(&state.api.db, session, now)
                                .await
                                .map_err(async_graphql::Error::from)?;
                        }
                    }
                    // A subscription lives for long: it reads through the pool.
                    let mut data = Data::default();
                    data.insert(Loaders::spawned(Arc::new(ReadView::pooled(&state.api.db))));
                    data.insert(context);
                    Ok(data)
                })
                .serve()
                .await
        })
}

async fn download_version(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let client = client_address(&state, &headers, peer);
    let context = match pooled_request_context(&state, &headers, client).await {
        Ok(context) => context,
        Err(err) => return api_error_response(err),
    };
    let Ok(version_id) = Uuid::parse_str(&id) else {
        return api_error_response(ApiError::not_found());
    };
    match files::version_download(&state.api, &context.actor(), &context.origin(), version_id).await
    {
        Ok(download) => {
            let mut response = Response::new(Body::from(download.bytes));
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&download.version.media_type) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            let disposition = format!(
                "attachment; filename=\"{}\"",
                download.file_name.replace(['"', '\\'], "_")
            );
            if let Ok(value) = HeaderValue::from_str(&disposition) {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            );
            if let Ok(value) = HeaderValue::from_str(&download.version.sha256) {
                headers.insert("x-content-sha256", value);
            }
            response
        }
        Err(err) => api_error_response(err),
    }
}

async fn download_bundle(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(submission_id) = Uuid::parse_str(&id) else {
        return api_error_response(ApiError::not_found());
    };
    match files::bundle_download(&state.api, submission_id).await {
        Ok(bundle) => {
            let mut response = Response::new(Body::from(bundle.bytes));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            );
            if let Ok(value) =
                HeaderValue::from_str(&format!("attachment; filename=\"{}\"", bundle.file_name))
            {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            if let Ok(value) = HeaderValue::from_str(&bundle.manifest_sha256) {
                headers.insert("x-manifest-sha256", value);
            }
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            );
            // Public and never changing once submitted.
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600, immutable"),
            );
            response
        }
        Err(err) => api_error_response(err),
    }
}

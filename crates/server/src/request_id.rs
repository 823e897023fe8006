//! Request ids: every request gets one (the client's `X-Request-Id` when it is valid, else a
//! new one), every response carries it back, the request's tracing span carries it (so every
//! log line of the request shows it, in text and JSON), and error bodies carry it in
//! `extensions.requestId`.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The header in both directions.
pub const HEADER: &str = "x-request-id";

/// Longest id accepted from a client.
pub const MAX_LEN: usize = 64;

tokio::task_local! {
    static CURRENT: String;
}

/// The request id (also in the request's extensions).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Whether a client's id may be used: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new id: 32 hex digits.
pub fn generate() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The id of the request being handled (none outside a request).
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Middleware (outermost): decides the id, puts it in the request (header and extensions) and
/// in scope for [`current`], and sets it on the response.
pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_valid(value))
        .map_or_else(generate, str::to_string);
    let value = HeaderValue::from_str(&id).expect("an id is a valid header value");
    request.headers_mut().insert(HEADER, value.clone());
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = CURRENT.scope(id, next.run(request)).await;
    response.headers_mut().insert(HEADER, value);
    response
}

/// The span of one request: method, path, route and request id at INFO, so that every event
/// of the request (at any level that is logged) carries them; `operation` is filled in by the
/// GraphQL handler. With trace export on, it is the request's server span.
pub fn make_span(request: &Request) -> tracing::Span {
    let id = request
        .extensions()
        .get::<RequestId>()
        .map_or("", |id| id.0.as_str());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| request.uri().path(), MatchedPath::as_str);
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
        operation = tracing::field::Empty,
        otel.name = %format!("{} {route}", request.method()),
        otel.kind = "server",
        http.response.status_code = tracing::field::Empty,
    )
}

/// Records the status on the request's span (then logs as tower-http does by default).
pub fn on_response(response: &Response, latency: std::time::Duration, span: &tracing::Span) {
    span.record("http.response.status_code", response.status().as_u16());
    tower_http::trace::OnResponse::on_response(
        tower_http::trace::DefaultOnResponse::default(),
        response,
        latency,
        span,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids() {
        assert!(is_valid("abc-DEF_123"));
        assert!(is_valid(&"a".repeat(64)));
        assert!(!is_valid(&"a".repeat(65)));
        assert!(!is_valid(""));
        assert!(!is_valid("a b"));
        assert!(!is_valid("a;b"));
        assert!(!is_valid("é"));
        assert!(is_valid(&generate()));
    }
}

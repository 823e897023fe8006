//! Parsed GraphQL documents, kept by their text.
//!
//! A front-end sends the same few operations over and over, with other variables. Parsing one
//! costs far more than copying its parsed form: the 60-field investigation query of the
//! benchmark (W2) takes about 250 µs to parse and 6 µs to copy (BENCHMARKS.md), a seventh of
//! the server's CPU per request. So [`DocumentCache`] keeps the parsed documents of the texts it
//! has seen, and a request with a known text gets a copy instead of a parse.
//!
//! Bounded: texts over [`MAX_KEPT_TEXT_BYTES`] are parsed and not kept, and the kept texts
//! together stay under [`MAX_KEPT_BYTES`]; a text that would pass that starts the cache over
//! (a front-end's operations fill it again within their next requests; a client that sends
//! ever new texts only ever costs the parse it would have cost anyway). Only documents that
//! parse are kept, so a syntax error is answered the same way every time. Validation, the
//! document limits and execution run on every request as before: only the text → tree step is
//! saved.

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The longest text that is kept (a large front-end operation is 2–4 KB).
pub const MAX_KEPT_TEXT_BYTES: usize = 16 * 1024;
/// The kept texts together: about a hundred operations of front-end size. Their parsed trees
/// take a few times as much, so the cache stays within a few megabytes.
pub const MAX_KEPT_BYTES: usize = 256 * 1024;

/// Parsed documents by text, with the number of hits and misses since start.
#[derive(Default)]
pub struct DocumentCache {
    kept: Mutex<Kept>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Kept {
    documents: HashMap<String, Arc<ExecutableDocument>>,
    text_bytes: usize,
}

impl DocumentCache {
    /// The request's parsed document: a copy of the kept one, or parsed now (and kept). The
    /// document stays in the request, so executing it does not parse it again.
    pub fn parse<'r>(
        &self,
        request: &'r mut Request,
    ) -> Result<&'r ExecutableDocument, ServerError> {
        let keepable = request.query.len() <= MAX_KEPT_TEXT_BYTES;
        if keepable {
            let kept = self.lock().documents.get(&request.query).cloned();
            if let Some(document) = kept {
                self.hits.fetch_add(1, Ordering::Relaxed);
                request.set_parsed_query(ExecutableDocument::clone(&document));
                return request.parsed_query();
            }
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        let document = Arc::new(request.parsed_query()?.clone());
        if keepable {
            self.keep(&request.query, document);
        }
        request.parsed_query()
    }

    /// `(hits, misses)` since start (texts too long to keep count as neither).
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// How many documents are kept now.
    pub fn len(&self) -> usize {
        self.lock().documents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn keep(&self, text: &str, document: Arc<ExecutableDocument>) {
        let mut kept = self.lock();
        if kept.documents.contains_key(text) {
            return;
        }
        if kept.text_bytes + text.len() > MAX_KEPT_BYTES {
            kept.documents.clear();
            kept.text_bytes = 0;
        }
        kept.text_bytes += text.len();
        kept.documents.insert(text.to_string(), document);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // The map is consistent after every statement above; a panic elsewhere cannot leave
        // it half-written.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn request(text: &str) -> Request {
        Request::new(text)
    }

    #[test]
    fn a_known_text_gets_the_kept_document() {
        let cache = DocumentCache::default();
        let text = "query Me($id: ID!) { investigation(id: $id) { id title } }";
        let first = cache.parse(&mut request(text)).expect("parses").clone();
        let second = cache.parse(&mut request(text)).expect("parses").clone();
        let parsed = parse_query(text).expect("parses");
        assert_eq!(format!("{first:?}"), format!("{parsed:?}"));
        assert_eq!(format!("{second:?}"), format!("{parsed:?}"));
        assert_eq!(cache.hits_and_misses(), (1, 1));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_text_that_does_not_parse_is_refused_every_time_and_not_kept() {
        let cache = DocumentCache::default();
        for _ in 0..2 {
            let err = cache
                .parse(&mut request("{ me { id "))
                .expect_err("a syntax error");
            assert!(!err.message.is_empty());
        }
        assert_eq!(cache.hits_and_misses(), (0, 2));
        assert!(cache.is_empty());
    }

    #[test]
    fn long_texts_are_parsed_but_not_kept() {
        let cache = DocumentCache::default();
        let padding = " ".repeat(MAX_KEPT_TEXT_BYTES);
        let text = format!("{{ me {{ id }} }}{padding}");
        cache.parse(&mut request(&text)).expect("parses");
        cache.parse(&mut request(&text)).expect("parses");
        assert_eq!(cache.hits_and_misses(), (0, 0));
        assert!(cache.is_empty());
    }

    #[test]
    fn the_kept_texts_stay_within_their_budget() {
        let cache = DocumentCache::default();
        let padding = " ".repeat(MAX_KEPT_TEXT_BYTES - 100);
        let texts: Vec<String> = (0..(2 * MAX_KEPT_BYTES / MAX_KEPT_TEXT_BYTES))
            .map(|n| format!("{{ a{n}: me {{ id }} }}{padding}"))
            .collect();
        for text in &texts {
            cache.parse(&mut request(text)).expect("parses");
            let kept_bytes: usize = cache.lock().documents.keys().map(String::len).sum();
            assert!(kept_bytes <= MAX_KEPT_BYTES, "{kept_bytes} bytes kept");
            assert_eq!(cache.lock().text_bytes, kept_bytes);
        }
        // The last text was kept when the cache started over; it is a hit now.
        let last = texts.last().expect("texts");
        cache.parse(&mut request(last)).expect("parses");
        assert_eq!(cache.hits_and_misses().0, 1);
    }
}

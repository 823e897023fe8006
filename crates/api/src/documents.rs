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
//! parse are kept, so a syntax error is answered the same way every time.
//!
//! A kept document also remembers whether it has passed async-graphql's full validation
//! ([`KnownDocument`]): once one request with it has run without any error, every rule that
//! looks only at the document and the schema holds for it for good, and the next requests are
//! validated only for what can change between them: their variables' values
//! ([`variables_fit`]) and the complexity and depth limits (`crate::schema::GuardedSchema`).
//! The document limits and execution run on every request.

use async_graphql::parser::Positioned;
use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
    Type,
};
use async_graphql::{Request, ServerError, Value, Variables};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    documents: HashMap<String, Arc<KeptDocument>>,
    text_bytes: usize,
}

#[derive(Debug)]
struct KeptDocument {
    document: ExecutableDocument,
    /// A request with this document has run without errors, so it passed every validation
    /// rule (async-graphql validates before it executes anything).
    validated: AtomicBool,
    /// [`repeats_response_keys`] of the document.
    repeats_keys: bool,
}

/// What the cache knows of a request's document: nothing (a text too long to keep), or the
/// kept document, which may have passed validation before.
#[derive(Clone, Debug, Default)]
pub struct KnownDocument(Option<Arc<KeptDocument>>);

impl KnownDocument {
    /// Whether this document has passed async-graphql's full validation before.
    pub fn validated(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|kept| kept.validated.load(Ordering::Relaxed))
    }

    /// Whether a request with this document and these variables may skip the rules that look
    /// only at the document: it has passed them before, and [`variables_fit`] vouches for the
    /// variables of the operation the request executes.
    pub fn needs_only_revalidation(
        &self,
        operation_name: Option<&str>,
        variables: &Variables,
    ) -> bool {
        self.validated()
            && self
                .0
                .as_ref()
                .and_then(|kept| executed_operation(&kept.document, operation_name))
                .is_some_and(|operation| variables_fit(&operation.node, variables))
    }

    /// [`repeats_response_keys`] of `document`, the request's (known once for a kept one).
    pub fn repeats_response_keys(&self, document: &ExecutableDocument) -> bool {
        match &self.0 {
            Some(kept) => kept.repeats_keys,
            None => repeats_response_keys(document),
        }
    }

    /// Records that a request with this document ran without errors.
    pub fn mark_validated(&self) {
        if let Some(kept) = &self.0 {
            kept.validated.store(true, Ordering::Relaxed);
        }
    }
}

impl DocumentCache {
    /// The request's parsed document: a copy of the kept one, or parsed now (and kept). The
    /// document stays in the request, so executing it does not parse it again.
    pub fn parse<'r>(
        &self,
        request: &'r mut Request,
    ) -> Result<(&'r ExecutableDocument, KnownDocument), ServerError> {
        let keepable = request.query.len() <= MAX_KEPT_TEXT_BYTES;
        if keepable {
            let kept = self.lock().documents.get(&request.query).cloned();
            if let Some(kept) = kept {
                self.hits.fetch_add(1, Ordering::Relaxed);
                request.set_parsed_query(kept.document.clone());
                return Ok((request.parsed_query()?, KnownDocument(Some(kept))));
            }
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        let document = request.parsed_query()?.clone();
        let known = if keepable {
            KnownDocument(Some(self.keep(&request.query, document)))
        } else {
            KnownDocument(None)
        };
        Ok((request.parsed_query()?, known))
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

    /// Keeps the document of this text (or finds the one kept meanwhile by another request).
    fn keep(&self, text: &str, document: ExecutableDocument) -> Arc<KeptDocument> {
        let mut kept = self.lock();
        if let Some(found) = kept.documents.get(text) {
            return found.clone();
        }
        if kept.text_bytes + text.len() > MAX_KEPT_BYTES {
            kept.documents.clear();
            kept.text_bytes = 0;
        }
        kept.text_bytes += text.len();
        let document = Arc::new(KeptDocument {
            repeats_keys: repeats_response_keys(&document),
            document,
            validated: AtomicBool::new(false),
        });
        kept.documents.insert(text.to_string(), document.clone());
        document
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // The map is consistent after every statement above; a panic elsewhere cannot leave
        // it half-written.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The operation a request executes: the one it names, or the document's only one.
pub fn executed_operation<'a>(
    document: &'a ExecutableDocument,
    wanted: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    match (&document.operations, wanted) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()
        }
        _ => None,
    }
}

/// Whether some selection set of the document names one response key twice, counting the
/// fields of the fragments in it (inline or spread) as its own: `{ a: title a: title }`,
/// `{ commissions { id } ...F }` with `F` selecting `commissions` too. async-graphql answers such
/// fields apart and then merges their answers, which an answer already written as text
/// ([`crate::plain`]) cannot take part in, so such a document is answered without plain
/// answers. Errs on the safe side: type conditions and `@skip`/`@include` are not looked at,
/// and fragments nested deeper than a valid document can have count as repeating.
pub fn repeats_response_keys(document: &ExecutableDocument) -> bool {
    let operations = document
        .operations
        .iter()
        .map(|(_, operation)| &operation.node.selection_set.node);
    let fragments = document
        .fragments
        .values()
        .map(|fragment| &fragment.node.selection_set.node);
    operations
        .chain(fragments)
        .any(|set| set_repeats_keys(document, set))
}

/// Whether `set`, or the selection set of a field in it (or in its inline fragments), repeats
/// a response key. The fields of spread fragments are checked with the fragment's definition.
fn set_repeats_keys(document: &ExecutableDocument, set: &SelectionSet) -> bool {
    let mut keys = Vec::new();
    if !response_keys(document, set, &mut keys, 0) {
        return true;
    }
    keys.sort_unstable();
    if keys.windows(2).any(|pair| pair[0] == pair[1]) {
        return true;
    }
    set.items.iter().any(|selection| match &selection.node {
        Selection::Field(field) => set_repeats_keys(document, &field.node.selection_set.node),
        Selection::InlineFragment(fragment) => {
            set_repeats_keys(document, &fragment.node.selection_set.node)
        }
        Selection::FragmentSpread(_) => false,
    })
}

/// Adds the response keys of `set` and of its fragments to `keys`; false when fragments nest
/// deeper than [`MAX_FRAGMENT_NESTING`] (a cycle, which validation refuses, or an extreme
/// document).
fn response_keys<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    keys: &mut Vec<&'a str>,
    nesting: usize,
) -> bool {
    if nesting > MAX_FRAGMENT_NESTING {
        return false;
    }
    set.items.iter().all(|selection| match &selection.node {
        Selection::Field(field) => {
            keys.push(field.node.response_key().node.as_str());
            true
        }
        Selection::InlineFragment(fragment) => response_keys(
            document,
            &fragment.node.selection_set.node,
            keys,
            nesting + 1,
        ),
        Selection::FragmentSpread(spread) => document
            .fragments
            .get(&spread.node.fragment_name.node)
            // An unknown fragment: validation refuses the document.
            .is_none_or(|fragment| {
                response_keys(
                    document,
                    &fragment.node.selection_set.node,
                    keys,
                    nesting + 1,
                )
            }),
    })
}

/// How deep fragments may nest in [`repeats_response_keys`] (the schema's recursive depth
/// limit is 32).
const MAX_FRAGMENT_NESTING: usize = 32;

/// Whether every variable value a request sends is, beyond doubt, of its declared type: what
/// full validation checks of a variable that a document which passed it once could still get
/// wrong (async-graphql's `ArgumentsOfCorrectType` checks each value against the argument it
/// goes into, whose type the document's declaration matches: `VariableInAllowedPosition`).
///
/// Stricter than async-graphql, never looser: only the built-in scalars (and lists of them)
/// are checked here, and `null`, an enum, an input object, a custom scalar or an `Int` below
/// zero or above `i32::MAX` answer `false`, so that such a request is validated in full and
/// gets async-graphql's own answer. A declared variable that is not sent is left to execution,
/// as full validation leaves it.
pub fn variables_fit(operation: &OperationDefinition, variables: &Variables) -> bool {
    operation.variable_definitions.iter().all(|definition| {
        let definition = &definition.node;
        variables
            .get(&definition.name.node)
            .is_none_or(|value| value_fits(&definition.var_type.node, value))
    })
}

fn value_fits(declared: &Type, value: &Value) -> bool {
    match (&declared.base, value) {
        (_, Value::Null) => false,
        (BaseType::List(item), Value::List(values)) => {
            values.iter().all(|value| value_fits(item, value))
        }
        // A single value where a list is declared is a list of one.
        (BaseType::List(item), value) => value_fits(item, value),
        (BaseType::Named(name), value) => match (name.as_str(), value) {
            ("ID", Value::String(_)) | ("String", Value::String(_)) => true,
            ("ID", Value::Number(number)) => number.is_i64(),
            ("Int", Value::Number(number)) => {
                number.as_u64().is_some_and(|n| i32::try_from(n).is_ok())
            }
            ("Float", Value::Number(_)) | ("Boolean", Value::Boolean(_)) => true,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn request(text: &str) -> Request {
        Request::new(text)
    }

    fn repeats(text: &str) -> bool {
        repeats_response_keys(&parse_query(text).expect("parses"))
    }

    #[test]
    fn a_response_key_named_twice_in_one_selection_set_is_found_however_it_is_named() {
        for text in [
            "{ a: me { id } a: me { name } }",
            "{ me { id } me { name } }",
            "{ me { id name id } }",
            "{ me { id ... on User { id } } }",
            "{ me { id ... { name ... { id } } } }",
            "{ me { ...F id } } fragment F on User { id }",
            "{ me { ...F ...F } } fragment F on User { id }",
            "{ me { ...F } } fragment F on User { ...G name } fragment G on User { name }",
            "{ investigations { edges { node { title title: phase } } } }",
            "{ investigations { edges { ... on InvestigationEdge { node { id id } } } } }",
            "query A { me { id } } query B { me { id } me: me { name } }",
            "{ me { ...F } } fragment F on User { roles { id id } }",
            "{ me { ...F } } fragment F on User { ...F }",
            "{ me { id @skip(if: true) id @include(if: true) } }",
        ] {
            assert!(repeats(text), "{text}");
        }
    }

    #[test]
    fn distinct_keys_do_not_repeat_even_at_different_levels() {
        for text in [
            "{ me { id name } }",
            "{ me { id } investigation(id: 1) { id title documents { id title } } }",
            "{ a: me { id } b: me { id } }",
            "{ me { id ... on User { name } } }",
            "{ me { ...F } investigation(id: 1) { ...G } } fragment F on User { id } fragment G on Investigation { id }",
            "{ me { ...Missing } }",
        ] {
            assert!(!repeats(text), "{text}");
        }
    }

    #[test]
    fn a_known_text_gets_the_kept_document() {
        let cache = DocumentCache::default();
        let text = "query Me($id: ID!) { investigation(id: $id) { id title } }";
        let first = cache.parse(&mut request(text)).expect("parses").0.clone();
        let second = cache.parse(&mut request(text)).expect("parses").0.clone();
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

    /// The variables of the (only) operation of `text`, checked by [`variables_fit`].
    fn fit(text: &str, variables: serde_json::Value) -> bool {
        let document = parse_query(text).expect("parses");
        let operation = executed_operation(&document, None).expect("one operation");
        variables_fit(&operation.node, &Variables::from_json(variables))
    }

    #[test]
    fn values_of_the_built_in_scalars_fit_their_declarations() {
        let text = "query Q($id: ID!, $s: String, $n: Int, $f: Float, $b: Boolean!, $ids: [ID!]) { __typename }";
        let all = serde_json::json!({
            "id": "0192", "s": "text", "n": 50, "f": 1.5, "b": true, "ids": ["a", 7]
        });
        assert!(fit(text, all));
        assert!(fit(text, serde_json::json!({ "id": 12 })), "an integer ID");
        assert!(
            fit(text, serde_json::json!({ "ids": "a" })),
            "one value for a list"
        );
        assert!(
            fit(text, serde_json::json!({})),
            "absent variables are left to execution"
        );
        assert!(fit(text, serde_json::json!({ "n": 0, "f": 3 })));
        assert!(fit(text, serde_json::json!({ "n": i32::MAX })));
    }

    #[test]
    fn anything_in_doubt_is_left_to_full_validation() {
        let text = "query Q($id: ID!, $s: String, $n: Int, $f: Float, $b: Boolean!, $ids: [ID!]) { __typename }";
        for variables in [
            serde_json::json!({ "id": null }),
            serde_json::json!({ "s": null }),
            serde_json::json!({ "id": true }),
            serde_json::json!({ "id": 1.5 }),
            serde_json::json!({ "s": 5 }),
            serde_json::json!({ "n": -1 }),
            serde_json::json!({ "n": i64::from(i32::MAX) + 1 }),
            serde_json::json!({ "n": 2.5 }),
            serde_json::json!({ "n": "50" }),
            serde_json::json!({ "f": "1.5" }),
            serde_json::json!({ "b": "true" }),
            serde_json::json!({ "ids": ["a", null] }),
            serde_json::json!({ "ids": [["a"]] }),
            serde_json::json!({ "id": { "nested": 1 } }),
        ] {
            assert!(!fit(text, variables.clone()), "{variables}");
        }
        // Enums, input objects and other scalars are never vouched for.
        assert!(!fit(
            "query Q($p: Phase) { __typename }",
            serde_json::json!({ "p": "RESEARCH" })
        ));
        assert!(!fit(
            "mutation M($input: ProposeInvestigationInput!) { __typename }",
            serde_json::json!({ "input": {} })
        ));
        assert!(!fit(
            "query Q($d: Date) { __typename }",
            serde_json::json!({ "d": "2026-01-01" })
        ));
    }

    #[test]
    fn a_kept_document_is_known_and_remembers_its_validation() {
        let cache = DocumentCache::default();
        let text = "{ me { id } }";
        let (_, known) = cache.parse(&mut request(text)).expect("parses");
        assert!(!known.validated());
        known.mark_validated();
        let (_, again) = cache.parse(&mut request(text)).expect("parses");
        assert!(again.validated());
        // A text too long to keep is never known.
        let long = format!("{text}{}", " ".repeat(MAX_KEPT_TEXT_BYTES));
        let (_, unknown) = cache.parse(&mut request(&long)).expect("parses");
        unknown.mark_validated();
        assert!(!unknown.validated());
    }
}

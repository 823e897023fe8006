//! Building the schema with its limits.

use crate::documents::{DocumentCache, KnownDocument};
use crate::limits::{DocumentLimits, asks_for_schema, refused};
use crate::mutation::MutationRoot;
use crate::plain::PlainAnswers;
use crate::query::QueryRoot;
use crate::subscription::SubscriptionRoot;
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    Data, Executor, Request, Response, Schema, SchemaBuilder, ServerError, ValidationMode,
    Variables,
};
use futures::stream::{BoxStream, StreamExt};
use std::any::Any;
use std::sync::Arc;

pub type RkflowSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Limits on what one operation may ask.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Deepest selection nesting.
    pub max_depth: usize,
    /// Highest complexity (every field costs one, lists `first` × their children).
    pub max_complexity: usize,
    /// Whether `__schema` / `__type` are answered.
    pub introspection: bool,
    /// Operations, root fields, aliases, fields and directives per document.
    pub document: DocumentLimits,
    /// Whether plain fields are answered at once ([`crate::plain`]); off, every field goes
    /// through async-graphql's own resolvers (the same answers, slower: for comparing).
    pub plain_fields: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 12,
            max_complexity: 5_000,
            introspection: true,
            document: DocumentLimits::default(),
            plain_fields: true,
        }
    }
}

/// The schema without runtime data (for `rkflow schema` and the drift check).
pub fn builder(limits: Limits) -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    let mut builder = Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(32)
        .limit_directives(limits.document.max_directives_per_field)
        .disable_suggestions();
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder
}

/// Why a parsed document is refused before it runs, if it is: introspection when it is
/// switched off (async-graphql alone would answer `__schema` with a silent null), text with
/// NUL in the document or the variables (`input.rs`), the document limits (`limits.rs`). All
/// BAD_USER_INPUT, before validation, so nothing reaches the database.
pub fn refusal(
    document: &ExecutableDocument,
    variables: &Variables,
    limits: &Limits,
) -> Option<ServerError> {
    if !limits.introspection && asks_for_schema(document) {
        return Some(refused("introspection is disabled on this server"));
    }
    if crate::input::has_nul(document, variables) {
        return Some(refused(crate::input::NUL_MESSAGE));
    }
    crate::limits::check(document, &limits.document)
        .err()
        .map(refused)
}

/// The schema behind [`refusal`]: what the server executes, over HTTP and WebSocket alike.
///
/// The checks run on the parsed document before async-graphql executes it (which then does
/// not parse it again), not as async-graphql extensions: with any extension installed, even
/// one that only looks at parsing, async-graphql takes every field of every answer through
/// its per-field extension path (a `ResolveInfo`, registry lookups, the extension chain):
/// some 1,700 times for a 50-investigation dashboard (BENCHMARKS.md).
///
/// Validation is full the first time a kept document runs and whenever its variables need it
/// ([`crate::documents`]): async-graphql's rules walk the whole document for every request,
/// a fifth of the server's instructions for the benchmark's investigation query (W2), and all but
/// one of them look only at the document and the schema. A document that has run once without
/// errors is then executed by a second schema, the same one in async-graphql's `Fast`
/// validation mode (which still computes the complexity and depth and enforces their limits),
/// as long as [`crate::documents::variables_fit`] vouches for the request's variables; anything else, and any
/// document not kept, is validated in full. The answers are the same either way.
#[derive(Clone)]
pub struct GuardedSchema {
    /// Validates every request in full.
    pub schema: RkflowSchema,
    /// The same schema, validating only what a request can change in a document that passed.
    revalidating: RkflowSchema,
    limits: Limits,
    /// Parsed documents by their text ([`crate::documents`]).
    pub documents: Arc<DocumentCache>,
}

impl GuardedSchema {
    /// The schema with these limits and this data (the server's [`crate::context::ApiState`]).
    pub fn new<D: Any + Send + Sync + Clone>(limits: Limits, data: D) -> GuardedSchema {
        GuardedSchema {
            schema: builder(limits).data(data.clone()).finish(),
            revalidating: builder(limits)
                .data(data)
                .validation_mode(ValidationMode::Fast)
                .finish(),
            limits,
            documents: Arc::default(),
        }
    }

    /// The request's parsed document, from the document cache or parsed now; it stays in the
    /// request, so execution does not parse it again.
    pub fn parse<'r>(
        &self,
        request: &'r mut Request,
    ) -> Result<(&'r ExecutableDocument, KnownDocument), ServerError> {
        self.documents.parse(request)
    }

    /// Executes a request whose document [`GuardedSchema::parse`] has set (the HTTP handler
    /// parses first, to choose the read view), without looking it up again.
    pub async fn execute_parsed(&self, mut request: Request, known: KnownDocument) -> Response {
        if let Some(refused) = self.check(&mut request) {
            return Response::from_errors(vec![refused]);
        }
        if self.limits.plain_fields
            && let Ok(document) = request.parsed_query()
            && !known.repeats_response_keys(document)
        {
            request = request.data(PlainAnswers);
        }
        if known.needs_only_revalidation(request.operation_name.as_deref(), &request.variables) {
            return self.revalidating.execute(request).await;
        }
        let response = self.schema.execute(request).await;
        if response.errors.is_empty() {
            known.mark_validated();
        }
        response
    }

    /// The [`refusal`] of the request's document, or the error of a document that does not
    /// parse (the HTTP handler goes on past a parse error to authenticate the request: the
    /// document is parsed here again for its error, and answered without reaching
    /// async-graphql, which would parse it a third time).
    fn check(&self, request: &mut Request) -> Option<ServerError> {
        let variables = std::mem::take(&mut request.variables);
        let refused = match request.parsed_query() {
            Ok(document) => refusal(document, &variables, &self.limits),
            Err(err) => Some(err),
        };
        request.variables = variables;
        refused
    }
}

impl Executor for GuardedSchema {
    async fn execute(&self, mut request: Request) -> Response {
        match self.parse(&mut request) {
            Ok((_, known)) => self.execute_parsed(request, known).await,
            Err(err) => Response::from_errors(vec![err]),
        }
    }

    fn execute_stream(
        &self,
        mut request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let refused = self
            .parse(&mut request)
            .err()
            .or_else(|| self.check(&mut request));
        match refused {
            Some(refused) => {
                futures::stream::once(async move { Response::from_errors(vec![refused]) }).boxed()
            }
            None => self
                .schema
                .execute_stream_with_session_data(request, session_data.unwrap_or_default()),
        }
    }
}

/// The SDL that `rkflow schema` prints and `graphql/schema.graphql` must equal.
pub fn sdl() -> String {
    builder(Limits::default()).finish().sdl()
}

/// Parts of the contract (`graphql/contract.graphql`, a copy of the shared contract) not yet
/// served. The conformance test fails when one of these appears (remove it here) and when
/// anything else of the contract is missing. Empty: the whole contract is served.
pub const PENDING_CONTRACT_PARTS: &[&str] = &[];

#[cfg(test)]
mod contract_conformance {
    use super::{PENDING_CONTRACT_PARTS, sdl};
    use async_graphql::parser::parse_schema;
    use async_graphql::parser::types::{BaseType, Type, TypeKind, TypeSystemDefinition};
    use std::collections::BTreeMap;

    const CONTRACT: &str = include_str!("../../../graphql/contract.graphql");

    /// What a schema declares: "kind Name" → members ("field(args): Type" / enum values).
    #[derive(Default)]
    struct Declared {
        types: BTreeMap<String, String>,
        fields: BTreeMap<String, (Type, BTreeMap<String, Type>)>,
        enum_values: BTreeMap<String, Vec<String>>,
    }

    fn declared(sdl: &str) -> Declared {
        let document = parse_schema(sdl).expect("a valid SDL");
        let mut declared = Declared::default();
        for definition in document.definitions {
            let TypeSystemDefinition::Type(ty) = definition else {
                continue;
            };
            let name = ty.node.name.node.to_string();
            let (kind, fields) = match &ty.node.kind {
                TypeKind::Scalar => ("scalar", Vec::new()),
                TypeKind::Object(object) => (
                    "type",
                    object
                        .fields
                        .iter()
                        .map(|f| {
                            (
                                f.node.name.node.to_string(),
                                f.node.ty.node.clone(),
                                f.node
                                    .arguments
                                    .iter()
                                    .map(|a| (a.node.name.node.to_string(), a.node.ty.node.clone()))
                                    .collect(),
                            )
                        })
                        .collect(),
                ),
                TypeKind::InputObject(input) => (
                    "input",
                    input
                        .fields
                        .iter()
                        .map(|f| {
                            (
                                f.node.name.node.to_string(),
                                f.node.ty.node.clone(),
                                BTreeMap::new(),
                            )
                        })
                        .collect(),
                ),
                TypeKind::Enum(values) => {
                    declared.enum_values.insert(
                        name.clone(),
                        values
                            .values
                            .iter()
                            .map(|v| v.node.value.node.to_string())
                            .collect(),
                    );
                    ("enum", Vec::new())
                }
                _ => ("other", Vec::new()),
            };
            declared
                .types
                .insert(name.clone(), format!("{kind} {name}"));
            for (field, ty, args) in fields {
                declared
                    .fields
                    .insert(format!("{name}.{field}"), (ty, args));
            }
        }
        declared
    }

    /// An output type may be stricter than the contract, never looser or different.
    fn output_compatible(contract: &Type, ours: &Type) -> bool {
        (contract.nullable || !ours.nullable)
            && match (&contract.base, &ours.base) {
                (BaseType::Named(a), BaseType::Named(b)) => a == b,
                (BaseType::List(a), BaseType::List(b)) => output_compatible(a, b),
                _ => false,
            }
    }

    fn pending(item: &str) -> bool {
        PENDING_CONTRACT_PARTS.contains(&item)
    }

    #[test]
    fn the_schema_serves_the_contract() {
        let contract = declared(CONTRACT);
        let ours = declared(&sdl());
        let mut problems = Vec::new();
        for (name, label) in &contract.types {
            let present = ours.types.get(name) == Some(label);
            if pending(label) {
                if present {
                    problems.push(format!(
                        "{label} is implemented: remove it from PENDING_CONTRACT_PARTS"
                    ));
                }
                continue;
            }
            if !present {
                problems.push(format!("missing {label}"));
            }
        }
        for (name, values) in &contract.enum_values {
            if pending(&format!("enum {name}")) {
                continue;
            }
            for value in values {
                if !ours
                    .enum_values
                    .get(name)
                    .is_some_and(|v| v.contains(value))
                {
                    problems.push(format!("missing enum value {name}.{value}"));
                }
            }
        }
        for (path, (ty, args)) in &contract.fields {
            let owner = path.split('.').next().unwrap_or_default();
            let owner_label = contract.types.get(owner).cloned().unwrap_or_default();
            if pending(&owner_label) {
                continue;
            }
            let Some((our_ty, our_args)) = ours.fields.get(path) else {
                if !pending(path) {
                    problems.push(format!("missing field {path}"));
                }
                continue;
            };
            if pending(path) {
                problems.push(format!(
                    "{path} is implemented: remove it from PENDING_CONTRACT_PARTS"
                ));
                continue;
            }
            let input = owner_label.starts_with("input ");
            let ok = if input {
                ty.to_string() == our_ty.to_string()
            } else {
                output_compatible(ty, our_ty)
            };
            if !ok {
                problems.push(format!("{path}: contract {ty}, served {our_ty}"));
            }
            for (arg, arg_ty) in args {
                match our_args.get(arg) {
                    Some(our) if our.to_string() == arg_ty.to_string() => {}
                    Some(our) => {
                        problems.push(format!("{path}({arg}): contract {arg_ty}, served {our}"))
                    }
                    None => problems.push(format!("missing argument {path}({arg})")),
                }
            }
            for (arg, our) in our_args {
                if !args.contains_key(arg) && !our.nullable {
                    problems.push(format!("{path}({arg}) is an extra required argument"));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "contract conformance:\n{}",
            problems.join("\n")
        );
    }
}

#[cfg(test)]
mod example_operations {
    use super::{Limits, builder};
    use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
    use async_graphql::parser::parse_query;
    use async_graphql::{Request, Response};
    use std::sync::Arc;

    /// Stops every operation after validation: the examples are checked against the schema
    /// and its limits without a database.
    struct ValidateOnly;

    impl ExtensionFactory for ValidateOnly {
        fn create(&self) -> Arc<dyn Extension> {
            Arc::new(ValidateOnly)
        }
    }

    #[async_graphql::async_trait::async_trait]
    impl Extension for ValidateOnly {
        async fn execute(
            &self,
            _ctx: &ExtensionContext<'_>,
            _operation_name: Option<&str>,
            _next: NextExecute<'_>,
        ) -> Response {
            Response::new(async_graphql::Value::Null)
        }
    }

    #[tokio::test]
    async fn every_example_operation_is_valid_against_the_schema() {
        let schema = builder(Limits::default()).extension(ValidateOnly).finish();
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/../../graphql/examples");
        let mut checked = 0;
        for entry in std::fs::read_dir(folder).expect("graphql/examples exists") {
            let path = entry.expect("a directory entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("graphql") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable");
            let document =
                parse_query(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            for (name, _) in document.operations.iter() {
                let mut request = Request::new(text.clone());
                if let Some(name) = name {
                    request = request.operation_name(name.to_string());
                }
                let response = schema.execute(request).await;
                assert!(
                    response.errors.is_empty(),
                    "{} {:?}: {:?}",
                    path.display(),
                    name,
                    response.errors
                );
                checked += 1;
            }
        }
        assert!(checked >= 10, "only {checked} example operations found");
    }
}

#[cfg(test)]
mod revalidation {
    use super::{GuardedSchema, Limits};
    use async_graphql::{Executor, Request, Variables};
    use serde_json::json;

    const TEXT: &str = "query Q($name: String!) { __type(name: $name) { name } }";

    async fn run(schema: &GuardedSchema, text: &str, variables: serde_json::Value) -> String {
        let request = Request::new(text).variables(Variables::from_json(variables));
        let response = schema.execute(request).await;
        serde_json::to_string(&response).expect("serialisable")
    }

    fn validated(schema: &GuardedSchema, text: &str) -> bool {
        let mut request = Request::new(text);
        schema.parse(&mut request).expect("parses").1.validated()
    }

    #[tokio::test]
    async fn a_document_that_ran_without_errors_is_then_checked_only_for_its_variables() {
        let schema = GuardedSchema::new(Limits::default(), ());
        // A bad value first: full validation refuses it, and the document is not marked.
        let refused = run(&schema, TEXT, json!({ "name": 5 })).await;
        assert!(refused.contains("Invalid value for argument"), "{refused}");
        assert!(!validated(&schema, TEXT));
        assert_eq!(
            run(&schema, TEXT, json!({ "name": "Phase" })).await,
            r#"{"data":{"__type":{"name":"Phase"}}}"#
        );
        assert!(validated(&schema, TEXT));
        // Revalidated: the same answers as full validation gives.
        assert_eq!(
            run(&schema, TEXT, json!({ "name": "Nothing" })).await,
            r#"{"data":{"__type":null}}"#
        );
        assert_eq!(run(&schema, TEXT, json!({ "name": 5 })).await, refused);
        for variables in [json!({ "name": null }), json!({ "name": [] }), json!({})] {
            let fresh = GuardedSchema::new(Limits::default(), ());
            assert_eq!(
                run(&schema, TEXT, variables.clone()).await,
                run(&fresh, TEXT, variables.clone()).await,
                "{variables}"
            );
        }
    }

    #[tokio::test]
    async fn the_complexity_limit_holds_for_a_validated_document() {
        let limits = Limits {
            max_complexity: 100,
            ..Limits::default()
        };
        let schema = GuardedSchema::new(limits, ());
        let text = "query Q($first: Int) { investigations(first: $first) { edges { node { id title } } } }";
        let mut request = Request::new(text);
        schema
            .parse(&mut request)
            .expect("parses")
            .1
            .mark_validated();
        // The page size comes from the variable: 50 × 4 fields is over the limit.
        let over = run(&schema, text, json!({ "first": 50 })).await;
        assert!(over.contains("Query is too complex"), "{over}");
        let fresh = GuardedSchema::new(limits, ());
        assert_eq!(over, run(&fresh, text, json!({ "first": 50 })).await);
    }

    #[tokio::test]
    async fn a_document_with_errors_is_validated_in_full_every_time() {
        let schema = GuardedSchema::new(Limits::default(), ());
        let text = "query Q($unused: Int) { __typename }";
        for _ in 0..2 {
            let answer = run(&schema, text, json!({ "unused": 1 })).await;
            assert!(answer.contains("is not used"), "{answer}");
            assert!(!validated(&schema, text));
        }
    }
}

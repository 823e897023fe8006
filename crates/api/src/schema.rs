//! Building the schema with its limits.

use crate::mutation::MutationRoot;
use crate::query::QueryRoot;
use crate::subscription::SubscriptionRoot;
use async_graphql::{Schema, SchemaBuilder};

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 12,
            max_complexity: 5_000,
            introspection: true,
        }
    }
}

/// The schema without runtime data (for `rkflow schema` and the drift check).
pub fn builder(limits: Limits) -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    let mut builder = Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(32)
        .disable_suggestions();
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder
}

/// The SDL that `rkflow schema` prints and `graphql/schema.graphql` must equal.
pub fn sdl() -> String {
    builder(Limits::default()).finish().sdl()
}

//! # rkflow-api: the GraphQL API
//!
//! async-graphql schema (query, mutation, subscription), the request context, DataLoaders,
//! authentication and error mapping. Resolvers parse input, call the store, and ask the domain
//! crate's visibility rules for everything they return; they decide no rule themselves.

pub mod auth;
pub mod clock;
pub mod context;
pub mod documents;
pub mod error;
pub mod events;
pub mod files;
pub mod input;
pub mod json;
pub mod limits;
pub mod mutation;
pub mod plain;
pub mod query;
pub mod scheduler;
pub mod schema;
pub mod subscription;
pub mod types;

pub use context::{ApiState, EventBus, Loaders, RequestContext};
pub use schema::{Limits, RkflowSchema};

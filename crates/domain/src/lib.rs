//! # rkflow-domain: the functional core
//!
//! The rules of rkflow as pure functions over values: the phase machine, gates and approval
//! fingerprints, the permission table, the visibility table, content validation. No IO, no
//! database, no GraphQL: the store and the API call into this crate and never decide a rule
//! themselves.
//!
//! - [`phase`]: phases, document kinds, enums of the contract.
//! - [`role`]: roles, grants, the actor, organisation-management permissions.
//! - [`permission`]: capacities, actions and the permission table.
//! - [`visibility`]: who sees which investigation, version, response, deadline.
//! - [`investigation`]: the investigation value, its commands and their changes.
//! - [`content`]: document content validation and hashing.
//! - [`deadline`]: terms, due instants and the Algemene termijnenwet.
//! - [`rebuttal`]: the factual check and rebuttal round: deadlines, responses, extensions.
//! - [`submission`]: the bundle, its manifest, council submission and follow-up.
//! - [`audit`]: the audit chain's canonical encoding and hash.

pub mod audit;
pub mod content;
pub mod deadline;
pub mod error;
pub mod ids;
pub mod investigation;
pub mod permission;
pub mod phase;
pub mod rebuttal;
pub mod role;
pub mod submission;
pub mod visibility;

pub use error::DomainError;
pub use ids::*;
pub use investigation::{Change, Command, Investigation};
pub use permission::{Action, Capacity};
pub use phase::{DocumentKind, Phase, RecommendationAddressee, ResponseMode};
pub use role::{Actor, Grant, Role, Scope};

//! sea-orm entities, one per table. They are storage types only: the API never exposes them
//! directly (it maps them to its own GraphQL types).

pub mod approval;
pub mod audit_event;
pub mod audit_head;
pub mod commission;
pub mod commission_municipality;
pub mod council_decision;
pub mod council_submission;
pub mod deadline;
pub mod deadline_reminder;
pub mod document;
pub mod document_version;
pub mod extension_request;
pub mod extension_vote;
pub mod frozen_version;
pub mod implementation_update;
pub mod investigation;
pub mod investigation_commission;
pub mod investigation_snapshot;
pub mod login_attempt;
pub mod municipality;
pub mod rapporteur;
pub mod recommendation;
pub mod response;
pub mod response_college;
pub mod response_position;
pub mod role_grant;
pub mod session;
pub mod submission_version;
pub mod user;
pub mod version_content;

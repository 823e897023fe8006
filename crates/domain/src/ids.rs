//! Typed identifiers. Every id is a UUID; the newtypes keep a commission id from being passed
//! where a municipality id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id (UUID v7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }

        impl From<$name> for Uuid {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

id_type!(
    /// A person with an account.
    UserId
);
id_type!(
    /// A municipality (gemeente); its council and college share this id.
    MunicipalityId
);
id_type!(
    /// A rekenkamer or rekenkamercommissie.
    CommissionId
);
id_type!(
    /// One investigation (onderzoek).
    InvestigationId
);
id_type!(
    /// A document within an investigation.
    DocumentId
);
id_type!(
    /// One immutable version of a document.
    VersionId
);
id_type!(
    /// A recommendation (aanbeveling).
    RecommendationId
);
id_type!(
    /// One recorded approval of a gate.
    ApprovalId
);
id_type!(
    /// A role grant.
    GrantId
);
id_type!(
    /// A filed administrative response (bestuurlijke reactie).
    ResponseId
);
id_type!(
    /// A deadline of a factual check or rebuttal round.
    DeadlineId
);
id_type!(
    /// A college's request to extend its deadline.
    ExtensionId
);
id_type!(
    /// A bundle submitted to one council.
    SubmissionId
);

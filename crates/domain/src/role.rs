//! Roles, role grants and the actor that issues a command.

use crate::ids::{CommissionId, GrantId, MunicipalityId, UserId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A role a user can be granted. Rapporteur is not a role: it is an assignment on one
/// investigation (see [`crate::investigation::Rapporteur`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Platform operator: accounts and organisation, never investigation content.
    Admin,
    /// Voorzitter of a commission.
    Chair,
    /// Lid of a commission.
    Member,
    /// Secretaris / onderzoeker of a commission.
    Secretary,
    /// Contact person of the college van B&W of a municipality.
    CollegeContact,
    /// Ambtelijk contactpersoon (civil service) of a municipality.
    CivilServiceContact,
    /// Griffier of a municipality's council.
    Griffier,
    /// Raadslid of a municipality's council.
    CouncilMember,
}

/// What a role grant is scoped to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScopeKind {
    Global,
    Commission,
    Municipality,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Admin,
        Role::Chair,
        Role::Member,
        Role::Secretary,
        Role::CollegeContact,
        Role::CivilServiceContact,
        Role::Griffier,
        Role::CouncilMember,
    ];

    /// The scope a grant of this role must name.
    pub fn scope_kind(self) -> ScopeKind {
        match self {
            Role::Admin => ScopeKind::Global,
            Role::Chair | Role::Member | Role::Secretary => ScopeKind::Commission,
            Role::CollegeContact
            | Role::CivilServiceContact
            | Role::Griffier
            | Role::CouncilMember => ScopeKind::Municipality,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Chair => "CHAIR",
            Role::Member => "MEMBER",
            Role::Secretary => "SECRETARY",
            Role::CollegeContact => "COLLEGE_CONTACT",
            Role::CivilServiceContact => "CIVIL_SERVICE_CONTACT",
            Role::Griffier => "GRIFFIER",
            Role::CouncilMember => "COUNCIL_MEMBER",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

/// The scope of one grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    Global,
    Commission(CommissionId),
    Municipality(MunicipalityId),
}

/// One role held by a user in a scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Grant {
    pub role: Role,
    pub scope: Scope,
}

impl Grant {
    /// Checks that the scope matches what the role needs, so that no grant such as
    /// "CHAIR of a municipality" can be stored.
    pub fn new(role: Role, scope: Scope) -> Result<Grant, crate::DomainError> {
        let fits = matches!(
            (role.scope_kind(), scope),
            (ScopeKind::Global, Scope::Global)
                | (ScopeKind::Commission, Scope::Commission(_))
                | (ScopeKind::Municipality, Scope::Municipality(_))
        );
        if fits {
            Ok(Grant { role, scope })
        } else {
            let needed = match role.scope_kind() {
                ScopeKind::Global => "no commissionId and no municipalityId",
                ScopeKind::Commission => "a commissionId (and no municipalityId)",
                ScopeKind::Municipality => "a municipalityId (and no commissionId)",
            };
            Err(crate::DomainError::bad_input(
                "role",
                format!("role {} needs {needed}", role.as_str()),
            ))
        }
    }
}

/// A stored grant with its id (for revocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredGrant {
    pub id: GrantId,
    pub grant: Grant,
}

/// The authenticated caller of a command, as the domain sees it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Actor {
    pub user: Option<UserId>,
    pub grants: BTreeSet<Grant>,
}

impl Actor {
    /// Nobody logged in.
    pub fn anonymous() -> Actor {
        Actor::default()
    }

    pub fn user(user: UserId, grants: impl IntoIterator<Item = Grant>) -> Actor {
        Actor {
            user: Some(user),
            grants: grants.into_iter().collect(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.grants.iter().any(|grant| grant.role == Role::Admin)
    }

    /// Commissions on which the actor holds `role`.
    pub fn commissions_with(&self, role: Role) -> BTreeSet<CommissionId> {
        self.grants
            .iter()
            .filter(|grant| grant.role == role)
            .filter_map(|grant| match grant.scope {
                Scope::Commission(id) => Some(id),
                _ => None,
            })
            .collect()
    }

    /// Municipalities for which the actor holds `role`.
    pub fn municipalities_with(&self, role: Role) -> BTreeSet<MunicipalityId> {
        self.grants
            .iter()
            .filter(|grant| grant.role == role)
            .filter_map(|grant| match grant.scope {
                Scope::Municipality(id) => Some(id),
                _ => None,
            })
            .collect()
    }
}

/// Organisation management actions (all ADMIN only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminAction {
    CreateMunicipality,
    CreateCommission,
    CreateUser,
    SetUserDisabled,
    GrantRole,
    RevokeRole,
    ListUsers,
    AdvanceClock,
    /// List or revoke another user's sessions.
    ManageSessions,
}

impl AdminAction {
    pub const ALL: [AdminAction; 9] = [
        AdminAction::CreateMunicipality,
        AdminAction::CreateCommission,
        AdminAction::CreateUser,
        AdminAction::SetUserDisabled,
        AdminAction::GrantRole,
        AdminAction::RevokeRole,
        AdminAction::ListUsers,
        AdminAction::AdvanceClock,
        AdminAction::ManageSessions,
    ];

    /// The roles that may perform the action: the permission table for organisation
    /// management, as data.
    pub fn allowed_roles(self) -> &'static [Role] {
        &[Role::Admin]
    }
}

/// Decides an organisation-management action: UNAUTHENTICATED without a user, FORBIDDEN
/// without a role the table lists.
pub fn authorize_admin(actor: &Actor, action: AdminAction) -> Result<(), crate::DomainError> {
    if actor.user.is_none() {
        return Err(crate::DomainError::Unauthenticated);
    }
    let allowed = action.allowed_roles();
    if actor
        .grants
        .iter()
        .any(|grant| allowed.contains(&grant.role))
    {
        Ok(())
    } else {
        Err(crate::DomainError::Forbidden(format!(
            "{action:?} needs one of the roles {}",
            allowed
                .iter()
                .map(|role| role.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

//! Who sees what (the contract's visibility table), as pure functions. Every read path of the
//! API (single lookups, lists and counts, nested fields, downloads, subscriptions) asks these.

use crate::ids::{CommissionId, MunicipalityId, UserId, VersionId};
use crate::investigation::{DocumentState, Investigation, ResponseState};
use crate::permission::{Capacity, Relation};
use crate::phase::DocumentKind;
use crate::rebuttal::{DeadlineKind, DeadlineState};
use crate::role::{Actor, Role};
use std::collections::BTreeSet;

/// Whether a caller with this relation sees the investigation at all.
///
/// The team always; the concerned municipalities' roles once the PROPOSAL gate has passed;
/// everyone once the bundle is published. ADMIN alone sees nothing.
pub fn can_see_investigation(
    relation: &Relation,
    proposal_gate_passed: bool,
    published: bool,
) -> bool {
    relation.is_team()
        || (proposal_gate_passed && relation.is_concerned_municipality())
        || published
}

/// The same rule as [`can_see_investigation`], as a filter the store turns into SQL for lists
/// and counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListingFilter {
    /// Investigations in which one of these commissions participates.
    pub team_commissions: BTreeSet<CommissionId>,
    /// Investigations this user is an assigned rapporteur of.
    pub rapporteur: Option<UserId>,
    /// Investigations past the PROPOSAL gate concerning one of these municipalities.
    pub municipalities_after_proposal: BTreeSet<MunicipalityId>,
    /// Published investigations (always true: published bundles are public).
    pub published: bool,
}

pub fn listing_filter(actor: &Actor) -> ListingFilter {
    let mut filter = ListingFilter {
        published: true,
        ..ListingFilter::default()
    };
    if actor.user.is_none() {
        return filter;
    }
    for role in [Role::Chair, Role::Member, Role::Secretary] {
        filter.team_commissions.extend(actor.commissions_with(role));
    }
    filter.rapporteur = actor.user;
    for role in [
        Role::CollegeContact,
        Role::CivilServiceContact,
        Role::Griffier,
        Role::CouncilMember,
    ] {
        filter
            .municipalities_after_proposal
            .extend(actor.municipalities_with(role));
    }
    filter
}

impl ListingFilter {
    /// Evaluates the filter on one investigation (the store's SQL must agree with this).
    pub fn admits(&self, investigation: &Investigation) -> bool {
        let parties = investigation.parties();
        !self.team_commissions.is_disjoint(&parties.commissions)
            || self
                .rapporteur
                .is_some_and(|user| parties.rapporteurs.iter().any(|(u, _)| *u == user))
            || (investigation.proposal_gate_passed()
                && !self
                    .municipalities_after_proposal
                    .is_disjoint(&parties.municipalities))
            || (self.published && investigation.published)
    }
}

/// What a caller sees of one investigation, decided once per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub relation: Relation,
    pub investigation: bool,
    /// Everything: the team.
    pub everything: bool,
}

impl View {
    pub fn of(investigation: &Investigation, actor: &Actor) -> View {
        let relation = investigation.relation(actor);
        let visible = can_see_investigation(
            &relation,
            investigation.proposal_gate_passed(),
            investigation.published,
        );
        View {
            everything: relation.is_team(),
            investigation: visible,
            relation,
        }
    }

    /// Research questions, rapporteurs, approvals, rebuttal terms: team only.
    pub fn sees_internals(&self) -> bool {
        self.everything
    }

    /// The current gate — whose approvals are still missing, what it still lacks: the team's,
    /// and only while the phase has a gate (a closed or cancelled investigation has none).
    pub fn sees_gate(&self, investigation: &Investigation) -> bool {
        self.sees_internals() && !investigation.phase.is_terminal()
    }

    /// Research questions and scope: they are part of the proposal, so whoever sees the
    /// approved proposal sees them too.
    pub fn sees_research_questions(&self, investigation: &Investigation) -> bool {
        self.everything
            || (investigation.proposal_gate_passed() && self.relation.is_concerned_municipality())
    }

    /// The rebuttal mode and due date: the team, and college contacts once the draft is
    /// theirs to answer.
    pub fn sees_rebuttal_terms(&self, investigation: &Investigation) -> bool {
        self.everything
            || (!self.relation.college_of.is_empty()
                && !investigation.frozen.rebuttal_draft.is_empty())
    }

    /// The audit trail and the event subscription.
    pub fn sees_audit_trail(&self) -> bool {
        self.everything
    }

    /// Recommendations (the register, with positions, council decisions and implementation
    /// updates): the team; college contacts from the rebuttal on (they come with the draft under
    /// rebuttal); every role of a concerned municipality once submitted. The public reads them
    /// in the bundle's documents.
    pub fn sees_recommendations(&self, investigation: &Investigation) -> bool {
        self.everything
            || (!self.relation.college_of.is_empty()
                && !investigation.frozen.rebuttal_draft.is_empty())
            || (investigation.published && self.relation.is_concerned_municipality())
    }

    /// Deadlines and extension requests of one college (by municipality).
    pub fn sees_college_round(&self, college: MunicipalityId) -> bool {
        self.everything || self.relation.college_of.contains(&college)
    }

    /// A deadline: the team; a college contact those of its own college; a civil-service
    /// contact the factual-check deadline of its own municipality.
    pub fn sees_deadline(&self, deadline: &DeadlineState) -> bool {
        self.everything
            || match deadline.kind {
                DeadlineKind::AdministrativeResponse => {
                    self.relation.college_of.contains(&deadline.municipality)
                }
                DeadlineKind::FactualCheck => {
                    self.relation
                        .civil_service_of
                        .contains(&deadline.municipality)
                        || self.relation.college_of.contains(&deadline.municipality)
                }
            }
    }

    /// A response: the team, the contacts of a college it lists, and (once published) anyone
    /// when it is in the bundle.
    pub fn sees_response(&self, investigation: &Investigation, response: &ResponseState) -> bool {
        self.everything
            || !self.relation.college_of.is_disjoint(&response.colleges)
            || investigation.frozen.bundle.contains(&response.version)
    }

    /// Whether the caller sees a document's current title. A new version may retitle its
    /// document, so the title belongs to the latest version: whoever does not see that version
    /// (the civil service, which sees the report as it was when the factual check started) sees
    /// the kind's own name instead. An ANNEX keeps its title: annexes are told apart by it and
    /// it never changes.
    pub fn sees_title(&self, investigation: &Investigation, document: &DocumentState) -> bool {
        document.kind == DocumentKind::Annex
            || document
                .latest()
                .is_some_and(|latest| self.sees_version(investigation, document, latest.id))
    }

    /// One version of one document. Whoever may see some but not all of a document's versions
    /// sees only versions that are frozen (gate, rebuttal, factual check, bundle) or filed as
    /// a response.
    pub fn sees_version(
        &self,
        investigation: &Investigation,
        document: &DocumentState,
        version: VersionId,
    ) -> bool {
        if !self.investigation {
            return false;
        }
        if self.everything {
            return true;
        }
        let frozen = &investigation.frozen;
        if frozen.bundle.contains(&version) {
            return true;
        }
        let relation = &self.relation;
        let concerned = relation.is_concerned_municipality();
        if concerned && frozen.approved_proposal == Some(version) {
            return true;
        }
        if relation.has(Capacity::CollegeContact) && frozen.rebuttal_draft.contains(&version) {
            return true;
        }
        if relation.has(Capacity::CollegeContact)
            && document.kind == DocumentKind::AdministrativeResponse
            && investigation
                .responses
                .iter()
                .any(|r| r.version == version && !relation.college_of.is_disjoint(&r.colleges))
        {
            return true;
        }
        if relation.has(Capacity::CivilServiceContact) {
            if frozen.factual_check_base == Some(version) {
                return true;
            }
            if document.kind == DocumentKind::FactualResponse
                && document
                    .municipality
                    .is_some_and(|m| relation.civil_service_of.contains(&m))
            {
                return true;
            }
        }
        false
    }
}

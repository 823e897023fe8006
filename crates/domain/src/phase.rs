//! The phase machine of an investigation and the document kinds.

use serde::{Deserialize, Serialize};

/// The phases of an investigation, in order; CLOSED and CANCELLED are terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    /// Onderzoeksvoorstel.
    Proposal,
    /// Onderzoek, with the optional factual check (ambtelijk wederhoor).
    Research,
    /// Bestuurlijk wederhoor: the colleges respond to the draft.
    AdministrativeRebuttal,
    /// Nawoord: the commissions' reply to the responses.
    Epilogue,
    /// Aanbieding aan de raad: every chair signs.
    CouncilSubmission,
    /// Opvolging of the recommendations.
    FollowUp,
    Closed,
    Cancelled,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Proposal,
        Phase::Research,
        Phase::AdministrativeRebuttal,
        Phase::Epilogue,
        Phase::CouncilSubmission,
        Phase::FollowUp,
        Phase::Closed,
        Phase::Cancelled,
    ];

    /// The phases that end with a gate, in order.
    pub const WITH_GATE: [Phase; 6] = [
        Phase::Proposal,
        Phase::Research,
        Phase::AdministrativeRebuttal,
        Phase::Epilogue,
        Phase::CouncilSubmission,
        Phase::FollowUp,
    ];

    /// The phase its gate leads to; `None` for the terminal phases.
    pub fn next(self) -> Option<Phase> {
        match self {
            Phase::Proposal => Some(Phase::Research),
            Phase::Research => Some(Phase::AdministrativeRebuttal),
            Phase::AdministrativeRebuttal => Some(Phase::Epilogue),
            Phase::Epilogue => Some(Phase::CouncilSubmission),
            Phase::CouncilSubmission => Some(Phase::FollowUp),
            Phase::FollowUp => Some(Phase::Closed),
            Phase::Closed | Phase::Cancelled => None,
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Closed | Phase::Cancelled)
    }

    /// Suspension is possible before the report has gone to the councils.
    pub fn may_suspend(self) -> bool {
        self < Phase::FollowUp
    }

    /// Position in the order of the phase machine (CANCELLED last).
    pub fn ordinal(self) -> usize {
        Phase::ALL
            .iter()
            .position(|phase| *phase == self)
            .unwrap_or(0)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Proposal => "PROPOSAL",
            Phase::Research => "RESEARCH",
            Phase::AdministrativeRebuttal => "ADMINISTRATIVE_REBUTTAL",
            Phase::Epilogue => "EPILOGUE",
            Phase::CouncilSubmission => "COUNCIL_SUBMISSION",
            Phase::FollowUp => "FOLLOW_UP",
            Phase::Closed => "CLOSED",
            Phase::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|phase| phase.as_str() == text)
    }
}

/// The kinds of documents in an investigation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DocumentKind {
    /// Onderzoeksvoorstel.
    Proposal,
    /// Onderzoeksrapport (nota van bevindingen).
    ResearchReport,
    /// Conclusies en aanbevelingen (bestuurlijke nota).
    Conclusions,
    /// Ambtelijke reactie of one municipality during the factual check.
    FactualResponse,
    /// Bestuurlijke reactie, written only through `fileResponse`.
    AdministrativeResponse,
    /// Nawoord.
    Epilogue,
    /// Aanbiedingsbrief.
    CoverLetter,
    /// Bijlage; several may exist, told apart by title.
    Annex,
}

impl DocumentKind {
    pub const ALL: [DocumentKind; 8] = [
        DocumentKind::Proposal,
        DocumentKind::ResearchReport,
        DocumentKind::Conclusions,
        DocumentKind::FactualResponse,
        DocumentKind::AdministrativeResponse,
        DocumentKind::Epilogue,
        DocumentKind::CoverLetter,
        DocumentKind::Annex,
    ];

    /// The phases in which new versions of this kind are accepted.
    pub fn writable_in(self) -> &'static [Phase] {
        match self {
            DocumentKind::Proposal => &[Phase::Proposal],
            DocumentKind::ResearchReport | DocumentKind::Conclusions => &[Phase::Research],
            DocumentKind::FactualResponse => &[Phase::Research],
            DocumentKind::AdministrativeResponse => {
                &[Phase::AdministrativeRebuttal, Phase::Epilogue]
            }
            DocumentKind::Epilogue => &[Phase::Epilogue],
            DocumentKind::CoverLetter => &[Phase::Epilogue, Phase::CouncilSubmission],
            DocumentKind::Annex => &[Phase::Research, Phase::Epilogue, Phase::CouncilSubmission],
        }
    }

    /// One document of this kind per investigation (ANNEX: per title; FACTUAL_RESPONSE: per
    /// municipality; ADMINISTRATIVE_RESPONSE: per response).
    pub fn is_singular(self) -> bool {
        !matches!(
            self,
            DocumentKind::Annex
                | DocumentKind::FactualResponse
                | DocumentKind::AdministrativeResponse
        )
    }

    /// The title a document gets when its first version names none.
    pub fn default_title(self) -> &'static str {
        match self {
            DocumentKind::Proposal => "Onderzoeksvoorstel",
            DocumentKind::ResearchReport => "Onderzoeksrapport",
            DocumentKind::Conclusions => "Conclusies en aanbevelingen",
            DocumentKind::FactualResponse => "Ambtelijke reactie",
            DocumentKind::AdministrativeResponse => "Bestuurlijke reactie",
            DocumentKind::Epilogue => "Nawoord",
            DocumentKind::CoverLetter => "Aanbiedingsbrief",
            DocumentKind::Annex => "Bijlage",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Proposal => "PROPOSAL",
            DocumentKind::ResearchReport => "RESEARCH_REPORT",
            DocumentKind::Conclusions => "CONCLUSIONS",
            DocumentKind::FactualResponse => "FACTUAL_RESPONSE",
            DocumentKind::AdministrativeResponse => "ADMINISTRATIVE_RESPONSE",
            DocumentKind::Epilogue => "EPILOGUE",
            DocumentKind::CoverLetter => "COVER_LETTER",
            DocumentKind::Annex => "ANNEX",
        }
    }

    pub fn parse(text: &str) -> Option<DocumentKind> {
        DocumentKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// Rebuttal mode: one response for several colleges, or one per college.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResponseMode {
    Joint,
    Separate,
}

impl ResponseMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseMode::Joint => "JOINT",
            ResponseMode::Separate => "SEPARATE",
        }
    }

    pub fn parse(text: &str) -> Option<ResponseMode> {
        [ResponseMode::Joint, ResponseMode::Separate]
            .into_iter()
            .find(|mode| mode.as_str() == text)
    }
}

/// To whom a recommendation is addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecommendationAddressee {
    Council,
    College,
    Administration,
}

impl RecommendationAddressee {
    pub fn as_str(self) -> &'static str {
        match self {
            RecommendationAddressee::Council => "COUNCIL",
            RecommendationAddressee::College => "COLLEGE",
            RecommendationAddressee::Administration => "ADMINISTRATION",
        }
    }

    pub fn parse(text: &str) -> Option<RecommendationAddressee> {
        [
            RecommendationAddressee::Council,
            RecommendationAddressee::College,
            RecommendationAddressee::Administration,
        ]
        .into_iter()
        .find(|addressee| addressee.as_str() == text)
    }
}

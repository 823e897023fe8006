//! The factual check (ambtelijk wederhoor) and the administrative rebuttal (bestuurlijk
//! wederhoor): deadlines per municipality or college, responses (JOINT or SEPARATE), co-signing,
//! extensions decided by every participating commission, and the scheduler's tick that marks
//! deadlines MISSED and emits reminders.

use crate::content::ContentMeta;
use crate::deadline::{self, due_at_end_of};
use crate::error::DomainError;
use crate::ids::{
    CommissionId, DeadlineId, DocumentId, ExtensionId, MunicipalityId, RecommendationId,
    ResponseId, VersionId,
};
use crate::investigation::{Change, FreezePurpose, Investigation, ResponseState};
use crate::permission::Relation;
use crate::phase::{DocumentKind, ResponseMode};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Which round a deadline belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeadlineKind {
    FactualCheck,
    AdministrativeResponse,
}

impl DeadlineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadlineKind::FactualCheck => "FACTUAL_CHECK",
            DeadlineKind::AdministrativeResponse => "ADMINISTRATIVE_RESPONSE",
        }
    }

    pub fn parse(text: &str) -> Option<DeadlineKind> {
        [
            DeadlineKind::FactualCheck,
            DeadlineKind::AdministrativeResponse,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeadlineStatus {
    Open,
    Met,
    Missed,
    Waived,
}

impl DeadlineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadlineStatus::Open => "OPEN",
            DeadlineStatus::Met => "MET",
            DeadlineStatus::Missed => "MISSED",
            DeadlineStatus::Waived => "WAIVED",
        }
    }

    pub fn parse(text: &str) -> Option<DeadlineStatus> {
        [
            DeadlineStatus::Open,
            DeadlineStatus::Met,
            DeadlineStatus::Missed,
            DeadlineStatus::Waived,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// A college's position on one recommendation, from its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CollegePosition {
    Agrees,
    Partly,
    Disagrees,
    NoPosition,
}

impl CollegePosition {
    pub fn as_str(self) -> &'static str {
        match self {
            CollegePosition::Agrees => "AGREES",
            CollegePosition::Partly => "PARTLY",
            CollegePosition::Disagrees => "DISAGREES",
            CollegePosition::NoPosition => "NO_POSITION",
        }
    }

    pub fn parse(text: &str) -> Option<CollegePosition> {
        [
            CollegePosition::Agrees,
            CollegePosition::Partly,
            CollegePosition::Disagrees,
            CollegePosition::NoPosition,
        ]
        .into_iter()
        .find(|position| position.as_str() == text)
    }
}

/// The terms of one commission (its policy), in days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermPolicy {
    pub factual_check_days: u32,
    pub rebuttal_days: u32,
}

impl Default for TermPolicy {
    fn default() -> Self {
        TermPolicy {
            factual_check_days: deadline::DEFAULT_FACTUAL_CHECK_DAYS,
            rebuttal_days: deadline::DEFAULT_REBUTTAL_DAYS,
        }
    }
}

/// One deadline: for the factual check it binds a municipality, for the rebuttal a college
/// (both by municipality id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineState {
    pub id: DeadlineId,
    pub kind: DeadlineKind,
    pub municipality: MunicipalityId,
    pub due_at: DateTime<Utc>,
    pub status: DeadlineStatus,
    /// Reminders already emitted, as seconds before the due instant.
    pub reminders_sent: BTreeSet<i64>,
}

/// A request to extend a college's rebuttal deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionState {
    pub id: ExtensionId,
    pub municipality: MunicipalityId,
    pub proposed_due_date: NaiveDate,
    pub reason: String,
    /// Each participating commission's decision so far.
    pub votes: BTreeMap<CommissionId, bool>,
    /// `None` while undecided.
    pub granted: Option<bool>,
}

/// A new response's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewResponse {
    pub colleges: BTreeSet<MunicipalityId>,
    pub content: ContentMeta,
    pub positions: Vec<(RecommendationId, CollegePosition)>,
    pub response: ResponseId,
    pub document: DocumentId,
    pub version: VersionId,
}

fn check_reason(text: &str) -> Result<String, DomainError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DomainError::bad_input("reason", "must not be empty"));
    }
    if trimmed.chars().count() > crate::investigation::MAX_RECOMMENDATION_CHARS {
        return Err(DomainError::bad_input("reason", "too long"));
    }
    Ok(trimmed.to_string())
}

impl Investigation {
    /// The policy of a participating commission (the default when unknown).
    pub fn policy(&self, commission: CommissionId) -> TermPolicy {
        self.policies.get(&commission).copied().unwrap_or_default()
    }

    /// The shortest term of the participants.
    pub fn joint_term(&self, kind: DeadlineKind) -> u32 {
        let terms = self.commissions.iter().map(|c| {
            let policy = self.policy(c.id);
            match kind {
                DeadlineKind::FactualCheck => policy.factual_check_days,
                DeadlineKind::AdministrativeResponse => policy.rebuttal_days,
            }
        });
        let default = match kind {
            DeadlineKind::FactualCheck => deadline::DEFAULT_FACTUAL_CHECK_DAYS,
            DeadlineKind::AdministrativeResponse => deadline::DEFAULT_REBUTTAL_DAYS,
        };
        deadline::joint_term(terms, default)
    }

    /// The due instant of a round opening now: the explicit day aligned to the rule, or the
    /// joint term counted from now.
    pub fn due_at(
        &self,
        kind: DeadlineKind,
        explicit: Option<NaiveDate>,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let day = match explicit {
            Some(day) => self.calendar.align(day),
            None => self.calendar.due_day(now, self.joint_term(kind)),
        };
        due_at_end_of(day)
    }

    pub fn deadlines_of(&self, kind: DeadlineKind) -> impl Iterator<Item = &DeadlineState> {
        self.deadlines.iter().filter(move |d| d.kind == kind)
    }

    fn deadline_for(
        &self,
        kind: DeadlineKind,
        municipality: MunicipalityId,
    ) -> Option<&DeadlineState> {
        self.deadlines
            .iter()
            .find(|d| d.kind == kind && d.municipality == municipality)
    }

    /// Whether a factual check is running: started, and some municipality's deadline is open
    /// and not yet passed.
    pub fn factual_check_running(&self, now: DateTime<Utc>) -> bool {
        self.deadlines_of(DeadlineKind::FactualCheck)
            .any(|d| d.status == DeadlineStatus::Open && d.due_at >= now)
    }

    /// Whether a factual check was ever started.
    pub fn factual_check_started(&self) -> bool {
        self.deadlines_of(DeadlineKind::FactualCheck)
            .next()
            .is_some()
    }

    /// The colleges (by municipality) that have a counted response.
    pub fn colleges_with_counted_response(&self) -> BTreeSet<MunicipalityId> {
        self.counted_responses()
            .into_iter()
            .flat_map(|r| r.signed_by.iter().copied())
            .collect()
    }

    /// Colleges of the rebuttal round that have neither a counted response nor a passed
    /// deadline.
    pub fn colleges_still_awaited(&self, now: DateTime<Utc>) -> Vec<MunicipalityId> {
        let answered = self.colleges_with_counted_response();
        self.municipalities()
            .into_iter()
            .filter(|m| !answered.contains(m))
            .filter(|m| {
                self.deadline_for(DeadlineKind::AdministrativeResponse, *m)
                    .is_none_or(|d| d.due_at >= now && d.status != DeadlineStatus::Waived)
            })
            .collect()
    }

    /// `startFactualCheck`: one deadline per concerned municipality; the RESEARCH_REPORT
    /// version current now is what the civil service gets to see.
    pub(crate) fn start_factual_check(
        &self,
        due_date: Option<NaiveDate>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Change>, DomainError> {
        if self.factual_check_started() {
            return Err(DomainError::conflict(
                "a factual check has already been held in this investigation",
            ));
        }
        if let Some(day) = due_date
            && day <= deadline::local_day(now)
        {
            return Err(DomainError::bad_input(
                "dueDate",
                "the due date must lie in the future",
            ));
        }
        let Some(report) = self
            .document(DocumentKind::ResearchReport)
            .and_then(|d| d.latest())
        else {
            return Err(DomainError::conflict(
                "a factual check needs a RESEARCH_REPORT version to check",
            ));
        };
        let due_at = self.due_at(DeadlineKind::FactualCheck, due_date, now);
        let mut changes = vec![Change::VersionsFrozen {
            purpose: FreezePurpose::FactualCheckBase,
            versions: vec![report.id],
        }];
        changes.extend(self.municipalities().into_iter().map(|municipality| {
            Change::DeadlineOpened {
                deadline: DeadlineId::new(),
                kind: DeadlineKind::FactualCheck,
                municipality,
                due_at,
            }
        }));
        Ok(changes)
    }

    /// The rebuttal deadlines that open when the RESEARCH gate passes.
    pub(crate) fn open_rebuttal(&self, now: DateTime<Utc>) -> Vec<Change> {
        let explicit = self.rebuttal_terms.and_then(|t| t.due_date);
        let due_at = self.due_at(DeadlineKind::AdministrativeResponse, explicit, now);
        let mut changes = self.close_passed(DeadlineKind::FactualCheck, now);
        changes.extend(self.municipalities().into_iter().map(|municipality| {
            Change::DeadlineOpened {
                deadline: DeadlineId::new(),
                kind: DeadlineKind::AdministrativeResponse,
                municipality,
                due_at,
            }
        }));
        changes
    }

    /// Marks the open deadlines of a kind MISSED (used when a gate closes the round).
    pub(crate) fn close_passed(&self, kind: DeadlineKind, _now: DateTime<Utc>) -> Vec<Change> {
        self.deadlines_of(kind)
            .filter(|d| d.status == DeadlineStatus::Open)
            .map(|d| Change::DeadlineClosed {
                deadline: d.id,
                municipality: d.municipality,
                status: DeadlineStatus::Missed,
            })
            .collect()
    }

    /// When the rebuttal gate passes: colleges without a counted response are recorded as
    /// "no response" and their deadlines are MISSED.
    pub(crate) fn close_rebuttal(&self, now: DateTime<Utc>) -> Vec<Change> {
        let answered = self.colleges_with_counted_response();
        let silent: Vec<MunicipalityId> = self
            .municipalities()
            .into_iter()
            .filter(|m| !answered.contains(m))
            .collect();
        let mut changes = self.close_passed(DeadlineKind::AdministrativeResponse, now);
        if !silent.is_empty() {
            changes.push(Change::NoResponse { colleges: silent });
        }
        changes
    }

    /// Every open deadline is WAIVED (cancel).
    pub(crate) fn waive_open(&self) -> Vec<Change> {
        self.deadlines
            .iter()
            .filter(|d| d.status == DeadlineStatus::Open)
            .map(|d| Change::DeadlineClosed {
                deadline: d.id,
                municipality: d.municipality,
                status: DeadlineStatus::Waived,
            })
            .collect()
    }

    /// On suspension: the clocks stop, but a deadline that has already passed (and that no
    /// scheduler pass marked yet) is MISSED now, so that resuming does not revive it.
    pub(crate) fn close_overdue(&self, now: DateTime<Utc>) -> Vec<Change> {
        self.deadlines
            .iter()
            .filter(|d| d.status == DeadlineStatus::Open && now > d.due_at)
            .map(|d| Change::DeadlineClosed {
                deadline: d.id,
                municipality: d.municipality,
                status: DeadlineStatus::Missed,
            })
            .collect()
    }

    /// On resume: each open deadline moves by the suspended time, then to the rule.
    pub(crate) fn shift_open(&self, now: DateTime<Utc>) -> Vec<Change> {
        let Some(since) = self.suspended_since else {
            return Vec::new();
        };
        let suspended = now - since;
        self.deadlines
            .iter()
            .filter(|d| d.status == DeadlineStatus::Open)
            .filter_map(|d| {
                let due_at = self.calendar.shift(d.due_at, suspended);
                (due_at != d.due_at).then(|| Change::DeadlineMoved {
                    deadline: d.id,
                    due_at,
                    reason: format!("suspended for {} minutes", suspended.num_minutes()),
                })
            })
            .collect()
    }

    /// The municipality a FACTUAL_RESPONSE by this caller is for.
    pub(crate) fn factual_response_municipality(
        &self,
        relation: &Relation,
        requested: Option<MunicipalityId>,
    ) -> Result<MunicipalityId, DomainError> {
        match requested {
            Some(m) if relation.civil_service_of.contains(&m) => Ok(m),
            Some(_) => Err(DomainError::forbidden(
                "you are no CIVIL_SERVICE_CONTACT of that municipality",
            )),
            None => {
                let mut own = relation.civil_service_of.iter();
                match (own.next(), own.next()) {
                    (Some(m), None) => Ok(*m),
                    _ => Err(DomainError::bad_input(
                        "municipalityId",
                        "you are the contact of several concerned municipalities: name one",
                    )),
                }
            }
        }
    }

    /// The deadline a factual response meets.
    pub(crate) fn factual_response_met(
        &self,
        municipality: MunicipalityId,
        now: DateTime<Utc>,
    ) -> Option<Change> {
        self.deadline_for(DeadlineKind::FactualCheck, municipality)
            .filter(|d| d.status == DeadlineStatus::Open && now <= d.due_at)
            .map(|d| Change::DeadlineClosed {
                deadline: d.id,
                municipality,
                status: DeadlineStatus::Met,
            })
    }

    /// Signing colleges' deadlines: MET when in time; whether any signature is late. A
    /// signature after the due instant is late even when an earlier response met the deadline,
    /// and an OPEN deadline it comes too late for is MISSED at once (the scheduler may not have
    /// passed yet).
    fn sign(&self, colleges: &BTreeSet<MunicipalityId>, now: DateTime<Utc>) -> (Vec<Change>, bool) {
        let mut changes = Vec::new();
        let mut late = false;
        for college in colleges {
            match self.deadline_for(DeadlineKind::AdministrativeResponse, *college) {
                Some(d) if d.status == DeadlineStatus::Open && now <= d.due_at => {
                    changes.push(Change::DeadlineClosed {
                        deadline: d.id,
                        municipality: *college,
                        status: DeadlineStatus::Met,
                    });
                }
                Some(d) if d.status == DeadlineStatus::Open => {
                    late = true;
                    changes.push(Change::DeadlineClosed {
                        deadline: d.id,
                        municipality: *college,
                        status: DeadlineStatus::Missed,
                    });
                }
                Some(d) if d.status == DeadlineStatus::Met && now <= d.due_at => {}
                _ => late = true,
            }
        }
        (changes, late)
    }

    /// `fileResponse`: by a COLLEGE_CONTACT of at least one listed college.
    pub(crate) fn file_response(
        &self,
        relation: &Relation,
        new: NewResponse,
        now: DateTime<Utc>,
    ) -> Result<Vec<Change>, DomainError> {
        let concerned = self.municipalities();
        if new.colleges.is_empty() {
            return Err(DomainError::bad_input(
                "collegeIds",
                "name at least one college",
            ));
        }
        if !new.colleges.is_subset(&concerned) {
            return Err(DomainError::bad_input(
                "collegeIds",
                "a listed college is not concerned by this investigation",
            ));
        }
        let mode = self
            .rebuttal_terms
            .map_or(ResponseMode::Separate, |t| t.mode);
        if mode == ResponseMode::Separate && new.colleges.len() != 1 {
            return Err(DomainError::bad_input(
                "collegeIds",
                "the rebuttal is SEPARATE: a response speaks for exactly one college",
            ));
        }
        let signed_by: BTreeSet<MunicipalityId> = new
            .colleges
            .intersection(&relation.college_of)
            .copied()
            .collect();
        if signed_by.is_empty() {
            return Err(DomainError::forbidden(
                "you are no COLLEGE_CONTACT of a college this response lists",
            ));
        }
        let mut seen = BTreeSet::new();
        for (recommendation, _) in &new.positions {
            if !self.recommendations.iter().any(|r| r.id == *recommendation) {
                return Err(DomainError::bad_input(
                    "positions",
                    "a position names a recommendation of another investigation",
                ));
            }
            if !seen.insert(*recommendation) {
                return Err(DomainError::bad_input(
                    "positions",
                    "a recommendation has two positions",
                ));
            }
        }
        let (mut changes, late) = self.sign(&signed_by, now);
        let number = self
            .documents
            .iter()
            .filter(|d| d.kind == DocumentKind::AdministrativeResponse)
            .count()
            + 1;
        let mut all = vec![
            Change::DocumentCreated {
                document: new.document,
                kind: DocumentKind::AdministrativeResponse,
                title: format!("Bestuurlijke reactie {number}"),
                municipality: None,
            },
            Change::VersionAdded {
                document: new.document,
                version: new.version,
                number: 1,
                sha256: new.content.sha256,
                size_bytes: new.content.size_bytes,
                media_type: new.content.media_type,
                note: None,
            },
            Change::ResponseFiled {
                response: new.response,
                document: new.document,
                version: new.version,
                colleges: new.colleges.into_iter().collect(),
                signed_by: signed_by.into_iter().collect(),
                late,
                positions: new.positions,
            },
        ];
        all.append(&mut changes);
        Ok(all)
    }

    /// `cosignResponse`: a contact of a listed college that has not signed yet.
    pub(crate) fn cosign_response(
        &self,
        relation: &Relation,
        response: ResponseId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Change>, DomainError> {
        let Some(found) = self.responses.iter().find(|r| r.id == response) else {
            return Err(DomainError::NotFound);
        };
        let signing: BTreeSet<MunicipalityId> = found
            .colleges
            .intersection(&relation.college_of)
            .filter(|m| !found.signed_by.contains(m))
            .copied()
            .collect();
        if found.colleges.is_disjoint(&relation.college_of) {
            return Err(DomainError::NotFound);
        }
        if signing.is_empty() {
            return Err(DomainError::conflict(
                "your college has already signed this response",
            ));
        }
        let (mut changes, late) = self.sign(&signing, now);
        let mut all = vec![Change::ResponseCosigned {
            response,
            colleges: signing.into_iter().collect(),
            late,
        }];
        all.append(&mut changes);
        Ok(all)
    }

    /// `requestExtension`: a COLLEGE_CONTACT for its own college, while its deadline is open.
    pub(crate) fn request_extension(
        &self,
        relation: &Relation,
        college: MunicipalityId,
        proposed_due_date: NaiveDate,
        reason: &str,
        id: ExtensionId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Change>, DomainError> {
        let reason = check_reason(reason)?;
        if !self.municipalities().contains(&college) {
            return Err(DomainError::bad_input(
                "collegeId",
                "this college is not concerned",
            ));
        }
        if !relation.college_of.contains(&college) {
            return Err(DomainError::forbidden(
                "you are no COLLEGE_CONTACT of this college",
            ));
        }
        let Some(deadline) = self.deadline_for(DeadlineKind::AdministrativeResponse, college)
        else {
            return Err(DomainError::conflict(
                "this college has no rebuttal deadline",
            ));
        };
        if deadline.status != DeadlineStatus::Open || now > deadline.due_at {
            return Err(DomainError::conflict(
                "the deadline is no longer open: an extension can only be asked before it passes",
            ));
        }
        if due_at_end_of(proposed_due_date) <= deadline.due_at {
            return Err(DomainError::bad_input(
                "proposedDueDate",
                "an extension must lie after the current due date",
            ));
        }
        if self
            .extensions
            .iter()
            .any(|e| e.municipality == college && e.granted.is_none())
        {
            return Err(DomainError::conflict(
                "an extension request of this college is still undecided",
            ));
        }
        Ok(vec![Change::ExtensionRequested {
            request: id,
            municipality: college,
            proposed_due_date,
            reason,
        }])
    }

    /// `decideExtension`: each participating commission decides once (through a chair);
    /// granted when all agree, refused as soon as one refuses.
    pub(crate) fn decide_extension(
        &self,
        relation: &Relation,
        request: ExtensionId,
        grant: bool,
        comment: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Change>, DomainError> {
        let Some(found) = self.extensions.iter().find(|e| e.id == request) else {
            return Err(DomainError::NotFound);
        };
        if found.granted.is_some() {
            return Err(DomainError::conflict(
                "this extension request has been decided",
            ));
        }
        let deadline = self.deadline_for(DeadlineKind::AdministrativeResponse, found.municipality);
        // A closed deadline (MET, MISSED, WAIVED) never reopens, so it can no longer be moved.
        if grant && !deadline.is_some_and(|d| d.status == DeadlineStatus::Open && now <= d.due_at) {
            return Err(DomainError::conflict(
                "the college's deadline is no longer open: the extension can only be refused",
            ));
        }
        let deciding: Vec<CommissionId> = relation
            .chaired_commissions
            .iter()
            .filter(|c| !found.votes.contains_key(c))
            .copied()
            .collect();
        if deciding.is_empty() {
            return Err(DomainError::conflict("your commission has already decided"));
        }
        let mut changes: Vec<Change> = deciding
            .iter()
            .map(|commission| Change::ExtensionVoted {
                request,
                commission: *commission,
                grant,
                comment: comment.clone(),
            })
            .collect();
        let mut votes = found.votes.clone();
        for commission in &deciding {
            votes.insert(*commission, grant);
        }
        let all_decided = self.commissions.iter().all(|c| votes.contains_key(&c.id));
        let refused = votes.values().any(|granted| !granted);
        if refused || all_decided {
            changes.push(Change::ExtensionResolved {
                request,
                granted: !refused,
            });
            let extended = due_at_end_of(self.calendar.align(found.proposed_due_date));
            // A suspension may have moved the deadline past the proposed date meanwhile: a
            // deadline never moves earlier.
            if !refused
                && let Some(deadline) = deadline
                && extended > deadline.due_at
            {
                changes.push(Change::DeadlineMoved {
                    deadline: deadline.id,
                    due_at: extended,
                    reason: "extension granted".into(),
                });
            }
        }
        Ok(changes)
    }

    /// The scheduler's tick: MISSED for open deadlines that passed, reminders `offsets` before
    /// each open deadline. Nothing while suspended: the clock stands still.
    pub fn tick(&self, now: DateTime<Utc>, offsets: &[Duration]) -> Vec<Change> {
        if self.suspended || self.phase.is_terminal() {
            return Vec::new();
        }
        let mut changes = Vec::new();
        for deadline in self
            .deadlines
            .iter()
            .filter(|d| d.status == DeadlineStatus::Open)
        {
            if now > deadline.due_at {
                changes.push(Change::DeadlineClosed {
                    deadline: deadline.id,
                    municipality: deadline.municipality,
                    status: DeadlineStatus::Missed,
                });
                continue;
            }
            // Only the nearest reminder that is due and not yet sent: after a jump of the
            // clock, one reminder, not a burst.
            let due: Vec<i64> = offsets
                .iter()
                .map(|o| o.num_seconds())
                .filter(|seconds| now >= deadline.due_at - Duration::seconds(*seconds))
                .collect();
            if let Some(nearest) = due.iter().min()
                && !deadline.reminders_sent.contains(nearest)
            {
                changes.push(Change::ReminderDue {
                    deadline: deadline.id,
                    kind: deadline.kind,
                    municipality: deadline.municipality,
                    due_at: deadline.due_at,
                    before_seconds: *nearest,
                    // Only offsets not sent yet: each (deadline, offset) is stored once.
                    also_covers: due
                        .iter()
                        .copied()
                        .filter(|s| s != nearest && !deadline.reminders_sent.contains(s))
                        .collect(),
                });
            }
        }
        changes
    }

    /// Applies the rebuttal changes to the value.
    pub(crate) fn apply_round(&mut self, change: &Change, now: DateTime<Utc>) {
        match change {
            Change::DeadlineOpened {
                deadline,
                kind,
                municipality,
                due_at,
            } => self.deadlines.push(DeadlineState {
                id: *deadline,
                kind: *kind,
                municipality: *municipality,
                due_at: *due_at,
                status: DeadlineStatus::Open,
                reminders_sent: BTreeSet::new(),
            }),
            Change::DeadlineClosed {
                deadline, status, ..
            } => {
                if let Some(d) = self.deadlines.iter_mut().find(|d| d.id == *deadline) {
                    d.status = *status;
                }
            }
            Change::DeadlineMoved {
                deadline, due_at, ..
            } => {
                if let Some(d) = self.deadlines.iter_mut().find(|d| d.id == *deadline) {
                    d.due_at = *due_at;
                    // Reminders count down to the new due instant again.
                    d.reminders_sent.clear();
                }
            }
            Change::ReminderDue {
                deadline,
                before_seconds,
                also_covers,
                ..
            } => {
                if let Some(d) = self.deadlines.iter_mut().find(|d| d.id == *deadline) {
                    d.reminders_sent.insert(*before_seconds);
                    d.reminders_sent.extend(also_covers.iter().copied());
                }
            }
            Change::ResponseFiled {
                response,
                document,
                version,
                colleges,
                signed_by,
                late,
                positions,
            } => self.responses.push(ResponseState {
                id: *response,
                document: *document,
                colleges: colleges.iter().copied().collect(),
                signed_by: signed_by.iter().copied().collect(),
                version: *version,
                filed_at: now,
                late: *late,
                positions: positions.clone(),
            }),
            Change::ResponseCosigned {
                response,
                colleges,
                late,
            } => {
                if let Some(r) = self.responses.iter_mut().find(|r| r.id == *response) {
                    r.signed_by.extend(colleges.iter().copied());
                    r.late |= *late;
                }
            }
            Change::ExtensionRequested {
                request,
                municipality,
                proposed_due_date,
                reason,
            } => self.extensions.push(ExtensionState {
                id: *request,
                municipality: *municipality,
                proposed_due_date: *proposed_due_date,
                reason: reason.clone(),
                votes: BTreeMap::new(),
                granted: None,
            }),
            Change::ExtensionVoted {
                request,
                commission,
                grant,
                ..
            } => {
                if let Some(e) = self.extensions.iter_mut().find(|e| e.id == *request) {
                    e.votes.insert(*commission, *grant);
                }
            }
            Change::ExtensionResolved { request, granted } => {
                if let Some(e) = self.extensions.iter_mut().find(|e| e.id == *request) {
                    e.granted = Some(*granted);
                }
            }
            _ => {}
        }
    }
}

//! Council submission (aanbieding aan de raad), publication and follow-up (opvolging): the
//! frozen bundle and its manifest, one submission per concerned council at one instant, council
//! decisions per recommendation per council, and implementation updates.

use crate::error::DomainError;
use crate::ids::{MunicipalityId, RecommendationId, SubmissionId, VersionId};
use crate::investigation::{Change, FreezePurpose, Investigation, MAX_RECOMMENDATION_CHARS};
use crate::permission::Relation;
use crate::phase::DocumentKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A council's decision on a recommendation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CouncilDecision {
    /// Overgenomen.
    Adopted,
    /// Geamendeerd overgenomen.
    Amended,
    /// Niet overgenomen.
    Rejected,
    /// Voor kennisgeving aangenomen.
    Noted,
    /// Niet behandeld.
    NotTreated,
}

impl CouncilDecision {
    pub const ALL: [CouncilDecision; 5] = [
        CouncilDecision::Adopted,
        CouncilDecision::Amended,
        CouncilDecision::Rejected,
        CouncilDecision::Noted,
        CouncilDecision::NotTreated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CouncilDecision::Adopted => "ADOPTED",
            CouncilDecision::Amended => "AMENDED",
            CouncilDecision::Rejected => "REJECTED",
            CouncilDecision::Noted => "NOTED",
            CouncilDecision::NotTreated => "NOT_TREATED",
        }
    }

    pub fn parse(text: &str) -> Option<CouncilDecision> {
        CouncilDecision::ALL
            .into_iter()
            .find(|decision| decision.as_str() == text)
    }
}

/// One entry of a bundle's manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestEntry {
    pub position: usize,
    pub kind: DocumentKind,
    pub title: String,
    pub number: i32,
    pub sha256: String,
    pub media_type: String,
    pub size_bytes: i64,
    /// The file's name inside the bundle ZIP: position, kind and version number.
    pub file: String,
    #[serde(skip)]
    pub version: Option<VersionId>,
}

/// The manifest of a bundle: its canonical JSON and that text's SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub entries: Vec<ManifestEntry>,
    pub json: String,
    pub sha256: String,
}

impl Investigation {
    /// The bundle in the contract's order: COVER_LETTER (if any), CONCLUSIONS, every counted
    /// response, EPILOGUE, RESEARCH_REPORT, ANNEXes (by title) — the latest version of each.
    pub fn bundle_versions(&self) -> Vec<(DocumentKind, VersionId)> {
        let mut versions = Vec::new();
        let latest = |kind: DocumentKind, versions: &mut Vec<(DocumentKind, VersionId)>| {
            if let Some(v) = self.document(kind).and_then(|d| d.latest()) {
                versions.push((kind, v.id));
            }
        };
        latest(DocumentKind::CoverLetter, &mut versions);
        latest(DocumentKind::Conclusions, &mut versions);
        for response in self.counted_responses() {
            versions.push((DocumentKind::AdministrativeResponse, response.version));
        }
        latest(DocumentKind::Epilogue, &mut versions);
        latest(DocumentKind::ResearchReport, &mut versions);
        let mut annexes: Vec<_> = self
            .documents
            .iter()
            .filter(|d| d.kind == DocumentKind::Annex)
            .filter_map(|d| d.latest().map(|v| (d.title.clone(), v.id)))
            .collect();
        annexes.sort();
        versions.extend(
            annexes
                .into_iter()
                .map(|(_, version)| (DocumentKind::Annex, version)),
        );
        versions
    }

    /// The manifest of the bundle: every version's kind, title, number, SHA-256, media type,
    /// size and file name in bundle order; its SHA-256 is over the canonical JSON.
    pub fn manifest(&self) -> Manifest {
        let mut entries = Vec::new();
        for (position, (kind, version)) in self.bundle_versions().into_iter().enumerate() {
            let Some((document, info)) = self
                .documents
                .iter()
                .find_map(|d| d.versions.iter().find(|v| v.id == version).map(|v| (d, v)))
            else {
                continue;
            };
            entries.push(ManifestEntry {
                position: position + 1,
                kind,
                title: document.title.clone(),
                number: info.number,
                sha256: info.sha256.clone(),
                media_type: info.media_type.clone(),
                size_bytes: info.size_bytes,
                file: format!(
                    "{:02}-{}-v{}.{}",
                    position + 1,
                    kind.as_str().to_lowercase().replace('_', "-"),
                    info.number,
                    crate::content::extension(&info.media_type)
                ),
                version: Some(version),
            });
        }
        let json = serde_json_canonical(&entries);
        let sha256 = hex::encode(Sha256::digest(json.as_bytes()));
        Manifest {
            entries,
            json,
            sha256,
        }
    }

    /// What the COUNCIL_SUBMISSION gate does when it passes: freeze the bundle and submit it
    /// to every concerned council at once (which publishes it).
    pub(crate) fn submit_to_councils(&self) -> Vec<Change> {
        let manifest = self.manifest();
        let versions: Vec<VersionId> = manifest.entries.iter().filter_map(|e| e.version).collect();
        vec![
            Change::VersionsFrozen {
                purpose: FreezePurpose::Bundle,
                versions: versions.clone(),
            },
            Change::Submitted {
                submissions: self
                    .municipalities()
                    .into_iter()
                    .map(|m| (SubmissionId::new(), m))
                    .collect(),
                versions,
                manifest: manifest.json,
                manifest_sha256: manifest.sha256,
            },
        ]
    }

    fn recommendation_exists(&self, recommendation: RecommendationId) -> Result<(), DomainError> {
        if self.recommendations.iter().any(|r| r.id == recommendation) {
            Ok(())
        } else {
            Err(DomainError::NotFound)
        }
    }

    /// `recordCouncilDecision`: a GRIFFIER of the council's municipality.
    pub(crate) fn record_council_decision(
        &self,
        relation: &Relation,
        recommendation: RecommendationId,
        municipality: MunicipalityId,
        decision: CouncilDecision,
        note: Option<String>,
    ) -> Result<Vec<Change>, DomainError> {
        self.recommendation_exists(recommendation)?;
        if !self.municipalities().contains(&municipality) {
            return Err(DomainError::bad_input(
                "councilId",
                "this council is not one the investigation was submitted to",
            ));
        }
        if !relation.griffier_of.contains(&municipality) {
            return Err(DomainError::forbidden(
                "only a GRIFFIER of this council's municipality records its decisions",
            ));
        }
        let note = check_text("note", note)?;
        Ok(vec![Change::CouncilDecisionRecorded {
            recommendation,
            municipality,
            decision,
            note,
        }])
    }

    /// `addImplementationUpdate`: a COLLEGE_CONTACT of the municipality; append-only.
    pub(crate) fn add_implementation_update(
        &self,
        relation: &Relation,
        recommendation: RecommendationId,
        municipality: MunicipalityId,
        text: String,
    ) -> Result<Vec<Change>, DomainError> {
        self.recommendation_exists(recommendation)?;
        if !self.municipalities().contains(&municipality) {
            return Err(DomainError::bad_input(
                "municipalityId",
                "this municipality is not concerned by the investigation",
            ));
        }
        if !relation.college_of.contains(&municipality) {
            return Err(DomainError::forbidden(
                "only a COLLEGE_CONTACT of this municipality reports its implementation",
            ));
        }
        let text = check_text("text", Some(text))?
            .ok_or_else(|| DomainError::bad_input("text", "must not be empty"))?;
        Ok(vec![Change::ImplementationUpdated {
            recommendation,
            municipality,
            text,
        }])
    }
}

fn check_text(field: &str, text: Option<String>) -> Result<Option<String>, DomainError> {
    match text {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) if text.chars().count() > MAX_RECOMMENDATION_CHARS => {
            Err(DomainError::bad_input(
                field,
                format!("at most {MAX_RECOMMENDATION_CHARS} characters"),
            ))
        }
        Some(text) => Ok(Some(text.trim().to_string())),
    }
}

/// JSON of the manifest entries, fields in a fixed order, no whitespace.
fn serde_json_canonical(entries: &[ManifestEntry]) -> String {
    let mut out = String::from("[");
    for (index, entry) in entries.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"position\":{},\"kind\":{},\"title\":{},\"number\":{},\"sha256\":{},\"mediaType\":{},\"sizeBytes\":{},\"file\":{}}}",
            entry.position,
            json_string(entry.kind.as_str()),
            json_string(&entry.title),
            entry.number,
            json_string(&entry.sha256),
            json_string(&entry.media_type),
            entry.size_bytes,
            json_string(&entry.file),
        ));
    }
    out.push(']');
    out
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }

    #[test]
    fn the_canonical_manifest_reads_back() {
        let entry = ManifestEntry {
            position: 1,
            kind: DocumentKind::Conclusions,
            title: "Conclusies \"en\" aanbevelingen".into(),
            number: 2,
            sha256: "ab".repeat(32),
            media_type: crate::content::MARKDOWN.into(),
            size_bytes: 42,
            file: "01-conclusions-v2.md".into(),
            version: None,
        };
        let json = serde_json_canonical(std::slice::from_ref(&entry));
        let back: Vec<ManifestEntry> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vec![entry]);
    }

    #[test]
    fn decisions_round_trip() {
        for decision in CouncilDecision::ALL {
            assert_eq!(CouncilDecision::parse(decision.as_str()), Some(decision));
        }
    }
}

//! Downloads of version bytes, decided by the same visibility rules as the GraphQL fields.

use crate::context::ApiState;
use crate::error::{ApiError, ApiResult};
use rkflow_domain::Actor;
use rkflow_domain::visibility::View;
use rkflow_store::entity::document_version;
use rkflow_store::{Origin, investigations};
use uuid::Uuid;

/// A file to send.
pub struct Download {
    pub version: document_version::Model,
    pub bytes: Vec<u8>,
    pub file_name: String,
}

/// The bytes of a version, when `actor` may see it; NOT_FOUND otherwise (also for versions
/// that exist but are hidden). Reads of confidential (unpublished) content are audited.
pub async fn version_download(
    state: &ApiState,
    actor: &Actor,
    origin: &Origin,
    version_id: Uuid,
) -> ApiResult<Download> {
    let db = &state.db;
    let version = investigations::find_version(&db.conn, version_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let loaded = investigations::load(db, version.investigation_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let document = loaded
        .domain_document(version.document_id)
        .ok_or_else(ApiError::not_found)?;
    let view = View::of(&loaded.domain, actor);
    if !view.sees_version(&loaded.domain, document, version.id.into()) {
        return Err(ApiError::not_found());
    }
    let bytes = investigations::version_body(&db.conn, version.id).await?;
    let public = loaded.domain.frozen.bundle.contains(&version.id.into());
    if !public {
        investigations::record_read(
            db,
            origin,
            state.clock.now(),
            loaded.id(),
            &[version.id],
            "download",
        )
        .await?;
    }
    let file_name = version.file_name.clone().unwrap_or_else(|| {
        format!(
            "{}-v{}.{}",
            document.kind.as_str().to_lowercase(),
            version.number,
            rkflow_domain::content::extension(&version.media_type)
        )
    });
    Ok(Download {
        version,
        bytes,
        file_name,
    })
}

/// A bundle as one ZIP: `manifest.json` and every version's exact bytes, named by position,
/// kind and version number as the manifest says. Public: a submission exists only once the
/// bundle has been published.
pub struct BundleDownload {
    pub bytes: Vec<u8>,
    pub file_name: String,
    pub manifest_sha256: String,
}

pub async fn bundle_download(state: &ApiState, submission_id: Uuid) -> ApiResult<BundleDownload> {
    use std::io::Write;
    let db = &state.db;
    let submission = investigations::find_submission(db, submission_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let loaded = investigations::load(db, submission.investigation_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let (_, versions) = loaded
        .submissions
        .iter()
        .find(|(s, _)| s.id == submission_id)
        .ok_or_else(ApiError::not_found)?;
    let entries: Vec<rkflow_domain::submission::ManifestEntry> =
        serde_json::from_str(&submission.manifest)
            .map_err(|err| ApiError::internal(&format!("stored manifest unreadable: {err}")))?;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let zip_error = |err: &dyn std::fmt::Display| ApiError::internal(err);
    zip.start_file("manifest.json", options)
        .map_err(|e| zip_error(&e))?;
    zip.write_all(submission.manifest.as_bytes())
        .map_err(|e| zip_error(&e))?;
    for (entry, version) in entries.iter().zip(versions) {
        let bytes = investigations::version_body(&db.conn, *version).await?;
        zip.start_file(entry.file.as_str(), options)
            .map_err(|e| zip_error(&e))?;
        zip.write_all(&bytes).map_err(|e| zip_error(&e))?;
    }
    let bytes = zip.finish().map_err(|e| zip_error(&e))?.into_inner();
    Ok(BundleDownload {
        bytes,
        file_name: format!("rkflow-bundle-{}.zip", submission.id),
        manifest_sha256: submission.manifest_sha256,
    })
}

//! Document content: what may be uploaded and its fingerprint.

use crate::error::DomainError;
use sha2::{Digest, Sha256};

/// Largest uploaded file (25 MiB).
pub const MAX_UPLOAD_BYTES: usize = 25 * 1024 * 1024;
/// Largest Markdown text of one version (the JSON body limit leaves room for it).
pub const MAX_MARKDOWN_BYTES: usize = 2 * 1024 * 1024;

pub const MARKDOWN: &str = "text/markdown; charset=utf-8";
pub const PDF: &str = "application/pdf";
pub const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
pub const ODT: &str = "application/vnd.oasis.opendocument.text";

/// The metadata stored with every version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentMeta {
    pub sha256: String,
    pub size_bytes: i64,
    pub media_type: String,
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Validates Markdown text of a version.
pub fn markdown(text: &str) -> Result<ContentMeta, DomainError> {
    if text.trim().is_empty() {
        return Err(DomainError::bad_input("content", "the text is empty"));
    }
    if text.len() > MAX_MARKDOWN_BYTES {
        return Err(DomainError::bad_input(
            "content",
            format!(
                "the text is {} bytes; at most {MAX_MARKDOWN_BYTES} are accepted (upload a file instead)",
                text.len()
            ),
        ));
    }
    Ok(ContentMeta {
        sha256: sha256_hex(text.as_bytes()),
        size_bytes: text.len() as i64,
        media_type: MARKDOWN.to_string(),
    })
}

/// Validates an uploaded file: PDF, DOCX or ODT, recognised by its bytes (the declared
/// content type and file name are only hints), at most 25 MiB.
pub fn uploaded_file(file_name: &str, bytes: &[u8]) -> Result<ContentMeta, DomainError> {
    if bytes.is_empty() {
        return Err(DomainError::bad_input("file", "the file is empty"));
    }
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(DomainError::bad_input(
            "file",
            format!(
                "the file is {} bytes; at most {MAX_UPLOAD_BYTES} (25 MiB) are accepted",
                bytes.len()
            ),
        ));
    }
    let media_type = sniff(file_name, bytes).ok_or_else(|| {
        DomainError::bad_input("file", "only PDF, DOCX and ODT files are accepted")
    })?;
    Ok(ContentMeta {
        sha256: sha256_hex(bytes),
        size_bytes: bytes.len() as i64,
        media_type: media_type.to_string(),
    })
}

fn sniff(file_name: &str, bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        return Some(PDF);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        // An ODF package names its type in an uncompressed first entry "mimetype".
        if bytes.len() > 38 && bytes[30..].starts_with(b"mimetype") {
            let rest = &bytes[38..bytes.len().min(38 + 64)];
            if rest.starts_with(b"application/vnd.oasis.opendocument.text") {
                return Some(ODT);
            }
        }
        let lower = file_name.to_ascii_lowercase();
        if lower.ends_with(".docx") {
            return Some(DOCX);
        }
        if lower.ends_with(".odt") {
            return Some(ODT);
        }
    }
    None
}

/// The file name extension for a stored media type (for download names).
pub fn extension(media_type: &str) -> &'static str {
    match media_type {
        PDF => "pdf",
        DOCX => "docx",
        ODT => "odt",
        _ => "md",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_hashed_and_sized() {
        let meta = markdown("# Voorstel").unwrap();
        assert_eq!(meta.size_bytes, 10);
        assert_eq!(meta.sha256, sha256_hex(b"# Voorstel"));
        assert_eq!(meta.media_type, MARKDOWN);
        assert_eq!(markdown("  ").unwrap_err().code(), "BAD_USER_INPUT");
    }

    #[test]
    fn uploads_are_recognised_by_their_bytes() {
        assert_eq!(
            uploaded_file("r.pdf", b"%PDF-1.7 ...").unwrap().media_type,
            PDF
        );
        assert_eq!(
            uploaded_file("r.docx", b"PK\x03\x04rest")
                .unwrap()
                .media_type,
            DOCX
        );
        assert!(uploaded_file("r.pdf", b"MZ\x90\x00").is_err());
        assert!(uploaded_file("r.exe", b"PK\x03\x04rest").is_err());
        let too_big = vec![b'%'; MAX_UPLOAD_BYTES + 1];
        assert!(uploaded_file("big.pdf", &too_big).is_err());
    }
}

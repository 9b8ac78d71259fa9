//! Attachments: photos, scanned documents and voice notes filed with a workplace, a visit or a
//! child case. A record's document holds only a small manifest entry per attachment (`Attachment`),
//! in a map keyed by the attachment's id so that two devices adding attachments offline both keep
//! theirs; the bytes travel and rest apart from the document, encrypted.

use crate::domain::codes::RecordKind;
use crate::domain::validation::{ValidationError, optional_line};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// What an attachment is; it decides the media types accepted and how capture treats the bytes
/// (a photo is re-encoded: metadata stripped, downscaled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum AttachmentKind {
    Photo,
    /// A scanned document: a consent form, an identity paper, a school certificate.
    Document,
    VoiceNote,
}

impl AttachmentKind {
    /// The one stored code of each kind (manifest entries, tables).
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentKind::Photo => "photo",
            AttachmentKind::Document => "document",
            AttachmentKind::VoiceNote => "voice_note",
        }
    }

    pub fn from_str_opt(code: &str) -> Option<AttachmentKind> {
        [
            AttachmentKind::Photo,
            AttachmentKind::Document,
            AttachmentKind::VoiceNote,
        ]
        .into_iter()
        .find(|k| k.as_str() == code)
    }

    /// The media types a capture of this kind accepts. A photo is always stored as JPEG
    /// (re-encoded), whatever it arrived as.
    pub fn accepts(self, media_type: &str) -> bool {
        let accepted: &[&str] = match self {
            AttachmentKind::Photo => &["image/jpeg", "image/png"],
            AttachmentKind::Document => &["application/pdf", "image/jpeg", "image/png"],
            AttachmentKind::VoiceNote => &[
                "audio/aac",
                "audio/mp4",
                "audio/mpeg",
                "audio/ogg",
                "audio/opus",
                "audio/wav",
                "audio/webm",
                "audio/3gpp",
                "audio/amr",
            ],
        };
        accepted.contains(&media_type)
    }
}

/// How many leading bytes `starts_as` looks at.
pub const MAGIC_BYTES: usize = 12;

/// Whether `head` (the first bytes of a file, up to `MAGIC_BYTES`) begins as files of
/// `media_type` do: their magic number. A viewer on another device is handed the file under its
/// declared type, so a document or a voice note must be what it says.
pub fn starts_as(media_type: &str, head: &[u8]) -> bool {
    let ftyp = head.get(4..8) == Some(b"ftyp");
    match media_type {
        "application/pdf" => head.starts_with(b"%PDF-"),
        "image/jpeg" => head.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/png" => head.starts_with(b"\x89PNG\r\n\x1a\n"),
        // ID3 tag, or an MPEG audio frame's sync bits.
        "audio/mpeg" => {
            head.starts_with(b"ID3")
                || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0)
        }
        // ADTS frame sync, or an ADIF header.
        "audio/aac" => {
            head.starts_with(b"ADIF")
                || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xF0 == 0xF0)
        }
        "audio/mp4" | "audio/3gpp" => ftyp,
        "audio/ogg" | "audio/opus" => head.starts_with(b"OggS"),
        "audio/wav" => head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WAVE"),
        "audio/webm" => head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]),
        "audio/amr" => head.starts_with(b"#!AMR"),
        _ => false,
    }
}

impl fmt::Display for AttachmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rule a media type a kind of file does not take breaks (one text each, which the
/// catalogues translate whole).
fn not_accepted(kind: AttachmentKind) -> &'static str {
    match kind {
        AttachmentKind::Photo => "not a media type accepted for a photo",
        AttachmentKind::Document => "not a media type accepted for a document",
        AttachmentKind::VoiceNote => "not a media type accepted for a voice note",
    }
}

/// The kinds of record attachments may be filed with.
pub fn takes_attachments(kind: RecordKind) -> bool {
    matches!(
        kind,
        RecordKind::Workplace | RecordKind::Visit | RecordKind::ChildCase
    )
}

/// One attachment's manifest entry, as the record's document holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Attachment {
    pub id: Uuid,
    /// SHA-256 of the stored bytes (after a photo's re-encoding), lowercase hex.
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
    pub kind: AttachmentKind,
    pub caption: String,
    pub captured_by: Uuid,
    pub captured_at: DateTime<Utc>,
}

/// Characters of a caption.
pub const MAX_CAPTION_CHARS: usize = 500;

impl Attachment {
    /// The SHA-256 the entry names, as bytes; `None` unless it is 64 hexadecimal digits.
    pub fn sha256_digest(&self) -> Option<[u8; 32]> {
        let text = self.sha256.as_bytes();
        if text.len() != 64 {
            return None;
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(text.chunks(2)) {
            *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(digest)
    }

    /// Checks an entry as a phone writes it and as the hub receives it, against `limits`.
    pub fn validate(&self, limits: &AttachmentLimits) -> Result<(), ValidationError> {
        if self.id.is_nil() {
            return Err(ValidationError::new("attachments.id", "must be set"));
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ValidationError::new(
                "attachments.sha256",
                "must be 64 lowercase hexadecimal digits",
            ));
        }
        if self.size == 0 {
            return Err(ValidationError::new(
                "attachments.size",
                "must not be empty",
            ));
        }
        if self.size > limits.max_file_bytes {
            return Err(ValidationError::new(
                "attachments.size",
                format!("must not exceed {} bytes", limits.max_file_bytes),
            ));
        }
        if !self.kind.accepts(&self.media_type) {
            return Err(ValidationError::new(
                "attachments.media_type",
                not_accepted(self.kind),
            ));
        }
        if self.caption.chars().count() > MAX_CAPTION_CHARS {
            return Err(ValidationError::new(
                "attachments.caption",
                format!("must not be longer than {MAX_CAPTION_CHARS} characters"),
            ));
        }
        if self.captured_by.is_nil() {
            return Err(ValidationError::new(
                "attachments.captured_by",
                "must be set",
            ));
        }
        Ok(())
    }
}

/// Captions set in `after` (new entries, or captions that changed since `before`) are one line,
/// as the other one-line fields: no control character (NUL, a line break, a terminal's escape)
/// nor text-direction override. Captions stored before the rule keep their words: a record
/// holding one stays editable by everyone (its caption is no one's to change).
pub fn validate_new_captions(
    before: &[Attachment],
    after: &[Attachment],
) -> Result<(), ValidationError> {
    for entry in after {
        let kept = before
            .iter()
            .any(|b| b.id == entry.id && b.caption == entry.caption);
        if !kept {
            optional_line("attachments.caption", &entry.caption, MAX_CAPTION_CHARS)?;
        }
    }
    Ok(())
}

/// Checks a record's manifest `entries` as a change leaves it, from `held` before it: each
/// entry it adds, and their number and total size when it adds to them. What the record held
/// stays, judged when it came: a hub restarted with a lower limit refused every later edit of
/// a case holding a larger file (a colleague's hours, a follow-up), the case kept refused on
/// every phone, and a phone refused a small file naming the large one.
pub fn validate_manifest(
    held: &[Attachment],
    entries: &[Attachment],
    limits: &AttachmentLimits,
) -> Result<(), AttachmentRefusal> {
    let count = entries.len() as u64;
    if count > u64::from(limits.max_per_record) && count > held.len() as u64 {
        return Err(AttachmentRefusal::TooManyForRecord {
            count,
            limit: limits.max_per_record,
        });
    }
    let bytes = |entries: &[Attachment]| entries.iter().map(|a| a.size).sum::<u64>();
    let total = bytes(entries);
    if total > limits.max_record_bytes && total > bytes(held) {
        return Err(AttachmentRefusal::RecordTooLarge {
            size: total,
            limit: limits.max_record_bytes,
        });
    }
    let added = entries.iter().filter(|entry| {
        !held
            .iter()
            .any(|h| h.id == entry.id && h.size == entry.size && h.sha256 == entry.sha256)
    });
    for entry in added {
        if entry.size > limits.max_file_bytes {
            return Err(AttachmentRefusal::FileTooLarge {
                size: entry.size,
                limit: limits.max_file_bytes,
            });
        }
        entry.validate(limits).map_err(AttachmentRefusal::Invalid)?;
    }
    Ok(())
}

/// Why an attachment (or a record's manifest) is refused, with the figures at stake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentRefusal {
    #[error("attachment of {size} bytes exceeds the limit of {limit} bytes per file")]
    FileTooLarge { size: u64, limit: u64 },
    #[error("attachments of {size} bytes in all exceed the limit of {limit} bytes per record")]
    RecordTooLarge { size: u64, limit: u64 },
    #[error("{count} attachments exceed the limit of {limit} per record")]
    TooManyForRecord { count: u64, limit: u32 },
    #[error("an attachment must not be empty")]
    Empty,
    #[error("{}", not_accepted(*kind))]
    UnsupportedMediaType { kind: AttachmentKind },
    #[error("not a JPEG or PNG image, or a damaged one")]
    NotAnImage,
    #[error("the image is wider or taller than a photo may be")]
    ImageTooLarge,
    #[error("the bytes do not match the attachment's SHA-256")]
    HashMismatch,
    /// The bytes do not begin as their declared media type's do (a "PDF" that is HTML).
    #[error("the bytes are not of the media type declared")]
    NotTheMediaType,
    #[error(transparent)]
    Invalid(ValidationError),
}

/// Limits on attachments: data the hub publishes in every sync response; a phone checks them
/// at capture and keeps the last it heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct AttachmentLimits {
    /// Bytes of one attachment as stored (after a photo's re-encoding).
    pub max_file_bytes: u64,
    /// Bytes of all the attachments of one record.
    pub max_record_bytes: u64,
    pub max_per_record: u32,
    /// A photo's longest side in pixels after capture.
    pub photo_max_side: u32,
}

impl Default for AttachmentLimits {
    fn default() -> AttachmentLimits {
        AttachmentLimits {
            max_file_bytes: 10 * 1024 * 1024,
            max_record_bytes: 100 * 1024 * 1024,
            max_per_record: 50,
            photo_max_side: 1600,
        }
    }
}

/// Where an attachment's bytes stand on this store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum AttachmentState {
    /// Captured here; the hub does not hold the bytes yet.
    PendingUpload,
    /// Captured here and held by the hub.
    Uploaded,
    /// Known from the manifest; the bytes are not on this device.
    NotDownloaded,
    /// Part of the bytes are here; the download resumes where it stopped.
    Downloading,
    /// Received whole and verified.
    Available,
    /// A transfer failed (`AttachmentInfo::failure`): a download whose bytes did not match
    /// (tried again at the next session, or at once on `request_attachment`), or an upload
    /// refused on a limit (tried again once the hub's published limits allow it).
    Failed,
}

impl AttachmentState {
    /// The one stored code of each state.
    pub fn code(self) -> i64 {
        match self {
            AttachmentState::PendingUpload => 0,
            AttachmentState::Uploaded => 1,
            AttachmentState::NotDownloaded => 2,
            AttachmentState::Downloading => 3,
            AttachmentState::Available => 4,
            AttachmentState::Failed => 5,
        }
    }

    pub const ALL: [AttachmentState; 6] = [
        AttachmentState::PendingUpload,
        AttachmentState::Uploaded,
        AttachmentState::NotDownloaded,
        AttachmentState::Downloading,
        AttachmentState::Available,
        AttachmentState::Failed,
    ];

    pub fn from_code(code: i64) -> Option<AttachmentState> {
        AttachmentState::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Whether the bytes are whole on this store.
    pub fn has_bytes(self) -> bool {
        matches!(
            self,
            AttachmentState::PendingUpload | AttachmentState::Uploaded | AttachmentState::Available
        )
    }
}

/// When a device fetches the bytes of attachments it learns of (the app passes it to sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum DownloadPolicy {
    /// Every attachment, as soon as records are synced.
    #[default]
    Eager,
    /// Only those the app asked for (`Store::request_attachment`).
    OnDemand,
    /// Every attachment, but only on an unmetered link (the app says whether it is on one).
    WifiOnly,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(caption: &str) -> Attachment {
        Attachment {
            id: Uuid::now_v7(),
            sha256: "0".repeat(64),
            size: 1,
            media_type: "application/pdf".into(),
            kind: AttachmentKind::Document,
            caption: caption.into(),
            captured_by: Uuid::now_v7(),
            captured_at: Utc::now(),
        }
    }

    /// The rule the phone applies at capture and the hub to every caption a push sets.
    #[test]
    fn a_caption_set_is_one_line_without_controls() {
        for good in ["", "Consentement signé", &"é".repeat(MAX_CAPTION_CHARS)] {
            assert!(
                validate_new_captions(&[], &[entry(good)]).is_ok(),
                "{good:?}"
            );
        }
        for bad in [
            "deux\nlignes",
            "nul\0",
            "retour\r",
            "\u{1b}[31mrouge",
            "\u{202E}fdp.exe",
            "\u{2028}",
            " \u{200B}",
            &"é".repeat(MAX_CAPTION_CHARS + 1),
        ] {
            match validate_new_captions(&[], &[entry(bad)]) {
                Err(e) => assert_eq!(e.field, "attachments.caption"),
                other => panic!("{bad:?}: {other:?}"),
            }
            // Stored before the rule, it is kept as it is.
            let stored = entry(bad);
            assert!(
                validate_new_captions(std::slice::from_ref(&stored), std::slice::from_ref(&stored))
                    .is_ok()
            );
        }
    }
}

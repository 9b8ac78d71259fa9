//! Attachments on a store: photos, scanned documents and voice notes filed with a workplace, a
//! visit or a child case. The types are the core's (`NewAttachment`, `Attachment`,
//! `AttachmentInfo`, `AttachmentState`, `AttachmentLimits`, `DownloadPolicy`,
//! `RecordSyncState`); the bytes go from a file to the store and from the store to a file,
//! streamed, never whole through the FFI. Their transfer with the hub is part of `sync_with`.

use crate::error::{Result, VigieError};
use crate::input;
use crate::listeners::ChangeSource;
use crate::store::VigieStore;
use std::fs::File;
use std::path::Path;
use vigie_core::sync::RecordSyncState;
use vigie_core::{Attachment, AttachmentInfo, AttachmentLimits, NewAttachment};

/// The largest attachment `read_attachment` returns whole; larger ones go through
/// `export_attachment` (the bytes would cross the FFI in one buffer, twice in memory).
const MAX_READ_BYTES: u64 = 16 * 1024 * 1024;

#[uniffi::export]
impl VigieStore {
    /// Attaches the file at `path` to a workplace, visit or child case (`record_id`). The file
    /// is read as a stream: a photo (`kind` Photo, `image/jpeg` or `image/png`) is re-encoded
    /// as JPEG, upright, downscaled to the limits' longest side, with no metadata (EXIF, GPS)
    /// kept; a document or a voice note is stored as given. The bytes are sealed under a key of
    /// their own beside the store; the record's manifest gains the entry, to reach the hub at
    /// the next `sync_with`, and the bytes after it. The app may delete its file afterwards.
    ///
    /// Errors: `OverLimit` (with the size and the limit), `Validation` naming `path` (no such
    /// readable file), `media_type` (not one the kind accepts) or `source` (empty, not an
    /// image, damaged), `NotFound` (no such record), `NotAllowed` (the user may not change it).
    /// Nothing is stored unless all of it is.
    pub fn add_attachment(
        &self,
        record_id: String,
        attachment: NewAttachment,
        path: String,
    ) -> Result<Attachment> {
        let record = input::id("record_id", &record_id)?;
        let file = File::open(&path)
            .map_err(|_| VigieError::validation("path", "must name a file this app can read"))?;
        let (kind, added) = self.with_store(|s| {
            let kind = s.kind_of(record)?;
            Ok((kind, s.add_attachment_from(record, &attachment, file)?))
        })?;
        self.changed(&[record], kind, ChangeSource::Local);
        Ok(added)
    }

    /// A record's attachments, oldest first, each with where its bytes stand on this device
    /// (`state`: pending upload, uploaded, not downloaded, downloading, available, failed with
    /// `failure`) and the bytes transferred of a transfer under way. A record kind that takes
    /// no attachments has none.
    pub fn attachments(&self, record_id: String) -> Result<Vec<AttachmentInfo>> {
        let record = input::id("record_id", &record_id)?;
        self.with_store(|s| Ok(s.attachments(record)?))
    }

    /// An attachment's bytes, for a small one (a thumbnail-sized photo): at most 16 MiB, else
    /// `OverLimit`; `export_attachment` writes any size to a file. `AttachmentNotHere` when
    /// the bytes are not on this device.
    pub fn read_attachment(&self, id: String) -> Result<Vec<u8>> {
        let id = input::id("id", &id)?;
        self.with_store(|s| {
            let size = s.attachment_size(id)?;
            if size > MAX_READ_BYTES {
                return Err(VigieError::OverLimit {
                    limit_of: "read_bytes".into(),
                    size,
                    limit: MAX_READ_BYTES,
                });
            }
            Ok(s.read_attachment(id)?)
        })
    }

    /// Decrypts an attachment into the file at `path` (for a viewer, a player or a share
    /// sheet), streamed; the file is written whole or not at all. The app deletes it when
    /// done: it is outside the store's encryption. `AttachmentNotHere` when the bytes are not
    /// on this device.
    pub fn export_attachment(&self, id: String, path: String) -> Result<()> {
        let id = input::id("id", &id)?;
        self.with_store(|s| Ok(s.export_attachment(id, Path::new(&path))?))
    }

    /// Removes an attachment from its record: its key and bytes go from this device now, and
    /// the removal reaches the hub and the other devices with the record at the next sync.
    pub fn remove_attachment(&self, record_id: String, id: String) -> Result<()> {
        let record = input::id("record_id", &record_id)?;
        let id = input::id("id", &id)?;
        let kind = self.with_store(|s| {
            let kind = s.kind_of(record)?;
            s.remove_attachment(record, id)?;
            Ok(kind)
        })?;
        self.changed(&[record], kind, ChangeSource::Local);
        Ok(())
    }

    /// Asks for an attachment's bytes at the next `sync_with`, whatever the download policy
    /// (the user opened it). A failed one is queued again: a download from the start, an
    /// upload when the hub's published limits allow it (else `Attachment` with the limit).
    pub fn request_attachment(&self, id: String) -> Result<()> {
        let id = input::id("id", &id)?;
        self.with_store(|s| Ok(s.request_attachment(id)?))
    }

    /// The limits on attachments the hub published at the last sync (defaults before one).
    pub fn attachment_limits(&self) -> Result<AttachmentLimits> {
        self.with_store(|s| Ok(s.attachment_limits()?))
    }

    /// Where a record stands with the hub: changes not yet acknowledged, and its attachments
    /// by state. `synced` in the app's words: no pending changes, no attachment pending
    /// upload, none failed.
    pub fn record_sync_state(&self, record_id: String) -> Result<RecordSyncState> {
        let record = input::id("record_id", &record_id)?;
        self.with_store(|s| Ok(s.record_sync_state(record)?))
    }
}

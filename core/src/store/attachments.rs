//! Attachment bytes on a store: sealed files beside the database (`<db>.attachments/`), each
//! under a key of its own kept in the `attachments` table, and the manifest entries in the
//! records' documents.
//!
//! - **Capture** (`Store::add_attachment`): a photo is re-encoded (`codec::photo`); other kinds
//!   are streamed through the hash and the cipher into a temporary file, so memory stays at
//!   one segment. The file is synced and renamed to its name, then one transaction stores the
//!   key and adds the manifest entry to the record's document. A crash before the commit
//!   leaves a file no row names: it is collected when the store opens.
//! - **Rows follow manifests**: every save of a record's document (local write, merge from the
//!   hub, a peer or a bundle) brings the rows in line with its manifest (`follow_manifest`):
//!   an entry learnt from elsewhere gets a "not downloaded" row, an entry removed loses its
//!   row, and so its key. Files no row names are deleted by `collect_files`.
//! - **Erasure and scope**: forgetting a record deletes its rows (`erasure::forget_record`),
//!   which destroys the keys; the files go with the next collection, which the purge after an
//!   erasure or a departure runs. A record that leaves this device but not the hub keeps the
//!   rows of the uploads captured here and not yet done (`forget_record_keeping_uploads`).

use super::{LocalWrite, Store, documents, files, sync_state};
use crate::codec::{photo, sealed};
use crate::doc;
use crate::domain::attachment::{
    Attachment, AttachmentKind, AttachmentLimits, AttachmentRefusal, AttachmentState, MAGIC_BYTES,
    starts_as, takes_attachments, validate_manifest,
};
use crate::domain::codes::RecordKind;
use crate::domain::rights;
use crate::error::{Error, Result, ValidationError};
use automerge::Automerge;
use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use uuid::Uuid;
use zeroize::Zeroizing;

/// What the app gives when it captures an attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct NewAttachment {
    pub kind: AttachmentKind,
    /// The media type of the bytes given (a photo is stored as `image/jpeg` whatever it was).
    pub media_type: String,
    pub caption: String,
}

/// An attachment as this store holds it: its manifest entry and where its bytes stand.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct AttachmentInfo {
    pub record_id: Uuid,
    pub attachment: Attachment,
    pub state: AttachmentState,
    /// Why the last transfer failed, when `state` is `Failed` (a fixed phrase).
    pub failure: Option<String>,
    /// Bytes held of a download under way, or confirmed by the hub of an upload under way.
    pub transferred: u64,
}

/// The meta key of the limits the hub last published (JSON of `AttachmentLimits`).
const LIMITS_KEY: &str = "attachment_limits";
/// A photo as the camera gives it may be larger than the limit on what is stored (it shrinks
/// when re-encoded), but not without bound.
const MAX_PHOTO_INPUT: u64 = 64 * 1024 * 1024;

pub(crate) fn dir_of(db: &Path) -> PathBuf {
    files::sidecar(db, ".attachments")
}

fn file_name(id: Uuid) -> String {
    id.simple().to_string()
}

/// The directory of a store's attachment files (`<db>.attachments/`).
pub fn attachments_dir(db: &Path) -> PathBuf {
    dir_of(db)
}

/// The sealed files of the attachments whose bytes the store at `db` holds whole, as `conn`
/// (a connection to it, in a read transaction for a consistent list) sees its rows: what a
/// copy of the store needs beside its database file (a file gone or cut short is not copied:
/// the restored hub asks for it again, `lost_files`).
pub fn held_attachment_files(conn: &Connection, db: &Path) -> Result<Vec<PathBuf>> {
    Ok(held_by_rows(conn)?
        .into_iter()
        .filter(|(id, size)| holds_whole_file(db, *id, *size))
        .map(|(id, _)| file_path(db, id))
        .collect())
}

/// The attachments the store holds whole by its rows whose files are gone or cut short.
pub(crate) fn lost_files(conn: &Connection, db: &Path) -> Result<Vec<Uuid>> {
    Ok(held_by_rows(conn)?
        .into_iter()
        .filter(|(id, size)| !holds_whole_file(db, *id, *size))
        .map(|(id, _)| id)
        .collect())
}

/// The attachments whose rows say the store holds their bytes whole, with their sizes.
fn held_by_rows(conn: &Connection) -> Result<Vec<(Uuid, u64)>> {
    let held: Vec<String> = AttachmentState::ALL
        .into_iter()
        .filter(|s| s.has_bytes())
        .map(|s| s.code().to_string())
        .collect();
    let mut stmt = conn.prepare(&format!(
        "SELECT id, size FROM attachments WHERE state IN ({})",
        held.join(", ")
    ))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, size)| Some((Uuid::from_slice(&id).ok()?, size as u64)))
        .collect())
}

pub(crate) fn file_path(db: &Path, id: Uuid) -> PathBuf {
    dir_of(db).join(file_name(id))
}

/// Whether the sealed file of attachment `id` is there whole: as long as `size` plaintext
/// bytes make it (a copy cut short by a full disk is not).
pub(crate) fn holds_whole_file(db: &Path, id: Uuid, size: u64) -> bool {
    fs::metadata(file_path(db, id))
        .is_ok_and(|m| m.is_file() && sealed::plaintext_len(m.len()) == Some(size))
}

/// Removes the sealed file of attachment `id` found damaged: it reads as not held, and its
/// author's next upload replaces it (nothing could be read from it anyway).
pub(crate) fn drop_damaged_file(db: &Path, id: Uuid) -> Result<()> {
    files::remove_if_exists(&file_path(db, id))?;
    Ok(())
}

pub(crate) fn partial_path(db: &Path, id: Uuid) -> PathBuf {
    dir_of(db).join(format!("{}.part", file_name(id)))
}

fn ensure_dir(db: &Path) -> io::Result<PathBuf> {
    let dir = dir_of(db);
    if !dir.exists() {
        fs::create_dir_all(&dir)?;
        files::sync_dir(files::parent_dir(db))?;
    }
    Ok(dir)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The limits this store applies: the last the hub published, else the defaults.
pub(crate) fn limits(conn: &Connection) -> Result<AttachmentLimits> {
    Ok(sync_state::get_meta(conn, LIMITS_KEY)?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

pub(crate) fn set_limits(tx: &Transaction, limits: &AttachmentLimits) -> Result<()> {
    sync_state::set_meta(
        tx,
        LIMITS_KEY,
        &serde_json::to_vec(limits).expect("limits serialize"),
    )
}

/// One row of the `attachments` table.
pub(crate) struct Row {
    pub record_id: Uuid,
    pub key: sealed::FileKey,
    pub sha256: [u8; 32],
    pub size: u64,
    pub state: AttachmentState,
    pub failure: Option<String>,
    pub confirmed: u64,
}

pub(crate) fn row(conn: &Connection, id: Uuid) -> Result<Option<Row>> {
    Ok(conn
        .prepare_cached(
            "SELECT record_id, file_key, sha256, size, state, failure, confirmed
             FROM attachments WHERE id = ?1",
        )?
        .query_row([id.as_bytes()], |r| {
            let record: Vec<u8> = r.get(0)?;
            let key: Vec<u8> = r.get(1)?;
            let sha: Vec<u8> = r.get(2)?;
            Ok((
                record,
                key,
                sha,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .optional()?
        .and_then(|(record, key, sha, size, state, failure, confirmed)| {
            let mut file_key = Zeroizing::new([0u8; 32]);
            file_key.copy_from_slice(key.get(..32)?);
            Some(Row {
                record_id: Uuid::from_slice(&record).ok()?,
                key: file_key,
                sha256: sha.try_into().ok()?,
                size: u64::try_from(size).ok()?,
                state: AttachmentState::from_code(state)?,
                failure,
                confirmed: u64::try_from(confirmed).unwrap_or(0),
            })
        }))
}

/// A row to insert.
pub(crate) struct NewRow<'a> {
    pub id: Uuid,
    pub record_id: Uuid,
    pub key: &'a sealed::FileKey,
    pub sha256: &'a [u8],
    pub size: u64,
    pub state: AttachmentState,
    pub priority: i64,
}

pub(crate) fn insert_row(tx: &Transaction, row: NewRow<'_>) -> Result<()> {
    let NewRow {
        id,
        record_id,
        key,
        sha256,
        size,
        state,
        priority,
    } = row;
    tx.prepare_cached(
        "INSERT INTO attachments (id, record_id, file_key, sha256, size, state, priority, upload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        id.as_bytes(),
        record_id.as_bytes(),
        key.as_slice(),
        sha256,
        size as i64,
        state.code(),
        priority,
        state == AttachmentState::PendingUpload
    ])?;
    Ok(())
}

pub(crate) fn set_state(
    tx: &Transaction,
    id: Uuid,
    state: AttachmentState,
    failure: Option<&str>,
) -> Result<()> {
    tx.prepare_cached("UPDATE attachments SET state = ?2, failure = ?3 WHERE id = ?1")?
        .execute(params![id.as_bytes(), state.code(), failure])?;
    Ok(())
}

/// Whether the attachment's bytes were captured here and go to the hub.
/// Offers again the uploads the hub said it held (the hub was restored from an older copy and
/// may have lost them). Each starts with an empty chunk asking what the hub holds, so one it
/// still holds costs one small round trip.
pub(crate) fn offer_uploads_again(tx: &Transaction) -> Result<()> {
    tx.prepare_cached(
        "UPDATE attachments SET state = ?1, failure = NULL, confirmed = 0, in_flight = 1
         WHERE state = ?2",
    )?
    .execute([
        AttachmentState::PendingUpload.code(),
        AttachmentState::Uploaded.code(),
    ])?;
    Ok(())
}

pub(crate) fn is_upload(conn: &Connection, id: Uuid) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT upload FROM attachments WHERE id = ?1")?
        .query_row([id.as_bytes()], |r| r.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

/// The bytes of a record's attachments in all, as this store knows them.
pub(crate) fn record_bytes(conn: &Connection, record_id: Uuid) -> Result<u64> {
    let total: i64 = conn
        .prepare_cached("SELECT coalesce(sum(size), 0) FROM attachments WHERE record_id = ?1")?
        .query_row([record_id.as_bytes()], |r| r.get(0))?;
    Ok(u64::try_from(total).unwrap_or(0))
}

/// Whether an upload was under way when a session stopped (its last chunk's answer may have
/// been lost).
pub(crate) fn in_flight(conn: &Connection, id: Uuid) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT in_flight FROM attachments WHERE id = ?1")?
        .query_row([id.as_bytes()], |r| r.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

pub(crate) fn set_in_flight(conn: &Connection, id: Uuid, on: bool) -> Result<()> {
    conn.prepare_cached("UPDATE attachments SET in_flight = ?2 WHERE id = ?1")?
        .execute(params![id.as_bytes(), on])?;
    Ok(())
}

pub(crate) fn set_confirmed(tx: &Transaction, id: Uuid, confirmed: u64) -> Result<()> {
    tx.prepare_cached("UPDATE attachments SET confirmed = ?2 WHERE id = ?1")?
        .execute(params![id.as_bytes(), confirmed as i64])?;
    Ok(())
}

/// Brings the rows of a record in line with its manifest, in the transaction that saves its
/// document: entries learnt from elsewhere get a row whose bytes are not here yet, entries
/// removed lose theirs (the key with it; the file is collected later). `priority` is the
/// record's alert severity: urgent records' attachments travel first.
pub(crate) fn follow_manifest(
    tx: &Transaction,
    record_id: Uuid,
    kind: RecordKind,
    entries: &[Attachment],
    priority: i64,
) -> Result<()> {
    if !takes_attachments(kind) {
        return Ok(());
    }
    let held: Vec<Vec<u8>> = tx
        .prepare_cached("SELECT id FROM attachments WHERE record_id = ?1")?
        .query_map([record_id.as_bytes()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    // On a hub, changes of the record waiting for a supervisor's review may name attachments
    // the record does not hold yet, whose bytes came with them (`quarantine`): kept while the
    // entry waits. (A device's quarantine table is empty.)
    let under_review: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM quarantine WHERE record_id = ?1)")?
        .query_row([record_id.as_bytes()], |r| r.get(0))?;
    for id in &held {
        if !under_review && !entries.iter().any(|e| e.id.as_bytes() == id.as_slice()) {
            tx.prepare_cached("DELETE FROM attachments WHERE id = ?1")?
                .execute([id])?;
        }
    }
    for entry in entries {
        if held.iter().any(|id| id.as_slice() == entry.id.as_bytes()) {
            continue;
        }
        let Some(sha) = entry.sha256_digest() else {
            continue;
        };
        // An id another record's attachment holds (a record a peer or a bundle brought, whose
        // sender named an attachment of another record): that attachment keeps its row, and
        // this entry has no bytes to receive; the record is taken all the same.
        let taken: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM attachments WHERE id = ?1)")?
            .query_row([entry.id.as_bytes()], |r| r.get(0))?;
        if taken {
            tracing::warn!(record = %record_id, attachment = %entry.id, "a manifest names an attachment id another record holds: its bytes are not fetched");
            continue;
        }
        insert_row(
            tx,
            NewRow {
                id: entry.id,
                record_id,
                key: &sealed::new_key(),
                sha256: &sha,
                size: entry.size,
                state: AttachmentState::NotDownloaded,
                priority,
            },
        )?;
    }
    tx.prepare_cached("UPDATE attachments SET priority = ?2 WHERE record_id = ?1")?
        .execute(params![record_id.as_bytes(), priority])?;
    Ok(())
}

/// Deletes every file of the attachments directory that no row names whole (a complete file
/// for a row whose bytes are here, a partial one for a row being received), and temporary
/// files a crash left. Run when the store opens and after records were forgotten.
pub(crate) fn collect_files(conn: &Connection, db: &Path) -> Result<()> {
    let dir = dir_of(db);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut removed = false;
    let mut stmt = conn.prepare_cached("SELECT state FROM attachments WHERE id = ?1")?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let (stem, partial) = match name.strip_suffix(".part") {
            Some(stem) => (stem, true),
            None => (name.as_str(), false),
        };
        let state = match Uuid::try_parse(stem) {
            Ok(id) => stmt
                .query_row([id.as_bytes()], |r| r.get::<_, i64>(0))
                .optional()?
                .and_then(AttachmentState::from_code),
            Err(_) => None,
        };
        let keep = match state {
            Some(s) if partial => !s.has_bytes(),
            Some(s) => s.has_bytes() || s == AttachmentState::Failed,
            None => false,
        };
        if !keep {
            files::remove_if_exists(&entry.path())?;
            removed = true;
        }
    }
    if removed {
        files::sync_dir(&dir)?;
    }
    Ok(())
}

/// A temporary file in the attachments directory, removed unless kept.
struct TempFile {
    path: PathBuf,
    kept: bool,
}

impl TempFile {
    fn create(db: &Path) -> Result<(TempFile, File)> {
        let dir = ensure_dir(db)?;
        let path = dir.join(format!("tmp-{}", Uuid::new_v4().simple()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((TempFile { path, kept: false }, file))
    }

    /// Makes the file durable under `to`: synced, renamed, directory synced.
    fn commit(mut self, file: File, to: &Path) -> Result<()> {
        file.sync_all()?;
        drop(file);
        fs::rename(&self.path, to)?;
        files::sync_dir(files::parent_dir(to))?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Hashes what passes through.
struct Hashing<W: Write> {
    out: sealed::SealedWriter<W>,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hash.update(bytes);
        self.size += bytes.len() as u64;
        self.out.write_all(bytes)
    }
}

/// The bytes of a capture sealed into a temporary file: hash and size, streamed.
struct Sealed {
    temp: TempFile,
    file: File,
    sha256: [u8; 32],
    size: u64,
}

fn refused(r: AttachmentRefusal) -> Error {
    Error::Attachment(r)
}

/// An image's bytes, whole in memory for its re-encoding: at most `limit`, not empty.
fn read_image(source: impl Read, limit: u64) -> Result<Zeroizing<Vec<u8>>> {
    let mut original = Zeroizing::new(Vec::new());
    let read = source.take(limit + 1).read_to_end(&mut original)?;
    if read as u64 > limit {
        return Err(refused(AttachmentRefusal::FileTooLarge {
            size: read as u64,
            limit,
        }));
    }
    if original.is_empty() {
        return Err(refused(AttachmentRefusal::Empty));
    }
    Ok(original)
}

fn image_refusal(e: photo::PhotoError) -> Error {
    refused(match e {
        photo::PhotoError::NotAnImage => AttachmentRefusal::NotAnImage,
        photo::PhotoError::TooLarge => AttachmentRefusal::ImageTooLarge,
    })
}

/// Seals `source` into a temporary file, refusing more than `limit` bytes: it reads at most
/// `limit + 1` (an endless stream, a pipe, `/dev/zero` is refused as soon as it is over), and
/// the size reported is `limit + 1` ("more than the limit").
fn seal_stream(
    db: &Path,
    id: Uuid,
    key: &sealed::FileKey,
    source: impl Read,
    limit: u64,
) -> Result<Sealed> {
    let mut source = source.take(limit.saturating_add(1));
    let (temp, file) = TempFile::create(db)?;
    let mut hashing = Hashing {
        out: sealed::SealedWriter::create(io::BufWriter::new(file), key, id, None)?,
        hash: Sha256::new(),
        size: 0,
    };
    let mut buffer = Zeroizing::new(vec![0u8; sealed::SEGMENT]);
    loop {
        let n = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if hashing.size + n as u64 > limit {
            return Err(refused(AttachmentRefusal::FileTooLarge {
                size: hashing.size + n as u64,
                limit,
            }));
        }
        hashing.write(&buffer[..n])?;
    }
    let size = hashing.size;
    let sha256: [u8; 32] = hashing.hash.finalize().into();
    let file = hashing
        .out
        .finish()?
        .into_inner()
        .map_err(|e| Error::Io(e.into_error()))?;
    Ok(Sealed {
        temp,
        file,
        sha256,
        size,
    })
}

impl Store {
    /// The limits on attachments this store applies: those the hub published at the last
    /// sync, else the defaults.
    pub fn attachment_limits(&self) -> Result<AttachmentLimits> {
        limits(&self.conn)
    }

    /// Sets the limits (the hub publishes its own; a device takes them from sync responses).
    pub fn set_attachment_limits(&mut self, limits: &AttachmentLimits) -> Result<()> {
        let tx = self.conn.transaction()?;
        set_limits(&tx, limits)?;
        tx.commit()?;
        Ok(())
    }

    /// Attaches the bytes `source` gives to a workplace, visit or child case. A photo is
    /// re-encoded (metadata such as EXIF and GPS stripped, downscaled to the limits' longest
    /// side) and stored as JPEG; other kinds are stored as given, streamed. Bad input is a
    /// typed refusal (`Error::Attachment`): empty, an unknown media type, over a limit (with
    /// the size and the limit), not an image. Nothing is stored unless all of it is.
    pub fn add_attachment(
        &mut self,
        record_id: Uuid,
        new: &NewAttachment,
        source: impl Read,
    ) -> Result<Attachment> {
        let limits = self.attachment_limits()?;
        let kind = self.kind_of(record_id)?;
        if !takes_attachments(kind) {
            return Err(refused(AttachmentRefusal::Invalid(
                crate::error::ValidationError::new(
                    "record_id",
                    format!("{kind} records take no attachments"),
                ),
            )));
        }
        if !new.kind.accepts(&new.media_type) {
            return Err(refused(AttachmentRefusal::UnsupportedMediaType {
                kind: new.kind,
            }));
        }
        // A case merged into another takes nothing more: the case kept stands for the child,
        // and would never show the file.
        if kind == RecordKind::ChildCase
            && self
                .get::<crate::domain::records::ChildCase>(record_id)?
                .is_merged_duplicate()
        {
            return Err(Error::NotAllowed {
                rule: crate::domain::rights::MERGED_AWAY.into(),
            });
        }
        // The count is known before a byte is read.
        let held = self.attachment_count(record_id)?;
        if held >= u64::from(limits.max_per_record) {
            return Err(refused(AttachmentRefusal::TooManyForRecord {
                count: held + 1,
                limit: limits.max_per_record,
            }));
        }
        let id = Uuid::now_v7();
        let key = sealed::new_key();
        let image_document = new.kind == AttachmentKind::Document
            && matches!(new.media_type.as_str(), "image/jpeg" | "image/png");
        let (sealed, media_type) = match new.kind {
            AttachmentKind::Photo => {
                let original = read_image(source, MAX_PHOTO_INPUT)?;
                let jpeg = Zeroizing::new(
                    photo::reencode(&original, limits.photo_max_side).map_err(image_refusal)?,
                );
                drop(original);
                let sealed =
                    seal_stream(&self.ctx.path, id, &key, &jpeg[..], limits.max_file_bytes)?;
                (sealed, "image/jpeg".to_string())
            }
            // An image captured as a document (a form photographed) loses its metadata too:
            // re-encoded at full size, in the format it is declared as.
            _ if image_document => {
                let original = read_image(source, limits.max_file_bytes)?;
                let format = if new.media_type == "image/png" {
                    image::ImageFormat::Png
                } else {
                    image::ImageFormat::Jpeg
                };
                let stripped =
                    Zeroizing::new(photo::strip(&original, format).map_err(image_refusal)?);
                drop(original);
                let sealed = seal_stream(
                    &self.ctx.path,
                    id,
                    &key,
                    &stripped[..],
                    limits.max_file_bytes,
                )?;
                (sealed, new.media_type.clone())
            }
            _ => {
                // The first bytes must be the declared type's magic number; read, checked,
                // then sealed ahead of the rest.
                let mut source = source;
                let mut head = Vec::with_capacity(MAGIC_BYTES);
                (&mut source)
                    .take(MAGIC_BYTES as u64)
                    .read_to_end(&mut head)?;
                if !head.is_empty() && !starts_as(&new.media_type, &head) {
                    return Err(refused(AttachmentRefusal::NotTheMediaType));
                }
                let source = io::Cursor::new(head).chain(source);
                let sealed = seal_stream(&self.ctx.path, id, &key, source, limits.max_file_bytes)?;
                (sealed, new.media_type.clone())
            }
        };
        if sealed.size == 0 {
            return Err(refused(AttachmentRefusal::Empty));
        }
        let entry = Attachment {
            id,
            sha256: hex(&sealed.sha256),
            size: sealed.size,
            media_type,
            kind: new.kind,
            caption: new.caption.clone(),
            captured_by: self.ctx.author.user,
            captured_at: Utc::now(),
        };
        entry
            .validate(&limits)
            .map_err(|e| refused(AttachmentRefusal::Invalid(e)))?;
        let target = file_path(&self.ctx.path, id);
        sealed.temp.commit(sealed.file, &target)?;
        let stored = (|| {
            let write = self.ctx.local_write(&self.conn)?;
            let tx = self.conn.transaction()?;
            let state = if self.ctx.role == super::StoreRole::Hub {
                AttachmentState::Available
            } else {
                AttachmentState::PendingUpload
            };
            insert_row(
                &tx,
                NewRow {
                    id,
                    record_id,
                    key: &key,
                    sha256: &sealed.sha256,
                    size: sealed.size,
                    state,
                    priority: 0,
                },
            )?;
            edit_manifest(&tx, &write, record_id, &limits, |document, author| {
                doc::put_attachment(document, &entry, author)
            })?;
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = stored {
            let _ = files::remove_if_exists(&target);
            return Err(e);
        }
        Ok(entry)
    }

    /// Attaches the file at `path` (see `add_attachment_from`). A path that names no file this
    /// process can read (missing, a directory, not permitted) is a `Validation` error on the
    /// field `path` that never names the path.
    pub fn add_attachment_file(
        &mut self,
        record_id: Uuid,
        new: &NewAttachment,
        path: &Path,
    ) -> Result<Attachment> {
        let file = File::open(path).map_err(|_| unreadable_path())?;
        self.add_attachment_from(record_id, new, file)
    }

    /// Attaches an open file (see `add_attachment`): a directory is a `Validation` error on the
    /// field `path`, and a regular file over the limit is refused by its size, unread.
    pub fn add_attachment_from(
        &mut self,
        record_id: Uuid,
        new: &NewAttachment,
        file: File,
    ) -> Result<Attachment> {
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(unreadable_path());
        }
        if meta.is_file() {
            let limit = match new.kind {
                AttachmentKind::Photo => MAX_PHOTO_INPUT,
                _ => self.attachment_limits()?.max_file_bytes,
            };
            if meta.len() > limit {
                // The record is checked first, as for any capture.
                self.kind_of(record_id)?;
                return Err(refused(AttachmentRefusal::FileTooLarge {
                    size: meta.len(),
                    limit,
                }));
            }
        }
        self.add_attachment(record_id, new, io::BufReader::new(file))
    }

    /// How many manifest entries a record holds.
    fn attachment_count(&self, record_id: Uuid) -> Result<u64> {
        let (_, _, bytes) = documents::find_row(&self.conn, record_id)?.ok_or(Error::NotFound {
            kind: None,
            id: record_id,
        })?;
        Ok(doc::attachment_keys(&doc::load(record_id, &bytes)?) as u64)
    }

    /// Removes an attachment from its record: the manifest entry goes (and, as the change
    /// reaches them, from the hub and every device); the key and the bytes go here now.
    pub fn remove_attachment(&mut self, record_id: Uuid, id: Uuid) -> Result<()> {
        let limits = self.attachment_limits()?;
        let write = self.ctx.local_write(&self.conn)?;
        let tx = self.conn.transaction()?;
        let removed = edit_manifest(&tx, &write, record_id, &limits, |document, author| {
            doc::remove_attachment(document, id, author)
        })?;
        if !removed {
            return Err(Error::AttachmentNotFound { id });
        }
        tx.commit()?;
        collect_files(&self.conn, &self.ctx.path)
    }

    /// A record's attachments, with where their bytes stand, in id (capture time) order.
    pub fn attachments(&self, record_id: Uuid) -> Result<Vec<AttachmentInfo>> {
        let (_, kind, bytes) =
            documents::find_row(&self.conn, record_id)?.ok_or(Error::NotFound {
                kind: None,
                id: record_id,
            })?;
        if !takes_attachments(kind) {
            return Ok(Vec::new());
        }
        let document = doc::load(record_id, &bytes)?;
        doc::attachments(&document)
            .into_iter()
            .map(|attachment| {
                let row = row(&self.conn, attachment.id)?;
                let (state, failure, transferred) = match row {
                    Some(r) => {
                        let transferred = match r.state {
                            AttachmentState::Downloading => {
                                held_partial(&self.ctx.path, attachment.id)
                            }
                            AttachmentState::PendingUpload => r.confirmed,
                            _ => 0,
                        };
                        (r.state, r.failure, transferred)
                    }
                    None => (AttachmentState::NotDownloaded, None, 0),
                };
                Ok(AttachmentInfo {
                    record_id,
                    attachment,
                    state,
                    failure,
                    transferred,
                })
            })
            .collect()
    }

    /// Reads an attachment's bytes, streamed (one segment in memory at a time). The bytes
    /// must be on this store (`AttachmentState::has_bytes`); else `Error::AttachmentNotHere`.
    pub fn open_attachment(&self, id: Uuid) -> Result<impl Read + use<>> {
        let row = row(&self.conn, id)?.ok_or(Error::AttachmentNotFound { id })?;
        if !row.state.has_bytes() {
            return Err(Error::AttachmentNotHere {
                id,
                state: row.state,
            });
        }
        Ok(sealed::open(&file_path(&self.ctx.path, id), &row.key, id)?)
    }

    /// The size of an attachment's bytes (as stored), whether or not they are on this store.
    pub fn attachment_size(&self, id: Uuid) -> Result<u64> {
        Ok(row(&self.conn, id)?
            .ok_or(Error::AttachmentNotFound { id })?
            .size)
    }

    /// An attachment's bytes, whole in memory (for small ones; `open_attachment` streams).
    pub fn read_attachment(&self, id: Uuid) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open_attachment(id)?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Decrypts an attachment into the file the app names (for a viewer or a share sheet),
    /// written whole or not at all. A destination that cannot be written is refused as a
    /// `Validation` error on the field `path` that says why (its directory does not exist,
    /// cannot be written, or it names a directory), never with the path itself: a file name
    /// may be a child's.
    pub fn export_attachment(&self, id: Uuid, to: &Path) -> Result<()> {
        let mut reader = self.open_attachment(id)?;
        if to.file_name().is_none() {
            return Err(ValidationError::new("path", "must name a file").into());
        }
        check_destination(&self.ctx.path, to)?;
        let temp = files::sidecar(to, ".partial");
        let result = (|| -> Result<()> {
            // A child's document, readable by its owner only (the app shares it on purpose);
            // made anew, so a file or link left at the temporary name is never written through.
            match fs::remove_file(&temp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(destination_problem(e));
                }
                _ => {}
            }
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut out = options.open(&temp).map_err(destination_problem)?;
            io::copy(&mut reader, &mut out)?;
            out.sync_all()?;
            fs::rename(&temp, to).map_err(destination_problem)?;
            files::sync_dir(files::parent_dir(to))?;
            Ok(())
        })();
        if result.is_err() {
            let _ = files::remove_if_exists(&temp);
        }
        result
    }
}

/// Refuses an export that would replace one of the store's own files — the database, its
/// journals, a sealed attachment, its profile's key, anything in the vault of the phone's
/// users' profiles — or something that is not a file (a device, a pipe): the rename that puts the export in place would put the child's document in
/// the clear where the sealed copy was, or the document where the database was, which SQLite
/// goes on writing unseen until the store is next opened and found gone (an app's path built
/// from the wrong variable). A destination whose directory does not exist is said by the write.
fn check_destination(db: &Path, to: &Path) -> Result<()> {
    let refused = |rule: &str| Err(ValidationError::new("path", rule).into());
    if let Ok(found) = fs::symlink_metadata(to) {
        if found.is_dir() {
            return refused("names a directory, not a file");
        }
        if !found.is_file() && !found.file_type().is_symlink() {
            return refused("names a device or another special file, not a file");
        }
    }
    const OWN: &str = "is one of the store's own files (its database, a sealed attachment, its key): name another file";
    let (Ok(dir), Some(name)) = (fs::canonicalize(files::parent_dir(to)), to.file_name()) else {
        return Ok(());
    };
    if fs::canonicalize(dir_of(db)).is_ok_and(|sealed| dir.starts_with(sealed)) {
        return refused(OWN);
    }
    // Inside a vault: the profiles of the phone's other users (their stores and keys), which
    // this store knows nothing of.
    if dir
        .ancestors()
        .any(|above| above.join(files::VAULT_LOCK_FILE).is_file())
    {
        return refused(
            "is inside the app's vault, which holds its users' stores and keys: name a file elsewhere",
        );
    }
    if fs::canonicalize(files::parent_dir(db)).is_ok_and(|store_dir| store_dir == dir) {
        let name = name.to_string_lossy();
        let store_name = db.file_name().map(|n| n.to_string_lossy());
        if store_name.is_some_and(|own| name.starts_with(own.as_ref()))
            || name == files::PROFILE_KEY_FILE
        {
            return refused(OWN);
        }
    }
    // Another name for the database itself (a link to it).
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(target), Ok(own)) = (fs::metadata(to), fs::metadata(db))
            && (target.dev(), target.ino()) == (own.dev(), own.ino())
        {
            return refused(OWN);
        }
    }
    Ok(())
}

/// A capture's path that names no file this process can read (never naming it).
fn unreadable_path() -> Error {
    ValidationError::new("path", "must name a file this app can read").into()
}

/// What is wrong with the file an attachment is exported to, as the app can act on it; any
/// other failure stays an i/o error.
fn destination_problem(e: io::Error) -> Error {
    let rule = match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => "the directory does not exist",
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            "the directory cannot be written"
        }
        io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty => {
            "names a directory, not a file"
        }
        _ => return e.into(),
    };
    ValidationError::new("path", rule).into()
}

/// The plaintext bytes a partial download holds (whole segments).
pub(crate) fn held_partial(db: &Path, id: Uuid) -> u64 {
    fs::metadata(partial_path(db, id))
        .map(|m| sealed::whole_segments(m.len()) * sealed::SEGMENT as u64)
        .unwrap_or(0)
}

/// Edits a record's manifest with `edit` and saves the document (index rows, change log,
/// outbox), checking the writer may change the record and the manifest stays within
/// `limits`. Returns whether anything changed.
fn edit_manifest(
    tx: &Transaction,
    write: &LocalWrite<'_>,
    record_id: Uuid,
    limits: &AttachmentLimits,
    edit: impl FnOnce(
        &mut Automerge,
        &crate::doc::ChangeAuthor,
    ) -> Result<Option<automerge::ChangeHash>>,
) -> Result<bool> {
    let (rowid, kind, bytes) = documents::find_row(tx, record_id)?.ok_or(Error::NotFound {
        kind: None,
        id: record_id,
    })?;
    let mut document = doc::load(record_id, &bytes)?;
    document.set_actor(write.actor.clone());
    let record = match &write.acting {
        Some(acting) => {
            let record = documents::TypedRecord::read(kind, record_id, &document)?;
            rights::check(
                acting.role,
                acting.user,
                Some(record.subject()),
                record.subject(),
            )?;
            Some((acting, record))
        }
        None => None,
    };
    let before = document.get_heads();
    let was = doc::attachments(&document);
    if edit(&mut document, &write.author)?.is_none() {
        return Ok(false);
    }
    let now = doc::attachments(&document);
    if let Some((acting, record)) = &record {
        let subject = record.subject();
        rights::check_files(
            acting.role,
            acting.user,
            (Some(subject), subject),
            (&was, &now),
        )
        .map_err(|e| e.refusal)?;
    }
    validate_manifest(&was, &now, limits).map_err(refused)?;
    crate::domain::attachment::validate_new_captions(&was, &now)
        .map_err(|e| refused(AttachmentRefusal::Invalid(e)))?;
    documents::save_document(
        tx,
        &write.ctx,
        write.cache,
        record_id,
        kind,
        Some(rowid),
        &mut document,
        &before,
    )?;
    Ok(true)
}

/// What a chunk received did.
pub(crate) enum Received {
    /// Appended (or, at another offset than held, ignored); more is due.
    More(u64),
    /// The last chunk: the whole matched its hash and took its place.
    Whole,
    /// The last chunk: the whole did not match its hash and was discarded.
    Mismatch,
}

/// Appends a chunk of a transfer (a download on a device, an upload on the hub) to the
/// attachment's partial file, sealed under its key, synced before this returns. A chunk at
/// another offset than the whole segments held is ignored (a retried one, or one past a gap);
/// the caller resumes from what is held. The last chunk verifies the whole, streamed, against
/// the hash, and renames the file to its place; a mismatch deletes it.
pub(crate) fn receive_chunk(
    db: &Path,
    id: Uuid,
    row: &Row,
    offset: u64,
    bytes: &[u8],
) -> Result<Received> {
    ensure_dir(db)?;
    let part = partial_path(db, id);
    let (mut writer, held) = match OpenOptions::new().read(true).write(true).open(&part) {
        Ok(file) => match sealed::SealedWriter::resume(file, &row.key, id, row.size) {
            Ok(resumed) => resumed,
            // A partial file that does not read (a crash while it was created): start again.
            Err(_) => {
                files::remove_if_exists(&part)?;
                return Ok(Received::More(0));
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&part)?;
            let writer = sealed::SealedWriter::create(file, &row.key, id, Some(row.size))?;
            files::sync_dir(&dir_of(db))?;
            (writer, 0)
        }
        Err(e) => return Err(e.into()),
    };
    if offset != held || held + bytes.len() as u64 > row.size {
        return Ok(Received::More(held));
    }
    writer.write_all(bytes)?;
    if writer.position() < row.size {
        writer.get_mut().sync_all()?;
        // What is kept, whole segments: a chunk that ends inside one (any but an honest app's)
        // was answered as held and not kept, and the next chunk, at that offset, was ignored.
        return Ok(Received::More(writer.sealed()));
    }
    let file = writer.finish()?;
    file.sync_all()?;
    drop(file);
    let mut hash = Sha256::new();
    let verified = (|| -> io::Result<()> {
        let mut reader = sealed::open(&part, &row.key, id)?;
        let mut buffer = Zeroizing::new(vec![0u8; sealed::SEGMENT]);
        loop {
            match reader.read(&mut buffer)? {
                0 => return Ok(()),
                n => hash.update(&buffer[..n]),
            }
        }
    })();
    if verified.is_err() || <[u8; 32]>::from(hash.finalize()) != row.sha256 {
        files::remove_if_exists(&part)?;
        return Ok(Received::Mismatch);
    }
    fs::rename(&part, file_path(db, id))?;
    files::sync_dir(&dir_of(db))?;
    Ok(Received::Whole)
}

/// Reads at most `max` bytes of a stored attachment from `offset` (a segment boundary).
pub(crate) fn read_chunk(
    db: &Path,
    id: Uuid,
    row: &Row,
    offset: u64,
    max: usize,
) -> Result<Vec<u8>> {
    let mut reader = sealed::open_at(&file_path(db, id), &row.key, id, offset)?;
    let len = (row.size.saturating_sub(offset)).min(max as u64) as usize;
    let mut bytes = vec![0u8; len];
    reader.read_exact(&mut bytes)?;
    Ok(bytes)
}

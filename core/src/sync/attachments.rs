//! Attachments between a device and its hub, apart from records: in chunks, resumable,
//! idempotent, verified against the manifest's hash.
//!
//! Records sync first (`client`): a record's manifest reaches the hub through the ordinary
//! push, where `hub::admit` checks it (the sender may change the record, within the limits).
//! Then each attachment's bytes travel in chunks of `chunk_bytes` (a multiple of the sealed
//! files' segment, 256 KiB by default), one request each:
//!
//! - **Upload** `(record, id, offset, bytes)`: the hub appends the chunk if `offset` is what it
//!   holds, ignores it if it holds it already (a retried request), and answers what it holds.
//!   A cut at any byte therefore re-sends at most the chunk in flight; and an upload that
//!   was under way when a session stopped starts the next one with an empty chunk, which the
//!   hub answers with what it holds (a chunk whose answer was lost is not sent again). The
//!   last chunk makes the hub verify the whole against the manifest's SHA-256: a mismatch
//!   discards it all.
//! - **Download** `(record, id, offset, max)`: the hub answers the bytes from `offset`; the
//!   device appends them to its partial file and resumes after the whole segments it holds.
//!
//! The hub answers an attachment of a record the device may not receive (unknown, erased,
//! outside its scope) as it answers an unknown id: existence never leaks. A device uploads
//! only to records it may change (the role matrix's edit step and the scope rule, as a push),
//! and only the attachments its user captured (`captured_by`, which the hub's push rules keep
//! true).
//! Limits per file and per record are refused with the figures (`TransferRefusal`), which the
//! HTTP layer answers with 413.
//!
//! Order: uploads first (evidence leaves the phone), then downloads; within each, the
//! attachments of the most urgent records (alerts' severity) first.

use super::client::StoreAccess;
use super::hub::{HubError, HubLimits};
use super::wire;
use crate::codec::{self, sealed};
use crate::doc;
use crate::domain::attachment::{
    AttachmentRefusal, AttachmentState, DownloadPolicy, MAGIC_BYTES, starts_as, takes_attachments,
};
use crate::domain::codes::RecordKind;
use crate::domain::rights::{self, Principal, Step};
use crate::error::{Error, Result};
use crate::storage::{Appended, HubStorage, HubTransaction, Measure};
use crate::store::{Store, attachments, sync_state};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub(crate) const REQUEST_TAG: [u8; 4] = *b"VGa1";
pub(crate) const RESPONSE_TAG: [u8; 4] = *b"VGb1";

/// One request of an attachment transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttachmentRequest {
    Upload {
        record: Uuid,
        id: Uuid,
        offset: u64,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    Download {
        record: Uuid,
        id: Uuid,
        offset: u64,
        max_bytes: u32,
    },
}

/// The hub's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttachmentResponse {
    /// The hub holds the first `held` bytes of the upload; `complete` once every byte arrived
    /// and matched the hash.
    Held {
        id: Uuid,
        held: u64,
        complete: bool,
    },
    /// Bytes of a download, from `offset`, of an attachment of `size` bytes.
    Chunk {
        id: Uuid,
        size: u64,
        offset: u64,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    Refused {
        id: Uuid,
        reason: TransferRefusal,
    },
}

/// Why the hub refused a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum TransferRefusal {
    /// No such attachment on a record this device may read (or change, for an upload).
    #[error("no such attachment for this device")]
    NotFound,
    /// The hub does not hold the bytes yet (the device that captured it has not uploaded it).
    #[error("the hub does not hold the attachment's bytes yet")]
    NotYetAvailable,
    #[error("attachment of {size} bytes exceeds the limit of {limit} bytes per file")]
    FileTooLarge { size: u64, limit: u64 },
    #[error("attachments of {size} bytes in all exceed the limit of {limit} bytes per record")]
    RecordTooLarge { size: u64, limit: u64 },
    #[error("the bytes do not match the attachment's SHA-256: the upload starts again")]
    HashMismatch,
    /// A chunk not at a segment boundary, larger than a chunk may be, or past the size; or a
    /// file's first chunk not beginning as its declared media type does (a "PDF" that is not
    /// one, which a phone would hand to a PDF viewer: the hub judges an upload as a phone
    /// judges a capture, `domain::attachment::starts_as`), or an image's holding metadata a
    /// capture strips (`codec::photo::carries_metadata`). One refusal for both, as apps of
    /// earlier versions decode no other: an unknown one failed their whole sync.
    #[error("the chunk does not fit the attachment, or the file is not of its declared type")]
    BadChunk,
    /// The file captured on this device cannot be read (damaged or deleted on its storage):
    /// capture it again. Said by the device of its own upload, never by a hub; tried again
    /// each session (storage taken out and put back reads again).
    #[error(
        "the file captured on this device cannot be read (damaged or deleted): capture it again"
    )]
    CapturedFileUnreadable,
}

impl TransferRefusal {
    /// Whether the refusal is a limit (HTTP 413).
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            TransferRefusal::FileTooLarge { .. } | TransferRefusal::RecordTooLarge { .. }
        )
    }

    /// The refusal's code, for the HTTP layer's typed reason.
    pub fn code(self) -> &'static str {
        match self {
            TransferRefusal::NotFound => "not_found",
            TransferRefusal::NotYetAvailable => "not_yet_available",
            TransferRefusal::FileTooLarge { .. } => "file_too_large",
            TransferRefusal::RecordTooLarge { .. } => "record_too_large",
            TransferRefusal::HashMismatch => "hash_mismatch",
            TransferRefusal::BadChunk => "bad_chunk",
            TransferRefusal::CapturedFileUnreadable => "captured_file_unreadable",
        }
    }
}

pub fn encode_request(request: &AttachmentRequest) -> Vec<u8> {
    wire::encode(REQUEST_TAG, request)
}

pub fn decode_request(
    bytes: &[u8],
    max: usize,
) -> std::result::Result<AttachmentRequest, wire::DecodeError> {
    wire::decode(REQUEST_TAG, "attachment request", bytes, max)
}

pub fn encode_response(response: &AttachmentResponse) -> Vec<u8> {
    wire::encode(RESPONSE_TAG, response)
}

pub fn decode_response(
    bytes: &[u8],
    max: usize,
) -> std::result::Result<AttachmentResponse, wire::DecodeError> {
    wire::decode(RESPONSE_TAG, "attachment response", bytes, max)
}

/// The manifest entry of `id` in the hub's copy of `record`, if the principal may see the
/// record (the scope rule of every pull) and, for an upload, change it (the role matrix's edit
/// step). Anything else is `NotFound`, whatever the reason.
fn entry_for(
    tx: &mut dyn HubTransaction,
    who: &Principal,
    record: Uuid,
    id: Uuid,
    changing: bool,
) -> Result<
    std::result::Result<
        (crate::domain::Attachment, Vec<crate::domain::Attachment>),
        TransferRefusal,
    >,
> {
    let stored = match tx.record(record, changing) {
        Ok(Some(stored)) => stored,
        Ok(None) | Err(Error::DamagedDocument { .. } | Error::OverLimit { .. }) => {
            return Ok(Err(TransferRefusal::NotFound));
        }
        Err(e) => return Err(e),
    };
    let reference = tx.reference()?;
    let scope = who.scope(&reference);
    if !takes_attachments(stored.kind) || !scope.receives(stored.kind, stored.area.as_ref()) {
        return Ok(Err(TransferRefusal::NotFound));
    }
    if changing && rights::check_step(who.role, who.user, &Step::Edit(stored.kind)).is_err() {
        return Ok(Err(TransferRefusal::NotFound));
    }
    let Ok(document) = codec::load(record, &stored.document) else {
        return Ok(Err(TransferRefusal::NotFound));
    };
    // The bytes come from the device that captured them, the only one that holds them: another
    // device of the same user (a second phone, a stolen one not yet revoked) appended bytes
    // that failed the hash, and could keep the capturer's upload from ever completing.
    if changing && doc::attachment_creator_device(&document, id) != Some(who.device) {
        return Ok(Err(TransferRefusal::NotFound));
    }
    let entries = doc::attachments(&document);
    match entries.iter().find(|a| a.id == id) {
        Some(entry) => Ok(Ok((entry.clone(), entries))),
        None => Ok(Err(TransferRefusal::NotFound)),
    }
}

/// The manifest entry of `id` in the hub's copy of `record` when the device `who` captured it:
/// the entry names its user as `captured_by` and was created by that very device. Such an
/// upload is taken whatever the record's scope is now, even from a deactivated user's device
/// (it still authenticates until revoked; a revoked one never gets here): the bytes are
/// evidence the hub's record already names, and they exist only on that device.
fn captured_by_device(
    tx: &mut dyn HubTransaction,
    who: &Principal,
    record: Uuid,
    id: Uuid,
) -> Result<Option<(crate::domain::Attachment, Vec<crate::domain::Attachment>)>> {
    let stored = match tx.record(record, true) {
        Ok(Some(stored)) => stored,
        Ok(None) | Err(Error::DamagedDocument { .. } | Error::OverLimit { .. }) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if !takes_attachments(stored.kind) {
        return Ok(None);
    }
    let Ok(document) = codec::load(record, &stored.document) else {
        return Ok(None);
    };
    if doc::attachment_creator_device(&document, id) != Some(who.device) {
        return Ok(None);
    }
    let entries = doc::attachments(&document);
    Ok(entries
        .iter()
        .find(|a| a.id == id && a.captured_by == who.user)
        .cloned()
        .map(|entry| (entry, entries)))
}

/// The hub's side: one attachment request from an authenticated device, over any storage.
pub fn handle_attachment<S: HubStorage + ?Sized>(
    storage: &mut S,
    who: &Principal,
    request: &[u8],
    limits: &HubLimits,
) -> std::result::Result<Vec<u8>, HubError> {
    if request.len() > limits.max_request_bytes {
        return Err(HubError::TooLarge("request bytes"));
    }
    let request = decode_request(request, limits.max_decompressed_bytes)?;
    let response = match request {
        AttachmentRequest::Upload {
            record,
            id,
            offset,
            bytes,
        } => {
            // Each device's hour of attachments' bytes (`DeviceAllowances`): past it, a chunk
            // is not taken, and the answer says the hub holds what the device sent it from
            // (no progress: the device leaves its uploads for a later session, and an app of
            // an earlier version tries a few times, then does).
            // A file's first chunk counts at least `FILE_CHARGE_BYTES`: each file costs the
            // hub's disk a block and a row, and every phone in scope a round trip to fetch
            // it, whatever it holds (5,000 files of 5 bytes each passed as 25 KB of an hour
            // of 128 MiB).
            let charge = match offset {
                0 => (bytes.len() as u64).max(FILE_CHARGE_BYTES),
                _ => bytes.len() as u64,
            };
            let mut reservation = match storage.allowances() {
                Some(allowances) if !bytes.is_empty() => {
                    let reservation = allowances.reserve(
                        who.device,
                        Measure::AttachmentBytes,
                        limits.device_attachment_bytes_per_hour,
                    );
                    if reservation.reserved() < charge {
                        // Said once an hour, not at each upload that finds it spent; nor for
                        // a chunk sent again while its first copy is taken in (a weak link's
                        // retry finds the bucket held, not spent).
                        if !reservation.shared()
                            && allowances.say_spent(who.device, Measure::AttachmentBytes)
                        {
                            tracing::warn!(
                                device = %who.device,
                                "a device uploaded more attachments' bytes than the hub takes \
                                 from one device in an hour: its uploads wait (an app out of \
                                 order, or an altered one?)"
                            );
                        }
                        drop(reservation);
                        return Ok(encode_response(&AttachmentResponse::Held {
                            id,
                            held: offset,
                            complete: false,
                        }));
                    }
                    Some(reservation)
                }
                _ => None,
            };
            let (response, taken) = storage
                .in_transaction(&mut |tx| upload(tx, who, limits, record, id, offset, &bytes))?;
            // Counted when the bytes were taken in, not for a chunk the hub held already (a
            // link that sends each request twice had a phone's hour spent at half its bytes).
            if let Some(reservation) = &mut reservation
                && taken
            {
                reservation.used = charge;
            }
            response
        }
        AttachmentRequest::Download {
            record,
            id,
            offset,
            max_bytes,
        } => storage.in_read_transaction(&mut |tx| {
            download(tx, who, limits, record, id, offset, max_bytes)
        })?,
    };
    Ok(encode_response(&response))
}

fn upload(
    tx: &mut dyn HubTransaction,
    who: &Principal,
    limits: &HubLimits,
    record: Uuid,
    id: Uuid,
    offset: u64,
    bytes: &[u8],
) -> Result<(AttachmentResponse, bool)> {
    let refused = |reason| Ok((AttachmentResponse::Refused { id, reason }, false));
    let (entry, entries) = match entry_for(tx, who, record, id, true)? {
        Ok(found) => found,
        // Changes of the device's kept for review name it: its bytes wait with them. Or the
        // record left the device's scope (its user moved or deactivated, the record moved by
        // someone else) after its manifest reached the hub: the device that captured it still
        // sends its bytes, the only copy.
        Err(TransferRefusal::NotFound) => {
            match super::quarantine::attachment_under_review(tx, who, record, id)? {
                Some(found) => found,
                None => match captured_by_device(tx, who, record, id)? {
                    Some(found) => found,
                    None => return refused(TransferRefusal::NotFound),
                },
            }
        }
        Err(reason) => return refused(reason),
    };
    // The bytes come from where they were captured: another user's device, even one that may
    // change the record, could only append bytes that fail the hash, and would keep the
    // capturer's upload from ever completing.
    if entry.captured_by != who.user {
        return refused(TransferRefusal::NotFound);
    }
    let file_limit = limits.attachments.max_file_bytes;
    if entry.size > file_limit {
        return refused(TransferRefusal::FileTooLarge {
            size: entry.size,
            limit: file_limit,
        });
    }
    let total: u64 = entries.iter().map(|a| a.size).sum();
    if total > limits.attachments.max_record_bytes {
        return refused(TransferRefusal::RecordTooLarge {
            size: total,
            limit: limits.attachments.max_record_bytes,
        });
    }
    let held = tx.attachment_held(id)?;
    if let Some(held) = &held
        && (held.complete || held.record != record)
    {
        // Stored already (a retried last chunk, another device's upload): nothing to add.
        let response = AttachmentResponse::Held {
            id,
            held: held.held,
            complete: held.complete,
        };
        return Ok((response, false));
    }
    let have = held.as_ref().map_or(0, |h| h.held);
    if offset != have || bytes.is_empty() {
        // A chunk the hub holds already (a retry), or one past a gap: the device goes on
        // from what the hub holds.
        let response = AttachmentResponse::Held {
            id,
            held: have,
            complete: false,
        };
        return Ok((response, false));
    }
    let chunk_ok = offset.is_multiple_of(sealed::SEGMENT as u64)
        && bytes.len() <= MAX_CHUNK_BYTES
        && offset + bytes.len() as u64 <= entry.size;
    if !chunk_ok {
        return refused(TransferRefusal::BadChunk);
    }
    // The first chunk begins as the declared type does, and an image's holds none of the
    // metadata a capture takes away (a document photographed keeps the GPS position of the
    // child's home): a phone checks and strips at capture, an app of an earlier version (or an
    // altered one) did not. The hub cannot strip it (the file's hash is the phone's).
    if offset == 0
        && (!starts_as(&entry.media_type, &bytes[..bytes.len().min(MAGIC_BYTES)])
            || codec::photo::carries_metadata(&entry.media_type, bytes))
    {
        return refused(TransferRefusal::BadChunk);
    }
    let Some(sha) = entry.sha256_digest() else {
        return refused(TransferRefusal::NotFound);
    };
    let response = match tx.attachment_append(id, record, entry.size, &sha, offset, bytes)? {
        Appended::Held(held) => AttachmentResponse::Held {
            id,
            held,
            complete: false,
        },
        Appended::Complete => AttachmentResponse::Held {
            id,
            held: entry.size,
            complete: true,
        },
        Appended::Mismatch => AttachmentResponse::Refused {
            id,
            reason: TransferRefusal::HashMismatch,
        },
    };
    Ok((response, true))
}

fn download(
    tx: &mut dyn HubTransaction,
    who: &Principal,
    limits: &HubLimits,
    record: Uuid,
    id: Uuid,
    offset: u64,
    max_bytes: u32,
) -> Result<AttachmentResponse> {
    let refused = |reason| Ok(AttachmentResponse::Refused { id, reason });
    let entry = match entry_for(tx, who, record, id, false)? {
        Ok((entry, _)) => entry,
        Err(reason) => return refused(reason),
    };
    match tx.attachment_held(id)? {
        Some(held) if held.complete && held.record == record => {}
        _ => return refused(TransferRefusal::NotYetAvailable),
    }
    if offset > entry.size || !offset.is_multiple_of(sealed::SEGMENT as u64) {
        return refused(TransferRefusal::BadChunk);
    }
    let max = (max_bytes as usize)
        .min(MAX_CHUNK_BYTES)
        .min(limits.max_response_bytes)
        .max(sealed::SEGMENT);
    // One damaged file refuses its own download, never the whole request: every session
    // asking for it failed, and the attachments queued behind it with it.
    let Some(bytes) = tx.attachment_read(id, offset, max)? else {
        tracing::warn!(attachment = %id, record = %record, "attachment's stored bytes are damaged: removed until its author sends it again");
        return refused(TransferRefusal::NotYetAvailable);
    };
    Ok(AttachmentResponse::Chunk {
        id,
        size: entry.size,
        offset,
        bytes,
    })
}

/// The largest chunk either way.
pub const MAX_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// The least a file's upload counts against its device's hour of attachments' bytes: at the
/// default 128 MiB an hour, 2,048 files (a photo is 100 KB to a few MB).
pub const FILE_CHARGE_BYTES: u64 = 64 * 1024;

impl Store {
    /// The hub's side of an attachment request on an embedded hub store (tests, tools).
    pub fn hub_attachment(
        &mut self,
        who: &Principal,
        request: &[u8],
        limits: &HubLimits,
    ) -> std::result::Result<Vec<u8>, HubError> {
        handle_attachment(self, who, request, limits)
    }
}

// ---------------------------------------------------------------------------------------------
// The device

/// How a device transfers attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentSyncOptions {
    pub policy: DownloadPolicy,
    /// Whether the link is unmetered (Wi-Fi): the app knows, the core does not.
    pub unmetered: bool,
    /// Bytes per chunk, rounded down to a multiple of the segment (64 KiB); 256 KiB by default.
    pub chunk_bytes: usize,
    pub max_decompressed_bytes: usize,
}

impl Default for AttachmentSyncOptions {
    fn default() -> Self {
        AttachmentSyncOptions {
            policy: DownloadPolicy::Eager,
            unmetered: true,
            chunk_bytes: 256 * 1024,
            max_decompressed_bytes: 2 * MAX_CHUNK_BYTES,
        }
    }
}

impl AttachmentSyncOptions {
    fn chunk(&self) -> usize {
        let segment = sealed::SEGMENT;
        (self.chunk_bytes.min(MAX_CHUNK_BYTES) / segment).max(1) * segment
    }
}

/// What an attachment session did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachmentSummary {
    pub round_trips: usize,
    pub bytes_sent: usize,
    pub bytes_received: usize,
    /// Attachments the hub now holds whole.
    pub uploaded: Vec<Uuid>,
    /// Attachments now whole on this device.
    pub downloaded: Vec<Uuid>,
    /// Attachments that failed, with why (they keep their state `Failed`).
    pub failed: Vec<(Uuid, TransferRefusal)>,
}

/// A transfer the device has to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transfer {
    id: Uuid,
    record: Uuid,
    upload: bool,
}

impl Store {
    /// Marks an attachment for download (the "on demand" policy, or a Wi-Fi-only device on a
    /// metered link: the user asked for this one). A failed one is queued again: a download
    /// from the start, an upload if the limits the hub published last allow it, else
    /// `Error::Attachment` with the limit it is over (`FileTooLarge`, `RecordTooLarge`).
    pub fn request_attachment(&mut self, id: Uuid) -> Result<()> {
        let row = attachments::row(&self.conn, id)?.ok_or(Error::AttachmentNotFound { id })?;
        if row.state == AttachmentState::Failed && attachments::is_upload(&self.conn, id)? {
            let limits = attachments::limits(&self.conn)?;
            if row.size > limits.max_file_bytes {
                return Err(Error::Attachment(AttachmentRefusal::FileTooLarge {
                    size: row.size,
                    limit: limits.max_file_bytes,
                }));
            }
            let total = attachments::record_bytes(&self.conn, row.record_id)?;
            if total > limits.max_record_bytes {
                return Err(Error::Attachment(AttachmentRefusal::RecordTooLarge {
                    size: total,
                    limit: limits.max_record_bytes,
                }));
            }
        }
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE attachments SET requested = 1 WHERE id = ?1",
            [id.as_bytes()],
        )?;
        if row.state == AttachmentState::Failed {
            requeue_failed(&tx, Some(id))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The transfers due, in order: uploads, then downloads the policy allows; the most
    /// urgent records' first. Records still waiting in the outbox wait for their push.
    fn transfers_due(&self, options: &AttachmentSyncOptions) -> Result<Vec<Transfer>> {
        let all = options.policy == DownloadPolicy::Eager
            || (options.policy == DownloadPolicy::WifiOnly && options.unmetered);
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, record_id, state FROM attachments
             WHERE state IN (?1, ?2, ?3) AND (state = ?1 OR ?4 OR requested = 1)
             ORDER BY state = ?1 DESC, priority DESC, id",
        )?;
        let rows = stmt
            .query_map(
                rusqlite::params![
                    AttachmentState::PendingUpload.code(),
                    AttachmentState::NotDownloaded.code(),
                    AttachmentState::Downloading.code(),
                    all
                ],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut due = Vec::new();
        for (id, record, state) in rows {
            let (Ok(id), Ok(record)) = (Uuid::from_slice(&id), Uuid::from_slice(&record)) else {
                continue;
            };
            let upload = state == AttachmentState::PendingUpload.code();
            if upload && sync_state::is_pending(&self.conn, record)? {
                continue;
            }
            due.push(Transfer { id, record, upload });
        }
        Ok(due)
    }

    /// The next request of `transfer`; `probe`: an empty upload chunk, asking what the hub
    /// holds. None for an upload whose file, captured here, does not read (damaged, deleted
    /// on the phone's storage): it fails alone, and the session goes on with the others.
    fn transfer_request(
        &self,
        transfer: &Transfer,
        chunk: usize,
        probe: bool,
    ) -> Result<Option<Vec<u8>>> {
        let row = attachments::row(&self.conn, transfer.id)?.ok_or(Error::NotFound {
            kind: None,
            id: transfer.id,
        })?;
        let request = if transfer.upload {
            let offset = row.confirmed - row.confirmed % sealed::SEGMENT as u64;
            let len = if probe {
                0
            } else {
                chunk.min((row.size - offset.min(row.size)) as usize)
            };
            let read = || -> std::io::Result<Vec<u8>> {
                let mut reader = sealed::open_at(
                    &attachments::file_path(self.path(), transfer.id),
                    &row.key,
                    transfer.id,
                    offset,
                )?;
                let mut bytes = vec![0u8; len];
                std::io::Read::read_exact(&mut reader, &mut bytes)?;
                Ok(bytes)
            };
            let Ok(bytes) = read() else {
                // No path or content in the log: the id is enough to find it.
                tracing::warn!(attachment = %transfer.id, "an attachment's file captured here does not read");
                return Ok(None);
            };
            AttachmentRequest::Upload {
                record: transfer.record,
                id: transfer.id,
                offset,
                bytes,
            }
        } else {
            AttachmentRequest::Download {
                record: transfer.record,
                id: transfer.id,
                offset: attachments::held_partial(self.path(), transfer.id),
                max_bytes: chunk as u32,
            }
        };
        Ok(Some(encode_request(&request)))
    }

    /// Marks an upload whose captured file does not read as failed, with why.
    fn unreadable(&mut self, id: Uuid, summary: &mut AttachmentSummary) -> Result<()> {
        let reason = TransferRefusal::CapturedFileUnreadable;
        summary.failed.push((id, reason));
        let tx = self.conn.transaction()?;
        attachments::set_state(&tx, id, AttachmentState::Failed, Some(failure_text(reason)))?;
        attachments::set_in_flight(&tx, id, false)?;
        tx.commit()?;
        Ok(())
    }

    /// Applies the hub's answer to a transfer request. Returns whether the transfer goes on
    /// (`Some(false)`: done or failed for good; `None`: set aside for this session).
    fn transfer_apply(
        &mut self,
        transfer: &Transfer,
        response: &[u8],
        options: &AttachmentSyncOptions,
        summary: &mut AttachmentSummary,
    ) -> Result<Option<bool>> {
        let response = decode_response(response, options.max_decompressed_bytes)?;
        let id = transfer.id;
        let fail = |store: &mut Store, reason: TransferRefusal, summary: &mut AttachmentSummary| {
            summary.failed.push((id, reason));
            let tx = store.conn.transaction()?;
            attachments::set_state(&tx, id, AttachmentState::Failed, Some(failure_text(reason)))?;
            tx.commit()?;
            Ok::<_, Error>(Some(false))
        };
        match response {
            AttachmentResponse::Held { id: r, .. }
            | AttachmentResponse::Chunk { id: r, .. }
            | AttachmentResponse::Refused { id: r, .. }
                if r != id =>
            {
                Err(Error::Transport {
                    reason: "the hub answered about another attachment".into(),
                })
            }
            AttachmentResponse::Held { held, complete, .. } => {
                let tx = self.conn.transaction()?;
                attachments::set_confirmed(&tx, id, held)?;
                if complete {
                    attachments::set_state(&tx, id, AttachmentState::Uploaded, None)?;
                    attachments::set_in_flight(&tx, id, false)?;
                }
                tx.commit()?;
                if complete {
                    summary.uploaded.push(id);
                    self.drop_if_left(transfer)?;
                }
                Ok(Some(!complete))
            }
            AttachmentResponse::Chunk {
                size,
                offset,
                bytes,
                ..
            } => {
                let row =
                    attachments::row(&self.conn, id)?.ok_or(Error::NotFound { kind: None, id })?;
                if size != row.size {
                    return fail(self, TransferRefusal::HashMismatch, summary);
                }
                match attachments::receive_chunk(self.path(), id, &row, offset, &bytes)? {
                    attachments::Received::More(_) => {
                        let tx = self.conn.transaction()?;
                        attachments::set_state(&tx, id, AttachmentState::Downloading, None)?;
                        tx.commit()?;
                        Ok(Some(true))
                    }
                    attachments::Received::Whole => {
                        let tx = self.conn.transaction()?;
                        attachments::set_state(&tx, id, AttachmentState::Available, None)?;
                        tx.commit()?;
                        summary.downloaded.push(id);
                        Ok(Some(false))
                    }
                    attachments::Received::Mismatch => {
                        fail(self, TransferRefusal::HashMismatch, summary)
                    }
                }
            }
            AttachmentResponse::Refused { reason, .. } => match reason {
                // Of a record that left this store: the hub no longer takes it (erased, its
                // entry for review settled), and the bytes can go nowhere. Said, and dropped
                // with the record. (A limit keeps it, failed, until the limits allow it.)
                TransferRefusal::NotFound if transfer.upload && self.drop_if_left(transfer)? => {
                    summary.failed.push((id, reason));
                    Ok(Some(false))
                }
                // The record has not reached the hub, or the uploader has not sent it yet:
                // next session.
                TransferRefusal::NotFound | TransferRefusal::NotYetAvailable => Ok(None),
                TransferRefusal::HashMismatch if transfer.upload => {
                    // The hub discarded what it held: the upload starts again, once per
                    // session (a file that keeps failing is damaged).
                    let tx = self.conn.transaction()?;
                    attachments::set_confirmed(&tx, id, 0)?;
                    tx.commit()?;
                    summary.failed.push((id, reason));
                    Ok(None)
                }
                _ => fail(self, reason, summary),
            },
        }
    }
}

impl Store {
    /// Deletes an upload's attachment if its record left this store (out of scope, or for a
    /// supervisor's review: `erasure::forget_record_keeping_uploads`): once its bytes reached
    /// the hub, or when the hub no longer takes them, nothing of it stays. Whether it did.
    fn drop_if_left(&mut self, transfer: &Transfer) -> Result<bool> {
        if crate::store::find_row(&self.conn, transfer.record)?.is_some() {
            return Ok(false);
        }
        let tx = self.conn.transaction()?;
        tx.prepare_cached("DELETE FROM attachments WHERE id = ?1")?
            .execute([transfer.id.as_bytes()])?;
        tx.commit()?;
        attachments::collect_files(&self.conn, self.path())?;
        Ok(true)
    }
}

/// Queues failed transfers again (`only`: that one): a download from the start (its bytes
/// did not match: a damaged link, or a hub copy since repaired); an upload refused on a limit
/// when the limits the hub published last allow it now (its size, and the bytes of its
/// record's attachments in all).
fn requeue_failed(tx: &rusqlite::Transaction, only: Option<Uuid>) -> Result<()> {
    let limits = attachments::limits(tx)?;
    let only = only.map(|id| id.as_bytes().to_vec());
    tx.prepare_cached(
        "UPDATE attachments SET state = ?1, failure = NULL
         WHERE state = ?2 AND upload = 0 AND (?3 IS NULL OR id = ?3)",
    )?
    .execute(rusqlite::params![
        AttachmentState::NotDownloaded.code(),
        AttachmentState::Failed.code(),
        only
    ])?;
    tx.prepare_cached(
        "UPDATE attachments SET state = ?1, failure = NULL, confirmed = 0, in_flight = 0
         WHERE state = ?2 AND upload = 1 AND (?3 IS NULL OR id = ?3) AND size <= ?4
           AND (SELECT sum(b.size) FROM attachments b WHERE b.record_id = attachments.record_id)
               <= ?5",
    )?
    .execute(rusqlite::params![
        AttachmentState::PendingUpload.code(),
        AttachmentState::Failed.code(),
        only,
        limits.max_file_bytes as i64,
        limits.max_record_bytes as i64
    ])?;
    Ok(())
}

/// A fixed phrase for a failed transfer (kept with the attachment's state).
fn failure_text(reason: TransferRefusal) -> &'static str {
    match reason {
        TransferRefusal::NotFound => "the hub has no such attachment for this device",
        TransferRefusal::NotYetAvailable => "the hub does not hold the bytes yet",
        TransferRefusal::FileTooLarge { .. } => "larger than the hub accepts per file",
        TransferRefusal::RecordTooLarge { .. } => "over the hub's limit per record",
        TransferRefusal::HashMismatch => "the bytes received do not match the attachment's hash",
        TransferRefusal::BadChunk => {
            "the hub refused a chunk, or the file as not of its declared type"
        }
        TransferRefusal::CapturedFileUnreadable => {
            "the file captured on this device cannot be read: capture it again"
        }
    }
}

/// Transport failures in a row after which a session stops: the link is down, not just weak.
const CUTS_IN_A_ROW: usize = 4;

/// Runs an attachment session after the records' sync: every transfer due, chunk by chunk,
/// until done or the link is down (the next session resumes where this one stopped). A chunk
/// whose exchange fails is sent again at half the size, down to one segment: a link that
/// drops each connection before 256 KiB went through never moved a photo of 200 KB, however
/// often the app synced. An attachment that fails at one segment waits for the next session
/// and the others go on (a photo no longer holds a document back). `Err(Transport)` when the
/// session ended on a failed exchange (the link down, the device refused).
pub fn sync_attachments(
    store: &mut impl StoreAccess,
    options: &AttachmentSyncOptions,
    mut transport: impl FnMut(&[u8]) -> std::result::Result<Vec<u8>, String>,
    mut progress: impl FnMut(&AttachmentSummary),
) -> Result<AttachmentSummary> {
    let mut summary = AttachmentSummary::default();
    let mut chunk = options.chunk();
    let (mut cuts_in_a_row, mut cut) = (0usize, None);
    let due = store.with(|s| {
        // What failed in an earlier session and may succeed now goes again, once per session
        // (a hub copy that keeps failing its hash does not loop within one).
        let tx = s.conn.transaction()?;
        requeue_failed(&tx, None)?;
        tx.commit()?;
        s.transfers_due(options)
    })?;
    // The hub took no byte of a chunk it was sent (the device's hour of attachments is
    // spent): the other uploads wait for a later session too, downloads go on.
    let mut uploads_held = false;
    for transfer in due {
        if cuts_in_a_row >= CUTS_IN_A_ROW {
            break;
        }
        if transfer.upload && uploads_held {
            continue;
        }
        // Each chunk moves the transfer forward; the bound only guards against a hub that
        // keeps answering without progress. An attachment removed (or its record) since the
        // session listed it is passed over.
        let started = store.with(|s| {
            let Some(row) = attachments::row(&s.conn, transfer.id)? else {
                return Ok(None);
            };
            // An upload a session left under way first asks what the hub holds: the answer to
            // its last chunk may have been lost after the hub stored it.
            let probe = transfer.upload && attachments::in_flight(&s.conn, transfer.id)?;
            if transfer.upload && !probe {
                attachments::set_in_flight(&s.conn, transfer.id, true)?;
            }
            let segments = row.size.div_ceil(sealed::SEGMENT as u64);
            Ok(Some((4 + CUTS_IN_A_ROW as u64 + 2 * segments, probe)))
        })?;
        let Some((bound, mut probe)) = started else {
            continue;
        };
        for _ in 0..bound {
            let request = store.with(|s| {
                let Some(row) = attachments::row(&s.conn, transfer.id)? else {
                    return Ok(None);
                };
                let Some(request) = s.transfer_request(&transfer, chunk, probe)? else {
                    s.unreadable(transfer.id, &mut summary)?;
                    return Ok(None);
                };
                Ok(Some((request, row.confirmed)))
            })?;
            let Some((request, confirmed)) = request else {
                break;
            };
            let sent_bytes = transfer.upload && !probe;
            probe = false;
            summary.bytes_sent += request.len();
            let response = match transport(&request) {
                Ok(response) => response,
                Err(reason) => {
                    cut = Some(reason);
                    cuts_in_a_row += 1;
                    let smaller = (chunk / 2 / sealed::SEGMENT).max(1) * sealed::SEGMENT;
                    if cuts_in_a_row >= CUTS_IN_A_ROW || smaller == chunk {
                        break;
                    }
                    chunk = smaller;
                    // The hub may have stored the chunk whose answer was lost: ask.
                    probe = transfer.upload;
                    continue;
                }
            };
            cuts_in_a_row = 0;
            summary.bytes_received += response.len();
            summary.round_trips += 1;
            let more = store.with(|s| {
                if attachments::row(&s.conn, transfer.id)?.is_none() {
                    return Ok(Some(false));
                }
                s.transfer_apply(&transfer, &response, options, &mut summary)
            })?;
            progress(&summary);
            if more != Some(true) {
                break;
            }
            if sent_bytes
                && store
                    .with(|s| Ok(attachments::row(&s.conn, transfer.id)?.map(|r| r.confirmed)))?
                    == Some(confirmed)
            {
                uploads_held = true;
                break;
            }
        }
    }
    // A session whose last exchange failed ended on the link: said so (the app syncs again
    // later); one that went on past a file that could not pass ends as any other.
    match cut {
        Some(reason) if cuts_in_a_row > 0 => Err(Error::Transport { reason }),
        _ => Ok(summary),
    }
}

/// Where a record stands with the hub, its attachments counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RecordSyncState {
    /// The record has changes the hub has not acknowledged.
    pub pending_changes: bool,
    pub attachments: u32,
    pub attachments_pending_upload: u32,
    pub attachments_not_downloaded: u32,
    pub attachments_failed: u32,
}

impl RecordSyncState {
    /// Synced: nothing of the record or its attachments waits to go to the hub or fails.
    pub fn synced(&self) -> bool {
        !self.pending_changes
            && self.attachments_pending_upload == 0
            && self.attachments_failed == 0
    }
}

impl Store {
    /// Where a record stands with the hub: its changes, and its attachments by state.
    pub fn record_sync_state(&self, record: Uuid) -> Result<RecordSyncState> {
        let kind = self.kind_of(record)?;
        let mut state = RecordSyncState {
            pending_changes: sync_state::is_pending(&self.conn, record)?,
            ..RecordSyncState::default()
        };
        if kind == RecordKind::Reference || !takes_attachments(kind) {
            return Ok(state);
        }
        for info in self.attachments(record)? {
            state.attachments += 1;
            match info.state {
                AttachmentState::PendingUpload => state.attachments_pending_upload += 1,
                AttachmentState::NotDownloaded | AttachmentState::Downloading => {
                    state.attachments_not_downloaded += 1
                }
                AttachmentState::Failed => state.attachments_failed += 1,
                AttachmentState::Uploaded | AttachmentState::Available => {}
            }
        }
        Ok(state)
    }
}

//! Errors of the core.
//!
//! Error text never carries record content: a child's name, a note or a value typed by a user
//! must not end up in a log or a crash report. Errors name the field, the rule and the record's
//! kind and id (a random UUID, not personal data) and nothing else.

pub use crate::domain::validation::{NotAllowed, ValidationError};
pub use crate::identity::IdentityError;

use crate::domain::attachment::{AttachmentRefusal, AttachmentState};
use crate::domain::codes::{CaseStatus, RecordKind};
use crate::domain::limits::DocumentLimit;
use uuid::Uuid;

/// Why bytes could not be decoded. The text names the problem, never the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a Vigie {expected} (wrong tag)")]
    WrongTag { expected: &'static str },
    #[error("decompressed size exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("damaged compression frame")]
    Compression,
    #[error("damaged message structure")]
    Structure,
    #[error("checksum mismatch: the bytes were damaged or altered")]
    Checksum,
    /// An answer of the hub byte for byte the same as one a session already handled: a
    /// transport that caches or replays answers, or someone on the link.
    #[error("an answer this session handled already, again (a replay)")]
    Replayed,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Validation(#[from] ValidationError),

    /// `kind` is the kind asked for, when the caller asked for one.
    #[error("record {id} not found")]
    NotFound { kind: Option<RecordKind>, id: Uuid },

    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: RecordKind, id: Uuid },

    /// A record was erased under this id: nothing is written under it again (a form left open
    /// on the erased record must not bring its content back).
    #[error("record {id} was erased: its id is not used again")]
    Erased { id: Uuid },

    #[error("record {id} is a {actual}, not a {expected}")]
    WrongKind {
        id: Uuid,
        expected: RecordKind,
        actual: RecordKind,
    },

    #[error("the store could not be opened: wrong key, or not a Vigie store")]
    WrongKeyOrNotAStore,

    #[error("the store's schema version {found} is newer than this software ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },

    /// A store of an earlier schema opened not to be upgraded (`StoreConfig::without_upgrade`).
    #[error(
        "the store's schema version {found} is older than this software's ({supported}), and \
         it was not to be upgraded"
    )]
    UpgradeWithheld { found: i64, supported: i64 },

    /// `path` is the field's path when it is one the record has, else none: the caller's text
    /// is not repeated (it may be anything typed).
    #[error("{}", match path {
        Some(path) => format!("no conflict at {path} in {id}"),
        None => format!("no conflict at the field given in {id}"),
    })]
    NoSuchConflict { id: Uuid, path: Option<String> },

    /// A workflow step the state machine or the acting role does not allow. `rule` names the
    /// rule (statuses, roles), never record content.
    #[error("not allowed: {rule}")]
    NotAllowed { rule: String },

    #[error("the version given for {id} is not known to this store")]
    UnknownVersion { id: Uuid },

    /// A stored or received document could not be decoded. `reason` is produced by Vigie, never
    /// copied from the bytes.
    #[error("damaged document {id}: {reason}")]
    DamagedDocument { id: Uuid, reason: String },

    /// A change made on this device arrived with a sequence number the store has used since for
    /// another change: the store was restored from an older copy (`store::receive` moves the
    /// store's own later edits to a new actor and merges again).
    #[error("record {id}: a change of this device reuses sequence number {seq} of its actor")]
    ActorReused {
        id: Uuid,
        actor: automerge::ActorId,
        seq: u64,
    },

    /// A received or stored document over one of the bounds on what a record may hold
    /// (`DocumentLimits`): refused, or reported as damaged, before anything reads it.
    #[error("record {id} exceeds the limit on {limit}")]
    OverLimit { id: Uuid, limit: DocumentLimit },

    /// Bytes from another device or the hub that are not a well-formed message.
    #[error("sync message refused: {0}")]
    Protocol(#[from] DecodeError),

    /// A bundle refused whole; `record` names the record that failed, if one did.
    #[error("bundle refused: {reason}")]
    DamagedBundle {
        record: Option<Uuid>,
        reason: String,
    },

    /// The app's transport failed; the session can be resumed later.
    #[error("transport failed: {reason}")]
    Transport { reason: String },

    /// An attachment refused: bad input at capture, a limit (with the size and the limit),
    /// bytes that do not match their hash.
    #[error("attachment refused: {0}")]
    Attachment(#[from] AttachmentRefusal),

    /// The bytes of an attachment are not on this store (not downloaded yet, or failed).
    #[error("the bytes of attachment {id} are not on this device ({state:?})")]
    AttachmentNotHere { id: Uuid, state: AttachmentState },

    /// No attachment of this id on this store (removed from its record, or never there).
    #[error("attachment {id} not found")]
    AttachmentNotFound { id: Uuid },

    #[error("storage error: {}", storage_text(.0))]
    Storage(#[from] rusqlite::Error),

    /// A certificate, a peer's handshake or a sealed bundle was refused (`identity`).
    #[error(transparent)]
    Identity(#[from] IdentityError),

    /// A hub storage backend other than the embedded store failed. `reason` is the backend's
    /// error class, never a value; `retryable` when another transaction got in the way.
    #[error("hub storage error: {reason}")]
    HubStorage { reason: String, retryable: bool },

    #[error("document error: {0}")]
    Document(#[from] automerge::AutomergeError),

    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// A PIN that does not unwrap the profile's key. After `attempts_left` more wrong PINs in a
    /// row the profile is wiped.
    #[error("wrong PIN: {attempts_left} attempts left before this profile is wiped")]
    WrongPin { attempts_left: u32 },

    /// Too many wrong PINs in a row for now: no PIN is tried (nor counted) for
    /// `retry_in_seconds` more. The wait doubles with each further wrong PIN.
    #[error("too many wrong PINs: try again in {retry_in_seconds} seconds")]
    PinLocked { retry_in_seconds: u64 },

    /// The hub revoked this device (lost or seized) and asks it to wipe: the app destroys the
    /// profile (`Vault::wipe_user`).
    #[error("this device was revoked by the hub: wipe its data")]
    WipeRequested,

    /// Too many wrong PINs in a row: the profile's key and store were destroyed.
    #[error("too many wrong PINs: this profile was wiped from the device")]
    ProfileWiped,

    /// No profile for this user on the device (never created, or wiped).
    #[error("no profile for user {user} on this device")]
    NoProfile { user: Uuid },

    #[error("a profile for user {user} exists on this device already")]
    ProfileExists { user: Uuid },

    /// A profile's key file or store files are missing or do not read. `reason` is produced by
    /// Vigie, never copied from the file.
    #[error("damaged profile {user}: {reason}")]
    DamagedProfile { user: Uuid, reason: String },

    /// Only open cases can be handed over to another user; `status` is the case's.
    #[error("case {id} is {status}: only an open case can be handed over", status = status.as_str())]
    CaseNotOpen { id: Uuid, status: CaseStatus },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A directory the caller named (`field`) that cannot be made or used: a path through a
    /// file or a missing place the app may not create, no permission, a read-only file system
    /// is the caller's input to correct, said on the field; a full disk stays a storage error.
    pub(crate) fn unusable_directory(field: &str, e: std::io::Error) -> Error {
        use std::io::ErrorKind::*;
        match e.kind() {
            AlreadyExists | NotADirectory => crate::domain::validation::ValidationError::new(
                field,
                "must be a directory: the path names a file",
            )
            .into(),
            NotFound | PermissionDenied | ReadOnlyFilesystem | InvalidInput | InvalidFilename => {
                crate::domain::validation::ValidationError::new(
                    field,
                    "must be a directory this app can create and write in",
                )
                .into()
            }
            _ => e.into(),
        }
    }
}

impl From<NotAllowed> for Error {
    fn from(e: NotAllowed) -> Error {
        Error::NotAllowed { rule: e.rule }
    }
}

impl From<crate::domain::validation::WriteRefused> for Error {
    fn from(e: crate::domain::validation::WriteRefused) -> Error {
        match e {
            crate::domain::validation::WriteRefused::Invalid(e) => e.into(),
            crate::domain::validation::WriteRefused::NotAllowed(e) => e.into(),
        }
    }
}

impl Error {
    /// Whether the error is the disk being full: SQLite's `SQLITE_FULL`, or a file the system
    /// could not grow (no space, or past the process's file-size limit: a write past
    /// `ulimit -f` is SQLite's `SQLITE_IOERR_WRITE`). Nothing of the call that failed so was
    /// written; freeing space is the remedy, for a phone's user and a hub's operator alike.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Storage(rusqlite::Error::SqliteFailure(failure, _)) => {
                failure.code == rusqlite::ErrorCode::DiskFull
                    || failure.extended_code == rusqlite::ffi::SQLITE_IOERR_WRITE
            }
            Error::Io(io) => matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::FileTooLarge
            ),
            _ => false,
        }
    }

    /// `self`, which opening a store at `path` failed with, said as the disk being full when
    /// it is one SQLite gives a full disk as on opening (growing the shared-memory file, a
    /// write: a "disk I/O error") and the store's directory takes no more bytes now.
    pub(crate) fn on_opening(self, path: &std::path::Path) -> Error {
        use rusqlite::ffi;
        let ambiguous = matches!(
            self.sqlite_extended_code(),
            Some(
                ffi::SQLITE_IOERR_SHMSIZE
                    | ffi::SQLITE_IOERR_SHMMAP
                    | ffi::SQLITE_IOERR_FSYNC
                    | ffi::SQLITE_IOERR_TRUNCATE
                    | ffi::SQLITE_IOERR_WRITE
            )
        );
        if !ambiguous {
            return self;
        }
        // As much as SQLite's shared memory asks for at first.
        let check = path.with_extension("space-check");
        let written = std::fs::write(&check, [0u8; 32 * 1024]);
        let _ = std::fs::remove_file(&check);
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => Error::Io(e),
            _ => self,
        }
    }

    fn sqlite_extended_code(&self) -> Option<std::os::raw::c_int> {
        match self {
            Error::Storage(e) => e.sqlite_error().map(|f| f.extended_code),
            _ => None,
        }
    }
}

/// The most of an error's text that another party wrote (a hub's refusal, or whatever answered
/// in its place) an app or a command shows: the hub's longest answer whole (a token used first
/// by another store, some 430 characters), which the app's catalogues translate only whole.
pub const MAX_FOREIGN_TEXT: usize = 600;

/// A text another party wrote, as an app or a command may show it: on one line, without
/// control or text-direction characters, and no longer than `MAX_FOREIGN_TEXT` characters (a
/// proxy's 5 MB "error", or its markup, became the user's message as the hub's words).
pub fn foreign_text(text: &str) -> String {
    let direction = |c: char| matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_control() || direction(c) {
                ' '
            } else {
                c
            }
        })
        .take(MAX_FOREIGN_TEXT + 1)
        .collect();
    if out.chars().count() > MAX_FOREIGN_TEXT {
        out = out.chars().take(MAX_FOREIGN_TEXT).collect();
        out.push('…');
    }
    out
}

/// What a damaged store's file is told as.
pub const DAMAGED: &str =
    "the store's file is damaged: restore it from a copy, or remove it and sync again";

/// What a storage error says: SQLite's words, except for a write the system refused, which
/// SQLite calls a "disk I/O error" though a full disk is its usual cause (an operator read it
/// as failing hardware).
pub fn storage_text(e: &rusqlite::Error) -> String {
    use rusqlite::ffi;
    match e.sqlite_error() {
        Some(failure)
            if matches!(
                failure.extended_code,
                ffi::SQLITE_IOERR_WRITE
                    | ffi::SQLITE_IOERR_FSYNC
                    | ffi::SQLITE_IOERR_TRUNCATE
                    | ffi::SQLITE_IOERR_SHMSIZE
                    | ffi::SQLITE_IOERR_SHMMAP
            ) =>
        {
            "a write to the disk failed: is the disk full?".to_string()
        }
        // Not the storage: a phone's memory (other apps, a large document), which an app
        // would otherwise tell its user to free storage for.
        Some(failure) if failure.code == rusqlite::ErrorCode::OutOfMemory => {
            "the device ran out of memory: close other apps, then try again".to_string()
        }
        Some(failure) if failure.code == rusqlite::ErrorCode::DatabaseCorrupt => DAMAGED.into(),
        // Not the statement: a migration's text is kilobytes of SQL no one can act on.
        _ => match e {
            rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
            _ => e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_the_system_refused_asks_whether_the_disk_is_full() {
        let failed = |code| {
            Error::Storage(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
            .to_string()
        };
        assert_eq!(
            failed(rusqlite::ffi::SQLITE_IOERR_WRITE),
            "storage error: a write to the disk failed: is the disk full?"
        );
        assert!(failed(rusqlite::ffi::SQLITE_BUSY).ends_with("database is locked"));
        assert!(failed(rusqlite::ffi::SQLITE_NOMEM).contains("ran out of memory"));
    }
}

//! The local store: one SQLite file (SQLCipher-encrypted unless told otherwise) holding one
//! Automerge document per record, the index rows derived from it and a change log.
//!
//! Every write is one SQLite transaction holding the document bytes, its index rows and its
//! change-log entry, committed with `synchronous = FULL`: when a write returns, it is on disk,
//! and a crash can never leave the three disagreeing. Functions that write take a
//! `&Transaction`, functions that read a `&Connection`.

pub(crate) mod files;
pub(crate) mod index;
pub(crate) mod receive;
mod scoped;
pub use scoped::{Place, Places, ReviewItem, Scoped};
pub(crate) mod schema;

pub use index::{
    ChildCaseQuery, ChildCaseSummary, DueItem, Page, SearchHit, VisitQuery, VisitSummary,
    WorkplaceQuery, WorkplaceSummary,
};
pub use schema::{Encryption, SCHEMA_VERSION};

/// Documents are stored as zstd of Automerge's uncompressed encoding: smaller than Automerge's
/// own per-column DEFLATE, faster to write and read, and the uncompressed form compresses far
/// better when many documents travel together in one sync message. Files written before this
/// hold Automerge's own encoding, told apart by their leading magic bytes.
pub fn encode_document(document: &Automerge) -> Vec<u8> {
    compress_document(&document.save_nocompress())
}

/// `encode_document` of a document already saved with `save_nocompress`.
pub fn compress_document(plain: &[u8]) -> Vec<u8> {
    thread_local! {
        // A compression context costs more to create than a small document to compress.
        static COMPRESSOR: std::cell::RefCell<zstd::bulk::Compressor<'static>> =
            std::cell::RefCell::new(zstd::bulk::Compressor::new(3).expect("zstd context"));
    }
    COMPRESSOR.with(|c| {
        c.borrow_mut()
            .compress(plain)
            .expect("in-memory compression")
    })
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// No record's document comes near this; a stored value claiming more is damaged.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

/// The Automerge bytes of a stored document.
pub fn decode_stored(id: Uuid, stored: Vec<u8>) -> Result<Vec<u8>> {
    if !stored.starts_with(&ZSTD_MAGIC) {
        return Ok(stored);
    }
    crate::sync::wire::decompress_bounded(&stored, MAX_DOCUMENT_BYTES).map_err(|_| {
        Error::DamagedDocument {
            id,
            reason: "the stored document does not decompress".into(),
        }
    })
}

pub fn heads_of(bytes: &[u8]) -> Vec<ChangeHash> {
    bytes
        .chunks_exact(32)
        .map(|c| ChangeHash(c.try_into().expect("32-byte chunks")))
        .collect()
}

use crate::doc::{self, ChangeAuthor, Conflict, HistoryEntry};
use crate::error::{Error, Result, ValidationError};
use crate::model::{AreaFilter, ChildCase, Record, RecordKind, Role, User, Visit, Workplace};
use crate::reference::{ReferenceContent, ReferenceData, ReferenceDocument};
use automerge::{ActorId, Automerge, ChangeHash, ReadDoc};
use chrono::{NaiveDate, Utc};
use index::Indexed;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub encryption: Encryption,
    /// The user signed in: every change is signed with this user and the store's device.
    pub user: Uuid,
    /// The device id given at enrolment; a new store without one gets a random id.
    pub device: Option<Uuid>,
    /// The reference data the store starts from; published reference documents add to it.
    pub reference: ReferenceData,
    pub role: StoreRole,
}

/// A device's store queues its changes for the hub; the hub's own store does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreRole {
    Device,
    Hub,
}

impl StoreConfig {
    pub fn new(path: impl Into<PathBuf>, encryption: Encryption, user: Uuid) -> StoreConfig {
        StoreConfig {
            path: path.into(),
            encryption,
            user,
            device: None,
            reference: ReferenceData::builtin(),
            role: StoreRole::Device,
        }
    }

    pub fn role(mut self, role: StoreRole) -> StoreConfig {
        self.role = role;
        self
    }

    pub fn device(mut self, device: Uuid) -> StoreConfig {
        self.device = Some(device);
        self
    }
}

/// Where a change came from, as kept in the change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Local = 0,
    Remote = 1,
}

pub struct Store {
    pub(crate) conn: Connection,
    /// The configured reference data, under the published documents.
    pub(crate) base: ReferenceData,
    pub(crate) loaded: RefCell<LoadedReference>,
    pub(crate) author: ChangeAuthor,
    pub(crate) actor: ActorId,
    pub(crate) role: StoreRole,
    path: PathBuf,
    /// Kept to reopen the file should a re-key fail after closing it.
    pub(crate) encryption: Encryption,
}

/// The reference data last loaded, and the state of the reference documents it was loaded at.
pub(crate) struct LoadedReference {
    marker: Option<ReferenceMarker>,
    data: Arc<ReferenceData>,
}

impl LoadedReference {
    /// Nothing loaded yet: `base` until the published documents are read.
    pub(crate) fn new(base: ReferenceData) -> LoadedReference {
        LoadedReference {
            marker: None,
            data: Arc::new(base),
        }
    }
}

/// How many reference documents there are and the newest change among them: it moves with every
/// publication and every reference document received, whatever path wrote it.
type ReferenceMarker = (i64, i64);

/// Where writes find the reference data in force: the configured data under the published
/// documents, reloaded when those change, within the writing transaction too (a record merged
/// after a reference document in one transaction is derived with it).
#[derive(Clone, Copy)]
pub(crate) struct ReferenceSource<'a> {
    pub(crate) base: &'a ReferenceData,
    pub(crate) loaded: &'a RefCell<LoadedReference>,
}

impl ReferenceSource<'_> {
    pub(crate) fn get(&self, conn: &Connection) -> Arc<ReferenceData> {
        let mut loaded = self.loaded.borrow_mut();
        // A store that cannot be read now fails on its next write; until then, the data last
        // loaded is the best answer.
        if let Ok(marker) = reference_marker(conn)
            && loaded.marker != Some(marker)
            && let Ok(data) = load_reference(conn, self.base)
        {
            *loaded = LoadedReference {
                marker: Some(marker),
                data: Arc::new(data),
            };
        }
        loaded.data.clone()
    }
}

/// The store's `ReferenceSource`, borrowing only the fields it needs (so that the connection
/// may be borrowed for a transaction meanwhile).
macro_rules! reference_source {
    ($store:expr) => {
        $crate::store::ReferenceSource {
            base: &$store.base,
            loaded: &$store.loaded,
        }
    };
}
pub(crate) use reference_source;

/// The store's `LocalWrite`, borrowing only the fields it needs.
macro_rules! local_write {
    ($store:expr) => {{
        let (ctx, reference, acting) = ($store.local_write(), $store.reference(), $store.acting()?);
        LocalWrite {
            ctx,
            source: reference_source!($store),
            reference,
            actor: &$store.actor,
            author: $store.author,
            acting,
        }
    }};
}

/// How a write is recorded: where it came from, who made it, whether the hub must receive it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteContext {
    pub origin: Origin,
    pub author: Option<ChangeAuthor>,
    pub queue_for_hub: bool,
    /// On a device: a reference document received re-derives the child cases, whose
    /// classification may depend on a version the device did not hold until then (the hub
    /// holds every version its records name).
    pub on_device: bool,
}

/// A local write's context: how it is recorded, the reference data it is derived and
/// validated with, and who makes it.
pub(crate) struct LocalWrite<'a> {
    pub ctx: WriteContext,
    pub source: ReferenceSource<'a>,
    pub reference: Arc<ReferenceData>,
    pub actor: &'a ActorId,
    pub author: ChangeAuthor,
    pub acting: Option<crate::rights::Acting>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("device", &self.author.device)
            .finish_non_exhaustive()
    }
}

pub fn heads_bytes(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

impl Store {
    /// Opens the store at `config.path`, creating it if needed and migrating it to the current
    /// schema. A wrong key gives `Error::WrongKeyOrNotAStore` and leaves the file untouched.
    pub fn open(config: StoreConfig) -> Result<Store> {
        let mut conn = schema::open_connection(&config.path, &config.encryption)?;
        schema::migrate(&mut conn, |tx| reindex_all(tx, &config.reference))?;
        let tx = conn.transaction()?;
        let device = match get_meta(&tx, "device_id")? {
            Some(bytes) => Uuid::from_slice(&bytes).map_err(|_| Error::WrongKeyOrNotAStore)?,
            None => {
                let device = config.device.unwrap_or_else(Uuid::new_v4);
                set_meta(&tx, "device_id", device.as_bytes())?;
                device
            }
        };
        let nonce: [u8; 8] = match get_meta(&tx, "actor_nonce")? {
            Some(bytes) => bytes.try_into().map_err(|_| Error::WrongKeyOrNotAStore)?,
            None => {
                let nonce: [u8; 8] = Uuid::new_v4().as_bytes()[..8].try_into().expect("8 bytes");
                set_meta(&tx, "actor_nonce", &nonce)?;
                nonce
            }
        };
        tx.commit()?;
        Ok(Store {
            conn,
            loaded: RefCell::new(LoadedReference {
                marker: None,
                data: Arc::new(config.reference.clone()),
            }),
            base: config.reference,
            author: ChangeAuthor {
                user: config.user,
                device,
            },
            actor: doc::actor_for(device, nonce),
            role: config.role,
            path: config.path,
            encryption: config.encryption,
        })
    }

    /// Closes the store, checkpointing the WAL into the main file.
    pub fn close(self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        self.conn.close().map_err(|(_, e)| Error::Storage(e))
    }

    /// Drops the content of forgotten records from every file of the store (after an erasure):
    /// see `purge_freed_content`.
    pub fn purge_freed_content(&self) -> Result<()> {
        purge_freed_content(&self.conn)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn device_id(&self) -> Uuid {
        self.author.device
    }

    pub fn user_id(&self) -> Uuid {
        self.author.user
    }

    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    /// The reference data in force: the configured data and every version of every published
    /// reference document this store holds. Reloaded when those documents changed (published
    /// here, or received by any path).
    pub fn reference(&self) -> Arc<ReferenceData> {
        reference_source!(self).get(&self.conn)
    }

    /// A published reference document, with all its versions.
    pub fn reference_document(
        &self,
        reference_type: crate::reference::ReferenceType,
        key: &str,
    ) -> Result<ReferenceDocument> {
        self.get(ReferenceDocument::id_for(reference_type, key))
    }

    /// Publishes `content` as the next version of the reference document of its type and `key`
    /// (`CI` for Côte d'Ivoire's profile, areas or referral directory; a checklist's id;
    /// `default` for what applies where a country has none of its own). Only the hub
    /// publishes; the document is written like any record, so it enters the change log and
    /// reaches every device. Returns the version number: one above the latest known (published
    /// or built in), or the latest itself if its content is the same.
    pub fn publish_reference(&mut self, key: &str, content: ReferenceContent) -> Result<u32> {
        if self.role != StoreRole::Hub {
            return Err(Error::NotAllowed {
                rule: "only the hub publishes reference data".into(),
            });
        }
        let (actor, author) = (self.actor.clone(), self.author);
        crate::sync::HubStorage::in_transaction(self, &mut |tx| {
            crate::sync::publish_reference(tx, &actor, author, key, &content)
        })
    }

    pub(crate) fn local_write(&self) -> WriteContext {
        WriteContext {
            origin: Origin::Local,
            author: Some(self.author),
            queue_for_hub: self.role == StoreRole::Device,
            on_device: self.role == StoreRole::Device,
        }
    }

    pub(crate) fn received_write(&self) -> WriteContext {
        WriteContext {
            origin: Origin::Remote,
            author: None,
            queue_for_hub: self.role == StoreRole::Device,
            on_device: self.role == StoreRole::Device,
        }
    }

    /// The signed-in user's role and area codes, as the hub told this device at its last sync
    /// (none before the first sync). The device's workflow calls act with this role.
    pub fn user_profile(&self) -> Result<Option<crate::sync::UserProfile>> {
        user_profile_in(&self.conn)
    }

    /// Test hook (feature `test-hooks` only, never in a release): the store takes `profile`
    /// as if the hub had sent it, for test suites that exercise the workflow without a hub.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn debug_assume_profile(&mut self, profile: &crate::sync::UserProfile) -> Result<()> {
        let tx = self.conn.transaction()?;
        set_user_profile(&tx, profile)?;
        tx.commit()?;
        Ok(())
    }

    /// The role the store's user acts with: on a device, the role the hub gave them (a store
    /// that never synced has none, and its workflow calls are refused); on the hub, its
    /// administrator's, who holds every right.
    pub fn acting_role(&self) -> Result<Role> {
        if self.role == StoreRole::Hub {
            return Ok(Role::Supervisor);
        }
        self.user_profile()?
            .map(|p| p.role)
            .ok_or_else(|| Error::NotAllowed {
                rule: "this store does not know its user's role yet: sync with the hub first"
                    .into(),
            })
    }

    /// The user a device store acts for, once the hub has described them; `None` on the hub
    /// and on a device that never synced (its writes are checked by the hub only).
    pub(crate) fn acting(&self) -> Result<Option<crate::rights::Acting>> {
        if self.role == StoreRole::Hub {
            return Ok(None);
        }
        Ok(self.user_profile()?.map(|p| crate::rights::Acting {
            role: p.role,
            user: self.author.user,
        }))
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64> {
        schema::user_version(&self.conn)
    }

    /// Runs `PRAGMA integrity_check`; true when SQLite finds nothing wrong.
    pub fn integrity_check(&self) -> Result<bool> {
        let result: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        Ok(result == "ok")
    }

    // -----------------------------------------------------------------------------------------
    // Writing

    /// Stores a new record. Derived fields are computed, the record is validated, and the
    /// stored record (with its version) is returned.
    pub fn create<R: Record>(&mut self, record: &R) -> Result<R> {
        let write = local_write!(self);
        let tx = self.conn.transaction()?;
        let document = insert_new(&tx, &write, record)?;
        tx.commit()?;
        Ok(document)
    }

    /// Stores many new records in one transaction (an import): all of them, or none if any is
    /// invalid or exists already. Much faster than `create` one by one, which commits each.
    pub fn create_all<R: Record>(&mut self, records: &[R]) -> Result<usize> {
        let write = local_write!(self);
        let tx = self.conn.transaction()?;
        for record in records {
            insert_new(&tx, &write, record)?;
        }
        tx.commit()?;
        Ok(records.len())
    }

    /// Applies the changes the caller made to a record it read: only the fields that differ from
    /// the version it read are written, as an edit made at that version. Returns the record as
    /// stored now, merged with anything that changed in the meantime.
    pub fn update<R: Record>(&mut self, record: &R) -> Result<R> {
        let write = local_write!(self);
        let tx = self.conn.transaction()?;
        let stored = update_in(&tx, &write, record)?;
        tx.commit()?;
        Ok(stored)
    }

    /// Applies several updates (as `update` does each) in one transaction: all or none.
    pub(crate) fn update_together<R: Record>(&mut self, records: &[R]) -> Result<Vec<R>> {
        let write = local_write!(self);
        let tx = self.conn.transaction()?;
        let mut stored = Vec::with_capacity(records.len());
        for record in records {
            stored.push(update_in(&tx, &write, record)?);
        }
        tx.commit()?;
        Ok(stored)
    }

    /// Settles a conflict on the field at `path` with `value` (one of the conflicting values, or
    /// a new one). The result must still be a valid record.
    pub fn resolve_conflict(
        &mut self,
        id: Uuid,
        path: &[String],
        value: &serde_json::Value,
    ) -> Result<()> {
        match self.kind_of(id)? {
            RecordKind::Workplace => self.resolve_typed::<Workplace>(id, path, value),
            RecordKind::Visit => self.resolve_typed::<Visit>(id, path, value),
            RecordKind::ChildCase => self.resolve_typed::<ChildCase>(id, path, value),
            RecordKind::User => self.resolve_typed::<User>(id, path, value),
            RecordKind::Reference => Err(not_by_record_writes()),
        }
    }

    fn resolve_typed<R: Record>(
        &mut self,
        id: Uuid,
        path: &[String],
        value: &serde_json::Value,
    ) -> Result<()> {
        let write = local_write!(self);
        let tx = self.conn.transaction()?;
        let (rowid, mut document) = load_for::<R>(&tx, id, write.actor)?;
        let stored = doc::read_record::<R>(&document, id)?;
        let before = document.get_heads();
        doc::resolve::<R>(&mut document, id, path, value, &write.author)?;
        let mut resolved = match doc::read_record::<R>(&document, id) {
            Err(Error::DamagedDocument { .. }) => {
                return Err(ValidationError::new(
                    path.join("."),
                    "not a valid value for this field",
                )
                .into());
            }
            other => other?,
        };
        resolved.validate(&write.reference)?;
        if let Some(acting) = &write.acting {
            acting.check_write(Some(&stored), &resolved)?;
        }
        // The derived fields follow the resolved value, in the document too.
        resolved.derive(&write.reference);
        doc::write_record(&mut document, &resolved, &write.author)?;
        save_document(
            &tx,
            &write.ctx,
            write.source,
            id,
            R::KIND,
            Some(rowid),
            &mut document,
            &before,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Merges a document received from another device (whole, or changes saved after some
    /// heads) into the local copy. The bytes are untrusted: anything that fails to decode, or
    /// decodes into something that is not a valid record of the expected kind, is refused with
    /// nothing stored. Returns whether anything new arrived.
    pub fn merge_document(&mut self, id: Uuid, bytes: &[u8]) -> Result<bool> {
        let mut receiver = self.receiver();
        let tx = self.conn.transaction()?;
        let merged =
            receive::merge_received(&tx, &mut receiver, reference_source!(self), id, bytes)?;
        tx.commit()?;
        self.received(receiver);
        Ok(merged.changed)
    }

    /// The whole document of a record, as bytes another device can merge.
    pub fn export_document(&self, id: Uuid) -> Result<Vec<u8>> {
        let (_, _, bytes) = find_row(&self.conn, id)?.ok_or(Error::NotFound { kind: None, id })?;
        Ok(bytes)
    }

    // -----------------------------------------------------------------------------------------
    // Reading

    /// The record, its derived fields computed from its values (whatever the document holds:
    /// a merge or a resolution writes none).
    pub fn get<R: Record>(&self, id: Uuid) -> Result<R> {
        let (_, document) = load_for::<R>(&self.conn, id, &self.actor)?;
        let mut record: R = doc::read_record(&document, id)?;
        record.derive(&self.reference());
        Ok(record)
    }

    /// The kind of a record, if the store holds it.
    pub fn kind_of(&self, id: Uuid) -> Result<RecordKind> {
        let (_, kind, _) = find_row(&self.conn, id)?.ok_or(Error::NotFound { kind: None, id })?;
        Ok(kind)
    }

    /// Who changed which field of a record, and when.
    pub fn history(&self, id: Uuid) -> Result<Vec<HistoryEntry>> {
        let (_, document) = self.load_any(id)?;
        doc::history(id, &document)
    }

    /// The fields of a record that hold concurrent values.
    pub fn conflicts(&self, id: Uuid) -> Result<Vec<Conflict>> {
        let (kind, document) = self.load_any(id)?;
        match kind {
            RecordKind::Workplace => doc::conflicts::<Workplace>(&document),
            RecordKind::Visit => doc::conflicts::<Visit>(&document),
            RecordKind::ChildCase => doc::conflicts::<ChildCase>(&document),
            RecordKind::User => doc::conflicts::<User>(&document),
            RecordKind::Reference => doc::conflicts::<ReferenceDocument>(&document),
        }
    }

    fn load_any(&self, id: Uuid) -> Result<(RecordKind, Automerge)> {
        let (_, kind, bytes) =
            find_row(&self.conn, id)?.ok_or(Error::NotFound { kind: None, id })?;
        Ok((kind, doc::load(id, &bytes)?))
    }

    pub fn visits(&self, query: &VisitQuery, page: Page) -> Result<Vec<VisitSummary>> {
        index::visits(&self.conn, query, page, None)
    }

    pub fn child_cases(&self, query: &ChildCaseQuery, page: Page) -> Result<Vec<ChildCaseSummary>> {
        index::child_cases(&self.conn, query, page, None, None)
    }

    pub fn workplaces(&self, query: &WorkplaceQuery, page: Page) -> Result<Vec<WorkplaceSummary>> {
        index::workplaces(&self.conn, query, page, None)
    }

    /// Follow-ups (of child cases and of visited workplaces) due before `before`, soonest first:
    /// with `before` = today, the overdue list.
    pub fn follow_ups_due(
        &self,
        area: Option<AreaFilter>,
        assignee: Option<Uuid>,
        before: NaiveDate,
        page: Page,
    ) -> Result<Vec<DueItem>> {
        index::due_before(&self.conn, &area, assignee, before, page, None)
    }

    /// Workplaces and children whose name matches, ignoring case and accents ("kouame" finds
    /// "Kouamé"); each word of `text` matches as a prefix.
    pub fn search_names(&self, text: &str, limit: u32) -> Result<Vec<SearchHit>> {
        index::search_names(&self.conn, text, limit, None)
    }

    /// Every record the store holds, with its kind (what a wipe removes).
    pub fn records_held(&self) -> Result<Vec<(Uuid, RecordKind)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, kind FROM records ORDER BY rowid")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
        let mut held = Vec::new();
        for row in rows {
            let (id, kind) = row?;
            if let (Ok(id), Some(kind)) = (Uuid::from_slice(&id), RecordKind::from_i64(kind)) {
                held.push((id, kind));
            }
        }
        Ok(held)
    }

    /// Number of records of each kind.
    pub fn count(&self, kind: RecordKind) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM records WHERE kind = ?1",
            [kind as i64],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// The ids of every record of a kind, in id order (the hub lists its users with it).
    pub fn ids_of_kind(&self, kind: RecordKind) -> Result<Vec<Uuid>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM records WHERE kind = ?1 ORDER BY id")?;
        let ids = stmt
            .query_map([kind as i64], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        ids.iter()
            .map(|bytes| {
                Uuid::from_slice(bytes).map_err(|_| Error::DamagedDocument {
                    id: Uuid::nil(),
                    reason: "a record id in the store is not 16 bytes".into(),
                })
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Functions on a connection or a transaction

/// The meta key of the user's role and areas (JSON of `UserProfile`).
const PROFILE_KEY: &str = "user_profile";

/// The user's role and areas as the hub last told them (`Store::user_profile`).
pub(crate) fn user_profile_in(conn: &Connection) -> Result<Option<crate::sync::UserProfile>> {
    Ok(get_meta(conn, PROFILE_KEY)?.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Keeps the user's role and areas as the hub told them, in the caller's transaction.
pub(crate) fn set_user_profile(tx: &Transaction, profile: &crate::sync::UserProfile) -> Result<()> {
    set_meta(
        tx,
        PROFILE_KEY,
        &serde_json::to_vec(profile).expect("a profile serializes"),
    )
}

pub(crate) fn get_meta(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn set_meta(tx: &Transaction, key: &str, value: &[u8]) -> Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// The row of a record: its rowid, kind and document (Automerge bytes).
pub(crate) fn find_row(conn: &Connection, id: Uuid) -> Result<Option<(i64, RecordKind, Vec<u8>)>> {
    let row = conn
        .prepare_cached("SELECT rowid, kind, doc FROM records WHERE id = ?1")?
        .query_row([id.as_bytes()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((rowid, kind, stored)) => {
            let kind = RecordKind::from_i64(kind).ok_or_else(|| Error::DamagedDocument {
                id,
                reason: "unknown record kind in the store".into(),
            })?;
            Ok(Some((rowid, kind, decode_stored(id, stored)?)))
        }
    }
}

/// Loads a record's document for editing, checking that it is of the kind the caller expects.
fn load_for<R: Record>(conn: &Connection, id: Uuid, actor: &ActorId) -> Result<(i64, Automerge)> {
    let (rowid, kind, bytes) = find_row(conn, id)?.ok_or(Error::NotFound {
        kind: Some(R::KIND),
        id,
    })?;
    if kind != R::KIND {
        return Err(Error::WrongKind {
            id,
            expected: R::KIND,
            actual: kind,
        });
    }
    let document = doc::load(id, &bytes)?.with_actor(actor.clone());
    Ok((rowid, document))
}

/// `Store::update`'s work, in the caller's transaction.
fn update_in<R: Record>(tx: &Transaction, write: &LocalWrite<'_>, record: &R) -> Result<R> {
    refuse_reference::<R>()?;
    let (reference, acting) = (&write.reference, write.acting.as_ref());
    let mut record = record.clone();
    let id = record.id();
    let (rowid, mut document) = load_for::<R>(tx, id, write.actor)?;
    // The versions a record was captured with are the stored ones, whatever the caller holds
    // (an app that does not know the field sends none).
    if let Some(pins) = record.pins_mut() {
        *pins = doc::read_pins(&document);
    }
    record.derive(reference);
    record.validate(reference)?;
    // The user's own steps, as the hub will judge them: from the version the caller read (the
    // edit is made at it) to the record as the caller writes it. What changed meanwhile through
    // sync is someone else's step, merged (and shown as a conflict if both set a field).
    if let Some(acting) = acting {
        let heads = record.version().heads();
        if heads
            .iter()
            .any(|h| document.get_change_by_hash(h).is_none())
        {
            return Err(Error::UnknownVersion { id });
        }
        let read: R = if heads.is_empty() {
            doc::read_record(&document, id)?
        } else {
            doc::read_record_at(&document, id, heads)?
        };
        acting.check_write(Some(&read), &record)?;
    }
    let before = document.get_heads();
    if doc::write_record(&mut document, &record, &write.author)?.is_none() {
        return doc::read_record(&document, id);
    }
    let stored = doc::read_record::<R>(&document, id)?;
    save_document(
        tx,
        &write.ctx,
        write.source,
        id,
        R::KIND,
        Some(rowid),
        &mut document,
        &before,
    )?;
    Ok(stored)
}

fn not_by_record_writes() -> Error {
    Error::NotAllowed {
        rule: "reference data changes only by publishing it (publish_reference)".into(),
    }
}

fn refuse_reference<R: Record>() -> Result<()> {
    if R::KIND == RecordKind::Reference {
        return Err(not_by_record_writes());
    }
    Ok(())
}

/// See `ReferenceMarker`. `kind = 5` is spelled out so that SQLite uses the partial index
/// `records_reference` (schema 7).
fn reference_marker(conn: &Connection) -> Result<ReferenceMarker> {
    Ok(conn
        .prepare_cached("SELECT count(*), coalesce(max(last_seq), 0) FROM records WHERE kind = 5")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// The configured reference data with every published version stored. A document that does not
/// read is left out rather than failing the store: the data it would add is not in force, and
/// records that name its versions say so when they are validated.
fn load_reference(conn: &Connection, base: &ReferenceData) -> Result<ReferenceData> {
    let mut data = base.clone();
    let mut stmt = conn.prepare_cached("SELECT id, doc FROM records WHERE kind = 5")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    for row in rows {
        let (id, stored) = row?;
        let Ok(id) = Uuid::from_slice(&id) else {
            continue;
        };
        let document = decode_stored(id, stored).and_then(|bytes| doc::load(id, &bytes));
        if let Ok(record) = document.and_then(|d| doc::read_record::<ReferenceDocument>(&d, id)) {
            data.add_published(&record);
        }
    }
    Ok(data)
}

/// Puts a record in the outbox for the hub. Urgent records (alerts) go first; a record already
/// queued keeps its place in time and takes its current urgency.
pub(crate) fn queue_for_hub(tx: &Transaction, id: Uuid, priority: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO sync_outbox (record_id, queued_ms, priority) VALUES (?1, ?2, ?3)
         ON CONFLICT (record_id) DO UPDATE SET priority = excluded.priority",
    )?
    .execute(params![
        id.as_bytes(),
        Utc::now().timestamp_millis(),
        priority
    ])?;
    Ok(())
}

/// Validates a new record and writes it as a new document, in the caller's transaction.
fn insert_new<R: Record>(tx: &Transaction, write: &LocalWrite<'_>, record: &R) -> Result<R> {
    refuse_reference::<R>()?;
    let (reference, acting) = (&*write.reference, write.acting.as_ref());
    let mut record = record.clone();
    if record.id().is_nil() {
        record.set_id(Uuid::now_v7());
    }
    record.set_version(Default::default());
    reference.pin_new(&mut record);
    record.derive(reference);
    record.validate(reference)?;
    if let Some(acting) = acting {
        acting.check_write(None, &record)?;
    }
    let id = record.id();
    if find_row(tx, id)?.is_some() {
        return Err(Error::AlreadyExists { kind: R::KIND, id });
    }
    let mut document = Automerge::new().with_actor(write.actor.clone());
    doc::write_record(&mut document, &record, &write.author)?;
    let stored = doc::read_record::<R>(&document, id)?;
    save_document(
        tx,
        &write.ctx,
        write.source,
        id,
        R::KIND,
        None,
        &mut document,
        &[],
    )?;
    Ok(stored)
}

/// The hashes of the changes made after `before`, concatenated as the change log keeps them.
pub fn new_change_hashes(document: &Automerge, before: &[ChangeHash]) -> Vec<u8> {
    document
        .get_changes_meta(before)
        .iter()
        .flat_map(|c| c.hash.0)
        .collect()
}

/// Writes a document, its change-log entry and its index rows, in the caller's transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) fn save_document(
    tx: &Transaction,
    ctx: &WriteContext,
    source: ReferenceSource<'_>,
    id: Uuid,
    kind: RecordKind,
    rowid: Option<i64>,
    document: &mut Automerge,
    before: &[ChangeHash],
) -> Result<i64> {
    let (origin, author) = (ctx.origin, ctx.author);
    // Read the record before writing anything: a document that does not read as a record of
    // its kind fails here, with nothing written, and the caller's transaction stays clean.
    let mut record = TypedRecord::read(kind, id, document)?;
    // Index rows, alerts and the outbox's urgency follow the record's values, whatever
    // derivation the document holds (a merge or a resolution does not write one).
    record.derive(&source.get(tx));
    let plain = document.save_nocompress();
    crate::bounds::check_size(plain.len(), &crate::bounds::DocumentLimits::STANDARD)
        .map_err(|limit| Error::OverLimit { id, limit })?;
    let bytes = compress_document(&plain);
    let heads = document.get_heads();
    let new_changes = new_change_hashes(document, before);
    tx.prepare_cached(
        "INSERT INTO change_log (record_id, kind, changes, device_id, origin, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        id.as_bytes(),
        kind as i64,
        new_changes,
        author.map(|a| a.device.as_bytes().to_vec()),
        origin as i64,
        Utc::now().timestamp_millis()
    ])?;
    let seq = tx.last_insert_rowid();
    let (rowid, fresh) =
        match rowid {
            Some(rowid) => {
                tx.prepare_cached(
                    "UPDATE records SET doc = ?2, heads = ?3, last_seq = ?4 WHERE rowid = ?1",
                )?
                .execute(params![rowid, bytes, heads_bytes(&heads), seq])?;
                (rowid, false)
            }
            None => {
                tx.prepare_cached(
                "INSERT INTO records (id, kind, doc, heads, last_seq) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id.as_bytes(), kind as i64, bytes, heads_bytes(&heads), seq])?;
                (tx.last_insert_rowid(), true)
            }
        };
    if !fresh {
        index::delete_rows(tx, rowid)?;
    }
    index::insert_rows(tx, rowid, record.indexed())?;
    if ctx.queue_for_hub {
        queue_for_hub(tx, id, record.urgency())?;
    }
    if kind == RecordKind::Reference && ctx.on_device {
        rederive_cases(tx, &source.get(tx))?;
    }
    Ok(rowid)
}

/// Rebuilds the index rows of every child case with the reference data now in force: after a
/// reference document arrived, a classification may follow a version this device lacked.
fn rederive_cases(tx: &Transaction, reference: &ReferenceData) -> Result<()> {
    let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = tx
        .prepare_cached("SELECT rowid, id, doc FROM records WHERE kind = ?1")?
        .query_map([RecordKind::ChildCase as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (rowid, id, stored) in rows {
        let Ok(id) = Uuid::from_slice(&id) else {
            continue;
        };
        let document = doc::load(id, &decode_stored(id, stored)?)?;
        index_document(tx, rowid, RecordKind::ChildCase, id, &document, reference)?;
    }
    Ok(())
}

/// Removes every trace of a record from this store: document, index rows, search entry, change
/// log and sync state. Returns its kind if it was there. secure_delete zeroes the freed bytes;
/// the caller compacts the search index and truncates the WAL once the transaction is committed
/// (`purge_freed_content`).
pub(crate) fn forget_record(tx: &Transaction, id: Uuid) -> Result<Option<RecordKind>> {
    let row: Option<(i64, i64)> = tx
        .prepare_cached("SELECT rowid, kind FROM records WHERE id = ?1")?
        .query_row([id.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((rowid, _)) = row {
        index::delete_rows(tx, rowid)?;
        tx.prepare_cached("DELETE FROM records WHERE rowid = ?1")?
            .execute([rowid])?;
    }
    for table in [
        "change_log",
        "sync_outbox",
        "sync_hub_heads",
        "sync_refetch",
        "sync_left",
        "quarantine",
    ] {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE record_id = ?1"))?
            .execute([id.as_bytes()])?;
    }
    Ok(row.and_then(|(_, kind)| RecordKind::from_i64(kind)))
}

/// Records that a record was erased, so that no old copy brings it back.
pub(crate) fn place_tombstone(tx: &Transaction, id: Uuid, seq: Option<i64>) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO erased (record_id, seq, at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (record_id) DO NOTHING",
    )?
    .execute(params![id.as_bytes(), seq, Utc::now().timestamp_millis()])?;
    Ok(())
}

/// Keeps the hash of a change of an erased record (`root`: one with no dependencies).
pub(crate) fn keep_erased_change(
    tx: &Transaction,
    id: Uuid,
    hash: &ChangeHash,
    root: bool,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO erased_changes (hash, record_id, root) VALUES (?1, ?2, ?3)
         ON CONFLICT (hash) DO NOTHING",
    )?
    .execute(params![hash.0, id.as_bytes(), root])?;
    Ok(())
}

/// Whether this store keeps any erased change at all (most never do: the check of what arrives
/// stops here).
fn knows_erasures(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM erased_changes)")?
        .query_row([], |r| r.get(0))?)
}

/// Whether any of these changes belongs to an erased record.
pub(crate) fn any_erased_change(conn: &Connection, hashes: &[ChangeHash]) -> Result<bool> {
    let mut stmt =
        conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM erased_changes WHERE hash = ?1)")?;
    for hash in hashes {
        if stmt.query_row([hash.0], |r| r.get::<_, bool>(0))? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The changes of a document with no dependencies: where its history starts.
pub fn history_roots(document: &Automerge, after: &[ChangeHash]) -> Vec<ChangeHash> {
    document
        .get_changes_meta(after)
        .iter()
        .filter(|c| c.deps.is_empty())
        .map(|c| c.hash)
        .collect()
}

pub(crate) fn is_erased(conn: &Connection, id: Uuid) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM erased WHERE record_id = ?1)")?
        .query_row([id.as_bytes()], |r| r.get(0))?)
}

/// After records were forgotten: the full-text index is rewritten without their terms (FTS5
/// keeps deleted terms in old segments until a merge; secure_delete zeroes the pages it frees)
/// and the WAL is emptied, so that no copy of their content stays in any file.
pub(crate) fn purge_freed_content(conn: &Connection) -> Result<()> {
    conn.execute(
        "INSERT INTO name_search (name_search) VALUES ('optimize')",
        [],
    )?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// Rebuilds the index rows of one record from its document.
fn index_document(
    tx: &Transaction,
    rowid: i64,
    kind: RecordKind,
    id: Uuid,
    document: &Automerge,
    reference: &ReferenceData,
) -> Result<()> {
    let mut record = TypedRecord::read(kind, id, document)?;
    record.derive(reference);
    index::delete_rows(tx, rowid)?;
    index::insert_rows(tx, rowid, record.indexed())
}

/// A document read as the record of its kind.
pub(crate) enum TypedRecord {
    Workplace(Workplace),
    Visit(Visit),
    ChildCase(ChildCase),
    User(User),
    /// Read whole, to check it is one, but nothing is indexed from it.
    Reference,
}

impl TypedRecord {
    pub(crate) fn read(kind: RecordKind, id: Uuid, document: &Automerge) -> Result<TypedRecord> {
        Ok(match kind {
            RecordKind::Workplace => TypedRecord::Workplace(doc::read_record(document, id)?),
            RecordKind::Visit => TypedRecord::Visit(doc::read_record(document, id)?),
            RecordKind::ChildCase => TypedRecord::ChildCase(doc::read_record(document, id)?),
            RecordKind::User => TypedRecord::User(doc::read_record(document, id)?),
            RecordKind::Reference => {
                doc::read_record::<ReferenceDocument>(document, id)?;
                TypedRecord::Reference
            }
        })
    }

    fn indexed(&self) -> Indexed<'_> {
        match self {
            TypedRecord::Workplace(r) => Indexed::Workplace(r),
            TypedRecord::Visit(r) => Indexed::Visit(r),
            TypedRecord::ChildCase(r) => Indexed::ChildCase(r),
            TypedRecord::User(r) => Indexed::User(r),
            TypedRecord::Reference => Indexed::Reference,
        }
    }

    /// Its place in the outbox: the alert severity, 0 when not urgent.
    fn urgency(&self) -> i64 {
        match self {
            TypedRecord::Visit(v) => crate::alerts::visit_severity(v).map_or(0, |s| s as i64),
            TypedRecord::ChildCase(c) => crate::alerts::case_severity(c).map_or(0, |s| s as i64),
            TypedRecord::Workplace(_) | TypedRecord::User(_) | TypedRecord::Reference => 0,
        }
    }

    /// The record the document held at `heads` (see `doc::read_record_at`).
    pub(crate) fn read_at(
        kind: RecordKind,
        id: Uuid,
        document: &Automerge,
        heads: &[ChangeHash],
    ) -> Result<TypedRecord> {
        Ok(match kind {
            RecordKind::Workplace => {
                TypedRecord::Workplace(doc::read_record_at(document, id, heads)?)
            }
            RecordKind::Visit => TypedRecord::Visit(doc::read_record_at(document, id, heads)?),
            RecordKind::ChildCase => {
                TypedRecord::ChildCase(doc::read_record_at(document, id, heads)?)
            }
            RecordKind::User => TypedRecord::User(doc::read_record_at(document, id, heads)?),
            RecordKind::Reference => {
                doc::read_record_at::<ReferenceDocument>(document, id, heads)?;
                TypedRecord::Reference
            }
        })
    }

    /// Computes the derived fields from the record's values (`Record::derive`).
    pub(crate) fn derive(&mut self, reference: &ReferenceData) {
        match self {
            TypedRecord::Workplace(r) => r.derive(reference),
            TypedRecord::Visit(r) => r.derive(reference),
            TypedRecord::ChildCase(r) => r.derive(reference),
            TypedRecord::User(r) => r.derive(reference),
            TypedRecord::Reference => {}
        }
    }

    /// The record's own validation (`Record::validate`).
    pub(crate) fn validate(&self, reference: &ReferenceData) -> Result<(), ValidationError> {
        match self {
            TypedRecord::Workplace(r) => r.validate(reference),
            TypedRecord::Visit(r) => r.validate(reference),
            TypedRecord::ChildCase(r) => r.validate(reference),
            TypedRecord::User(r) => r.validate(reference),
            TypedRecord::Reference => Ok(()),
        }
    }

    /// The reference versions the record was captured with, for kinds that keep them.
    pub(crate) fn pins(&self) -> Option<&crate::reference::ReferencePins> {
        match self {
            TypedRecord::Workplace(r) => r.pins(),
            TypedRecord::Visit(r) => r.pins(),
            TypedRecord::ChildCase(r) => r.pins(),
            TypedRecord::User(_) | TypedRecord::Reference => None,
        }
    }

    /// The record as the role matrix sees it (`rights`).
    pub(crate) fn subject(&self) -> crate::rights::Subject<'_> {
        use crate::rights::Subject;
        match self {
            TypedRecord::Workplace(r) => Subject::Workplace(r),
            TypedRecord::Visit(r) => Subject::Visit(r),
            TypedRecord::ChildCase(r) => Subject::ChildCase(r),
            TypedRecord::User(_) => Subject::Administered(RecordKind::User),
            TypedRecord::Reference => Subject::Administered(RecordKind::Reference),
        }
    }

    /// The area the record belongs to (users and reference data have none).
    pub(crate) fn area(&self) -> Option<&crate::model::Area> {
        match self {
            TypedRecord::Workplace(r) => Some(&r.location.area),
            TypedRecord::Visit(r) => Some(&r.area),
            TypedRecord::ChildCase(r) => Some(&r.area),
            TypedRecord::User(_) | TypedRecord::Reference => None,
        }
    }
}

/// Rebuilds every index row from the documents (used by migrations that add an index), with
/// the derived fields computed from the values and `base` under the published reference data.
fn reindex_all(tx: &Transaction, base: &ReferenceData) -> Result<()> {
    let reference = load_reference(tx, base)?;
    let rows: Vec<(i64, Vec<u8>, i64, Vec<u8>)> = tx
        .prepare("SELECT rowid, id, kind, doc FROM records")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (rowid, id, kind, bytes) in rows {
        let id = Uuid::from_slice(&id).map_err(|_| Error::DamagedDocument {
            id: Uuid::nil(),
            reason: "a record id is not 16 bytes".into(),
        })?;
        let kind = RecordKind::from_i64(kind).ok_or_else(|| Error::DamagedDocument {
            id,
            reason: "unknown record kind in the store".into(),
        })?;
        let document = doc::load(id, &decode_stored(id, bytes)?)?;
        index_document(tx, rowid, kind, id, &document, &reference)?;
    }
    Ok(())
}

/// What merging received bytes did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Merged {
    pub changed: bool,
    /// False when some received changes wait for earlier ones that did not arrive.
    pub complete: bool,
    /// The record was not in the store before: it now holds exactly what was received.
    pub created: bool,
    pub heads: Vec<ChangeHash>,
}

/// Feeds untrusted bytes (a whole document, or changes) into a document: bounded before
/// Automerge reads them, and the result checked before anything recursive reads it (see
/// `doc::load`). automerge can panic on malformed input: the panic is contained, and the caller
/// discards the document on error.
pub(crate) fn decode_into(document: &mut Automerge, id: Uuid, bytes: &[u8]) -> Result<()> {
    let damaged = |reason: &str| Error::DamagedDocument {
        id,
        reason: reason.into(),
    };
    let limits = crate::bounds::DocumentLimits::STANDARD;
    crate::bounds::admit(bytes, &limits).map_err(|r| doc::refused(id, r))?;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        document.load_incremental(bytes)
    })) {
        Ok(Ok(_)) => crate::bounds::check_state(document, None, &limits)
            .map_err(|limit| Error::OverLimit { id, limit }),
        Ok(Err(automerge::AutomergeError::DuplicateSeqNumber(seq, actor))) => {
            Err(Error::ActorReused { id, actor, seq })
        }
        Ok(Err(_)) => Err(damaged("the received changes do not decode")),
        Err(_) => Err(damaged("the received changes made the decoder fail")),
    }
}

/// Loads a record's stored document for merging, or starts an empty one.
pub(crate) fn load_or_new(
    tx: &Transaction,
    actor: &ActorId,
    id: Uuid,
) -> Result<(Option<(i64, RecordKind)>, Automerge)> {
    Ok(match find_row(tx, id)? {
        Some((rowid, kind, bytes)) => (
            Some((rowid, kind)),
            doc::load(id, &bytes)?.with_actor(actor.clone()),
        ),
        None => (None, Automerge::new().with_actor(actor.clone())),
    })
}

/// Merges received bytes into a record's document, in the caller's transaction. Anything that
/// fails to decode, or does not read as a record of the kind it claims, is refused with nothing
/// stored (the caller abandons its transaction).
pub(crate) fn merge_document(
    tx: &Transaction,
    ctx: &WriteContext,
    source: ReferenceSource<'_>,
    actor: &ActorId,
    id: Uuid,
    bytes: &[u8],
) -> Result<Merged> {
    if is_erased(tx, id)? {
        // An old copy of an erased record: it does not come back.
        return Ok(Merged {
            changed: false,
            complete: true,
            created: false,
            heads: Vec::new(),
        });
    }
    let (existing, mut document) = load_or_new(tx, actor, id)?;
    let before = document.get_heads();
    decode_into(&mut document, id, bytes)?;
    if knows_erasures(tx)? && any_erased_change(tx, &history_roots(&document, &before))? {
        // An erased record's content, under this id or another: it does not come back.
        return Ok(Merged {
            changed: false,
            complete: true,
            created: false,
            heads: Vec::new(),
        });
    }
    let complete = document.get_missing_deps(&[]).is_empty();
    let heads = document.get_heads();
    if heads == before {
        return Ok(Merged {
            changed: false,
            complete,
            created: false,
            heads,
        });
    }
    let kinds = doc::kinds(&document);
    if let Some((_, stored)) = existing
        && let Some(other) = kinds.iter().find(|k| **k != stored)
    {
        return Err(Error::WrongKind {
            id,
            expected: stored,
            actual: *other,
        });
    }
    let kind = doc::kind_of(&document).ok_or_else(|| Error::DamagedDocument {
        id,
        reason: "the received document names no record kind, or is another record's".into(),
    })?;
    // Indexing reads the document as a record of its kind: if it does not read, the error
    // abandons the transaction. The document is encoded anew rather than stored as received:
    // Automerge accepts incrementally some bytes that it refuses to load whole.
    save_document(
        tx,
        ctx,
        source,
        id,
        kind,
        existing.map(|(rowid, _)| rowid),
        &mut document,
        &before,
    )?;
    Ok(Merged {
        changed: true,
        complete,
        created: existing.is_none(),
        heads,
    })
}

//! The local store: one SQLite file (SQLCipher-encrypted unless told otherwise) holding one
//! Automerge document per record, the index rows derived from it and a change log.
//!
//! Every write is one SQLite transaction holding the document bytes, its index rows and its
//! change-log entry, committed with `synchronous = FULL`: when a write returns, it is on disk,
//! and a crash can never leave the three disagreeing. Functions that write take a
//! `&Transaction`, functions that read a `&Connection`.
//!
//! - this module: `Store`, the API: open, write, read, query;
//! - `documents`: a record's document written with its index rows and change-log entry, and
//!   read back as its typed record; `index`: the index rows; `queries`: every query of them;
//! - `receive`: merging what other devices send, in one transaction (and a restored store's
//!   own edits moved to a new actor); `erasure`: forgetting records, tombstones;
//! - `sync_state`: what a device keeps of its sync with the hub (outbox, the hub's heads,
//!   cursor, its user's profile);
//! - `hub`: the store as the hub's storage (`storage::HubStorage`), with its readers;
//! - `scoped`: the queries as one principal sees them (`Store::scoped`: the hub's console);
//! - `attachments`: attachment bytes in sealed files beside the database, rows following
//!   the records' manifests;
//! - `files`: re-encrypting and destroying the files; `schema`: opening and migrating them;
//!   `deferred_indexes`: the query indexes put aside while a whole scope arrives.

pub(crate) mod attachments;
pub(crate) mod deferred_indexes;
mod documents;
pub(crate) mod erasure;
pub(crate) mod files;
mod hub;
pub(crate) mod identity;
mod index;
pub(crate) mod queries;
pub(crate) mod receive;
pub(crate) mod schema;
mod scoped;
pub(crate) mod sync_state;

pub use attachments::{AttachmentInfo, NewAttachment, attachments_dir, held_attachment_files};
pub use hub::{HubReader, Opened, mark_backup_copy};
use queries::Slice;
pub use queries::{
    Alert, ChildCaseQuery, ChildCaseSummary, DueItem, Page, Place, Places, ReviewItem, SearchHit,
    SortKey, VisitQuery, VisitSummary, Walked, WorkplaceQuery, WorkplaceSummary,
};
pub use schema::{Encryption, SCHEMA_VERSION};
pub use scoped::Scoped;

/// Opens (creating if needed) a SQLite connection keyed and configured as a store's is
/// (SQLCipher with the key, WAL, `synchronous=FULL`, `secure_delete`): for the other files kept
/// beside a store, such as the hub's device registry. A wrong key is
/// `Error::WrongKeyOrNotAStore`, found before anything is written.
pub fn open_keyed_connection(
    path: &std::path::Path,
    encryption: &Encryption,
) -> Result<rusqlite::Connection> {
    schema::open_connection(path, encryption)
}

pub(crate) use documents::{
    Merged, PreparedMerge, TypedRecord, commit_merge, find_row, merge_document, prepare_received,
    reference_in, reference_marker, save_document, whole_document,
};

use crate::doc::{self, ChangeAuthor, Conflict, HistoryEntry};
use crate::domain::area::AreaFilter;
use crate::domain::codes::{RecordKind, ReferenceType, Role};
use crate::domain::records::{ChildCase, Record, ReferenceDocument, User, Visit, Workplace};
use crate::domain::reference::ReferenceData;
use crate::domain::rights::{Acting, Scope, UserProfile};
use crate::error::{Error, Result, ValidationError};
use crate::storage::ReferenceCache;
use automerge::{ActorId, Automerge};
use chrono::NaiveDate;
use rusqlite::Connection;
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
    /// Whether a file of an earlier schema is brought to this software's (the default), or
    /// refused (`Error::UpgradeWithheld`): a hub's command beside an earlier version's server.
    pub upgrade: bool,
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
            upgrade: true,
        }
    }

    /// A file of an earlier schema is refused, not upgraded (`Error::UpgradeWithheld`).
    pub fn without_upgrade(mut self) -> StoreConfig {
        self.upgrade = false;
        self
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
    /// Everything but the connection, so that a write may borrow both at once.
    pub(crate) ctx: Context,
}

/// What a store knows of itself besides its connection.
pub(crate) struct Context {
    /// The configured reference data, under the published documents.
    pub reference: ReferenceCache,
    pub author: ChangeAuthor,
    pub actor: ActorId,
    pub role: StoreRole,
    pub path: PathBuf,
    /// Kept to reopen the file should a re-key fail after closing it.
    pub encryption: Encryption,
    /// The heads of each record the last request to the hub pushed (`hub_sync_request`): a
    /// record written again before its answer is applied (the store is free between a
    /// session's steps) keeps what the push did not carry.
    pub pushed: std::sync::Mutex<std::collections::HashMap<Uuid, Vec<[u8; 32]>>>,
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
    pub cache: &'a ReferenceCache,
    pub reference: Arc<ReferenceData>,
    pub actor: &'a ActorId,
    pub author: ChangeAuthor,
    pub acting: Option<Acting>,
}

impl Context {
    pub(crate) fn local(&self) -> WriteContext {
        WriteContext {
            origin: Origin::Local,
            author: Some(self.author),
            queue_for_hub: self.role == StoreRole::Device,
            on_device: self.role == StoreRole::Device,
        }
    }

    pub(crate) fn received(&self) -> WriteContext {
        WriteContext {
            origin: Origin::Remote,
            author: None,
            queue_for_hub: self.role == StoreRole::Device,
            on_device: self.role == StoreRole::Device,
        }
    }

    /// A local write, with the reference data and the acting user as `conn` holds them; none
    /// in a file its hub revoked (`refuse_if_revoked`).
    fn local_write(&self, conn: &Connection) -> Result<LocalWrite<'_>> {
        refuse_if_revoked(conn)?;
        let reference = reference_in(&self.reference, conn);
        Ok(LocalWrite {
            ctx: self.local(),
            cache: &self.reference,
            acting: self.acting(conn, &reference)?,
            reference,
            actor: &self.actor,
            author: self.author,
        })
    }

    /// The user a device store acts for, once the hub has described them; `None` on the hub
    /// and on a device that never synced (its writes are checked by the hub only).
    fn acting(&self, conn: &Connection, reference: &ReferenceData) -> Result<Option<Acting>> {
        if self.role == StoreRole::Hub {
            return Ok(None);
        }
        Ok(sync_state::user_profile(conn)?.map(|p| Acting {
            role: p.role,
            user: self.author.user,
            scope: (!p.areas.is_empty() && reference.holds_area_trees())
                .then(|| p.scope(reference)),
        }))
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("device", &self.ctx.author.device)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `config.path`, creating it if needed and migrating it to the current
    /// schema. A wrong key gives `Error::WrongKeyOrNotAStore` and leaves the file untouched; a
    /// disk too full to open it (its write-ahead files are made at opening) says so
    /// (`Error::is_disk_full`), not "disk I/O error".
    pub fn open(config: StoreConfig) -> Result<Store> {
        let path = config.path.clone();
        Store::open_configured(config).map_err(|e| e.on_opening(&path))
    }

    fn open_configured(config: StoreConfig) -> Result<Store> {
        check_path(&config.path)?;
        if config.role == StoreRole::Device && config.user.is_nil() {
            return Err(ValidationError::new("user_id", "must be the signed-in user's id").into());
        }
        let mut conn = schema::open_connection(&config.path, &config.encryption)?;
        // Indexes a cut walk left aside, made again as the schema they belong to had them (and
        // never in a file of a newer schema, which `migrate` refuses untouched).
        if (1..=SCHEMA_VERSION).contains(&schema::user_version(&conn)?) {
            deferred_indexes::restore_now(&mut conn)?;
        }
        if !config.upgrade {
            let found = schema::user_version(&conn)?;
            if (1..SCHEMA_VERSION).contains(&found) {
                return Err(Error::UpgradeWithheld {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
        }
        schema::migrate(&mut conn, |tx, which| {
            documents::reindex(tx, &config.reference, which)?;
            if config.role == StoreRole::Hub && which == schema::Rederive::Kind(None) {
                hub::fill_roots(tx)?;
            }
            Ok(())
        })?;
        let tx = conn.transaction()?;
        if sync_state::get_meta(&tx, REVOKED)?.is_some() {
            // What it held was forgotten when the hub said so; its profile is to be wiped.
            return Err(Error::WipeRequested);
        }
        let device = match sync_state::get_meta(&tx, "device_id")? {
            Some(bytes) => Uuid::from_slice(&bytes).map_err(|_| Error::WrongKeyOrNotAStore)?,
            None => {
                let device = config.device.unwrap_or_else(Uuid::new_v4);
                sync_state::set_meta(&tx, "device_id", device.as_bytes())?;
                device
            }
        };
        if config.device.is_some_and(|d| d != device) {
            return Err(Error::NotAllowed {
                rule: "this store file belongs to another device".into(),
            });
        }
        if config.role == StoreRole::Device {
            // A device's file holds what its user may see, with the role the hub gave them:
            // opened for another user, it would lend them that role. (Stores made before this
            // check learn their user at their next opening.)
            match sync_state::get_meta(&tx, "user_id")? {
                Some(bytes) if bytes != config.user.as_bytes() => {
                    return Err(Error::NotAllowed {
                        rule: "this store file belongs to another user".into(),
                    });
                }
                Some(_) => {}
                None => sync_state::set_meta(&tx, "user_id", config.user.as_bytes())?,
            }
        }
        let nonce: [u8; 8] = match sync_state::get_meta(&tx, "actor_nonce")? {
            Some(bytes) => bytes.try_into().map_err(|_| Error::WrongKeyOrNotAStore)?,
            None => {
                let nonce = receive::new_nonce();
                sync_state::set_meta(&tx, "actor_nonce", &nonce)?;
                nonce
            }
        };
        if config.role == StoreRole::Device {
            // Made once, when the device's store is created (at enrolment) or first opened by
            // this version; the hub certifies them at the next sync.
            identity::ensure_device_keys(&tx)?;
        }
        tx.commit()?;
        // A purge a stopped process left undone (the terms of records removed still in the
        // search index, their pages in the file), then files a crash left between writing
        // one and committing its row.
        if erasure::purge_pending(&conn)? {
            erasure::purge_freed_content(&conn)?;
        }
        attachments::collect_files(&conn, &config.path)?;
        Ok(Store {
            conn,
            ctx: Context {
                reference: ReferenceCache::new(config.reference),
                author: ChangeAuthor {
                    user: config.user,
                    device,
                },
                actor: doc::actor_for(device, nonce),
                role: config.role,
                path: config.path,
                encryption: config.encryption,
                pushed: Default::default(),
            },
        })
    }

    /// The hub revoked this device (a lost or seized phone): every record (but the published
    /// reference data) leaves the store at once, its content purged from every file, pending
    /// changes included, and the store remembers it: it no longer opens
    /// (`Error::WipeRequested`) until its profile is wiped. Whatever the app does next, nothing
    /// of a child stays readable here. Returns the records that left.
    pub fn forget_all_for_revocation(&mut self) -> Result<Vec<(Uuid, RecordKind)>> {
        let mut held = queries::records_held(&self.conn)?;
        // The reference data the hub publishes to every device is nobody's personal data.
        held.retain(|(_, kind)| *kind != RecordKind::Reference);
        let tx = self.conn.transaction()?;
        for (id, _) in &held {
            erasure::forget_record(&tx, *id)?;
        }
        // The device's identity goes too (its secret keys, certificate, the hub's keys, the
        // directory of other devices, the user's profile, the sync cursors): with them, a file
        // whose mark was removed could still open bundles sealed to the device, or sign as it.
        // What names the file (its device, user and actor) stays, to refuse it by.
        tx.execute(
            "DELETE FROM meta WHERE key NOT IN ('device_id', 'user_id', 'actor_nonce')",
            [],
        )?;
        tx.execute("DELETE FROM peer_directory", [])?;
        sync_state::set_meta(&tx, REVOKED, &[1])?;
        tx.commit()?;
        self.purge_freed_content()?;
        Ok(held)
    }

    /// Closes the store, checkpointing the WAL into the main file. The connection is closed
    /// whatever the checkpoint says: its error (a full disk) loses nothing written, which the
    /// WAL holds and the next open checkpoints.
    pub fn close(self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        self.conn.close().map_err(|(_, e)| Error::Storage(e))
    }

    /// Drops the content of forgotten records from every file of the store (after an erasure):
    /// see `erasure::purge_freed_content`.
    pub fn purge_freed_content(&self) -> Result<()> {
        erasure::purge_freed_content(&self.conn)?;
        attachments::collect_files(&self.conn, &self.ctx.path)
    }

    pub fn path(&self) -> &Path {
        &self.ctx.path
    }

    pub fn device_id(&self) -> Uuid {
        self.ctx.author.device
    }

    pub fn user_id(&self) -> Uuid {
        self.ctx.author.user
    }

    pub fn actor(&self) -> &ActorId {
        &self.ctx.actor
    }

    /// Who this store's changes name as their author: its user, on its device.
    pub fn author(&self) -> ChangeAuthor {
        self.ctx.author
    }

    /// Whether this is a device's store (else the hub's own).
    pub fn role(&self) -> StoreRole {
        self.ctx.role
    }

    /// The reference data in force: the configured data and every version of every published
    /// reference document this store holds. Reloaded when those documents changed (published
    /// here, or received by any path).
    pub fn reference(&self) -> Arc<ReferenceData> {
        reference_in(&self.ctx.reference, &self.conn)
    }

    /// Every published version of a type and key this store holds, as one document: those of
    /// the single document earlier versions of the software wrote, and those of each version's
    /// own documents (a version cut into parts, assembled when every part is here).
    pub fn reference_document(
        &self,
        reference_type: ReferenceType,
        key: &str,
    ) -> Result<ReferenceDocument> {
        use crate::domain::reference::Published;
        let legacy = ReferenceDocument::id_for(reference_type, key);
        let mut found = match self.get::<ReferenceDocument>(legacy) {
            Ok(document) => Some(document),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let mut version = 1;
        loop {
            let id = |part| ReferenceDocument::id_for_version(reference_type, key, version, part);
            let published = match self.get::<ReferenceDocument>(id(0)) {
                Ok(mut one) => one.versions.remove(&version),
                Err(Error::NotFound { .. }) => {
                    let mut parts = Vec::new();
                    let mut part = 1;
                    while let Ok(mut one) = self.get::<ReferenceDocument>(id(part)) {
                        let Some(p) = one.versions.remove(&version) else {
                            break;
                        };
                        part += 1;
                        let last = part > p.parts;
                        parts.push(p);
                        if last {
                            break;
                        }
                    }
                    parts.first().map(|first| Published {
                        published_at: first.published_at,
                        content: Published::assemble(&parts)
                            .and_then(|c| serde_json::to_string(&c).ok())
                            .unwrap_or_default(),
                        pieces: Default::default(),
                        part: 0,
                        parts: 0,
                    })
                }
                Err(e) => return Err(e),
            };
            match published {
                Some(published) => {
                    found
                        .get_or_insert_with(|| ReferenceDocument::new(reference_type, key))
                        .versions
                        .insert(version, published);
                }
                None if found.as_ref().is_some_and(|f| f.latest() >= Some(version)) => {}
                None => break,
            }
            version += 1;
        }
        found.ok_or(Error::NotFound {
            kind: Some(RecordKind::Reference),
            id: legacy,
        })
    }

    /// The signed-in user's role and area codes, as the hub told this device at its last sync
    /// (none before the first sync). The device's workflow calls act with this role.
    /// The last position of this store's change log: `export_bundle`'s mark for everything
    /// held now.
    pub fn last_change(&self) -> Result<i64> {
        queries::last_change(&self.conn)
    }

    pub fn user_profile(&self) -> Result<Option<UserProfile>> {
        sync_state::user_profile(&self.conn)
    }

    /// Test hook (feature `test-hooks` only, never in a release): the store takes `profile`
    /// as if the hub had sent it, for test suites that exercise the workflow without a hub.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn debug_assume_profile(&mut self, profile: &UserProfile) -> Result<()> {
        let tx = self.conn.transaction()?;
        sync_state::set_user_profile(&tx, profile)?;
        tx.commit()?;
        Ok(())
    }

    /// As if this device's clock went back by `by` since its last sync (a battery pulled):
    /// the hub's time it last heard moved that much later.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn debug_clock_went_back(&mut self, by: chrono::Duration) -> Result<()> {
        let tx = self.conn.transaction()?;
        if let Some(hub) = sync_state::hub_clock(&tx)? {
            sync_state::set_hub_clock(&tx, hub + by.num_milliseconds())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Tests: this device's clock set `days` ahead for its user's own writes (a phone set a day
    /// ahead by hand), to see what the hub makes of the days it then records.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn debug_clock_ahead(&mut self, days: u64) -> Result<()> {
        let tx = self.conn.transaction()?;
        sync_state::set_debug_clock_ahead(&tx, days)?;
        tx.commit()?;
        Ok(())
    }

    /// Tests: a hub's records stored without their history's start (merged in as documents,
    /// as a hub of an earlier version took copies of a record under other ids) get it, as an
    /// upgrade fills it in.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn debug_fill_roots(&mut self) -> Result<()> {
        let tx = self.conn.transaction()?;
        hub::fill_roots(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// The role the store's user acts with: on a device, the role the hub gave them (a store
    /// that never synced has none, and its workflow calls are refused); on the hub, its
    /// administrator's, who holds every right.
    pub fn acting_role(&self) -> Result<Role> {
        if self.ctx.role == StoreRole::Hub {
            return Ok(Role::Supervisor);
        }
        self.user_profile()?
            .map(|p| p.role)
            .ok_or_else(|| Error::NotAllowed {
                rule: "this store does not know its user's role yet: sync with the hub first"
                    .into(),
            })
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64> {
        schema::user_version(&self.conn)
    }

    /// Runs `PRAGMA integrity_check`; true when SQLite finds nothing wrong.
    pub fn integrity_check(&self) -> Result<bool> {
        // In one read transaction, after a read of the name index: FTS5 keeps the index's
        // structure per connection and reads it again only when the table is read, so a check
        // after another connection wrote compared the new rows with the old structure and
        // reported a checksum mismatch of a sound file.
        let tx = self.conn.unchecked_transaction()?;
        tx.query_row("SELECT count(*) FROM name_search", [], |r| {
            r.get::<_, i64>(0)
        })?;
        let result: String = tx.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        Ok(result == "ok")
    }

    /// Whether the secondary indexes of the query tables are put aside, as they are while a
    /// device receives a whole scope from its hub (`deferred_indexes`). Queries answer all the
    /// same, by scanning.
    pub fn query_indexes_aside(&self) -> Result<bool> {
        deferred_indexes::are_deferred(&self.conn)
    }

    /// Creates again the query indexes put aside, if they are.
    pub(crate) fn restore_query_indexes(&mut self) -> Result<()> {
        deferred_indexes::restore_now(&mut self.conn)
    }

    // -----------------------------------------------------------------------------------------
    // Writing

    /// Stores a new record. Derived fields are computed, the record is validated, and the
    /// stored record (with its version) is returned.
    pub fn create<R: Record>(&mut self, record: &R) -> Result<R> {
        Ok(self
            .create_together(std::slice::from_ref(record))?
            .remove(0))
    }

    /// Stores many new records in one transaction (an import): all of them, or none if any is
    /// invalid or exists already. Much faster than `create` one by one, which commits each.
    /// Returns how many were stored.
    pub fn create_all<R: Record>(&mut self, records: &[R]) -> Result<usize> {
        Ok(self.create_together(records)?.len())
    }

    fn create_together<R: Record>(&mut self, records: &[R]) -> Result<Vec<R>> {
        self.check_new_assignees(records, false)?;
        let write = self.ctx.local_write(&self.conn)?;
        let tx = self.conn.transaction()?;
        let stored = records
            .iter()
            .map(|record| documents::insert_new(&tx, &write, record))
            .collect::<Result<_>>()
            .map_err(documents::refused_as_input)?;
        tx.commit()?;
        Ok(stored)
    }

    /// A case registered for a colleague, or given to one by an edit, goes to one who receives
    /// it, as this phone knows them from its directory (`rights::check_assignee`, and
    /// `assignee_scope`: the rules of hand-overs and of the hub, which refuses it otherwise). Only a new assignee is checked
    /// (`held`: the store holds the records, and an unchanged assignee stays whatever became of
    /// their areas since), as the hub does. The directory is read once, if one case needs it.
    fn check_new_assignees<R: Record>(&self, records: &[R], held: bool) -> Result<()> {
        let mut directory = None;
        for record in records {
            let crate::domain::records::Subject::ChildCase(case) = record.subject() else {
                continue;
            };
            if case.identified_by == self.user_id() || case.identified_by.is_nil() {
                continue;
            }
            if held
                && self
                    .get::<crate::domain::records::ChildCase>(case.id)
                    .is_ok_and(|was| was.identified_by == case.identified_by)
            {
                continue;
            }
            let directory = match &mut directory {
                Some(directory) => directory,
                None => directory.insert(self.directory()?),
            };
            if let Some(scope) = self.assignee_scope(directory, case.identified_by)? {
                crate::domain::rights::check_assignee(&scope, case)?;
            }
        }
        Ok(())
    }

    /// Applies the changes the caller made to a record it read: only the fields that differ from
    /// the version it read are written, as an edit made at that version. Returns the record as
    /// stored now, merged with anything that changed in the meantime.
    pub fn update<R: Record>(&mut self, record: &R) -> Result<R> {
        Ok(self
            .update_together(std::slice::from_ref(record))?
            .remove(0))
    }

    /// Applies several updates (as `update` does each) in one transaction: all or none.
    pub fn update_together<R: Record>(&mut self, records: &[R]) -> Result<Vec<R>> {
        self.check_new_assignees(records, true)?;
        let write = self.ctx.local_write(&self.conn)?;
        let tx = self.conn.transaction()?;
        let stored = records
            .iter()
            .map(|record| documents::update_in(&tx, &write, record))
            .collect::<Result<_>>()
            .map_err(documents::refused_as_input)?;
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
            RecordKind::Reference => Err(documents::not_by_record_writes()),
        }
    }

    fn resolve_typed<R: Record>(
        &mut self,
        id: Uuid,
        path: &[String],
        value: &serde_json::Value,
    ) -> Result<()> {
        let write = self.ctx.local_write(&self.conn)?;
        let tx = self.conn.transaction()?;
        documents::resolve_in::<R>(&tx, &write, id, path, value)
            .map_err(documents::refused_as_input)?;
        tx.commit()?;
        Ok(())
    }

    /// Merges a document received from another device (whole, or changes saved after some
    /// heads) into the local copy. The bytes are untrusted: anything that fails to decode, or
    /// decodes into something that is not a valid record of the expected kind, is refused with
    /// nothing stored. Returns whether anything new arrived.
    pub fn merge_document(&mut self, id: Uuid, bytes: &[u8]) -> Result<bool> {
        self.receive(|merging| Ok(merging.merge(id, bytes)?.changed))
    }

    /// Merges what `work` receives in one transaction (`receive::Merging`), committed if it
    /// returns `Ok`: a bundle, a peer's documents, a hand-over, a hub's response.
    pub(crate) fn receive<T>(
        &mut self,
        work: impl FnOnce(&mut receive::Merging<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        let mut receiver = receive::Receiver::of(&self.ctx);
        let tx = self.conn.transaction()?;
        refuse_if_revoked(&tx)?;
        let value = work(&mut receive::Merging {
            tx: &tx,
            receiver: &mut receiver,
            cache: &self.ctx.reference,
            headless: false,
        })?;
        if !receiver.merged_away.is_empty() {
            let write = LocalWrite {
                actor: &receiver.actor,
                ..self.ctx.local_write(&tx)?
            };
            documents::carry_over(&tx, &write, &receiver.merged_away)?;
        }
        tx.commit()?;
        // A merge may have started a new actor (a restored store).
        self.ctx.actor = receiver.actor;
        Ok(value)
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
        Ok(self.get_derived(id)?.0)
    }

    /// `get`, with the values its deciding fields hold side by side (`Record::DECIDING`).
    fn get_derived<R: Record>(
        &self,
        id: Uuid,
    ) -> Result<(R, Vec<crate::domain::records::Concurrent>)> {
        let (_, document) = documents::load_for::<R>(&self.conn, id, &self.ctx.actor)?;
        let mut record: R = doc::read_record(&document, id)?;
        let concurrent = doc::concurrent_deciding::<R>(&document);
        documents::derive_stored(
            &mut record,
            &self.reference(),
            &document.get_heads(),
            &concurrent,
        );
        Ok((record, concurrent))
    }

    /// A child case as `get` reads it, with the day its child turns 18 by the readings of its
    /// values in conflict (`ChildCase::adult_on_in_conflict`): the day its alert ends and the
    /// due lists leave it, which what shows its next follow-up follows too
    /// (`ChildCase::follow_up_due_on`).
    pub fn get_case_with_adult_day(&self, id: Uuid) -> Result<(ChildCase, Option<NaiveDate>)> {
        let (case, concurrent) = self.get_derived::<ChildCase>(id)?;
        let adult = case.adult_on_in_conflict(&concurrent);
        Ok((case, adult))
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

    /// The latest `most` entries of `history`, and how many earlier ones there are.
    pub fn recent_history(&self, id: Uuid, most: usize) -> Result<(Vec<HistoryEntry>, usize)> {
        let (_, document) = self.load_any(id)?;
        doc::recent_history(id, &document, most)
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
        Ok(queries::visits(&self.conn, query, Slice::Page(page), None)?.rows)
    }

    /// The next `limit` visits of a walk of `query`, after `key` (where the walk stood: the
    /// `last` of its previous read): rows that came or went before it do not shift the walk.
    pub fn visits_after(
        &self,
        query: &VisitQuery,
        key: Option<&SortKey>,
        limit: i32,
    ) -> Result<Walked<VisitSummary>> {
        queries::visits(&self.conn, query, Slice::After { limit, key }, None)
    }

    pub fn child_cases(&self, query: &ChildCaseQuery, page: Page) -> Result<Vec<ChildCaseSummary>> {
        Ok(queries::child_cases(&self.conn, query, Slice::Page(page), None, None)?.rows)
    }

    /// `visits_after` of child cases.
    pub fn child_cases_after(
        &self,
        query: &ChildCaseQuery,
        key: Option<&SortKey>,
        limit: i32,
    ) -> Result<Walked<ChildCaseSummary>> {
        queries::child_cases(&self.conn, query, Slice::After { limit, key }, None, None)
    }

    pub fn workplaces(&self, query: &WorkplaceQuery, page: Page) -> Result<Vec<WorkplaceSummary>> {
        Ok(queries::workplaces(&self.conn, query, Slice::Page(page), None)?.rows)
    }

    /// `visits_after` of workplaces.
    pub fn workplaces_after(
        &self,
        query: &WorkplaceQuery,
        key: Option<&SortKey>,
        limit: i32,
    ) -> Result<Walked<WorkplaceSummary>> {
        queries::workplaces(&self.conn, query, Slice::After { limit, key }, None)
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
        self.follow_ups_due_of(None, area, assignee, before, page)
    }

    /// How many follow-ups `follow_ups_due_of` lists in all (a dashboard's figure, without
    /// walking the pages).
    pub fn follow_ups_due_count(
        &self,
        kind: Option<RecordKind>,
        area: Option<AreaFilter>,
        assignee: Option<Uuid>,
        before: NaiveDate,
    ) -> Result<u64> {
        queries::due_count(&self.conn, &area, assignee, before, None, kind)
    }

    /// How many alerts `alerts` lists in all.
    pub fn alert_count(&self, area: Option<AreaFilter>) -> Result<u64> {
        queries::alert_count(&self.conn, &area, None)
    }

    /// `follow_ups_due` of one kind of record (`None`: visits' and cases'): the kind is chosen
    /// in the query itself, as a page filtered afterwards would hide the children due behind
    /// the visits due (a region's first 900 rows).
    pub fn follow_ups_due_of(
        &self,
        kind: Option<RecordKind>,
        area: Option<AreaFilter>,
        assignee: Option<Uuid>,
        before: NaiveDate,
        page: Page,
    ) -> Result<Vec<DueItem>> {
        let slice = Slice::Page(page);
        Ok(queries::due_before(&self.conn, &area, assignee, before, slice, None, kind)?.rows)
    }

    /// `visits_after` of `follow_ups_due_of`.
    pub fn follow_ups_due_after(
        &self,
        kind: Option<RecordKind>,
        (area, assignee, before): (Option<AreaFilter>, Option<Uuid>, NaiveDate),
        key: Option<&SortKey>,
        limit: i32,
    ) -> Result<Walked<DueItem>> {
        let slice = Slice::After { limit, key };
        queries::due_before(&self.conn, &area, assignee, before, slice, None, kind)
    }

    /// Urgent alerts in an area (or everywhere): worst forms first, then hazardous child labour,
    /// then visits with forced-labour indicators; within each, the most recent first. They come
    /// from the alert rows written with each record (`domain::derived::case_severity`), and the
    /// same severity puts urgent records first in the device's outbox.
    pub fn alerts(&self, area: Option<AreaFilter>, page: Page) -> Result<Vec<Alert>> {
        Ok(queries::alerts(&self.conn, &area, Slice::Page(page), None)?.rows)
    }

    /// `visits_after` of alerts.
    pub fn alerts_after(
        &self,
        area: Option<AreaFilter>,
        key: Option<&SortKey>,
        limit: i32,
    ) -> Result<Walked<Alert>> {
        queries::alerts(&self.conn, &area, Slice::After { limit, key }, None)
    }

    /// Workplaces and children whose name matches, folded as duplicates are compared
    /// (`derived::search_terms`: case, accents, ɔ/ɛ/œ, and a name joined by an apostrophe or a
    /// hyphen typed with or without it: "kouame" finds "Kouamé", "nguessan" "N'Guessan"); each
    /// word of `text` matches as a prefix.
    pub fn search_names(&self, text: &str, limit: u32) -> Result<Vec<SearchHit>> {
        self.search_names_in(text, None, Page::first(search_limit(limit)))
    }

    /// `search_names` of one kind of record (`None`: workplaces and children), a page at a
    /// time: a region's common surname names more children and workplaces than one page holds.
    pub fn search_names_in(
        &self,
        text: &str,
        kind: Option<RecordKind>,
        page: Page,
    ) -> Result<Vec<SearchHit>> {
        queries::search_names(&self.conn, text, kind, page, None)
    }

    /// Every record the store holds, with its kind (what a wipe removes).
    pub fn records_held(&self) -> Result<Vec<(Uuid, RecordKind)>> {
        queries::records_held(&self.conn)
    }

    /// How many records of each kind are filed under each area (a hub names, after a new area
    /// tree, those filed under a path it no longer holds).
    pub fn records_by_area(&self) -> Result<Vec<(crate::domain::area::Area, RecordKind, u64)>> {
        queries::records_by_area(&self.conn)
    }

    /// The records filed under a community code, each with its whole area.
    pub fn records_filed_under(
        &self,
        community: &str,
    ) -> Result<Vec<(Uuid, crate::domain::area::Area)>> {
        queries::records_filed_under(&self.conn, community)
    }

    /// The cases whose due lists and alerts are `user`'s (`identified_by`), merged duplicates
    /// aside: those a successor takes over (`vigie user hand-over`). Closed ones too: a child
    /// found working again reopens the case, whose follow-ups then need someone.
    pub fn cases_assigned_to(&self, user: Uuid) -> Result<Vec<Uuid>> {
        let mut found = Vec::new();
        for id in self.ids_of_kind(RecordKind::ChildCase)? {
            let case: crate::domain::records::ChildCase = self.get(id)?;
            if case.identified_by == user && !case.is_merged_duplicate() {
                found.push(id);
            }
        }
        Ok(found)
    }

    /// Number of records of each kind.
    pub fn count(&self, kind: RecordKind) -> Result<u64> {
        queries::count(&self.conn, kind)
    }

    /// The ids of every record of a kind, in id order (the hub lists its users with it).
    pub fn ids_of_kind(&self, kind: RecordKind) -> Result<Vec<Uuid>> {
        queries::ids_of_kind(&self.conn, kind)
    }

    /// Every record of a kind, in id order (`queries::ids_within`).
    pub fn all_of<R: Record>(&self) -> Result<Vec<R>> {
        self.all_within(None)
    }

    /// `all_of`, of the records `scope` receives only (every record without one).
    pub(crate) fn all_within<R: Record>(&self, scope: Option<&Scope>) -> Result<Vec<R>> {
        queries::ids_within(&self.conn, R::KIND, scope)?
            .into_iter()
            .map(|id| self.get::<R>(id))
            .collect()
    }
}

/// A search's `limit` as a page's (at most `Page::MAX_LIMIT` hits).
pub(crate) fn search_limit(limit: u32) -> i32 {
    i32::try_from(limit.min(Page::MAX_LIMIT as u32)).unwrap_or(Page::MAX_LIMIT)
}

/// The meta key a store revoked by its hub keeps (`Store::forget_all_for_revocation`).
const REVOKED: &str = "revoked_by_hub";

/// Nothing is written in a file its hub revoked: another handle's sync forgot what it held,
/// and a record written or received here (a child's case handed over) would stay on the phone.
fn refuse_if_revoked(conn: &Connection) -> Result<()> {
    if sync_state::get_meta(conn, REVOKED)?.is_some() {
        return Err(Error::WipeRequested);
    }
    Ok(())
}

/// A store is a file: SQLite's names for a database kept in memory (or an empty path, its
/// name for a temporary one) would keep nothing once closed, and a `file:` URI may say the
/// same.
fn check_path(path: &Path) -> Result<()> {
    let text = path.to_string_lossy();
    if text.trim().is_empty() || text == ":memory:" || text.starts_with("file:") {
        return Err(ValidationError::new(
            "path",
            "must be the path of a file (not empty, not :memory:, not a file: URI)",
        )
        .into());
    }
    Ok(())
}

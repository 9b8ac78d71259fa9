//! The store as the hub's storage (`storage::HubStorage`): the embedded hub's transactions on
//! its writer connection, and readers beside it.

use super::attachments::{self, Received};
use super::queries::{Filter, scope_rule};
use super::{
    Origin, Store, WriteContext, erasure, find_row, queries, save_document, schema, sync_state,
};
use crate::codec;
use crate::domain::area::Area;
use crate::domain::attachment::AttachmentState;
use crate::domain::codes::RecordKind;
use crate::domain::reference::ReferenceData;
use crate::domain::rights::Scope;
use crate::error::{Error, Result};
use crate::storage::{
    Appended, ChangedRecord, Departure, ErasedHistory, HeldAttachment, HubStorage, HubTransaction,
    LogEntry, Quarantined, RecordWrite, ReferenceCache, StoredRecord,
};
use automerge::{ActorId, ChangeHash};
use rusqlite::{Connection, OptionalExtension, Transaction, params_from_iter};
use std::path::Path;
use std::sync::Arc;
use uuid::Uuid;

/// Fills in the root of the records stored before the hub kept them (schema 22), 500 at a
/// time.
pub(crate) fn fill_roots(tx: &Transaction) -> Result<()> {
    let mut after = 0i64;
    loop {
        let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT rowid, id, doc FROM records WHERE rowid > ?1 AND root IS NULL
                 ORDER BY rowid LIMIT 500",
            )?
            .query_map([after], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let Some((last, _, _)) = rows.last() else {
            return Ok(());
        };
        after = *last;
        for (rowid, id, bytes) in rows {
            let Ok(id) = Uuid::from_slice(&id) else {
                continue;
            };
            let Some(root) = codec::load_stored(id, bytes)
                .ok()
                .and_then(|document| codec::single_root(&document))
            else {
                continue;
            };
            tx.prepare_cached("UPDATE records SET root = ?2 WHERE rowid = ?1")?
                .execute(rusqlite::params![rowid, root.0.as_slice()])?;
        }
    }
}

/// A connection to an embedded hub's store that only reads, beside the store's own connection
/// (the writer): under WAL, readers see the last committed state and neither wait for the
/// writer nor make it wait. Its transactions are snapshots; a write in one is an error.
pub struct HubReader {
    conn: rusqlite::Connection,
    /// The store's file: its attachments lie beside it.
    path: std::path::PathBuf,
    /// The store's configured reference data, under the published documents this reader loads
    /// (as the store does: reloaded when they change).
    reference: ReferenceCache,
}

impl Store {
    /// Opens a reader of this store's file (see `HubReader`).
    pub fn hub_reader(&self) -> Result<HubReader> {
        let mut conn = schema::open_connection(self.path(), &self.ctx.encryption)?;
        // The writer migrated the file when it opened it; a reader never writes, and never
        // takes the write lock.
        conn.execute_batch("PRAGMA query_only = ON;")?;
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Deferred);
        Ok(HubReader {
            conn,
            path: self.path().to_path_buf(),
            reference: ReferenceCache::new(self.ctx.reference.base().clone()),
        })
    }
}

impl HubReader {
    /// Every user the hub holds, in id order, read off the writer (the console's pages of
    /// users, devices and audit name them).
    pub fn users(&mut self) -> Result<Vec<crate::domain::records::User>> {
        let ids = queries::ids_of_kind(&self.conn, RecordKind::User)?;
        self.in_transaction(&mut |tx| {
            let mut users = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(stored) = tx.record(*id, false)? {
                    users.push(crate::doc::read_record(
                        &codec::load(*id, &stored.document)?,
                        *id,
                    )?);
                }
            }
            Ok(users)
        })
    }
}

impl HubStorage for HubReader {
    fn in_transaction<T>(
        &mut self,
        work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<T>,
    ) -> Result<T> {
        // Deferred: the snapshot is taken at the first read and held to the end.
        embedded_transaction(&mut self.conn, &self.path, &self.reference, None, work)
    }
}

impl HubStorage for Store {
    fn in_transaction<T>(
        &mut self,
        work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<T>,
    ) -> Result<T> {
        embedded_transaction(
            &mut self.conn,
            &self.ctx.path,
            &self.ctx.reference,
            Some(&self.ctx.actor),
            work,
        )
    }
}

/// Runs `work` in one transaction of an embedded store's connection.
fn embedded_transaction<T>(
    conn: &mut rusqlite::Connection,
    path: &Path,
    cache: &ReferenceCache,
    actor: Option<&ActorId>,
    work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<T>,
) -> Result<T> {
    let tx = conn.transaction()?;
    let mut embedded = EmbeddedTransaction {
        tx: &tx,
        cache,
        path,
        actor,
        pushing: None,
        erased: false,
    };
    let value = work(&mut embedded)?;
    let erased = embedded.erased;
    tx.commit()?;
    if erased {
        // The erased records' attachment keys went with the transaction: their files go now.
        attachments::collect_files(conn, path)?;
    }
    Ok(value)
}

/// The embedded store as the hub's storage. One process writes: a SQLite transaction already
/// excludes every other, so `for_update` needs nothing more.
struct EmbeddedTransaction<'a, 'c> {
    tx: &'a Transaction<'c>,
    cache: &'a ReferenceCache,
    path: &'a Path,
    /// The store's actor, under which the hub writes its own changes (none: a reader's).
    actor: Option<&'a ActorId>,
    /// The device whose pushes this transaction stores, and their number.
    pushing: Option<(Uuid, i64)>,
    /// Whether it erased a record (whose attachment files are collected after the commit).
    erased: bool,
}

use queries::uuid_of;

/// The meta key of the hub's incarnation (`HubTransaction::incarnation`).
const INCARNATION_KEY: &str = "hub_incarnation";
/// The meta key `mark_backup_copy` sets in a backup's copy of the hub's store: when it was taken.
const BACKUP_COPY_KEY: &str = "backup_copy_at_ms";

/// Marks `conn`, a backup's copy of a hub's store, as one: the hub that opens it after a
/// restore takes a new incarnation (`Store::prepare_incarnation`).
pub fn mark_backup_copy(conn: &Connection, at_ms: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        rusqlite::params![BACKUP_COPY_KEY, at_ms.to_le_bytes().to_vec()],
    )?;
    Ok(())
}

/// What the hub found when it opened its store (`Store::prepare_incarnation`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// When the backup was taken, for a store just restored from one.
    pub restored: Option<i64>,
    /// Photos and documents held whole before whose files are gone or cut short.
    pub lost_attachments: usize,
}

impl Store {
    /// Run by the hub on its own store when it opens: gives it an incarnation if it has none,
    /// and a new one if the store is a backup's copy (restored), or if files of photos and
    /// documents it held are gone or cut short (a backup restored whole but for them, a disk
    /// that failed): those are held as never uploaded, and every device that synced with it
    /// before is told, and offers again what it holds, records and photos, whatever it sent
    /// since the backup. (While the hub runs, a file found damaged refuses its own download.)
    pub fn prepare_incarnation(&mut self) -> Result<Opened> {
        let tx = self.conn.transaction()?;
        let restored = sync_state::get_meta(&tx, BACKUP_COPY_KEY)?
            .and_then(|b| b.try_into().ok())
            .map(i64::from_le_bytes);
        let lost = attachments::lost_files(&tx, &self.ctx.path)?;
        for id in &lost {
            attachments::set_state(&tx, *id, AttachmentState::NotDownloaded, None)?;
        }
        if restored.is_some()
            || !lost.is_empty()
            || sync_state::get_meta(&tx, INCARNATION_KEY)?.is_none()
        {
            let mut incarnation = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut incarnation);
            sync_state::set_meta(&tx, INCARNATION_KEY, &incarnation)?;
            sync_state::delete_meta(&tx, BACKUP_COPY_KEY)?;
        }
        tx.commit()?;
        Ok(Opened {
            restored,
            lost_attachments: lost.len(),
        })
    }
}

/// The meta key of the last quarantine entry number given (`quarantine`).
const QUARANTINE_LAST_KEY: &str = "quarantine_last_entry";

impl HubTransaction for EmbeddedTransaction<'_, '_> {
    fn attachment_held(&mut self, id: Uuid) -> Result<Option<HeldAttachment>> {
        let Some(row) = attachments::row(self.tx, id)? else {
            return Ok(None);
        };
        // A row whose file is gone (a hub restored without its attachments' directory) or cut
        // short (a copy that ran out of space) holds nothing: downloads are told to wait, and
        // the device that captured it may send it again, rather than every session failing on
        // the file.
        let whole = attachments::holds_whole_file(self.path, id, row.size);
        if row.state.has_bytes() && !whole {
            tracing::warn!(attachment = %id, record = %row.record_id, "attachment's file is gone or cut short: held as not uploaded until its author sends it again");
        }
        let complete = row.state.has_bytes() && whole;
        Ok(Some(HeldAttachment {
            record: row.record_id,
            size: row.size,
            held: if complete {
                row.size
            } else {
                attachments::held_partial(self.path, id)
            },
            complete,
        }))
    }

    fn reserve_attachment(
        &mut self,
        record: Uuid,
        entry: &crate::domain::Attachment,
    ) -> Result<()> {
        let Some(sha) = entry.sha256_digest() else {
            return Ok(());
        };
        if attachments::row(self.tx, entry.id)?.is_some() {
            return Ok(());
        }
        attachments::insert_row(
            self.tx,
            attachments::NewRow {
                id: entry.id,
                record_id: record,
                key: &crate::codec::sealed::new_key(),
                sha256: &sha,
                size: entry.size,
                state: AttachmentState::NotDownloaded,
                priority: 0,
            },
        )
    }

    fn attachment_append(
        &mut self,
        id: Uuid,
        record: Uuid,
        size: u64,
        sha256: &[u8; 32],
        offset: u64,
        bytes: &[u8],
    ) -> Result<Appended> {
        let row = match attachments::row(self.tx, id)? {
            Some(row) => row,
            None => {
                // The manifest names it (the caller checked) but no row follows it yet (a
                // record stored before this schema): one now.
                attachments::insert_row(
                    self.tx,
                    attachments::NewRow {
                        id,
                        record_id: record,
                        key: &crate::codec::sealed::new_key(),
                        sha256,
                        size,
                        state: AttachmentState::NotDownloaded,
                        priority: 0,
                    },
                )?;
                attachments::row(self.tx, id)?.ok_or(Error::NotFound { kind: None, id })?
            }
        };
        if row.size != size || &row.sha256 != sha256 {
            return Err(Error::DamagedDocument {
                id: record,
                reason: "an attachment's row disagrees with its manifest entry".into(),
            });
        }
        Ok(
            match attachments::receive_chunk(self.path, id, &row, offset, bytes)? {
                Received::More(held) => Appended::Held(held),
                Received::Whole => {
                    attachments::set_state(self.tx, id, AttachmentState::Available, None)?;
                    Appended::Complete
                }
                Received::Mismatch => Appended::Mismatch,
            },
        )
    }

    fn attachment_read(&mut self, id: Uuid, offset: u64, max: usize) -> Result<Option<Vec<u8>>> {
        let row = attachments::row(self.tx, id)?.ok_or(Error::NotFound { kind: None, id })?;
        match attachments::read_chunk(self.path, id, &row, offset, max) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                attachments::drop_damaged_file(self.path, id)?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn drop_attachments_except(&mut self, record: Uuid, keep: &[Uuid]) -> Result<()> {
        let held: Vec<Vec<u8>> = self
            .tx
            .prepare_cached("SELECT id FROM attachments WHERE record_id = ?1")?
            .query_map([record.as_bytes()], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for id in held {
            if !keep.iter().any(|k| k.as_bytes() == id.as_slice()) {
                self.tx
                    .prepare_cached("DELETE FROM attachments WHERE id = ?1")?
                    .execute([&id])?;
                // Its file goes once the transaction is committed, as an erasure's.
                self.erased = true;
            }
        }
        Ok(())
    }

    fn record(&mut self, id: Uuid, _for_update: bool) -> Result<Option<StoredRecord>> {
        let Some((rowid, kind, document)) = find_row(self.tx, id)? else {
            return Ok(None);
        };
        let area = queries::filed_under(self.tx, rowid)?.map(|(_, area)| area);
        Ok(Some(StoredRecord {
            key: rowid,
            kind,
            area,
            document,
        }))
    }

    fn save(&mut self, write: RecordWrite<'_>) -> Result<()> {
        let ctx = WriteContext {
            origin: Origin::Remote,
            author: Some(write.author),
            queue_for_hub: false,
            on_device: false,
        };
        // The area the record was filed under, before this write replaces its scope row.
        let filed_before = match write.key {
            Some(rowid) => queries::filed_under(self.tx, rowid)?,
            None => None,
        };
        let rowid = save_document(
            self.tx,
            &ctx,
            self.cache,
            write.id,
            write.kind,
            write.key,
            write.document,
            write.before,
        )?;
        if write.key.is_none() {
            // Where its history starts: no other record's document may begin there.
            self.tx
                .prepare_cached("UPDATE records SET root = ?2 WHERE rowid = ?1")?
                .execute(rusqlite::params![
                    rowid,
                    codec::single_root(write.document).map(|h| h.0.to_vec())
                ])?;
        }
        let seq: i64 = self
            .tx
            .prepare_cached("SELECT last_seq FROM records WHERE rowid = ?1")?
            .query_row([rowid], |r| r.get(0))?;
        // Users and reference data are filed nowhere: only a record with an area moves.
        if let Some((kind, area)) = filed_before
            && let Some(now) = write.area
            && *now != area
        {
            insert_area_history(self.tx, seq, write.id, kind as i64, &area)?;
        }
        if let Some((device, push)) = self.pushing
            && device == write.author.device
        {
            self.tx
                .prepare_cached("UPDATE change_log SET push = ?2 WHERE seq = ?1")?
                .execute([seq, push])?;
        }
        Ok(())
    }

    fn hub_actor(&self) -> Option<ActorId> {
        self.actor.cloned()
    }

    fn incarnation(&mut self) -> Result<Option<[u8; 16]>> {
        Ok(sync_state::get_meta(self.tx, INCARNATION_KEY)?.and_then(|b| b.try_into().ok()))
    }

    fn setting(&mut self, key: &str) -> Result<Option<String>> {
        Ok(sync_state::get_meta(self.tx, key)?.and_then(|b| String::from_utf8(b).ok()))
    }

    fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        sync_state::set_meta(self.tx, key, value.as_bytes())
    }

    fn high_water(&mut self) -> Result<i64> {
        Ok(self
            .tx
            .query_row("SELECT coalesce(max(seq), 0) FROM change_log", [], |r| {
                r.get(0)
            })?)
    }

    fn reference(&mut self) -> Result<Arc<ReferenceData>> {
        Ok(super::reference_in(self.cache, self.tx))
    }

    fn changed(
        &mut self,
        scope: &Scope,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<ChangedRecord>> {
        let f = changed_filter(scope, after, upto);
        let sql = format!(
            // Walk the records in change order: left to itself, SQLite may prefer an area
            // index and scan every record in scope on each request (0.5 s at 150k records).
            "SELECT r.id, r.doc, r.last_seq, r.heads,
                    (SELECT seq FROM change_log WHERE record_id = r.id ORDER BY seq LIMIT 1),
                    (SELECT device_id FROM change_log WHERE record_id = r.id ORDER BY seq LIMIT 1)
             FROM records r INDEXED BY records_by_last_seq JOIN scope_index s ON s.record = r.rowid
             {} ORDER BY r.last_seq LIMIT {limit}",
            f.sql()
        );
        let mut stmt = self.tx.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(f.params))?;
        let mut changed = Vec::new();
        while let Some(row) = rows.next()? {
            let creator: Option<Vec<u8>> = row.get(5)?;
            changed.push(ChangedRecord {
                id: uuid_of(&row.get::<_, Vec<u8>>(0)?)?,
                stored: row.get(1)?,
                seq: row.get(2)?,
                heads: row.get(3)?,
                first_seq: row.get::<_, Option<i64>>(4)?.unwrap_or(0),
                creator: creator.and_then(|d| Uuid::from_slice(&d).ok()),
            });
        }
        Ok(changed)
    }

    fn count_changed(&mut self, scope: &Scope, after: i64, upto: i64) -> Result<u64> {
        let f = changed_filter(scope, after, upto);
        let sql = format!(
            "SELECT count(*) FROM records r JOIN scope_index s ON s.record = r.rowid {}",
            f.sql()
        );
        let count: i64 = self
            .tx
            .prepare_cached(&sql)?
            .query_row(params_from_iter(f.params), |r| r.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    fn change_log(&mut self, id: Uuid) -> Result<Vec<LogEntry>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT seq, changes, device_id, push, at_ms FROM change_log WHERE record_id = ?1
             ORDER BY seq",
        )?;
        let log = stmt
            .query_map([id.as_bytes()], |r| {
                Ok(LogEntry {
                    seq: r.get(0)?,
                    changes: r.get(1)?,
                    device: r
                        .get::<_, Option<Vec<u8>>>(2)?
                        .and_then(|d| Uuid::from_slice(&d).ok()),
                    push: r.get(3)?,
                    at_ms: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(log)
    }

    fn is_erased(&mut self, id: Uuid) -> Result<bool> {
        erasure::is_erased(self.tx, id)
    }

    fn erasures(&mut self) -> Result<Vec<(Uuid, i64)>> {
        Ok(erasure::tombstones(self.tx)?
            .into_iter()
            .map(|t| (t.id, t.at_ms))
            .collect())
    }

    fn erase(&mut self, id: Uuid, history: &ErasedHistory) -> Result<bool> {
        if self.is_erased(id)? {
            return Ok(false);
        }
        let found = erasure::forget_record(self.tx, id)?.is_some();
        self.erased = true;
        let at_ms = history
            .at_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        // The tombstone takes the next place in the change order, like a change would.
        self.tx.execute(
            "INSERT INTO change_log (record_id, kind, changes, device_id, origin, at_ms)
             VALUES (?1, 0, x'', NULL, ?2, ?3)",
            rusqlite::params![id.as_bytes(), Origin::Local as i64, at_ms],
        )?;
        let seq = self.tx.last_insert_rowid();
        erasure::place_tombstone(self.tx, id, Some(seq), at_ms)?;
        for hash in &history.hashes {
            erasure::keep_erased_change(self.tx, id, hash, history.roots.contains(hash))?;
        }
        if let Some((kind, area)) = &history.filed {
            insert_area_history(self.tx, seq, id, *kind as i64, area)?;
        }
        Ok(found)
    }

    fn any_erased_change(&mut self, hashes: &[ChangeHash]) -> Result<bool> {
        erasure::any_erased_change(self.tx, hashes)
    }

    fn erased_roots(&mut self, id: Uuid) -> Result<Vec<ChangeHash>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT hash FROM erased_changes WHERE record_id = ?1 AND root = 1 ORDER BY hash",
        )?;
        let hashes = stmt
            .query_map([id.as_bytes()], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(hashes.iter().flat_map(|h| codec::heads_of(h)).collect())
    }

    fn device_actor(&mut self, device: Uuid) -> Result<Option<Vec<u8>>> {
        Ok(self
            .tx
            .prepare_cached("SELECT actor FROM device_actors WHERE device = ?1")?
            .query_row([device.as_bytes()], |r| r.get(0))
            .optional()?)
    }

    fn set_device_actor(&mut self, device: Uuid, actor: &[u8]) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO device_actors (device, actor) VALUES (?1, ?2)
                 ON CONFLICT (device) DO UPDATE SET actor = excluded.actor",
            )?
            .execute(rusqlite::params![device.as_bytes(), actor])?;
        Ok(())
    }

    fn give_up_changes(&mut self, hashes: &[ChangeHash]) -> Result<()> {
        erasure::keep_given_up(self.tx, hashes)
    }

    fn any_given_up_change(&mut self, hashes: &[ChangeHash]) -> Result<bool> {
        erasure::any_given_up(self.tx, hashes)
    }

    fn remember_refused_changes(
        &mut self,
        device: Uuid,
        hashes: &[ChangeHash],
        at_ms: i64,
    ) -> Result<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO refused_changes (hash, device, at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (hash) DO UPDATE SET at_ms = excluded.at_ms",
        )?;
        for hash in hashes {
            stmt.execute(rusqlite::params![
                hash.0.as_slice(),
                device.as_bytes(),
                at_ms
            ])?;
        }
        self.tx
            .prepare_cached(
                "DELETE FROM refused_changes WHERE device = ?1 AND hash NOT IN (
                     SELECT hash FROM refused_changes WHERE device = ?1
                     ORDER BY at_ms DESC LIMIT ?2)",
            )?
            .execute(rusqlite::params![
                device.as_bytes(),
                crate::storage::MAX_REFUSED_CHANGES_KEPT
            ])?;
        Ok(())
    }

    fn any_refused_change(&mut self, hashes: &[ChangeHash]) -> Result<bool> {
        erasure::any_hash_in(self.tx, "refused_changes", hashes)
    }

    fn records_with_root(&mut self, root: ChangeHash) -> Result<Vec<Uuid>> {
        let ids = self
            .tx
            .prepare_cached("SELECT id FROM records WHERE root = ?1")?
            .query_map([root.0.as_slice()], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ids
            .iter()
            .filter_map(|id| Uuid::from_slice(id).ok())
            .collect())
    }

    fn departures(&mut self, after: i64, upto: i64, limit: usize) -> Result<Vec<Departure>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT h.seq, h.record_id, h.kind, h.country, h.region, h.district, h.community,
                    r.kind, s.country, s.region, s.district, s.community
             FROM area_history h
             LEFT JOIN records r ON r.id = h.record_id
             LEFT JOIN scope_areas s ON s.record = r.rowid
             WHERE h.seq > ?1 AND h.seq <= ?2 ORDER BY h.seq LIMIT ?3",
        )?;
        let mut rows = stmt.query(rusqlite::params![after, upto, limit as i64])?;
        let mut departures = Vec::new();
        while let Some(r) = rows.next()? {
            let kind_of = |k: i64| {
                RecordKind::from_i64(k).ok_or_else(|| Error::DamagedDocument {
                    id: Uuid::nil(),
                    reason: "unknown record kind in the area history".into(),
                })
            };
            let now = match r.get::<_, Option<i64>>(7)? {
                None => None,
                Some(kind) => {
                    let area = match r.get::<_, Option<String>>(8)? {
                        Some(country) => Some(Area::new(
                            &country,
                            &r.get::<_, String>(9)?,
                            &r.get::<_, String>(10)?,
                            &r.get::<_, String>(11)?,
                        )),
                        None => None,
                    };
                    Some((kind_of(kind)?, area))
                }
            };
            departures.push(Departure {
                seq: r.get(0)?,
                id: uuid_of(&r.get::<_, Vec<u8>>(1)?)?,
                kind: kind_of(r.get(2)?)?,
                area: Area::new(
                    &r.get::<_, String>(3)?,
                    &r.get::<_, String>(4)?,
                    &r.get::<_, String>(5)?,
                    &r.get::<_, String>(6)?,
                ),
                now,
            });
        }
        Ok(departures)
    }

    fn pushes(&mut self, device: Uuid) -> Result<i64> {
        Ok(self
            .tx
            .prepare_cached("SELECT count FROM hub_pushes WHERE device = ?1")?
            .query_row([device.as_bytes()], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    fn number_pushes(&mut self, device: Uuid) -> Result<i64> {
        let number: i64 = self
            .tx
            .prepare_cached(
                "INSERT INTO hub_pushes (device, count) VALUES (?1, 1)
                 ON CONFLICT (device) DO UPDATE SET count = count + 1 RETURNING count",
            )?
            .query_row([device.as_bytes()], |r| r.get(0))?;
        self.pushing = Some((device, number));
        Ok(number)
    }

    fn continue_pushes(&mut self, device: Uuid, number: i64) {
        self.pushing = Some((device, number));
    }

    fn quarantine(&mut self, entry: &Quarantined) -> Result<()> {
        // An entry's number is never given again once settled (a reviewer's note or the
        // journal may name it): the last one given is kept beside the table, whose own
        // numbering would reuse the highest after it is deleted.
        let given = sync_state::get_meta(self.tx, QUARANTINE_LAST_KEY)?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map_or(0, i64::from_be_bytes);
        let highest: i64 =
            self.tx
                .query_row("SELECT coalesce(max(id), 0) FROM quarantine", [], |r| {
                    r.get(0)
                })?;
        let number = given.max(highest) + 1;
        self.tx
            .prepare_cached(
                "INSERT INTO quarantine (id, record_id, device_id, user_id, changes, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(rusqlite::params![
                number,
                entry.record.as_bytes(),
                entry.device.as_bytes(),
                entry.user.as_bytes(),
                entry.changes,
                entry.received_ms
            ])?;
        sync_state::set_meta(self.tx, QUARANTINE_LAST_KEY, &number.to_be_bytes())?;
        Ok(())
    }

    fn quarantined_from(&mut self, device: Uuid) -> Result<usize> {
        let count: i64 = self
            .tx
            .prepare_cached("SELECT count(*) FROM quarantine WHERE device_id = ?1")?
            .query_row([device.as_bytes()], |r| r.get(0))?;
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    fn quarantined(&mut self) -> Result<Vec<Quarantined>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT id, record_id, device_id, user_id, changes, received_ms FROM quarantine
             ORDER BY id",
        )?;
        let rows = stmt
            .query_map([], QuarantineRow::read)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(QuarantineRow::into_entry).collect()
    }

    fn quarantined_for(&mut self, record: Uuid) -> Result<Vec<Quarantined>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT id, record_id, device_id, user_id, changes, received_ms FROM quarantine
             WHERE record_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([record.as_bytes()], QuarantineRow::read)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(QuarantineRow::into_entry).collect()
    }

    fn take_quarantined(&mut self, entry: i64) -> Result<Option<Quarantined>> {
        self.tx
            .prepare_cached(
                "DELETE FROM quarantine WHERE id = ?1
                 RETURNING id, record_id, device_id, user_id, changes, received_ms",
            )?
            .query_row([entry], QuarantineRow::read)
            .optional()?
            .map(QuarantineRow::into_entry)
            .transpose()
    }
}

/// The records `scope` receives whose last change is in `(after, upto]` (`changed`,
/// `count_changed`), over `records r` joined to `scope_index s`.
fn changed_filter(scope: &Scope, after: i64, upto: i64) -> Filter {
    let mut f = Filter::default();
    f.add("r.last_seq > ?", after);
    f.add("r.last_seq <= ?", upto);
    let (rule, values) = scope_rule(scope, "s");
    // Reference data (scope rows with empty codes) goes to every principal.
    f.add_all(
        &format!("(s.kind = {} OR {rule})", RecordKind::Reference as i64),
        values,
    );
    f
}

fn insert_area_history(tx: &Transaction, seq: i64, id: Uuid, kind: i64, area: &Area) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO area_history (seq, record_id, kind, country, region, district, community)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(rusqlite::params![
        seq,
        id.as_bytes(),
        kind,
        area.country,
        area.region,
        area.district,
        area.community
    ])?;
    Ok(())
}

/// A `quarantine` row as SQLite returns it (ids as bytes).
struct QuarantineRow(i64, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, i64);

impl QuarantineRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<QuarantineRow> {
        Ok(QuarantineRow(
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    }

    fn into_entry(self) -> Result<Quarantined> {
        let QuarantineRow(entry, record, device, user, changes, received_ms) = self;
        Ok(Quarantined {
            entry,
            record: uuid_of(&record)?,
            device: uuid_of(&device)?,
            user: uuid_of(&user)?,
            changes,
            received_ms,
        })
    }
}

//! The storage the hub's sync engine runs on, as one interface.
//!
//! The engine (`hub.rs`) decides what to accept and what each device lacks; a backend only
//! keeps documents, their change log and the order of changes. The embedded store implements it
//! here; the server adds PostgreSQL for hubs that outgrow one machine. Every backend stores the
//! same bytes (documents as `store::encode_document` writes them, heads and change hashes as
//! concatenated 32-byte hashes), so a hub can move from one to the other.

use super::hub::{Principal, Scope};
use crate::doc::ChangeAuthor;
use crate::error::{Error, Result};
use crate::model::{Area, RecordKind};
use crate::reference::ReferenceData;
use crate::store::{self, Origin, Store, WriteContext};
use automerge::{Automerge, ChangeHash};
use rusqlite::types::Value as Sql;
use rusqlite::{OptionalExtension, Transaction, params_from_iter};
use std::sync::Arc;
use uuid::Uuid;

/// A record as the hub holds it.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    /// The backend's own key for the row, handed back when the record is saved.
    pub key: i64,
    pub kind: RecordKind,
    /// The area the record is filed under (none for users).
    pub area: Option<Area>,
    /// The document, as Automerge bytes.
    pub document: Vec<u8>,
}

/// A record changed after some point of the hub's change order.
#[derive(Debug, Clone)]
pub struct ChangedRecord {
    pub id: Uuid,
    /// Its last change's place in the hub's change order.
    pub seq: i64,
    /// The document as stored (`store::decode_stored` reads it).
    pub stored: Vec<u8>,
    pub heads: Vec<u8>,
    /// The place of its first change, and the device that made it.
    pub first_seq: i64,
    pub creator: Option<Uuid>,
}

/// One entry of a record's change log: the changes one write added.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub seq: i64,
    /// Hashes of the changes, concatenated.
    pub changes: Vec<u8>,
    /// The device whose changes these are (none for a tombstone).
    pub device: Option<Uuid>,
    /// The number of the device's request that pushed them (`HubTransaction::number_pushes`);
    /// none when they did not come from a device's push (a reviewed quarantine, the hub's own
    /// writes).
    pub push: Option<i64>,
}

/// A place in the change order where a record stopped being filed under an area: it moved to
/// another, or was erased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    pub seq: i64,
    pub id: Uuid,
    /// The record's kind, and the area it was filed under until `seq`.
    pub kind: RecordKind,
    pub area: Area,
    /// The record's kind and area now; `None` once it is erased.
    pub now: Option<(RecordKind, Option<Area>)>,
}

/// What the hub keeps of an erased record: the hashes of its changes (`roots` among them:
/// those with no dependencies) and where it was filed, so that its tombstone reaches the
/// devices whose scope held it and no push brings its content back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasedHistory {
    pub hashes: Vec<ChangeHash>,
    pub roots: Vec<ChangeHash>,
    pub filed: Option<(RecordKind, Area)>,
}

/// A record's new state, to be stored with the changes added since `before`.
pub struct RecordWrite<'a> {
    pub id: Uuid,
    pub kind: RecordKind,
    /// `StoredRecord::key` of the record as it was read; `None` for a new record.
    pub key: Option<i64>,
    pub area: Option<&'a Area>,
    pub document: &'a mut Automerge,
    pub before: &'a [ChangeHash],
    pub author: ChangeAuthor,
}

/// One transaction of the hub's storage.
pub trait HubTransaction {
    /// The stored record. With `for_update`, no other transaction may change it until this one
    /// ends (a backend shared by several hub processes must lock it).
    fn record(&mut self, id: Uuid, for_update: bool) -> Result<Option<StoredRecord>>;

    /// Stores a record's new state and logs its new changes after every change logged so far.
    fn save(&mut self, write: RecordWrite<'_>) -> Result<()>;

    /// The last place of the change order that is committed and visible to this transaction.
    /// Every change at or below it is visible: no later commit may fill a gap below it.
    fn high_water(&mut self) -> Result<i64>;

    /// The reference data in force: the built-in data and every published version the hub
    /// holds (area trees decide what a principal's codes cover; records are validated against
    /// the versions they were captured with).
    fn reference(&mut self) -> Result<Arc<ReferenceData>>;

    /// Records `scope` receives (`Scope::receives`) whose last change is in `(after, upto]`, in
    /// change order, at most `limit`.
    fn changed(
        &mut self,
        scope: &Scope,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<ChangedRecord>>;

    /// A record's change log, in order.
    fn change_log(&mut self, id: Uuid) -> Result<Vec<LogEntry>>;

    /// Whether the record was erased (a tombstone stands for it).
    fn is_erased(&mut self, id: Uuid) -> Result<bool>;

    /// Erases a record: its document, change log, index rows and quarantined changes are
    /// deleted, and a tombstone is placed after every change logged so far, with `history`
    /// (the hashes of its changes, and the area it was filed under, at the tombstone's place).
    /// Returns whether there was anything to erase (a second erasure changes nothing).
    fn erase(&mut self, id: Uuid, history: &ErasedHistory) -> Result<bool>;

    /// Whether any of these changes belongs to an erased record.
    fn any_erased_change(&mut self, hashes: &[ChangeHash]) -> Result<bool>;

    /// The roots of an erased record's history (see `ErasedHistory`).
    fn erased_roots(&mut self, id: Uuid) -> Result<Vec<ChangeHash>>;

    /// Records that moved to another area, or were erased, in `(after, upto]` of the change
    /// order, in that order, at most `limit`. A save that changes a record's area adds one at
    /// its own place (the backend compares the area saved with the one stored).
    fn departures(&mut self, after: i64, upto: i64, limit: usize) -> Result<Vec<Departure>>;

    /// How many of this device's requests had pushes stored (0 for a device never heard).
    fn pushes(&mut self, device: Uuid) -> Result<i64>;

    /// Numbers this request's pushes: the device's count goes up by one, and every later save
    /// in this transaction whose author is the device keeps the new number in its change-log
    /// entry. Returns the number.
    fn number_pushes(&mut self, device: Uuid) -> Result<i64>;

    /// Goes on with pushes numbered `number` by an earlier transaction of the same request
    /// (pushes are stored in several short transactions): later saves in this transaction whose
    /// author is the device keep that number, and the device's count does not move.
    fn continue_pushes(&mut self, device: Uuid, number: i64);

    /// Keeps changes a device sent to a record that is no longer its user's to change.
    fn quarantine(&mut self, entry: &Quarantined) -> Result<()>;

    /// Every quarantined entry, oldest first.
    fn quarantined(&mut self) -> Result<Vec<Quarantined>>;

    /// Removes one quarantined entry (reviewed) and returns it.
    fn take_quarantined(&mut self, entry: i64) -> Result<Option<Quarantined>>;
}

/// Changes held for a supervisor's review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The backend's id of the entry (0 before it is stored).
    pub entry: i64,
    pub record: Uuid,
    pub device: Uuid,
    pub user: Uuid,
    /// Automerge changes, as the device sent them.
    pub changes: Vec<u8>,
    pub received_ms: i64,
}

/// A hub's storage: runs work in transactions.
pub trait HubStorage {
    /// Runs `work` in one transaction, committed if it returns `Ok` and rolled back otherwise.
    /// A backend where another process may collide with it runs `work` again after a
    /// serialization failure: `work` must depend on nothing but what it reads.
    fn in_transaction<T>(
        &mut self,
        work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<T>,
    ) -> Result<T>;

    /// Runs `work`, which only reads, in one transaction that sees one consistent state of the
    /// storage (a snapshot). A backend with connections that only read (`HubReader`) runs it
    /// there, beside the writer; by default it is an ordinary transaction.
    fn in_read_transaction<T>(
        &mut self,
        work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<T>,
    ) -> Result<T> {
        self.in_transaction(work)
    }
}

/// A connection to an embedded hub's store that only reads, beside the store's own connection
/// (the writer): under WAL, readers see the last committed state and neither wait for the
/// writer nor make it wait. Its transactions are snapshots; a write in one is an error.
pub struct HubReader {
    conn: rusqlite::Connection,
    /// The store's configured reference data, under the published documents this reader loads
    /// (as the store does: reloaded when they change).
    base: crate::reference::ReferenceData,
    loaded: std::cell::RefCell<store::LoadedReference>,
}

impl Store {
    /// Opens a reader of this store's file (see `HubReader`).
    pub fn hub_reader(&self) -> Result<HubReader> {
        let conn = crate::store::schema::open_connection(self.path(), &self.encryption)?;
        // The writer migrated the file when it opened it; a reader never writes.
        conn.execute_batch("PRAGMA query_only = ON;")?;
        Ok(HubReader {
            conn,
            base: self.base.clone(),
            loaded: std::cell::RefCell::new(store::LoadedReference::new(self.base.clone())),
        })
    }
}

impl HubStorage for HubReader {
    fn in_transaction<T>(
        &mut self,
        work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<T>,
    ) -> Result<T> {
        // Deferred: the snapshot is taken at the first read and held to the end.
        let source = store::ReferenceSource {
            base: &self.base,
            loaded: &self.loaded,
        };
        embedded_transaction(&mut self.conn, source, work)
    }
}

impl HubStorage for Store {
    fn in_transaction<T>(
        &mut self,
        work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<T>,
    ) -> Result<T> {
        let source = store::reference_source!(self);
        embedded_transaction(&mut self.conn, source, work)
    }
}

/// Runs `work` in one transaction of an embedded store's connection.
fn embedded_transaction<T>(
    conn: &mut rusqlite::Connection,
    source: store::ReferenceSource<'_>,
    work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<T>,
) -> Result<T> {
    let tx = conn.transaction()?;
    let value = work(&mut EmbeddedTransaction {
        tx: &tx,
        source,
        pushing: None,
    })?;
    tx.commit()?;
    Ok(value)
}

/// The embedded store as the hub's storage. One process writes: a SQLite transaction already
/// excludes every other, so `for_update` needs nothing more.
struct EmbeddedTransaction<'a, 'c> {
    tx: &'a Transaction<'c>,
    source: store::ReferenceSource<'a>,
    /// The device whose pushes this transaction stores, and their number.
    pushing: Option<(Uuid, i64)>,
}

fn uuid_of(bytes: &[u8]) -> Result<Uuid> {
    Uuid::from_slice(bytes).map_err(|_| Error::DamagedDocument {
        id: Uuid::nil(),
        reason: "a record id in the store is not 16 bytes".into(),
    })
}

impl HubTransaction for EmbeddedTransaction<'_, '_> {
    fn record(&mut self, id: Uuid, _for_update: bool) -> Result<Option<StoredRecord>> {
        let Some((rowid, kind, document)) = store::find_row(self.tx, id)? else {
            return Ok(None);
        };
        let area = self
            .tx
            .prepare_cached(
                "SELECT country, region, district, community FROM scope_index WHERE record = ?1",
            )?
            .query_row([rowid], |r| {
                Ok(Area::new(
                    &r.get::<_, String>(0)?,
                    &r.get::<_, String>(1)?,
                    &r.get::<_, String>(2)?,
                    &r.get::<_, String>(3)?,
                ))
            })
            .optional()?;
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
            Some(rowid) => self
                .tx
                .prepare_cached(
                    "SELECT kind, country, region, district, community FROM scope_index
                     WHERE record = ?1",
                )?
                .query_row([rowid], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        Area::new(
                            &r.get::<_, String>(1)?,
                            &r.get::<_, String>(2)?,
                            &r.get::<_, String>(3)?,
                            &r.get::<_, String>(4)?,
                        ),
                    ))
                })
                .optional()?,
            None => None,
        };
        let rowid = store::save_document(
            self.tx,
            &ctx,
            self.source,
            write.id,
            write.kind,
            write.key,
            write.document,
            write.before,
        )?;
        let seq: i64 = self
            .tx
            .prepare_cached("SELECT last_seq FROM records WHERE rowid = ?1")?
            .query_row([rowid], |r| r.get(0))?;
        // Users and reference data are filed nowhere: only a record with an area moves.
        if let Some((kind, area)) = filed_before
            && let Some(now) = write.area
            && *now != area
        {
            insert_area_history(self.tx, seq, write.id, kind, &area)?;
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

    fn high_water(&mut self) -> Result<i64> {
        Ok(self
            .tx
            .query_row("SELECT coalesce(max(seq), 0) FROM change_log", [], |r| {
                r.get(0)
            })?)
    }

    fn reference(&mut self) -> Result<Arc<ReferenceData>> {
        Ok(self.source.get(self.tx))
    }

    fn changed(
        &mut self,
        scope: &Scope,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<ChangedRecord>> {
        let (filter, filter_params) = scope_filter(scope);
        let sql = format!(
            // Walk the records in change order: left to itself, SQLite may prefer an area
            // index and scan every record in scope on each request (0.5 s at 150k records).
            "SELECT r.id, r.doc, r.last_seq, r.heads,
                    (SELECT seq FROM change_log WHERE record_id = r.id ORDER BY seq LIMIT 1),
                    (SELECT device_id FROM change_log WHERE record_id = r.id ORDER BY seq LIMIT 1)
             FROM records r INDEXED BY records_by_last_seq JOIN scope_index s ON s.record = r.rowid
             WHERE r.last_seq > ?1 AND r.last_seq <= ?2 AND {filter}
             ORDER BY r.last_seq LIMIT {limit}"
        );
        let mut params = vec![Sql::Integer(after), Sql::Integer(upto)];
        params.extend(filter_params);
        let mut stmt = self.tx.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(params))?;
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

    fn change_log(&mut self, id: Uuid) -> Result<Vec<LogEntry>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT seq, changes, device_id, push FROM change_log WHERE record_id = ?1
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
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(log)
    }

    fn is_erased(&mut self, id: Uuid) -> Result<bool> {
        store::is_erased(self.tx, id)
    }

    fn erase(&mut self, id: Uuid, history: &ErasedHistory) -> Result<bool> {
        if self.is_erased(id)? {
            return Ok(false);
        }
        let found = store::forget_record(self.tx, id)?.is_some();
        // The tombstone takes the next place in the change order, like a change would.
        self.tx.execute(
            "INSERT INTO change_log (record_id, kind, changes, device_id, origin, at_ms)
             VALUES (?1, 0, x'', NULL, ?2, ?3)",
            rusqlite::params![
                id.as_bytes(),
                Origin::Local as i64,
                chrono::Utc::now().timestamp_millis()
            ],
        )?;
        let seq = self.tx.last_insert_rowid();
        store::place_tombstone(self.tx, id, Some(seq))?;
        for hash in &history.hashes {
            store::keep_erased_change(self.tx, id, hash, history.roots.contains(hash))?;
        }
        if let Some((kind, area)) = &history.filed {
            insert_area_history(self.tx, seq, id, *kind as i64, area)?;
        }
        Ok(found)
    }

    fn any_erased_change(&mut self, hashes: &[ChangeHash]) -> Result<bool> {
        store::any_erased_change(self.tx, hashes)
    }

    fn erased_roots(&mut self, id: Uuid) -> Result<Vec<ChangeHash>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT hash FROM erased_changes WHERE record_id = ?1 AND root = 1 ORDER BY hash",
        )?;
        let hashes = stmt
            .query_map([id.as_bytes()], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(hashes.iter().flat_map(|h| store::heads_of(h)).collect())
    }

    fn departures(&mut self, after: i64, upto: i64, limit: usize) -> Result<Vec<Departure>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT h.seq, h.record_id, h.kind, h.country, h.region, h.district, h.community,
                    r.kind, s.country, s.region, s.district, s.community
             FROM area_history h
             LEFT JOIN records r ON r.id = h.record_id
             LEFT JOIN scope_index s ON s.record = r.rowid
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
        self.tx
            .prepare_cached(
                "INSERT INTO quarantine (record_id, device_id, user_id, changes, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(rusqlite::params![
                entry.record.as_bytes(),
                entry.device.as_bytes(),
                entry.user.as_bytes(),
                entry.changes,
                entry.received_ms
            ])?;
        Ok(())
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

/// SQL matching the scope's kinds and areas on `scope_index s`, with its parameters (numbered
/// from 3: the first two are the caller's).
fn scope_filter(scope: &Scope) -> (String, Vec<Sql>) {
    let (rule, params) = scope_rule(scope, "s");
    // Reference data (scope rows with empty codes) goes to every principal.
    let sql = format!("(s.kind = {} OR {rule})", RecordKind::Reference as i64);
    let mut n = 2;
    let numbered = sql
        .split('?')
        .enumerate()
        .map(|(i, piece)| {
            if i == 0 {
                piece.to_string()
            } else {
                n += 1;
                format!("?{n}{piece}")
            }
        })
        .collect();
    (numbered, params)
}

/// The scope as SQL on a table `alias` with a `kind` column and area columns: a kind the role
/// works with, in the scope's areas (`area_rule`); `?` placeholders and their values in order.
pub(crate) fn scope_rule(scope: &Scope, alias: &str) -> (String, Vec<Sql>) {
    let (areas, params) = area_rule(scope, alias);
    let kinds: Vec<String> = scope
        .kinds()
        .iter()
        .map(|k| (*k as i64).to_string())
        .collect();
    if kinds.is_empty() {
        return ("0".to_string(), Vec::new());
    }
    (
        format!("({alias}.kind IN ({}) AND ({areas}))", kinds.join(", ")),
        params,
    )
}

/// The scope's areas as SQL on the area columns (`country`, `region`, `district`, `community`)
/// of the table `alias`, with `?` placeholders and their values in order. Each area code is
/// matched at its level and in its country only (`AreaGrant::covers`): the one home of the
/// area rule in SQL, for the hub's walk and for the console's queries (`Store::scoped`).
pub(crate) fn area_rule(scope: &Scope, alias: &str) -> (String, Vec<Sql>) {
    let mut params: Vec<Sql> = Vec::new();
    let areas: Vec<String> = scope
        .areas
        .grants()
        .iter()
        .map(|g| {
            params.push(Sql::Text(g.country.clone()));
            params.push(Sql::Text(g.code.clone()));
            format!("({alias}.country = ? AND {alias}.{} = ?)", g.level.as_str())
        })
        .collect();
    let sql = if areas.is_empty() {
        "0".to_string()
    } else {
        areas.join(" OR ")
    };
    (sql, params)
}

impl Store {
    /// Handles one sync request from an authenticated device on this store (the embedded hub).
    pub fn hub_handle(
        &mut self,
        who: &Principal,
        request: &[u8],
        limits: &super::HubLimits,
    ) -> std::result::Result<Vec<u8>, super::HubError> {
        super::hub::handle_sync(self, who, request, limits)
    }
}

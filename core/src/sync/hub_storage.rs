//! The storage the hub's sync engine runs on, as one interface.
//!
//! The engine (`hub.rs`) decides what to accept and what each device lacks; a backend only
//! keeps documents, their change log and the order of changes. The embedded store implements it
//! here; the server adds PostgreSQL for hubs that outgrow one machine. Every backend stores the
//! same bytes (documents as `store::encode_document` writes them, heads and change hashes as
//! concatenated 32-byte hashes), so a hub can move from one to the other.

use super::hub::Principal;
use crate::doc::ChangeAuthor;
use crate::error::{Error, Result};
use crate::model::{Area, RecordKind};
use crate::store::{self, Origin, Store, WriteContext};
use automerge::{Automerge, ChangeHash};
use rusqlite::types::Value as Sql;
use rusqlite::{OptionalExtension, Transaction, params_from_iter};
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

    /// Records `who` receives (`Principal::receives`) whose last change is in `(after, upto]`, in change
    /// order, at most `limit`.
    fn changed(
        &mut self,
        who: &Principal,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<ChangedRecord>>;

    /// A record's change log, in order.
    fn change_log(&mut self, id: Uuid) -> Result<Vec<LogEntry>>;
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
}

impl HubStorage for Store {
    fn in_transaction<T>(
        &mut self,
        work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<T>,
    ) -> Result<T> {
        let tx = self.conn.transaction()?;
        let value = work(&mut EmbeddedTransaction { tx: &tx })?;
        tx.commit()?;
        Ok(value)
    }
}

/// The embedded store as the hub's storage. One process writes: a SQLite transaction already
/// excludes every other, so `for_update` needs nothing more.
struct EmbeddedTransaction<'a, 'c> {
    tx: &'a Transaction<'c>,
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
        };
        store::save_document(
            self.tx,
            &ctx,
            write.id,
            write.kind,
            write.key,
            write.document,
            write.before,
        )?;
        Ok(())
    }

    fn high_water(&mut self) -> Result<i64> {
        Ok(self
            .tx
            .query_row("SELECT coalesce(max(seq), 0) FROM change_log", [], |r| {
                r.get(0)
            })?)
    }

    fn changed(
        &mut self,
        who: &Principal,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<ChangedRecord>> {
        let (filter, filter_params) = scope_filter(who);
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
            "SELECT seq, changes FROM change_log WHERE record_id = ?1 ORDER BY seq",
        )?;
        let log = stmt
            .query_map([id.as_bytes()], |r| {
                Ok(LogEntry {
                    seq: r.get(0)?,
                    changes: r.get(1)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(log)
    }
}

/// SQL matching the principal's kinds and areas on `scope_index s`, with its parameters
/// (numbered from 3: the first two are the caller's).
fn scope_filter(who: &Principal) -> (String, Vec<Sql>) {
    let mut params: Vec<Sql> = Vec::new();
    let kinds: Vec<String> = who
        .kinds()
        .iter()
        .map(|k| {
            params.push(Sql::Integer(*k as i64));
            format!("?{}", params.len() + 2)
        })
        .collect();
    let mut areas = Vec::new();
    for column in ["country", "region", "district", "community"] {
        let places: Vec<String> = who
            .areas
            .iter()
            .map(|a| {
                params.push(Sql::Text(a.clone()));
                format!("?{}", params.len() + 2)
            })
            .collect();
        if !places.is_empty() {
            areas.push(format!("s.{column} IN ({})", places.join(", ")));
        }
    }
    let areas = if areas.is_empty() {
        "0".to_string()
    } else {
        areas.join(" OR ")
    };
    // Reference data (scope rows with empty codes) goes to every principal.
    (
        format!(
            "(s.kind = {} OR (s.kind IN ({}) AND ({areas})))",
            RecordKind::Reference as i64,
            kinds.join(", ")
        ),
        params,
    )
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

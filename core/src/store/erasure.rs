//! Records leaving a store for good: forgotten (erased on the hub, out of the user's scope,
//! quarantined), with the tombstones and change hashes that keep an erased record's content
//! from coming back under any id, and the purge that leaves no copy of it in any file.

use super::index;
use crate::domain::AttachmentState;
use crate::domain::area::Area;
use crate::domain::codes::RecordKind;
use crate::error::Result;
use automerge::ChangeHash;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use uuid::Uuid;

/// Removes every trace of a record from this store: document, index rows, search entry, change
/// log and sync state. Returns its kind if it was there. secure_delete zeroes the freed bytes;
/// the caller compacts the search index and truncates the WAL once the transaction is committed
/// (`purge_freed_content`).
pub(crate) fn forget_record(tx: &Transaction, id: Uuid) -> Result<Option<RecordKind>> {
    forget(tx, id, false)
}

/// `forget_record` for a record that leaves this device but not the hub (out of its user's
/// scope, or its changes kept for a supervisor's review): the attachments captured here whose
/// bytes the hub does not hold yet (pending, or failed on a limit) stay, out of every list
/// (their record is gone), until their bytes reach the hub (`sync::attachments`); without them
/// a photo the hub's manifest names would exist nowhere.
pub(crate) fn forget_record_keeping_uploads(
    tx: &Transaction,
    id: Uuid,
) -> Result<Option<RecordKind>> {
    forget(tx, id, true)
}

fn forget(tx: &Transaction, id: Uuid, keep_uploads: bool) -> Result<Option<RecordKind>> {
    let row: Option<(i64, i64)> = tx
        .prepare_cached("SELECT rowid, kind FROM records WHERE id = ?1")?
        .query_row([id.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((rowid, _)) = row {
        index::delete_rows(tx, rowid)?;
        tx.prepare_cached("DELETE FROM records WHERE rowid = ?1")?
            .execute([rowid])?;
        // Until the purge that follows the commit has run whole (a process killed in its
        // rewrite of the file leaves it to the next opening).
        tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES (?1, x'01') ON CONFLICT (key) DO NOTHING",
        )?
        .execute([PURGE_PENDING])?;
    }
    for table in [
        "change_log",
        "sync_outbox",
        "sync_hub_heads",
        "sync_hub_heads_kept",
        "sync_refetch",
        "sync_left",
        "sync_refused",
        "quarantine",
    ] {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE record_id = ?1"))?
            .execute([id.as_bytes()])?;
    }
    // The attachments' keys: their files are collected after the commit.
    tx.prepare_cached(
        "DELETE FROM attachments WHERE record_id = ?1
         AND NOT (?2 AND upload = 1 AND state IN (?3, ?4))",
    )?
    .execute(params![
        id.as_bytes(),
        keep_uploads,
        AttachmentState::PendingUpload.code(),
        AttachmentState::Failed.code()
    ])?;
    Ok(row.and_then(|(_, kind)| RecordKind::from_i64(kind)))
}

/// Records that a record was erased, so that no old copy brings it back.
pub(crate) fn place_tombstone(
    tx: &Transaction,
    id: Uuid,
    seq: Option<i64>,
    at_ms: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO erased (record_id, seq, at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (record_id) DO NOTHING",
    )?
    .execute(params![id.as_bytes(), seq, at_ms])?;
    Ok(())
}

/// An erased record as an export lists it (`features::export`).
pub(crate) struct Tombstoned {
    pub id: Uuid,
    /// When the hub erased it; on a device, when the device learned of it.
    pub at_ms: i64,
    /// On the hub, where the record was filed when erased (`None` on a device, whose hub sent
    /// it the tombstones of its scope); the default area for a record the hub never held.
    pub filed: Option<(RecordKind, Area)>,
}

/// Every tombstone of this store, oldest first.
pub(crate) fn tombstones(conn: &Connection) -> Result<Vec<Tombstoned>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.record_id, e.at_ms, h.kind, h.country, h.region, h.district, h.community
         FROM erased e LEFT JOIN area_history h ON h.seq = e.seq AND h.record_id = e.record_id
         ORDER BY e.at_ms, e.record_id",
    )?;
    let mut rows = stmt.query([])?;
    let mut found = Vec::new();
    while let Some(r) = rows.next()? {
        let bytes: Vec<u8> = r.get(0)?;
        let Ok(id) = Uuid::from_slice(&bytes) else {
            continue;
        };
        let filed = match r.get::<_, Option<i64>>(2)?.and_then(RecordKind::from_i64) {
            Some(kind) => Some((
                kind,
                Area::new(
                    &r.get::<_, String>(3)?,
                    &r.get::<_, String>(4)?,
                    &r.get::<_, String>(5)?,
                    &r.get::<_, String>(6)?,
                ),
            )),
            None => None,
        };
        found.push(Tombstoned {
            id,
            at_ms: r.get(1)?,
            filed,
        });
    }
    Ok(found)
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
pub(crate) fn knows_erasures(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM erased_changes)")?
        .query_row([], |r| r.get(0))?)
}

/// Whether any of these changes belongs to an erased record.
pub(crate) fn any_erased_change(conn: &Connection, hashes: &[ChangeHash]) -> Result<bool> {
    any_hash_in(conn, "erased_changes", hashes)
}

/// Keeps changes never to be taken (`given_up_changes`, schema 24): on the hub, those a review
/// rejected; on a device, those it let go because the hub will never take them
/// (`AuthorRevoked`), which a peer or a bundle bringing them again is refused
/// (`peer::check_received`).
pub(crate) fn keep_given_up(tx: &Transaction, hashes: &[ChangeHash]) -> Result<()> {
    let mut stmt =
        tx.prepare_cached("INSERT OR IGNORE INTO given_up_changes (hash) VALUES (?1)")?;
    for hash in hashes {
        stmt.execute([hash.0.as_slice()])?;
    }
    Ok(())
}

/// Whether any of `hashes` is kept as never to be taken (`keep_given_up`).
pub(crate) fn any_given_up(conn: &Connection, hashes: &[ChangeHash]) -> Result<bool> {
    any_hash_in(conn, "given_up_changes", hashes)
}

/// Whether `table` (of change hashes, in its `hash` column) holds any of `hashes`.
pub(crate) fn any_hash_in(
    conn: &Connection,
    table: &'static str,
    hashes: &[ChangeHash],
) -> Result<bool> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE hash = ?1)"
    ))?;
    for hash in hashes {
        if stmt.query_row([hash.0], |r| r.get::<_, bool>(0))? {
            return Ok(true);
        }
    }
    Ok(false)
}

pub(crate) fn is_erased(conn: &Connection, id: Uuid) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM erased WHERE record_id = ?1)")?
        .query_row([id.as_bytes()], |r| r.get(0))?)
}

/// After records were forgotten: the full-text index is rewritten without their terms (FTS5
/// keeps deleted terms in old segments until a merge; secure_delete zeroes the pages it frees)
/// and the WAL is emptied, so that no copy of their content stays in any file; and when much
/// of the file is free pages, the file is rewritten without them (`give_back_free_pages`).
pub(crate) fn purge_freed_content(conn: &Connection) -> Result<()> {
    conn.execute(
        "INSERT INTO name_search (name_search) VALUES ('optimize')",
        [],
    )?;
    give_back_free_pages(conn)?;
    // Read first: the embedded hub purges after every write, and a write of nothing is still
    // a transaction.
    if purge_pending(conn)? {
        conn.execute("DELETE FROM meta WHERE key = ?1", [PURGE_PENDING])?;
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// Set (in `meta`) with the records' removal, cleared once `purge_freed_content` has run
/// whole: a store opened with it set was stopped before (the search index's terms of the
/// records removed, their pages in the file), and purges first.
pub(crate) const PURGE_PENDING: &str = "purge_pending";

/// Whether a purge was left undone (`PURGE_PENDING`).
pub(crate) fn purge_pending(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM meta WHERE key = ?1)",
        [PURGE_PENDING],
        |r| r.get(0),
    )?)
}

/// Free pages the store keeps to reuse rather than give back, at most: a quarter of its file,
/// and 1 MiB whatever the file.
const FREE_PAGES_KEPT_PERCENT: i64 = 25;
const FREE_BYTES_KEPT: i64 = 1024 * 1024;
/// The largest store rewritten to give back its free pages: the copy is built in memory
/// (`temp_store = MEMORY`: SQLCipher's temporary files would hold records in clear), which a
/// cheap phone affords for a district's records, not for a region's.
const REWRITTEN_AT_MOST: i64 = 16 * 1024 * 1024;

/// Rewrites the file without its free pages (`VACUUM`) when records that left took much of
/// it (a supervisor's region narrowed to a district kept 150 MB of a phone's storage for
/// good); pages freed by fewer departures are reused by the next writes.
fn give_back_free_pages(conn: &Connection) -> Result<()> {
    // SQLCipher answers `page_size` as text (its `cipher_page_size`).
    let pragma = |name: &str| -> Result<i64> {
        let value: rusqlite::types::Value =
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?;
        Ok(match value {
            rusqlite::types::Value::Integer(n) => n,
            rusqlite::types::Value::Text(t) => t.trim().parse().unwrap_or(0),
            _ => 0,
        })
    };
    let (pages, free, size) = (
        pragma("page_count")?,
        pragma("freelist_count")?,
        pragma("page_size")?,
    );
    let worth_it = free * size > FREE_BYTES_KEPT && free * 100 > pages * FREE_PAGES_KEPT_PERCENT;
    if worth_it && (pages - free) * size <= REWRITTEN_AT_MOST {
        conn.execute_batch("VACUUM")?;
    }
    Ok(())
}

//! What a device keeps of its sync with the hub, beside its records: the outbox (records with
//! changes the hub may lack, most urgent first), the heads the hub is known to hold, the
//! records to fetch whole, the records that left its scope, and small values in `meta` (the
//! hub's cursor and receipt, the user's profile as the hub told it, the device id). The sync
//! engine (`sync::client`) decides; these are its reads and writes.

use crate::codec;
use crate::domain::codes::RecordKind;
use crate::domain::rights::UserProfile;
use crate::error::{Error, Result};
use automerge::ChangeHash;
use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::HashSet;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Meta

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

pub(crate) fn delete_meta(tx: &Transaction, key: &str) -> Result<()> {
    tx.execute("DELETE FROM meta WHERE key = ?1", [key])?;
    Ok(())
}

/// The meta key of the time the hub said in the last answer this device applied
/// (milliseconds since 1970, little endian): what its clock is judged against
/// (`records::Today::on_device`).
const HUB_CLOCK_KEY: &str = "hub_clock_ms";

/// The time the hub said in the last answer this device applied, if any.
pub(crate) fn hub_clock(conn: &Connection) -> Result<Option<i64>> {
    Ok(get_meta(conn, HUB_CLOCK_KEY)?
        .and_then(|b| b.get(..8)?.try_into().ok())
        .map(i64::from_le_bytes))
}

/// Keeps `hub_now_ms`, the hub's time in the answer being applied, and this device's clock's
/// then: the last one counts, so that a hub whose clock ran ahead, once set right, is believed
/// again at the next sync.
pub(crate) fn set_hub_clock(tx: &Transaction, hub_now_ms: i64) -> Result<()> {
    let mut bytes = hub_now_ms.to_le_bytes().to_vec();
    bytes.extend(Utc::now().timestamp_millis().to_le_bytes());
    set_meta(tx, HUB_CLOCK_KEY, &bytes)
}

/// The time the lists of derived facts are judged at (an alert ends on the child's 18th
/// birthday): this device's clock, set right by what the last sync told of it
/// (`judged_now`). A phone whose clock ran two years ahead dropped a 16-year-old's alert.
pub(crate) fn judged_now_ms(conn: &Connection) -> Result<i64> {
    let told = get_meta(conn, HUB_CLOCK_KEY)?.and_then(|b| {
        let hub = i64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        let device = b
            .get(8..16)
            .and_then(|d| d.try_into().ok())
            .map(i64::from_le_bytes);
        Some((hub, device))
    });
    Ok(judged_now(Utc::now().timestamp_millis(), told))
}

/// `device_now`, judged against the hub's time at the last sync and the device's then
/// (`told`; the device's is unknown for a time an earlier version kept): a clock that ran
/// ahead of the hub's then is taken back by as much, while it reads no earlier than the hub
/// did (set right since, it reads what it says); a clock behind the hub's last time reads at
/// least that.
fn judged_now(device_now: i64, told: Option<(i64, Option<i64>)>) -> i64 {
    let Some((hub, device_then)) = told else {
        return device_now;
    };
    if let Some(ahead) = device_then
        .map(|then| then.saturating_sub(hub))
        .filter(|ahead| *ahead > crate::domain::records::CLOCK_TOLERANCE_MS)
    {
        let set_back = device_now.saturating_sub(ahead);
        if set_back >= hub {
            return set_back;
        }
    }
    device_now.max(hub)
}

/// This device's today for its own writes (`own`) or what it receives from peers: its clock,
/// judged against the latest time its hub told it.
pub(crate) fn today(conn: &Connection, own: bool) -> Result<crate::domain::records::Today> {
    let today = crate::domain::records::Today::on_device(hub_clock(conn)?, own);
    #[cfg(feature = "test-hooks")]
    let today = match get_meta(conn, DEBUG_CLOCK_AHEAD_KEY)?
        .and_then(|b| Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?)))
    {
        Some(days) => today.ahead_by(chrono::Days::new(days)),
        None => today,
    };
    Ok(today)
}

/// Tests: the days this device's clock is set ahead (`Store::debug_clock_ahead`).
#[cfg(feature = "test-hooks")]
const DEBUG_CLOCK_AHEAD_KEY: &str = "debug_clock_ahead_days";

#[cfg(feature = "test-hooks")]
pub(crate) fn set_debug_clock_ahead(tx: &Transaction, days: u64) -> Result<()> {
    set_meta(tx, DEBUG_CLOCK_AHEAD_KEY, &days.to_le_bytes())
}

/// The meta key of the user's role and areas (JSON of `UserProfile`).
const PROFILE_KEY: &str = "user_profile";

/// The user's role and areas as the hub last told them (`Store::user_profile`).
pub(crate) fn user_profile(conn: &Connection) -> Result<Option<UserProfile>> {
    Ok(get_meta(conn, PROFILE_KEY)?.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Keeps the user's role and areas as the hub told them, in the caller's transaction.
pub(crate) fn set_user_profile(tx: &Transaction, profile: &UserProfile) -> Result<()> {
    set_meta(
        tx,
        PROFILE_KEY,
        &serde_json::to_vec(profile).expect("a profile serializes"),
    )
}

// ---------------------------------------------------------------------------------------------
// The outbox

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

/// The kinds of record a device pushes: reference data and users are the hub's alone, and a
/// push of one is refused whatever it holds.
const PUSHED_KINDS: [RecordKind; 3] = [
    RecordKind::Workplace,
    RecordKind::Visit,
    RecordKind::ChildCase,
];

/// `PUSHED_KINDS` as an SQL list, e.g. `(1, 2, 3)`.
fn pushed_kinds_sql() -> String {
    let codes: Vec<String> = PUSHED_KINDS
        .iter()
        .map(|k| (*k as i64).to_string())
        .collect();
    format!("({})", codes.join(", "))
}

/// Queues a record just merged, as urgent as its alert row (written by the merge) says; a
/// record of a kind the device never pushes (reference data sent again whole when the user's
/// scope changed) is left out, and taken out if it was queued.
pub(crate) fn queue_merged(tx: &Transaction, id: Uuid) -> Result<()> {
    let priority: Option<i64> = tx
        .prepare_cached(&format!(
            "SELECT coalesce(max(a.severity), 0) FROM records r
             LEFT JOIN alert_index a ON a.record = r.rowid
             WHERE r.id = ?1 AND r.kind IN {}
             GROUP BY r.id",
            pushed_kinds_sql()
        ))?
        .query_row([id.as_bytes()], |r| r.get(0))
        .optional()?;
    match priority {
        Some(priority) => queue_for_hub(tx, id, priority),
        None => {
            tx.prepare_cached("DELETE FROM sync_outbox WHERE record_id = ?1")?
                .execute([id.as_bytes()])?;
            forget_hub_heads(tx, id)
        }
    }
}

/// Takes a record of a kind the device never pushes out of the outbox (queued by an earlier
/// version, which the hub refused at every sync); true if it was one.
pub(crate) fn unqueue_unpushed(tx: &Transaction, id: Uuid) -> Result<bool> {
    let removed = tx
        .prepare_cached(&format!(
            "DELETE FROM sync_outbox WHERE record_id = ?1 AND record_id IN
                (SELECT id FROM records WHERE id = ?1 AND kind NOT IN {})",
            pushed_kinds_sql()
        ))?
        .execute([id.as_bytes()])?;
    if removed > 0 {
        forget_hub_heads(tx, id)?;
    }
    Ok(removed > 0)
}

/// Marks a record whose changes the hub refused (`sync_refused`), or clears the mark once the
/// hub takes them.
pub(crate) fn mark_refused(tx: &Transaction, id: Uuid, refused: bool) -> Result<()> {
    if refused {
        tx.prepare_cached("INSERT OR IGNORE INTO sync_refused (record_id) VALUES (?1)")?
            .execute([id.as_bytes()])?;
    } else {
        tx.prepare_cached("DELETE FROM sync_refused WHERE record_id = ?1")?
            .execute([id.as_bytes()])?;
    }
    Ok(())
}

/// The records whose changes the hub refused and has not taken since: no peer is offered them.
pub(crate) fn refused_ids(conn: &Connection) -> Result<HashSet<Uuid>> {
    let mut stmt = conn.prepare_cached("SELECT record_id FROM sync_refused")?;
    let ids = stmt
        .query_map([], |row| row.get::<_, Vec<u8>>(0))?
        .filter_map(|bytes| bytes.ok().and_then(|b| Uuid::from_slice(&b).ok()))
        .collect();
    Ok(ids)
}

/// A refused record stays in the outbox, behind the others, so that it never blocks the queue:
/// queued after every record it holds (`after_the_outbox`), also when the clock went back.
pub(crate) fn queue_behind(tx: &Transaction, id: Uuid) -> Result<()> {
    let after = after_the_outbox(tx)?;
    tx.prepare_cached("UPDATE sync_outbox SET queued_ms = ?2, priority = 0 WHERE record_id = ?1")?
        .execute(params![id.as_bytes(), after])?;
    Ok(())
}

/// A time, in the outbox's milliseconds, after every record it holds was queued: now, or just
/// past the latest if the clock went back.
pub(crate) fn after_the_outbox(conn: &Connection) -> Result<i64> {
    let latest: Option<i64> = conn
        .prepare_cached("SELECT max(queued_ms) FROM sync_outbox")?
        .query_row([], |r| r.get(0))?;
    let now = Utc::now().timestamp_millis();
    Ok(latest.map_or(now, |latest| now.max(latest.saturating_add(1))))
}

/// Whether the outbox holds a record queued before `since` (set behind since, a record is
/// queued after it) that is not among `carried`.
pub(crate) fn queued_before(
    conn: &Connection,
    since: i64,
    carried: &dyn Fn(Uuid) -> bool,
) -> Result<bool> {
    let mut stmt = conn.prepare_cached("SELECT record_id FROM sync_outbox WHERE queued_ms < ?1")?;
    let mut rows = stmt.query([since])?;
    while let Some(row) = rows.next()? {
        if !carried(uuid_of(&row.get::<_, Vec<u8>>(0)?)?) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Offers every record this device may push (workplaces, visits, child cases) to the hub again,
/// as if the hub held each one as the device does: the next pushes send only their heads, and
/// the hub answers each with what it lacks (`SyncResponse::reoffer`: the hub lost what it had
/// told the device it held). Records already queued keep their place and what the hub was
/// known to hold.
pub(crate) fn queue_all_again(tx: &Transaction) -> Result<()> {
    let kinds = pushed_kinds_sql();
    tx.execute(
        &format!(
            "INSERT INTO sync_hub_heads (record_id, heads)
             SELECT r.id, r.heads FROM records r WHERE r.kind IN {kinds}
                AND NOT EXISTS (SELECT 1 FROM sync_outbox o WHERE o.record_id = r.id)
             ON CONFLICT (record_id) DO NOTHING"
        ),
        [],
    )?;
    tx.execute(
        &format!(
            "INSERT INTO sync_outbox (record_id, queued_ms, priority)
             SELECT r.id, ?1, 0 FROM records r WHERE r.kind IN {kinds}
             ON CONFLICT (record_id) DO NOTHING"
        ),
        [Utc::now().timestamp_millis()],
    )?;
    Ok(())
}

/// A record in the outbox: its stored document and the heads the hub is known to hold.
pub(crate) struct Queued {
    pub id: Uuid,
    pub stored: Vec<u8>,
    pub hub_heads: Vec<ChangeHash>,
}

/// The outbox, most urgent first, until `take` says stop (returns false).
pub(crate) fn for_each_queued(
    conn: &Connection,
    mut take: impl FnMut(Queued) -> Result<bool>,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        // CROSS JOIN keeps the outbox as the outer loop: otherwise SQLite may scan every
        // record (and read every document page) to find the few queued.
        "SELECT o.record_id, r.doc, h.heads FROM sync_outbox o
         CROSS JOIN records r ON r.id = o.record_id
         LEFT JOIN sync_hub_heads h ON h.record_id = o.record_id
         ORDER BY o.priority DESC, o.queued_ms, o.record_id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let queued = Queued {
            id: uuid_of(&row.get::<_, Vec<u8>>(0)?)?,
            stored: row.get(1)?,
            hub_heads: row
                .get::<_, Option<Vec<u8>>>(2)?
                .map(|b| codec::heads_of(&b))
                .unwrap_or_default(),
        };
        if !take(queued)? {
            break;
        }
    }
    Ok(())
}

/// Records waiting to be sent to the hub.
pub(crate) fn outbox_len(conn: &Connection) -> Result<usize> {
    count(conn, "SELECT count(*) FROM sync_outbox")
}

/// Whether the record waits in the outbox for the hub.
pub(crate) fn is_pending(conn: &Connection, id: Uuid) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM sync_outbox WHERE record_id = ?1)")?
        .query_row([id.as_bytes()], |r| r.get(0))?)
}

// ---------------------------------------------------------------------------------------------
// What the hub holds
//
// A record out of the outbox is one the hub holds exactly as the device does: it has no row in
// `sync_hub_heads` (a region's 150,000 records would otherwise each keep a copy of their own
// heads). A row is kept only while the record waits in the outbox, and says from where the
// next push starts; a queued record without one is sent whole.

/// Records the heads the hub holds for a record; the record stays in (or joins) the outbox
/// unless the device holds exactly the same. `local` are the device's heads for the record,
/// when the caller has them at hand.
pub(crate) fn record_hub_heads(
    tx: &Transaction,
    id: Uuid,
    hub: &[ChangeHash],
    local: Option<&[ChangeHash]>,
) -> Result<()> {
    let mut local = match local {
        Some(heads) => heads.to_vec(),
        None => {
            let stored: Option<Vec<u8>> = tx
                .prepare_cached("SELECT heads FROM records WHERE id = ?1")?
                .query_row([id.as_bytes()], |r| r.get(0))
                .optional()?;
            let Some(stored) = stored else {
                return set_hub_heads(tx, id, hub);
            };
            codec::heads_of(&stored)
        }
    };
    let mut hub = hub.to_vec();
    local.sort();
    hub.sort();
    if local == hub {
        tx.prepare_cached("DELETE FROM sync_outbox WHERE record_id = ?1")?
            .execute([id.as_bytes()])?;
        forget_hub_heads(tx, id)
    } else {
        set_hub_heads(tx, id, &hub)?;
        queue_merged(tx, id)
    }
}

/// Before a record out of the outbox is rewritten, keeps the heads it has as those the hub
/// holds (see above): should the write queue it, the next push starts from there.
pub(crate) fn keep_hub_heads_before_edit(tx: &Transaction, rowid: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO sync_hub_heads (record_id, heads)
         SELECT r.id, r.heads FROM records r WHERE r.rowid = ?1
            AND NOT EXISTS (SELECT 1 FROM sync_outbox o WHERE o.record_id = r.id)
         ON CONFLICT (record_id) DO NOTHING",
    )?
    .execute([rowid])?;
    Ok(())
}

/// The heads the hub holds for a record, as it told them.
fn set_hub_heads(tx: &Transaction, id: Uuid, heads: &[ChangeHash]) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO sync_hub_heads (record_id, heads) VALUES (?1, ?2)
         ON CONFLICT (record_id) DO UPDATE SET heads = excluded.heads",
    )?
    .execute(params![id.as_bytes(), codec::heads_bytes(heads)])?;
    tx.prepare_cached("DELETE FROM sync_hub_heads_kept WHERE record_id = ?1")?
        .execute([id.as_bytes()])?;
    Ok(())
}

/// Forgets what the hub was thought to hold of a record: the next push sends it all.
pub(crate) fn forget_hub_heads(tx: &Transaction, id: Uuid) -> Result<()> {
    tx.prepare_cached("DELETE FROM sync_hub_heads WHERE record_id = ?1")?
        .execute([id.as_bytes()])?;
    tx.prepare_cached("DELETE FROM sync_hub_heads_kept WHERE record_id = ?1")?
        .execute([id.as_bytes()])?;
    Ok(())
}

/// The hub said it lacks the history a push built on (`MissingHistory`): the next push sends
/// the record whole, and the version the hub was known to hold is kept apart, to rebuild the
/// record on should the hub refuse changes it holds for good (`kept_hub_heads`).
pub(crate) fn forget_hub_heads_for_a_whole_push(tx: &Transaction, id: Uuid) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO sync_hub_heads_kept (record_id, heads)
         SELECT record_id, heads FROM sync_hub_heads WHERE record_id = ?1
         ON CONFLICT (record_id) DO UPDATE SET heads = excluded.heads",
    )?
    .execute([id.as_bytes()])?;
    tx.prepare_cached("DELETE FROM sync_hub_heads WHERE record_id = ?1")?
        .execute([id.as_bytes()])?;
    Ok(())
}

/// The version of a record the hub was last known to hold: as it told it, else as kept when
/// a push had to go whole (`forget_hub_heads_for_a_whole_push`).
pub(crate) fn known_hub_heads(conn: &Connection, id: Uuid) -> Result<Option<Vec<ChangeHash>>> {
    if let Some(heads) = hub_heads(conn, id)? {
        return Ok(Some(heads));
    }
    let kept: Option<Vec<u8>> = conn
        .prepare_cached("SELECT heads FROM sync_hub_heads_kept WHERE record_id = ?1")?
        .query_row([id.as_bytes()], |r| r.get(0))
        .optional()?;
    Ok(kept.map(|h| codec::heads_of(&h)))
}

// ---------------------------------------------------------------------------------------------
// Records to fetch whole, records that left the scope

pub(crate) fn mark_refetch(tx: &Transaction, id: Uuid) -> Result<()> {
    tx.prepare_cached("INSERT INTO sync_refetch (record_id) VALUES (?1) ON CONFLICT DO NOTHING")?
        .execute([id.as_bytes()])?;
    Ok(())
}

/// Whether the record waits to be fetched whole from the hub (`mark_refetch`).
pub(crate) fn refetch_marked(conn: &Connection, id: Uuid) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM sync_refetch WHERE record_id = ?1")?
        .exists([id.as_bytes()])?)
}

pub(crate) fn clear_refetch(tx: &Transaction, id: Uuid) -> Result<()> {
    tx.prepare_cached("DELETE FROM sync_refetch WHERE record_id = ?1")?
        .execute([id.as_bytes()])?;
    Ok(())
}

/// Records to fetch whole, at most `limit`.
pub(crate) fn refetch_ids(conn: &Connection, limit: u32) -> Result<Vec<Uuid>> {
    Ok(conn
        .prepare_cached("SELECT record_id FROM sync_refetch LIMIT ?1")?
        .query_map([limit], |r| r.get::<_, Vec<u8>>(0))?
        .filter_map(|b| b.ok().and_then(|b| Uuid::from_slice(&b).ok()))
        .collect())
}

/// Records waiting to be fetched whole from the hub.
pub(crate) fn refetch_len(conn: &Connection) -> Result<usize> {
    count(conn, "SELECT count(*) FROM sync_refetch")
}

/// Notes that a record left this device's scope: it goes once nothing of it waits for the hub.
pub(crate) fn mark_left(tx: &Transaction, id: Uuid) -> Result<()> {
    tx.prepare_cached("INSERT INTO sync_left (record_id) VALUES (?1) ON CONFLICT DO NOTHING")?
        .execute([id.as_bytes()])?;
    Ok(())
}

/// Whether a record left this device's scope (`mark_left`) and waits to go.
pub(crate) fn has_left(conn: &Connection, id: Uuid) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM sync_left WHERE record_id = ?1)")?
        .query_row([id.as_bytes()], |r| r.get(0))?)
}

/// The heads the hub was last told to hold of a record in the outbox, if known.
pub(crate) fn hub_heads(conn: &Connection, id: Uuid) -> Result<Option<Vec<ChangeHash>>> {
    let heads: Option<Vec<u8>> = conn
        .prepare_cached("SELECT heads FROM sync_hub_heads WHERE record_id = ?1")?
        .query_row([id.as_bytes()], |r| r.get(0))
        .optional()?;
    Ok(heads.map(|h| codec::heads_of(&h)))
}

/// Takes a record out of the outbox, as if the hub held it.
pub(crate) fn unqueue(tx: &Transaction, id: Uuid) -> Result<()> {
    tx.prepare_cached("DELETE FROM sync_outbox WHERE record_id = ?1")?
        .execute([id.as_bytes()])?;
    forget_hub_heads(tx, id)
}

/// The record is the device's to hold after all (the hub took it, or sent it again).
pub(crate) fn clear_left(tx: &Transaction, id: Uuid) -> Result<()> {
    tx.prepare_cached("DELETE FROM sync_left WHERE record_id = ?1")?
        .execute([id.as_bytes()])?;
    Ok(())
}

/// The records that left the scope and have nothing waiting for the hub.
pub(crate) fn leaving(tx: &Transaction) -> Result<Vec<Uuid>> {
    let ids: Vec<Vec<u8>> = tx
        .prepare_cached(
            "SELECT l.record_id FROM sync_left l
             WHERE NOT EXISTS (SELECT 1 FROM sync_outbox o WHERE o.record_id = l.record_id)",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ids.iter().map(|id| uuid_of(id)).collect()
}

fn count(conn: &Connection, sql: &str) -> Result<usize> {
    let n: i64 = conn.prepare_cached(sql)?.query_row([], |r| r.get(0))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

fn uuid_of(bytes: &[u8]) -> Result<Uuid> {
    Uuid::from_slice(bytes).map_err(|_| Error::DamagedDocument {
        id: Uuid::nil(),
        reason: "a record id in the store is not 16 bytes".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::judged_now;

    const DAY: i64 = 86_400_000;

    #[test]
    fn a_clock_is_judged_by_what_the_last_sync_told_of_it() {
        let hub = 1_800_000_000_000;
        // Never synced, or right at the sync: the clock.
        assert_eq!(judged_now(hub + DAY, None), hub + DAY);
        assert_eq!(
            judged_now(hub + DAY, Some((hub, Some(hub + 1000)))),
            hub + DAY
        );
        // Two years ahead at the sync, a day later by it: the real day after.
        let ahead = 730 * DAY;
        assert_eq!(
            judged_now(hub + ahead + DAY, Some((hub, Some(hub + ahead)))),
            hub + DAY
        );
        // Set right since: it reads what it says.
        assert_eq!(
            judged_now(hub + DAY, Some((hub, Some(hub + ahead)))),
            hub + DAY
        );
        // Fallen back to 2000 after the sync, or a time kept by an earlier version: no earlier
        // than the hub's last time.
        assert_eq!(judged_now(946_684_800_000, Some((hub, Some(hub)))), hub);
        assert_eq!(judged_now(946_684_800_000, Some((hub, None))), hub);
    }
}

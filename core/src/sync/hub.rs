//! The hub's side of sync: the same store and the same documents as a device, with the rules of
//! who may send and receive what.
//!
//! Authorization is partial replication: a principal receives only records of the kinds its role
//! works with, in its areas, and may change only those. A record that breaks a rule is refused on
//! its own, reported to the sender, and never blocks the rest of the request.

use super::client::changes_after;
use super::wire::{
    self, Cursor, PullEntry, PushAck, PushEntry, PushOutcome, Refusal, SyncRequest, SyncResponse,
};
use crate::doc::{self, ChangeAuthor};
use crate::error::{Error, Result};
use crate::model::{Area, RecordKind, Role};
use crate::store::{self, Origin, Store, TypedRecord, WriteContext};
use automerge::{ChangeHash, ReadDoc};
use chrono::Utc;
use rusqlite::types::Value as Sql;
use rusqlite::{OptionalExtension, Transaction, params_from_iter};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashSet};
use uuid::Uuid;

/// Who is syncing: an enrolled device and the user it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub device: Uuid,
    pub user: Uuid,
    pub role: Role,
    /// Area codes assigned to the user, matched at any level of a record's area.
    pub areas: BTreeSet<String>,
}

impl Principal {
    /// The kinds of record this role receives and may change. Never `Reference`: every
    /// principal receives reference data (`scope_filter`), only the hub changes it.
    pub fn kinds(&self) -> &'static [RecordKind] {
        match self.role {
            Role::CommunityMonitor => &[RecordKind::ChildCase, RecordKind::Visit],
            Role::Inspector => &[RecordKind::Workplace, RecordKind::Visit],
            Role::Supervisor => &[
                RecordKind::Workplace,
                RecordKind::Visit,
                RecordKind::ChildCase,
            ],
        }
    }

    pub fn covers(&self, area: &Area) -> bool {
        area.codes().iter().any(|c| self.areas.contains(*c))
    }

    /// Changes when the role or the areas change, so that a cursor issued for another scope is
    /// not reused.
    fn scope_fingerprint(&self) -> u64 {
        let mut hash = Sha256::new();
        hash.update([self.role as u8]);
        for area in &self.areas {
            hash.update(area.as_bytes());
            hash.update([0]);
        }
        u64::from_le_bytes(hash.finalize()[..8].try_into().expect("8 bytes"))
    }
}

/// Bounds on what one request may ask of the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubLimits {
    /// Compressed request size (the HTTP layer enforces it before reading the body).
    pub max_request_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_push_records: usize,
    pub max_refetch_records: usize,
    /// The largest response, before compression, whatever the device asks.
    pub max_response_bytes: usize,
    /// A change dated further in the future than this, by the device's clock, flags the clock.
    pub clock_skew_ms: i64,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            max_request_bytes: 8 * 1024 * 1024,
            max_decompressed_bytes: 32 * 1024 * 1024,
            max_push_records: 5_000,
            max_refetch_records: 1_000,
            max_response_bytes: 4 * 1024 * 1024,
            clock_skew_ms: 10 * 60 * 1000,
        }
    }
}

/// Why a request as a whole was refused (a 4xx), or failed on the hub (a 5xx).
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("malformed request: {0}")]
    Malformed(#[from] wire::DecodeError),
    #[error("request exceeds a limit: {0}")]
    TooLarge(&'static str),
    #[error("the request's actor is not bound to the authenticated device")]
    ActorNotBound,
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<rusqlite::Error> for HubError {
    fn from(e: rusqlite::Error) -> Self {
        HubError::Store(Error::Storage(e))
    }
}

/// Dates before this are a clock that was never set.
const EARLIEST_PLAUSIBLE_MS: i64 = 1_577_836_800_000; // 2020-01-01

impl Store {
    /// Handles one sync request from an authenticated device, in one transaction: its pushes are
    /// stored (or refused one by one) and the records it lacks are returned.
    pub fn hub_handle(
        &mut self,
        who: &Principal,
        request: &[u8],
        limits: &HubLimits,
    ) -> std::result::Result<Vec<u8>, HubError> {
        if request.len() > limits.max_request_bytes {
            return Err(HubError::TooLarge("request bytes"));
        }
        let request: SyncRequest = wire::decode(
            wire::REQUEST_TAG,
            "sync request",
            request,
            limits.max_decompressed_bytes,
        )?;
        if request.push.len() > limits.max_push_records {
            return Err(HubError::TooLarge("records pushed"));
        }
        if request.refetch.len() > limits.max_refetch_records {
            return Err(HubError::TooLarge("records asked for"));
        }
        let requester = automerge::ActorId::from(request.actor.clone());
        if doc::device_of_actor(&requester) != Some(who.device) {
            return Err(HubError::ActorNotBound);
        }
        let ctx = WriteContext {
            origin: Origin::Remote,
            author: Some(ChangeAuthor {
                user: who.user,
                device: who.device,
            }),
            queue_for_hub: false,
        };
        let actor = self.actor.clone();
        let budget =
            (request.max_response_bytes as usize).clamp(16 * 1024, limits.max_response_bytes);

        let tx = self.conn.transaction()?;
        let mut acks = Vec::with_capacity(request.push.len());
        let mut size = 0usize;
        for entry in &request.push {
            let outcome = accept_push(&tx, &ctx, &actor, who, entry, limits)?;
            if let PushOutcome::Accepted { catch_up, .. } = &outcome {
                size += catch_up.len();
            }
            acks.push(PushAck {
                id: entry.id,
                outcome,
            });
        }
        let pushed: HashSet<Uuid> = request.push.iter().map(|e| e.id).collect();
        let mut records = Vec::new();
        for id in &request.refetch {
            if let Some(entry) = whole_record(&tx, who, *id)? {
                size += entry.changes.len();
                records.push(entry);
            }
        }
        let scope = who.scope_fingerprint();
        let cursor = match request.cursor {
            Some(c) if c.scope == scope => c,
            _ => Cursor {
                since: 0,
                after: 0,
                scope,
            },
        };
        let (pulled, next, more) = pull(
            &tx,
            who,
            &requester,
            cursor,
            &pushed,
            budget.saturating_sub(size),
        )?;
        records.extend(pulled);
        tx.commit()?;
        Ok(wire::encode(
            wire::RESPONSE_TAG,
            &SyncResponse {
                acks,
                records,
                cursor: next,
                more,
            },
        ))
    }
}

fn refused(reason: Refusal) -> PushOutcome {
    PushOutcome::Refused { reason }
}

/// Stores one pushed record, or says why not. Every check comes before the first write, so a
/// refusal leaves the transaction as it was.
fn accept_push(
    tx: &Transaction,
    ctx: &WriteContext,
    actor: &automerge::ActorId,
    who: &Principal,
    entry: &PushEntry,
    limits: &HubLimits,
) -> Result<PushOutcome> {
    let (existing, mut document) = store::load_or_new(tx, actor, entry.id)?;
    if let Some((rowid, kind)) = existing {
        if !who.kinds().contains(&kind) {
            return Ok(refused(Refusal::KindNotAllowed));
        }
        // The hub's copy must be the sender's to change: its area as the hub holds it now.
        if !stored_area_covered(tx, who, rowid)? {
            return Ok(refused(Refusal::OutOfScope));
        }
    }
    let before = document.get_heads();
    if store::decode_into(&mut document, entry.id, &entry.changes).is_err() {
        return Ok(refused(Refusal::Damaged));
    }
    if !document.get_missing_deps(&[]).is_empty() {
        return Ok(refused(Refusal::MissingHistory));
    }
    let new_changes = document.get_changes(&before);
    let mut clock_skewed = false;
    let now = Utc::now().timestamp_millis();
    for change in &new_changes {
        if doc::device_of_actor(change.actor_id()) != Some(who.device) {
            return Ok(refused(Refusal::ForeignChanges));
        }
        let t = change.timestamp();
        clock_skewed |= t > now + limits.clock_skew_ms || t < EARLIEST_PLAUSIBLE_MS;
    }
    if !new_changes.is_empty() {
        let Some(kind) = doc::kind_of(&document) else {
            return Ok(refused(Refusal::Invalid));
        };
        if existing.is_some_and(|(_, k)| k != kind) {
            return Ok(refused(Refusal::WrongKind));
        }
        if !who.kinds().contains(&kind) {
            return Ok(refused(Refusal::KindNotAllowed));
        }
        let Ok(record) = TypedRecord::read(kind, entry.id, &document) else {
            return Ok(refused(Refusal::Invalid));
        };
        // A record may not be moved out of the sender's areas either.
        if !record.area().is_some_and(|a| who.covers(a)) {
            return Ok(refused(Refusal::OutOfScope));
        }
        store::save_document(
            tx,
            ctx,
            entry.id,
            kind,
            existing.map(|(r, _)| r),
            &mut document,
            &before,
        )?;
    } else if existing.is_none() {
        // Nothing new and nothing stored: an empty push for an unknown record.
        return Ok(refused(Refusal::Invalid));
    }
    let hub_heads = document.get_heads();
    let device_heads: Vec<ChangeHash> = entry.heads.iter().map(|h| ChangeHash(*h)).collect();
    let mut sorted_hub = hub_heads.clone();
    let mut sorted_device = device_heads.clone();
    sorted_hub.sort();
    sorted_device.sort();
    let catch_up = if sorted_hub == sorted_device {
        Vec::new()
    } else {
        changes_after(&document, &device_heads)
    };
    Ok(PushOutcome::Accepted {
        hub_heads: hub_heads.iter().map(|h| h.0).collect(),
        catch_up,
        clock_skewed,
    })
}

fn stored_area_covered(tx: &Transaction, who: &Principal, rowid: i64) -> Result<bool> {
    let area: Option<(String, String, String, String)> = tx
        .prepare_cached(
            "SELECT country, region, district, community FROM scope_index WHERE record = ?1",
        )?
        .query_row([rowid], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    Ok(area.is_some_and(|(c, r, d, m)| who.covers(&Area::new(&c, &r, &d, &m))))
}

/// A record sent whole (asked for again by the device), if it is the device's to see.
fn whole_record(tx: &Transaction, who: &Principal, id: Uuid) -> Result<Option<PullEntry>> {
    let Some((rowid, kind, bytes)) = store::find_row(tx, id)? else {
        return Ok(None);
    };
    // Reference data goes to every principal (it is never in `kinds()`, so never accepted).
    let reference = kind == RecordKind::Reference;
    if !reference && (!who.kinds().contains(&kind) || !stored_area_covered(tx, who, rowid)?) {
        return Ok(None);
    }
    let document = doc::load(id, &bytes)?;
    Ok(Some(PullEntry {
        id,
        changes: bytes,
        hub_heads: document.get_heads().iter().map(|h| h.0).collect(),
    }))
}

/// SQL matching the principal's kinds and areas on `scope_index s`, with its parameters.
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

/// Records in scope that changed after the cursor, each with the changes the device lacks, up
/// to `budget` bytes. Returns them, the cursor to issue, and whether more are waiting.
fn pull(
    tx: &Transaction,
    who: &Principal,
    requester: &automerge::ActorId,
    cursor: Cursor,
    skip: &HashSet<Uuid>,
    budget: usize,
) -> Result<(Vec<PullEntry>, Cursor, bool)> {
    const BATCH: i64 = 1_000;
    let high_water: i64 =
        tx.query_row("SELECT coalesce(max(seq), 0) FROM change_log", [], |r| {
            r.get(0)
        })?;
    let (filter, filter_params) = scope_filter(who);
    let sql = format!(
        // Walk the records in change order: left to itself, SQLite may prefer an area index and
        // scan every record in scope on each request (0.5 s at 150k records).
        "SELECT r.id, r.doc, r.last_seq, r.heads
         FROM records r INDEXED BY records_by_last_seq JOIN scope_index s ON s.record = r.rowid
         WHERE r.last_seq > ?1 AND r.last_seq <= ?2 AND {filter}
         ORDER BY r.last_seq LIMIT {BATCH}"
    );
    let mut params = vec![Sql::Integer(cursor.after), Sql::Integer(high_water)];
    params.extend(filter_params);
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(params))?;
    let mut entries = Vec::new();
    let mut size = 0usize;
    let mut last = cursor.after;
    let mut seen = 0i64;
    while let Some(row) = rows.next()? {
        seen += 1;
        let id =
            Uuid::from_slice(&row.get::<_, Vec<u8>>(0)?).map_err(|_| Error::DamagedDocument {
                id: Uuid::nil(),
                reason: "a record id in the store is not 16 bytes".into(),
            })?;
        let last_seq: i64 = row.get(2)?;
        if !skip.contains(&id) {
            let heads: Vec<u8> = row.get(3)?;
            if let Some(entry) = lacking(tx, id, row.get(1)?, &heads, cursor.since, requester)? {
                if !entries.is_empty() && size + entry.changes.len() > budget {
                    return Ok((
                        entries,
                        Cursor {
                            after: last,
                            ..cursor
                        },
                        true,
                    ));
                }
                size += entry.changes.len();
                entries.push(entry);
            }
        }
        last = last_seq;
    }
    if seen == BATCH {
        return Ok((
            entries,
            Cursor {
                after: last,
                ..cursor
            },
            true,
        ));
    }
    let done = Cursor {
        since: high_water,
        after: high_water,
        scope: cursor.scope,
    };
    Ok((entries, done, false))
}

/// What a device with `cursor.since` lacks of one record: nothing if every change after it is
/// its own; the whole document if it never had the record; else the others' changes. Only the
/// last case needs the document decoded.
fn lacking(
    tx: &Transaction,
    id: Uuid,
    stored: Vec<u8>,
    heads: &[u8],
    since: i64,
    requester: &automerge::ActorId,
) -> Result<Option<PullEntry>> {
    let mut stmt = tx.prepare_cached(
        "SELECT seq, changes, device_id FROM change_log WHERE record_id = ?1 ORDER BY seq",
    )?;
    let log: Vec<(i64, Vec<u8>, Option<Vec<u8>>)> = stmt
        .query_map([id.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let hub_heads: Vec<[u8; 32]> = store::heads_of(heads).iter().map(|h| h.0).collect();
    let requester_device = doc::device_of_actor(requester);
    let created_by_requester = log.first().is_some_and(|(_, _, device)| {
        device.as_deref().and_then(|d| Uuid::from_slice(d).ok()) == requester_device
    });
    let first_seq = log.first().map_or(0, |(s, _, _)| *s);
    let bytes = store::decode_stored(id, stored)?;
    if first_seq > since && !created_by_requester {
        // No heads: they are the document's own, which the device reads once it has it
        // (32 incompressible bytes a record saved on an initial sync).
        return Ok(Some(PullEntry {
            id,
            changes: bytes,
            hub_heads: Vec::new(),
        }));
    }
    let document = doc::load(id, &bytes)?;
    let mut changes = Vec::new();
    for (_, hashes, _) in log.iter().filter(|(seq, _, _)| *seq > since) {
        for hash in store::heads_of(hashes) {
            if let Some(change) = document.get_change_by_hash(&hash)
                && change.actor_id() != requester
            {
                changes.extend_from_slice(change.raw_bytes());
            }
        }
    }
    Ok((!changes.is_empty()).then_some(PullEntry {
        id,
        changes,
        hub_heads,
    }))
}

//! Merging what a device receives (from the hub, a peer, a bundle, a hand-over), including the
//! one case where the device's own history must be rewritten: a store restored from an older
//! copy (a phone restored from a backup, a store copied to a replacement phone).
//!
//! Such a store numbers its next changes with sequence numbers its actor already used for the
//! changes it made after the copy was taken, which the hub holds. Automerge refuses a second
//! change with the same actor and number, so neither side could ever take the other's. When a
//! change of this device arrives that the store does not hold under its number, the store
//! starts a new actor (a new nonce, persisted) and moves its own edits made since onto it: the
//! record is forked just before the reused numbers, its current values are written onto the fork
//! as one change of the new actor, and the received changes then merge. Nothing the user typed
//! is lost; the record's history shows the edits as one.

use super::{
    Context, Merged, PreparedMerge, WriteContext, commit_merge, erasure, find_row, merge_document,
    prepare_received, save_document, sync_state, whole_document,
};
use crate::codec;
use crate::doc::{self, ChangeAuthor};
use crate::domain::codes::RecordKind;
use crate::domain::records::{ChildCase, Record, Visit, Workplace};
use crate::error::{Error, Result};
use crate::storage::ReferenceCache;
use automerge::{ActorId, Automerge, ChangeHash};
use rusqlite::Transaction;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use uuid::Uuid;

/// What merging in one transaction needs; the store takes the actor back after the commit
/// (`Store::receive`), since a merge may have replaced it.
pub(crate) struct Receiver {
    /// How received changes are recorded.
    pub ctx: WriteContext,
    /// How the store's own moved edits are recorded (a local write, queued for the hub).
    local: WriteContext,
    pub actor: ActorId,
    author: ChangeAuthor,
    /// Child cases held here that what arrived made merged duplicates, with their heads before
    /// (`features::duplicates::carry_over`, before the transaction commits).
    pub merged_away: Vec<(Uuid, Vec<ChangeHash>)>,
}

impl Receiver {
    pub(crate) fn of(ctx: &Context) -> Receiver {
        Receiver {
            ctx: ctx.received(),
            local: ctx.local(),
            actor: ctx.actor.clone(),
            author: ctx.author,
            merged_away: Vec::new(),
        }
    }

    /// Keeps what a merge says the caller must know after the merges.
    fn note(&mut self, id: Uuid, merged: Result<Merged>) -> Result<Merged> {
        if let Ok(Merged {
            merged_away: Some(before),
            ..
        }) = &merged
            && self.ctx.on_device
        {
            self.merged_away.push((id, before.clone()));
        }
        merged
    }
}

/// Merging received documents in one transaction of the store (`Store::receive`).
pub(crate) struct Merging<'t, 'c> {
    pub tx: &'t Transaction<'c>,
    pub receiver: &'t mut Receiver,
    pub cache: &'t ReferenceCache,
    /// Whether documents may come without their heads (`Merging::headless_documents`).
    pub headless: bool,
}

impl Merging<'_, '_> {
    /// Merges received bytes into a record (see `merge_received`).
    pub(crate) fn merge(&mut self, id: Uuid, bytes: &[u8]) -> Result<Merged> {
        let bytes = whole_document(id, bytes, self.headless)?;
        let merged = merge_received(self.tx, self.receiver, self.cache, id, &bytes);
        self.receiver.note(id, merged)
    }

    /// Merges received records in their order, calling `then` with each one's outcome before
    /// the next is written. A record's Automerge work (decoding, checks, reading it as its
    /// record, encoding) needs no store: it is done on worker threads, ahead of this thread,
    /// which writes each record in turn. That work is most of a merge, and a phone has several
    /// cores. The outcome of each merge is the one `merge` gives.
    pub(crate) fn merge_each(
        &mut self,
        entries: &[(Uuid, &[u8])],
        mut then: impl FnMut(&mut Self, usize, Result<Merged>) -> Result<()>,
    ) -> Result<()> {
        let workers = merge_workers(entries.len());
        if workers == 0 {
            for (i, (id, bytes)) in entries.iter().enumerate() {
                let merged = self.merge(*id, bytes);
                then(self, i, merged)?;
            }
            return Ok(());
        }
        // Every row is read before anything is written: the rows of distinct ids that are not
        // erased. A second copy of an id, or a row that does not read, is merged on this
        // thread, in its turn, as `merge` does.
        let mut seen = HashSet::new();
        let mut rows = Vec::with_capacity(entries.len());
        for (id, _) in entries {
            let row = if !seen.insert(*id) || erasure::is_erased(self.tx, *id)? {
                None
            } else {
                find_row(self.tx, *id).ok()
            };
            rows.push(row);
        }
        let next = AtomicUsize::new(0);
        let actor = self.receiver.actor.clone();
        let headless = self.headless;
        let (rows, actor, next) = (&rows, &actor, &next);
        std::thread::scope(|scope| {
            // Bounded, so that workers never run far ahead of the writes (memory stays that of a
            // few chunks of documents per worker), with room for a few chunks each: the writer
            // takes records in order, and a worker whose chunk is not next keeps working while
            // the one that is finishes.
            let (send, receive) = std::sync::mpsc::sync_channel(workers * 4);
            let mut started = 0;
            for _ in 0..workers {
                let send = send.clone();
                let work = move || {
                    loop {
                        // Records are handed over a chunk at a time: one wake-up of the writer
                        // per record was a twentieth of a phone's time on an initial sync.
                        let start = next.fetch_add(MERGE_CHUNK, Ordering::Relaxed);
                        if start >= entries.len() {
                            break;
                        }
                        let chunk: Vec<_> = (start..entries.len().min(start + MERGE_CHUNK))
                            .map(|i| {
                                let (id, bytes) = entries[i];
                                let prepared = rows[i].as_ref().map(|row| {
                                    let existing = row.as_ref().map(|(_, _, stored)| &stored[..]);
                                    prepare_received(id, existing, bytes, actor, headless)
                                });
                                (i, prepared)
                            })
                            .collect();
                        // The writer stopped (an error): nothing more is wanted.
                        if send.send(chunk).is_err() {
                            break;
                        }
                    }
                };
                // A thread the system refuses (a phone at its limit) is one worker fewer.
                if std::thread::Builder::new()
                    .name("vigie-merge".into())
                    .spawn_scoped(scope, work)
                    .is_ok()
                {
                    started += 1;
                }
            }
            drop(send);
            if started == 0 {
                // Not one: this thread does the work, as for a few records.
                for (i, (id, bytes)) in entries.iter().enumerate() {
                    let merged = self.merge(*id, bytes);
                    then(self, i, merged)?;
                }
                return Ok(());
            }
            let mut ready: BTreeMap<usize, Option<Result<PreparedMerge>>> = BTreeMap::new();
            for (i, (id, bytes)) in entries.iter().enumerate() {
                let prepared = loop {
                    if let Some(prepared) = ready.remove(&i) {
                        break prepared;
                    }
                    match receive.recv() {
                        Ok(chunk) => ready.extend(chunk),
                        // Every worker ended without sending `i`: one panicked (the scope
                        // passes its panic on), and nothing of this transaction is kept.
                        Err(_) => {
                            return Err(Error::DamagedDocument {
                                id: *id,
                                reason: "the record's merge did not finish".into(),
                            });
                        }
                    }
                };
                let merged = match (prepared, &rows[i]) {
                    (Some(prepared), Some(row)) => self.commit(*id, bytes, row, prepared),
                    _ => self.merge(*id, bytes),
                };
                then(self, i, merged)?;
            }
            Ok(())
        })
    }

    /// Writes a merge worked out by `merge_each`'s workers.
    fn commit(
        &mut self,
        id: Uuid,
        bytes: &[u8],
        row: &Option<(i64, RecordKind, Vec<u8>)>,
        prepared: Result<PreparedMerge>,
    ) -> Result<Merged> {
        match prepared {
            // The store's own edits move to a new actor first: `merge` does it.
            Err(Error::ActorReused { .. }) => self.merge(id, bytes),
            prepared => {
                let existing = row.as_ref().map(|(rowid, kind, _)| (*rowid, *kind));
                let merged = commit_merge(
                    self.tx,
                    &self.receiver.ctx,
                    self.cache,
                    id,
                    existing,
                    prepared,
                )
                .map_err(reused);
                self.receiver.note(id, merged)
            }
        }
    }

    /// What arrives is queued for the hub only where the caller says so (a hub's response is
    /// what the hub holds already).
    pub(crate) fn queue_for_hub(&mut self, queue: bool) {
        self.receiver.ctx.queue_for_hub = queue;
    }

    /// Whether documents of this exchange may come without their heads: a hub's answer to a
    /// request that said the device works them out (`codec::columns::strip_heads`). Peers and
    /// bundles always send documents whole.
    pub(crate) fn headless_documents(&mut self, headless: bool) {
        self.headless = headless;
    }
}

/// Merges received bytes into a record (`merge_document`), moving this store's own edits to a
/// new actor first when the bytes carry a change of this device under a number the store has
/// reused.
fn merge_received(
    tx: &Transaction,
    receiver: &mut Receiver,
    cache: &ReferenceCache,
    id: Uuid,
    bytes: &[u8],
) -> Result<Merged> {
    let device = receiver.author.device;
    match merge_document(tx, &receiver.ctx, cache, &receiver.actor, id, bytes) {
        Err(Error::ActorReused { actor, seq, .. })
            if doc::device_of_actor(&actor) == Some(device) =>
        {
            if actor == receiver.actor {
                receiver.actor = new_actor(tx, device)?;
            }
            move_own_edits(tx, receiver, cache, id, &actor, seq)?;
            merge_document(tx, &receiver.ctx, cache, &receiver.actor, id, bytes).map_err(reused)
        }
        // Reference data from the hub, published again under a number a restored hub gave
        // anew (this phone holds the version the restore lost, made by the same hub actor):
        // the hub's is the one in force, taken whole in place of the lost one, which kept
        // the phone on the lost area tree for good. Peers and bundles never replace it.
        Err(Error::ActorReused { .. })
            if !receiver.ctx.queue_for_hub
                && matches!(find_row(tx, id)?, Some((_, RecordKind::Reference, _))) =>
        {
            super::documents::replace_document(tx, &receiver.ctx, cache, &receiver.actor, id, bytes)
                .map_err(reused)
        }
        other => other.map_err(reused),
    }
}

/// How many received records a `merge_each` worker works out before handing them over.
const MERGE_CHUNK: usize = 8;

/// How many threads work out received documents for `merge_each`: none for a few records
/// (starting threads costs more than it saves), else one per core, at most four.
fn merge_workers(records: usize) -> usize {
    if records < 8 {
        return 0;
    }
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
}

/// Another device's changes colliding with the record's own: the bytes are not this record's
/// history.
fn reused(e: Error) -> Error {
    match e {
        Error::ActorReused { id, .. } => Error::DamagedDocument {
            id,
            reason: "the received changes reuse sequence numbers of their actor".into(),
        },
        other => other,
    }
}

/// 8 random bytes: with the device id, a store's actor (`doc::actor_for`).
pub(crate) fn new_nonce() -> [u8; 8] {
    Uuid::new_v4().as_bytes()[..8].try_into().expect("8 bytes")
}

/// A new actor for this store's device, persisted in the transaction.
fn new_actor(tx: &Transaction, device: Uuid) -> Result<ActorId> {
    let nonce = new_nonce();
    sync_state::set_meta(tx, "actor_nonce", &nonce)?;
    Ok(doc::actor_for(device, nonce))
}

/// Rewrites the stored record without the changes of `reused` numbered `seq` or more (and what
/// was built on them), its current values written on top as one change of the store's actor.
fn move_own_edits(
    tx: &Transaction,
    receiver: &Receiver,
    cache: &ReferenceCache,
    id: Uuid,
    reused: &ActorId,
    seq: u64,
) -> Result<()> {
    let Some((rowid, kind, bytes)) = find_row(tx, id)? else {
        return Ok(());
    };
    let document = codec::load(id, &bytes)?;
    let kept = doc::heads_without(&document, reused, seq);
    let mut base = document
        .fork_at(&kept)
        .map_err(|_| Error::DamagedDocument {
            id,
            reason: "the record's history could not be forked".into(),
        })?
        .with_actor(receiver.actor.clone());
    match kind {
        RecordKind::Workplace => rewrite::<Workplace>(&document, &mut base, id, &receiver.author)?,
        RecordKind::Visit => rewrite::<Visit>(&document, &mut base, id, &receiver.author)?,
        RecordKind::ChildCase => rewrite::<ChildCase>(&document, &mut base, id, &receiver.author)?,
        // Devices never write users or reference data: nothing of theirs to move.
        RecordKind::User | RecordKind::Reference => {}
    }
    save_document(
        tx,
        &receiver.local,
        cache,
        id,
        kind,
        Some(rowid),
        &mut base,
        &kept,
    )?;
    // What the hub was known to hold may include the dropped changes: the next push sends what
    // it needs from the heads the hub sends back.
    sync_state::forget_hub_heads(tx, id)
}

/// A record the hub refuses because it carries changes of a device the hub revoked, which it
/// never received from that device (`Refusal::AuthorRevoked`: a lost phone passed them on
/// before it was lost): they will never be taken, and they would hold this device's own edits
/// back for ever. The record is rebuilt on the version the hub holds, this device's own edits
/// made since written again on it as one change of a new actor: each field (or each entry of
/// a map: a follow-up, a referral, a hazard) an edit of its own set takes the value it has now;
/// what only the revoked device's changes set is dropped. `false` when the hub holds nothing
/// of the record this device knows of (a record the revoked device made: it stays, refused).
pub(crate) fn drop_revoked_changes(
    tx: &Transaction,
    receiver: &mut Receiver,
    cache: &ReferenceCache,
    id: Uuid,
) -> Result<bool> {
    rebuild_on_hub_version(tx, receiver, cache, id, OwnEdits::WrittenAgain)
}

/// A record whose changes the hub refused, its user giving them up
/// (`Store::discard_refused_changes`): back at the version the hub holds, every change the hub
/// lacks dropped. `false` when the hub holds nothing of the record this device knows of.
pub(crate) fn back_to_hub_version(
    tx: &Transaction,
    receiver: &mut Receiver,
    cache: &ReferenceCache,
    id: Uuid,
) -> Result<bool> {
    rebuild_on_hub_version(tx, receiver, cache, id, OwnEdits::Dropped)
}

/// What a record rebuilt on the hub's version keeps of this device's own changes past it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OwnEdits {
    WrittenAgain,
    Dropped,
}

/// The version of the hub's a record is rebuilt on: heads of this device's copy the hub was
/// last known to hold, or the hub's document as it sent it whole.
enum HubVersion {
    Known,
    Received(Box<Automerge>),
}

/// A record refused `AuthorRevoked` that this device cannot rebuild on a version of the hub's
/// it knows (it got the record from peers only, and the hub's version does not merge into its
/// copy: a change forged under another device's number), rebuilt on the hub's document as the
/// hub sent it whole (asked for again: `sync_state::mark_refetch`), this device's own edits
/// written again on it as for `drop_revoked_changes`.
pub(crate) fn rebuild_on_received(
    tx: &Transaction,
    receiver: &mut Receiver,
    cache: &ReferenceCache,
    id: Uuid,
    hub_document: Automerge,
) -> Result<bool> {
    rebuild_on(
        tx,
        receiver,
        cache,
        id,
        OwnEdits::WrittenAgain,
        HubVersion::Received(Box::new(hub_document)),
    )
}

fn rebuild_on_hub_version(
    tx: &Transaction,
    receiver: &mut Receiver,
    cache: &ReferenceCache,
    id: Uuid,
    own: OwnEdits,
) -> Result<bool> {
    rebuild_on(tx, receiver, cache, id, own, HubVersion::Known)
}

fn rebuild_on(
    tx: &Transaction,
    receiver: &mut Receiver,
    cache: &ReferenceCache,
    id: Uuid,
    own: OwnEdits,
    version: HubVersion,
) -> Result<bool> {
    let Some((rowid, kind, bytes)) = find_row(tx, id)? else {
        return Ok(false);
    };
    let document = codec::load(id, &bytes)?;
    let forked = |at: &[ChangeHash]| {
        document.fork_at(at).map_err(|_| Error::DamagedDocument {
            id,
            reason: "the record's history could not be forked".into(),
        })
    };
    // The hub's version (its heads, the document to write on), this copy's changes past it,
    // and the heads in this copy this device's own changes are read on top of (the hub's
    // version when the copy holds it: where a field it set stands in conflict with a change
    // that is dropped, its own value, not the one the merged document shows).
    let (hub, mut base, past, mut own_version) = match version {
        HubVersion::Known => {
            let Some(hub) = sync_state::known_hub_heads(tx, id)? else {
                return Ok(false);
            };
            if hub.is_empty()
                || hub
                    .iter()
                    .any(|h| document.get_change_meta_by_hash(h).is_none())
            {
                return Ok(false);
            }
            let past: Vec<ChangeHash> = document
                .get_changes_meta(&hub)
                .iter()
                .map(|c| c.hash)
                .collect();
            // The hub refused changes of another device as never to come: none past the
            // version it was known to hold means it no longer holds that version (restored
            // from a copy older than it). Nothing can be rebuilt on it: the record stays
            // refused, not taken for the hub's, and that version is forgotten (given up, the
            // record goes back to what the hub sends of it, or leaves the device).
            let device = receiver.author.device;
            let others_past = past.iter().any(|h| {
                document
                    .get_change_meta_by_hash(h)
                    .is_some_and(|c| doc::device_of_actor(&c.actor) != Some(device))
            });
            if own == OwnEdits::WrittenAgain && !others_past {
                sync_state::forget_hub_heads(tx, id)?;
                return Ok(false);
            }
            (hub.clone(), forked(&hub)?, past, hub)
        }
        HubVersion::Received(received) => {
            if doc::kind_of(&received) != Some(kind) {
                return Ok(false);
            }
            // Another record under the same id (one created here with an id the hub holds):
            // no history in common, nothing to rebuild on. Its values written over the hub's
            // replaced a colleague's without a conflict.
            if !codec::history_roots(&document, &[])
                .iter()
                .any(|root| received.get_change_meta_by_hash(root).is_some())
            {
                return Ok(false);
            }
            let past: Vec<ChangeHash> = document
                .get_changes_meta(&[])
                .iter()
                .filter(|c| received.get_change_meta_by_hash(&c.hash).is_none())
                .map(|c| c.hash)
                .collect();
            (received.get_heads(), *received, past, Vec::new())
        }
    };
    let device = receiver.author.device;
    // What this device's own changes past the hub's version set, field by field.
    let mut set = BTreeSet::new();
    let mut own_past_hub = false;
    for hash in &past {
        let Some(change) = document.get_change_meta_by_hash(hash) else {
            continue;
        };
        if doc::device_of_actor(&change.actor) == Some(device) {
            own_past_hub = true;
            own_version.push(change.hash);
            if own == OwnEdits::WrittenAgain {
                changed_paths(
                    &doc::to_json(&document, Some(&change.deps)),
                    &doc::to_json(&document, Some(&[change.hash])),
                    &mut set,
                );
            }
        }
    }
    // Other devices' changes dropped because they will never be taken: kept, so that no peer
    // or bundle brings them back (a colleague's altered app offered them at every meeting).
    if own == OwnEdits::WrittenAgain {
        let dropped: Vec<ChangeHash> = past
            .iter()
            .filter(|h| {
                document
                    .get_change_meta_by_hash(h)
                    .is_some_and(|c| doc::device_of_actor(&c.actor) != Some(device))
            })
            .copied()
            .collect();
        erasure::keep_given_up(tx, &dropped)?;
    }
    if own_past_hub {
        // The numbers of the dropped changes of this device's actor are never used again.
        receiver.actor = new_actor(tx, device)?;
        base.set_actor(receiver.actor.clone());
    }
    if !set.is_empty() {
        let own_view = forked(&own_version)?;
        let mut json = doc::to_json(&base, None);
        overlay(&mut json, &doc::to_json(&own_view, None), &set);
        match kind {
            RecordKind::Workplace => write_json::<Workplace>(&mut base, json, id, &hub, receiver)?,
            RecordKind::Visit => write_json::<Visit>(&mut base, json, id, &hub, receiver)?,
            RecordKind::ChildCase => write_json::<ChildCase>(&mut base, json, id, &hub, receiver)?,
            RecordKind::User | RecordKind::Reference => return Ok(false),
        }
        let now = doc::attachments(&own_view);
        for (key, _) in set
            .iter()
            .filter(|(key, _)| key.starts_with(doc::ATTACHMENT_PREFIX))
        {
            let entry_id = key.trim_start_matches(doc::ATTACHMENT_PREFIX);
            match now.iter().find(|a| a.id.to_string() == entry_id) {
                Some(entry) => doc::put_attachment(&mut base, entry, &receiver.author)?,
                None => match Uuid::parse_str(entry_id) {
                    Ok(gone) => doc::remove_attachment(&mut base, gone, &receiver.author)?,
                    Err(_) => None,
                },
            };
        }
    }
    save_document(
        tx,
        &receiver.local,
        cache,
        id,
        kind,
        Some(rowid),
        &mut base,
        &hub,
    )?;
    // What is left to push starts from the hub's version, which it holds (nothing is left
    // when the record is that version again).
    sync_state::record_hub_heads(tx, id, &hub, None)?;
    sync_state::mark_refused(tx, id, false)?;
    Ok(true)
}

/// Where `after` differs from `before`: a root key, or an entry of a root map (a record's maps
/// and sets: follow-ups, referrals, hazards...), so that one edit of an entry leaves the
/// others as they are.
fn changed_paths(
    before: &serde_json::Value,
    after: &serde_json::Value,
    into: &mut BTreeSet<(String, Option<String>)>,
) {
    let empty = serde_json::Map::new();
    let (b, a) = (
        before.as_object().unwrap_or(&empty),
        after.as_object().unwrap_or(&empty),
    );
    for key in b.keys().chain(a.keys()) {
        let (old, new) = (b.get(key), a.get(key));
        if old == new {
            continue;
        }
        match (old, new) {
            (Some(serde_json::Value::Object(o)), Some(serde_json::Value::Object(n)))
                if !key.starts_with(doc::ATTACHMENT_PREFIX) =>
            {
                for entry in o.keys().chain(n.keys()) {
                    if o.get(entry) != n.get(entry) {
                        into.insert((key.clone(), Some(entry.clone())));
                    }
                }
            }
            _ => {
                into.insert((key.clone(), None));
            }
        }
    }
}

/// `json` with the values `now` holds at `paths` (`changed_paths`).
fn overlay(
    json: &mut serde_json::Value,
    now: &serde_json::Value,
    paths: &BTreeSet<(String, Option<String>)>,
) {
    let Some(map) = json.as_object_mut() else {
        return;
    };
    for (key, entry) in paths {
        let current = now.get(key);
        match entry {
            None => match current {
                Some(value) => {
                    map.insert(key.clone(), value.clone());
                }
                None => {
                    map.remove(key);
                }
            },
            Some(entry) => {
                let slot = map
                    .entry(key.clone())
                    .or_insert_with(|| serde_json::Value::Object(Default::default()));
                if let Some(inner) = slot.as_object_mut() {
                    match current.and_then(|c| c.get(entry)) {
                        Some(value) => {
                            inner.insert(entry.clone(), value.clone());
                        }
                        None => {
                            inner.remove(entry);
                        }
                    }
                }
            }
        }
    }
}

/// Writes the record `json` holds onto `base` (at `heads`), as one change of the receiver.
fn write_json<R: Record>(
    base: &mut Automerge,
    json: serde_json::Value,
    id: Uuid,
    heads: &[ChangeHash],
    receiver: &Receiver,
) -> Result<()> {
    let record: R = doc::record_from_json(json, id, heads.to_vec())?;
    doc::write_record(base, &record, &receiver.author)?;
    Ok(())
}

/// Writes the record `document` holds now onto `base`, as one change, and its attachment
/// manifest as it stands now (an attachment added or removed since the fork is one of the
/// edits moved: a photo taken after a restore must reach the hub as the field edits do).
fn rewrite<R: Record>(
    document: &Automerge,
    base: &mut Automerge,
    id: Uuid,
    author: &ChangeAuthor,
) -> Result<()> {
    let mut record = doc::read_record::<R>(document, id)?;
    record.set_version(Default::default());
    doc::write_record(base, &record, author)?;
    let now = doc::attachments(document);
    for gone in doc::attachments(base)
        .iter()
        .filter(|held| now.iter().all(|entry| entry.id != held.id))
    {
        doc::remove_attachment(base, gone.id, author)?;
    }
    for entry in &now {
        doc::put_attachment(base, entry, author)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_without_drops_the_reused_numbers_and_what_builds_on_them() {
        let a = ActorId::from(vec![1u8; 24]);
        let b = ActorId::from(vec![2u8; 24]);
        let mut doc = Automerge::new().with_actor(a.clone());
        let put = |doc: &mut Automerge, v: i64| {
            let mut tx = doc.transaction();
            automerge::transaction::Transactable::put(&mut tx, automerge::ROOT, "x", v).unwrap();
            tx.commit().0.unwrap()
        };
        let first = put(&mut doc, 1);
        let second = put(&mut doc, 2);
        doc.set_actor(b.clone());
        let by_b = put(&mut doc, 3);
        assert_eq!(doc::heads_without(&doc, &a, 3), vec![by_b]);
        assert_eq!(doc::heads_without(&doc, &a, 2), vec![first]);
        let _ = second;
    }
}

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

use super::{Merged, ReferenceSource, WriteContext, find_row, save_document, set_meta};
use crate::doc::{self, ChangeAuthor};
use crate::error::{Error, Result};
use crate::model::{ChildCase, Record, RecordKind, Visit, Workplace};
use crate::store::Store;
use automerge::{ActorId, Automerge, ChangeHash};
use rusqlite::Transaction;
use std::collections::HashSet;
use uuid::Uuid;

/// What merging in one transaction needs; the store takes the actor back after the commit
/// (`Store::received`), since a merge may have replaced it.
pub(crate) struct Receiver {
    /// How received changes are recorded.
    pub ctx: WriteContext,
    /// How the store's own moved edits are recorded (a local write, queued for the hub).
    local: WriteContext,
    pub actor: ActorId,
    author: ChangeAuthor,
}

impl Store {
    pub(crate) fn receiver(&self) -> Receiver {
        Receiver {
            ctx: self.received_write(),
            local: self.local_write(),
            actor: self.actor.clone(),
            author: self.author,
        }
    }

    /// Takes the actor a committed merge may have started.
    pub(crate) fn received(&mut self, receiver: Receiver) {
        self.actor = receiver.actor;
    }
}

/// Merges received bytes into a record (`merge_document`), moving this store's own edits to a
/// new actor first when the bytes carry a change of this device under a number the store has
/// reused.
pub(crate) fn merge_received(
    tx: &Transaction,
    receiver: &mut Receiver,
    source: ReferenceSource<'_>,
    id: Uuid,
    bytes: &[u8],
) -> Result<Merged> {
    let device = receiver.author.device;
    match super::merge_document(tx, &receiver.ctx, source, &receiver.actor, id, bytes) {
        Err(Error::ActorReused { actor, seq, .. })
            if doc::device_of_actor(&actor) == Some(device) =>
        {
            if actor == receiver.actor {
                receiver.actor = new_actor(tx, device)?;
            }
            move_own_edits(tx, receiver, source, id, &actor, seq)?;
            super::merge_document(tx, &receiver.ctx, source, &receiver.actor, id, bytes)
                .map_err(reused)
        }
        other => other.map_err(reused),
    }
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

/// A new actor for this store's device, persisted in the transaction.
fn new_actor(tx: &Transaction, device: Uuid) -> Result<ActorId> {
    let nonce: [u8; 8] = Uuid::new_v4().as_bytes()[..8].try_into().expect("8 bytes");
    set_meta(tx, "actor_nonce", &nonce)?;
    Ok(doc::actor_for(device, nonce))
}

/// Rewrites the stored record without the changes of `reused` numbered `seq` or more (and what
/// was built on them), its current values written on top as one change of the store's actor.
fn move_own_edits(
    tx: &Transaction,
    receiver: &Receiver,
    source: ReferenceSource<'_>,
    id: Uuid,
    reused: &ActorId,
    seq: u64,
) -> Result<()> {
    let Some((rowid, kind, bytes)) = find_row(tx, id)? else {
        return Ok(());
    };
    let document = doc::load(id, &bytes)?;
    let kept = heads_without(&document, reused, seq);
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
        source,
        id,
        kind,
        Some(rowid),
        &mut base,
        &kept,
    )?;
    // What the hub was known to hold may include the dropped changes: the next push sends what
    // it needs from the heads the hub sends back.
    tx.prepare_cached("DELETE FROM sync_hub_heads WHERE record_id = ?1")?
        .execute([id.as_bytes()])?;
    Ok(())
}

/// The heads of the document's history without the changes of `actor` numbered `seq` or more,
/// and without any change that depends on one of those.
fn heads_without(document: &Automerge, actor: &ActorId, seq: u64) -> Vec<ChangeHash> {
    let changes = document.get_changes_meta(&[]);
    let mut dropped: HashSet<ChangeHash> = HashSet::new();
    // Changes come in causal order; a second pass catches any that did not.
    loop {
        let before = dropped.len();
        for change in &changes {
            if (change.actor.as_ref() == actor && change.seq >= seq)
                || change.deps.iter().any(|d| dropped.contains(d))
            {
                dropped.insert(change.hash);
            }
        }
        if dropped.len() == before {
            break;
        }
    }
    let kept: Vec<_> = changes
        .iter()
        .filter(|c| !dropped.contains(&c.hash))
        .collect();
    let depended: HashSet<ChangeHash> = kept.iter().flat_map(|c| c.deps.iter().copied()).collect();
    kept.iter()
        .map(|c| c.hash)
        .filter(|h| !depended.contains(h))
        .collect()
}

/// Writes the record `document` holds now onto `base`, as one change.
fn rewrite<R: Record>(
    document: &Automerge,
    base: &mut Automerge,
    id: Uuid,
    author: &ChangeAuthor,
) -> Result<()> {
    let mut record = doc::read_record::<R>(document, id)?;
    record.set_version(Default::default());
    doc::write_record(base, &record, author)?;
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
        assert_eq!(heads_without(&doc, &a, 3), vec![by_b]);
        assert_eq!(heads_without(&doc, &a, 2), vec![first]);
        let _ = second;
    }
}

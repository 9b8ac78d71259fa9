//! What a buggy or hostile device pushes, past its own store's checks: records written straight
//! into their Automerge documents with the device's actor, sent in a sync request of the
//! device's own, and the hub's answer for each.

use super::Device;
use std::collections::BTreeMap;
use uuid::Uuid;
use vigie_core::sync::wire::{self, PushEntry, PushOutcome, SyncRequest};
use vigie_core::{ChangeAuthor, Record};

/// The documents of `core/tests/common/hostile.rs` (deep, huge, many operations...).
#[path = "../../../core/tests/common/hostile.rs"]
pub mod hostile;

/// The role matrix, cell by cell (`core/tests/common/matrix.rs`).
#[path = "../../../core/tests/common/matrix.rs"]
pub mod matrix;

/// The device's own author: its user and device.
pub fn author(device: &Device) -> ChangeAuthor {
    ChangeAuthor {
        user: device.user(),
        device: device.token.device,
    }
}

/// A new record's whole document, written by the device's actor and signed by `author`.
pub fn new_record<R: Record>(device: &Device, record: &R, author: ChangeAuthor) -> PushEntry {
    let mut doc = automerge::Automerge::new().with_actor(device.store.actor().clone());
    vigie_core::doc::write_record(&mut doc, record, &author).expect("write the record");
    PushEntry {
        id: record.id(),
        heads: doc.get_heads().iter().map(|h| h.0).collect(),
        changes: doc.save_nocompress(),
    }
}

/// Raw bytes pushed as record `id` (a hostile document).
pub fn raw(id: Uuid, bytes: Vec<u8>) -> PushEntry {
    PushEntry {
        id,
        heads: Vec::new(),
        changes: bytes,
    }
}

/// An edit of a record the device holds, made straight in its document (none of the store's
/// checks): `edit` applied to the record as the device reads it, signed by `author`. Returns
/// the push (the changes after the device's heads) and the edited document.
pub fn edited<R: Record>(
    device: &Device,
    id: Uuid,
    author: ChangeAuthor,
    edit: impl FnOnce(&mut R),
) -> (PushEntry, Vec<u8>) {
    let mut doc = automerge::Automerge::load(&device.store.export_document(id).expect("held"))
        .expect("the document loads")
        .with_actor(device.store.actor().clone());
    let before = doc.get_heads();
    let mut record: R = vigie_core::doc::read_record(&doc, id).expect("the record reads");
    edit(&mut record);
    vigie_core::doc::write_record(&mut doc, &record, &author).expect("write the edit");
    // The store never takes out a field its record leaves unset (an older app must not erase
    // what it does not know); a hostile device does: a field the edit unset leaves the document.
    let fields = serde_json::to_value(&record).expect("the record serializes");
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;
    let unset: Vec<String> = doc
        .keys(automerge::ROOT)
        .filter(|key| !key.starts_with('$') && fields.get(key).is_none())
        .collect();
    if !unset.is_empty() {
        let mut tx = doc.transaction();
        for key in unset {
            tx.delete(automerge::ROOT, key.as_str())
                .expect("delete the field");
        }
        tx.commit_with(
            automerge::transaction::CommitOptions::default()
                .with_message(serde_json::to_string(&author).expect("the author serializes"))
                .with_time(chrono::Utc::now().timestamp_millis()),
        );
    }
    (
        PushEntry {
            id,
            heads: doc.get_heads().iter().map(|h| h.0).collect(),
            changes: doc.save_after(&before),
        },
        doc.save_nocompress(),
    )
}

/// Sends `push` as the device's request (no cursor) and returns the hub's outcome for each
/// record, by id.
pub fn push(device: &Device, url: &str, push: Vec<PushEntry>) -> BTreeMap<Uuid, PushOutcome> {
    let request = SyncRequest {
        actor: device.store.actor().to_bytes().to_vec(),
        cursor: None,
        push,
        refetch: Vec::new(),
        max_response_bytes: 256 * 1024,
        receipt: 0,
        identity: None,
        headless_documents: false,
        incarnation: None,
        device_clock: None,
    };
    let response = device
        .client(url)
        .exchange(&wire::encode_request(&request))
        .unwrap_or_else(|e| panic!("{}: the hub answers the push: {e}", device.name));
    let response = wire::decode_response(&response, 1 << 26).expect("a sync response");
    response
        .acks
        .into_iter()
        .map(|ack| (ack.id, ack.outcome))
        .collect()
}

/// The refusal of an outcome, if it is one.
pub fn refusal(outcome: &PushOutcome) -> Option<vigie_core::sync::Refusal> {
    match outcome {
        PushOutcome::Refused { reason, .. } => Some(*reason),
        _ => None,
    }
}

//! The storage the hub's sync engine runs on, as one interface.
//!
//! The engine (`sync::hub`) decides what to accept and what each device lacks; a backend only
//! keeps documents, their change log and the order of changes. The embedded store implements it
//! (`store::hub`); the server adds PostgreSQL for hubs that outgrow one machine. Every backend
//! stores the same bytes (documents as `codec::encode` writes them, heads and change hashes as
//! `codec::heads_bytes` concatenates them), so a hub can move from one to the other.

mod allowance;

use crate::doc::ChangeAuthor;
use crate::domain::area::Area;
use crate::domain::codes::RecordKind;
use crate::domain::reference::ReferenceData;
use crate::domain::rights::Scope;
use crate::error::Result;
pub use allowance::{DeviceAllowances, Measure, Reservation};
use automerge::{Automerge, ChangeHash};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
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
    /// The document as stored (`codec::decode` reads it).
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
    /// When the hub stored them (its own clock, milliseconds since the epoch): a change's time
    /// is the device's, which its user may set.
    pub at_ms: i64,
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
    /// When the erasure was made (milliseconds since the epoch), for one made elsewhere (a
    /// copy of another database's records); now when `None`.
    pub at_ms: Option<i64>,
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
/// What the hub holds of an attachment's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldAttachment {
    pub record: Uuid,
    pub size: u64,
    /// Plaintext bytes held (all of them once complete).
    pub held: u64,
    pub complete: bool,
}

/// What appending a chunk of an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The upload holds this many bytes now; more are due.
    Held(u64),
    /// Every byte arrived and matched the hash: the attachment is stored.
    Complete,
    /// Every byte arrived and did not match the hash: all of it was discarded.
    Mismatch,
}

fn no_attachments<T>() -> Result<T> {
    Err(crate::error::Error::HubStorage {
        reason: "this storage keeps no attachments".into(),
        retryable: false,
    })
}

/// The refused changes a hub keeps for each device (`HubTransaction::remember_refused_changes`):
/// enough for the edits a phone keeps refused while its user corrects them, and no more than a
/// hostile device's refusals may fill.
pub const MAX_REFUSED_CHANGES_KEPT: i64 = 4096;

pub trait HubTransaction {
    /// The stored record. With `for_update`, no other transaction may change it until this one
    /// ends (a backend shared by several hub processes must lock it).
    fn record(&mut self, id: Uuid, for_update: bool) -> Result<Option<StoredRecord>>;

    /// Stores a record's new state and logs its new changes after every change logged so far.
    fn save(&mut self, write: RecordWrite<'_>) -> Result<()>;

    /// The last place of the change order that is committed and visible to this transaction.
    /// Every change at or below it is visible: no later commit may fill a gap below it.
    fn high_water(&mut self) -> Result<i64>;

    /// The hub's incarnation (`SyncResponse::incarnation`): a hub restored from a backup takes
    /// a new one. `None` where the storage keeps none: its restores are found only by devices
    /// ahead of it.
    fn incarnation(&mut self) -> Result<Option<[u8; 16]>> {
        Ok(None)
    }

    /// The actor the hub writes its own changes under (what a device recorded on a merged
    /// duplicate, brought over to the case kept: `hub::bring_over_pushed`), each process its
    /// own. `None` where the storage writes none of its own (a reader).
    fn hub_actor(&self) -> Option<automerge::ActorId> {
        None
    }

    /// The reference data in force: the built-in data and every published version the hub
    /// holds (area trees decide what a principal's codes cover; records are validated against
    /// the versions they were captured with).
    fn reference(&mut self) -> Result<Arc<ReferenceData>>;

    /// Waits until no other transaction is publishing reference data, and keeps others from
    /// publishing until this one ends: a version number is the latest plus one, so two hub
    /// processes sharing a backend must not both read the same latest. One writer at a time
    /// (the embedded store) needs nothing more.
    fn hold_publications(&mut self) -> Result<()> {
        Ok(())
    }

    /// Records `scope` receives (`Scope::receives`) whose last change is in `(after, upto]`, in
    /// change order, at most `limit`.
    fn changed(
        &mut self,
        scope: &Scope,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<ChangedRecord>>;

    /// How many records `scope` receives whose last change is in `(after, upto]`: what a walk
    /// cut at `after` has still to send (`SyncResponse::waiting`).
    fn count_changed(&mut self, scope: &Scope, after: i64, upto: i64) -> Result<u64>;

    /// A record's change log, in order.
    fn change_log(&mut self, id: Uuid) -> Result<Vec<LogEntry>>;

    /// Whether the record was erased (a tombstone stands for it).
    fn is_erased(&mut self, id: Uuid) -> Result<bool>;

    /// Waits until no other transaction that asked for `id` before is under way, and keeps
    /// the later ones waiting until this one ends: two erasures of one record made at once,
    /// the second sees the first's (the embedded store has one writer: nothing to wait for).
    fn one_at_a_time_on(&mut self, id: Uuid) -> Result<()> {
        let _ = id;
        Ok(())
    }

    /// Every record erased, with when (the hub's clock, ms): what the journal of irreversible
    /// actions must hold.
    fn erasures(&mut self) -> Result<Vec<(Uuid, i64)>>;

    /// Erases a record: its document, change log, index rows and quarantined changes are
    /// deleted, and a tombstone is placed after every change logged so far, with `history`
    /// (the hashes of its changes, and the area it was filed under, at the tombstone's place).
    /// Returns whether there was anything to erase (a second erasure changes nothing).
    fn erase(&mut self, id: Uuid, history: &ErasedHistory) -> Result<bool>;

    /// Whether any of these changes belongs to an erased record.
    fn any_erased_change(&mut self, hashes: &[ChangeHash]) -> Result<bool>;

    /// The roots of an erased record's history (see `ErasedHistory`).
    fn erased_roots(&mut self, id: Uuid) -> Result<Vec<ChangeHash>>;

    /// The actor of the store `device` last synced from (`None` before its first sync).
    fn device_actor(&mut self, device: Uuid) -> Result<Option<Vec<u8>>>;

    /// Keeps the actor of the store `device` syncs from now.
    fn set_device_actor(&mut self, device: Uuid, actor: &[u8]) -> Result<()>;

    /// Keeps these changes as never to be taken (a supervisor rejected them in review).
    fn give_up_changes(&mut self, hashes: &[ChangeHash]) -> Result<()>;

    /// Whether any of these changes was given up (`give_up_changes`).
    fn any_given_up_change(&mut self, hashes: &[ChangeHash]) -> Result<bool>;

    /// Keeps these changes as refused from `device`, which made them, at `at_ms`: a relay
    /// holding them is told they will not come from it (`MAX_REFUSED_CHANGES_KEPT` a device,
    /// the latest).
    fn remember_refused_changes(
        &mut self,
        device: Uuid,
        hashes: &[ChangeHash],
        at_ms: i64,
    ) -> Result<()>;

    /// Whether any of these changes was refused from the device that made them.
    fn any_refused_change(&mut self, hashes: &[ChangeHash]) -> Result<bool>;

    /// The records whose history starts at `root` (the hub keeps each record's root change as
    /// it first stores it): one, or copies of one document under other ids.
    fn records_with_root(&mut self, root: ChangeHash) -> Result<Vec<Uuid>>;

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

    /// One of the hub's own settings, kept beside its records (`refiled_key`, `carried_key`).
    fn setting(&mut self, key: &str) -> Result<Option<String>>;

    /// Keeps one of the hub's own settings (`setting`).
    fn set_setting(&mut self, key: &str, value: &str) -> Result<()>;

    /// The community the records of `community` were filed under again, once no area tree
    /// held it (`vigie reference refile --to`): where a record kept for review and accepted
    /// after it goes too.
    fn refiled_to(&mut self, community: &str) -> Result<Option<String>> {
        self.setting(&refiled_key(community))
    }

    /// Remembers that the records of `community` were filed under `to` (`refiled_to`).
    fn set_refiled_to(&mut self, community: &str, to: &str) -> Result<()> {
        self.set_setting(&refiled_key(community), to)
    }

    /// Keeps changes a device sent to a record that is no longer its user's to change.
    fn quarantine(&mut self, entry: &Quarantined) -> Result<()>;

    /// How many entries from `device` wait for review.
    fn quarantined_from(&mut self, device: Uuid) -> Result<usize>;

    /// Every quarantined entry, oldest first.
    fn quarantined(&mut self) -> Result<Vec<Quarantined>>;

    /// The entries of one record that wait for review, oldest first.
    fn quarantined_for(&mut self, record: Uuid) -> Result<Vec<Quarantined>>;

    /// Removes one quarantined entry (reviewed) and returns it.
    fn take_quarantined(&mut self, entry: i64) -> Result<Option<Quarantined>>;

    /// What the hub holds of an attachment's bytes (`None`: nothing yet).
    fn attachment_held(&mut self, _id: Uuid) -> Result<Option<HeldAttachment>> {
        no_attachments()
    }

    /// Appends a chunk at `offset` (what `attachment_held` says is held) to an upload of `size`
    /// bytes for `record`, encrypted at rest; the last chunk verifies the whole against
    /// `sha256` and stores it, or discards it all.
    fn attachment_append(
        &mut self,
        _id: Uuid,
        _record: Uuid,
        _size: u64,
        _sha256: &[u8; 32],
        _offset: u64,
        _bytes: &[u8],
    ) -> Result<Appended> {
        no_attachments()
    }

    /// At most `max` bytes of a stored attachment from `offset` (a segment boundary); `None`
    /// when its stored bytes are damaged (cut short, altered, sealed under another key): the
    /// backend sets them aside where it can, so that the attachment is held as not uploaded
    /// and its author may send it again.
    fn attachment_read(&mut self, _id: Uuid, _offset: u64, _max: usize) -> Result<Option<Vec<u8>>> {
        no_attachments()
    }

    /// Deletes the attachments held for `record` that `keep` does not name: the bytes uploaded
    /// with changes a supervisor rejected, which nothing will ever name.
    fn drop_attachments_except(&mut self, _record: Uuid, _keep: &[Uuid]) -> Result<()> {
        Ok(())
    }

    /// Gives an attachment that changes kept for review add to `record` a row, its bytes to
    /// come, as a stored record's entries have: the id is the record's from then on (`admit`
    /// refuses another record naming it), though the record under review names it nowhere
    /// the hub stores yet. Nothing when a row holds the id already.
    fn reserve_attachment(
        &mut self,
        _record: Uuid,
        _entry: &crate::domain::Attachment,
    ) -> Result<()> {
        Ok(())
    }
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

    /// What each device may still push of changes (`HubLimits::device_changes_per_hour`), kept
    /// by the hub process; `None` (the default) takes whatever devices push.
    fn allowances(&self) -> Option<std::sync::Arc<DeviceAllowances>> {
        None
    }
}

/// How many reference documents there are and the newest change among them: it moves with
/// every publication and every reference document received, whatever path wrote it.
pub type ReferenceMarker = (i64, i64);

/// Where a backend keeps its reference documents, as `ReferenceCache` reads them.
pub trait ReferenceSource {
    /// Every stored reference document, with the position of its latest change.
    fn listing(&mut self) -> Result<Vec<(Uuid, i64)>>;
    /// A reference document's stored bytes (`None` if there is none by that id).
    fn document(&mut self, id: Uuid) -> Result<Option<Vec<u8>>>;
}

/// The reference data in force for a backend: its configured data under every version of the
/// published reference documents it holds, reloaded only when those change (`ReferenceMarker`).
pub struct ReferenceCache {
    base: ReferenceData,
    loaded: Mutex<Loaded>,
}

struct Loaded {
    marker: Option<ReferenceMarker>,
    data: Arc<ReferenceData>,
    /// The documents `data` holds, each at the position of the change it was read at.
    read: HashMap<Uuid, i64>,
}

impl ReferenceCache {
    pub fn new(base: ReferenceData) -> ReferenceCache {
        ReferenceCache {
            loaded: Mutex::new(Loaded {
                marker: None,
                data: Arc::new(base.clone()),
                read: HashMap::new(),
            }),
            base,
        }
    }

    /// The configured data, under the published documents.
    pub fn base(&self) -> &ReferenceData {
        &self.base
    }

    /// The data in force at `marker`, unless it was loaded at that marker already. Published
    /// versions never change, so only the documents new since the last load are read, on top
    /// of what it loaded: a publication or a version received costs its own documents, not
    /// every version a hub has kept for years. A document gone or rewritten since (a hub
    /// restored from a backup; a version it published again in place of one the restore lost)
    /// loads everything again.
    pub fn get(
        &self,
        marker: ReferenceMarker,
        source: &mut dyn ReferenceSource,
    ) -> Result<Arc<ReferenceData>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if loaded.marker == Some(marker) {
            return Ok(loaded.data.clone());
        }
        let listing: HashMap<Uuid, i64> = source.listing()?.into_iter().collect();
        let from_scratch = loaded.marker.is_none()
            || loaded
                .read
                .iter()
                .any(|(id, seq)| listing.get(id).is_none_or(|now| now != seq));
        let (mut data, mut wanted): (ReferenceData, Vec<Uuid>) = if from_scratch {
            (self.base.clone(), listing.keys().copied().collect())
        } else {
            let changed = listing
                .iter()
                .filter(|(id, seq)| loaded.read.get(*id) != Some(*seq))
                .map(|(id, _)| *id)
                .collect();
            (loaded.data.as_ref().clone(), changed)
        };
        // In a stable order: a version's parts are then read in one go, whatever the listing.
        wanted.sort_unstable();
        crate::doc::add_published(&mut data, &wanted, &mut |id| source.document(id))?;
        *loaded = Loaded {
            marker: Some(marker),
            data: Arc::new(data),
            read: listing,
        };
        Ok(loaded.data.clone())
    }

    /// The data loaded last (the configured data before any load).
    pub fn last(&self) -> Arc<ReferenceData> {
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .data
            .clone()
    }
}

/// The setting `HubTransaction::refiled_to` is kept under.
fn refiled_key(community: &str) -> String {
    format!("refiled_to:{community}")
}

/// The setting that counts the entries of revoked devices' work `carrier` brought to review
/// (`sync::hub::keep_carried_for_review`).
pub(crate) fn carried_key(carrier: Uuid) -> String {
    format!("carried_by:{carrier}")
}

/// The setting that says a revoked or reset device's carried work made of these changes was
/// rejected in review: no carrier's copy of the same is kept again (each came back at every
/// sync, the entry waiting again).
pub(crate) fn rejected_carried_key(changes: &[automerge::ChangeHash]) -> String {
    use sha2::Digest;
    let mut sorted: Vec<&automerge::ChangeHash> = changes.iter().collect();
    sorted.sort();
    let mut digest = sha2::Sha256::new();
    for hash in sorted {
        digest.update(hash.0);
    }
    let digest: [u8; 32] = digest.finalize().into();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("rejected_carried:{hex}")
}

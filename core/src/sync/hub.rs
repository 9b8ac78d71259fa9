//! The hub's side of sync: the same store and the same documents as a device, with the rules of
//! who may send and receive what.
//!
//! Authorization is partial replication: a principal receives only records of the kinds its role
//! works with, in its areas, and may change only those. A record that breaks a rule is refused on
//! its own, reported to the sender, and never blocks the rest of the request.

use super::client::changes_after;
use super::identity::{Certifier, hub_identity};
use super::wire::{
    self, Cursor, PullEntry, PushAck, PushEntry, PushOutcome, Refusal, RefusalDetail, SyncRequest,
    SyncResponse, Tombstone,
};
use crate::codec::{self, bounds, bounds::DocumentLimits};
use crate::doc::{self, ChangeAuthor};
use crate::domain::area::Area;
use crate::domain::codes::{RecordKind, ReferenceType, Role};
use crate::domain::records::{ChildCase, Record, ReferenceDocument, User, Visit, Workplace};
use crate::domain::reference::{AreaNode, Published, ReferenceContent, ReferenceData};
use crate::domain::rights;
use crate::domain::validation::NotAllowed;
use crate::error::{Error, Result, ValidationError};
use crate::storage::{
    ChangedRecord, Departure, ErasedHistory, HubStorage, HubTransaction, LogEntry, Measure,
    Quarantined, RecordWrite, Reservation, StoredRecord,
};
use crate::store::{Store, StoreRole, TypedRecord};
use automerge::{ActorId, Automerge, ChangeHash, ChangeMetadata, ReadDoc};
use chrono::Utc;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use uuid::Uuid;

use crate::domain::attachment::{
    AttachmentLimits, AttachmentRefusal, takes_attachments, validate_manifest,
};
pub use crate::domain::rights::{Principal, Scope};

/// Bounds on what one request may ask of the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubLimits {
    /// Compressed request size (the HTTP layer enforces it before reading the body).
    pub max_request_bytes: usize,
    /// The request once decompressed. Its pushes are copied once more as they are decoded,
    /// on each of the hub's workers at once: 32 MiB let one device's requests of a kilobyte,
    /// pushing zeros, hold some 500 MB of the hub. A device's messages stay under their page
    /// (1 MiB at most by default) or hold a single document within the document bound.
    pub max_decompressed_bytes: usize,
    pub max_push_records: usize,
    pub max_refetch_records: usize,
    /// The largest response, before compression, whatever the device asks.
    pub max_response_bytes: usize,
    /// A change dated further in the future than this, by the device's clock, flags the clock.
    pub clock_skew_ms: i64,
    /// The limits on attachments, which every sync response publishes to devices.
    pub attachments: AttachmentLimits,
    /// How long one request's pushes may be worked on: the records not reached by then get no
    /// answer, and the device sends them again in its next request. Whatever a device sends
    /// (a push of many large documents, each within the bounds), it never holds the hub's
    /// workers for long, and a client that gave up stops costing the hub soon.
    pub max_push_time: std::time::Duration,
    /// Changes the hub takes from one device in an hour, at most an hour's worth at once
    /// (`DeviceAllowances`, on a storage that keeps them): its pushes past that wait.
    pub device_changes_per_hour: u64,
    /// Bytes of changes the hub takes from one device in an hour, likewise: a change may carry
    /// 32,000 characters of a note, and a thousand such are 24 MB every phone of the area
    /// downloads.
    pub device_bytes_per_hour: u64,
    /// Bytes of attachments the hub takes from one device in an hour, likewise: an altered app
    /// uploaded 130 MiB of documents in 80 s, which phones of the area then downloaded.
    pub device_attachment_bytes_per_hour: u64,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            max_request_bytes: 8 * 1024 * 1024,
            max_decompressed_bytes: 8 * 1024 * 1024,
            max_push_records: 5_000,
            max_refetch_records: 1_000,
            max_response_bytes: 4 * 1024 * 1024,
            clock_skew_ms: crate::domain::records::CLOCK_TOLERANCE_MS,
            attachments: AttachmentLimits::default(),
            max_push_time: std::time::Duration::from_secs(5),
            // A district's 15,000 records are some 45,000 changes, some 12 MB of them.
            device_changes_per_hour: 100_000,
            device_bytes_per_hour: 32 * 1024 * 1024,
            // Some 500 photos as a capture re-encodes them.
            device_attachment_bytes_per_hour: 128 * 1024 * 1024,
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
    /// The device presented other keys than those the hub certified for it at its first sync.
    #[error("the device's keys differ from those bound to it at enrolment")]
    KeysNotBound,
    /// The store was opened for another user than the one the device was enrolled for.
    #[error("the store was opened for another user than the device's")]
    UserNotBound,
    #[error(transparent)]
    Store(#[from] Error),
}

/// How long one write transaction of a request's pushes may run before it commits and lets
/// other devices' writes in (at least one record per transaction).
const PUSH_BATCH_TIME: std::time::Duration = std::time::Duration::from_millis(25);

/// Heads in one order, to compare them.
fn sorted(mut heads: Vec<[u8; 32]>) -> Vec<[u8; 32]> {
    heads.sort_unstable();
    heads
}

/// Handles one sync request from an authenticated device, in one transaction of `storage`: its
/// pushes are stored (or refused one by one) and the records it lacks are returned.
pub fn handle_sync<S: HubStorage + ?Sized>(
    storage: &mut S,
    who: &Principal,
    request: &[u8],
    limits: &HubLimits,
) -> std::result::Result<Vec<u8>, HubError> {
    handle_certified_sync(storage, who, request, limits, None)
}

/// `handle_sync` on a hub that certifies devices (`sync::identity`): a request that presents
/// the device's keys gets its certificate, the hub's keys, the revocation list and the
/// directory with the response.
pub fn handle_certified_sync<S: HubStorage + ?Sized>(
    storage: &mut S,
    who: &Principal,
    request: &[u8],
    limits: &HubLimits,
    certifier: Option<&Certifier<'_>>,
) -> std::result::Result<Vec<u8>, HubError> {
    if request.len() > limits.max_request_bytes {
        return Err(HubError::TooLarge("request bytes"));
    }
    let mut request = match wire::decode_request(request, limits.max_decompressed_bytes) {
        Ok(request) => request,
        // Over a limit, as a body too large is: 413, not "malformed".
        Err(wire::DecodeError::TooLarge { .. }) => {
            return Err(HubError::TooLarge("decompressed bytes"));
        }
        Err(e) => return Err(e.into()),
    };
    if request.push.len() > limits.max_push_records {
        return Err(HubError::TooLarge("records pushed"));
    }
    if request.refetch.len() > limits.max_refetch_records {
        return Err(HubError::TooLarge("records asked for"));
    }
    let requester = ActorId::from(request.actor.clone());
    if doc::device_of_actor(&requester) != Some(who.device) {
        return Err(HubError::ActorNotBound);
    }
    // Before anything is stored: a device presenting keys other than its own is refused whole.
    let identity = match (certifier, &request.identity) {
        (Some(certifier), Some(presented)) => {
            hub_identity(certifier, who, presented, Utc::now().timestamp_millis())?
        }
        _ => None,
    };
    // Records are locked in id order, so two hub processes serving overlapping pushes cannot
    // wait on each other in a cycle. The acks are matched by id, not by position. A record
    // named twice is answered once: the first push of it counts.
    request.push.sort_by_key(|e| e.id);
    request.push.dedup_by_key(|e| e.id);
    request.refetch.sort();
    request.refetch.dedup();
    let budget = (request.max_response_bytes as usize).clamp(16 * 1024, limits.max_response_bytes);
    let mut answer = Budget::new(budget);
    let Pushed {
        mut acks,
        stamp,
        pushes_before,
        answered,
        push_retry_in,
    } = store_pushes(
        storage,
        who,
        &request.push,
        (limits, today_of(who, &request)),
        &mut answer,
        Some(std::time::Instant::now() + limits.max_push_time),
        true,
    )?;
    tell_revoked_authors(storage, certifier, who, &request.push, &mut acks, limits)?;
    // A relay told `AuthorRevoked` rebuilds the record on the hub's version: one that never
    // learnt which that is (the record reached it by a bundle, and the hub's copy added
    // nothing) gets it whole, with its heads, in this answer. So does a device whose changes
    // of a record still in its scope went to review (a step of a role its user lost): the
    // record leaves it with them, and comes back as the hub holds it.
    for ack in &acks {
        if matches!(
            ack.outcome,
            PushOutcome::Refused {
                reason: Refusal::AuthorRevoked,
                ..
            } | PushOutcome::Quarantined
        ) && !request.refetch.contains(&ack.id)
        {
            request.refetch.push(ack.id);
        }
    }
    let held_elsewhere = held_outside_scope(storage, who, &request.push, &acks)?;
    let mut actor_known = true;
    // Then the reading, on one snapshot, so that the high-water mark and the walk agree.
    let response = storage.in_read_transaction(&mut |tx| {
        if certifier.is_some() {
            actor_known = tx.device_actor(who.device)?.as_deref() == Some(request.actor.as_slice());
        }
        let mut answer = Budget {
            limit: answer.limit,
            spent: answer.spent,
        };
        let pushes_before = match pushes_before {
            Some(n) => n,
            None => tx.pushes(who.device)?,
        };
        let reference = tx.reference()?;
        respond(
            tx,
            who,
            &who.scope(&reference),
            &request,
            &mut answer,
            &answered,
            pushes_before,
            stamp.number,
            acks.clone(),
        )
    })?;
    // The store the device syncs from now, kept when it changed (a first sync, a store reset):
    // changes of its other actors that the hub lacks will never come (`tell_revoked_authors`).
    // Read in the answer's snapshot, written only then: no transaction more per sync.
    if !actor_known {
        storage.in_transaction(&mut |tx| tx.set_device_actor(who.device, &request.actor))?;
    }
    let mut response = SyncResponse {
        identity,
        attachment_limits: Some(limits.attachments),
        push_retry_in_seconds: push_retry_in
            .map(|wait| u32::try_from(wait.as_secs().saturating_add(1)).unwrap_or(u32::MAX)),
        hub_now_ms: Some(Utc::now().timestamp_millis()),
        ..response
    };
    for id in held_elsewhere {
        if !response.left_scope.contains(&id) {
            response.left_scope.push(id);
        }
    }
    log_outcomes(who, &acks, response.records.len());
    Ok(wire::encode_response(&response))
}

/// What a request's records are judged against: the hub's day in the device's time zone when
/// the device said its clock, else the hub's own day with room for the zones.
fn today_of(who: &Principal, request: &SyncRequest) -> crate::domain::records::Today {
    let Some(clock) = request.device_clock else {
        return crate::domain::records::Today::by_clock();
    };
    let off_ms = clock.now_ms.saturating_sub(Utc::now().timestamp_millis());
    if off_ms.unsigned_abs() > 24 * 60 * 60 * 1000 {
        // Its days are judged against the hub's; its user is told at each sync
        // (`clock_skewed`). The operator sees which phone to have set.
        tracing::warn!(
            device = %who.device,
            clock_off_days = off_ms / (24 * 60 * 60 * 1000),
            "a device's clock is more than a day off the hub's (positive: ahead; every \
             device off by as much: the hub's own clock is wrong): its user should set the \
             phone's date and time"
        );
    }
    crate::domain::records::Today::at_hub(clock.utc_offset_minutes)
}

/// What the hub made of a request's pushes, for its operator: counts and refusal reasons (no
/// record's content, no id), one line per request that pushed anything.
fn log_outcomes(who: &Principal, acks: &[PushAck], sent: usize) {
    if acks.is_empty() {
        return;
    }
    let (mut accepted, mut quarantined, mut erased) = (0usize, 0usize, 0usize);
    let mut refused: std::collections::BTreeMap<String, usize> = Default::default();
    for ack in acks {
        match &ack.outcome {
            PushOutcome::Accepted { .. } => accepted += 1,
            PushOutcome::Quarantined => quarantined += 1,
            PushOutcome::Erased => erased += 1,
            PushOutcome::Refused { reason, .. } => {
                *refused.entry(format!("{reason:?}")).or_default() += 1;
            }
        }
    }
    let refused: Vec<String> = refused
        .into_iter()
        .map(|(reason, n)| format!("{reason}={n}"))
        .collect();
    tracing::info!(
        device = %who.device,
        pushed = acks.len(),
        accepted,
        quarantined,
        erased,
        refused = %refused.join(" "),
        sent,
        "sync pushes judged"
    );
}

/// Of the pushes waiting for changes another device made (`ForeignChanges`), those whose
/// waiting changes come from a device the hub revoked, or from a store of a device other than
/// the one it syncs from now (a phone reset before it synced, its token reissued; an actor
/// forged in its name; edits its user gave up, made again under a new actor), or that a
/// supervisor rejected in review (`reject_quarantined`), or that the hub refused from the
/// device that made them (`remember_refusal`): they will never come, so the record
/// can never be taken from this sender, and it is told so (`AuthorRevoked`) rather than left
/// to wait and to be relayed for ever. The registry is read only when a push waits.
fn tell_revoked_authors<S: HubStorage + ?Sized>(
    storage: &mut S,
    certifier: Option<&Certifier<'_>>,
    who: &Principal,
    push: &[PushEntry],
    acks: &mut [PushAck],
    limits: &HubLimits,
) -> std::result::Result<Vec<Uuid>, HubError> {
    let waits = |ack: &PushAck| {
        matches!(
            ack.outcome,
            PushOutcome::Refused {
                reason: Refusal::ForeignChanges,
                ..
            }
        )
    };
    if !acks.iter().any(waits) {
        return Ok(Vec::new());
    }
    // One read of the registry (it runs when a push waits).
    let registered = match certifier {
        Some(certifier) => registered_devices(certifier)?,
        None => HashMap::new(),
    };
    let (mut carried, mut waiting_on_review) = (Vec::new(), Vec::new());
    for ack in acks.iter_mut().filter(|ack| waits(ack)) {
        let Some(entry) = push.iter().find(|e| e.id == ack.id) else {
            continue;
        };
        let never = storage.in_read_transaction(&mut |tx| {
            let Foreign {
                actors: authors,
                hashes: lacking,
                first,
            } = foreign_changes(tx, who, entry)?;
            // Rejected in a review: their author let the record go with them. Or refused from
            // their author: they will not come from it as they are (corrected, they come with
            // the hub).
            if tx.any_given_up_change(&lacking)? || tx.any_refused_change(&lacking)? {
                return Ok(Never::Other);
            }
            let mut of_revoked = HashSet::new();
            // Changes of a device that will send them itself (a colleague's, relayed before
            // she synced): the push waits for them, whatever else it holds. Kept for review
            // now, as the lost or reset phone's work, they were written again in its user's
            // name, and the colleague's own sync of them was refused for good.
            let mut of_a_live_device = false;
            for actor in authors {
                let Some(device) = doc::device_of_actor(&actor) else {
                    continue;
                };
                // Revoked (a lost phone), or syncing from another store since (an edit made at
                // an older version is under an actor derived from the store's, by
                // `transaction_at`: the store's own): a phone reset, its token reissued, whose
                // work a colleague carried before. Either way its changes never come from it,
                // and they are kept for review as its user's work (a forged actor in its name
                // is for the reviewer to tell apart, as with a lost phone's).
                if registered.get(&device).is_some_and(|(revoked, _)| *revoked)
                    || tx
                        .device_actor(device)?
                        .is_some_and(|current| current != bounds::isolated_base(actor.to_bytes()))
                {
                    of_revoked.insert(device);
                } else {
                    // Also a device whose token was reissued and whose new store has not
                    // synced yet (it holds no certificate): known replaced once it does.
                    of_a_live_device = true;
                }
            }
            if of_a_live_device {
                return Ok(Never::No);
            }
            let author_of = |device: &Uuid| {
                registered
                    .get(device)
                    .and_then(|(_, user)| *user)
                    .map(|user| ChangeAuthor {
                        user,
                        device: *device,
                    })
            };
            // Several lost or reset phones' work, one's built on another's (a case made on
            // one, referred on the other): the first's, built on no other's, is kept for review
            // and the push waits; once accepted, the next one's is kept at the carrier's next
            // sync. Refused at once, the carriers kept the child's case refused for ever.
            Ok(match of_revoked.len() {
                0 => Never::No,
                1 => of_revoked
                    .iter()
                    .find_map(author_of)
                    .map_or(Never::Other, Never::Revoked),
                _ => of_revoked
                    .intersection(&first)
                    .min()
                    .and_then(author_of)
                    .map_or(Never::Other, Never::RevokedFirst),
            })
        })?;
        match never {
            Never::No => {}
            Never::Other => ack.outcome = refused(Refusal::AuthorRevoked),
            Never::Revoked(author) => carried.push((entry, author)),
            Never::RevokedFirst(author) => waiting_on_review.push((entry, author)),
        }
    }
    let all: Vec<_> = carried.iter().chain(&waiting_on_review).copied().collect();
    let (kept, no_room, rejected) = keep_all_carried(storage, who, limits, &all)?;
    // Kept for review, or never to be: the carrier rebuilds the record without it. With no
    // room left for review, it waits on the carrier's phone, which sends it again at its next
    // sync, rather than drop the lost phone's work.
    // Of several lost phones' work, the first's rejected: what builds on it never comes either.
    for ack in acks.iter_mut() {
        if (carried.iter().any(|(entry, _)| entry.id == ack.id) && !no_room.contains(&ack.id))
            || rejected.contains(&ack.id)
        {
            ack.outcome = refused(Refusal::AuthorRevoked);
        }
    }
    Ok(kept)
}

/// Each revoked device, with the user its last certificate names.
fn revoked_devices(
    certifier: &Certifier<'_>,
) -> std::result::Result<HashMap<Uuid, Option<Uuid>>, HubError> {
    Ok(registered_devices(certifier)?
        .into_iter()
        .filter(|(_, (revoked, _))| *revoked)
        .map(|(device, (_, user))| (device, user))
        .collect())
}

/// Each device holding a certificate or revoked: whether it is revoked, and the user its last
/// certificate names.
fn registered_devices(
    certifier: &Certifier<'_>,
) -> std::result::Result<HashMap<Uuid, (bool, Option<Uuid>)>, HubError> {
    Ok(certifier
        .registry
        .devices()?
        .into_iter()
        .map(|d| {
            let user = d
                .certificate
                .as_deref()
                .and_then(|c| crate::identity::Certificate::from_bytes(c).ok())
                .filter(|c| c.device == d.device)
                .map(|c| c.user);
            (d.device, (d.revoked, user))
        })
        .collect())
}

/// `keep_carried_for_review` for each entry, in one transaction: the records whose revoked
/// device's work waits for review now (kept now, or by an earlier carrier), and those for
/// which no room was left.
fn keep_all_carried<S: HubStorage + ?Sized>(
    storage: &mut S,
    carrier: &Principal,
    limits: &HubLimits,
    carried: &[(&PushEntry, ChangeAuthor)],
) -> Result<(Vec<Uuid>, Vec<Uuid>, Vec<Uuid>)> {
    if carried.is_empty() {
        return Ok((Vec::new(), Vec::new(), Vec::new()));
    }
    storage.in_transaction(&mut |tx| {
        let (mut kept, mut no_room, mut rejected) = (Vec::new(), Vec::new(), Vec::new());
        for (entry, author) in carried {
            match keep_carried_for_review(tx, carrier, limits, entry, *author)? {
                Carried::Kept => kept.push(entry.id),
                Carried::NoRoom => no_room.push(entry.id),
                Carried::NotKept => {}
                Carried::Rejected => rejected.push(entry.id),
            }
        }
        Ok((kept, no_room, rejected))
    })
}

/// What became of a revoked device's work a colleague carried (`keep_carried_for_review`).
enum Carried {
    /// Waiting for review: kept now, or by an earlier carrier.
    Kept,
    /// Not kept, for want of room: it may be at a later sync.
    NoRoom,
    /// Never to be kept (rejected, erased, outside the carrier's scope, not its device's).
    NotKept,
    /// The same copy was rejected in an earlier review: never kept again, and what builds
    /// on it will never be taken.
    Rejected,
}

/// Of the changes `document` holds past `before`, those `author`'s device made, with those of
/// the carrier's they build on (the record as the lost phone had it from a colleague): their
/// hashes, and their bytes in the order they apply. The carrier's own edits past them are left
/// out (its phone makes them again and sends them as its own), so that the entry holds the
/// lost phone's work as it made it, which a review accepts as it is: its history, its times.
/// `None` if it made none, or one of them names another author than its user.
fn made_by(
    document: &Automerge,
    before: &[ChangeHash],
    author: ChangeAuthor,
) -> Option<(Vec<ChangeHash>, Vec<u8>)> {
    let changes = document.get_changes_meta(before);
    let theirs =
        |c: &automerge::ChangeMetadata<'_>| doc::device_of_actor(&c.actor) == Some(author.device);
    if !changes.iter().any(theirs)
        || changes
            .iter()
            .filter(|c| theirs(c))
            .any(|c| doc::author_in(c.message.as_deref()) != Some(author))
    {
        return None;
    }
    let new: HashSet<ChangeHash> = changes.iter().map(|c| c.hash).collect();
    let mut kept: HashSet<ChangeHash> = HashSet::new();
    let mut next: Vec<ChangeHash> = changes
        .iter()
        .filter(|c| theirs(c))
        .map(|c| c.hash)
        .collect();
    let by_hash: HashMap<ChangeHash, &automerge::ChangeMetadata<'_>> =
        changes.iter().map(|c| (c.hash, c)).collect();
    while let Some(hash) = next.pop() {
        if !kept.insert(hash) {
            continue;
        }
        if let Some(change) = by_hash.get(&hash) {
            next.extend(change.deps.iter().filter(|d| new.contains(d)).copied());
        }
    }
    let mut hashes = Vec::new();
    let mut bytes = Vec::new();
    for change in document.get_changes(before) {
        if kept.contains(&change.hash()) {
            hashes.push(change.hash());
            bytes.extend_from_slice(change.raw_bytes());
        }
    }
    Some((hashes, bytes))
}

/// Whether the changes a push waits for will ever come (`tell_revoked_authors`).
enum Never {
    No,
    /// Of one revoked device (a lost phone's, passed on by a peer or a bundle before it was
    /// reported), or of a store of one since reset (its token reissued), made by its user:
    /// kept for a supervisor's review.
    Revoked(ChangeAuthor),
    /// Of a store since reset, rejected in review, or refused from their author.
    Other,
    /// Of several revoked or reset devices: the first one's work (built on no other's) is
    /// kept for review, and the push waits for its acceptance.
    RevokedFirst(ChangeAuthor),
}

/// Keeps for a supervisor's review what a colleague's phone carried of a revoked device's
/// work (a record it made, or changes to one, before it was lost), that the hub refuses from
/// the colleague (`AuthorRevoked`): the lost phone will never send it, and it is the monitor's
/// work, or a thief's, which only a reviewer can tell apart (with her). The entry is the
/// revoked device's (`author`: its user's role judges the steps it takes); the colleague's own
/// edits among the changes are made again on its phone and pushed as usual. Kept only for a
/// record in the carrier's scope, whose changes of that device each name its user, not given
/// up, once (another carrier's copy of the same changes makes no second entry), and while
/// there is room (`MAX_CARRIED_PER_CARRIER`, `MAX_QUARANTINED_PER_DEVICE`).
fn keep_carried_for_review(
    tx: &mut dyn HubTransaction,
    carrier: &Principal,
    limits: &HubLimits,
    entry: &PushEntry,
    author: ChangeAuthor,
) -> Result<Carried> {
    if tx.is_erased(entry.id)? || carries_erased(tx, entry.id, &entry.changes)? {
        return Ok(Carried::NotKept);
    }
    let stored = tx.record(entry.id, true)?;
    let mut document = match &stored {
        Some(stored) => match codec::load(entry.id, &stored.document) {
            Ok(document) => document,
            Err(_) => return Ok(Carried::NotKept),
        },
        None => Automerge::new(),
    };
    let before = document.get_heads();
    if codec::merge_into(&mut document, entry.id, &entry.changes).is_err()
        || !document.get_missing_deps(&[]).is_empty()
    {
        return Ok(Carried::NotKept);
    }
    let Some((new, changes)) = made_by(&document, &before, author) else {
        return Ok(Carried::NotKept);
    };
    let reference = tx.reference()?;
    let kind = stored
        .as_ref()
        .map(|s| s.kind)
        .or_else(|| doc::kind_of(&document));
    let area = match &stored {
        Some(stored) => stored.area.clone(),
        None => kind
            .and_then(|kind| TypedRecord::read(kind, entry.id, &document).ok())
            .and_then(|record| record.area().cloned()),
    };
    let Some(kind) = kind else {
        return Ok(Carried::NotKept);
    };
    if !carrier.scope(&reference).receives(kind, area.as_ref()) || tx.any_given_up_change(&new)? {
        return Ok(Carried::NotKept);
    }
    if tx
        .setting(&crate::storage::rejected_carried_key(&new))?
        .is_some()
    {
        return Ok(Carried::Rejected);
    }
    // The same work waiting already (another colleague's copy of it): no second entry. One
    // holding more than this copy (the same work with a thief's edits after it, carried by
    // another) is no reason to keep none: the supervisor may accept this one and reject that.
    if same_waiting(tx, entry.id, stored.as_ref(), &new)? {
        return Ok(Carried::Kept);
    }
    // A change names its device and user, which nothing signs: one enrolled phone with an
    // altered app could pass off its own writing as the lost phone's, and fill its room for
    // review before the honest colleagues' copies come. Each device brings at most
    // `MAX_CARRIED_PER_CARRIER` entries of revoked devices' work, ever.
    let key = crate::storage::carried_key(carrier.device);
    let brought: u32 = tx.setting(&key)?.and_then(|n| n.parse().ok()).unwrap_or(0);
    if brought >= MAX_CARRIED_PER_CARRIER
        || tx.quarantined_from(author.device)? >= MAX_QUARANTINED_PER_DEVICE
    {
        tracing::warn!(
            device = %author.device,
            carrier = %carrier.device,
            "a revoked device's changes, carried by another device, not kept for review: no \
             room left (one device brings {MAX_CARRIED_PER_CARRIER} at most, and \
             {MAX_QUARANTINED_PER_DEVICE} wait for one revoked device at most): it waits on \
             the carrier's phone"
        );
        return Ok(Carried::NoRoom);
    }
    tx.set_setting(&key, &(brought + 1).to_string())?;
    tx.quarantine(&Quarantined {
        entry: 0,
        record: entry.id,
        device: author.device,
        user: author.user,
        changes,
        received_ms: Utc::now().timestamp_millis(),
    })?;
    let held = doc::attachments_at(&document, &before);
    let most = limits.attachments.max_per_record as usize;
    for attachment in doc::attachments(&document)
        .iter()
        .filter(|a| !held.iter().any(|h| h.id == a.id))
        .take(most)
    {
        tx.reserve_attachment(entry.id, attachment)?;
    }
    // Which device carried it: what a forged "work of the lost phone" is traced to (a change
    // names its device and user, which nothing signs).
    tracing::info!(
        device = %author.device,
        carrier = %carrier.device,
        "a revoked device's changes, carried by another device, kept for review"
    );
    Ok(Carried::Kept)
}

/// Of the pushes waiting for changes another device made, those of a record the hub holds
/// outside the sender's scope: a copy that reached the sender by a peer or a bundle after the
/// record moved to an area it does not cover (`ForeignChanges`, with every change pushed one
/// the hub holds), or changes that will never come (`AuthorRevoked`: rejected in review, a
/// revoked device's, among changes the hub holds). Nothing more of it is to come from anyone,
/// and the sender, which proved it holds the record, is told it left its scope (it would
/// otherwise keep the child's record, refused or waiting, and pass it on).
fn held_outside_scope<S: HubStorage + ?Sized>(
    storage: &mut S,
    who: &Principal,
    push: &[PushEntry],
    acks: &[PushAck],
) -> std::result::Result<Vec<Uuid>, HubError> {
    let waiting: Vec<(&PushEntry, bool)> = acks
        .iter()
        .filter_map(|ack| match ack.outcome {
            PushOutcome::Refused {
                reason: Refusal::ForeignChanges,
                ..
            } => Some((ack, false)),
            PushOutcome::Refused {
                reason: Refusal::AuthorRevoked,
                ..
            } => Some((ack, true)),
            _ => None,
        })
        .filter_map(|(ack, never)| push.iter().find(|e| e.id == ack.id).map(|e| (e, never)))
        .collect();
    if waiting.is_empty() {
        return Ok(Vec::new());
    }
    Ok(storage.in_read_transaction(&mut |tx| {
        let reference = tx.reference()?;
        let scope = who.scope(&reference);
        let mut left = Vec::new();
        for &(entry, never) in &waiting {
            let Ok(Some(stored)) = tx.record(entry.id, false) else {
                continue;
            };
            if scope.receives(stored.kind, stored.area.as_ref()) {
                continue;
            }
            let Ok(mut document) = codec::load(entry.id, &stored.document) else {
                continue;
            };
            let proved = if never {
                // Some change pushed is one the hub holds (the rest will never be taken).
                let mut pushed = Automerge::new();
                codec::merge_into(&mut pushed, entry.id, &entry.changes).is_ok()
                    && pushed
                        .get_changes_meta(&[])
                        .iter()
                        .any(|c| document.get_change_meta_by_hash(&c.hash).is_some())
            } else {
                // Every change pushed is one the hub holds: none new, none waiting for others
                // (which only the record's content could name).
                let before = document.get_heads();
                codec::merge_into(&mut document, entry.id, &entry.changes).is_ok()
                    && document.get_heads() == before
                    && document.get_missing_deps(&[]).is_empty()
            };
            if proved {
                left.push(entry.id);
            }
        }
        Ok(left)
    })?)
}

/// The changes of a push the hub does not hold that devices other than the sender's made
/// (`foreign_changes`).
#[derive(Default)]
struct Foreign {
    /// Their actors.
    actors: HashSet<ActorId>,
    /// Their hashes.
    hashes: Vec<ChangeHash>,
    /// The devices whose changes among them build on no other device's among them.
    first: HashSet<Uuid>,
}

fn foreign_changes(
    tx: &mut dyn HubTransaction,
    who: &Principal,
    entry: &PushEntry,
) -> Result<Foreign> {
    let nothing = Foreign::default;
    let mut document = match tx.record(entry.id, false) {
        Ok(Some(stored)) => match codec::load(entry.id, &stored.document) {
            Ok(document) => document,
            Err(_) => return Ok(nothing()),
        },
        Ok(None) => Automerge::new(),
        Err(e @ (Error::Storage(_) | Error::HubStorage { .. })) => return Err(e),
        Err(_) => return Ok(nothing()),
    };
    let before = document.get_heads();
    if codec::merge_into(&mut document, entry.id, &entry.changes).is_err() {
        return Ok(nothing());
    }
    let mut foreign = nothing();
    let changes = document.get_changes_meta(&before);
    let device_of: HashMap<ChangeHash, Uuid> = changes
        .iter()
        .filter_map(|c| Some((c.hash, doc::device_of_actor(&c.actor)?)))
        .filter(|(_, device)| *device != who.device)
        .collect();
    let deps_of: HashMap<ChangeHash, &[ChangeHash]> =
        changes.iter().map(|c| (c.hash, &c.deps[..])).collect();
    // Each device's changes, whose history is walked once per device.
    let mut starts: HashMap<Uuid, Vec<ChangeHash>> = HashMap::new();
    for change in &changes {
        let Some(device) = device_of.get(&change.hash) else {
            continue;
        };
        foreign.hashes.push(change.hash);
        foreign.actors.insert(change.actor.clone().into_owned());
        starts
            .entry(*device)
            .or_default()
            .extend(change.deps.iter().copied());
    }
    for (device, mut next) in starts {
        // Through any change among them (the sender's own edit between two lost phones').
        let mut seen = HashSet::new();
        let mut built_on_another = false;
        while let Some(dep) = next.pop() {
            if !seen.insert(dep) {
                continue;
            }
            if device_of.get(&dep).is_some_and(|other| *other != device) {
                built_on_another = true;
                break;
            }
            next.extend(deps_of.get(&dep).copied().unwrap_or_default());
        }
        if !built_on_another {
            foreign.first.insert(device);
        }
    }
    Ok(foreign)
}

/// What importing a bundle on the hub did, record by record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubBundleReport {
    /// The device that exported it.
    pub from_device: Uuid,
    pub records: usize,
    pub accepted: usize,
    /// Kept for a supervisor's review (the exporter's user lost the record's area).
    pub quarantined: usize,
    /// Records erased on the hub: nothing of them was taken.
    pub erased: usize,
    /// Records whose every bundled change the hub holds already (a record the exporter
    /// received and never changed, or a bundle imported again): nothing to import.
    pub held: usize,
    pub refused: Vec<(Uuid, Refusal)>,
    /// Of `refused`, the field and rule of those whose content breaks a rule.
    pub refusal_details: Vec<(Uuid, RefusalDetail)>,
    /// Records holding changes other devices made that the hub has not received from them
    /// (a colleague's edit passed by a peer, whose own file is not imported yet), with those
    /// devices: nothing of them is taken but the exporter's own changes that build on none of
    /// theirs (`partly_taken`), and importing this file again once those devices' changes are
    /// on the hub takes the rest. Not in `refused`: files arrive in any order.
    pub awaiting_authors: Vec<(Uuid, Vec<Uuid>)>,
    /// Of `awaiting_authors`, the records of which the hub took the exporter's changes that
    /// build on no waiting one (its edits before the colleague's reached it): what it recorded
    /// on top of the colleague's edit (a follow-up, a conflict's resolution) waits with them.
    pub partly_taken: Vec<Uuid>,
    /// Records holding work of a revoked device (a lost phone's, passed on before it was lost)
    /// that the hub keeps for review as that device's (`keep_carried_for_review`); counted in
    /// `quarantined`, in neither `refused` nor `awaiting_authors`.
    pub carried_for_review: Vec<Uuid>,
}

/// Imports a bundle sealed to the hub (`Recipient::Hub`): the records a phone carried in a
/// file because it could not reach the hub, or before it was lost. The bundle opens with the
/// hub's key and its exporter's certificate must be one this hub signed; `exporter` says who
/// the device that signed it syncs as now, or why its bundle is refused whole
/// (`IdentityError::Revoked`, or `KeysReplaced` when the hub no longer binds it to the keys
/// the bundle was sealed under). A record whose every change the hub holds already is
/// counted as held; each other record is judged exactly as that device's push
/// (`accept_push`: its own changes only, its scope, the workflow, erasure, the bounds), and
/// stored or refused on its own. One holding changes that will never reach the hub (a lost
/// phone's, revoked since, passed on by a peer) is refused `AuthorRevoked`, as that device's
/// sync would be: waiting for them would keep it, and the others' edits on it, out for ever.
pub fn import_hub_bundle<S: HubStorage + ?Sized>(
    storage: &mut S,
    certifier: &Certifier<'_>,
    exporter: &dyn Fn(&crate::identity::Certificate) -> Result<Principal>,
    bytes: &[u8],
    limits: &HubLimits,
) -> std::result::Result<HubBundleReport, HubError> {
    let key = certifier.key;
    let issuer = crate::identity::Trust {
        hub: key.public().signing,
        revoked: Default::default(),
        newest: Default::default(),
        now_ms: 0,
    };
    let mut who = None;
    let (_, bundle) = super::bundle::open_signed(bytes, &key.agreement(), |certificate| {
        issuer.check_issuer(certificate)?;
        who = Some(exporter(certificate)?);
        Ok(())
    })?;
    let who = who.expect("set when the certificate was trusted");
    if bundle.documents.len() > limits.max_push_records {
        return Err(HubError::TooLarge("records pushed"));
    }
    let mut push: Vec<PushEntry> = bundle
        .documents
        .into_iter()
        .map(|(id, changes)| PushEntry {
            id,
            heads: Vec::new(),
            changes,
        })
        .collect();
    push.sort_by_key(|e| e.id);
    push.dedup_by_key(|e| e.id);
    let records = push.len();
    let mut held = HashSet::new();
    for batch in push.chunks(HELD_CHECK_BATCH) {
        held.extend(storage.in_read_transaction(&mut |tx| {
            let mut held = Vec::new();
            for entry in batch {
                if holds_every_change(tx, entry)? {
                    held.push(entry.id);
                }
            }
            Ok(held)
        })?);
    }
    push.retain(|entry| !held.contains(&entry.id));
    // A bundle is imported whole: no one would send the rest again.
    // Made on a day nobody knows, by a clock the file does not say: the hub's own day.
    let mut pushed = store_pushes(
        storage,
        &who,
        &push,
        (limits, crate::domain::records::Today::by_clock()),
        &mut Budget::new(0),
        None,
        false,
    )?;
    let mut carried = tell_revoked_authors(
        storage,
        Some(certifier),
        &who,
        &push,
        &mut pushed.acks,
        limits,
    )?;
    let mut awaiting = Vec::new();
    let mut taken = Vec::new();
    let mut report = HubBundleReport {
        from_device: who.device,
        records,
        held: held.len(),
        ..HubBundleReport::default()
    };
    for PushAck { id, outcome } in pushed.acks {
        match outcome {
            PushOutcome::Accepted { .. } => taken.push(id),
            PushOutcome::Quarantined => report.quarantined += 1,
            PushOutcome::Erased => report.erased += 1,
            PushOutcome::Refused {
                reason: Refusal::ForeignChanges,
                ..
            } => awaiting.push(id),
            PushOutcome::Refused {
                reason: Refusal::AuthorRevoked,
                ..
            } if carried.contains(&id) => {}
            PushOutcome::Refused { reason, detail } => {
                report.refused.push((id, reason));
                if let Some(detail) = detail {
                    report.refusal_details.push((id, detail));
                }
            }
        }
    }
    // A record taken in part (the exporter's changes that build on none of another device's
    // the hub lacks, `senders_own`) is not held whole now: the rest waits, as a record of
    // which nothing was taken. A sync pushes that rest again; nobody would import this file
    // again if told it was taken.
    let entry_of = |id: &Uuid| {
        push.binary_search_by_key(id, |e| e.id)
            .ok()
            .map(|at| &push[at])
    };
    for batch in taken.chunks(HELD_CHECK_BATCH) {
        let partly = storage.in_read_transaction(&mut |tx| {
            let mut partly = Vec::new();
            for id in batch {
                if let Some(entry) = entry_of(id)
                    && !holds_every_change(tx, entry)?
                {
                    partly.push(*id);
                }
            }
            Ok(partly)
        })?;
        report.partly_taken.extend(partly);
    }
    report.accepted = taken.len() - report.partly_taken.len();
    awaiting.extend(report.partly_taken.iter().copied());
    for batch in awaiting.chunks(HELD_CHECK_BATCH) {
        let named = storage.in_read_transaction(&mut |tx| {
            let mut named = Vec::new();
            for id in batch {
                // `push` is in id order: each ack's entry is found, not walked to.
                let Some(entry) = entry_of(id) else {
                    continue;
                };
                if let Some(devices) = authors_not_received(tx, entry, &who)? {
                    named.push((*id, devices));
                }
            }
            Ok(named)
        })?;
        report.awaiting_authors.extend(named);
    }
    // Records taken in part whose rest is a revoked device's work: kept for review, as its
    // sync would have it kept (`tell_revoked_authors`), not said to wait for it. The registry
    // is read only when one waits for a single device.
    let revoked = match report.awaiting_authors.iter().any(|(_, d)| d.len() == 1) {
        true => revoked_devices(certifier)?,
        false => HashMap::new(),
    };
    let of_revoked: Vec<(&PushEntry, ChangeAuthor)> = report
        .awaiting_authors
        .iter()
        .filter_map(|(id, devices)| match devices.as_slice() {
            [device] => Some((
                entry_of(id)?,
                ChangeAuthor {
                    user: revoked.get(device).copied().flatten()?,
                    device: *device,
                },
            )),
            _ => None,
        })
        .collect();
    // With no room left for review, they wait as they did: the exporter's phone sends them.
    carried.extend(keep_all_carried(storage, &who, limits, &of_revoked)?.0);
    report
        .awaiting_authors
        .retain(|(id, _)| !carried.contains(id));
    report.quarantined += carried.len();
    report.carried_for_review = carried;
    // Those outside the exporter's scope are refused as such (another import changes nothing).
    let outside = awaiting
        .into_iter()
        .filter(|id| {
            !report.awaiting_authors.iter().any(|(a, _)| a == id)
                && !report.carried_for_review.contains(id)
        })
        .map(|id| (id, Refusal::ForeignChanges));
    report.refused.extend(outside.collect::<Vec<_>>());
    Ok(report)
}

/// The devices, other than the exporter, that made changes of a bundled record the hub does
/// not hold: those whose file (or sync) must come first (empty when the bundled document does
/// not read whole). `None` for a record the hub holds outside the exporter's scope: no order
/// of files makes it the exporter's to change.
fn authors_not_received(
    tx: &mut dyn HubTransaction,
    entry: &PushEntry,
    exporter: &Principal,
) -> Result<Option<Vec<Uuid>>> {
    let held = match tx.record(entry.id, false) {
        Ok(Some(stored)) => {
            let scope = exporter.scope(&*tx.reference()?);
            if !scope.receives(stored.kind, stored.area.as_ref()) {
                return Ok(None);
            }
            codec::load(entry.id, &stored.document).ok()
        }
        Ok(None) | Err(Error::DamagedDocument { .. }) | Err(Error::OverLimit { .. }) => None,
        Err(e) => return Err(e),
    };
    let Ok(bundled) = codec::load(entry.id, &entry.changes) else {
        return Ok(Some(Vec::new()));
    };
    let mut devices = std::collections::BTreeSet::new();
    for change in bundled.get_changes_meta(&[]) {
        if held
            .as_ref()
            .is_some_and(|h| h.get_change_by_hash(&change.hash).is_some())
        {
            continue;
        }
        if let Some(device) = doc::device_of_actor(&change.actor).filter(|d| *d != exporter.device)
        {
            devices.insert(device);
        }
    }
    Ok(Some(devices.into_iter().collect()))
}

/// Records of a bundle checked for being held in one read transaction.
const HELD_CHECK_BATCH: usize = 256;

/// Whether the hub holds every change of a bundled record already: merging them into the
/// record as the hub holds it adds nothing. Whatever does not read is left to `accept_push`.
fn holds_every_change(tx: &mut dyn HubTransaction, entry: &PushEntry) -> Result<bool> {
    let stored = match tx.record(entry.id, false) {
        Ok(Some(stored)) => stored,
        Ok(None) | Err(Error::DamagedDocument { .. }) | Err(Error::OverLimit { .. }) => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    let Ok(mut document) = codec::load(entry.id, &stored.document) else {
        return Ok(false);
    };
    let before = document.get_heads();
    Ok(
        codec::merge_into(&mut document, entry.id, &entry.changes).is_ok()
            && document.get_missing_deps(&[]).is_empty()
            && document.get_heads() == before,
    )
}

/// What storing a request's pushes did (`store_pushes`).
struct Pushed {
    acks: Vec<PushAck>,
    stamp: PushStamp,
    /// The device's pushes numbered before this request's.
    pushes_before: Option<i64>,
    /// Records whose ack carries everything the device lacks of them, with the hub's heads
    /// it announced.
    answered: HashMap<Uuid, Vec<[u8; 32]>>,
    /// Past the device's allowance, records wait: how long until it is worth pushing again.
    push_retry_in: Option<std::time::Duration>,
}

/// A pushed record loaded, merged into the record as a read transaction found it, and read as
/// its kind, before the write transaction that judges it: the work a large record costs is
/// done beside other devices' writes, not while holding the writer (a record of 60,000 entries
/// held it for a quarter of a second). Used only if the write transaction finds the stored
/// record exactly as it was.
struct Prepared {
    /// The stored document it was merged into (none: a new record); shared with the refusal's
    /// memory, which checks it against the record as the writer finds it.
    stored: Option<std::sync::Arc<Vec<u8>>>,
    merged: Merged,
    /// The merged document as the record of the kind it names, if it reads (not worked out
    /// for a record outside the sender's scope: it is not stored as the sender made it).
    record: Option<TypedRecord>,
    /// The sender's own changes the stored document lacks (`remember_refusal`).
    own_new: Vec<ChangeHash>,
    /// For a record outside the sender's scope, the push as if its id were new: what the
    /// sender is answered when its changes are not kept for review (`accept_push`).
    as_new: Option<Box<Prepared>>,
}

/// Of a `Prepared`, what a refusal remembers (`remember_refusal`): the sender's own changes
/// the stored document lacked, and that document.
struct OwnChanges {
    stored: Option<std::sync::Arc<Vec<u8>>>,
    own_new: Vec<ChangeHash>,
}

/// Whether work prepared on the stored bytes `prepared` holds for the record as the writer
/// finds it (`found`; none for a record not stored).
fn prepared_on(prepared: &Option<std::sync::Arc<Vec<u8>>>, found: Option<&[u8]>) -> bool {
    prepared.as_ref().map(|bytes| bytes.as_slice()) == found
}

/// A push's changes merged into the stored document (into a new one for a new record).
enum Merged {
    /// The hub's own copy does not load.
    StoredUnreadable,
    /// The changes do not merge: why (kept, so that bytes a hostile device made to fail cost
    /// their merge once).
    Refused(Error),
    Done {
        document: Box<Automerge>,
        /// The stored document's heads (none for a new record).
        before: Vec<ChangeHash>,
    },
}

fn merge_pushed(entry: &PushEntry, stored: Option<&[u8]>) -> Merged {
    let (mut document, before) = match stored {
        Some(bytes) => match codec::load(entry.id, bytes) {
            Ok(document) => {
                let before = document.get_heads();
                (document, before)
            }
            Err(_) => return Merged::StoredUnreadable,
        },
        None => (Automerge::new(), Vec::new()),
    };
    match codec::merge_into(&mut document, entry.id, &entry.changes) {
        Ok(()) => Merged::Done {
            document: Box::new(document),
            before,
        },
        Err(e) => Merged::Refused(e),
    }
}

/// `Prepared` for `entry` from `sender`, from the record `stored` as read; `typed`: whether
/// the merged document is read as its kind.
fn prepare(entry: &PushEntry, sender: Uuid, stored: Option<StoredRecord>, typed: bool) -> Prepared {
    let merged = merge_pushed(entry, stored.as_ref().map(|s| s.document.as_slice()));
    let (record, own_new) = match &merged {
        Merged::Done { document, before } => (
            doc::kind_of(document)
                .filter(|_| typed)
                .and_then(|kind| TypedRecord::read(kind, entry.id, document).ok()),
            own_changes_since(document, before, sender),
        ),
        _ => (None, Vec::new()),
    };
    Prepared {
        stored: stored.map(|stored| std::sync::Arc::new(stored.document)),
        merged,
        record,
        own_new,
        as_new: None,
    }
}

/// The changes of `document` since `before` made on the device `sender`, at most as many as a
/// refusal remembers.
fn own_changes_since(document: &Automerge, before: &[ChangeHash], sender: Uuid) -> Vec<ChangeHash> {
    const MOST: usize = 256;
    document
        .get_changes_meta(before)
        .iter()
        .filter(|c| doc::device_of_actor(&c.actor) == Some(sender))
        .map(|c| c.hash)
        .take(MOST)
        .collect()
}

/// Whether a push would make Automerge build more operations than one push may
/// (`DocumentLimits::push_operations`): refused before anything reads it. Bytes over the
/// bounds of a document are `codec::merge_into`'s to refuse, as ever.
fn too_heavy(weight: &PushWeight) -> bool {
    weight.operations > DocumentLimits::STANDARD.push_operations()
}

/// What judging a push costs, worked out once from its bytes (`bounds::admit`, which reads
/// every chunk and checks its checksum) for the read transaction that prepares it, the write
/// transaction that judges it, and the allowance that pays for a refusal.
struct PushWeight {
    /// The operations Automerge would build to read it (0 for bytes `admit` refuses: over a
    /// document's bounds, they are never read).
    operations: u64,
    bytes: u64,
}

impl PushWeight {
    fn of(entry: &PushEntry) -> PushWeight {
        PushWeight {
            operations: bounds::admit(&entry.changes, &DocumentLimits::STANDARD)
                .map_or(0, |admitted| admitted.operations),
            bytes: entry.changes.len() as u64,
        }
    }

    /// What a refused push costs its device of its hour's bytes: its bytes, or what
    /// Automerge built to judge it (some 16 bytes an operation), whichever is more: a push of
    /// a few KB that took the hub a second to judge was charged those few KB.
    fn refused_cost(&self) -> u64 {
        self.bytes.max(self.operations.saturating_mul(16))
    }
}

/// Prepares the first of `push`'s entries for the next write transaction, as many as take
/// about as long as one (`PUSH_BATCH_TIME`), at least one, in a read transaction (beside the
/// writer).
fn prepare_batch<S: HubStorage + ?Sized>(
    storage: &mut S,
    who: &Principal,
    push: &[PushEntry],
    weights: &[PushWeight],
) -> Result<Vec<Option<Prepared>>> {
    storage.in_read_transaction(&mut |tx| {
        let started = std::time::Instant::now();
        let scope = who.scope(&*tx.reference()?);
        let mut prepared = Vec::new();
        for (entry, weight) in push.iter().zip(weights) {
            if too_heavy(weight) {
                // Refused unread (`accept_push`).
                prepared.push(None);
                continue;
            }
            prepared.push(match tx.record(entry.id, false) {
                // A record outside the sender's scope is judged otherwise (review, or the
                // answer of an id it cannot see), on the same merge: made here too, so that
                // pushes naming large records of other areas do not hold the writer.
                Ok(Some(stored)) if !scope.receives(stored.kind, stored.area.as_ref()) => {
                    let as_new = prepare(entry, who.device, None, true);
                    Some(Prepared {
                        as_new: Some(Box::new(as_new)),
                        ..prepare(entry, who.device, Some(stored), false)
                    })
                }
                Ok(stored) => Some(prepare(entry, who.device, stored, true)),
                // Judged in the write transaction, as always.
                Err(Error::DamagedDocument { .. }) | Err(Error::OverLimit { .. }) => None,
                Err(e) => return Err(e),
            });
            if started.elapsed() >= PUSH_BATCH_TIME {
                break;
            }
        }
        Ok(prepared)
    })
}

/// Stores pushed records, each judged by the hub's rules (`accept_push`), in batches; with
/// `allowed`, as many as the device's allowance of changes takes (`DeviceAllowances`: the
/// others get no answer, and are sent again later).
fn store_pushes<S: HubStorage + ?Sized>(
    storage: &mut S,
    who: &Principal,
    push: &[PushEntry],
    (limits, today): (&HubLimits, crate::domain::records::Today),
    answer: &mut Budget,
    deadline: Option<std::time::Instant>,
    allowed: bool,
) -> std::result::Result<Pushed, HubError> {
    let allowances = storage.allowances().filter(|_| allowed);
    let mut reservation = allowances
        .as_ref()
        .map(|a| a.reserve(who.device, Measure::Changes, limits.device_changes_per_hour));
    let mut byte_reservation = allowances
        .as_ref()
        .map(|a| a.reserve(who.device, Measure::Bytes, limits.device_bytes_per_hour));
    let allowance = reservation.as_ref().map_or(u64::MAX, |r| r.reserved());
    let byte_allowance = byte_reservation.as_ref().map_or(u64::MAX, |r| r.reserved());
    let spent = |stamp: &PushStamp| stamp.changes >= allowance || stamp.bytes >= byte_allowance;
    let author = ChangeAuthor {
        user: who.user,
        device: who.device,
    };
    // Pushes are stored in batches, each its own write transaction: a large push never holds
    // the writer for long, and a request cut half-way loses nothing (a push sent again changes
    // nothing). Acks stay per record. Each batch starts again from the state the previous one
    // committed, so that a transaction run again (a serialization failure) counts nothing twice.
    let mut stamp = PushStamp {
        device: who.device,
        number: None,
        applied: false,
        changes: 0,
        bytes: 0,
    };
    let mut pushes_before = None;
    let mut acks: Vec<PushAck> = Vec::with_capacity(push.len());
    // Records whose ack carries everything the device lacks of them, with the hub's heads it
    // announced: the walk skips them while the hub still holds exactly that (another device
    // may change them between the pushes' commit and the walk).
    let mut answered: HashMap<Uuid, Vec<[u8; 32]>> = HashMap::new();
    let weights: Vec<PushWeight> = push.iter().map(PushWeight::of).collect();
    let mut rest = push;
    let mut rest_weights = &weights[..];
    let past_deadline = || deadline.is_some_and(|d| std::time::Instant::now() >= d);
    // At least one record per request, however long it takes, while the device's allowance
    // lasts: a device always moves on.
    while !rest.is_empty() && !spent(&stamp) && (acks.is_empty() || !past_deadline()) {
        let mut prepared = prepare_batch(storage, who, rest, rest_weights)?;
        let (batch, answered_bytes, number, taken, before, done) =
            storage.in_transaction(&mut |tx| {
                let started = std::time::Instant::now();
                let mut answer = Budget {
                    limit: answer.limit,
                    spent: answer.spent,
                };
                let mut stamp = PushStamp {
                    device: stamp.device,
                    number: stamp.number,
                    applied: false,
                    changes: stamp.changes,
                    bytes: stamp.bytes,
                };
                let before = match pushes_before {
                    Some(n) => n,
                    None => tx.pushes(who.device)?,
                };
                // The area trees in force decide what the principal's codes cover.
                let reference = tx.reference()?;
                let scope = who.scope(&reference);
                let mut batch = Vec::new();
                let mut done = Vec::new();
                for (i, entry) in rest.iter().enumerate() {
                    // Taken: a transaction run again works the entry out itself.
                    let mut ready = prepared.get_mut(i).and_then(Option::take);
                    let own_new = ready.as_mut().map(|p| OwnChanges {
                        stored: p.stored.clone(),
                        own_new: std::mem::take(&mut p.own_new),
                    });
                    let weight = &rest_weights[i];
                    let mut outcome = if too_heavy(weight) {
                        // Refused unread: more than one push may make Automerge build.
                        refused(Refusal::OverLimit {
                            limit: bounds::DocumentLimit::Operations,
                        })
                    } else {
                        accept_push(
                            tx,
                            (&reference, &scope),
                            author,
                            who,
                            entry,
                            (limits, today),
                            &mut stamp,
                            ready,
                        )?
                    };
                    remember_refusal(tx, who, entry, &outcome, own_new)?;
                    if let PushOutcome::Refused { .. } = &outcome {
                        // Judged all the same: a refused push pays, as a stored one does, or
                        // a device sending one again and again (an altered app's heaviest)
                        // would cost the hub without end.
                        stamp.bytes = stamp.bytes.saturating_add(weight.refused_cost());
                    }
                    if let PushOutcome::Accepted {
                        catch_up,
                        hub_heads,
                        ..
                    } = &mut outcome
                    {
                        if answer.take(catch_up.len()) {
                            done.push((entry.id, sorted(hub_heads.clone())));
                        } else {
                            // The device keeps the record in its outbox (its heads differ from
                            // the hub's) and gets the catch-up with its next push.
                            catch_up.clear();
                        }
                    }
                    batch.push(PushAck {
                        id: entry.id,
                        outcome,
                    });
                    // The batch ends with what was prepared for it.
                    if i + 1 >= prepared.len()
                        || started.elapsed() >= PUSH_BATCH_TIME
                        || past_deadline()
                        || spent(&stamp)
                    {
                        break;
                    }
                }
                Ok((
                    batch,
                    answer.spent,
                    stamp.number,
                    (stamp.changes, stamp.bytes),
                    before,
                    done,
                ))
            })?;
        rest = &rest[batch.len()..];
        rest_weights = &rest_weights[batch.len()..];
        acks.extend(batch);
        answer.spent = answered_bytes;
        stamp.number = number;
        (stamp.changes, stamp.bytes) = taken;
        if let Some(reservation) = &mut reservation {
            reservation.used = stamp.changes;
        }
        if let Some(reservation) = &mut byte_reservation {
            reservation.used = stamp.bytes;
        }
        pushes_before = Some(before);
        answered.extend(done);
    }
    let waiting = !rest.is_empty() && spent(&stamp);
    // Said once as the allowance runs out, not at each request of a device that keeps sending
    // (one a tenth of a second would write the log without bound); nor again within the hour
    // at each request that finds the few bytes refilled since and spends them.
    if reservation.is_some()
        && waiting
        && allowance > 0
        && byte_allowance > 0
        && allowances
            .as_ref()
            .is_some_and(|a| a.say_spent(who.device, Measure::Changes))
    {
        tracing::warn!(
            device = %who.device,
            waiting = rest.len(),
            "a device pushed more changes, or more bytes of them, than the hub takes from one \
             device in an hour: its other records wait (an app out of order, or an altered one?)"
        );
    }
    let waits = [reservation, byte_reservation].map(|r| r.map(Reservation::release));
    let push_retry_in = waits
        .into_iter()
        .flatten()
        .max()
        .filter(|_| waiting)
        .map(|wait| wait.max(std::time::Duration::from_secs(1)));
    Ok(Pushed {
        acks,
        stamp,
        pushes_before,
        answered,
        push_retry_in,
    })
}

/// The largest refused push whose changes are remembered (`remember_refusal`).
const REMEMBERED_PUSH_BYTES: usize = 256 * 1024;

/// Keeps, when a record's push is refused for what its changes hold (a step the sender's role
/// may not take, a rule broken, outside its areas…), the sender's own changes the hub lacks
/// (`HubTransaction::remember_refused_changes`): a colleague's phone that got them by a peer
/// or a bundle would otherwise wait for their author for ever, its own edits held back with
/// them (`tell_revoked_authors`). Refusals that the same changes may pass later are not kept:
/// waiting for other devices, history missing. A reference version the hub does not hold is
/// kept: the hub holds every version it published, so a record pinned to another was made up
/// (an altered app's, relayed from phone to phone and pending on each for good), or made
/// before a restore lost that publication (its author pushes it again once it is published
/// again; the relays get it from the hub then).
/// `prepared`: what the read transaction found, used if the record is still stored so (the
/// merge is not made again in the writer).
fn remember_refusal(
    tx: &mut dyn HubTransaction,
    who: &Principal,
    entry: &PushEntry,
    outcome: &PushOutcome,
    prepared: Option<OwnChanges>,
) -> Result<()> {
    let PushOutcome::Refused { reason, .. } = outcome else {
        return Ok(());
    };
    if matches!(
        reason,
        Refusal::ForeignChanges
            | Refusal::AuthorRevoked
            | Refusal::MissingHistory
            | Refusal::OverLimit { .. }
    ) {
        return Ok(());
    }
    // Worked out again in the writer's transaction: not for a push as heavy as a hostile
    // device's (an edit a colleague's phone relays is a few changes).
    if entry.changes.len() > REMEMBERED_PUSH_BYTES {
        return Ok(());
    }
    let stored = tx.record(entry.id, false)?.map(|s| s.document);
    // Bytes that do not decode, or changes forged in another's name, are no one's to relay.
    let own = match prepared {
        Some(prepared) if prepared_on(&prepared.stored, stored.as_deref()) => prepared.own_new,
        _ => match merge_pushed(entry, stored.as_deref()) {
            Merged::Done { document, before } => own_changes_since(&document, &before, who.device),
            _ => return Ok(()),
        },
    };
    tx.remember_refused_changes(who.device, &own, Utc::now().timestamp_millis())
}

/// The bytes one response may still carry. Whatever comes first goes, however large (a record
/// larger than the budget must reach the device some time); after that, what does not fit
/// waits for the next request.
struct Budget {
    limit: usize,
    spent: usize,
}

impl Budget {
    fn new(limit: usize) -> Budget {
        Budget { limit, spent: 0 }
    }

    /// Charges `bytes` if they fit; false (nothing charged) if they do not.
    fn take(&mut self, bytes: usize) -> bool {
        if self.spent > 0 && self.spent + bytes > self.limit {
            return false;
        }
        self.spent += bytes;
        true
    }
}

/// Numbers the request's pushes the first time one of them is stored, and carries the number
/// into the later transactions of the same request.
struct PushStamp {
    device: Uuid,
    number: Option<i64>,
    /// Whether the current transaction knows the number.
    applied: bool,
    /// The device's changes taken so far (`DeviceAllowances`).
    changes: u64,
    /// The bytes of the pushes taken so far.
    bytes: u64,
}

impl PushStamp {
    fn stamp(&mut self, tx: &mut dyn HubTransaction) -> Result<()> {
        match self.number {
            None => self.number = Some(tx.number_pushes(self.device)?),
            Some(number) if !self.applied => tx.continue_pushes(self.device, number),
            Some(_) => {}
        }
        self.applied = true;
        Ok(())
    }
}

/// Which of the requesting device's own changes it holds: those brought by its pushes numbered
/// up to the receipt it sent (it applied their answers), and those of this request.
struct Held {
    device: Uuid,
    through: i64,
    now: Option<i64>,
    /// The device works out whole documents' heads: they are sent without.
    headless: bool,
}

impl Held {
    fn holds(&self, entry: &LogEntry) -> bool {
        entry.device == Some(self.device)
            && entry
                .push
                .is_some_and(|p| p <= self.through || Some(p) == self.now)
    }
}

#[allow(clippy::too_many_arguments)]
fn respond(
    tx: &mut dyn HubTransaction,
    who: &Principal,
    scope: &Scope,
    request: &SyncRequest,
    answer: &mut Budget,
    answered: &HashMap<Uuid, Vec<[u8; 32]>>,
    pushes_before: i64,
    pushed_as: Option<i64>,
    acks: Vec<PushAck>,
) -> Result<SyncResponse> {
    let mut skip: HashMap<Uuid, Option<Vec<[u8; 32]>>> = answered
        .iter()
        .map(|(id, heads)| (*id, Some(heads.clone())))
        .collect();
    let mut records = Vec::new();
    for id in &request.refetch {
        if let Some(entry) = whole_record(tx, scope, *id)? {
            if !answer.take(entry.changes.len()) {
                // The device asks again for what it still lacks.
                break;
            }
            // Sent whole, from this snapshot: the walk has nothing to add.
            skip.insert(*id, None);
            records.push(entry);
        }
    }
    let fingerprint = scope.fingerprint();
    // A device told of more of its pushes than the hub has numbered, or of a place in the
    // change order the hub has not reached: the hub lost what it had told the device it held
    // (it was restored from an older copy). The device offers every record again, so that its
    // pushes send what the hub lacks, and walks its scope from the start, so that it receives
    // what the hub records from now on (its old cursor is past the new changes' places).
    let high_water = tx.high_water()?;
    // A hub restored from a backup took a new incarnation: a device that last heard of the old
    // one may have sent it what the backup lacks (a photo uploaded after it, say), whatever its
    // receipt and cursor say.
    let incarnation = tx.incarnation()?;
    let before_restore =
        matches!((request.incarnation, incarnation), (Some(told), Some(now)) if told != now);
    let ahead = request.receipt > pushes_before
        || request
            .cursor
            .is_some_and(|c| c.since > high_water || c.after > high_water);
    let restored = before_restore || ahead;
    if before_restore && !ahead {
        tracing::info!(
            device = %who.device,
            "a device is told this hub's new incarnation (a restore, or photo files the hub \
             lost): it offers again what it holds"
        );
    }
    if ahead && !ahead_warning_due() {
        tracing::debug!(device = %who.device, "a device is ahead of this hub");
    } else if ahead {
        tracing::warn!(
            device = %who.device,
            receipt = request.receipt,
            pushes = pushes_before,
            "a device is ahead of this hub: it says the hub numbered more of its pushes, or \
             reached further in its change order, than the hub has. If this hub was restored \
             from an older copy, the device sends again what the hub lost, and changes made on \
             the hub itself after the copy (the console's, users' areas and roles, reference \
             data) are undone: make them again (erasures and revocations come back from the \
             journal beside the hub's key). If it was not, this device last synced with another \
             hub, or its app is faulty: it receives its scope again from the start"
        );
    }
    let cursor = match request.cursor {
        Some(c) if scope.walked_by(c.scope) && !restored => Cursor {
            scope: fingerprint,
            ..c
        },
        _ => Cursor {
            since: 0,
            after: 0,
            scope: fingerprint,
        },
    };
    // A device whose scope changed may have removed records it pushed itself: the new walk
    // from the start sends them like any other, until it completes.
    let scope_changed = request.cursor.is_some_and(|c| !scope.walked_by(c.scope));
    let receipt_in = if scope_changed {
        0
    } else {
        request.receipt.min(pushes_before)
    };
    let held = Held {
        device: who.device,
        through: receipt_in,
        now: pushed_as,
        headless: request.headless_documents,
    };
    let page = pull(tx, scope, cursor, &skip, &held, answer)?;
    // Counted once a session (its first request presents the device's identity), and only
    // when the walk goes on: a phone's long first sync shows how far it has gone, a small
    // sync costs nothing more.
    let waiting = if request.identity.is_some() && page.more {
        Some(tx.count_changed(scope, page.next.after, high_water)?)
    } else {
        None
    };
    records.extend(page.records);
    // A device that did not apply the answer to some of its pushes (an answer lost on the way,
    // or a store restored from an older copy) is sent its own changes after its receipt. Its
    // receipt moves on once a walk has covered the whole change order since its cursor.
    let receipt = if pushes_before > receipt_in && page.more {
        receipt_in
    } else {
        pushed_as.unwrap_or(pushes_before)
    };
    Ok(SyncResponse {
        acks,
        records,
        cursor: page.next,
        more: page.more,
        erased: page.tombstones.iter().map(|t| t.id).collect(),
        receipt,
        tombstones: page.tombstones,
        left_scope: page.left,
        profile: Some(who.profile()),
        identity: None,
        attachment_limits: None,
        headless_documents: request.headless_documents,
        reoffer: restored,
        // Told in the first answer of a session (the request that presents the device's
        // identity) when the device named another or none.
        incarnation: incarnation
            .filter(|now| request.identity.is_some() && request.incarnation != Some(*now)),
        push_retry_in_seconds: None,
        hub_now_ms: None,
        waiting,
    })
}

/// Erases a record everywhere the hub can reach: its document and history go, and a tombstone
/// tells every device whose scope held it to drop its copy and stops any old copy (under this
/// id or another) from coming back. `by` must be a supervisor whose areas cover the record.
///
/// The duplicates merged into the case (its `merged_from`, and theirs) are the same child's
/// registrations: they are erased with it, in the same transaction, and must be in `by`'s
/// areas too. A duplicate erased on its own leaves the case it was merged into alone.
///
/// Returns the ids erased, the record's first (none when the hub held no record under it: a
/// tombstone is written all the same), and the entries kept for review that went with them.
pub fn erase_record(
    tx: &mut dyn HubTransaction,
    by: &Principal,
    id: Uuid,
) -> Result<ErasedRecords> {
    if by.role != Role::Supervisor {
        return Err(Error::NotAllowed {
            rule: "only a supervisor may erase a record".into(),
        });
    }
    // Every check first, then every erasure: a refused duplicate erases nothing.
    let reference = tx.reference()?;
    let mut histories: Vec<(Uuid, ErasedHistory)> = Vec::new();
    // Each with how it was reached: the case asked for, a duplicate merged into a case, or a
    // copy of a case's document under another id (its history starts where the case's does).
    let mut to_visit: Vec<(Uuid, Reached)> = vec![(id, Reached::Asked)];
    let mut seen = HashSet::new();
    let mut merged = 0;
    while let Some((next, reached)) = to_visit.pop() {
        if !seen.insert(next) {
            continue;
        }
        // Copies are not counted: copies pushed by a device would keep the case from being
        // erased at all.
        if !matches!(reached, Reached::Copy) {
            merged += 1;
        }
        if merged > MAX_ERASED_TOGETHER {
            return Err(Error::NotAllowed {
                rule: format!(
                    "more than {MAX_ERASED_TOGETHER} duplicates are merged into the case: \
                     erase them one by one"
                ),
            });
        }
        let found = match reached {
            Reached::Asked => erasure_of(tx, Some(by), &reference, next, None)?,
            Reached::DuplicateOf(kept) => erasure_of(tx, Some(by), &reference, next, Some(kept))?,
            // A copy in the supervisor's areas goes with the case; one outside them stays
            // (copies are found both ways: erasing a copy must not erase another region's
            // case), for that region's supervisor to erase.
            Reached::Copy => match erasure_of(tx, Some(by), &reference, next, None) {
                Err(Error::NotAllowed { .. }) => {
                    tracing::warn!(record = %next, erased = %id, "a copy of an erased case outside the supervisor's areas stays");
                    None
                }
                other => other?,
            },
        };
        let Some(Erasure {
            history,
            duplicates,
            copies,
        }) = found
        else {
            if next == id {
                // Held only for review (changes of a user who had lost its area): the same
                // checks as a record the hub holds, by what the changes make of it.
                let entries: Vec<_> = tx
                    .quarantined()?
                    .into_iter()
                    .filter(|entry| entry.record == id)
                    .collect();
                for entry in &entries {
                    let view = super::quarantine::describe_quarantined(tx, entry)?;
                    if view.kind.is_some_and(|kind| kind != RecordKind::ChildCase) {
                        return Err(Error::NotAllowed {
                            rule: "only child cases are erased; other records are closed".into(),
                        });
                    }
                    if view
                        .area_after
                        .as_ref()
                        .is_some_and(|area| !by.covers(area, &reference))
                    {
                        return Err(Error::NotAllowed {
                            rule: "the record is outside the supervisor's areas".into(),
                        });
                    }
                }
                // Filed nowhere the hub knows: its tombstone goes to every device (`leaving`).
                let nowhere = ErasedHistory {
                    filed: Some((RecordKind::ChildCase, Area::default())),
                    ..ErasedHistory::default()
                };
                histories.push((id, nowhere));
            }
            continue;
        };
        histories.push((next, history));
        to_visit.extend(
            duplicates
                .into_iter()
                .map(|d| (d, Reached::DuplicateOf(next))),
        );
        to_visit.extend(copies.into_iter().map(|c| (c, Reached::Copy)));
    }
    // Counted whichever way they go: with their record's rows, or as carrying its changes.
    let reviews_before = tx.quarantined()?.len();
    // One moment for the whole erasure, the one its journal keeps too (a restore that does
    // it again dates it so).
    let at_ms = Utc::now().timestamp_millis();
    let mut erased = Vec::new();
    for (record, mut history) in histories {
        history.at_ms.get_or_insert(at_ms);
        if tx.erase(record, &history)? {
            erased.push(record);
        }
    }
    // Changes kept for review that carry erased content (a copy pushed by a user who lost the
    // area) go too: accepted, they would bring the case back.
    let mut reviews_left = 0;
    for entry in tx.quarantined()? {
        if carries_erased(tx, entry.record, &entry.changes)? {
            tx.take_quarantined(entry.entry)?;
        } else {
            reviews_left += 1;
        }
    }
    Ok(ErasedRecords {
        records: erased,
        reviews: reviews_before.saturating_sub(reviews_left),
        at_ms,
    })
}

/// What an erasure took away (`erase_record`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasedRecords {
    /// The records erased, the one asked for first: none when the hub held no record under
    /// its id.
    pub records: Vec<Uuid>,
    /// The entries kept for review (changes of users who had lost the record's area) that went
    /// with them: a case the hub held only there is erased all the same.
    pub reviews: usize,
    /// When the erasure was made (milliseconds since the epoch): its tombstones' date.
    pub at_ms: i64,
}

/// Whether `changes` (of record `id`) hold a change of an erased record, or build on one.
pub(crate) fn carries_erased(
    tx: &mut dyn HubTransaction,
    id: Uuid,
    changes: &[u8],
) -> Result<bool> {
    let mut document = Automerge::new();
    if codec::merge_into(&mut document, id, changes).is_err() {
        return Ok(false);
    }
    let mut hashes: Vec<ChangeHash> = document
        .get_changes_meta(&[])
        .iter()
        .map(|c| c.hash)
        .collect();
    hashes.extend(document.get_missing_deps(&[]));
    tx.any_erased_change(&hashes)
}

/// Erases a record again, as `erase_record` erased it before: the hub's own decision, kept
/// outside its storage, that a restore from an older copy undid. No principal is checked (the
/// supervisor was, when it was decided) and no duplicate is followed (each record erased then
/// was kept by its own id). A record that is no child case is left alone (`NotAllowed`): only
/// child cases are ever erased. Returns whether anything was erased; a tombstone stands for the
/// record afterwards, held or not, dated `at_ms` when the journal kept the first erasure's time.
pub fn erase_again(tx: &mut dyn HubTransaction, id: Uuid, at_ms: Option<i64>) -> Result<bool> {
    if tx.is_erased(id)? {
        return Ok(false);
    }
    let reference = tx.reference()?;
    let mut history = erasure_of(tx, None, &reference, id, None)?
        .map(|erasure| erasure.history)
        .unwrap_or_default();
    // Dated as it was first erased (the journal's time), not as done again.
    history.at_ms = at_ms;
    tx.erase(id, &history)
}

/// How many records one erasure takes at most (a case and its duplicates): a bound on one
/// transaction, far above what registering a child a few times offline gives.
const MAX_ERASED_TOGETHER: usize = 100;

/// How a record came to be erased with the one asked for (`erase_record`).
#[derive(Clone, Copy)]
enum Reached {
    Asked,
    DuplicateOf(Uuid),
    Copy,
}

/// What erasing a stored record must remember, and the records that go with it.
struct Erasure {
    history: ErasedHistory,
    /// The duplicates merged into it.
    duplicates: Vec<Uuid>,
    /// Records whose history starts where its does: its document pushed under other ids.
    copies: Vec<Uuid>,
}

/// What erasing the stored record `id` must remember, and the duplicates merged into it;
/// `None` when the hub holds nothing under `id`, or, for an id the case `duplicate_of` lists
/// as a duplicate, when it is no duplicate of that case (its own `merged_into` says another,
/// or nothing): `merged_from` is one side of a merge, and an edit could put any case there.
fn erasure_of(
    tx: &mut dyn HubTransaction,
    by: Option<&Principal>,
    reference: &ReferenceData,
    id: Uuid,
    duplicate_of: Option<Uuid>,
) -> Result<Option<Erasure>> {
    let Some(stored) = tx.record(id, true)? else {
        return Ok(None);
    };
    let document = codec::load(id, &stored.document);
    if let Some(kept) = duplicate_of {
        let merged_into = document
            .as_ref()
            .ok()
            .and_then(|d| doc::merged_into_of(d, None));
        if merged_into != Some(kept) {
            return Ok(None);
        }
    }
    if stored.kind != RecordKind::ChildCase {
        return Err(Error::NotAllowed {
            rule: "only child cases are erased; other records are closed".into(),
        });
    }
    if let Some(by) = by
        && !stored
            .area
            .as_ref()
            .is_some_and(|a| by.covers(a, reference))
    {
        // A registration of the child merged into the case from an area this supervisor
        // does not cover: the case is theirs, the erasure not theirs alone to make.
        let rule = match duplicate_of {
            Some(_) => {
                "another registration of this child, merged into this case, is in an area this supervisor does not cover: a supervisor covering both erases it"
            }
            None => "the record is outside the supervisor's areas",
        };
        return Err(Error::NotAllowed { rule: rule.into() });
    }
    let mut history = ErasedHistory::default();
    for entry in tx.change_log(id)? {
        history.hashes.extend(codec::heads_of(&entry.changes));
    }
    let mut duplicates = Vec::new();
    let mut copies = Vec::new();
    match document {
        Ok(document) => {
            history.roots = codec::history_roots(&document, &[]);
            for root in &history.roots {
                copies.extend(
                    tx.records_with_root(*root)?
                        .into_iter()
                        .filter(|other| *other != id),
                );
            }
            for change in document.get_changes_meta(&[]) {
                if !history.hashes.contains(&change.hash) {
                    history.hashes.push(change.hash);
                }
            }
            match doc::read_record::<ChildCase>(&document, id) {
                Ok(case) => duplicates.extend(case.merged_from),
                Err(_) => {
                    tracing::warn!(record = %id, "erased case unreadable: its duplicates are unknown");
                }
            }
        }
        Err(_) => {
            tracing::warn!(record = %id, "erased record unreadable: its roots are unknown");
        }
    }
    history.filed = stored.area.map(|area| (stored.kind, area));
    Ok(Some(Erasure {
        history,
        duplicates,
        copies,
    }))
}

/// A user's area is a bare code, granted in every tree in force that holds it: a code two
/// countries' trees shared would give a user of one the other's records. An area tree is
/// published only if none of its codes is an area of another country's tree in force.
fn codes_unique_across_countries(
    reference: &ReferenceData,
    key: &str,
    content: &ReferenceContent,
) -> Result<()> {
    let ReferenceContent::AdministrativeAreas(tree) = content else {
        return Ok(());
    };
    fn codes<'a>(node: &'a AreaNode, into: &mut HashSet<&'a str>) {
        into.insert(&node.code);
        for child in &node.children {
            codes(child, into);
        }
    }
    let mut own = HashSet::new();
    codes(tree, &mut own);
    for other in reference.keys(ReferenceType::AdministrativeAreas) {
        let Some(theirs) = reference.area_tree(other).filter(|_| other != key) else {
            continue;
        };
        let mut taken = HashSet::new();
        codes(theirs, &mut taken);
        if let Some(code) = own.iter().find(|code| taken.contains(*code)) {
            return Err(crate::error::ValidationError::new(
                format!("content.{code}"),
                format!(
                    "the code is already an area of the tree of {other}: area codes are unique \
                     across countries (prefix them with the country's code)"
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// Publishes `content` as the next version of its type and `key` (`CI` for Côte d'Ivoire's
/// profile, areas or referral directory; a checklist's id; `default` for what applies where a
/// country has none of its own), written by the hub's `actor`: a new reference document per
/// version (per part of a long one, `Published::split`), written like any record, so it enters
/// the change log and reaches every device. Documents of earlier versions of the software,
/// which hold every version of a type and key in one, are read and never written again.
/// Returns the version number: one above the latest known (published or built in), or the
/// latest itself if its content is the same.
pub fn publish_reference(
    tx: &mut dyn HubTransaction,
    actor: &ActorId,
    author: ChangeAuthor,
    key: &str,
    content: &ReferenceContent,
) -> Result<u32> {
    content.validate()?;
    tx.hold_publications()?;
    let reference = tx.reference()?;
    codes_unique_across_countries(&reference, key, content)?;
    checklist_items_keep_their_wording(&reference, key, content)?;
    let ty = content.reference_type();
    // The document of earlier versions: its versions count, even those this hub cannot read.
    let id = ReferenceDocument::id_for(ty, key);
    let legacy = match tx.record(id, true)? {
        Some(stored) if stored.kind == RecordKind::Reference => {
            Some(doc::read_stored::<ReferenceDocument>(id, stored.document)?)
        }
        Some(stored) => {
            return Err(Error::WrongKind {
                id,
                expected: RecordKind::Reference,
                actual: stored.kind,
            });
        }
        None => None,
    };
    let mut latest = legacy
        .as_ref()
        .and_then(ReferenceDocument::latest)
        .max(reference.latest_version(ty, key));
    if let Some(latest) = latest {
        let same = match legacy.as_ref().and_then(|l| l.versions.get(&latest)) {
            Some(published) => published.content().as_ref() == Some(content),
            None => reference.content(ty, key, latest) == Some(content),
        };
        if same {
            return Ok(latest);
        }
    }
    // A version stored but not in force here (a part missing, a format this hub does not
    // read) keeps its number.
    loop {
        let next = latest.unwrap_or(0) + 1;
        let mut taken = false;
        for part in [0, 1] {
            let id = ReferenceDocument::id_for_version(ty, key, next, part);
            taken |= tx.record(id, false)?.is_some();
        }
        if !taken {
            break;
        }
        latest = Some(next);
    }
    let version = latest.unwrap_or(0) + 1;
    let parts = Published::split(content, Utc::now());
    for record in ReferenceDocument::for_version(ty, key, version, parts) {
        record.validate(&reference)?;
        let mut document = Automerge::new().with_actor(actor.clone());
        doc::write_record(&mut document, &record, &author)?;
        tx.save(RecordWrite {
            id: record.id,
            kind: RecordKind::Reference,
            key: None,
            area: None,
            document: &mut document,
            before: &[],
            author,
        })?;
    }
    Ok(version)
}

/// A checklist's item keeps the answer that breaches it from one version to the next: visits
/// answered on an earlier version are read by the newest a device holds when it lacks theirs
/// (`ChecklistAnswers::breaches`), so a code reworded the other way would turn their "yes"
/// into a breach and their breach into a "yes". A reworded item takes a new code.
fn checklist_items_keep_their_wording(
    reference: &ReferenceData,
    key: &str,
    content: &ReferenceContent,
) -> Result<()> {
    let ReferenceContent::Checklist(new) = content else {
        return Ok(());
    };
    let earlier = reference.checklists().iter().filter(|c| c.id == key);
    for item in earlier.flat_map(|c| c.items.iter()) {
        if let Some(now) = new.items.iter().find(|i| i.code == item.code)
            && now.breach != item.breach
        {
            return Err(ValidationError::new(
                format!("checklist.items.{}.breach", item.code),
                "an item keeps the answer that breaches it from one version to the next: give a reworded item a new code",
            )
            .into());
        }
    }
    Ok(())
}

/// Publishes each `(key, content)` as `publish_reference` does, in `tx`: the caller's
/// transaction makes it all or none. A file refused is named in the error, by its type and
/// key (the files of one publication may clash with each other), and the field by its place
/// in the file (`administrative_areas.CI-R1`, as `ReferenceFile::parse` names them).
pub fn publish_references(
    tx: &mut dyn HubTransaction,
    actor: &ActorId,
    author: ChangeAuthor,
    files: &[(&str, &ReferenceContent)],
) -> Result<Vec<u32>> {
    files
        .iter()
        .map(|(key, content)| {
            publish_reference(tx, actor, author, key, content).map_err(|e| match e {
                Error::Validation(v) => {
                    let ty = content.reference_type();
                    crate::error::ValidationError::new(
                        crate::domain::reference::content::in_file(ty.as_str(), &v.field),
                        format!("{} (the file of {ty} {key})", v.rule),
                    )
                    .into()
                }
                other => other,
            })
        })
        .collect()
}

/// Writes a new state of a record on the hub (an administrator changing a user's areas).
pub fn update_record<R: Record>(
    tx: &mut dyn HubTransaction,
    actor: &ActorId,
    author: ChangeAuthor,
    reference: &ReferenceData,
    record: &R,
) -> Result<R> {
    let mut record = record.clone();
    record.derive(reference);
    record.validate(reference)?;
    let id = record.id();
    let stored = tx
        .record(id, true)?
        .filter(|s| s.kind == R::KIND)
        .ok_or(Error::NotFound {
            kind: Some(R::KIND),
            id,
        })?;
    let mut document = codec::load(id, &stored.document)?.with_actor(actor.clone());
    let before = document.get_heads();
    if doc::write_record(&mut document, &record, &author)?.is_none() {
        return doc::read_record(&document, id);
    }
    let written = doc::read_record::<R>(&document, id)?;
    let area = TypedRecord::read(R::KIND, id, &document)?.area().cloned();
    tx.save(RecordWrite {
        id,
        kind: R::KIND,
        key: Some(stored.key),
        area: area.as_ref(),
        document: &mut document,
        before: &before,
        author,
    })?;
    Ok(written)
}

/// Files a record again under `to`, as the hub's administrator (`author`), after its community
/// moved to another district or took another code: its area changes in the change order as a
/// user's edit changes it, so devices whose areas no longer cover it let it go and those whose
/// areas do receive it. Returns whether it changed (a record filed there already, a user, or
/// a record not held: not).
pub fn refile_record(
    tx: &mut dyn HubTransaction,
    actor: &ActorId,
    author: ChangeAuthor,
    reference: &ReferenceData,
    id: Uuid,
    to: &Area,
) -> Result<bool> {
    let refile = Refile {
        actor,
        author,
        reference,
        to,
    };
    match tx.record(id, false)?.map(|stored| stored.kind) {
        Some(RecordKind::Workplace) => refile.record::<Workplace>(tx, id),
        Some(RecordKind::Visit) => refile.record::<Visit>(tx, id),
        Some(RecordKind::ChildCase) => refile.record::<ChildCase>(tx, id),
        _ => Ok(false),
    }
}

/// Gives a child case identified by `from` to `to`, as the hub's administrator (`author`): a
/// user taking over the cases of one who left or moved, whose due lists and alerts the case
/// then fills. `Ok(false)` for a record that is no case of `from` (or a merged duplicate, on no
/// list); `NotAllowed` when `to` is inactive, or their role and areas do not cover the case.
pub fn hand_over_case(
    tx: &mut dyn HubTransaction,
    actor: &ActorId,
    author: ChangeAuthor,
    reference: &ReferenceData,
    id: Uuid,
    from: Uuid,
    to: &crate::domain::records::User,
) -> Result<bool> {
    let Some(mut case) = read_record::<ChildCase>(tx, id)? else {
        return Ok(false);
    };
    if case.identified_by != from || case.is_merged_duplicate() {
        return Ok(false);
    }
    may_take_over(to)?;
    rights::check_assignee(&to.scope(reference), &case)
        .map_err(|e| Error::NotAllowed { rule: e.rule })?;
    case.identified_by = to.id;
    update_record(tx, actor, author, reference, &case)?;
    Ok(true)
}

/// Whether `to` may take over another user's cases (`hand_over_case`): an active user.
pub fn may_take_over(to: &crate::domain::records::User) -> Result<()> {
    if !to.active {
        return Err(Error::NotAllowed {
            rule: "a case is handed over only to an active user".into(),
        });
    }
    // An administrator follows no case: every case stayed, said one by one, the command
    // telling of success.
    if to.role == crate::domain::codes::Role::Administrator {
        return Err(Error::NotAllowed {
            rule: "a case is handed over to a user who works on cases (a monitor, an inspector \
                   or a supervisor), not to an administrator"
                .into(),
        });
    }
    Ok(())
}

/// `refile_record`'s write, for a record of a kind filed under an area.
struct Refile<'a> {
    actor: &'a ActorId,
    author: ChangeAuthor,
    reference: &'a ReferenceData,
    to: &'a Area,
}

impl Refile<'_> {
    fn record<R: Record>(&self, tx: &mut dyn HubTransaction, id: Uuid) -> Result<bool> {
        let Some(mut record) = read_record::<R>(tx, id)? else {
            return Ok(false);
        };
        match record.area_mut() {
            Some(area) if area != self.to => *area = self.to.clone(),
            _ => return Ok(false),
        }
        update_record(tx, self.actor, self.author, self.reference, &record)?;
        Ok(true)
    }
}

/// A principal's own change to a record on the hub (the console, acting for a supervisor): the
/// record must be one the principal receives (else `NotFound`, as for a record that does not
/// exist), and its new state must pass the rules a push from that principal passes (`admit`:
/// the role matrix, authorship, content, scope). `change` edits the record as stored; the
/// result is written by `actor` under the principal's user and device, as an ordinary change in
/// the change order, and returned.
pub fn change_as<R: Record>(
    tx: &mut dyn HubTransaction,
    who: &Principal,
    actor: &ActorId,
    reference: &ReferenceData,
    id: Uuid,
    change: &mut dyn FnMut(&mut R) -> Result<()>,
) -> Result<R> {
    write_as::<R>(tx, who, actor, reference, id, &mut |document, author| {
        let mut record: R = doc::read_record(document, id)?;
        change(&mut record)?;
        record.follow_reference_in_force(reference);
        record.derive(reference);
        record.validate(reference)?;
        doc::write_record(document, &record, author)?;
        Ok(())
    })
}

/// A principal settling a conflict on the hub (`Store::resolve_conflict`, as `change_as` writes):
/// the field at `path` takes `value`, which must be one of the concurrent values. A phone's
/// user may settle a conflict with a new value they typed; the hub keeps one a device entered,
/// and a settling that names another is refused (`Validation` on the field): the console
/// offers the values in conflict, never a field to type in.
pub fn resolve_as<R: Record>(
    tx: &mut dyn HubTransaction,
    who: &Principal,
    actor: &ActorId,
    reference: &ReferenceData,
    id: Uuid,
    path: &[String],
    value: &serde_json::Value,
) -> Result<R> {
    write_as::<R>(tx, who, actor, reference, id, &mut |document, author| {
        // Only a conflict `doc::conflicts` shows is offered: devices that set the same value
        // (or a derived field) conflict in the document without anything to choose, and a
        // resolution posted for one wrote whatever it carried.
        let Some(offered) = doc::conflicts::<R>(document)?
            .into_iter()
            .find(|conflict| conflict.path == path)
        else {
            return Err(Error::NoSuchConflict {
                id,
                path: Some(path.join(".")),
            });
        };
        if offered.values.iter().all(|v| &v.value != value) {
            return Err(crate::error::ValidationError::new(
                path.join("."),
                "must be one of the values in conflict",
            )
            .into());
        }
        doc::resolve::<R>(document, id, path, value, author)?;
        let mut resolved: R = match doc::read_record(document, id) {
            Err(Error::DamagedDocument { .. }) => {
                return Err(crate::error::ValidationError::new(
                    path.join("."),
                    "not a valid value for this field",
                )
                .into());
            }
            other => other?,
        };
        crate::domain::records::above_the_area_chosen(&mut resolved, path, reference);
        resolved.validate(reference)?;
        // The derived fields follow the resolved value, in the document too.
        resolved.derive(reference);
        doc::write_record(document, &resolved, author)?;
        Ok(())
    })
}

/// Edits a record's document as `who` (`change_as`, `resolve_as`), checks the result as a push
/// of theirs and stores it.
fn write_as<R: Record>(
    tx: &mut dyn HubTransaction,
    who: &Principal,
    actor: &ActorId,
    reference: &ReferenceData,
    id: Uuid,
    edit: &mut dyn FnMut(&mut Automerge, &ChangeAuthor) -> Result<()>,
) -> Result<R> {
    let scope = who.scope(reference);
    let stored = stored_in_scope::<R>(tx, &scope, id, true)?.ok_or(Error::NotFound {
        kind: Some(R::KIND),
        id,
    })?;
    let mut document = doc::load(id, &stored.document)?.with_actor(actor.clone());
    let before = document.get_heads();
    let author = ChangeAuthor {
        user: who.user,
        device: who.device,
    };
    edit(&mut document, &author)?;
    if document.get_heads() == before {
        return doc::read_record(&document, id);
    }
    let rules = Rules {
        reference,
        scope: &scope,
        who,
        author,
        author_role: who.role,
        limits: &HubLimits::default(),
        today: crate::domain::records::Today::by_clock(),
        pushed: false,
    };
    save_admitted(
        tx,
        &rules,
        Some(&stored),
        id,
        &mut document,
        &before,
        "the change would be refused from this user's device",
    )?;
    doc::read_record(&document, id)
}

/// Stores changes the hub writes on someone's behalf (a console edit, a reviewed quarantine)
/// once they pass the rules a push of theirs passes (`admit`); a refusal is `NotAllowed`,
/// `refused` followed by the rule.
pub(crate) fn save_admitted(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    stored: Option<&StoredRecord>,
    id: Uuid,
    document: &mut Automerge,
    before: &[ChangeHash],
    refused: &str,
) -> Result<()> {
    let admitted =
        admit(tx, rules, id, stored.map(|s| s.kind), document, before)?.map_err(|r| {
            let rule = match r.detail {
                Some(detail) => {
                    format!("{refused}: {}: {}: {}", r.reason, detail.field, detail.rule)
                }
                None => format!("{refused}: {}", r.reason),
            };
            Error::NotAllowed { rule }
        })?;
    tx.save(RecordWrite {
        id,
        kind: admitted.kind,
        key: stored.map(|s| s.key),
        area: admitted.area.as_ref(),
        document,
        before,
        author: rules.author,
    })
}

/// The stored record `id` if it is of type `R` and in `scope`: one outside it is, to whoever
/// asks, one that is not there.
fn stored_in_scope<R: Record>(
    tx: &mut dyn HubTransaction,
    scope: &Scope,
    id: Uuid,
    for_update: bool,
) -> Result<Option<StoredRecord>> {
    Ok(tx
        .record(id, for_update)?
        .filter(|s| s.kind == R::KIND && scope.receives(s.kind, s.area.as_ref())))
}

/// Reads a record of type `R` as `who` may (`change_as`): none when it is outside their scope.
pub fn read_as<R: Record>(
    tx: &mut dyn HubTransaction,
    who: &Principal,
    reference: &ReferenceData,
    id: Uuid,
) -> Result<Option<R>> {
    match stored_in_scope::<R>(tx, &who.scope(reference), id, false)? {
        Some(stored) => {
            let document = codec::load(id, &stored.document)?;
            Ok(Some(doc::read_record(&document, id)?))
        }
        None => Ok(None),
    }
}

/// Reads a record of type `R` from the hub's storage, if there is one of that kind.
pub fn read_record<R: Record>(tx: &mut dyn HubTransaction, id: Uuid) -> Result<Option<R>> {
    match tx.record(id, false)? {
        Some(stored) if stored.kind == R::KIND => {
            let document = codec::load(id, &stored.document)?;
            Ok(Some(doc::read_record(&document, id)?))
        }
        _ => Ok(None),
    }
}

/// Creates a record on the hub (a user added by an administrator), written by the hub's actor.
pub fn create_record<R: Record>(
    tx: &mut dyn HubTransaction,
    actor: &ActorId,
    author: ChangeAuthor,
    reference: &ReferenceData,
    record: &R,
) -> Result<R> {
    let mut record = record.clone();
    if record.id().is_nil() {
        record.set_id(Uuid::now_v7());
    }
    record.set_version(Default::default());
    record.derive(reference);
    record.validate(reference)?;
    let id = record.id();
    if tx.record(id, true)?.is_some() {
        return Err(Error::AlreadyExists { kind: R::KIND, id });
    }
    let mut document = Automerge::new().with_actor(actor.clone());
    doc::write_record(&mut document, &record, &author)?;
    let stored = doc::read_record::<R>(&document, id)?;
    let area = TypedRecord::read(R::KIND, id, &document)?.area().cloned();
    tx.save(RecordWrite {
        id,
        kind: R::KIND,
        key: None,
        area: area.as_ref(),
        document: &mut document,
        before: &[],
        author,
    })?;
    Ok(stored)
}

fn refused(reason: impl Into<Refused>) -> PushOutcome {
    let Refused { reason, detail } = reason.into();
    PushOutcome::Refused { reason, detail }
}

/// The rule changes a supervisor rejected in review are refused by (`Refused::rejected_in_review`).
const REJECTED_IN_REVIEW: &str = "rejected by a supervisor in review: never taken";

/// Why a pushed record is refused: the rule, and the field and its rule's words when the
/// record's content breaks a rule a phone checks too (`RefusalDetail`), so that the phone can
/// say which field to correct.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refused {
    pub(crate) reason: Refusal,
    pub(crate) detail: Option<RefusalDetail>,
}

impl From<Refusal> for Refused {
    fn from(reason: Refusal) -> Self {
        Refused {
            reason,
            detail: None,
        }
    }
}

impl Refused {
    /// A workflow step the sender may not take, with the field it changes and the rule's words
    /// (`rights`: they name statuses and roles, never content).
    fn step(field: &str, e: NotAllowed) -> Self {
        Refused {
            reason: Refusal::StepNotAllowed,
            detail: Some(RefusalDetail {
                field: field.to_string(),
                rule: e.rule,
            }),
        }
    }

    /// Changes of the sender's own that a supervisor rejected in review (a saved copy of its
    /// phone pushing them again, its areas since given back): never taken. Refused, so that
    /// the phone offers them to no one and its user gives them up (a rebuild would write them
    /// again as new changes).
    fn rejected_in_review() -> Self {
        Refused {
            reason: Refusal::StepNotAllowed,
            detail: Some(RefusalDetail {
                field: "changes".into(),
                rule: REJECTED_IN_REVIEW.into(),
            }),
        }
    }

    fn breaking(e: ValidationError) -> Self {
        Refused {
            reason: Refusal::BreaksValidation,
            detail: Some(e.into()),
        }
    }
}

/// Stores one pushed record, or says why not. Every check comes before the first write, so a
/// refusal leaves the transaction as it was.
///
/// What the sender may learn depends on what it may see. A record the hub holds in the
/// sender's scope is checked against what is stored. For any other id (none stored, an erased
/// record, a record outside the scope) the answer depends on the pushed bytes alone, as if the
/// id were new, with one exception: bytes that would create a record get `OutOfScope`, the
/// same refusal as a record filed outside the scope. So the sender learns neither whether the
/// id exists nor of which kind, unless it proves it held the record: changes built on the
/// stored history are kept for review (`Quarantined`), and changes carrying erased history, or
/// a record under an id erased before the hub ever held it, are answered `Erased`.
#[allow(clippy::too_many_arguments)]
fn accept_push(
    tx: &mut dyn HubTransaction,
    (reference, scope): (&ReferenceData, &Scope),
    author: ChangeAuthor,
    who: &Principal,
    entry: &PushEntry,
    (limits, today): (&HubLimits, crate::domain::records::Today),
    stamp: &mut PushStamp,
    prepared: Option<Prepared>,
) -> Result<PushOutcome> {
    let rules = Rules {
        reference,
        scope,
        who,
        author,
        author_role: who.role,
        limits,
        today,
        pushed: true,
    };
    let hidden = |tx: &mut dyn HubTransaction, prepared| -> Result<PushOutcome> {
        Ok(match evaluate_new(tx, &rules, entry, prepared)? {
            New::Acceptable { .. } => refused(Refusal::OutOfScope),
            New::Refused(outcome) => outcome,
        })
    };
    let stored = match tx.record(entry.id, true) {
        Ok(stored) => stored,
        Err(Error::DamagedDocument { .. }) | Err(Error::OverLimit { .. }) => {
            // The hub's own copy does not read: nothing can be merged into it. The sender is
            // answered as for an id it cannot see.
            tracing::warn!(record = %entry.id, "stored record unreadable: push refused");
            return hidden(tx, None);
        }
        Err(e) => return Err(e),
    };
    match stored {
        Some(stored) if scope.receives(stored.kind, stored.area.as_ref()) => {
            let prepared = prepared.filter(|p| prepared_on(&p.stored, Some(&stored.document)));
            update_in_scope(tx, &rules, entry, stored, stamp, prepared)
        }
        Some(stored) => {
            let mut prepared = prepared.filter(|p| prepared_on(&p.stored, Some(&stored.document)));
            let as_new = prepared.as_mut().and_then(|p| p.as_new.take());
            if quarantine_if_held(tx, &rules, entry, &stored, prepared)? {
                return Ok(PushOutcome::Quarantined);
            }
            hidden(tx, as_new.map(|p| *p))
        }
        None => {
            let erased = tx.is_erased(entry.id)?;
            // Erased before the hub ever held it (a case a phone reported, erased on request
            // while the phones holding it were offline; its tombstone names no history): any
            // device that holds it, whoever made it or brought it (a peer, a bundle), lets it
            // go. Bytes that do not read as a record are answered as for any id.
            let erased_unheld = erased && tx.erased_roots(entry.id)?.is_empty();
            let prepared = prepared.filter(|p| p.stored.is_none());
            match evaluate_new(tx, &rules, entry, prepared)? {
                New::Refused(PushOutcome::Refused { reason, .. })
                    if erased_unheld && !matches!(reason, Refusal::Damaged) =>
                {
                    Ok(PushOutcome::Erased)
                }
                // A user whose areas changed (deactivated, moved to another district) made
                // this record while they held the area: it is kept for a supervisor's review,
                // and it leaves their device, rather than staying there refused for ever.
                New::Refused(PushOutcome::Refused {
                    reason: Refusal::OutOfScope,
                    ..
                }) if !erased && quarantine_new(tx, &rules, entry, false)? => {
                    Ok(PushOutcome::Quarantined)
                }
                // Made offline under a role its user has lost since (an inspector's visits, now
                // a monitor; a supervisor's verified case, now an inspector): kept for review
                // too, where the role they held may be vouched for, rather than refused for
                // ever and wiped with the phone.
                New::Refused(PushOutcome::Refused {
                    reason: Refusal::KindNotAllowed | Refusal::StepNotAllowed,
                    detail,
                }) if !erased
                    && detail.as_ref().is_none_or(|d| d.rule != REJECTED_IN_REVIEW)
                    && allowed_under_a_former_role(tx, &rules, entry)?
                    && quarantine_new(tx, &rules, entry, true)? =>
                {
                    Ok(PushOutcome::Quarantined)
                }
                New::Refused(outcome) => Ok(outcome),
                // The id of a record the hub held and erased gets the answer of any id the
                // sender cannot see (changes of its history are answered `Erased` above).
                New::Acceptable { .. } if erased_unheld => Ok(PushOutcome::Erased),
                New::Acceptable { .. } if erased => Ok(refused(Refusal::OutOfScope)),
                New::Acceptable {
                    mut document,
                    merged,
                    admitted,
                    clock_skewed,
                    changes,
                    bytes,
                } => {
                    stamp.stamp(tx)?;
                    stamp.changes += changes;
                    stamp.bytes += bytes;
                    tx.save(RecordWrite {
                        id: entry.id,
                        kind: admitted.kind,
                        key: None,
                        area: admitted.area.as_ref(),
                        document: &mut document,
                        before: &[],
                        author,
                    })?;
                    Ok(match merged {
                        Some(merged) => accepted_beside(&document, &merged, entry, clock_skewed),
                        None => accepted(&document, entry, clock_skewed),
                    })
                }
            }
        }
    }
}

/// What a push is judged against: the reference data in force, the sender and its scope, the
/// author its changes must name, and the hub's limits.
pub(crate) struct Rules<'a> {
    pub(crate) reference: &'a ReferenceData,
    pub(crate) scope: &'a Scope,
    pub(crate) who: &'a Principal,
    pub(crate) author: ChangeAuthor,
    /// The role whose workflow steps the changes take, as `author.user`: the sender's; for
    /// changes held for review that a supervisor accepts, their author's (a monitor's visit
    /// marked validated by the monitor stays a step no monitor takes, whoever accepts it).
    pub(crate) author_role: Role,
    pub(crate) limits: &'a HubLimits,
    /// What the days the changes tell of are judged against: the hub's day in the sender's
    /// time zone when its request said its clock (`SyncRequest::device_clock`).
    pub(crate) today: crate::domain::records::Today,
    /// Whether the changes come from the sender's device in a sync (not a console edit, nor
    /// a review's acceptance of changes held).
    pub(crate) pushed: bool,
}

/// The refusal for bytes that would not decode into a document.
fn undecodable(e: Error) -> Result<PushOutcome> {
    match e {
        Error::OverLimit { limit, .. } => Ok(refused(Refusal::OverLimit { limit })),
        Error::Storage(e) => Err(Error::Storage(e)),
        _ => Ok(refused(Refusal::Damaged)),
    }
}

/// A record in the sender's scope: its changes merged into the stored document.
fn update_in_scope(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    entry: &PushEntry,
    stored: StoredRecord,
    stamp: &mut PushStamp,
    prepared: Option<Prepared>,
) -> Result<PushOutcome> {
    // Reference data goes to everyone, and only the hub changes it.
    if !rules.scope.kinds().contains(&stored.kind) {
        return Ok(refused(Refusal::KindNotAllowed));
    }
    let (merged, mut read) = match prepared {
        Some(prepared) => (prepared.merged, prepared.record),
        None => (merge_pushed(entry, Some(&stored.document)), None),
    };
    let (mut document, before) = match merged {
        Merged::Done { document, before } => (*document, before),
        Merged::StoredUnreadable => {
            tracing::warn!(record = %entry.id, "stored record unreadable: push refused");
            return Ok(refused(Refusal::Damaged));
        }
        // A change of another device under a number the hub holds another change of that
        // device under: made in its name by someone else (a peer passed it on), or on a store
        // of it since reset. It will never be taken, and the relay rebuilds the record on the
        // hub's version, as for a revoked device's changes, rather than be refused for ever.
        Merged::Refused(Error::ActorReused { actor, .. })
            if doc::device_of_actor(&actor) != Some(rules.who.device) =>
        {
            return Ok(refused(Refusal::AuthorRevoked));
        }
        Merged::Refused(e) => return undecodable(e),
    };
    if !document.get_missing_deps(&[]).is_empty() {
        return Ok(refused(Refusal::MissingHistory));
    }
    let Taken {
        hashes,
        waiting,
        clock_skewed,
    } = taken_from(rules, &document.get_changes_meta(&before));
    // What the device holds, other devices' changes included: what it lacks is worked out
    // from it.
    let mut merged = None;
    if !waiting.is_empty() {
        let Some(own) = senders_own(entry.id, &stored.document, &document, &before, &waiting)?
        else {
            return Ok(refused(Refusal::ForeignChanges));
        };
        merged = Some(std::mem::replace(&mut document, own));
        read = None;
    }
    if !hashes.is_empty() {
        if tx.any_erased_change(&hashes)? {
            // Another record's erased history merged into this one.
            return Ok(refused(Refusal::Invalid));
        }
        if let Some(refusal) = beyond_share(entry.id, &document, rules.who.device) {
            return Ok(refused(refusal));
        }
        if tx.any_given_up_change(&hashes)? {
            return Ok(refused(Refused::rejected_in_review()));
        }
        let admitted = match admit_read(
            tx,
            rules,
            entry.id,
            Some(stored.kind),
            (&document, read),
            &before,
        )? {
            Ok(admitted) => admitted,
            // An edit filing the record under a community the tree moved since: for review,
            // as a new record so filed (the record leaves the device until a supervisor files
            // it where the community is now).
            Err(reason)
                if reason
                    .detail
                    .as_ref()
                    .is_some_and(|d| d.rule == FILED_WHERE_THE_TREE_MOVED)
                    && merged.is_none()
                    && quarantine_if_held(tx, rules, entry, &stored, None)? =>
            {
                return Ok(PushOutcome::Quarantined);
            }
            // A step its user took offline under a role they have lost since (a
            // supervisor's verification, now an inspector): for review, where the role
            // they held may be vouched for, when it would have taken the edit.
            Err(reason)
                if reason.reason == Refusal::StepNotAllowed
                    && merged.is_none()
                    && reason.detail.as_ref().is_none_or(|d| {
                        d.rule != doc::UNSEEN_OPERATIONS && d.rule != REJECTED_IN_REVIEW
                    })
                    && under_a_former_role(
                        tx,
                        rules,
                        stored.kind,
                        stored.area.as_ref(),
                        &mut |tx, then| {
                            Ok(
                                admit(tx, then, entry.id, Some(stored.kind), &document, &before)?
                                    .is_ok(),
                            )
                        },
                    )?
                    && quarantine_if_held(tx, rules, entry, &stored, None)? =>
            {
                return Ok(PushOutcome::Quarantined);
            }
            Err(reason) => return Ok(refused(reason)),
        };
        stamp.stamp(tx)?;
        stamp.changes += hashes.len() as u64;
        stamp.bytes += bytes_after(&document, &before);
        tx.save(RecordWrite {
            id: entry.id,
            kind: admitted.kind,
            key: Some(stored.key),
            area: admitted.area.as_ref(),
            document: &mut document,
            before: &before,
            author: rules.author,
        })?;
        if admitted.kind == RecordKind::ChildCase {
            bring_over_pushed(tx, rules, entry.id, &document, &before)?;
            bring_over_what_the_merge_missed(tx, rules, entry.id, &document, &before)?;
        }
    }
    Ok(match merged {
        Some(merged) => accepted_beside(&document, &merged, entry, clock_skewed),
        None => accepted(&document, entry, clock_skewed),
    })
}

/// The bytes of `document`'s changes after `before`: what a device's allowance of bytes pays
/// for (`HubLimits::device_bytes_per_hour`) — its own changes the hub takes, not a colleague's
/// it relays, which their author's allowance paid for or will.
fn bytes_after(document: &Automerge, before: &[ChangeHash]) -> u64 {
    document
        .get_changes(before)
        .iter()
        .map(|c| c.raw_bytes().len() as u64)
        .sum()
}

/// What the hub takes of the new changes a sender pushed (`taken_from`).
struct Taken {
    /// The changes taken.
    hashes: Vec<ChangeHash>,
    /// The changes that wait for their own device: those made on another device (relayed by
    /// a peer or a bundle: a change reaches the hub only from the device that made it, the
    /// one whose credentials vouch for it), and the sender's own built on one of them. The
    /// sender's other changes are taken: two devices that synced with each other before the
    /// hub never wait on each other for ever.
    waiting: HashSet<ChangeHash>,
    /// Whether the dates of those taken show a clock far from the hub's.
    clock_skewed: bool,
}

fn taken_from(rules: &Rules<'_>, changes: &[automerge::ChangeMetadata<'_>]) -> Taken {
    let mut waiting = HashSet::new();
    // Until nothing more waits: the order Automerge lists changes in is not relied on. An
    // actor's changes apply in the order of their numbers: one after a change that waits waits
    // too, even where it does not depend on it.
    let mut first_waiting: HashMap<&automerge::ActorId, u64> = HashMap::new();
    loop {
        let found = waiting.len();
        for change in changes {
            if !waiting.contains(&change.hash)
                && (doc::device_of_actor(&change.actor) != Some(rules.who.device)
                    || change.deps.iter().any(|d| waiting.contains(d))
                    || first_waiting
                        .get(change.actor.as_ref())
                        .is_some_and(|seq| *seq < change.seq))
            {
                waiting.insert(change.hash);
                let seq = first_waiting
                    .entry(change.actor.as_ref())
                    .or_insert(change.seq);
                *seq = (*seq).min(change.seq);
            }
        }
        if waiting.len() == found {
            break;
        }
    }
    let now = Utc::now().timestamp_millis();
    let taken: Vec<_> = changes
        .iter()
        .filter(|c| !waiting.contains(&c.hash))
        .collect();
    Taken {
        hashes: taken.iter().map(|c| c.hash).collect(),
        clock_skewed: taken.iter().any(|c| {
            c.timestamp > now + rules.limits.clock_skew_ms
                || c.timestamp < crate::domain::records::EARLIEST_PLAUSIBLE_MS
        }),
        waiting,
    }
}

/// The document as stored (`stored`, empty for a new record) with only the changes of `merged`
/// after `before` that do not wait (`Taken::waiting`); `None` if every one waits.
fn senders_own(
    id: Uuid,
    stored: &[u8],
    merged: &Automerge,
    before: &[ChangeHash],
    waiting: &HashSet<ChangeHash>,
) -> Result<Option<Automerge>> {
    let own: Vec<automerge::Change> = merged
        .get_changes(before)
        .into_iter()
        .filter(|c| !waiting.contains(&c.hash()))
        .collect();
    if own.is_empty() {
        return Ok(None);
    }
    let mut document = if stored.is_empty() {
        Automerge::new()
    } else {
        codec::load(id, stored)?
    };
    // Changes Automerge has already decoded and applied once, to a document that holds their
    // dependencies and each actor's earlier changes (`taken_from`). Automerge asserts what it
    // expects of them rather than returning an error: a panic is contained here too.
    let applied = catch_unwind(AssertUnwindSafe(|| document.apply_changes(own)));
    match applied {
        Ok(Ok(())) => Ok(Some(document)),
        _ => Err(Error::DamagedDocument {
            id,
            reason: "the sender's own changes do not apply".into(),
        }),
    }
}

/// `accepted` when the hub took only part of what the device holds (`merged`: the stored
/// document with everything pushed): the catch-up is what the hub holds that the device's
/// heads do not reach, worked out in `merged`, which knows the other devices' changes.
fn accepted_beside(
    document: &Automerge,
    merged: &Automerge,
    entry: &PushEntry,
    clock_skewed: bool,
) -> PushOutcome {
    let device_heads: Vec<ChangeHash> = entry.heads.iter().map(|h| ChangeHash(*h)).collect();
    let catch_up = if device_heads
        .iter()
        .all(|h| merged.get_change_by_hash(h).is_some())
    {
        merged
            .get_changes(&device_heads)
            .iter()
            .filter(|c| document.get_change_by_hash(&c.hash()).is_some())
            .flat_map(|c| c.raw_bytes().to_vec())
            .collect()
    } else {
        document.save_nocompress()
    };
    PushOutcome::Accepted {
        hub_heads: document.get_heads().iter().map(|h| h.0).collect(),
        catch_up,
        clock_skewed,
    }
}

/// Stored: the hub's heads, and what the device lacks to reach them.
fn accepted(document: &Automerge, entry: &PushEntry, clock_skewed: bool) -> PushOutcome {
    let hub_heads = document.get_heads();
    let device_heads: Vec<ChangeHash> = entry.heads.iter().map(|h| ChangeHash(*h)).collect();
    let mut sorted_hub = hub_heads.clone();
    let mut sorted_device = device_heads.clone();
    sorted_hub.sort();
    sorted_device.sort();
    let catch_up = if sorted_hub == sorted_device {
        Vec::new()
    } else {
        changes_after(document, &device_heads)
    };
    PushOutcome::Accepted {
        hub_heads: hub_heads.iter().map(|h| h.0).collect(),
        catch_up,
        clock_skewed,
    }
}

/// Whether the warning that a device is ahead of this hub is due: once in ten minutes at most.
/// After a restore, every device says so at its next sync; a faulty or hostile one may at every
/// request, and the log would fill with a warning about a restore that did not happen.
fn ahead_warning_due() -> bool {
    static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let now = std::time::Instant::now();
    if last.is_some_and(|at| now.duration_since(at) < std::time::Duration::from_secs(600)) {
        return false;
    }
    *last = Some(now);
    true
}

/// Keeps, for a supervisor's review, changes to a record outside the sender's scope that build
/// on the record's history as the hub holds it: a change hash cannot be guessed, so depending
/// on them proves the sender's device held the record (its user has since lost the area or the
/// role). Changes that start a history of their own (a change with no dependencies) prove
/// nothing and are not kept. Nor are those of a user who never worked where the record was
/// filed (`held_by_sender`): the record's bytes travel (a bundle, a peer, a copied file), and
/// holding them is no right to put edits before another region's supervisor. Returns whether
/// they were kept, or are held already (the record then leaves the device likewise).
fn quarantine_if_held(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    entry: &PushEntry,
    stored: &StoredRecord,
    prepared: Option<Prepared>,
) -> Result<bool> {
    let merged = match prepared {
        Some(prepared) => prepared.merged,
        None => merge_pushed(entry, Some(&stored.document)),
    };
    let Merged::Done { document, before } = merged else {
        return Ok(false);
    };
    if !document.get_missing_deps(&[]).is_empty() {
        return Ok(false);
    }
    let new_changes = document.get_changes_meta(&before);
    if new_changes.is_empty() {
        // Every change pushed is held already (a bundle of the sender's brought them, kept for
        // review and accepted since): nothing more to keep, and the record leaves a device
        // whose user once received it, as when its own push went to review. Its heads, hashes
        // of the stored history, prove it held the record (an empty push proves nothing).
        let proven = !entry.heads.is_empty()
            && entry
                .heads
                .iter()
                .all(|h| document.get_change_by_hash(&ChangeHash(*h)).is_some());
        return Ok(proven && held_by_sender(tx, rules, entry.id, &document, &before, stored)?);
    }
    // Each change made on the sender's device, naming the sender as its author (what the
    // record's history will show once a supervisor accepts them).
    let built_on_history = new_changes
        .iter()
        .all(|c| !c.deps.is_empty() && made_by_sender(c, rules));
    if !built_on_history {
        return Ok(false);
    }
    let new: Vec<ChangeHash> = new_changes.iter().map(|c| c.hash).collect();
    // Also for a user who holds no area any more (deactivated): what they changed where they
    // worked is held for review; a record they never held is not theirs to change.
    let (base, _) = sender_heads(&new_changes);
    if !held_by_sender(tx, rules, entry.id, &document, &base, stored)? {
        return Ok(false);
    }
    let held = doc::attachments_at(&document, &before);
    let added: Vec<_> = doc::attachments(&document)
        .into_iter()
        .filter(|a| !held.iter().any(|h| h.id == a.id))
        .collect();
    keep_for_review(tx, rules, entry, Some(stored), &new, &added)
}

/// Changes pushed on a case merged before they reached the hub (made offline on the
/// registration at hand), from a device whose areas do not cover the case kept, or a case of
/// the chain of merges to it (the same child registered in another community, merged there on
/// the console; two registrations merged, then found to be another community's child's): what they record of
/// the child goes to the case kept, written by the hub. A device that holds the case kept
/// brings it over itself when the merge reaches it (`store::documents::carry_over`); this one
/// never will, and the worst form its user suspected, the longer week, the follow-up and its
/// due day would stay on a duplicate that no list, alert or count shows. Only what these
/// changes add (`ChildCase::bring_over` from the version the hub held): pushed again, they
/// bring nothing more. A case kept that the addition would leave breaking a rule is left as
/// it is (the duplicate keeps what it holds).
fn bring_over_pushed(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    id: Uuid,
    document: &Automerge,
    before: &[ChangeHash],
) -> Result<()> {
    if before.is_empty() {
        return Ok(());
    }
    // Merged already when the changes came: a merge they make is their device's own work.
    let Some(mut target) = doc::merged_into_of(document, Some(before)) else {
        return Ok(());
    };
    let (Ok(now), Ok(was)) = (
        doc::read_record::<ChildCase>(document, id),
        doc::read_record_at::<ChildCase>(document, id, before),
    ) else {
        return Ok(());
    };
    // The device brings it over itself when it holds every case of the chain to the case
    // kept (`carry_over_one` follows the chain through the cases it holds).
    let mut device_holds_the_chain = true;
    for _ in 0..crate::domain::records::MERGE_CHAIN {
        if target == id {
            return Ok(());
        }
        let Some(held) = held_case(tx, target)? else {
            return Ok(());
        };
        device_holds_the_chain &= rules
            .scope
            .receives(RecordKind::ChildCase, held.area.as_ref());
        let mut kept = held.case;
        if let Some(next) = kept.kept_as() {
            target = next;
            continue;
        }
        if device_holds_the_chain || !kept.bring_over(&now, Some(&was), rules.reference) {
            return Ok(());
        }
        return write_brought_over(tx, rules.reference, &kept, "a duplicate's later changes");
    }
    Ok(())
}

/// A child case the hub holds: its filing, document and record; none if it holds none under
/// that id, another kind, or one that does not read.
struct HeldCase {
    area: Option<Area>,
    document: Automerge,
    case: ChildCase,
}

fn held_case(tx: &mut dyn HubTransaction, id: Uuid) -> Result<Option<HeldCase>> {
    let Some(stored) = tx.record(id, true)? else {
        return Ok(None);
    };
    if stored.kind != RecordKind::ChildCase {
        return Ok(None);
    }
    let Ok(document) = codec::load(id, &stored.document) else {
        return Ok(None);
    };
    let Ok(case) = doc::read_record::<ChildCase>(&document, id) else {
        return Ok(None);
    };
    Ok(Some(HeldCase {
        area: stored.area,
        document,
        case,
    }))
}

/// Writes a case kept that what a duplicate recorded (`what`) was brought over to, as the
/// hub's administrator; one the addition would leave breaking a rule is left as it is (the
/// duplicate keeps what it holds).
fn write_brought_over(
    tx: &mut dyn HubTransaction,
    reference: &ReferenceData,
    kept: &ChildCase,
    what: &str,
) -> Result<()> {
    let Some(actor) = tx.hub_actor() else {
        return Ok(());
    };
    match update_record(tx, &actor, ADMIN_AUTHOR, reference, kept) {
        Ok(_) => Ok(()),
        Err(e @ (Error::Storage(_) | Error::HubStorage { .. })) => Err(e),
        Err(_) => {
            tracing::warn!(record = %kept.id, "{what} break a rule on the case kept: left on the duplicate");
            Ok(())
        }
    }
}

/// A merge arriving after changes of its duplicate the hub took first (a monitor's correction
/// of a follow-up the merge copied, synced before the supervisor's merge): the merge copied the
/// duplicate as its maker saw it, so what the hub held beyond that is brought over to the case
/// kept now, as its administrator. The duplicate and the case kept come in one push in either
/// order: whichever comes second does it (a duplicate just merged into a kept case that names
/// it already; a kept case that names a duplicate already merged into it). A device that made
/// what the merge missed and holds the kept case finds it brought over when it receives the
/// merge (`ChildCase::bring_over` takes nothing twice).
fn bring_over_what_the_merge_missed(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    id: Uuid,
    document: &Automerge,
    before: &[ChangeHash],
) -> Result<()> {
    if before.is_empty() {
        return Ok(());
    }
    // (the duplicate, the case kept) pairs this push joined, read from their two fields only:
    // every push of a case comes here.
    let mut pairs: Vec<(Uuid, Uuid)> = Vec::new();
    if doc::merged_into_of(document, Some(before)).is_none()
        && let Some(kept) = doc::merged_into_of(document, None)
    {
        pairs.push((id, kept));
    }
    let named_before = doc::merged_from_of(document, Some(before));
    for duplicate in doc::merged_from_of(document, None) {
        if !named_before.contains(&duplicate) {
            pairs.push((duplicate, id));
        }
    }
    for (duplicate, kept_id) in pairs {
        let (Some(from), Some(kept)) = (held_case(tx, duplicate)?, held_case(tx, kept_id)?) else {
            continue;
        };
        let mut kept = kept.case;
        // Both sides of the merge here: the duplicate merged into the kept case, which
        // names it.
        if from.case.merged_into != Some(kept_id) || !kept.merged_from.contains(&duplicate) {
            continue;
        }
        let changes = from.document.get_changes_meta(&[]);
        let Some(taken) = doc::merge_deps(&from.document, &changes).and_then(|deps| {
            doc::read_record_at::<ChildCase>(&from.document, duplicate, &deps).ok()
        }) else {
            continue;
        };
        if kept.bring_over(&from.case, Some(&taken), rules.reference) {
            write_brought_over(
                tx,
                rules.reference,
                &kept,
                "what a merge missed of its duplicate",
            )?;
        }
    }
    Ok(())
}

/// The hub's own user and device ids: the author of the changes the hub makes as its
/// administrator (users, reference data, records filed again, what a device recorded on a
/// merged duplicate brought over to the case kept).
pub const HUB_ADMIN: Uuid = Uuid::from_u128(0x7669_6769_655f_6875_625f_6164_6d69_6e00);

/// The author of the changes the hub makes as its administrator.
pub const ADMIN_AUTHOR: ChangeAuthor = ChangeAuthor {
    user: HUB_ADMIN,
    device: HUB_ADMIN,
};

/// Whether the sender's user, in some state of their areas and role (`held_once`), received
/// the record: filed where it is now, or where it was at `base`, the version the sender's
/// changes build on (`sender_heads`: a record moved since to another district).
fn held_by_sender(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    id: Uuid,
    document: &Automerge,
    base: &[ChangeHash],
    stored: &StoredRecord,
) -> Result<bool> {
    let user = rules.who.user;
    if held_once(tx, rules.reference, user, stored.kind, stored.area.as_ref())? {
        return Ok(true);
    }
    let Ok(then) = TypedRecord::read_at(stored.kind, id, document, base) else {
        return Ok(false);
    };
    held_once(tx, rules.reference, user, stored.kind, then.area())
}

/// Whether a change was made on the sending device and names the sender as its author (what
/// the record's history will show once a supervisor accepts it).
fn made_by_sender(change: &ChangeMetadata<'_>, rules: &Rules<'_>) -> bool {
    doc::device_of_actor(&change.actor) == Some(rules.who.device)
        && doc::author_in(change.message.as_deref()) == Some(rules.author)
}

/// Keeps a pushed entry for review, if its device has room left (`MAX_QUARANTINED_PER_DEVICE`).
/// `new` are the hashes of its changes the hub lacks (`stored`: the record as the hub holds
/// it, none for a new record). Returns whether they are kept: an entry waiting for the same
/// record that holds every one of them keeps them already, and no second entry is made (a
/// message applied twice changes nothing: a bundle imported again, or a bundle then the
/// phone's own push of the same edit). Changes a review rejected are not kept again (the
/// answer is then the one without review: refused).
fn keep_for_review(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    entry: &PushEntry,
    stored: Option<&StoredRecord>,
    new: &[ChangeHash],
    added: &[crate::domain::Attachment],
) -> Result<bool> {
    // Rejected in an earlier review (the author's bundle imported again, a restored copy of
    // its phone): settled, never kept again for another review to take.
    if tx.any_given_up_change(new)? {
        return Ok(false);
    }
    if already_waiting(tx, entry.id, stored, new)? {
        return Ok(true);
    }
    if tx.quarantined_from(rules.who.device)? >= MAX_QUARANTINED_PER_DEVICE {
        return Ok(false);
    }
    tx.quarantine(&Quarantined {
        entry: 0,
        record: entry.id,
        device: rules.who.device,
        user: rules.who.user,
        changes: entry.changes.clone(),
        received_ms: Utc::now().timestamp_millis(),
    })?;
    // No more than a record may hold: an entry naming thousands (a hostile device, out of its
    // areas) would break a rule at review anyway, and takes no more rows than that.
    let most = rules.limits.attachments.max_per_record as usize;
    for attachment in added.iter().take(most) {
        tx.reserve_attachment(entry.id, attachment)?;
    }
    Ok(true)
}

/// Whether an entry waiting for review of record `id` holds every change `new` names: merged
/// into the record as the hub holds it (`stored`; none for a new record), it brings them all.
fn already_waiting(
    tx: &mut dyn HubTransaction,
    id: Uuid,
    stored: Option<&StoredRecord>,
    new: &[ChangeHash],
) -> Result<bool> {
    if new.is_empty() {
        return Ok(false);
    }
    Ok(waiting_changes(tx, id, stored)?
        .iter()
        .any(|held| new.iter().all(|hash| held.contains(hash))))
}

/// Whether an entry waiting for record `id` holds, past the record as the hub holds it
/// (`stored`), exactly the changes `new` names.
fn same_waiting(
    tx: &mut dyn HubTransaction,
    id: Uuid,
    stored: Option<&StoredRecord>,
    new: &[ChangeHash],
) -> Result<bool> {
    Ok(waiting_changes(tx, id, stored)?
        .iter()
        .any(|held| held.len() == new.len() && new.iter().all(|hash| held.contains(hash))))
}

/// For each entry waiting for review of record `id`, the changes it holds past the record as
/// the hub holds it (`stored`; none for a new record). An entry that no longer merges holds
/// none.
pub(crate) fn waiting_changes(
    tx: &mut dyn HubTransaction,
    id: Uuid,
    stored: Option<&StoredRecord>,
) -> Result<Vec<HashSet<ChangeHash>>> {
    let waiting = tx.quarantined_for(id)?;
    if waiting.is_empty() {
        return Ok(Vec::new());
    }
    let base = match stored {
        Some(stored) => match codec::load(id, &stored.document) {
            Ok(document) => document,
            Err(_) => return Ok(Vec::new()),
        },
        None => Automerge::new(),
    };
    let before = base.get_heads();
    Ok(waiting
        .iter()
        .map(|entry| {
            let mut document = base.clone();
            match codec::merge_into(&mut document, id, &entry.changes) {
                Ok(()) => document
                    .get_changes_meta(&before)
                    .iter()
                    .map(|c| c.hash)
                    .collect(),
                Err(_) => HashSet::new(),
            }
        })
        .collect())
}

/// Entries of revoked devices' work (a lost phone's, passed on before it was lost) one device
/// may bring to review, ever (`keep_carried_for_review`): as many as one revoked device may
/// have waiting, so that a colleague who holds a lost phone's whole week is never the bound,
/// and one forging phone fills no more than one lost device's room (what finds no room waits
/// on its carrier's phone until a review frees some).
pub const MAX_CARRIED_PER_CARRIER: u32 = 500;

/// Entries one device may have waiting for review: past it, what it sends out of its scope is
/// refused like anything else outside it. A supervisor reviews a few at a time; a device (a
/// deactivated user's, which still authenticates until revoked) must not fill the hub's disk.
pub const MAX_QUARANTINED_PER_DEVICE: usize = 500;

/// Keeps for review a new record filed outside the sender's scope, if their user held its
/// area once (or holds no area now: deactivated), it is of a kind their role works with, and
/// every change of it was made on that device and names its user (`quarantine_if_held`'s proof
/// of authorship: a new record has no history to prove more). Returns whether it was kept.
/// A record filed where its user never worked is refused as any other outside the scope.
///
/// With `former`, the record was judged acceptable as its user's work under a role they held
/// once, with its areas (`allowed_under_a_former_role`): of a kind, and filed where, that role
/// worked.
fn quarantine_new(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    entry: &PushEntry,
    former: bool,
) -> Result<bool> {
    let mut document = Automerge::new();
    if codec::merge_into(&mut document, entry.id, &entry.changes).is_err()
        || !document.get_missing_deps(&[]).is_empty()
    {
        return Ok(false);
    }
    let changes = document.get_changes_meta(&[]);
    let own = !changes.is_empty() && changes.iter().all(|c| made_by_sender(c, rules));
    let record = doc::kind_of(&document)
        .filter(|kind| former || rules.scope.kinds().contains(kind))
        .and_then(|kind| Some((kind, TypedRecord::read(kind, entry.id, &document).ok()?)));
    let (true, Some((kind, record))) = (own, record) else {
        return Ok(false);
    };
    let new: Vec<ChangeHash> = changes.iter().map(|c| c.hash).collect();
    // The bound first: past it, a device's pushes cost no walk through its user's history.
    if !already_waiting(tx, entry.id, None, &new)?
        && tx.quarantined_from(rules.who.device)? >= MAX_QUARANTINED_PER_DEVICE
    {
        return Ok(false);
    }
    // A user who holds no area any more (deactivated, or every area taken away) keeps nothing
    // on the phone: whatever they made is held for review, and what was filed where they
    // never worked is listed as breaking a rule, for a supervisor to reject
    // (`quarantine::accept_quarantined`).
    if !former
        && !rules.who.areas.is_empty()
        && !held_once(tx, rules.reference, rules.who.user, kind, record.area())?
    {
        return Ok(false);
    }
    keep_for_review(tx, rules, entry, None, &new, &doc::attachments(&document))
}

/// Whether, under a role other than the sender's now (with the areas they held with it), its
/// user would have had a new record taken as it is pushed: the work they did offline before an
/// administrator changed their role. A step no role of theirs ever took is refused as any
/// other.
fn allowed_under_a_former_role(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    entry: &PushEntry,
) -> Result<bool> {
    let mut document = Automerge::new();
    if codec::merge_into(&mut document, entry.id, &entry.changes).is_err() {
        return Ok(false);
    }
    let Some(kind) = doc::kind_of(&document) else {
        return Ok(false);
    };
    let area = TypedRecord::read(kind, entry.id, &document)
        .ok()
        .and_then(|record| record.area().cloned());
    drop(document);
    under_a_former_role(tx, rules, kind, area.as_ref(), &mut |tx, then| {
        Ok(matches!(
            evaluate_new(tx, then, entry, None)?,
            New::Acceptable { .. }
        ))
    })
}

/// Whether `taken` holds under the rules of a role the sender's user held where records of
/// `kind` filed in `area` were theirs (`roles_held`), other than their role now, with the
/// areas they held with it.
fn under_a_former_role(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    kind: RecordKind,
    area: Option<&Area>,
    taken: &mut dyn FnMut(&mut dyn HubTransaction, &Rules<'_>) -> Result<bool>,
) -> Result<bool> {
    let held = roles_held(tx, rules.reference, rules.who.user, kind, area)?;
    for (role, areas) in held.into_iter().filter(|(role, _)| *role != rules.who.role) {
        let who = Principal {
            role,
            areas,
            ..rules.who.clone()
        };
        let scope = who.scope(rules.reference);
        let then = Rules {
            scope: &scope,
            who: &who,
            author_role: role,
            ..*rules
        };
        if taken(tx, &then)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `user`, in some state of their user record (their role and areas before an
/// administrator changed them), received records of `kind` filed in `area` (`roles_held`).
pub(crate) fn held_once(
    tx: &mut dyn HubTransaction,
    reference: &ReferenceData,
    user: Uuid,
    kind: RecordKind,
    area: Option<&Area>,
) -> Result<bool> {
    Ok(!roles_held(tx, reference, user, kind, area)?.is_empty())
}

/// The roles and areas `user` held, in each state of their user record, in which they received
/// records of `kind` filed in `area`: its codes as the trees in force resolve them, and a code
/// no tree in force holds (a community a new tree renamed) as the last version that held it
/// did. Oldest first, each role and areas once.
pub(crate) fn roles_held(
    tx: &mut dyn HubTransaction,
    reference: &ReferenceData,
    user: Uuid,
    kind: RecordKind,
    area: Option<&Area>,
) -> Result<Vec<(Role, BTreeSet<String>)>> {
    let mut held: Vec<(Role, BTreeSet<String>)> = Vec::new();
    let Some(stored) = tx
        .record(user, false)?
        .filter(|s| s.kind == RecordKind::User)
    else {
        return Ok(held);
    };
    let Ok(document) = codec::load(user, &stored.document) else {
        return Ok(held);
    };
    for change in document.get_changes(&[]) {
        let Ok(then) = doc::read_record_at::<User>(&document, user, &[change.hash()]) else {
            continue;
        };
        if held
            .iter()
            .any(|(role, areas)| *role == then.role && *areas == then.areas)
        {
            continue;
        }
        let scope = rights::Scope::of(then.role, &then.areas, reference);
        let formerly = area.is_some_and(|a| {
            then.areas
                .iter()
                .filter(|code| reference.grants_of(code).is_empty())
                .flat_map(|code| reference.former_grants_of(code))
                .any(|grant| grant.covers(a))
        });
        if scope.receives(kind, area) || (formerly && scope.kinds().contains(&kind)) {
            held.push((then.role, then.areas));
        }
    }
    Ok(held)
}

/// What pushed bytes would make as a new record, judged on the bytes alone.
enum New {
    Refused(PushOutcome),
    Acceptable {
        document: Box<Automerge>,
        /// The document as the device holds it, when the hub takes only part of it
        /// (`Taken::waiting`).
        merged: Option<Box<Automerge>>,
        admitted: Admitted,
        clock_skewed: bool,
        /// The sender's changes it takes (`DeviceAllowances`).
        changes: u64,
        /// Their bytes.
        bytes: u64,
    },
}

fn evaluate_new(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    entry: &PushEntry,
    prepared: Option<Prepared>,
) -> Result<New> {
    let (merged, mut read) = match prepared {
        Some(prepared) => (prepared.merged, prepared.record),
        None => (merge_pushed(entry, None), None),
    };
    let mut document = match merged {
        Merged::Done { document, .. } => *document,
        Merged::Refused(e) => return undecodable(e).map(New::Refused),
        // Nothing stored to read for a new record.
        Merged::StoredUnreadable => return Ok(New::Refused(refused(Refusal::Damaged))),
    };
    // Erased content, under whatever id: changes of it, or changes built on it.
    let missing = document.get_missing_deps(&[]);
    let new_changes = document.get_changes_meta(&[]);
    let mut hashes: Vec<ChangeHash> = new_changes.iter().map(|c| c.hash).collect();
    hashes.extend(&missing);
    if tx.any_erased_change(&hashes)? {
        return Ok(New::Refused(PushOutcome::Erased));
    }
    if !missing.is_empty() {
        return Ok(New::Refused(refused(Refusal::MissingHistory)));
    }
    // The sender's own changes rejected in review (another device's wait for their author,
    // who is told of them: `tell_revoked_authors`).
    let own: Vec<ChangeHash> = new_changes
        .iter()
        .filter(|c| doc::device_of_actor(&c.actor) == Some(rules.who.device))
        .map(|c| c.hash)
        .collect();
    if tx.any_given_up_change(&own)? {
        return Ok(New::Refused(refused(Refused::rejected_in_review())));
    }
    if new_changes.is_empty() {
        // Nothing to store under an id the hub does not hold for the sender: the sender
        // believes the hub holds what it does not (a hub restored from an older copy), and
        // sends the record whole next time.
        return Ok(New::Refused(refused(Refusal::MissingHistory)));
    }
    let Taken {
        waiting,
        clock_skewed,
        ..
    } = taken_from(rules, &new_changes);
    let changes = (new_changes.len() - waiting.len()) as u64;
    drop(new_changes);
    let mut merged = None;
    if !waiting.is_empty() {
        let Some(own) = senders_own(entry.id, &[], &document, &[], &waiting)? else {
            return Ok(New::Refused(refused(Refusal::ForeignChanges)));
        };
        merged = Some(Box::new(std::mem::replace(&mut document, own)));
        read = None;
    }
    // All of a new record is the sender's but what waits for its authors: the document as
    // pushed, else the part taken (not worked out when nothing waits: a change-by-change walk
    // of every pushed record slowed a district's push by a tenth).
    let bytes = match merged {
        None => entry.changes.len() as u64,
        Some(_) => bytes_after(&document, &[]),
    };
    if let Some(refusal) = beyond_share(entry.id, &document, rules.who.device) {
        return Ok(New::Refused(refused(refusal)));
    }
    match admit_read(tx, rules, entry.id, None, (&document, read), &[])? {
        Ok(admitted) => Ok(New::Acceptable {
            document: Box::new(document),
            merged,
            admitted,
            clock_skewed,
            changes,
            bytes,
        }),
        Err(reason) => Ok(New::Refused(refused(reason))),
    }
}

/// Where the case a pushed child case is now merged into (if the push changed it) stands
/// (`merge_target`).
enum MergeTarget {
    /// A case the hub holds in the sender's scope, the merge closing no cycle; or no merge.
    Held,
    /// A case the hub has not received yet, and did not erase: a colleague's registration the
    /// sender's phone got by a peer session or a bundle, merged into offline. The merge waits
    /// for it, as an edit built on a colleague's changes does (refused, and given up as its
    /// advice said, the merge was lost; and phones that got it by peer undid it).
    NotYet,
    Refused,
}

/// `MergeTarget` of a pushed child case. A merge that reaches the hub after the kept case was
/// erased, or a `merged_into` set by hand to the id of nothing in the sender's areas, would
/// hide the case from every list, alert and count, everywhere.
fn merge_target(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    id: Uuid,
    document: &Automerge,
    before: &[ChangeHash],
) -> Result<MergeTarget> {
    let merged_into = |heads| doc::merged_into_of(document, heads);
    if doc::kind_of(document) != Some(RecordKind::ChildCase) {
        return Ok(MergeTarget::Held);
    }
    let Some(target) = merged_into(None) else {
        return Ok(MergeTarget::Held);
    };
    if !before.is_empty() && merged_into(Some(before)) == Some(target) {
        return Ok(MergeTarget::Held);
    }
    let held = match tx.record(target, false)? {
        Some(kept) => {
            kept.kind == RecordKind::ChildCase
                && kept.area.as_ref().is_some_and(|a| rules.scope.covers(a))
        }
        None if target != id && !tx.is_erased(target)? => return Ok(MergeTarget::NotYet),
        None => false,
    };
    Ok(if held && !closes_a_cycle(tx, id, target)? {
        MergeTarget::Held
    } else {
        MergeTarget::Refused
    })
}

/// Whether merging case `id` into `target` closes a cycle of three or more cases (A into B
/// on one phone, B into C on another, C into A on a third, each offline): every case of it
/// would be a merged duplicate, and the child would leave every list, alert and count, with
/// no merge left to settle it. The merge that closes it is refused; the pair merged both ways
/// stays the settling merge's.
///
/// The whole chain is followed, whatever its length (two supervisors merging ten
/// registrations offline, every other one each, made a ring of ten), and each case of it is
/// read for update: two pushes closing one ring at once from two processes of a PostgreSQL
/// hub each read the other's case before it committed, and both got in. Locked, one waits for
/// the other (or the database finds them deadlocked and one is run again), then sees its merge.
fn closes_a_cycle(tx: &mut dyn HubTransaction, id: Uuid, target: Uuid) -> Result<bool> {
    let mut seen = HashSet::from([target]);
    let mut next = target;
    loop {
        let Some(stored) = tx.record(next, true)? else {
            return Ok(false);
        };
        let Some(into) = codec::load(next, &stored.document)
            .ok()
            .and_then(|document| doc::merged_into_of(&document, None))
        else {
            return Ok(false);
        };
        if into == id {
            return Ok(next != target);
        }
        // A ring that does not pass through this case (made before the rule): not this
        // merge's to close.
        if !seen.insert(into) {
            return Ok(false);
        }
        next = into;
    }
}

/// A record's new state that the rules let in, and where it is filed.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub kind: RecordKind,
    pub area: Option<Area>,
}

/// The rules a record's new state must pass to be stored on the hub, whoever sends it: one
/// home for pushes, the console's edits and quarantined changes a supervisor accepts.
/// `admit_content` judges the document alone; then a case it merges into another must name a
/// case the hub holds in the sender's scope (`merge_target`). `Err` is a storage failure;
/// `Ok(Err)` the refusal.
pub(crate) fn admit(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    id: Uuid,
    stored_kind: Option<RecordKind>,
    document: &Automerge,
    before: &[ChangeHash],
) -> Result<std::result::Result<Admitted, Refused>> {
    admit_read(tx, rules, id, stored_kind, (document, None), before)
}

/// `admit`, with `document` read as its kind's record already, if it was (`Prepared`).
fn admit_read(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    id: Uuid,
    stored_kind: Option<RecordKind>,
    (document, read): (&Automerge, Option<TypedRecord>),
    before: &[ChangeHash],
) -> Result<std::result::Result<Admitted, Refused>> {
    if !history_is_its_own(document, before) {
        // Debug, as every refusal of what a push holds: the request's line counts them.
        tracing::debug!(record = %id, "a push's history is not the record's own: refused");
        // Changes of another history on a record the hub holds: a record made elsewhere
        // under its id (created with an id copied from it), which its user could only take
        // for damage.
        return Ok(Err(match before.is_empty() {
            true => Refusal::Damaged.into(),
            false => Refused {
                reason: Refusal::Damaged,
                detail: Some(RefusalDetail {
                    field: "id".into(),
                    rule: ANOTHER_RECORDS_ID.into(),
                }),
            },
        }));
    }
    let (admitted, record, held) =
        match admit_content(rules, id, stored_kind, (document, read), before) {
            Ok(admitted) => admitted,
            Err(reason) => return Ok(Err(reason)),
        };
    // After the content's rules (its scope among them): a copy of a record the sender may no
    // longer see is answered as any record outside its areas is.
    if before.is_empty() && copies_another_record(tx, id, document)? {
        tracing::debug!(record = %id, "a new record's history is another record's: refused");
        return Ok(Err(Refused {
            reason: Refusal::Damaged,
            detail: Some(RefusalDetail {
                field: "id".into(),
                rule: A_COPY_UNDER_ANOTHER_ID.into(),
            }),
        }));
    }
    match merge_target(tx, rules, id, document, before)? {
        MergeTarget::Held => {}
        MergeTarget::NotYet => {
            return Ok(Err(Refused {
                reason: Refusal::ForeignChanges,
                detail: None,
            }));
        }
        MergeTarget::Refused => {
            return Ok(Err(Refused::step(
                "merged_into",
                NotAllowed::new(
                    "a case is merged only into a case the hub holds in the sender's areas, never into one merged through others into it: give this merge up (discard the refused changes)",
                ),
            )));
        }
    }
    if merges_an_erased_case(tx, &record, &held)? {
        return Ok(Err(Refused::step(
            "merged_from",
            NotAllowed::new(
                "a case merged into this one was erased: what the merge brought from it does not come back (discard the refused changes, and record again what this case needs)",
            ),
        )));
    }
    if !assignee_receives(tx, rules, &record, &held)? {
        return Ok(Err(Refused::step(
            "identified_by",
            NotAllowed::new(
                "a case is assigned only to a user the hub knows, whose role and areas cover it",
            ),
        )));
    }
    if let Err(refusal) = names_kept(tx, rules, &record, &held)? {
        return Ok(Err(refusal));
    }
    if !attachment_ids_free(tx, id, document, before)? {
        return Ok(Err(Refused::breaking(ValidationError::new(
            "attachments",
            "an attachment of another record has the same id: remove it and attach the file again",
        ))));
    }
    Ok(Ok(admitted))
}

/// Whether every attachment the changes add to the manifest has an id no other record's
/// attachment holds. An id is the attachment's everywhere (its file, its key, its uploads): a
/// device that learnt another's id from a peer and named it in a record of its own made the
/// capturer's every sync fail on the hub, and took its upload over.
fn attachment_ids_free(
    tx: &mut dyn HubTransaction,
    id: Uuid,
    document: &Automerge,
    before: &[ChangeHash],
) -> Result<bool> {
    if doc::attachment_keys(document) == 0 {
        return Ok(true);
    }
    let stored = match before.is_empty() {
        true => Vec::new(),
        false => doc::attachments_at(document, before),
    };
    for entry in doc::attachments(document) {
        if stored.iter().any(|s| s.id == entry.id) {
            continue;
        }
        if tx
            .attachment_held(entry.id)?
            .is_some_and(|held| held.record != id)
        {
            tracing::debug!(record = %id, attachment = %entry.id, "a push names an attachment id another record holds: refused");
            return Ok(false);
        }
    }
    Ok(true)
}

/// A push whose sender's changes would pass its share of the record's history
/// (`doc::devices_within_share`; the hub takes only the sender's own changes, so the sender is
/// the one device to judge): judged of devices' pushes, not of the hub's own writes (the
/// console's, a review's), whose actor every hub process and restart makes anew.
fn beyond_share(id: Uuid, document: &Automerge, sender: Uuid) -> Option<Refused> {
    if doc::devices_within_share(
        document,
        &HashSet::from([sender]),
        &DocumentLimits::STANDARD,
    ) {
        return None;
    }
    // Debug only: a request's refusals are counted by reason in its one line (`sync pushes
    // judged`), and a line a record would let one request write thousands.
    tracing::debug!(record = %id, "a device's changes would pass its share of the record's history: refused");
    Some(Refused::breaking(ValidationError::new(
        "record",
        doc::DEVICE_SHARE_RULE,
    )))
}

/// Why a push of another history on a record the hub holds is refused (`admit_read`).
const ANOTHER_RECORDS_ID: &str = "another record holds this id at the hub: this copy is \
     another record made under its id (give it up with discard_refused_changes, and record it \
     again as a new one if it holds what no other record does)";

/// Why a new record whose history starts where a record the hub holds starts is refused
/// (`copies_another_record`).
const A_COPY_UNDER_ANOTHER_ID: &str = "this record's history is another record's, which the \
     hub holds under another id: a copy of it is no new record (give it up with \
     discard_refused_changes)";

/// Whether a new record's document starts where a record the hub holds under another id
/// starts: a copy of that record's document, not a new one. No app makes one; a hostile one
/// flooded a community's phones with thousands of copies of a case (a few bytes each, changes
/// alike compressing to nothing), and a supervisor erasing one of them as a duplicate erased
/// the case with it (an erasure takes the copies of a document, `erasure_of`).
fn copies_another_record(
    tx: &mut dyn HubTransaction,
    id: Uuid,
    document: &Automerge,
) -> Result<bool> {
    let Some(root) = codec::single_root(document) else {
        return Ok(false);
    };
    Ok(tx.records_with_root(root)?.iter().any(|other| *other != id))
}

/// Whether a record's history is one of its own: a new record's has one root (where its
/// history starts, which the hub keeps: an erasure takes the copies of a document pushed
/// under other ids with it), and changes add none (another record's history put into it).
fn history_is_its_own(document: &Automerge, before: &[ChangeHash]) -> bool {
    if before.is_empty() {
        codec::single_root(document).is_some()
    } else {
        codec::history_roots(document, before).is_empty()
    }
}

/// The record as the hub held it before the changes judged (at `before`), read once, when a
/// check needs it: `Ok(None)` for a new record, `Err` if it does not
/// read at those heads.
struct HeldVersion<'a> {
    document: &'a Automerge,
    id: Uuid,
    kind: RecordKind,
    before: &'a [ChangeHash],
    read: std::cell::OnceCell<std::result::Result<Option<TypedRecord>, ()>>,
}

impl HeldVersion<'_> {
    fn get(&self) -> std::result::Result<Option<&TypedRecord>, ()> {
        let read = self.read.get_or_init(|| {
            if self.before.is_empty() {
                return Ok(None);
            }
            TypedRecord::read_at(self.kind, self.id, self.document, self.before)
                .map(Some)
                .map_err(|_| ())
        });
        match read {
            Ok(held) => Ok(held.as_ref()),
            Err(()) => Err(()),
        }
    }
}

/// What a pushed visit or case names, as the phones check their own writes: a visit names
/// as its visitor the user who records it, and keeps it (`rights::check_visitor`); the records
/// it names newly are of the kinds their fields say where the hub holds them
/// (`records::check_references`).
fn names_kept(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    after: &TypedRecord,
    held: &HeldVersion<'_>,
) -> Result<std::result::Result<(), Refused>> {
    let named = after.references();
    let is_visit = matches!(after, TypedRecord::Visit(_));
    if named.is_empty() && !is_visit {
        return Ok(Ok(()));
    }
    let Ok(was) = held.get() else {
        return Ok(Err(Refusal::Invalid.into()));
    };
    if let TypedRecord::Visit(visit) = after {
        let was = match was {
            Some(TypedRecord::Visit(was)) => Some(was),
            _ => None,
        };
        let users = [rules.who.user, rules.author.user];
        if let Err(e) = rights::check_visitor(was, visit, &users) {
            return Ok(Err(Refused::step("visitor_id", e)));
        }
        // Judged against a workplace the sender may see only, as the references below; and
        // against every area it was filed under, not only its current one: a phone offline
        // while the workplace moved files its visit where the workplace was when it left.
        let same_area = match tx.record(visit.workplace_id, false) {
            Ok(Some(stored))
                if stored.kind == RecordKind::Workplace
                    && rules.scope.receives(stored.kind, stored.area.as_ref()) =>
            {
                stored.area.as_ref() == Some(&visit.area)
                    || codec::load(visit.workplace_id, &stored.document).is_ok_and(|document| {
                        doc::workplace_areas(&document, visit.workplace_id).contains(&visit.area)
                    })
            }
            Ok(_) | Err(Error::DamagedDocument { .. } | Error::OverLimit { .. }) => true,
            Err(e) => return Err(e),
        };
        if let Err(e) = crate::domain::records::check_visit_filing(was, visit, same_area) {
            return Ok(Err(Refused::breaking(e)));
        }
    }
    let known = was.map(|was| was.references()).unwrap_or_default();
    // Only a record the sender may see is judged: of any other, the answer must not tell
    // whether it exists or its kind.
    let kind_of = |id| -> Result<Option<RecordKind>> {
        match tx.record(id, false) {
            Ok(stored) => Ok(stored
                .filter(|stored| rules.scope.receives(stored.kind, stored.area.as_ref()))
                .map(|stored| stored.kind)),
            // A stored record that does not read: its kind cannot be told.
            Err(Error::DamagedDocument { .. } | Error::OverLimit { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    };
    Ok(
        crate::domain::records::check_references(&known, &named, kind_of)?
            .map_err(Refused::breaking),
    )
}

/// Whether a case's changes merge into it a case the hub erased (`merged_from` gains its id):
/// a supervisor's phone merged the duplicate offline while the child's file was erased on
/// request. Taken, the kept case would bring back what the merge copied from it — its
/// referrals and their providers, its follow-ups and due dates, its hazards — to the hub,
/// every phone in scope and the exports.
fn merges_an_erased_case(
    tx: &mut dyn HubTransaction,
    after: &TypedRecord,
    held: &HeldVersion<'_>,
) -> Result<bool> {
    let TypedRecord::ChildCase(case) = after else {
        return Ok(false);
    };
    let had = match held.get() {
        Ok(Some(TypedRecord::ChildCase(was))) => was.merged_from.clone(),
        _ => BTreeSet::new(),
    };
    for id in case.merged_from.difference(&had) {
        if tx.is_erased(*id)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a pushed child case's assignee (`identified_by`), if the push sets it to another
/// user than the sender (a hand-over, or a new case registered for a colleague), is a user the
/// hub holds who receives the case (`rights::check_assignee`: the rule the phones apply when
/// they hand a case over). A case assigned to a user of other areas would stay on due lists
/// no one can act on, and tell that user's phone of a case it may never hold.
fn assignee_receives(
    tx: &mut dyn HubTransaction,
    rules: &Rules<'_>,
    after: &TypedRecord,
    held: &HeldVersion<'_>,
) -> Result<bool> {
    let TypedRecord::ChildCase(case) = after else {
        return Ok(true);
    };
    let assignee = case.identified_by;
    // The sender, or the author of the changes (a supervisor accepting what a user sent for
    // review: the case names the user who recorded it, whatever became of them since).
    if assignee == rules.who.user || assignee == rules.author.user {
        return Ok(true);
    }
    if let Ok(Some(TypedRecord::ChildCase(was))) = held.get()
        && was.identified_by == assignee
    {
        return Ok(true);
    }
    Ok(
        match read_record::<crate::domain::records::User>(tx, assignee) {
            Ok(Some(user)) => rights::check_assignee(&user.scope(rules.reference), case).is_ok(),
            Ok(None) => false,
            Err(e @ (Error::Storage(_) | Error::HubStorage { .. })) => return Err(e),
            Err(_) => false,
        },
    )
}

/// `admit`'s judgement of the document alone. `stored_kind` is the kind the hub holds for the
/// id, if any; `before` the heads of the stored document, before the changes being judged
/// (those after it). Every new change must name `rules.author`; the record
/// after the merge must be of a kind the role works with, filed in the scope, valid against the
/// reference versions it was captured with and filed in its country's area tree; the sender's
/// own steps must be the role's to take (`check_content`); the document must stay within the
/// bounds on a record. With the record admitted, the version the hub held, for the checks
/// after it (read once, by whichever check needs it first).
fn admit_content<'a>(
    rules: &Rules<'_>,
    id: Uuid,
    stored_kind: Option<RecordKind>,
    (document, read): (&'a Automerge, Option<TypedRecord>),
    before: &'a [ChangeHash],
) -> std::result::Result<(Admitted, TypedRecord, HeldVersion<'a>), Refused> {
    let kind = doc::kind_of(document).ok_or(Refusal::Invalid)?;
    if stored_kind.is_some_and(|k| k != kind) {
        return Err(Refusal::WrongKind.into());
    }
    let held = HeldVersion {
        document,
        id,
        kind,
        before,
        read: std::cell::OnceCell::new(),
    };
    if !rules.scope.kinds().contains(&kind) {
        return Err(Refusal::KindNotAllowed.into());
    }
    // A new record under an id of reference data's (a phone can work one out for any type and
    // key) would take the place of a document the hub publishes later, and every publication
    // of that type and key would fail.
    if stored_kind.is_none() && ReferenceDocument::reserved_id(id) {
        return Err(Refused::breaking(ValidationError::new(
            "id",
            ReferenceDocument::RESERVED_ID,
        )));
    }
    // Read from this document as the kind it names (`Prepared`), or now.
    let record = match read {
        Some(record) => record,
        None => match TypedRecord::read(kind, id, document) {
            Ok(record) => record,
            Err(Error::OverLimit { limit, .. }) => {
                return Err(Refusal::OverLimit { limit }.into());
            }
            Err(_) => return Err(Refusal::Invalid.into()),
        },
    };
    // Their metadata only: building whole changes again took a sixth of a large record's push.
    let new_changes = document.get_changes_meta(before);
    // The author a change names is who the record's history shows: it must be the sender.
    if new_changes
        .iter()
        .any(|change| doc::author_in(change.message.as_deref()) != Some(rules.author))
    {
        return Err(Refusal::WrongAuthor.into());
    }
    // The sender's changes, in order: judged below, and its writes one by one.
    let writes: Vec<ChangeHash> = new_changes.iter().map(|c| c.hash).collect();
    // Against what the hub holds (a record new to it holds nothing anyone else made): an
    // operation on a value the sender's changes never received (a deletion of another
    // device's verification date, follow-up or merge, written by hand), or a list or a text
    // the record keeps put anew in place of the one the sender held (a case's referrals as a
    // new empty map, which Automerge would take over every colleague's edit inside the old
    // one, without a word): no step the sender's versions show, refused as what no app writes.
    if !before.is_empty() {
        if doc::reaches_unseen_operations(document, &writes, before) {
            return Err(Refused::step(
                kind.as_str(),
                NotAllowed::new(doc::UNSEEN_OPERATIONS),
            ));
        }
        if let Some(field) = doc::replaces_kept_objects(kind, document, &writes) {
            let field = if field.is_empty() {
                kind.as_str().to_string()
            } else {
                field
            };
            return Err(Refused::step(
                &field,
                NotAllowed::new(doc::REPLACES_KEPT_OBJECT),
            ));
        }
        // An edit inside an entry a supervisor removed meanwhile, or a removal of one a
        // colleague edited meanwhile: Automerge would drop the edit without a word.
        if let Some((field, rule)) = doc::meets_a_concurrent_removal(document, &writes, before) {
            return Err(Refused::step(&field, NotAllowed::new(rule)));
        }
    }
    // A record may not be moved out of the sender's areas either.
    let area = record
        .area()
        .filter(|a| rules.scope.covers(a))
        .ok_or(Refusal::OutOfScope)?
        .clone();
    // The sender's own steps: from the version its changes were made on to the version they
    // make. (The merge with what the hub holds may differ: concurrent edits keep both values,
    // each checked when it arrived, and a conflict shows them.)
    let heads = sender_heads(&new_changes);
    // The days its clock gave, if it was never set when they were made.
    let today = rules
        .today
        .with_changes_made_at(new_changes.iter().map(|c| c.timestamp));
    drop(new_changes);
    let (base, theirs) = match sender_versions(document, &heads, kind, id, &record) {
        Ok(versions) => versions,
        Err(Error::OverLimit { limit, .. }) => return Err(Refusal::OverLimit { limit }.into()),
        Err(_) => return Err(Refusal::Invalid.into()),
    };
    // A resolution: values side by side at the sender's version that its changes settle to
    // one. Its steps are taken from each device's values it overrides, not only from those the
    // merge happened to show (a monitor keeping one supervisor's closure, merge or
    // verification day over another's; an inspector one monitor's follow-up over another's);
    // a visit's review kept is a review, its own step judged from the record with that review
    // (`rights::settling`).
    let judged_base = match &base {
        Some(base) => {
            let settled = TypedRecord::settled(document, (&heads.0, &heads.1), base, &theirs);
            for step in &settled.steps {
                rights::check_step(rules.author_role, rules.author.user, step)
                    .map_err(|e| Refused::step(step.field(), e))?;
            }
            Some(settled.from)
        }
        None => None,
    };
    // A record new to the hub, as its first write made it: the version its later writes were
    // judged from on the phone, for what only they may change (a plan made before the child's
    // age was corrected, both offline).
    let created = || match (&base, writes.first()) {
        (None, Some(first)) => TypedRecord::read_at(kind, id, document, &[*first]).ok(),
        _ => None,
    };
    match check_content(
        rules.reference,
        (rules.author_role, rules.author.user),
        (judged_base.as_ref(), &theirs),
        &created,
        &record,
        &today,
    ) {
        Err(refused)
            if refused.reason == Refusal::StepNotAllowed
                && each_write_allowed(rules, document, (kind, id), (&heads.0, &writes), false) => {}
        other => other?,
    }
    // Filed by its sender (new, or moved by its changes) under a community the area tree in
    // force places elsewhere or holds no more (moved to another district, renamed, merged
    // since the phone last received a tree): taken where the old tree put it, no one who
    // works there now saw it, and those who no longer do did. It goes to review, where the
    // sender held it once (`quarantine_new`, `quarantine_if_held`); accepted, it is filed
    // where the tree puts that community (`refiled_area`).
    if rules.pushed
        && (stored_kind.is_none() || base.as_ref().map(TypedRecord::area) != Some(theirs.area()))
        && !filed_as_tree_in_force(rules.reference, &area)
    {
        return Err(Refused {
            reason: Refusal::OutOfScope,
            detail: Some(RefusalDetail {
                field: "area".into(),
                rule: FILED_WHERE_THE_TREE_MOVED.into(),
            }),
        });
    }
    // Two edits each right, together a case no single write may leave (one device verifies
    // it, another moves the referral's date after; two remove each one of its two referrals):
    // refused as a merged record that breaks a rule is, unless the record was so already.
    if let (TypedRecord::ChildCase(merged), TypedRecord::ChildCase(own)) = (&record, &theirs)
        && let Some(step) = rights::case_left_inconsistent(merged)
        && rights::case_left_inconsistent(own).is_none()
        && !matches!(held.get(), Ok(Some(TypedRecord::ChildCase(was)))
            if rights::case_left_inconsistent(was).is_some())
        && let Err(e) = rights::check_step(rules.author_role, rules.author.user, &step)
    {
        return Err(Refused::step(
            step.field(),
            NotAllowed::new(format!("{} {COMBINED_WITH_OTHERS}", e.rule)),
        ));
    }
    // A case verified or closed by its sender, unless the case stood so already:
    // - on the follow-ups its sender held, while another device's follow-up, recorded
    //   meanwhile, saw the child still working (or not found): the sender's phone would have
    //   refused the step with that follow-up, so the hub does. (A follow-up arriving after
    //   such a step is kept: what a visit saw is never refused for a decision taken without
    //   it, and the case raises its alert.)
    // - while one of its follow-ups holds values side by side, one of which the rule refuses
    //   it on (in school by one monitor, still working by another): the phone refuses the
    //   step until someone chooses, and so does the hub, whichever the merge shows and
    //   whether the sender held both.
    if let (
        Some(TypedRecord::ChildCase(base)),
        TypedRecord::ChildCase(own),
        TypedRecord::ChildCase(merged),
    ) = (&base, &theirs, &record)
        && base.status != own.status
        && merged.status == own.status
        && !matches!(held.get(), Ok(Some(TypedRecord::ChildCase(was)))
            if was.status == merged.status)
    {
        if rights::check_case_facts(own.status, rights::Tracking::of(own)).is_ok()
            && let Err(e) = rights::check_case_facts(merged.status, rights::Tracking::of(merged))
        {
            return Err(Refused::step(
                "status",
                NotAllowed::new(format!("{} {COMBINED_WITH_OTHERS}", e.rule)),
            ));
        }
        let concurrent = doc::concurrent_deciding::<ChildCase>(document);
        if let Err(e) = rights::check_case_facts_in_conflict(merged, &concurrent) {
            return Err(Refused::step("status", e));
        }
    }
    // The case's status as it now merges, from the status the hub held: the sender's own
    // steps were each allowed from the version it had, but one that took the place of the
    // held status would take the case from there by a step its sender may not take. A late
    // step made on an older copy (referred → receiving services, typed offline) while a
    // supervisor closed the case stands beside the closure, whichever of the two the merge
    // shows: a conflict, the case alerting by the status that keeps it open until a
    // supervisor chooses (`ChildCase::status_readings`), the monitor's other work kept. It
    // was refused when her value was the one shown, and taken when it was not: her notes
    // and follow-ups given up, or not, by Automerge's pick.
    if let TypedRecord::ChildCase(merged) = &record
        && !builds_on(&heads.0, before)
        && let Ok(Some(TypedRecord::ChildCase(was))) = held.get()
        && was.status != merged.status
        && !doc::holds_beside(document, "status", was.status.as_str())
        // Another device moved the case since the sender's version (its own steps, from
        // there, were judged above).
        && !matches!(&base, Some(TypedRecord::ChildCase(b)) if b.status == was.status)
        && let Err(e) =
            rights::check_status_reached(rules.author_role, was.status, merged, true)
    {
        return Err(Refused::step(
            "status",
            NotAllowed::new(format!("{} {COMBINED_WITH_OTHERS}", e.rule)),
        ));
    }
    // The files the sender's own changes take off, add or caption (`rights::check_files`).
    let files = own_files(document, &heads);
    if let Some((was, now)) = &files
        && let Err(e) = rights::check_files(
            rules.author_role,
            rules.author.user,
            (base.as_ref().map(TypedRecord::subject), theirs.subject()),
            (was, now),
        )
        && !each_write_allowed(rules, document, (kind, id), (&heads.0, &writes), true)
    {
        return Err(Refused::step(&e.field, e.refusal));
    }
    // Changes made on a visit still open to its visitor that arrive once it was submitted or
    // reviewed (the hub's version, before them): not merged under a review that never saw them.
    if let (Some(TypedRecord::Visit(base)), TypedRecord::Visit(theirs)) = (&base, &theirs)
        && let Ok(Some(TypedRecord::Visit(held))) = held.get()
    {
        let files_changed = files.as_ref().is_some_and(|(was, now)| was != now);
        rights::check_visit_still_open(held, base, theirs, files_changed)
            .map_err(|e| Refused::step("visit", e))?;
    }
    // The files the hub held, read once for the manifest's rules.
    let held_files = match doc::attachment_keys(document) == 0 || before.is_empty() {
        true => Vec::new(),
        false => doc::attachments_at(document, before),
    };
    check_manifest(kind, document, &held_files, &rules.limits.attachments)?;
    check_manifest_authorship(document, &held_files, files.as_ref(), rules.author.user)?;
    // A file added to a case its sender saw merged into another: the case kept, which stands
    // for the child, would never show it (as for any other edit, `Step::MergedDuplicateEdited`).
    if let Some(TypedRecord::ChildCase(base_case)) = &base
        && base_case.is_merged_duplicate()
        && files.as_ref().is_some_and(|(was, now)| {
            now.iter()
                .any(|entry| !was.iter().any(|had| had.id == entry.id))
        })
    {
        return Err(Refused::step(
            "attachments",
            NotAllowed::new(rights::MERGED_AWAY),
        ));
    }
    // The merged document must load again wherever it goes: two devices' histories, each
    // within the bounds, may not be together. Refused for this record alone.
    let plain = document.save_nocompress();
    bounds::check_size(plain.len(), &DocumentLimits::STANDARD)
        .map_err(|limit| Refusal::OverLimit { limit })?;
    match bounds::admit(&plain, &DocumentLimits::STANDARD) {
        Ok(_) => {}
        Err(bounds::Refused::Over(limit)) => return Err(Refusal::OverLimit { limit }.into()),
        Err(bounds::Refused::Unsupported) => return Err(Refusal::Invalid.into()),
    }
    // Fields its kind does not define: refused, unless the version the hub held had them
    // already (a document an earlier version of Vigie wrote), so that it can still be edited.
    if let Some(json) = record.to_json()
        && doc::holds_unknown_fields(document, None, &json)
    {
        let held_before = matches!(held.get(), Ok(Some(was))
            if was.to_json().is_some_and(|was| doc::holds_unknown_fields(document, Some(before), &was)));
        if !held_before {
            return Err(Refusal::Invalid.into());
        }
    }
    Ok((
        Admitted {
            kind,
            area: Some(area),
        },
        record,
        held,
    ))
}

/// The record as the sender's new changes found it (none if they build on no history: a new
/// record) and as they leave it: the versions at their dependencies and at their own heads
/// (`sender_heads`).
fn sender_versions(
    document: &Automerge,
    (base, theirs): &(Vec<ChangeHash>, Vec<ChangeHash>),
    kind: RecordKind,
    id: Uuid,
    current: &TypedRecord,
) -> Result<(Option<TypedRecord>, TypedRecord)> {
    let before = if base.is_empty() {
        None
    } else {
        Some(TypedRecord::read_at(kind, id, document, base)?)
    };
    // Nothing but the sender's changes on top (a new record, or an edit of the version the hub
    // holds): the sender's version is the record as read already.
    let mut heads = document.get_heads();
    heads.sort();
    let mut own = theirs.clone();
    own.sort();
    let theirs = match heads == own {
        true => current.clone(),
        false => TypedRecord::read_at(kind, id, document, theirs)?,
    };
    Ok((before, theirs))
}

/// Whether the changes after `before` file the record anywhere: they create it, or the record
/// with them is filed elsewhere than the record as the hub held it (at `before`). A record
/// moved by someone else (a supervisor filing it in another community) while the changes were
/// on their way is not moved by them; changes built on an older version that file it back
/// where it was then do move it. Changes that do not read are taken as moving it.
pub(crate) fn changes_file_the_record(
    document: &Automerge,
    before: &[ChangeHash],
    kind: RecordKind,
    id: Uuid,
) -> bool {
    if before.is_empty() {
        return true;
    }
    match (
        TypedRecord::read_at(kind, id, document, before),
        TypedRecord::read(kind, id, document),
    ) {
        (Ok(held), Ok(merged)) => held.area() != merged.area(),
        _ => true,
    }
}

/// Whether the sender's changes build on the very version the hub held (`sender_heads`'s
/// base, sorted, against the hub's heads): no other device's change came meanwhile.
fn builds_on(base: &[ChangeHash], held: &[ChangeHash]) -> bool {
    let mut held = held.to_vec();
    held.sort();
    base == held
}

/// The heads the sender's new changes build on (empty: a new record) and the heads they make.
fn sender_heads(new_changes: &[ChangeMetadata<'_>]) -> (Vec<ChangeHash>, Vec<ChangeHash>) {
    let new: HashSet<ChangeHash> = new_changes.iter().map(|c| c.hash).collect();
    let depended: HashSet<ChangeHash> = new_changes
        .iter()
        .flat_map(|c| c.deps.iter().copied())
        .collect();
    let theirs: Vec<ChangeHash> = new_changes
        .iter()
        .map(|c| c.hash)
        .filter(|h| !depended.contains(h))
        .collect();
    let mut base: Vec<ChangeHash> = depended.difference(&new).copied().collect();
    base.sort();
    (base, theirs)
}

/// Whether each of the sender's writes (`writes`, its changes in order, made on `base`; empty
/// for a record new to the hub, whose first write creates it) was one its user may make,
/// judged from the version before it as the phone judged it: a push made offline may hold
/// several, which the change from its first version to its last would refuse where no single
/// write was refused (a supervisor's own visit returned, corrected and submitted again: its
/// content changed on a visit submitted before and after; a case closed on a follow-up that
/// saw the child in school, then a later one that saw her working again, which reopens
/// nothing and raises the alert). Its steps, and with `files` who changed which file. Tried
/// when that whole change is refused, for a visit's or a case's writes, at most
/// `MAX_WRITES_JUDGED` of them.
fn each_write_allowed(
    rules: &Rules<'_>,
    document: &Automerge,
    (kind, id): (RecordKind, Uuid),
    (base, writes): (&[ChangeHash], &[ChangeHash]),
    files: bool,
) -> bool {
    if !matches!(kind, RecordKind::Visit | RecordKind::ChildCase)
        || writes.is_empty()
        || writes.len() > MAX_WRITES_JUDGED
    {
        return false;
    }
    let version = |heads: &[ChangeHash]| TypedRecord::read_at(kind, id, document, heads).ok();
    let (mut before, mut before_files) = if base.is_empty() {
        (None, Vec::new())
    } else {
        match version(base) {
            Some(record) => (Some(record), doc::attachments_at(document, base)),
            None => return false,
        }
    };
    let (role, user) = (rules.author_role, rules.author.user);
    for write in writes {
        let Some(after) = version(&[*write]) else {
            return false;
        };
        let was = before.as_ref().map(TypedRecord::subject);
        if rights::check(role, user, was, after.subject()).is_err() {
            return false;
        }
        if files {
            let after_files = doc::attachments_at(document, &[*write]);
            let was = before.as_ref().map(TypedRecord::subject);
            if rights::check_files(
                role,
                user,
                (was, after.subject()),
                (&before_files, &after_files),
            )
            .is_err()
            {
                return false;
            }
            before_files = after_files;
        }
        before = Some(after);
    }
    true
}

/// The most writes of one push judged one by one (`each_write_allowed`): past it, the push is
/// judged whole.
const MAX_WRITES_JUDGED: usize = 64;

/// Who may upload an attachment's bytes is who captured it (`attachments::upload`), so the
/// manifest says it truly: an entry the sender adds names the sender as its capturer, and an
/// entry that was there before keeps everything but its caption, both in the sender's own
/// version (from what its changes build on) and in the merged document (from what the hub
/// held: a concurrent entry under the same id, written to win the merge, is refused too). A
/// caption the merged document sets anew follows the one-line rule
/// (`attachment::validate_new_captions`).
fn check_manifest_authorship(
    document: &Automerge,
    stored: &[crate::domain::Attachment],
    files: Option<&SenderFiles>,
    sender: Uuid,
) -> std::result::Result<(), Refused> {
    // A document holding a file has the sender's files read (`own_files`).
    let (Some((was, now)), false) = (files, doc::attachment_keys(document) == 0) else {
        return Ok(());
    };
    unchanged_or_own(was, now, sender)?;
    if doc::attachment_written_twice(document) {
        return Err(Refused::breaking(ValidationError::new(
            "attachments",
            "an entry is written once, by the device that captured it (only its caption changes)",
        )));
    }
    let merged = doc::attachments(document);
    unchanged_or_own(stored, &merged, sender)?;
    crate::domain::attachment::validate_new_captions(stored, &merged).map_err(Refused::breaking)
}

/// The files of the version the sender's changes were made on (none for a record it creates)
/// and of the one they leave.
type SenderFiles = (
    Vec<crate::domain::Attachment>,
    Vec<crate::domain::Attachment>,
);

/// The sender's files (`SenderFiles`), read once for every rule on them: `None` when the
/// record holds no file and its sender's base held none (read even when the record holds none
/// now: the change may have taken off its last).
fn own_files(
    document: &Automerge,
    (base, theirs): &(Vec<ChangeHash>, Vec<ChangeHash>),
) -> Option<SenderFiles> {
    let at = |heads: &[ChangeHash]| match heads.is_empty() {
        true => Vec::new(),
        false => doc::attachments_at(document, heads),
    };
    let was = at(base);
    if was.is_empty() && doc::attachment_keys(document) == 0 {
        return None;
    }
    Some((was, at(theirs)))
}

/// Every entry of `after` is either in `before` with the same fields (its caption aside), or
/// new and captured by `sender`.
fn unchanged_or_own(
    before: &[crate::domain::Attachment],
    after: &[crate::domain::Attachment],
    sender: Uuid,
) -> std::result::Result<(), Refused> {
    let fixed = |a: &crate::domain::Attachment| crate::domain::Attachment {
        caption: String::new(),
        ..a.clone()
    };
    for entry in after {
        match before.iter().find(|b| b.id == entry.id) {
            None if entry.captured_by != sender => return Err(Refusal::WrongAuthor.into()),
            None => {}
            Some(was) if fixed(was) != fixed(entry) => {
                return Err(Refused::breaking(ValidationError::new(
                    format!("attachments.{}", entry.id),
                    "an entry keeps what it was captured with: only its caption changes",
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

pub use crate::domain::records::{EARLIEST_EVENT_DAY, latest_event_day};

/// What a validation refusal adds when the sender's own version was valid and the record with
/// others' changes is not.
pub const COMBINED_WITH_OTHERS: &str =
    "(with changes made meanwhile on another device: see the record as it is now)";

/// The hub's checks of a pushed record's content, beyond kind, scope and authorship: `merged`
/// (as the hub would store it) passes the phone's own validation against the reference
/// versions it was captured with, and its area is a path of its country's area tree in force
/// (the version it was captured with, else the latest); every workflow step from `from` to `to`
/// (the sender's own, see `accept_push`) is allowed to the sender's role (`rights`); `created`
/// reads a record new to the hub as its first write made it. Every path that lets a device's
/// changes into the hub's records goes through it.
pub(crate) fn check_content(
    reference: &ReferenceData,
    (role, user): (Role, Uuid),
    (from, to): (Option<&TypedRecord>, &TypedRecord),
    created: &dyn Fn() -> Option<TypedRecord>,
    merged: &TypedRecord,
    today: &crate::domain::records::Today,
) -> std::result::Result<(), Refused> {
    let after = merged;
    // A day the sender set after the latest an event may fall on (a follow-up "done" in 2099,
    // or a phone whose clock runs days ahead), before monitoring began (a slipped year), or
    // given by a clock never set: said first, as a phone says it (the rules that compare days
    // would name a right one).
    let known = from.map(TypedRecord::event_dates).unwrap_or_default();
    crate::domain::records::events_within_their_time(today, &known, &to.event_dates())
        .map_err(Refused::breaking)?;
    // What the version the sender's changes were made on broke already (a rule newer than the
    // value: a blank task an earlier version took) holds back no edit that leaves it so, and
    // lets nothing else through, as a phone judges a peer's copy (`received::check_values`).
    if let Err(mut e) = after.validate_beside(from, reference) {
        let pins = crate::domain::reference::content::PINS_FIELD;
        if e.field.starts_with(pins) {
            return Err(Refusal::UnknownReference.into());
        }
        // Valid as the sender wrote it, invalid with what others wrote meanwhile (a date of
        // birth on one phone, a date of identification on another): the field may be one the
        // sender never touched, so the refusal says where the other half comes from.
        if to.validate(reference).is_ok() {
            e.rule = format!("{} {COMBINED_WITH_OTHERS}", e.rule);
        }
        return Err(Refused::breaking(e));
    }
    // The versions a record is captured with decide its classification and what it may hold:
    // set once, when it is created, to its country's own or the default ones (a phone that
    // has not yet received its country's keeps the default); never changed after.
    if !pins_kept(reference, from, to) {
        return Err(Refused::breaking(ValidationError::new(
            crate::domain::reference::content::PINS_FIELD,
            "must be the versions the record was created with, of its own country or the default",
        )));
    }
    let written = from.map(TypedRecord::free_texts).unwrap_or_default();
    crate::domain::records::set_texts_within_rules(
        from.map(|from| (from.subject(), &written[..])),
        to.subject(),
        to.free_texts(),
    )
    .map_err(Refused::breaking)?;
    // A new record's plans are judged from its first version, as the phone judged its later
    // writes (a plan that passed, then the age corrected: each write passed); read only then.
    let plans = |before: Option<&TypedRecord>| {
        crate::domain::records::plans_within_childhood(
            before.map(TypedRecord::subject),
            to.subject(),
            reference,
        )
    };
    if let Err(e) = plans(from) {
        match from {
            None if created().is_some_and(|first| plans(Some(&first)).is_ok()) => {}
            _ => return Err(Refused::breaking(e)),
        }
    }
    // Judged when the sender files the record: an edit that leaves it where it is stays
    // possible after a new tree renamed its community (a record captured before its phone
    // held any tree names no version to be judged by).
    let filed_by_sender = from.map(TypedRecord::area) != Some(to.area());
    if let (true, Some(area), Some(pins)) = (filed_by_sender, after.area(), after.pins()) {
        let pin = pins.get(ReferenceType::AdministrativeAreas);
        let in_tree = |tree: Option<&AreaNode>| tree.is_some_and(|t| t.check(area, "area").is_ok());
        // The tree it was captured with, or the one in force (a record filed again after its
        // community was renamed, moved or split).
        if !in_tree(reference.area_tree_for(pin, &area.country))
            && !in_tree(reference.area_tree(&area.country))
        {
            return Err(Refusal::AreaNotInTree.into());
        }
    }
    for step in rights::steps(from.map(TypedRecord::subject), to.subject()) {
        rights::check_step(role, user, &step).map_err(|e| Refused::step(step.field(), e))?;
    }
    Ok(())
}

/// Why a record filed under a community the tree in force moved or renamed is not taken
/// where it says (it goes to review, when its sender held it once).
const FILED_WHERE_THE_TREE_MOVED: &str = "names a community the area tree in force has moved \
     or renamed since: a supervisor files it where the community is now";

/// Whether `area` is a path of its country's area tree in force (or the country has none).
pub(crate) fn filed_as_tree_in_force(reference: &ReferenceData, area: &Area) -> bool {
    reference
        .area_tree(&area.country)
        .is_none_or(|tree| tree.check(area, "area").is_ok())
}

/// Whether a record's pins are those it was created with (`from`), or, for a new record, name
/// its own country's versions or the default ones. A country profile may move forward, to a
/// later version of its key or from the default to its country's own
/// (`Record::follow_reference_in_force`).
pub(crate) fn pins_kept(
    reference: &ReferenceData,
    from: Option<&TypedRecord>,
    to: &TypedRecord,
) -> bool {
    let country = to.area().map(|a| a.country.as_str());
    let own = |pin: &crate::domain::reference::Pin| Some(pin.key.as_str()) == country;
    let own_or_default = |ty: ReferenceType, pin: &crate::domain::reference::Pin| {
        own(pin)
            || reference
                .builtin_pin(ty)
                .is_some_and(|default| default.key == pin.key)
    };
    if let Some(from) = from {
        let pin = |record: &TypedRecord, ty| record.pins().and_then(|p| p.get(ty)).cloned();
        return ReferenceType::ALL
            .into_iter()
            .all(|ty| match (pin(from, ty), pin(to, ty)) {
                (was, now) if was == now => true,
                // Forward only: a later version of its key, or from the default profile to its
                // country's own (never back to the default: two such moves would put a case
                // on an older list of its country).
                (was, Some(now)) if ty == ReferenceType::CountryProfile => {
                    own_or_default(ty, &now)
                        && was.is_none_or(|was| match was.key == now.key {
                            true => was.version < now.version,
                            false => own(&now) && !own(&was),
                        })
                }
                _ => false,
            });
    }
    let Some(pins) = to.pins() else {
        return true;
    };
    ReferenceType::ALL.into_iter().all(|ty| match pins.get(ty) {
        None => true,
        Some(pin) => own_or_default(ty, pin),
    })
}

/// A record's attachment manifest: only kinds that take attachments hold one, every entry
/// reads, and the whole is within the hub's limits.
fn check_manifest(
    kind: RecordKind,
    document: &Automerge,
    held: &[crate::domain::Attachment],
    limits: &AttachmentLimits,
) -> std::result::Result<(), Refused> {
    if doc::attachment_keys(document) == 0 {
        return Ok(());
    }
    if !takes_attachments(kind) {
        return Err(Refusal::Invalid.into());
    }
    let entries = doc::attachments_checked(document).map_err(|field| {
        Refused::breaking(ValidationError::new(
            field,
            "must be a field of an attachment as the app writes it",
        ))
    })?;
    // Sorted by id: one id under two spellings of its key.
    if entries.windows(2).any(|pair| pair[0].id == pair[1].id) {
        return Err(Refused::breaking(ValidationError::new(
            "attachments",
            "each entry is under its id, written once, in lowercase",
        )));
    }
    // The field and the limit it breaks, so the app can say what to do ("too many photos on
    // this record: remove one"): two devices adding attachments offline may go over together.
    // What the hub held (`held`) is not judged again by limits lowered since.
    validate_manifest(held, &entries, limits).map_err(|refusal| {
        Refused::breaking(match refusal {
            AttachmentRefusal::TooManyForRecord { limit, .. } => ValidationError::new(
                "attachments",
                format!("at most {limit} attachments per record (max_attachments_per_record)"),
            ),
            AttachmentRefusal::RecordTooLarge { limit, .. } => ValidationError::new(
                "attachments",
                format!(
                    "at most {limit} bytes of attachments per record (max_record_attachment_bytes)"
                ),
            ),
            AttachmentRefusal::FileTooLarge { limit, .. } => ValidationError::new(
                "attachments.size",
                format!("must not exceed {limit} bytes (max_attachment_bytes)"),
            ),
            AttachmentRefusal::Invalid(e) => e,
            _ => ValidationError::new("attachments", "must be a well-formed manifest"),
        })
    })
}

/// A record sent whole (asked for again by the device), if it is the device's to see.
fn whole_record(tx: &mut dyn HubTransaction, scope: &Scope, id: Uuid) -> Result<Option<PullEntry>> {
    let unreadable = || {
        tracing::warn!(record = %id, "stored record unreadable: not sent");
        Ok(None)
    };
    let stored = match tx.record(id, false) {
        Ok(Some(stored)) => stored,
        Ok(None) => return Ok(None),
        Err(Error::DamagedDocument { .. }) | Err(Error::OverLimit { .. }) => return unreadable(),
        Err(e) => return Err(e),
    };
    if !scope.receives(stored.kind, stored.area.as_ref()) {
        return Ok(None);
    }
    let Ok(document) = codec::load(id, &stored.document) else {
        return unreadable();
    };
    Ok(Some(PullEntry {
        id,
        changes: stored.document,
        hub_heads: document.get_heads().iter().map(|h| h.0).collect(),
    }))
}

/// One page of a device's walk through the change order.
#[derive(Default)]
struct Page {
    records: Vec<PullEntry>,
    tombstones: Vec<Tombstone>,
    left: Vec<Uuid>,
    next: Cursor,
    more: bool,
}

/// What a departure from an area means to a device whose scope covered the area: a tombstone
/// if the record was erased, "left" if it is now outside the device's scope.
enum Leaving {
    Erased(Tombstone),
    Left(Uuid),
}

fn leaving(
    tx: &mut dyn HubTransaction,
    scope: &Scope,
    departure: &Departure,
) -> Result<Option<Leaving>> {
    // A case erased before the hub held it (a phone reported its id): filed nowhere the hub
    // knows, its tombstone goes to every device. Any may hold the case, from a bundle or a
    // peer, and must let it go; all must refuse it after (a device that synced since the
    // erasure took it from a peer, and passed it on).
    let erased_unheld = departure.now.is_none() && departure.area == Area::default();
    if !erased_unheld && !scope.receives(departure.kind, Some(&departure.area)) {
        return Ok(None);
    }
    Ok(match &departure.now {
        None => Some(Leaving::Erased(Tombstone {
            id: departure.id,
            roots: tx.erased_roots(departure.id)?.iter().map(|h| h.0).collect(),
        })),
        Some((kind, area)) if !scope.receives(*kind, area.as_ref()) => {
            Some(Leaving::Left(departure.id))
        }
        Some(_) => None,
    })
}

/// Charges an item to the answer. Items at one place of the change order go together (the
/// cursor cannot fall between them): one that does not fit goes all the same.
fn charge(answer: &mut Budget, bytes: usize, same_place: bool) -> bool {
    if answer.take(bytes) {
        return true;
    }
    if same_place {
        answer.spent += bytes;
    }
    same_place
}

/// Records in scope that changed after the cursor, each with the changes the device lacks, and
/// the records that left its scope or were erased there, in change order, as far as `answer`
/// allows. Returns them with the cursor to issue, and whether more are waiting.
fn pull(
    tx: &mut dyn HubTransaction,
    scope: &Scope,
    cursor: Cursor,
    skip: &HashMap<Uuid, Option<Vec<[u8; 32]>>>,
    held: &Held,
    answer: &mut Budget,
) -> Result<Page> {
    const BATCH: usize = 1_000;
    let high_water = tx.high_water()?;
    let changed = tx.changed(scope, cursor.after, high_water, BATCH)?;
    let departures = tx.departures(cursor.after, high_water, BATCH)?;
    // Past the last item of a full batch, what else changed is not known yet.
    let mut known = high_water;
    if changed.len() == BATCH
        && let Some(last) = changed.last()
    {
        known = known.min(last.seq);
    }
    if departures.len() == BATCH
        && let Some(last) = departures.last()
    {
        known = known.min(last.seq);
    }
    let mut page = Page::default();
    let mut changed = changed.into_iter().peekable();
    let mut departures = departures.into_iter().peekable();
    let mut last = cursor.after;
    let cut = |page: Page, last: i64| Page {
        next: Cursor {
            after: last,
            ..cursor
        },
        more: true,
        ..page
    };
    loop {
        let next_departure = departures.peek().map(|d| d.seq).filter(|s| *s <= known);
        let next_record = changed.peek().map(|c| c.seq).filter(|s| *s <= known);
        // A departure before a change at the same place.
        let take_departure = match (next_departure, next_record) {
            (Some(d), Some(r)) => d <= r,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if take_departure {
            let departure = departures.next().expect("peeked");
            let same_place = departure.seq == last;
            match leaving(tx, scope, &departure)? {
                Some(Leaving::Erased(tombstone))
                    if !page.tombstones.iter().any(|t| t.id == tombstone.id) =>
                {
                    if !charge(answer, 16 + 32 * tombstone.roots.len(), same_place) {
                        return Ok(cut(page, last));
                    }
                    page.tombstones.push(tombstone);
                }
                Some(Leaving::Left(id)) if !page.left.contains(&id) => {
                    if !charge(answer, 16, same_place) {
                        return Ok(cut(page, last));
                    }
                    page.left.push(id);
                }
                _ => {}
            }
            last = departure.seq;
            continue;
        }
        let record = changed.next().expect("peeked");
        let (id, seq) = (record.id, record.seq);
        // A record the device just pushed, or got whole in this answer, is skipped while the
        // hub holds what the answer told it.
        let skipped = match skip.get(&id) {
            None => false,
            Some(None) => true,
            Some(Some(acked)) => {
                sorted(codec::heads_of(&record.heads).iter().map(|h| h.0).collect()) == *acked
            }
        };
        if !skipped {
            match lacking(tx, record, cursor.since, held) {
                Ok(Some(entry)) => {
                    if !charge(answer, entry.changes.len(), seq == last) {
                        return Ok(cut(page, last));
                    }
                    page.records.push(entry);
                }
                Ok(None) => {}
                // One damaged record never fails a device's sync: it is left out, and said.
                Err(Error::DamagedDocument { .. } | Error::OverLimit { .. }) => {
                    tracing::warn!(record = %id, "stored record unreadable: skipped in a pull");
                }
                Err(e) => return Err(e),
            }
        }
        last = seq;
    }
    if known < high_water {
        return Ok(cut(page, last));
    }
    page.next = Cursor {
        since: high_water,
        after: high_water,
        scope: cursor.scope,
    };
    Ok(page)
}

/// What a device with `since` lacks of one record: nothing if every change after it is one
/// it holds (its own, from a push whose answer it applied); the whole document if it never had
/// the record; else the other changes. Only the last case needs the document decoded.
fn lacking(
    tx: &mut dyn HubTransaction,
    record: ChangedRecord,
    since: i64,
    held: &Held,
) -> Result<Option<PullEntry>> {
    let id = record.id;
    let created_by_requester = record.creator.is_some() && record.creator == Some(held.device);
    let bytes = codec::decode(id, record.stored)?;
    if record.first_seq > since && !created_by_requester {
        // No heads: they are the document's own, which the device reads once it has it
        // (32 incompressible bytes a record saved on an initial sync). A device that works them
        // out gets the document without them too.
        let changes = if held.headless {
            codec::columns::strip_heads(&bytes).unwrap_or(bytes)
        } else {
            bytes
        };
        return Ok(Some(PullEntry {
            id,
            changes,
            hub_heads: Vec::new(),
        }));
    }
    let hub_heads: Vec<[u8; 32]> = codec::heads_of(&record.heads).iter().map(|h| h.0).collect();
    let wanted: Vec<ChangeHash> = tx
        .change_log(id)?
        .iter()
        .filter(|e| e.seq > since && !held.holds(e))
        .flat_map(|e| codec::heads_of(&e.changes))
        .collect();
    let changes = codec::changes_by_hash(id, &bytes, &wanted)?;
    Ok((!changes.is_empty()).then_some(PullEntry {
        id,
        changes,
        hub_heads,
    }))
}

// ---------------------------------------------------------------------------------------------
// The embedded hub: the engine over the hub's own store

impl Store {
    /// Handles one sync request from an authenticated device on this store (the embedded hub).
    pub fn hub_handle(
        &mut self,
        who: &Principal,
        request: &[u8],
        limits: &HubLimits,
    ) -> std::result::Result<Vec<u8>, HubError> {
        handle_sync(self, who, request, limits)
    }

    /// `hub_handle` on a hub that certifies devices (`handle_certified_sync`).
    pub fn hub_handle_certified(
        &mut self,
        who: &Principal,
        request: &[u8],
        limits: &HubLimits,
        certifier: &Certifier<'_>,
    ) -> std::result::Result<Vec<u8>, HubError> {
        handle_certified_sync(self, who, request, limits, Some(certifier))
    }

    /// Publishes `content` as the next version of the reference document of its type and `key`
    /// (`CI` for Côte d'Ivoire's profile, areas or referral directory; a checklist's id;
    /// `default` for what applies where a country has none of its own). Only the hub
    /// publishes; the document is written like any record, so it enters the change log and
    /// reaches every device. Returns the version number: one above the latest known (published
    /// or built in), or the latest itself if its content is the same.
    pub fn publish_reference(&mut self, key: &str, content: ReferenceContent) -> Result<u32> {
        if self.role() != StoreRole::Hub {
            return Err(Error::NotAllowed {
                rule: "only the hub publishes reference data".into(),
            });
        }
        let published = self.publish_references(&[(key.to_string(), content)])?;
        Ok(published[0])
    }

    /// Publishes each `(key, content)` as `publish_reference` does, all in one transaction:
    /// either every one is published or, on the first refused, none is.
    pub fn publish_references(&mut self, files: &[(String, ReferenceContent)]) -> Result<Vec<u32>> {
        if self.role() != StoreRole::Hub {
            return Err(Error::NotAllowed {
                rule: "only the hub publishes reference data".into(),
            });
        }
        let (actor, author) = (self.actor().clone(), self.author());
        let files: Vec<(&str, &ReferenceContent)> = files
            .iter()
            .map(|(key, content)| (key.as_str(), content))
            .collect();
        self.in_transaction(&mut |tx| publish_references(tx, &actor, author, &files))
    }
}

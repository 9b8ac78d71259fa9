//! The hub's side of sync: the same store and the same documents as a device, with the rules of
//! who may send and receive what.
//!
//! Authorization is partial replication: a principal receives only records of the kinds its role
//! works with, in its areas, and may change only those. A record that breaks a rule is refused on
//! its own, reported to the sender, and never blocks the rest of the request.

use super::client::changes_after;
use super::wire::{
    self, Cursor, PullEntry, PushAck, PushEntry, PushOutcome, Refusal, SyncRequest, SyncResponse,
    UserProfile,
};
use crate::bounds::{self, DocumentLimits};
use crate::doc::{self, ChangeAuthor};
use crate::error::{Error, Result};
use crate::model::{Area, Record, RecordKind, Role};
use crate::reference::{
    Published, ReferenceContent, ReferenceData, ReferenceDocument, ReferenceType,
};
use crate::rights::{self, AreaScope};
use crate::store::{self, TypedRecord};
use automerge::{ActorId, Automerge, ChangeHash, ReadDoc};
use chrono::Utc;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashSet};
use uuid::Uuid;

pub use super::hub_storage::{
    ChangedRecord, HubStorage, HubTransaction, LogEntry, Quarantined, RecordWrite, StoredRecord,
};

/// Who is syncing: an enrolled device and the user it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub device: Uuid,
    pub user: Uuid,
    pub role: Role,
    /// Area codes assigned to the user, each matched at the level the area tree in force gives
    /// it (`Principal::scope`).
    pub areas: BTreeSet<String>,
}

impl Principal {
    /// The kinds of record this role receives and may change (`rights::kinds`). Never
    /// `Reference`: every principal receives reference data, only the hub changes it.
    pub fn kinds(&self) -> &'static [RecordKind] {
        rights::kinds(self.role)
    }

    /// What the principal receives and may change, its area codes resolved against the area
    /// trees in `reference`.
    pub fn scope(&self, reference: &ReferenceData) -> Scope {
        Scope {
            role: self.role,
            areas: AreaScope::resolve(&self.areas, reference),
        }
    }

    /// Whether an area is within the principal's areas (see `Scope::covers`).
    pub fn covers(&self, area: &Area, reference: &ReferenceData) -> bool {
        self.scope(reference).covers(area)
    }

    /// The user's role and areas, as the hub tells the user's devices.
    pub fn profile(&self) -> UserProfile {
        UserProfile {
            role: self.role,
            areas: self.areas.iter().cloned().collect(),
        }
    }
}

/// A principal's kinds and areas, each area code at its level in the area tree in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub role: Role,
    pub areas: AreaScope,
}

impl Scope {
    pub fn kinds(&self) -> &'static [RecordKind] {
        rights::kinds(self.role)
    }

    /// Whether an area lies within the principal's areas: one of its codes is the area's code
    /// at that code's level, in the same country.
    pub fn covers(&self, area: &Area) -> bool {
        self.areas.covers(area)
    }

    /// Whether a record of this kind, filed under this area, is the principal's to receive.
    pub fn receives(&self, kind: RecordKind, area: Option<&Area>) -> bool {
        kind == RecordKind::Reference
            || (self.kinds().contains(&kind) && area.is_some_and(|a| self.covers(a)))
    }

    /// Changes when the role or what the areas resolve to change, so that a cursor issued for
    /// another scope is not reused.
    pub fn fingerprint(&self) -> u64 {
        let mut hash = Sha256::new();
        hash.update([self.role as u8]);
        for grant in self.areas.grants() {
            for part in [&grant.country, grant.level.as_str(), &grant.code] {
                hash.update(part.as_bytes());
                hash.update([0]);
            }
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

/// Dates before this are a clock that was never set.
const EARLIEST_PLAUSIBLE_MS: i64 = 1_577_836_800_000; // 2020-01-01

/// Handles one sync request from an authenticated device, in one transaction of `storage`: its
/// pushes are stored (or refused one by one) and the records it lacks are returned. `actor` is
/// the hub process's own Automerge actor.
pub fn handle_sync<S: HubStorage + ?Sized>(
    storage: &mut S,
    who: &Principal,
    request: &[u8],
    limits: &HubLimits,
) -> std::result::Result<Vec<u8>, HubError> {
    if request.len() > limits.max_request_bytes {
        return Err(HubError::TooLarge("request bytes"));
    }
    let mut request: SyncRequest = wire::decode(
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
    let requester = ActorId::from(request.actor.clone());
    if doc::device_of_actor(&requester) != Some(who.device) {
        return Err(HubError::ActorNotBound);
    }
    // Records are locked in id order, so two hub processes serving overlapping pushes cannot
    // wait on each other in a cycle. The acks are matched by id, not by position.
    request.push.sort_by_key(|e| e.id);
    let author = ChangeAuthor {
        user: who.user,
        device: who.device,
    };
    let budget = (request.max_response_bytes as usize).clamp(16 * 1024, limits.max_response_bytes);
    let response = storage.in_transaction(&mut |tx| {
        // The area trees in force decide what the principal's codes cover, on this request.
        let reference = tx.reference()?;
        let scope = who.scope(&reference);
        let mut acks = Vec::with_capacity(request.push.len());
        let mut size = 0usize;
        for entry in &request.push {
            let outcome = accept_push(tx, &reference, &scope, author, who, entry, limits)?;
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
            if let Some(entry) = whole_record(tx, &scope, *id)? {
                size += entry.changes.len();
                records.push(entry);
            }
        }
        let fingerprint = scope.fingerprint();
        let cursor = match request.cursor {
            Some(c) if c.scope == fingerprint => c,
            _ => Cursor {
                since: 0,
                after: 0,
                scope: fingerprint,
            },
        };
        let (pulled, next, more) = pull(
            tx,
            &scope,
            &requester,
            cursor,
            &pushed,
            budget.saturating_sub(size),
        )?;
        records.extend(pulled);
        // Tombstones travel with the last page of a walk, covering all of it: few, small, and
        // applied twice without effect.
        let erased = if more {
            Vec::new()
        } else {
            tx.erased_between(cursor.since, next.since)?
        };
        Ok(SyncResponse {
            acks,
            records,
            cursor: next,
            more,
            erased,
            profile: Some(who.profile()),
        })
    })?;
    Ok(wire::encode(wire::RESPONSE_TAG, &response))
}

/// Erases a record everywhere the hub can reach: its document and history go, and a tombstone
/// tells every device to drop its copy and stops any old copy from coming back. `by` must be a
/// supervisor whose areas cover the record. Returns whether the record was there.
pub fn erase_record(tx: &mut dyn HubTransaction, by: &Principal, id: Uuid) -> Result<bool> {
    if by.role != Role::Supervisor {
        return Err(Error::NotAllowed {
            rule: "only a supervisor may erase a record".into(),
        });
    }
    if let Some(stored) = tx.record(id, true)? {
        if stored.kind != RecordKind::ChildCase {
            return Err(Error::NotAllowed {
                rule: "only child cases are erased; other records are closed".into(),
            });
        }
        let reference = tx.reference()?;
        if !stored
            .area
            .as_ref()
            .is_some_and(|a| by.covers(a, &reference))
        {
            return Err(Error::NotAllowed {
                rule: "the record is outside the supervisor's areas".into(),
            });
        }
    }
    tx.erase(id)
}

/// Accepts quarantined changes after a supervisor's review: they are merged into the record as
/// the device made them. Returns whether the record changed.
pub fn accept_quarantined(tx: &mut dyn HubTransaction, entry: &Quarantined) -> Result<bool> {
    let Some(stored) = tx.record(entry.record, true)? else {
        return Ok(false);
    };
    let mut document = doc::load(entry.record, &stored.document)?;
    let before = document.get_heads();
    store::decode_into(&mut document, entry.record, &entry.changes)?;
    if document.get_heads() == before {
        return Ok(false);
    }
    let kind = doc::kind_of(&document).ok_or_else(|| Error::DamagedDocument {
        id: entry.record,
        reason: "the quarantined changes name no record kind".into(),
    })?;
    let area = TypedRecord::read(kind, entry.record, &document)?
        .area()
        .cloned();
    tx.save(RecordWrite {
        id: entry.record,
        kind,
        key: Some(stored.key),
        area: area.as_ref(),
        document: &mut document,
        before: &before,
        author: ChangeAuthor {
            user: entry.user,
            device: entry.device,
        },
    })?;
    Ok(true)
}

/// Publishes `content` as the next version of the reference document of its type and `key`
/// (`CI` for Côte d'Ivoire's profile, areas or referral directory; a checklist's id; `default`
/// for what applies where a country has none of its own), written by the hub's `actor`. The
/// document is written like any record, so it enters the change log and reaches every device.
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
    let reference = tx.reference()?;
    let ty = content.reference_type();
    let id = ReferenceDocument::id_for(ty, key);
    let stored = tx.record(id, true)?;
    let (mut document, mut record) = match &stored {
        Some(stored) if stored.kind == RecordKind::Reference => {
            let document = doc::load(id, &stored.document)?.with_actor(actor.clone());
            let record = doc::read_record::<ReferenceDocument>(&document, id)?;
            (document, record)
        }
        Some(stored) => {
            return Err(Error::WrongKind {
                id,
                expected: RecordKind::Reference,
                actual: stored.kind,
            });
        }
        None => (
            Automerge::new().with_actor(actor.clone()),
            ReferenceDocument::new(ty, key),
        ),
    };
    let latest = record.latest().max(reference.latest_version(ty, key));
    if let Some(latest) = latest {
        let same = match record.versions.get(&latest) {
            Some(published) => published.content().as_ref() == Some(content),
            None => reference.content(ty, key, latest) == Some(content),
        };
        if same {
            return Ok(latest);
        }
    }
    let version = latest.unwrap_or(0) + 1;
    record
        .versions
        .insert(version, Published::new(content, Utc::now()));
    record.validate(&reference)?;
    let before = document.get_heads();
    doc::write_record(&mut document, &record, &author)?;
    tx.save(RecordWrite {
        id,
        kind: RecordKind::Reference,
        key: stored.map(|s| s.key),
        area: None,
        document: &mut document,
        before: &before,
        author,
    })?;
    Ok(version)
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
    let mut document = doc::load(id, &stored.document)?.with_actor(actor.clone());
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

/// Reads a record of type `R` from the hub's storage, if there is one of that kind.
pub fn read_record<R: Record>(tx: &mut dyn HubTransaction, id: Uuid) -> Result<Option<R>> {
    match tx.record(id, false)? {
        Some(stored) if stored.kind == R::KIND => {
            let document = doc::load(id, &stored.document)?;
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

fn refused(reason: Refusal) -> PushOutcome {
    PushOutcome::Refused { reason }
}

/// Stores one pushed record, or says why not. Every check comes before the first write, so a
/// refusal leaves the transaction as it was.
#[allow(clippy::too_many_arguments)]
fn accept_push(
    tx: &mut dyn HubTransaction,
    reference: &ReferenceData,
    scope: &Scope,
    author: ChangeAuthor,
    who: &Principal,
    entry: &PushEntry,
    limits: &HubLimits,
) -> Result<PushOutcome> {
    if tx.is_erased(entry.id)? {
        return Ok(PushOutcome::Erased);
    }
    let existing = tx.record(entry.id, true)?;
    // The hub's copy must be the sender's to change: its area as the hub holds it now. A user
    // who lost the area may still hold changes made before: if they are the sender's own work
    // on the hub's copy, they are kept for a supervisor's review, never dropped; anything else
    // is refused as out of scope.
    let lost_area = existing
        .as_ref()
        .is_some_and(|s| !s.area.as_ref().is_some_and(|a| scope.covers(a)));
    let refuse = |reason| {
        Ok(refused(if lost_area {
            Refusal::OutOfScope
        } else {
            reason
        }))
    };
    let mut document = match &existing {
        Some(stored) => {
            if !scope.kinds().contains(&stored.kind) {
                return Ok(refused(Refusal::KindNotAllowed));
            }
            // A stored document that does not read (one an older version let in) refuses the
            // push of that record, never the whole request.
            match doc::load(entry.id, &stored.document) {
                Ok(document) => document,
                Err(Error::OverLimit { limit, .. }) => return refuse(Refusal::OverLimit { limit }),
                Err(Error::DamagedDocument { .. }) => return refuse(Refusal::Damaged),
                Err(e) => return Err(e),
            }
        }
        None => Automerge::new(),
    };
    let before = document.get_heads();
    match store::decode_into(&mut document, entry.id, &entry.changes) {
        Ok(()) => {}
        Err(Error::OverLimit { limit, .. }) => return refuse(Refusal::OverLimit { limit }),
        Err(_) => return refuse(Refusal::Damaged),
    }
    if !document.get_missing_deps(&[]).is_empty() {
        return refuse(Refusal::MissingHistory);
    }
    let new_changes = document.get_changes(&before);
    let mut clock_skewed = false;
    let now = Utc::now().timestamp_millis();
    for change in &new_changes {
        if doc::device_of_actor(change.actor_id()) != Some(who.device) {
            return refuse(Refusal::ForeignChanges);
        }
        let t = change.timestamp();
        clock_skewed |= t > now + limits.clock_skew_ms || t < EARLIEST_PLAUSIBLE_MS;
    }
    // The author a change names is who the record's history shows: it must be the sender.
    let wrong_author = new_changes
        .iter()
        .any(|change| doc::author_of(change) != Some(author));
    if lost_area {
        if new_changes.is_empty() {
            return refuse(Refusal::OutOfScope);
        }
        if wrong_author {
            return refuse(Refusal::WrongAuthor);
        }
        tx.quarantine(&Quarantined {
            entry: 0,
            record: entry.id,
            device: who.device,
            user: who.user,
            changes: entry.changes.clone(),
            received_ms: now,
        })?;
        return Ok(PushOutcome::Quarantined);
    }
    if !new_changes.is_empty() {
        let Some(kind) = doc::kind_of(&document) else {
            return Ok(refused(Refusal::Invalid));
        };
        if existing.as_ref().is_some_and(|s| s.kind != kind) {
            return Ok(refused(Refusal::WrongKind));
        }
        if !scope.kinds().contains(&kind) {
            return Ok(refused(Refusal::KindNotAllowed));
        }
        let Ok(record) = TypedRecord::read(kind, entry.id, &document) else {
            return Ok(refused(Refusal::Invalid));
        };
        if wrong_author {
            return Ok(refused(Refusal::WrongAuthor));
        }
        // A record may not be moved out of the sender's areas either.
        let Some(area) = record.area().filter(|a| scope.covers(a)) else {
            return Ok(refused(Refusal::OutOfScope));
        };
        let area = area.clone();
        // The sender's own steps: from the version its changes were made on to the version they
        // make. (The merge with what the hub holds may differ: concurrent edits keep both values,
        // each checked when it arrived, and a conflict shows them.)
        let (base, theirs) = match sender_versions(&document, &new_changes, kind, entry.id) {
            Ok(versions) => versions,
            Err(Error::OverLimit { limit, .. }) => return refuse(Refusal::OverLimit { limit }),
            Err(_) => return Ok(refused(Refusal::Invalid)),
        };
        if let Err(reason) = check_content(reference, who, base.as_ref(), &theirs, &record) {
            return Ok(refused(reason));
        }
        if let Err(limit) =
            bounds::check_size(document.save_nocompress().len(), &DocumentLimits::STANDARD)
        {
            return Ok(refused(Refusal::OverLimit { limit }));
        }
        tx.save(RecordWrite {
            id: entry.id,
            kind,
            key: existing.as_ref().map(|s| s.key),
            area: Some(&area),
            document: &mut document,
            before: &before,
            author,
        })?;
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

/// The record as the sender's new changes found it (none if they build on no history: a new
/// record) and as they leave it: the versions at their dependencies and at their own heads.
fn sender_versions(
    document: &Automerge,
    new_changes: &[automerge::Change],
    kind: RecordKind,
    id: Uuid,
) -> Result<(Option<TypedRecord>, TypedRecord)> {
    let new: HashSet<ChangeHash> = new_changes.iter().map(|c| c.hash()).collect();
    let depended: HashSet<ChangeHash> = new_changes
        .iter()
        .flat_map(|c| c.deps().iter().copied())
        .collect();
    let theirs: Vec<ChangeHash> = new_changes
        .iter()
        .map(|c| c.hash())
        .filter(|h| !depended.contains(h))
        .collect();
    let mut base: Vec<ChangeHash> = depended.difference(&new).copied().collect();
    base.sort();
    let before = if base.is_empty() {
        None
    } else {
        Some(TypedRecord::read_at(kind, id, document, &base)?)
    };
    Ok((before, TypedRecord::read_at(kind, id, document, &theirs)?))
}

/// The hub's checks of a pushed record's content, beyond kind, scope and authorship: `merged`
/// (as the hub would store it) passes the phone's own validation against the reference
/// versions it was captured with, and its area is a path of its country's area tree in force
/// (the version it was captured with, else the latest); every workflow step from `from` to `to`
/// (the sender's own, see `accept_push`) is allowed to the sender's role (`rights`). Every path
/// that lets a device's changes into the hub's records goes through it.
pub(crate) fn check_content(
    reference: &ReferenceData,
    who: &Principal,
    from: Option<&TypedRecord>,
    to: &TypedRecord,
    merged: &TypedRecord,
) -> std::result::Result<(), Refusal> {
    let after = merged;
    if let Err(e) = after.validate(reference) {
        let pins = crate::reference::PINS_FIELD;
        return Err(if e.field.starts_with(pins) {
            Refusal::UnknownReference
        } else {
            Refusal::BreaksValidation
        });
    }
    if let (Some(area), Some(pins)) = (after.area(), after.pins()) {
        let pin = pins.get(ReferenceType::AdministrativeAreas);
        match reference.area_tree_for(pin, &area.country) {
            Some(tree) if tree.check(area, "area").is_ok() => {}
            _ => return Err(Refusal::AreaNotInTree),
        }
    }
    rights::check(
        who.role,
        who.user,
        from.map(TypedRecord::subject),
        to.subject(),
    )
    .map_err(|_| Refusal::StepNotAllowed)
}

/// A record sent whole (asked for again by the device), if it is the device's to see.
fn whole_record(tx: &mut dyn HubTransaction, scope: &Scope, id: Uuid) -> Result<Option<PullEntry>> {
    let Some(stored) = tx.record(id, false)? else {
        return Ok(None);
    };
    if !scope.receives(stored.kind, stored.area.as_ref()) {
        return Ok(None);
    }
    let document = doc::load(id, &stored.document)?;
    Ok(Some(PullEntry {
        id,
        changes: stored.document,
        hub_heads: document.get_heads().iter().map(|h| h.0).collect(),
    }))
}

/// Records in scope that changed after the cursor, each with the changes the device lacks, up
/// to `budget` bytes. Returns them, the cursor to issue, and whether more are waiting.
fn pull(
    tx: &mut dyn HubTransaction,
    scope: &Scope,
    requester: &ActorId,
    cursor: Cursor,
    skip: &HashSet<Uuid>,
    budget: usize,
) -> Result<(Vec<PullEntry>, Cursor, bool)> {
    const BATCH: usize = 1_000;
    let high_water = tx.high_water()?;
    let changed = tx.changed(scope, cursor.after, high_water, BATCH)?;
    let mut entries = Vec::new();
    let mut size = 0usize;
    let mut last = cursor.after;
    let seen = changed.len();
    for record in changed {
        let seq = record.seq;
        if !skip.contains(&record.id)
            && let Some(entry) = lacking(tx, record, cursor.since, requester)?
        {
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
        last = seq;
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

/// What a device with `since` lacks of one record: nothing if every change after it is its
/// own; the whole document if it never had the record; else the others' changes. Only the
/// last case needs the document decoded.
fn lacking(
    tx: &mut dyn HubTransaction,
    record: ChangedRecord,
    since: i64,
    requester: &ActorId,
) -> Result<Option<PullEntry>> {
    let id = record.id;
    let requester_device = doc::device_of_actor(requester);
    let created_by_requester = record.creator.is_some() && record.creator == requester_device;
    let bytes = store::decode_stored(id, record.stored)?;
    if record.first_seq > since && !created_by_requester {
        // No heads: they are the document's own, which the device reads once it has it
        // (32 incompressible bytes a record saved on an initial sync).
        return Ok(Some(PullEntry {
            id,
            changes: bytes,
            hub_heads: Vec::new(),
        }));
    }
    let hub_heads: Vec<[u8; 32]> = store::heads_of(&record.heads).iter().map(|h| h.0).collect();
    let document = doc::load(id, &bytes)?;
    let mut changes = Vec::new();
    for entry in tx.change_log(id)?.iter().filter(|e| e.seq > since) {
        for hash in store::heads_of(&entry.changes) {
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

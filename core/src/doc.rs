//! Records ⇄ Automerge documents.
//!
//! A record is turned into JSON by serde, and the JSON is reconciled into the document: only the
//! fields that differ produce operations, so an edit touches what the user changed and nothing
//! else. Every edit is made *at the version the user read* (an isolated transaction at those
//! heads): a field that sync changed in the meantime is not overwritten, and if the user changed
//! it too, Automerge keeps both values — a conflict that `conflicts` shows and `resolve` settles.

pub use crate::codec::load;

use crate::codec::bounds::{self, DocumentLimits, device_part, isolated_base};
use crate::codec::columns::Root;
use crate::domain::attachment::{Attachment, AttachmentKind};
use crate::domain::codes::RecordKind;
use crate::domain::records::{Record, ReferenceDocument, Version};
use crate::domain::reference::{ReferenceData, ReferencePins};
use crate::domain::validation::{describe_json_error, valid_code};
use crate::error::{Error, Result, ValidationError};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, Automerge, ChangeHash, ChangeMetadata, ObjId, ObjType, PatchLog, ReadDoc, ScalarValue,
    TextEncoding, Value,
};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::HashSet;
use uuid::Uuid;

mod text_edit;

/// Who made a change: carried in every change's message, so it travels with the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ChangeAuthor {
    #[serde(rename = "u")]
    #[cfg_attr(feature = "uniffi", uniffi(name = "user_id"))]
    pub user: Uuid,
    #[serde(rename = "d")]
    #[cfg_attr(feature = "uniffi", uniffi(name = "device_id"))]
    pub device: Uuid,
}

/// One change in a record's history.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct HistoryEntry {
    /// The change's hash.
    pub change: String,
    pub author: Option<ChangeAuthor>,
    /// The device's clock when the change was made (it may be wrong; sync keeps the hub's
    /// receipt time separately).
    pub time: Option<DateTime<Utc>>,
    /// Dotted paths of the fields the change set, deleted or edited.
    pub fields: Vec<String>,
}

/// Two or more values that devices set concurrently for the same field, until it is resolved.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Conflict {
    /// The field's path from the record's root, one key per element (what resolving takes).
    pub path: Vec<String>,
    /// The path as a dotted string, for display.
    pub field: String,
    pub values: Vec<ConflictValue>,
}

impl Conflict {
    /// The path as a dotted string, for display.
    pub fn field(&self) -> String {
        self.field.clone()
    }
}

/// One of the values devices set concurrently for a field, and who set it.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ConflictValue {
    pub value: Json,
    pub author: Option<ChangeAuthor>,
    pub time: Option<DateTime<Utc>>,
    pub change: String,
}

/// Where a path stands in a record's schema.
struct Schema {
    text: &'static [&'static str],
    collections: &'static [&'static str],
    derived: &'static [&'static str],
    whole: &'static [&'static str],
}

impl Schema {
    fn of<R: Record>() -> Schema {
        Schema {
            text: R::TEXT_FIELDS,
            collections: R::COLLECTIONS,
            derived: R::DERIVED,
            whole: R::WHOLE_VALUES,
        }
    }

    fn is_whole(&self, path: &[&str]) -> bool {
        self.whole.iter().any(|p| Self::matches(p, path))
    }

    fn matches(pattern: &str, path: &[&str]) -> bool {
        let mut parts = pattern.split('.');
        for seg in path {
            match parts.next() {
                Some("*") => {}
                Some(p) if p == *seg => {}
                _ => return false,
            }
        }
        parts.next().is_none()
    }

    fn is_text(&self, path: &[&str]) -> bool {
        self.text.iter().any(|p| Self::matches(p, path))
    }

    fn is_collection(&self, path: &[&str]) -> bool {
        self.collections.iter().any(|p| Self::matches(p, path))
    }

    /// Whether the path lies inside a derived field (the pattern or below it).
    fn is_derived(&self, path: &[&str]) -> bool {
        self.derived
            .iter()
            .any(|p| (1..=path.len()).any(|n| Self::matches(p, &path[..n])))
    }
}

/// The actor of a store: its device id followed by 8 bytes chosen when the store was created,
/// so that a reinstalled app on the same device never reuses a (actor, sequence) pair.
pub fn actor_for(device: Uuid, store_nonce: [u8; 8]) -> ActorId {
    let mut bytes = device.as_bytes().to_vec();
    bytes.extend_from_slice(&store_nonce);
    ActorId::from(bytes)
}

/// The device an actor belongs to (the first 16 bytes), if it is a Vigie actor: a store's own
/// (`actor_for`), or one Automerge derives from it for an edit made at an older version that
/// leaves out this actor's later changes (`isolated_base`).
pub fn device_of_actor(actor: &ActorId) -> Option<Uuid> {
    Uuid::from_slice(device_part(actor.to_bytes())?).ok()
}

/// The device whose change set the value a top-level field now shows (of values in conflict,
/// the one the merge shows), if a Vigie actor's.
pub fn device_of_field(doc: &Automerge, field: &str) -> Option<Uuid> {
    match doc.get(automerge::ROOT, field) {
        Ok(Some((_, automerge::ObjId::Id(_, actor, _)))) => device_of_actor(&actor),
        _ => None,
    }
}

/// The rule a change breaks that `reaches_unseen_operations` finds.
pub const UNSEEN_OPERATIONS: &str =
    "a change deletes or overwrites values its device never received";

/// Whether one of `changes` (of `document`, in causal order, made after the versions whose
/// heads are `held_heads`) refers to an operation the
/// history its change depends on does not hold: the deletion or overwrite of a value (its
/// predecessors), or an edit inside an object or after a list element, that its device never
/// received. Automerge applies such an operation by its id whatever the change depends on: a
/// device's change built on an older copy of a case deleted the supervisor's verification
/// date, a follow-up or a merge made since, and no version the device held showed that step.
/// An app's changes never do so (Automerge writes an edit on what its document holds).
pub fn reaches_unseen_operations(
    document: &Automerge,
    changes: &[ChangeHash],
    held_heads: &[ChangeHash],
) -> bool {
    use automerge::legacy::{ElementId, Key, ObjectId, OpId};
    use std::collections::HashMap;
    // The last operation of each actor a version holds (an actor's changes follow one
    // another: one of its operations is in a version when its counter is at most this).
    type Clock = HashMap<ActorId, u64>;
    fn raise(clock: &mut Clock, actor: &ActorId, max_op: u64) {
        let last = clock.entry(actor.clone()).or_default();
        *last = (*last).max(max_op);
    }
    let mut held_heads = held_heads.to_vec();
    held_heads.sort();
    let new: HashSet<ChangeHash> = changes.iter().copied().collect();
    let mut found = Vec::with_capacity(changes.len());
    for hash in changes {
        let Some(change) = document.get_change_by_hash(hash) else {
            return true;
        };
        found.push(change);
    }
    // The operations of the new changes: one that names them names no held one.
    let new_ops: Vec<(ActorId, u64, u64)> = found
        .iter()
        .map(|c| (c.actor_id().clone(), c.start_op().get(), c.max_op()))
        .collect();
    let is_new_op = |id: &OpId| {
        new_ops
            .iter()
            .any(|(actor, start, max)| *actor == id.1 && (*start..=*max).contains(&id.0))
    };
    let mut all_held: Option<Vec<(ChangeHash, ActorId, u64)>> = None;
    let mut of_old_heads: HashMap<Vec<ChangeHash>, Clock> = HashMap::new();
    // Each new change's clock, and whether it builds on every version held (then each held
    // operation is in its history: the common case, an app's edit of the copy it last synced,
    // judged without the record's whole history).
    let mut of_new: HashMap<ChangeHash, (Clock, bool)> = HashMap::new();
    for change in &found {
        let (new_deps, mut old_deps): (Vec<ChangeHash>, Vec<ChangeHash>) =
            change.deps().iter().partition(|dep| new.contains(*dep));
        old_deps.sort();
        let mut sees_held = !held_heads.is_empty() && old_deps == held_heads;
        let mut clock = Clock::new();
        for dep in &new_deps {
            if let Some((theirs, saw)) = of_new.get(dep) {
                sees_held |= *saw;
                for (actor, max_op) in theirs {
                    raise(&mut clock, actor, *max_op);
                }
            }
        }
        if !sees_held && !old_deps.is_empty() {
            let held_clock = of_old_heads.entry(old_deps.clone()).or_insert_with(|| {
                let after: HashSet<ChangeHash> = document
                    .get_changes_meta(&old_deps)
                    .iter()
                    .map(|c| c.hash)
                    .collect();
                let all = all_held.get_or_insert_with(|| {
                    document
                        .get_changes_meta(&[])
                        .into_iter()
                        .map(|c| (c.hash, c.actor.into_owned(), c.max_op))
                        .collect()
                });
                let mut clock = Clock::new();
                for (hash, actor, max_op) in all.iter() {
                    if !after.contains(hash) {
                        raise(&mut clock, actor, *max_op);
                    }
                }
                clock
            });
            for (actor, max_op) in held_clock.iter() {
                raise(&mut clock, actor, *max_op);
            }
        }
        let Ok(expanded) = std::panic::catch_unwind(|| change.decode()) else {
            return true;
        };
        let own = change.actor_id();
        let start = change.start_op().get();
        let seen = |id: &OpId, counter: u64| {
            clock.get(&id.1).is_some_and(|last| id.0 <= *last)
                || (&id.1 == own && id.0 >= start && id.0 < counter)
                || (sees_held && !is_new_op(id))
        };
        for (counter, op) in (start..).zip(&expanded.operations) {
            let object = match &op.obj {
                ObjectId::Id(id) => Some(id),
                ObjectId::Root => None,
            };
            let element = match &op.key {
                Key::Seq(ElementId::Id(id)) => Some(id),
                _ => None,
            };
            if !object
                .into_iter()
                .chain(element)
                .chain(op.pred.iter())
                .all(|id| seen(id, counter))
            {
                return true;
            }
        }
        raise(&mut clock, own, change.max_op());
        of_new.insert(change.hash(), (clock, sees_held));
    }
    false
}

/// The rule a change breaks that `replaces_kept_objects` finds.
pub const REPLACES_KEPT_OBJECT: &str =
    "a change puts a new value in place of a list or a text the record keeps and edits in place";

/// The object a decoded change's operation names (`automerge::legacy`), in `document`.
fn op_object(document: &Automerge, obj: &automerge::legacy::ObjectId) -> Option<ObjId> {
    match obj {
        automerge::legacy::ObjectId::Root => Some(automerge::ROOT),
        automerge::legacy::ObjectId::Id(id) => document
            .import_obj(&format!("{}@{}", id.0, id.1.to_hex_string()))
            .ok(),
    }
}

/// The field (its path) where one of `changes` (of `document`, a record `R`) puts a new value
/// in place of a map or a text the version it was made on held there: a case's referrals
/// written as a new empty map, its notes as a new text or a plain string. Automerge takes such
/// a put over everything made inside the old object meanwhile, without a word: a colleague's
/// referral and note made offline were gone from every phone, and her own push was refused for
/// the referral she "removed". So is a new value put beside the one held (naming none of the
/// values the key held, or an op of nothing: a conflict that hides the colleague's work), one
/// naming the held one twice, and a deletion of the object (but of a collection's entry). An
/// app writes inside the object it holds (`reconcile_map`), and puts anew (or clears) only a
/// value kept whole (`Record::WHOLE_VALUES`: a GPS point), a conflict's resolution (over
/// several values), a field an earlier version held as text that is now a plain value, or a
/// derived field.
pub(crate) fn replaces_kept_objects(
    kind: RecordKind,
    document: &Automerge,
    changes: &[ChangeHash],
) -> Option<String> {
    use crate::domain::records::{ChildCase, Visit, Workplace};
    match kind {
        RecordKind::ChildCase => replaces_kept_objects_of::<ChildCase>(document, changes),
        RecordKind::Visit => replaces_kept_objects_of::<Visit>(document, changes),
        RecordKind::Workplace => replaces_kept_objects_of::<Workplace>(document, changes),
        RecordKind::User | RecordKind::Reference => None,
    }
}

fn replaces_kept_objects_of<R: Record>(
    document: &Automerge,
    changes: &[ChangeHash],
) -> Option<String> {
    use automerge::ObjId as ExId;
    use automerge::legacy::{Key, OpType};
    let schema = Schema::of::<R>();
    for hash in changes {
        let change = document.get_change_by_hash(hash)?;
        let Ok(expanded) = std::panic::catch_unwind(|| change.decode()) else {
            return Some(String::new());
        };
        // The version the change was made on: what its author's app held.
        let base = change.deps();
        for op in &expanded.operations {
            let Key::Map(key) = &op.key else {
                continue;
            };
            let deletes = match &op.action {
                OpType::Make(_) | OpType::Put(_) => false,
                OpType::Delete => true,
                _ => continue,
            };
            let Some(parent) = op_object(document, &op.obj) else {
                continue;
            };
            // The maps, lists and texts the key held in that version (none in an object the
            // change makes itself).
            let Ok(held) = document.get_all_at(&parent, key.as_str(), base) else {
                continue;
            };
            let held: Vec<(ObjType, ExId)> = held
                .into_iter()
                .filter_map(|(value, id)| match value {
                    automerge::Value::Object(typ) => Some((typ, id)),
                    automerge::Value::Scalar(_) => None,
                })
                .collect();
            if held.is_empty() {
                continue;
            }
            let Ok(above) = document.parents(&parent).map(|p| p.path()) else {
                continue;
            };
            let mut path: Vec<String> = above
                .into_iter()
                .map(|(_, prop)| match prop {
                    automerge::Prop::Map(k) => k,
                    automerge::Prop::Seq(i) => i.to_string(),
                })
                .collect();
            path.push(key.to_string());
            let segments: Vec<&str> = path.iter().map(String::as_str).collect();
            if schema.is_derived(&segments) || reserved_key(segments[0]) {
                continue;
            }
            // An entry of a collection is removed by deleting its key (who may is the role
            // matrix's rule); the collection itself never is.
            let entry = schema.is_collection(&segments[..segments.len() - 1]);
            // What the op names as the values it overwrites, among those the key held: two
            // or more is a conflict's resolution. A name given twice, or of an op the key did
            // not hold, counts for nothing (Automerge reads either as a plain overwrite).
            let named: HashSet<&ExId> = held
                .iter()
                .map(|(_, id)| id)
                .filter(|id| {
                    op.pred.iter().any(|pred| match id {
                        ExId::Id(counter, actor, _) => pred.0 == *counter && pred.1 == *actor,
                        ExId::Root => false,
                    })
                })
                .collect();
            for (typ, id) in &held {
                // A null too: no map a record keeps is ever cleared but a whole value (a null
                // then a new map, in one change or two, took a colleague's follow-up away).
                let kept_in_place = match typ {
                    ObjType::Text => schema.is_text(&segments),
                    _ => !schema.is_whole(&segments),
                };
                if !kept_in_place {
                    continue;
                }
                let overwritten_alone = named.contains(id) && named.len() == 1;
                // A new value beside the one held, not over it: Automerge shows one of the
                // two, and what a colleague made inside the other is hidden.
                let beside = !deletes && !named.contains(id);
                if (overwritten_alone && !(deletes && entry)) || beside {
                    return Some(path.join("."));
                }
            }
        }
    }
    None
}

/// The rule a change breaks that edits inside an entry (a referral, a follow-up) another
/// device removed meanwhile (`meets_a_concurrent_removal`).
pub const EDITS_A_REMOVED_ENTRY: &str = "edits an entry another device removed meanwhile: the change cannot reach it (give it up, then record again what is still needed)";

/// The rule a change breaks that removes an entry another device edited meanwhile.
pub const REMOVES_AN_EDITED_ENTRY: &str =
    "removes an entry another device edited meanwhile: look at it again before removing it";

/// Where one of `changes` (of `document`) meets a removal made without it, against `held`
/// (the version the receiver held before them): an edit inside an entry its author held,
/// which a change the author did not see removed (a supervisor's removal of a follow-up a
/// monitor was completing offline); or the removal of an entry changes its author did not
/// see edited. Automerge keeps the removal and drops what was made inside the entry, without
/// a word: refused instead, the field named, so that the person whose work it is sees it.
/// The path of the entry, and the rule.
pub(crate) fn meets_a_concurrent_removal(
    document: &Automerge,
    changes: &[ChangeHash],
    held: &[ChangeHash],
) -> Option<(String, &'static str)> {
    use automerge::legacy::{Key, ObjectId, OpType};
    // The object's path at `heads`, if it is in view there (not removed, not a conflict's
    // hidden value, not yet made).
    let in_view = |obj: &ObjId, heads: &[ChangeHash]| -> Option<String> {
        let path = document.parents_at(obj, heads).ok()?.visible_path()?;
        let names: Vec<String> = path
            .into_iter()
            .map(|(_, prop)| match prop {
                automerge::Prop::Map(k) => k,
                automerge::Prop::Seq(i) => i.to_string(),
            })
            .collect();
        Some(names.join("."))
    };
    for hash in changes {
        let Some(change) = document.get_change_by_hash(hash) else {
            continue;
        };
        let Ok(expanded) = std::panic::catch_unwind(|| change.decode()) else {
            continue;
        };
        // The version the change was made on, and that with what the receiver held: what
        // the second holds of an entry beyond the first, other devices made without the
        // author seeing it.
        let base: Vec<ChangeHash> = change.deps().to_vec();
        let mut both = base.clone();
        both.extend_from_slice(held);
        both.sort_unstable();
        both.dedup();
        let mut objects = HashSet::new();
        for op in &expanded.operations {
            if let ObjectId::Id(id) = &op.obj
                && objects.insert((id.0, id.1.clone()))
                && let Some(obj) = op_object(document, &op.obj)
                && let Some(path) = in_view(&obj, &base)
                && in_view(&obj, &both).is_none()
            {
                return Some((path, EDITS_A_REMOVED_ENTRY));
            }
            let (OpType::Delete, Key::Map(key)) = (&op.action, &op.key) else {
                continue;
            };
            let Some(parent) = op_object(document, &op.obj) else {
                continue;
            };
            let Ok(removed) = document.get_all_at(&parent, key.as_str(), &base) else {
                continue;
            };
            for (value, id) in removed {
                let automerge::Value::Object(typ) = value else {
                    continue;
                };
                // Removed by the others too: nothing of theirs is lost.
                let Some(path) = in_view(&id, &both) else {
                    continue;
                };
                let seen = object_json(document, &id, typ, Some(&base), 0);
                if object_json(document, &id, typ, Some(&both), 0) != seen {
                    return Some((path, REMOVES_AN_EDITED_ENTRY));
                }
            }
        }
    }
    None
}

pub use crate::domain::limits::DEVICE_SHARE_OF_CHANGES;

/// Actors one device may write a record's changes under: its store's, one for each time the
/// app was installed, and one for each of its changes a supervisor accepted in review. Those
/// Automerge derives from one of them for an edit made at an older version (an app saving a
/// form from the version it read: a new one at each save) count as the one they come from.
/// More are branches made to flood a record with conflicting values.
pub const MAX_ACTORS_PER_DEVICE: usize = 64;

/// The rule a record breaks when a device's changes pass its share (`devices_within_share`):
/// said to the phone's user at the save that would, and in the hub's refusal of a push.
pub const DEVICE_SHARE_RULE: &str = "holds as many changes of this device, or as much text typed and rewritten, as one device may make of a record's: no more can be made to it from this device (another device, or the console, still can)";

/// Whether each of `devices` (those that made the changes being judged, which the caller has
/// read already) keeps, in the record's whole history, within its share of the changes
/// (`DEVICE_SHARE_OF_CHANGES`), of their operations (`DocumentLimits::device_operations_share`)
/// and of actors (`MAX_ACTORS_PER_DEVICE`). The one rule of devices' pushes at the hub, of a
/// phone's own saves, and of what a phone takes from a peer or a bundle.
pub(crate) fn devices_within_share(
    document: &Automerge,
    devices: &HashSet<Uuid>,
    limits: &DocumentLimits,
) -> bool {
    if devices.is_empty() {
        return true;
    }
    let share = limits.max_changes / DEVICE_SHARE_OF_CHANGES;
    let operations_share = limits.device_operations_share();
    let mut made: std::collections::HashMap<Uuid, (u64, u64, HashSet<&[u8]>)> =
        std::collections::HashMap::new();
    let history = document.get_changes_meta(&[]);
    for change in &history {
        if let Some(device) = device_of_actor(&change.actor).filter(|d| devices.contains(d)) {
            let (changes, operations, actors) = made.entry(device).or_default();
            *changes += 1;
            *operations = operations.saturating_add(change_operations(change));
            actors.insert(isolated_base(change.actor.to_bytes()));
        }
    }
    made.values().all(|(changes, operations, actors)| {
        *changes <= share
            && *operations <= operations_share
            && actors.len() <= MAX_ACTORS_PER_DEVICE
    })
}

/// The operations a change holds (its deletions among them): numbered from its first to its
/// last, none for an empty one.
fn change_operations(change: &automerge::ChangeMetadata<'_>) -> u64 {
    change
        .max_op
        .saturating_add(1)
        .saturating_sub(change.start_op)
}

/// The root key naming the record kind. `$` keeps it apart from the records' own fields.
pub(crate) const KIND_KEY: &str = "$kind";

/// The kind a document says it holds. `None` if it names none, or if it holds more than one
/// `$kind` (a record's kind is set once, when it is created: two values mean the history of
/// another record was merged in).
pub fn kind_of(doc: &Automerge) -> Option<RecordKind> {
    match kinds(doc).as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// Every kind the document's `$kind` key holds (more than one only after merging another
/// record's history).
pub fn kinds(doc: &Automerge) -> Vec<RecordKind> {
    kinds_in(doc.get_all(automerge::ROOT, KIND_KEY).unwrap_or_default())
}

fn kinds_at(doc: &Automerge, heads: &[ChangeHash]) -> Vec<RecordKind> {
    kinds_in(
        doc.get_all_at(automerge::ROOT, KIND_KEY, heads)
            .unwrap_or_default(),
    )
}

fn kinds_in(values: Vec<(Value<'_>, ObjId)>) -> Vec<RecordKind> {
    values
        .into_iter()
        .filter_map(|(value, _)| match value {
            Value::Scalar(s) => match s.as_ref() {
                ScalarValue::Str(k) => RecordKind::from_str_opt(k),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn now_millis() -> i64 {
    let now = Utc::now().timestamp_millis();
    #[cfg(feature = "test-hooks")]
    let now = now + CLOCK_SHIFT_MS.with(std::cell::Cell::get);
    now
}

#[cfg(feature = "test-hooks")]
thread_local! {
    static CLOCK_SHIFT_MS: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

/// Test hook (feature `test-hooks` only, never in a release): changes made on this thread are
/// stamped `ms` later than the clock says, as on a phone whose user set its date (the hub must
/// not take a device's time for its own).
#[cfg(feature = "test-hooks")]
pub fn debug_shift_clock(ms: i64) {
    CLOCK_SHIFT_MS.with(|shift| shift.set(ms));
}

fn commit_options(author: &ChangeAuthor) -> CommitOptions {
    let message = serde_json::to_string(author).expect("author serializes");
    CommitOptions::default()
        .with_message(message)
        .with_time(now_millis())
}

fn record_json<R: Record>(record: &R) -> Result<Map<String, Json>> {
    match serde_json::to_value(record) {
        Ok(json @ Json::Object(_)) => {
            if let Some(field) = bounds::long_text(&json, &DocumentLimits::STANDARD) {
                return Err(ValidationError::new(
                    field,
                    format!(
                        "must not be longer than {} characters",
                        DocumentLimits::STANDARD.max_text_chars
                    ),
                )
                .into());
            }
            match json {
                Json::Object(map) => Ok(map),
                _ => unreachable!("matched an object"),
            }
        }
        Ok(_) => unreachable!("records serialize to JSON objects"),
        Err(e) => Err(Error::DamagedDocument {
            id: record.id(),
            reason: format!("record does not serialize: {}", describe_json_error(&e)),
        }),
    }
}

/// An edit made at an older version that this device saved over since (an app saving a form
/// again from the version it read, with saves of its own between): rebased on those saves,
/// what the form changed since the version it read over what the device saved since.
/// Written at the older version, each such save stood beside the others, and the user's own
/// values showed as a conflict (a branch per save, which an altered app could pile up by the
/// thousand). Another device's change since stays beside it, merged as any concurrent edit
/// (a real conflict kept). `None` when the device saved nothing over that version, or saved
/// on another's change since, or when the version is the latest.
pub(crate) fn rebased_own_edit<R: Record>(
    doc: &Automerge,
    record: &R,
    device: Uuid,
) -> Result<Option<R>> {
    let base = record.version().heads();
    let mut latest = doc.get_heads();
    latest.sort();
    let mut asked = base.to_vec();
    asked.sort();
    if base.is_empty()
        || asked == latest
        || base.iter().any(|h| doc.get_change_by_hash(h).is_none())
    {
        return Ok(None);
    }
    let since = doc.get_changes_meta(base);
    let own: Vec<&ChangeMetadata<'_>> = since
        .iter()
        .filter(|c| device_of_actor(&c.actor) == Some(device))
        .collect();
    let own_hashes: HashSet<ChangeHash> = own.iter().map(|c| c.hash).collect();
    let since_hashes: HashSet<ChangeHash> = since.iter().map(|c| c.hash).collect();
    // Saves of this device that built on another's change made since are no version of its
    // own saves alone: the edit is merged as it stands.
    if own.is_empty()
        || own.iter().any(|c| {
            c.deps
                .iter()
                .any(|d| since_hashes.contains(d) && !own_hashes.contains(d))
        })
    {
        return Ok(None);
    }
    // The version of the one read and this device's saves since: another device's change
    // since stays beside the edit (a real conflict, if both set a field), the device's own
    // saves under it.
    let depended: HashSet<ChangeHash> = own.iter().flat_map(|c| c.deps.iter().copied()).collect();
    let mut at: Vec<ChangeHash> = own
        .iter()
        .map(|c| c.hash)
        .chain(base.iter().copied())
        .filter(|h| !depended.contains(h))
        .collect();
    at.sort();
    at.dedup();
    let id = record.id();
    let json = |r: &R| {
        serde_json::to_value(r).map_err(|e| Error::DamagedDocument {
            id,
            reason: format!("record does not serialize: {}", describe_json_error(&e)),
        })
    };
    let read: R = read_record_at(doc, id, base)?;
    let now: R = match at == latest {
        true => read_record(doc, id)?,
        false => read_record_at(doc, id, &at)?,
    };
    let (read, mine, now_json) = (json(&read)?, json(record)?, json(&now)?);
    let merged = three_way(Some(&read), Some(&mine), Some(&now_json)).unwrap_or(mine);
    let mut rebased: R = serde_json::from_value(merged).map_err(|e| Error::DamagedDocument {
        id,
        reason: format!(
            "fields do not match the record: {}",
            describe_json_error(&e)
        ),
    })?;
    rebased.set_id(id);
    rebased.set_version(now.version().clone());
    Ok(Some(rebased))
}

/// `mine` over `theirs`, both made from `base` (`None`: absent): where `mine` left a value as
/// `base` had it, `theirs`'s stands; maps are merged key by key; else `mine`'s.
fn three_way(base: Option<&Json>, mine: Option<&Json>, theirs: Option<&Json>) -> Option<Json> {
    if mine == base {
        return theirs.cloned();
    }
    if theirs == base {
        return mine.cloned();
    }
    match (base, mine, theirs) {
        (Some(Json::Object(b)), Some(Json::Object(m)), Some(Json::Object(t))) => {
            let keys: std::collections::BTreeSet<&String> =
                b.keys().chain(m.keys()).chain(t.keys()).collect();
            let merged = keys
                .into_iter()
                .filter_map(|key| {
                    three_way(b.get(key), m.get(key), t.get(key)).map(|v| (key.clone(), v))
                })
                .collect();
            Some(Json::Object(merged))
        }
        _ => mine.cloned(),
    }
}

/// Writes `record` into `doc` as an edit made at the record's version (its heads when it was
/// read; empty for a new record). Returns the new change, or `None` if nothing differed.
pub fn write_record<R: Record>(
    doc: &mut Automerge,
    record: &R,
    author: &ChangeAuthor,
) -> Result<Option<ChangeHash>> {
    let base: Vec<ChangeHash> = if record.version().is_empty() {
        doc.get_heads()
    } else {
        record.version().heads().to_vec()
    };
    if base.iter().any(|h| doc.get_change_by_hash(h).is_none()) {
        return Err(Error::UnknownVersion { id: record.id() });
    }
    let json = record_json(record)?;
    let schema = Schema::of::<R>();
    // At the document's own heads (the record read as it is now, the usual case), a plain
    // transaction: one at given heads filters every operation by its clock, and writing a long
    // text there took minutes (4,000 characters rewritten: 3.6 s, against 17 ms).
    let mut latest = doc.get_heads();
    latest.sort();
    let mut asked = base.clone();
    asked.sort();
    let mut tx = if asked == latest {
        doc.transaction()
    } else {
        doc.transaction_at(PatchLog::null(), &base)
            .map_err(|_| Error::UnknownVersion { id: record.id() })?
    };
    let result = (|| -> Result<()> {
        put_scalar_if_changed(
            &mut tx,
            &automerge::ROOT,
            KIND_KEY,
            R::KIND.as_str().into(),
            false,
        )?;
        reconcile_map(&mut tx, &automerge::ROOT, &json, &mut Vec::new(), &schema)
    })();
    match result {
        Err(e) => {
            tx.rollback();
            Err(e)
        }
        Ok(()) if tx.pending_ops() == 0 => {
            tx.rollback();
            Ok(None)
        }
        Ok(()) => Ok(tx.commit_with(commit_options(author)).0),
    }
}

/// Puts a scalar unless the field already holds it. A derived field is also put when it holds
/// concurrent values: it is recomputed by every write, so the newest computation settles it.
/// Whether `obj[key]` is Automerge text reading as `value`.
fn holds_text<T: Transactable>(tx: &T, obj: &ObjId, key: &str, value: &str) -> Result<bool> {
    Ok(match tx.get(obj, key)? {
        Some((Value::Object(ObjType::Text), id)) => tx.text(&id)? == value,
        _ => false,
    })
}

fn put_scalar_if_changed<T: Transactable>(
    tx: &mut T,
    obj: &ObjId,
    key: &str,
    value: ScalarValue,
    derived: bool,
) -> Result<()> {
    if let Some((Value::Scalar(current), _)) = tx.get(obj, key)?
        && *current == value
        && (!derived || tx.get_all(obj, key)?.len() < 2)
    {
        return Ok(());
    }
    tx.put(obj, key, value)?;
    Ok(())
}

fn json_scalar(value: &Json) -> ScalarValue {
    match value {
        Json::Null => ScalarValue::Null,
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                ScalarValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                ScalarValue::Uint(u)
            } else {
                ScalarValue::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => ScalarValue::Str(s.as_str().into()),
        Json::Array(_) | Json::Object(_) => unreachable!("containers are not scalars"),
    }
}

/// Writes a text field's new value as the replacements that make it from `old`
/// (`text_edit::hunks`), from the last to the first so that each position still holds.
fn update_text<T: Transactable>(tx: &mut T, id: &ObjId, old: &str, new: &str) -> Result<()> {
    let width = match tx.text_encoding() {
        TextEncoding::UnicodeCodePoint => |_: char| 1,
        TextEncoding::Utf8CodeUnit => char::len_utf8,
        TextEncoding::Utf16CodeUnit => char::len_utf16,
        // Positions counted in graphemes: Automerge's own diff, which counts them so.
        _ => {
            tx.update_text(id, new)?;
            return Ok(());
        }
    };
    let old: Vec<char> = old.chars().collect();
    let new: Vec<char> = new.chars().collect();
    // Where each character of the old text starts, in the document's units.
    let mut starts = Vec::with_capacity(old.len() + 1);
    let mut at = 0;
    for c in &old {
        starts.push(at);
        at += width(*c);
    }
    starts.push(at);
    for hunk in text_edit::hunks(&old, &new).iter().rev() {
        let start = starts[hunk.start];
        let deleted = starts[hunk.start + hunk.deleted] - start;
        tx.splice_text(id, start, deleted as isize, &hunk.inserted)?;
    }
    Ok(())
}

fn reconcile_map<T: Transactable>(
    tx: &mut T,
    obj: &ObjId,
    json: &Map<String, Json>,
    path: &mut Vec<String>,
    schema: &Schema,
) -> Result<()> {
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    if schema.is_collection(&segments) {
        let stale: Vec<String> = tx.keys(obj).filter(|k| !json.contains_key(k)).collect();
        for key in stale {
            tx.delete(obj, key.as_str())?;
        }
    }
    for (key, value) in json {
        path.push(key.clone());
        let segments: Vec<&str> = path.iter().map(String::as_str).collect();
        match value {
            // A value cleared is written as a null, not deleted: Automerge keeps a put made
            // concurrently with a deletion and drops the deletion without a word (a date of
            // birth cleared for an estimated age on one phone, corrected on another, kept the
            // correction beside the estimate, no conflict shown); two puts stand side by side.
            Json::Null => {
                if tx.get(obj, key.as_str())?.is_some() {
                    put_scalar_if_changed(
                        tx,
                        obj,
                        key,
                        ScalarValue::Null,
                        schema.is_derived(&segments),
                    )?;
                }
            }
            // One value (a GPS point): put whole when it changes, so that a change beside
            // another, or beside a clearing, stands as a conflict. Corrected field by field
            // inside the point, a correction was lost without a word to a clearing of the
            // point, and two corrections mixed one's latitude with the other's longitude.
            Json::Object(map) if schema.is_whole(&segments) => {
                // Compared without the keys that hold nothing (a null an earlier write left).
                let held = match tx.get(obj, key.as_str())? {
                    Some((Value::Object(ObjType::Map), id)) => {
                        match hydrated_json(&tx.hydrate(&id, None)?) {
                            Json::Object(held) => Some(without_nulls(&held)),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                if held.as_ref() != Some(&without_nulls(map)) {
                    let child = tx.put_object(obj, key.as_str(), ObjType::Map)?;
                    reconcile_map(tx, &child, map, path, schema)?;
                }
            }
            Json::Object(map) => {
                let child = match tx.get(obj, key.as_str())? {
                    Some((Value::Object(ObjType::Map), id)) => id,
                    _ => tx.put_object(obj, key.as_str(), ObjType::Map)?,
                };
                reconcile_map(tx, &child, map, path, schema)?;
            }
            Json::String(s) if schema.is_text(&segments) => match tx.get(obj, key.as_str())? {
                Some((Value::Object(ObjType::Text), id)) => {
                    let old = tx.text(&id)?;
                    if old != *s {
                        update_text(tx, &id, &old, s)?;
                    }
                }
                _ => {
                    let id = tx.put_object(obj, key.as_str(), ObjType::Text)?;
                    tx.splice_text(&id, 0, 0, s)?;
                }
            },
            // Held as text by an earlier version (a field since made a plain value): kept as it
            // is while unchanged, so that no write replaces it without a change of value.
            Json::String(s) if holds_text(tx, obj, key, s)? => {}
            Json::Array(_) => {
                // Records model collections as maps; a list here is a programming error.
                return Err(Error::DamagedDocument {
                    id: Uuid::nil(),
                    reason: format!("field {} is a list; records hold maps", path.join(".")),
                });
            }
            scalar => put_scalar_if_changed(
                tx,
                obj,
                key,
                json_scalar(scalar),
                schema.is_derived(&segments),
            )?,
        }
        path.pop();
    }
    Ok(())
}

/// A map of scalars as a document holds it once written: its keys without a value left out.
fn without_nulls(map: &Map<String, Json>) -> Json {
    Json::Object(
        map.iter()
            .filter(|(_, value)| !value.is_null())
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
    )
}

fn scalar_json(s: &ScalarValue) -> Json {
    match s {
        ScalarValue::Str(s) => Json::String(s.to_string()),
        ScalarValue::Int(i) => Json::from(*i),
        ScalarValue::Uint(u) => Json::from(*u),
        ScalarValue::F64(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        ScalarValue::Boolean(b) => Json::Bool(*b),
        ScalarValue::Timestamp(t) => Json::from(*t),
        ScalarValue::Counter(c) => Json::from(i64::from(c)),
        ScalarValue::Null | ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } => Json::Null,
    }
}

fn hydrated_json(value: &automerge::hydrate::Value) -> Json {
    use automerge::hydrate::Value as H;
    match value {
        H::Scalar(s) => scalar_json(s),
        H::Text(t) => Json::String(t.to_string()),
        H::Map(m) => Json::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), hydrated_json(&v.value)))
                .collect(),
        ),
        H::List(l) => Json::Array(l.iter().map(|v| hydrated_json(&v.value)).collect()),
    }
}

/// The document (at `heads`, or now) as JSON, taking the winning value of each conflict.
///
/// Read in one pass over each object's visible values, as JSON directly: going through
/// Automerge's own tree (`hydrate`) took twice as long, and reading records is most of what
/// merging received documents costs after loading them. The depth is bounded when a document
/// is loaded (`codec::load`); deeper objects, which no loaded document holds, read as null.
pub fn to_json(doc: &Automerge, heads: Option<&[ChangeHash]>) -> Json {
    object_json(doc, &automerge::ROOT, ObjType::Map, heads, 0)
}

fn object_json(
    doc: &Automerge,
    obj: &ObjId,
    ty: ObjType,
    heads: Option<&[ChangeHash]>,
    depth: usize,
) -> Json {
    if depth > DocumentLimits::STANDARD.max_depth {
        return Json::Null;
    }
    let value = |value: &automerge::ValueRef<'_>, id: &dyn Fn() -> ObjId| match value {
        automerge::ValueRef::Object(ty) => object_json(doc, &id(), *ty, heads, depth + 1),
        automerge::ValueRef::Scalar(s) => scalar_ref_json(s),
    };
    match ty {
        ObjType::Map | ObjType::Table => {
            let items = match heads {
                Some(h) => doc.map_range_at(obj, .., h),
                None => doc.map_range(obj, ..),
            };
            Json::Object(
                items
                    .map(|item| (item.key.to_string(), value(&item.value, &|| item.id())))
                    .collect(),
            )
        }
        ObjType::List => {
            let items = match heads {
                Some(h) => doc.list_range_at(obj, .., h),
                None => doc.list_range(obj, ..),
            };
            Json::Array(
                items
                    .map(|item| value(&item.value, &|| item.id()))
                    .collect(),
            )
        }
        ObjType::Text => Json::String(
            match heads {
                Some(h) => doc.text_at(obj, h),
                None => doc.text(obj),
            }
            .unwrap_or_default(),
        ),
    }
}

/// A scalar as `to_json` gives it.
fn scalar_ref_json(s: &automerge::ScalarValueRef<'_>) -> Json {
    scalar_json(&ScalarValue::from(s))
}

/// The heads of the document's history without the changes of `actor` numbered `seq` or more,
/// and without any change that depends on one of those.
pub(crate) fn heads_without(document: &Automerge, actor: &ActorId, seq: u64) -> Vec<ChangeHash> {
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

/// Reads the record a document holds, at its current heads.
pub fn read_record<R: Record>(doc: &Automerge, id: Uuid) -> Result<R> {
    read_record_at_heads(doc, id, None)
}

/// Reads the record a stored document holds (`codec::load_stored`, then `read_record`).
pub fn read_stored<R: Record>(id: Uuid, stored: Vec<u8>) -> Result<R> {
    read_record(&crate::codec::load_stored(id, stored)?, id)
}

/// Adds to `data` every version of the reference documents `ids`, read through `stored` (a
/// document's stored bytes by id, `None` if it is not there). A document that does not read is
/// left out rather than failing the caller: the data it would add is not in force, and records
/// that name its versions say so when validated. A version cut into parts is in force once
/// every part is here (the others are read by id: a new part completes a version whose first
/// parts were read before). Only the latest version of an area tree keeps its outlines (the
/// map draws it; records are checked against codes). A version `data` knows is not read again:
/// versions never change.
pub fn add_published(
    data: &mut ReferenceData,
    ids: &[Uuid],
    stored: &mut dyn FnMut(Uuid) -> Result<Option<Vec<u8>>>,
) -> Result<()> {
    use crate::domain::codes::ReferenceType;
    use crate::domain::reference::Published;
    use std::collections::BTreeMap;
    // Parts are read once every document has been seen, one version at a time, so that only
    // one version's text is held at once.
    let mut split: BTreeMap<(ReferenceType, String, u32), u32> = BTreeMap::new();
    for &id in ids {
        let Some(bytes) = stored(id)? else {
            continue;
        };
        let Ok(document) = crate::codec::load_stored(id, bytes) else {
            continue;
        };
        let Ok(record) = read_record::<ReferenceDocument>(&document, id) else {
            continue;
        };
        drop(document);
        let known = data.versions(record.reference_type, &record.key);
        for (version, published) in &record.versions {
            if known.contains(version) {
                continue;
            }
            if published.is_whole() {
                if let Some(content) = published.content() {
                    data.add_published_content(
                        record.reference_type,
                        &record.key,
                        *version,
                        content,
                    );
                }
            } else {
                split.insert(
                    (record.reference_type, record.key.clone(), *version),
                    published.parts,
                );
            }
        }
    }
    for ((ty, key, version), parts) in split {
        let mut read = Vec::new();
        for part in 1..=parts {
            let id = ReferenceDocument::id_for_version(ty, &key, version, part);
            let published: Option<Published> = stored(id)?
                .and_then(|bytes| read_stored::<ReferenceDocument>(id, bytes).ok())
                .filter(|r| r.reference_type == ty && r.key == key)
                .and_then(|mut r| r.versions.remove(&version));
            match published {
                Some(published) => read.push(published),
                None => break,
            }
        }
        if let Some(content) = Published::assemble(&read) {
            drop(read);
            data.add_published_content(ty, &key, version, content);
        }
    }
    data.drop_old_outlines();
    Ok(())
}

/// Reads the record a document held at `heads` (an earlier version). The state at those heads
/// is checked against the bounds first, without recursion: a document is checked as it is now
/// when it is loaded, not as it was.
pub fn read_record_at<R: Record>(doc: &Automerge, id: Uuid, heads: &[ChangeHash]) -> Result<R> {
    bounds::check_state(doc, Some(heads), &DocumentLimits::STANDARD)
        .map_err(|limit| Error::OverLimit { id, limit })?;
    read_record_at_heads(doc, id, Some(heads))
}

fn read_record_at_heads<R: Record>(
    doc: &Automerge,
    id: Uuid,
    heads: Option<&[ChangeHash]>,
) -> Result<R> {
    let kinds = match heads {
        None => kinds(doc),
        Some(h) => kinds_at(doc, h),
    };
    let actual = match kinds.as_slice() {
        [one] => *one,
        _ => {
            return Err(Error::DamagedDocument {
                id,
                reason: "the document names no record kind".into(),
            });
        }
    };
    if actual != R::KIND {
        return Err(Error::WrongKind {
            id,
            expected: R::KIND,
            actual,
        });
    }
    record_from_json(
        to_json(doc, heads),
        id,
        heads.map_or_else(|| doc.get_heads(), <[_]>::to_vec),
    )
}

/// The record a document's JSON (`to_json`) holds, the document being at `heads`. Its kind is
/// the caller's to check (`kinds`).
pub(crate) fn record_from_json<R: Record>(
    mut json: Json,
    id: Uuid,
    heads: Vec<ChangeHash>,
) -> Result<R> {
    if let Json::Object(map) = &mut json {
        map.retain(|key, _| !reserved_key(key));
    }
    let mut record: R = serde_json::from_value(json).map_err(|e| Error::DamagedDocument {
        id,
        reason: format!(
            "fields do not match the record: {}",
            describe_json_error(&e)
        ),
    })?;
    record.set_id(id);
    record.set_version(Version(heads));
    Ok(record)
}

/// The record a document's values hold, read straight from them, as `record_from_json` reads
/// it from their JSON; `None` where that reader leaves them to JSON (`codec::columns::Root`).
/// Its kind is the caller's to check (`kind_of_values`).
pub(crate) fn record_from_values<R: Record>(
    root: &Root,
    id: Uuid,
    heads: Vec<ChangeHash>,
) -> Option<R> {
    let mut record: R = root.read(&reserved_key)?;
    record.set_id(id);
    record.set_version(Version(heads));
    Some(record)
}

/// The kind a document's values name, if they name one.
pub(crate) fn kind_of_values(root: &Root) -> Option<RecordKind> {
    RecordKind::from_str_opt(root.string(KIND_KEY)?)
}

/// Whether a document (at `heads`) holds a field, at any depth, that its record does not:
/// `record` is the document read as its kind and written back as JSON, so a key the kind does
/// not define is in the document and not in `record`. Such a field is read by no rule and
/// shown by no screen, yet it would travel to every device in scope (a hostile app's payload,
/// any size within the bounds): the hub takes no document that holds one.
pub fn holds_unknown_fields(doc: &Automerge, heads: Option<&[ChangeHash]>, record: &Json) -> bool {
    fn beyond(doc: &Json, record: &Json, root: bool) -> bool {
        match (doc, record) {
            (Json::Object(held), Json::Object(known)) => held.iter().any(|(key, value)| {
                !(root && reserved_key(key))
                    && match known.get(key) {
                        Some(known) => beyond(value, known, false),
                        // A key that holds nothing (left by a writer that cleared a value, or
                        // an empty map a record leaves out when it writes, as its pins).
                        None => match value {
                            Json::Null => false,
                            Json::Object(map) => !map.is_empty(),
                            Json::Array(list) => !list.is_empty(),
                            _ => true,
                        },
                    }
            }),
            (Json::Array(held), Json::Array(known)) => {
                held.len() > known.len() || held.iter().zip(known).any(|(h, k)| beyond(h, k, false))
            }
            _ => false,
        }
    }
    beyond(&to_json(doc, heads), record, true)
}

/// Whether a root key is the document's own rather than a field of its record: its kind, and
/// its attachment manifest.
fn reserved_key(key: &str) -> bool {
    key == KIND_KEY || key.starts_with(ATTACHMENT_PREFIX)
}

/// The prefix of the root keys holding a record's attachment manifest: one key per attachment,
/// `$attachment:<id>`, holding its entry (a map of scalars). The manifest is a map keyed by
/// attachment id at the document's root rather than under one shared key: a container two
/// devices create concurrently (the first attachment of a record, on each) would be two
/// objects under one key, and Automerge shows only one of them; root keys merge one by one.
/// `$` keeps them apart from the record's own fields: record writes reconcile the fields and
/// never touch them, so an app that updates a record without knowing its attachments keeps
/// them.
pub const ATTACHMENT_PREFIX: &str = "$attachment:";

fn attachment_key(id: Uuid) -> String {
    format!("{ATTACHMENT_PREFIX}{id}")
}

/// The attachment manifest of a record: every entry that reads (the winning value of each
/// field), in id order. An entry missing a field or holding a wrong value is left out: the hub
/// refuses such entries, so only a damaged document holds one.
pub fn attachments(doc: &Automerge) -> Vec<Attachment> {
    manifest(doc, None)
}

/// `attachments` as the document was at `heads`.
pub fn attachments_at(doc: &Automerge, heads: &[ChangeHash]) -> Vec<Attachment> {
    manifest(doc, Some(heads))
}

fn manifest(doc: &Automerge, heads: Option<&[ChangeHash]>) -> Vec<Attachment> {
    let keys: Vec<String> = match heads {
        Some(heads) => doc.keys_at(automerge::ROOT, heads).collect(),
        None => doc.keys(automerge::ROOT).collect(),
    };
    let mut entries: Vec<Attachment> = keys
        .iter()
        .filter_map(|key| manifest_entry(doc, key, heads)?.ok())
        .collect();
    entries.sort_by_key(|a| a.id);
    entries
}

/// The manifest entry under a root key: none for a key that is not the manifest's, else the
/// attachment or the field to name for what does not read (`attachments` for a key that names
/// no id or holds no map).
fn manifest_entry(
    doc: &Automerge,
    key: &str,
    heads: Option<&[ChangeHash]>,
) -> Option<std::result::Result<Attachment, String>> {
    let id = key.strip_prefix(ATTACHMENT_PREFIX)?;
    let Ok(id) = Uuid::parse_str(id) else {
        return Some(Err("attachments".into()));
    };
    Some(match get_maybe_at(doc, &automerge::ROOT, key, heads)? {
        (Value::Object(ObjType::Map), entry) => read_attachment(doc, &entry, id, heads)
            .map_err(|field| format!("attachments.{id}.{field}")),
        _ => Err("attachments".into()),
    })
}

/// `attachments`, each entry read once, or the field of the first entry that does not read as
/// an attachment (a field missing or of the wrong type, a kind or an instant that does not
/// parse), to name it when the record is refused.
pub fn attachments_checked(doc: &Automerge) -> std::result::Result<Vec<Attachment>, String> {
    let mut entries = doc
        .keys(automerge::ROOT)
        .filter_map(|key| manifest_entry(doc, &key, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    entries.sort_by_key(|a| a.id);
    Ok(entries)
}

fn get_maybe_at<'a>(
    doc: &'a Automerge,
    obj: &ObjId,
    key: &str,
    heads: Option<&[ChangeHash]>,
) -> Option<(Value<'a>, ObjId)> {
    match heads {
        Some(heads) => doc.get_at(obj, key, heads).ok()?,
        None => doc.get(obj, key).ok()?,
    }
}

/// The type a reference document holds (its root `type`), read without the document's
/// versions (an area tree's run to megabytes).
pub(crate) fn reference_type_of(doc: &Automerge) -> Option<crate::domain::codes::ReferenceType> {
    match get_maybe_at(doc, &automerge::ROOT, "type", None)? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Str(text) => crate::domain::codes::ReferenceType::from_code(text),
            _ => None,
        },
        _ => None,
    }
}

/// The areas a workplace was filed under, its current one first, then as each of its latest
/// changes (`MAX_CHANGES_READ` at most) left it.
pub(crate) fn workplace_areas(doc: &Automerge, id: Uuid) -> Vec<crate::domain::area::Area> {
    const MAX_CHANGES_READ: usize = 256;
    let hashes: Vec<ChangeHash> = doc.get_changes(&[]).iter().map(|c| c.hash()).collect();
    let mut areas: Vec<crate::domain::area::Area> = Vec::new();
    let current = read_record::<crate::domain::records::Workplace>(doc, id).ok();
    for workplace in current.into_iter().chain(
        hashes
            .iter()
            .rev()
            .take(MAX_CHANGES_READ)
            .filter_map(|hash| read_record_at(doc, id, &[*hash]).ok()),
    ) {
        let area = workplace.location.area;
        if !areas.contains(&area) {
            areas.push(area);
        }
    }
    areas
}

/// The case a child case's document says it was merged into (`merged_into`), at `heads` or now.
pub(crate) fn merged_into_of(doc: &Automerge, heads: Option<&[ChangeHash]>) -> Option<Uuid> {
    match get_maybe_at(doc, &automerge::ROOT, "merged_into", heads)? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Str(text) => Uuid::parse_str(text).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// The cases a kept case names as merged into it (`merged_from`, a map of ids to `true`), at
/// `heads` or now: read from that one field, without the record.
pub(crate) fn merged_from_of(doc: &Automerge, heads: Option<&[ChangeHash]>) -> Vec<Uuid> {
    let Some((Value::Object(ty @ ObjType::Map), id)) =
        get_maybe_at(doc, &automerge::ROOT, "merged_from", heads)
    else {
        return Vec::new();
    };
    match object_json(doc, &id, ty, heads, 1) {
        Json::Object(entries) => entries
            .iter()
            .filter(|(_, named)| **named == Json::Bool(true))
            .filter_map(|(key, _)| Uuid::parse_str(key).ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// The dependencies of the change among `changes` that made the document's case a merged
/// duplicate (the first that names a case it merged into, where its dependencies name none):
/// the duplicate as the merge took it is read there.
pub(crate) fn merge_deps(
    doc: &Automerge,
    changes: &[ChangeMetadata<'_>],
) -> Option<Vec<ChangeHash>> {
    changes
        .iter()
        .find(|change| {
            merged_into_of(doc, Some(&[change.hash])).is_some()
                && merged_into_of(doc, Some(&change.deps)).is_none()
        })
        .map(|change| change.deps.clone())
}

/// Whether a manifest entry holds concurrent values anywhere but in its caption (the one field
/// edited after capture): an entry written twice under one id, which no honest device does.
pub fn attachment_written_twice(doc: &Automerge) -> bool {
    doc.keys(automerge::ROOT)
        .filter(|key| key.starts_with(ATTACHMENT_PREFIX))
        .any(|key| match doc.get_all(automerge::ROOT, key.as_str()) {
            Ok(values) if values.len() == 1 => match &values[0] {
                (Value::Object(ObjType::Map), entry) => doc
                    .keys(entry)
                    .filter(|field| field != "caption")
                    .any(|field| {
                        doc.get_all(entry, field.as_str())
                            .map_or(true, |v| v.len() > 1)
                    }),
                _ => false,
            },
            _ => true,
        })
}

/// Whether a document's values hold attachment manifest keys.
pub(crate) fn values_name_attachments(root: &Root) -> bool {
    root.has_key_starting(ATTACHMENT_PREFIX)
}

/// The device that created an attachment's manifest entry (the actor of the entry's map): the
/// device that captured it. `None` if the entry is not a map or its actor is not a Vigie one.
pub fn attachment_creator_device(doc: &Automerge, id: Uuid) -> Option<Uuid> {
    match doc
        .get(automerge::ROOT, attachment_key(id).as_str())
        .ok()??
    {
        (Value::Object(ObjType::Map), ObjId::Id(_, actor, _)) => device_of_actor(&actor),
        _ => None,
    }
}

/// How many manifest keys the document holds, whether or not their entry reads (what the hub
/// checks).
pub fn attachment_keys(doc: &Automerge) -> usize {
    doc.keys(automerge::ROOT)
        .filter(|k| k.starts_with(ATTACHMENT_PREFIX))
        .count()
}

/// An entry of the manifest, or the name of its first field that does not read.
fn read_attachment(
    doc: &Automerge,
    entry: &ObjId,
    id: Uuid,
    heads: Option<&[ChangeHash]>,
) -> std::result::Result<Attachment, &'static str> {
    let string = |key: &'static str| match get_maybe_at(doc, entry, key, heads) {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(v) => Ok(v.to_string()),
            _ => Err(key),
        },
        _ => Err(key),
    };
    let size = match get_maybe_at(doc, entry, "size", heads) {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Int(v) => u64::try_from(*v).map_err(|_| "size")?,
            ScalarValue::Uint(v) => *v,
            _ => return Err("size"),
        },
        _ => return Err("size"),
    };
    Ok(Attachment {
        id,
        sha256: string("sha256")?,
        size,
        media_type: string("media_type")?,
        kind: AttachmentKind::from_str_opt(&string("kind")?).ok_or("kind")?,
        caption: string("caption")?,
        captured_by: Uuid::parse_str(&string("captured_by")?).map_err(|_| "captured_by")?,
        captured_at: DateTime::parse_from_rfc3339(&string("captured_at")?)
            .map_err(|_| "captured_at")?
            .with_timezone(&Utc),
    })
}

/// Adds an attachment's entry to the manifest (or sets its caption, the one field that changes
/// after capture). Returns the new change, `None` if nothing differed.
pub fn put_attachment(
    doc: &mut Automerge,
    entry: &Attachment,
    author: &ChangeAuthor,
) -> Result<Option<ChangeHash>> {
    let mut tx = doc.transaction();
    let key = attachment_key(entry.id);
    let obj = match tx.get(automerge::ROOT, key.as_str())? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => tx.put_object(automerge::ROOT, key.as_str(), ObjType::Map)?,
    };
    let fields: [(&str, ScalarValue); 7] = [
        ("sha256", entry.sha256.as_str().into()),
        (
            "size",
            ScalarValue::Int(i64::try_from(entry.size).unwrap_or(i64::MAX)),
        ),
        ("media_type", entry.media_type.as_str().into()),
        ("kind", entry.kind.as_str().into()),
        ("caption", entry.caption.as_str().into()),
        ("captured_by", entry.captured_by.to_string().into()),
        (
            "captured_at",
            entry
                .captured_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        ),
    ];
    for (key, value) in fields {
        put_scalar_if_changed(&mut tx, &obj, key, value, false)?;
    }
    if tx.pending_ops() == 0 {
        tx.rollback();
        return Ok(None);
    }
    Ok(tx.commit_with(commit_options(author)).0)
}

/// Removes an attachment's entry from the manifest. Returns the new change, `None` if the
/// manifest did not hold it.
pub fn remove_attachment(
    doc: &mut Automerge,
    id: Uuid,
    author: &ChangeAuthor,
) -> Result<Option<ChangeHash>> {
    let key = attachment_key(id);
    if doc.get(automerge::ROOT, key.as_str())?.is_none() {
        return Ok(None);
    }
    let mut tx = doc.transaction();
    tx.delete(automerge::ROOT, key.as_str())?;
    Ok(tx.commit_with(commit_options(author)).0)
}

/// The reference versions a stored record was captured with (none for a record written before
/// they were kept), read without reading the whole record.
pub(crate) fn read_pins(doc: &Automerge) -> ReferencePins {
    match doc.get(
        automerge::ROOT,
        crate::domain::reference::content::PINS_FIELD,
    ) {
        Ok(Some((Value::Object(ObjType::Map), obj))) => ReadDoc::hydrate(doc, &obj, None)
            .ok()
            .and_then(|h| serde_json::from_value(hydrated_json(&h)).ok())
            .unwrap_or_default(),
        _ => Default::default(),
    }
}

/// The author a change's message names.
pub fn author_in(message: Option<&str>) -> Option<ChangeAuthor> {
    message.and_then(|m| serde_json::from_str(m).ok())
}

fn change_info(
    doc: &Automerge,
    hash: &ChangeHash,
) -> (Option<ChangeAuthor>, Option<DateTime<Utc>>) {
    match doc.get_change_meta_by_hash(hash) {
        Some(meta) => (
            author_in(meta.message.as_deref()),
            Utc.timestamp_millis_opt(meta.timestamp).single(),
        ),
        None => (None, None),
    }
}

/// Every field holding more than one distinct value, with each value and who set it. Derived
/// fields are left out: the next write recomputes them.
/// The text values a top-level field holds at once while it is in conflict (none otherwise).
pub(crate) fn concurrent_texts(doc: &Automerge, key: &str) -> Vec<String> {
    let Ok(all) = doc.get_all(&automerge::ROOT, key) else {
        return Vec::new();
    };
    if all.len() < 2 {
        return Vec::new();
    }
    all.iter()
        .filter_map(|(value, id)| match value {
            Value::Scalar(s) => match s.as_ref() {
                ScalarValue::Str(text) => Some(text.to_string()),
                _ => None,
            },
            Value::Object(ObjType::Text) => doc.text(id).ok(),
            Value::Object(_) => None,
        })
        .collect()
}

/// Whether the root `key` holds `value` among values side by side (a status held by a hub or
/// a phone, still standing beside a late step: a conflict, whichever the merge shows).
pub(crate) fn holds_beside(doc: &Automerge, key: &str, value: &str) -> bool {
    concurrent_texts(doc, key).iter().any(|text| text == value)
}

/// The `DECIDING` fields of `R` that hold distinct values side by side in `doc`, each with
/// them (the one the record shows first), for `Record::derive_in_conflict`. Root scalars only:
/// a lookup per field, nothing walked.
pub(crate) fn concurrent_deciding<R: Record>(
    doc: &Automerge,
) -> Vec<crate::domain::records::Concurrent> {
    let mut found = Vec::new();
    for key in R::DECIDING {
        let Ok(all) = doc.get_all(&automerge::ROOT, *key) else {
            continue;
        };
        if all.len() < 2 {
            continue;
        }
        let shown = doc
            .get(&automerge::ROOT, *key)
            .ok()
            .flatten()
            .and_then(|(value, _)| value.as_scalar().map(scalar_json));
        let mut values: Vec<Json> = shown.into_iter().collect();
        for (value, _) in &all {
            if let Value::Scalar(s) = value {
                let json = scalar_json(s);
                if !values.contains(&json) {
                    values.push(json);
                }
            }
        }
        if values.len() > 1 {
            found.push((*key, values));
        }
    }
    for (key, fields) in R::NESTED_DECIDING {
        if let Some(readings) = nested_readings(doc, key, fields) {
            found.push((*key, readings));
        }
    }
    found
}

/// The values a resolution overrode: of the fields holding values side by side at `base` (the
/// version changes were made on), those the version `theirs` holds as one, by their path
/// (`followups.<id>.situation` too), the values other than the one kept, grouped by the device
/// that set them (one device's decision, its status and verification day together). A
/// resolution chooses between people's decisions (one supervisor closed a case, one reopened
/// it; two merges of one duplicate; two monitors' corrections of a follow-up): its step is
/// taken from each of them, not only from the one the merge happened to show
/// (`overridden_readings`).
pub(crate) fn overridden_values(
    doc: &Automerge,
    base: &[ChangeHash],
    theirs: &[ChangeHash],
) -> Vec<Overridden> {
    let mut by_actor: Vec<(ActorId, Overridden)> = Vec::new();
    if !base.is_empty() {
        overridden_in(
            doc,
            (base, theirs),
            &automerge::ROOT,
            &mut Vec::new(),
            &mut by_actor,
        );
    }
    by_actor.into_iter().map(|(_, values)| values).collect()
}

/// One device's values a resolution overrode, each by its path (`overridden_values`).
pub(crate) type Overridden = Vec<(Vec<String>, Json)>;

/// How deep `overridden_values` looks: a field of an entry of a root map (a follow-up's).
const OVERRIDDEN_DEPTH: usize = 3;

fn overridden_in(
    doc: &Automerge,
    (base, theirs): (&[ChangeHash], &[ChangeHash]),
    object: &ObjId,
    path: &mut Vec<String>,
    by_actor: &mut Vec<(ActorId, Overridden)>,
) {
    for key in doc.keys_at(object, base) {
        let Ok(side_by_side) = doc.get_all_at(object, key.as_str(), base) else {
            continue;
        };
        let Ok(kept) = doc.get_all_at(object, key.as_str(), theirs) else {
            continue;
        };
        path.push(key.clone());
        match (&side_by_side[..], &kept[..]) {
            ([(Value::Object(ObjType::Map), inner)], [(Value::Object(ObjType::Map), same)])
                if inner == same && path.len() < OVERRIDDEN_DEPTH =>
            {
                overridden_in(doc, (base, theirs), inner, path, by_actor);
            }
            ([_, _, ..], [(Value::Scalar(kept), _)]) => {
                let kept = scalar_json(kept);
                for (value, id) in &side_by_side {
                    let (Value::Scalar(s), ObjId::Id(_, actor, _)) = (value, id) else {
                        continue;
                    };
                    let value = scalar_json(s);
                    if value == kept {
                        continue;
                    }
                    let at = match by_actor.iter().position(|(a, _)| a == actor) {
                        Some(at) => at,
                        None => {
                            by_actor.push((actor.clone(), Vec::new()));
                            by_actor.len() - 1
                        }
                    };
                    by_actor[at].1.push((path.clone(), value));
                }
            }
            _ => {}
        }
        path.pop();
    }
}

/// Whether the values of root `fields` at `theirs` are those one change left them at, of the
/// changes whose values of them stand side by side at `base`: a decision kept whole, as it
/// was made (a supervisor's review: its status, reviewer and comment), not one of the writer's.
pub(crate) fn decision_side_by_side(
    doc: &Automerge,
    (base, theirs): (&[ChangeHash], &[ChangeHash]),
    fields: &[&str],
) -> bool {
    let values_at = |heads: &[ChangeHash]| -> Vec<Json> {
        fields
            .iter()
            .map(|field| match doc.get_at(&automerge::ROOT, *field, heads) {
                Ok(Some((Value::Scalar(s), _))) => scalar_json(&s),
                _ => Json::Null,
            })
            .collect()
    };
    let kept = values_at(theirs);
    fields.iter().any(|field| {
        let Ok(side_by_side) = doc.get_all_at(&automerge::ROOT, *field, base) else {
            return false;
        };
        side_by_side.len() > 1
            && side_by_side.iter().any(|(_, id)| {
                doc.hash_for_opid(id)
                    .is_some_and(|made| values_at(&[made]) == kept)
            })
    })
}

/// `record` with the values `fields` hold in `other` (a record of its kind); `None` if that
/// does not read as the record.
pub(crate) fn with_fields_of<R: Record>(record: &R, other: &R, fields: &[&str]) -> Option<R> {
    let other = serde_json::to_value(other).ok()?;
    let values: Overridden = fields
        .iter()
        .map(|field| {
            let value = other.get(*field).cloned().unwrap_or(Json::Null);
            (vec![(*field).to_string()], value)
        })
        .collect();
    overridden_reading(record, &values)
}

/// `record` as it would read with one device's values a resolution overrode
/// (`overridden_values`) instead of those kept; `None` if that does not read as the record.
pub(crate) fn overridden_reading<R: Record>(
    record: &R,
    values: &[(Vec<String>, Json)],
) -> Option<R> {
    let mut reading = serde_json::to_value(record).ok()?;
    for (path, value) in values {
        let (last, parents) = path.split_last()?;
        let mut at = &mut reading;
        for key in parents {
            at = at.as_object_mut()?.get_mut(key)?;
        }
        at.as_object_mut()?.insert(last.clone(), value.clone());
    }
    record_from_json(reading, record.id(), record.version().0.clone()).ok()
}

/// The most readings of a nested map given (`nested_readings`).
const NESTED_READINGS: usize = 16;

/// The map under the root `key` as the record shows it, then as each value held side by side
/// at one of `fields` of one of its entries would have it instead (two monitors' corrections
/// of one follow-up's situation): none when no entry holds values side by side there.
fn nested_readings(doc: &Automerge, key: &str, fields: &[&str]) -> Option<Vec<Json>> {
    let Ok(Some((Value::Object(ObjType::Map), map))) = doc.get(&automerge::ROOT, key) else {
        return None;
    };
    let mut others: Vec<(String, &str, Json)> = Vec::new();
    for entry in doc.keys(&map) {
        let Ok(Some((Value::Object(ObjType::Map), object))) = doc.get(&map, entry.as_str()) else {
            continue;
        };
        for field in fields {
            let Ok(all) = doc.get_all(&object, *field) else {
                continue;
            };
            if all.len() < 2 {
                continue;
            }
            let shown = match doc.get(&object, *field) {
                Ok(Some((Value::Scalar(s), _))) => scalar_json(&s),
                _ => continue,
            };
            for (value, _) in &all {
                let Value::Scalar(s) = value else { continue };
                let other = scalar_json(s);
                if other != shown
                    && !others
                        .iter()
                        .any(|(e, f, v)| *e == entry && f == field && *v == other)
                {
                    others.push((entry.clone(), field, other));
                }
            }
        }
    }
    if others.is_empty() {
        return None;
    }
    let shown = object_json(doc, &map, ObjType::Map, None, 1);
    let mut readings = vec![shown.clone()];
    for (entry, field, value) in others.into_iter().take(NESTED_READINGS - 1) {
        let mut reading = shown.clone();
        if let Some(Json::Object(fields)) = reading.get_mut(&entry) {
            fields.insert(field.to_string(), value);
            readings.push(reading);
        }
    }
    (readings.len() > 1).then_some(readings)
}

pub fn conflicts<R: Record>(doc: &Automerge) -> Result<Vec<Conflict>> {
    let mut found = Vec::new();
    collect_conflicts(doc, &automerge::ROOT, &mut Vec::new(), &mut found)?;
    let schema = Schema::of::<R>();
    found.retain(|c| {
        let segments: Vec<&str> = c.path.iter().map(String::as_str).collect();
        let distinct = c
            .values
            .iter()
            .any(|v| !same_value(&v.value, &c.values[0].value));
        distinct && !schema.is_derived(&segments)
    });
    Ok(found)
}

/// Whether two values side by side say the same: texts canonically equal are (a name typed
/// with composed accents on one phone and decomposed ones on another shows the same, and a
/// supervisor asked to choose between them could not tell them apart).
fn same_value(a: &Json, b: &Json) -> bool {
    use unicode_normalization::UnicodeNormalization;
    match (a, b) {
        (Json::String(a), Json::String(b)) => a.nfc().eq(b.nfc()),
        _ => a == b,
    }
}

fn collect_conflicts(
    doc: &Automerge,
    obj: &ObjId,
    path: &mut Vec<String>,
    found: &mut Vec<Conflict>,
) -> Result<()> {
    let keys: Vec<String> = doc.keys(obj).collect();
    for key in keys {
        path.push(key.clone());
        let all = doc.get_all(obj, key.as_str())?;
        if all.len() > 1 {
            let mut values = Vec::with_capacity(all.len());
            for (value, id) in &all {
                let json = match value {
                    Value::Scalar(s) => scalar_json(s),
                    Value::Object(_) => hydrated_json(&ReadDoc::hydrate(doc, id, None)?),
                };
                let change = doc.hash_for_opid(id);
                let (author, time) = change
                    .as_ref()
                    .map(|h| change_info(doc, h))
                    .unwrap_or((None, None));
                values.push(ConflictValue {
                    value: json,
                    author,
                    time,
                    change: change.map(|h| h.to_string()).unwrap_or_default(),
                });
            }
            found.push(Conflict {
                field: path.join("."),
                path: path.clone(),
                values,
            });
        } else if let Some((Value::Object(ObjType::Map), child)) = all.into_iter().next() {
            collect_conflicts(doc, &child, path, found)?;
        }
        path.pop();
    }
    Ok(())
}

/// Writes a conflict's resolution, `value`, at `path` (its last segment a key of `obj`).
fn put_resolved(
    tx: &mut automerge::transaction::Transaction<'_>,
    obj: &ObjId,
    path: &[String],
    value: &Json,
    schema: &Schema,
    no_conflict: impl Fn() -> Error,
) -> Result<()> {
    let Some(last) = path.last() else {
        return Err(no_conflict());
    };
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    match value {
        Json::Object(map) => {
            let child = tx.put_object(obj, last.as_str(), ObjType::Map)?;
            reconcile_map(tx, &child, map, &mut path.to_vec(), schema)?;
        }
        Json::String(s) if schema.is_text(&segments) => {
            let text = tx.put_object(obj, last.as_str(), ObjType::Text)?;
            tx.splice_text(&text, 0, 0, s)?;
        }
        // No field of a record holds a list (collections are maps): a value of the wrong
        // type, named so, not a conflict "settled meanwhile" that is still open.
        Json::Array(_) => {
            return Err(
                ValidationError::new(path.join("."), "must be a single value, not a list").into(),
            );
        }
        scalar => {
            // Automerge turns a put of the value that wins the conflict into a delete of
            // the others: the resolution would hold no value of its own, and a resolution
            // made elsewhere at the same time would replace it with no conflict shown.
            // Cleared first, the field takes this value as a put of the resolver's.
            tx.delete(obj, last.as_str())?;
            tx.put(obj, last.as_str(), json_scalar(scalar))?
        }
    }
    Ok(())
}

/// The other fields of `last`'s group (`Record::DECIDED_TOGETHER`) that do not hold what the
/// act that wrote `value` left them with, with that value (`None`: no value): settled with it.
/// Read at that act's change, they are the fields as its author left them, the other acts
/// side by side with it not seen (a validation that left the comment empty is not given the
/// comment of a return made at the same time). None when `value` is none of the conflicting
/// values (a value of the resolver's own).
fn decided_with<R: Record>(
    doc: &Automerge,
    parents: &[String],
    last: &str,
    value: &Json,
) -> Result<Vec<(String, Option<Json>)>> {
    let Some(group) = R::DECIDED_TOGETHER
        .iter()
        .find(|group| parents.is_empty() && group.contains(&last))
    else {
        return Ok(Vec::new());
    };
    let json_of = |value: &Value<'_>, id: &ObjId, at: Option<&[ChangeHash]>| -> Result<Json> {
        Ok(match value {
            Value::Scalar(s) => scalar_json(s),
            Value::Object(_) => hydrated_json(&ReadDoc::hydrate(doc, id, at)?),
        })
    };
    let mut chosen = None;
    for (found, id) in doc.get_all(automerge::ROOT, last)? {
        if same_value(&json_of(&found, &id, None)?, value) {
            chosen = doc.hash_for_opid(&id);
            break;
        }
    }
    let Some(chosen) = chosen else {
        return Ok(Vec::new());
    };
    let at = [chosen];
    let mut together = Vec::new();
    for field in group.iter().filter(|f| **f != last) {
        let then = match doc.get_at(automerge::ROOT, *field, &at)? {
            Some((found, id)) => Some(json_of(&found, &id, Some(&at))?),
            None => None,
        };
        let now = doc.get_all(automerge::ROOT, *field)?;
        let settled = match (&then, now.as_slice()) {
            (None, []) => true,
            (Some(then), [(found, id)]) => same_value(&json_of(found, id, None)?, then),
            _ => false,
        };
        if !settled {
            together.push((field.to_string(), then));
        }
    }
    Ok(together)
}

/// Settles a conflict by writing `value` at `path` (an ordinary edit, which syncs like any other
/// and supersedes every value it saw).
pub fn resolve<R: Record>(
    doc: &mut Automerge,
    id: Uuid,
    path: &[String],
    value: &Json,
    author: &ChangeAuthor,
) -> Result<ChangeHash> {
    // The path is named once the transaction is over (`field_path_of`).
    let no_conflict = || Error::NoSuchConflict { id, path: None };
    let Some((last, parents)) = path.split_last() else {
        return Err(no_conflict());
    };
    let schema = Schema::of::<R>();
    let together = decided_with::<R>(doc, parents, last, value)?;
    let mut tx = doc.transaction();
    let result = (|| -> Result<()> {
        let mut obj = automerge::ROOT;
        for key in parents {
            obj = match tx.get(&obj, key.as_str())? {
                Some((Value::Object(ObjType::Map), child)) => child,
                _ => return Err(no_conflict()),
            };
        }
        if tx.get_all(&obj, last.as_str())?.len() < 2 {
            return Err(no_conflict());
        }
        put_resolved(&mut tx, &obj, path, value, &schema, no_conflict)?;
        for (field, value) in &together {
            match value {
                Some(value) => {
                    let path = std::slice::from_ref(field);
                    put_resolved(&mut tx, &obj, path, value, &schema, no_conflict)?;
                }
                None => tx.delete(&obj, field.as_str())?,
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            let (hash, _) = tx.commit_with(commit_options(author));
            Ok(hash.expect("a resolution writes at least one operation"))
        }
        Err(e) => {
            tx.rollback();
            Err(match e {
                Error::NoSuchConflict { id, .. } => Error::NoSuchConflict {
                    id,
                    path: field_path_of::<R>(doc, id, path),
                },
                e => e,
            })
        }
    }
}

/// `path` joined, if it is the path of a field the record in `doc` has (a collection's entry
/// included, when its key is a code or an id): the caller's text, else, which may be anything
/// typed (a value given as a path), is not repeated in an error.
fn field_path_of<R: Record>(doc: &Automerge, id: Uuid, path: &[String]) -> Option<String> {
    if path.is_empty() || !path.iter().all(|s| valid_code(s)) {
        return None;
    }
    let record = serde_json::to_value(read_record::<R>(doc, id).ok()?).ok()?;
    let mut at = &record;
    for segment in path {
        at = at.as_object()?.get(segment)?;
    }
    Some(path.join("."))
}

/// Who changed which field, and when, for every change of the document in causal order. The
/// history is checked first: diffing a change that built a deep nesting would recurse, even if
/// a later change deleted it (`bounds::check_history`).
pub fn history(id: Uuid, doc: &Automerge) -> Result<Vec<HistoryEntry>> {
    Ok(recent_history(id, doc, usize::MAX)?.0)
}

/// The latest `most` entries of `history`, and how many came before them: a page shows the
/// recent ones without working out thousands of changes' fields.
///
/// A change's fields are read from its own operations: the key each writes under, in the
/// object it writes to, placed by the operation that made that object (records hold maps and
/// texts, each made under a key). Diffing the document across each change costs the whole
/// document a change: a case of thousands of changes took half a minute.
pub fn recent_history(
    id: Uuid,
    doc: &Automerge,
    most: usize,
) -> Result<(Vec<HistoryEntry>, usize)> {
    use automerge::legacy::{Key, ObjectId};
    bounds::check_history(doc, &DocumentLimits::STANDARD)
        .map_err(|limit| Error::OverLimit { id, limit })?;
    let changes = doc.get_changes(&[]);
    let earlier = changes.len().saturating_sub(most);
    // Where each object sits: the object and key of the operation that made it, from every
    // change (an object one made holds fields later ones write).
    let mut made: std::collections::HashMap<(u64, ActorId), (ObjectId, Option<String>)> =
        std::collections::HashMap::new();
    let mut recent = Vec::with_capacity(changes.len() - earlier);
    for (i, change) in changes.iter().enumerate() {
        let expanded = change.decode();
        for (n, op) in expanded.operations.iter().enumerate() {
            if let automerge::legacy::OpType::Make(_) = op.action {
                let key = match &op.key {
                    Key::Map(key) => Some(key.to_string()),
                    Key::Seq(_) => None,
                };
                let op_id = expanded.start_op.get() + n as u64;
                made.insert((op_id, expanded.actor_id.clone()), (op.obj.clone(), key));
            }
        }
        if i >= earlier {
            recent.push((change.hash(), expanded));
        }
    }
    let path_of = |obj: &ObjectId| -> Option<Vec<String>> {
        let mut segments = Vec::new();
        let mut at = obj;
        // A document's nesting is bounded (`check_history`): so is the walk.
        for _ in 0..=DocumentLimits::STANDARD.max_depth {
            match at {
                ObjectId::Root => {
                    segments.reverse();
                    return Some(segments);
                }
                ObjectId::Id(op) => {
                    let (parent, key) = made.get(&(op.0, op.1.clone()))?;
                    segments.extend(key.iter().cloned());
                    at = parent;
                }
            }
        }
        None
    };
    let entries = recent
        .into_iter()
        .map(|(hash, change)| {
            let mut fields: Vec<String> = Vec::new();
            for op in &change.operations {
                let Some(mut segments) = path_of(&op.obj) else {
                    continue;
                };
                if let Key::Map(key) = &op.key {
                    segments.push(key.to_string());
                }
                if segments.first().is_some_and(|s| s == KIND_KEY) {
                    continue;
                }
                let field = segments.join(".");
                if !field.is_empty() && !fields.contains(&field) {
                    fields.push(field);
                }
            }
            HistoryEntry {
                change: hash.to_string(),
                author: author_in(change.message.as_deref()),
                time: Utc.timestamp_millis_opt(change.time).single(),
                fields,
            }
        })
        .collect();
    Ok((entries, earlier))
}

/// `codec::columns` reads what loading a document and `to_json` read.
#[cfg(test)]
mod read_from_columns {
    use super::*;
    use crate::codec::columns::{History, read, read_checked};
    use automerge::transaction::Transactable;
    use automerge::{ObjType as AmType, ROOT};

    const KIND: &str = KIND_KEY;

    fn limits() -> DocumentLimits {
        DocumentLimits::STANDARD
    }

    /// What the column reader gives of a document's values: the kind they name, and every one
    /// of them read by serde straight from the columns (`Root::read`).
    fn values(root: &Root, _: &History) -> Option<(Option<RecordKind>, Json)> {
        Some((kind_of_values(root), root.read(&|_| false)?))
    }

    /// What Automerge gives of a document: its JSON.
    fn expected(doc: &Automerge) -> Json {
        to_json(&Automerge::load(&doc.save_nocompress()).unwrap(), None)
    }

    fn assert_reads_as_automerge(doc: &Automerge) {
        let read = read(&doc.save_nocompress(), &limits()).expect("read");
        assert_eq!(read, expected(doc));
        assert_checked_as_automerge(&doc.save_nocompress());
    }

    /// The document checked without Automerge gives what Automerge's load gives: the values,
    /// the heads, every change's hash in Automerge's order, the roots of the history.
    fn assert_checked_as_automerge(bytes: &[u8]) {
        let checked = read_checked(bytes, &limits(), values).expect("checked");
        let loaded = Automerge::load(bytes).unwrap();
        let (kind, json) = checked.value.expect("read");
        assert_eq!(kind, kind_of(&loaded));
        assert_eq!(json, to_json(&loaded, None));
        assert_eq!(checked.history.heads, loaded.get_heads());
        let changes: Vec<ChangeHash> = loaded
            .get_changes_meta(&[])
            .iter()
            .map(|c| c.hash)
            .collect();
        assert_eq!(checked.history.changes, changes);
        assert_eq!(
            checked.history.roots,
            crate::codec::history_roots(&loaded, &[])
        );
    }

    fn actor(n: u8) -> ActorId {
        ActorId::from(vec![n; 16])
    }

    #[test]
    fn scalars_maps_lists_and_text_read_as_automerge_reads_them() {
        let mut doc = Automerge::new().with_actor(actor(1));
        let mut tx = doc.transaction();
        tx.put(ROOT, KIND, "visit").unwrap();
        tx.put(ROOT, "name", "Kouassi Yao — élève").unwrap();
        tx.put(ROOT, "age", 12i64).unwrap();
        tx.put(ROOT, "count", 7u64).unwrap();
        tx.put(ROOT, "ratio", 0.25f64).unwrap();
        tx.put(ROOT, "flag", true).unwrap();
        tx.put(ROOT, "off", false).unwrap();
        tx.put(ROOT, "nothing", ScalarValue::Null).unwrap();
        tx.put(ROOT, "at", ScalarValue::Timestamp(1_700_000_000_000))
            .unwrap();
        tx.put(ROOT, "blob", ScalarValue::Bytes(vec![1, 2, 3]))
            .unwrap();
        tx.put(ROOT, "negative", -40i64).unwrap();
        let place = tx.put_object(ROOT, "place", AmType::Map).unwrap();
        tx.put(&place, "region", "CI-LAG").unwrap();
        let inner = tx.put_object(&place, "gps", AmType::Map).unwrap();
        tx.put(&inner, "lat", 5.3f64).unwrap();
        let list = tx.put_object(ROOT, "hazards", AmType::List).unwrap();
        for (i, h) in ["machete", "pesticide", "loads", "night"]
            .iter()
            .enumerate()
        {
            tx.insert(&list, i, *h).unwrap();
        }
        let nested = tx.insert_object(&list, 4, AmType::Map).unwrap();
        tx.put(&nested, "x", 1i64).unwrap();
        let notes = tx.put_object(ROOT, "notes", AmType::Text).unwrap();
        tx.splice_text(&notes, 0, 0, "Enfant au travail 🌱 près du four")
            .unwrap();
        tx.commit();
        assert_reads_as_automerge(&doc);

        // Overwrites, deletions and edits of every kind.
        let mut tx = doc.transaction();
        tx.put(ROOT, "age", 13i64).unwrap();
        tx.delete(ROOT, "flag").unwrap();
        tx.delete(&list, 1).unwrap();
        tx.put(&list, 0, "hoe").unwrap();
        tx.insert(&list, 0, "first").unwrap();
        tx.splice_text(&notes, 3, 5, "").unwrap();
        tx.splice_text(&notes, 0, 0, "« ").unwrap();
        tx.put(ROOT, "place", "replaced by a string").unwrap();
        tx.commit();
        assert_reads_as_automerge(&doc);
    }

    #[test]
    fn concurrent_values_read_with_automerge_s_winner() {
        let mut base = Automerge::new().with_actor(actor(9));
        let mut tx = base.transaction();
        tx.put(ROOT, KIND, "child_case").unwrap();
        let list = tx.put_object(ROOT, "items", AmType::List).unwrap();
        tx.insert(&list, 0, "a").unwrap();
        tx.commit();
        for (first, second) in [(1u8, 2u8), (2, 1)] {
            let mut a = base.fork().with_actor(actor(first));
            let mut b = base.fork().with_actor(actor(second));
            for (doc, n) in [(&mut a, 1i64), (&mut b, 2)] {
                let mut tx = doc.transaction();
                tx.put(ROOT, "status", n).unwrap();
                tx.put(ROOT, KIND, if n == 1 { "visit" } else { "workplace" })
                    .unwrap();
                tx.put(&list, 0, n).unwrap();
                tx.insert(&list, 1, n * 10).unwrap();
                let obj = tx.put_object(ROOT, "both", AmType::Map).unwrap();
                tx.put(&obj, "n", n).unwrap();
                tx.commit();
            }
            // One more change on one side makes its counters higher.
            let mut tx = b.transaction();
            tx.put(ROOT, "later", true).unwrap();
            tx.commit();
            a.merge(&mut b).unwrap();
            let read = read(&a.save_nocompress(), &limits()).unwrap();
            assert_eq!(read, expected(&a));
            assert_eq!(kinds(&a).len(), 2);
            assert_checked_as_automerge(&a.save_nocompress());
        }
    }

    /// Every saved document in `VIGIE_COLUMNS_DIR` reads as Automerge reads it.
    #[test]
    #[ignore]
    fn documents_of_a_directory_read_as_automerge_reads_them() {
        let dir = std::env::var("VIGIE_COLUMNS_DIR").unwrap();
        let mut n = 0;
        let (mut ours, mut theirs) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
        let mut checking = std::time::Duration::ZERO;
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let t = std::time::Instant::now();
            let read = read(&bytes, &limits()).expect("read");
            ours += t.elapsed();
            let t = std::time::Instant::now();
            let checked = read_checked(&bytes, &limits(), values).expect("checked");
            checking += t.elapsed();
            assert_eq!(checked.value.expect("read").1, read);
            let t = std::time::Instant::now();
            let loaded = Automerge::load(&bytes).unwrap();
            let json = to_json(&loaded, None);
            theirs += t.elapsed();
            assert_eq!(read, json);
            assert_eq!(checked.history.heads, loaded.get_heads());
            n += 1;
        }
        println!(
            "{n} documents: {ours:?} read, {checking:?} read and checked, \
             {theirs:?} loaded and read by Automerge"
        );
    }
}

#[cfg(test)]
mod actors {
    use super::*;
    use automerge::transaction::Transactable;

    #[test]
    fn an_actor_automerge_isolates_for_an_older_version_is_the_store_device_s() {
        let device = Uuid::now_v7();
        let mut doc = Automerge::new().with_actor(actor_for(device, [7; 8]));
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "a", 1).unwrap();
        tx.commit();
        let first = doc.get_heads();
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "a", 2).unwrap();
        tx.commit();
        // At the first version, the store's actor cannot go on: Automerge derives another.
        let mut tx = doc.transaction_at(PatchLog::null(), &first).unwrap();
        tx.put(automerge::ROOT, "b", 3).unwrap();
        let (hash, _) = tx.commit();
        let change = doc.get_change_by_hash(&hash.unwrap()).unwrap();
        assert_ne!(change.actor_id(), doc.get_actor());
        assert_eq!(device_of_actor(change.actor_id()), Some(device));

        // The marker alone, or followed by a level that never ends, names no device.
        let mut bytes = crate::codec::bounds::ISOLATED_ACTOR_MAGIC.to_vec();
        bytes.extend([0x80; 12]);
        bytes.extend(device.as_bytes());
        bytes.extend([7; 8]);
        assert_eq!(device_of_actor(&ActorId::from(bytes)), None);
        assert_eq!(
            device_of_actor(&ActorId::from(
                crate::codec::bounds::ISOLATED_ACTOR_MAGIC.to_vec()
            )),
            None
        );
    }
}

#[cfg(test)]
mod manifest {
    use super::*;
    use automerge::transaction::Transactable;

    #[test]
    fn an_entry_that_does_not_read_is_named_by_its_field() {
        let mut doc = Automerge::new();
        let author = ChangeAuthor {
            user: Uuid::now_v7(),
            device: Uuid::now_v7(),
        };
        let entry = Attachment {
            id: Uuid::now_v7(),
            sha256: "ab".repeat(32),
            size: 1000,
            media_type: "image/jpeg".into(),
            kind: AttachmentKind::Photo,
            caption: String::new(),
            captured_by: author.user,
            captured_at: Utc::now(),
        };
        put_attachment(&mut doc, &entry, &author).unwrap();
        assert_eq!(attachments_checked(&doc).map(|a| a.len()), Ok(1));
        assert_eq!(attachments(&doc).len(), 1);
        let key = attachment_key(entry.id);
        let Some((_, obj)) = doc.get(automerge::ROOT, key.as_str()).unwrap() else {
            panic!("the entry is there");
        };
        for (field, value) in [
            ("size", ScalarValue::from("large")),
            ("kind", ScalarValue::from("banana")),
            ("captured_at", ScalarValue::from("yesterday")),
        ] {
            let mut forged = doc.fork();
            let mut tx = forged.transaction();
            tx.put(&obj, field, value).unwrap();
            tx.commit();
            assert_eq!(
                attachments_checked(&forged).err(),
                Some(format!("attachments.{}.{field}", entry.id))
            );
            assert!(attachments(&forged).is_empty());
        }
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, format!("{ATTACHMENT_PREFIX}not-an-id"), 1)
            .unwrap();
        tx.commit();
        assert_eq!(attachments_checked(&doc).err(), Some("attachments".into()));
    }
}

/// The fields of each change as read from its operations are those a diff of the document
/// across it names (the way they were worked out before, at the whole document's cost each).
#[cfg(test)]
mod history_fields {
    use super::*;
    use crate::domain::area::Area;
    use crate::domain::codes::{FollowUpSituation, Sex};
    use crate::domain::records::{ChildCase, FollowUp};
    use automerge::{PatchAction, Prop};
    use std::collections::BTreeSet;

    fn by_diff(doc: &Automerge) -> Vec<BTreeSet<String>> {
        let prop = |p: &Prop| match p {
            Prop::Map(k) => k.clone(),
            Prop::Seq(i) => i.to_string(),
        };
        doc.get_changes(&[])
            .iter()
            .map(|change| {
                let mut fields = BTreeSet::new();
                for patch in doc.diff(change.deps(), &[change.hash()]) {
                    let mut segments: Vec<String> =
                        patch.path.iter().map(|(_, p)| prop(p)).collect();
                    match &patch.action {
                        PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key } => {
                            segments.push(key.clone())
                        }
                        PatchAction::Increment { prop: p, .. } => segments.push(prop(p)),
                        _ => {}
                    }
                    if segments.first().is_some_and(|s| s == KIND_KEY) || segments.is_empty() {
                        continue;
                    }
                    fields.insert(segments.join("."));
                }
                fields
            })
            .collect()
    }

    /// The two fields a merge writes, read alone as the record reads them, at heads or now,
    /// and the change that made a case a duplicate found among others.
    #[test]
    fn the_merge_fields_read_alone_as_the_record_reads_them() {
        let author = ChangeAuthor {
            user: Uuid::now_v7(),
            device: Uuid::now_v7(),
        };
        let mut case = ChildCase::new(
            "CASE-1",
            "Aya Kouamé",
            Sex::Female,
            Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01"),
            chrono::NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
            author.user,
        );
        let mut doc = Automerge::new();
        write_record(&mut doc, &case, &author).unwrap();
        let before = doc.get_heads();
        let (one, two) = (Uuid::now_v7(), Uuid::now_v7());
        case.merged_from = [one, two].into_iter().collect();
        write_record(&mut doc, &case, &author).unwrap();
        let mut named = merged_from_of(&doc, None);
        named.sort();
        let mut expected = vec![one, two];
        expected.sort();
        assert_eq!(named, expected);
        assert!(merged_from_of(&doc, Some(&before)).is_empty());
        let merged = doc.get_heads();
        case.merged_from.clear();
        case.merged_into = Some(one);
        write_record(&mut doc, &case, &author).unwrap();
        assert!(merged_from_of(&doc, None).is_empty());
        assert_eq!(merged_into_of(&doc, None), Some(one));
        let changes = doc.get_changes_meta(&[]);
        assert_eq!(merge_deps(&doc, &changes), Some(merged));
    }

    #[test]
    fn a_case_s_long_history_from_two_devices_names_the_fields_a_diff_names() {
        let author = ChangeAuthor {
            user: Uuid::now_v7(),
            device: Uuid::now_v7(),
        };
        let case = ChildCase::new(
            "CASE-1",
            "Aya Kouamé",
            Sex::Female,
            Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01"),
            chrono::NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
            author.user,
        );
        let id = case.id;
        let mut a = Automerge::new();
        write_record(&mut a, &case, &author).unwrap();
        let mut b = a.fork();
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for round in 0..120 {
            let doc = if next(2) == 0 { &mut a } else { &mut b };
            let mut edited: ChildCase = read_record(doc, id).unwrap();
            match next(5) {
                0 => edited.hours_per_week = next(40) as i32,
                1 => edited.notes = format!("{} vu le {round}", edited.notes),
                2 => {
                    let mut f = FollowUp::new(
                        chrono::NaiveDate::from_ymd_opt(2026, 4, 2).unwrap(),
                        FollowUpSituation::InSchool,
                        None,
                    );
                    f.notes = format!("note {round}");
                    edited.followups.insert(Uuid::now_v7(), f);
                }
                3 => {
                    if let Some(key) = edited.followups.keys().next().copied() {
                        edited.followups.remove(&key);
                    }
                }
                _ => {
                    if let Some(f) = edited.followups.values_mut().last() {
                        f.notes = format!("revue {round}");
                    }
                }
            }
            write_record(doc, &edited, &author).unwrap();
            if next(6) == 0 {
                a.merge(&mut b).unwrap();
                b.merge(&mut a).unwrap();
            }
        }
        a.merge(&mut b).unwrap();
        let read: Vec<BTreeSet<String>> = recent_history(id, &a, usize::MAX)
            .unwrap()
            .0
            .into_iter()
            .map(|h| h.fields.into_iter().collect())
            .collect();
        assert!(read.len() > 100);
        let followed = read
            .iter()
            .flatten()
            .filter(|f| f.starts_with("followups."))
            .count();
        assert!(followed > 30, "{followed}");
        assert_eq!(read, by_diff(&a));
        // The latest only, and how many came before.
        let (last, earlier) = recent_history(id, &a, 10).unwrap();
        assert_eq!((last.len(), earlier), (10, read.len() - 10));
    }
}

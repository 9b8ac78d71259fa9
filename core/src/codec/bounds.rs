//! Bounds on what one record's document may hold, checked wherever bytes become a document.
//!
//! Automerge reads hostile bytes badly in three ways, and each has its check here:
//! - **Expansion before anything is read.** A document chunk may DEFLATE its columns and a
//!   change may be a DEFLATE-compressed chunk; every column is run-length encoded. A few hundred
//!   bytes can describe gigabytes of columns or billions of operations, which Automerge would
//!   allocate while loading. `admit` walks the chunks *before* Automerge sees them: it inflates
//!   DEFLATE data itself, into a buffer that stops at the size bound, and counts the rows every
//!   column describes (run lengths are added, never expanded). Bundle chunks (an experimental
//!   Automerge format that Vigie never writes, and whose reader allocates from counts it reads)
//!   are refused.
//! - **Recursion.** Automerge's hydration, and serde on the JSON it produces, recurse once per
//!   level of nesting: a 1,000-deep map overflows a 1 MiB stack, and a stack overflow cannot be
//!   caught. `check_state` walks the document with an explicit stack, never recursion, and
//!   refuses more than `max_depth` levels and any text or key longer than `max_text_chars`,
//!   before anything recursive reads it.
//! - **History.** A nesting created and then deleted is gone from the document's state but not
//!   from its history, which `doc::history` diffs: `check_history` finds the depth of every
//!   object ever created, also without recursion.
//!
//! - **Operation numbers.** A change names the number of its first operation, and Automerge
//!   takes it as given: a change numbered far ahead wins every conflict it takes part in (the
//!   highest number wins), and one numbered near 2^32 makes the next edit of the document fail
//!   inside Automerge, on every device that holds it. `numbered_in_sequence` holds each received
//!   change to the number Automerge gives a change it makes.
//!
//! The same limits hold on a phone and on the hub. They are far above what honest records need
//! (the largest record of the reference workload is a few KiB; nesting goes 4 levels deep).

pub use crate::domain::limits::{DocumentLimit, DocumentLimits};

use automerge::{Automerge, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValue, Value};
use std::io::Read;

/// Why bytes were not let through to Automerge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Over(DocumentLimit),
    /// A chunk format Vigie never writes and does not read (Automerge's experimental bundles).
    Unsupported,
}

// ---------------------------------------------------------------------------------------------
// Before Automerge: the chunks

use super::columns::{CHUNK_DOCUMENT, COLUMN_DEFLATE, MAGIC, Reader};

const CHUNK_CHANGE: u8 = 1;
const CHUNK_COMPRESSED: u8 = 2;
const CHUNK_BUNDLE: u8 = 3;

/// What a run of chunks describes once expanded.
#[derive(Debug, Default)]
struct Tally {
    bytes: u64,
    /// Operations of document chunks, and of change chunks: a change holds its deletions as
    /// operations, a document as marks on the operations deleted (`within_operations`).
    operations: u64,
    change_operations: u64,
    /// Change operations by whom their change's actor stands for (`share_holder`).
    operations_by_holder: std::collections::HashMap<Vec<u8>, u64>,
    /// `Admitted::operations`.
    rebuilt: u64,
    changes: u64,
}

/// Whether `operations` of changes fit a document within `limits.max_operations`: each
/// deletion is an operation of its change and no row of the document, and deletes one of its
/// rows, so a history of changes holds at most twice the operations of the document it makes.
/// Held to the document's bound, edits a phone stores (a list of buyers replaced, a note
/// rewritten, offline) were refused by the hub when pushed together.
pub(crate) fn within_operations(change_operations: u64, limits: &DocumentLimits) -> bool {
    change_operations <= limits.max_operations.saturating_mul(2)
}

impl Tally {
    fn check(&self, limits: &DocumentLimits) -> Result<(), Refused> {
        if self.bytes > limits.max_bytes as u64 {
            return Err(Refused::Over(DocumentLimit::Bytes));
        }
        // No device's changes may hold more than its share of a record's (the rule of the
        // history, `doc::devices_within_share`): said before Automerge spends hundreds of MiB
        // and seconds reading a change that types and deletes half a million characters.
        let share = limits.device_operations_share();
        if self.operations > limits.max_operations
            || !within_operations(self.change_operations, limits)
            || self.operations_by_holder.values().any(|&n| n > share)
        {
            return Err(Refused::Over(DocumentLimit::Operations));
        }
        if self.changes > limits.max_changes {
            return Err(Refused::Over(DocumentLimit::Changes));
        }
        Ok(())
    }

    /// Bytes that may still be inflated before the size bound is passed.
    fn room(&self, limits: &DocumentLimits) -> u64 {
        (limits.max_bytes as u64).saturating_sub(self.bytes)
    }
}

/// What `admit` found of bytes it let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Admitted {
    /// Every byte is a chunk that parses and matches its checksum: Automerge reads them all.
    /// Otherwise it reads up to the first that does not, says nothing, and the rest is lost.
    pub(crate) whole: bool,
    /// The operations Automerge builds to read them: a change's, its deletions among them; a
    /// document's, and each one's successors (a deletion, an overwrite), from which it
    /// rebuilds the changes. What judging them costs.
    pub(crate) operations: u64,
    /// The hash of each change the bytes hold (a change chunk's, not a document's):
    /// `merge_into` checks that Automerge took or queued each one.
    pub(crate) changes: Vec<ChangeHash>,
}

/// Checks what `bytes` (a saved document, changes, or both, concatenated) would make Automerge
/// allocate. Malformed bytes pass (`Admitted::whole` says so): Automerge refuses them itself,
/// and reads no chunk after the first it cannot parse, so nothing past the point this walk
/// stops at is ever expanded.
pub(crate) fn admit(bytes: &[u8], limits: &DocumentLimits) -> Result<Admitted, Refused> {
    let mut tally = Tally {
        bytes: bytes.len() as u64,
        ..Tally::default()
    };
    tally.check(limits)?;
    let mut r = Reader::new(bytes);
    let mut whole = true;
    let mut changes = Vec::new();
    while !r.is_empty() {
        let header = (|| {
            if r.take(4)? != &MAGIC[..] {
                return None;
            }
            let checksum = r.take(4)?;
            let kind = r.byte()?;
            let len = r.uleb()?;
            Some((checksum, kind, r.take(len)?))
        })();
        let Some((checksum, kind, data)) = header else {
            whole = false;
            break;
        };
        let (parsed, sums) = match kind {
            CHUNK_DOCUMENT => (
                document_chunk(data, &mut tally, limits)?,
                checksum_of(kind, data) == checksum,
            ),
            CHUNK_CHANGE => {
                let hash = hash_of(kind, data);
                let parsed = change_chunk(data, &mut tally, limits)?;
                changes.extend(parsed.map(|()| hash));
                (parsed, hash.0[..4] == *checksum)
            }
            CHUNK_COMPRESSED => {
                let inflated = inflate(data, &mut tally, limits)?;
                // The hash and checksum of the change it holds, uncompressed.
                let hash = hash_of(CHUNK_CHANGE, &inflated);
                let parsed = change_chunk(&inflated, &mut tally, limits)?;
                changes.extend(parsed.map(|()| hash));
                (parsed, hash.0[..4] == *checksum)
            }
            CHUNK_BUNDLE => return Err(Refused::Unsupported),
            _ => (None, false),
        };
        tally.check(limits)?;
        if parsed.is_none() || !sums {
            whole = false;
            break;
        }
    }
    Ok(Admitted {
        whole,
        operations: tally.rebuilt,
        changes,
    })
}

/// A chunk's checksum as Automerge writes it: the first bytes of the SHA-256 of its type, its
/// length and its data.
fn checksum_of(kind: u8, data: &[u8]) -> [u8; 4] {
    let hash = hash_of(kind, data);
    [hash.0[0], hash.0[1], hash.0[2], hash.0[3]]
}

/// The SHA-256 of a chunk's type, length and data: a change's hash.
fn hash_of(kind: u8, data: &[u8]) -> ChangeHash {
    use sha2::Digest;
    let mut header = vec![kind];
    super::history::write_uleb(data.len() as u64, &mut header);
    let mut hasher = sha2::Sha256::new();
    hasher.update(&header);
    hasher.update(data);
    ChangeHash(hasher.finalize().into())
}

/// Inflates DEFLATE data into a buffer that never grows past the room left under the size
/// bound; the inflated bytes count towards it.
fn inflate(data: &[u8], tally: &mut Tally, limits: &DocumentLimits) -> Result<Vec<u8>, Refused> {
    let room = tally.room(limits);
    let mut out = Vec::new();
    // A damaged stream is Automerge's to refuse: count what came out before the damage.
    let _ = flate2::read::DeflateDecoder::new(data)
        .take(room.saturating_add(1))
        .read_to_end(&mut out);
    if out.len() as u64 > room {
        return Err(Refused::Over(DocumentLimit::Bytes));
    }
    tally.bytes = tally
        .bytes
        .saturating_add(out.len() as u64)
        .saturating_sub(data.len() as u64);
    Ok(out)
}

/// The most rows any of these columns describes (each column of a row group holds one value
/// per row, so this bounds the rows Automerge materialises).
fn rows_of(
    columns: &[(u32, &[u8])],
    tally: &mut Tally,
    limits: &DocumentLimits,
) -> Result<u64, Refused> {
    Ok(rows_and_grouped(columns, tally, limits)?.0)
}

/// `rows_of`, and the most rows a group column groups (a document's operations' successors).
fn rows_and_grouped(
    columns: &[(u32, &[u8])],
    tally: &mut Tally,
    limits: &DocumentLimits,
) -> Result<(u64, u64), Refused> {
    // Past what either bound lets through (`within_operations`), the count stops.
    let cap = limits
        .max_operations
        .saturating_mul(2)
        .max(limits.max_changes);
    let (mut most, mut grouped) = (0u64, 0u64);
    for (spec, data) in columns {
        let inflated;
        let data: &[u8] = if u64::from(*spec) & COLUMN_DEFLATE != 0 {
            inflated = inflate(data, tally, limits)?;
            &inflated
        } else {
            data
        };
        let (rows, group) = column_rows(spec & 0b111, data, cap);
        most = most.max(rows.max(group));
        grouped = grouped.max(group);
    }
    Ok((most, grouped))
}

/// Rows a column describes, stopping once past `cap`. A group column (the number of
/// predecessors of each operation, say) also describes the rows of the columns it groups: its
/// values' sum counts too.
fn column_rows(column_type: u32, data: &[u8], cap: u64) -> (u64, u64) {
    const GROUP: u32 = 0;
    const DELTA: u32 = 3;
    const BOOLEAN: u32 = 4;
    const STRING: u32 = 5;
    const RAW: u32 = 7;
    let mut r = Reader::new(data);
    let mut rows = 0u64;
    let mut grouped = 0u64;
    match column_type {
        RAW => return (0, 0),
        BOOLEAN => {
            while let Some(run) = r.uleb() {
                rows = rows.saturating_add(run);
                if rows > cap {
                    break;
                }
            }
            return (rows, 0);
        }
        _ => {}
    }
    // Run-length encoding: n > 0 repeats one value n times, n < 0 is -n literal values, 0 is
    // a run of nulls whose length follows.
    let value = |r: &mut Reader<'_>| -> Option<u64> {
        match column_type {
            DELTA => r.sleb().map(|_| 0),
            STRING => {
                let len = r.uleb()?;
                r.take(len).map(|_| 0)
            }
            _ => r.uleb(),
        }
    };
    while let Some(n) = r.sleb() {
        if n > 0 {
            let Some(v) = value(&mut r) else { break };
            rows = rows.saturating_add(n as u64);
            if column_type == GROUP {
                grouped = grouped.saturating_add((n as u64).saturating_mul(v));
            }
        } else if n < 0 {
            for _ in 0..n.unsigned_abs() {
                let Some(v) = value(&mut r) else {
                    return (rows, grouped);
                };
                rows += 1;
                if column_type == GROUP {
                    grouped = grouped.saturating_add(v);
                }
            }
        } else {
            let Some(nulls) = r.uleb() else { break };
            rows = rows.saturating_add(nulls);
        }
        if rows > cap || grouped > cap {
            break;
        }
    }
    (rows, grouped)
}

/// `Ok(None)`: the chunk does not parse (Automerge refuses it, and reads nothing after it).
type Walked = Result<Option<()>, Refused>;

fn document_chunk(data: &[u8], tally: &mut Tally, limits: &DocumentLimits) -> Walked {
    let mut r = Reader::new(data);
    // Actors and heads, the metadata of the change columns and of the operation columns, then
    // both data areas.
    let parsed = (|| {
        let actors = r.uleb()?;
        r.skip_prefixed(actors)?;
        let heads = r.uleb()?;
        r.take(heads.checked_mul(32)?)?;
        let change_specs = spec_list(&mut r)?;
        let op_specs = spec_list(&mut r)?;
        Some((
            column_data(&mut r, &change_specs)?,
            column_data(&mut r, &op_specs)?,
        ))
    })();
    let Some((change_columns, op_columns)) = parsed else {
        return Ok(None);
    };
    let changes = rows_of(&change_columns, tally, limits)?;
    let (operations, successors) = rows_and_grouped(&op_columns, tally, limits)?;
    tally.changes = tally.changes.saturating_add(changes);
    tally.operations = tally.operations.saturating_add(operations);
    tally.rebuilt = tally
        .rebuilt
        .saturating_add(operations)
        .saturating_add(successors);
    Ok(Some(()))
}

fn spec_list(r: &mut Reader<'_>) -> Option<Vec<(u32, u64)>> {
    let count = r.uleb()?;
    let mut specs = Vec::new();
    for _ in 0..count {
        specs.push((u32::try_from(r.uleb()?).ok()?, r.uleb()?));
    }
    Some(specs)
}

fn column_data<'a>(r: &mut Reader<'a>, specs: &[(u32, u64)]) -> Option<Vec<(u32, &'a [u8])>> {
    specs
        .iter()
        .map(|(spec, len)| Some((*spec, r.take(*len)?)))
        .collect()
}

fn change_chunk(data: &[u8], tally: &mut Tally, limits: &DocumentLimits) -> Walked {
    let mut r = Reader::new(data);
    // Dependencies, actor, sequence number, first operation, time, message, other actors, then
    // the operation columns.
    let parsed = (|| {
        let deps = r.uleb()?;
        r.take(deps.checked_mul(32)?)?;
        let actor_len = r.uleb()?;
        let actor = r.take(actor_len)?;
        r.uleb()?;
        r.uleb()?;
        r.sleb()?;
        let message = r.uleb()?;
        r.take(message)?;
        let others = r.uleb()?;
        r.skip_prefixed(others)?;
        let specs = spec_list(&mut r)?;
        Some((actor, column_data(&mut r, &specs)?))
    })();
    let Some((actor, op_columns)) = parsed else {
        return Ok(None);
    };
    tally.changes = tally.changes.saturating_add(1);
    let operations = rows_of(&op_columns, tally, limits)?;
    tally.change_operations = tally.change_operations.saturating_add(operations);
    tally.rebuilt = tally.rebuilt.saturating_add(operations);
    let holder = tally
        .operations_by_holder
        .entry(share_holder(actor).to_vec())
        .or_default();
    *holder = holder.saturating_add(operations);
    Ok(Some(()))
}

/// Who a change's actor (its bytes) stands for in a device's share: the device, for a Vigie
/// actor (`device_part`); any other actor itself.
fn share_holder(actor: &[u8]) -> &[u8] {
    device_part(actor).unwrap_or_else(|| isolated_base(actor))
}

/// The device id's bytes of a Vigie actor: a store's own (`doc::actor_for`: the device's 16
/// bytes, then 8 of its store), or one Automerge derived from it (`isolated_base`).
pub(crate) fn device_part(actor: &[u8]) -> Option<&[u8]> {
    let base = isolated_base(actor);
    (base.len() == 24).then(|| &base[..16])
}

/// Automerge's marker of an actor it derives for a transaction at older heads (`transaction_at`)
/// when the store's actor already made changes those heads do not include: these bytes, the
/// level as LEB128, then the store's actor.
pub(crate) const ISOLATED_ACTOR_MAGIC: [u8; 4] = [0x13, 0xb2, 0x23, 0x09];

/// The actor an isolated actor was derived from; any other actor as it is.
pub(crate) fn isolated_base(bytes: &[u8]) -> &[u8] {
    let Some(rest) = bytes.strip_prefix(&ISOLATED_ACTOR_MAGIC) else {
        return bytes;
    };
    // The level: LEB128, at most 10 bytes for a u64.
    match rest.iter().take(10).position(|b| b & 0x80 == 0) {
        Some(last) => &rest[last + 1..],
        None => bytes,
    }
}

// ---------------------------------------------------------------------------------------------
// After Automerge: the state and the history, without recursion

/// Checks the document's state (at `heads`, or now): nesting depth and the length of every text
/// and string, every concurrent value included, with an explicit stack.
///
/// Each object is read in one pass over its visible values; only a key or an index that holds
/// concurrent values is read again for all of them (a lookup per key costs a seek each, which
/// made this check a third of an initial sync).
pub(crate) fn check_state(
    doc: &Automerge,
    heads: Option<&[ChangeHash]>,
    limits: &DocumentLimits,
) -> Result<(), DocumentLimit> {
    let mut stack: Vec<(ObjId, ObjType, usize)> = vec![(automerge::ROOT, ObjType::Map, 0)];
    while let Some((obj, ty, depth)) = stack.pop() {
        let mut state = StateCheck {
            doc,
            heads,
            limits,
            depth,
            children: &mut stack,
        };
        match ty {
            ObjType::Map | ObjType::Table => {
                let items = match heads {
                    Some(h) => doc.map_range_at(&obj, .., h),
                    None => doc.map_range(&obj, ..),
                };
                for item in items {
                    state.text(item.key.as_ref())?;
                    let visible = item.id();
                    state.value_ref(&item.value, visible.clone())?;
                    if item.conflict {
                        let all = match heads {
                            Some(h) => doc.get_all_at(&obj, item.key.as_ref(), h),
                            None => doc.get_all(&obj, item.key.as_ref()),
                        };
                        state.concurrent(all.unwrap_or_default(), &visible)?;
                    }
                }
            }
            ObjType::List => {
                let items = match heads {
                    Some(h) => doc.list_range_at(&obj, .., h),
                    None => doc.list_range(&obj, ..),
                };
                for item in items {
                    let visible = item.id();
                    state.value_ref(&item.value, visible.clone())?;
                    if item.conflict {
                        let all = match heads {
                            Some(h) => doc.get_all_at(&obj, item.index, h),
                            None => doc.get_all(&obj, item.index),
                        };
                        state.concurrent(all.unwrap_or_default(), &visible)?;
                    }
                }
            }
            ObjType::Text => {}
        }
    }
    Ok(())
}

/// What `check_state` checks of each value of one object.
struct StateCheck<'a> {
    doc: &'a Automerge,
    heads: Option<&'a [ChangeHash]>,
    limits: &'a DocumentLimits,
    /// The object's depth.
    depth: usize,
    /// Objects still to check.
    children: &'a mut Vec<(ObjId, ObjType, usize)>,
}

impl StateCheck<'_> {
    fn value_ref(
        &mut self,
        value: &automerge::ValueRef<'_>,
        id: ObjId,
    ) -> Result<(), DocumentLimit> {
        use automerge::ScalarValueRef;
        match value {
            automerge::ValueRef::Object(ty) => self.object(*ty, id),
            automerge::ValueRef::Scalar(ScalarValueRef::Str(text)) => self.text(text),
            automerge::ValueRef::Scalar(ScalarValueRef::Bytes(bytes)) => self.bytes(bytes.len()),
            automerge::ValueRef::Scalar(_) => Ok(()),
        }
    }

    /// The other values of a key or index with concurrent values (`visible` was checked).
    fn concurrent(
        &mut self,
        values: Vec<(Value<'_>, ObjId)>,
        visible: &ObjId,
    ) -> Result<(), DocumentLimit> {
        for (value, id) in values {
            if id == *visible {
                continue;
            }
            match value {
                Value::Object(ty) => self.object(ty, id)?,
                Value::Scalar(s) => match s.as_ref() {
                    ScalarValue::Str(text) => self.text(text)?,
                    ScalarValue::Bytes(bytes) => self.bytes(bytes.len())?,
                    _ => {}
                },
            }
        }
        Ok(())
    }

    fn object(&mut self, ty: ObjType, id: ObjId) -> Result<(), DocumentLimit> {
        if self.depth + 1 > self.limits.max_depth {
            return Err(DocumentLimit::Depth);
        }
        if ty == ObjType::Text {
            let len = match self.heads {
                Some(h) => self.doc.length_at(&id, h),
                None => self.doc.length(&id),
            };
            if len > self.limits.max_text_chars {
                return Err(DocumentLimit::TextLength);
            }
        } else {
            self.children.push((id, ty, self.depth + 1));
        }
        Ok(())
    }

    fn text(&self, text: &str) -> Result<(), DocumentLimit> {
        // Bytes over the bound may still be few enough characters.
        if text.len() > self.limits.max_text_chars
            && text.chars().count() > self.limits.max_text_chars
        {
            return Err(DocumentLimit::TextLength);
        }
        Ok(())
    }

    fn bytes(&self, len: usize) -> Result<(), DocumentLimit> {
        if len > self.limits.max_text_chars * 4 {
            return Err(DocumentLimit::TextLength);
        }
        Ok(())
    }
}

/// Whether every change of `doc` after `before` numbers its operations as Automerge numbers a
/// change it makes: one past the largest operation number of the document it was made on. That
/// document held the change's dependencies, so the number is past theirs; an edit made at an
/// older version (`write_record` at the version read) still counts from the whole document, so
/// the number may be further on, but never past the largest number of the operations received
/// before it (the hub's document, and the changes pushed with it that are numbered before it).
/// A change can therefore win a conflict only as an honest device's later edit would, and
/// numbers grow with the operations really made, far from Automerge's 2^32. A whole document
/// cannot say otherwise (its format derives the number from the dependencies); received
/// changes can.
///
/// An actor's changes also number their operations in the order of their own numbers (`seq`):
/// Automerge files an actor's operations by those numbers, and a change numbered below its
/// actor's previous one leaves the document unreadable (its changes can no longer be listed).
pub(crate) fn numbered_in_sequence(doc: &Automerge, before: &[ChangeHash]) -> bool {
    let new = doc.get_changes_meta(before);
    let max_ops: std::collections::HashMap<ChangeHash, u64> =
        new.iter().map(|c| (c.hash, c.max_op)).collect();
    // Each actor's new changes by their number, and where the actor's operations stood before
    // them (the document's whole history is read only when an actor had changes before).
    let mut by_actor: std::collections::HashMap<&automerge::ActorId, Vec<(u64, u64, u64)>> =
        std::collections::HashMap::new();
    for c in &new {
        by_actor
            .entry(c.actor.as_ref())
            .or_default()
            .push((c.seq, c.start_op, c.max_op));
    }
    // The actor's previous change is most often a dependency of its first new one.
    let previous_among_deps = |actor: &automerge::ActorId, seq: u64| {
        new.iter()
            .filter(|c| c.actor.as_ref() == actor && c.seq == seq)
            .flat_map(|c| c.deps.iter())
            .filter(|dep| !max_ops.contains_key(*dep))
            .filter_map(|dep| doc.get_change_meta_by_hash(dep))
            .find(|dep| dep.actor.as_ref() == actor && dep.seq + 1 == seq)
            .map(|dep| dep.max_op)
    };
    let mut history: Option<Vec<automerge::ChangeMetadata<'_>>> = None;
    for (actor, changes) in &mut by_actor {
        changes.sort_unstable();
        let first_seq = changes[0].0;
        let mut last_op = if first_seq > 1 {
            match previous_among_deps(actor, first_seq).or_else(|| {
                history
                    .get_or_insert_with(|| doc.get_changes_meta(&[]))
                    .iter()
                    .find(|c| c.actor.as_ref() == *actor && c.seq == first_seq - 1)
                    .map(|c| c.max_op)
            }) {
                Some(max_op) => max_op,
                None => return false,
            }
        } else {
            0
        };
        for (_, start_op, max_op) in changes.iter() {
            if *start_op <= last_op {
                return false;
            }
            last_op = *max_op;
        }
    }
    // The largest operation number held before: every change's number is past its history's,
    // so the heads hold it.
    let held_before = before
        .iter()
        .filter_map(|head| doc.get_change_meta_by_hash(head))
        .map(|meta| meta.max_op)
        .max()
        .unwrap_or(0);
    // The new changes by first number, with the largest number among those before each.
    let mut by_start: Vec<(u64, u64)> = new.iter().map(|c| (c.start_op, c.max_op)).collect();
    by_start.sort_unstable();
    let largest_before: Vec<u64> = std::iter::once(held_before)
        .chain(by_start.iter().scan(held_before, |largest, (_, max)| {
            *largest = (*largest).max(*max);
            Some(*largest)
        }))
        .collect();
    new.iter().all(|change| {
        let history_ends = change
            .deps
            .iter()
            .map(|dep| {
                max_ops
                    .get(dep)
                    .copied()
                    .or_else(|| doc.get_change_meta_by_hash(dep).map(|meta| meta.max_op))
            })
            .try_fold(0u64, |max, op| op.map(|op| max.max(op)));
        let received_before =
            largest_before[by_start.partition_point(|(start, _)| *start < change.start_op)];
        history_ends
            .is_some_and(|ends| change.start_op > ends && change.start_op <= received_before + 1)
    })
}

/// Checks the depth of every object the document's history ever created (deleted ones
/// included), and its number of operations and changes, without recursion.
pub(crate) fn check_history(doc: &Automerge, limits: &DocumentLimits) -> Result<(), DocumentLimit> {
    use automerge::legacy::{ObjectId, OpType};
    use std::collections::HashMap;
    let changes = doc.get_changes(&[]);
    if changes.len() as u64 > limits.max_changes {
        return Err(DocumentLimit::Changes);
    }
    let operations: u64 = changes.iter().map(|c| c.len() as u64).sum();
    if !within_operations(operations, limits) {
        return Err(DocumentLimit::Operations);
    }
    // Changes come in causal order: an object is created before anything is put into it.
    let mut depth: HashMap<(u64, Vec<u8>), usize> = HashMap::new();
    for change in changes {
        let expanded = change.decode();
        let actor = expanded.actor_id.to_bytes().to_vec();
        for (i, op) in expanded.operations.iter().enumerate() {
            if !matches!(op.action, OpType::Make(_)) {
                continue;
            }
            let parent = match &op.obj {
                ObjectId::Root => 0,
                ObjectId::Id(id) => depth
                    .get(&(id.counter(), id.actor().to_bytes().to_vec()))
                    .copied()
                    .unwrap_or(0),
            };
            if parent + 1 > limits.max_depth {
                return Err(DocumentLimit::Depth);
            }
            let counter = expanded.start_op.get() + i as u64;
            depth.insert((counter, actor.clone()), parent + 1);
        }
    }
    Ok(())
}

/// Checks the size of a document as it will be stored (`save_nocompress`'s bytes).
pub(crate) fn check_size(plain_len: usize, limits: &DocumentLimits) -> Result<(), DocumentLimit> {
    if plain_len > limits.max_bytes {
        return Err(DocumentLimit::Bytes);
    }
    Ok(())
}

/// The first string in a record's JSON longer than the text bound, as the dotted path of its
/// field (walked with an explicit stack: records are shallow, but the JSON may come from an
/// app).
pub(crate) fn long_text(json: &serde_json::Value, limits: &DocumentLimits) -> Option<String> {
    use serde_json::Value as Json;
    let mut stack: Vec<(&Json, String)> = vec![(json, String::new())];
    while let Some((value, path)) = stack.pop() {
        match value {
            Json::String(s)
                if s.len() > limits.max_text_chars && s.chars().count() > limits.max_text_chars =>
            {
                return Some(path);
            }
            Json::Object(map) => {
                for (key, child) in map {
                    // A key is a string the document holds too (a buyer, a task).
                    if key.len() > limits.max_text_chars
                        && key.chars().count() > limits.max_text_chars
                    {
                        return Some(path);
                    }
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    stack.push((child, child_path));
                }
            }
            Json::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    stack.push((child, format!("{path}.{i}")));
                }
            }
            _ => {}
        }
    }
    None
}

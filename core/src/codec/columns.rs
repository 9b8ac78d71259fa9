//! A reader of Automerge's saved documents that gives a document's current values without
//! loading it: what a phone needs of each record on a first sync from its hub.
//!
//! Loading a document makes Automerge rebuild every change of its history from the columns
//! (to hash them and check the heads the document names), and that was most of a phone's work
//! on a first sync. A document the hub saved holds, in its operation columns, every operation
//! that is still part of the state, sorted by object, key and id, with the operations that
//! replaced each one (its successors). The current value of a key is its operation with no
//! successor, the highest id winning when several have none: that is all a record needs.
//!
//! The reader only takes what Vigie's own documents hold (maps, lists, text, scalars); anything
//! else (compressed columns, counters, marks, tables, a chunk that is not one whole document,
//! a value over the bounds) is `None`, and the caller loads the document with Automerge as
//! before, which gives the answer or the error it always gave. Every read is bounded: no
//! allocation follows a count the bytes claim, and nesting is limited before anything recurses.

use super::bounds::DocumentLimits;
use super::history;
pub(crate) use super::history::History;
use automerge::ChangeHash;
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};

pub(super) const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
pub(super) const CHUNK_DOCUMENT: u8 = 0;
pub(super) const COLUMN_DEFLATE: u64 = 0b1000;

// Column specifications of a document's operation columns: (column id << 4) | type.
pub(super) const OBJ_ACTOR: u64 = 1;
pub(super) const OBJ_COUNTER: u64 = 2;
pub(super) const KEY_ACTOR: u64 = 1 << 4 | 1;
pub(super) const KEY_COUNTER: u64 = 1 << 4 | 3;
pub(super) const KEY_STRING: u64 = 1 << 4 | 5;
const ID_ACTOR: u64 = 2 << 4 | 1;
const ID_COUNTER: u64 = 2 << 4 | 3;
pub(super) const INSERT: u64 = 3 << 4 | 4;
pub(super) const ACTION: u64 = 4 << 4 | 2;
pub(super) const VALUE_META: u64 = 5 << 4 | 6;
pub(super) const VALUE_RAW: u64 = 5 << 4 | 7;
const SUCC_COUNT: u64 = 8 << 4;
const SUCC_ACTOR: u64 = 8 << 4 | 1;
const SUCC_COUNTER: u64 = 8 << 4 | 3;

// Operation actions.
const MAKE_MAP: u64 = 0;
const SET: u64 = 1;
const MAKE_LIST: u64 = 2;
const MAKE_TEXT: u64 = 4;

/// Reads one saved document (`Automerge::save_nocompress`'s bytes) as JSON, each key's winning
/// value, as `doc::to_json` reads the loaded document: `None` if the bytes are anything else,
/// or hold anything this reader leaves to Automerge (see the module's documentation), or a
/// value over `limits`.
pub(crate) fn read(bytes: &[u8], limits: &DocumentLimits) -> Option<Json> {
    parse(bytes, limits, Heads::Named)?.json(limits)
}

mod values;

pub(crate) use values::Root;

/// A document checked without Automerge: its history, each change rebuilt and hashed
/// (`history`), and what the caller's reader made of its values, if it read them.
pub(crate) struct CheckedDocument<T> {
    pub(crate) value: Option<T>,
    pub(crate) history: History,
}

/// `parse`, and the document checked as Automerge's load checks it: its history matches the
/// heads it names, its columns are written and its operations ordered as Automerge writes them,
/// its values within `limits`; and `read` given its values. `None` if anything does not match:
/// the caller then loads it with Automerge.
pub(crate) fn read_checked<T>(
    bytes: &[u8],
    limits: &DocumentLimits,
    read: impl FnOnce(&Root, &History) -> Option<T>,
) -> Option<CheckedDocument<T>> {
    let parsed = parse(bytes, limits, Heads::Named)?;
    check_parsed(&parsed, limits, Heads::Named, read)
}

fn check_parsed<T>(
    parsed: &Parsed,
    limits: &DocumentLimits,
    heads: Heads,
    read: impl FnOnce(&Root, &History) -> Option<T>,
) -> Option<CheckedDocument<T>> {
    let objects = objects(&parsed.ops)?;
    if !parsed.in_automerge_order(&objects) || !parsed.columns_canonical() {
        return None;
    }
    let history = history::check(parsed, limits.max_changes, heads == Heads::Derived)?;
    let state = parsed.state(limits, objects);
    let root = Root::new(&state)?;
    let value = read(&root, &history);
    // A read that went through every value checked them all against the bounds; otherwise
    // they are checked here.
    if !root.walked.get() {
        state.object_json(None, 0)?;
    }
    Some(CheckedDocument { value, history })
}

/// The changes of a saved document that `wanted` names, each as a change chunk, by hash
/// (`history::change_chunks`): what a hub sends a device that holds the rest of the document,
/// without loading it. `None` if the reader leaves the document to Automerge.
pub(crate) fn change_chunks(
    bytes: &[u8],
    limits: &DocumentLimits,
    wanted: &HashSet<ChangeHash>,
) -> Option<HashMap<ChangeHash, Vec<u8>>> {
    let parsed = parse(bytes, limits, Heads::Named)?;
    history::change_chunks(&parsed, limits.max_changes, wanted)
}

/// The checksum of a document sent without its heads: none (the device writes the document's
/// own when it restores it), so that nothing takes the bytes for a whole document.
const HEADLESS_CHECKSUM: [u8; 4] = [0; 4];

/// A saved document without its heads, for a device that works them out (`restore_heads`): 32
/// bytes a head that compression cannot shorten, and most of what a first sync carried beyond
/// the records themselves. `None` if the bytes are not one document chunk with heads.
pub(crate) fn strip_heads(bytes: &[u8]) -> Option<Vec<u8>> {
    let (_, data) = document_data(bytes)?;
    let mut d = Reader::new(data);
    let actor_count = d.uleb()?;
    d.skip_prefixed(actor_count)?;
    let heads_start = d.at;
    let head_count = d.uleb()?;
    d.take(head_count.checked_mul(32)?)?;
    if head_count == 0 {
        return None;
    }
    let columns_start = d.at;
    let change_layout = column_layout(&mut d)?;
    let op_layout = column_layout(&mut d)?;
    let mut columns_len = 0u64;
    for (_, len) in change_layout.iter().chain(&op_layout) {
        columns_len = columns_len.checked_add(*len)?;
    }
    d.take(columns_len)?;
    let mut stripped = Vec::with_capacity(data.len());
    stripped.extend_from_slice(&data[..heads_start]);
    stripped.push(0);
    stripped.extend_from_slice(&data[columns_start..d.at]);
    Some(document_chunk(&stripped, Some(HEADLESS_CHECKSUM)))
}

/// Whether the bytes are a document a hub sent without its heads.
pub(crate) fn is_headless(bytes: &[u8]) -> bool {
    bytes.len() > 9
        && bytes[..4] == MAGIC
        && bytes[4..8] == HEADLESS_CHECKSUM
        && bytes[8] == CHUNK_DOCUMENT
}

/// A document a hub sent without its heads, whole again: its history rebuilt and hashed, its
/// heads and their indices written back, its checksum its own; and what `read_checked` gives of
/// it. `None` if the reader leaves the document to Automerge (`with_own_checksum` then gives
/// Automerge the bytes to work the heads out).
pub(crate) fn restore_heads<T>(
    bytes: &[u8],
    limits: &DocumentLimits,
    read: impl FnOnce(&Root, &History) -> Option<T>,
) -> Option<(Vec<u8>, CheckedDocument<T>)> {
    let parsed = parse(bytes, limits, Heads::Derived)?;
    let checked = check_parsed(&parsed, limits, Heads::Derived, read)?;
    let history = &checked.history;
    let mut data = Vec::with_capacity(parsed.data.len() + history.heads.len() * 33);
    data.extend_from_slice(&parsed.data[..parsed.heads_span.start]);
    history::write_uleb(history.heads.len() as u64, &mut data);
    for head in &history.heads {
        data.extend_from_slice(&head.0);
    }
    data.extend_from_slice(&parsed.data[parsed.heads_span.end..parsed.suffix_at]);
    for index in &history.head_indices {
        history::write_uleb(*index as u64, &mut data);
    }
    Some((document_chunk(&data, None), checked))
}

/// A headless document's bytes with the checksum of their own content, for Automerge to load
/// without checking heads it does not have.
pub(crate) fn with_own_checksum(bytes: &[u8]) -> Vec<u8> {
    let mut fixed = bytes.to_vec();
    if fixed.len() > 8 {
        let checksum = checksum_of(&fixed);
        fixed[4..8].copy_from_slice(&checksum);
    }
    fixed
}

/// A chunk's own checksum: the first four bytes of the SHA-256 of what follows the magic
/// bytes and the checksum (`chunk` is longer than those eight).
fn checksum_of(chunk: &[u8]) -> [u8; 4] {
    let hash = Sha256::digest(&chunk[8..]);
    [hash[0], hash[1], hash[2], hash[3]]
}

/// A document chunk's checksum and data: `None` unless the bytes are one document chunk and
/// nothing after it.
fn document_data(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut r = Reader::new(bytes);
    if r.take(4)? != MAGIC {
        return None;
    }
    let checksum = r.take(4)?;
    if r.byte()? != CHUNK_DOCUMENT {
        return None;
    }
    let len = r.uleb()?;
    let data = r.take(len)?;
    r.is_empty().then_some((checksum, data))
}

/// A document chunk of `data`, with its checksum (or `checksum`).
fn document_chunk(data: &[u8], checksum: Option<[u8; 4]>) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(data.len() + 16);
    chunk.extend_from_slice(&MAGIC);
    chunk.extend_from_slice(&[0; 4]);
    chunk.push(CHUNK_DOCUMENT);
    history::write_uleb(data.len() as u64, &mut chunk);
    chunk.extend_from_slice(data);
    let checksum = checksum.unwrap_or_else(|| checksum_of(&chunk));
    chunk[4..8].copy_from_slice(&checksum);
    chunk
}

/// A document chunk's parts, its operations decoded.
pub(super) struct Parsed<'a> {
    pub(super) actors: Vec<&'a [u8]>,
    /// The heads the document names, 32 bytes each.
    pub(super) heads: &'a [u8],
    /// The chunk's data, where its heads (their count and hashes) are, and where what follows
    /// the columns starts.
    data: &'a [u8],
    heads_span: std::ops::Range<usize>,
    suffix_at: usize,
    /// What follows the columns: each head's index among the changes (empty in documents of
    /// older writers).
    pub(super) head_indices: &'a [u8],
    pub(super) change_columns: Vec<(u64, &'a [u8])>,
    op_columns: HashMap<u64, &'a [u8]>,
    pub(super) ops: Vec<Op<'a>>,
    /// Every operation's successors, in order (`Op::succ` is its range).
    pub(super) successors: Vec<OpId>,
}

/// How a document names its heads: in the chunk (as Automerge writes it), or not at all (as a
/// hub sends it to a device that works them out, `strip_heads`).
#[derive(Clone, Copy, PartialEq)]
enum Heads {
    Named,
    Derived,
}

fn parse<'a>(bytes: &'a [u8], limits: &DocumentLimits, heads: Heads) -> Option<Parsed<'a>> {
    if bytes.len() > limits.max_bytes {
        return None;
    }
    let (checksum, data) = document_data(bytes)?;
    let valid = match heads {
        Heads::Named => checksum_of(bytes) == *checksum,
        // The device writes the checksum of the document it restores.
        Heads::Derived => checksum == HEADLESS_CHECKSUM,
    };
    if !valid {
        return None;
    }
    let mut d = Reader::new(data);
    let actor_count = d.uleb()?;
    // Every actor made a change of the document: more actors than the bound on changes is
    // not a document to read (and would hold a slice per byte of it).
    if actor_count > limits.max_changes {
        return None;
    }
    let mut actors = Vec::new();
    for _ in 0..actor_count {
        let len = d.uleb()?;
        actors.push(d.take(len)?);
    }
    let heads_start = d.at;
    let head_count = d.uleb()?;
    let heads_bytes = d.take(head_count.checked_mul(32)?)?;
    let heads_end = d.at;
    if heads == Heads::Derived && head_count != 0 {
        return None;
    }
    let change_layout = column_layout(&mut d)?;
    let op_layout = column_layout(&mut d)?;
    let mut change_columns = Vec::new();
    for (spec, len) in change_layout {
        if spec & COLUMN_DEFLATE != 0 {
            return None;
        }
        change_columns.push((spec, d.take(len)?));
    }
    let mut op_columns = HashMap::new();
    for (spec, len) in op_layout {
        if spec & COLUMN_DEFLATE != 0 {
            return None;
        }
        let data = d.take(len)?;
        if data.is_empty() {
            continue;
        }
        match spec {
            OBJ_ACTOR | OBJ_COUNTER | KEY_ACTOR | KEY_COUNTER | KEY_STRING | ID_ACTOR
            | ID_COUNTER | INSERT | ACTION | VALUE_META | VALUE_RAW | SUCC_COUNT | SUCC_ACTOR
            | SUCC_COUNTER => {
                if op_columns.insert(spec, data).is_some() {
                    return None;
                }
            }
            // Marks, expansion and columns of later formats: Automerge's to read.
            _ => return None,
        }
    }
    let (ops, successors) = operations(&op_columns, actors.len(), limits)?;
    let suffix_at = d.at;
    Some(Parsed {
        actors,
        heads: heads_bytes,
        data,
        heads_span: heads_start..heads_end,
        suffix_at,
        head_indices: d.rest(),
        change_columns,
        op_columns,
        ops,
        successors,
    })
}

impl<'a> Parsed<'a> {
    fn json(&self, limits: &DocumentLimits) -> Option<Json> {
        self.state(limits, objects(&self.ops)?).object_json(None, 0)
    }

    fn state<'o>(
        &'o self,
        limits: &'o DocumentLimits,
        objects: HashMap<Option<OpId>, Object>,
    ) -> State<'a, 'o> {
        State {
            ops: &self.ops,
            actors: &self.actors,
            limits,
            objects,
        }
    }

    /// Whether the actors and the operations are in the order Automerge keeps them: actors
    /// sorted; operations by object, then in a map by key and id, in a list by element (each
    /// element after the one it was inserted after, later insertions first) and id.
    fn in_automerge_order(&self, objects: &HashMap<Option<OpId>, Object>) -> bool {
        if self.actors.windows(2).any(|w| w[0] >= w[1]) {
            return false;
        }
        // Ids compare by counter, then actor: the actors are sorted, so by index.
        let order = |id: OpId| (id.counter, id.actor);
        let obj_order = |obj: Option<OpId>| obj.map(order);
        if self
            .ops
            .windows(2)
            .any(|w| obj_order(w[0].obj) > obj_order(w[1].obj))
        {
            return false;
        }
        objects.iter().all(|(_, object)| match object.ty {
            ObjType::Map => object.ops.windows(2).all(|w| {
                let (a, b) = (&self.ops[w[0]], &self.ops[w[1]]);
                match (&a.key, &b.key) {
                    (Key::Map(x), Key::Map(y)) => x < y || (x == y && order(a.id) < order(b.id)),
                    _ => false,
                }
            }),
            ObjType::List | ObjType::Text => self.in_list_order(&object.ops),
        })
    }

    /// A list's operations: a walk of the tree of insertions, each element's children (the
    /// elements inserted after it) latest first, each element followed by its updates.
    fn in_list_order(&self, ops: &[usize]) -> bool {
        // The path from the head to the current element, with the last child seen of each.
        let mut path: Vec<(Option<OpId>, Option<OpId>)> = vec![(None, None)];
        let mut last_id: Option<OpId> = None;
        for &i in ops {
            let op = &self.ops[i];
            let Key::Element(parent) = op.key else {
                return false;
            };
            if !op.insert {
                // An update of the current element, after the operations before it.
                let current = path.last().and_then(|(element, _)| *element);
                if parent.is_none()
                    || parent != current
                    || last_id.is_some_and(|l| (l.counter, l.actor) >= (op.id.counter, op.id.actor))
                {
                    return false;
                }
                last_id = Some(op.id);
                continue;
            }
            while path.last().is_some_and(|(element, _)| *element != parent) {
                path.pop();
            }
            let Some((_, last_child)) = path.last_mut() else {
                return false;
            };
            if last_child.is_some_and(|c| (c.counter, c.actor) <= (op.id.counter, op.id.actor)) {
                return false;
            }
            *last_child = Some(op.id);
            path.push((Some(op.id), None));
            last_id = Some(op.id);
        }
        true
    }

    /// Whether each operation column is written as Automerge writes it (one encoding of its
    /// values): bytes that decode to the same values written otherwise are left to Automerge.
    fn columns_canonical(&self) -> bool {
        self.op_columns
            .iter()
            .all(|(spec, data)| self.encode_op_column(*spec).as_slice() == *data)
    }

    /// An operation column of the operations, as Automerge writes it.
    fn encode_op_column(&self, spec: u64) -> Vec<u8> {
        let ops = &self.ops;
        let key_counter = |op: &Op| match op.key {
            Key::Map(_) => None,
            Key::Element(None) => Some(0),
            Key::Element(Some(id)) => Some(id.counter as i64),
        };
        let key_actor = |op: &Op| match op.key {
            Key::Element(Some(id)) => Some(id.actor as u64),
            _ => None,
        };
        let key_string = |op: &Op<'a>| match op.key {
            Key::Map(name) => Some(name),
            Key::Element(_) => None,
        };
        let successors = &self.successors;
        match spec {
            OBJ_ACTOR => history::encode_uleb(ops.iter().map(|o| o.obj.map(|i| i.actor as u64))),
            OBJ_COUNTER => history::encode_uleb(ops.iter().map(|o| o.obj.map(|i| i.counter))),
            KEY_ACTOR => history::encode_uleb(ops.iter().map(key_actor)),
            KEY_COUNTER => history::encode_delta(ops.iter().map(key_counter)),
            KEY_STRING => history::encode_str(ops.iter().map(key_string)),
            ID_ACTOR => history::encode_uleb(ops.iter().map(|o| Some(o.id.actor as u64))),
            ID_COUNTER => history::encode_delta(ops.iter().map(|o| Some(o.id.counter as i64))),
            INSERT => history::encode_bool(ops.iter().map(|o| o.insert)),
            ACTION => history::encode_uleb(ops.iter().map(|o| Some(o.action))),
            VALUE_META => history::encode_uleb(ops.iter().map(|o| Some(o.meta))),
            VALUE_RAW => ops.iter().flat_map(|o| o.raw).copied().collect(),
            SUCC_COUNT => history::encode_uleb(ops.iter().map(|o| Some(o.succ.len() as u64))),
            SUCC_ACTOR => history::encode_uleb(successors.iter().map(|s| Some(s.actor as u64))),
            SUCC_COUNTER => {
                history::encode_delta(successors.iter().map(|s| Some(s.counter as i64)))
            }
            _ => Vec::new(),
        }
    }
}

/// A column layout: its count, then each column's specification and length.
fn column_layout(r: &mut Reader) -> Option<Vec<(u64, u64)>> {
    let count = r.uleb()?;
    let mut layout = Vec::new();
    for _ in 0..count.min(64) {
        layout.push((r.uleb()?, r.uleb()?));
    }
    // In the order Automerge requires (by specification, the compression bit aside).
    let normal = |spec: u64| spec & !COLUMN_DEFLATE;
    let ordered = layout.windows(2).all(|w| normal(w[0].0) <= normal(w[1].0));
    let in_range = layout.iter().all(|(spec, _)| *spec <= u64::from(u32::MAX));
    (count <= 64 && ordered && in_range).then_some(layout)
}

/// An operation id (or object id): its counter and actor index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct OpId {
    pub(super) counter: u64,
    pub(super) actor: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Scalar<'a> {
    Null,
    Bool(bool),
    Uint(u64),
    Int(i64),
    F64(f64),
    Str(&'a str),
    Bytes(usize),
    Timestamp(i64),
}

#[derive(Debug)]
pub(super) enum Key<'a> {
    Map(&'a str),
    /// A list element's id; `None` is the list's head.
    Element(Option<OpId>),
}

#[derive(Debug)]
pub(super) struct Op<'a> {
    /// `None` is the root map.
    pub(super) obj: Option<OpId>,
    pub(super) key: Key<'a>,
    pub(super) id: OpId,
    pub(super) insert: bool,
    pub(super) action: u64,
    value: Scalar<'a>,
    /// The value's metadata and raw bytes, as the columns hold them.
    pub(super) meta: u64,
    pub(super) raw: &'a [u8],
    /// Where its successors are in `Parsed::successors`.
    pub(super) succ: std::ops::Range<usize>,
    visible: bool,
}

fn operations<'a>(
    columns: &HashMap<u64, &'a [u8]>,
    actors: usize,
    limits: &DocumentLimits,
) -> Option<(Vec<Op<'a>>, Vec<OpId>)> {
    let column = |spec| columns.get(&spec).copied().unwrap_or_default();
    let mut obj_actor = Rle::uleb(column(OBJ_ACTOR));
    let mut obj_counter = Rle::uleb(column(OBJ_COUNTER));
    let mut key_actor = Rle::uleb(column(KEY_ACTOR));
    let mut key_counter = Delta::new(column(KEY_COUNTER));
    let mut key_string = Rle::strings(column(KEY_STRING));
    let mut id_actor = Rle::uleb(column(ID_ACTOR));
    let mut id_counter = Delta::new(column(ID_COUNTER));
    let mut insert = Booleans::new(column(INSERT));
    let mut action = Rle::uleb(column(ACTION));
    let mut value_meta = Rle::uleb(column(VALUE_META));
    let mut value_raw = Reader::new(column(VALUE_RAW));
    let mut succ_count = Rle::uleb(column(SUCC_COUNT));
    let mut succ_actor = Rle::uleb(column(SUCC_ACTOR));
    let mut succ_counter = Delta::new(column(SUCC_COUNTER));
    let actor = |index: Option<u64>| -> Option<usize> {
        let index = usize::try_from(index?).ok()?;
        (index < actors).then_some(index)
    };
    let mut ops = Vec::new();
    let mut successor_ids = Vec::new();
    let mut all_successors = 0u64;
    while !action.is_done() {
        if ops.len() as u64 >= limits.max_operations {
            return None;
        }
        let obj = match (obj_counter.next()?, obj_actor.next()?) {
            (None, None) => None,
            (Some(counter), actor_index) => Some(OpId {
                counter,
                actor: actor(actor_index)?,
            }),
            (None, Some(_)) => return None,
        };
        let key_counter = key_counter.next()?;
        let key_actor = key_actor.next()?;
        let key = match (key_string.next()?, key_counter, key_actor) {
            (Some(name), None, None) => Key::Map(name),
            (None, Some(0), None) => Key::Element(None),
            (None, Some(counter), actor_index) => Key::Element(Some(OpId {
                counter: u64::try_from(counter).ok()?,
                actor: actor(actor_index)?,
            })),
            _ => return None,
        };
        let id = OpId {
            counter: u64::try_from(id_counter.next()??).ok()?,
            actor: actor(id_actor.next()?)?,
        };
        let insert = insert.next()?;
        let action = action.next()??;
        let meta = value_meta.next()?.unwrap_or(0);
        let raw = value_raw.take(meta >> 4)?;
        let value = scalar(meta & 0b1111, raw)?;
        let successors = succ_count.next()?.unwrap_or(0);
        // Each successor is an operation of the document: a run claiming more than the bound
        // allows is not walked.
        all_successors = all_successors.checked_add(successors)?;
        if all_successors > limits.max_operations {
            return None;
        }
        let first_successor = successor_ids.len();
        for _ in 0..successors {
            let actor = actor(succ_actor.next()?)?;
            let counter = u64::try_from(succ_counter.next()??).ok()?;
            successor_ids.push(OpId { counter, actor });
        }
        if !matches!(action, MAKE_MAP | SET | MAKE_LIST | MAKE_TEXT) {
            // Deletions, counters' increments, tables and marks: Automerge's to read.
            return None;
        }
        ops.push(Op {
            obj,
            key,
            id,
            insert,
            action,
            value,
            meta,
            raw,
            succ: first_successor..successor_ids.len(),
            visible: successors == 0,
        });
    }
    // Every column describes as many operations as the actions do.
    let exhausted = obj_actor.is_done()
        && obj_counter.is_done()
        && key_actor.is_done()
        && key_counter.is_done()
        && key_string.is_done()
        && id_actor.is_done()
        && id_counter.is_done()
        && value_meta.is_done()
        && value_raw.is_empty()
        && succ_count.is_done()
        && succ_actor.is_done()
        && succ_counter.is_done();
    exhausted.then_some((ops, successor_ids))
}

/// A value from its type (the low four bits of its metadata) and raw bytes.
fn scalar(kind: u64, raw: &[u8]) -> Option<Scalar<'_>> {
    let uleb = || {
        let mut r = Reader::new(raw);
        r.uleb().filter(|_| r.is_empty())
    };
    let sleb = || {
        let mut r = Reader::new(raw);
        r.sleb().filter(|_| r.is_empty())
    };
    Some(match kind {
        0 if raw.is_empty() => Scalar::Null,
        1 if raw.is_empty() => Scalar::Bool(false),
        2 if raw.is_empty() => Scalar::Bool(true),
        3 => Scalar::Uint(uleb()?),
        4 => Scalar::Int(sleb()?),
        5 => Scalar::F64(f64::from_le_bytes(raw.try_into().ok()?)),
        6 => Scalar::Str(std::str::from_utf8(raw).ok()?),
        7 => Scalar::Bytes(raw.len()),
        9 => Scalar::Timestamp(sleb()?),
        // Counters (whose value is their increments') and unknown types.
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ObjType {
    Map,
    List,
    Text,
}

/// An object's operations, in document order.
struct Object {
    ty: ObjType,
    ops: Vec<usize>,
}

/// Every object made by an operation, with the operations in it; the root is `None`.
fn objects(ops: &[Op]) -> Option<HashMap<Option<OpId>, Object>> {
    let mut objects = HashMap::new();
    objects.insert(
        None,
        Object {
            ty: ObjType::Map,
            ops: Vec::new(),
        },
    );
    for op in ops {
        let ty = match op.action {
            MAKE_MAP => ObjType::Map,
            MAKE_LIST => ObjType::List,
            MAKE_TEXT => ObjType::Text,
            _ => continue,
        };
        let made = Object {
            ty,
            ops: Vec::new(),
        };
        if objects.insert(Some(op.id), made).is_some() {
            return None;
        }
    }
    // Operations come grouped by object: one lookup per group.
    let mut i = 0;
    while i < ops.len() {
        let obj = ops[i].obj;
        let run = ops[i..].iter().take_while(|op| op.obj == obj).count();
        objects.get_mut(&obj)?.ops.extend(i..i + run);
        i += run;
    }
    Some(objects)
}

struct State<'a, 'o> {
    ops: &'o [Op<'a>],
    actors: &'o [&'a [u8]],
    limits: &'o DocumentLimits,
    objects: HashMap<Option<OpId>, Object>,
}

/// A value of a key or an element: its winner and every value it holds.
struct Slot {
    winner: usize,
    all: Values,
}

/// The visible values of a key or an element: nearly always one, held without allocating.
#[derive(Default)]
struct Values {
    first: Option<usize>,
    more: Vec<usize>,
}

impl Values {
    fn push(&mut self, i: usize) {
        match self.first {
            None => self.first = Some(i),
            Some(_) => self.more.push(i),
        }
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.first.into_iter().chain(self.more.iter().copied())
    }
}

impl State<'_, '_> {
    /// Whether `a` is a later operation than `b` (Automerge's order: counter, then actor).
    fn later(&self, a: usize, b: usize) -> bool {
        let (a, b) = (self.ops[a].id, self.ops[b].id);
        (a.counter, self.actors[a.actor]) > (b.counter, self.actors[b.actor])
    }

    fn slot(&self, visible: Values) -> Option<Slot> {
        let mut winner = visible.first?;
        for &i in &visible.more {
            if self.later(i, winner) {
                winner = i;
            }
        }
        Some(Slot {
            winner,
            all: visible,
        })
    }

    /// A map's keys with their visible values, in key order.
    fn map_slots(&self, obj: Option<OpId>) -> Option<Vec<(&str, Slot)>> {
        let object = self.objects.get(&obj)?;
        // Keys come sorted in Automerge's order: grouped as they come, sorted only if not.
        let mut keys: Vec<(&str, Values)> = Vec::new();
        let mut sorted = true;
        for &i in &object.ops {
            let op = &self.ops[i];
            let Key::Map(name) = op.key else { return None };
            if op.insert {
                return None;
            }
            if !op.visible {
                continue;
            }
            match keys.last_mut() {
                Some((last, values)) if *last == name => values.push(i),
                last => {
                    sorted &= last.is_none_or(|(last, _)| *last < name);
                    let mut values = Values::default();
                    values.push(i);
                    keys.push((name, values));
                }
            }
        }
        if !sorted {
            let mut grouped: BTreeMap<&str, Values> = BTreeMap::new();
            for (name, values) in keys {
                let all = grouped.entry(name).or_default();
                values.iter().for_each(|i| all.push(i));
            }
            keys = grouped.into_iter().collect();
        }
        keys.into_iter()
            .map(|(key, values)| Some((key, self.slot(values)?)))
            .collect()
    }

    /// A list's or a text's visible elements, in order.
    fn list_slots(&self, obj: Option<OpId>) -> Option<Vec<Slot>> {
        let object = self.objects.get(&obj)?;
        // At most one element per operation: a text is a list of characters, and growing these
        // a character at a time was a tenth of the allocations of a phone's initial sync.
        let mut elements: Vec<Values> = Vec::with_capacity(object.ops.len());
        let mut ids: Vec<OpId> = Vec::with_capacity(object.ops.len());
        // Built only if an update does not follow its element, as it does in Automerge's order.
        let mut index: Option<(HashMap<OpId, usize>, usize)> = None;
        for &i in &object.ops {
            let op = &self.ops[i];
            let Key::Element(_) = op.key else { return None };
            let element = if op.insert {
                ids.push(op.id);
                elements.push(Values::default());
                elements.len() - 1
            } else {
                let Key::Element(Some(target)) = op.key else {
                    return None;
                };
                if ids.last() == Some(&target) {
                    elements.len() - 1
                } else {
                    let (index, indexed) = index.get_or_insert_with(|| (HashMap::new(), 0));
                    for (n, id) in ids.iter().enumerate().skip(*indexed) {
                        index.entry(*id).or_insert(n);
                    }
                    *indexed = ids.len();
                    *index.get(&target)?
                }
            };
            if op.visible {
                elements[element].push(i);
            }
        }
        Some(
            elements
                .into_iter()
                .filter_map(|values| self.slot(values))
                .collect(),
        )
    }

    /// Checks every value of a slot against the bounds (as `bounds::check_state` does).
    fn check(&self, slot: &Slot, depth: usize) -> Option<()> {
        for i in slot.all.iter() {
            let op = &self.ops[i];
            match (op.action, &op.value) {
                (SET, Scalar::Str(text)) => {
                    if text.len() > self.limits.max_text_chars
                        && text.chars().count() > self.limits.max_text_chars
                    {
                        return None;
                    }
                }
                (SET, Scalar::Bytes(len)) if *len > self.limits.max_text_chars * 4 => {
                    return None;
                }
                (SET, _) => {}
                _ => {
                    if depth + 1 > self.limits.max_depth {
                        return None;
                    }
                    if i != slot.winner {
                        // A concurrent object is checked as deep as the winner would be.
                        self.object_json(Some(op.id), depth + 1)?;
                    }
                }
            }
        }
        Some(())
    }

    fn value_json(&self, slot: &Slot, depth: usize) -> Option<Json> {
        self.check(slot, depth)?;
        let op = &self.ops[slot.winner];
        if op.action != SET {
            return self.object_json(Some(op.id), depth + 1);
        }
        Some(match op.value {
            Scalar::Null | Scalar::Bytes(_) => Json::Null,
            Scalar::Bool(b) => Json::Bool(b),
            Scalar::Uint(u) => Json::from(u),
            Scalar::Int(i) => Json::from(i),
            Scalar::F64(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
            Scalar::Str(s) => Json::String(s.to_string()),
            Scalar::Timestamp(t) => Json::from(t),
        })
    }

    fn object_json(&self, obj: Option<OpId>, depth: usize) -> Option<Json> {
        if depth > self.limits.max_depth {
            return None;
        }
        match self.objects.get(&obj)?.ty {
            ObjType::Map => {
                let mut map = Map::new();
                for (key, slot) in self.map_slots(obj)? {
                    map.insert(key.to_string(), self.value_json(&slot, depth)?);
                }
                Some(Json::Object(map))
            }
            ObjType::List => self
                .list_slots(obj)?
                .iter()
                .map(|slot| self.value_json(slot, depth))
                .collect::<Option<Vec<_>>>()
                .map(Json::Array),
            ObjType::Text => self.text(obj).map(Json::String),
        }
    }

    /// A text object's characters, if it holds only characters and no more than the bounds.
    fn text(&self, obj: Option<OpId>) -> Option<String> {
        let ops = &self.objects.get(&obj)?.ops;
        // A text never edited in place (every operation an insertion, as typing and most
        // edits make it) holds one operation per character, in order: its text is its visible
        // characters, read without working out each element's values (`list_slots`).
        let winners: Box<dyn Iterator<Item = usize>> = if ops
            .iter()
            .all(|&i| self.ops[i].insert && matches!(self.ops[i].key, Key::Element(_)))
        {
            Box::new(ops.iter().copied().filter(|&i| self.ops[i].visible))
        } else {
            Box::new(self.list_slots(obj)?.into_iter().map(|slot| slot.winner))
        };
        let mut text = String::with_capacity(ops.len());
        let mut chars = 0;
        for i in winners {
            match (self.ops[i].action, &self.ops[i].value) {
                (SET, Scalar::Str(s)) => {
                    text.push_str(s);
                    chars += s.chars().count();
                }
                // Objects in text: Automerge's to read.
                _ => return None,
            }
        }
        (chars <= self.limits.max_text_chars).then_some(text)
    }
}

/// A cursor over bytes; every read fails (`None`) rather than passing the end.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.at >= self.bytes.len()
    }

    pub(super) fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let n = usize::try_from(n).ok()?;
        let end = self.at.checked_add(n)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    pub(super) fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub(super) fn uleb(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    pub(super) fn sleb(&mut self) -> Option<i64> {
        let mut value = 0i64;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            if shift >= 64 {
                return None;
            }
            value |= i64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Some(value);
            }
        }
    }

    /// The bytes not read yet.
    pub(super) fn rest(&mut self) -> &'a [u8] {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        self.at = self.bytes.len();
        rest
    }

    /// Skips `count` length-prefixed byte strings (actor ids).
    pub(super) fn skip_prefixed(&mut self, count: u64) -> Option<()> {
        for _ in 0..count {
            let len = self.uleb()?;
            self.take(len)?;
        }
        Some(())
    }
}

/// A run-length encoded column: runs of one value repeated (a positive count), of literal
/// values (a negative count), or of nulls (a zero, then the count). An exhausted column reads
/// as nulls; `None` is damage. Each value is decoded once, a repeated one once for its run.
pub(super) struct Rle<'a, T> {
    r: Reader<'a>,
    run: Run<T>,
    read: fn(&mut Reader<'a>) -> Option<T>,
}

#[derive(Clone, Copy)]
enum Run<T> {
    None,
    Repeat { count: u64, value: T },
    Literal { count: u64 },
    Nulls { count: u64 },
}

impl<'a, T: Copy> Rle<'a, T> {
    fn with(bytes: &'a [u8], read: fn(&mut Reader<'a>) -> Option<T>) -> Self {
        Rle {
            r: Reader::new(bytes),
            run: Run::None,
            read,
        }
    }

    pub(super) fn is_done(&self) -> bool {
        self.r.is_empty()
            && match self.run {
                Run::None => true,
                Run::Repeat { count, .. } | Run::Literal { count } | Run::Nulls { count } => {
                    count == 0
                }
            }
    }

    /// The next value: `Some(None)` for a null.
    pub(super) fn next(&mut self) -> Option<Option<T>> {
        loop {
            match &mut self.run {
                Run::Repeat { count, value } if *count > 0 => {
                    *count -= 1;
                    return Some(Some(*value));
                }
                Run::Literal { count } if *count > 0 => {
                    *count -= 1;
                    return Some(Some((self.read)(&mut self.r)?));
                }
                Run::Nulls { count } if *count > 0 => {
                    *count -= 1;
                    return Some(None);
                }
                _ => {}
            }
            if self.r.is_empty() {
                return Some(None);
            }
            let count = self.r.sleb()?;
            self.run = if count > 0 {
                Run::Repeat {
                    count: count as u64,
                    value: (self.read)(&mut self.r)?,
                }
            } else if count < 0 {
                Run::Literal {
                    count: count.unsigned_abs(),
                }
            } else {
                Run::Nulls {
                    count: self.r.uleb()?,
                }
            };
        }
    }
}

impl<'a> Rle<'a, u64> {
    pub(super) fn uleb(bytes: &'a [u8]) -> Self {
        Rle::with(bytes, Reader::uleb)
    }
}

impl<'a> Rle<'a, i64> {
    fn sleb(bytes: &'a [u8]) -> Self {
        Rle::with(bytes, Reader::sleb)
    }
}

impl<'a> Rle<'a, &'a str> {
    pub(super) fn strings(bytes: &'a [u8]) -> Self {
        Rle::with(bytes, |r| {
            let len = r.uleb()?;
            std::str::from_utf8(r.take(len)?).ok()
        })
    }
}

/// A delta-encoded column: run-length encoded differences from the previous value.
pub(super) struct Delta<'a> {
    rle: Rle<'a, i64>,
    last: i64,
}

impl<'a> Delta<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Delta {
            rle: Rle::sleb(bytes),
            last: 0,
        }
    }

    pub(super) fn is_done(&self) -> bool {
        self.rle.is_done()
    }

    pub(super) fn next(&mut self) -> Option<Option<i64>> {
        match self.rle.next()? {
            None => Some(None),
            Some(delta) => {
                self.last = self.last.checked_add(delta)?;
                Some(Some(self.last))
            }
        }
    }
}

/// A boolean column: counts of alternating runs, starting with `false`.
struct Booleans<'a> {
    r: Reader<'a>,
    value: bool,
    left: u64,
}

impl<'a> Booleans<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Booleans {
            r: Reader::new(bytes),
            value: true,
            left: 0,
        }
    }

    fn next(&mut self) -> Option<bool> {
        while self.left == 0 {
            if self.r.is_empty() {
                return Some(false);
            }
            self.left = self.r.uleb()?;
            self.value = !self.value;
        }
        self.left -= 1;
        Some(self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ObjType as AmType, ROOT, ReadDoc, ScalarValue};

    /// Every value of a document, read by serde from the columns (`Root::read`).
    fn as_json(root: &Root, _: &History) -> Option<Json> {
        root.read(&|_| false)
    }

    fn limits() -> DocumentLimits {
        DocumentLimits::STANDARD
    }

    use crate::codec::history::write_uleb as uleb;

    /// A run of `count` copies of one value, as a run-length encoded column writes it (the
    /// count is signed LEB128; counts below 2^62 encode as their unsigned form with a zero
    /// sign bit, which `uleb` gives when the last byte's bit 6 is clear).
    fn repeated(count: u64, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        uleb(count, &mut out);
        if out.last().is_some_and(|b| b & 0x40 != 0) {
            *out.last_mut().unwrap() |= 0x80;
            out.push(0);
        }
        out.extend_from_slice(value);
        out
    }

    /// A document chunk of one actor, no heads, no changes and these operation columns.
    fn chunk_of_columns(columns: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut data = vec![1, 16];
        data.extend_from_slice(&[7; 16]);
        data.extend_from_slice(&[0, 0]);
        uleb(columns.len() as u64, &mut data);
        for (spec, column) in columns {
            uleb(*spec, &mut data);
            uleb(column.len() as u64, &mut data);
        }
        for (_, column) in columns {
            data.extend_from_slice(column);
        }
        super::document_chunk(&data, None)
    }

    /// One operation setting root key `a` to null, with `successors` successors.
    fn one_set(successors: u64) -> Vec<u8> {
        let mut columns = vec![
            (KEY_STRING, repeated(1, &[1, b'a'])),
            (ID_ACTOR, repeated(1, &[0])),
            (ID_COUNTER, repeated(1, &[1])),
            (ACTION, repeated(1, &[SET as u8])),
            (VALUE_META, repeated(1, &[0])),
        ];
        if successors > 0 {
            let mut count = Vec::new();
            uleb(successors, &mut count);
            columns.push((SUCC_COUNT, repeated(1, &count)));
            columns.push((SUCC_ACTOR, repeated(successors, &[0])));
            columns.push((SUCC_COUNTER, repeated(successors, &[1])));
        }
        chunk_of_columns(&columns)
    }

    /// A document chunk written again from its parts, with these operation columns.
    fn rewrite(parsed: &Parsed, op_columns: &[(u64, Vec<u8>)], head_indices: &[u8]) -> Vec<u8> {
        let mut data = Vec::new();
        uleb(parsed.actors.len() as u64, &mut data);
        for actor in &parsed.actors {
            uleb(actor.len() as u64, &mut data);
            data.extend_from_slice(actor);
        }
        uleb(parsed.heads.len() as u64 / 32, &mut data);
        data.extend_from_slice(parsed.heads);
        for layout in [
            parsed
                .change_columns
                .iter()
                .map(|(spec, d)| (*spec, d.len()))
                .collect::<Vec<_>>(),
            op_columns
                .iter()
                .map(|(spec, d)| (*spec, d.len()))
                .collect(),
        ] {
            uleb(layout.len() as u64, &mut data);
            for (spec, len) in layout {
                uleb(spec, &mut data);
                uleb(len as u64, &mut data);
            }
        }
        for (_, column) in &parsed.change_columns {
            data.extend_from_slice(column);
        }
        for (_, column) in op_columns {
            data.extend_from_slice(column);
        }
        data.extend_from_slice(head_indices);
        super::document_chunk(&data, None)
    }

    /// The operation columns of `parsed`'s operations, as Automerge writes them.
    fn columns_of(parsed: &Parsed) -> Vec<(u64, Vec<u8>)> {
        let mut specs: Vec<u64> = parsed.op_columns.keys().copied().collect();
        specs.sort();
        specs
            .into_iter()
            .map(|spec| (spec, parsed.encode_op_column(spec)))
            .collect()
    }

    fn two_keys() -> Vec<u8> {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        tx.put(ROOT, "a", "abc").unwrap();
        tx.put(ROOT, "b", "xyz").unwrap();
        tx.commit();
        doc.save_nocompress()
    }

    fn checked(bytes: &[u8]) -> bool {
        read_checked(bytes, &limits(), as_json).is_some()
    }

    #[test]
    fn a_document_written_again_from_its_parts_is_checked() {
        let bytes = two_keys();
        let parsed = parse(&bytes, &limits(), Heads::Named).unwrap();
        let again = rewrite(&parsed, &columns_of(&parsed), parsed.head_indices);
        assert_eq!(again, bytes);
        assert!(checked(&again));
    }

    #[test]
    fn a_value_its_history_does_not_hold_is_not_checked() {
        // A byte changed and the checksum repaired: the reader reads it, its hash does not
        // match the heads.
        let bytes = two_keys();
        let mut parsed = parse(&bytes, &limits(), Heads::Named).unwrap();
        parsed.ops[0].raw = b"abd";
        let changed = rewrite(&parsed, &columns_of(&parsed), parsed.head_indices);
        assert_eq!(
            read(&changed, &limits()),
            Some(serde_json::json!({"a": "abd", "b": "xyz"}))
        );
        assert!(!checked(&changed));
    }

    #[test]
    fn operations_out_of_automerge_s_order_are_not_checked() {
        // The same changes, so the same hashes: only the order tells it apart.
        let bytes = two_keys();
        let mut parsed = parse(&bytes, &limits(), Heads::Named).unwrap();
        parsed.ops.swap(0, 1);
        let swapped = rewrite(&parsed, &columns_of(&parsed), parsed.head_indices);
        assert!(read(&swapped, &limits()).is_some());
        assert!(!checked(&swapped));
    }

    #[test]
    fn columns_written_otherwise_are_not_checked() {
        // Both actions (sets) as a literal run rather than a repeat: the same values.
        let bytes = two_keys();
        let parsed = parse(&bytes, &limits(), Heads::Named).unwrap();
        let mut columns = columns_of(&parsed);
        let action = columns
            .iter_mut()
            .find(|(spec, _)| *spec == ACTION)
            .unwrap();
        assert_eq!(action.1, vec![2, SET as u8]);
        action.1 = vec![0x7e, SET as u8, SET as u8];
        let literal = rewrite(&parsed, &columns, parsed.head_indices);
        assert_eq!(read(&literal, &limits()), read(&bytes, &limits()));
        assert!(!checked(&literal));
    }

    #[test]
    fn head_indices_must_name_the_heads() {
        let bytes = two_keys();
        let parsed = parse(&bytes, &limits(), Heads::Named).unwrap();
        assert_eq!(parsed.head_indices, [0]);
        let columns = columns_of(&parsed);
        assert!(checked(&rewrite(&parsed, &columns, &[])));
        assert!(!checked(&rewrite(&parsed, &columns, &[1])));
        assert!(!checked(&rewrite(&parsed, &columns, &[0, 0])));
        assert!(!checked(&rewrite(&parsed, &columns, &[0x80])));
    }

    /// Concurrent changes (two heads), deletions, list and text edits.
    fn edited_concurrently() -> Automerge {
        let mut a = Automerge::new().with_actor(automerge::ActorId::from(vec![1; 16]));
        let mut tx = a.transaction();
        tx.put(ROOT, "$kind", "visit").unwrap();
        let list = tx.put_object(ROOT, "items", AmType::List).unwrap();
        tx.insert(&list, 0, "a").unwrap();
        let text = tx.put_object(ROOT, "notes", AmType::Text).unwrap();
        tx.splice_text(&text, 0, 0, "Enfant près du four").unwrap();
        tx.commit();
        let mut b = a.fork().with_actor(automerge::ActorId::from(vec![2; 16]));
        let mut tx = b.transaction();
        tx.insert(&list, 1, "b").unwrap();
        tx.delete(ROOT, "$kind").unwrap();
        tx.commit();
        let mut tx = a.transaction();
        tx.splice_text(&text, 0, 6, "").unwrap();
        tx.put(&list, 0, "c").unwrap();
        tx.commit();
        a.merge(&mut b).unwrap();
        a
    }

    #[test]
    fn a_document_without_its_heads_is_restored_byte_for_byte() {
        let a = edited_concurrently();
        let whole = a.save_nocompress();
        assert_eq!(a.get_heads().len(), 2);

        let stripped = strip_heads(&whole).unwrap();
        assert!(is_headless(&stripped) && !is_headless(&whole));
        assert_eq!(stripped.len() + 2 * 33, whole.len());
        // Not a document anything takes as it is: no checksum, no heads.
        assert!(Automerge::load(&stripped).is_err());
        assert!(read_checked(&stripped, &limits(), as_json).is_none());
        // Restored: the same bytes, and what reading the whole document gives.
        let (restored, checked) = restore_heads(&stripped, &limits(), as_json).unwrap();
        assert_eq!(restored, whole);
        assert_eq!(checked.history.heads, a.get_heads());
        assert_eq!(checked.value, read(&whole, &limits()));
        // Only a stripped document is restored, and stripping is only of a whole document.
        assert!(restore_heads(&whole, &limits(), as_json).is_none());
        assert!(strip_heads(&stripped).is_none());
        assert!(strip_heads(&whole[..whole.len() - 1]).is_none());
    }

    #[test]
    fn changes_rebuilt_from_the_columns_are_automerge_s_own() {
        let doc = edited_concurrently();
        let bytes = doc.save_nocompress();
        let all: Vec<ChangeHash> = doc.get_changes(&[]).iter().map(|c| c.hash()).collect();
        assert_eq!(all.len(), 3);
        // A device holding the first change lacks the others.
        let wanted: HashSet<ChangeHash> = all[1..].iter().copied().collect();
        let chunks = change_chunks(&bytes, &limits(), &wanted).unwrap();
        assert_eq!(chunks.len(), 2);
        let mut lacking = Vec::new();
        for hash in &all[1..] {
            let change = doc.get_change_by_hash(hash).unwrap();
            assert_eq!(chunks[hash], change.raw_bytes());
            lacking.extend_from_slice(&chunks[hash]);
        }
        let mut device = Automerge::new();
        device
            .apply_changes([doc.get_change_by_hash(&all[0]).unwrap()])
            .unwrap();
        device.load_incremental(&lacking).unwrap();
        assert_eq!(device.get_heads(), doc.get_heads());
        assert_eq!(device.save_nocompress(), bytes);
        // A hash the document does not hold gives nothing; nothing wanted, nothing given.
        let other: HashSet<ChangeHash> = [ChangeHash([9; 32])].into_iter().collect();
        assert!(change_chunks(&bytes, &limits(), &other).unwrap().is_empty());
        assert!(
            change_chunks(&bytes, &limits(), &HashSet::new())
                .unwrap()
                .is_empty()
        );
        // A history that does not match its heads is left to Automerge.
        let mut parsed = parse(&bytes, &limits(), Heads::Named).unwrap();
        let at = parsed.ops.iter().position(|op| !op.raw.is_empty()).unwrap();
        parsed.ops[at].raw = b"?";
        let changed = rewrite(&parsed, &columns_of(&parsed), parsed.head_indices);
        assert!(change_chunks(&changed, &limits(), &wanted).is_none());
    }

    #[test]
    fn a_document_without_its_heads_the_reader_leaves_is_made_whole_by_automerge() {
        // A counter: the reader leaves it, Automerge works the heads out.
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        tx.put(ROOT, "n", ScalarValue::counter(1)).unwrap();
        tx.commit();
        let whole = doc.save_nocompress();
        let stripped = strip_heads(&whole).unwrap();
        assert!(restore_heads(&stripped, &limits(), as_json).is_none());
        let id = uuid::Uuid::nil();
        let restored = crate::codec::load_headless(id, &stripped).unwrap();
        assert_eq!(
            Automerge::load(&restored).unwrap().get_heads(),
            doc.get_heads()
        );
        // Damage is refused with a typed error, not stored.
        let mut damaged = stripped.clone();
        let at = damaged.len() - 3;
        damaged[at] ^= 0xff;
        assert!(crate::codec::load_headless(id, &damaged[..damaged.len() - 8]).is_err());
    }

    #[test]
    fn run_lengths_a_document_claims_are_bounded_not_walked() {
        // The chunk is built right: read as the operations it describes.
        assert_eq!(
            read(&one_set(0), &limits()),
            Some(serde_json::json!({"a": null}))
        );
        assert_eq!(read(&one_set(1), &limits()), Some(serde_json::json!({})));
        // A few bytes claiming 2^40 successors of one operation (or of the operations' bound
        // and one) are refused at once, never walked one by one.
        assert_eq!(read(&one_set(1 << 40), &limits()), None);
        assert_eq!(read(&one_set(limits().max_operations + 1), &limits()), None);
    }

    #[test]
    fn what_it_leaves_to_automerge_is_none() {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        tx.put(ROOT, "n", ScalarValue::counter(1)).unwrap();
        tx.commit();
        assert_eq!(read(&doc.save_nocompress(), &limits()), None);
        // Automerge's own compressed columns, a change rather than a document, damage.
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        tx.put(ROOT, "long", "x".repeat(10_000)).unwrap();
        tx.commit();
        assert_eq!(read(&doc.save(), &limits()), None);
        let plain = doc.save_nocompress();
        assert!(read(&plain, &limits()).is_some());
        let change = doc.get_changes(&[]).pop().unwrap().raw_bytes().to_vec();
        assert_eq!(read(&change, &limits()), None);
        for cut in [0, 5, 12, plain.len() / 2, plain.len() - 1] {
            assert_eq!(read(&plain[..cut], &limits()), None);
        }
        let mut flipped = plain.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(read(&flipped, &limits()), None);
        let mut longer = plain.clone();
        longer.extend_from_slice(&plain);
        assert_eq!(read(&longer, &limits()), None);
    }

    #[test]
    fn values_over_the_bounds_are_none() {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        let mut obj = ROOT;
        for _ in 0..limits().max_depth + 1 {
            obj = tx.put_object(&obj, "deeper", AmType::Map).unwrap();
        }
        tx.commit();
        assert_eq!(read(&doc.save_nocompress(), &limits()), None);
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        tx.put(ROOT, "long", "é".repeat(limits().max_text_chars + 1))
            .unwrap();
        tx.commit();
        assert_eq!(read(&doc.save_nocompress(), &limits()), None);
    }

    #[test]
    fn values_over_the_bounds_are_refused_even_where_the_record_does_not_read_them() {
        #[derive(serde::Deserialize)]
        struct OnlyA {
            #[allow(dead_code)]
            a: String,
        }
        let only_a = |root: &Root, _: &History| root.read::<OnlyA>(&|_| false);
        let skipping_b = |root: &Root, _: &History| root.read::<OnlyA>(&|key| key == "b");
        let within = |deeper: usize, chars: usize| {
            let mut doc = Automerge::new();
            let mut tx = doc.transaction();
            tx.put(ROOT, "a", "x").unwrap();
            let mut obj = ROOT;
            for _ in 0..deeper {
                obj = tx.put_object(&obj, "b", AmType::Map).unwrap();
            }
            tx.put(&obj, "c", "é".repeat(chars)).unwrap();
            tx.commit();
            let bytes = doc.save_nocompress();
            let read = read_checked(&bytes, &limits(), only_a).map(|c| c.value.is_some());
            let skipped = read_checked(&bytes, &limits(), skipping_b).map(|c| c.value.is_some());
            assert_eq!(read, skipped);
            read
        };
        // Read, the keys the record lacks walked over.
        assert_eq!(within(2, 10), Some(true));
        // Not checked, whether the record ignores the value or skips its key.
        assert_eq!(within(limits().max_depth + 1, 10), None);
        assert_eq!(within(1, limits().max_text_chars + 1), None);
    }
}

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
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

pub(super) const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
pub(super) const CHUNK_DOCUMENT: u8 = 0;
pub(super) const COLUMN_DEFLATE: u64 = 0b1000;

// Column specifications of a document's operation columns: (column id << 4) | type.
const OBJ_ACTOR: u64 = 1;
const OBJ_COUNTER: u64 = 2;
const KEY_ACTOR: u64 = 1 << 4 | 1;
const KEY_COUNTER: u64 = 1 << 4 | 3;
const KEY_STRING: u64 = 1 << 4 | 5;
const ID_ACTOR: u64 = 2 << 4 | 1;
const ID_COUNTER: u64 = 2 << 4 | 3;
const INSERT: u64 = 3 << 4 | 4;
const ACTION: u64 = 4 << 4 | 2;
const VALUE_META: u64 = 5 << 4 | 6;
const VALUE_RAW: u64 = 5 << 4 | 7;
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
    if bytes.len() > limits.max_bytes {
        return None;
    }
    let mut r = Reader::new(bytes);
    if r.take(4)? != MAGIC {
        return None;
    }
    let checksum = r.take(4)?;
    let header_start = r.at;
    if r.byte()? != CHUNK_DOCUMENT {
        return None;
    }
    let len = r.uleb()?;
    let data = r.take(len)?;
    // One whole document and nothing after it.
    if !r.is_empty() {
        return None;
    }
    let hash = Sha256::digest(&bytes[header_start..]);
    if hash[..4] != *checksum {
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
    // The heads: Automerge checks them when it loads the document.
    let head_count = d.uleb()?;
    d.take(head_count.checked_mul(32)?)?;
    let change_columns = column_layout(&mut d)?;
    let op_columns = column_layout(&mut d)?;
    let change_bytes: u64 = change_columns.iter().map(|(_, len)| *len).sum();
    d.take(change_bytes)?;
    let mut columns = HashMap::new();
    for (spec, len) in op_columns {
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
                columns.insert(spec, data);
            }
            // Marks, expansion and columns of later formats: Automerge's to read.
            _ => return None,
        }
    }
    let ops = operations(&columns, actors.len(), limits)?;
    State {
        ops: &ops,
        actors: &actors,
        limits,
        objects: objects(&ops)?,
    }
    .object_json(None, 0)
}

/// A column layout: its count, then each column's specification and length.
fn column_layout(r: &mut Reader) -> Option<Vec<(u64, u64)>> {
    let count = r.uleb()?;
    let mut layout = Vec::new();
    for _ in 0..count.min(64) {
        layout.push((r.uleb()?, r.uleb()?));
    }
    (count <= 64).then_some(layout)
}

/// An operation id (or object id): its counter and actor index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct OpId {
    counter: u64,
    actor: usize,
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
enum Key<'a> {
    Map(&'a str),
    /// A list element's id; `None` is the list's head.
    Element(Option<OpId>),
}

#[derive(Debug)]
struct Op<'a> {
    /// `None` is the root map.
    obj: Option<OpId>,
    key: Key<'a>,
    id: OpId,
    insert: bool,
    action: u64,
    value: Scalar<'a>,
    visible: bool,
}

fn operations<'a>(
    columns: &HashMap<u64, &'a [u8]>,
    actors: usize,
    limits: &DocumentLimits,
) -> Option<Vec<Op<'a>>> {
    let column = |spec| columns.get(&spec).copied().unwrap_or_default();
    let mut obj_actor = Rle::new(column(OBJ_ACTOR));
    let mut obj_counter = Rle::new(column(OBJ_COUNTER));
    let mut key_actor = Rle::new(column(KEY_ACTOR));
    let mut key_counter = Delta::new(column(KEY_COUNTER));
    let mut key_string = Rle::new(column(KEY_STRING));
    let mut id_actor = Rle::new(column(ID_ACTOR));
    let mut id_counter = Delta::new(column(ID_COUNTER));
    let mut insert = Booleans::new(column(INSERT));
    let mut action = Rle::new(column(ACTION));
    let mut value_meta = Rle::new(column(VALUE_META));
    let mut value_raw = Reader::new(column(VALUE_RAW));
    let mut succ_count = Rle::new(column(SUCC_COUNT));
    let mut succ_actor = Rle::new(column(SUCC_ACTOR));
    let mut succ_counter = Delta::new(column(SUCC_COUNTER));
    let actor = |index: Option<u64>| -> Option<usize> {
        let index = usize::try_from(index?).ok()?;
        (index < actors).then_some(index)
    };
    let mut ops = Vec::new();
    let mut all_successors = 0u64;
    while !action.is_done() {
        if ops.len() as u64 >= limits.max_operations {
            return None;
        }
        let obj = match (obj_counter.next_uleb()?, obj_actor.next_uleb()?) {
            (None, None) => None,
            (Some(counter), actor_index) => Some(OpId {
                counter,
                actor: actor(actor_index)?,
            }),
            (None, Some(_)) => return None,
        };
        let key_counter = key_counter.next()?;
        let key_actor = key_actor.next_uleb()?;
        let key = match (key_string.next_str()?, key_counter, key_actor) {
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
            actor: actor(id_actor.next_uleb()?)?,
        };
        let insert = insert.next()?;
        let action = action.next_uleb()??;
        let meta = value_meta.next_uleb()?.unwrap_or(0);
        let raw = value_raw.take(meta >> 4)?;
        let value = scalar(meta & 0b1111, raw)?;
        let successors = succ_count.next_uleb()?.unwrap_or(0);
        // Each successor is an operation of the document: a run claiming more than the bound
        // allows is not walked.
        all_successors = all_successors.checked_add(successors)?;
        if all_successors > limits.max_operations {
            return None;
        }
        for _ in 0..successors {
            actor(succ_actor.next_uleb()?)?;
            succ_counter.next()??;
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
    exhausted.then_some(ops)
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
    for (i, op) in ops.iter().enumerate() {
        objects.get_mut(&op.obj)?.ops.push(i);
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
    all: Vec<usize>,
}

impl State<'_, '_> {
    /// Whether `a` is a later operation than `b` (Automerge's order: counter, then actor).
    fn later(&self, a: usize, b: usize) -> bool {
        let (a, b) = (self.ops[a].id, self.ops[b].id);
        (a.counter, self.actors[a.actor]) > (b.counter, self.actors[b.actor])
    }

    fn slot(&self, visible: Vec<usize>) -> Option<Slot> {
        let mut winner = *visible.first()?;
        for &i in &visible[1..] {
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
        let mut keys: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &i in &object.ops {
            let op = &self.ops[i];
            let Key::Map(name) = op.key else { return None };
            if op.insert {
                return None;
            }
            if !op.visible {
                continue;
            }
            keys.entry(name).or_default().push(i);
        }
        keys.into_iter()
            .map(|(key, values)| Some((key, self.slot(values)?)))
            .collect()
    }

    /// A list's or a text's visible elements, in order.
    fn list_slots(&self, obj: Option<OpId>) -> Option<Vec<Slot>> {
        let object = self.objects.get(&obj)?;
        let mut elements: Vec<Vec<usize>> = Vec::new();
        let mut index: HashMap<OpId, usize> = HashMap::new();
        for &i in &object.ops {
            let op = &self.ops[i];
            let Key::Element(_) = op.key else { return None };
            let element = if op.insert {
                index.insert(op.id, elements.len());
                elements.push(Vec::new());
                elements.len() - 1
            } else {
                let Key::Element(Some(target)) = op.key else {
                    return None;
                };
                *index.get(&target)?
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
        for &i in &slot.all {
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
            ObjType::Text => {
                let mut text = String::new();
                let mut chars = 0;
                for slot in self.list_slots(obj)? {
                    match (self.ops[slot.winner].action, &self.ops[slot.winner].value) {
                        (SET, Scalar::Str(s)) => {
                            text.push_str(s);
                            chars += s.chars().count();
                        }
                        // Objects in text: Automerge's to read.
                        _ => return None,
                    }
                }
                (chars <= self.limits.max_text_chars).then_some(Json::String(text))
            }
        }
    }
}

/// A cursor over bytes; every read fails (`None`) rather than passing the end.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
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
/// as nulls; `None` is damage.
struct Rle<'a> {
    r: Reader<'a>,
    run: Run,
}

#[derive(Clone, Copy)]
enum Run {
    None,
    /// `count` more of the value at `at` (a byte offset).
    Repeat {
        count: u64,
        at: usize,
    },
    Literal {
        count: u64,
    },
    Nulls {
        count: u64,
    },
}

impl<'a> Rle<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Rle {
            r: Reader::new(bytes),
            run: Run::None,
        }
    }

    fn is_done(&self) -> bool {
        self.r.is_empty()
            && match self.run {
                Run::None => true,
                Run::Repeat { count, .. } | Run::Literal { count } | Run::Nulls { count } => {
                    count == 0
                }
            }
    }

    /// Moves to the next value: `Some(None)` for a null, `Some(Some(offset))` for a value to
    /// read at `offset` with `read`.
    fn step(&mut self, read: fn(&mut Reader<'a>) -> Option<()>) -> Option<Option<usize>> {
        loop {
            match &mut self.run {
                Run::Repeat { count, at } if *count > 0 => {
                    *count -= 1;
                    return Some(Some(*at));
                }
                Run::Literal { count } if *count > 0 => {
                    *count -= 1;
                    let at = self.r.at;
                    read(&mut self.r)?;
                    return Some(Some(at));
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
                let at = self.r.at;
                read(&mut self.r)?;
                Run::Repeat {
                    count: count as u64,
                    at,
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

    fn at(&self, at: usize) -> Reader<'a> {
        Reader {
            bytes: self.r.bytes,
            at,
        }
    }

    fn next_uleb(&mut self) -> Option<Option<u64>> {
        match self.step(|r| r.uleb().map(|_| ()))? {
            None => Some(None),
            Some(at) => Some(Some(self.at(at).uleb()?)),
        }
    }

    fn next_sleb(&mut self) -> Option<Option<i64>> {
        match self.step(|r| r.sleb().map(|_| ()))? {
            None => Some(None),
            Some(at) => Some(Some(self.at(at).sleb()?)),
        }
    }

    fn next_str(&mut self) -> Option<Option<&'a str>> {
        let skip = |r: &mut Reader<'a>| {
            let len = r.uleb()?;
            r.take(len).map(|_| ())
        };
        match self.step(skip)? {
            None => Some(None),
            Some(at) => {
                let mut r = self.at(at);
                let len = r.uleb()?;
                Some(Some(std::str::from_utf8(r.take(len)?).ok()?))
            }
        }
    }
}

/// A delta-encoded column: run-length encoded differences from the previous value.
struct Delta<'a> {
    rle: Rle<'a>,
    last: i64,
}

impl<'a> Delta<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Delta {
            rle: Rle::new(bytes),
            last: 0,
        }
    }

    fn is_done(&self) -> bool {
        self.rle.is_done()
    }

    fn next(&mut self) -> Option<Option<i64>> {
        match self.rle.next_sleb()? {
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
    use automerge::{Automerge, ObjType as AmType, ROOT, ScalarValue};

    fn limits() -> DocumentLimits {
        DocumentLimits::STANDARD
    }

    fn uleb(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

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
    fn document_chunk(columns: &[(u64, Vec<u8>)]) -> Vec<u8> {
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
        let mut hashed = vec![CHUNK_DOCUMENT];
        uleb(data.len() as u64, &mut hashed);
        hashed.extend_from_slice(&data);
        let mut chunk = MAGIC.to_vec();
        chunk.extend_from_slice(&Sha256::digest(&hashed)[..4]);
        chunk.extend_from_slice(&hashed);
        chunk
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
        document_chunk(&columns)
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
}

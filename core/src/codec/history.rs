//! A saved document's history checked without loading it: each change rebuilt from the
//! document's columns as Automerge rebuilds it, hashed, and the hashes compared with the heads
//! the document names.
//!
//! Automerge's load does this too, and it was most of a phone's work on a first sync: it builds
//! its whole state to get there. Here only the bytes of each change are written, with the same
//! encodings, from the operations `columns` already read. The change bytes depend on nothing but
//! the operations, so a hash that matches proves the document holds exactly the changes its
//! heads name; with the columns written as Automerge writes them (`columns` checks that) and
//! the operations in Automerge's order, the bytes are a document Automerge loads.
//!
//! Anything that does not match is `None`: the caller loads the document with Automerge, which
//! gives the answer or the error it always gave.

use super::columns::{
    ACTION, Delta, INSERT, KEY_ACTOR, KEY_COUNTER, KEY_STRING, MAGIC, OBJ_ACTOR, OBJ_COUNTER,
    Parsed, VALUE_META, VALUE_RAW,
};
use super::columns::{Key, OpId, Reader, Rle};
use automerge::ChangeHash;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

const CHUNK_CHANGE: u8 = 1;
/// Successors of one key's operations not yet met, past which a history is left to Automerge.
const MAX_PENDING: usize = 64;
const DELETE: u64 = 3;

// Column specifications of a document's change columns.
const CHANGE_ACTOR: u64 = 1;
const CHANGE_SEQ: u64 = 3;
const CHANGE_MAX_OP: u64 = 1 << 4 | 3;
const CHANGE_TIME: u64 = 2 << 4 | 3;
const CHANGE_MESSAGE: u64 = 3 << 4 | 5;
const CHANGE_DEPS_COUNT: u64 = 4 << 4;
const CHANGE_DEPS: u64 = 4 << 4 | 3;
const CHANGE_EXTRA_META: u64 = 5 << 4 | 6;
const CHANGE_EXTRA_RAW: u64 = 5 << 4 | 7;

// Column specifications of a change chunk's operation columns: a document's, with
// predecessors in place of ids and successors.
const OP_PRED_COUNT: u64 = 7 << 4;
const OP_PRED_ACTOR: u64 = 7 << 4 | 1;
const OP_PRED_COUNTER: u64 = 7 << 4 | 3;

/// What a checked history gives: the heads (as the document names them), every change's hash
/// in the document's order, and the changes with no dependencies.
pub(crate) struct History {
    pub(crate) heads: Vec<ChangeHash>,
    /// Each head's index among the changes.
    pub(crate) head_indices: Vec<usize>,
    pub(crate) changes: Vec<ChangeHash>,
    pub(crate) roots: Vec<ChangeHash>,
}

/// One change as the document's change columns describe it.
struct ChangeMeta<'a> {
    actor: usize,
    seq: u64,
    max_op: u64,
    start_op: u64,
    time: i64,
    message: Option<&'a str>,
    deps: Vec<usize>,
    /// The extra bytes' metadata as the column holds it (`None`: no column).
    extra_meta: Option<u64>,
    extra: &'a [u8],
}

/// The key of an operation in a change: a map key, or a list element (`None`: the head).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum ChangeKey<'a> {
    Map(&'a str),
    Element(Option<OpId>),
}

/// One operation of a change: a document's operation with its predecessors, or a deletion
/// (which a document keeps only as the successor of what it deleted).
#[derive(Clone)]
struct ChangeOp<'a> {
    obj: Option<OpId>,
    key: ChangeKey<'a>,
    insert: bool,
    action: u64,
    meta: u64,
    raw: &'a [u8],
    preds: Vec<OpId>,
}

/// Rebuilds and hashes every change of `parsed`, and checks the hashes against its heads.
pub(super) fn check(parsed: &Parsed, max_changes: u64, derive_heads: bool) -> Option<History> {
    rebuild(parsed, max_changes, derive_heads, &mut |_, _| {})
}

/// The changes of `parsed` that `wanted` names, each as a change chunk (the bytes Automerge's
/// `Change::raw_bytes` gives), by hash: `check`, keeping what it rebuilt. The hashes matching
/// the heads prove the bytes are the changes themselves.
pub(super) fn change_chunks(
    parsed: &Parsed,
    max_changes: u64,
    wanted: &HashSet<ChangeHash>,
) -> Option<HashMap<ChangeHash, Vec<u8>>> {
    let mut chunks = HashMap::with_capacity(wanted.len());
    rebuild(parsed, max_changes, false, &mut |hash, body| {
        if wanted.contains(hash) {
            let mut chunk = Vec::with_capacity(body.len() + 18);
            chunk.extend_from_slice(&MAGIC);
            chunk.extend_from_slice(&hash.0[..4]);
            chunk.push(CHUNK_CHANGE);
            write_uleb(body.len() as u64, &mut chunk);
            chunk.extend_from_slice(body);
            chunks.insert(*hash, chunk);
        }
    })?;
    Some(chunks)
}

/// `check`, handing each change's hash and body to `each` as it is rebuilt (before the heads
/// are compared: only a `Some` makes them true).
fn rebuild(
    parsed: &Parsed,
    max_changes: u64,
    derive_heads: bool,
    each: &mut dyn FnMut(&ChangeHash, &[u8]),
) -> Option<History> {
    let metas = change_metas(parsed, max_changes)?;
    let changes = changes_of(parsed, &metas)?;
    let mut hashes: Vec<ChangeHash> = Vec::with_capacity(metas.len());
    let mut depended = vec![false; metas.len()];
    for (meta, ops) in metas.iter().zip(&changes) {
        for &dep in &meta.deps {
            depended[dep] = true;
        }
        let deps: Vec<ChangeHash> = meta.deps.iter().map(|&d| hashes[d]).collect();
        let (hash, body) = change_hash(meta, &deps, ops, &parsed.actors);
        each(&hash, &body);
        hashes.push(hash);
    }
    // The changes no other depends on, in hash order, with their index.
    let mut heads: Vec<(ChangeHash, usize)> = hashes
        .iter()
        .enumerate()
        .filter(|(i, _)| !depended[*i])
        .map(|(i, hash)| (*hash, i))
        .collect();
    heads.sort();
    let head_indices: Vec<usize> = heads.iter().map(|(_, i)| *i).collect();
    let heads: Vec<ChangeHash> = heads.into_iter().map(|(hash, _)| hash).collect();
    let named: Vec<&[u8]> = parsed.heads.chunks_exact(32).collect();
    // A document sent without its heads names none: they are the ones its history gives.
    let matches = if derive_heads {
        named.is_empty() && parsed.head_indices.is_empty()
    } else {
        named.len() == heads.len() && named.iter().zip(&heads).all(|(n, h)| *n == h.0)
    };
    if !matches {
        return None;
    }
    // Each head's index, if the writer gave them, names that head's change.
    if !parsed.head_indices.is_empty() {
        let mut r = Reader::new(parsed.head_indices);
        for head in &heads {
            let index = usize::try_from(r.uleb()?).ok()?;
            if hashes.get(index) != Some(head) {
                return None;
            }
        }
        if !r.is_empty() {
            return None;
        }
    }
    let roots = hashes
        .iter()
        .zip(&metas)
        .filter(|(_, meta)| meta.deps.is_empty())
        .map(|(hash, _)| *hash)
        .collect();
    Some(History {
        heads,
        head_indices,
        changes: hashes,
        roots,
    })
}

/// The change columns read, each checked to be written as Automerge writes it.
fn change_metas<'a>(parsed: &Parsed<'a>, max_changes: u64) -> Option<Vec<ChangeMeta<'a>>> {
    let mut columns: HashMap<u64, &[u8]> = HashMap::new();
    for &(spec, data) in &parsed.change_columns {
        if data.is_empty() {
            continue;
        }
        match spec {
            CHANGE_ACTOR | CHANGE_SEQ | CHANGE_MAX_OP | CHANGE_TIME | CHANGE_MESSAGE
            | CHANGE_DEPS_COUNT | CHANGE_DEPS | CHANGE_EXTRA_META | CHANGE_EXTRA_RAW => {
                columns.insert(spec, data).is_none().then_some(())?;
            }
            _ => return None,
        }
    }
    let column = |spec| columns.get(&spec).copied().unwrap_or_default();
    let present = |spec| columns.contains_key(&spec);
    let mut actor = Rle::uleb(column(CHANGE_ACTOR));
    let mut seq = Delta::new(column(CHANGE_SEQ));
    let mut max_op = Delta::new(column(CHANGE_MAX_OP));
    let mut time = Delta::new(column(CHANGE_TIME));
    let mut message = Rle::strings(column(CHANGE_MESSAGE));
    let mut deps_count = Rle::uleb(column(CHANGE_DEPS_COUNT));
    let mut deps = Delta::new(column(CHANGE_DEPS));
    let mut extra_meta = Rle::uleb(column(CHANGE_EXTRA_META));
    let mut extra_raw = Reader::new(column(CHANGE_EXTRA_RAW));
    let u32_value = |v: Option<i64>| u32::try_from(v?).ok().map(u64::from);
    let mut metas: Vec<ChangeMeta> = Vec::new();
    let mut all_deps = 0u64;
    while !actor.is_done() {
        if metas.len() as u64 >= max_changes {
            return None;
        }
        let index = metas.len();
        let actor = usize::try_from(actor.next()??).ok()?;
        if actor >= parsed.actors.len() {
            return None;
        }
        let seq = u32_value(seq.next()?)?;
        let max_op = u32_value(max_op.next()?)?;
        let time = match time.next()? {
            Some(t) => t,
            None if !present(CHANGE_TIME) => 0,
            None => return None,
        };
        let message = message.next()?;
        let count = deps_count.next()??;
        // A change depends on changes before it, each once; histories that merge more than
        // this are Automerge's to check.
        all_deps = all_deps.checked_add(count)?;
        if count > index as u64 || all_deps > max_changes.saturating_mul(4) {
            return None;
        }
        let mut change_deps = Vec::new();
        for _ in 0..count {
            let dep = usize::try_from(deps.next()??).ok()?;
            // A change follows the changes it depends on.
            if dep >= index || change_deps.contains(&dep) {
                return None;
            }
            change_deps.push(dep);
        }
        let extra_meta = match extra_meta.next()? {
            Some(meta) => Some(meta),
            None if !present(CHANGE_EXTRA_META) => None,
            None => return None,
        };
        let extra = extra_raw.take(extra_meta.unwrap_or(0) >> 4)?;
        let last_max_op = change_deps
            .iter()
            .map(|&d: &usize| metas[d].max_op)
            .max()
            .unwrap_or(0);
        if last_max_op > max_op {
            return None;
        }
        metas.push(ChangeMeta {
            actor,
            seq,
            max_op,
            start_op: last_max_op + 1,
            time,
            message,
            deps: change_deps,
            extra_meta,
            extra,
        });
    }
    let exhausted = seq.is_done()
        && max_op.is_done()
        && time.is_done()
        && message.is_done()
        && deps_count.is_done()
        && deps.is_done()
        && extra_meta.is_done()
        && extra_raw.is_empty();
    if !exhausted {
        return None;
    }
    // Written as Automerge writes them: the same values, one encoding.
    let canonical = |spec, encoded: Vec<u8>| !present(spec) || column(spec) == encoded.as_slice();
    let all_canonical = canonical(
        CHANGE_ACTOR,
        encode_uleb(metas.iter().map(|m| Some(m.actor as u64))),
    ) && canonical(
        CHANGE_SEQ,
        encode_delta(metas.iter().map(|m| Some(m.seq as i64))),
    ) && canonical(
        CHANGE_MAX_OP,
        encode_delta(metas.iter().map(|m| Some(m.max_op as i64))),
    ) && canonical(
        CHANGE_TIME,
        encode_delta(metas.iter().map(|m| Some(m.time))),
    ) && canonical(CHANGE_MESSAGE, encode_str(metas.iter().map(|m| m.message)))
        && canonical(
            CHANGE_DEPS_COUNT,
            encode_uleb(metas.iter().map(|m| Some(m.deps.len() as u64))),
        )
        && canonical(
            CHANGE_DEPS,
            encode_delta(metas.iter().flat_map(|m| &m.deps).map(|&d| Some(d as i64))),
        )
        && canonical(
            CHANGE_EXTRA_META,
            encode_uleb(metas.iter().map(|m| m.extra_meta)),
        );
    all_canonical.then_some(metas)
}

/// The operations of each change, in counter order, with their predecessors, and the
/// deletions the successors name, as Automerge's collector rebuilds them.
fn changes_of<'a>(parsed: &Parsed<'a>, metas: &[ChangeMeta]) -> Option<Vec<Vec<ChangeOp<'a>>>> {
    // Each actor's changes by the counters they span.
    let mut spans: Vec<Vec<(u64, u64, usize)>> = vec![Vec::new(); parsed.actors.len()];
    let mut slots: Vec<Vec<Option<ChangeOp>>> = Vec::with_capacity(metas.len());
    let mut total = 0u64;
    for (i, meta) in metas.iter().enumerate() {
        let count = meta.max_op + 1 - meta.start_op;
        total = total.checked_add(count)?;
        // Every operation is in the document (a deletion as a successor): no change claims
        // more than it holds.
        if total > parsed.ops.len() as u64 + parsed.successors.len() as u64 {
            return None;
        }
        if count > 0 {
            spans[meta.actor].push((meta.start_op, meta.max_op, i));
        }
        slots.push(vec![None; count as usize]);
    }
    for spans in &mut spans {
        spans.sort_unstable();
        if spans.windows(2).any(|w| w[0].1 >= w[1].0) {
            return None;
        }
    }
    let mut place = |id: OpId, op: ChangeOp<'a>| -> Option<()> {
        let spans = spans.get(id.actor)?;
        let at = spans.partition_point(|s| s.1 < id.counter);
        let &(start, max, change) = spans.get(at)?;
        if id.counter < start || id.counter > max {
            return None;
        }
        let slot = &mut slots[change][(id.counter - start) as usize];
        if slot.is_some() {
            return None;
        }
        *slot = Some(op);
        Some(())
    };
    // Predecessors come from the successors of the operations of the same key, which precede
    // them; successors no operation of the key claims are deletions of it.
    // A key's successors not yet met: a few at a time in any document Vigie writes.
    let mut pending: Vec<(OpId, Vec<OpId>)> = Vec::new();
    let mut group: Option<(Option<OpId>, ChangeKey)> = None;
    let flush = |group: Option<(Option<OpId>, ChangeKey<'a>)>,
                 pending: &mut Vec<(OpId, Vec<OpId>)>,
                 place: &mut dyn FnMut(OpId, ChangeOp<'a>) -> Option<()>|
     -> Option<()> {
        if let Some((obj, key)) = group {
            for (id, preds) in pending.drain(..) {
                let deletion = ChangeOp {
                    obj,
                    key,
                    insert: false,
                    action: DELETE,
                    meta: 0,
                    raw: &[],
                    preds,
                };
                place(id, deletion)?;
            }
        }
        pending.is_empty().then_some(())
    };
    for op in &parsed.ops {
        let key = match op.key {
            Key::Map(name) => ChangeKey::Map(name),
            Key::Element(_) if op.insert => ChangeKey::Element(Some(op.id)),
            Key::Element(Some(target)) => ChangeKey::Element(Some(target)),
            Key::Element(None) => return None,
        };
        let next = Some((op.obj, key));
        if next != group {
            flush(group, &mut pending, &mut place)?;
            group = next;
        }
        let preds = match pending.iter().position(|(succ, _)| *succ == op.id) {
            Some(at) => pending.swap_remove(at).1,
            None => Vec::new(),
        };
        let change_op = ChangeOp {
            obj: op.obj,
            key: match op.key {
                Key::Map(name) => ChangeKey::Map(name),
                Key::Element(target) => ChangeKey::Element(target),
            },
            insert: op.insert,
            action: op.action,
            meta: op.meta,
            raw: op.raw,
            preds,
        };
        place(op.id, change_op)?;
        for &succ in &parsed.successors[op.succ.clone()] {
            match pending.iter().position(|(id, _)| *id == succ) {
                Some(at) => pending[at].1.push(op.id),
                None if pending.len() < MAX_PENDING => pending.push((succ, vec![op.id])),
                None => return None,
            }
        }
    }
    flush(group, &mut pending, &mut place)?;
    // Every change has all its operations.
    slots
        .into_iter()
        .map(|ops| ops.into_iter().collect::<Option<Vec<_>>>())
        .collect()
}

/// The hash of a change chunk, and its body, its bytes written as Automerge writes them.
fn change_hash(
    meta: &ChangeMeta,
    deps: &[ChangeHash],
    ops: &[ChangeOp],
    actors: &[&[u8]],
) -> (ChangeHash, Vec<u8>) {
    // The change's actor first, then the others its operations name, in the document's
    // (sorted) order.
    let mut others = Vec::new();
    for op in ops {
        others.extend(op.obj.map(|o| o.actor));
        if let ChangeKey::Element(Some(e)) = op.key {
            others.push(e.actor);
        }
        others.extend(op.preds.iter().map(|p| p.actor));
    }
    others.sort_unstable();
    others.dedup();
    others.retain(|a| *a != meta.actor);
    let local = |actor: usize| -> u64 {
        if actor == meta.actor {
            0
        } else {
            others.binary_search(&actor).map_or(0, |i| i as u64 + 1)
        }
    };

    let obj_actor = || ops.iter().map(|o| o.obj.map(|o| local(o.actor)));
    let obj_counter = || ops.iter().map(|o| o.obj.map(|o| o.counter));
    let key_actor = || {
        ops.iter().map(|o| match o.key {
            ChangeKey::Element(Some(e)) => Some(local(e.actor)),
            _ => None,
        })
    };
    let key_counter = || {
        ops.iter().map(|o| match o.key {
            ChangeKey::Map(_) => None,
            ChangeKey::Element(None) => Some(0),
            ChangeKey::Element(Some(e)) => Some(e.counter as i64),
        })
    };
    let key_string = || {
        ops.iter().map(|o| match o.key {
            ChangeKey::Map(name) => Some(name),
            ChangeKey::Element(_) => None,
        })
    };
    let preds = || ops.iter().flat_map(|o| &o.preds);

    // Every column's data in one buffer, and each column's specification and length; a column
    // of nulls only (or of nothing) is not written.
    let mut data = Vec::with_capacity(ops.len() * 8);
    let mut layout: Vec<(u64, usize)> = Vec::with_capacity(12);
    let mut column = |spec: u64, data: &mut Vec<u8>, write: &mut dyn FnMut(&mut Vec<u8>)| {
        let start = data.len();
        write(data);
        if data.len() > start {
            layout.push((spec, data.len() - start));
        }
    };
    if obj_actor().any(|v| v.is_some()) {
        column(OBJ_ACTOR, &mut data, &mut |d| uleb_into(d, obj_actor()));
    }
    if obj_counter().any(|v| v.is_some()) {
        column(OBJ_COUNTER, &mut data, &mut |d| uleb_into(d, obj_counter()));
    }
    if key_actor().any(|v| v.is_some()) {
        column(KEY_ACTOR, &mut data, &mut |d| uleb_into(d, key_actor()));
    }
    if key_counter().any(|v| v.is_some()) {
        column(KEY_COUNTER, &mut data, &mut |d| {
            delta_into(d, key_counter())
        });
    }
    if key_string().any(|v| v.is_some()) {
        column(KEY_STRING, &mut data, &mut |d| str_into(d, key_string()));
    }
    column(INSERT, &mut data, &mut |d| {
        bool_into(d, ops.iter().map(|o| o.insert))
    });
    column(ACTION, &mut data, &mut |d| {
        uleb_into(d, ops.iter().map(|o| Some(o.action)))
    });
    column(VALUE_META, &mut data, &mut |d| {
        uleb_into(d, ops.iter().map(|o| Some(o.meta)))
    });
    column(VALUE_RAW, &mut data, &mut |d| {
        ops.iter().for_each(|o| d.extend_from_slice(o.raw))
    });
    column(OP_PRED_COUNT, &mut data, &mut |d| {
        uleb_into(d, ops.iter().map(|o| Some(o.preds.len() as u64)))
    });
    column(OP_PRED_ACTOR, &mut data, &mut |d| {
        uleb_into(d, preds().map(|p| Some(local(p.actor))))
    });
    column(OP_PRED_COUNTER, &mut data, &mut |d| {
        delta_into(d, preds().map(|p| Some(p.counter as i64)))
    });

    let mut body = Vec::with_capacity(data.len() + 256);
    write_uleb(deps.len() as u64, &mut body);
    for dep in deps {
        body.extend_from_slice(&dep.0);
    }
    write_prefixed(actors[meta.actor], &mut body);
    write_uleb(meta.seq, &mut body);
    write_uleb(meta.start_op, &mut body);
    write_sleb(meta.time, &mut body);
    write_prefixed(meta.message.unwrap_or_default().as_bytes(), &mut body);
    write_uleb(others.len() as u64, &mut body);
    for &actor in &others {
        write_prefixed(actors[actor], &mut body);
    }
    write_uleb(layout.len() as u64, &mut body);
    for (spec, len) in &layout {
        write_uleb(*spec, &mut body);
        write_uleb(*len as u64, &mut body);
    }
    body.extend_from_slice(&data);
    body.extend_from_slice(meta.extra);

    let mut header = vec![CHUNK_CHANGE];
    write_uleb(body.len() as u64, &mut header);
    let mut hasher = Sha256::new();
    hasher.update(&header);
    hasher.update(&body);
    (ChangeHash(hasher.finalize().into()), body)
}

// Automerge's column encodings, in the one form it writes: runs of two or more equal values
// as a repeat, other values gathered in literal runs, nulls as null runs.

pub(super) fn write_uleb(mut n: u64, out: &mut Vec<u8>) {
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

fn write_sleb(mut n: i64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if (n == 0 && byte & 0x40 == 0) || (n == -1 && byte & 0x40 != 0) {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn write_prefixed(bytes: &[u8], out: &mut Vec<u8>) {
    write_uleb(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Appends the column of `values` to `out`.
fn rle_into<T: PartialEq + Copy>(
    out: &mut Vec<u8>,
    values: impl IntoIterator<Item = Option<T>>,
    pack: impl Fn(T, &mut Vec<u8>),
) {
    // The literal run being gathered is written as it comes; its count goes in front of it
    // once it is known.
    let mut literal: Option<(usize, i64)> = None;
    let flush_literal = |literal: &mut Option<(usize, i64)>, out: &mut Vec<u8>| {
        if let Some((start, count)) = literal.take() {
            let mut header = Vec::with_capacity(3);
            write_sleb(-count, &mut header);
            out.splice(start..start, header);
        }
    };
    let mut close = |run: Option<(Option<T>, u64)>, literal: &mut Option<(usize, i64)>| match run {
        None => flush_literal(literal, out),
        Some((None, n)) => {
            flush_literal(literal, out);
            write_sleb(0, out);
            write_uleb(n, out);
        }
        Some((Some(v), 1)) => {
            let (_, count) = literal.get_or_insert((out.len(), 0));
            *count += 1;
            pack(v, out);
        }
        Some((Some(v), n)) => {
            flush_literal(literal, out);
            write_sleb(n as i64, out);
            pack(v, out);
        }
    };
    let mut run: Option<(Option<T>, u64)> = None;
    for value in values {
        match &mut run {
            Some((current, n)) if *current == value => *n += 1,
            _ => {
                close(run, &mut literal);
                run = Some((value, 1));
            }
        }
    }
    close(run, &mut literal);
    close(None, &mut literal);
}

fn uleb_into(out: &mut Vec<u8>, values: impl IntoIterator<Item = Option<u64>>) {
    rle_into(out, values, write_uleb)
}

fn str_into<'a>(out: &mut Vec<u8>, values: impl IntoIterator<Item = Option<&'a str>>) {
    rle_into(out, values, |s: &str, out| {
        write_prefixed(s.as_bytes(), out)
    })
}

/// Differences from the previous value (nulls leave it), run-length encoded.
fn delta_into(out: &mut Vec<u8>, values: impl IntoIterator<Item = Option<i64>>) {
    let mut last = 0i64;
    let deltas = values.into_iter().map(|v| {
        v.map(|v| {
            let delta = v.wrapping_sub(last);
            last = v;
            delta
        })
    });
    rle_into(out, deltas, write_sleb)
}

/// Counts of alternating runs, starting with `false`.
fn bool_into(out: &mut Vec<u8>, values: impl IntoIterator<Item = bool>) {
    let (mut current, mut count) = (false, 0u64);
    for v in values {
        if v == current {
            count += 1;
        } else {
            write_uleb(count, out);
            current = v;
            count = 1;
        }
    }
    if count > 0 {
        write_uleb(count, out);
    }
}

pub(super) fn encode_uleb(values: impl IntoIterator<Item = Option<u64>>) -> Vec<u8> {
    let mut out = Vec::new();
    uleb_into(&mut out, values);
    out
}

pub(super) fn encode_str<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> Vec<u8> {
    let mut out = Vec::new();
    str_into(&mut out, values);
    out
}

pub(super) fn encode_delta(values: impl IntoIterator<Item = Option<i64>>) -> Vec<u8> {
    let mut out = Vec::new();
    delta_into(&mut out, values);
    out
}

pub(super) fn encode_bool(values: impl IntoIterator<Item = bool>) -> Vec<u8> {
    let mut out = Vec::new();
    bool_into(&mut out, values);
    out
}

//! Documents a hostile device could send: each is built from an honest record's document, with
//! the record's own kind, so that only the bound it breaks can refuse it.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue};
use vigie_core::{DocumentLimit, DocumentLimits};

/// One hostile document: its name, the bound it breaks, and its bytes (a whole document, or a
/// document followed by changes, as a device may push or a peer send).
pub struct Hostile {
    pub name: &'static str,
    pub limit: DocumentLimit,
    pub bytes: Vec<u8>,
}

fn open(honest: &[u8], actor: &automerge::ActorId) -> AutoCommit {
    AutoCommit::load(honest)
        .expect("an honest document loads")
        .with_actor(actor.clone())
}

/// `change` (an honest one's bytes) with one more operation: the deletion of the top-level
/// `field`'s value set by the operation `value` (counter and actor, as `ReadDoc::get` gives
/// it), named as its predecessor past the change's history (a value its device never
/// received). Automerge applies it by that id.
pub fn deleting_unseen(change: &[u8], field: &str, value: &automerge::ObjId) -> automerge::Change {
    let automerge::ObjId::Id(counter, actor, _) = value else {
        panic!("a value set by an operation");
    };
    let change = automerge::Change::try_from(change).expect("one change");
    let mut expanded = change.decode();
    expanded.hash = None;
    expanded.operations.push(automerge::legacy::Op {
        action: automerge::legacy::OpType::Delete,
        obj: automerge::legacy::ObjectId::Root,
        key: automerge::legacy::Key::Map(field.into()),
        pred: vec![automerge::legacy::OpId::new(*counter, actor)].into(),
        insert: false,
    });
    automerge::Change::from(expanded)
}

/// Maps nested `depth` levels under a new field of the record.
pub fn deep(honest: &[u8], actor: &automerge::ActorId, depth: usize) -> Vec<u8> {
    let mut doc = open(honest, actor);
    let mut obj = doc.put_object(ROOT, "extra", ObjType::Map).unwrap();
    for _ in 1..depth {
        obj = doc.put_object(&obj, "x", ObjType::Map).unwrap();
    }
    doc.save_nocompress()
}

/// A nesting built then deleted: gone from the state, still in the history. Its changes carry
/// `message` (a Vigie author, as JSON), if given.
pub fn deep_then_deleted(
    honest: &[u8],
    actor: &automerge::ActorId,
    depth: usize,
    message: Option<&str>,
) -> Vec<u8> {
    let options = || {
        let options = automerge::transaction::CommitOptions::default();
        match message {
            Some(m) => options.with_message(m.to_string()),
            None => options,
        }
    };
    let mut doc = open(honest, actor);
    let mut obj = doc.put_object(ROOT, "extra", ObjType::Map).unwrap();
    for _ in 1..depth {
        obj = doc.put_object(&obj, "x", ObjType::Map).unwrap();
    }
    doc.commit_with(options());
    doc.delete(ROOT, "extra").unwrap();
    doc.commit_with(options());
    doc.save_nocompress()
}

/// A string field of `bytes` bytes, saved with Automerge's own DEFLATE columns: a few hundred
/// KiB that Automerge would inflate to `bytes`.
pub fn deflate_bomb(honest: &[u8], actor: &automerge::ActorId, bytes: usize) -> Vec<u8> {
    let mut doc = open(honest, actor);
    doc.put(ROOT, "extra", ScalarValue::Str("a".repeat(bytes).into()))
        .unwrap();
    doc.save()
}

/// `n` nulls inserted in a list: run-length encoding makes them a few dozen bytes.
pub fn operations_bomb(honest: &[u8], actor: &automerge::ActorId, n: usize) -> Vec<u8> {
    let mut doc = open(honest, actor);
    let list = doc.put_object(ROOT, "extra", ObjType::List).unwrap();
    doc.splice(&list, 0, 0, std::iter::repeat_n(ScalarValue::Null, n))
        .unwrap();
    doc.save_nocompress()
}

/// `n` changes without operations.
pub fn many_changes(honest: &[u8], actor: &automerge::ActorId, n: usize) -> Vec<u8> {
    let mut doc = open(honest, actor);
    for _ in 0..n {
        doc.empty_change(Default::default());
    }
    doc.save_nocompress()
}

/// The record's name (a string field) set to `chars` characters, saved without compression.
pub fn huge_field(honest: &[u8], actor: &automerge::ActorId, chars: usize) -> Vec<u8> {
    let mut doc = open(honest, actor);
    doc.put(ROOT, "name", ScalarValue::Str("é".repeat(chars).into()))
        .unwrap();
    doc.save_nocompress()
}

/// A text of `chars` characters under the record's notes.
pub fn long_text(honest: &[u8], actor: &automerge::ActorId, chars: usize) -> Vec<u8> {
    let mut doc = open(honest, actor);
    let text = doc.put_object(ROOT, "notes", ObjType::Text).unwrap();
    doc.splice_text(&text, 0, 0, &"n".repeat(chars)).unwrap();
    doc.save_nocompress()
}

/// A field the record's kind does not define, in the map at `path` (the root when empty: one
/// of the record's own maps else, a referral say).
/// Its change carries `message` (a Vigie author, as JSON).
pub fn unknown_field(
    honest: &[u8],
    actor: &automerge::ActorId,
    path: &[&str],
    message: &str,
) -> Vec<u8> {
    let mut doc = open(honest, actor);
    let mut obj = ROOT;
    for key in path {
        obj = match doc.get(&obj, *key).unwrap() {
            Some((automerge::Value::Object(ObjType::Map), id)) => id,
            other => panic!("no map at {key}: {other:?}"),
        };
    }
    doc.put(&obj, "smuggled", ScalarValue::Str("payload".into()))
        .unwrap();
    doc.commit_with(automerge::transaction::CommitOptions::default().with_message(message));
    doc.save_nocompress()
}

/// Every hostile document, built from one honest record's document (`actor` is the device that
/// sends them).
pub fn all(honest: &[u8], actor: &automerge::ActorId) -> Vec<Hostile> {
    vec![
        Hostile {
            name: "maps nested 1,000 deep",
            limit: DocumentLimit::Depth,
            bytes: deep(honest, actor, 1_000),
        },
        Hostile {
            name: "maps nested 33 deep",
            limit: DocumentLimit::Depth,
            bytes: deep(honest, actor, 33),
        },
        Hostile {
            name: "a 200 MB field in DEFLATE columns",
            limit: DocumentLimit::Bytes,
            bytes: deflate_bomb(honest, actor, 200_000_000),
        },
        Hostile {
            name: "operations past the bound in a few bytes",
            limit: DocumentLimit::Operations,
            bytes: operations_bomb(
                honest,
                actor,
                DocumentLimits::STANDARD.max_operations as usize * 3 / 2,
            ),
        },
        Hostile {
            name: "20,000 empty changes",
            limit: DocumentLimit::Changes,
            bytes: many_changes(honest, actor, 20_000),
        },
        Hostile {
            name: "a 3 MiB field",
            limit: DocumentLimit::Bytes,
            bytes: huge_field(honest, actor, 1_600_000),
        },
        Hostile {
            name: "a 40,000-character text",
            limit: DocumentLimit::TextLength,
            bytes: long_text(honest, actor, 40_000),
        },
    ]
}

/// Runs `work` on a thread with a 1 MiB stack, the size of the worker threads apps run store
/// calls on: a recursion that would overflow it ends the test process.
pub fn on_small_stack<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(work)
        .expect("spawn a 1 MiB thread")
        .join()
        .expect("the work ends without panicking")
}

//! Stored bytes ⇄ Automerge documents: the one format every backend keeps (the embedded store,
//! PostgreSQL), and the one gate every untrusted byte passes through before Automerge reads it.
//!
//! - A document is stored as zstd of Automerge's uncompressed encoding (`encode`): smaller than
//!   Automerge's own per-column DEFLATE, faster to write and read, and the uncompressed form
//!   compresses far better when many documents travel together in one sync message. Files
//!   written before this hold Automerge's own encoding, told apart by their leading magic bytes
//!   (`decode` passes them through).
//! - Each document is compressed with a dictionary (`documents.zdict`, trained by
//!   `vigie-bench dictionary` on documents of a workload): a record's document is a few
//!   kilobytes that share their layout, field names and codes with every other record's, and
//!   compressed alone it kept most of its size. The dictionary is part of the format: a frame
//!   names it by its id, and a new dictionary would get a new id while this one stays readable.
//!   Frames without one (stored before) decode as before.
//! - Decompression is bounded (`decompress_bounded`), and every path that turns bytes into a
//!   document (`load`, `merge_into`) goes through the bounds on a document (`bounds`) and
//!   contains Automerge's panics.
//! - Heads and change hashes are kept as concatenated 32-byte hashes (`heads_bytes`,
//!   `heads_of`, `new_change_hashes`).
//!
//! The store, the sync engine and the server's PostgreSQL backend use this interface and
//! nothing below it.

pub mod bounds;
pub(crate) mod columns;
mod history;
pub mod photo;
pub mod sealed;

pub use crate::error::DecodeError;

use crate::error::{Error, Result};
use automerge::{Automerge, ChangeHash};
use bounds::DocumentLimits;
use std::panic::{AssertUnwindSafe, catch_unwind};
use uuid::Uuid;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// No record's document comes near this; a stored value claiming more is damaged.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

/// A document as a backend stores it.
pub struct Encoded {
    /// What the backend keeps: zstd of `plain`.
    pub stored: Vec<u8>,
    /// The document's uncompressed encoding, as `load` reads it.
    pub plain: Vec<u8>,
}

/// Encodes a document for storage. A document over the size bound on a record is
/// `Error::OverLimit`: nothing of it is stored.
pub fn encode(id: Uuid, document: &Automerge) -> Result<Encoded> {
    let plain = document.save_nocompress();
    Ok(Encoded {
        stored: encode_plain(id, &plain)?,
        plain,
    })
}

/// Encodes for storage a document's uncompressed encoding (`Automerge::save_nocompress`, or
/// the same bytes as received).
///
/// What is stored must load again: the bounds every load applies (`bounds::admit`: the
/// operations and changes of its history) are checked here too, so that a write that would
/// make a record unreadable is refused (`Error::OverLimit`) instead of stored.
pub(crate) fn encode_plain(id: Uuid, plain: &[u8]) -> Result<Vec<u8>> {
    let limits = DocumentLimits::STANDARD;
    bounds::check_size(plain.len(), &limits).map_err(|limit| Error::OverLimit { id, limit })?;
    match bounds::admit(plain, &limits) {
        Ok(_) => Ok(compress(plain)),
        Err(bounds::Refused::Over(limit)) => Err(Error::OverLimit { id, limit }),
        Err(bounds::Refused::Unsupported) => Err(Error::DamagedDocument {
            id,
            reason: "a chunk format Vigie does not store".into(),
        }),
    }
}

/// The dictionary documents are compressed with (see the module's documentation).
const DICTIONARY: &[u8] = include_bytes!("documents.zdict");
const DOCUMENT_LEVEL: i32 = 3;

/// The dictionary prepared once for the process: every thread's compressor refers to it.
fn encoder_dictionary() -> &'static zstd::dict::EncoderDictionary<'static> {
    static PREPARED: std::sync::OnceLock<zstd::dict::EncoderDictionary<'static>> =
        std::sync::OnceLock::new();
    PREPARED.get_or_init(|| zstd::dict::EncoderDictionary::copy(DICTIONARY, DOCUMENT_LEVEL))
}

fn decoder_dictionary() -> &'static zstd::dict::DecoderDictionary<'static> {
    static PREPARED: std::sync::OnceLock<zstd::dict::DecoderDictionary<'static>> =
        std::sync::OnceLock::new();
    PREPARED.get_or_init(|| zstd::dict::DecoderDictionary::copy(DICTIONARY))
}

fn compress(plain: &[u8]) -> Vec<u8> {
    thread_local! {
        // A compression context costs more to create than a small document to compress. The
        // output goes to a buffer kept with it, and leaves as a copy of its exact size: a
        // buffer of zstd's bound made for each document (`Compressor::compress`) was a large
        // allocation per record, which made the allocator sort its free lists each time (2.5 %
        // of a phone's initial sync).
        static COMPRESSOR: std::cell::RefCell<(zstd::bulk::Compressor<'static>, Vec<u8>)> =
            std::cell::RefCell::new((
                zstd::bulk::Compressor::with_prepared_dictionary(encoder_dictionary())
                    .expect("zstd context"),
                Vec::new(),
            ));
    }
    /// A document larger than this leaves the buffer at this size afterwards.
    const KEPT_BUFFER: usize = 256 * 1024;
    COMPRESSOR.with(|c| {
        let (compressor, buffer) = &mut *c.borrow_mut();
        buffer.clear();
        buffer.reserve(zstd::zstd_safe::compress_bound(plain.len()));
        compressor
            .compress_to_buffer(plain, buffer)
            .expect("in-memory compression");
        let stored = buffer.to_vec();
        buffer.shrink_to(KEPT_BUFFER);
        stored
    })
}

/// The Automerge bytes of a stored document.
pub fn decode(id: Uuid, stored: Vec<u8>) -> Result<Vec<u8>> {
    if !stored.starts_with(&ZSTD_MAGIC) {
        return Ok(stored);
    }
    let damaged = |_| Error::DamagedDocument {
        id,
        reason: "the stored document does not decompress".into(),
    };
    let with_dictionary = match zstd::zstd_safe::get_dict_id_from_frame(&stored) {
        None => false,
        Some(named) if Some(named) == zstd::zstd_safe::get_dict_id_from_dict(DICTIONARY) => true,
        Some(_) => {
            return Err(Error::DamagedDocument {
                id,
                reason: "the stored document names a compression dictionary this version lacks"
                    .into(),
            });
        }
    };
    decompress_limited(&stored, MAX_DOCUMENT_BYTES, with_dictionary).map_err(damaged)
}

/// Decompresses a frame of `size` bytes with this thread's context, with the dictionary or
/// without (a frame that would produce more than `size` is an error).
fn decompress_sized(stored: &[u8], size: usize, with_dictionary: bool) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static PLAIN: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
        static WITH_DICTIONARY: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let context = if with_dictionary {
        &WITH_DICTIONARY
    } else {
        &PLAIN
    };
    context.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompressor = match &mut *cell {
            Some(decompressor) => decompressor,
            empty => empty.insert(if with_dictionary {
                zstd::bulk::Decompressor::with_prepared_dictionary(decoder_dictionary())?
            } else {
                zstd::bulk::Decompressor::new()?
            }),
        };
        decompressor.decompress(stored, size)
    })
}

/// A stored document, decoded and loaded (`decode`, then `load`).
pub fn load_stored(id: Uuid, stored: Vec<u8>) -> Result<Automerge> {
    load(id, &decode(id, stored)?)
}

/// Decompresses at most `limit` bytes; a frame that would produce more is refused.
pub fn decompress_bounded(body: &[u8], limit: usize) -> std::result::Result<Vec<u8>, DecodeError> {
    decompress_limited(body, limit, false)
}

/// `decompress_bounded`, with the documents' dictionary or without. A frame that says its size
/// (every frame this version writes: stored documents and sync messages) is decompressed in one
/// call with this thread's context, into a buffer of that size once the size is within
/// `limit`: making a context for each cost more than decompressing a small one. A frame that
/// does not (an older peer's) is read as a stream.
fn decompress_limited(
    body: &[u8],
    limit: usize,
    with_dictionary: bool,
) -> std::result::Result<Vec<u8>, DecodeError> {
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(body) {
        if size > limit as u64 {
            return Err(DecodeError::TooLarge { limit });
        }
        return decompress_sized(body, size as usize, with_dictionary)
            .map_err(|_| DecodeError::Compression);
    }
    if with_dictionary {
        let decoder = zstd::stream::Decoder::with_prepared_dictionary(body, decoder_dictionary())
            .map_err(|_| DecodeError::Compression)?;
        read_bounded(decoder, limit)
    } else {
        let decoder = zstd::stream::Decoder::new(body).map_err(|_| DecodeError::Compression)?;
        read_bounded(decoder, limit)
    }
}

/// Reads what `decoder` decompresses, at most `limit` bytes.
fn read_bounded(
    mut decoder: impl std::io::Read,
    limit: usize,
) -> std::result::Result<Vec<u8>, DecodeError> {
    // Grown by hand, never past `limit`: `read_to_end` doubles its buffer, so a frame that
    // stops just under the limit would hold twice the limit in memory.
    let mut plain: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match decoder.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(DecodeError::Compression),
        };
        if plain.len() + n > limit {
            return Err(DecodeError::TooLarge { limit });
        }
        if plain.capacity() - plain.len() < n {
            let target = (plain.capacity() * 2).max(plain.len() + n).min(limit);
            plain.reserve_exact(target - plain.len());
        }
        plain.extend_from_slice(&chunk[..n]);
    }
    Ok(plain)
}

/// The error for bytes `bounds::admit` refused.
fn refused(id: Uuid, refused: bounds::Refused) -> Error {
    match refused {
        bounds::Refused::Over(limit) => Error::OverLimit { id, limit },
        bounds::Refused::Unsupported => Error::DamagedDocument {
            id,
            reason: "the document holds a chunk format Vigie does not read".into(),
        },
    }
}

/// Decodes a document from Automerge bytes that may be damaged or hostile (received, or stored
/// by an older version). What Automerge would allocate is bounded before it reads them, and the
/// document's state is checked without recursion before anything recursive can read it
/// (`bounds`). automerge can panic on malformed input; the panic is contained here and
/// reported as a damaged document.
pub fn load(id: Uuid, bytes: &[u8]) -> Result<Automerge> {
    let doc = load_whole(id, bytes)?;
    bounds::check_state(&doc, None, &DocumentLimits::STANDARD)
        .map_err(|limit| Error::OverLimit { id, limit })?;
    Ok(doc)
}

/// `load` without the walk of the state for its bounds (`bounds::check_state`), which the
/// caller checks otherwise (`columns::read` bounds what it reads). Automerge rebuilds every
/// change and checks its hash against the heads the document names.
pub(crate) fn load_whole(id: Uuid, bytes: &[u8]) -> Result<Automerge> {
    bounds::admit(bytes, &DocumentLimits::STANDARD).map_err(|r| refused(id, r))?;
    #[cfg(feature = "test-hooks")]
    BYTES_LOADED.with(|loaded| loaded.set(loaded.get() + bytes.len() as u64));
    match catch_unwind(AssertUnwindSafe(|| Automerge::load(bytes))) {
        Ok(Ok(doc)) => Ok(doc),
        Ok(Err(_)) => Err(Error::DamagedDocument {
            id,
            reason: "the document's bytes do not decode".into(),
        }),
        Err(_) => Err(Error::DamagedDocument {
            id,
            reason: "the document's bytes made the decoder fail".into(),
        }),
    }
}

#[cfg(feature = "test-hooks")]
thread_local! {
    static BYTES_LOADED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Test hook (feature `test-hooks` only, never in a release): the bytes of the documents
/// loaded on this thread so far, to show where the work of a large record is done.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub fn debug_bytes_loaded() -> u64 {
    BYTES_LOADED.with(std::cell::Cell::get)
}

/// A document a hub sent without its heads (`columns::strip_heads`), whole again, when the
/// column reader leaves it to Automerge: Automerge loads it without checking heads it does not
/// have (it works them out), with the bounds of `load`, and saves it whole.
pub(crate) fn load_headless(id: Uuid, bytes: &[u8]) -> Result<Vec<u8>> {
    let bytes = columns::with_own_checksum(bytes);
    let limits = DocumentLimits::STANDARD;
    bounds::admit(&bytes, &limits).map_err(|r| refused(id, r))?;
    let options =
        automerge::LoadOptions::new().verification_mode(automerge::VerificationMode::DontCheck);
    // Loaded without the check, the document keeps the heads it names (none): its changes,
    // applied to a new document, give the real ones.
    let document = match catch_unwind(AssertUnwindSafe(|| {
        let loaded = Automerge::load_with_options(&bytes, options)?;
        let mut whole = Automerge::new();
        whole.apply_changes(loaded.get_changes(&[]))?;
        Ok::<_, automerge::AutomergeError>(whole)
    })) {
        Ok(Ok(document)) => document,
        _ => {
            return Err(Error::DamagedDocument {
                id,
                reason: "the document sent without its heads does not decode".into(),
            });
        }
    };
    bounds::check_state(&document, None, &limits)
        .map_err(|limit| Error::OverLimit { id, limit })?;
    Ok(document.save_nocompress())
}

/// Feeds untrusted bytes (a whole document, or changes) into a document, with the checks of
/// `load`. The caller discards the document on error.
pub fn merge_into(document: &mut Automerge, id: Uuid, bytes: &[u8]) -> Result<()> {
    let damaged = |reason: &str| Error::DamagedDocument {
        id,
        reason: reason.into(),
    };
    let limits = DocumentLimits::STANDARD;
    // Automerge reads up to the first chunk that does not parse or match its checksum, and
    // says nothing of the rest: a push of garbage, or cut short, was acknowledged as taken,
    // and its app believed its edit had reached the hub.
    let admitted = bounds::admit(bytes, &limits).map_err(|r| refused(id, r))?;
    if !admitted.whole {
        return Err(damaged("the received bytes are not whole Automerge chunks"));
    }
    let before = document.get_heads();
    match catch_unwind(AssertUnwindSafe(|| document.load_incremental(bytes))) {
        Ok(Ok(_)) if !took_every_change(document, &admitted.changes) => {
            Err(damaged("a received change does not decode"))
        }
        Ok(Ok(_)) if !bounds::numbered_in_sequence(document, &before) => Err(damaged(
            "a received change numbers its operations out of sequence",
        )),
        Ok(Ok(_)) => bounds::check_state(document, None, &limits)
            .map_err(|limit| Error::OverLimit { id, limit }),
        Ok(Err(automerge::AutomergeError::DuplicateSeqNumber(seq, actor))) => {
            Err(Error::ActorReused { id, actor, seq })
        }
        Ok(Err(_)) => Err(damaged("the received changes do not decode")),
        Err(_) => Err(damaged("the received changes made the decoder fail")),
    }
}

/// Whether Automerge took or queued every change of `changes` (their hashes): one it does not
/// hold and did not queue for history it lacks (a whole chunk, its checksum right, whose
/// columns do not decode: a string that is not UTF-8) is left out without a word, and a push
/// of it was acknowledged as taken. One queued is for the caller to judge (`MissingHistory`).
fn took_every_change(document: &Automerge, changes: &[ChangeHash]) -> bool {
    use automerge::ReadDoc;
    changes.iter().all(|hash| {
        document.get_change_meta_by_hash(hash).is_some()
            // Neither applied nor queued, it is the first thing missing on its own path back.
            || !document.get_missing_deps(std::slice::from_ref(hash)).contains(hash)
    })
}

/// The changes of a document (`load`'s bytes) that `wanted` names, each as Automerge's
/// `Change::raw_bytes`, concatenated in `wanted`'s order; those it does not hold are left out.
/// What a hub sends a device that holds the rest: rebuilt from the columns
/// (`columns::change_chunks`), or, when the reader leaves the document to Automerge, from the
/// loaded document.
pub fn changes_by_hash(id: Uuid, bytes: &[u8], wanted: &[ChangeHash]) -> Result<Vec<u8>> {
    let set: std::collections::HashSet<ChangeHash> = wanted.iter().copied().collect();
    let chunks = match columns::change_chunks(bytes, &DocumentLimits::STANDARD, &set) {
        Some(chunks) => chunks,
        // Automerge rebuilds every change of the document to give one by its hash: asked once
        // for all of them.
        None => load(id, bytes)?
            .get_changes(&[])
            .into_iter()
            .filter(|change| set.contains(&change.hash()))
            .map(|change| (change.hash(), change.raw_bytes().to_vec()))
            .collect(),
    };
    Ok(wanted
        .iter()
        .filter_map(|hash| chunks.get(hash))
        .flatten()
        .copied()
        .collect())
}

/// Heads (or change hashes) as backends keep them: 32-byte hashes, concatenated.
pub fn heads_bytes(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

/// The hashes `heads_bytes` concatenated.
pub fn heads_of(bytes: &[u8]) -> Vec<ChangeHash> {
    bytes
        .chunks_exact(32)
        .map(|c| ChangeHash(c.try_into().expect("32-byte chunks")))
        .collect()
}

/// The hashes of the changes made after `before`, concatenated as the change log keeps them.
pub fn new_change_hashes(document: &Automerge, before: &[ChangeHash]) -> Vec<u8> {
    document
        .get_changes_meta(before)
        .iter()
        .flat_map(|c| c.hash.0)
        .collect()
}

/// The root of a record's history: its one change with no dependencies. A document of no
/// change, or of several roots (histories of several records put together), has none.
pub fn single_root(document: &Automerge) -> Option<ChangeHash> {
    match history_roots(document, &[])[..] {
        [root] => Some(root),
        _ => None,
    }
}

/// The changes of a document with no dependencies (after `after`): where its history starts.
pub fn history_roots(document: &Automerge, after: &[ChangeHash]) -> Vec<ChangeHash> {
    document
        .get_changes_meta(after)
        .iter()
        .filter(|c| c.deps.is_empty())
        .map(|c| c.hash)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;

    fn document() -> Automerge {
        let mut document = Automerge::new();
        let mut tx = document.transaction();
        tx.put(automerge::ROOT, "kind", "child_case").unwrap();
        tx.put(automerge::ROOT, "name", "Kouassi Yao").unwrap();
        tx.commit();
        document
    }

    /// A change whose string is not UTF-8, in a whole chunk whose checksum was made for it:
    /// Automerge leaves it out and says nothing; a push of it was acknowledged as taken, and
    /// a colleague never saw the edit.
    #[test]
    fn a_change_automerge_leaves_out_is_refused_as_damaged() {
        use sha2::Digest;
        // The change with its 4-byte marker replaced by bytes that are not UTF-8, and the
        // chunk's checksum (its type, length and data, after the header) made for them.
        let damage = |change: &[u8], marker: &[u8]| {
            let at = change.windows(4).position(|w| w == marker).unwrap();
            let mut damaged = change.to_vec();
            damaged[at..at + 4].copy_from_slice(b"\xff\xfe\xfd\xfc");
            let sum = sha2::Sha256::digest(&damaged[8..]);
            damaged[4..8].copy_from_slice(&sum[..4]);
            damaged
        };
        let id = Uuid::now_v7();
        let base = document();
        let mut edited = base.fork();
        let mut tx = edited.transaction();
        tx.put(automerge::ROOT, "guardian", "QZV7").unwrap();
        tx.commit();
        let change = edited.get_last_local_change().unwrap().raw_bytes().to_vec();
        let mut received = base.fork();
        assert!(matches!(
            merge_into(&mut received, id, &damage(&change, b"QZV7")),
            Err(Error::DamagedDocument { .. })
        ));
        // The change as made is taken.
        let mut received = base.fork();
        merge_into(&mut received, id, &change).unwrap();
        assert_eq!(received.get_heads(), edited.get_heads());
        // A change waiting for one it lacks is not damaged; damaged, it is.
        let mut later = edited.fork();
        let mut tx = later.transaction();
        tx.put(automerge::ROOT, "guardian", "QZV8").unwrap();
        tx.commit();
        let next = later.get_last_local_change().unwrap().raw_bytes().to_vec();
        let mut received = base.fork();
        merge_into(&mut received, id, &next).unwrap();
        assert_eq!(received.get_heads(), base.get_heads());
        let mut received = base.fork();
        assert!(matches!(
            merge_into(&mut received, id, &damage(&next, b"QZV8")),
            Err(Error::DamagedDocument { .. })
        ));
    }

    #[test]
    fn documents_are_stored_with_the_dictionary_and_read_back() {
        let id = Uuid::now_v7();
        let encoded = encode(id, &document()).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_dict_id_from_frame(&encoded.stored),
            zstd::zstd_safe::get_dict_id_from_dict(DICTIONARY),
            "the frame names the dictionary"
        );
        assert!(encoded.stored.len() < zstd::bulk::compress(&encoded.plain, 3).unwrap().len());
        assert_eq!(decode(id, encoded.stored).unwrap(), encoded.plain);
    }

    #[test]
    fn changes_by_hash_come_in_the_order_asked_whether_or_not_automerge_reads_them() {
        let id = Uuid::now_v7();
        // A text the column reader reads, and a counter it leaves to Automerge.
        for counter in [false, true] {
            let mut doc = document();
            for n in 0..3 {
                let mut tx = doc.transaction();
                if counter {
                    tx.put(automerge::ROOT, "n", automerge::ScalarValue::counter(n))
                        .unwrap();
                } else {
                    tx.put(automerge::ROOT, "n", n).unwrap();
                }
                tx.commit();
            }
            let bytes = doc.save_nocompress();
            assert_eq!(
                columns::change_chunks(&bytes, &DocumentLimits::STANDARD, &Default::default())
                    .is_some(),
                !counter
            );
            let all: Vec<ChangeHash> = doc.get_changes(&[]).iter().map(|c| c.hash()).collect();
            let asked = [all[3], ChangeHash([1; 32]), all[1]];
            let expected: Vec<u8> = [all[3], all[1]]
                .iter()
                .flat_map(|h| doc.get_change_by_hash(h).unwrap().raw_bytes().to_vec())
                .collect();
            assert_eq!(changes_by_hash(id, &bytes, &asked).unwrap(), expected);
        }
        // Damaged bytes: a typed error.
        assert!(matches!(
            changes_by_hash(id, b"not a document", &[ChangeHash([1; 32])]),
            Err(Error::DamagedDocument { .. } | Error::OverLimit { .. })
        ));
    }

    #[test]
    fn frames_are_bounded_whether_or_not_they_say_their_size() {
        let plain = vec![7u8; 100 * 1024];
        let sized = zstd::bulk::compress(&plain, 3).unwrap();
        let streamed = zstd::stream::encode_all(&plain[..], 3).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&sized).ok(),
            Some(Some(plain.len() as u64))
        );
        for frame in [&sized, &streamed] {
            assert_eq!(decompress_bounded(frame, plain.len()).unwrap(), plain);
            assert_eq!(
                decompress_bounded(frame, plain.len() - 1),
                Err(DecodeError::TooLarge {
                    limit: plain.len() - 1
                })
            );
            // Cut short.
            assert_eq!(
                decompress_bounded(&frame[..frame.len() - 5], plain.len()),
                Err(DecodeError::Compression)
            );
        }
        // A frame followed by another says less than the two produce: refused, not read past
        // the size it gave.
        let mut more = sized.clone();
        more.extend_from_slice(&zstd::bulk::compress(b"and more", 3).unwrap());
        assert_eq!(
            decompress_bounded(&more, 2 * plain.len()),
            Err(DecodeError::Compression)
        );
    }

    #[test]
    fn documents_stored_before_the_dictionary_still_read() {
        let id = Uuid::now_v7();
        let plain = document().save_nocompress();
        let without = zstd::bulk::compress(&plain, 3).unwrap();
        assert_eq!(decode(id, without).unwrap(), plain);
        // A frame that does not say its size (written by a stream).
        let streamed = zstd::stream::encode_all(&plain[..], 3).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&streamed).ok(),
            Some(None)
        );
        assert_eq!(decode(id, streamed).unwrap(), plain);
        // Automerge's own encoding, from before zstd.
        let own = document().save();
        assert_eq!(decode(id, own.clone()).unwrap(), own);
    }

    #[test]
    fn a_frame_naming_another_dictionary_is_a_damaged_document() {
        let id = Uuid::now_v7();
        let plain = document().save_nocompress();
        // The same dictionary under another id (bytes 4 to 8 of a zstd dictionary).
        let mut other = DICTIONARY.to_vec();
        other[4..8].copy_from_slice(&0x5eed_u32.to_le_bytes());
        let mut compressor = zstd::bulk::Compressor::with_dictionary(3, &other).unwrap();
        let stored = compressor.compress(&plain).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_dict_id_from_frame(&stored).map(|i| i.get()),
            Some(0x5eed)
        );
        let Err(Error::DamagedDocument { reason, .. }) = decode(id, stored) else {
            panic!("a frame of another dictionary decoded");
        };
        assert!(reason.contains("dictionary"), "{reason}");
    }
}

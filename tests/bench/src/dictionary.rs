//! `vigie-bench dictionary`: trains the zstd dictionary the core stores documents with
//! (`core/src/codec/documents.zdict`, see `codec::encode`).
//!
//! The samples are the documents of a workload made with a seed other than the benchmarks'
//! (so that what the benchmarks measure is not the dictionary having seen their documents),
//! written by a store as a device writes them. What a dictionary captures is what every
//! document of a kind shares: Automerge's chunk and column layout, the field names, the codes
//! of the enums; a field's values differ from one record to the next.
//!
//! Stored documents name the dictionary they were compressed with, and cannot be read without
//! it: the one the core ships is never replaced. The command refuses to overwrite a file; a
//! new dictionary would be added beside it, under its own id, and read with it.

use crate::BoxResult;
use crate::workload::{AnyRecord, Workload};
use std::path::Path;
use vigie_core::{Encryption, Record, Store, StoreConfig, StoreRole};

/// The dictionary's size: past 64 KiB, documents of a few kilobytes gained little.
const DICTIONARY_BYTES: usize = 64 * 1024;
/// Not the benchmarks' seed (`workload::DEFAULT_SEED`).
pub const TRAINING_SEED: u64 = 7;

pub fn train(out: &Path, seed: u64, scale: f64) -> BoxResult<()> {
    if out.exists() {
        return Err(format!(
            "{} exists: documents stored with it need it, so it is never replaced (give --out)",
            out.display()
        )
        .into());
    }
    let dir = tempfile::tempdir()?;
    // A hub's store: it holds every kind the dictionary compresses, users included (a
    // device's refuses them).
    let mut store = Store::open(
        StoreConfig::new(
            dir.path().join("samples.db"),
            Encryption::Unencrypted,
            uuid::Uuid::now_v7(),
        )
        .role(StoreRole::Hub),
    )?;
    let mut ids = Vec::new();
    for record in Workload::new(seed, scale) {
        ids.push(match record {
            AnyRecord::User(r) => store.create(&r)?.id(),
            AnyRecord::Workplace(r) => store.create(&r)?.id(),
            AnyRecord::Visit(r) => store.create(&r)?.id(),
            AnyRecord::ChildCase(r) => store.create(&r)?.id(),
        });
    }
    let samples = ids
        .iter()
        .map(|id| store.export_document(*id))
        .collect::<Result<Vec<_>, _>>()?;
    let dictionary = zstd::dict::from_samples(&samples, DICTIONARY_BYTES)?;
    std::fs::write(out, &dictionary)?;
    eprintln!(
        "dictionary: {} bytes from {} documents ({} bytes) written to {}",
        dictionary.len(),
        samples.len(),
        samples.iter().map(Vec::len).sum::<usize>(),
        out.display()
    );
    Ok(())
}

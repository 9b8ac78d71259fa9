#![no_main]
//! Any bytes merged as a record's document (what sync, peers and bundles all end in).
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut f = common::fixture().lock().unwrap_or_else(|e| e.into_inner());
    let _ = f.device.merge_document(uuid::Uuid::now_v7(), data);
});

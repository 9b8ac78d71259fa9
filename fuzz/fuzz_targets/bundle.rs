#![no_main]
//! Any bytes imported as a bundle.
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut f = common::fixture().lock().unwrap_or_else(|e| e.into_inner());
    let _ = f.device.import_bundle(data);
});

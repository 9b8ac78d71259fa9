#![no_main]
//! A device given any bytes as a hub's response.
mod common;
use libfuzzer_sys::fuzz_target;
use vigie_core::sync::SyncOptions;

fuzz_target!(|data: &[u8]| {
    let mut f = common::fixture().lock().unwrap_or_else(|e| e.into_inner());
    let _ = f.device.hub_sync_apply(data, &SyncOptions::default());
});

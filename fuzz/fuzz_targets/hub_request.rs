#![no_main]
//! A hub given any bytes as a sync request: never a panic, never a broken store.
mod common;
use libfuzzer_sys::fuzz_target;
use vigie_core::sync::HubLimits;

fuzz_target!(|data: &[u8]| {
    let mut f = common::fixture().lock().unwrap_or_else(|e| e.into_inner());
    let principal = f.principal.clone();
    let _ = f.hub.hub_handle(&principal, data, &HubLimits::default());
});

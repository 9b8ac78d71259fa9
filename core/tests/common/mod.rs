//! Helpers shared by the core's integration tests. Each test binary uses a part of them.
#![allow(dead_code)]

use vigie_core::Store;
use vigie_core::sync::{HubLimits, Principal, SyncOptions, SyncSummary, sync_with_hub};

/// A whole sync session of a device's `store`, authenticated as `principal`, with the hub's
/// store `hub`, whose handler is called in-process as the transport.
pub fn sync_in_process(
    store: &mut Store,
    principal: &Principal,
    hub: &mut Store,
    options: &SyncOptions,
) -> SyncSummary {
    sync_with_hub(
        store,
        options,
        |request| {
            hub.hub_handle(principal, request, &HubLimits::default())
                .map_err(|e| e.to_string())
        },
        |_| {},
    )
    .unwrap()
}

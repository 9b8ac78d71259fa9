//! Helpers shared by the core's integration tests. Each test binary uses a part of them.
#![allow(dead_code)]

pub mod hostile;
pub mod matrix;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use std::path::Path;
use uuid::Uuid;
use vigie_core::sync::wire;
use vigie_core::sync::{HubLimits, Principal, SyncOptions, sync_with_hub};
use vigie_core::*;

/// A calendar date of the tests.
pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
}

/// An instant of the tests: on the hour, in UTC.
pub fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<FixedOffset> {
    FixedOffset::east_opt(0)
        .expect("UTC")
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("a valid instant")
}

/// An unencrypted device store at `dir/name`, for a user of its own.
pub fn plain_store(dir: &Path, name: &str) -> Store {
    Store::open(StoreConfig::new(
        dir.join(name),
        Encryption::Unencrypted,
        Uuid::now_v7(),
    ))
    .expect("open a device store")
}

/// The sample area tree the repository ships (`reference/areas-CI.json`): Côte d'Ivoire,
/// regions CI-R1 (districts D1 to D4, communities C01 to C10 each) and CI-R2.
pub fn sample_areas() -> ReferenceFile {
    ReferenceFile::parse(include_str!("../../../reference/areas-CI.json"))
        .expect("the sample area tree parses")
}

/// Reference data with the sample area tree published.
pub fn sample_reference() -> ReferenceData {
    let file = sample_areas();
    ReferenceData::builtin().with(&file.key, 1, file.content)
}

/// A hub store at `path` with the sample area tree published (a hub serves the records of a
/// country only once its tree is published: area codes are matched at their level in it).
pub fn hub_store(path: &Path) -> Store {
    let mut hub = Store::open(
        StoreConfig::new(path, Encryption::Unencrypted, Uuid::now_v7()).role(StoreRole::Hub),
    )
    .expect("open a hub store");
    let file = sample_areas();
    hub.publish_reference(&file.key, file.content)
        .expect("publish the sample area tree");
    hub
}

/// Makes the store's user act as `role` in `areas`, as a hub tells a device at a sync: the
/// store pulls once from a hub of its own (with the sample area tree) that holds the user so.
/// Nothing is pushed, and the cursor is not kept: for stores that never sync with another hub
/// (they keep that hub's copy of the area tree).
pub fn act_as(store: &mut Store, role: Role, areas: &[&str]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut hub = hub_store(&dir.path().join("hub.db"));
    let principal = Principal {
        device: store.device_id(),
        user: store.user_id(),
        role,
        areas: areas.iter().map(|a| a.to_string()).collect(),
    };
    let request = wire::SyncRequest {
        actor: store.actor().to_bytes().to_vec(),
        cursor: None,
        push: Vec::new(),
        refetch: Vec::new(),
        max_response_bytes: 1 << 20,
        receipt: 0,
    };
    let response = hub
        .hub_handle(
            &principal,
            &wire::encode_request(&request),
            &HubLimits::default(),
        )
        .expect("the hub answers");
    let mut response = wire::decode_response(&response, 1 << 26).expect("a response");
    response.cursor = Default::default();
    store
        .hub_sync_apply(&wire::encode_response(&response), &SyncOptions::default())
        .expect("the answer applies");
    assert_eq!(
        store.user_profile().unwrap().map(|p| p.role),
        Some(role),
        "the store acts as {role:?}"
    );
}

/// Syncs `store` with `hub` as `principal` until nothing more moves.
pub fn sync(store: &mut Store, hub: &mut Store, principal: &Principal) -> sync::SyncSummary {
    sync_with_hub(
        store,
        &SyncOptions::default(),
        |request| {
            hub.hub_handle(principal, request, &HubLimits::default())
                .map_err(|e| e.to_string())
        },
        |_| {},
    )
    .expect("sync")
}

/// A whole sync session of a device's `store`, authenticated as `principal`, with the hub's
/// store `hub`, whose handler is called in-process as the transport.
pub fn sync_in_process(
    store: &mut Store,
    principal: &Principal,
    hub: &mut Store,
    options: &SyncOptions,
) -> sync::SyncSummary {
    sync_with_hub(
        store,
        options,
        |request| {
            hub.hub_handle(principal, request, &HubLimits::default())
                .map_err(|e| e.to_string())
        },
        |_| {},
    )
    .expect("sync")
}

//! Helpers shared by the core's integration tests. Each suite uses a part of them.
#![allow(dead_code)]

pub mod hostile;
pub mod matrix;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use uuid::Uuid;
use vigie_core::sync::wire;
use vigie_core::sync::{
    Certifier, DeviceRegistry, HubError, HubLimits, Principal, RegisteredDevice, SyncOptions,
    sync_with_hub,
};
use vigie_core::*;

/// Pushes one record as `device`'s sync request, straight to the hub store: the hub's outcome.
pub fn push_one(
    hub: &mut Store,
    principal: &Principal,
    device: &Store,
    entry: wire::PushEntry,
) -> wire::PushOutcome {
    let request = wire::SyncRequest {
        actor: device.actor().to_bytes().to_vec(),
        cursor: None,
        push: vec![entry],
        refetch: Vec::new(),
        max_response_bytes: 256 * 1024,
        receipt: 0,
        identity: None,
        headless_documents: false,
        incarnation: None,
        device_clock: None,
    };
    let response = hub
        .hub_handle(
            principal,
            &wire::encode_request(&request),
            &HubLimits::default(),
        )
        .expect("the push is answered");
    let response = wire::decode_response(&response, 1 << 26).unwrap();
    response.acks[0].outcome.clone()
}

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

/// The device registry of the tests' in-process hubs (the server keeps it in its registry
/// file or PostgreSQL): the certificates issued and the devices revoked. One per test thread.
#[derive(Default)]
pub struct TestRegistry {
    certificates: RefCell<HashMap<Uuid, Vec<u8>>>,
    revoked: RefCell<HashSet<Uuid>>,
}

impl DeviceRegistry for TestRegistry {
    fn devices(&self) -> Result<Vec<RegisteredDevice>> {
        let revoked = self.revoked.borrow();
        let certificates = self.certificates.borrow();
        let mut ids: HashSet<Uuid> = certificates.keys().copied().collect();
        ids.extend(revoked.iter().copied());
        Ok(ids
            .into_iter()
            .map(|device| RegisteredDevice {
                device,
                certificate: certificates.get(&device).cloned(),
                revoked: revoked.contains(&device),
            })
            .collect())
    }

    fn keep_certificate(
        &self,
        device: Uuid,
        certificate: &[u8],
        replacing: Option<&[u8]>,
    ) -> Result<bool> {
        let mut certificates = self.certificates.borrow_mut();
        if certificates.get(&device).map(Vec::as_slice) != replacing {
            return Ok(false);
        }
        certificates.insert(device, certificate.to_vec());
        Ok(true)
    }
}

thread_local! {
    static REGISTRY: TestRegistry = TestRegistry::default();
}

/// Puts `certificate` in this thread's hub registry for its device, as a hub of an earlier
/// version left it.
pub fn registered(certificate: &vigie_core::identity::Certificate) {
    REGISTRY.with(|r| {
        r.certificates
            .borrow_mut()
            .insert(certificate.device, certificate.to_bytes())
    });
}

/// Revokes a device on this thread's in-process hubs.
pub fn revoke(device: Uuid) {
    REGISTRY.with(|r| r.revoked.borrow_mut().insert(device));
}

/// The hub's handler, certifying devices as the server's does (its key kept in the hub store).
pub fn handle(
    hub: &mut Store,
    principal: &Principal,
    request: &[u8],
    limits: &HubLimits,
) -> std::result::Result<Vec<u8>, HubError> {
    administer(hub, principal);
    let key = hub.hub_key()?;
    REGISTRY.with(|registry| {
        hub.hub_handle_certified(
            principal,
            request,
            limits,
            &Certifier {
                key: &key,
                registry,
            },
        )
    })
}

/// Keeps the hub's record of `principal`'s user as the principal says, as the hub's
/// administrators keep it (`vigie user add`, `vigie user areas`): a test moves a user by
/// changing its principal's areas, and the hub's user record keeps every state, which the hub
/// reads to know where the user once worked (what a device may still send for review).
pub fn administer(hub: &mut Store, principal: &Principal) {
    let wanted = |user: &mut User| {
        user.role = principal.role;
        user.areas = principal.areas.iter().cloned().collect();
        user.active = !principal.areas.is_empty();
    };
    match hub.get::<User>(principal.user) {
        Ok(mut user) => {
            let before = user.clone();
            wanted(&mut user);
            if user != before {
                hub.update(&user).expect("the hub's user record updates");
            }
        }
        Err(_) => {
            let mut user = User::new("Utilisatrice", principal.role, &[]);
            user.id = principal.user;
            wanted(&mut user);
            hub.create(&user).expect("the hub's user record");
        }
    }
}

/// Runs `write` as a device whose app does not check areas (an older version) would: the store
/// takes it as if its user worked in the whole country, then keeps its profile as it was. What
/// the hub makes of a record filed where its user does not work is what such tests look at.
pub fn without_area_check<T>(store: &mut Store, write: impl FnOnce(&mut Store) -> T) -> T {
    let profile = store.user_profile().unwrap().expect("a device that synced");
    let everywhere = vigie_core::rights::UserProfile {
        role: profile.role,
        areas: vec!["CI".into()],
    };
    store.debug_assume_profile(&everywhere).unwrap();
    let written = write(store);
    store.debug_assume_profile(&profile).unwrap();
    written
}

/// `record` created where its user does not work (`without_area_check`).
pub fn create_outside_scope<R: Record>(store: &mut Store, record: &R) -> R {
    without_area_check(store, |store| store.create(record)).expect("created")
}

/// The key of the stores `device` opens.
pub const DEVICE_KEY: [u8; 32] = [3; 32];

/// A device of the tests: its encrypted store and who it syncs as.
pub struct Device {
    pub store: Store,
    pub principal: Principal,
}

/// A device store at `dir/name.db` (encrypted), for a user of its own acting as `role` in
/// `areas`.
pub fn device(dir: &Path, name: &str, role: Role, areas: &[&str]) -> Device {
    let user = Uuid::now_v7();
    let config = StoreConfig::new(
        dir.join(format!("{name}.db")),
        Encryption::Key(DEVICE_KEY),
        user,
    );
    let store = Store::open(config).expect("open a device store");
    let principal = Principal {
        device: store.device_id(),
        user,
        role,
        areas: areas.iter().map(|a| a.to_string()).collect(),
    };
    Device { store, principal }
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
    let response = hub
        .hub_handle(&principal, &first_pull(store), &HubLimits::default())
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

/// The first request of a store that holds nothing yet: no push, no cursor, pages up to 1 MiB.
pub fn first_pull(store: &Store) -> Vec<u8> {
    wire::encode_request(&wire::SyncRequest {
        actor: store.actor().to_bytes().to_vec(),
        cursor: None,
        push: Vec::new(),
        refetch: Vec::new(),
        max_response_bytes: 1 << 20,
        receipt: 0,
        identity: None,
        headless_documents: false,
        incarnation: None,
        device_clock: None,
    })
}

/// Syncs `store` with `hub` as `principal` until nothing more moves.
pub fn sync(store: &mut Store, hub: &mut Store, principal: &Principal) -> sync::SyncSummary {
    sync_with_hub(
        store,
        &SyncOptions::default(),
        |request| handle(hub, principal, request, &HubLimits::default()).map_err(|e| e.to_string()),
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
        |request| handle(hub, principal, request, &HubLimits::default()).map_err(|e| e.to_string()),
        |_| {},
    )
    .expect("sync")
}

/// A whole sync session of `store` as `principal` with a hub whose storage is `hub` (a hub's
/// store seen through a wrapper that watches or races its transactions), called in-process.
pub fn sync_through(
    store: &mut Store,
    principal: &Principal,
    hub: &mut impl sync::HubStorage,
) -> sync::SyncSummary {
    sync_with_hub(
        store,
        &SyncOptions::default(),
        |request| {
            sync::handle_sync(hub, principal, request, &HubLimits::default())
                .map_err(|e| e.to_string())
        },
        |_| {},
    )
    .expect("sync")
}

/// Devices enrolled with `hub` (on this thread's registry): each store syncs twice, so that
/// every one holds its certificate and the directory with the others'.
pub fn enrol_all(hub: &mut Store, devices: &mut [(&mut Store, &Principal)]) {
    for _ in 0..2 {
        for (store, principal) in devices.iter_mut() {
            sync(store, hub, principal);
        }
    }
}

/// The principal of a store's device and user, with a role and areas.
pub fn principal_of(store: &Store, role: Role, areas: &[&str]) -> Principal {
    Principal {
        device: store.device_id(),
        user: store.user_id(),
        role,
        areas: areas.iter().map(|a| a.to_string()).collect(),
    }
}

/// Runs the peer handshake between two enrolled stores: returns both sessions, authenticated,
/// and the answerer's reply to the initiator's first frame (for the initiator to step on).
pub fn handshake(
    initiator: &mut Store,
    answerer: &mut Store,
) -> (sync::PeerSession, sync::PeerSession, Option<Vec<u8>>) {
    let (mut started, hello) = initiator
        .peer_start(&sync::PeerScope::default(), 64 * 1024)
        .expect("the initiator is certified");
    let mut accepted = answerer
        .peer_accept(&sync::PeerScope::default(), 64 * 1024)
        .expect("the answerer is certified");
    let reply = answerer
        .peer_step(&mut accepted, &hello)
        .expect("the hello checks")
        .expect("a reply");
    let proof = initiator
        .peer_step(&mut started, &reply)
        .expect("the reply checks")
        .expect("a proof");
    let next = answerer
        .peer_step(&mut accepted, &proof)
        .expect("the proof checks");
    (started, accepted, next)
}

/// `length` letters that do not compress (a xorshift's, from `seed`): notes that take their
/// size in a store's file.
pub fn incompressible_text(mut seed: u64, length: usize) -> String {
    (0..length)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            char::from(b'a' + (seed % 26) as u8)
        })
        .collect()
}

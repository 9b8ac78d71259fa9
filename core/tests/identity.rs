//! Device identity on real SQLite stores, with the hub's handler in-process (the HTTP hub's
//! `server/tests/hub_identity.rs` runs the same flow through the real binary): certificates at
//! enrolment, revocation by sync, peers that prove who they are and receive only their scope,
//! sealed bundles.

use crate::common;

use chrono::NaiveDate;
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::identity::{Certificate, HubKey, IdentityError, open_sealed};
use vigie_core::sync::wire::{self, RequestIdentity, SyncRequest};
use vigie_core::sync::{
    HubError, HubLimits, HubStorage as _, PeerScope, Principal, Recipient, encode_bundle,
};
use vigie_core::*;

const C01: &str = "CI-R1-D1-C01";
const C02: &str = "CI-R1-D1-C02";
const NAME_C01: &str = "Adjoua Kouassi-Brou";
const NAME_C02: &str = "Mariam Traoré-Sangaré";

struct Device {
    store: Store,
    principal: Principal,
    path: std::path::PathBuf,
}

impl Device {
    fn new(dir: &TempDir, name: &str, role: Role, areas: &[&str]) -> Device {
        let store = common::plain_store(dir.path(), &format!("{name}.db"));
        let principal = common::principal_of(&store, role, areas);
        Device {
            store,
            principal,
            path: dir.path().join(format!("{name}.db")),
        }
    }

    fn sync(&mut self, hub: &mut Store) -> sync::SyncSummary {
        common::sync(&mut self.store, hub, &self.principal)
    }

    fn id(&self) -> Uuid {
        self.store.device_id()
    }

    /// A child case of this device's user in `community`; its id.
    fn create_case(&mut self, community: &str, name: &str) -> Uuid {
        let case = child(community, name, self.principal.user);
        self.store.create(&case).unwrap().id
    }

    /// Replaces the certificate the store keeps (what a tampered or stale device presents).
    fn present(&self, certificate: &Certificate) {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'certificate'",
            [certificate.to_bytes()],
        )
        .unwrap();
    }
}

/// A community's area, its region and district read from its code (`CI-R1-D1-C01`).
fn area(community: &str) -> Area {
    let parts: Vec<&str> = community.split('-').collect();
    Area::new(
        "CI",
        &parts[..2].join("-"),
        &parts[..3].join("-"),
        community,
    )
}

fn child(community: &str, name: &str, by: Uuid) -> ChildCase {
    let mut c = ChildCase::new(
        "CASE",
        name,
        Sex::Female,
        area(community),
        NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
        by,
    );
    c.estimated_age = Some(11);
    c.hours_per_week = 12;
    c
}

/// A hub and three devices, enrolled: a supervisor of the region, monitors of C01 and C02.
fn enrolled(dir: &TempDir) -> (Store, Device, Device, Device) {
    let mut hub = common::hub_store(&dir.path().join("hub.db"));
    let mut supervisor = Device::new(dir, "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut monitor = Device::new(dir, "monitor", Role::CommunityMonitor, &[C01]);
    let mut other = Device::new(dir, "other", Role::CommunityMonitor, &[C02]);
    for _ in 0..2 {
        for d in [&mut supervisor, &mut monitor, &mut other] {
            d.sync(&mut hub);
        }
    }
    (hub, supervisor, monitor, other)
}

/// A whole peer session; the first error either side meets.
fn peer(initiator: &mut Device, answerer: &mut Device) -> Result<usize> {
    sync::sync_peers(
        &mut initiator.store,
        &mut answerer.store,
        &PeerScope::default(),
        64 * 1024,
    )
}

fn refused_with(result: Result<impl std::fmt::Debug>) -> IdentityError {
    match result {
        Err(Error::Identity(e)) => e,
        other => panic!("expected an identity refusal, got {other:?}"),
    }
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The devices whose certificates `device` keeps in its directory, in order.
fn directory_of(device: &Device) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = device
        .store
        .directory()
        .unwrap()
        .iter()
        .map(|c| c.device)
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

#[test]
fn enrolment_gives_a_certificate_renewed_when_the_scope_changes() {
    let dir = TempDir::new().unwrap();
    let (mut hub, supervisor, mut monitor, other) = enrolled(&dir);
    let hub_key = hub.hub_key().unwrap().public();
    let certificate = monitor.store.certificate().unwrap().expect("a certificate");
    assert_eq!(certificate.device, monitor.id());
    assert_eq!(certificate.user, monitor.principal.user);
    assert_eq!(certificate.role, Role::CommunityMonitor);
    assert_eq!(certificate.areas, vec![C01.to_string()]);
    assert_eq!(
        Some(certificate.keys),
        monitor.store.device_public_keys().unwrap()
    );
    assert_eq!(certificate.hub, hub_key.signing);
    assert!(certificate.expires_ms > chrono::Utc::now().timestamp_millis());
    assert_eq!(monitor.store.hub_keys().unwrap(), Some(hub_key));
    monitor
        .store
        .trust()
        .unwrap()
        .check_certificate(&certificate)
        .unwrap();
    // The directory holds the others' certificates, not its own.
    assert_eq!(
        directory_of(&monitor),
        sorted(vec![supervisor.id(), other.id()])
    );

    // A sync with the same scope keeps the certificate; new areas renew it.
    monitor.sync(&mut hub);
    assert_eq!(
        monitor.store.certificate().unwrap(),
        Some(certificate.clone())
    );
    monitor.principal.areas.insert(C02.to_string());
    monitor.sync(&mut hub);
    let renewed = monitor.store.certificate().unwrap().unwrap();
    assert_eq!(renewed.areas, vec![C01.to_string(), C02.to_string()]);
    assert_eq!(renewed.keys, certificate.keys);
}

#[test]
fn a_device_presenting_other_keys_or_a_hub_with_another_key_is_refused() {
    let dir = TempDir::new().unwrap();
    let (mut hub, _, monitor, _) = enrolled(&dir);
    let mut keys = monitor.store.device_public_keys().unwrap().unwrap();
    keys.signing[0] ^= 1;
    let request = SyncRequest {
        actor: monitor.store.actor().to_bytes().to_vec(),
        cursor: None,
        push: Vec::new(),
        refetch: Vec::new(),
        max_response_bytes: 1 << 20,
        receipt: 0,
        identity: Some(RequestIdentity {
            keys,
            directory: None,
            held: None,
            directory_issued_through: None,
            user: None,
        }),
        headless_documents: false,
        incarnation: None,
        device_clock: None,
    };
    assert!(matches!(
        common::handle(
            &mut hub,
            &monitor.principal,
            &wire::encode_request(&request),
            &HubLimits::default()
        ),
        Err(HubError::KeysNotBound)
    ));
    // A device that pinned one hub refuses an answer signed by another.
    let mut monitor = monitor;
    let mut impostor = common::hub_store(&dir.path().join("impostor.db"));
    let e = sync::sync_with_hub(
        &mut monitor.store,
        &sync::SyncOptions::default(),
        |request| {
            common::handle(
                &mut impostor,
                &monitor.principal,
                request,
                &HubLimits::default(),
            )
            .map_err(|e| e.to_string())
        },
        |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::Identity(IdentityError::HubKeyChanged)),
        "{e}"
    );
}

#[test]
fn peers_authenticate_and_receive_only_their_scope() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut other) = enrolled(&dir);
    // A device of C01 enrolled before the records below exist, and offline since.
    let mut newcomer = Device::new(&dir, "newcomer", Role::CommunityMonitor, &[C01]);
    newcomer.sync(&mut hub);
    let in_c01 = monitor.create_case(C01, NAME_C01);
    let in_c02 = other.create_case(C02, NAME_C02);
    monitor.sync(&mut hub);
    other.sync(&mut hub);
    supervisor.sync(&mut hub);
    assert!(supervisor.store.kind_of(in_c01).is_ok() && supervisor.store.kind_of(in_c02).is_ok());

    // The newcomer meets the supervisor: it receives C01's case, never C02's.
    assert!(newcomer.store.kind_of(in_c01).is_err());
    peer(&mut newcomer, &mut supervisor).unwrap();
    assert!(newcomer.store.kind_of(in_c01).is_ok());
    assert!(
        newcomer.store.kind_of(in_c02).is_err(),
        "C02 reached a C01 device"
    );

    // Two monitors of different communities exchange nothing of each other's.
    peer(&mut monitor, &mut other).unwrap();
    assert!(monitor.store.kind_of(in_c02).is_err());
    assert!(other.store.kind_of(in_c01).is_err());

    // A record a peer sends outside its own scope is not taken; the others are.
    let c02_bytes = other.store.export_document(in_c02).unwrap();
    let mine = monitor.create_case(C01, "Aya Kouassi");
    let mine_bytes = monitor.store.export_document(mine).unwrap();
    let (mut from, mut session, _) = common::handshake(&mut monitor.store, &mut supervisor.store);
    let message = wire::PeerMessage {
        reconcile: None,
        documents: vec![(in_c02, c02_bytes), (mine, mine_bytes)],
        wanted: Vec::new(),
        done: true,
    };
    supervisor
        .store
        .peer_step(&mut session, &from.seal(&message).unwrap())
        .unwrap();
    assert_eq!((session.refused, session.received), (1, 1));
    assert!(supervisor.store.kind_of(mine).is_ok());
    // Reconciliation before the handshake is refused.
    let mut unauthenticated = supervisor
        .store
        .peer_accept(&PeerScope::default(), 1 << 16)
        .unwrap();
    assert!(matches!(
        refused_with(
            supervisor
                .store
                .peer_step(&mut unauthenticated, &wire::encode_peer_message(&message))
        ),
        IdentityError::Handshake { .. }
    ));
}

/// `device`'s certificate as the hub issued it 61 days ago (expired), its keys as now.
fn expired_monitor(key: &HubKey, device: &Device) -> Certificate {
    let days = 24 * 3600 * 1000;
    let now = chrono::Utc::now().timestamp_millis();
    let keys = device.store.certificate().unwrap().unwrap().keys;
    key.certify(&device.principal, &keys, now - 61 * days)
}

/// A hub upgraded from 30-day certificates: a colleague's certificate that version issued
/// runs 60 days from its day in every directory from the next sync, saying the same, so
/// a district that synced on upgrade day keeps its exchanges past the 30th day; the colleague
/// presenting its own copy is not taken for superseded.
#[test]
fn certificates_of_an_earlier_lifetime_run_the_whole_lifetime_in_directories() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, _other) = enrolled(&dir);
    let key = hub.hub_key().unwrap();
    let days = 24 * 3600 * 1000;
    let keys = supervisor.store.certificate().unwrap().unwrap().keys;
    let issued = chrono::Utc::now().timestamp_millis() - 2 * days;
    let earlier = key.certify_lasting(&supervisor.principal, &keys, issued, 30 * days);
    common::registered(&earlier);
    supervisor.present(&earlier);
    monitor.sync(&mut hub);
    let held = monitor
        .store
        .directory()
        .unwrap()
        .into_iter()
        .find(|c| c.device == supervisor.id())
        .expect("the supervisor's certificate");
    assert!(held.issued_ms > issued);
    assert_eq!(held.expires_ms, issued + 60 * days);
    assert!(held.describes(&earlier.principal(), &earlier.keys));
    peer(&mut supervisor, &mut monitor).unwrap();
    monitor
        .store
        .export_bundle(0, &[], &[Recipient::Device(supervisor.id())])
        .unwrap();
}

#[test]
fn revoked_expired_forged_and_foreign_certificates_are_refused() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut other) = enrolled(&dir);
    let key = hub.hub_key().unwrap();
    let genuine = monitor.store.certificate().unwrap().unwrap();
    peer(&mut monitor, &mut supervisor).unwrap();

    // A phone six weeks past its last sync (the certificate it had then, renewed by that
    // sync if a quarter of it had gone): its peers still take it, as weeks without a network
    // in a district need.
    let days = 24 * 3600 * 1000;
    let now = chrono::Utc::now().timestamp_millis();
    let last_synced = now - 44 * days;
    let six_weeks_old = key.certify(&monitor.principal, &genuine.keys, last_synced - 15 * days);
    assert!(six_weeks_old.is_due_for_renewal(last_synced));
    let renewed = key.certify(&monitor.principal, &genuine.keys, last_synced);
    monitor.present(&renewed);
    // The copy the supervisor's phone received at its own sync then.
    let in_directory = |of: &Device, certificate: &Certificate| {
        rusqlite::Connection::open(&of.path)
            .unwrap()
            .execute(
                "UPDATE peer_directory SET certificate = ?1 WHERE device = ?2",
                rusqlite::params![
                    certificate.to_bytes(),
                    certificate.device.as_bytes().as_slice()
                ],
            )
            .unwrap()
    };
    assert_eq!(in_directory(&supervisor, &renewed), 1);
    peer(&mut monitor, &mut supervisor).unwrap();
    // Expired: issued 61 days ago by the right hub.
    monitor.present(&key.certify(&monitor.principal, &genuine.keys, now - 61 * days));
    assert!(matches!(
        refused_with(peer(&mut monitor, &mut supervisor)),
        IdentityError::Expired { .. }
    ));
    // A bundle for a device whose certificate here has expired says so (a sync of that device
    // renews it), rather than that the device has none.
    let expired = key.certify(&supervisor.principal, &genuine.keys, now - 61 * days);
    assert_eq!(in_directory(&monitor, &expired), 1);
    assert_eq!(
        refused_with(
            monitor
                .store
                .export_bundle(0, &[], &[Recipient::Device(supervisor.id())])
        ),
        IdentityError::Expired {
            device: supervisor.id()
        }
    );
    // Nor for an area whose devices' certificates here have all expired: said so.
    match monitor
        .store
        .export_bundle(0, &[], &[Recipient::Area(C01.into())])
    {
        Err(Error::Identity(IdentityError::NoRecipient { reason })) => {
            assert!(reason.contains("expired"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // A peer session shows the supervisor's certificate as the hub renewed it: bundles for
    // the supervisor go on without the monitor's sync.
    monitor.present(&genuine);
    peer(&mut monitor, &mut supervisor).unwrap();
    monitor
        .store
        .export_bundle(0, &[], &[Recipient::Device(supervisor.id())])
        .unwrap();
    // A bundle shows its exporter's likewise.
    assert_eq!(
        in_directory(&supervisor, &expired_monitor(&key, &monitor)),
        1
    );
    let (from_monitor, _) = monitor
        .store
        .export_bundle(0, &[], &[Recipient::Device(supervisor.id())])
        .unwrap();
    supervisor.store.import_bundle(&from_monitor).unwrap();
    supervisor
        .store
        .export_bundle(0, &[], &[Recipient::Device(monitor.id())])
        .unwrap();
    // Forged: wider areas under the genuine signature.
    let mut wider = genuine.clone();
    wider.areas = vec!["CI".into()];
    monitor.present(&wider);
    assert!(matches!(
        refused_with(peer(&mut monitor, &mut supervisor)),
        IdentityError::BadSignature { .. }
    ));
    // Foreign: signed by another hub's key.
    monitor.present(&HubKey::generate().certify(&monitor.principal, &genuine.keys, now));
    assert_eq!(
        refused_with(peer(&mut monitor, &mut supervisor)),
        IdentityError::UnknownHub
    );
    // Someone else's certificate, without its key: the signature over the transcript fails.
    monitor.present(&other.store.certificate().unwrap().unwrap());
    assert!(matches!(
        refused_with(peer(&mut monitor, &mut supervisor)),
        IdentityError::BadSignature { .. }
    ));
    // Issued while the hub's clock ran six days ahead, or read by a phone whose clock runs
    // behind: taken (it was refused as expired for as many days).
    monitor.present(&key.certify(&monitor.principal, &genuine.keys, now + 6 * days));
    peer(&mut monitor, &mut supervisor).unwrap();
    // The supervisor kept that newer one, as a peer shows it; the genuine one says the same
    // (a routine renewal supersedes nothing), and a bundle sealed under it still opens there.
    monitor.present(&genuine);
    let (sealed_before, _) = monitor
        .store
        .export_bundle(0, &[], &[Recipient::Device(supervisor.id())])
        .unwrap();
    peer(&mut monitor, &mut supervisor).unwrap();
    supervisor.store.import_bundle(&sealed_before).unwrap();
    let to_supervisor = [Recipient::Device(supervisor.id())];
    let (bundle, _) = monitor.store.export_bundle(0, &[], &to_supervisor).unwrap();

    // Revoked: the revocation reaches the supervisor at its next sync; from then on the
    // monitor's sessions and bundles are refused, in either direction.
    common::revoke(monitor.id());
    supervisor.sync(&mut hub);
    assert!(
        supervisor
            .store
            .trust()
            .unwrap()
            .revoked
            .contains(&monitor.id())
    );
    assert_eq!(
        refused_with(peer(&mut monitor, &mut supervisor)),
        IdentityError::Revoked {
            device: monitor.id()
        }
    );
    assert_eq!(
        refused_with(supervisor.store.import_bundle(&bundle)),
        IdentityError::Revoked {
            device: monitor.id()
        }
    );
    other.sync(&mut hub);
    assert!(
        other
            .store
            .directory()
            .unwrap()
            .iter()
            .all(|c| c.device != monitor.id()),
        "a revoked device leaves the directory"
    );
}

#[test]
fn sealed_bundles_open_only_for_their_recipients_and_only_unaltered() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut other) = enrolled(&dir);
    let id = monitor.create_case(C01, NAME_C01);
    let to_supervisor = [Recipient::Device(supervisor.id())];
    let (bundle, _) = monitor.store.export_bundle(0, &[], &to_supervisor).unwrap();

    // The file reveals nothing: no name, no id of record or device, and none of the framing
    // inside (the payload's tag and zstd frame, the exporter's certificate).
    assert!(!holds(&bundle, NAME_C01) && !holds(&bundle, "Adjoua"));
    for secret in [
        id.as_bytes(),
        monitor.id().as_bytes(),
        supervisor.id().as_bytes(),
    ] {
        assert!(!bundle.windows(16).any(|w| w == secret));
    }
    let payload = encode_bundle(monitor.id(), vec![(id, Vec::new())]);
    for framing in [&payload[..8], b"VGc1".as_slice()] {
        assert!(!bundle.windows(framing.len()).any(|w| w == framing));
    }

    // Another device cannot open it, even one whose scope holds the record.
    let mut peer_of_c01 = Device::new(&dir, "peer", Role::CommunityMonitor, &[C01]);
    peer_of_c01.sync(&mut hub);
    assert_eq!(
        refused_with(peer_of_c01.store.import_bundle(&bundle)),
        IdentityError::NotARecipient
    );
    assert_eq!(
        refused_with(other.store.import_bundle(&bundle)),
        IdentityError::NotARecipient
    );

    // One altered byte anywhere: refused whole, nothing stored.
    for at in [3, 10, bundle.len() / 2, bundle.len() - 1] {
        let mut altered = bundle.clone();
        altered[at] ^= 0x20;
        assert!(
            supervisor.store.import_bundle(&altered).is_err(),
            "byte {at}"
        );
        assert!(supervisor.store.kind_of(id).is_err());
    }
    assert!(
        supervisor
            .store
            .import_bundle(&bundle[..bundle.len() - 7])
            .is_err()
    );

    // The recipient imports it.
    let report = supervisor.store.import_bundle(&bundle).unwrap();
    assert_eq!(
        (report.records, report.from_device),
        (1, Some(monitor.id()))
    );
    assert_eq!(
        supervisor.store.get::<ChildCase>(id).unwrap().name,
        NAME_C01
    );

    // Sealed to an area: every device whose certificate names it opens it (the directory the
    // exporter received at its last sync); to the hub: the hub's key opens it.
    monitor.sync(&mut hub);
    let (to_area, _) = monitor
        .store
        .export_bundle(0, &[], &[Recipient::Area(C01.into()), Recipient::Hub])
        .unwrap();
    assert_eq!(
        peer_of_c01.store.import_bundle(&to_area).unwrap().records,
        1
    );
    // The region's supervisor too: the area tree puts the community in the region.
    assert_eq!(supervisor.store.import_bundle(&to_area).unwrap().records, 1);
    let hub_secret = hub.hub_key().unwrap().agreement();
    open_sealed(&to_area, &hub_secret, 1 << 30).expect("the hub is a recipient");
    assert_eq!(
        refused_with(other.store.import_bundle(&to_area)),
        IdentityError::NotARecipient
    );
    // No device of that area (but the exporter's own), or an unknown device: nothing is
    // written.
    let mut lonely = Device::new(&dir, "lonely", Role::CommunityMonitor, &["CI-R2-D1-C01"]);
    lonely.sync(&mut hub);
    lonely.create_case("CI-R2-D1-C01", NAME_C02);
    lonely.sync(&mut hub);
    assert!(matches!(
        refused_with(
            lonely
                .store
                .export_bundle(0, &[], &[Recipient::Area("CI-R2".into())])
        ),
        IdentityError::NoRecipient { .. }
    ));
    // With the hub beside it (the app's default: the hub and the user's areas), an area no
    // device holds yet does not stop the bundle from reaching the hub.
    let (to_hub, _) = lonely
        .store
        .export_bundle(
            0,
            &[],
            &[Recipient::Hub, Recipient::Area("CI-R2-D1-C01".into())],
        )
        .unwrap();
    open_sealed(&to_hub, &hub_secret, 1 << 30).expect("the hub is a recipient");
    // An area that holds none of the exporter's records narrows the bundle to nothing.
    assert!(matches!(
        refused_with(monitor.store.export_bundle(
            0,
            &[],
            &[Recipient::Hub, Recipient::Area("CI-R2".into())]
        )),
        IdentityError::NothingForRecipient { .. }
    ));
    assert!(matches!(
        refused_with(
            monitor
                .store
                .export_bundle(0, &[], &[Recipient::Device(Uuid::now_v7())])
        ),
        IdentityError::NoRecipient { .. }
    ));
}

#[test]
fn a_bundles_records_outside_its_exporters_scope_are_not_taken() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, _, mut other) = enrolled(&dir);
    let mut fresh = Device::new(&dir, "fresh", Role::Supervisor, &["CI-R1"]);
    fresh.sync(&mut hub);
    other.sync(&mut hub);
    let mine = other.create_case(C02, NAME_C02);
    let foreign = supervisor.create_case(C01, NAME_C01);
    // The C02 monitor signs its own C02 case and a C01 case it should never have held.
    let documents = vec![
        (mine, other.store.export_document(mine).unwrap()),
        (foreign, supervisor.store.export_document(foreign).unwrap()),
    ];
    let bundle = other
        .store
        .seal_bundle(documents, &[Recipient::Device(fresh.id())])
        .unwrap();
    let report = fresh.store.import_bundle(&bundle).unwrap();
    assert_eq!((report.records, report.refused), (1, 1), "{report:?}");
    assert!(fresh.store.kind_of(mine).is_ok());
    assert!(fresh.store.kind_of(foreign).is_err());
}

/// Continues a peer session from the answerer's `reply`, each side stepping on the other's
/// messages until one has nothing more to send; the messages on the link, in order.
fn run_from(
    initiator: &mut Device,
    session: &mut sync::PeerSession,
    answerer: &mut Device,
    answer: &mut sync::PeerSession,
    mut reply: Option<Vec<u8>>,
) -> Vec<Vec<u8>> {
    let mut link = Vec::new();
    while let Some(message) = reply {
        link.push(message.clone());
        let Some(next) = initiator.store.peer_step(session, &message).unwrap() else {
            break;
        };
        link.push(next.clone());
        reply = answerer.store.peer_step(answer, &next).unwrap();
        assert!(link.len() < 40, "the session does not end");
    }
    link
}

/// A whole peer session; every message on the link, in order (the initiator's hello first,
/// then each side's in turn).
fn recorded(initiator: &mut Device, answerer: &mut Device) -> Vec<Vec<u8>> {
    let scope = PeerScope::default();
    let (mut session, hello) = initiator.store.peer_start(&scope, 64 * 1024).unwrap();
    let mut answer = answerer.store.peer_accept(&scope, 64 * 1024).unwrap();
    let reply = answerer.store.peer_step(&mut answer, &hello).unwrap();
    let mut link = vec![hello];
    link.extend(run_from(
        initiator,
        &mut session,
        answerer,
        &mut answer,
        reply,
    ));
    assert!(session.is_finished());
    link
}

/// What a message says once its compression is undone: a message is its tag and a zstd frame,
/// a sealed one its tag, its number and ciphertext (which does not decompress).
fn expanded(message: &[u8]) -> Vec<u8> {
    [4, 12]
        .iter()
        .filter_map(|at| message.get(*at..))
        .find_map(|frame| vigie_core::codec::decompress_bounded(frame, 1 << 26).ok())
        .unwrap_or_default()
}

#[test]
fn peer_messages_on_the_link_reveal_no_record() {
    let dir = TempDir::new().unwrap();
    let (_hub, mut supervisor, mut monitor, _) = enrolled(&dir);
    let id = monitor.create_case(C01, NAME_C01);
    // The document itself names the child (what a listener would read from it).
    assert!(holds(&monitor.store.export_document(id).unwrap(), NAME_C01));

    let link = recorded(&mut monitor, &mut supervisor);
    assert_eq!(
        supervisor.store.get::<ChildCase>(id).unwrap().name,
        NAME_C01,
        "the record travelled"
    );
    assert!(link.len() >= 5, "{} messages", link.len());
    for (i, message) in link.iter().enumerate() {
        let plain = expanded(message);
        for bytes in [message, &plain] {
            assert!(
                !holds(bytes, NAME_C01) && !holds(bytes, "Adjoua"),
                "message {i}"
            );
            assert!(
                !bytes.windows(16).any(|w| w == id.as_bytes()),
                "message {i}"
            );
        }
    }
}

#[test]
fn a_listener_on_the_link_learns_neither_device_user_nor_area() {
    let dir = TempDir::new().unwrap();
    let (_hub, mut supervisor, mut monitor, _) = enrolled(&dir);
    monitor.create_case(C01, NAME_C01);
    let link = recorded(&mut monitor, &mut supervisor);
    let said = [
        monitor.id(),
        monitor.principal.user,
        supervisor.id(),
        supervisor.principal.user,
    ];
    let certificates = [&monitor, &supervisor].map(|d| d.store.certificate().unwrap().unwrap());
    for (i, message) in link.iter().enumerate() {
        for bytes in [message, &expanded(message)] {
            for id in said {
                assert!(
                    !bytes.windows(16).any(|w| w == id.as_bytes()),
                    "message {i}"
                );
            }
            // A community's code, and the region's (every area code starts so).
            assert!(!holds(bytes, C01) && !holds(bytes, "CI-R1"), "message {i}");
            for certificate in &certificates {
                let key = certificate.keys.signing;
                assert!(!bytes.windows(32).any(|w| w == key), "message {i}");
            }
        }
    }
}

#[test]
fn a_message_of_another_session_is_refused_and_nothing_of_it_stored() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, _) = enrolled(&dir);
    let mut tablet = Device::new(&dir, "tablet", Role::Supervisor, &["CI-R1"]);
    let mut phone = Device::new(&dir, "phone", Role::CommunityMonitor, &[C01]);
    tablet.sync(&mut hub);
    phone.sync(&mut hub);
    let id = monitor.create_case(C01, NAME_C01);
    // Captured on the link of an authenticated session: monitor → supervisor.
    let link = recorded(&mut monitor, &mut supervisor);
    assert!(supervisor.store.kind_of(id).is_ok());

    // Fed into another authenticated session (phone → tablet), in place of the phone's next
    // message: the monitor's messages after its proof are refused, and nothing is stored.
    let phones = phone.create_case(C01, NAME_C02);
    let (mut session, mut answer, reply) = common::handshake(&mut phone.store, &mut tablet.store);
    let captured: Vec<&Vec<u8>> = link.iter().step_by(2).skip(2).collect();
    assert!(!captured.is_empty());
    for message in captured {
        let e = tablet.store.peer_step(&mut answer, message).unwrap_err();
        assert!(
            matches!(e, Error::Identity(IdentityError::PeerMessage { .. })),
            "{e}"
        );
        assert!(
            tablet.store.kind_of(id).is_err(),
            "a captured record was stored"
        );
    }
    // A message sealed in this session but altered on the way is refused too.
    let mut altered = phone
        .store
        .peer_step(&mut session, reply.as_ref().unwrap())
        .unwrap()
        .expect("the phone's next message");
    let last = altered.len() - 1;
    altered[last] ^= 1;
    assert!(matches!(
        tablet.store.peer_step(&mut answer, &altered),
        Err(Error::Identity(IdentityError::PeerMessage { .. }))
    ));
    // The session itself goes on: the genuine message is answered, and it completes.
    altered[last] ^= 1;
    let reply = tablet.store.peer_step(&mut answer, &altered).unwrap();
    run_from(&mut phone, &mut session, &mut tablet, &mut answer, reply);
    assert!(session.is_finished());
    assert!(tablet.store.kind_of(phones).is_ok() && tablet.store.kind_of(id).is_err());
}

#[test]
fn a_message_delivered_twice_changes_nothing() {
    let dir = TempDir::new().unwrap();
    let (_hub, mut supervisor, mut monitor, _) = enrolled(&dir);
    let mine = monitor.create_case(C01, NAME_C01);
    let theirs = supervisor.create_case(C01, "Awa Bamba");
    let scope = PeerScope::default();
    let (mut session, hello) = monitor.store.peer_start(&scope, 64 * 1024).unwrap();
    let mut answer = supervisor.store.peer_accept(&scope, 64 * 1024).unwrap();
    // Every message, handshake and reconciliation, reaches its side twice in a row.
    let mut message = hello;
    for trip in 0.. {
        assert!(trip < 20, "the session does not end");
        let reply = supervisor.store.peer_step(&mut answer, &message).unwrap();
        assert_eq!(
            supervisor.store.peer_step(&mut answer, &message).unwrap(),
            None,
            "trip {trip}: the supervisor's message again"
        );
        let Some(reply) = reply else { break };
        let next = monitor.store.peer_step(&mut session, &reply).unwrap();
        assert_eq!(
            monitor.store.peer_step(&mut session, &reply).unwrap(),
            None,
            "trip {trip}: the monitor's message again"
        );
        let Some(next) = next else { break };
        message = next;
    }
    assert!(session.is_finished() && answer.is_finished());
    for id in [mine, theirs] {
        assert_eq!(
            monitor.store.get::<ChildCase>(id).unwrap(),
            supervisor.store.get::<ChildCase>(id).unwrap()
        );
    }
    // Each side received and stored one record, once.
    assert_eq!((session.received, answer.received), (1, 1));
    assert_eq!((session.sent, answer.sent), (1, 1));
}

/// Two phones that hold the same records: the session ends on both sides (the initiator's
/// last message tells the answerer nothing differs), with nothing sent.
#[test]
fn a_session_with_nothing_to_exchange_ends_on_both_sides() {
    let dir = TempDir::new().unwrap();
    let (_hub, mut supervisor, mut monitor, _) = enrolled(&dir);
    monitor.create_case(C01, NAME_C01);
    let scope = PeerScope::default();
    for round in 0..2 {
        let (mut session, hello) = monitor.store.peer_start(&scope, 64 * 1024).unwrap();
        let mut answer = supervisor.store.peer_accept(&scope, 64 * 1024).unwrap();
        let mut message = Some(hello);
        let mut initiator_turn = false;
        let mut trips = 0;
        while let Some(sent) = message.take() {
            trips += 1;
            assert!(trips < 20, "round {round}: the session does not end");
            message = match initiator_turn {
                false => supervisor.store.peer_step(&mut answer, &sent).unwrap(),
                true => monitor.store.peer_step(&mut session, &sent).unwrap(),
            };
            initiator_turn = !initiator_turn;
        }
        assert!(session.is_finished(), "round {round}: the initiator");
        assert!(answer.is_finished(), "round {round}: the answerer");
        if round == 1 {
            assert_eq!((session.sent, answer.sent), (0, 0), "nothing differs");
        }
    }
}

/// More records than a session carries (a few times its message size of documents per
/// message): the side that could not send them all says how many were left over, and another
/// session brings them. (Both sides said finished, with records missing, and nothing told.)
#[test]
fn what_a_session_could_not_carry_is_counted_and_the_next_one_brings_it() {
    let dir = TempDir::new().unwrap();
    let (_hub, mut supervisor, mut monitor, _) = enrolled(&dir);
    for n in 0..40 {
        let mut case = child(C01, &format!("Enfant {n}"), monitor.principal.user);
        case.notes = format!("{n} ").repeat(400);
        monitor.store.create(&case).unwrap();
    }
    let scope = PeerScope::default();
    let small = 4 * 1024;
    let mut left_over = Vec::new();
    for _ in 0..10 {
        let (mut session, hello) = monitor.store.peer_start(&scope, small).unwrap();
        let mut answer = supervisor.store.peer_accept(&scope, small).unwrap();
        let mut message = Some(hello);
        let mut initiator_turn = false;
        while let Some(sent) = message.take() {
            message = match initiator_turn {
                false => supervisor.store.peer_step(&mut answer, &sent).unwrap(),
                true => monitor.store.peer_step(&mut session, &sent).unwrap(),
            };
            initiator_turn = !initiator_turn;
        }
        assert!(session.is_finished() && answer.is_finished());
        left_over.push(session.left_over + answer.left_over);
        if left_over.last() == Some(&0) {
            break;
        }
    }
    assert!(
        left_over[0] > 0,
        "the first session carries only part: {left_over:?}"
    );
    assert_eq!(left_over.last(), Some(&0), "{left_over:?}");
    assert_eq!(
        supervisor
            .store
            .child_cases(&ChildCaseQuery::default(), Page::first(100))
            .unwrap()
            .len(),
        40
    );
}

/// `id`'s document as `by` holds it, with one more change made in `victim`'s name (its actor,
/// its user and device as author): what a hostile app on `by` can write.
fn forged_in_name_of(by: &Device, victim: &Device, id: Uuid) -> Vec<u8> {
    let bytes = by.store.export_document(id).unwrap();
    let mut document = automerge::Automerge::load(&bytes)
        .unwrap()
        .with_actor(victim.store.actor().clone());
    let mut case: ChildCase = by.store.get(id).unwrap();
    case.hours_per_week = 40;
    let author = ChangeAuthor {
        user: victim.principal.user,
        device: victim.id(),
    };
    vigie_core::doc::write_record(&mut document, &case, &author)
        .unwrap()
        .expect("a change");
    document.save()
}

#[test]
fn a_change_in_the_receivers_name_that_it_never_made_is_refused() {
    let dir = TempDir::new().unwrap();
    let (_hub, mut supervisor, mut monitor, _) = enrolled(&dir);
    // The monitor's case reaches the supervisor, who edits it and sends it back: the monitor
    // takes back its own changes, which it holds, with the edit.
    let own = monitor.create_case(C01, NAME_C01);
    peer(&mut monitor, &mut supervisor).unwrap();
    let mut edited: ChildCase = supervisor.store.get(own).unwrap();
    edited.hours_per_week = 20;
    supervisor.store.update(&edited).unwrap();
    peer(&mut supervisor, &mut monitor).unwrap();
    assert_eq!(
        monitor.store.get::<ChildCase>(own).unwrap().hours_per_week,
        20
    );

    // A change to that case written on the supervisor's tablet in the monitor's name, offered
    // by peer sync: not taken, nothing of it stored; the session goes on with the others (a
    // case of the supervisor's reaches the monitor).
    let forged = forged_in_name_of(&supervisor, &monitor, own);
    supervisor.store.merge_document(own, &forged).unwrap();
    let before = monitor.store.export_document(own).unwrap();
    let beside = supervisor.create_case(C01, "Mariam Koné");
    peer(&mut supervisor, &mut monitor).unwrap();
    assert_eq!(monitor.store.export_document(own).unwrap(), before);
    assert!(monitor.store.kind_of(beside).is_ok());

    // A record of the supervisor's with a change in the monitor's name, in a bundle: not
    // taken; the record without it is imported.
    let theirs = supervisor.create_case(C01, "Awa Bamba");
    let to_monitor = [Recipient::Device(monitor.id())];
    let forged = forged_in_name_of(&supervisor, &monitor, theirs);
    let bundle = supervisor
        .store
        .seal_bundle(vec![(theirs, forged)], &to_monitor)
        .unwrap();
    let report = monitor.store.import_bundle(&bundle).unwrap();
    assert_eq!((report.records, report.refused), (0, 1), "{report:?}");
    assert!(monitor.store.kind_of(theirs).is_err());
    let genuine = supervisor.store.export_document(theirs).unwrap();
    let bundle = supervisor
        .store
        .seal_bundle(vec![(theirs, genuine)], &to_monitor)
        .unwrap();
    assert_eq!(monitor.store.import_bundle(&bundle).unwrap().changed, 1);
}

/// A monitor's late step made on an older copy of a case (referred → receiving services, after
/// a long note, offline), brought by peer sync to the supervisor who closed the case
/// meanwhile: it stands beside the closure as a conflict, whichever value the merge shows, as
/// the hub keeps it (it was refused when hers was shown, her note with it); the monitor may
/// not settle it, the supervisor keeps the closure.
#[test]
fn a_peers_late_step_stands_beside_a_closure() {
    let dir = TempDir::new().unwrap();
    let (_hub, mut supervisor, mut monitor, _) = enrolled(&dir);
    let case = monitor.create_case(C01, NAME_C01);
    let referral = Referral {
        service: ServiceKind::Education,
        provider: "École de Soubré".into(),
        date: NaiveDate::from_ymd_opt(2026, 4, 2).unwrap(),
        outcome: String::new(),
    };
    monitor.store.refer_case(case, referral).unwrap();
    peer(&mut monitor, &mut supervisor).unwrap();

    let verified = NaiveDate::from_ymd_opt(2026, 5, 4).unwrap();
    for to in [CaseStatus::ReceivingServices, CaseStatus::Withdrawn] {
        supervisor
            .store
            .transition_case_on(case, to, verified)
            .unwrap();
    }
    let seen = NaiveDate::from_ymd_opt(2026, 6, 4).unwrap();
    supervisor
        .store
        .add_follow_up(case, FollowUp::new(seen, FollowUpSituation::InSchool, None))
        .unwrap();
    supervisor
        .store
        .transition_case(case, CaseStatus::Closed)
        .unwrap();

    let note = "Vue au champ de cacao avec son oncle. ".repeat(20);
    let mut noted: ChildCase = monitor.store.get(case).unwrap();
    noted.notes = note.clone();
    monitor.store.update(&noted).unwrap();
    monitor
        .store
        .transition_case(case, CaseStatus::ReceivingServices)
        .unwrap();
    let beside = monitor.create_case(C01, "Mariam Koné");
    peer(&mut monitor, &mut supervisor).unwrap();
    let status = ["status".to_string()];
    for store in [&supervisor.store, &monitor.store] {
        let read: ChildCase = store.get(case).unwrap();
        assert_eq!(read.notes, note);
        let conflicts = store.conflicts(case).unwrap();
        assert!(conflicts.iter().any(|c| c.path == status), "{conflicts:?}");
    }
    let closed = serde_json::json!("closed");
    assert!(matches!(
        monitor.store.resolve_conflict(case, &status, &closed),
        Err(Error::NotAllowed { .. })
    ));
    supervisor
        .store
        .resolve_conflict(case, &status, &closed)
        .unwrap();
    peer(&mut monitor, &mut supervisor).unwrap();
    for store in [&supervisor.store, &monitor.store] {
        let read: ChildCase = store.get(case).unwrap();
        assert_eq!(read.status, CaseStatus::Closed);
        assert!(store.conflicts(case).unwrap().is_empty());
    }
    // The session goes on with the others.
    assert!(supervisor.store.kind_of(beside).is_ok());
}

/// A colleague's change built on an older copy of a case, with an operation deleting the
/// verification date the supervisor recorded since (named past the change's history), planted
/// on the colleague's phone as a copied file: brought by peer sync to a phone holding the
/// verification, it is not taken, as the hub refuses it; the verification stays.
#[test]
fn a_peers_change_deleting_a_value_it_never_received_is_not_taken() {
    use automerge::ReadDoc;
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, _) = enrolled(&dir);
    let mut colleague = Device::new(&dir, "colleague", Role::CommunityMonitor, &[C01]);
    for _ in 0..2 {
        for d in [&mut colleague, &mut monitor] {
            d.sync(&mut hub);
        }
    }
    let case = monitor.create_case(C01, NAME_C01);
    let referral = Referral::new(
        ServiceKind::Education,
        "École",
        NaiveDate::from_ymd_opt(2026, 4, 2).unwrap(),
    );
    monitor.store.refer_case(case, referral).unwrap();
    monitor.sync(&mut hub);
    colleague.sync(&mut hub);
    supervisor.sync(&mut hub);
    // The referred copy the forged change is built on.
    let stale = colleague.store.export_document(case).unwrap();
    let mut noted: ChildCase = colleague.store.get(case).unwrap();
    let verified = NaiveDate::from_ymd_opt(2026, 5, 4).unwrap();
    for to in [CaseStatus::ReceivingServices, CaseStatus::Withdrawn] {
        supervisor
            .store
            .transition_case_on(case, to, verified)
            .unwrap();
    }
    supervisor.sync(&mut hub);
    monitor.sync(&mut hub);
    colleague.sync(&mut hub);
    let held = automerge::Automerge::load(&monitor.store.export_document(case).unwrap()).unwrap();
    let (_, verification) = held
        .get(automerge::ROOT, "remediated_on")
        .unwrap()
        .expect("the verification date is set");

    // On the colleague's referred copy: a note, and the verification date deleted.
    let mut document = automerge::Automerge::load(&stale)
        .unwrap()
        .with_actor(colleague.store.actor().clone());
    let before = document.get_heads();
    noted.notes = "Vue au champ.".into();
    let author = ChangeAuthor {
        user: colleague.principal.user,
        device: colleague.id(),
    };
    vigie_core::doc::write_record(&mut document, &noted, &author)
        .unwrap()
        .expect("a change");
    let forged = common::hostile::deleting_unseen(
        &document.save_after(&before),
        "remediated_on",
        &verification,
    );
    let mut planted =
        automerge::Automerge::load(&colleague.store.export_document(case).unwrap()).unwrap();
    planted.apply_changes([forged]).unwrap();
    colleague
        .store
        .merge_document(case, &planted.save())
        .unwrap();

    let before = monitor.store.export_document(case).unwrap();
    peer(&mut colleague, &mut monitor).unwrap();
    assert!(monitor.store.export_document(case).unwrap() == before);
    let kept: ChildCase = monitor.store.get(case).unwrap();
    assert_eq!(kept.remediated_on, Some(verified));
}

/// A colleague offline on an older copy of a case (referred) edits its guardian only, while the
/// supervisor took it to withdrawn: brought by peer sync to a phone holding the verification,
/// the edit is taken (the merge keeps "withdrawn"; the colleague took no status step), as the
/// hub takes it. Judged on the colleague's copy alone, it was refused as a step back.
#[test]
fn a_peers_edit_on_an_older_copy_is_taken_when_its_merge_keeps_the_status() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, _) = enrolled(&dir);
    let mut colleague = Device::new(&dir, "colleague", Role::CommunityMonitor, &[C01]);
    // Each certified, and each holding the others in its directory.
    for _ in 0..2 {
        for d in [&mut colleague, &mut monitor] {
            d.sync(&mut hub);
        }
    }
    let case = monitor.create_case(C01, NAME_C01);
    let referral = Referral::new(
        ServiceKind::Education,
        "École",
        NaiveDate::from_ymd_opt(2026, 4, 2).unwrap(),
    );
    monitor.store.refer_case(case, referral).unwrap();
    monitor.sync(&mut hub);
    colleague.sync(&mut hub);
    supervisor.sync(&mut hub);
    let verified = NaiveDate::from_ymd_opt(2026, 5, 4).unwrap();
    for to in [CaseStatus::ReceivingServices, CaseStatus::Withdrawn] {
        supervisor
            .store
            .transition_case_on(case, to, verified)
            .unwrap();
    }
    supervisor.sync(&mut hub);
    monitor.sync(&mut hub);

    let mut edited: ChildCase = colleague.store.get(case).unwrap();
    assert_eq!(edited.status, CaseStatus::Referred);
    edited.guardian = "Tante Aminata".into();
    colleague.store.update(&edited).unwrap();
    peer(&mut colleague, &mut monitor).unwrap();
    let taken: ChildCase = monitor.store.get(case).unwrap();
    assert_eq!(taken.guardian, "Tante Aminata");
    assert_eq!(taken.status, CaseStatus::Withdrawn);
}

/// A colleague's change the hub refused from the colleague (hours of work below zero), which
/// the monitor took as a copied file (`merge_document`: a peer or a bundle would refuse it)
/// and built an edit on: the monitor's phone is not left waiting for it for ever. The
/// hub answers that it will not come, the phone rebuilds the case on the hub's version with
/// its own edit written again, and the edit goes in.
#[test]
fn a_change_the_hub_refused_from_its_author_does_not_hold_a_relays_edits_back() {
    let dir = TempDir::new().unwrap();
    let (mut hub, _supervisor, mut monitor, mut colleague, id) = a_case_and_a_colleague(&dir);
    // The colleague's altered app writes what no phone's own write lets through.
    let altered = with_change_by(
        &colleague.store.export_document(id).unwrap(),
        colleague.store.actor().clone(),
        Some(colleague.store.author()),
        ("hours_per_week", -5),
    );
    colleague.store.merge_document(id, &altered).unwrap();
    monitor.store.merge_document(id, &altered).unwrap();
    assert_eq!(
        monitor.store.get::<ChildCase>(id).unwrap().hours_per_week,
        -5
    );
    let told = colleague.sync(&mut hub);
    assert!(
        told.refused.iter().any(|(r, _)| *r == id),
        "the hub refuses it from its author: {told:?}"
    );

    let mut own: ChildCase = monitor.store.get(id).unwrap();
    own.guardian = "Koffi Brou".into();
    own.hours_per_week = 12;
    monitor.store.update(&own).unwrap();
    let told = monitor.sync(&mut hub);
    assert_eq!(told.rebuilt, vec![id], "{told:?}");
    assert!(
        told.awaiting_author.is_empty() && told.pending == 0,
        "{told:?}"
    );
    let held: ChildCase = hub.get(id).unwrap();
    assert_eq!(
        (held.guardian.as_str(), held.hours_per_week),
        ("Koffi Brou", 12)
    );
    // The colleague offers the refused change again, by peer and in a bundle: the monitor's
    // phone, which let it go, does not take it back.
    peer(&mut colleague, &mut monitor).unwrap();
    let bundle = colleague
        .store
        .seal_bundle(
            vec![(id, colleague.store.export_document(id).unwrap())],
            &[Recipient::Device(monitor.id())],
        )
        .unwrap();
    let report = monitor.store.import_bundle(&bundle).unwrap();
    assert_eq!((report.records, report.refused), (0, 1), "{report:?}");
    assert_eq!(
        monitor.store.get::<ChildCase>(id).unwrap().hours_per_week,
        12
    );
    let told = monitor.sync(&mut hub);
    assert!(told.rebuilt.is_empty() && told.pending == 0, "{told:?}");
}

/// A colleague's edit made at an older version (Automerge writes it under an actor derived
/// from the store's), relayed by peer: the relay waits for the colleague, as for any of its
/// changes, and is not told they will never come (it rebuilt the case, dropping them, and
/// told its user a lost phone's changes were gone).
#[test]
fn a_relayed_edit_made_at_an_older_version_waits_for_its_author() {
    let dir = TempDir::new().unwrap();
    let (mut hub, _supervisor, mut monitor, mut colleague, id) = a_case_and_a_colleague(&dir);
    let older: ChildCase = colleague.store.get(id).unwrap();
    let mut fresh = older.clone();
    fresh.hours_per_week = 30;
    colleague.store.update(&fresh).unwrap();
    let mut stale = older;
    stale.activity = "Récolte".into();
    colleague.store.update(&stale).unwrap();
    peer(&mut colleague, &mut monitor).unwrap();
    let mut own: ChildCase = monitor.store.get(id).unwrap();
    own.guardian = "Koffi Brou".into();
    monitor.store.update(&own).unwrap();
    let told = monitor.sync(&mut hub);
    assert!(
        told.rebuilt.is_empty() && told.awaiting_author == vec![id],
        "{told:?}"
    );
    colleague.sync(&mut hub);
    let told = monitor.sync(&mut hub);
    assert!(told.refused.is_empty() && told.pending == 0, "{told:?}");
    let held: ChildCase = hub.get(id).unwrap();
    assert_eq!(
        (
            held.guardian.as_str(),
            held.activity.as_str(),
            held.hours_per_week
        ),
        ("Koffi Brou", "Récolte", 30)
    );
}

/// Offline, a monitor plans a follow-up within the child's childhood, then corrects the date of
/// birth (the plan now falls after the 18th birthday): each write passed on the phone, and the
/// hub, which gets both at once, takes them (the plan stays, as one made before a correction
/// does; the due lists leave it out).
#[test]
fn a_plan_then_a_corrected_birth_date_pushed_together_are_taken() {
    let dir = TempDir::new().unwrap();
    let (mut hub, _supervisor, mut monitor, _other) = enrolled(&dir);
    // Held by the hub before the plan, then (the hub judged it from no version, and refused it)
    // new to the hub: registered, planned and corrected offline, judged from its first version.
    for synced_first in [true, false] {
        let mut case = child(C01, NAME_C01, monitor.principal.user);
        case.estimated_age = None;
        case.date_of_birth = Some(NaiveDate::from_ymd_opt(2012, 1, 1).unwrap());
        let case = monitor.store.create(&case).unwrap();
        if synced_first {
            monitor.sync(&mut hub);
        }
        let mut planned: ChildCase = monitor.store.get(case.id).unwrap();
        planned.followups.insert(
            Uuid::now_v7(),
            FollowUp::new(
                NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(),
                FollowUpSituation::AtRisk,
                Some(NaiveDate::from_ymd_opt(2027, 6, 1).unwrap()),
            ),
        );
        let mut corrected = monitor.store.update(&planned).unwrap();
        corrected.date_of_birth = Some(NaiveDate::from_ymd_opt(2008, 9, 10).unwrap());
        monitor.store.update(&corrected).unwrap();
        let told = monitor.sync(&mut hub);
        assert!(told.refused.is_empty() && told.pending == 0, "{told:?}");
        let held: ChildCase = hub.get(case.id).unwrap();
        assert_eq!(held.followups.len(), 1);
        assert_eq!(held.follow_up_due, None);
    }
}

/// The same for a relay that got the case from a bundle only, never from the hub: it knows no
/// version of the hub's to rebuild on, and the hub's does not merge into its copy. It
/// rebuilds the case on the hub's document as the hub sends it, its own edit written again.
#[test]
fn a_relay_that_never_got_the_record_from_the_hub_is_rebuilt_on_the_hub_s_document() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, _other) = enrolled(&dir);
    let mut colleague = Device::new(&dir, "colleague", Role::CommunityMonitor, &[C01]);
    let mut relay = Device::new(&dir, "relay", Role::CommunityMonitor, &[C01]);
    for _ in 0..2 {
        for d in [&mut monitor, &mut colleague, &mut supervisor, &mut relay] {
            d.sync(&mut hub);
        }
    }
    let id = monitor.create_case(C01, NAME_C01);
    for d in [&mut monitor, &mut supervisor, &mut colleague] {
        d.sync(&mut hub);
    }
    // The supervisor's next number, taken by a change forged on the colleague's phone, in a
    // bundle to a phone that holds nothing of the case.
    forged_then_edited(&colleague, &supervisor, &mut relay, id);
    // The supervisor's own change of that number reaches the hub first.
    let mut edited: ChildCase = supervisor.store.get(id).unwrap();
    edited.hours_per_week = 30;
    supervisor.store.update(&edited).unwrap();
    supervisor.sync(&mut hub);

    let told = relay.sync(&mut hub);
    assert_eq!(told.rebuilt, vec![id], "{told:?}");
    let told = relay.sync(&mut hub);
    assert!(
        told.refused.is_empty() && told.failed.is_empty() && told.pending == 0,
        "{told:?}"
    );
    let held: ChildCase = hub.get(id).unwrap();
    assert_eq!(
        (held.guardian.as_str(), held.hours_per_week),
        ("Koffi Brou", 30)
    );
    let mine: ChildCase = relay.store.get(id).unwrap();
    assert_eq!(
        (mine.guardian.as_str(), mine.hours_per_week),
        ("Koffi Brou", 30)
    );
}

/// On `colleague`'s copy of case `id`, a change forged under `supervisor`'s actor and name,
/// taking its next number, sent in a bundle to `relay`, which takes it and sets the guardian
/// on top ("Koffi Brou").
fn forged_then_edited(colleague: &Device, supervisor: &Device, relay: &mut Device, id: Uuid) {
    let forged = with_change_by(
        &colleague.store.export_document(id).unwrap(),
        supervisor.store.actor().clone(),
        Some(supervisor.store.author()),
        ("hours_per_week", 2),
    );
    let bundle = colleague
        .store
        .seal_bundle(vec![(id, forged)], &[Recipient::Device(relay.id())])
        .unwrap();
    assert_eq!(relay.store.import_bundle(&bundle).unwrap().changed, 1);
    let mut own: ChildCase = relay.store.get(id).unwrap();
    own.guardian = "Koffi Brou".into();
    relay.store.update(&own).unwrap();
}

/// A history whose changes alternate between devices more times than a phone judges (a
/// hostile peer's, made to cost the receiver two reads of the record a run): that record is
/// not taken from the bundle, and comes with the hub; nothing of it is stored.
#[test]
fn a_history_alternating_between_devices_past_the_bound_is_not_judged_here() {
    let dir = TempDir::new().unwrap();
    let (_hub, supervisor, mut monitor, colleague, id) = a_case_and_a_colleague(&dir);
    let before = monitor.store.export_document(id).unwrap();
    let mut bytes = colleague.store.export_document(id).unwrap();
    for i in 0..130 {
        for (device, hours) in [(&colleague, 2 * i % 160), (&supervisor, (2 * i + 1) % 160)] {
            bytes = with_change_by(
                &bytes,
                device.store.actor().clone(),
                Some(device.store.author()),
                ("hours_per_week", hours),
            );
        }
    }
    let bundle = colleague
        .store
        .seal_bundle(vec![(id, bytes)], &[Recipient::Device(monitor.id())])
        .unwrap();
    let report = monitor.store.import_bundle(&bundle).unwrap();
    assert_eq!((report.records, report.refused), (0, 1), "{report:?}");
    assert_eq!(monitor.store.export_document(id).unwrap(), before);
}

/// A hub, its supervisor and monitor (`enrolled`), a colleague of the monitor's community,
/// and a case of the monitor's that every device holds.
fn a_case_and_a_colleague(dir: &TempDir) -> (Store, Device, Device, Device, Uuid) {
    let (mut hub, mut supervisor, mut monitor, _other) = enrolled(dir);
    let mut colleague = Device::new(dir, "colleague", Role::CommunityMonitor, &[C01]);
    let id = monitor.create_case(C01, NAME_C01);
    for _ in 0..2 {
        for d in [&mut monitor, &mut colleague, &mut supervisor] {
            d.sync(&mut hub);
        }
    }
    (hub, supervisor, monitor, colleague, id)
}

/// An app that saves a form again and again from the version it read when the form opened
/// (each save an edit at an older version, under an actor Automerge derives anew) is not held
/// to the actors one device may write under: every save reaches the hub.
#[test]
fn saves_from_the_version_a_form_read_all_reach_the_hub() {
    let dir = TempDir::new().unwrap();
    let (mut hub, _supervisor, mut monitor, _colleague, id) = a_case_and_a_colleague(&dir);
    let mut form: ChildCase = monitor.store.get(id).unwrap();
    for save in 0..(doc::MAX_ACTORS_PER_DEVICE as i32 + 16) {
        form.hours_per_week = save % 40 + 1;
        monitor.store.update(&form).unwrap();
        if save % 10 == 9 {
            let told = monitor.sync(&mut hub);
            assert!(told.refused.is_empty(), "save {save}: {told:?}");
        }
    }
    let told = monitor.sync(&mut hub);
    assert!(told.refused.is_empty() && told.pending == 0, "{told:?}");
}

/// `bytes` with `n` more changes under each of `actors`, each setting `hours_per_week`, all
/// naming `author`: an altered app's flood of a record's history.
fn with_changes_by(
    bytes: &[u8],
    actors: &[automerge::ActorId],
    author: ChangeAuthor,
    n: usize,
) -> Vec<u8> {
    use automerge::transaction::{CommitOptions, Transactable as _};
    let message = serde_json::to_string(&author).unwrap();
    let mut document = automerge::Automerge::load(bytes).unwrap();
    let mut written = 0i64;
    for actor in actors {
        document.set_actor(actor.clone());
        for _ in 0..n {
            // Each value another than the last, so that each change holds an operation.
            written += 1;
            let mut tx = document.transaction();
            tx.put(automerge::ROOT, "hours_per_week", 100 + written % 40)
                .unwrap();
            tx.commit_with(CommitOptions::default().with_message(message.clone()));
        }
    }
    document.save()
}

/// No device fills a record's history, which would leave its colleagues no room to edit it
/// (a record frozen for good), nor floods it with branches under actors of its own: a
/// colleague's altered app that writes a change more than a device's share of a case, or its
/// changes under more actors than a device may use, is refused by the hub and not taken by a
/// peer; the case's monitor and supervisor edit it as before.
#[test]
fn no_device_fills_a_record_s_history_or_floods_it_with_branches() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut colleague, id) = a_case_and_a_colleague(&dir);
    let share = vigie_core::codec::bounds::DocumentLimits::STANDARD.max_changes
        / doc::DEVICE_SHARE_OF_CHANGES;
    let mut second = Device::new(&dir, "second", Role::CommunityMonitor, &[C01]);
    for _ in 0..2 {
        second.sync(&mut hub);
    }
    let branches: Vec<automerge::ActorId> = (0..=doc::MAX_ACTORS_PER_DEVICE as u64)
        .map(|i| doc::actor_for(second.id(), i.to_be_bytes()))
        .collect();
    let floods = [
        with_changes_by(
            &colleague.store.export_document(id).unwrap(),
            &[colleague.store.actor().clone()],
            colleague.store.author(),
            share as usize + 1,
        ),
        with_changes_by(
            &second.store.export_document(id).unwrap(),
            &branches,
            second.store.author(),
            1,
        ),
    ];
    for (altered, flood) in [&mut colleague, &mut second].into_iter().zip(floods) {
        altered.store.merge_document(id, &flood).unwrap();
        peer(altered, &mut monitor).unwrap();
        assert_ne!(
            monitor.store.history(id).unwrap().len(),
            altered.store.history(id).unwrap().len(),
            "not taken from a peer"
        );
        let told = altered.sync(&mut hub);
        assert!(
            told.refused.iter().any(|(r, _)| *r == id),
            "refused by the hub: {told:?}"
        );
    }
    // The case's people edit it as before.
    for (d, hours) in [(&mut monitor, 21), (&mut supervisor, 22)] {
        d.sync(&mut hub);
        let mut case: ChildCase = d.store.get(id).unwrap();
        case.hours_per_week = hours;
        d.store.update(&case).unwrap();
        let told = d.sync(&mut hub);
        assert!(told.refused.is_empty() && told.pending == 0, "{told:?}");
    }
    assert_eq!(hub.get::<ChildCase>(id).unwrap().hours_per_week, 22);

    // A phone's own saves past its share are refused at the save, naming the record, rather
    // than pushed for the hub to refuse once the work is done.
    let flood = with_changes_by(
        &monitor.store.export_document(id).unwrap(),
        &[monitor.store.actor().clone()],
        monitor.store.author(),
        share as usize,
    );
    monitor.store.merge_document(id, &flood).unwrap();
    let mut case: ChildCase = monitor.store.get(id).unwrap();
    case.hours_per_week = 3;
    match monitor.store.update(&case) {
        Err(Error::Validation(e)) => assert_eq!(e.field, "record", "{e:?}"),
        other => panic!("expected the save refused, got {other:?}"),
    }
}

/// `bytes` (a record's document) with one more change under `actor`, setting `field` to
/// `value`, naming `author` (none: no author): what an altered app writes.
fn with_change_by(
    bytes: &[u8],
    actor: automerge::ActorId,
    author: Option<ChangeAuthor>,
    (field, value): (&str, i64),
) -> Vec<u8> {
    use automerge::transaction::{CommitOptions, Transactable as _};
    let mut document = automerge::Automerge::load(bytes).unwrap().with_actor(actor);
    let mut tx = document.transaction();
    tx.put(automerge::ROOT, field, value).unwrap();
    let options = match author {
        Some(author) => {
            CommitOptions::default().with_message(serde_json::to_string(&author).unwrap())
        }
        None => CommitOptions::default(),
    };
    tx.commit_with(options);
    document.save()
}

/// A change made in a supervisor's name under the supervisor's own actor, numbered as the
/// supervisor's next change, which the receiver already holds from the supervisor: that record
/// is not taken from the bundle (it is not its history), and the bundle's other records are.
#[test]
fn a_record_whose_change_reuses_another_s_number_does_not_stop_a_bundle() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut colleague, id) = a_case_and_a_colleague(&dir);
    // The supervisor's change, which the monitor gets; the colleague does not (yet).
    let mut edited: ChildCase = supervisor.store.get(id).unwrap();
    edited.hours_per_week = 30;
    supervisor.store.update(&edited).unwrap();
    supervisor.sync(&mut hub);
    monitor.sync(&mut hub);
    // On the colleague's older copy, a change under the supervisor's actor takes its number.
    let forged = with_change_by(
        &colleague.store.export_document(id).unwrap(),
        supervisor.store.actor().clone(),
        Some(supervisor.store.author()),
        ("hours_per_week", 2),
    );
    let beside = colleague.create_case(C01, "Mariam Koné");
    let bundle = colleague
        .store
        .seal_bundle(
            vec![
                (id, forged),
                (beside, colleague.store.export_document(beside).unwrap()),
            ],
            &[Recipient::Device(monitor.id())],
        )
        .unwrap();
    let report = monitor.store.import_bundle(&bundle).unwrap();
    assert_eq!((report.records, report.refused), (1, 1), "{report:?}");
    assert_eq!(
        monitor.store.get::<ChildCase>(id).unwrap().hours_per_week,
        30
    );
    assert!(monitor.store.kind_of(beside).is_ok());
}

/// A change forged in a supervisor's name under the supervisor's actor, numbered as its next
/// change, reaches a monitor in a bundle; the monitor builds an edit on it. Once the
/// supervisor's own change of that number reaches the hub, the hub answers that the forged one
/// will never come: the monitor's phone rebuilds the case on the hub's version with its own
/// edit written again, and is not left refused for ever.
#[test]
fn a_relay_holding_a_change_forged_under_another_s_number_is_rebuilt_once_the_real_one_comes() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut colleague, id) = a_case_and_a_colleague(&dir);
    let mut edited: ChildCase = supervisor.store.get(id).unwrap();
    edited.hours_per_week = 30;
    supervisor.store.update(&edited).unwrap();
    supervisor.sync(&mut hub);
    for d in [&mut monitor, &mut colleague] {
        d.sync(&mut hub);
    }
    // The supervisor's next number, taken by a change forged on the colleague's phone.
    forged_then_edited(&colleague, &supervisor, &mut monitor, id);
    let told = monitor.sync(&mut hub);
    assert_eq!(told.awaiting_author, vec![id], "{told:?}");

    // The supervisor's own change of that number.
    let mut edited: ChildCase = supervisor.store.get(id).unwrap();
    edited.activity = "Récolte".into();
    supervisor.store.update(&edited).unwrap();
    supervisor.sync(&mut hub);
    let told = monitor.sync(&mut hub);
    assert_eq!(told.rebuilt, vec![id], "{told:?}");
    let told = monitor.sync(&mut hub);
    assert!(
        told.refused.is_empty() && told.awaiting_author.is_empty() && told.pending == 0,
        "{told:?}"
    );
    let held: ChildCase = hub.get(id).unwrap();
    assert_eq!(
        (
            held.guardian.as_str(),
            held.activity.as_str(),
            held.hours_per_week
        ),
        ("Koffi Brou", "Récolte", 30)
    );
    let mine: ChildCase = monitor.store.get(id).unwrap();
    assert_eq!(
        (mine.activity.as_str(), mine.hours_per_week),
        ("Récolte", 30)
    );
}

/// The hub holds a follow-up's plan to the child's childhood as a phone does: a plan past the
/// 18th birthday written by an app that skips the phone's check is refused, naming the field.
#[test]
fn the_hub_refuses_a_follow_up_planned_past_the_18th_birthday() {
    let dir = TempDir::new().unwrap();
    let (mut hub, _supervisor, mut monitor, _other) = enrolled(&dir);
    let mut case = child(C01, NAME_C01, monitor.principal.user);
    case.estimated_age = None;
    case.date_of_birth = Some(NaiveDate::from_ymd_opt(2008, 6, 1).unwrap());
    let case = monitor.store.create(&case).unwrap();
    monitor.sync(&mut hub);
    let bytes = monitor.store.export_document(case.id).unwrap();
    let mut document = automerge::Automerge::load(&bytes)
        .unwrap()
        .with_actor(monitor.store.actor().clone());
    let mut planned: ChildCase = monitor.store.get(case.id).unwrap();
    let key = Uuid::now_v7();
    planned.followups.insert(
        key,
        FollowUp::new(
            NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(),
            FollowUpSituation::AtRisk,
            Some(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()),
        ),
    );
    vigie_core::doc::write_record(&mut document, &planned, &monitor.store.author())
        .unwrap()
        .expect("a change");
    monitor
        .store
        .merge_document(case.id, &document.save())
        .unwrap();
    let told = monitor.sync(&mut hub);
    assert_eq!(
        told.refused,
        vec![(case.id, sync::Refusal::BreaksValidation)],
        "{told:?}"
    );
    let detail = &told.refusal_details[0].1;
    assert_eq!(
        detail.field,
        format!("followups.{key}.next_due"),
        "{detail:?}"
    );
    assert!(hub.get::<ChildCase>(case.id).unwrap().followups.is_empty());
}

/// Changes a colleague's altered app wrote under its own actor in a supervisor's name (device
/// and user, or its device with the supervisor as user), with no author, or holding a field its
/// kind does not define: the bundle's record is not taken, nothing of it stored (the hub
/// refuses each of them); the genuine record is.
#[test]
fn a_bundle_s_changes_in_another_s_name_or_of_unknown_fields_are_not_taken() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, _other) = enrolled(&dir);
    let mut colleague = Device::new(&dir, "colleague", Role::CommunityMonitor, &[C01]);
    for _ in 0..2 {
        for d in [&mut supervisor, &mut monitor, &mut colleague] {
            d.sync(&mut hub);
        }
    }
    let id = colleague.create_case(C01, NAME_C01);
    let genuine = colleague.store.export_document(id).unwrap();
    let written = |author: Option<ChangeAuthor>, field: &str| {
        with_change_by(
            &genuine,
            colleague.store.actor().clone(),
            author,
            (field, 40),
        )
    };
    let supervisor_s = ChangeAuthor {
        user: supervisor.principal.user,
        device: supervisor.id(),
    };
    let own = ChangeAuthor {
        user: colleague.principal.user,
        device: colleague.id(),
    };
    let to_monitor = [Recipient::Device(monitor.id())];
    for forged in [
        written(Some(supervisor_s), "hours_per_week"),
        written(
            Some(ChangeAuthor {
                user: supervisor.principal.user,
                device: colleague.id(),
            }),
            "hours_per_week",
        ),
        written(None, "hours_per_week"),
        written(Some(own), "smuggled"),
        // A device and user no hub enrolled, under an actor of that device.
        {
            let device = Uuid::now_v7();
            let mut actor = device.as_bytes().to_vec();
            actor.extend_from_slice(&[7; 8]);
            let nobody = ChangeAuthor {
                user: Uuid::now_v7(),
                device,
            };
            with_change_by(
                &genuine,
                automerge::ActorId::from(actor),
                Some(nobody),
                ("hours_per_week", 1),
            )
        },
    ] {
        let bundle = colleague
            .store
            .seal_bundle(vec![(id, forged)], &to_monitor)
            .unwrap();
        let report = monitor.store.import_bundle(&bundle).unwrap();
        assert_eq!((report.records, report.refused), (0, 1), "{report:?}");
        assert!(monitor.store.kind_of(id).is_err());
    }
    let bundle = colleague
        .store
        .seal_bundle(
            vec![(id, written(Some(own), "hours_per_week"))],
            &to_monitor,
        )
        .unwrap();
    assert_eq!(monitor.store.import_bundle(&bundle).unwrap().changed, 1);
    assert_eq!(
        monitor.store.get::<ChildCase>(id).unwrap().hours_per_week,
        40
    );
}

/// `bytes` of record `id` in a bundle `from` seals to `to`, imported there.
fn carried(
    from: &Device,
    to: &mut Device,
    id: Uuid,
    bytes: Vec<u8>,
) -> vigie_core::sync::BundleReport {
    let bundle = from
        .store
        .seal_bundle(vec![(id, bytes)], &[Recipient::Device(to.id())])
        .unwrap();
    to.store.import_bundle(&bundle).unwrap()
}

/// A colleague's altered app takes a monitor's file off her case: the record is not taken from
/// a bundle (`rights::check_files`, as the hub judges a push), and the file stays; a
/// supervisor taking it off is taken.
#[test]
fn a_file_taken_off_by_one_who_may_not_is_not_taken_from_a_bundle() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut colleague) = enrolled_with_colleague(&dir);
    let id = monitor.create_case(C01, NAME_C01);
    let consent = NewAttachment {
        kind: AttachmentKind::Document,
        media_type: "application/pdf".into(),
        caption: String::new(),
    };
    let entry = monitor
        .store
        .add_attachment(id, &consent, &b"%PDF-1.4 consentement"[..])
        .unwrap();
    monitor.sync(&mut hub);
    colleague.sync(&mut hub);
    supervisor.sync(&mut hub);
    let taken_off_by = |d: &Device| {
        let mut document = automerge::Automerge::load(&d.store.export_document(id).unwrap())
            .unwrap()
            .with_actor(d.store.actor().clone());
        let author = ChangeAuthor {
            user: d.principal.user,
            device: d.id(),
        };
        vigie_core::doc::remove_attachment(&mut document, entry.id, &author)
            .unwrap()
            .unwrap();
        document.save()
    };
    let report = carried(&colleague, &mut monitor, id, taken_off_by(&colleague));
    assert_eq!((report.records, report.refused), (0, 1), "{report:?}");
    assert_eq!(monitor.store.attachments(id).unwrap().len(), 1);
    let report = carried(&supervisor, &mut monitor, id, taken_off_by(&supervisor));
    assert_eq!((report.changed, report.refused), (1, 0), "{report:?}");
    assert!(monitor.store.attachments(id).unwrap().is_empty());
}

/// A colleague's altered app writes values the phone refuses from its own user (a week of 500
/// hours, an identification in 2099), under its own name: the record is not taken from a
/// bundle or a peer, and counted; a value within the rules is. A copy this phone holds that
/// broke a rule already (a rule newer than the record) is not held against an edit of it.
#[test]
fn a_record_breaking_a_rule_is_not_taken_from_a_peer_or_a_bundle() {
    let dir = TempDir::new().unwrap();
    let (_hub, _supervisor, mut monitor, colleague, id) = a_case_and_a_colleague(&dir);
    let genuine = colleague.store.export_document(id).unwrap();
    let own = ChangeAuthor {
        user: colleague.principal.user,
        device: colleague.id(),
    };
    let written = |field: &str, value: &str| {
        use automerge::transaction::{CommitOptions, Transactable as _};
        let mut document = automerge::Automerge::load(&genuine)
            .unwrap()
            .with_actor(colleague.store.actor().clone());
        let mut tx = document.transaction();
        match value.parse::<i64>() {
            Ok(n) => tx.put(automerge::ROOT, field, n).unwrap(),
            Err(_) => tx.put(automerge::ROOT, field, value).unwrap(),
        }
        tx.commit_with(CommitOptions::default().with_message(serde_json::to_string(&own).unwrap()));
        document.save()
    };
    let before: ChildCase = monitor.store.get(id).unwrap();
    for (field, value) in [
        ("hours_per_week", "500"),
        ("identified_on", "2099-01-01"),
        ("name", "Awa\nKoné"),
    ] {
        let report = carried(&colleague, &mut monitor, id, written(field, value));
        assert_eq!(
            (report.changed, report.refused),
            (0, 1),
            "{field}: {report:?}"
        );
        assert_eq!(
            monitor.store.get::<ChildCase>(id).unwrap(),
            before,
            "{field}"
        );
    }
    let report = carried(
        &colleague,
        &mut monitor,
        id,
        written("hours_per_week", "50"),
    );
    assert_eq!(report.changed, 1);
    assert_eq!(
        monitor.store.get::<ChildCase>(id).unwrap().hours_per_week,
        50
    );
    // Pinned to a reference version no phone holds, the same values are judged all the same:
    // only what that version decides is left to the hub (every other rule comes first).
    let held = monitor.store.export_document(id).unwrap();
    let pinned_to = |areas: u32, hours: i32| {
        let mut document = automerge::Automerge::load(&held)
            .unwrap()
            .with_actor(colleague.store.actor().clone());
        let mut case: ChildCase = vigie_core::doc::read_record(&document, id).unwrap();
        case.captured_with.country_profile = Some(Pin::new("ilo-default", 999));
        case.captured_with.administrative_areas = Some(Pin::new("CI", areas));
        case.hours_per_week = hours;
        vigie_core::doc::write_record(&mut document, &case, &own)
            .unwrap()
            .expect("a change");
        document.save()
    };
    let pinned = |hours| pinned_to(1, hours);
    let report = carried(&colleague, &mut monitor, id, pinned(500));
    assert_eq!((report.changed, report.refused), (0, 1), "{report:?}");
    // A record's area tree is the one it was created with, as the hub takes it (only a
    // profile moves forward, when a hazard the list gained is recorded).
    let report = carried(&colleague, &mut monitor, id, pinned_to(999, 45));
    assert_eq!((report.changed, report.refused), (0, 1), "{report:?}");
    // Nor another country's profile (which would classify the child by its list).
    let mut document = automerge::Automerge::load(&held)
        .unwrap()
        .with_actor(colleague.store.actor().clone());
    let mut case: ChildCase = vigie_core::doc::read_record(&document, id).unwrap();
    case.captured_with.country_profile = Some(Pin::new("BF", 1));
    vigie_core::doc::write_record(&mut document, &case, &own)
        .unwrap()
        .expect("a change");
    let report = carried(&colleague, &mut monitor, id, document.save());
    assert_eq!((report.changed, report.refused), (0, 1), "{report:?}");
    // Within the rules, a version this phone lacks is no reason to refuse (a newer profile
    // the sender received first): the hub judges it.
    let report = carried(&colleague, &mut monitor, id, pinned(45));
    assert_eq!(report.changed, 1);
    assert_eq!(
        monitor.store.get::<ChildCase>(id).unwrap().hours_per_week,
        45
    );
}

/// A record pinned to a reference version no hub published (an altered app's), valid
/// otherwise: a phone takes it from a peer (the version is the hub's to judge), the hub
/// refuses it from its author, and the phone that took it is told at its next sync and
/// rebuilds it on the hub's version: it stayed pending there for good, relayed further.
#[test]
fn a_record_pinned_to_a_version_no_hub_published_leaves_the_relays() {
    let dir = TempDir::new().unwrap();
    let (mut hub, _supervisor, mut monitor, mut colleague, id) = a_case_and_a_colleague(&dir);
    let mut document = automerge::Automerge::load(&colleague.store.export_document(id).unwrap())
        .unwrap()
        .with_actor(colleague.store.actor().clone());
    let mut case: ChildCase = vigie_core::doc::read_record(&document, id).unwrap();
    case.captured_with.country_profile = Some(Pin::new("ilo-default", 999));
    case.hours_per_week = 12;
    vigie_core::doc::write_record(&mut document, &case, &colleague.store.author())
        .unwrap()
        .expect("a change");
    let pinned = document.save();
    colleague.store.merge_document(id, &pinned).unwrap();
    assert_eq!(carried(&colleague, &mut monitor, id, pinned).changed, 1);
    let told = colleague.sync(&mut hub);
    assert!(told.refused.iter().any(|(r, _)| *r == id), "{told:?}");
    let told = monitor.sync(&mut hub);
    assert!(
        told.awaiting_author.is_empty() && told.pending == 0,
        "{told:?}"
    );
    let held: ChildCase = monitor.store.get(id).unwrap();
    assert_ne!(
        held.captured_with.country_profile,
        Some(Pin::new("ilo-default", 999))
    );
}

/// A visit is its visitor's account: a colleague's altered app that filed one in another
/// monitor's name (the hub refuses it) had it taken by a phone, and shown as theirs.
#[test]
fn a_visit_filed_in_a_colleague_s_name_is_not_taken() {
    use chrono::TimeZone as _;
    let dir = TempDir::new().unwrap();
    let (_hub, _supervisor, mut monitor, mut colleague, _) = a_case_and_a_colleague(&dir);
    let place = colleague
        .store
        .create(&Workplace::new(
            "Champ",
            "cocoa",
            Formality::Informal,
            area(C01),
        ))
        .unwrap();
    let started = chrono::FixedOffset::east_opt(0)
        .unwrap()
        .with_ymd_and_hms(2026, 4, 3, 9, 0, 0)
        .unwrap();
    let own = colleague
        .store
        .create(&Visit::new(
            VisitKind::CommunityMonitoring,
            &place,
            colleague.principal.user,
            started,
        ))
        .unwrap();
    let bytes = colleague.store.export_document(own.id).unwrap();
    let mut document = automerge::Automerge::load(&bytes)
        .unwrap()
        .with_actor(colleague.store.actor().clone());
    let mut forged: Visit = vigie_core::doc::read_record(&document, own.id).unwrap();
    forged.visitor_id = monitor.principal.user;
    vigie_core::doc::write_record(&mut document, &forged, &colleague.store.author())
        .unwrap()
        .expect("a change");
    let workplace = colleague.store.export_document(place.id).unwrap();
    assert_eq!(
        carried(&colleague, &mut monitor, place.id, workplace).changed,
        1
    );
    // The colleague's own visit, as made, is taken; then its visitor changed is not.
    assert_eq!(carried(&colleague, &mut monitor, own.id, bytes).changed, 1);
    let report = carried(&colleague, &mut monitor, own.id, document.save());
    assert_eq!((report.changed, report.refused), (0, 1), "{report:?}");
    let held: Visit = monitor.store.get(own.id).unwrap();
    assert_eq!(held.visitor_id, colleague.principal.user);
}

/// Nothing binds a change to the device it names: a colleague's altered app wrote, as the
/// supervisor's, a merge of a case into another (a step only a supervisor takes), and a phone
/// that took it hid the case. A step the device bringing it may not take, made in another's
/// name, is not taken from it (it comes with the hub); the same record from the supervisor's
/// own device is.
#[test]
fn a_step_above_the_sender_s_role_in_another_s_name_is_not_taken() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut colleague, kept) = a_case_and_a_colleague(&dir);
    let duplicate = monitor.create_case(C01, "Koffi Yao");
    for d in [&mut monitor, &mut colleague, &mut supervisor] {
        d.sync(&mut hub);
    }
    let merged_into = |d: &Device| d.store.get::<ChildCase>(duplicate).unwrap().merged_into;
    supervisor.store.merge_cases(kept, duplicate).unwrap();
    let merged = supervisor.store.export_document(duplicate).unwrap();
    // The colleague holds the supervisor's merge (a relay, or a forgery: the same bytes).
    colleague.store.merge_document(duplicate, &merged).unwrap();
    let relayed = colleague.store.export_document(duplicate).unwrap();
    let report = carried(&colleague, &mut monitor, duplicate, relayed);
    assert_eq!((report.changed, report.refused), (0, 1), "{report:?}");
    assert_eq!(merged_into(&monitor), None);
    peer(&mut colleague, &mut monitor).unwrap();
    assert_eq!(merged_into(&monitor), None);
    // From the supervisor's own device, it is the supervisor's step.
    let report = carried(&supervisor, &mut monitor, duplicate, merged);
    assert_eq!(report.changed, 1);
    assert_eq!(merged_into(&monitor), Some(kept));
}

/// A merge brings the duplicate's follow-ups to the case kept with their text, judged where it
/// was written: a follow-up noted before the free-text rule (a control character an earlier
/// version took) does not stop the merge reaching a peer, as it reaches the hub; text set on
/// the case kept itself is judged as before.
#[test]
fn a_merge_bringing_text_written_before_the_rule_is_taken_from_a_peer() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut colleague, kept) = a_case_and_a_colleague(&dir);
    let duplicate = monitor.create_case(C01, "Koffi Yao");
    for d in [&mut monitor, &mut colleague, &mut supervisor] {
        d.sync(&mut hub);
    }
    // Noted on the duplicate as an earlier version of the app could, held by every phone.
    let key = Uuid::now_v7();
    let mut noted: ChildCase = supervisor.store.get(duplicate).unwrap();
    let mut seen = FollowUp::new(
        NaiveDate::from_ymd_opt(2026, 4, 2).unwrap(),
        FollowUpSituation::InSchool,
        None,
    );
    seen.notes = "vue\u{7}".into();
    noted.followups.insert(key, seen);
    let mut document =
        automerge::Automerge::load(&supervisor.store.export_document(duplicate).unwrap())
            .unwrap()
            .with_actor(supervisor.store.actor().clone());
    let own = ChangeAuthor {
        user: supervisor.principal.user,
        device: supervisor.id(),
    };
    vigie_core::doc::write_record(&mut document, &noted, &own)
        .unwrap()
        .expect("a change");
    for d in [&mut supervisor, &mut monitor] {
        d.store.merge_document(duplicate, &document.save()).unwrap();
    }
    supervisor.store.merge_cases(kept, duplicate).unwrap();
    peer(&mut supervisor, &mut monitor).unwrap();
    let case: ChildCase = monitor.store.get(kept).unwrap();
    assert!(
        case.merged_from.contains(&duplicate),
        "{:?}",
        case.merged_from
    );
    assert_eq!(case.followups[&key].notes, "vue\u{7}");
    // Set on the case kept by a peer's altered app, the same text is refused.
    let mut typed = case.clone();
    typed.notes = "vu\u{1b}[2J".into();
    colleague
        .store
        .merge_document(kept, &monitor.store.export_document(kept).unwrap())
        .unwrap();
    let mut document = automerge::Automerge::load(&colleague.store.export_document(kept).unwrap())
        .unwrap()
        .with_actor(colleague.store.actor().clone());
    let by_colleague = ChangeAuthor {
        user: colleague.principal.user,
        device: colleague.id(),
    };
    vigie_core::doc::write_record(&mut document, &typed, &by_colleague)
        .unwrap()
        .expect("a change");
    let report = carried(&colleague, &mut monitor, kept, document.save());
    assert_eq!((report.changed, report.refused), (0, 1), "{report:?}");
}

/// One sync of `device` with `hub`; the directories the hub's answers carried. `older_hub`:
/// the hub answers as the version before did, reading nothing of when the device's copy was
/// issued up to (it sends the whole directory).
fn sync_seeing_directories(
    device: &mut Device,
    hub: &mut Store,
    older_hub: bool,
) -> Vec<wire::Directory> {
    let principal = device.principal.clone();
    let mut seen = Vec::new();
    sync::sync_with_hub(
        &mut device.store,
        &sync::SyncOptions::default(),
        |request| {
            let mut request = wire::decode_request(request, 1 << 26).unwrap();
            if older_hub && let Some(identity) = &mut request.identity {
                identity.directory_issued_through = None;
            }
            let request = wire::encode_request(&request);
            let response = common::handle(hub, &principal, &request, &HubLimits::default())
                .map_err(|e| e.to_string())?;
            let decoded = wire::decode_response(&response, 1 << 26).unwrap();
            seen.extend(decoded.identity.and_then(|i| i.directory));
            Ok(response)
        },
        |_| {},
    )
    .unwrap();
    seen
}

/// One sync of `device` with `hub`, each directory the hub's answers carry changed by
/// `rewrite` on its way (what a device behind a hostile network or a hub of the version before
/// receives).
fn sync_rewriting_directories(
    device: &mut Device,
    hub: &mut Store,
    rewrite: &mut dyn FnMut(&mut wire::Directory),
) {
    let principal = device.principal.clone();
    sync::sync_with_hub(
        &mut device.store,
        &sync::SyncOptions::default(),
        |request| {
            let response = common::handle(hub, &principal, request, &HubLimits::default())
                .map_err(|e| e.to_string())?;
            let mut decoded = wire::decode_response(&response, 1 << 26).unwrap();
            if let Some(directory) = decoded.identity.as_mut().and_then(|i| i.directory.as_mut()) {
                rewrite(directory);
            }
            Ok(wire::encode_response(&decoded))
        },
        |_| {},
    )
    .unwrap();
}

/// A certificate naming `hub` as its issuer, for a device of its own, signed by another key.
fn forged_certificate(hub: &[u8; 32]) -> Certificate {
    let forger = HubKey::generate();
    let keys = vigie_core::identity::DeviceKeys::generate().public();
    let who = Principal {
        device: Uuid::now_v7(),
        user: Uuid::now_v7(),
        role: Role::Supervisor,
        areas: ["CI".to_string()].into_iter().collect(),
    };
    let mut certificate = forger.certify(&who, &keys, chrono::Utc::now().timestamp_millis());
    certificate.hub = *hub;
    certificate
}

/// A directory rewritten as a forger would: `forged` added, and the digest of what `device`
/// would then hold (as `sync::identity` works it out) signed by `key`.
fn forgery_signed_by(
    device: &Device,
    forged: &Certificate,
    key: HubKey,
) -> impl FnMut(&mut wire::Directory) + use<> {
    use sha2::{Digest, Sha256};
    let held: Vec<Vec<u8>> = device
        .store
        .directory()
        .unwrap()
        .iter()
        .map(Certificate::to_bytes)
        .collect();
    let forged = forged.to_bytes();
    move |directory| {
        directory.certificates.push(forged.clone());
        let mut all = held.clone();
        all.extend(directory.certificates.iter().cloned());
        all.sort();
        let mut hash = Sha256::new();
        for certificate in &all {
            hash.update((certificate.len() as u32).to_le_bytes());
            hash.update(certificate);
        }
        directory.digest = hash.finalize().into();
        directory.signature = Some(key.sign_directory(&directory.digest));
    }
}

#[test]
fn a_directory_is_vouched_for_by_the_hub_s_signature_or_checked_certificate_by_certificate() {
    let dir = TempDir::new().unwrap();
    let (mut hub, supervisor, mut monitor, other) = enrolled(&dir);
    let hub_key = hub.hub_key().unwrap();
    let hub_public = hub_key.public().signing;
    let mut expected = vec![supervisor.id(), other.id()];
    assert_eq!(directory_of(&monitor), sorted(expected.clone()));

    // The hub signs what it sends.
    let mut late = Device::new(&dir, "late", Role::CommunityMonitor, &[C01]);
    late.sync(&mut hub);
    let mut signed = 0;
    sync_rewriting_directories(&mut monitor, &mut hub, &mut |directory| {
        assert!(directory.signature.is_some());
        signed += 1;
    });
    assert_eq!(signed, 1);
    expected.push(late.id());
    assert_eq!(directory_of(&monitor), sorted(expected.clone()));

    // A forgery slipped into a signed directory: the list no longer matches the digest the hub
    // signed, each new certificate is checked, and the forgery is left out.
    let forged = forged_certificate(&hub_public);
    let mut later = Device::new(&dir, "later", Role::CommunityMonitor, &[C02]);
    later.sync(&mut hub);
    sync_rewriting_directories(&mut monitor, &mut hub, &mut |directory| {
        directory.certificates.push(forged.to_bytes());
    });
    expected.push(later.id());
    assert_eq!(directory_of(&monitor), sorted(expected.clone()));

    // The digest worked out again by the forger and signed by another key: the signature does
    // not check, and neither does the forgery.
    let mut third = Device::new(&dir, "third", Role::CommunityMonitor, &[C01]);
    third.sync(&mut hub);
    let mut rewrite = forgery_signed_by(&monitor, &forged, HubKey::generate());
    sync_rewriting_directories(&mut monitor, &mut hub, &mut rewrite);
    expected.push(third.id());
    assert_eq!(directory_of(&monitor), sorted(expected.clone()));

    // Without a signature (a hub of the version before), each certificate is checked.
    let mut fourth = Device::new(&dir, "fourth", Role::CommunityMonitor, &[C02]);
    fourth.sync(&mut hub);
    sync_rewriting_directories(&mut monitor, &mut hub, &mut |directory| {
        directory.signature = None;
        directory.certificates.push(forged.to_bytes());
    });
    expected.push(fourth.id());
    assert_eq!(directory_of(&monitor), sorted(expected.clone()));
    assert!(monitor.store.trust().is_ok());

    // What the hub's own key signs is kept as it is, without a check of each certificate: the
    // directory is only a cache, and whoever relies on a certificate checks it again.
    let mut fifth = Device::new(&dir, "fifth", Role::CommunityMonitor, &[C01]);
    fifth.sync(&mut hub);
    let mut rewrite = forgery_signed_by(&monitor, &forged, hub_key);
    sync_rewriting_directories(&mut monitor, &mut hub, &mut rewrite);
    expected.extend([fifth.id(), forged.device]);
    assert_eq!(directory_of(&monitor), sorted(expected));
    assert!(matches!(
        monitor.store.trust().unwrap().check(&forged.to_bytes()),
        Err(IdentityError::BadSignature { .. })
    ));
}

#[test]
fn the_directory_travels_as_what_changed_since_the_devices_copy() {
    let dir = TempDir::new().unwrap();
    let (mut hub, supervisor, mut monitor, other) = enrolled(&dir);
    // Nothing changed: nothing is sent.
    assert!(sync_seeing_directories(&mut monitor, &mut hub, false).is_empty());

    // A device enrols: the monitor receives its certificate alone.
    let mut late = Device::new(&dir, "late", Role::CommunityMonitor, &[C01]);
    late.sync(&mut hub);
    let seen = sync_seeing_directories(&mut monitor, &mut hub, false);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].certificates.len(), 1, "only the new certificate");
    assert_eq!(
        directory_of(&monitor),
        sorted(vec![supervisor.id(), other.id(), late.id()])
    );
    assert!(sync_seeing_directories(&mut monitor, &mut hub, false).is_empty());

    // One device is revoked and another enrols: the revoked one leaves the monitor's copy,
    // worked out from the revocation list, and the new one's certificate alone travels.
    common::revoke(other.id());
    let mut later = Device::new(&dir, "later", Role::Inspector, &["CI-R1-D1"]);
    later.sync(&mut hub);
    let seen = sync_seeing_directories(&mut monitor, &mut hub, false);
    assert_eq!(seen[0].certificates.len(), 1);
    let expected = sorted(vec![supervisor.id(), late.id(), later.id()]);
    assert_eq!(directory_of(&monitor), expected);
    assert!(
        sync_seeing_directories(&mut monitor, &mut hub, false).is_empty(),
        "the copy worked out matches the hub's digest"
    );

    // A hub of the version before sends the whole directory: it is kept as it is.
    let mut newest = Device::new(&dir, "newest", Role::CommunityMonitor, &[C02]);
    newest.sync(&mut hub);
    let seen = sync_seeing_directories(&mut monitor, &mut hub, true);
    assert_eq!(seen[0].certificates.len(), 4);
    let expected = sorted(vec![supervisor.id(), late.id(), later.id(), newest.id()]);
    assert_eq!(directory_of(&monitor), expected);
    assert!(sync_seeing_directories(&mut monitor, &mut hub, false).is_empty());

    // A copy that does not add up to the hub's digest (here a certificate lost from the
    // device's file) is mended: the next answer brings the whole directory.
    let conn = rusqlite::Connection::open(&monitor.path).unwrap();
    conn.execute(
        "DELETE FROM peer_directory WHERE device = ?1",
        [supervisor.id().as_bytes()],
    )
    .unwrap();
    drop(conn);
    let mut last = Device::new(&dir, "last", Role::CommunityMonitor, &[C01]);
    last.sync(&mut hub);
    let seen = sync_seeing_directories(&mut monitor, &mut hub, false);
    assert_eq!(seen[0].certificates.len(), 1);
    let seen = sync_seeing_directories(&mut monitor, &mut hub, false);
    assert_eq!(seen.len(), 1, "the whole directory, once");
    assert_eq!(seen[0].certificates.len(), 5);
    let mut expected = expected;
    expected.push(last.id());
    assert_eq!(directory_of(&monitor), sorted(expected));
    assert!(sync_seeing_directories(&mut monitor, &mut hub, false).is_empty());
}

/// A community of another district (`CI-R1-D2`).
const D2_C01: &str = "CI-R1-D2-C01";

/// The hub's record of a device's user, as its administrator adds them.
fn hold_user(hub: &mut Store, device: &Device) {
    let areas: Vec<&str> = device.principal.areas.iter().map(|a| a.as_str()).collect();
    let mut user = User::new("Utilisateur", device.principal.role, &areas);
    user.id = device.principal.user;
    hub.create(&user).unwrap();
}

#[test]
fn a_case_goes_only_to_a_user_whose_areas_cover_it_on_the_phone_and_on_the_hub() {
    let dir = TempDir::new().unwrap();
    let mut hub = common::hub_store(&dir.path().join("hub.db"));
    let mut giver = Device::new(&dir, "giver", Role::CommunityMonitor, &[C01]);
    let mut mate = Device::new(&dir, "mate", Role::CommunityMonitor, &[C01]);
    let mut foreign = Device::new(&dir, "foreign", Role::CommunityMonitor, &[D2_C01]);
    for d in [&giver, &mate, &foreign] {
        hold_user(&mut hub, d);
    }
    // A user of the other district whose phone never reached the giver's directory.
    let mut unlisted = Device::new(&dir, "unlisted", Role::CommunityMonitor, &[D2_C01]);
    hold_user(&mut hub, &unlisted);
    for _ in 0..2 {
        for d in [&mut giver, &mut mate, &mut foreign] {
            d.sync(&mut hub);
        }
    }
    let case = giver.create_case(C01, NAME_C01);
    giver.sync(&mut hub);
    unlisted.sync(&mut hub);

    // The giver knows the other district's user from the directory: refused, nothing changed.
    match giver.store.hand_over(&[case], foreign.principal.user) {
        Err(Error::NotAllowed { rule }) => assert!(!rule.contains(NAME_C01), "{rule}"),
        other => panic!("handing over to another district gave {other:?}"),
    }
    let kept: ChildCase = giver.store.get(case).unwrap();
    assert_eq!(kept.identified_by, giver.principal.user);
    // Nor by a plain edit of the assignee: the same rule, and nothing written.
    let mut edited = kept.clone();
    edited.identified_by = foreign.principal.user;
    match giver.store.update(&edited) {
        Err(Error::NotAllowed { rule }) => assert!(!rule.contains(NAME_C01), "{rule}"),
        other => panic!("assigning to another district by an edit gave {other:?}"),
    }
    let kept: ChildCase = giver.store.get(case).unwrap();
    assert_eq!(kept.identified_by, giver.principal.user);
    // An edit of another field keeps the assignee, and is not judged again.
    edited = kept.clone();
    edited.notes = "seen again at the market".into();
    giver.store.update(&edited).unwrap();

    // A receiver the giver's directory does not list (the hub would refuse the change, and the
    // case, with the giver's later edits, would wait for ever): refused, nothing changed.
    match giver.store.hand_over(&[case], unlisted.principal.user) {
        Err(Error::NotAllowed { rule }) => assert!(rule.contains("directory"), "{rule}"),
        other => panic!("handing over to an unlisted user gave {other:?}"),
    }
    let kept: ChildCase = giver.store.get(case).unwrap();
    assert_eq!(kept.identified_by, giver.principal.user);
    // Cases handed by a phone that could not judge (it never received a directory): the
    // receiver's store refuses them whole, writes nothing, and names only the record.
    let handed = HandOver {
        from: giver.principal.user,
        to: unlisted.principal.user,
        cases: vec![HandedCase {
            id: case,
            document: giver.store.export_document(case).unwrap(),
        }],
    };
    let refusal = unlisted.store.receive_hand_over(&handed).unwrap_err();
    assert!(matches!(
        &refusal,
        Error::NotAllowed { rule } if rule.contains(&case.to_string())
    ));
    assert!(!refusal.to_string().contains(NAME_C01));
    assert!(unlisted.store.kind_of(case).is_err(), "nothing written");
    assert_eq!(unlisted.store.hub_outbox_len().unwrap(), 0);

    // Nor by an edit of the assignee: the same refusal.
    let mut edited: ChildCase = giver.store.get(case).unwrap();
    edited.identified_by = unlisted.principal.user;
    match giver.store.update(&edited) {
        Err(Error::NotAllowed { rule }) => assert!(rule.contains("directory"), "{rule}"),
        other => panic!("assigning to an unlisted user gave {other:?}"),
    }
    // The hub refuses such an edit made past the phone's checks (an older app): the case
    // keeps its assignee there.
    let mut document = automerge::Automerge::load(&giver.store.export_document(case).unwrap())
        .unwrap()
        .with_actor(giver.store.actor().clone());
    let author = ChangeAuthor {
        user: giver.principal.user,
        device: giver.id(),
    };
    vigie_core::doc::write_record(&mut document, &edited, &author)
        .unwrap()
        .expect("a change");
    giver.store.merge_document(case, &document.save()).unwrap();
    let summary = giver.sync(&mut hub);
    assert_eq!(
        summary.refused,
        vec![(case, sync::wire::Refusal::StepNotAllowed)],
        "{summary:?}"
    );
    // The refusal names the field and the rule, as a local write's would.
    let detail = sync::wire::RefusalDetail::of(&summary.refusal_details, case).unwrap();
    assert_eq!(detail.field, "identified_by");
    assert!(
        detail.rule.contains("role and areas cover it"),
        "{detail:?}"
    );
    assert_eq!(
        hub.get::<ChildCase>(case).unwrap().identified_by,
        giver.principal.user
    );
    // Nor may a new case be registered for them, nor for a user the phone's directory does
    // not list (the hub would refuse it, and the case would wait on the phone).
    let mut registered = child(C01, NAME_C01, foreign.principal.user);
    registered.case_code = "CASE-2".into();
    match giver.store.create(&registered) {
        Err(Error::NotAllowed { rule }) => assert!(!rule.contains(NAME_C01), "{rule}"),
        other => panic!("registering for another district gave {other:?}"),
    }
    registered.identified_by = Uuid::now_v7();
    match giver.store.create(&registered) {
        Err(Error::NotAllowed { rule }) => assert!(rule.contains("directory"), "{rule}"),
        other => panic!("registering for an unlisted user gave {other:?}"),
    }

    // To a colleague of the same community: handed over, received, and accepted by the hub.
    let mut back: ChildCase = giver.store.get(case).unwrap();
    back.identified_by = giver.principal.user;
    giver.store.update(&back).unwrap();
    let handed = giver.store.hand_over(&[case], mate.principal.user).unwrap();
    assert_eq!(mate.store.receive_hand_over(&handed).unwrap(), vec![case]);
    giver.sync(&mut hub);
    assert_eq!(
        hub.get::<ChildCase>(case).unwrap().identified_by,
        mate.principal.user
    );
    let summary = mate.sync(&mut hub);
    assert!(summary.refused.is_empty(), "{summary:?}");
}

/// A colleague's app altered to act as a supervisor (its certificate says monitor) verifies a
/// monitor's case and passes it on: the monitor's phone does not take the step (the hub would
/// refuse it from its author, and the phone's own edits built on it would wait for good), its
/// edit of the case reaches the hub, and the colleague's plain edit of another case, within
/// its role, is taken.
#[test]
fn a_step_a_peer_s_role_may_not_take_is_not_taken() {
    let dir = TempDir::new().unwrap();
    let (mut hub, _supervisor, mut monitor, _other) = enrolled(&dir);
    let mut colleague = Device::new(&dir, "colleague", Role::CommunityMonitor, &[C01]);
    let day = |d| NaiveDate::from_ymd_opt(2026, 4, d).unwrap();
    let id = monitor.create_case(C01, NAME_C01);
    let plain = monitor.create_case(C01, "Awa Koné");
    let referral = Referral::new(ServiceKind::Education, "École", day(2));
    monitor.store.refer_case(id, referral).unwrap();
    monitor
        .store
        .transition_case(id, CaseStatus::ReceivingServices)
        .unwrap();
    for _ in 0..2 {
        monitor.sync(&mut hub);
        colleague.sync(&mut hub);
    }
    colleague
        .store
        .debug_assume_profile(&UserProfile {
            role: Role::Supervisor,
            areas: vec!["CI-R1".into()],
        })
        .unwrap();
    colleague
        .store
        .transition_case_on(id, CaseStatus::Withdrawn, day(10))
        .unwrap();
    let mut edited: ChildCase = colleague.store.get(plain).unwrap();
    edited.hours_per_week = 30;
    colleague.store.update(&edited).unwrap();

    peer(&mut colleague, &mut monitor).unwrap();
    let case: ChildCase = monitor.store.get(id).unwrap();
    assert_eq!(
        (case.status, case.remediated_on),
        (CaseStatus::ReceivingServices, None)
    );
    let taken: ChildCase = monitor.store.get(plain).unwrap();
    assert_eq!(taken.hours_per_week, 30);

    let mut own = case.clone();
    own.hours_per_week = 25;
    monitor.store.update(&own).unwrap();
    // (The colleague's edit of the other case waits for the colleague's own sync, as relays do.)
    let told = monitor.sync(&mut hub);
    assert!(
        told.refused.is_empty() && told.awaiting_author == vec![plain],
        "{told:?}"
    );
    let held: ChildCase = hub.get(id).unwrap();
    assert_eq!(
        (held.status, held.hours_per_week),
        (CaseStatus::ReceivingServices, 25)
    );
}

#[test]
fn a_record_the_hub_refused_is_offered_to_no_peer_until_the_hub_takes_it() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, _) = enrolled(&dir);
    // A case filed where its monitor does not work (scope is the hub's to judge): refused.
    let mut case = child(C02, NAME_C02, monitor.principal.user);
    case.case_code = "CASE-9".into();
    let case = common::create_outside_scope(&mut monitor.store, &case);
    let summary = monitor.sync(&mut hub);
    assert_eq!(
        summary.refused,
        vec![(case.id, sync::wire::Refusal::OutOfScope)],
        "{summary:?}"
    );
    // A colleague's phone would hold it pending for good (not its user's changes): not offered.
    peer(&mut monitor, &mut supervisor).unwrap();
    assert!(supervisor.store.kind_of(case.id).is_err(), "a peer got it");
    // Corrected and taken by the hub, it travels to peers again.
    let mut fixed: ChildCase = monitor.store.get(case.id).unwrap();
    fixed.area = area(C01);
    monitor.store.update(&fixed).unwrap();
    let summary = monitor.sync(&mut hub);
    assert!(summary.refused.is_empty(), "{summary:?}");
    peer(&mut monitor, &mut supervisor).unwrap();
    assert!(
        supervisor.store.kind_of(case.id).is_ok(),
        "the peer lacks it"
    );
}

/// `enrolled`, with a second monitor of C01 that every device's directory knows.
fn enrolled_with_colleague(dir: &TempDir) -> (Store, Device, Device, Device) {
    let (mut hub, mut supervisor, monitor, _) = enrolled(dir);
    let mut colleague = Device::new(dir, "colleague", Role::CommunityMonitor, &[C01]);
    for _ in 0..2 {
        colleague.sync(&mut hub);
        supervisor.sync(&mut hub);
    }
    (hub, supervisor, monitor, colleague)
}

/// Two monitors register one child offline; a supervisor meets both and merges one
/// registration into the other before the kept one reached the hub. The merge waits for it,
/// as an edit built on a colleague's work does: refused, with the advice to give it up, it
/// was lost, and the phones that got it by peer undid it meanwhile.
#[test]
fn a_merge_into_a_colleagues_case_the_hub_has_not_received_waits_for_it() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut colleague) = enrolled_with_colleague(&dir);
    let kept = monitor.create_case(C01, NAME_C01);
    let duplicate = colleague.create_case(C01, NAME_C01);
    peer(&mut monitor, &mut supervisor).unwrap();
    peer(&mut colleague, &mut supervisor).unwrap();
    supervisor.store.merge_cases(kept, duplicate).unwrap();
    peer(&mut colleague, &mut supervisor).unwrap();
    colleague.sync(&mut hub);
    let told = supervisor.sync(&mut hub);
    assert!(told.refused.is_empty(), "{told:?}");
    assert!(told.pending >= 2, "{told:?}");
    assert!(colleague.sync(&mut hub).refused.is_empty());
    assert_eq!(
        colleague
            .store
            .get::<ChildCase>(duplicate)
            .unwrap()
            .merged_into,
        Some(kept),
        "not undone on the colleague's phone"
    );

    monitor.sync(&mut hub);
    let told = supervisor.sync(&mut hub);
    assert!(told.refused.is_empty() && told.pending == 0, "{told:?}");
    assert_eq!(
        hub.get::<ChildCase>(duplicate).unwrap().merged_into,
        Some(kept)
    );
    let told = colleague.sync(&mut hub);
    assert!(told.refused.is_empty() && told.pending == 0, "{told:?}");
}

/// A record a peer brought, which the hub has not yet received from the device that made it,
/// waits for that device: nothing to correct, told apart from a refusal, and still relayed.
#[test]
fn a_relayed_record_waits_for_its_authors_device_and_is_relayed_further() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut colleague) = enrolled_with_colleague(&dir);
    let case = monitor
        .store
        .create(&child(C01, NAME_C01, monitor.principal.user))
        .unwrap();
    peer(&mut monitor, &mut supervisor).unwrap();
    let summary = supervisor.sync(&mut hub);
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.awaiting_author, vec![case.id]);
    assert_eq!(summary.pending, 1);
    // The supervisor's phone passes it on to a colleague who meets the monitor later.
    peer(&mut supervisor, &mut colleague).unwrap();
    assert!(colleague.store.kind_of(case.id).is_ok(), "not relayed");
    // Once the monitor's phone synced, the others settle.
    monitor.sync(&mut hub);
    for d in [&mut supervisor, &mut colleague] {
        let summary = d.sync(&mut hub);
        assert!(summary.awaiting_author.is_empty(), "{summary:?}");
        assert_eq!(summary.pending, 0, "{summary:?}");
    }
}

/// Changes a relay holds under an actor of a device other than the store that device syncs
/// from (a phone reset before it synced, its token reissued; an actor forged in its name) will
/// never reach the hub: the relay is told so (`AuthorRevoked`) and rebuilds the record without
/// them, rather than waiting for them and relaying them for ever.
#[test]
fn changes_of_another_store_of_a_device_are_not_waited_for() {
    let dir = TempDir::new().unwrap();
    let (mut hub, _supervisor, mut monitor, mut colleague) = enrolled_with_colleague(&dir);
    monitor.sync(&mut hub);
    let case = colleague.create_case(C01, NAME_C01);
    colleague.sync(&mut hub);
    let bytes = colleague.store.export_document(case).unwrap();
    let mut other_store = monitor.id().as_bytes().to_vec();
    other_store.extend([9u8; 8]);
    let mut document = automerge::Automerge::load(&bytes)
        .unwrap()
        .with_actor(automerge::ActorId::from(other_store));
    let mut edited: ChildCase = colleague.store.get(case).unwrap();
    edited.hours_per_week = 44;
    let author = ChangeAuthor {
        user: monitor.principal.user,
        device: monitor.id(),
    };
    vigie_core::doc::write_record(&mut document, &edited, &author)
        .unwrap()
        .expect("a change");
    colleague
        .store
        .merge_document(case, &document.save())
        .unwrap();

    let summary = colleague.sync(&mut hub);
    assert_eq!(summary.rebuilt, vec![case], "{summary:?}");
    assert!(summary.awaiting_author.is_empty(), "{summary:?}");
    let summary = colleague.sync(&mut hub);
    assert!(
        summary.refused.is_empty() && summary.awaiting_author.is_empty(),
        "{summary:?}"
    );
    assert_eq!(summary.pending, 0, "{summary:?}");
    assert_ne!(
        colleague
            .store
            .get::<ChildCase>(case)
            .unwrap()
            .hours_per_week,
        44
    );
}

/// A change forged under a device's own actor and its next sequence number, passed on by a
/// peer, waits for its author like any relayed change; once that device's real change of that
/// number reaches the hub, the relay is told it will never be taken (`AuthorRevoked`) and
/// rebuilds the record on the hub's version, its own edit kept, rather than being refused as
/// damaged at every sync.
#[test]
fn a_change_forged_under_a_devices_next_number_is_dropped_once_the_device_sends_its_own() {
    let dir = TempDir::new().unwrap();
    let (mut hub, _supervisor, mut monitor, mut colleague) = enrolled_with_colleague(&dir);
    let case = monitor.create_case(C01, NAME_C01);
    monitor.sync(&mut hub);
    colleague.sync(&mut hub);
    // The forger writes in the monitor's name, under the monitor's actor.
    let bytes = colleague.store.export_document(case).unwrap();
    let mut document = automerge::Automerge::load(&bytes)
        .unwrap()
        .with_actor(monitor.store.actor().clone());
    let mut forged: ChildCase = colleague.store.get(case).unwrap();
    forged.hours_per_week = 44;
    let author = ChangeAuthor {
        user: monitor.principal.user,
        device: monitor.id(),
    };
    vigie_core::doc::write_record(&mut document, &forged, &author)
        .unwrap()
        .expect("a change");
    colleague
        .store
        .merge_document(case, &document.save())
        .unwrap();
    let mut edited: ChildCase = colleague.store.get(case).unwrap();
    edited.notes = "Vu au marché.".into();
    colleague.store.update(&edited).unwrap();
    let summary = colleague.sync(&mut hub);
    assert_eq!(summary.awaiting_author, vec![case], "{summary:?}");

    // The monitor's own edit, under the same number.
    let mut real: ChildCase = monitor.store.get(case).unwrap();
    real.hours_per_week = 30;
    monitor.store.update(&real).unwrap();
    let summary = monitor.sync(&mut hub);
    assert_eq!(summary.accepted, 1, "{summary:?}");

    let summary = colleague.sync(&mut hub);
    assert_eq!(summary.rebuilt, vec![case], "{summary:?}");
    assert!(
        summary.failed.is_empty() && summary.refused.is_empty(),
        "{summary:?}"
    );
    let summary = colleague.sync(&mut hub);
    assert!(
        summary.failed.is_empty() && summary.refused.is_empty() && summary.pending == 0,
        "{summary:?}"
    );
    for held in [
        colleague.store.get::<ChildCase>(case).unwrap(),
        hub.get::<ChildCase>(case).unwrap(),
    ] {
        assert_eq!(held.hours_per_week, 30);
        assert_eq!(held.notes, "Vu au marché.");
    }
}

/// A record a revoked (lost) phone made and passed to a colleague before the revocation: the
/// hub tells the colleague it will never take it, the colleague relays it no further, and a
/// device that knows of the revocation takes it from no peer or bundle.
#[test]
fn a_revoked_phones_relayed_record_is_told_apart_and_spreads_no_further() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut colleague) = enrolled_with_colleague(&dir);
    let case = monitor
        .store
        .create(&child(C01, NAME_C01, monitor.principal.user))
        .unwrap();
    // Passed to the colleague, then the monitor's phone is lost and revoked.
    peer(&mut monitor, &mut colleague).unwrap();
    common::revoke(monitor.id());
    // A supervisor who heard of the revocation takes it from no peer that has not.
    supervisor.sync(&mut hub);
    peer(&mut colleague, &mut supervisor).unwrap();
    assert!(supervisor.store.kind_of(case.id).is_err(), "relayed");
    let (bundle, _) = colleague
        .store
        .export_bundle(0, &[], &[sync::Recipient::Device(supervisor.id())])
        .unwrap();
    let report = supervisor.store.import_bundle(&bundle).unwrap();
    assert_eq!(report.refused, 1, "{report:?}");
    assert!(supervisor.store.kind_of(case.id).is_err(), "imported");
    // The hub tells the colleague it will never take it; the colleague offers it no more.
    let summary = colleague.sync(&mut hub);
    assert_eq!(
        summary.refused,
        vec![(case.id, sync::wire::Refusal::AuthorRevoked)],
        "{summary:?}"
    );
    assert!(summary.awaiting_author.is_empty(), "{summary:?}");
    assert!(hub.kind_of(case.id).is_err());
    peer(&mut colleague, &mut supervisor).unwrap();
    assert!(supervisor.store.kind_of(case.id).is_err(), "relayed");
    // Nor in a bundle: the colleague's own records go, that one stays.
    let own = colleague
        .store
        .create(&child(C01, "Koffi Yao", colleague.principal.user))
        .unwrap();
    let (bundle, _) = colleague
        .store
        .export_bundle(0, &[], &[sync::Recipient::Device(supervisor.id())])
        .unwrap();
    supervisor.store.import_bundle(&bundle).unwrap();
    assert!(
        supervisor.store.kind_of(own.id).is_ok(),
        "the honest record"
    );
    assert!(supervisor.store.kind_of(case.id).is_err(), "imported");
}

/// A case the hub holds, which a phone lost later edited and passed to a colleague before it
/// was revoked: the colleague's own edits made since are not held back for ever. Told that the
/// case carries a revoked device's changes, the colleague's phone rebuilds it on the hub's
/// version with its own edits (a field, a follow-up) and drops the lost phone's.
#[test]
fn a_colleagues_own_edits_reach_the_hub_past_a_revoked_phones_relayed_edit() {
    let dir = TempDir::new().unwrap();
    let (mut hub, _, mut monitor, mut colleague) = enrolled_with_colleague(&dir);
    let case = monitor
        .store
        .create(&child(C01, NAME_C01, monitor.principal.user))
        .unwrap();
    monitor.sync(&mut hub);
    colleague.sync(&mut hub);
    assert!(colleague.store.kind_of(case.id).is_ok());
    // The monitor's phone, offline, edits the case and passes it on; then it is lost.
    let mut theirs: ChildCase = monitor.store.get(case.id).unwrap();
    theirs.hours_per_week = 60;
    theirs.notes = "Écrit par le voleur.".into();
    let stolen_key = Uuid::now_v7();
    theirs.followups.insert(
        stolen_key,
        FollowUp {
            date: NaiveDate::from_ymd_opt(2026, 4, 3).unwrap(),
            situation: FollowUpSituation::InSchool,
            notes: String::new(),
            next_due: None,
        },
    );
    monitor.store.update(&theirs).unwrap();
    peer(&mut monitor, &mut colleague).unwrap();
    common::revoke(monitor.id());
    // The colleague edits it on top.
    let mut mine: ChildCase = colleague.store.get(case.id).unwrap();
    mine.guardian = "Mère: Adjoua".into();
    let my_key = Uuid::now_v7();
    mine.followups.insert(
        my_key,
        FollowUp {
            date: NaiveDate::from_ymd_opt(2026, 4, 5).unwrap(),
            situation: FollowUpSituation::StillWorking,
            notes: "Vu au champ.".into(),
            next_due: None,
        },
    );
    colleague.store.update(&mine).unwrap();

    let summary = colleague.sync(&mut hub);
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.pending, 0, "{summary:?}");
    // The user is told which record lost the revoked phone's changes.
    assert_eq!(summary.rebuilt, vec![case.id], "{summary:?}");
    let on_hub: ChildCase = hub.get(case.id).unwrap();
    assert_eq!(on_hub.guardian, "Mère: Adjoua");
    assert!(on_hub.followups.contains_key(&my_key));
    assert!(!on_hub.followups.contains_key(&stolen_key));
    assert_eq!(on_hub.hours_per_week, 12);
    assert!(!on_hub.notes.contains("voleur"));
    assert_eq!(colleague.store.get::<ChildCase>(case.id).unwrap(), on_hub);
    // And it stays settled.
    let again = colleague.sync(&mut hub);
    assert_eq!(again.pending, 0, "{again:?}");
    assert!(again.rebuilt.is_empty(), "{again:?}");
}

/// A phone whose user lost an area, still holding a record of it that waits for the hub, offers
/// it to no peer: the peer would refuse it as outside the sender's scope and end the session,
/// and nothing else would pass between them.
#[test]
fn a_record_outside_the_senders_scope_now_is_not_offered_and_the_session_goes_on() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut colleague) = enrolled_with_colleague(&dir);
    let relayed = colleague
        .store
        .create(&child(C01, NAME_C01, colleague.principal.user))
        .unwrap();
    peer(&mut colleague, &mut monitor).unwrap();
    // The monitor edits it on top (its own change waits for the colleague's), then moves.
    let mut edited: ChildCase = monitor.store.get(relayed.id).unwrap();
    edited.notes = "Revu.".into();
    monitor.store.update(&edited).unwrap();
    monitor.principal.areas = [C02.to_string()].into();
    for _ in 0..2 {
        monitor.sync(&mut hub);
    }
    supervisor.sync(&mut hub);
    assert!(monitor.store.kind_of(relayed.id).is_ok(), "still waiting");
    let own = monitor
        .store
        .create(&child(C02, "Aya Koné", monitor.principal.user))
        .unwrap();
    peer(&mut monitor, &mut supervisor).unwrap();
    peer(&mut supervisor, &mut monitor).unwrap();
    assert!(
        supervisor.store.kind_of(own.id).is_ok(),
        "the session went on"
    );
    assert!(supervisor.store.kind_of(relayed.id).is_err(), "offered");
}

#[test]
fn a_bundle_holds_only_records_every_recipient_may_read() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut other) = enrolled(&dir);
    let mut foreign = Device::new(&dir, "foreign", Role::CommunityMonitor, &[D2_C01]);
    foreign.sync(&mut hub);
    let of_monitor = monitor.create_case(C01, NAME_C01);
    let in_c01 = supervisor.create_case(C01, "Awa Coulibaly-Doumbia");
    let in_c02 = supervisor.create_case(C02, NAME_C02);
    for _ in 0..2 {
        for d in [&mut supervisor, &mut monitor, &mut other, &mut foreign] {
            d.sync(&mut hub);
        }
    }
    let nothing_for = |result: Result<(Vec<u8>, i64)>| match result {
        Err(Error::Identity(IdentityError::NothingForRecipient { recipient, .. })) => recipient,
        other => panic!("expected nothing to seal, got {:?}", other.map(|b| b.1)),
    };

    // A monitor of one district seals nothing to a device, or an area, of another.
    let recipient = nothing_for(monitor.store.export_bundle(
        0,
        &[],
        &[Recipient::Device(foreign.id())],
    ));
    assert!(recipient.contains(&foreign.id().to_string()), "{recipient}");
    let recipient = nothing_for(monitor.store.export_bundle(
        0,
        &[],
        &[Recipient::Hub, Recipient::Area("CI-R1-D2".into())],
    ));
    assert!(recipient.contains("CI-R1-D2"), "{recipient}");

    // The district's supervisor sealing for community C02: only the C02 records go, and its
    // monitor imports them all; the C01 monitor is no recipient.
    let (for_c02, _) = supervisor
        .store
        .export_bundle(0, &[], &[Recipient::Area(C02.into())])
        .unwrap();
    assert_eq!(other.store.import_bundle(&for_c02).unwrap().records, 1);
    assert_eq!(other.store.get::<ChildCase>(in_c02).unwrap().name, NAME_C02);
    for outside in [of_monitor, in_c01] {
        assert!(other.store.kind_of(outside).is_err());
    }
    assert_eq!(
        refused_with(monitor.store.import_bundle(&for_c02)),
        IdentityError::NotARecipient
    );

    // Sealed to the C02 monitor's device: the supervisor's C01 records are left out.
    let (to_other, _) = supervisor
        .store
        .export_bundle(0, &[], &[Recipient::Device(other.id())])
        .unwrap();
    // (A C01 record in it would have the whole bundle refused.)
    assert_eq!(other.store.import_bundle(&to_other).unwrap().records, 1);
    // Two devices that share no area: no record for both, and nothing is sealed.
    let recipient = nothing_for(supervisor.store.export_bundle(
        0,
        &[],
        &[
            Recipient::Device(other.id()),
            Recipient::Device(monitor.id()),
        ],
    ));
    assert_eq!(recipient, "the recipients together");
    // Two communities at once: no monitor of either may read the other's records, so the
    // bundle would reach supervisors only; it is refused, naming the first area.
    let recipient = nothing_for(supervisor.store.export_bundle(
        0,
        &[],
        &[Recipient::Area(C01.into()), Recipient::Area(C02.into())],
    ));
    assert_eq!(recipient, format!("area {C01}"));
    // Nothing changed since the mark: an empty bundle, as before.
    let mark = supervisor.store.last_change().unwrap();
    let (empty, _) = supervisor
        .store
        .export_bundle(mark, &[], &[Recipient::Device(foreign.id())])
        .unwrap();
    assert_eq!(foreign.store.import_bundle(&empty).unwrap().records, 0);
}

/// A bundle addressed to an area reaches its people: the monitors of the communities within a
/// district are its recipients, and a bundle none of the area's people could open (records of
/// two communities, to each community's monitor) is refused, whoever else could open it — a
/// district's supervisors, or the exporter's own second phone. Both went out sealed to others
/// only, and the colleague the bundle was carried to could not open it.
#[test]
fn a_bundle_to_an_area_reaches_its_people_or_is_refused() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut other) = enrolled(&dir);
    let mut foreign = Device::new(&dir, "foreign", Role::CommunityMonitor, &[D2_C01]);
    // A monitor of both communities, with a tablet beside her phone.
    let mut both = Device::new(&dir, "both", Role::CommunityMonitor, &[C01, C02]);
    let tablet_store = Store::open(StoreConfig::new(
        dir.path().join("tablet.db"),
        Encryption::Unencrypted,
        both.principal.user,
    ))
    .unwrap();
    let mut tablet = Device {
        principal: common::principal_of(&tablet_store, Role::CommunityMonitor, &[C01, C02]),
        store: tablet_store,
        path: dir.path().join("tablet.db"),
    };
    let in_d2 = supervisor.create_case(D2_C01, "Fatou Bamba");
    both.create_case(C01, NAME_C01);
    both.create_case(C02, NAME_C02);
    supervisor.create_case(C01, "Awa Coulibaly-Doumbia");
    supervisor.create_case(C02, "Aya Koné");
    for _ in 0..2 {
        for d in [
            &mut supervisor,
            &mut monitor,
            &mut other,
            &mut foreign,
            &mut both,
            &mut tablet,
        ] {
            d.sync(&mut hub);
        }
    }
    let nothing_for = |result: Result<(Vec<u8>, i64)>| match result {
        Err(Error::Identity(IdentityError::NothingForRecipient { recipient, .. })) => recipient,
        other => panic!("expected nothing to seal, got {:?}", other.map(|b| b.1)),
    };
    // An area where no one else works, from a supervisor with a second device: sealed to her
    // own tablet alone, it would reach no one, and is refused as for a user with one device.
    let sup_tablet_store = Store::open(StoreConfig::new(
        dir.path().join("sup-tablet.db"),
        Encryption::Unencrypted,
        supervisor.principal.user,
    ))
    .unwrap();
    let mut sup_tablet = Device {
        principal: common::principal_of(&sup_tablet_store, Role::Supervisor, &["CI-R1"]),
        store: sup_tablet_store,
        path: dir.path().join("sup-tablet.db"),
    };
    for _ in 0..2 {
        sup_tablet.sync(&mut hub);
        supervisor.sync(&mut hub);
    }
    supervisor.create_case("CI-R1-D3-C01", "Awa Koné");
    assert!(matches!(
        refused_with(
            supervisor
                .store
                .export_bundle(0, &[], &[Recipient::Area("CI-R1-D3".into())])
        ),
        IdentityError::NoRecipient { .. }
    ));
    // The region's supervisor to district D2: its community's monitor opens it.
    let (to_d2, _) = supervisor
        .store
        .export_bundle(0, &[], &[Recipient::Area("CI-R1-D2".into())])
        .unwrap();
    assert_eq!(foreign.store.import_bundle(&to_d2).unwrap().records, 1);
    assert!(foreign.store.kind_of(in_d2).is_ok());
    // District D2's only inspector, to the hub and her district (the app's default): no
    // monitor of D2 reads the whole district, and the bundle goes to the hub and the region's
    // supervisor. To her district alone, it would reach none of its people.
    let mut inspector = Device::new(&dir, "inspector", Role::Inspector, &["CI-R1-D2"]);
    for _ in 0..2 {
        inspector.sync(&mut hub);
    }
    let in_d2_c02 = inspector.create_case("CI-R1-D2-C02", "Koffi Yao");
    let in_d2_c01 = inspector.create_case(D2_C01, "Aya Yao");
    let (default, _) = inspector
        .store
        .export_bundle(
            0,
            &[],
            &[Recipient::Hub, Recipient::Area("CI-R1-D2".into())],
        )
        .unwrap();
    supervisor.store.import_bundle(&default).unwrap();
    assert_eq!(
        nothing_for(
            inspector
                .store
                .export_bundle(0, &[], &[Recipient::Area("CI-R1-D2".into())])
        ),
        "area CI-R1-D2"
    );
    for id in [in_d2_c01, in_d2_c02] {
        assert!(
            supervisor.store.kind_of(id).is_ok(),
            "the default bundle reached her"
        );
    }
    // The monitor of both communities to each of them (the app's default): her tablet could
    // open it, her colleagues of C01 and C02 not.
    assert_eq!(
        nothing_for(both.store.export_bundle(
            0,
            &[],
            &[Recipient::Area(C01.into()), Recipient::Area(C02.into())]
        )),
        format!("area {C01}")
    );
    // One community's records to that community: its monitor opens them.
    let (to_c01, _) = both
        .store
        .export_bundle(0, &[], &[Recipient::Area(C01.into())])
        .unwrap();
    assert!(monitor.store.import_bundle(&to_c01).unwrap().records >= 1);
}

/// A store opened for another user than the token's: the hub certifies nothing at its first
/// sync, and says why; opened for the right user, it syncs.
#[test]
fn a_store_opened_for_another_user_than_its_device_is_refused_before_anything_is_bound() {
    let dir = TempDir::new().unwrap();
    let mut hub = common::hub_store(&dir.path().join("hub.db"));
    let mut monitor = Device::new(&dir, "monitor", Role::CommunityMonitor, &[C01]);
    // The device's token names another user than the one the store was opened for.
    let mut enrolled_as = monitor.principal.clone();
    enrolled_as.user = Uuid::now_v7();
    let refused = sync::sync_with_hub(
        &mut monitor.store,
        &sync::SyncOptions::default(),
        |request| {
            common::handle(&mut hub, &enrolled_as, request, &HubLimits::default())
                .map_err(|e| e.to_string())
        },
        |_| {},
    );
    assert!(
        matches!(refused, Err(ref e) if e.to_string().contains("another user")),
        "{refused:?}"
    );
    assert!(monitor.store.certificate().unwrap().is_none());
    monitor.sync(&mut hub);
    assert!(monitor.store.certificate().unwrap().is_some());
}

/// The first phone of a hub receives an empty directory: it judges all the same (before, an
/// empty directory was taken for a store that never synced, and a case assigned to anyone
/// was taken, then refused by the hub, and waited on the phone).
#[test]
fn the_first_phone_of_a_hub_refuses_a_case_for_a_user_it_cannot_know() {
    let dir = TempDir::new().unwrap();
    let mut hub = common::hub_store(&dir.path().join("hub.db"));
    let mut first = Device::new(&dir, "first", Role::CommunityMonitor, &[C01]);
    hold_user(&mut hub, &first);
    first.sync(&mut hub);
    assert!(first.store.certificate().unwrap().is_some());
    let mut case = child(C01, NAME_C01, Uuid::now_v7());
    case.case_code = "CASE-FIRST".into();
    match first.store.create(&case) {
        Err(Error::NotAllowed { rule }) => assert!(rule.contains("directory"), "{rule}"),
        other => panic!("a case for a user no phone knows gave {other:?}"),
    }
    case.identified_by = first.principal.user;
    first.store.create(&case).unwrap();
}

/// The store is free between a session's steps: a case written again while its push is on the
/// link, a push the hub keeps for review (the case was filed elsewhere meanwhile), stays on the
/// phone until what was written after the push is delivered too; nothing is lost.
#[test]
fn a_write_made_while_a_push_kept_for_review_is_on_the_link_is_delivered_too() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, _) = enrolled(&dir);
    let case = monitor.create_case(C01, NAME_C01);
    monitor.sync(&mut hub);
    supervisor.sync(&mut hub);
    let mut moved: ChildCase = supervisor.store.get(case).unwrap();
    moved.area = area(C02);
    supervisor.store.update(&moved).unwrap();
    supervisor.sync(&mut hub);

    let mut edited: ChildCase = monitor.store.get(case).unwrap();
    edited.notes = "Vue au marché.".into();
    monitor.store.update(&edited).unwrap();
    let options = sync::SyncOptions::default();
    let request = monitor.store.hub_sync_request(&options).unwrap();
    // Saved while the request is on the link.
    let mut again: ChildCase = monitor.store.get(case).unwrap();
    again.guardian = "Kouassi Jean".into();
    monitor.store.update(&again).unwrap();
    let response = common::handle(
        &mut hub,
        &monitor.principal,
        &request,
        &HubLimits::default(),
    )
    .unwrap();
    let report = monitor.store.hub_sync_apply(&response, &options).unwrap();
    assert_eq!(report.quarantined, vec![case]);
    assert!(monitor.store.kind_of(case).is_ok(), "the later write stays");

    monitor.sync(&mut hub);
    assert!(monitor.store.kind_of(case).is_err(), "delivered, it goes");
    let fields: Vec<String> = hub
        .in_transaction(&mut |tx| {
            tx.quarantined()?
                .iter()
                .map(|q| sync::describe_quarantined(tx, q))
                .collect::<Result<Vec<_>>>()
        })
        .unwrap()
        .into_iter()
        .flat_map(|view| view.fields)
        .collect();
    assert!(fields.iter().any(|f| f == "guardian"), "{fields:?}");
}

/// The hub's registry as a request read it before another request bound the device (two stores
/// presenting one token at the same time, through two workers or two hub processes).
struct ReadBefore<'a> {
    registry: &'a common::TestRegistry,
    listed: std::cell::Cell<Option<Vec<sync::RegisteredDevice>>>,
}

impl sync::DeviceRegistry for ReadBefore<'_> {
    fn devices(&self) -> Result<Vec<sync::RegisteredDevice>> {
        match self.listed.take() {
            Some(listed) => Ok(listed),
            None => self.registry.devices(),
        }
    }

    fn keep_certificate(
        &self,
        device: Uuid,
        certificate: &[u8],
        replacing: Option<&[u8]>,
    ) -> Result<bool> {
        self.registry
            .keep_certificate(device, certificate, replacing)
    }
}

#[test]
fn a_token_presented_by_two_stores_at_once_certifies_one() {
    let dir = TempDir::new().unwrap();
    let key = HubKey::generate();
    let registry = common::TestRegistry::default();
    let (first, second) = (
        Device::new(&dir, "first", Role::CommunityMonitor, &[C01]),
        Device::new(&dir, "second", Role::CommunityMonitor, &[C01]),
    );
    // One token: both stores sync as the same enrolled device.
    let who = first.principal.clone();
    let presenting = |device: &Device| RequestIdentity {
        keys: device.store.device_public_keys().unwrap().unwrap(),
        directory: None,
        held: None,
        directory_issued_through: None,
        user: None,
    };
    let now = chrono::Utc::now().timestamp_millis();
    let certifier = |registry| sync::Certifier {
        key: &key,
        registry,
    };
    let before = || ReadBefore {
        registry: &registry,
        listed: std::cell::Cell::new(Some(Vec::new())),
    };
    let bound = sync::hub_identity(&certifier(&registry), &who, &presenting(&first), now)
        .unwrap()
        .unwrap();
    // The other store had read the registry before: not certified.
    let read_before = before();
    assert!(matches!(
        sync::hub_identity(&certifier(&read_before), &who, &presenting(&second), now),
        Err(HubError::KeysNotBound)
    ));
    // The bound store's own second request, read before too, gets the certificate it holds.
    let read_before = before();
    let again = sync::hub_identity(&certifier(&read_before), &who, &presenting(&first), now)
        .unwrap()
        .unwrap();
    assert_eq!(again.certificate, bound.certificate);
}

/// Changes kept for review that their device sends again by an ordinary sync once its user has
/// the area back (it never heard they were kept): the entry says they are in the record
/// already; accepting settles it, and a rejection, which could not undo them, is refused.
#[test]
fn an_entry_whose_changes_came_since_by_an_ordinary_sync_says_so() {
    let dir = TempDir::new().unwrap();
    let (mut hub, _, mut monitor, _) = enrolled(&dir);
    let case = monitor.create_case(C01, NAME_C01);
    monitor.sync(&mut hub);
    let mut edited: ChildCase = monitor.store.get(case).unwrap();
    edited.notes = "Vue au marché.".into();
    monitor.store.update(&edited).unwrap();
    // The user loses C01 while the push is on its way; the answer never reaches the phone.
    let options = sync::SyncOptions::default();
    let request = monitor.store.hub_sync_request(&options).unwrap();
    let mut moved = monitor.principal.clone();
    moved.areas = [C02.to_string()].into();
    common::handle(&mut hub, &moved, &request, &HubLimits::default()).unwrap();
    let entries = |hub: &mut Store| {
        hub.in_transaction(&mut |tx| {
            tx.quarantined()?
                .iter()
                .map(|q| sync::describe_quarantined(tx, q).map(|view| (q.clone(), view)))
                .collect::<Result<Vec<_>>>()
        })
        .unwrap()
    };
    assert_eq!(entries(&mut hub)[0].1.state, sync::ReviewState::Applies);
    // C01 given back: the phone's next sync sends the changes, taken as any.
    assert!(monitor.sync(&mut hub).refused.is_empty());
    assert_eq!(hub.get::<ChildCase>(case).unwrap().notes, "Vue au marché.");
    let (entry, view) = entries(&mut hub).remove(0);
    assert_eq!(view.state, sync::ReviewState::AlreadyIn);
    assert_eq!(view.state.code(), "already_in");
    let rejected = hub.in_transaction(&mut |tx| sync::reject_quarantined(tx, &entry, false));
    assert!(
        matches!(&rejected, Err(Error::NotAllowed { rule }) if rule.contains("cannot undo")),
        "{rejected:?}"
    );
}

/// A colleague's phone with an altered app passing off its own writing as a revoked (lost)
/// phone's work: what it brings to review is bounded (`MAX_CARRIED_PER_CARRIER`); an honest
/// colleague's copy of her real work that finds no room left waits on that colleague's phone,
/// not dropped, and is kept once a review frees room.
#[test]
fn a_lost_phones_work_finding_no_room_for_review_waits_on_its_carrier() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, mut colleague) = enrolled_with_colleague(&dir);
    let held = monitor.create_case(C01, NAME_C01);
    monitor.sync(&mut hub);
    colleague.sync(&mut hub);
    // Her real work, met by the supervisor before the loss.
    let mut c: ChildCase = monitor.store.get(held).unwrap();
    c.notes = "Vue au marché.".into();
    monitor.store.update(&c).unwrap();
    peer(&mut monitor, &mut supervisor).unwrap();
    common::revoke(monitor.id());
    // Forged cases "of hers", written under her device and user, pushed in one sync.
    let limit = sync::MAX_CARRIED_PER_CARRIER as usize;
    let author = monitor.store.author();
    for n in 0..limit + 3 {
        let case = child(C01, &format!("Enfant {n}"), monitor.principal.user);
        let mut document = automerge::Automerge::new().with_actor(vigie_core::doc::actor_for(
            monitor.id(),
            (n as u64).to_le_bytes(),
        ));
        vigie_core::doc::write_record(&mut document, &case, &author).unwrap();
        colleague
            .store
            .merge_document(case.id, &document.save())
            .unwrap();
    }
    for _ in 0..3 {
        colleague.sync(&mut hub);
    }
    let waiting = |hub: &mut Store| hub.in_transaction(&mut |tx| tx.quarantined()).unwrap();
    assert_eq!(waiting(&mut hub).len(), limit);
    // No room left for her device: the honest copy waits on the supervisor's phone.
    let summary = supervisor.sync(&mut hub);
    assert_eq!(summary.awaiting_author, vec![held], "{summary:?}");
    assert!(
        summary.refused.is_empty() && summary.rebuilt.is_empty(),
        "{summary:?}"
    );
    assert_eq!(
        supervisor.store.get::<ChildCase>(held).unwrap().notes,
        "Vue au marché."
    );
    // A forgery rejected: room for hers, kept at the next sync.
    hub.in_transaction(&mut |tx| {
        let forged = tx.quarantined()?.remove(0);
        tx.take_quarantined(forged.entry)?;
        sync::reject_quarantined(tx, &forged, true)
    })
    .unwrap();
    supervisor.sync(&mut hub);
    let kept = waiting(&mut hub);
    assert_eq!(kept.len(), limit);
    assert!(kept.iter().any(|q| q.record == held), "her note");
}

/// One change of an altered app, in `device`'s name and under its actor, made on its copy of
/// `id` by `write`; pushed alone, its acknowledgement.
fn altered_push(
    hub: &mut Store,
    device: &Device,
    id: Uuid,
    write: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
) -> wire::PushOutcome {
    let document = altered(device, id, write);
    common::push_one(
        hub,
        &device.principal,
        &device.store,
        wire::PushEntry {
            id,
            heads: document.get_heads().iter().map(|h| h.0).collect(),
            changes: document.save(),
        },
    )
}

/// `device`'s copy of `id` with one change of an altered app, in its name and under its actor.
fn altered(
    device: &Device,
    id: Uuid,
    write: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
) -> automerge::Automerge {
    use automerge::transaction::CommitOptions;
    let bytes = device.store.export_document(id).unwrap();
    let mut document = automerge::Automerge::load(&bytes)
        .unwrap()
        .with_actor(device.store.actor().clone());
    let mut tx = document.transaction();
    write(&mut tx);
    tx.commit_with(
        CommitOptions::default()
            .with_message(serde_json::to_string(&device.store.author()).unwrap()),
    );
    document
}

/// A supervisor removes a follow-up while the monitor completes it offline: Automerge keeps
/// the removal and drops what was made inside the follow-up, without a word. Whichever comes
/// to the hub second is refused, the entry named, so that the person whose work it is sees
/// it: the monitor's note (she gives it up, then records again what is needed), or the
/// supervisor's removal (she looks again, then removes it knowing the note).
#[test]
fn a_removal_and_an_edit_of_one_entry_at_once_are_not_merged_in_silence() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, _) = enrolled(&dir);
    let id = monitor.create_case(C01, NAME_C01);
    let refused_rule = |summary: &sync::SyncSummary| -> Option<String> {
        summary
            .refusal_details
            .iter()
            .find_map(|(refused, why)| (*refused == id).then(|| format!("{why:?}")))
    };
    for supervisor_first in [true, false] {
        let (_, key) = monitor.store.add_follow_up(id, seen_in_school()).unwrap();
        monitor.sync(&mut hub);
        supervisor.sync(&mut hub);
        // Offline, each on her phone.
        let mut noted: ChildCase = monitor.store.get(id).unwrap();
        let entry = noted.followups.get_mut(&key).unwrap();
        entry.notes.push_str(" Le maître confirme.");
        monitor.store.update(&noted).unwrap();
        let mut removed: ChildCase = supervisor.store.get(id).unwrap();
        removed.followups.remove(&key);
        supervisor.store.update(&removed).unwrap();
        let (first, second) = match supervisor_first {
            true => (&mut supervisor, &mut monitor),
            false => (&mut monitor, &mut supervisor),
        };
        let taken = first.sync(&mut hub);
        assert!(taken.refused.is_empty(), "{taken:?}");
        let told = second.sync(&mut hub);
        let rule = refused_rule(&told).unwrap_or_else(|| panic!("{told:?}"));
        let expected = match supervisor_first {
            true => vigie_core::doc::EDITS_A_REMOVED_ENTRY,
            false => vigie_core::doc::REMOVES_AN_EDITED_ENTRY,
        };
        assert!(rule.contains(expected), "{rule}");
        assert!(rule.contains(&format!("followups.{key}")), "{rule}");
        // What the hub holds is what the first made; the second gives hers up, then sees it.
        let held: ChildCase = hub.get(id).unwrap();
        assert_eq!(held.followups.contains_key(&key), !supervisor_first);
        second.store.discard_refused_changes(id).unwrap();
        let after = second.sync(&mut hub);
        assert!(after.refused.is_empty() && after.pending == 0, "{after:?}");
        let seen: ChildCase = second.store.get(id).unwrap();
        assert_eq!(seen, hub.get::<ChildCase>(id).unwrap());
        if !supervisor_first {
            assert!(seen.followups[&key].notes.ends_with("Le maître confirme."));
            // Removed again, knowing the note: taken.
            let mut removed = seen.clone();
            removed.followups.remove(&key);
            second.store.update(&removed).unwrap();
            let again = second.sync(&mut hub);
            assert!(again.refused.is_empty(), "{again:?}");
        }
        first.sync(&mut hub);
    }
}

/// A follow-up that found the child in school, for the scenes where one is edited and removed.
fn seen_in_school() -> FollowUp {
    FollowUp {
        date: NaiveDate::from_ymd_opt(2026, 4, 6).unwrap(),
        situation: FollowUpSituation::InSchool,
        notes: "Vue à l'école.".into(),
        next_due: None,
    }
}

/// The same removal and edit met through a peer session (whichever phone starts it) or a
/// bundle (either way): each phone refuses the other's change, and keeps its own work in view,
/// until the hub settles it.
#[test]
fn a_phone_refuses_a_peers_removal_of_an_entry_it_edited_and_the_reverse() {
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, _) = enrolled(&dir);
    let id = monitor.create_case(C01, NAME_C01);
    let (_, key) = monitor.store.add_follow_up(id, seen_in_school()).unwrap();
    monitor.sync(&mut hub);
    supervisor.sync(&mut hub);
    let mut noted: ChildCase = monitor.store.get(id).unwrap();
    noted.followups.get_mut(&key).unwrap().notes = "Revue au champ, 4 h par jour.".into();
    monitor.store.update(&noted).unwrap();
    let mut removed: ChildCase = supervisor.store.get(id).unwrap();
    removed.followups.remove(&key);
    supervisor.store.update(&removed).unwrap();
    let unchanged = |monitor: &Device, supervisor: &Device, when: &str| {
        let mine: ChildCase = monitor.store.get(id).unwrap();
        assert_eq!(
            mine.followups.get(&key).map(|f| f.notes.as_str()),
            Some("Revue au champ, 4 h par jour."),
            "the monitor's note, {when}"
        );
        let theirs: ChildCase = supervisor.store.get(id).unwrap();
        assert!(!theirs.followups.contains_key(&key), "removed, {when}");
    };
    let _ = peer(&mut monitor, &mut supervisor);
    unchanged(&monitor, &supervisor, "the monitor starting a peer session");
    let _ = peer(&mut supervisor, &mut monitor);
    unchanged(&monitor, &supervisor, "the supervisor starting one");
    let (to_supervisor, _) = monitor
        .store
        .export_bundle(0, &[], &[Recipient::Device(supervisor.id())])
        .unwrap();
    let report = supervisor.store.import_bundle(&to_supervisor).unwrap();
    assert_eq!(report.refused, 1, "{report:?}");
    let (to_monitor, _) = supervisor
        .store
        .export_bundle(0, &[], &[Recipient::Device(monitor.id())])
        .unwrap();
    let report = monitor.store.import_bundle(&to_monitor).unwrap();
    assert_eq!(report.refused, 1, "{report:?}");
    unchanged(&monitor, &supervisor, "bundles both ways");
    // The hub settles it: the first to sync is taken.
    let taken = supervisor.sync(&mut hub);
    assert!(taken.refused.is_empty(), "{taken:?}");
    let told = monitor.sync(&mut hub);
    assert!(
        told.refused.len() == 1 && told.refused[0].0 == id,
        "{told:?}"
    );
}

/// An altered app puts a case's referrals anew as an empty map, or its notes as a new text
/// or a plain string, where its copy held them: Automerge would take that over a colleague's
/// referral and note made offline inside the old ones, with no conflict shown. The hub
/// refuses it, naming the field, and the colleague's work arrives whole.
#[test]
fn the_hub_refuses_a_list_or_text_put_anew_in_place_of_the_one_held() {
    use automerge::transaction::Transactable as _;
    let dir = TempDir::new().unwrap();
    let (mut hub, mut supervisor, mut monitor, _) = enrolled(&dir);
    let id = monitor.create_case(C01, NAME_C01);
    let mut noted: ChildCase = monitor.store.get(id).unwrap();
    noted.notes = "Vue au champ.".into();
    monitor.store.update(&noted).unwrap();
    monitor.sync(&mut hub);
    supervisor.sync(&mut hub);
    // Offline, the monitor refers the child and adds to the notes.
    monitor
        .store
        .refer_case(
            id,
            Referral {
                service: ServiceKind::Education,
                provider: "École primaire publique".into(),
                date: NaiveDate::from_ymd_opt(2026, 4, 10).unwrap(),
                outcome: String::new(),
            },
        )
        .unwrap();
    let mut noted: ChildCase = monitor.store.get(id).unwrap();
    noted.notes.push_str(" Orientée vers l'école.");
    monitor.store.update(&noted).unwrap();

    let refused = |outcome: wire::PushOutcome| match outcome {
        wire::PushOutcome::Refused {
            detail: Some(detail),
            ..
        } => detail.field,
        other => panic!("{other:?}"),
    };
    let outcome = altered_push(&mut hub, &supervisor, id, |tx| {
        tx.put_object(automerge::ROOT, "referrals", automerge::ObjType::Map)
            .unwrap();
    });
    assert_eq!(refused(outcome), "referrals");
    let outcome = altered_push(&mut hub, &supervisor, id, |tx| {
        tx.put(automerge::ROOT, "notes", "Vue au champ.").unwrap();
    });
    assert_eq!(refused(outcome), "notes");
    let outcome = altered_push(&mut hub, &supervisor, id, |tx| {
        let text = tx
            .put_object(automerge::ROOT, "notes", automerge::ObjType::Text)
            .unwrap();
        tx.splice_text(&text, 0, 0, "Vue au champ.").unwrap();
    });
    assert_eq!(refused(outcome), "notes");
    // Cleared first, then put anew: the same.
    let outcome = altered_push(&mut hub, &supervisor, id, |tx| {
        tx.put(automerge::ROOT, "referrals", automerge::ScalarValue::Null)
            .unwrap();
        tx.put_object(automerge::ROOT, "referrals", automerge::ObjType::Map)
            .unwrap();
    });
    assert_eq!(refused(outcome), "referrals");
    // Put anew naming the one held twice (Automerge reads it as a plain overwrite), or none
    // (beside it: a conflict that hides it), or one of nothing.
    let mut rewritten = |write: &dyn Fn(&mut automerge::transaction::Transaction<'_>),
                         pred: &dyn Fn(&mut Vec<automerge::legacy::OpId>)| {
        let document = altered(&supervisor, id, |tx| write(tx));
        let last = document.get_last_local_change().unwrap();
        let mut change = automerge::ExpandedChange::from(&last);
        for op in &mut change.operations {
            let mut named: Vec<automerge::legacy::OpId> = op.pred.iter().cloned().collect();
            pred(&mut named);
            op.pred = named.into();
        }
        change.hash = None;
        let bytes = supervisor.store.export_document(id).unwrap();
        let mut forged = automerge::Automerge::load(&bytes).unwrap();
        forged
            .apply_changes([automerge::Change::from(change)])
            .unwrap();
        common::push_one(
            &mut hub,
            &supervisor.principal,
            &supervisor.store,
            wire::PushEntry {
                id,
                heads: forged.get_heads().iter().map(|h| h.0).collect(),
                changes: forged.save(),
            },
        )
    };
    let new_referrals = |tx: &mut automerge::transaction::Transaction<'_>| {
        tx.put_object(automerge::ROOT, "referrals", automerge::ObjType::Map)
            .unwrap();
    };
    let new_notes = |tx: &mut automerge::transaction::Transaction<'_>| {
        let text = tx
            .put_object(automerge::ROOT, "notes", automerge::ObjType::Text)
            .unwrap();
        tx.splice_text(&text, 0, 0, "Vue au champ.").unwrap();
    };
    let twice = |pred: &mut Vec<automerge::legacy::OpId>| {
        if let Some(first) = pred.first().cloned() {
            pred.push(first);
        }
    };
    let nothing = |pred: &mut Vec<automerge::legacy::OpId>| pred.clear();
    let unknown = |pred: &mut Vec<automerge::legacy::OpId>| {
        if let Some(first) = pred.first().cloned() {
            pred.push(automerge::legacy::OpId(first.0 + 100_000, first.1));
        }
    };
    for pred in [&twice as &dyn Fn(&mut Vec<_>), &nothing, &unknown] {
        assert_eq!(refused(rewritten(&new_referrals, pred)), "referrals");
        assert_eq!(refused(rewritten(&new_notes, pred)), "notes");
    }
    // Deleted, then made anew in a change of its own; or deleted alone.
    let document = {
        use automerge::transaction::CommitOptions;
        let bytes = supervisor.store.export_document(id).unwrap();
        let mut document = automerge::Automerge::load(&bytes)
            .unwrap()
            .with_actor(supervisor.store.actor().clone());
        let message = serde_json::to_string(&supervisor.store.author()).unwrap();
        let mut tx = document.transaction();
        tx.delete(automerge::ROOT, "hazards").unwrap();
        tx.commit_with(CommitOptions::default().with_message(message.clone()));
        let mut tx = document.transaction();
        tx.put_object(automerge::ROOT, "hazards", automerge::ObjType::Map)
            .unwrap();
        tx.commit_with(CommitOptions::default().with_message(message));
        document
    };
    let outcome = common::push_one(
        &mut hub,
        &supervisor.principal,
        &supervisor.store,
        wire::PushEntry {
            id,
            heads: document.get_heads().iter().map(|h| h.0).collect(),
            changes: document.save(),
        },
    );
    assert_eq!(refused(outcome), "hazards");
    let outcome = altered_push(&mut hub, &supervisor, id, |tx| {
        tx.delete(automerge::ROOT, "referrals").unwrap();
    });
    assert_eq!(refused(outcome), "referrals");
    // An honest edit beside them is taken.
    let outcome = altered_push(&mut hub, &supervisor, id, |tx| {
        tx.put(automerge::ROOT, "hours_per_week", 14_i64).unwrap();
    });
    assert!(
        matches!(outcome, wire::PushOutcome::Accepted { .. }),
        "{outcome:?}"
    );

    // Nor does a phone take it from a peer.
    let document = altered(&supervisor, id, |tx| {
        tx.put_object(automerge::ROOT, "referrals", automerge::ObjType::Map)
            .unwrap();
    });
    let bundle = supervisor
        .store
        .seal_bundle(
            vec![(id, document.save())],
            &[Recipient::Device(monitor.id())],
        )
        .unwrap();
    let report = monitor.store.import_bundle(&bundle).unwrap();
    assert_eq!(report.refused, 1, "{report:?}");

    let told = monitor.sync(&mut hub);
    assert!(told.refused.is_empty() && told.pending == 0, "{told:?}");
    let held: ChildCase = hub.get(id).unwrap();
    assert_eq!(held.referrals.len(), 1);
    assert_eq!(held.notes, "Vue au champ. Orientée vers l'école.");
    assert_eq!(held.hours_per_week, 14);
}

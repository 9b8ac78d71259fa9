//! Device identity through the real hub on 127.0.0.1 (issue 13): a device's first sync gets
//! its certificate and pins the hub's key; revocation reaches the others by sync and from then
//! on the revoked device's peer sessions and bundles are refused; a new area renews the
//! certificate; the hub's key survives a restart (on PostgreSQL it is the database's, shared
//! by every hub process).

use crate::common;

use common::lifecycle::{quarantine_list, set_areas};
use common::*;
use tempfile::TempDir;
use vigie_core::sync::{PeerScope, Recipient};
use vigie_core::*;

const NAME: &str = "Aya Bamba-Koffi";

/// A whole peer session; the first error either side meets.
fn peer(initiator: &mut Device, answerer: &mut Device) -> Result<usize> {
    sync::sync_peers(
        &mut initiator.store,
        &mut answerer.store,
        &PeerScope::default(),
        64 * 1024,
    )
}

/// Two syncs of each device: each holds its certificate and the directory with the others'.
fn certify(hub: &Hub, devices: &mut [&mut Device]) {
    for _ in 0..2 {
        for d in devices.iter_mut() {
            d.sync(&hub.url).unwrap();
        }
    }
}

fn identity_error<T: std::fmt::Debug>(result: Result<T>) -> IdentityError {
    match result {
        Err(Error::Identity(e)) => e,
        other => panic!("expected an identity refusal, got {other:?}"),
    }
}

#[test]
fn certificates_revocation_peers_and_sealed_bundles_through_the_hub() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut supervisor = Device::enrol(dir.path(), &data, "sup", Role::Supervisor, &[REGION], 1);
    let mut monitor = Device::enrol(dir.path(), &data, "mon", Role::CommunityMonitor, &[C01], 2);
    let mut other = Device::enrol(
        dir.path(),
        &data,
        "other",
        Role::CommunityMonitor,
        &[C02],
        3,
    );
    let mut hub = Hub::start(&data);
    assert!(monitor.store.certificate().unwrap().is_none());
    assert!(matches!(
        identity_error(peer(&mut monitor, &mut supervisor)),
        IdentityError::NoCertificate
    ));
    certify(&hub, &mut [&mut supervisor, &mut monitor, &mut other]);

    // Enrolment: the certificate names the device, its user, role and areas, and its keys.
    let certificate = monitor.store.certificate().unwrap().expect("certified");
    assert_eq!(
        (certificate.device, certificate.user, certificate.role),
        (monitor.token.device, monitor.user(), Role::CommunityMonitor)
    );
    assert_eq!(certificate.areas, vec![C01.to_string()]);
    assert_eq!(
        Some(certificate.keys),
        monitor.store.device_public_keys().unwrap()
    );
    let hub_keys = supervisor.store.hub_keys().unwrap().expect("pinned");
    assert_eq!(monitor.store.hub_keys().unwrap(), Some(hub_keys));
    assert_eq!(certificate.hub, hub_keys.signing);
    assert_eq!(supervisor.store.directory().unwrap().len(), 2);

    // Peers: the supervisor receives the monitor's case; the other community's monitor
    // receives nothing of it from the supervisor.
    let case = monitor
        .store
        .create(&child(area(C01), NAME, monitor.user()))
        .unwrap()
        .id;
    peer(&mut monitor, &mut supervisor).unwrap();
    assert!(supervisor.has(case));
    peer(&mut other, &mut supervisor).unwrap();
    assert!(!other.has(case));

    // A sealed bundle: the supervisor opens it, the other monitor cannot, and its bytes hold
    // no name.
    let to_supervisor = [Recipient::Device(supervisor.token.device)];
    let (bundle, _) = monitor.store.export_bundle(0, &[], &to_supervisor).unwrap();
    assert!(!bundle.windows(NAME.len()).any(|w| w == NAME.as_bytes()));
    assert_eq!(
        identity_error(other.store.import_bundle(&bundle)),
        IdentityError::NotARecipient
    );
    assert_eq!(supervisor.store.import_bundle(&bundle).unwrap().records, 1);

    // A new area renews the certificate at the next sync.
    set_areas(&data, other.user(), &[C02, C07]);
    other.sync(&hub.url).unwrap();
    assert_eq!(
        other.store.certificate().unwrap().unwrap().areas,
        vec![C02.to_string(), C07.to_string()]
    );
    // The others' directories hold the renewed certificate, not the one the hub read before.
    supervisor.sync(&hub.url).unwrap();
    let held: Vec<_> = supervisor
        .store
        .directory()
        .unwrap()
        .into_iter()
        .filter(|c| c.device == other.token.device)
        .map(|c| c.areas)
        .collect();
    assert_eq!(held, vec![vec![C02.to_string(), C07.to_string()]]);

    // A wiped profile: the device starts a new store with a reissued token; the keys it
    // presents are certified (before the reissue they are refused: they are not its keys).
    let mut again = Device::open(
        dir.path(),
        "other-again",
        &other.token_text,
        Role::CommunityMonitor,
        &[C02, C07],
        4,
    );
    // Told what it may mean: an app set up again (reissue) or a copied token (revoke).
    let refused = again
        .sync(&hub.url)
        .expect_err("other keys under the same token");
    let said = refused.to_string();
    assert!(
        said.contains("used first by another store") && said.contains("revokes the device"),
        "{said}"
    );
    let token = reissue(&data, other.token.device);
    let mut again = Device::open(
        dir.path(),
        "other-new",
        &token,
        Role::CommunityMonitor,
        &[C02, C07],
        5,
    );
    again.sync(&hub.url).unwrap();
    let renewed = again.store.certificate().unwrap().unwrap();
    assert_eq!(renewed.device, other.token.device);
    assert_eq!(
        Some(renewed.keys),
        again.store.device_public_keys().unwrap()
    );
    let mut other = again;

    // Revocation reaches the supervisor by sync; the revoked device is refused as a peer and
    // as a bundle's author.
    assert!(revoke(&data, monitor.token.device));
    supervisor.sync(&hub.url).unwrap();
    assert!(
        supervisor
            .store
            .trust()
            .unwrap()
            .revoked
            .contains(&monitor.token.device)
    );
    assert_eq!(
        identity_error(peer(&mut monitor, &mut supervisor)),
        IdentityError::Revoked {
            device: monitor.token.device
        }
    );
    assert_eq!(
        identity_error(supervisor.store.import_bundle(&bundle)),
        IdentityError::Revoked {
            device: monitor.token.device
        }
    );
    other.sync(&hub.url).unwrap();
    assert!(
        other
            .store
            .directory()
            .unwrap()
            .iter()
            .all(|c| c.device != monitor.token.device)
    );

    // The hub's key is the same after a restart: devices that pinned it keep syncing.
    hub.stop();
    hub.restart();
    other.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    assert_eq!(other.store.hub_keys().unwrap(), Some(hub_keys));
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A phone kept away from the hub after its user was moved or deactivated: its peers, once
/// they have synced, refuse the certificate it still holds, and share nothing more with it.
/// A device whose token was reissued (seen by someone else, or the phone reset): its old store
/// is refused by the peers that synced since, before the store made with the new token has
/// synced (they took the old one's certificate until it ran out, 60 days); the new store
/// binds its keys and meets them as before.
#[test]
fn a_reissued_devices_old_store_is_refused_by_peers_that_synced_since() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut old = Device::enrol(dir.path(), &data, "old", Role::CommunityMonitor, &[C01], 1);
    let mut mate = Device::enrol(dir.path(), &data, "mate", Role::CommunityMonitor, &[C01], 2);
    let hub = Hub::start(&data);
    certify(&hub, &mut [&mut old, &mut mate]);
    peer(&mut old, &mut mate).unwrap();

    let token = common::reissue(&data, old.token.device);
    mate.sync(&hub.url).unwrap();
    let case = mate
        .store
        .create(&child(area(C01), NAME, mate.user()))
        .unwrap()
        .id;
    let device = old.token.device;
    assert_eq!(
        identity_error(peer(&mut old, &mut mate)),
        IdentityError::Superseded { device }
    );
    assert_eq!(
        identity_error(peer(&mut mate, &mut old)),
        IdentityError::Superseded { device }
    );
    assert!(!old.has(case));

    // The store made with the new token binds its own keys, and its peers take it.
    let mut renewed = Device::open(
        dir.path(),
        "renewed",
        &token,
        Role::CommunityMonitor,
        &[C01],
        3,
    );
    certify(&hub, &mut [&mut renewed, &mut mate]);
    peer(&mut renewed, &mut mate).unwrap();
    assert!(renewed.has(case));
}

#[test]
fn a_moved_or_deactivated_users_phone_is_refused_by_peers_that_synced_since() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut supervisor = Device::enrol(dir.path(), &data, "sup", Role::Supervisor, &[REGION], 1);
    let mut moved = Device::enrol(
        dir.path(),
        &data,
        "moved",
        Role::CommunityMonitor,
        &[C01],
        2,
    );
    let mut gone = Device::enrol(dir.path(), &data, "gone", Role::CommunityMonitor, &[C01], 3);
    let mut mate = Device::enrol(dir.path(), &data, "mate", Role::CommunityMonitor, &[C01], 4);
    let mut hub = Hub::start(&data);
    certify(
        &hub,
        &mut [&mut supervisor, &mut moved, &mut gone, &mut mate],
    );
    peer(&mut moved, &mut mate).unwrap();
    peer(&mut gone, &mut supervisor).unwrap();
    let (old_bundle, _) = moved
        .store
        .export_bundle(0, &[], &[Recipient::Device(mate.token.device)])
        .unwrap();

    // The user of one phone moves to another community, the other's is deactivated; neither
    // phone syncs again. The colleagues do.
    set_areas(&data, moved.user(), &[C02]);
    let out = common::surface::admin(
        &data,
        &["user", "deactivate", "--user", &gone.user().to_string()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    supervisor.sync(&hub.url).unwrap();
    mate.sync(&hub.url).unwrap();
    let case = mate
        .store
        .create(&child(area(C01), NAME, mate.user()))
        .unwrap()
        .id;

    for (stale, colleague) in [(&mut moved, &mut mate), (&mut gone, &mut supervisor)] {
        let device = stale.token.device;
        assert_eq!(
            identity_error(peer(stale, colleague)),
            IdentityError::Superseded { device }
        );
        assert_eq!(
            identity_error(peer(colleague, stale)),
            IdentityError::Superseded { device }
        );
        assert!(!stale.has(case));
    }
    assert_eq!(
        identity_error(mate.store.import_bundle(&old_bundle)),
        IdentityError::Superseded {
            device: moved.token.device
        }
    );
    // The directory the colleagues hold says what the users hold now.
    let areas_of = |d: &Device, device: uuid::Uuid| {
        d.store
            .directory()
            .unwrap()
            .into_iter()
            .find(|c| c.device == device)
            .map(|c| c.areas)
    };
    assert_eq!(
        areas_of(&mate, moved.token.device),
        Some(vec![C02.to_string()])
    );
    assert_eq!(areas_of(&supervisor, gone.token.device), Some(vec![]));
    // A bundle for the community is sealed for the colleague who holds it, not the moved one.
    let (bundle, _) = mate
        .store
        .export_bundle(0, &[], &[Recipient::Area(C01.to_string())])
        .unwrap();
    assert_eq!(
        identity_error(moved.store.import_bundle(&bundle)),
        IdentityError::NotARecipient
    );

    // Once the moved phone syncs, it is a peer again, for its new community.
    moved.sync(&hub.url).unwrap();
    mate.sync(&hub.url).unwrap();
    peer(&mut moved, &mut mate).unwrap();
    assert!(!moved.has(case));
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A phone that cannot reach the hub sends its records in a bundle sealed to the hub; the
/// administrator imports it, and each record is judged as that phone's own push.
#[test]
fn a_bundle_sealed_to_the_hub_is_imported_as_its_devices_push() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut supervisor = Device::enrol(dir.path(), &data, "sup", Role::Supervisor, &[REGION], 1);
    let mut monitor = Device::enrol(dir.path(), &data, "mon", Role::CommunityMonitor, &[C01], 2);
    let mut other = Device::enrol(
        dir.path(),
        &data,
        "other",
        Role::CommunityMonitor,
        &[C02],
        3,
    );
    let mut hub = Hub::start(&data);
    certify(&hub, &mut [&mut supervisor, &mut monitor, &mut other]);
    let held = monitor
        .store
        .create(&child(area(C01), "Koffi Yao", monitor.user()))
        .unwrap()
        .id;
    monitor.sync(&hub.url).unwrap();
    // Offline for good: a new case, and an edit of a case the hub holds.
    let new = monitor
        .store
        .create(&child(area(C01), NAME, monitor.user()))
        .unwrap()
        .id;
    let mut edit = monitor.store.get::<ChildCase>(held).unwrap();
    edit.night_work = true;
    monitor.store.update(&edit).unwrap();
    let (bundle, _) = monitor
        .store
        .export_bundle(0, &[], &[Recipient::Hub])
        .unwrap();
    assert!(!bundle.windows(NAME.len()).any(|w| w == NAME.as_bytes()));
    let file = dir.path().join("from-monitor.vigie");
    std::fs::write(&file, &bundle).unwrap();
    let import = |path: &std::path::Path| {
        common::surface::admin(&data, &["bundle", "import", path.to_str().unwrap()])
    };

    let out = import(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("2 records, 2 taken"), "{said}");
    assert!(!said.contains(NAME), "{said}");
    supervisor.sync(&hub.url).unwrap();
    assert!(supervisor.has(new));
    assert!(supervisor.store.get::<ChildCase>(held).unwrap().night_work);
    // The same file again changes nothing (every record held already); the phone's own sync
    // later neither.
    let out = import(&file);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("2 records, 0 taken"), "{said}");
    assert!(said.contains("2 already held"), "{said}");
    let summary = monitor.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.pending, 0);

    // Another device's bundle holding changes the hub lacks to records outside its user's
    // areas: those are refused, one by one, and said so.
    let mut c: ChildCase = monitor.store.get(new).unwrap();
    c.night_work = !c.night_work;
    monitor.store.update(&c).unwrap();
    let forged = other
        .store
        .seal_bundle(
            vec![(new, monitor.store.export_document(new).unwrap())],
            &[Recipient::Hub],
        )
        .unwrap();
    let forged_file = dir.path().join("forged.vigie");
    std::fs::write(&forged_file, &forged).unwrap();
    let out = import(&forged_file);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains(&format!("refused {new}")), "{said}");

    // A bundle altered on its way, or sealed to a device only, does not open.
    let mut altered = bundle.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 1;
    std::fs::write(&file, &altered).unwrap();
    assert!(!import(&file).status.success());
    let (to_device, _) = monitor
        .store
        .export_bundle(0, &[], &[Recipient::Device(supervisor.token.device)])
        .unwrap();
    std::fs::write(&file, &to_device).unwrap();
    let out = import(&file);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(said.contains("not sealed to this hub"), "{said}");

    // A revoked (lost) phone's bundle is refused whole.
    let late = monitor
        .store
        .create(&child(area(C01), "Adjoa Kra", monitor.user()))
        .unwrap()
        .id;
    let (lost, _) = monitor
        .store
        .export_bundle(0, &[], &[Recipient::Hub])
        .unwrap();
    assert!(common::revoke(&data, monitor.token.device));
    std::fs::write(&file, &lost).unwrap();
    let out = import(&file);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("revoked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    supervisor.sync(&hub.url).unwrap();
    assert!(!supervisor.has(late));
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// `vigie bundle import <file>`: its output.
fn import_bundle(
    data: &std::path::Path,
    dir: &std::path::Path,
    bundle: &[u8],
) -> std::process::Output {
    let file = dir.join(format!("{}.vigie", uuid::Uuid::new_v4()));
    std::fs::write(&file, bundle).unwrap();
    common::surface::admin(data, &["bundle", "import", file.to_str().unwrap()])
}

/// The review entries waiting for each record.
fn entries_per_record(data: &std::path::Path) -> std::collections::BTreeMap<String, usize> {
    let mut per_record = std::collections::BTreeMap::new();
    for entry in quarantine_list(data).1 {
        *per_record
            .entry(entry["record"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    per_record
}

/// One edit reaches review once, however many times it arrives: a bundle imported again, a
/// bundle then the phone's own push of the same pending edit, or the push then the bundle.
#[test]
fn one_edit_waits_for_review_once_however_it_arrives() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut first = Device::enrol(dir.path(), &data, "m1", Role::CommunityMonitor, &[C01], 1);
    let mut second = Device::enrol(dir.path(), &data, "m2", Role::CommunityMonitor, &[C01], 2);
    let mut hub = Hub::start(&data);
    certify(&hub, &mut [&mut first, &mut second]);
    let mut edited_bundles = Vec::new();
    for monitor in [&mut first, &mut second] {
        let case = monitor
            .store
            .create(&child(area(C01), NAME, monitor.user()))
            .unwrap()
            .id;
        monitor.sync(&hub.url).unwrap();
        // Edited offline and carried in a bundle; then the user is moved to another community.
        let mut c: ChildCase = monitor.store.get(case).unwrap();
        c.night_work = !c.night_work;
        monitor.store.update(&c).unwrap();
        let (bundle, _) = monitor
            .store
            .export_bundle(0, &[], &[Recipient::Hub])
            .unwrap();
        set_areas(&data, monitor.user(), &[C02]);
        edited_bundles.push((case, bundle));
    }
    let (first_case, first_bundle) = &edited_bundles[0];
    let (second_case, second_bundle) = &edited_bundles[1];

    // The bundle, the same bundle again, then the phone's own sync.
    for _ in 0..2 {
        let out = import_bundle(&data, dir.path(), first_bundle);
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{said}");
        assert!(said.contains("1 kept for review"), "{said}");
    }
    let summary = first.sync(&hub.url).unwrap();
    assert_eq!(summary.quarantined, vec![*first_case], "{summary:?}");
    // The phone's sync first, then the bundle.
    let summary = second.sync(&hub.url).unwrap();
    assert_eq!(summary.quarantined, vec![*second_case], "{summary:?}");
    let out = import_bundle(&data, dir.path(), second_bundle);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("1 kept for review"), "{said}");

    let per_record = entries_per_record(&data);
    assert_eq!(
        per_record.get(&first_case.to_string()),
        Some(&1),
        "{per_record:?}"
    );
    assert_eq!(
        per_record.get(&second_case.to_string()),
        Some(&1),
        "{per_record:?}"
    );
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A monitor moved to another district while their bundle was on its way: the cases it
/// carried are kept for review and accepted; their phone's next sync pushes the same changes,
/// which the hub holds already. The cases leave the phone, as they would have had its own
/// sync brought them to review, rather than stay there refused for good.
#[test]
fn cases_a_bundle_brought_to_review_leave_their_moved_makers_phone() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = Device::enrol(dir.path(), &data, "mon", Role::CommunityMonitor, &[C01], 1);
    let supervisor = add_user(&data, "Superviseure", Role::Supervisor, &[REGION]);
    let mut hub = Hub::start(&data);
    certify(&hub, &mut [&mut monitor]);
    let case = monitor
        .store
        .create(&child(area(C01), NAME, monitor.user()))
        .unwrap()
        .id;
    let (bundle, _) = monitor
        .store
        .export_bundle(0, &[], &[Recipient::Hub])
        .unwrap();
    set_areas(&data, monitor.user(), &[C07]);
    let out = import_bundle(&data, dir.path(), &bundle);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("1 kept for review"), "{said}");
    let (_, entries) = quarantine_list(&data);
    assert_eq!(entries.len(), 1);
    let entry = entries[0]["entry"].as_i64().unwrap();
    let out = common::lifecycle::quarantine_accept(&data, entry, Some(supervisor));
    assert!(out.status.success(), "{}", common::stderr(&out));

    let summary = monitor.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    monitor.sync(&hub.url).unwrap();
    assert!(!monitor.has(case));
    assert_eq!(monitor.store.hub_outbox_len().unwrap(), 0);
    assert!(monitor.store.refused_records().unwrap().is_empty());
    // Nothing more waits for review: the changes were taken once.
    assert!(quarantine_list(&data).1.is_empty());
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// Files reach the hub in any order: a colleague's bundle carrying an edit of a case whose
/// maker's own file has not come yet waits, naming the maker's device, takes nothing of the
/// case, and is taken when imported again after the maker's.
#[test]
fn a_bundle_imported_before_the_one_it_builds_on_waits_and_is_taken_after() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut maker = Device::enrol(dir.path(), &data, "m1", Role::CommunityMonitor, &[C01], 1);
    let mut mate = Device::enrol(dir.path(), &data, "m2", Role::CommunityMonitor, &[C01], 2);
    let mut hub = Hub::start(&data);
    certify(&hub, &mut [&mut maker, &mut mate]);
    let case = maker
        .store
        .create(&child(area(C01), NAME, maker.user()))
        .unwrap()
        .id;
    peer(&mut maker, &mut mate).unwrap();
    let mut c: ChildCase = mate.store.get(case).unwrap();
    c.night_work = !c.night_work;
    let edited = mate.store.update(&c).unwrap().night_work;
    let (from_mate, _) = mate.store.export_bundle(0, &[], &[Recipient::Hub]).unwrap();
    let (from_maker, _) = maker
        .store
        .export_bundle(0, &[], &[Recipient::Hub])
        .unwrap();

    let out = import_bundle(&data, dir.path(), &from_mate);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("0 taken")
            && said.contains("1 waiting for other devices' changes, 0 refused"),
        "{said}"
    );
    assert!(
        said.contains(&format!("waiting {case}"))
            && said.contains(&maker.store.device_id().to_string()),
        "{said}"
    );
    assert!(common::stderr(&out).contains("then this file again"));
    let out = import_bundle(&data, dir.path(), &from_maker);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let out = import_bundle(&data, dir.path(), &from_mate);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said}");
    assert!(said.contains("1 taken"), "{said}");
    maker.sync(&hub.url).unwrap();
    assert_eq!(
        maker.store.get::<ChildCase>(case).unwrap().night_work,
        edited
    );
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A colleague's bundle whose record she edited before the maker's edit reached her by a
/// peer, and again on top of it: the hub takes her first edit, and the import says the record
/// waits (naming the maker's device, exit 1), not "taken" — what she recorded on top is not on
/// the hub, and the operator must bring the maker's file and import hers again.
#[test]
fn a_bundle_taken_in_part_says_the_rest_waits() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut maker = Device::enrol(dir.path(), &data, "m1", Role::CommunityMonitor, &[C01], 1);
    let mut mate = Device::enrol(dir.path(), &data, "m2", Role::CommunityMonitor, &[C01], 2);
    let mut hub = Hub::start(&data);
    certify(&hub, &mut [&mut maker, &mut mate]);
    let case = maker
        .store
        .create(&child(area(C01), NAME, maker.user()))
        .unwrap()
        .id;
    maker.sync(&hub.url).unwrap();
    mate.sync(&hub.url).unwrap();
    // Apart: each edits the case; then the maker's edit reaches the mate by a peer, and she
    // records more on top of it.
    let mut c: ChildCase = mate.store.get(case).unwrap();
    c.activity = "cacao".into();
    mate.store.update(&c).unwrap();
    let mut c: ChildCase = maker.store.get(case).unwrap();
    c.night_work = !c.night_work;
    let night_work = maker.store.update(&c).unwrap().night_work;
    peer(&mut maker, &mut mate).unwrap();
    let mut c: ChildCase = mate.store.get(case).unwrap();
    c.hours_per_week = 30;
    mate.store.update(&c).unwrap();
    let (from_mate, _) = mate.store.export_bundle(0, &[], &[Recipient::Hub]).unwrap();

    // Imported twice: the second time the hub holds her first edit, and takes nothing.
    for first in [true, false] {
        let out = import_bundle(&data, dir.path(), &from_mate);
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(!out.status.success(), "{said}");
        assert!(
            said.contains("0 taken")
                && said.contains("1 waiting for other devices' changes, 0 refused"),
            "{said}"
        );
        assert!(
            said.contains(&format!("waiting {case}"))
                && said.contains(&maker.store.device_id().to_string())
                && said.contains("made before them were taken") == first,
            "{said}"
        );
    }
    let mut watcher = Device::enrol(dir.path(), &data, "sup", Role::Supervisor, &[DISTRICT], 3);
    watcher.sync(&hub.url).unwrap();
    let on_hub: ChildCase = watcher.store.get(case).unwrap();
    assert_eq!(
        (on_hub.activity.as_str(), on_hub.hours_per_week),
        ("cacao", 10)
    );

    // The maker's edit reaches the hub; the mate's file imported again is taken whole.
    maker.sync(&hub.url).unwrap();
    let out = import_bundle(&data, dir.path(), &from_mate);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("1 taken") && said.contains("0 waiting"),
        "{said}"
    );
    watcher.sync(&hub.url).unwrap();
    let on_hub: ChildCase = watcher.store.get(case).unwrap();
    assert_eq!(on_hub.hours_per_week, 30);
    assert_eq!(on_hub.night_work, night_work);
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A phone lost after it passed a case, and a note on a case the hub holds, to a colleague,
/// and revoked: the colleague's bundle, carried to the hub, holds changes that will never come
/// from the lost phone. Its work is kept for review, as its sync would have it kept, and the
/// import says so: not refused as work to record again, nor said to wait for a phone that will
/// never send it. Imported again, nothing more is kept.
#[test]
fn a_bundle_holding_a_revoked_phone_s_work_keeps_it_for_review() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut lost = Device::enrol(dir.path(), &data, "m1", Role::CommunityMonitor, &[C01], 1);
    let mut mate = Device::enrol(dir.path(), &data, "m2", Role::CommunityMonitor, &[C01], 2);
    let mut hub = Hub::start(&data);
    certify(&hub, &mut [&mut lost, &mut mate]);
    let held = lost
        .store
        .create(&child(area(C01), "Koffi Yao", lost.user()))
        .unwrap()
        .id;
    lost.sync(&hub.url).unwrap();
    mate.sync(&hub.url).unwrap();
    let case = lost
        .store
        .create(&child(area(C01), NAME, lost.user()))
        .unwrap()
        .id;
    let mut c: ChildCase = lost.store.get(held).unwrap();
    c.notes = "Vu au marché.".into();
    lost.store.update(&c).unwrap();
    peer(&mut lost, &mut mate).unwrap();
    for id in [case, held] {
        let mut c: ChildCase = mate.store.get(id).unwrap();
        c.night_work = !c.night_work;
        mate.store.update(&c).unwrap();
    }
    let (from_mate, _) = mate.store.export_bundle(0, &[], &[Recipient::Hub]).unwrap();
    assert!(common::revoke(&data, lost.token.device));

    for _ in 0..2 {
        let out = import_bundle(&data, dir.path(), &from_mate);
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{said}");
        assert!(
            said.contains("2 kept for review")
                && said.contains("0 waiting for other devices' changes, 0 refused"),
            "{said}"
        );
        for id in [case, held] {
            assert!(said.contains(&format!("kept for review {id}")), "{said}");
        }
        let (_, entries) = quarantine_list(&data);
        assert_eq!(entries.len(), 2, "{entries:?}");
    }
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A bundle exported before its device was reissued is refused for what happened: sealed
/// under keys the hub no longer binds to the device, to be exported again; not as revoked.
#[test]
fn a_bundle_from_before_a_reissue_is_refused_as_such() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = Device::enrol(dir.path(), &data, "mon", Role::CommunityMonitor, &[C01], 1);
    let mut hub = Hub::start(&data);
    certify(&hub, &mut [&mut monitor]);
    monitor
        .store
        .create(&child(area(C01), NAME, monitor.user()))
        .unwrap();
    let (bundle, _) = monitor
        .store
        .export_bundle(0, &[], &[Recipient::Hub])
        .unwrap();
    common::reissue(&data, monitor.token.device);
    let out = import_bundle(&data, dir.path(), &bundle);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(said.contains("reissued"), "{said}");
    assert!(said.contains("export it again"), "{said}");
    assert!(!said.contains("revoked"), "{said}");
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A deactivated user's bundle carrying a record they received and never changed: the hub
/// holds all of it, so it is counted as held, not refused, and the import succeeds; their
/// own new case is kept for review.
#[test]
fn a_bundled_record_the_hub_holds_whole_is_not_refused() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = Device::enrol(dir.path(), &data, "mon", Role::CommunityMonitor, &[C01], 1);
    let mut mate = Device::enrol(dir.path(), &data, "mate", Role::CommunityMonitor, &[C01], 2);
    let mut hub = Hub::start(&data);
    certify(&hub, &mut [&mut monitor, &mut mate]);
    let received = mate
        .store
        .create(&child(area(C01), "Koffi Yao", mate.user()))
        .unwrap()
        .id;
    mate.sync(&hub.url).unwrap();
    monitor.sync(&hub.url).unwrap();
    assert!(monitor.has(received));
    let made = monitor
        .store
        .create(&child(area(C01), NAME, monitor.user()))
        .unwrap()
        .id;
    let (bundle, _) = monitor
        .store
        .export_bundle(0, &[], &[Recipient::Hub])
        .unwrap();
    let out = common::surface::admin(
        &data,
        &["user", "deactivate", "--user", &monitor.user().to_string()],
    );
    assert!(out.status.success());

    let out = import_bundle(&data, dir.path(), &bundle);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("2 records, 0 taken, 1 kept for review, 1 already held"),
        "{said}"
    );
    assert!(said.contains("0 refused"), "{said}");
    let per_record = entries_per_record(&data);
    assert_eq!(
        per_record.get(&made.to_string()),
        Some(&1),
        "{per_record:?}"
    );
    assert_eq!(per_record.len(), 1, "{per_record:?}");
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A case registered for a colleague (`identified_by`) goes to one whose areas cover it: the
/// phone judges it from its directory of certificates before the hub would refuse it.
#[test]
fn a_case_registered_for_a_colleague_goes_only_to_one_who_receives_it() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = Device::enrol(dir.path(), &data, "mon", Role::CommunityMonitor, &[C01], 1);
    let mut other = Device::enrol(
        dir.path(),
        &data,
        "other",
        Role::CommunityMonitor,
        &[C02],
        2,
    );
    let mut supervisor = Device::enrol(dir.path(), &data, "sup", Role::Supervisor, &[REGION], 3);
    let hub = Hub::start(&data);
    certify(&hub, &mut [&mut monitor, &mut other, &mut supervisor]);

    let for_other = child(area(C01), NAME, other.user());
    match monitor.store.create(&for_other) {
        Err(Error::NotAllowed { rule }) => assert!(rule.contains("cover"), "{rule}"),
        result => panic!("expected NotAllowed, got {result:?}"),
    }
    let for_supervisor = monitor
        .store
        .create(&child(area(C01), NAME, supervisor.user()))
        .unwrap();
    let summary = monitor.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    supervisor.sync(&hub.url).unwrap();
    assert!(supervisor.has(for_supervisor.id));
}

/// Moves the end of the device's unused token `days` back, in the hub's registry, as if it had
/// been issued `days` earlier.
fn issued_days_ago(hub: &Hub, device: uuid::Uuid, days: i64) {
    let back = days * 24 * 3600 * 1000;
    match hub.database.clone().or_else(|| hub_database(&hub.data)) {
        Some(url) => {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            client
                .execute(
                    "UPDATE devices SET unused_until_ms = unused_until_ms - $2 WHERE device = $1",
                    &[&device, &back],
                )
                .unwrap();
        }
        None => {
            let encryption = vigie_server::hub_encryption(&hub.data, &hub.key_options()).unwrap();
            let conn =
                vigie_core::store::open_keyed_connection(&hub.data.join("devices.db"), &encryption)
                    .unwrap();
            conn.execute(
                "UPDATE devices SET unused_until_ms = unused_until_ms - ?2 WHERE device = ?1",
                rusqlite::params![device.as_bytes(), back],
            )
            .unwrap();
        }
    }
}

/// A token no device used within 14 days of its issue is refused (a QR code shown and never
/// scanned gives no one the user's scope weeks later); reissued, it works; a device that
/// synced keeps syncing, however long ago it was enrolled.
#[test]
fn an_enrolment_token_unused_for_14_days_is_refused_until_reissued() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let hub = Hub::start(&data);
    let user = add_user(&data, "Moniteur", Role::CommunityMonitor, &[C01]);
    let token = enrol(&data, user);
    let device = vigie_server::auth::Token::parse(&token).unwrap().device;
    // The device list says until when the unused token is good, and nothing once it is used.
    let until = |data: &std::path::Path| {
        let listed = common::lifecycle::admin(data, &["device", "list"], &[]);
        let text = String::from_utf8_lossy(&listed.stdout).into_owned();
        let line = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|l| l["device"] == device.to_string())
            .expect("the device is listed");
        line["token_unused_until"].clone()
    };
    assert!(until(&data).is_string(), "{}", until(&data));
    issued_days_ago(&hub, device, 15);
    let mut phone = Device::open(
        dir.path(),
        "phone",
        &token,
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    let refused = phone.sync(&hub.url).unwrap_err().to_string();
    assert!(refused.contains("14 days"), "{refused}");
    let token = reissue(&data, device);
    let mut phone = Device::open(
        dir.path(),
        "phone-2",
        &token,
        Role::CommunityMonitor,
        &[C01],
        2,
    );
    phone.sync(&hub.url).expect("a reissued token works");
    assert!(until(&data).is_null());
    // Used once: the device's token does not expire.
    issued_days_ago(&hub, device, 400);
    phone
        .sync(&hub.url)
        .expect("a device that synced keeps syncing");
}

/// A colleague's change the hub refused from the colleague (hours of work below zero, written
/// by an altered app), which a monitor took as a copied file before (a peer or a bundle would
/// refuse it) and built an edit on: the monitor's phone is not left waiting for its
/// author for ever. The hub answers that it will not come, the phone rebuilds the case on the
/// hub's version with its own edit written again, and the edit goes in.
#[test]
fn a_change_the_hub_refused_from_its_author_does_not_hold_a_relays_edits_back() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = Device::enrol(dir.path(), &data, "mon", Role::CommunityMonitor, &[C01], 1);
    let mut colleague = Device::enrol(dir.path(), &data, "col", Role::CommunityMonitor, &[C01], 2);
    let mut hub = Hub::start(&data);
    certify(&hub, &mut [&mut monitor, &mut colleague]);
    let case = monitor
        .store
        .create(&child(area(C01), NAME, monitor.user()))
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    colleague.sync(&hub.url).unwrap();

    let bytes = colleague.store.export_document(case.id).unwrap();
    let mut document = automerge::Automerge::load(&bytes)
        .unwrap()
        .with_actor(colleague.store.actor().clone());
    let mut altered: ChildCase = colleague.store.get(case.id).unwrap();
    altered.hours_per_week = -5;
    vigie_core::doc::write_record(&mut document, &altered, &colleague.store.author())
        .unwrap()
        .expect("a change");
    colleague
        .store
        .merge_document(case.id, &document.save())
        .unwrap();
    // As a copied file: a peer or a bundle would refuse a week of -5 hours.
    monitor
        .store
        .merge_document(case.id, &document.save())
        .unwrap();
    let told = colleague.sync(&hub.url).unwrap();
    assert!(
        told.refused.iter().any(|(id, _)| *id == case.id),
        "{told:?}"
    );

    let mut own: ChildCase = monitor.store.get(case.id).unwrap();
    own.guardian = "Koffi Brou".into();
    own.hours_per_week = 12;
    monitor.store.update(&own).unwrap();
    let told = monitor.sync(&hub.url).unwrap();
    assert_eq!(told.rebuilt, vec![case.id], "{told:?}");
    assert!(
        told.awaiting_author.is_empty() && told.pending == 0,
        "{told:?}"
    );
    let mut reader = Device::enrol(dir.path(), &data, "sup", Role::Supervisor, &[REGION], 3);
    reader.sync(&hub.url).unwrap();
    let held: ChildCase = reader.store.get(case.id).unwrap();
    assert_eq!(
        (held.guardian.as_str(), held.hours_per_week),
        ("Koffi Brou", 12)
    );
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A colleague who edits records a peer brought her pays, from her hour's allowance of bytes,
/// for her own changes only: the author's heavy ones (here already on the hub, by the author's
/// bundle) are not hers to pay for, and her records do not wait for them.
#[test]
fn a_colleague_s_allowance_pays_for_her_own_changes_not_those_she_relays() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut author = Device::enrol(dir.path(), &data, "m1", Role::CommunityMonitor, &[C01], 1);
    let mut mate = Device::enrol(dir.path(), &data, "m2", Role::CommunityMonitor, &[C01], 2);
    let mut hub = Hub::new(&data, None, true);
    hub.extra_args
        .extend(["--max-device-bytes-per-hour".into(), "65536".into()]);
    hub.restart();
    certify(&hub, &mut [&mut author, &mut mate]);
    // Some 300 KB of notes that do not compress, on 150 workplaces.
    record_incompressible_workplaces(&mut author, 0x9e37_79b9_7f4a_7c15);
    peer(&mut author, &mut mate).unwrap();
    let (bundle, _) = author
        .store
        .export_bundle(0, &[], &[Recipient::Hub])
        .unwrap();
    let out = import_bundle(&data, dir.path(), &bundle);
    assert!(out.status.success(), "{}", common::stderr(&out));
    // What one peer session of 64 KiB messages brought her: some 200 KB of them.
    let places = mate.store.ids_of_kind(RecordKind::Workplace).unwrap();
    assert!(places.len() >= 50, "{}", places.len());
    for id in places {
        let mut place: Workplace = mate.store.get(id).unwrap();
        place.owner_name = "Coopérative".into();
        mate.store.update(&place).unwrap();
    }
    let summary = mate.sync(&hub.url).unwrap();
    assert_eq!(
        (summary.pending, summary.push_retry_in_seconds),
        (0, None),
        "{summary:?}"
    );
    assert!(
        !hub.log_tail(200)
            .contains("than the hub takes from one device"),
        "{}",
        hub.log_tail(20)
    );
}

/// A phone reset and set up again with a reissued token (what README says to do for a
/// reinstalled app), whose new child's case a colleague carried before: the case never comes
/// from the new store, and the hub keeps it for review as the reset phone's user's work,
/// rather than refusing it to the colleague, whose only way out was to discard it.
#[test]
fn a_reset_phones_work_a_colleague_carried_is_kept_for_review() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut reset = Device::enrol(dir.path(), &data, "m1", Role::CommunityMonitor, &[C01], 1);
    let mut mate = Device::enrol(dir.path(), &data, "m2", Role::CommunityMonitor, &[C01], 2);
    let supervisor = add_user(&data, "Superviseure", Role::Supervisor, &[DISTRICT]);
    let mut hub = Hub::start(&data);
    certify(&hub, &mut [&mut reset, &mut mate]);
    let new = reset
        .store
        .create(&child(area(C01), NAME, reset.user()))
        .unwrap()
        .id;
    peer(&mut reset, &mut mate).unwrap();
    let token = reissue(&data, reset.token.device);
    let mut again = Device::open(
        dir.path(),
        "m1-again",
        &token,
        Role::CommunityMonitor,
        &[C01],
        5,
    );
    again.sync(&hub.url).unwrap();

    mate.sync(&hub.url).unwrap();
    let (text, entries) = quarantine_list(&data);
    assert_eq!(entries.len(), 1, "{text}");
    assert_eq!(entries[0]["record"], new.to_string(), "{text}");
    assert_eq!(
        entries[0]["device"],
        reset.token.device.to_string(),
        "{text}"
    );
    assert_eq!(entries[0]["user"], reset.user().to_string(), "{text}");
    assert_eq!(entries[0]["state"], "applies", "{text}");
    let number = entries[0]["entry"].as_i64().unwrap();
    let out = common::lifecycle::quarantine_accept(&data, number, Some(supervisor));
    assert!(out.status.success(), "{}", common::stderr(&out));
    for phone in [&mut again, &mut mate] {
        phone.sync(&hub.url).unwrap();
        let child: ChildCase = phone.store.get(new).unwrap();
        assert_eq!(child.name, NAME);
        assert_eq!(phone.store.hub_outbox_len().unwrap(), 0);
        assert!(phone.store.refused_records().unwrap().is_empty());
    }
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// Three monitors' phones certified, a supervisor, the hub: a case made on the first phone
/// offline, passed to the second in a peer session and referred there, then passed on to the
/// third (the carrier); `between` runs on the first before the second passes it on.
struct Relayed {
    first: Device,
    second: Device,
    carrier: Device,
    supervisor: uuid::Uuid,
    hub: Hub,
    case: uuid::Uuid,
}

fn relayed(
    dir: &std::path::Path,
    data: &std::path::Path,
    between: impl FnOnce(&mut Device, uuid::Uuid),
) -> Relayed {
    let mut first = Device::enrol(dir, data, "m0", Role::CommunityMonitor, &[C01], 1);
    let mut second = Device::enrol(dir, data, "m1", Role::CommunityMonitor, &[C01], 2);
    let mut carrier = Device::enrol(dir, data, "m2", Role::CommunityMonitor, &[C01], 3);
    let supervisor = add_user(data, "Superviseure", Role::Supervisor, &[DISTRICT]);
    let hub = Hub::start(data);
    certify(&hub, &mut [&mut first, &mut second, &mut carrier]);
    let today = chrono::Local::now().date_naive();
    let case = first
        .store
        .create(&child(area(C01), NAME, first.user()))
        .unwrap()
        .id;
    peer(&mut first, &mut second).unwrap();
    second
        .store
        .refer_case(case, Referral::new(ServiceKind::Education, "École", today))
        .unwrap();
    between(&mut first, case);
    peer(&mut second, &mut carrier).unwrap();
    Relayed {
        first,
        second,
        carrier,
        supervisor,
        hub,
        case,
    }
}

/// The second phone of `relayed`, reset: set up again under a reissued token.
fn set_up_again(dir: &std::path::Path, data: &std::path::Path, reset: &Device) -> Device {
    let token = reissue(data, reset.token.device);
    Device::open(dir, "m1-again", &token, Role::CommunityMonitor, &[C01], 5)
}

/// Accepts the one entry waiting for review, which must be `user`'s work.
fn accept_the_entry_of(data: &std::path::Path, user: uuid::Uuid, by: uuid::Uuid) {
    let (text, entries) = quarantine_list(data);
    assert_eq!(entries.len(), 1, "{text}");
    assert_eq!(entries[0]["user"], user.to_string(), "{text}");
    let number = entries[0]["entry"].as_i64().unwrap();
    let out = common::lifecycle::quarantine_accept(data, number, Some(by));
    assert!(out.status.success(), "{}", common::stderr(&out));
}

/// The reset phone's work built on a colleague's she has not synced yet (her new case, which
/// the reset phone referred): the carrier's push waits for her, rather than keep her case for
/// review as the reset phone's user's work (her own sync of it was then refused for good, and
/// her follow-up lost); once she synced, the referral alone goes to review, and all of it is on
/// the hub after.
#[test]
fn a_reset_phones_work_on_a_colleagues_unsent_case_waits_for_her() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let Relayed {
        first: mut maker,
        second: reset,
        mut carrier,
        supervisor,
        mut hub,
        case,
    } = relayed(dir.path(), &data, |maker, case| {
        let mut c: ChildCase = maker.store.get(case).unwrap();
        let today = chrono::Local::now().date_naive();
        c.followups.insert(
            uuid::Uuid::now_v7(),
            FollowUp::new(today, FollowUpSituation::StillWorking, None),
        );
        maker.store.update(&c).unwrap();
    });
    let mut again = set_up_again(dir.path(), &data, &reset);
    again.sync(&hub.url).unwrap();

    let summary = carrier.sync(&hub.url).unwrap();
    assert_eq!(summary.awaiting_author, vec![case], "{summary:?}");
    assert!(quarantine_list(&data).1.is_empty());
    let summary = maker.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    carrier.sync(&hub.url).unwrap();
    accept_the_entry_of(&data, reset.user(), supervisor);
    for phone in [&mut maker, &mut carrier, &mut again] {
        let summary = phone.sync(&hub.url).unwrap();
        assert!(summary.refused.is_empty(), "{summary:?}");
        let held: ChildCase = phone.store.get(case).unwrap();
        assert_eq!((held.referrals.len(), held.followups.len()), (1, 1));
        assert!(phone.store.refused_records().unwrap().is_empty());
    }
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A case made on one phone, referred on a second, both lost (one revoked, one reset) before
/// either synced, carried by a third: the first phone's part is kept for review and the
/// carrier's push waits; once accepted, the second's is kept; accepted too, the case is on the
/// hub with its referral. Refused at once, the carrier kept the child's case refused for ever.
#[test]
fn the_work_of_two_lost_phones_one_built_on_the_other_is_kept_in_turn() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let Relayed {
        first,
        second,
        mut carrier,
        supervisor,
        mut hub,
        case,
    } = relayed(dir.path(), &data, |_, _| {});
    assert!(common::revoke(&data, first.token.device));
    // The second phone set up again: its new store syncs (until then, the carrier waits).
    let mut again = set_up_again(dir.path(), &data, &second);
    let summary = carrier.sync(&hub.url).unwrap();
    assert_eq!(summary.awaiting_author, vec![case], "{summary:?}");
    assert!(quarantine_list(&data).1.is_empty());
    again.sync(&hub.url).unwrap();

    let summary = carrier.sync(&hub.url).unwrap();
    assert_eq!(summary.awaiting_author, vec![case], "{summary:?}");
    accept_the_entry_of(&data, first.user(), supervisor);
    carrier.sync(&hub.url).unwrap();
    accept_the_entry_of(&data, second.user(), supervisor);
    for _ in 0..2 {
        let summary = carrier.sync(&hub.url).unwrap();
        assert!(summary.refused.is_empty(), "{summary:?}");
    }
    let held: ChildCase = carrier.store.get(case).unwrap();
    assert_eq!(held.referrals.len(), 1);
    assert_eq!(carrier.store.hub_outbox_len().unwrap(), 0);
    assert!(carrier.store.refused_records().unwrap().is_empty());
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// The first lost phone's part rejected in review: not kept again at the carrier's next syncs,
/// and the carrier told it will never come (the second's, built on it, neither), so that it can
/// let the case go; it waited for ever, an entry coming back after each rejection.
#[test]
fn a_lost_phones_work_rejected_is_not_kept_again() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let Relayed {
        first,
        second,
        mut carrier,
        supervisor,
        mut hub,
        case,
    } = relayed(dir.path(), &data, |_, _| {});
    assert!(common::revoke(&data, first.token.device));
    assert!(common::revoke(&data, second.token.device));
    let summary = carrier.sync(&hub.url).unwrap();
    assert_eq!(summary.awaiting_author, vec![case], "{summary:?}");
    let (text, entries) = quarantine_list(&data);
    assert_eq!(entries.len(), 1, "{text}");
    let out = common::lifecycle::quarantine_review(
        &data,
        "reject",
        entries[0]["entry"].as_i64().unwrap(),
        Some(supervisor),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    for _ in 0..2 {
        let summary = carrier.sync(&hub.url).unwrap();
        assert!(summary.awaiting_author.is_empty(), "{summary:?}");
        assert!(quarantine_list(&data).1.is_empty());
    }
    carrier.store.discard_refused_changes(case).unwrap();
    let summary = carrier.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(carrier.store.hub_outbox_len().unwrap(), 0);
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A monitor's phone lost after it passed her work to colleagues in peer sessions — a new
/// child's case and a note on a case the hub holds to one colleague (who then edits that case
/// too), the same and a follow-up recorded since to another — and revoked: the colleagues'
/// phones are refused that work (it will never come from the lost phone) and go on with their
/// own; the hub keeps it for a supervisor's review, as hers, one entry per piece of work
/// however many carried it. Accepted in any order, all of it is on the hub as she made it (her
/// device, her time), beside the colleague's edit; a colleague who met her and syncs only
/// after the review loses nothing of it.
#[test]
fn a_lost_phones_work_colleagues_carried_is_kept_for_review() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut lost = Device::enrol(dir.path(), &data, "m1", Role::CommunityMonitor, &[C01], 1);
    let mut mate = Device::enrol(dir.path(), &data, "m2", Role::CommunityMonitor, &[C01], 2);
    let mut other = Device::enrol(dir.path(), &data, "m3", Role::CommunityMonitor, &[C01], 3);
    let mut late = Device::enrol(dir.path(), &data, "m4", Role::CommunityMonitor, &[C01], 4);
    let supervisor = add_user(&data, "Superviseure", Role::Supervisor, &[DISTRICT]);
    let mut hub = Hub::start(&data);
    certify(&hub, &mut [&mut lost, &mut mate, &mut other, &mut late]);
    let held = lost
        .store
        .create(&child(area(C01), "Koffi Yao", lost.user()))
        .unwrap()
        .id;
    for phone in [&mut lost, &mut mate, &mut other, &mut late] {
        phone.sync(&hub.url).unwrap();
    }
    // Offline, her last days with the phone: a child identified, a note on a case; she meets
    // a colleague, who edits the case on top.
    let new = lost
        .store
        .create(&child(area(C01), NAME, lost.user()))
        .unwrap()
        .id;
    let mut c: ChildCase = lost.store.get(held).unwrap();
    c.notes = "Vu au marché le samedi.".into();
    lost.store.update(&c).unwrap();
    peer(&mut lost, &mut mate).unwrap();
    let mut c: ChildCase = mate.store.get(held).unwrap();
    c.guardian = "Mère : Adjoua".into();
    mate.store.update(&c).unwrap();
    // Then a follow-up, and two more colleagues met.
    let mut c: ChildCase = lost.store.get(held).unwrap();
    let follow_up = uuid::Uuid::now_v7();
    c.followups.insert(
        follow_up,
        FollowUp {
            date: chrono::Utc::now().date_naive(),
            situation: FollowUpSituation::InSchool,
            notes: String::new(),
            next_due: None,
        },
    );
    lost.store.update(&c).unwrap();
    peer(&mut lost, &mut other).unwrap();
    peer(&mut lost, &mut late).unwrap();
    assert!(common::revoke(&data, lost.token.device));

    let summary = mate.sync(&hub.url).unwrap();
    assert_eq!(summary.rebuilt, vec![held], "{summary:?}");
    assert_eq!(quarantine_list(&data).1.len(), 2);
    // Another colleague carrying the same case, and more of the other: one entry more.
    other.sync(&hub.url).unwrap();
    let (_, entries) = quarantine_list(&data);
    assert_eq!(entries.len(), 3, "{entries:?}");
    for entry in &entries {
        // Hers, as her phone made it: her device, her user.
        assert_eq!(entry["device"], lost.token.device.to_string(), "{entry}");
        assert_eq!(entry["user"], lost.user().to_string(), "{entry}");
        assert_eq!(entry["device_revoked"], true, "{entry}");
        assert_eq!(entry["state"], "applies", "{entry}");
    }
    // A new child's case by the code she gave it, which she knows it by.
    let code = lost.store.get::<ChildCase>(new).unwrap().case_code;
    let of_new = entries
        .iter()
        .find(|e| e["record"] == new.to_string())
        .expect("the new case's entry");
    assert_eq!(of_new["case_code"], code.as_str(), "{of_new}");
    // The supervisor's console says whose it is, and what to do.
    let mut browser = common::console::Browser::new(&hub.url);
    common::console::account(
        &mut browser,
        &data,
        supervisor,
        "sup.perdu",
        "un mot de passe long",
    );
    assert_eq!(
        browser.sign_in("sup.perdu", "un mot de passe long").status,
        303
    );
    let page = browser.get("/console/quarantine");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.body.matches("Appareil retiré (perdu ou volé)").count(),
        3,
        "{}",
        page.body
    );
    assert!(page.body.contains(&code), "{}", page.body);

    // In list order: the first colleague's copy of the case first, then the second's.
    for entry in &entries {
        let number = entry["entry"].as_i64().unwrap();
        let out = common::lifecycle::quarantine_accept(&data, number, Some(supervisor));
        assert!(out.status.success(), "{}", common::stderr(&out));
    }
    assert!(quarantine_list(&data).1.is_empty());
    for phone in [&mut mate, &mut other, &mut late] {
        for _ in 0..2 {
            let summary = phone.sync(&hub.url).unwrap();
            assert!(summary.failed.is_empty(), "{summary:?}");
        }
        assert_eq!(phone.store.hub_outbox_len().unwrap(), 0);
        assert!(
            phone.store.refused_records().unwrap().is_empty(),
            "{:?}",
            phone.store.refused_records()
        );
        let child: ChildCase = phone.store.get(new).unwrap();
        assert_eq!(child.name, NAME);
        let edited: ChildCase = phone.store.get(held).unwrap();
        assert_eq!(edited.notes, "Vu au marché le samedi.");
        assert_eq!(edited.guardian, "Mère : Adjoua");
        assert!(edited.followups.contains_key(&follow_up), "{edited:?}");
    }
    // Her changes are hers in the history: her device, not the review's.
    let history = mate.store.history(held).unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.author.is_some_and(|a| a.device == lost.token.device)
                && h.fields.iter().any(|f| f == "notes")),
        "{history:?}"
    );
    // Carried again after the review: settled, nothing kept a second time.
    late.sync(&hub.url).unwrap();
    assert!(quarantine_list(&data).1.is_empty());
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A monitor's phone stolen: before, her honest note on a case reached an inspector's phone and
/// a colleague's, who edited the case on top; after, the thief wrote on top of that edit, which
/// the phone had received, and passed it to the colleague. Whichever copy comes first, her note clean gets an
/// entry of its own, and rejecting the thief's entry gives up the thief's change only — not her
/// note (accepted from the other entry), nor the colleague's own edit, which goes on as the
/// colleague's, with what the colleague records afterwards.
#[test]
fn rejecting_a_thiefs_entry_takes_neither_her_work_nor_a_colleagues() {
    thief_story(false);
}

/// The same, the thief's copy rejected at once, before her clean copy comes: the rejection
/// gives nothing up (her note in it comes again, clean, and is accepted).
#[test]
fn a_thiefs_entry_rejected_before_her_clean_copy_comes_takes_nothing_of_hers() {
    thief_story(true);
}

fn thief_story(rejected_before_her_copy: bool) {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut lost = Device::enrol(dir.path(), &data, "m1", Role::CommunityMonitor, &[C01], 1);
    let mut mate = Device::enrol(dir.path(), &data, "m2", Role::CommunityMonitor, &[C01], 2);
    let mut inspector = Device::enrol(dir.path(), &data, "i1", Role::Inspector, &[C01], 3);
    let supervisor = add_user(&data, "Superviseure", Role::Supervisor, &[DISTRICT]);
    let mut hub = Hub::start(&data);
    certify(&hub, &mut [&mut lost, &mut mate, &mut inspector]);
    let held = lost
        .store
        .create(&child(area(C01), "Koffi Yao", lost.user()))
        .unwrap()
        .id;
    for phone in [&mut lost, &mut mate, &mut inspector] {
        phone.sync(&hub.url).unwrap();
    }
    // Her note, met by the inspector and the colleague, who edits the case on top.
    let mut c: ChildCase = lost.store.get(held).unwrap();
    c.notes = "Vu au marché le samedi.".into();
    lost.store.update(&c).unwrap();
    peer(&mut lost, &mut inspector).unwrap();
    peer(&mut lost, &mut mate).unwrap();
    let mut c: ChildCase = mate.store.get(held).unwrap();
    c.guardian = "Mère : Adjoua".into();
    mate.store.update(&c).unwrap();
    // Stolen: the colleague's edit reaches the phone, the thief writes on top, and passes it.
    peer(&mut mate, &mut lost).unwrap();
    let mut c: ChildCase = lost.store.get(held).unwrap();
    c.hours_per_week = 60;
    lost.store.update(&c).unwrap();
    peer(&mut lost, &mut mate).unwrap();
    assert!(common::revoke(&data, lost.token.device));

    // What the colleague carries, thief's change and all, reaches the hub first (a bundle it
    // sent, imported: its phone has heard nothing since), then the inspector syncs.
    let (from_mate, _) = mate.store.export_bundle(0, &[], &[Recipient::Hub]).unwrap();
    let out = import_bundle(&data, dir.path(), &from_mate);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let review = |entry: &serde_json::Value, decision: &str| {
        let number = entry["entry"].as_i64().unwrap();
        let out = common::lifecycle::quarantine_review(&data, decision, number, Some(supervisor));
        assert!(out.status.success(), "{}", common::stderr(&out));
    };
    let fields = |e: &serde_json::Value| e["fields"].to_string();
    if rejected_before_her_copy {
        let (_, entries) = quarantine_list(&data);
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert!(fields(&entries[0]).contains("hours_per_week"));
        review(&entries[0], "reject");
    }
    inspector.sync(&hub.url).unwrap();
    let (_, entries) = quarantine_list(&data);
    if !rejected_before_her_copy {
        assert_eq!(
            entries.len(),
            2,
            "her note clean has an entry of its own: {entries:?}"
        );
        let thiefs = entries
            .iter()
            .find(|e| fields(e).contains("hours_per_week"))
            .expect("the thief's entry");
        review(thiefs, "reject");
    }
    let waiting = quarantine_list(&data).1;
    let hers: Vec<&serde_json::Value> = waiting
        .iter()
        .filter(|e| !fields(e).contains("hours_per_week"))
        .collect();
    assert_eq!(hers.len(), 1, "{entries:?}");
    review(hers[0], "accept");
    assert!(quarantine_list(&data).1.is_empty());

    for phone in [&mut mate, &mut inspector] {
        for _ in 0..2 {
            let summary = phone.sync(&hub.url).unwrap();
            assert!(summary.refused.is_empty(), "{summary:?}");
        }
        let case: ChildCase = phone.store.get(held).unwrap();
        assert_eq!(case.notes, "Vu au marché le samedi.");
        assert_eq!(case.guardian, "Mère : Adjoua");
        assert_ne!(case.hours_per_week, 60, "the thief's change");
    }
    // The colleague's work goes on.
    let mut c: ChildCase = mate.store.get(held).unwrap();
    c.household = "Famille Yao".into();
    mate.store.update(&c).unwrap();
    let summary = mate.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(mate.store.hub_outbox_len().unwrap(), 0);
    inspector.sync(&hub.url).unwrap();
    let case: ChildCase = inspector.store.get(held).unwrap();
    assert_eq!(case.household, "Famille Yao");
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

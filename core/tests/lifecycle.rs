//! How records come and go on a device: the scope its user loses, records moved out of it, a
//! deactivated user, erasure that nothing brings back (pull, peer, bundle, under any id), a
//! store restored from an older copy, and what the hub's answers may carry. Real SQLite files;
//! the hub's handler is called in-process (the HTTP hub's own tests cover the network).

use crate::common;

use chrono::NaiveDate;
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::reference::{ChecklistContent, ChecklistItem, Labels};
use vigie_core::sync::wire::{self, PushEntry, PushOutcome, SyncRequest};
use vigie_core::sync::{
    HubLimits, HubStorage, PeerScope, Principal, Refusal, Removal, SyncOptions, SyncSummary,
    erase_record,
};
use vigie_core::*;

const C01: &str = "CI-R1-D1-C01";
const C02: &str = "CI-R1-D1-C02";

fn area(community: &str) -> Area {
    let district = &community[..8];
    Area::new("CI", "CI-R1", district, community)
}

struct Device {
    store: Store,
    principal: Principal,
    path: PathBuf,
}

impl Device {
    /// Unencrypted, so that the file's bytes can be searched for a name.
    fn new(dir: &Path, name: &str, role: Role, areas: &[&str]) -> Device {
        Device::with(dir, name, role, areas, Encryption::Unencrypted)
    }

    fn with(dir: &Path, name: &str, role: Role, areas: &[&str], encryption: Encryption) -> Device {
        let user = Uuid::now_v7();
        let path = dir.join(format!("{name}.db"));
        let store = Store::open(StoreConfig::new(&path, encryption, user)).unwrap();
        let principal = Principal {
            device: store.device_id(),
            user,
            role,
            areas: areas.iter().map(|a| a.to_string()).collect(),
        };
        Device {
            store,
            principal,
            path,
        }
    }

    fn sync(&mut self, hub: &mut Store) -> SyncSummary {
        self.sync_with(hub, &SyncOptions::default())
    }

    fn sync_with(&mut self, hub: &mut Store, options: &SyncOptions) -> SyncSummary {
        common::sync_in_process(&mut self.store, &self.principal, hub, options)
    }

    fn has(&self, id: Uuid) -> bool {
        self.store.kind_of(id).is_ok()
    }

    /// Whether any of the store's files holds these bytes.
    fn files_hold(&self, needle: &str) -> bool {
        ["", "-wal"].iter().any(|suffix| {
            std::fs::read(format!("{}{suffix}", self.path.display()))
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
    }
}

/// A hub with the sample area tree published (it serves a country's records only then).
fn hub(dir: &Path) -> Store {
    common::hub_store(&dir.join("hub.db"))
}

fn case(area: Area, name: &str, by: Uuid) -> ChildCase {
    let mut c = ChildCase::new(
        "CASE",
        name,
        Sex::Female,
        area,
        NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
        by,
    );
    c.estimated_age = Some(12);
    c.hours_per_week = 10;
    c
}

fn create(d: &mut Device, community: &str, name: &str) -> Uuid {
    let user = d.principal.user;
    d.store
        .create(&case(area(community), name, user))
        .unwrap()
        .id
}

fn erase(hub: &mut Store, by: &Principal, id: Uuid) {
    let erased = hub
        .in_transaction(&mut |tx| erase_record(tx, by, id))
        .unwrap();
    assert_eq!(erased.records.first(), Some(&id));
    hub.purge_freed_content().unwrap();
}

fn left(summary: &SyncSummary) -> Vec<Uuid> {
    let mut ids = summary.left_scope.clone();
    ids.sort();
    ids
}

#[test]
fn a_lost_area_takes_its_records_off_the_device_after_its_pending_edits_are_pushed() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01, C02]);
    let edited = create(&mut monitor, C01, "Fatou Koné");
    let untouched = create(&mut monitor, C01, "Awa Traoré");
    let kept = create(&mut monitor, C02, "Mariam Diallo");
    monitor.sync(&mut hub);

    // Offline, the monitor edits one case of C01; meanwhile C01 is taken from her.
    let mut c: ChildCase = monitor.store.get(edited).unwrap();
    c.notes = "Vue au marché.".into();
    monitor.store.update(&c).unwrap();
    monitor.principal.areas = [C02.to_string()].into();

    // Small messages: the edit and the scope change travel in different exchanges.
    let summary = monitor.sync_with(
        &mut hub,
        &SyncOptions {
            max_message_bytes: 2 * 1024,
            max_page_bytes: 2 * 1024,
            ..SyncOptions::default()
        },
    );
    assert_eq!(summary.quarantined, vec![edited], "{summary:?}");
    assert_eq!(left(&summary), vec![untouched], "{summary:?}");
    assert!(!monitor.has(edited) && !monitor.has(untouched));
    assert!(monitor.has(kept));
    assert_eq!(summary.pending, 0);
    let mut removed: Vec<(Uuid, Removal)> = summary
        .removed
        .iter()
        .map(|r| {
            assert_eq!(r.kind, RecordKind::ChildCase);
            (r.id, r.why)
        })
        .collect();
    removed.sort();
    let mut expected = vec![
        (edited, Removal::Quarantined),
        (untouched, Removal::LeftScope),
    ];
    expected.sort();
    assert_eq!(removed, expected);
    // Neither the search index nor any file of the store keeps their names.
    for name in ["Fatou", "Awa Traoré"] {
        assert!(monitor.store.search_names(name, 10).unwrap().is_empty());
        assert!(
            !monitor.files_hold(name),
            "{name} is still in the store's files"
        );
    }
    assert_eq!(monitor.store.search_names("Mariam", 10).unwrap().len(), 1);
    // Two more syncs change nothing.
    for _ in 0..2 {
        let again = monitor.sync(&mut hub);
        assert!(
            again.left_scope.is_empty() && again.received == 0,
            "{again:?}"
        );
    }

    // The area comes back: so does the record (it was no erasure).
    monitor.principal.areas = [C01.to_string(), C02.to_string()].into();
    monitor.sync(&mut hub);
    assert!(monitor.has(untouched) && monitor.has(edited));
}

#[test]
fn a_record_moved_out_of_the_scope_leaves_and_comes_back_when_moved_back() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let moved = create(&mut supervisor, C01, "Adjoa Mensah");
    let stays = create(&mut supervisor, C01, "Ama Yao");
    supervisor.sync(&mut hub);
    monitor.sync(&mut hub);
    assert!(monitor.has(moved) && monitor.has(stays));

    let mut c: ChildCase = supervisor.store.get(moved).unwrap();
    c.area = area(C02);
    supervisor.store.update(&c).unwrap();
    supervisor.sync(&mut hub);
    let summary = monitor.sync(&mut hub);
    assert_eq!(summary.left_scope, vec![moved], "{summary:?}");
    assert!(!monitor.has(moved) && monitor.has(stays));
    assert!(monitor.store.search_names("Adjoa", 10).unwrap().is_empty());

    // Another monitor, in C02 from the start, was never told about it: it now receives it.
    let mut other = Device::new(dir.path(), "other", Role::CommunityMonitor, &[C02]);
    let summary = other.sync(&mut hub);
    assert!(other.has(moved) && summary.left_scope.is_empty());

    // Moved back, it returns whole to the first monitor.
    let mut c: ChildCase = supervisor.store.get(moved).unwrap();
    c.area = area(C01);
    supervisor.store.update(&c).unwrap();
    supervisor.sync(&mut hub);
    monitor.sync(&mut hub);
    assert_eq!(
        monitor.store.get::<ChildCase>(moved).unwrap().area,
        area(C01)
    );
    assert!(other.sync(&mut hub).left_scope.contains(&moved));
    assert!(!other.has(moved));
}

#[test]
fn a_deactivated_user_keeps_nothing_and_what_it_made_offline_is_kept_for_review() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let synced = create(&mut monitor, C01, "Kouassi Yao");
    monitor.sync(&mut hub);
    // Recorded offline, never pushed: the hub cannot file it for a deactivated user, and
    // nothing a user typed is dropped silently: it is kept for a supervisor's review.
    let unsent = create(&mut monitor, C01, "Yao Kouamé");
    // What the hub serves a deactivated user: no areas.
    monitor.principal.areas.clear();
    let summary = monitor.sync(&mut hub);
    assert_eq!(summary.left_scope, vec![synced], "{summary:?}");
    assert_eq!(summary.quarantined, vec![unsent], "{summary:?}");
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert!(!monitor.has(synced) && !monitor.has(unsent));
    assert_eq!(summary.pending, 0);
}

#[test]
fn a_device_has_a_bounded_number_of_entries_waiting_for_review() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    monitor.sync(&mut hub);
    monitor.principal.areas.clear();
    let limit = vigie_core::sync::MAX_QUARANTINED_PER_DEVICE;
    for i in 0..=limit {
        create(&mut monitor, C01, &format!("Enfant {i}"));
    }
    let summary = monitor.sync(&mut hub);
    assert_eq!(summary.quarantined.len(), limit);
    assert_eq!(summary.refused.len(), 1, "{:?}", summary.refused);
    assert_eq!(summary.refused[0].1, Refusal::OutOfScope);
}

#[test]
fn a_user_with_areas_gets_a_new_record_outside_them_refused_not_kept() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    monitor.sync(&mut hub);
    // The phone refuses it first, naming the area.
    let user = monitor.principal.user;
    let refused = monitor.store.create(&case(area(C02), "Awa Bamba", user));
    assert!(
        matches!(&refused, Err(Error::NotAllowed { rule }) if rule.contains("(area)")),
        "{refused:?}"
    );
    // The quarantine is for what a user made while the area was theirs; an active user's
    // record filed elsewhere (by an app that did not check) is refused, and stays on the phone
    // to be fixed.
    let elsewhere =
        common::create_outside_scope(&mut monitor.store, &case(area(C02), "Awa Bamba", user)).id;
    let summary = monitor.sync(&mut hub);
    assert_eq!(summary.refused, vec![(elsewhere, Refusal::OutOfScope)]);
    assert!(summary.quarantined.is_empty());
    assert!(monitor.has(elsewhere));
}

/// A case erased on request before the hub ever held it (`vigie erase` of the id a phone
/// reported, while that phone was offline): the phone that made it is told so when it pushes
/// it, and lets it go; so does a phone a peer passed it to. Bytes that are no record, under
/// that id, get the answer of any id.
#[test]
fn a_case_erased_before_the_hub_held_it_leaves_the_phone_that_made_it() {
    const NAME: &str = "Mariam Diallo";
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let mut elsewhere = Device::new(dir.path(), "elsewhere", Role::CommunityMonitor, &[C02]);
    monitor.sync(&mut hub);
    elsewhere.sync(&mut hub);
    let id = create(&mut monitor, C01, NAME);
    let held: ChildCase = monitor.store.get(id).unwrap();
    let old = monitor.store.export_document(id).unwrap();
    let erased = hub
        .in_transaction(&mut |tx| erase_record(tx, &supervisor.principal, id))
        .unwrap();
    assert!(erased.records.is_empty(), "the hub held nothing of it");

    // Passed to another phone before the erasure (a peer, a bundle): it lets it go too.
    assert!(elsewhere.store.merge_document(id, &old).unwrap());
    let summary = elsewhere.sync(&mut hub);
    assert_eq!(summary.erased, vec![id], "{summary:?}");
    assert!(!elsewhere.has(id) && !elsewhere.files_hold(NAME));
    assert_eq!(summary.pending, 0, "{summary:?}");
    // Garbage under the id: the answer of any id the sender cannot see.
    let garbage = outcomes(
        &mut hub,
        &elsewhere,
        vec![PushEntry {
            id,
            heads: Vec::new(),
            changes: b"garbage".to_vec(),
        }],
    );
    let absent = outcomes(
        &mut hub,
        &elsewhere,
        vec![PushEntry {
            id: Uuid::now_v7(),
            heads: Vec::new(),
            changes: b"garbage".to_vec(),
        }],
    );
    assert_eq!(garbage, absent);

    let summary = monitor.sync(&mut hub);
    assert_eq!(summary.erased, vec![id], "{summary:?}");
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.pending, 0, "{summary:?}");
    assert!(!monitor.has(id) && !monitor.files_hold(NAME));
    assert!(hub.kind_of(id).is_err());
    // And it does not come back to that phone from a copy, nor from the app's form still
    // open on it: the id is not written under again.
    assert!(!monitor.store.merge_document(id, &old).unwrap());
    assert!(matches!(monitor.store.create(&held), Err(Error::Erased { id: e }) if e == id));
    let follow_up = FollowUp::new(held.identified_on, FollowUpSituation::AtRisk, None);
    assert!(matches!(
        monitor.store.add_follow_up(id, follow_up),
        Err(Error::NotFound { .. })
    ));
    assert!(!monitor.has(id) && !monitor.files_hold(NAME));
    assert_eq!(monitor.sync(&mut hub).pending, 0);

    // A phone that synced after the erasure, and never held the case, refuses it from a peer
    // that still does (another region's supervisor's tablet included).
    for (name, role, areas) in [
        ("later", Role::CommunityMonitor, [C01]),
        ("far", Role::Supervisor, ["CI-R2"]),
    ] {
        let mut later = Device::new(dir.path(), name, role, &areas);
        later.sync(&mut hub);
        assert!(!later.store.merge_document(id, &old).unwrap(), "{name}");
        assert!(!later.has(id) && !later.files_hold(NAME), "{name}");
    }
}

/// A copy of a case that reached a phone by a peer or a bundle after the case moved to a
/// community the phone does not cover: the hub holds every change of it, and tells the phone
/// the case left its scope; it goes at that sync, rather than wait for ever for its author
/// and be passed on.
#[test]
fn a_late_copy_of_a_case_that_moved_away_leaves_the_phone_at_its_next_sync() {
    const NAME: &str = "Kouadio Tardif";
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut maker = Device::new(dir.path(), "maker", Role::CommunityMonitor, &[C01]);
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut colleague = Device::new(dir.path(), "colleague", Role::CommunityMonitor, &[C01]);
    let id = create(&mut maker, C01, NAME);
    let copy = maker.store.export_document(id).unwrap();
    maker.sync(&mut hub);
    supervisor.sync(&mut hub);
    let mut moved: ChildCase = supervisor.store.get(id).unwrap();
    moved.area = area(C02);
    supervisor.store.update(&moved).unwrap();
    supervisor.sync(&mut hub);
    colleague.sync(&mut hub);

    // The late copy (a bundle made before the move) taken on the colleague's phone.
    assert!(colleague.store.merge_document(id, &copy).unwrap());
    let summary = colleague.sync(&mut hub);
    assert!(summary.awaiting_author.is_empty(), "{summary:?}");
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.left_scope, vec![id], "{summary:?}");
    assert_eq!(summary.pending, 0, "{summary:?}");
    assert!(!colleague.has(id) && !colleague.files_hold(NAME));
    // The hub's copy is untouched, in its new community.
    let kept: ChildCase = supervisor.store.get(id).unwrap();
    assert_eq!(kept.area, area(C02));
    assert!(supervisor.sync(&mut hub).refused.is_empty());
}

/// A community taken out of the area tree (merged, split, renamed): the user whose areas name
/// it covers nothing there any more, as the hub judges; its records leave her phone at the
/// next sync, after what she has pending is pushed (kept for review), as after a change of
/// her areas.
#[test]
fn a_community_taken_out_of_the_area_tree_leaves_the_phone() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let untouched = create(&mut monitor, C01, "Fatou Koné");
    let edited = create(&mut monitor, C01, "Awa Traoré");
    monitor.sync(&mut hub);
    let mut c: ChildCase = monitor.store.get(edited).unwrap();
    c.notes = "Vue au marché.".into();
    monitor.store.update(&c).unwrap();

    let mut tree: serde_json::Value =
        serde_json::from_str(include_str!("../../reference/areas-CI.json")).unwrap();
    let district = tree["administrative_areas"]["children"][0]["children"][0]
        .as_object_mut()
        .unwrap();
    assert_eq!(district["code"], "CI-R1-D1");
    district["children"]
        .as_array_mut()
        .unwrap()
        .retain(|community| community["code"] != C01);
    let file = ReferenceFile::parse(&tree.to_string()).unwrap();
    hub.publish_reference(&file.key, file.content).unwrap();

    let summary = monitor.sync(&mut hub);
    assert_eq!(summary.quarantined, vec![edited], "{summary:?}");
    assert_eq!(left(&summary), vec![untouched], "{summary:?}");
    assert!(!monitor.has(untouched) && !monitor.has(edited));
    assert!(!monitor.files_hold("Fatou Koné"));
    assert_eq!(summary.pending, 0, "{summary:?}");
}

#[test]
fn erased_content_never_comes_back_under_any_id() {
    const NAME: &str = "Zoubeyratou Kpandjélé";
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    // A device outside the monitor's scope, and one in it that joins after the erasure.
    let mut elsewhere = Device::new(dir.path(), "elsewhere", Role::CommunityMonitor, &[C02]);
    // A device enrolled before the record exists, which stays offline until after the
    // erasure (it never holds the record).
    let mut newcomer = Device::new(dir.path(), "newcomer", Role::CommunityMonitor, &[C01]);
    newcomer.sync(&mut hub);
    let erased = create(&mut monitor, C01, NAME);
    monitor.sync(&mut hub);
    supervisor.sync(&mut hub);
    elsewhere.sync(&mut hub);
    let old = monitor.store.export_document(erased).unwrap();

    // Someone keeps a copy of the old document under a fresh id (a store that never heard of
    // the erasure: a peer, a bundle's author).
    let mut keeper = Device::new(dir.path(), "keeper", Role::Supervisor, &["CI-R1"]);
    // Enrolled (its certificate, and the directory with the monitor's), it is a peer the
    // monitor trusts.
    keeper.sync(&mut hub);
    keeper.sync(&mut hub);
    let fresh = Uuid::now_v7();
    assert!(keeper.store.merge_document(fresh, &old).unwrap());
    let to_monitor = [
        vigie_core::sync::Recipient::Device(monitor.store.device_id()),
        vigie_core::sync::Recipient::Device(newcomer.store.device_id()),
    ];
    let (bundle, _) = keeper.store.export_bundle(0, &[], &to_monitor).unwrap();

    erase(&mut hub, &supervisor.principal, erased);
    let summary = monitor.sync(&mut hub);
    assert_eq!(summary.erased, vec![erased]);
    assert_eq!(summary.removed.len(), 1);
    assert_eq!(summary.removed[0].why, Removal::Erased);
    assert!(!monitor.has(erased) && !monitor.files_hold(NAME));
    // Only devices whose scope held the record hear of it.
    assert!(elsewhere.sync(&mut hub).erased.is_empty());

    // Under its own id or a fresh one, from a merge, a bundle or a peer: refused.
    assert!(!monitor.store.merge_document(erased, &old).unwrap());
    assert!(!monitor.store.merge_document(fresh, &old).unwrap());
    let report = monitor.store.import_bundle(&bundle).unwrap();
    assert_eq!(report.changed, 0);
    assert!(!monitor.has(fresh));
    let scope = PeerScope::default();
    let (mut session, mut message) = keeper.store.peer_start(&scope, 64 * 1024).unwrap();
    let mut answer = monitor.store.peer_accept(&scope, 64 * 1024).unwrap();
    while let Some(reply) = monitor.store.peer_step(&mut answer, &message).unwrap() {
        match keeper.store.peer_step(&mut session, &reply).unwrap() {
            Some(next) => message = next,
            None => break,
        }
    }
    assert!(
        !monitor.has(fresh),
        "a peer brought the erased content back"
    );
    assert_eq!(answer.received, 0, "dropped, so not counted as received");
    assert!(
        monitor
            .store
            .search_names("Zoubeyratou", 10)
            .unwrap()
            .is_empty()
    );
    assert!(!monitor.files_hold(NAME));

    // A device that joins later hears of the tombstone with its roots, and refuses the copy
    // although it never held the record (which its summary does not count as erased from it).
    assert!(newcomer.sync(&mut hub).erased.is_empty());
    assert!(newcomer.store.import_bundle(&bundle).unwrap().changed == 0);
    assert!(!newcomer.has(fresh));

    // The hub refuses the copy under the fresh id from the keeper, and tells it to drop it.
    keeper.principal.areas = ["CI-R1".to_string()].into();
    let summary = keeper.sync(&mut hub);
    assert!(summary.erased.contains(&fresh), "{summary:?}");
    assert!(!keeper.has(fresh));
    assert!(hub.kind_of(fresh).is_err());
    supervisor.sync(&mut hub);
    assert!(!supervisor.has(erased) && !supervisor.has(fresh));
}

/// A case's document pushed again under another id (a copy, by a phone of its scope) is
/// refused; one a hub of an earlier version took goes with the case when it is erased: it kept
/// the child's name on the hub and on supervisors' phones. Another record's history put into a
/// record is refused.
#[test]
fn an_erasure_takes_the_copies_of_the_case_under_other_ids() {
    const NAME: &str = "Bintou Assémien";
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let original = create(&mut monitor, C01, NAME);
    let other = create(&mut monitor, C01, "Awa Traoré");
    monitor.sync(&mut hub);
    let old = monitor.store.export_document(original).unwrap();
    let other_before = hub.export_document(other).unwrap();

    // The history put into another of her cases (her phone refuses it; a request does not).
    let put_together = outcomes(
        &mut hub,
        &monitor,
        vec![PushEntry {
            id: other,
            heads: Vec::new(),
            changes: old.clone(),
        }],
    );
    assert_eq!(put_together, vec![refused(Refusal::Damaged)]);
    assert_eq!(hub.export_document(other).unwrap(), other_before);

    // Copies under fresh ids: refused, naming the id.
    let copies = [Uuid::now_v7(), Uuid::now_v7()];
    for copy in copies {
        assert!(monitor.store.merge_document(copy, &old).unwrap());
    }
    let summary = monitor.sync(&mut hub);
    assert_eq!(summary.refused.len(), 2, "{summary:?}");
    for copy in copies {
        let detail = vigie_core::sync::wire::RefusalDetail::of(&summary.refusal_details, copy)
            .expect("the refusal says why");
        assert_eq!(detail.field, "id");
        assert!(hub.kind_of(copy).is_err());
        monitor.store.discard_refused_changes(copy).unwrap();
    }
    // Taken by a hub of an earlier version (stored as it was then, without the rule).
    for copy in copies {
        assert!(hub.merge_document(copy, &old).unwrap());
        hub.debug_fill_roots().unwrap();
    }
    hub.debug_fill_roots().unwrap();
    monitor.sync(&mut hub);
    supervisor.sync(&mut hub);
    assert_eq!(
        supervisor.store.search_names("Bintou", 10).unwrap().len(),
        3
    );

    erase(&mut hub, &supervisor.principal, original);
    for id in copies {
        assert!(hub.kind_of(id).is_err(), "the copy went with the case");
    }
    assert!(hub.kind_of(other).is_ok());
    assert!(hub.search_names("Bintou", 10).unwrap().is_empty());
    supervisor.sync(&mut hub);
    assert!(
        supervisor
            .store
            .search_names("Bintou", 10)
            .unwrap()
            .is_empty()
    );
    let summary = monitor.sync(&mut hub);
    assert_eq!(summary.erased.len(), 3, "{summary:?}");
    assert!(!monitor.files_hold(NAME));
}

/// Copies are found both ways, and reach no further than the erasing supervisor's areas:
/// erasing a copy (one a hub of an earlier version took) leaves the case it copies when that
/// case was moved out of them. A copy kept for review (pushed by a user who had lost the area)
/// goes with the case's erasure, and no review brings it back.
#[test]
fn copies_reach_no_further_than_the_supervisors_areas_nor_back_through_a_review() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut region = Device::new(dir.path(), "region", Role::Supervisor, &["CI-R1"]);
    let district = Device::new(dir.path(), "district", Role::Supervisor, &["CI-R1-D1"]);
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let push = |hub: &mut Store, d: &Device, id: Uuid, changes: &[u8]| {
        outcomes(
            hub,
            d,
            vec![PushEntry {
                id,
                heads: Vec::new(),
                changes: changes.to_vec(),
            }],
        )
        .remove(0)
    };

    // A copy in C01; the case moved to another district by the region's supervisor.
    let moved = create(&mut monitor, C01, "Adjara Koné");
    monitor.sync(&mut hub);
    let copy = Uuid::now_v7();
    let old = monitor.store.export_document(moved).unwrap();
    assert!(matches!(
        push(&mut hub, &monitor, copy, &old),
        PushOutcome::Refused { .. }
    ));
    // Taken by a hub of an earlier version.
    assert!(hub.merge_document(copy, &old).unwrap());
    region.sync(&mut hub);
    let mut case: ChildCase = region.store.get(moved).unwrap();
    case.area = area("CI-R1-D2-C01");
    region.store.update(&case).unwrap();
    assert!(region.sync(&mut hub).refused.is_empty());
    erase(&mut hub, &district.principal, copy);
    assert!(hub.kind_of(moved).is_ok(), "another district's case stays");

    // A copy kept for review: the monitor lost every area (deactivated), then pushed it (its
    // scope judged first, as any record outside it is).
    let erased = create(&mut monitor, C01, "Kadidia Sanogo");
    monitor.sync(&mut hub);
    let old = monitor.store.export_document(erased).unwrap();
    monitor.principal.areas = Default::default();
    assert_eq!(
        push(&mut hub, &monitor, Uuid::now_v7(), &old),
        PushOutcome::Quarantined
    );
    let held = hub
        .in_transaction(&mut |tx| tx.quarantined())
        .unwrap()
        .len();
    erase(&mut hub, &district.principal, erased);
    assert_eq!(
        hub.in_transaction(&mut |tx| tx.quarantined())
            .unwrap()
            .len(),
        held - 1,
        "the copy under review went with the case"
    );
    assert!(hub.search_names("Kadidia", 10).unwrap().is_empty());
}

#[test]
fn erasing_a_case_erases_the_duplicates_merged_into_it_and_not_the_other_way() {
    const NAME: &str = "Nafissatou Gbagbéhi";
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let kept = create(&mut monitor, C01, NAME);
    let duplicate = create(&mut monitor, C01, NAME);
    let other_kept = create(&mut monitor, C01, "Aya Koffi");
    let other_duplicate = create(&mut monitor, C01, "Aya Koffi");
    monitor.sync(&mut hub);
    supervisor.sync(&mut hub);
    supervisor.store.merge_cases(kept, duplicate).unwrap();
    supervisor
        .store
        .merge_cases(other_kept, other_duplicate)
        .unwrap();
    supervisor.sync(&mut hub);
    monitor.sync(&mut hub);

    // The kept case: the same child's second registration goes with it, on the hub and on
    // every device that held it.
    let erased = hub
        .in_transaction(&mut |tx| erase_record(tx, &supervisor.principal, kept))
        .unwrap();
    assert_eq!(erased.records, vec![kept, duplicate]);
    hub.purge_freed_content().unwrap();
    for id in [kept, duplicate] {
        assert!(hub.kind_of(id).is_err());
    }
    let summary = monitor.sync(&mut hub);
    let mut gone = summary.erased.clone();
    gone.sort();
    let mut both = vec![kept, duplicate];
    both.sort();
    assert_eq!(gone, both);
    assert!(!monitor.has(kept) && !monitor.has(duplicate));
    assert!(!monitor.files_hold(NAME));

    // A duplicate erased on its own (registered in error) leaves the kept case.
    erase(&mut hub, &supervisor.principal, other_duplicate);
    assert!(hub.kind_of(other_kept).is_ok());
    monitor.sync(&mut hub);
    assert!(monitor.has(other_kept) && !monitor.has(other_duplicate));

    // A case listed by hand among another's duplicates (its own merged_into says nothing) is
    // no duplicate: erasing that other case leaves it.
    let unrelated = create(&mut monitor, C01, "Mariam Sanogo");
    monitor.sync(&mut hub);
    supervisor.sync(&mut hub);
    let mut listing: ChildCase = supervisor.store.get(other_kept).unwrap();
    listing.merged_from.insert(unrelated);
    supervisor.store.update(&listing).unwrap();
    supervisor.sync(&mut hub);
    let erased = hub
        .in_transaction(&mut |tx| erase_record(tx, &supervisor.principal, other_kept))
        .unwrap();
    assert_eq!(erased.records, vec![other_kept]);
    assert!(hub.kind_of(unrelated).is_ok());
    // A supervisor of another district erases nothing.
    let mut district = Device::new(dir.path(), "district", Role::Supervisor, &["CI-R1-D2"]);
    district.sync(&mut hub);
    let refused = hub.in_transaction(&mut |tx| erase_record(tx, &district.principal, unrelated));
    assert!(
        matches!(refused, Err(Error::NotAllowed { .. })),
        "{refused:?}"
    );
    assert!(hub.kind_of(unrelated).is_ok());
}

#[test]
fn a_revoked_device_forgets_everything_at_once_and_stays_revoked() {
    const NAME: &str = "Massandjé Yéo";
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let synced = create(&mut monitor, C01, NAME);
    monitor.sync(&mut hub);
    // One more, never sent: it goes too (the phone is lost or seized).
    let pending = create(&mut monitor, C01, NAME);
    // A second handle on the file (a background worker's), open before the revocation.
    let mut worker = Store::open(StoreConfig::new(
        &monitor.path,
        Encryption::Unencrypted,
        monitor.principal.user,
    ))
    .unwrap();
    let handed = monitor.store.export_document(synced).unwrap();
    let mut left = monitor.store.forget_all_for_revocation().unwrap();
    // It takes no write afterwards, nor anything received (a case handed over, a peer's): a
    // child's record would stay on the phone.
    assert!(matches!(
        worker.create(&case(area(C01), NAME, monitor.principal.user)),
        Err(Error::WipeRequested)
    ));
    assert!(matches!(
        worker.merge_document(synced, &handed),
        Err(Error::WipeRequested)
    ));
    drop(worker);
    left.sort();
    let mut both = vec![
        (synced, RecordKind::ChildCase),
        (pending, RecordKind::ChildCase),
    ];
    both.sort();
    assert_eq!(left, both);
    assert!(!monitor.has(synced) && !monitor.has(pending));
    assert!(!monitor.files_hold(NAME));
    let Device { store, path, .. } = monitor;
    store.close().unwrap();
    let again = Store::open(StoreConfig::new(
        &path,
        Encryption::Unencrypted,
        Uuid::now_v7(),
    ));
    assert!(matches!(again, Err(Error::WipeRequested)), "{again:?}");
    // Its identity went too: with its mark removed, the file holds no key to sign or open
    // bundles with, and is no enrolled device any more.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let keys: Vec<String> = conn
        .prepare("SELECT key FROM meta ORDER BY key")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        keys,
        ["actor_nonce", "device_id", "revoked_by_hub", "user_id"]
    );
    let peers: i64 = conn
        .query_row("SELECT count(*) FROM peer_directory", [], |r| r.get(0))
        .unwrap();
    assert_eq!(peers, 0);
}

#[test]
fn a_merge_into_a_case_the_hub_does_not_hold_is_refused() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let kept = create(&mut monitor, C01, "Awa Bamba");
    let duplicate = create(&mut monitor, C01, "Awa Bamba");
    let other = create(&mut monitor, C01, "Fanta Coulibaly");
    monitor.sync(&mut hub);
    supervisor.sync(&mut hub);
    // Offline, the supervisor merges; meanwhile the kept case is erased on the hub.
    supervisor.store.merge_cases(kept, duplicate).unwrap();
    // A case's `merged_into` set by hand to the id of nothing is refused on the phone already.
    let mut by_hand: ChildCase = supervisor.store.get(other).unwrap();
    by_hand.merged_into = Some(Uuid::now_v7());
    assert!(matches!(
        supervisor.store.update(&by_hand),
        Err(Error::NotAllowed { .. })
    ));
    assert_eq!(
        supervisor
            .store
            .get::<ChildCase>(other)
            .unwrap()
            .merged_into,
        None
    );
    erase(&mut hub, &supervisor.principal, kept);
    let summary = supervisor.sync(&mut hub);
    assert!(
        summary
            .refused
            .contains(&(duplicate, Refusal::StepNotAllowed)),
        "{summary:?}"
    );
    // It is hidden nowhere else.
    assert_eq!(hub.get::<ChildCase>(duplicate).unwrap().merged_into, None);
}

/// The other way round: offline, a supervisor merges a duplicate into the kept case while the
/// duplicate is erased on the hub (consent withdrawn). The kept case's merge would bring back
/// what it copied from the erased one (its referral and provider): refused, naming the merge,
/// and given up on the phone, nothing of it is left anywhere.
#[test]
fn a_merge_of_a_case_the_hub_erased_brings_nothing_of_it_back() {
    const PROVIDER: &str = "Foyer Diarra";
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let kept = create(&mut monitor, C01, "Awa Bamba");
    let mut duplicate = case(area(C01), "Awa Bamba", monitor.principal.user);
    duplicate.referrals.insert(
        Uuid::now_v7(),
        Referral {
            service: ServiceKind::SocialProtection,
            provider: PROVIDER.into(),
            date: NaiveDate::from_ymd_opt(2026, 4, 2).unwrap(),
            outcome: String::new(),
        },
    );
    let duplicate = monitor.store.create(&duplicate).unwrap().id;
    monitor.sync(&mut hub);
    supervisor.sync(&mut hub);
    supervisor.store.merge_cases(kept, duplicate).unwrap();
    assert_eq!(
        supervisor
            .store
            .get::<ChildCase>(kept)
            .unwrap()
            .referrals
            .len(),
        1
    );
    erase(&mut hub, &supervisor.principal, duplicate);

    let summary = supervisor.sync(&mut hub);
    assert_eq!(
        summary.refused,
        vec![(kept, Refusal::StepNotAllowed)],
        "{summary:?}"
    );
    let detail = wire::RefusalDetail::of(&summary.refusal_details, kept).unwrap();
    assert_eq!(detail.field, "merged_from");
    let held: ChildCase = hub.get(kept).unwrap();
    assert!(held.referrals.is_empty() && held.merged_from.is_empty());
    monitor.sync(&mut hub);
    assert!(!monitor.files_hold(PROVIDER));

    // Given up on the phone: the hub's version, and nothing waits.
    supervisor.store.discard_refused_changes(kept).unwrap();
    assert!(!supervisor.has(duplicate));
    assert!(!supervisor.files_hold(PROVIDER));
    let summary = supervisor.sync(&mut hub);
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.pending, 0, "{summary:?}");
}

/// A request pushing `entries` and asking for `refetch`, as `device` would send it.
fn request(d: &Device, push: Vec<PushEntry>, refetch: Vec<Uuid>) -> Vec<u8> {
    wire::encode_request(&SyncRequest {
        actor: d.store.actor().to_bytes().to_vec(),
        cursor: None,
        push,
        refetch,
        max_response_bytes: 256 * 1024,
        receipt: 0,
        identity: None,
        headless_documents: false,
        incarnation: None,
        device_clock: None,
    })
}

fn outcomes(hub: &mut Store, d: &Device, push: Vec<PushEntry>) -> Vec<PushOutcome> {
    let response = hub
        .hub_handle(
            &d.principal,
            &request(d, push, Vec::new()),
            &HubLimits::default(),
        )
        .unwrap();
    let response = wire::decode_response(&response, 1 << 26).unwrap();
    response.acks.into_iter().map(|a| a.outcome).collect()
}

/// Changes built on a record's history are kept for review only when the sender's user once
/// worked where the record was filed. A monitor of another community who came by the record's
/// bytes (a bundle, a copied file) puts nothing before this community's supervisor: answered
/// as for a record it cannot see. A monitor whose case was moved away while they edited it
/// offline keeps the edit for review.
#[test]
fn only_a_user_who_once_held_a_record_has_its_changes_kept_for_review() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut owner = Device::new(dir.path(), "owner", Role::CommunityMonitor, &[C01]);
    let mut stranger = Device::new(dir.path(), "stranger", Role::CommunityMonitor, &[C02]);
    let theirs = create(&mut owner, C01, "Adjoua Kouassi");
    owner.sync(&mut hub);
    stranger.sync(&mut hub);
    // The stranger's device edits the case from its bytes: its change builds on the history.
    stranger
        .store
        .merge_document(theirs, &owner.store.export_document(theirs).unwrap())
        .unwrap();
    let mut case: ChildCase = stranger.store.get(theirs).unwrap();
    case.name = "Renommée Ailleurs".into();
    stranger.store.update(&case).unwrap();
    let pushed = stranger.store.export_document(theirs).unwrap();
    let answer = outcomes(
        &mut hub,
        &stranger,
        vec![PushEntry {
            id: theirs,
            heads: Vec::new(),
            changes: pushed,
        }],
    )
    .remove(0);
    assert!(!matches!(answer, PushOutcome::Quarantined), "{answer:?}");
    assert!(
        hub.in_transaction(&mut |tx| tx.quarantined())
            .unwrap()
            .is_empty()
    );
    assert_eq!(hub.get::<ChildCase>(theirs).unwrap().name, "Adjoua Kouassi");
    // Nor once deactivated (a user with no area keeps for review only what they held).
    let working = stranger.principal.clone();
    stranger.principal.areas.clear();
    common::administer(&mut hub, &stranger.principal);
    let pushed = stranger.store.export_document(theirs).unwrap();
    let entry = PushEntry {
        id: theirs,
        heads: Vec::new(),
        changes: pushed,
    };
    let answer = outcomes(&mut hub, &stranger, vec![entry]).remove(0);
    assert!(!matches!(answer, PushOutcome::Quarantined), "{answer:?}");
    stranger.principal = working;

    // The stranger's own case, edited offline while a supervisor moves it to C01: the edit was
    // made where its monitor works, and is kept for review.
    let own = create(&mut stranger, C02, "Awa Traoré");
    stranger.sync(&mut hub);
    supervisor.sync(&mut hub);
    let mut case: ChildCase = stranger.store.get(own).unwrap();
    case.notes = "Vue au marché.".into();
    stranger.store.update(&case).unwrap();
    let mut moved: ChildCase = supervisor.store.get(own).unwrap();
    moved.area = area(C01);
    supervisor.store.update(&moved).unwrap();
    supervisor.sync(&mut hub);
    let summary = stranger.sync(&mut hub);
    assert_eq!(summary.quarantined, vec![own], "{summary:?}");
}

#[test]
fn what_a_device_cannot_see_gets_one_answer_whatever_it_is() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut probe = Device::new(dir.path(), "probe", Role::CommunityMonitor, &[C02]);
    let hidden_case = create(&mut supervisor, C01, "Caché");
    let workplace = supervisor
        .store
        .create(&Workplace::new(
            "Carrière",
            "mining",
            Formality::Informal,
            // Outside the probe's community (monitors receive their communities' workplaces).
            area(C01),
        ))
        .unwrap()
        .id;
    let erased = create(&mut supervisor, C02, "Effacé");
    supervisor.sync(&mut hub);
    erase(&mut hub, &supervisor.principal, erased);

    // The same bytes pushed under each id: empty, damaged, a valid case of the probe's own
    // community (made under another id), a case of another community.
    let own = create(&mut probe, C02, "Le mien");
    let own_doc = probe.store.export_document(own).unwrap();
    let other = create(&mut probe, C01, "Ailleurs");
    let other_doc = probe.store.export_document(other).unwrap();
    for bytes in [Vec::new(), b"garbage".to_vec(), own_doc, other_doc] {
        // An id nothing was ever stored under (a valid case pushed under it is stored), and
        // another after it, whose answer the ids the probe cannot see must give (the bytes
        // stored under the first, a copy of them is refused under any other id).
        let (absent, absent_after) = (Uuid::now_v7(), Uuid::now_v7());
        let answers: Vec<PushOutcome> = [absent, hidden_case, workplace, erased, absent_after]
            .iter()
            .map(|id| {
                outcomes(
                    &mut hub,
                    &probe,
                    vec![PushEntry {
                        id: *id,
                        heads: Vec::new(),
                        changes: bytes.clone(),
                    }],
                )
                .remove(0)
            })
            .collect();
        // An absent id would store a valid case: every other id answers as a record outside
        // the scope does.
        let expected = match &answers[4] {
            PushOutcome::Accepted { .. } => refused(Refusal::OutOfScope),
            other => other.clone(),
        };
        for (what, answer) in ["hidden case", "workplace", "erased case"]
            .iter()
            .zip(&answers[1..4])
        {
            assert_eq!(answer, &expected, "{what}, {} bytes pushed", bytes.len());
        }
        // Stored nothing under the ids it cannot see.
        assert!(hub.kind_of(erased).is_err());
        assert_eq!(hub.kind_of(workplace).unwrap(), RecordKind::Workplace);
    }
}

fn refused(reason: Refusal) -> PushOutcome {
    PushOutcome::Refused {
        reason,
        detail: None,
    }
}

#[test]
fn requests_are_answered_within_one_budget_and_names_count_once() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let ids: Vec<Uuid> = (0..120)
        .map(|i| {
            let mut c = case(area(C01), &format!("Enfant {i}"), supervisor.principal.user);
            // ~2 KB of notes each, so that the budget binds.
            c.notes = format!("{i} ").repeat(600);
            supervisor.store.create(&c).unwrap().id
        })
        .collect();
    supervisor.sync(&mut hub);
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);

    // One record named 200 times: sent once.
    let response = hub
        .hub_handle(
            &monitor.principal,
            &request(&monitor, Vec::new(), vec![ids[0]; 200]),
            &HubLimits::default(),
        )
        .unwrap();
    let decoded = wire::decode_response(&response, 1 << 26).unwrap();
    assert_eq!(decoded.records.iter().filter(|r| r.id == ids[0]).count(), 1);
    // Every record named once: the answer stays within what the device asked for.
    let tight = 32 * 1024;
    let mut asked =
        wire::decode_request(&request(&monitor, Vec::new(), ids.clone()), 1 << 26).unwrap();
    asked.max_response_bytes = tight as u32;
    let response = hub
        .hub_handle(
            &monitor.principal,
            &wire::encode_request(&asked),
            &HubLimits::default(),
        )
        .unwrap();
    let decoded = wire::decode_response(&response, 1 << 26).unwrap();
    let bytes: usize = decoded.records.iter().map(|r| r.changes.len()).sum();
    assert!(bytes <= tight, "{bytes} bytes for a budget of {tight}");
    assert!(decoded.records.len() < ids.len());

    // One record pushed 200 times: one answer.
    let doc = supervisor.store.export_document(ids[1]).unwrap();
    let pushes: Vec<PushEntry> = (0..200)
        .map(|_| PushEntry {
            id: ids[1],
            heads: Vec::new(),
            changes: doc.clone(),
        })
        .collect();
    let request = wire::encode_request(&SyncRequest {
        actor: supervisor.store.actor().to_bytes().to_vec(),
        cursor: None,
        push: pushes,
        refetch: Vec::new(),
        max_response_bytes: tight as u32,
        receipt: 0,
        identity: None,
        headless_documents: false,
        incarnation: None,
        device_clock: None,
    });
    let response = hub
        .hub_handle(&supervisor.principal, &request, &HubLimits::default())
        .unwrap();
    let decoded = wire::decode_response(&response, 1 << 26).unwrap();
    assert_eq!(decoded.acks.len(), 1);

    // Through small messages the device still gets everything, page after page.
    let summary = monitor.sync_with(
        &mut hub,
        &SyncOptions {
            max_message_bytes: 16 * 1024,
            // Pages that stay small, however fast the link.
            max_page_bytes: 16 * 1024,
            ..SyncOptions::default()
        },
    );
    assert!(summary.round_trips > 5, "{summary:?}");
    for id in &ids {
        assert!(monitor.has(*id));
    }
}

#[test]
fn a_stored_record_that_cannot_be_read_is_skipped_and_the_rest_arrives() {
    let dir = TempDir::new().unwrap();
    let mut hub_store = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let damaged = create(&mut supervisor, C01, "Abîmé");
    let fine = create(&mut supervisor, C01, "Intact");
    supervisor.sync(&mut hub_store);
    hub_store.close().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("hub.db")).unwrap();
    // A zstd frame that claims more than any document may hold.
    conn.execute(
        "UPDATE records SET doc = ?2 WHERE id = ?1",
        rusqlite::params![
            damaged.as_bytes().as_slice(),
            [0x28u8, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0].as_slice()
        ],
    )
    .unwrap();
    drop(conn);
    let mut hub_store = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let summary = monitor.sync(&mut hub_store);
    assert!(monitor.has(fine) && !monitor.has(damaged), "{summary:?}");
    // A refetch of it is answered without it, too.
    let response = hub_store
        .hub_handle(
            &monitor.principal,
            &request(&monitor, Vec::new(), vec![damaged, fine]),
            &HubLimits::default(),
        )
        .unwrap();
    let decoded = wire::decode_response(&response, 1 << 26).unwrap();
    assert!(decoded.records.iter().all(|r| r.id != damaged));
}

#[test]
fn a_store_restored_from_an_older_copy_moves_its_edits_to_a_new_actor() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let edited = create(&mut monitor, C01, "Akissi Bamba");
    monitor.sync(&mut hub);
    let copy = dir.path().join("copy.db");
    let path = monitor.path.clone();
    let (user, principal) = (monitor.principal.user, monitor.principal.clone());
    let reopen =
        |path: &Path| Store::open(StoreConfig::new(path, Encryption::Unencrypted, user)).unwrap();
    monitor.store.close().unwrap();
    std::fs::copy(&path, &copy).unwrap();
    monitor.store = reopen(&path);

    // After the copy: an edit and a new case, both synced.
    let mut c: ChildCase = monitor.store.get(edited).unwrap();
    c.hours_per_week = 30;
    monitor.store.update(&c).unwrap();
    let later = create(&mut monitor, C01, "Aya Ouédraogo");
    monitor.sync(&mut hub);
    let old_actor = monitor.store.actor().clone();
    monitor.store.close().unwrap();

    // Restored from the copy: it edits the same case again (reusing the actor's numbers).
    std::fs::copy(&copy, &path).unwrap();
    let _ = std::fs::remove_file(format!("{}-wal", path.display()));
    let mut restored = Device {
        store: reopen(&path),
        principal,
        path: path.clone(),
    };
    let mut c: ChildCase = restored.store.get(edited).unwrap();
    c.notes = "Après restauration.".into();
    restored.store.update(&c).unwrap();
    // And a document attached after the restore: one of the edits moved, as the notes are.
    let consent = NewAttachment {
        kind: AttachmentKind::Document,
        media_type: "application/pdf".into(),
        caption: "Consentement".into(),
    };
    let attached = restored
        .store
        .add_attachment(edited, &consent, &b"%PDF-".repeat(600)[..])
        .unwrap()
        .id;
    let summary = restored.sync(&mut hub);
    assert!(
        summary.refused.is_empty() && summary.failed.is_empty(),
        "{summary:?}"
    );
    assert!(
        restored.has(later),
        "the case recorded after the copy came back"
    );
    assert_ne!(restored.store.actor(), &old_actor, "a new actor");
    let got: ChildCase = restored.store.get(edited).unwrap();
    assert_eq!(
        (got.hours_per_week, got.notes.as_str()),
        (30, "Après restauration.")
    );
    let on_hub: ChildCase = hub.get(edited).unwrap();
    assert_eq!(
        (on_hub.hours_per_week, on_hub.notes.as_str()),
        (30, "Après restauration.")
    );
    let ids = |store: &Store| -> Vec<Uuid> {
        store
            .attachments(edited)
            .unwrap()
            .iter()
            .map(|a| a.attachment.id)
            .collect()
    };
    assert_eq!(ids(&restored.store), vec![attached], "kept on the phone");
    assert_eq!(ids(&hub), vec![attached], "in the hub's manifest");
    assert_eq!(restored.sync(&mut hub).pending, 0);
    // The new actor is the store's for good.
    let actor = restored.store.actor().clone();
    restored.store.close().unwrap();
    assert_eq!(reopen(&path).actor(), &actor);
}

/// The hub's store replaced by a copy taken earlier (a backup restored): the devices that
/// pushed after the copy are ahead of it, and offer everything they hold again.
fn restore_hub(hub: Store, path: &Path, copy: &Path) -> Store {
    hub.close().unwrap();
    std::fs::copy(copy, path).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    common::hub_store(path)
}

#[test]
fn a_hub_restored_from_an_older_copy_gets_back_what_devices_sent_after_it() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("hub.db");
    let copy = dir.path().join("backup.db");
    let mut hub = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let mut other = Device::new(dir.path(), "other", Role::CommunityMonitor, &[C02]);
    let mut neighbour = Device::new(dir.path(), "neighbour", Role::CommunityMonitor, &[C01]);
    let before = create(&mut monitor, C01, "Akissi Bamba");
    monitor.sync(&mut hub);
    other.sync(&mut hub);
    neighbour.sync(&mut hub);
    hub.close().unwrap();
    std::fs::copy(&path, &copy).unwrap();
    hub = common::hub_store(&path);

    // After the copy: the monitor edits its case and records another; a monitor of another
    // community records one of its own. All of it reaches the hub, and the devices apply its
    // answers.
    let mut c: ChildCase = monitor.store.get(before).unwrap();
    c.hours_per_week = 30;
    monitor.store.update(&c).unwrap();
    let after = create(&mut monitor, C01, "Aya Ouédraogo");
    let elsewhere = create(&mut other, C02, "Mariam Traoré");
    assert_eq!(monitor.sync(&mut hub).pending, 0);
    assert_eq!(other.sync(&mut hub).pending, 0);
    neighbour.sync(&mut hub);

    // The hub is restored from the copy: it lost the edit and both new cases. A neighbour of
    // the monitor records a case on the restored hub before the monitor syncs again.
    hub = restore_hub(hub, &path, &copy);
    assert!(
        hub.get::<ChildCase>(after).is_err(),
        "lost with the restore"
    );
    let new_on_hub = create(&mut neighbour, C01, "Fatou Koné");
    neighbour.sync(&mut hub);

    let summary = monitor.sync(&mut hub);
    assert!(
        summary.refused.is_empty() && summary.failed.is_empty(),
        "{summary:?}"
    );
    assert_eq!(summary.pending, 0, "nothing stays in the outbox");
    let on_hub: ChildCase = hub.get(before).unwrap();
    assert_eq!(on_hub.hours_per_week, 30, "the edit after the copy is back");
    assert_eq!(
        hub.get::<ChildCase>(after).unwrap().name,
        "Aya Ouédraogo",
        "the case recorded after the copy is back"
    );
    assert!(
        monitor.has(new_on_hub),
        "what the restored hub recorded reaches the device (its old cursor was past it)"
    );
    // The other community's case comes back from its own device, and only there: the scope
    // rules hold through the offer.
    assert!(hub.get::<ChildCase>(elsewhere).is_err());
    assert!(!monitor.has(elsewhere));
    assert_eq!(other.sync(&mut hub).pending, 0);
    assert_eq!(
        hub.get::<ChildCase>(elsewhere).unwrap().name,
        "Mariam Traoré"
    );
    assert_eq!(monitor.sync(&mut hub).received, 0);
    assert!(!monitor.has(elsewhere), "outside the monitor's areas");
    // The neighbour, who received the monitor's records before the restore, holds them but
    // cannot vouch for another device's changes: it waits, and takes nothing it may not.
    let summary = neighbour.sync(&mut hub);
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.pending, 0);
    // Once back in step, a sync offers nothing again.
    assert_eq!(monitor.store.hub_outbox_len().unwrap(), 0);
}

#[test]
fn what_a_device_recorded_on_a_case_merged_meanwhile_goes_to_the_case_kept() {
    const NAME: &str = "Adjoua Yao";
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let kept = create(&mut monitor, C01, NAME);
    let duplicate = create(&mut monitor, C01, NAME);
    let follow_up = |day| FollowUp {
        date: NaiveDate::from_ymd_opt(2026, 4, day).unwrap(),
        situation: FollowUpSituation::InSchool,
        notes: String::new(),
        next_due: None,
    };
    monitor.sync(&mut hub);
    let (_, taken_key) = monitor
        .store
        .add_follow_up(duplicate, follow_up(2))
        .unwrap();
    monitor.sync(&mut hub);
    supervisor.sync(&mut hub);

    // The supervisor merges the two registrations; the monitor, offline, records a follow-up
    // of the child and night work on the registration it has at hand.
    supervisor.store.merge_cases(kept, duplicate).unwrap();
    let (_, late_key) = monitor
        .store
        .add_follow_up(duplicate, follow_up(5))
        .unwrap();
    let mut dup: ChildCase = monitor.store.get(duplicate).unwrap();
    dup.night_work = true;
    monitor.store.update(&dup).unwrap();
    supervisor.sync(&mut hub);
    // The merge took the first follow-up; the supervisor finds it was recorded in error.
    let mut on_supervisor: ChildCase = supervisor.store.get(kept).unwrap();
    assert!(on_supervisor.followups.remove(&taken_key).is_some());
    supervisor.store.update(&on_supervisor).unwrap();
    supervisor.sync(&mut hub);

    // The monitor's next sync brings what it recorded over to the case kept, in one session.
    let summary = monitor.sync(&mut hub);
    assert_eq!(summary.pending, 0, "{summary:?}");
    let on_hub: ChildCase = hub.get(kept).unwrap();
    assert!(on_hub.followups.contains_key(&late_key));
    assert!(on_hub.night_work);
    // What the merge took and the supervisor removed since stays removed.
    assert!(!on_hub.followups.contains_key(&taken_key));
    supervisor.sync(&mut hub);
    let on_supervisor: ChildCase = supervisor.store.get(kept).unwrap();
    assert!(on_supervisor.followups.contains_key(&late_key));
    assert!(!on_supervisor.followups.contains_key(&taken_key));
    assert!(on_supervisor.night_work);

    // Once: later syncs bring nothing over again.
    let mut again: ChildCase = supervisor.store.get(kept).unwrap();
    again.followups.remove(&late_key);
    supervisor.store.update(&again).unwrap();
    supervisor.sync(&mut hub);
    monitor.sync(&mut hub);
    monitor.sync(&mut hub);
    let on_hub: ChildCase = hub.get(kept).unwrap();
    assert!(!on_hub.followups.contains_key(&late_key));
}

/// Two registrations of one child, the later one kept: the case kept takes the first one's
/// day (the child was identified then) and its age that day, so that the first
/// registration's referral comes over (the merge was refused for its date), and so does a
/// referral its monitor made offline while the merge was made (it stayed on the duplicate
/// without a word, the child counted identified, not referred).
#[test]
fn a_later_registration_kept_takes_the_first_ones_day_and_its_referrals() {
    const NAME: &str = "Adjoua Yao";
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let user = monitor.principal.user;
    let mut first = case(area(C01), NAME, user);
    first.identified_on = day(2025, 1, 10);
    first.estimated_age = Some(11);
    let first = monitor.store.create(&first).unwrap().id;
    let mut again = case(area(C01), NAME, user);
    again.identified_on = day(2026, 2, 14);
    let again = monitor.store.create(&again).unwrap().id;
    monitor.sync(&mut hub);
    let referral = |date| Referral {
        service: ServiceKind::Education,
        provider: "École primaire publique".into(),
        date,
        outcome: String::new(),
    };
    monitor
        .store
        .refer_case(first, referral(day(2025, 1, 20)))
        .unwrap();
    monitor.sync(&mut hub);
    supervisor.sync(&mut hub);

    // The supervisor keeps the later registration; the monitor, offline, refers the child
    // again on the registration she has at hand.
    let (kept, _) = supervisor.store.merge_cases(again, first).unwrap();
    assert_eq!(kept.identified_on, day(2025, 1, 10));
    // Her age that day is the one recorded that day (12 on the later day, a year and a month
    // on: moved back by whole years, a child of 17 turned 18 up to a year early).
    assert_eq!(kept.estimated_age, Some(11));
    assert_eq!(kept.referrals.len(), 1);
    assert_eq!(kept.status, CaseStatus::Referred);
    let (_, late) = monitor
        .store
        .refer_case(first, referral(day(2025, 2, 1)))
        .unwrap();
    supervisor.sync(&mut hub);
    let summary = monitor.sync(&mut hub);
    assert_eq!(summary.pending, 0, "{summary:?}");
    let on_hub: ChildCase = hub.get(again).unwrap();
    assert!(on_hub.referrals.contains_key(&late), "brought over");
    assert_eq!(on_hub.referrals.len(), 2);
    supervisor.sync(&mut hub);
    let figures = supervisor.store.indicators(&Default::default()).unwrap();
    assert_eq!(
        (figures.children.identified, figures.children.referred),
        (1, 1)
    );
}

/// The child's schooling and age corrected on the duplicate by its monitor while the merge was
/// made elsewhere (she dropped out; she is older than first thought): the correction reaches
/// the case kept, whose classification follows, as a corrected follow-up does.
#[test]
fn schooling_and_age_corrected_on_a_duplicate_merged_meanwhile_reach_the_case_kept() {
    const NAME: &str = "Adjoua Yao";
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let user = monitor.principal.user;
    let mut registered = case(area(C01), NAME, user);
    registered.school = SchoolStatus::Attending;
    let kept = monitor.store.create(&registered).unwrap().id;
    registered.id = Uuid::now_v7();
    let duplicate = monitor.store.create(&registered).unwrap().id;
    monitor.sync(&mut hub);
    supervisor.sync(&mut hub);

    supervisor.store.merge_cases(kept, duplicate).unwrap();
    let mut corrected: ChildCase = monitor.store.get(duplicate).unwrap();
    corrected.school = SchoolStatus::DroppedOut;
    corrected.estimated_age = Some(13);
    monitor.store.update(&corrected).unwrap();
    supervisor.sync(&mut hub);
    let summary = monitor.sync(&mut hub);
    assert_eq!(summary.pending, 0, "{summary:?}");
    let on_hub: ChildCase = hub.get(kept).unwrap();
    assert_eq!(
        (on_hub.school, on_hub.estimated_age),
        (SchoolStatus::DroppedOut, Some(13))
    );
}

/// A follow-up the merge copied to the case kept, corrected on the duplicate meanwhile by its
/// monitor ("at risk" found to be "still working", the next visit brought forward): the
/// correction reaches the case kept, through her phone when it holds the case kept and through
/// the hub when it does not, whether the merge or the correction reaches the hub first, and
/// the alert and the due list follow. A field the case kept's own copy changed too keeps the
/// kept case's value.
#[test]
fn a_follow_up_corrected_on_a_duplicate_merged_meanwhile_is_corrected_on_the_case_kept() {
    const NAME: &str = "Adjoua Yao";
    let day = |month, day| NaiveDate::from_ymd_opt(2026, month, day).unwrap();
    // Her phone holds the case kept or not; the merge reaches the hub before her correction
    // or after it.
    for (kept_on_her_phone, merge_first) in
        [(true, true), (false, true), (true, false), (false, false)]
    {
        let dir = TempDir::new().unwrap();
        let mut hub = hub(dir.path());
        let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
        let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
        let mut other = Device::new(dir.path(), "other", Role::CommunityMonitor, &[C02]);
        let kept = match kept_on_her_phone {
            true => create(&mut monitor, C01, NAME),
            false => create(&mut other, C02, NAME),
        };
        let duplicate = create(&mut monitor, C01, NAME);
        monitor.sync(&mut hub);
        let (_, key) = monitor
            .store
            .add_follow_up(
                duplicate,
                FollowUp {
                    date: day(4, 2),
                    situation: FollowUpSituation::AtRisk,
                    notes: "vu au marché".into(),
                    next_due: Some(day(6, 30)),
                },
            )
            .unwrap();
        monitor.sync(&mut hub);
        other.sync(&mut hub);
        supervisor.sync(&mut hub);
        supervisor.store.merge_cases(kept, duplicate).unwrap();
        // The supervisor reworded the notes of the copy the merge made.
        let mut on_supervisor: ChildCase = supervisor.store.get(kept).unwrap();
        on_supervisor.followups.get_mut(&key).unwrap().notes = "vue au marché".into();
        supervisor.store.update(&on_supervisor).unwrap();
        if merge_first {
            supervisor.sync(&mut hub);
        }

        // Offline, she corrects the follow-up on the registration she has at hand.
        let mut dup: ChildCase = monitor.store.get(duplicate).unwrap();
        let follow_up = dup.followups.get_mut(&key).unwrap();
        follow_up.situation = FollowUpSituation::StillWorking;
        follow_up.notes = "travaille encore".into();
        follow_up.next_due = Some(day(4, 9));
        monitor.store.update(&dup).unwrap();
        let summary = monitor.sync(&mut hub);
        assert!(summary.refused.is_empty(), "{summary:?}");
        assert_eq!(summary.pending, 0, "{summary:?}");
        if !merge_first {
            let summary = supervisor.sync(&mut hub);
            assert!(summary.refused.is_empty(), "{summary:?}");
            monitor.sync(&mut hub);
        }

        let on_hub: ChildCase = hub.get(kept).unwrap();
        let corrected = &on_hub.followups[&key];
        let variant = (kept_on_her_phone, merge_first);
        assert_eq!(
            corrected.situation,
            FollowUpSituation::StillWorking,
            "{variant:?}"
        );
        assert_eq!(corrected.next_due, Some(day(4, 9)), "{variant:?}");
        assert_eq!(
            corrected.notes, "vue au marché",
            "changed on both: the kept case's stands"
        );
        supervisor.sync(&mut hub);
        let due = supervisor
            .store
            .follow_ups_due(None, None, day(4, 10), Page::first(50))
            .unwrap();
        assert!(
            due.iter().any(|d| d.id == kept && d.due == day(4, 9)),
            "{due:?}"
        );
        let alerts = supervisor.store.alerts(None, Page::first(50)).unwrap();
        assert!(alerts.iter().any(|a| a.id == kept), "{alerts:?}");
        // Once: what the supervisor sets then on the case kept stands.
        let mut on_supervisor: ChildCase = supervisor.store.get(kept).unwrap();
        on_supervisor.followups.get_mut(&key).unwrap().next_due = Some(day(4, 16));
        supervisor.store.update(&on_supervisor).unwrap();
        supervisor.sync(&mut hub);
        monitor.sync(&mut hub);
        monitor.sync(&mut hub);
        assert_eq!(
            hub.get::<ChildCase>(kept).unwrap().followups[&key].next_due,
            Some(day(4, 16))
        );
    }
}

/// Two supervisors move a case offline, one to another community of its district, the other
/// to a community of another district: the merge leaves the second's district beside a
/// community in conflict. Either community may be chosen, and the areas above it follow (the
/// colleague's community was refused as outside the district the merge showed).
#[test]
fn either_move_of_a_case_moved_twice_at_once_may_be_chosen() {
    const OTHER_DISTRICT: &str = "CI-R1-D2-C01";
    for chosen in [C02, OTHER_DISTRICT] {
        let dir = TempDir::new().unwrap();
        let mut hub = hub(dir.path());
        let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
        let mut one = Device::new(dir.path(), "one", Role::Supervisor, &["CI-R1"]);
        let mut two = Device::new(dir.path(), "two", Role::Supervisor, &["CI-R1"]);
        let id = create(&mut monitor, C01, "Adjoua Yao");
        monitor.sync(&mut hub);
        one.sync(&mut hub);
        two.sync(&mut hub);
        for (device, community) in [(&mut one, C02), (&mut two, OTHER_DISTRICT)] {
            let mut moved: ChildCase = device.store.get(id).unwrap();
            moved.area = area(community);
            device.store.update(&moved).unwrap();
        }
        one.sync(&mut hub);
        two.sync(&mut hub);
        one.sync(&mut hub);
        let path = ["area".to_string(), "community".to_string()];
        let value = serde_json::json!(chosen);
        // The second holds both moves (the hub may have refused hers, as the merge showed it).
        let conflicts = two.store.conflicts(id).unwrap();
        assert!(conflicts.iter().any(|c| c.path == path), "{conflicts:?}");
        two.store.resolve_conflict(id, &path, &value).unwrap();
        let here: ChildCase = two.store.get(id).unwrap();
        assert_eq!(here.area, area(chosen));
        let summary = two.sync(&mut hub);
        assert!(summary.refused.is_empty(), "{summary:?}");
        assert_eq!(hub.get::<ChildCase>(id).unwrap().area, area(chosen));
        one.sync(&mut hub);
        assert_eq!(one.store.get::<ChildCase>(id).unwrap().area, area(chosen));
        assert!(one.store.conflicts(id).unwrap().is_empty());
    }
}

/// The same child registered in two communities, merged by the supervisor; the monitor of
/// the duplicate's community, offline, records on it a worst form, a longer week and a
/// follow-up. Her phone does not hold the case kept (another community): the hub brings what
/// she recorded over to it, and the classification and the due day follow, for everyone who
/// holds the case kept. Once: her next syncs bring nothing again.
#[test]
fn what_a_device_recorded_on_a_duplicate_kept_outside_its_areas_goes_to_the_case_kept() {
    const NAME: &str = "Adjoua Yao";
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut here = Device::new(dir.path(), "here", Role::CommunityMonitor, &[C01]);
    let mut there = Device::new(dir.path(), "there", Role::CommunityMonitor, &[C02]);
    let kept = create(&mut here, C01, NAME);
    let duplicate = create(&mut there, C02, NAME);
    here.sync(&mut hub);
    there.sync(&mut hub);
    supervisor.sync(&mut hub);
    supervisor.store.merge_cases(kept, duplicate).unwrap();
    supervisor.sync(&mut hub);

    let (_, late_key) = there
        .store
        .add_follow_up(
            duplicate,
            FollowUp {
                date: NaiveDate::from_ymd_opt(2026, 4, 5).unwrap(),
                situation: FollowUpSituation::StillWorking,
                notes: String::new(),
                next_due: NaiveDate::from_ymd_opt(2026, 4, 12),
            },
        )
        .unwrap();
    let mut dup: ChildCase = there.store.get(duplicate).unwrap();
    dup.hours_per_week = 42;
    dup.worst_forms.insert(WorstForm::ForcedLabour);
    there.store.update(&dup).unwrap();
    let summary = there.sync(&mut hub);
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.pending, 0, "{summary:?}");

    let on_hub: ChildCase = hub.get(kept).unwrap();
    assert!(on_hub.followups.contains_key(&late_key));
    assert_eq!(on_hub.hours_per_week, 42);
    assert!(on_hub.worst_forms.contains(&WorstForm::ForcedLabour));
    assert_eq!(
        on_hub.classification.as_ref().map(|c| c.outcome),
        Some(ClassificationOutcome::WorstFormSuspected)
    );
    here.sync(&mut hub);
    let on_phone: ChildCase = here.store.get(kept).unwrap();
    assert!(on_phone.worst_forms.contains(&WorstForm::ForcedLabour));
    assert!(on_phone.followups.contains_key(&late_key));
    assert!(!there.has(kept), "the case kept stays outside her areas");

    // Once: what the supervisor then takes off the case kept stays off.
    supervisor.sync(&mut hub);
    let mut corrected: ChildCase = supervisor.store.get(kept).unwrap();
    corrected.followups.remove(&late_key);
    supervisor.store.update(&corrected).unwrap();
    supervisor.sync(&mut hub);
    there.sync(&mut hub);
    there.sync(&mut hub);
    assert!(
        !hub.get::<ChildCase>(kept)
            .unwrap()
            .followups
            .contains_key(&late_key)
    );
}

/// A chain of merges: two registrations of a community merged (A into B), then found to be
/// the child another community registered (B into C). What the monitor of the first records
/// offline on A reaches C: her phone holds B but not C, so the hub brings it over; and the
/// other way round (A into B of another community, then B into C of hers), her phone holds C
/// but not B, which its own carry-over cannot pass: the hub does it too.
#[test]
fn what_a_device_recorded_on_a_duplicate_reaches_the_end_of_a_chain_of_merges() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut here = Device::new(dir.path(), "here", Role::CommunityMonitor, &[C01]);
    let mut there = Device::new(dir.path(), "there", Role::CommunityMonitor, &[C02]);
    for (first, second, last) in [(C02, C02, C01), (C02, C01, C02)] {
        let in_community = |community: &str| match community {
            C01 => "here",
            _ => "there",
        };
        let mut make = |community: &str, name: &str| match in_community(community) {
            "here" => create(&mut here, community, name),
            _ => create(&mut there, community, name),
        };
        let a = make(first, "Adjoua Yao");
        let b = make(second, "Adjoua Yao");
        let c = make(last, "Adjoua Yao");
        here.sync(&mut hub);
        there.sync(&mut hub);
        supervisor.sync(&mut hub);
        supervisor.store.merge_cases(b, a).unwrap();
        supervisor.store.merge_cases(c, b).unwrap();
        supervisor.sync(&mut hub);

        let mut dup: ChildCase = there.store.get(a).unwrap();
        dup.hours_per_week = 42;
        dup.worst_forms.insert(WorstForm::ForcedLabour);
        there.store.update(&dup).unwrap();
        let summary = there.sync(&mut hub);
        assert!(summary.refused.is_empty(), "{summary:?}");
        there.sync(&mut hub);
        let kept: ChildCase = hub.get(c).unwrap();
        assert!(
            kept.worst_forms.contains(&WorstForm::ForcedLabour) && kept.hours_per_week == 42,
            "{first} > {second} > {last}: {kept:?}"
        );
        assert_eq!(
            kept.classification.as_ref().map(|c| c.outcome),
            Some(ClassificationOutcome::WorstFormSuspected)
        );
    }
}

/// A record under an id of the kind reference documents have (which anyone can work out for
/// a type and key): refused on the phone and, pushed by an altered app, on the hub, naming the
/// id; taken, it held the place of the country profile the hub would publish next, and every
/// publication of it failed.
#[test]
fn a_record_under_an_id_reserved_for_reference_data_is_refused() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let squat = vigie_core::reference::ReferenceDocument::id_for(
        vigie_core::reference::ReferenceType::CountryProfile,
        "CI",
    );
    let mut workplace = Workplace::new("Carrière", "mining", Formality::Informal, area(C01));
    workplace.id = squat;
    match monitor.store.create(&workplace) {
        Err(Error::Validation(e)) => assert_eq!(e.field, "id"),
        other => panic!("a workplace under a reference id: {other:?}"),
    }
    workplace.id = Uuid::nil();
    let own = monitor.store.create(&workplace).unwrap().id;
    let answers = outcomes(
        &mut hub,
        &monitor,
        vec![PushEntry {
            id: squat,
            heads: Vec::new(),
            changes: monitor.store.export_document(own).unwrap(),
        }],
    );
    assert!(
        matches!(&answers[..], [PushOutcome::Refused { detail: Some(d), .. }] if d.field == "id"),
        "{answers:?}"
    );
    assert!(hub.kind_of(squat).is_err());
}

#[test]
fn reference_data_sent_again_after_a_scope_change_is_never_pushed_back() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let profile = |minimum_age| {
        let mut p = CountryProfile::ilo_default();
        p.thresholds.minimum_age = minimum_age;
        p.thresholds.light_work_min_age = minimum_age - 2;
        ReferenceContent::CountryProfile(p)
    };
    hub.publish_reference("CI", profile(15)).unwrap();
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    monitor.sync(&mut hub);
    // A new version of the profile, and the user's areas changed before the next sync: the
    // hub walks the new scope from the start and sends the profile whole.
    hub.publish_reference("CI", profile(16)).unwrap();
    monitor.principal.areas = [C01, C02].iter().map(|a| a.to_string()).collect();
    for _ in 0..2 {
        let summary = monitor.sync(&mut hub);
        assert!(summary.refused.is_empty(), "{summary:?}");
        assert_eq!(summary.pending, 0, "{summary:?}");
    }
}

#[test]
fn two_edits_saved_from_one_copy_of_a_case_are_both_taken() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    monitor.sync(&mut hub);
    let id = create(&mut monitor, C01, "Aminata Ouattara");
    monitor.sync(&mut hub);
    // An app keeps the case it read and saves it after each change the user makes: the second
    // save is made at the version read, before the first (Automerge writes it under an actor
    // of its own, derived from the store's).
    let mut shown: ChildCase = monitor.store.get(id).unwrap();
    shown.guardian = "Tante".into();
    monitor.store.update(&shown).unwrap();
    shown.household = "Cour commune".into();
    monitor.store.update(&shown).unwrap();
    let summary = monitor.sync(&mut hub);
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.pending, 0);
    let on_hub: ChildCase = hub.get(id).unwrap();
    assert_eq!(on_hub.guardian, "Tante");
    assert_eq!(on_hub.household, "Cour commune");
}

/// A day after today, or before monitoring began (a year slipped: 1925 for 2025), is refused
/// naming its field.
#[test]
fn a_day_after_today_is_refused_on_the_phone_naming_its_field() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    monitor.sync(&mut hub);
    let by = monitor.principal.user;
    let mut later = case(area(C01), "Awa Traoré", by);
    later.identified_on = chrono::Utc::now().date_naive() + chrono::Days::new(30);
    match monitor.store.create(&later) {
        Err(Error::Validation(e)) => assert_eq!(e.field, "identified_on"),
        other => panic!("{other:?}"),
    }
    let mut slipped = case(area(C01), "Awa Traoré", by);
    slipped.estimated_age = Some(10);
    slipped.identified_on = NaiveDate::from_ymd_opt(1925, 3, 2).unwrap();
    match monitor.store.create(&slipped) {
        Err(Error::Validation(e)) => {
            assert_eq!(e.field, "identified_on");
            assert!(e.rule.contains("before 1990-01-01"), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    let id = create(&mut monitor, C01, "Awa Traoré");
    let mut seen: ChildCase = monitor.store.get(id).unwrap();
    seen.followups.insert(
        Uuid::now_v7(),
        FollowUp {
            date: chrono::Utc::now().date_naive() + chrono::Days::new(400),
            situation: FollowUpSituation::InSchool,
            notes: String::new(),
            next_due: None,
        },
    );
    match monitor.store.update(&seen) {
        Err(Error::Validation(e)) => assert!(e.field.starts_with("followups."), "{e:?}"),
        other => panic!("{other:?}"),
    }
    // Today is fine, and so is an edit of a record whose days were set before.
    let mut today: ChildCase = monitor.store.get(id).unwrap();
    today.identified_on = chrono::Utc::now().date_naive();
    monitor.store.update(&today).unwrap();
    assert!(monitor.sync(&mut hub).refused.is_empty());
}

/// A phone whose clock went back (its battery pulled: to 2000, or to its firmware's date) reads
/// a day before the time its hub last told it. The day its clock gives — what an app fills in
/// as "today" — is refused naming its field, where it would have dated a child identified
/// today years back (out of the alerts, into a quarter already reported); the real day, typed
/// by hand, is taken though the clock calls it the future, and so is an earlier day.
#[test]
fn a_phone_whose_clock_went_back_refuses_the_day_it_gives() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    monitor.sync(&mut hub);
    let by = monitor.principal.user;
    let clock_today = chrono::Utc::now().date_naive();
    // Made before the clock went back: a day of the clock, and an edit of it later.
    let made = monitor
        .store
        .create(&ChildCase {
            identified_on: clock_today,
            ..case(area(C01), "Awa Traoré", by)
        })
        .unwrap();

    // The clock goes back 400 days (the hub, and the clock itself, read that much later at the
    // last sync).
    monitor
        .store
        .debug_clock_went_back(chrono::Duration::days(400))
        .unwrap();
    let hub_now = chrono::Utc::now() + chrono::Days::new(400);

    for day in [clock_today, clock_today - chrono::Days::new(1)] {
        let wrong = ChildCase {
            identified_on: day,
            ..case(area(C01), "Aya Koné", by)
        };
        match monitor.store.create(&wrong) {
            Err(Error::Validation(e)) => {
                assert_eq!(e.field, "identified_on");
                assert_eq!(e.rule, vigie_core::model::CLOCK_GONE_BACK);
            }
            other => panic!("a day of a clock gone back: {other:?}"),
        }
    }
    let w = Workplace::new("Plantation", "cocoa", Formality::Informal, area(C01));
    let w = monitor.store.create(&w).unwrap();
    let visit = Visit::new(
        VisitKind::CommunityMonitoring,
        &w,
        by,
        chrono::Utc::now().fixed_offset(),
    );
    match monitor.store.create(&visit) {
        Err(Error::Validation(e)) => assert_eq!(e.field, "started_at"),
        other => panic!("a visit started by a clock gone back: {other:?}"),
    }
    // The real day, typed, and a day a week before the clock's: taken.
    for day in [hub_now.date_naive(), clock_today - chrono::Days::new(7)] {
        monitor
            .store
            .create(&ChildCase {
                identified_on: day,
                ..case(area(C01), "Aya Koné", by)
            })
            .unwrap();
    }
    // A record dated before keeps its day through an edit; a follow-up dated by the clock is
    // refused, the real day taken.
    let mut edited: ChildCase = monitor.store.get(made.id).unwrap();
    edited.hours_per_week = 20;
    let edited = monitor.store.update(&edited).unwrap();
    let follow_up = |date| FollowUp {
        date,
        situation: FollowUpSituation::InSchool,
        notes: String::new(),
        next_due: None,
    };
    let mut followed = edited.clone();
    followed
        .followups
        .insert(Uuid::now_v7(), follow_up(clock_today));
    match monitor.store.update(&followed) {
        Err(Error::Validation(e)) => assert!(e.field.starts_with("followups."), "{e:?}"),
        other => panic!("{other:?}"),
    }
    let mut followed = edited;
    followed
        .followups
        .insert(Uuid::now_v7(), follow_up(hub_now.date_naive()));
    monitor.store.update(&followed).unwrap();
}

/// A phone whose clock is 400 days behind the hub's at its sync (a battery pulled before it
/// synced) stays caught at every sync while it is wrong: the day its clock gives is refused, the
/// real day taken. Set right — or, were the hub's own clock the one wrong, the hub set right —
/// the next sync lets it record today again.
#[test]
fn a_clock_wrong_at_its_sync_stays_caught_until_a_sync_finds_it_right() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    monitor.sync(&mut hub);
    let by = monitor.principal.user;
    let mut answer_at = |monitor: &mut Device, hub_now: chrono::DateTime<chrono::Utc>| {
        let request = monitor
            .store
            .hub_sync_request(&SyncOptions::default())
            .unwrap();
        let answer = hub
            .hub_handle(&monitor.principal, &request, &HubLimits::default())
            .unwrap();
        let mut answer = wire::decode_response(&answer, 1 << 24).unwrap();
        answer.hub_now_ms = Some(hub_now.timestamp_millis());
        monitor
            .store
            .hub_sync_apply(&wire::encode_response(&answer), &SyncOptions::default())
            .unwrap()
    };
    let identified = |monitor: &mut Device, day: NaiveDate| {
        monitor.store.create(&ChildCase {
            identified_on: day,
            ..case(area(C01), "Aya Koné", by)
        })
    };
    let clock_today = chrono::Utc::now().date_naive();
    let hub_now = chrono::Utc::now() + chrono::Days::new(400);
    for _ in 0..2 {
        assert!(answer_at(&mut monitor, hub_now).clock_skewed);
        match identified(&mut monitor, clock_today) {
            Err(Error::Validation(e)) => {
                assert_eq!(e.field, "identified_on");
                assert_eq!(e.rule, vigie_core::model::CLOCK_GONE_BACK);
            }
            other => panic!("a day of a clock found wrong at its sync: {other:?}"),
        }
        identified(&mut monitor, hub_now.date_naive()).unwrap();
    }
    assert!(!answer_at(&mut monitor, chrono::Utc::now()).clock_skewed);
    identified(&mut monitor, clock_today).unwrap();
}

#[test]
fn what_a_merge_missed_is_brought_over_by_its_maker_only() {
    const NAME: &str = "Koffi Brou";
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut maker = Device::new(dir.path(), "maker", Role::CommunityMonitor, &[C01]);
    let mut colleague = Device::new(dir.path(), "colleague", Role::CommunityMonitor, &[C01]);
    maker.sync(&mut hub);
    let kept = create(&mut maker, C01, NAME);
    let duplicate = create(&mut maker, C01, NAME);
    maker.sync(&mut hub);
    supervisor.sync(&mut hub);
    // The supervisor merges offline; the maker records a follow-up on the duplicate and sends
    // it; the colleague receives it before the merge is known.
    supervisor.store.merge_cases(kept, duplicate).unwrap();
    let (_, key) = maker
        .store
        .add_follow_up(
            duplicate,
            FollowUp {
                date: NaiveDate::from_ymd_opt(2026, 4, 6).unwrap(),
                situation: FollowUpSituation::InSchool,
                notes: String::new(),
                next_due: None,
            },
        )
        .unwrap();
    maker.sync(&mut hub);
    colleague.sync(&mut hub);
    supervisor.sync(&mut hub);
    maker.sync(&mut hub);
    assert!(
        hub.get::<ChildCase>(kept)
            .unwrap()
            .followups
            .contains_key(&key)
    );
    // The supervisor takes it off the kept case; the colleague, which held it too, learns of
    // the merge and brings nothing back.
    supervisor.sync(&mut hub);
    let mut on_supervisor: ChildCase = supervisor.store.get(kept).unwrap();
    on_supervisor.followups.remove(&key);
    supervisor.store.update(&on_supervisor).unwrap();
    supervisor.sync(&mut hub);
    let summary = colleague.sync(&mut hub);
    assert_eq!(summary.pending, 0, "{summary:?}");
    assert!(
        !hub.get::<ChildCase>(kept)
            .unwrap()
            .followups
            .contains_key(&key)
    );
}

/// A case erased (entered in error) is no child identified by the visit that listed it, in the
/// hub's exports as anywhere.
#[test]
fn an_erased_case_is_not_counted_among_a_visits_children() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    monitor.sync(&mut hub);
    let w = Workplace::new("Plantation", "cocoa", Formality::Informal, area(C01));
    let w = monitor.store.create(&w).unwrap();
    let kept = create(&mut monitor, C01, "Awa Traoré");
    let wrong = create(&mut monitor, C01, "Fatou Koné");
    use chrono::TimeZone;
    let started = chrono::FixedOffset::east_opt(0)
        .unwrap()
        .with_ymd_and_hms(2026, 4, 2, 9, 0, 0)
        .unwrap();
    let mut v = Visit::new(
        VisitKind::CommunityMonitoring,
        &w,
        monitor.principal.user,
        started,
    );
    v.children_identified = [kept, wrong].into();
    let v = monitor.store.create(&v).unwrap();
    monitor.sync(&mut hub);
    let counted = |hub: &Store| {
        let visits = hub
            .export_tables(ExportOptions::default())
            .unwrap()
            .into_iter()
            .find(|t| t.name == "visits")
            .unwrap()
            .to_json();
        let row = visits
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == v.id.to_string())
            .unwrap()
            .clone();
        row["children_identified"].clone()
    };
    assert_eq!(counted(&hub), serde_json::json!(2));
    erase(&mut hub, &supervisor.principal, wrong);
    assert_eq!(counted(&hub), serde_json::json!(1));
}

/// The hub's storage, counting the document bytes loaded while the writer is held.
struct WriterLoads<'a> {
    hub: &'a mut Store,
    bytes: u64,
}

impl HubStorage for WriterLoads<'_> {
    fn in_transaction<T>(
        &mut self,
        work: &mut dyn FnMut(&mut dyn vigie_core::storage::HubTransaction) -> Result<T>,
    ) -> Result<T> {
        let before = vigie_core::codec::debug_bytes_loaded();
        let done = self.hub.in_transaction(work);
        self.bytes += vigie_core::codec::debug_bytes_loaded() - before;
        done
    }

    fn in_read_transaction<T>(
        &mut self,
        work: &mut dyn FnMut(&mut dyn vigie_core::storage::HubTransaction) -> Result<T>,
    ) -> Result<T> {
        self.hub.in_read_transaction(work)
    }
}

/// A session of `device` with the hub through `WriterLoads`: its summary, and the bytes the
/// writer loaded.
fn sync_counting_writer_loads(device: &mut Device, hub: &mut Store) -> (SyncSummary, u64) {
    common::administer(hub, &device.principal);
    let mut counted = WriterLoads { hub, bytes: 0 };
    let summary = common::sync_through(&mut device.store, &device.principal, &mut counted);
    (summary, counted.bytes)
}

/// A push naming a record outside the sender's scope is judged on work done beside the writer,
/// as one of its own records is: a phone pushing edits of another area's long case file (a
/// moved monitor's, kept for review; or a stranger's, refused) held the writer while the hub
/// loaded it two or three times, and every other phone's sync waited (a third of a second for
/// a record of 500,000 operations).
#[test]
fn a_push_naming_a_large_record_outside_the_scope_loads_nothing_while_holding_the_writer() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let mut stranger = Device::new(dir.path(), "stranger", Role::CommunityMonitor, &[C02]);
    let long = create(&mut monitor, C01, "Adjoua Kouassi");
    // A case file written over years: a long note rewritten at every visit, in words that do
    // not repeat (which the document's compression would fold).
    let mut seed = 0x2545_f491_u32;
    for _ in 0..40 {
        let mut case: ChildCase = monitor.store.get(long).unwrap();
        case.notes = (0..1500)
            .map(|i| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                if i % 7 == 6 {
                    ' '
                } else {
                    char::from(b'a' + (seed % 26) as u8)
                }
            })
            .collect();
        monitor.store.update(&case).unwrap();
    }
    monitor.sync(&mut hub);
    stranger.sync(&mut hub);
    let size = hub.export_document(long).unwrap().len() as u64;
    assert!(size > 50_000, "{size} bytes");

    // A stranger came by the case's bytes and pushes an edit: answered as for any id it cannot
    // see (its changes of the monitor's device then wait for that device).
    stranger
        .store
        .merge_document(long, &monitor.store.export_document(long).unwrap())
        .unwrap();
    let mut case: ChildCase = stranger.store.get(long).unwrap();
    case.name = "Renommée Ailleurs".into();
    stranger.store.update(&case).unwrap();
    let (summary, loaded) = sync_counting_writer_loads(&mut stranger, &mut hub);
    assert!(summary.quarantined.is_empty(), "{summary:?}");
    assert_eq!(summary.awaiting_author, vec![long], "{summary:?}");
    assert!(loaded < size, "the writer loaded {loaded} bytes of {size}");

    // The monitor, moved to C02, pushes an edit made offline: kept for review.
    let mut case: ChildCase = monitor.store.get(long).unwrap();
    case.hours_per_week = 12;
    monitor.store.update(&case).unwrap();
    monitor.principal.areas = [C02.to_string()].into();
    let (summary, loaded) = sync_counting_writer_loads(&mut monitor, &mut hub);
    assert_eq!(summary.quarantined, vec![long], "{summary:?}");
    assert!(loaded < size, "the writer loaded {loaded} bytes of {size}");
    assert_eq!(hub.get::<ChildCase>(long).unwrap().name, "Adjoua Kouassi");
}

/// A phone that sent many records after the hub's last backup sends them all again in its
/// first session with the restored hub, whatever their number: the hub lacking a record's
/// history is no refusal (nothing for its user to correct or give up: a session cut before
/// they went leaves them waiting), and each goes whole in the same session. A session stopped at its outbox's size left those past it reported
/// refused until the next, and an app that offered to give them up stranded them on the phone.
#[test]
fn a_hub_restored_from_an_older_copy_gets_back_many_records_in_one_session() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("hub.db");
    let copy = dir.path().join("backup.db");
    let mut hub = hub(dir.path());
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    let first = create(&mut monitor, C01, "Akissi Bamba");
    // A season's cases the backup holds: offered again after the restore, each taken as held.
    for i in 0..30 {
        create(&mut monitor, C01, &format!("Enfant de la saison {i}"));
    }
    monitor.sync(&mut hub);
    hub.close().unwrap();
    std::fs::copy(&path, &copy).unwrap();
    hub = common::hub_store(&path);

    let mut after = Vec::new();
    for i in 0..5 {
        after.push(create(&mut monitor, C01, &format!("Enfant {i}")));
    }
    let mut c: ChildCase = monitor.store.get(first).unwrap();
    c.hours_per_week = 30;
    monitor.store.update(&c).unwrap();
    assert_eq!(monitor.sync(&mut hub).pending, 0);

    hub = restore_hub(hub, &path, &copy);
    // The link drops after the hub said which records it lacks: they wait, and none is one
    // its user may give up.
    let mut exchanges = 0;
    let principal = monitor.principal.clone();
    let cut = vigie_core::sync::sync_with_hub(
        &mut monitor.store,
        &SyncOptions::default(),
        |request| {
            exchanges += 1;
            if exchanges > 2 {
                return Err("the link dropped".to_string());
            }
            common::handle(&mut hub, &principal, request, &HubLimits::default())
                .map_err(|e| e.to_string())
        },
        |_| {},
    );
    assert!(cut.is_err());
    assert!(monitor.store.refused_records().unwrap().is_empty());
    assert!(monitor.store.hub_pending(after[0]).unwrap());
    assert!(matches!(
        monitor.store.discard_refused_changes(after[0]),
        Err(Error::NotAllowed { .. })
    ));
    let summary = monitor.sync(&mut hub);
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.pending, 0, "{summary:?}");
    assert!(monitor.store.refused_records().unwrap().is_empty());
    for id in &after {
        assert!(hub.get::<ChildCase>(*id).is_ok(), "{id} is back");
    }
    assert_eq!(hub.get::<ChildCase>(first).unwrap().hours_per_week, 30);
}

/// When most of a phone's records leave it (a supervisor's areas narrowed), the file gives
/// back the space they took, rather than keeping it for good.
#[test]
fn records_that_leave_give_their_space_back() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    // Encrypted, as on a phone (SQLCipher rewrites the file with its key).
    let mut monitor = Device::with(
        dir.path(),
        "monitor",
        Role::CommunityMonitor,
        &[C01, C02],
        Encryption::Key([7; 32]),
    );
    for i in 0..300u64 {
        let id = create(&mut monitor, C01, &format!("Enfant {i}"));
        let mut c: ChildCase = monitor.store.get(id).unwrap();
        // Notes that do not compress: some 3 MB in all.
        c.notes = common::incompressible_text(0x9e37_79b9_7f4a_7c15_u64 ^ i, 10_000);
        monitor.store.update(&c).unwrap();
    }
    create(&mut monitor, C02, "Mariam Diallo");
    monitor.sync(&mut hub);
    // The WAL folded into the file.
    monitor.store.purge_freed_content().unwrap();
    let path = monitor.path.clone();
    let size = || std::fs::metadata(&path).unwrap().len();
    let before = size();
    monitor.principal.areas = [C02.to_string()].into();
    let summary = monitor.sync(&mut hub);
    assert_eq!(summary.left_scope.len(), 300);
    let after = size();
    assert!(
        after < before / 4,
        "the file kept {after} of its {before} bytes"
    );
    assert_eq!(monitor.store.search_names("Mariam", 10).unwrap().len(), 1);
}

/// A process stopped after records left its store but before their purge ran whole (killed
/// in the rewrite of the file): the next opening purges.
#[test]
fn a_purge_left_undone_runs_at_the_next_opening() {
    let dir = TempDir::new().unwrap();
    let mut monitor = Device::new(dir.path(), "monitor", Role::CommunityMonitor, &[C01]);
    for i in 0..300u64 {
        let mut c = case(area(C01), &format!("Enfant {i}"), monitor.principal.user);
        c.notes = common::incompressible_text(0x2545_f491_4f6c_dd1d_u64 ^ i, 10_000);
        monitor.store.create(&c).unwrap();
    }
    let user = monitor.principal.user;
    let Device { store, path, .. } = monitor;
    store.close().unwrap();
    // What the removal's transaction commits, the purge after it not run.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         DELETE FROM records WHERE kind = 3;
         INSERT INTO meta (key, value) VALUES ('purge_pending', x'01');
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    drop(conn);
    let before = std::fs::metadata(&path).unwrap().len();
    let store = Store::open(StoreConfig::new(&path, Encryption::Unencrypted, user)).unwrap();
    assert!(store.search_names("Enfant", 10).unwrap().is_empty());
    drop(store);
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(
        after < before / 4,
        "the file kept {after} of its {before} bytes"
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let pending: i64 = conn
        .query_row(
            "SELECT count(*) FROM meta WHERE key = 'purge_pending'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pending, 0);
}

/// A workplace moved to another community while an inspector was offline: the visit she
/// recorded there, filed where the workplace was when her phone last heard of it, is taken
/// (the workplace was filed there), as is one filed where it is now; one filed where it never
/// was is refused, naming the area.
#[test]
fn a_visit_filed_where_its_workplace_was_before_it_moved_is_taken() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let areas = [C01, C02];
    let mut inspector = Device::new(dir.path(), "inspector", Role::Inspector, &areas);
    let mut supervisor = Device::new(dir.path(), "supervisor", Role::Supervisor, &["CI-R1"]);
    let place = inspector
        .store
        .create(&Workplace::new(
            "Carrière",
            "mining",
            Formality::Informal,
            area(C01),
        ))
        .unwrap();
    inspector.sync(&mut hub);
    supervisor.sync(&mut hub);
    let mut moved: Workplace = supervisor.store.get(place.id).unwrap();
    moved.location.area = area(C02);
    supervisor.store.update(&moved).unwrap();
    supervisor.sync(&mut hub);

    // Offline all along, the inspector files her visit where the workplace was.
    let at = common::at(2026, 4, 3, 9);
    let mut visit = Visit::new(
        VisitKind::LabourInspection,
        &place,
        inspector.principal.user,
        at,
    );
    visit.status = VisitStatus::Submitted;
    let visit = inspector.store.create(&visit).unwrap();
    let summary = inspector.sync(&mut hub);
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(hub.get::<Visit>(visit.id).unwrap().area, area(C01));

    // A phone that does not hold the workplace cannot check: the hub refuses a visit filed
    // where the workplace never was.
    let mut other = Device::new(dir.path(), "other", Role::Inspector, &[C02, "CI-R1-D1-C03"]);
    let mut stray = Visit::new(
        VisitKind::LabourInspection,
        &place,
        other.principal.user,
        at,
    );
    stray.area = area("CI-R1-D1-C03");
    let stray = other.store.create(&stray).unwrap();
    let summary = other.sync(&mut hub);
    assert_eq!(
        summary
            .refused
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
        [stray.id],
        "{summary:?}"
    );
    assert_eq!(
        wire::RefusalDetail::of(&summary.refusal_details, stray.id).map(|d| d.field.as_str()),
        Some("area")
    );
}

/// A visit that reaches a phone before the checklist it answered (from a peer) is read by
/// that checklist's wording once it arrives from the hub: the phone's figures follow. And a
/// checklist's item keeps its wording from one version to the next.
#[test]
fn a_visit_is_read_again_when_its_checklist_arrives_and_items_keep_their_wording() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(dir.path());
    let checklist = |breach: Answer| {
        ReferenceContent::Checklist(ChecklistContent {
            name: Labels::fr_en("Cacao", "Cocoa"),
            items: vec![
                ChecklistItem {
                    breach,
                    ..ChecklistItem::new("CC1", "Enfants au sarclage", "Children weeding")
                },
                ChecklistItem::new("CC2", "Eau potable", "Drinking water"),
            ],
        })
    };
    hub.publish_reference("cacao-ci", checklist(Answer::Yes))
        .unwrap();
    let mut inspector = Device::new(dir.path(), "inspector", Role::Inspector, &[C01]);
    inspector.sync(&mut hub);
    let place = inspector
        .store
        .create(&Workplace::new(
            "Champ",
            "cocoa",
            Formality::Informal,
            area(C01),
        ))
        .unwrap();
    let at = common::at(2026, 4, 3, 9);
    let mut visit = Visit::new(
        VisitKind::LabourInspection,
        &place,
        inspector.principal.user,
        at,
    );
    visit.checklist = ChecklistAnswers {
        checklist: "cacao-ci".into(),
        version: 1,
        answers: [
            ("CC1".to_string(), Answer::Yes),
            ("CC2".to_string(), Answer::Yes),
        ]
        .into(),
    };
    let visit = inspector.store.create(&visit).unwrap();
    assert_eq!(visit.breaches, ["CC1"]);

    // A colleague's phone, which never synced, receives the visit from hers.
    let mut colleague = Device::new(dir.path(), "colleague", Role::Supervisor, &["CI-R1"]);
    colleague
        .store
        .merge_document(
            visit.id,
            &inspector.store.export_document(visit.id).unwrap(),
        )
        .unwrap();
    let violations = |d: &Device| {
        d.store
            .indicators(&IndicatorFilter::default())
            .unwrap()
            .workplaces_with_violations
    };
    assert_eq!(
        violations(&colleague),
        0,
        "read by the default wording meanwhile"
    );
    colleague.sync(&mut hub);
    assert_eq!(violations(&colleague), 1);
    assert_eq!(
        colleague.store.get::<Visit>(visit.id).unwrap().breaches,
        ["CC1"]
    );

    match hub.publish_reference("cacao-ci", checklist(Answer::No)) {
        Err(Error::Validation(e)) => assert_eq!(e.field, "checklist.items.CC1.breach"),
        other => panic!("{other:?}"),
    }
}

//! Data protection through the real hub: a revoked device is told to wipe, a user who lost an
//! area has their changes quarantined for review (never dropped) and the records leave their
//! device, and an erased child case leaves every store, including a device that was offline
//! during the erasure and came back with an old copy.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use vigie_core::*;
use vigie_server::auth::Token;

/// A device whose store is not encrypted, so that its files can be searched byte by byte.
fn plain_device(dir: &Path, data: &Path, name: &str, role: Role, areas: &[&str]) -> Device {
    let user = add_user(data, name, role, areas);
    let token_text = enrol(data, user);
    Device::open_with(dir, name, &token_text, role, areas, Encryption::Unencrypted)
}

/// Every file under `dir` (and beside it, for a store's -wal and -shm) whose bytes contain
/// `needle`.
fn files_containing(paths: &[PathBuf], needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for path in paths {
        let mut stack = vec![path.clone()];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                for entry in std::fs::read_dir(&p).expect("read dir") {
                    stack.push(entry.expect("dir entry").path());
                }
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(p);
            }
        }
    }
    found
}

fn store_files(store: &Store) -> Vec<PathBuf> {
    let path = store.path().to_path_buf();
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", path.display())))
        .filter(|p| p.exists())
        .collect()
}

#[test]
fn a_revoked_device_is_refused_and_told_to_wipe() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let hub = Hub::start(&data);
    let user = add_user(&data, "Awa", Role::CommunityMonitor, &[C01]);
    let token = Token::parse(&enrol(&data, user)).unwrap();

    // The phone's profile, in a vault as the app keeps it.
    let vault = Vault::open(dir.path().join("phone")).unwrap();
    let mut store = vault
        .create_user(user, Some(token.device), "482916")
        .unwrap();
    store
        .create(&child(area(C01), "Mariam Diabaté", user))
        .unwrap();
    let client = vigie_server::client::HubClient::new(&hub.url, &token);
    client
        .sync(&mut store, &Default::default(), |_| {})
        .expect("an enrolled device syncs");

    assert!(revoke(&data, token.device));
    match client.sync(&mut store, &Default::default(), |_| {}) {
        Err(Error::WipeRequested) => {}
        other => panic!("expected WipeRequested, got {other:?}"),
    }
    // The operator sees the revoked phone still trying, by its device id.
    let tried = "sync refused: the device is revoked";
    assert!(
        hub.log_text().lines().any(|l| l.contains("WARN")
            && l.contains(tried)
            && l.contains(&token.device.to_string())),
        "{}",
        hub.log_text()
    );
    // What the app does when told: the profile's key and files go.
    store.close().unwrap();
    vault.wipe_user(user).unwrap();
    assert!(!vault.users().unwrap().contains(&user));
    assert!(matches!(
        vault.unlock_with_pin(user, "482916"),
        Err(Error::NoProfile { .. })
    ));
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A hub started in a new directory.
fn new_hub() -> (TempDir, PathBuf, Hub) {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let hub = Hub::start(&data);
    (dir, data, hub)
}

/// Another community monitor of C01, a colleague who receives the monitor's edits by peers
/// and bundles.
fn colleague(dir: &TempDir, data: &Path) -> Device {
    plain_device(
        dir.path(),
        data,
        "colleague",
        Role::CommunityMonitor,
        &[C01],
    )
}

/// A monitor of C01 and a supervisor of its district.
fn monitor_and_supervisor(dir: &TempDir, data: &Path) -> (Device, Device) {
    let monitor = plain_device(dir.path(), data, "monitor", Role::CommunityMonitor, &[C01]);
    let supervisor = plain_device(dir.path(), data, "sup", Role::Supervisor, &[DISTRICT]);
    (monitor, supervisor)
}

#[test]
fn changes_of_a_user_who_lost_the_area_are_quarantined_then_reviewed() {
    let (dir, data, mut hub) = new_hub();
    let (mut monitor, mut supervisor) = monitor_and_supervisor(&dir, &data);
    let case = monitor
        .store
        .create(&child(area(C01), "Fatou Koné", monitor.user()))
        .unwrap();
    let untouched = monitor
        .store
        .create(&child(area(C01), "Ama Yao", monitor.user()))
        .unwrap();
    monitor.sync(&hub.url).unwrap();

    // Offline, the monitor keeps working on the case and registers another child; meanwhile
    // the area is taken away (she is moved to another community).
    let mut edited: ChildCase = monitor.store.get(case.id).unwrap();
    edited.notes = "Vue au marché le samedi.".into();
    monitor.store.update(&edited).unwrap();
    let registered = monitor
        .store
        .create(&child(area(C01), "Awa Traoré", monitor.user()))
        .unwrap();
    let user = monitor.user().to_string();
    let args = database_args(&data);
    let mut cli = vec!["user", "areas", "--data", data.to_str().unwrap()];
    cli.extend(args.iter().map(String::as_str));
    cli.extend(["--user", &user, "--area", C02]);
    vigie(&cli);

    let summary = monitor.sync(&hub.url).unwrap();
    let mut quarantined = summary.quarantined.clone();
    quarantined.sort();
    let mut expected = vec![case.id, registered.id];
    expected.sort();
    assert_eq!(quarantined, expected, "{summary:?}");
    assert_eq!(summary.pending, 0, "nothing stays stuck in the outbox");
    assert!(
        !monitor.has(case.id) && !monitor.has(registered.id),
        "the quarantined records left the phone"
    );

    // The supervisor reviews: the entry is there, accepted, and the note reaches the record.
    let mut list = vec!["quarantine", "list", "--data", data.to_str().unwrap()];
    list.extend(args.iter().map(String::as_str));
    let listed = vigie(&list);
    let entries: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut records: Vec<String> = entries
        .iter()
        .map(|e| e["record"].as_str().unwrap().to_string())
        .collect();
    records.sort();
    assert_eq!(
        records,
        expected.iter().map(|id| id.to_string()).collect::<Vec<_>>()
    );
    for entry in &entries {
        let number = entry["entry"].as_i64().unwrap().to_string();
        let mut accept = vec!["quarantine", "accept", "--data", data.to_str().unwrap()];
        accept.extend(args.iter().map(String::as_str));
        accept.extend(["--entry", &number]);
        vigie(&accept);
    }
    assert!(vigie(&list).is_empty(), "the reviewed entries are gone");

    supervisor.sync(&hub.url).unwrap();
    let reviewed: ChildCase = supervisor.store.get(case.id).unwrap();
    assert_eq!(reviewed.notes, "Vue au marché le samedi.");
    assert!(
        supervisor.has(registered.id),
        "the child registered offline"
    );
    assert!(supervisor.has(untouched.id));
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A monitor records a hazard and a follow-up on a case, offline, while a supervisor merges it
/// into another registration of the child; she then moves away, so her phone will never see the
/// merge and bring them over: accepting her changes brings them to the case kept, which the
/// child's alert, classification and due date follow.
/// A child's case the hub held only for review (recorded offline by a monitor moved to another
/// community before she synced) is erased as any other: `vigie erase` said the hub held
/// nothing, exited in failure and journaled "an id erased that the hub did not hold", while it
/// deleted the name, the guardian and the photo kept for review.
#[test]
fn a_case_held_only_for_review_is_erased_and_said_so() {
    let (dir, data, hub) = new_hub();
    let (mut monitor, supervisor) = monitor_and_supervisor(&dir, &data);
    monitor.sync(&hub.url).unwrap();
    let case = monitor
        .store
        .create(&child(area(C01), "Zézé Guéi", monitor.user()))
        .unwrap();
    let args = database_args(&data);
    let user = monitor.user().to_string();
    let mut cli = vec!["user", "areas", "--data", data.to_str().unwrap()];
    cli.extend(args.iter().map(String::as_str));
    cli.extend(["--user", &user, "--area", C02]);
    vigie(&cli);
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!(summary.quarantined, vec![case.id], "{summary:?}");

    let record = case.id.to_string();
    let erase_by = |by: &str| {
        let mut erase = vec!["erase", "--data", data.to_str().unwrap()];
        erase.extend(args.iter().map(String::as_str));
        erase.extend(["--record", &record, "--by", by, "--reason", "legal_request"]);
        vigie_output(&erase)
    };
    // Not by a supervisor of another district: the changes file the case in hers.
    let elsewhere = add_user(&data, "Superviseure D2", Role::Supervisor, &[DISTRICT_2]);
    let refused = erase_by(&elsewhere.to_string());
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("outside the supervisor's areas"),
        "{}",
        stderr(&refused)
    );
    let mut list = vec!["quarantine", "list", "--data", data.to_str().unwrap()];
    list.extend(args.iter().map(String::as_str));
    assert!(vigie(&list).contains(&record), "still kept for review");
    let erased = erase_by(&supervisor.user().to_string());
    assert!(erased.status.success(), "{}", stderr(&erased));
    let said = String::from_utf8_lossy(&erased.stdout).to_string();
    assert!(
        said.contains(&format!("erased case {record}")) && said.contains("1 entry kept for review"),
        "{said}"
    );
    assert_eq!(vigie(&list), "");
    let mut audit = vec!["audit", "--data", data.to_str().unwrap()];
    audit.extend(args.iter().map(String::as_str));
    let journal: Vec<serde_json::Value> = vigie(&audit)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = journal
        .iter()
        .filter(|e| e["record"].as_str() == Some(record.as_str()))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["case_erase"], "{journal:?}");
}

#[test]
fn changes_accepted_on_a_case_merged_meanwhile_reach_the_case_kept() {
    let (dir, data, mut hub) = new_hub();
    let (mut monitor, mut supervisor) = monitor_and_supervisor(&dir, &data);
    let kept = monitor
        .store
        .create(&child(area(C01), "Fatou Koné", monitor.user()))
        .unwrap();
    let duplicate = monitor
        .store
        .create(&child(area(C01), "Koné Fatou", monitor.user()))
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    supervisor.store.merge_cases(kept.id, duplicate.id).unwrap();
    supervisor.sync(&hub.url).unwrap();

    let mut edited: ChildCase = monitor.store.get(duplicate.id).unwrap();
    edited.hazards.insert("pesticides".into());
    monitor.store.update(&edited).unwrap();
    let seen = chrono::Utc::now().date_naive();
    monitor
        .store
        .add_follow_up(
            duplicate.id,
            FollowUp::new(seen, FollowUpSituation::StillWorking, None),
        )
        .unwrap();
    common::lifecycle::set_areas(&data, monitor.user(), &[C02]);
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!(summary.quarantined, vec![duplicate.id], "{summary:?}");

    let (_, entries) = common::lifecycle::quarantine_list(&data);
    let entry = entries[0]["entry"].as_i64().unwrap();
    let out = common::lifecycle::quarantine_accept(&data, entry, Some(supervisor.user()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    supervisor.sync(&hub.url).unwrap();
    let case: ChildCase = supervisor.store.get(kept.id).unwrap();
    assert!(case.hazards.contains("pesticides"), "{:?}", case.hazards);
    assert_eq!(case.followups.len(), 1, "the follow-up is the kept case's");
    assert_eq!(
        case.classification.map(|c| c.outcome),
        Some(ClassificationOutcome::HazardousChildLabour)
    );
    assert!(
        supervisor
            .store
            .alerts(None, Page::first(10))
            .unwrap()
            .iter()
            .any(|a| a.id == kept.id),
        "the child's alert"
    );
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// Three supervisors, each offline, merge three registrations of one child in a ring (A into
/// B, B into C, C into A): the merge that closes the ring is refused, and the child stays
/// listed and counted once.
#[test]
fn merges_made_offline_in_a_ring_leave_the_child_listed() {
    let (dir, data, mut hub) = new_hub();
    let (mut monitor, mut first) = monitor_and_supervisor(&dir, &data);
    let mut second = plain_device(dir.path(), &data, "sup2", Role::Supervisor, &[DISTRICT]);
    let mut third = plain_device(dir.path(), &data, "sup3", Role::Supervisor, &[DISTRICT]);
    let cases: Vec<uuid::Uuid> = ["Fatou Koné", "Koné Fatou", "Fatou Kone"]
        .into_iter()
        .map(|name| {
            let mut case = child(area(C01), name, monitor.user());
            case.hazards.insert("pesticides".into());
            monitor.store.create(&case).unwrap().id
        })
        .collect();
    monitor.sync(&hub.url).unwrap();
    for supervisor in [&mut first, &mut second, &mut third] {
        supervisor.sync(&hub.url).unwrap();
    }
    first.store.merge_cases(cases[1], cases[0]).unwrap();
    second.store.merge_cases(cases[2], cases[1]).unwrap();
    third.store.merge_cases(cases[0], cases[2]).unwrap();
    assert!(first.sync(&hub.url).unwrap().refused.is_empty());
    assert!(second.sync(&hub.url).unwrap().refused.is_empty());
    let summary = third.sync(&hub.url).unwrap();
    assert_eq!(
        summary.refused.iter().map(|r| r.0).collect::<Vec<_>>(),
        [cases[2]],
        "{summary:?}"
    );
    monitor.sync(&hub.url).unwrap();
    let listed = monitor
        .store
        .child_cases(&ChildCaseQuery::default(), Page::first(10))
        .unwrap();
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), [cases[2]]);
    assert_eq!(
        monitor.store.alerts(None, Page::first(10)).unwrap().len(),
        1
    );

    // A ring of ten, every other merge made by each of two supervisors: longer than any chain
    // of merges a phone follows, refused all the same.
    let ring: Vec<uuid::Uuid> = (0..10)
        .map(|n| {
            let case = child(area(C01), &format!("Aya Kouamé {n}"), monitor.user());
            monitor.store.create(&case).unwrap().id
        })
        .collect();
    monitor.sync(&hub.url).unwrap();
    first.sync(&hub.url).unwrap();
    second.sync(&hub.url).unwrap();
    for n in 0..10 {
        let supervisor = if n % 2 == 0 { &mut first } else { &mut second };
        supervisor
            .store
            .merge_cases(ring[(n + 1) % 10], ring[n])
            .unwrap();
    }
    assert!(first.sync(&hub.url).unwrap().refused.is_empty());
    let summary = second.sync(&hub.url).unwrap();
    assert_eq!(summary.refused.len(), 1, "{summary:?}");
    monitor.sync(&hub.url).unwrap();
    let listed = monitor
        .store
        .child_cases(&ChildCaseQuery::default(), Page::first(50))
        .unwrap();
    assert_eq!(
        listed.iter().filter(|c| ring.contains(&c.id)).count(),
        1,
        "the child stays listed once"
    );
    hub.stop();
}

/// Changes that leave a record where it is are judged by the rules alone, whoever filed it
/// elsewhere meanwhile: "where the user never worked" is where the changes file a record.
#[test]
fn changes_to_a_case_a_supervisor_filed_elsewhere_meanwhile_are_accepted_after_review() {
    let (dir, data, mut hub) = new_hub();
    let (mut monitor, mut supervisor) = monitor_and_supervisor(&dir, &data);
    let case = monitor
        .store
        .create(&child(area(C01), "Fatou Koné", monitor.user()))
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();

    // Offline, the monitor notes what she saw; meanwhile the supervisor files the case in the
    // next community.
    let mut edited: ChildCase = monitor.store.get(case.id).unwrap();
    edited.notes = "Vue au marché le samedi.".into();
    monitor.store.update(&edited).unwrap();
    let mut moved: ChildCase = supervisor.store.get(case.id).unwrap();
    moved.area = area(C02);
    supervisor.store.update(&moved).unwrap();
    supervisor.sync(&hub.url).unwrap();

    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!(summary.quarantined, vec![case.id], "{summary:?}");
    let args = database_args(&data);
    let mut list = vec!["quarantine", "list", "--data", data.to_str().unwrap()];
    list.extend(args.iter().map(String::as_str));
    let listed: serde_json::Value = serde_json::from_str(&vigie(&list)).unwrap();
    assert_eq!(listed["state"], "applies", "{listed}");
    let number = listed["entry"].as_i64().unwrap().to_string();
    let by = supervisor.user().to_string();
    let mut accept = vec!["quarantine", "accept", "--data", data.to_str().unwrap()];
    accept.extend(args.iter().map(String::as_str));
    accept.extend(["--entry", &number, "--by", &by]);
    vigie(&accept);

    supervisor.sync(&hub.url).unwrap();
    let reviewed: ChildCase = supervisor.store.get(case.id).unwrap();
    assert_eq!(reviewed.notes, "Vue au marché le samedi.");
    assert_eq!(
        reviewed.area,
        area(C02),
        "the case stays where it was filed"
    );

    // The supervisor files it back in C01; the monitor, who never worked in C02, writes C02
    // again on the version she holds from when it was there (a change that would win the
    // merge), then loses C01: her changes file the case in C02, and no review takes them.
    let at_c02 = reviewed.version.heads().to_vec();
    let mut back = reviewed.clone();
    back.area = area(C01);
    supervisor.store.update(&back).unwrap();
    supervisor.sync(&hub.url).unwrap();
    monitor.sync(&hub.url).unwrap();
    assert!(monitor.has(case.id));
    let whole =
        automerge::Automerge::load(&monitor.store.export_document(case.id).unwrap()).unwrap();
    let mut old = whole
        .fork_at(&at_c02)
        .unwrap()
        .with_actor(monitor.store.actor().clone());
    {
        use automerge::ReadDoc;
        use automerge::transaction::Transactable;
        let mut tx = old.transaction();
        let (_, area_obj) = tx.get(automerge::ROOT, "area").unwrap().unwrap();
        // Put again (cleared first: a put of the value held writes nothing).
        tx.delete(&area_obj, "community").unwrap();
        tx.put(&area_obj, "community", C02).unwrap();
        tx.commit_with(
            automerge::transaction::CommitOptions::default()
                .with_message(serde_json::to_string(&rules::author(&monitor)).unwrap())
                .with_time(chrono::Utc::now().timestamp_millis()),
        );
    }
    let refile = vigie_core::sync::wire::PushEntry {
        id: case.id,
        heads: old.get_heads().iter().map(|h| h.0).collect(),
        changes: old.save_after(&at_c02),
    };
    common::lifecycle::set_areas(&data, monitor.user(), &["CI-R1-D2-C01"]);
    let outcome = rules::push(&monitor, &hub.url, vec![refile]);
    assert!(
        matches!(
            outcome[&case.id],
            vigie_core::sync::wire::PushOutcome::Quarantined
        ),
        "{outcome:?}"
    );
    let listed: serde_json::Value = serde_json::from_str(&vigie(&list)).unwrap();
    assert_eq!(listed["state"], "breaks_a_rule", "{listed}");
    let number = listed["entry"].as_i64().unwrap().to_string();
    let mut accept = vec!["quarantine", "accept", "--data", data.to_str().unwrap()];
    accept.extend(args.iter().map(String::as_str));
    accept.extend(["--entry", &number, "--by", &by]);
    let out = vigie_output(&accept);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("never worked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    supervisor.sync(&hub.url).unwrap();
    assert_eq!(
        supervisor.store.get::<ChildCase>(case.id).unwrap().area,
        area(C01)
    );
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A new tree renames the monitor's community while her phone holds work made offline under the
/// old code: a case registered and an edit of another. Both are kept for review (the new case
/// was refused as outside any area she ever held: her old code resolves to nothing now), are
/// listed as applying, and the district's supervisor accepts them.
#[test]
fn work_made_under_a_community_a_new_tree_renamed_is_kept_for_review_and_accepted() {
    let (dir, data, mut hub) = new_hub();
    let (mut monitor, mut supervisor) = monitor_and_supervisor(&dir, &data);
    let case = monitor
        .store
        .create(&child(area(C01), "Fatou Koné", monitor.user()))
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    let mut edited: ChildCase = monitor.store.get(case.id).unwrap();
    edited.hours_per_week = 30;
    monitor.store.update(&edited).unwrap();
    let mut registered = child(area(C01), "Awa Traoré", monitor.user());
    registered.case_code = "CASE-2".into();
    let registered = monitor.store.create(&registered).unwrap();

    let renamed = dir.path().join("areas-v2.json");
    let text = std::fs::read_to_string(common::reference::SAMPLE_AREAS)
        .unwrap()
        .replace(&format!("\"{C01}\""), &format!("\"{C01}N\""));
    std::fs::write(&renamed, text).unwrap();
    common::reference::publish(&data, &[renamed.to_str().unwrap()]);

    let summary = monitor.sync(&hub.url).unwrap();
    let mut quarantined = summary.quarantined.clone();
    quarantined.sort();
    let mut expected = vec![case.id, registered.id];
    expected.sort();
    assert_eq!(quarantined, expected, "{summary:?}");
    let args = database_args(&data);
    let mut list = vec!["quarantine", "list", "--data", data.to_str().unwrap()];
    list.extend(args.iter().map(String::as_str));
    let by = supervisor.user().to_string();
    for line in vigie(&list).lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(entry["state"], "applies", "{entry}");
        let number = entry["entry"].as_i64().unwrap().to_string();
        let mut accept = vec!["quarantine", "accept", "--data", data.to_str().unwrap()];
        accept.extend(args.iter().map(String::as_str));
        accept.extend(["--entry", &number, "--by", &by]);
        vigie(&accept);
    }
    supervisor.sync(&hub.url).unwrap();
    assert_eq!(
        supervisor
            .store
            .get::<ChildCase>(case.id)
            .unwrap()
            .hours_per_week,
        30
    );
    assert!(supervisor.has(registered.id));
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

#[test]
fn quarantined_changes_are_kept_for_review_after_the_device_edits_the_record_again() {
    let (dir, data, mut hub) = new_hub();
    let (mut monitor, mut supervisor) = monitor_and_supervisor(&dir, &data);
    let case = monitor
        .store
        .create(&child(area(C01), "Fatou Koné", monitor.user()))
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    let args = database_args(&data);
    let user = monitor.user().to_string();
    let set_area = |community: &str| {
        let mut cli = vec!["user", "areas", "--data", data.to_str().unwrap()];
        cli.extend(args.iter().map(String::as_str));
        cli.extend(["--user", &user, "--area", community]);
        vigie(&cli);
    };
    let list = || {
        let mut cli = vec!["quarantine", "list", "--data", data.to_str().unwrap()];
        cli.extend(args.iter().map(String::as_str));
        vigie(&cli)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };

    // An edit made offline while the area is taken away is quarantined; the case leaves.
    let mut edited: ChildCase = monitor.store.get(case.id).unwrap();
    edited.notes = "Vue au marché le samedi.".into();
    edited.guardian = "Awa Koné (mère)".into();
    monitor.store.update(&edited).unwrap();
    set_area(C02);
    assert_eq!(monitor.sync(&hub.url).unwrap().quarantined, vec![case.id]);
    assert!(!monitor.has(case.id));

    // The area comes back; the case comes back to the phone, which edits another field. The
    // phone numbers that edit as it numbered the quarantined one: it never kept it.
    set_area(C01);
    monitor.sync(&hub.url).unwrap();
    let mut again: ChildCase = monitor.store.get(case.id).unwrap();
    assert_eq!(
        again.notes, "",
        "the quarantined note is not on the hub yet"
    );
    again.guardian = "Awa Koné (tante)".into();
    again.household = "Cour de la famille Koné".into();
    monitor.store.update(&again).unwrap();
    let summary = monitor.sync(&hub.url).unwrap();
    assert!(
        summary.quarantined.is_empty() && summary.pending == 0,
        "{summary:?}"
    );

    // The entry still applies, says what it changes, and is accepted.
    let entries = list();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["state"], "applies", "{entries:?}");
    assert_eq!(
        entries[0]["fields"],
        serde_json::json!(["guardian", "notes"]),
        "{entries:?}"
    );
    let first = entries[0]["entry"].as_i64().unwrap();
    let mut accept = vec!["quarantine", "accept", "--data", data.to_str().unwrap()];
    accept.extend(args.iter().map(String::as_str));
    let number = first.to_string();
    accept.extend(["--entry", &number]);
    vigie(&accept);
    assert!(list().is_empty());

    // Both edits reach everyone: the reviewed note, the later household, and the two
    // guardians, set without knowing of each other, as a conflict for a person to settle.
    for device in [&mut supervisor, &mut monitor] {
        device.sync(&hub.url).unwrap();
        let merged: ChildCase = device.store.get(case.id).unwrap();
        assert_eq!(merged.notes, "Vue au marché le samedi.", "{}", device.name);
        assert_eq!(
            merged.household, "Cour de la famille Koné",
            "{}",
            device.name
        );
        let conflicts = device.store.conflicts(case.id).unwrap();
        let guardian = conflicts
            .iter()
            .find(|c| c.field == "guardian")
            .unwrap_or_else(|| panic!("{}: {conflicts:?}", device.name));
        let mut values: Vec<_> = guardian.values.iter().map(|v| v.value.clone()).collect();
        values.sort_by_key(|v| v.to_string());
        assert_eq!(
            values,
            vec![
                serde_json::json!("Awa Koné (mère)"),
                serde_json::json!("Awa Koné (tante)"),
            ],
            "{}",
            device.name
        );
    }

    // A later entry gets a number of its own, never the settled one's.
    let mut later: ChildCase = monitor.store.get(case.id).unwrap();
    later.notes = "Revue à l'école.".into();
    monitor.store.update(&later).unwrap();
    set_area(C02);
    assert_eq!(monitor.sync(&hub.url).unwrap().quarantined, vec![case.id]);
    let entries = list();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0]["entry"].as_i64().unwrap() > first, "{entries:?}");
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

#[test]
fn a_quarantined_change_that_breaks_a_rule_is_listed_so_and_cannot_be_accepted() {
    use common::surface::{admin_error, admin_lines};
    let (dir, data, mut hub) = new_hub();
    let (mut monitor, _supervisor) = monitor_and_supervisor(&dir, &data);
    let case = monitor
        .store
        .create(&child(area(C01), "Fatou Koné", monitor.user()))
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    // Offline, on a phone whose clock (or user) is decades ahead: a follow-up "done" in 2099.
    // A follow-up "done" in 2099, written as a phone of an earlier version could (a phone now
    // refuses the day itself): straight into the document, with the monitor's actor.
    let mut edited: ChildCase = monitor.store.get(case.id).unwrap();
    edited.followups.insert(
        uuid::Uuid::now_v7(),
        FollowUp::new(
            chrono::NaiveDate::from_ymd_opt(2099, 1, 1).unwrap(),
            FollowUpSituation::InSchool,
            None,
        ),
    );
    let mut document = automerge::Automerge::load(&monitor.store.export_document(case.id).unwrap())
        .unwrap()
        .with_actor(monitor.store.actor().clone());
    let author = vigie_core::doc::ChangeAuthor {
        user: monitor.store.user_id(),
        device: monitor.store.device_id(),
    };
    vigie_core::doc::write_record(&mut document, &edited, &author).unwrap();
    monitor
        .store
        .merge_document(case.id, &document.save())
        .unwrap();
    let user = monitor.user().to_string();
    admin_lines(&data, &["user", "areas", "--user", &user, "--area", C02]);
    assert_eq!(monitor.sync(&hub.url).unwrap().quarantined, vec![case.id]);
    let entries = admin_lines(&data, &["quarantine", "list"]);
    assert_eq!(entries[0]["state"], "breaks_a_rule", "{entries:?}");
    let number = entries[0]["entry"].as_i64().unwrap().to_string();
    let error = admin_error(&data, &["quarantine", "accept", "--entry", &number]);
    assert!(error.contains("validation rule"), "{error}");
    admin_lines(&data, &["quarantine", "reject", "--entry", &number]);
    assert!(admin_lines(&data, &["quarantine", "list"]).is_empty());
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// `vigie quarantine reject` of every entry waiting for review.
fn reject_every_entry(data: &Path) {
    use common::surface::admin_lines;
    for entry in admin_lines(data, &["quarantine", "list"]) {
        let number = entry["entry"].as_i64().unwrap().to_string();
        admin_lines(data, &["quarantine", "reject", "--entry", &number]);
    }
}

/// Changes kept for review and rejected, which a colleague's phone had received by a peer or a
/// bundle: their author's phone let the record go, so they will never come. The colleague is
/// told so (`AuthorRevoked`), rather than waiting for them for ever and passing the child's
/// record on: a record the hub holds is rebuilt on the hub's version with the colleague's own
/// edit, which then reaches the hub; a new one stays refused, offered to no one, until its
/// user lets it go.
#[test]
fn changes_rejected_in_review_do_not_hold_a_relay_for_ever() {
    use common::surface::admin_lines;
    let (dir, data, mut hub) = new_hub();
    let (mut monitor, mut supervisor) = monitor_and_supervisor(&dir, &data);
    let mut colleague = colleague(&dir, &data);
    let held = monitor
        .store
        .create(&child(area(C01), "Fatou Koné", monitor.user()))
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    colleague.sync(&hub.url).unwrap();
    // Offline, the monitor records a new case and edits the one the hub holds; both reach the
    // colleague by a bundle, who edits the second on top.
    let new = monitor
        .store
        .create(&child(area(C01), "Awa Rejetée", monitor.user()))
        .unwrap();
    let mut edited: ChildCase = monitor.store.get(held.id).unwrap();
    edited.notes = "Vue au marché, à revoir.".into();
    monitor.store.update(&edited).unwrap();
    let mut copies = Vec::new();
    for id in [new.id, held.id] {
        let copy = monitor.store.export_document(id).unwrap();
        assert!(colleague.store.merge_document(id, &copy).unwrap());
        copies.push((id, copy));
    }
    let mut theirs: ChildCase = colleague.store.get(held.id).unwrap();
    theirs.hours_per_week = 35;
    colleague.store.update(&theirs).unwrap();
    let waiting = colleague.sync(&hub.url).unwrap();
    assert_eq!(waiting.awaiting_author.len(), 2, "{waiting:?}");

    // The monitor moves away before syncing: both kept for review, then rejected.
    let user = monitor.user().to_string();
    admin_lines(&data, &["user", "areas", "--user", &user, "--area", C02]);
    let mut kept = monitor.sync(&hub.url).unwrap().quarantined;
    kept.sort();
    let mut both = vec![new.id, held.id];
    both.sort();
    assert_eq!(kept, both);
    reject_every_entry(&data);
    // What was rejected leaves the files at once, the write-ahead log included (as an
    // erasure's content does), though the hub still runs.
    if hub_database(&data).is_none() {
        let log = std::fs::metadata(data.join("hub.db-wal")).map_or(0, |m| m.len());
        assert_eq!(
            log, 0,
            "the write-ahead log still holds the rejected changes"
        );
    }

    // The same changes again (a copy of the monitor's phone restored, its bundle imported
    // again): settled, never kept for another review.
    for (id, copy) in &copies {
        monitor.store.merge_document(*id, copy).unwrap();
    }
    let again = monitor.sync(&hub.url).unwrap();
    assert!(again.quarantined.is_empty(), "{again:?}");
    assert!(
        again.awaiting_author.is_empty(),
        "refused, not waiting: {again:?}"
    );
    let mut refused: Vec<_> = again.refused.clone();
    refused.sort();
    let rejected = vigie_core::sync::Refusal::StepNotAllowed;
    assert_eq!(refused, vec![(both[0], rejected), (both[1], rejected)]);
    assert!(admin_lines(&data, &["quarantine", "list"]).is_empty());
    // Nor once the monitor's areas cover the case again.
    admin_lines(&data, &["user", "areas", "--user", &user, "--area", C01]);
    let back = monitor.sync(&hub.url).unwrap();
    assert_eq!(back.accepted, 0, "{back:?}");
    assert!(
        back.refused.iter().all(|(_, reason)| *reason == rejected) && back.refused.len() == 2,
        "{back:?}"
    );

    let told = colleague.sync(&hub.url).unwrap();
    assert!(told.awaiting_author.is_empty(), "{told:?}");
    assert_eq!(told.rebuilt, vec![held.id], "{told:?}");
    assert_eq!(
        told.refused,
        vec![(new.id, vigie_core::sync::Refusal::AuthorRevoked)],
        "{told:?}"
    );
    colleague.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    let on_hub: ChildCase = supervisor.store.get(held.id).unwrap();
    assert_eq!(
        on_hub.hours_per_week, 35,
        "the colleague's own edit went through"
    );
    assert_eq!(on_hub.notes, held.notes, "the rejected edit did not");
    assert!(!supervisor.has(new.id));
    // The rejected new case: refused, and gone once let go.
    colleague.store.discard_refused_changes(new.id).unwrap();
    assert!(!colleague.has(new.id));
    let last = colleague.sync(&hub.url).unwrap();
    assert_eq!(last.pending, 0, "{last:?}");
    // The monitor gives them up: the held case back at the hub's version, the new one gone.
    for id in [new.id, held.id] {
        monitor.store.discard_refused_changes(id).unwrap();
    }
    let settled = monitor.sync(&hub.url).unwrap();
    assert_eq!(settled.pending, 0, "{settled:?}");
    assert!(!monitor.has(new.id));
    let kept: ChildCase = monitor.store.get(held.id).unwrap();
    assert_eq!(
        (kept.notes.as_str(), kept.hours_per_week),
        (held.notes.as_str(), 35)
    );
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// The same for a relay that never learnt which version the hub holds: the case reached it by
/// a bundle carrying a colleague's edit, before the hub held the case, and the hub's copy
/// added nothing to it. Told `AuthorRevoked`, it gets the hub's version whole in the same
/// answer, and rebuilds on it.
#[test]
fn a_relay_that_never_had_the_hubs_version_is_rebuilt_after_a_rejection() {
    use common::surface::admin_lines;
    let (dir, data, mut hub) = new_hub();
    let mut maker = plain_device(dir.path(), &data, "maker", Role::CommunityMonitor, &[C01]);
    let mut editor = plain_device(dir.path(), &data, "editor", Role::CommunityMonitor, &[C01]);
    let mut relay = plain_device(dir.path(), &data, "relay", Role::CommunityMonitor, &[C01]);
    for device in [&mut maker, &mut editor, &mut relay] {
        device.sync(&hub.url).unwrap();
    }
    let case = maker
        .store
        .create(&child(area(C01), "Kossi Relayé", maker.user()))
        .unwrap();
    let copy = maker.store.export_document(case.id).unwrap();
    assert!(editor.store.merge_document(case.id, &copy).unwrap());
    let mut edited: ChildCase = editor.store.get(case.id).unwrap();
    edited.notes = "À rejeter.".into();
    editor.store.update(&edited).unwrap();
    let copy = editor.store.export_document(case.id).unwrap();
    assert!(relay.store.merge_document(case.id, &copy).unwrap());
    maker.sync(&hub.url).unwrap();
    let waiting = relay.sync(&hub.url).unwrap();
    assert_eq!(waiting.awaiting_author, vec![case.id], "{waiting:?}");

    let user = editor.user().to_string();
    admin_lines(&data, &["user", "deactivate", "--user", &user]);
    assert_eq!(editor.sync(&hub.url).unwrap().quarantined, vec![case.id]);
    reject_every_entry(&data);
    let told = relay.sync(&hub.url).unwrap();
    assert_eq!(told.rebuilt, vec![case.id], "{told:?}");
    assert!(told.refused.is_empty() && told.pending == 0, "{told:?}");
    let rebuilt: ChildCase = relay.store.get(case.id).unwrap();
    assert_eq!(rebuilt.notes, case.notes, "the rejected edit is gone");
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A case `monitor` made and every relay received from the hub; then, offline, the monitor's
/// edit of it (its notes), passed to each relay by a peer or a bundle. Returns the case.
fn case_with_a_relayed_edit(
    hub: &Hub,
    monitor: &mut Device,
    relays: &mut [&mut Device],
    name: &str,
) -> ChildCase {
    let case = monitor
        .store
        .create(&child(area(C01), name, monitor.user()))
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    for relay in relays.iter_mut() {
        relay.sync(&hub.url).unwrap();
        assert!(relay.has(case.id), "{}", relay.name);
    }
    let mut edited: ChildCase = monitor.store.get(case.id).unwrap();
    edited.notes = "À ne jamais prendre.".into();
    monitor.store.update(&edited).unwrap();
    let copy = monitor.store.export_document(case.id).unwrap();
    for relay in relays.iter_mut() {
        assert!(relay.store.merge_document(case.id, &copy).unwrap());
    }
    case
}

/// The relay edits the case it holds (`hours_per_week`, what `left_with_its_own_edit_in_review`
/// looks for), then the phone whose changes it relays is revoked and the relay's user
/// deactivated.
fn edit_then_lose_the_author_and_the_relays_areas(
    relay: &mut Device,
    case: uuid::Uuid,
    data: &Path,
    lost: &Device,
) {
    let mut own: ChildCase = relay.store.get(case).unwrap();
    own.hours_per_week = 12;
    relay.store.update(&own).unwrap();
    assert!(common::revoke(data, lost.token.device));
    let user = relay.user().to_string();
    common::surface::admin_lines(data, &["user", "deactivate", "--user", &user]);
}

/// The relay's sync `leaving` took the case away from it, nothing refused or pending, and the
/// one entry waiting for review is the relay's own edit (`hours_per_week`), nothing of the
/// changes that will never be taken.
fn left_with_its_own_edit_in_review(
    relay: &Device,
    case: uuid::Uuid,
    leaving: &vigie_core::sync::SyncSummary,
    data: &Path,
) {
    assert!(!relay.has(case), "{leaving:?}");
    assert!(
        leaving.refused.is_empty() && leaving.pending == 0,
        "{leaving:?}"
    );
    let entries = common::surface::admin_lines(data, &["quarantine", "list"]);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["fields"], serde_json::json!(["hours_per_week"]));
}

/// A relay whose own user lost the record's area: the monitor's second phone held the first
/// one's edit (a peer session), and the monitor moved away. Once the edit is rejected in
/// review, the case leaves the second phone at its next sync, as it would had the edit been
/// accepted. A phone with an edit of its own built on the rejected one rebuilds the case on the
/// version the hub was last known to hold (the hub sends none outside the user's areas): its
/// edit goes to review, and the case leaves it too.
#[test]
fn a_relay_out_of_scope_lets_the_record_go_once_the_changes_it_held_are_rejected() {
    use common::surface::admin_lines;
    let (dir, data, mut hub) = new_hub();
    let (mut monitor, _supervisor) = monitor_and_supervisor(&dir, &data);
    let second = |name: &str| {
        let token = enrol(&data, monitor.user());
        Device::open_with(
            dir.path(),
            name,
            &token,
            Role::CommunityMonitor,
            &[C01],
            Encryption::Unencrypted,
        )
    };
    let (mut quiet, mut busy) = (second("quiet"), second("busy"));
    let case = case_with_a_relayed_edit(
        &hub,
        &mut monitor,
        &mut [&mut quiet, &mut busy],
        "Afi Relayée",
    );
    // The busy phone edits on top of it.
    let mut own: ChildCase = busy.store.get(case.id).unwrap();
    own.hours_per_week = 30;
    busy.store.update(&own).unwrap();

    let user = monitor.user().to_string();
    admin_lines(&data, &["user", "areas", "--user", &user, "--area", C02]);
    assert_eq!(monitor.sync(&hub.url).unwrap().quarantined, vec![case.id]);
    reject_every_entry(&data);

    let told = quiet.sync(&hub.url).unwrap();
    assert!(!quiet.has(case.id), "{told:?}");
    assert!(
        told.refused.is_empty() && told.pending == 0 && told.left_scope == vec![case.id],
        "{told:?}"
    );
    assert!(quiet.store.search_names("Afi", 10).unwrap().is_empty());

    // The busy phone's own edit, built on the rejected one, is not lost: the case is rebuilt on
    // the version the hub was last known to hold, the edit written again goes to review (its
    // user holds no area of the case), and the case leaves the phone in that same sync.
    let leaving = busy.sync(&hub.url).unwrap();
    assert_eq!(leaving.rebuilt, vec![case.id], "{leaving:?}");
    assert_eq!(leaving.quarantined, vec![case.id], "{leaving:?}");
    left_with_its_own_edit_in_review(&busy, case.id, &leaving, &data);
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// The same for a colleague deactivated while holding, with an edit of their own, the edit of
/// a phone since revoked: a user with no area keeps nothing, their edit goes to review.
#[test]
fn a_deactivated_relay_keeps_nothing_of_a_revoked_phones_edit() {
    let (dir, data, mut hub) = new_hub();
    let (mut monitor, _supervisor) = monitor_and_supervisor(&dir, &data);
    let mut colleague = colleague(&dir, &data);
    let case = case_with_a_relayed_edit(&hub, &mut monitor, &mut [&mut colleague], "Ama Relayée");
    edit_then_lose_the_author_and_the_relays_areas(&mut colleague, case.id, &data, &monitor);
    let leaving = colleague.sync(&hub.url).unwrap();
    left_with_its_own_edit_in_review(&colleague, case.id, &leaving, &data);
    assert!(colleague.store.search_names("Ama", 10).unwrap().is_empty());
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A case a lost phone made, which the hub never held, relayed to a colleague who edited it:
/// once the colleague is deactivated it leaves their phone too (nothing of it can reach the
/// hub, and a user with no area keeps nothing).
#[test]
fn a_deactivated_relay_keeps_nothing_of_a_case_a_revoked_phone_made() {
    use common::surface::admin_lines;
    let (dir, data, mut hub) = new_hub();
    let (mut monitor, _supervisor) = monitor_and_supervisor(&dir, &data);
    let mut colleague = colleague(&dir, &data);
    monitor.sync(&hub.url).unwrap();
    colleague.sync(&hub.url).unwrap();
    let case = monitor
        .store
        .create(&child(area(C01), "Adjoua Perdue", monitor.user()))
        .unwrap();
    let copy = monitor.store.export_document(case.id).unwrap();
    assert!(colleague.store.merge_document(case.id, &copy).unwrap());
    edit_then_lose_the_author_and_the_relays_areas(&mut colleague, case.id, &data, &monitor);
    let mut leaving = colleague.sync(&hub.url).unwrap();
    if colleague.has(case.id) {
        // The first answer tells the phone its user's new areas, after its pushes were judged.
        leaving = colleague.sync(&hub.url).unwrap();
    }
    assert!(!colleague.has(case.id), "{leaving:?}");
    assert!(
        leaving.refused.is_empty() && leaving.pending == 0,
        "{leaving:?}"
    );
    assert!(
        colleague
            .store
            .search_names("Adjoua", 10)
            .unwrap()
            .is_empty()
    );
    assert!(admin_lines(&data, &["quarantine", "list"]).is_empty());
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A relay's own value of a field, set while the lost phone set it too, is what it writes
/// again and sends to review: not the lost phone's, which won the conflict on the relay.
#[test]
fn what_a_relay_sends_to_review_is_its_own_value_not_a_dropped_one_that_won() {
    use common::surface::admin_lines;
    let (dir, data, mut hub) = new_hub();
    let (mut monitor, mut supervisor) = monitor_and_supervisor(&dir, &data);
    let mut colleague = colleague(&dir, &data);
    let case = monitor
        .store
        .create(&child(area(C01), "Akissi Relayée", monitor.user()))
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    colleague.sync(&hub.url).unwrap();
    // Offline, both set the hours; the lost phone's edits come later in its history, so its
    // value wins the conflict (Automerge orders concurrent values by their operations' counters).
    let mut theirs: ChildCase = colleague.store.get(case.id).unwrap();
    theirs.hours_per_week = 30;
    colleague.store.update(&theirs).unwrap();
    for note in ["Vue au champ.", "Revue au marché.", "Revue à l'école."] {
        let mut lost: ChildCase = monitor.store.get(case.id).unwrap();
        lost.notes = note.into();
        monitor.store.update(&lost).unwrap();
    }
    let mut lost: ChildCase = monitor.store.get(case.id).unwrap();
    lost.hours_per_week = 40;
    monitor.store.update(&lost).unwrap();
    let copy = monitor.store.export_document(case.id).unwrap();
    assert!(colleague.store.merge_document(case.id, &copy).unwrap());
    let shown: ChildCase = colleague.store.get(case.id).unwrap();
    assert_eq!(shown.hours_per_week, 40, "the lost phone's value shows");

    assert!(common::revoke(&data, monitor.token.device));
    let user = colleague.user().to_string();
    admin_lines(&data, &["user", "deactivate", "--user", &user]);
    let leaving = colleague.sync(&hub.url).unwrap();
    left_with_its_own_edit_in_review(&colleague, case.id, &leaving, &data);
    let entry = admin_lines(&data, &["quarantine", "list"])[0]["entry"]
        .as_i64()
        .unwrap()
        .to_string();
    let by = supervisor.user().to_string();
    admin_lines(
        &data,
        &["quarantine", "accept", "--entry", &entry, "--by", &by],
    );
    supervisor.sync(&hub.url).unwrap();
    let accepted: ChildCase = supervisor.store.get(case.id).unwrap();
    assert_eq!(accepted.hours_per_week, 30);
    assert_eq!(accepted.notes, case.notes);
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

#[test]
fn an_erased_case_leaves_the_hub_and_every_device_and_never_comes_back() {
    const NAME: &str = "Zoubeyratou Kpandjélé";
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut hub = Hub::start(&data);
    let mut monitor = plain_device(dir.path(), &data, "monitor", Role::CommunityMonitor, &[C01]);
    let mut other = plain_device(dir.path(), &data, "other", Role::CommunityMonitor, &[C01]);
    let mut supervisor = plain_device(dir.path(), &data, "sup", Role::Supervisor, &[DISTRICT]);

    let case = monitor
        .store
        .create(&child(area(C01), NAME, monitor.user()))
        .unwrap();
    let kept = monitor
        .store
        .create(&child(area(C01), "Adjoa Mensah", monitor.user()))
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    other.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    for d in [&monitor, &other, &supervisor] {
        assert!(d.has(case.id), "{} received the case", d.name);
    }
    // Before the erasure the name is in the stores' files (the search index holds it): the
    // search below can find it.
    assert!(!files_containing(&store_files(&monitor.store), NAME.as_bytes()).is_empty());
    let old_copy = monitor.store.export_document(case.id).unwrap();

    // `other` goes offline with an edit of the case; the supervisor's decision is carried out.
    let mut edited: ChildCase = other.store.get(case.id).unwrap();
    edited.notes = "Suivi prévu.".into();
    other.store.update(&edited).unwrap();
    let by = supervisor.user().to_string();
    let record = case.id.to_string();
    let mut erase = vec!["erase", "--data", data.to_str().unwrap()];
    let args = database_args(&data);
    erase.extend(args.iter().map(String::as_str));
    erase.extend([
        "--record",
        &record,
        "--by",
        &by,
        "--reason",
        "legal_request",
    ]);
    vigie(&erase);

    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!(summary.erased, vec![case.id]);
    supervisor.sync(&hub.url).unwrap();
    assert!(!monitor.has(case.id) && !supervisor.has(case.id));
    assert!(monitor.has(kept.id), "only the erased case goes");

    // The offline device returns with its old copy and an edit: refused, and its copy goes.
    let summary = other.sync(&hub.url).unwrap();
    assert!(summary.erased.contains(&case.id), "{summary:?}");
    assert!(!other.has(case.id));
    assert_eq!(summary.pending, 0);

    // An old copy from a bundle or a peer does not bring it back either.
    monitor.store.merge_document(case.id, &old_copy).unwrap();
    assert!(!monitor.has(case.id));
    // ... and the hub does not send it again, to anyone.
    let mut newcomer = plain_device(dir.path(), &data, "new", Role::Supervisor, &[DISTRICT]);
    newcomer.sync(&hub.url).unwrap();
    assert!(!newcomer.has(case.id) && newcomer.has(kept.id));

    hub.stop();
    let mut files = vec![];
    for d in [&monitor, &other, &supervisor, &newcomer] {
        files.extend(store_files(&d.store));
    }
    if hub_database(&data).is_none() {
        files.push(data.clone());
    }
    let found = files_containing(&files, NAME.as_bytes());
    assert!(found.is_empty(), "the name is still readable in {found:?}");
    // Neither does the hub's log carry it (nor any other name of this test).
    let log = std::fs::read_to_string(data.with_extension("hub.log")).unwrap_or_default();
    for name in [NAME, "Adjoa Mensah"] {
        assert!(!log.contains(name), "the hub logged a name");
    }
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

#[test]
fn administration_commands_open_an_encrypted_hub_with_its_key() {
    if postgres_server().is_some() {
        return; // The key protects the embedded store only.
    }
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let key = "ab".repeat(32);
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .args(["--data", data.to_str().unwrap()])
            .env("VIGIE_HUB_KEY", &key)
            .output()
            .expect("run vigie")
    };
    // Its areas are named by a published tree.
    let published = run(&["reference", "publish", common::reference::SAMPLE_AREAS]);
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let out = run(&[
        "user",
        "add",
        "--name",
        "Superviseur",
        "--role",
        "supervisor",
        "--area",
        C01,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let out = run(&["device", "enrol", "--user", &user]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = Token::parse(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    let device = token.device.to_string();
    let out = run(&["device", "revoke", "--device", &device]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["quarantine", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two communities merged while a monitor of the one that goes had a child's case and a draft
/// visit unsent: her changes go to review. The list says the record would be filed under a
/// community no tree holds and that the visit is a draft; accepted before the records were
/// filed again, the operator is told what to run; accepted after `refile --to`, it is filed
/// where that community's records went (it was filed under the old code in silence, seen by
/// no one who works there).
#[test]
fn a_review_after_a_merge_of_communities_files_the_record_where_the_community_went() {
    use common::surface::{admin, admin_lines};
    let (dir, data, mut hub) = new_hub();
    let mut monitor = plain_device(dir.path(), &data, "monitor", Role::CommunityMonitor, &[C02]);
    let place = monitor
        .store
        .create(&workplace(area(C02), "Plantation Kouadio"))
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    // Offline: a child identified, a visit begun.
    let case = monitor
        .store
        .create(&child(area(C02), "Awa Traoré", monitor.user()))
        .unwrap();
    let mut draft = visit(area(C02), place.id, monitor.user(), 2);
    draft.status = VisitStatus::Draft;
    let draft = monitor.store.create(&draft).unwrap();
    // The ministry merges C02 into C01: a new tree, her new area.
    let tree = std::fs::read_to_string(common::reference::SAMPLE_AREAS).unwrap();
    let mut tree: serde_json::Value = serde_json::from_str(&tree).unwrap();
    tree["administrative_areas"]["children"][0]["children"][0]["children"]
        .as_array_mut()
        .unwrap()
        .retain(|c| c["code"] != C02);
    let path = dir.path().join("areas-merged.json");
    std::fs::write(&path, tree.to_string()).unwrap();
    assert!(
        admin(&data, &["reference", "publish", path.to_str().unwrap()])
            .status
            .success()
    );
    let user = monitor.user().to_string();
    admin_lines(&data, &["user", "areas", "--user", &user, "--area", C01]);
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!(summary.quarantined.len(), 2, "{summary:?}");

    let entry_of = |id: uuid::Uuid| {
        admin_lines(&data, &["quarantine", "list"])
            .into_iter()
            .find(|e| e["record"] == id.to_string())
            .unwrap_or_else(|| panic!("{id}"))
    };
    let (of_case, of_visit) = (entry_of(case.id), entry_of(draft.id));
    assert_eq!(of_case["community_gone"], true, "{of_case}");
    assert_eq!(of_case["refiled_to"], serde_json::Value::Null, "{of_case}");
    assert_eq!(of_case["status_after"], "identified", "{of_case}");
    assert_eq!(of_visit["status_after"], "draft", "{of_visit}");
    let accept = |entry: &serde_json::Value| {
        let number = entry["entry"].as_i64().unwrap().to_string();
        let out = admin(&data, &["quarantine", "accept", "--entry", &number]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // Accepted before the community's records were filed again: the operator is told to.
    let said = accept(&of_visit);
    assert!(said.contains("the visit is a draft"), "{said}");
    assert!(
        said.contains(&format!(
            "vigie reference refile --community {C02} --to <its new code>"
        )),
        "{said}"
    );
    let refiled = admin_lines(
        &data,
        &["reference", "refile", "--community", C02, "--to", C01],
    );
    assert_eq!(
        refiled[0]["refiled"], 2,
        "the workplace and the visit: {refiled:?}"
    );
    // After it: the case goes where the community's records went, nothing to run.
    let of_case = entry_of(case.id);
    assert_eq!(of_case["refiled_to"], C01, "{of_case}");
    let said = accept(&of_case);
    assert!(!said.contains("refile"), "{said}");
    monitor.sync(&hub.url).unwrap();
    assert!(
        monitor.has(case.id),
        "the monitor of the merged community has the child"
    );
    assert!(monitor.has(draft.id));
    let filed: ChildCase = monitor.store.get(case.id).unwrap();
    assert_eq!(filed.area.community, C01);
    hub.stop();
}

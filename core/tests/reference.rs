//! Reference data published by a hub as versioned documents, on real store files: publishing,
//! syncing to every device whatever its role and areas, classification and validation with the
//! versions a record was captured with, labels by language, area trees, referral directories,
//! and classification at every boundary of two country profiles.

use crate::common;

use chrono::{FixedOffset, TimeZone, Utc};
use common::{Device, date};
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::reference::{
    AreaLevel, AreaNode, ChecklistContent, ChecklistItem, CountryProfile, Item, Labels, Pin,
    Provider, Published, ReferenceContent, ReferenceDocument, ReferenceType, ReferralDirectory,
};
use vigie_core::sync::wire::{self, SyncRequest};
use vigie_core::sync::{HubLimits, SyncOptions, SyncSummary, sync_with_hub};
use vigie_core::*;

fn ci(district: &str, community: &str) -> Area {
    Area::new("CI", "CI-R1", district, community)
}

fn hub(dir: &TempDir) -> Store {
    let config = StoreConfig::new(
        dir.path().join("hub.db"),
        Encryption::Unencrypted,
        Uuid::now_v7(),
    )
    .role(StoreRole::Hub);
    Store::open(config).unwrap()
}

fn open_device(dir: &TempDir, name: &str, user: Uuid) -> Store {
    Store::open(StoreConfig::new(
        dir.path().join(format!("{name}.db")),
        Encryption::Key(common::DEVICE_KEY),
        user,
    ))
    .unwrap()
}

fn device(dir: &TempDir, name: &str, role: Role, areas: &[&str]) -> Device {
    common::device(dir.path(), name, role, areas)
}

fn sync(d: &mut Device, hub: &mut Store) -> SyncSummary {
    let principal = d.principal.clone();
    sync_with_hub(
        &mut d.store,
        &SyncOptions::default(),
        |request| {
            hub.hub_handle(&principal, request, &HubLimits::default())
                .map_err(|e| e.to_string())
        },
        |_| {},
    )
    .unwrap()
}

/// A child identified on 2026-03-02, born on that day `age` years before (so exactly `age`).
fn child(area: Area, age: i32, hours: i32, by: Uuid) -> ChildCase {
    let mut c = ChildCase::new(
        &format!("CASE-{}", &Uuid::new_v4().simple().to_string()[..8]),
        "Koffi",
        Sex::Male,
        area,
        date(2026, 3, 2),
        by,
    );
    c.date_of_birth = Some(date(2026 - age, 3, 2));
    c.hours_per_week = hours;
    c
}

fn validation<T: std::fmt::Debug>(r: Result<T>) -> (String, String) {
    match r {
        Err(Error::Validation(ValidationError { field, rule })) => (field, rule),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn outcome(c: &ChildCase) -> (ClassificationOutcome, String) {
    let c = c.classification.as_ref().expect("classified");
    (c.outcome, c.rule_set.clone())
}

/// Côte d'Ivoire's profile, version 1: the ILO thresholds with a cocoa hazard of its own.
fn ci_profile_v1() -> CountryProfile {
    let mut p = CountryProfile::ilo_default();
    p.name = Labels::fr_en("Côte d'Ivoire", "Côte d'Ivoire");
    p.thresholds.hazardous_work.push(Item::new(
        "cocoa_pod_breaking",
        "Écabossage à la machette",
        "Breaking cocoa pods with a machete",
    ));
    p
}

/// Version 2: the minimum age raised to 16 (light work from 14), the cocoa hazard folded into
/// `sharp_tools`.
fn ci_profile_v2() -> CountryProfile {
    let mut p = ci_profile_v1();
    p.thresholds.minimum_age = 16;
    p.thresholds.light_work_min_age = 14;
    p.thresholds
        .hazardous_work
        .retain(|h| h.code != "cocoa_pod_breaking");
    p
}

/// A developing country's profile under C138 art. 2(4) and 3(3): minimum age 14, light work
/// from 12 up to 12 hours, hazardous work from 16, long hours above 36, night work not listed.
fn bf_profile() -> CountryProfile {
    CountryProfile {
        name: Labels::fr_en("Burkina Faso", "Burkina Faso"),
        thresholds: Thresholds {
            minimum_age: 14,
            light_work_min_age: 12,
            light_work_max_hours: 12,
            hazardous_work_age: 16,
            long_hours: 36,
            night_work_is_hazardous: false,
            hazardous_work: vec![
                Item::new("gold_panning", "Orpaillage", "Gold panning"),
                Item::new(
                    "heavy_loads",
                    "Port de charges lourdes",
                    "Carrying heavy loads",
                ),
            ],
            follow_up_months: vec![2, 4, 8],
            follow_up_yearly_until_age: 17,
        },
        worst_forms: Vec::new(),
    }
}

/// Publishes the sample area tree (`reference/areas-CI.json`) on the hub.
fn publish_sample_areas(hub: &mut Store) {
    let file = common::sample_areas();
    hub.publish_reference(&file.key, file.content).unwrap();
}

fn ci_areas() -> AreaNode {
    let community = |code: &str, name: &str| AreaNode::new(code, Labels::fr_en(name, name), vec![]);
    AreaNode::new(
        "CI",
        Labels::fr_en("Côte d'Ivoire", "Ivory Coast"),
        vec![AreaNode::new(
            "CI-R1",
            Labels::fr_en("Région 1", "Region 1"),
            vec![
                AreaNode::new(
                    "CI-R1-D1",
                    Labels::fr_en("District 1", "District 1"),
                    vec![
                        community("CI-R1-D1-C01", "Aké"),
                        community("CI-R1-D1-C02", "Bécédi"),
                    ],
                ),
                AreaNode::new(
                    "CI-R1-D2",
                    Labels::fr_en("District 2", "District 2"),
                    vec![community("CI-R1-D2-C07", "Yakassé")],
                ),
            ],
        )],
    )
}

// ---------------------------------------------------------------------------------------------

#[test]
fn built_in_reference_is_used_when_nothing_is_published() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let mut store = open_device(&dir, "device", user);
    let reference = store.reference();
    assert_eq!(reference.rule_set(), &RuleSet::ilo_default());
    assert_eq!(
        reference.rule_set_for_country("CI"),
        &RuleSet::ilo_default()
    );
    assert!(reference.has_sector("cocoa"));
    assert_eq!(reference.sectors().last().unwrap().code, "other");
    let li = reference.latest_checklist("labour-inspection").unwrap();
    assert_eq!(li.version, 1);
    assert_eq!(li.items.len(), 20);
    assert_eq!(li.items[0].code, "LI01");
    assert_eq!(li.items[19].code, "LI20");
    assert!(reference.latest_checklist("child-labour").is_some());

    // The ILO's 11 forced-labour indicators, coded as the model's indicators.
    let fl = reference.forced_labour_indicators().unwrap();
    assert_eq!(fl.items.len(), 11);
    for (item, indicator) in fl.items.iter().zip(ForcedLabourIndicator::ALL) {
        assert_eq!(
            serde_json::to_value(indicator).unwrap(),
            serde_json::Value::String(item.code.clone())
        );
        assert!(!item.label("fr").is_empty() && !item.label("en").is_empty());
    }
    assert_eq!(
        fl.item("debt_bondage").unwrap().label("fr"),
        "Servitude pour dettes"
    );
    assert_eq!(
        fl.item("excessive_overtime").unwrap().label("en"),
        "Excessive overtime"
    );

    // The default profile lists the worst forms of C182 art. 3 (a)-(c).
    let profile = reference.country_profile("ilo-default", 1).unwrap();
    assert_eq!(profile.worst_forms.len(), 6);
    assert_eq!(profile.thresholds.minimum_age, 15);

    // Records are captured with the built-in versions.
    let c = store
        .create(&child(ci("CI-R1-D1", "CI-R1-D1-C01"), 12, 10, user))
        .unwrap();
    assert_eq!(
        outcome(&c),
        (ClassificationOutcome::ChildLabour, "ilo-default@1".into())
    );
    assert_eq!(
        c.captured_with.country_profile,
        Some(Pin::new("ilo-default", 1))
    );
    assert_eq!(c.captured_with.administrative_areas, None);
    let w = store
        .create(&Workplace::new(
            "Plantation Aké",
            "cocoa",
            Formality::Informal,
            ci("CI-R1-D1", "CI-R1-D1-C01"),
        ))
        .unwrap();
    assert_eq!(w.captured_with.sectors, Some(Pin::new("default", 1)));
    let (field, _) = validation(store.create(&Workplace::new(
        "Atelier",
        "spaceships",
        Formality::Formal,
        ci("CI-R1-D1", "CI-R1-D1-C01"),
    )));
    assert_eq!(field, "sector");
}

#[test]
fn a_profile_published_on_the_hub_classifies_on_devices_and_old_records_keep_theirs() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(&dir);
    let c01 = ci("CI-R1-D1", "CI-R1-D1-C01");
    let mut monitor = device(&dir, "monitor", Role::CommunityMonitor, &["CI-R1-D1-C01"]);
    let by = monitor.principal.user;

    let v1 = hub
        .publish_reference("CI", ReferenceContent::CountryProfile(ci_profile_v1()))
        .unwrap();
    assert_eq!(v1, 1);
    let summary = sync(&mut monitor, &mut hub);
    assert_eq!(summary.received, 1, "{summary:?}");
    assert_eq!(monitor.store.hub_outbox_len().unwrap(), 0);
    assert_eq!(
        monitor.store.reference().rule_set_for_country("CI").label(),
        "CI@1"
    );
    // The hub serves a country's records once its area tree is published.
    publish_sample_areas(&mut hub);
    // Another country still gets the default profile.
    assert_eq!(
        monitor.store.reference().rule_set_for_country("GH").label(),
        "ilo-default@1"
    );

    // 15 years old, 20 hours a week: at the minimum age under CI@1.
    let old = monitor
        .store
        .create(&child(c01.clone(), 15, 20, by))
        .unwrap();
    assert_eq!(
        outcome(&old),
        (ClassificationOutcome::NotChildLabour, "CI@1".into())
    );
    let mut with_pods = child(c01.clone(), 13, 5, by);
    with_pods.hazards.insert("cocoa_pod_breaking".into());
    let with_pods = monitor.store.create(&with_pods).unwrap();
    assert_eq!(
        outcome(&with_pods),
        (ClassificationOutcome::HazardousChildLabour, "CI@1".into())
    );
    assert_eq!(sync(&mut monitor, &mut hub).accepted, 2);

    // Version 2 raises the minimum age to 16 and drops the cocoa hazard.
    let v2 = hub
        .publish_reference("CI", ReferenceContent::CountryProfile(ci_profile_v2()))
        .unwrap();
    assert_eq!(v2, 2);
    sync(&mut monitor, &mut hub);
    assert_eq!(
        monitor.store.reference().rule_set_for_country("CI").label(),
        "CI@2"
    );

    // New records use v2: the same facts are now child labour.
    let new = monitor
        .store
        .create(&child(c01.clone(), 15, 20, by))
        .unwrap();
    assert_eq!(
        outcome(&new),
        (ClassificationOutcome::ChildLabour, "CI@2".into())
    );
    assert_eq!(new.captured_with.country_profile, Some(Pin::new("CI", 2)));
    let mut pods_now = child(c01.clone(), 13, 5, by);
    pods_now.hazards.insert("cocoa_pod_breaking".into());
    let (field, rule) = validation(monitor.store.create(&pods_now));
    assert_eq!(
        (field.as_str(), rule.as_str()),
        ("hazards.cocoa_pod_breaking", "unknown hazard code")
    );

    // The old records keep their v1 classification, and still validate and classify with v1
    // when edited (an app that does not send `captured_with` cannot change it).
    let read: ChildCase = monitor.store.get(old.id).unwrap();
    assert_eq!(
        outcome(&read),
        (ClassificationOutcome::NotChildLabour, "CI@1".into())
    );
    let mut edit = read.clone();
    edit.notes = "Aide aux champs le week-end.".into();
    edit.hours_per_week = 21;
    edit.captured_with = Default::default();
    let edited = monitor.store.update(&edit).unwrap();
    assert_eq!(
        outcome(&edited),
        (ClassificationOutcome::NotChildLabour, "CI@1".into())
    );
    assert_eq!(
        edited.captured_with.country_profile,
        Some(Pin::new("CI", 1))
    );
    let mut edit = monitor.store.get::<ChildCase>(with_pods.id).unwrap();
    edit.hours_per_week = 6;
    let edited = monitor.store.update(&edit).unwrap();
    assert_eq!(
        outcome(&edited),
        (ClassificationOutcome::HazardousChildLabour, "CI@1".into())
    );

    // Reopened, the store still holds both versions.
    let user = monitor.principal.user;
    monitor.store.close().unwrap();
    monitor.store = open_device(&dir, "monitor", user);
    let reference = monitor.store.reference();
    assert_eq!(
        reference.versions(ReferenceType::CountryProfile, "CI"),
        vec![1, 2]
    );
    assert!(reference.is_published(ReferenceType::CountryProfile, "CI", 1));
    assert_eq!(
        reference
            .rule_set_at("CI", 1)
            .unwrap()
            .thresholds
            .minimum_age,
        15
    );
    assert_eq!(
        reference
            .rule_set_at("CI", 2)
            .unwrap()
            .thresholds
            .minimum_age,
        16
    );
    let doc = monitor
        .store
        .reference_document(ReferenceType::CountryProfile, "CI")
        .unwrap();
    assert_eq!(
        doc.id,
        ReferenceDocument::id_for(ReferenceType::CountryProfile, "CI")
    );
    assert_eq!(
        doc.content(1),
        Some(ReferenceContent::CountryProfile(ci_profile_v1()))
    );

    // A device that has not received the profile yet (the case came from a peer) is told so
    // when it edits a case captured with it, rather than classifying it with other rules.
    let late = open_device(&dir, "late", Uuid::now_v7());
    let mut late = Device {
        principal: monitor.principal.clone(),
        store: late,
    };
    assert!(late.store.reference().rule_set_at("CI", 2).is_none());
    // It holds the area tree (published before it last synced, say): only the profile is new.
    let areas_id =
        ReferenceDocument::id_for_version(ReferenceType::AdministrativeAreas, "CI", 1, 0);
    late.store
        .merge_document(areas_id, &monitor.store.export_document(areas_id).unwrap())
        .unwrap();
    late.store
        .merge_document(new.id, &monitor.store.export_document(new.id).unwrap())
        .unwrap();
    let mut edit: ChildCase = late.store.get(new.id).unwrap();
    edit.notes = "Revu.".into();
    let (field, rule) = validation(late.store.update(&edit));
    assert_eq!(field, "captured_with.country_profile");
    assert!(rule.contains("sync"), "{rule}");
}

/// A national hazardous work list revised while a child is followed: a hazard the list gained
/// is recorded on a case identified before, which is classified with the list in force from
/// then on, on the phone and on the hub. A case holding a hazard the new list dropped stays
/// with its own list, and the new hazard is refused, named.
#[test]
fn a_hazard_the_list_gained_moves_an_earlier_case_to_the_list_in_force() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(&dir);
    publish_sample_areas(&mut hub);
    let c01 = ci("CI-R1-D1", "CI-R1-D1-C01");
    let mut monitor = device(&dir, "monitor", Role::CommunityMonitor, &["CI-R1-D1-C01"]);
    let by = monitor.principal.user;
    hub.publish_reference("CI", ReferenceContent::CountryProfile(ci_profile_v1()))
        .unwrap();
    sync(&mut monitor, &mut hub);
    // 16 years old, 20 hours a week: no child labour under CI@1; another with pods.
    let case = monitor
        .store
        .create(&child(c01.clone(), 16, 20, by))
        .unwrap();
    let mut pods = child(c01.clone(), 16, 20, by);
    pods.hazards.insert("cocoa_pod_breaking".into());
    let pods = monitor.store.create(&pods).unwrap();
    sync(&mut monitor, &mut hub);

    // Version 2 adds charcoal burning, and drops the pods (folded into sharp tools).
    let mut v2 = ci_profile_v2();
    v2.thresholds.minimum_age = 15;
    v2.thresholds.light_work_min_age = 13;
    v2.thresholds.hazardous_work.push(Item::new(
        "charcoal_burning",
        "Fabrication du charbon de bois",
        "Charcoal burning",
    ));
    hub.publish_reference("CI", ReferenceContent::CountryProfile(v2))
        .unwrap();
    sync(&mut monitor, &mut hub);

    let mut edit: ChildCase = monitor.store.get(case.id).unwrap();
    edit.hazards.insert("charcoal_burning".into());
    let edited = monitor.store.update(&edit).unwrap();
    assert_eq!(
        edited.captured_with.country_profile,
        Some(Pin::new("CI", 2))
    );
    assert_eq!(
        outcome(&edited),
        (ClassificationOutcome::HazardousChildLabour, "CI@2".into())
    );
    let summary = sync(&mut monitor, &mut hub);
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
    let held: ChildCase = hub.get(case.id).unwrap();
    assert_eq!(held.captured_with.country_profile, Some(Pin::new("CI", 2)));
    assert_eq!(
        outcome(&held),
        (ClassificationOutcome::HazardousChildLabour, "CI@2".into())
    );

    // The pods are on CI@1's list only: that case keeps it, and charcoal is not on it.
    let mut edit: ChildCase = monitor.store.get(pods.id).unwrap();
    edit.hazards.insert("charcoal_burning".into());
    let (field, rule) = validation(monitor.store.update(&edit));
    assert_eq!(field, "hazards.charcoal_burning");
    assert!(rule.contains("list in force"), "{rule}");
    let held: ChildCase = monitor.store.get(pods.id).unwrap();
    assert_eq!(held.captured_with.country_profile, Some(Pin::new("CI", 1)));
}

/// Two devices' edits of a case, merged on a tablet that lacks the profile version the case was
/// captured with (through peers, before its next sync): each device's classification was right
/// for its own edit, and the two mixed field by field are right for neither. The tablet works
/// the derived fields out from the merged values with the newest version it holds, and names
/// it; once the version comes, with it. A record last written by one device keeps the
/// classification that device gave it.
#[test]
fn a_merge_on_a_device_lacking_the_cases_profile_version_derives_from_the_merged_values() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(&dir);
    let c01 = ci("CI-R1-D1", "CI-R1-D1-C01");
    hub.publish_reference("CI", ReferenceContent::CountryProfile(ci_profile_v1()))
        .unwrap();
    publish_sample_areas(&mut hub);
    let mut tablet = device(&dir, "tablet", Role::Supervisor, &["CI-R1"]);
    sync(&mut tablet, &mut hub);
    hub.publish_reference("CI", ReferenceContent::CountryProfile(ci_profile_v2()))
        .unwrap();
    let mut phone = device(&dir, "phone", Role::CommunityMonitor, &["CI-R1-D1-C01"]);
    let mut other = device(&dir, "other", Role::CommunityMonitor, &["CI-R1-D1-C01"]);
    sync(&mut phone, &mut hub);
    sync(&mut other, &mut hub);

    let case = phone
        .store
        .create(&child(c01, 16, 10, phone.principal.user))
        .unwrap();
    assert_eq!(case.captured_with.country_profile, Some(Pin::new("CI", 2)));
    sync(&mut phone, &mut hub);
    sync(&mut other, &mut hub);
    // Offline, one phone sees the child work long hours, the other learns the child is 13.
    let mut long_hours: ChildCase = phone.store.get(case.id).unwrap();
    long_hours.hours_per_week = 50;
    phone.store.update(&long_hours).unwrap();
    let mut younger: ChildCase = other.store.get(case.id).unwrap();
    younger.date_of_birth = Some(date(2013, 3, 2));
    other.store.update(&younger).unwrap();

    // The tablet lacks CI@2. One device's write: its classification stands.
    assert!(tablet.store.reference().rule_set_at("CI", 2).is_none());
    tablet
        .store
        .merge_document(case.id, &phone.store.export_document(case.id).unwrap())
        .unwrap();
    let read: ChildCase = tablet.store.get(case.id).unwrap();
    assert_eq!(
        read.classification,
        phone
            .store
            .get::<ChildCase>(case.id)
            .unwrap()
            .classification
    );
    // Both writes: worked out anew, with CI@1.
    tablet
        .store
        .merge_document(case.id, &other.store.export_document(case.id).unwrap())
        .unwrap();
    let merged: ChildCase = tablet.store.get(case.id).unwrap();
    assert_eq!(
        (merged.hours_per_week, merged.date_of_birth),
        (50, Some(date(2013, 3, 2)))
    );
    let expected = tablet
        .store
        .reference()
        .rule_set_at("CI", 1)
        .unwrap()
        .classify(&merged);
    assert_eq!(expected.rule_set, "CI@1");
    assert_eq!(expected.age, Some(13));
    assert_eq!(merged.classification.as_ref(), Some(&expected));
    // The lists and alerts read the same.
    let listed = tablet
        .store
        .child_cases(&ChildCaseQuery::default(), Page::first(10))
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].age, listed[0].classification),
        (Some(13), Some(expected.outcome))
    );
    let alerted = tablet
        .store
        .alerts(None, Page::first(10))
        .unwrap()
        .iter()
        .any(|a| a.id == case.id);
    assert_eq!(
        alerted,
        matches!(
            expected.outcome,
            ClassificationOutcome::HazardousChildLabour | ClassificationOutcome::WorstFormSuspected
        )
    );
    // Writes still wait for the version.
    let mut edit = merged.clone();
    edit.notes = "Revu.".into();
    let (field, _) = validation(tablet.store.update(&edit));
    assert_eq!(field, "captured_with.country_profile");

    // With the version, the pinned rules classify the merged values, as on the hub.
    sync(&mut phone, &mut hub);
    sync(&mut other, &mut hub);
    sync(&mut tablet, &mut hub);
    let synced: ChildCase = tablet.store.get(case.id).unwrap();
    let on_hub: ChildCase = hub.get(case.id).unwrap();
    assert_eq!(synced.classification.as_ref().unwrap().rule_set, "CI@2");
    assert_eq!(synced.classification, on_hub.classification);
    assert_eq!(synced.classification.unwrap().age, Some(13));
}

#[test]
fn publishing_versions_only_forward_and_the_same_content_twice_is_one_version() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(&dir);
    let profile = ReferenceContent::CountryProfile(ci_profile_v1());
    assert_eq!(hub.publish_reference("CI", profile.clone()).unwrap(), 1);
    assert_eq!(hub.publish_reference("CI", profile.clone()).unwrap(), 1);
    let doc = hub
        .reference_document(ReferenceType::CountryProfile, "CI")
        .unwrap();
    assert_eq!(doc.latest(), Some(1));
    assert_eq!(hub.count(RecordKind::Reference).unwrap(), 1);

    // A built-in checklist's first publication is its version 2.
    let mut items = hub
        .reference()
        .latest_checklist("labour-inspection")
        .unwrap()
        .items
        .clone();
    items.push(ChecklistItem::new(
        "LI21",
        "Âge minimum affiché",
        "Minimum age displayed",
    ));
    let checklist = ReferenceContent::Checklist(ChecklistContent {
        name: Labels::fr_en("Inspection du travail", "Labour inspection"),
        items,
    });
    assert_eq!(
        hub.publish_reference("labour-inspection", checklist)
            .unwrap(),
        2
    );
    // Republishing the built-in content names the built-in version... only while it is the
    // latest: here v2 differs, so the old content becomes v3.
    let builtin = ReferenceData::builtin();
    let v1 = builtin.checklist("labour-inspection", 1).unwrap();
    let again = ReferenceContent::Checklist(ChecklistContent {
        name: v1.name.clone(),
        items: v1.items.clone(),
    });
    assert_eq!(
        hub.publish_reference("labour-inspection", again).unwrap(),
        3
    );

    // Contents that break the conventions' bounds are refused, naming the field.
    let mut low = bf_profile();
    low.thresholds.minimum_age = 13;
    let (field, _) = validation(hub.publish_reference("BF", ReferenceContent::CountryProfile(low)));
    assert_eq!(field, "country_profile.minimum_age");
    let mut light = bf_profile();
    light.thresholds.light_work_min_age = 11;
    let (field, _) =
        validation(hub.publish_reference("BF", ReferenceContent::CountryProfile(light)));
    assert_eq!(field, "country_profile.light_work_min_age");
    let mut hazardous = bf_profile();
    hazardous.thresholds.hazardous_work_age = 15;
    let (field, _) =
        validation(hub.publish_reference("BF", ReferenceContent::CountryProfile(hazardous)));
    assert_eq!(field, "country_profile.hazardous_work_age");
    let mut twice = bf_profile();
    twice
        .thresholds
        .hazardous_work
        .push(twice.thresholds.hazardous_work[0].clone());
    let (field, _) =
        validation(hub.publish_reference("BF", ReferenceContent::CountryProfile(twice)));
    assert_eq!(field, "country_profile.hazardous_work.gold_panning");
    let (field, _) =
        validation(hub.publish_reference("C@1", ReferenceContent::CountryProfile(bf_profile())));
    assert_eq!(field, "key");
    assert!(
        hub.reference_document(ReferenceType::CountryProfile, "BF")
            .is_err()
    );
}

#[test]
fn a_checklist_item_removed_in_a_new_version_still_validates_on_old_visits() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(&dir);
    let mut inspector = device(&dir, "inspector", Role::Inspector, &["CI-R1-D1"]);
    let by = inspector.principal.user;
    let mut items = ReferenceData::builtin()
        .latest_checklist("labour-inspection")
        .unwrap()
        .items
        .clone();
    items.retain(|i| i.code != "LI20");
    items.push(ChecklistItem::new(
        "LI21",
        "Âge minimum affiché",
        "Minimum age displayed",
    ));
    let v2 = hub
        .publish_reference(
            "labour-inspection",
            ReferenceContent::Checklist(ChecklistContent {
                name: Labels::fr_en("Inspection du travail", "Labour inspection"),
                items,
            }),
        )
        .unwrap();
    assert_eq!(v2, 2);
    sync(&mut inspector, &mut hub);
    assert_eq!(
        inspector
            .store
            .reference()
            .latest_checklist("labour-inspection")
            .unwrap()
            .version,
        2
    );

    let w = inspector
        .store
        .create(&Workplace::new(
            "Carrière",
            "mining",
            Formality::Formal,
            ci("CI-R1-D1", "CI-R1-D1-C02"),
        ))
        .unwrap();
    let start = FixedOffset::east_opt(0)
        .unwrap()
        .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .unwrap();
    let visit = |version: i32, code: &str| {
        let mut v = Visit::new(VisitKind::LabourInspection, &w, by, start);
        v.checklist = ChecklistAnswers {
            checklist: "labour-inspection".into(),
            version,
            answers: [(code.to_string(), Answer::No)].into_iter().collect(),
        };
        v
    };
    let old = inspector.store.create(&visit(1, "LI20")).unwrap();
    inspector.store.create(&visit(2, "LI21")).unwrap();
    let (field, rule) = validation(inspector.store.create(&visit(2, "LI20")));
    assert_eq!(
        (field.as_str(), rule.as_str()),
        ("checklist.answers.LI20", "unknown checklist item")
    );
    let (field, _) = validation(inspector.store.create(&visit(3, "LI01")));
    assert_eq!(field, "checklist.checklist");
    let mut edit: Visit = inspector.store.get(old.id).unwrap();
    edit.findings = "Pas de registre.".into();
    inspector.store.update(&edit).unwrap();
}

#[test]
fn every_principal_receives_reference_data_and_no_device_may_change_it() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(&dir);
    hub.publish_reference("CI", ReferenceContent::CountryProfile(ci_profile_v1()))
        .unwrap();
    hub.publish_reference("CI", ReferenceContent::AdministrativeAreas(ci_areas()))
        .unwrap();
    // Each version is a document of its own.
    let profile_id = ReferenceDocument::id_for_version(ReferenceType::CountryProfile, "CI", 1, 0);
    let areas_id =
        ReferenceDocument::id_for_version(ReferenceType::AdministrativeAreas, "CI", 1, 0);

    let mut devices = vec![
        device(&dir, "monitor", Role::CommunityMonitor, &["CI-R1-D1-C01"]),
        device(&dir, "inspector", Role::Inspector, &["GH-R3"]),
        device(&dir, "supervisor", Role::Supervisor, &["CI-R1"]),
        device(&dir, "unassigned", Role::CommunityMonitor, &[]),
    ];
    for d in &mut devices {
        sync(d, &mut hub);
        assert_eq!(d.store.count(RecordKind::Reference).unwrap(), 2);
        assert_eq!(d.store.kind_of(profile_id).unwrap(), RecordKind::Reference);
        assert!(d.store.reference().area_tree("CI").is_some());
    }
    // Asked for whole (a refetch), reference data is sent to anyone; a record outside the
    // principal's scope is not.
    let elsewhere = hub
        .create(&child(
            ci("CI-R1-D2", "CI-R1-D2-C07"),
            12,
            10,
            Uuid::now_v7(),
        ))
        .unwrap();
    let inspector = &devices[1];
    let request = |cursor, refetch| {
        wire::encode_request(&SyncRequest {
            actor: inspector.store.actor().to_bytes().to_vec(),
            cursor,
            push: Vec::new(),
            refetch,
            max_response_bytes: 1 << 20,
            receipt: 0,
            identity: None,
            headless_documents: false,
            incarnation: None,
            device_clock: None,
        })
    };
    let exchange = |hub: &mut Store, request: Vec<u8>| {
        let response = hub
            .hub_handle(&inspector.principal, &request, &HubLimits::default())
            .unwrap();
        wire::decode_response(&response, 1 << 26).unwrap()
    };
    let caught_up = exchange(&mut hub, request(None, Vec::new()));
    let refetched = exchange(
        &mut hub,
        request(Some(caught_up.cursor), vec![areas_id, elsewhere.id]),
    );
    let ids: Vec<Uuid> = refetched.records.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![areas_id]);

    // A device store refuses to publish, and record writes never touch reference data.
    let monitor = &mut devices[0];
    let rule = match monitor
        .store
        .publish_reference("CI", ReferenceContent::CountryProfile(ci_profile_v2()))
    {
        Err(Error::NotAllowed { rule }) => rule,
        other => panic!("expected NotAllowed, got {other:?}"),
    };
    assert!(rule.contains("hub"), "{rule}");
    let mut doc: ReferenceDocument = monitor.store.get(profile_id).unwrap();
    doc.versions.insert(
        9,
        Published::new(
            &ReferenceContent::CountryProfile(ci_profile_v2()),
            Utc::now(),
        ),
    );
    assert!(matches!(
        monitor.store.update(&doc),
        Err(Error::NotAllowed { .. })
    ));
    assert!(matches!(
        monitor
            .store
            .create(&ReferenceDocument::new(ReferenceType::Sectors, "XX")),
        Err(Error::NotAllowed { .. })
    ));
    assert!(matches!(
        hub.create(&ReferenceDocument::new(ReferenceType::Sectors, "XX")),
        Err(Error::NotAllowed { .. })
    ));

    // An edit made on a device by other means (straight into the document) and a forged new
    // reference document are both refused by the hub; the rest of the push goes through (a
    // case captured before the forgery: one captured after would name the forged version,
    // which the hub does not hold).
    let case = monitor
        .store
        .create(&child(
            ci("CI-R1-D1", "CI-R1-D1-C01"),
            12,
            10,
            monitor.principal.user,
        ))
        .unwrap();
    let author = doc::ChangeAuthor {
        user: monitor.principal.user,
        device: monitor.principal.device,
    };
    let mut edited =
        automerge::Automerge::load(&monitor.store.export_document(profile_id).unwrap())
            .unwrap()
            .with_actor(monitor.store.actor().clone());
    doc::write_record(&mut edited, &doc, &author).unwrap();
    monitor
        .store
        .merge_document(profile_id, &edited.save())
        .unwrap();
    let forged = ReferenceDocument::new(ReferenceType::Sectors, "XX");
    let mut fresh = automerge::Automerge::new().with_actor(monitor.store.actor().clone());
    doc::write_record(&mut fresh, &forged, &author).unwrap();
    monitor
        .store
        .merge_document(forged.id, &fresh.save())
        .unwrap();
    // The hub refuses both (`KindNotAllowed`), and the device, which never pushes reference
    // data, takes them out of its outbox: nothing is offered again.
    let summary = sync(monitor, &mut hub);
    assert_eq!(summary.accepted, 1);
    assert_eq!(summary.pending, 0, "{summary:?}");
    let again = sync(monitor, &mut hub);
    assert!(again.refused.is_empty() && again.accepted == 0, "{again:?}");
    assert!(hub.kind_of(case.id).is_ok());
    assert!(hub.kind_of(forged.id).is_err());
    assert_eq!(
        hub.reference_document(ReferenceType::CountryProfile, "CI")
            .unwrap()
            .latest(),
        Some(1)
    );
    assert_eq!(
        hub.reference()
            .versions(ReferenceType::CountryProfile, "CI"),
        vec![1]
    );
}

#[test]
fn labels_fall_back_by_language_and_a_language_is_added_as_data() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(&dir);
    let mut sectors = ReferenceData::builtin().sectors().to_vec();
    for s in &mut sectors {
        if s.code == "cocoa" {
            s.labels.insert("sw", "Kakao");
            s.labels.insert("es", "Cacao (es)");
        }
    }
    sectors.push(Item {
        code: "gold_mining".into(),
        labels: Labels::default().with("en", "Gold mining"),
    });
    assert_eq!(
        hub.publish_reference("default", ReferenceContent::Sectors(sectors))
            .unwrap(),
        2
    );
    let mut monitor = device(&dir, "monitor", Role::CommunityMonitor, &["CI-R1-D1-C01"]);
    sync(&mut monitor, &mut hub);
    let reference = monitor.store.reference();
    let cocoa = reference
        .sectors()
        .iter()
        .find(|s| s.code == "cocoa")
        .unwrap();
    assert_eq!(cocoa.label("sw"), "Kakao");
    assert_eq!(cocoa.label("es"), "Cacao (es)");
    assert_eq!(cocoa.label("SW"), "Kakao");
    assert_eq!(cocoa.label("fr-CI"), "Cacao");
    assert_eq!(cocoa.label("en"), "Cocoa");
    assert_eq!(
        cocoa.label("de"),
        "Cacao",
        "French first when a language is missing"
    );
    let gold = reference
        .sectors()
        .iter()
        .find(|s| s.code == "gold_mining")
        .unwrap();
    assert_eq!(gold.label("fr"), "Gold mining", "then English");
    let only_spanish = Item {
        code: "x1".into(),
        labels: Labels::default().with("es", "Equis"),
    };
    assert_eq!(only_spanish.label("de"), "x1", "then the code");
    assert_eq!(only_spanish.labels.get("es"), Some("Equis"));
    let languages: Vec<&str> = cocoa.labels.languages().collect();
    assert_eq!(languages, vec!["en", "es", "fr", "sw"]);

    // The new sector is usable at once; labels in a malformed language code are refused.
    monitor
        .store
        .create(&Workplace::new(
            "Mine d'or",
            "gold_mining",
            Formality::Informal,
            ci("CI-R1-D1", "CI-R1-D1-C01"),
        ))
        .unwrap();
    let bad = vec![Item {
        code: "x".into(),
        labels: Labels::default().with("fr", "X").with("Français!", "X"),
    }];
    let (field, _) = validation(hub.publish_reference("default", ReferenceContent::Sectors(bad)));
    assert_eq!(field, "sectors.x.labels");
}

#[test]
fn area_trees_answer_lookups_and_check_the_areas_of_new_records() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(&dir);
    let mut supervisor = device(&dir, "supervisor", Role::Supervisor, &["CI-R1"]);
    let by = supervisor.principal.user;
    // A record captured before any tree is published is never checked against one.
    let before = supervisor
        .store
        .create(&child(ci("CI-R1-D9", "CI-R1-D9-C99"), 12, 10, by))
        .unwrap();

    assert_eq!(
        hub.publish_reference("CI", ReferenceContent::AdministrativeAreas(ci_areas()))
            .unwrap(),
        1
    );
    sync(&mut supervisor, &mut hub);
    let reference = supervisor.store.reference();
    let tree = reference.area_tree("CI").unwrap();
    assert_eq!(tree.level_of("CI"), Some(AreaLevel::Country));
    assert_eq!(tree.level_of("CI-R1"), Some(AreaLevel::Region));
    assert_eq!(tree.level_of("CI-R1-D2"), Some(AreaLevel::District));
    assert_eq!(tree.level_of("CI-R1-D1-C02"), Some(AreaLevel::Community));
    assert_eq!(tree.level_of("CI-R1-D9"), None);
    assert_eq!(
        tree.area_of("CI-R1-D2-C07"),
        Some(ci("CI-R1-D2", "CI-R1-D2-C07"))
    );
    assert_eq!(tree.area_of("CI-R1-D2"), None, "not a community");
    let path: Vec<&str> = tree
        .path("CI-R1-D1-C02")
        .unwrap()
        .iter()
        .map(|n| n.code.as_str())
        .collect();
    assert_eq!(path, vec!["CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C02"]);
    let communities: Vec<&str> = tree
        .find("CI-R1-D1")
        .unwrap()
        .children
        .iter()
        .map(|n| n.code.as_str())
        .collect();
    assert_eq!(communities, vec!["CI-R1-D1-C01", "CI-R1-D1-C02"]);
    assert_eq!(
        tree.find("CI-R1-D1-C01").unwrap().labels.get("en"),
        Some("Aké")
    );
    assert_eq!(tree.labels.get("en"), Some("Ivory Coast"));
    assert!(reference.area_tree("GH").is_none());

    // New records are checked against the tree, the error naming the level.
    let w = supervisor
        .store
        .create(&Workplace::new(
            "Champ",
            "cocoa",
            Formality::Informal,
            ci("CI-R1-D1", "CI-R1-D1-C02"),
        ))
        .unwrap();
    assert_eq!(
        w.captured_with.administrative_areas,
        Some(Pin::new("CI", 1))
    );
    let (field, _) = validation(supervisor.store.create(&Workplace::new(
        "Champ",
        "cocoa",
        Formality::Informal,
        ci("CI-R1-D9", "CI-R1-D9-C01"),
    )));
    assert_eq!(field, "location.area.district");
    let (field, _) = validation(supervisor.store.create(&child(
        ci("CI-R1-D1", "CI-R1-D2-C07"),
        12,
        10,
        by,
    )));
    assert_eq!(field, "area.community");
    let (field, _) = validation(supervisor.store.create(&child(
        Area::new("CI", "CI-R2", "CI-R1-D1", "CI-R1-D1-C01"),
        12,
        10,
        by,
    )));
    assert_eq!(field, "area.region");
    // A country no published tree holds is one no hub serves (a typo): refused here, named,
    // rather than out of scope at the next sync.
    for country in ["GH", "ci", "XX"] {
        let (field, _) = validation(supervisor.store.create(&child(
            Area::new(country, "CI-R1", "CI-R1-D1", "CI-R1-D1-C01"),
            12,
            10,
            by,
        )));
        assert_eq!(field, "area.country", "{country}");
    }
    // The record from before keeps validating.
    let mut edit: ChildCase = supervisor.store.get(before.id).unwrap();
    edit.notes = "Toujours suivi.".into();
    supervisor.store.update(&edit).unwrap();

    // A tree deeper than four levels, or with a code twice, is refused.
    let mut deep = ci_areas();
    deep.children[0].children[0].children[0]
        .children
        .push(AreaNode::new("X", Labels::fr_en("X", "X"), vec![]));
    let (field, _) =
        validation(hub.publish_reference("CI", ReferenceContent::AdministrativeAreas(deep)));
    assert_eq!(field, "administrative_areas");
    let mut twice = ci_areas();
    twice.children[0].children[1].children.push(AreaNode::new(
        "CI-R1-D1-C01",
        Labels::fr_en("Aké", "Aké"),
        vec![],
    ));
    let (field, _) =
        validation(hub.publish_reference("CI", ReferenceContent::AdministrativeAreas(twice)));
    assert_eq!(field, "administrative_areas.CI-R1-D1-C01");
}

#[test]
fn referrals_name_providers_of_the_directory_the_case_was_captured_with() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(&dir);
    let mut monitor = device(&dir, "monitor", Role::CommunityMonitor, &["CI-R1-D1-C01"]);
    // The hub tells the device its user's role (workflow calls act with it).
    sync(&mut monitor, &mut hub);
    let by = monitor.principal.user;
    let c01 = ci("CI-R1-D1", "CI-R1-D1-C01");
    // Captured with the built-in directory (service types, no providers): any provider name.
    let before = monitor
        .store
        .create(&child(c01.clone(), 12, 10, by))
        .unwrap();
    let referral = |service, provider: &str| Referral {
        service,
        provider: provider.into(),
        date: date(2026, 3, 10),
        outcome: String::new(),
    };
    monitor
        .store
        .refer_case(
            before.id,
            referral(ServiceKind::Education, "École du village"),
        )
        .unwrap();

    let services = ReferenceData::builtin()
        .referral_directory("CI")
        .unwrap()
        .services
        .clone();
    assert_eq!(services.len(), 5);
    let directory = ReferralDirectory {
        services,
        providers: vec![
            Provider {
                code: "EPP-AKE".into(),
                name: "École primaire publique d'Aké".into(),
                service: ServiceKind::Education,
                area: "CI-R1-D1".into(),
                contact: "+225 27 00 00 00".into(),
            },
            Provider {
                code: "CSU-R1".into(),
                name: "Centre de santé urbain".into(),
                service: ServiceKind::Health,
                area: String::new(),
                contact: String::new(),
            },
        ],
    };
    assert_eq!(
        hub.publish_reference("CI", ReferenceContent::ReferralServices(directory))
            .unwrap(),
        1
    );
    sync(&mut monitor, &mut hub);
    let reference = monitor.store.reference();
    let directory = reference.referral_directory("CI").unwrap();
    let names = |service, area: &Area| -> Vec<String> {
        directory
            .providers_for(service, area)
            .iter()
            .map(|p| p.code.clone())
            .collect()
    };
    assert_eq!(names(ServiceKind::Education, &c01), vec!["EPP-AKE"]);
    assert!(names(ServiceKind::Education, &ci("CI-R1-D2", "CI-R1-D2-C07")).is_empty());
    assert_eq!(
        names(ServiceKind::Health, &ci("CI-R1-D2", "CI-R1-D2-C07")),
        vec!["CSU-R1"]
    );
    assert_eq!(
        reference.referral_directory("GH").unwrap().providers.len(),
        0,
        "elsewhere, the default directory"
    );

    let case = monitor
        .store
        .create(&child(c01.clone(), 12, 10, by))
        .unwrap();
    assert_eq!(
        case.captured_with.referral_services,
        Some(Pin::new("CI", 1))
    );
    let (case, _) = monitor
        .store
        .refer_case(case.id, referral(ServiceKind::Education, "EPP-AKE"))
        .unwrap();
    // The same child registered twice, referred to the same school.
    let twin = monitor
        .store
        .create(&child(c01.clone(), 12, 10, by))
        .unwrap();
    monitor
        .store
        .refer_case(twin.id, referral(ServiceKind::Education, "EPP-AKE"))
        .unwrap();
    let (field, rule) = validation(monitor.store.refer_case(
        case.id,
        referral(ServiceKind::Education, "École du village"),
    ));
    assert_eq!(field, "referral.provider");
    assert!(rule.contains("provider"), "{rule}");
    let (field, _) = validation(
        monitor
            .store
            .refer_case(case.id, referral(ServiceKind::Education, "CSU-R1")),
    );
    assert_eq!(field, "referral.service");
    // The case from before keeps its free-text referral.
    let mut edit: ChildCase = monitor.store.get(before.id).unwrap();
    edit.notes = "Inscrit.".into();
    monitor.store.update(&edit).unwrap();
    // The hub serves the country's records once its tree is published.
    hub.publish_reference("CI", ReferenceContent::AdministrativeAreas(ci_areas()))
        .unwrap();
    sync(&mut monitor, &mut hub);

    // A colleague's phone, offline from here, holds the first directory.
    let mut offline = device(&dir, "offline", Role::CommunityMonitor, &["CI-R1-D1-C01"]);
    sync(&mut offline, &mut hub);
    // The school closes and a vocational centre opens: the case identified before is referred
    // to the centre, and no longer to the school; what it was referred to before stays.
    let mut directory = reference.referral_directory("CI").unwrap().clone();
    directory.providers.retain(|p| p.code != "EPP-AKE");
    directory.providers.push(Provider {
        code: "CFP-AKE".into(),
        name: "Centre de formation professionnelle".into(),
        service: ServiceKind::Vocational,
        area: "CI-R1-D1".into(),
        contact: String::new(),
    });
    assert_eq!(
        hub.publish_reference("CI", ReferenceContent::ReferralServices(directory))
            .unwrap(),
        2
    );
    sync(&mut monitor, &mut hub);
    let (case, _) = monitor
        .store
        .refer_case(case.id, referral(ServiceKind::Vocational, "CFP-AKE"))
        .unwrap();
    assert_eq!(
        case.captured_with.referral_services,
        Some(Pin::new("CI", 1))
    );
    let (field, rule) = validation(
        monitor
            .store
            .refer_case(case.id, referral(ServiceKind::Education, "EPP-AKE")),
    );
    assert_eq!(field, "referral.provider");
    assert!(rule.contains("in force"), "{rule}");
    let mut edit: ChildCase = monitor.store.get(case.id).unwrap();
    edit.notes = "Orienté vers la formation.".into();
    monitor.store.update(&edit).unwrap();
    // A new case is captured with the new directory: the school is not in it.
    let new_case = monitor
        .store
        .create(&child(c01.clone(), 15, 10, by))
        .unwrap();
    let (field, _) = validation(
        monitor
            .store
            .refer_case(new_case.id, referral(ServiceKind::Education, "EPP-AKE")),
    );
    assert_eq!(field, "referral.provider");
    let summary = sync(&mut monitor, &mut hub);
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
    let held: ChildCase = hub.get(case.id).unwrap();
    assert_eq!(held.referrals.len(), 2);

    // The offline phone, which knew of no closing, referred the case to the school: the hub
    // takes what it made with what it held.
    offline
        .store
        .refer_case(case.id, referral(ServiceKind::Education, "EPP-AKE"))
        .unwrap();
    let summary = sync(&mut offline, &mut hub);
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
    let held: ChildCase = hub.get(case.id).unwrap();
    assert_eq!(held.referrals.len(), 3);

    // A merge brings the duplicate's referrals, made before the school closed: they stand.
    let mut supervisor = device(&dir, "supervisor", Role::Supervisor, &["CI-R1-D1"]);
    sync(&mut supervisor, &mut hub);
    let (kept, _) = supervisor.store.merge_cases(case.id, twin.id).unwrap();
    assert_eq!(kept.referrals.len(), 4);
    let summary = sync(&mut supervisor, &mut hub);
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
}

/// The classifier at each boundary of age, hours, night work, hazards and schooling, for the
/// default profile (15 / 13 / 14 h / 18 / 43 h) and a developing country's (14 / 12 / 12 h / 16
/// / 36 h, night work not listed), directly and through stores that pick the profile by country.
#[test]
fn classification_at_every_boundary_of_two_profiles() {
    use ClassificationOutcome::*;
    #[derive(Clone, Copy)]
    struct Facts {
        age: i32,
        hours: i32,
        night: bool,
        hazard: Option<&'static str>,
        school: SchoolStatus,
    }
    let f = |age, hours| Facts {
        age,
        hours,
        night: false,
        hazard: None,
        school: SchoolStatus::Unknown,
    };
    let school = |age, hours, school| Facts {
        school,
        ..f(age, hours)
    };
    let night = |age, hours| Facts {
        night: true,
        ..f(age, hours)
    };
    let hazard = |age, hours, code| Facts {
        hazard: Some(code),
        ..f(age, hours)
    };
    let default_cases: Vec<(Facts, ClassificationOutcome)> = vec![
        (f(12, 0), NotChildLabour),
        (f(12, 1), ChildLabour),
        (f(13, 14), NotChildLabour),
        (f(13, 15), ChildLabour),
        (f(14, 14), NotChildLabour),
        (f(14, 15), ChildLabour),
        (f(15, 15), NotChildLabour),
        (f(15, 43), NotChildLabour),
        (f(15, 44), HazardousChildLabour),
        (f(17, 44), HazardousChildLabour),
        (night(17, 5), HazardousChildLabour),
        // Night work is work, whatever hours were noted.
        (night(13, 0), HazardousChildLabour),
        (night(9, 0), HazardousChildLabour),
        (hazard(17, 2, "heavy_loads"), HazardousChildLabour),
        (hazard(13, 0, "pesticides"), HazardousChildLabour),
        (hazard(17, 0, "abuse"), HazardousChildLabour),
        // Light work is allowed only outside school hours: out of school, it is child labour.
        (school(13, 14, SchoolStatus::Attending), NotChildLabour),
        (
            school(13, 14, SchoolStatus::AttendingIrregularly),
            NotChildLabour,
        ),
        (school(13, 14, SchoolStatus::DroppedOut), ChildLabour),
        (school(14, 1, SchoolStatus::NeverEnrolled), ChildLabour),
        (school(13, 0, SchoolStatus::DroppedOut), NotChildLabour),
        (school(15, 10, SchoolStatus::DroppedOut), NotChildLabour),
    ];
    let bf_cases: Vec<(Facts, ClassificationOutcome)> = vec![
        (f(11, 0), NotChildLabour),
        (f(11, 1), ChildLabour),
        (f(12, 12), NotChildLabour),
        (f(12, 13), ChildLabour),
        (f(13, 13), ChildLabour),
        (f(13, 12), NotChildLabour),
        (f(14, 13), NotChildLabour),
        (f(14, 36), NotChildLabour),
        (f(14, 37), HazardousChildLabour),
        (f(15, 37), HazardousChildLabour),
        (night(15, 10), NotChildLabour),
        (night(13, 10), NotChildLabour),
        (night(12, 0), NotChildLabour),
        (night(11, 0), ChildLabour),
        (hazard(15, 2, "gold_panning"), HazardousChildLabour),
        (hazard(12, 0, "heavy_loads"), HazardousChildLabour),
        (school(12, 12, SchoolStatus::DroppedOut), ChildLabour),
        (school(12, 12, SchoolStatus::Attending), NotChildLabour),
        // Hazardous work from 16, exceptionally: only what R190 does not list, and never long
        // hours below 18.
        (hazard(16, 10, "gold_panning"), NotChildLabour),
        (hazard(17, 0, "gold_panning"), NotChildLabour),
        (hazard(16, 10, "heavy_loads"), HazardousChildLabour),
        (f(16, 36), NotChildLabour),
        (f(16, 37), HazardousChildLabour),
        (f(17, 60), HazardousChildLabour),
        (night(17, 10), NotChildLabour),
    ];

    let dir = TempDir::new().unwrap();
    let mut hub = hub(&dir);
    assert_eq!(
        hub.publish_reference("BF", ReferenceContent::CountryProfile(bf_profile()))
            .unwrap(),
        1
    );
    // A supervisor: the follow-up schedule below starts at a verification.
    let mut monitor = device(&dir, "monitor", Role::Supervisor, &["BF-C1", "CI-C1"]);
    sync(&mut monitor, &mut hub);
    let by = monitor.principal.user;
    let default_rules = RuleSet::ilo_default();
    let bf_rules = bf_profile().rule_set("BF", 1);
    assert_eq!(
        monitor.store.reference().rule_set_at("BF", 1),
        Some(&bf_rules)
    );

    let profiles = [
        (
            "ilo-default@1",
            &default_rules,
            Area::new("CI", "CI-R1", "CI-D1", "CI-C1"),
            default_cases,
        ),
        (
            "BF@1",
            &bf_rules,
            Area::new("BF", "BF-R1", "BF-D1", "BF-C1"),
            bf_cases,
        ),
    ];
    for (label, rules, area, cases) in profiles {
        for (facts, expected) in cases {
            let mut c = child(area.clone(), facts.age, facts.hours, by);
            c.night_work = facts.night;
            c.hazards.extend(facts.hazard.map(String::from));
            c.school = facts.school;
            let what = format!(
                "{label}: age {} {} h night {} hazard {:?} school {}",
                facts.age, facts.hours, facts.night, facts.hazard, facts.school
            );
            let direct = rules.classify(&c);
            assert_eq!(direct.outcome, expected, "{what}: {}", direct.reason);
            assert_eq!(direct.age, Some(facts.age), "{what}");
            let stored = monitor.store.create(&c).unwrap();
            assert_eq!(outcome(&stored), (expected, label.to_string()), "{what}");
        }
        // Worst forms come first, at any age below 18; at the hazardous work age, a listed
        // hazard the exception may cover (Burkina Faso's first, gold panning; anything at 18)
        // no longer makes child labour.
        let mut c = child(
            area.clone(),
            rules.thresholds.hazardous_work_age as i32 - 1,
            0,
            by,
        );
        c.worst_forms.insert(WorstForm::ForcedLabour);
        assert_eq!(rules.classify(&c).outcome, WorstFormSuspected, "{label}");
        let listed = rules.thresholds.hazardous_work[0].code.clone();
        let mut c = child(
            area.clone(),
            rules.thresholds.hazardous_work_age as i32,
            10,
            by,
        );
        c.hazards.insert(listed.clone());
        assert_eq!(rules.classify(&c).outcome, NotChildLabour, "{label}");
        // An age not established (a merge may remove both the date of birth and the
        // estimate) is taken as below the minimum age: a listed hazard, night work where the
        // profile counts it, or long hours are hazardous child labour at any such age; work
        // is child labour, and nothing observed that is work is not.
        let unknown = |edit: &dyn Fn(&mut ChildCase)| {
            let mut c = child(area.clone(), 10, 0, by);
            c.date_of_birth = None;
            c.estimated_age = None;
            edit(&mut c);
            rules.classify(&c)
        };
        let outcome_of = |edit: &dyn Fn(&mut ChildCase)| unknown(edit).outcome;
        assert_eq!(unknown(&|_| {}).age, None, "{label}");
        assert_eq!(outcome_of(&|_| {}), NotChildLabour, "{label}");
        assert_eq!(
            outcome_of(&|c| c.hours_per_week = 2),
            ChildLabour,
            "{label}"
        );
        assert_eq!(
            outcome_of(&|c| {
                c.hazards.insert(listed.clone());
            }),
            HazardousChildLabour,
            "{label}"
        );
        assert_eq!(
            outcome_of(&|c| c.hours_per_week = rules.thresholds.long_hours as i32 + 1),
            HazardousChildLabour,
            "{label}"
        );
        let night = if rules.thresholds.night_work_is_hazardous {
            HazardousChildLabour
        } else {
            ChildLabour
        };
        assert_eq!(outcome_of(&|c| c.night_work = true), night, "{label}");
    }

    // A hazard on the default list but not on Burkina Faso's is refused there.
    let mut c = child(Area::new("BF", "BF-R1", "BF-D1", "BF-C1"), 15, 5, by);
    c.hazards.insert("mercury".into());
    let (field, _) = validation(monitor.store.create(&c));
    assert_eq!(field, "hazards.mercury");

    // Burkina Faso's follow-up schedule: 2, 4 and 8 months, then yearly before 17.
    let c = monitor
        .store
        .create(&child(
            Area::new("BF", "BF-R1", "BF-D1", "BF-C1"),
            15,
            20,
            by,
        ))
        .unwrap();
    let on = date(2026, 4, 1);
    monitor
        .store
        .refer_case(
            c.id,
            Referral {
                service: ServiceKind::Education,
                provider: "École".into(),
                date: on,
                outcome: String::new(),
            },
        )
        .unwrap();
    monitor
        .store
        .transition_case_on(c.id, CaseStatus::ReceivingServices, on)
        .unwrap();
    let c = monitor
        .store
        .transition_case_on(c.id, CaseStatus::Withdrawn, on)
        .unwrap();
    assert_eq!(c.follow_up_due, Some(date(2026, 6, 1)));
    let (c, key) = monitor
        .store
        .add_follow_up(
            c.id,
            FollowUp {
                date: date(2026, 6, 1),
                situation: FollowUpSituation::InSchool,
                notes: String::new(),
                next_due: None,
            },
        )
        .unwrap();
    assert_eq!(c.followups[&key].next_due, Some(date(2026, 8, 1)));
    assert_eq!(c.follow_up_due, Some(date(2026, 8, 1)));
}

/// The store checks for new reference documents before every write: that must not scan every
/// record.
#[test]
fn reference_documents_are_found_through_their_index() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(&dir);
    hub.publish_reference("BF", ReferenceContent::CountryProfile(bf_profile()))
        .unwrap();
    hub.close().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("hub.db")).unwrap();
    for query in [
        "SELECT count(*), coalesce(max(last_seq), 0) FROM records WHERE kind = 5",
        "SELECT id, doc FROM records WHERE kind = 5",
    ] {
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter().any(|step| step.contains("records_reference")),
            "{query}: {plan:?}"
        );
    }
    assert_eq!(RecordKind::Reference as i64, 5);
}

#[test]
fn area_outlines_are_optional_and_checked() {
    let tree = |outline: &str| {
        format!(
            r#"{{"key": "CI", "administrative_areas": {{"code": "CI", "labels": {{"fr": "CI"}},
                "children": [{{"code": "CI-R1", "labels": {{"fr": "R1"}}, "outline": {outline}}}]}}}}"#
        )
    };
    let square = "[[[-6.7, 5.7], [-6.5, 5.7], [-6.5, 5.9], [-6.7, 5.9], [-6.7, 5.7]]]";
    let file = ReferenceFile::parse(&tree(square)).expect("a tree with an outline");
    let ReferenceContent::AdministrativeAreas(root) = &file.content else {
        panic!("an area tree");
    };
    let region = root.find("CI-R1").unwrap();
    assert_eq!(region.outline.0[0].len(), 5);
    assert_eq!(region.outline.0[0][2], [-6.5, 5.9]);
    // Without one, the node has none and writes none.
    assert!(root.outline.is_empty());
    let json = serde_json::to_string(root).unwrap();
    assert_eq!(json.matches("outline").count(), 1, "{json}");
    // Given empty, as an export of a tree writes them, an outline and a list of children are
    // the same as none (they are written back only when they hold something).
    let empty = tree("[]").replace(
        r#""labels": {"fr": "R1"}"#,
        r#""labels": {"fr": "R1"}, "children": []"#,
    );
    assert!(empty.contains(r#""children": []"#));
    ReferenceFile::parse(&empty).expect("an empty outline and empty children");

    let too_many = format!(
        "[[{}]]",
        vec!["[1.0, 1.0]"; vigie_core::reference::Outline::MAX_POINTS + 1].join(", ")
    );
    for bad in [
        "[[[-6.7, 5.7], [-6.5, 5.7]]]",
        "[[[-6.7, 95.0], [-6.5, 5.7], [-6.5, 5.9]]]",
        "[[[-186.7, 5.7], [-6.5, 5.7], [-6.5, 5.9]]]",
        too_many.as_str(),
    ] {
        let e = ReferenceFile::parse(&tree(bad)).expect_err("a bad outline");
        assert_eq!(e.field, "administrative_areas.CI-R1.outline", "{bad}: {e}");
    }
}

/// A user's area is a bare code: a code two countries' trees shared would give a user of one
/// the other's records. A tree holding another country's code is refused, naming it.
#[test]
fn an_area_tree_reusing_another_country_s_code_is_refused() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(&dir);
    hub.publish_reference("CI", ReferenceContent::AdministrativeAreas(ci_areas()))
        .unwrap();
    let tree = |district: &str| {
        AreaNode::new(
            "XB",
            Labels::fr_en("Ailleurs", "Elsewhere"),
            vec![AreaNode::new(
                "XB-R1",
                Labels::fr_en("Région", "Region"),
                vec![AreaNode::new(
                    district,
                    Labels::fr_en("District", "District"),
                    vec![AreaNode::new(
                        "XB-C1",
                        Labels::fr_en("Village", "Village"),
                        vec![],
                    )],
                )],
            )],
        )
    };
    match hub.publish_reference(
        "XB",
        ReferenceContent::AdministrativeAreas(tree("CI-R1-D2")),
    ) {
        Err(Error::Validation(e)) => {
            assert_eq!(e.field, "administrative_areas.CI-R1-D2");
            assert!(e.rule.contains("CI"), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(hub.reference().area_tree("XB").is_none());
    hub.publish_reference("XB", ReferenceContent::AdministrativeAreas(tree("XB-D1")))
        .unwrap();
    // A new version of a country's own tree keeps its codes.
    let mut again = ci_areas();
    again.labels = Labels::fr_en("Côte d'Ivoire", "Côte d'Ivoire");
    hub.publish_reference("CI", ReferenceContent::AdministrativeAreas(again))
        .unwrap();
}

/// A community renamed in a new version of the tree: a case captured under the old code is
/// filed again under the new one, on the device and on the hub, by a user whose areas cover
/// both.
#[test]
fn a_case_is_filed_again_under_a_community_renamed_since_it_was_captured() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(&dir);
    hub.publish_reference("CI", ReferenceContent::AdministrativeAreas(ci_areas()))
        .unwrap();
    let mut supervisor = device(&dir, "supervisor", Role::Supervisor, &["CI-R1-D1"]);
    sync(&mut supervisor, &mut hub);
    let by = supervisor.principal.user;
    let case = supervisor
        .store
        .create(&child(ci("CI-R1-D1", "CI-R1-D1-C02"), 12, 10, by))
        .unwrap();
    sync(&mut supervisor, &mut hub);

    let mut renamed = ci_areas();
    renamed.children[0].children[0].children[1] = AreaNode::new(
        "CI-R1-D1-C02N",
        Labels::fr_en("Bécédi-Nord", "Bécédi-Nord"),
        vec![],
    );
    hub.publish_reference("CI", ReferenceContent::AdministrativeAreas(renamed))
        .unwrap();
    sync(&mut supervisor, &mut hub);
    let mut moved: ChildCase = supervisor.store.get(case.id).unwrap();
    moved.area = ci("CI-R1-D1", "CI-R1-D1-C02N");
    supervisor.store.update(&moved).unwrap();
    let summary = sync(&mut supervisor, &mut hub);
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(
        hub.get::<ChildCase>(case.id).unwrap().area.community,
        "CI-R1-D1-C02N"
    );
    // An area in neither tree is still refused.
    moved.area = ci("CI-R1-D1", "CI-R1-D1-C99");
    assert_eq!(
        validation(supervisor.store.update(&moved)).0,
        "area.community"
    );
}

/// A country's tree as large as a reference file may be: 3 regions of 10 districts of 100
/// communities (3,000), each district outlined by `Outline::MAX_POINTS` points (3.5 MB of
/// JSON). `label` names the country, to make versions differ.
fn large_tree(label: &str) -> AreaNode {
    let outline = |r: usize, d: usize| {
        let n = vigie_core::reference::Outline::MAX_POINTS;
        let ring = (0..n)
            .map(|i| {
                let angle = i as f64 / n as f64 * std::f64::consts::TAU;
                let micro = |x: f64| (x * 1e6).round() / 1e6;
                [
                    micro(-6.0 + r as f64 * 0.5 + d as f64 * 0.04 + 0.017_431 * angle.cos()),
                    micro(6.0 + 0.017_431 * angle.sin()),
                ]
            })
            .collect();
        vigie_core::reference::Outline(vec![ring])
    };
    let regions = (1..=3)
        .map(|r| {
            let districts = (1..=10)
                .map(|d| {
                    let communities = (1..=100)
                        .map(|c| {
                            let code = format!("CI-R{r}-D{d}-C{c:03}");
                            AreaNode::new(&code, Labels::fr_en(&code, &code), vec![])
                        })
                        .collect();
                    let mut district = AreaNode::new(
                        &format!("CI-R{r}-D{d}"),
                        Labels::fr_en(&format!("District {d}"), &format!("District {d}")),
                        communities,
                    );
                    district.outline = outline(r, d);
                    district
                })
                .collect();
            AreaNode::new(
                &format!("CI-R{r}"),
                Labels::fr_en(&format!("Région {r}"), &format!("Region {r}")),
                districts,
            )
        })
        .collect();
    AreaNode::new("CI", Labels::fr_en(label, label), regions)
}

#[test]
fn a_country_tree_of_thousands_of_communities_with_outlines_publishes_and_syncs() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(&dir);
    let v1 = ReferenceContent::AdministrativeAreas(large_tree("Côte d'Ivoire"));
    let json = serde_json::to_string(&v1).unwrap();
    assert!(json.len() > 3_000_000, "{}", json.len());
    // Its file is what `vigie reference publish` reads (within the 4 MiB a file may be).
    let file = format!(r#"{{"key": "CI", {}"#, &json[1..]);
    assert!(file.len() < 4 << 20, "{}", file.len());
    assert_eq!(ReferenceFile::parse(&file).unwrap().content, v1);
    assert_eq!(hub.publish_reference("CI", v1.clone()).unwrap(), 1);
    assert_eq!(hub.publish_reference("CI", v1.clone()).unwrap(), 1);

    let mut monitor = device(&dir, "monitor", Role::CommunityMonitor, &["CI-R3-D10-C100"]);
    sync(&mut monitor, &mut hub);
    let reference = monitor.store.reference();
    let tree = reference.area_tree("CI").expect("the tree arrived whole");
    assert_eq!(ReferenceContent::AdministrativeAreas(tree.clone()), v1);
    let far = Area::new("CI", "CI-R3", "CI-R3-D10", "CI-R3-D10-C100");
    let case = monitor
        .store
        .create(&child(far.clone(), 12, 10, monitor.principal.user))
        .unwrap();
    assert_eq!(
        case.captured_with.administrative_areas,
        Some(Pin::new("CI", 1))
    );
    let elsewhere = Area::new("CI", "CI-R3", "CI-R3-D10", "CI-R3-D9-C001");
    let (field, _) = validation(monitor.store.create(&child(
        elsewhere,
        12,
        10,
        monitor.principal.user,
    )));
    assert_eq!(field, "area.community");

    // A next version: devices use it for new records; the case keeps its own, and only the
    // tree in force keeps its outlines in memory.
    let v2 = ReferenceContent::AdministrativeAreas(large_tree("Côte d'Ivoire (2)"));
    assert_eq!(hub.publish_reference("CI", v2.clone()).unwrap(), 2);
    sync(&mut monitor, &mut hub);
    let reference = monitor.store.reference();
    assert_eq!(
        reference.versions(ReferenceType::AdministrativeAreas, "CI"),
        vec![1, 2]
    );
    assert_eq!(
        reference
            .area_tree("CI")
            .and_then(|t| t.labels.get("fr").map(str::to_string)),
        Some("Côte d'Ivoire (2)".to_string())
    );
    let old = reference.area_tree_at(&Pin::new("CI", 1)).unwrap();
    assert!(old.find("CI-R3-D10").unwrap().outline.is_empty());
    assert!(
        !reference
            .area_tree("CI")
            .unwrap()
            .find("CI-R3-D10")
            .unwrap()
            .outline
            .is_empty()
    );
    let mut edit: ChildCase = monitor.store.get(case.id).unwrap();
    edit.notes = "Revu.".into();
    let edited = monitor.store.update(&edit).unwrap();
    assert_eq!(
        edited.captured_with.administrative_areas,
        Some(Pin::new("CI", 1))
    );
    sync(&mut monitor, &mut hub);
    assert_eq!(hub.get::<ChildCase>(case.id).unwrap().notes, "Revu.");

    // Both versions, read back whole as one document.
    let document = hub
        .reference_document(ReferenceType::AdministrativeAreas, "CI")
        .unwrap();
    assert_eq!(document.content(1), Some(v1));
    assert_eq!(document.content(2), Some(v2));
}

#[test]
fn a_type_and_key_keep_taking_versions_for_years_of_monthly_publications() {
    let dir = TempDir::new().unwrap();
    let mut hub = hub(&dir);
    // Sectors lists near the most one text holds: 68 of them once filled the single document
    // a type and key had, and the next was refused.
    let sectors = |month: usize| {
        ReferenceContent::Sectors(
            (0..290)
                .map(|i| {
                    let code = format!("sector_{month}_{i:03}");
                    Item::new(
                        &code,
                        &format!("Secteur {i} {:>40}", month),
                        &format!("Sector {i}"),
                    )
                })
                .collect(),
        )
    };
    let one = serde_json::to_string(&sectors(1)).unwrap().len();
    assert!((20_000..=32_768).contains(&one), "{one}");
    for month in 1..=72 {
        assert_eq!(
            hub.publish_reference("CI", sectors(month)).unwrap(),
            month as u32
        );
    }
    let mut monitor = device(&dir, "monitor", Role::CommunityMonitor, &["CI-R1-D1-C01"]);
    sync(&mut monitor, &mut hub);
    let reference = monitor.store.reference();
    assert_eq!(
        reference.latest_version(ReferenceType::Sectors, "CI"),
        Some(72)
    );
    assert_eq!(
        reference.content(ReferenceType::Sectors, "CI", 7),
        Some(&sectors(7))
    );
}

#[test]
fn a_reference_file_names_the_field_that_does_not_fit_and_refuses_what_it_does_not_know() {
    let profile = serde_json::to_value(ReferenceContent::CountryProfile(ci_profile_v1())).unwrap();
    let file = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut file = serde_json::json!({"key": "CI"});
        file["country_profile"] = profile["country_profile"].clone();
        edit(&mut file);
        ReferenceFile::parse(&file.to_string())
    };
    assert!(file(&|_| {}).is_ok());
    for (edit, field) in [
        (
            &(|f: &mut serde_json::Value| f["country_profile"]["minimum_age"] = (-1).into())
                as &dyn Fn(&mut serde_json::Value),
            "country_profile.minimum_age",
        ),
        (
            &|f: &mut serde_json::Value| f["country_profile"]["minimum_age"] = 15.5.into(),
            "country_profile.minimum_age",
        ),
        (
            &|f: &mut serde_json::Value| f["country_profile"]["minimum_agee"] = 15.into(),
            "country_profile.minimum_agee",
        ),
        // Misspelt with a default value, as meant to turn a default off: refused all the same.
        (
            &|f: &mut serde_json::Value| {
                f["country_profile"]["follow_up_yearly_until_ages"] = 0.into()
            },
            "country_profile.follow_up_yearly_until_ages",
        ),
        (
            &|f: &mut serde_json::Value| f["country_profile"]["worst_form"] = serde_json::json!([]),
            "country_profile.worst_form",
        ),
        (
            &|f: &mut serde_json::Value| {
                f["country_profile"]["hazardous_work"][0]["label"] = "".into()
            },
            "country_profile.hazardous_work.0.label",
        ),
        (
            &|f: &mut serde_json::Value| f["version"] = 0.into(),
            "version",
        ),
        (
            &|f: &mut serde_json::Value| f["sectors"] = serde_json::json!([]),
            "sectors",
        ),
        // A rule of the conventions names the field where it stands in the file too.
        (
            &|f: &mut serde_json::Value| f["country_profile"]["hazardous_work_age"] = 12.into(),
            "country_profile.hazardous_work_age",
        ),
        (
            &|f: &mut serde_json::Value| {
                f["country_profile"]
                    .as_object_mut()
                    .unwrap()
                    .remove("night_work_is_hazardous");
            },
            "country_profile.night_work_is_hazardous",
        ),
        (
            &|f: &mut serde_json::Value| {
                f["country_profile"].as_object_mut().unwrap().remove("name");
            },
            "country_profile.name",
        ),
    ] {
        let e = file(edit).expect_err(field);
        assert_eq!(e.field, field, "{e}");
        assert!(!e.rule.contains("15.5") && !e.rule.contains("-1"), "{e}");
    }
    // What phones and the console show is one line, as records' names are: a label with a
    // NUL, a line break or a text-direction override, or past 500 characters, is refused by
    // its path; 500 is taken.
    for (text, taken) in [
        ("Charges lourdes\u{0}".to_string(), false),
        ("Charges\nlourdes".to_string(), false),
        ("\u{202e}sedruol segrahC".to_string(), false),
        ("a".repeat(501), false),
        ("a".repeat(500), true),
    ] {
        let result = file(&|f| {
            f["country_profile"]["hazardous_work"][0]["labels"]["fr"] = text.clone().into()
        });
        match taken {
            true => assert!(result.is_ok(), "{result:?}"),
            false => {
                let e = result.expect_err("a label off one line");
                assert_eq!(e.field, "country_profile.hazardous_work.0.labels.fr", "{e}");
                assert!(e.rule.contains("500 characters on one line"), "{e}");
            }
        }
    }
    let e = file(&|f| f["country_profile"]["name"]["en"] = "Côte\u{7}".into()).unwrap_err();
    assert_eq!(e.field, "country_profile.name.en", "{e}");
    // A byte order mark (Notepad, Excel) is no part of the file; nesting past reason is said so.
    let profile_file = {
        let mut f = serde_json::json!({"key": "CI"});
        f["country_profile"] = profile["country_profile"].clone();
        f.to_string()
    };
    assert!(ReferenceFile::parse(&format!("\u{feff}{profile_file}")).is_ok());
    // A name twice in one object (the last would be read, unsaid) is refused where it is.
    let twice = profile_file.replacen("\"key\":\"CI\"", "\"key\":\"CI\",\"key\":\"GH\"", 1);
    assert_ne!(twice, profile_file);
    let e = ReferenceFile::parse(&twice).expect_err("a name twice");
    assert!(
        e.rule
            .contains("a name appears twice in one object, at line 1, column"),
        "{e}"
    );
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let e = ReferenceFile::parse(&deep).expect_err("nested too deeply");
    assert!(e.rule.contains("nested too deeply"), "{e}");
    // A checklist item's breach answer is yes or no, said so (not a list of the answers a visit
    // may give, "not applicable" among them).
    for answer in ["not_applicable", "maybe"] {
        let checklist = serde_json::json!({"key": "my-list", "checklist": {
            "name": {"fr": "Liste"},
            "items": [{"code": "A1", "labels": {"fr": "a"}, "breach": answer}]}});
        let e = ReferenceFile::parse(&checklist.to_string()).expect_err(answer);
        assert!(e.field.ends_with(".breach"), "{e}");
        assert_eq!(
            e.rule, "the answer that records a breach is yes or no",
            "{e}"
        );
    }
    // Devices read published content leniently: a newer hub's field is ignored.
    let mut newer = profile.clone();
    newer["country_profile"]["school_calendar"] = "september".into();
    let published = Published {
        content: newer.to_string(),
        ..Published::new(
            &ReferenceContent::CountryProfile(ci_profile_v1()),
            Utc::now(),
        )
    };
    assert_eq!(
        published.content(),
        Some(ReferenceContent::CountryProfile(ci_profile_v1()))
    );
}

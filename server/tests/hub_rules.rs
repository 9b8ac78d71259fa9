//! The hub checks every pushed record as a phone checks its own user's, and more: issue 11's
//! attacks 1 (crash by deep nesting), 2 (poison by a huge document or field), 4 (area scope),
//! 5 (rules only on the phone) and 6 (authorship), each made by an enrolled device against the
//! real `vigie` binary on 127.0.0.1, with the response it now gets. Reference data published
//! with `vigie reference`. Runs on the embedded store, and on PostgreSQL with
//! `VIGIE_TEST_BACKEND=postgres`.

use crate::common;

use common::rules::{self, author, edited, hostile, new_record, push, raw, refusal};
use common::*;
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::sync::wire::{PushEntry, PushOutcome};
use vigie_core::sync::{Refusal, SyncOptions};
use vigie_core::*;

/// A community monitor of C01, a supervisor of the region, and the hub they sync with.
fn monitor_supervisor_and_hub(dir: &TempDir) -> (Device, Device, Hub) {
    let data = dir.path().join("hub");
    let monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    let supervisor = Device::enrol(
        dir.path(),
        &data,
        "supervisor",
        Role::Supervisor,
        &[REGION],
        2,
    );
    (monitor, supervisor, Hub::start(&data))
}

/// A hub, a monitor and a supervisor, and a case the monitor registered and referred, which
/// both hold.
fn a_referred_case_on_both(dir: &TempDir) -> (Device, Device, Hub, ChildCase) {
    let (mut monitor, mut supervisor, hub) = monitor_supervisor_and_hub(dir);
    monitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    let case = monitor
        .store
        .create(&child(area(C01), "Awa", monitor.user()))
        .unwrap();
    let referral = Referral {
        service: ServiceKind::Education,
        provider: "École de Soubré".into(),
        date: identified_on(),
        outcome: String::new(),
    };
    monitor.store.refer_case(case.id, referral).unwrap();
    monitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    (monitor, supervisor, hub, case)
}

fn accepted(outcome: &PushOutcome) -> bool {
    matches!(outcome, PushOutcome::Accepted { .. })
}

/// An honest case's document from `device`, to build hostile ones from.
fn honest_document(device: &Device) -> Vec<u8> {
    let case = child(area(C01), "Awa Koné", device.user());
    new_record(device, &case, author(device)).changes
}

/// The hub, stopped, holds none of `ids`; its log shows no error of its own.
fn assert_not_stored(hub: &mut Hub, ids: &[Uuid]) {
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:#?}", hub.log_errors());
    let store = hub.open_store();
    for id in ids {
        assert!(store.kind_of(*id).is_err(), "{id} was stored");
    }
}

#[test]
fn attack_1_deep_nesting_is_refused_and_the_hub_keeps_serving() {
    let dir = TempDir::new().unwrap();
    let (monitor, mut supervisor, mut hub) = monitor_supervisor_and_hub(&dir);
    let honest = honest_document(&monitor);
    let actor = monitor.store.actor().clone();

    // A new case in the monitor's own community, with a field nesting maps 1,000 deep: a
    // request of a few KiB.
    let deep = Uuid::now_v7();
    let bytes = hostile::deep(&honest, &actor, 1_000);
    assert!(bytes.len() < 4096, "{} bytes", bytes.len());
    let deeper = Uuid::now_v7();
    let outcomes = push(
        &monitor,
        &hub.url,
        vec![
            raw(deep, bytes),
            raw(deeper, hostile::deep(&honest, &actor, 20_000)),
        ],
    );
    for id in [deep, deeper] {
        assert_eq!(
            refusal(&outcomes[&id]),
            Some(Refusal::OverLimit {
                limit: DocumentLimit::Depth
            })
        );
    }
    // A nesting built then deleted is gone from the state: the hub stores an honest case and
    // never diffs the history recursively.
    let deleted = Uuid::now_v7();
    let outcomes = push(
        &monitor,
        &hub.url,
        vec![raw(
            deleted,
            hostile::deep_then_deleted(
                &honest,
                &actor,
                5_000,
                Some(&serde_json::to_string(&author(&monitor)).unwrap()),
            ),
        )],
    );
    assert!(accepted(&outcomes[&deleted]), "{outcomes:?}");

    // The hub is alive and serves everyone.
    assert!(hub.is_running());
    let summary = supervisor.sync(&hub.url).unwrap();
    assert!(summary.failed.is_empty(), "{summary:?}");
    assert!(supervisor.has(deleted));
    supervisor.store.history(deleted).unwrap_err();
    assert_not_stored(&mut hub, &[deep, deeper]);
}

#[test]
fn fields_a_records_kind_does_not_define_are_refused_not_stored() {
    let dir = TempDir::new().unwrap();
    let (monitor, mut supervisor, mut hub) = monitor_supervisor_and_hub(&dir);
    let actor = monitor.store.actor().clone();
    // A case with a referral: a map of the record's own inside it.
    let mut case = child(area(C01), "Awa Koné", monitor.user());
    let key = Uuid::now_v7();
    case.referrals.insert(
        key,
        Referral::new(ServiceKind::Education, "EPP Aké", identified_on()),
    );
    case.status = CaseStatus::Referred;
    let honest = new_record(&monitor, &case, author(&monitor)).changes;
    let (at_root, nested, fine) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let me = serde_json::to_string(&author(&monitor)).unwrap();
    let key = key.to_string();
    let outcomes = push(
        &monitor,
        &hub.url,
        vec![
            raw(at_root, hostile::unknown_field(&honest, &actor, &[], &me)),
            raw(
                nested,
                hostile::unknown_field(&honest, &actor, &["referrals", &key], &me),
            ),
            raw(fine, honest.clone()),
        ],
    );
    assert_eq!(refusal(&outcomes[&at_root]), Some(Refusal::Invalid));
    assert_eq!(refusal(&outcomes[&nested]), Some(Refusal::Invalid));
    assert!(accepted(&outcomes[&fine]), "{outcomes:?}");
    // Nor may a later change add one to a record the hub holds.
    let outcomes = push(
        &monitor,
        &hub.url,
        vec![raw(fine, hostile::unknown_field(&honest, &actor, &[], &me))],
    );
    assert_eq!(refusal(&outcomes[&fine]), Some(Refusal::Invalid));

    let summary = supervisor.sync(&hub.url).unwrap();
    assert!(summary.failed.is_empty(), "{summary:?}");
    let held = supervisor.store.export_document(fine).unwrap();
    assert!(
        !String::from_utf8_lossy(&held).contains("payload"),
        "the smuggled field reached another device"
    );
    assert_not_stored(&mut hub, &[at_root, nested]);
}

#[test]
fn attack_2_huge_documents_and_fields_are_refused_not_stored() {
    let dir = TempDir::new().unwrap();
    let (monitor, mut supervisor, mut hub) = monitor_supervisor_and_hub(&dir);
    let honest = honest_document(&monitor);
    let actor = monitor.store.actor().clone();

    // A case whose document is 72 MiB once Automerge's DEFLATE columns are inflated; a case
    // with a 6 MiB name (a request over 8 MiB once decompressed is refused whole: 413); one
    // with half as many operations again as a record may hold, in a few hundred bytes.
    let bomb = Uuid::now_v7();
    let field = Uuid::now_v7();
    let operations = Uuid::now_v7();
    let outcomes = push(
        &monitor,
        &hub.url,
        vec![
            raw(bomb, hostile::deflate_bomb(&honest, &actor, 72 << 20)),
            raw(field, hostile::huge_field(&honest, &actor, 3 << 20)),
            raw(
                operations,
                hostile::operations_bomb(
                    &honest,
                    &actor,
                    DocumentLimits::STANDARD.max_operations as usize * 3 / 2,
                ),
            ),
        ],
    );
    assert_eq!(
        refusal(&outcomes[&bomb]),
        Some(Refusal::OverLimit {
            limit: DocumentLimit::Bytes
        })
    );
    assert_eq!(
        refusal(&outcomes[&field]),
        Some(Refusal::OverLimit {
            limit: DocumentLimit::Bytes
        })
    );
    assert_eq!(
        refusal(&outcomes[&operations]),
        Some(Refusal::OverLimit {
            limit: DocumentLimit::Operations
        })
    );
    // A figure for the record (the benchmark measures it under load): what the hub held at most.
    eprintln!(
        "hub peak RSS after the hostile documents: {:.1} MiB",
        hub.peak_rss_mib().unwrap_or(0.0)
    );
    // A text longer than the bound, through the monitor's own store: a validation error
    // naming the field, nothing written.
    let mut long = child(area(C01), "Awa", monitor.user());
    long.notes = "n".repeat(DocumentLimits::STANDARD.max_text_chars + 1);
    let mut monitor = monitor;
    match monitor.store.create(&long) {
        Err(Error::Validation(v)) => assert_eq!(v.field, "notes"),
        other => panic!("expected a validation error, got {other:?}"),
    }

    // Every device of the area still syncs, with small messages.
    let small = SyncOptions {
        max_message_bytes: 256 * 1024,
        ..SyncOptions::default()
    };
    let summary = supervisor.sync_with(&hub.url, &small).unwrap();
    assert!(summary.failed.is_empty(), "{summary:?}");
    let summary = monitor.sync_with(&hub.url, &small).unwrap();
    assert!(summary.failed.is_empty(), "{summary:?}");
    assert_not_stored(&mut hub, &[bomb, field, operations]);
}

#[test]
fn attack_4_area_codes_match_at_their_level_in_the_area_tree() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor-c01",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    let mut monitor_c07 = Device::enrol(
        dir.path(),
        &data,
        "monitor-c07",
        Role::CommunityMonitor,
        &[C07],
        2,
    );
    let mut inspector = Device::enrol(
        dir.path(),
        &data,
        "inspector-d1",
        Role::Inspector,
        &[DISTRICT],
        3,
    );
    let mut supervisor = Device::enrol(
        dir.path(),
        &data,
        "supervisor",
        Role::Supervisor,
        &[REGION],
        4,
    );
    let mut hub = Hub::start(&data);
    let me = author(&monitor);
    let filed = |country: &str, region: &str, district: &str, community: &str| {
        let mut c = child(
            Area::new(country, region, district, community),
            "Awa",
            monitor.user(),
        );
        c.id = Uuid::now_v7();
        c
    };
    // The monitor's community code as the country, and another district's community: under
    // "any code at any level" the C07 monitor received it.
    let as_country = filed(C01, REGION, DISTRICT, C07);
    // The monitor's community under a region that does not exist: it cut the region's
    // supervisor off the record.
    let no_region = filed(COUNTRY, "CI-R9", DISTRICT, C01);
    // Its community under the wrong district.
    let wrong_district = filed(COUNTRY, REGION, DISTRICT_2, C01);
    // Its community code filed as a district (of another community): the code is matched at
    // its level only.
    let as_district = filed(COUNTRY, REGION, C01, C02);
    let honest = filed(COUNTRY, REGION, DISTRICT, C01);
    let outcomes = push(
        &monitor,
        &hub.url,
        [
            &as_country,
            &no_region,
            &wrong_district,
            &as_district,
            &honest,
        ]
        .iter()
        .map(|c| new_record(&monitor, *c, me))
        .collect(),
    );
    assert_eq!(
        refusal(&outcomes[&as_country.id]),
        Some(Refusal::OutOfScope)
    );
    assert_eq!(
        refusal(&outcomes[&no_region.id]),
        Some(Refusal::AreaNotInTree)
    );
    assert_eq!(
        refusal(&outcomes[&wrong_district.id]),
        Some(Refusal::AreaNotInTree)
    );
    assert_eq!(
        refusal(&outcomes[&as_district.id]),
        Some(Refusal::OutOfScope)
    );
    assert!(accepted(&outcomes[&honest.id]), "{outcomes:?}");

    // Each code at its level: the district's inspector and the region's supervisor receive
    // the case of C01, the monitor of C07 does not.
    let elsewhere = {
        let mut c = child(area(C07), "Yao", supervisor.user());
        c.id = Uuid::now_v7();
        supervisor.store.create(&c).unwrap()
    };
    supervisor.sync(&hub.url).unwrap();
    monitor_c07.sync(&hub.url).unwrap();
    inspector.sync(&hub.url).unwrap();
    assert!(supervisor.has(honest.id) && supervisor.has(elsewhere.id));
    assert!(inspector.has(honest.id) && !inspector.has(elsewhere.id));
    assert!(!monitor_c07.has(honest.id) && monitor_c07.has(elsewhere.id));
    for d in [&supervisor, &monitor_c07, &inspector] {
        for c in [&as_country, &no_region, &wrong_district, &as_district] {
            assert!(!d.has(c.id), "{} holds {:?}", d.name, c.area);
        }
    }
    assert_not_stored(
        &mut hub,
        &[
            as_country.id,
            no_region.id,
            wrong_district.id,
            as_district.id,
        ],
    );
}

#[test]
fn attack_5_the_phones_rules_hold_on_the_hub() {
    let dir = TempDir::new().unwrap();
    let (mut monitor, mut supervisor, mut hub) = monitor_supervisor_and_hub(&dir);
    let case = monitor
        .store
        .create(&child(area(C01), "Awa", monitor.user()))
        .unwrap();
    let workplace = Uuid::now_v7();
    let mut v = visit(area(C01), workplace, monitor.user(), 3);
    v.status = VisitStatus::Submitted;
    let v = monitor.store.create(&v).unwrap();
    monitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    let me = author(&monitor);

    // A monitor's plain edit, identified → closed, and a visit validated "by the supervisor".
    let (closing, _) = edited::<ChildCase>(&monitor, case.id, me, |c| {
        c.status = CaseStatus::Closed;
    });
    let supervisor_id = supervisor.user();
    let (validating, _) = edited::<Visit>(&monitor, v.id, me, |v| {
        v.status = VisitStatus::Validated;
        v.reviewed_by = Some(supervisor_id);
    });
    // A case with an empty name, aged 99, working 500 hours a week; a case created closed; a
    // visit created validated.
    let mut nonsense = child(area(C01), " ", monitor.user());
    nonsense.id = Uuid::now_v7();
    nonsense.estimated_age = Some(99);
    nonsense.hours_per_week = 500;
    let mut born_closed = child(area(C01), "Ama", monitor.user());
    born_closed.id = Uuid::now_v7();
    born_closed.status = CaseStatus::Closed;
    let mut born_validated = visit(area(C01), workplace, monitor.user(), 4);
    born_validated.id = Uuid::now_v7();
    born_validated.status = VisitStatus::Validated;
    // A case identified in 2099, with a follow-up "done" then (the phone's clock or its user).
    let mut from_the_future = child(area(C01), "Awa", monitor.user());
    from_the_future.id = Uuid::now_v7();
    from_the_future.identified_on = chrono::NaiveDate::from_ymd_opt(2099, 1, 1).unwrap();
    // What no phone's form lets through: a name of 10,000 characters (one case filled a page of
    // the console's list), a name shown reversed, a case code on two lines, a task with a NUL.
    let hostile_lines: Vec<ChildCase> = (0..4)
        .map(|n| {
            let mut c = child(area(C01), "Awa", monitor.user());
            c.id = Uuid::now_v7();
            match n {
                0 => c.name = "Awa ".repeat(2500),
                1 => c.name = "\u{202e}awA\u{202c} Koné".into(),
                2 => c.case_code = "CI-0001\nCI-0002".into(),
                _ => c.tasks = ["portage\0".to_string()].into(),
            }
            c
        })
        .collect();
    // Records naming others of the wrong kind (a visit "at" a case; a case found at a "visit"
    // that is a case, at a "workplace" that is a visit), or a reference left as the nil id.
    let mut at_a_case = visit(area(C01), case.id, monitor.user(), 5);
    at_a_case.id = Uuid::now_v7();
    at_a_case.status = VisitStatus::Draft;
    let mut named_wrong = child(area(C01), "Ama", monitor.user());
    named_wrong.id = Uuid::now_v7();
    named_wrong.identified_on_visit = Some(at_a_case.workplace_id);
    named_wrong.workplace_id = Some(v.id);
    let mut nowhere = child(area(C01), "Ama", monitor.user());
    nowhere.id = Uuid::now_v7();
    nowhere.workplace_id = Some(Uuid::nil());
    let wrong_kinds = [at_a_case.id, named_wrong.id, nowhere.id];
    // A case of another community the monitor cannot see, named as a visit's workplace: the
    // answer is that of an id the hub does not hold (taken, to be resolved later), so that it
    // tells nothing of the hidden case.
    let hidden = supervisor
        .store
        .create(&child(area(C02), "Adjoa", supervisor.user()))
        .unwrap();
    supervisor.sync(&hub.url).unwrap();
    let mut at_a_hidden_case = visit(area(C01), hidden.id, monitor.user(), 6);
    at_a_hidden_case.status = VisitStatus::Draft;
    let mut at_no_record = visit(area(C01), Uuid::now_v7(), monitor.user(), 7);
    at_no_record.status = VisitStatus::Draft;
    // The phone refuses each, naming the field.
    for (record, field) in [
        (monitor.store.create(&at_a_case).map(|_| ()), "workplace_id"),
        (
            monitor.store.create(&named_wrong).map(|_| ()),
            "workplace_id",
        ),
        (monitor.store.create(&nowhere).map(|_| ()), "workplace_id"),
    ] {
        match record {
            Err(Error::Validation(e)) => assert_eq!(e.field, field),
            other => panic!("expected a validation error naming {field}, got {other:?}"),
        }
    }
    let mut records = vec![
        new_record(&monitor, &at_a_hidden_case, me),
        new_record(&monitor, &at_no_record, me),
        new_record(&monitor, &at_a_case, me),
        new_record(&monitor, &named_wrong, me),
        new_record(&monitor, &nowhere, me),
        closing,
        validating,
        new_record(&monitor, &nonsense, me),
        new_record(&monitor, &born_closed, me),
        new_record(&monitor, &born_validated, me),
        new_record(&monitor, &from_the_future, me),
    ];
    records.extend(hostile_lines.iter().map(|c| new_record(&monitor, c, me)));
    let outcomes = push(&monitor, &hub.url, records);
    for c in &hostile_lines {
        assert_eq!(refusal(&outcomes[&c.id]), Some(Refusal::BreaksValidation));
    }
    for id in [at_a_hidden_case.id, at_no_record.id] {
        assert!(
            matches!(outcomes[&id], PushOutcome::Accepted { .. }),
            "{outcomes:?}"
        );
    }
    for id in wrong_kinds {
        assert_eq!(
            refusal(&outcomes[&id]),
            Some(Refusal::BreaksValidation),
            "{outcomes:?}"
        );
    }
    assert_eq!(
        refusal(&outcomes[&from_the_future.id]),
        Some(Refusal::BreaksValidation)
    );
    // The phone is told which field breaks which rule (its clock may run ahead of the hub's):
    // the rule's words, never the value.
    let told = |id: Uuid| match &outcomes[&id] {
        PushOutcome::Refused {
            detail: Some(detail),
            ..
        } => (detail.field.clone(), detail.rule.clone()),
        other => panic!("no detail: {other:?}"),
    };
    let (field, rule) = told(from_the_future.id);
    assert_eq!(field, "identified_on");
    assert!(rule.contains("after today"), "{rule}");
    assert_eq!(told(nonsense.id).0, "name");
    assert_eq!(told(at_a_case.id).0, "workplace_id");
    assert!(!told(hostile_lines[1].id).1.contains("awA"));
    assert_eq!(refusal(&outcomes[&case.id]), Some(Refusal::StepNotAllowed));
    assert_eq!(refusal(&outcomes[&v.id]), Some(Refusal::StepNotAllowed));
    assert_eq!(
        refusal(&outcomes[&nonsense.id]),
        Some(Refusal::BreaksValidation)
    );
    assert_eq!(
        refusal(&outcomes[&born_closed.id]),
        Some(Refusal::StepNotAllowed)
    );
    assert_eq!(
        refusal(&outcomes[&born_validated.id]),
        Some(Refusal::StepNotAllowed)
    );

    // The phone itself refuses the same plain edit: it knows its user's role from the hub.
    let mut edit: ChildCase = monitor.store.get(case.id).unwrap();
    edit.status = CaseStatus::Closed;
    assert!(matches!(
        monitor.store.update(&edit),
        Err(Error::NotAllowed { .. })
    ));

    // The supervisor, who may, validates the visit: accepted, and the monitor receives it.
    supervisor
        .store
        .review_visit(v.id, Review::Validate)
        .unwrap();
    let summary = supervisor.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    monitor.sync(&hub.url).unwrap();
    let read: Visit = monitor.store.get(v.id).unwrap();
    assert_eq!(
        (read.status, read.reviewed_by),
        (VisitStatus::Validated, Some(supervisor.user()))
    );

    hub.stop();
    let store = hub.open_store();
    assert_eq!(
        store.get::<ChildCase>(case.id).unwrap().status,
        CaseStatus::Identified
    );
    for id in [nonsense.id, born_closed.id, born_validated.id] {
        assert!(store.kind_of(id).is_err());
    }
}

#[test]
fn attack_6_every_change_names_its_sender() {
    let dir = TempDir::new().unwrap();
    let (mut monitor, supervisor, mut hub) = monitor_supervisor_and_hub(&dir);
    let case = monitor
        .store
        .create(&child(area(C01), "Awa", monitor.user()))
        .unwrap();
    monitor.sync(&hub.url).unwrap();

    // A change made with the monitor's own actor, its message naming the supervisor.
    let (borrowed, _) = edited::<ChildCase>(&monitor, case.id, author(&supervisor), |c| {
        c.notes = "Vu par le superviseur.".into();
    });
    // A new case signed by the supervisor's user on the monitor's device.
    let mut signed = child(area(C01), "Ama", monitor.user());
    signed.id = Uuid::now_v7();
    let half = ChangeAuthor {
        user: supervisor.user(),
        device: monitor.token.device,
    };
    let outcomes = push(
        &monitor,
        &hub.url,
        vec![borrowed, new_record(&monitor, &signed, half)],
    );
    assert_eq!(
        refusal(&outcomes[&case.id]),
        Some(Refusal::WrongAuthor),
        "{outcomes:?}"
    );
    assert_eq!(refusal(&outcomes[&signed.id]), Some(Refusal::WrongAuthor));

    // A visit is made by the user who records it: none is filed in another user's name (an
    // inspection "by" the supervisor, or by no one the hub knows), on the phone or at the hub,
    // and its visitor never changes after.
    let mut forged = visit(area(C01), Uuid::now_v7(), supervisor.user(), 3);
    forged.status = VisitStatus::Draft;
    let refused = monitor.store.create(&forged).unwrap_err().to_string();
    assert!(
        refused.contains("visitor is the user who records it"),
        "{refused}"
    );
    let mut nobody = forged.clone();
    nobody.id = Uuid::now_v7();
    nobody.visitor_id = Uuid::now_v7();
    let own = monitor
        .store
        .create(&visit(area(C01), Uuid::now_v7(), monitor.user(), 4))
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    let (moved, _) = edited::<Visit>(&monitor, own.id, author(&monitor), |v| {
        v.visitor_id = supervisor.user();
    });
    let outcomes = push(
        &monitor,
        &hub.url,
        vec![
            new_record(&monitor, &forged, author(&monitor)),
            new_record(&monitor, &nobody, author(&monitor)),
            moved,
        ],
    );
    for id in [forged.id, nobody.id, own.id] {
        assert_eq!(
            refusal(&outcomes[&id]),
            Some(Refusal::StepNotAllowed),
            "{outcomes:?}"
        );
    }

    // The monitor's own edit goes through: the history shows only who made each change.
    let mut edit: ChildCase = monitor.store.get(case.id).unwrap();
    edit.notes = "Vu par la monitrice.".into();
    monitor.store.update(&edit).unwrap();
    let summary = monitor.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    hub.stop();
    let store = hub.open_store();
    assert!(store.kind_of(signed.id).is_err());
    for entry in store.history(case.id).unwrap() {
        assert_eq!(entry.author, Some(author(&monitor)), "{entry:?}");
    }
}

#[test]
fn reference_data_is_published_and_listed_with_the_cli() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    // Before any tree: an area code is placed nowhere, and the user is refused (as in the
    // console): a code that gives no access is a typo most often.
    let out = vigie_output(
        &{
            let mut args = vec![
                "user".to_string(),
                "add".into(),
                "--data".into(),
                data.to_str().unwrap().into(),
                "--name".into(),
                "Awa".into(),
                "--role".into(),
                "community-monitor".into(),
                "--area".into(),
                C01.into(),
            ];
            args.extend(database_args(&data));
            args
        }
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert!(!out.status.success());
    let refusal = String::from_utf8_lossy(&out.stderr);
    assert!(
        refusal.contains(C01) && refusal.contains("no published area tree"),
        "{refusal}"
    );

    let printed = common::reference::publish(&data, &[common::reference::SAMPLE_AREAS]);
    let line: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(
        line,
        serde_json::json!({"type": "administrative_areas", "key": "CI", "version": 1})
    );
    // The same content again is the same version.
    let again: serde_json::Value = serde_json::from_str(&common::reference::publish(
        &data,
        &[common::reference::SAMPLE_AREAS],
    ))
    .unwrap();
    assert_eq!(again["version"], 1);

    // A file that is not reference data, or whose tree is malformed, publishes nothing (not
    // even the good file given with it).
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"key": "GH", "administrative_areas": {"code": "GH", "labels": {}}}"#,
    )
    .unwrap();
    let good = dir.path().join("bf.json");
    std::fs::write(
        &good,
        r#"{"key": "BF", "administrative_areas": {"code": "BF", "labels": {"fr": "Burkina Faso"}}}"#,
    )
    .unwrap();
    let mut args = vec![
        "reference".to_string(),
        "publish".into(),
        "--data".into(),
        data.to_str().unwrap().into(),
    ];
    args.extend(database_args(&data));
    args.push(good.to_str().unwrap().into());
    args.push(bad.to_str().unwrap().into());
    let out = vigie_output(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("bad.json") && error.contains("labels"),
        "{error}"
    );

    let mut args = vec![
        "reference".to_string(),
        "list".into(),
        "--data".into(),
        data.to_str().unwrap().into(),
    ];
    args.extend(database_args(&data));
    let listed = vigie(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let lines: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let areas = lines
        .iter()
        .find(|l| l["type"] == "administrative_areas" && l["key"] == "CI")
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(
        areas["versions"],
        serde_json::json!([{"version": 1, "published": true}])
    );
    assert_eq!(areas["in_force"], 1, "{listed}");
    assert_eq!(
        areas["areas"],
        serde_json::json!({"country": 1, "region": 2, "district": 5, "community": 41})
    );
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "country_profile" && l["versions"][0]["published"] == false),
        "the built-in profile is listed: {listed}"
    );
    assert!(!lines.iter().any(|l| l["key"] == "BF"), "{listed}");
}

/// Publications at the same moment (two administrators, or two hub processes sharing one
/// PostgreSQL database) each get a version of their own: none fails on the number another
/// took. The files of one publication that clash with each other are named by the error.
#[test]
fn publications_at_the_same_moment_each_get_their_own_version() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    common::reference::publish(&data, &[common::reference::SAMPLE_AREAS]);
    let publish_args = |files: &[&std::path::Path]| {
        let mut args = vec![
            "reference".to_string(),
            "publish".into(),
            "--data".into(),
            data.to_str().unwrap().into(),
        ];
        args.extend(database_args(&data));
        args.extend(files.iter().map(|f| f.to_str().unwrap().to_string()));
        args
    };
    let files: Vec<std::path::PathBuf> = (0..4)
        .map(|i| {
            let path = dir.path().join(format!("sectors-{i}.json"));
            let file = serde_json::json!({"key": "CI", "sectors": [
                {"code": format!("cocoa_{i}"), "labels": {"fr": "Cacao", "en": "Cocoa"}},
            ]});
            std::fs::write(&path, file.to_string()).unwrap();
            path
        })
        .collect();
    let versions: Vec<u64> = std::thread::scope(|scope| {
        let running: Vec<_> = files
            .iter()
            .map(|file| {
                let args = publish_args(&[file]);
                scope.spawn(move || {
                    let out = vigie_output(&args.iter().map(String::as_str).collect::<Vec<_>>());
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                    line["version"].as_u64().unwrap()
                })
            })
            .collect();
        running.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut sorted = versions.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 4, "{versions:?}");
    assert_eq!(sorted[3] - sorted[0], 3, "{versions:?}");

    // Two new countries' trees sharing a code, in one publication: refused, naming the file.
    let tree = |country: &str, shared: &str| {
        let path = dir.path().join(format!("areas-{country}.json"));
        let file = serde_json::json!({"key": country, "administrative_areas": {
            "code": country, "labels": {"fr": country},
            "children": [{"code": shared, "labels": {"fr": "Région"}}],
        }});
        std::fs::write(&path, file.to_string()).unwrap();
        path
    };
    let (bf, gh) = (tree("BF", "XX-R1"), tree("GH", "XX-R1"));
    let args = publish_args(&[&bf, &gh]);
    let out = vigie_output(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("administrative_areas.XX-R1")
            && error.contains("tree of BF")
            && error.contains("administrative_areas GH"),
        "{error}"
    );
}

/// A hub serves a country's records only once its area tree is published, and gives no one an
/// area its trees do not name: on a hub without a tree, a user with an area is refused, with the
/// way out; once the tree is published the same user is added and their records go in.
#[test]
fn a_hub_without_an_area_tree_gives_no_area_until_the_tree_is_published() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut hub = Hub::start_without_areas(&data);
    let out = common::try_add_user(&data, "Moniteur", Role::CommunityMonitor, &[C01]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no published area tree") && said.contains("vigie reference publish"),
        "{said}"
    );
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    let case = monitor
        .store
        .create(&child(area(C01), "Awa", monitor.user()))
        .unwrap();
    let summary = monitor.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.pending, 0);
    let _ = rules::author(&monitor);
    hub.stop();
    assert!(hub.open_store().kind_of(case.id).is_ok());
}

#[test]
fn concurrent_steps_are_each_judged_from_the_version_they_were_made_on() {
    let dir = TempDir::new().unwrap();
    let (mut monitor, mut supervisor, hub, case) = a_referred_case_on_both(&dir);

    // Offline on both sides: the monitor's services start; the supervisor, who heard of them
    // first-hand, verifies the withdrawal.
    monitor
        .store
        .transition_case(case.id, CaseStatus::ReceivingServices)
        .unwrap();
    supervisor
        .store
        .transition_case(case.id, CaseStatus::ReceivingServices)
        .unwrap();
    supervisor
        .store
        .transition_case(case.id, CaseStatus::Withdrawn)
        .unwrap();
    let summary = supervisor.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    // The monitor's step, from the version she made it on, is hers to take: accepted, and the
    // two statuses are kept as a conflict for a person to settle.
    let summary = monitor.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    supervisor.sync(&hub.url).unwrap();
    let conflicts = supervisor.store.conflicts(case.id).unwrap();
    assert!(
        conflicts.iter().any(|c| c.field() == "status"),
        "{conflicts:?}"
    );
    assert!(hub.log_errors().is_empty(), "{:#?}", hub.log_errors());
}

/// The same late step against a case the supervisor verified then reopened (the child found
/// working again): reopened, the case waits for a new referral; the monitor's step through the
/// referral of the episode the verification ended stands beside the reopening, whichever the
/// merge shows, for the supervisor to settle; kept, the reopening stands.
#[test]
fn a_late_step_made_on_an_older_copy_stands_beside_a_reopening() {
    let dir = TempDir::new().unwrap();
    let (mut monitor, mut supervisor, hub, case) = a_referred_case_on_both(&dir);
    let verified = identified_on() + chrono::Days::new(30);
    for to in [
        CaseStatus::ReceivingServices,
        CaseStatus::Withdrawn,
        CaseStatus::Identified,
    ] {
        supervisor
            .store
            .transition_case_on(case.id, to, verified)
            .unwrap();
    }
    let summary = supervisor.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");

    let mut noted: ChildCase = monitor.store.get(case.id).unwrap();
    noted.notes = "Vue au champ de cacao avec son oncle. ".repeat(20);
    monitor.store.update(&noted).unwrap();
    monitor
        .store
        .transition_case(case.id, CaseStatus::ReceivingServices)
        .unwrap();
    let summary = monitor.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    supervisor.sync(&hub.url).unwrap();
    let status = ["status".to_string()];
    let conflicts = supervisor.store.conflicts(case.id).unwrap();
    assert!(conflicts.iter().any(|c| c.path == status), "{conflicts:?}");
    supervisor
        .store
        .resolve_conflict(case.id, &status, &serde_json::json!("identified"))
        .unwrap();
    assert!(supervisor.sync(&hub.url).unwrap().refused.is_empty());
    monitor.sync(&hub.url).unwrap();
    for store in [&monitor.store, &supervisor.store] {
        let kept: ChildCase = store.get(case.id).unwrap();
        assert_eq!(kept.status, CaseStatus::Identified);
    }
}

/// A change built on an older copy of a case, with an operation deleting the supervisor's
/// verification date made since (its id named as the operation's predecessor, past the
/// change's history): Automerge applies it by that id, and the case stood closed with no
/// verification, no step of any version the monitor held showing it. Refused, naming the
/// rule; the verification stays.
#[test]
fn a_change_deleting_a_value_its_device_never_received_is_refused() {
    use automerge::ReadDoc;
    let dir = TempDir::new().unwrap();
    let (monitor, mut supervisor, hub, case) = a_referred_case_on_both(&dir);
    let verified = identified_on() + chrono::Days::new(30);
    for to in [CaseStatus::ReceivingServices, CaseStatus::Withdrawn] {
        supervisor
            .store
            .transition_case_on(case.id, to, verified)
            .unwrap();
    }
    supervisor.sync(&hub.url).unwrap();
    let theirs =
        automerge::Automerge::load(&supervisor.store.export_document(case.id).unwrap()).unwrap();
    let (_, verification) = theirs
        .get(automerge::ROOT, "remediated_on")
        .unwrap()
        .expect("the verification date is set");

    // The monitor, offline on the referred copy, edits the notes (an honest change), to which
    // one operation is added: the verification date deleted.
    let (honest, _) = edited::<ChildCase>(&monitor, case.id, author(&monitor), |c| {
        c.notes = "Vue au champ.".into();
    });
    let forged = hostile::deleting_unseen(&honest.changes, "remediated_on", &verification);
    let pushed = push(
        &monitor,
        &hub.url,
        vec![PushEntry {
            id: case.id,
            heads: vec![forged.hash().0],
            changes: forged.raw_bytes().to_vec(),
        }],
    );
    let outcome = &pushed[&case.id];
    assert_eq!(
        refusal(outcome),
        Some(Refusal::StepNotAllowed),
        "{outcome:?}"
    );
    let PushOutcome::Refused { detail, .. } = outcome else {
        unreachable!()
    };
    assert_eq!(
        detail.as_ref().map(|d| d.rule.as_str()),
        Some(vigie_core::doc::UNSEEN_OPERATIONS)
    );
    // The honest change alone goes in; the verification stays.
    let pushed = push(&monitor, &hub.url, vec![honest]);
    assert!(accepted(&pushed[&case.id]), "{pushed:?}");
    supervisor.sync(&hub.url).unwrap();
    let kept: ChildCase = supervisor.store.get(case.id).unwrap();
    assert_eq!(kept.remediated_on, Some(verified));
    assert_eq!(kept.notes, "Vue au champ.");
}

/// A case's document pushed again under new ids (a hostile app: thousands of copies in one
/// request, a few bytes each) is no new record: refused, naming the id. A supervisor erasing
/// one such copy as a duplicate erased the case with it; the case itself still syncs.
#[test]
fn a_copy_of_a_records_document_under_another_id_is_refused() {
    let dir = TempDir::new().unwrap();
    let (monitor, mut supervisor, hub, case) = a_referred_case_on_both(&dir);
    let document = monitor.store.export_document(case.id).unwrap();
    let copies: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let pushed = push(
        &monitor,
        &hub.url,
        copies.iter().map(|id| raw(*id, document.clone())).collect(),
    );
    for id in &copies {
        let outcome = &pushed[id];
        assert_eq!(refusal(outcome), Some(Refusal::Damaged), "{outcome:?}");
        let PushOutcome::Refused { detail, .. } = outcome else {
            unreachable!()
        };
        let detail = detail.as_ref().expect("the refusal says why");
        assert_eq!(detail.field, "id");
        assert!(detail.rule.contains("another record's"), "{}", detail.rule);
    }
    supervisor.sync(&hub.url).unwrap();
    for id in &copies {
        assert!(!supervisor.has(*id));
    }
    assert!(supervisor.has(case.id));
    // The case's own document pushed again under its id is no copy.
    let pushed = push(&monitor, &hub.url, vec![raw(case.id, document)]);
    assert!(accepted(&pushed[&case.id]), "{pushed:?}");
}

/// A monitor's late step made on an older copy of a case (referred → receiving services,
/// offline, after a long note) while the supervisor verified and closed it: the two statuses
/// stand side by side, whichever the merge shows (the long note makes hers the one shown), and
/// the monitor's work is kept. It was refused when her value was shown (her note given up with
/// it) and taken when it was not. She may not settle it, either way; the supervisor keeps the
/// closure.
#[test]
fn a_late_step_made_on_an_older_copy_stands_beside_a_closure() {
    let dir = TempDir::new().unwrap();
    let (mut monitor, mut supervisor, hub, case) = a_referred_case_on_both(&dir);

    // The supervisor takes the case to its end: services, verification, a follow-up in
    // school, closure.
    let verified = identified_on() + chrono::Days::new(30);
    for (to, on) in [
        (CaseStatus::ReceivingServices, verified),
        (CaseStatus::Withdrawn, verified),
    ] {
        supervisor
            .store
            .transition_case_on(case.id, to, on)
            .unwrap();
    }
    supervisor
        .store
        .add_follow_up(
            case.id,
            FollowUp::new(
                verified + chrono::Days::new(30),
                FollowUpSituation::InSchool,
                None,
            ),
        )
        .unwrap();
    supervisor
        .store
        .transition_case(case.id, CaseStatus::Closed)
        .unwrap();
    let summary = supervisor.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");

    // Offline all along, the monitor writes a long note, then starts the services.
    let note = "Vue au champ de cacao avec son oncle. ".repeat(20);
    let mut noted: ChildCase = monitor.store.get(case.id).unwrap();
    noted.notes = note.clone();
    monitor.store.update(&noted).unwrap();
    monitor
        .store
        .transition_case(case.id, CaseStatus::ReceivingServices)
        .unwrap();
    let summary = monitor.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    monitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();

    let status = ["status".to_string()];
    for store in [&monitor.store, &supervisor.store] {
        let read: ChildCase = store.get(case.id).unwrap();
        assert_eq!(read.notes, note);
        let conflicts = store.conflicts(case.id).unwrap();
        assert!(conflicts.iter().any(|c| c.path == status), "{conflicts:?}");
    }
    let closed = serde_json::json!("closed");
    assert!(matches!(
        monitor.store.resolve_conflict(case.id, &status, &closed),
        Err(Error::NotAllowed { .. })
    ));
    supervisor
        .store
        .resolve_conflict(case.id, &status, &closed)
        .unwrap();
    assert!(supervisor.sync(&hub.url).unwrap().refused.is_empty());
    monitor.sync(&hub.url).unwrap();
    for store in [&monitor.store, &supervisor.store] {
        let read: ChildCase = store.get(case.id).unwrap();
        assert_eq!(read.status, CaseStatus::Closed);
        assert_eq!(read.notes, note);
        assert!(store.conflicts(case.id).unwrap().is_empty());
    }
    assert!(hub.log_errors().is_empty(), "{:#?}", hub.log_errors());
}

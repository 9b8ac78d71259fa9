//! The role matrix on the device: every cell (`common::matrix`) for every role, through the
//! store's own writes, on a store that knows its user's role from the hub. And what a store
//! that does not know it yet may do.

use crate::common;

use common::matrix::{self, Subject};
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::*;

fn open(dir: &TempDir, name: &str) -> Store {
    common::plain_store(dir.path(), name)
}

#[test]
fn every_cell_of_the_matrix_holds_on_the_device() {
    let cells = matrix::cells();
    let mut failures = Vec::new();
    let mut checked = 0;
    for role in matrix::ROLES {
        let dir = TempDir::new().unwrap();
        let mut store = open(&dir, "device.db");
        let user = store.user_id();
        matrix::kept_case(user).create(&mut store).unwrap();
        // The records as they stand before each step (as a hub would have sent them).
        let befores: Vec<Option<(Subject, Uuid)>> = cells
            .iter()
            .map(|cell| {
                cell.before.map(|before| {
                    let subject = before(user);
                    subject.create(&mut store).unwrap();
                    let id = subject.id();
                    (subject, id)
                })
            })
            .collect();
        common::act_as(&mut store, role, &["CI-R1"]);
        for (cell, before) in cells.iter().zip(befores) {
            let result = match before {
                Some((template, id)) => {
                    let mut subject = template.read(&store, id);
                    (cell.step)(&mut subject, user);
                    subject.update(&mut store)
                }
                None => {
                    let mut subject = Subject::Workplace(Workplace::new(
                        "x",
                        "cocoa",
                        Formality::Formal,
                        matrix::area(),
                    ));
                    (cell.step)(&mut subject, user);
                    subject.create(&mut store)
                }
            };
            let expected = cell.allowed.contains(&role);
            match (expected, &result) {
                (true, Ok(())) | (false, Err(Error::NotAllowed { .. })) => {}
                _ => failures.push(format!(
                    "{role:?} / {}: expected {}, got {result:?}",
                    cell.name,
                    if expected { "allowed" } else { "NotAllowed" }
                )),
            }
            checked += 1;
        }
        // Users and reference data are the hub's administrator's.
        assert!(matches!(
            store.create(&User::new("Moi", Role::Supervisor, &["CI"])),
            Err(Error::NotAllowed { .. })
        ));
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(checked, cells.len() * 3);
}

#[test]
fn workflow_calls_act_with_the_role_the_hub_gave() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db");
    let by = store.user_id();
    let mut c = ChildCase::new(
        "CASE-1",
        "Awa",
        Sex::Female,
        matrix::area(),
        chrono::NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
        by,
    );
    c.estimated_age = Some(12);
    let c = store.create(&c).unwrap();
    let referral = Referral {
        service: ServiceKind::Health,
        provider: "Centre de santé".into(),
        date: chrono::NaiveDate::from_ymd_opt(2026, 4, 2).unwrap(),
        outcome: String::new(),
    };

    // A store that never synced does not know its user's role: no workflow step, whatever the
    // app would claim (the calls take no role).
    assert_eq!(store.user_profile().unwrap(), None);
    match store.refer_case(c.id, referral.clone()) {
        Err(Error::NotAllowed { rule }) => assert!(rule.contains("sync"), "{rule}"),
        other => panic!("expected NotAllowed, got {other:?}"),
    }
    // Its plain writes are the hub's to judge (it checks them at the push).
    let mut edit: ChildCase = store.get(c.id).unwrap();
    edit.notes = "Vue au champ.".into();
    store.update(&edit).unwrap();

    // An inspector opens and refers cases; the services are followed by others.
    common::act_as(&mut store, Role::Inspector, &["CI-R1-D1"]);
    assert_eq!(
        store.user_profile().unwrap().unwrap(),
        sync::UserProfile {
            role: Role::Inspector,
            areas: vec!["CI-R1-D1".into()],
        }
    );
    let (c, _) = store.refer_case(c.id, referral.clone()).unwrap();
    assert_eq!(c.status, CaseStatus::Referred);
    assert!(matches!(
        store.transition_case(c.id, CaseStatus::ReceivingServices),
        Err(Error::NotAllowed { .. })
    ));
    let follow_up = FollowUp {
        date: chrono::NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(),
        situation: FollowUpSituation::InSchool,
        notes: String::new(),
        next_due: None,
    };
    assert!(matches!(
        store.add_follow_up(c.id, follow_up.clone()),
        Err(Error::NotAllowed { .. })
    ));

    // The hub says the user is now a monitor: the same store may.
    common::act_as(&mut store, Role::CommunityMonitor, &["CI-R1-D1-C01"]);
    store
        .transition_case(c.id, CaseStatus::ReceivingServices)
        .unwrap();
    store.add_follow_up(c.id, follow_up).unwrap();
    match store.transition_case(c.id, CaseStatus::Withdrawn) {
        Err(Error::NotAllowed { rule }) => assert!(rule.contains("supervisor"), "{rule}"),
        other => panic!("expected NotAllowed, got {other:?}"),
    }
}

/// A phone never writes user records, even before it knows its role: the hub would refuse
/// them, and a user written there would stay on the phone, read as real.
#[test]
fn a_phone_that_never_synced_writes_no_user_record() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "never-synced.db");
    assert!(store.user_profile().unwrap().is_none());
    match store.create(&User::new("Admin", Role::Supervisor, &["CI-R1"])) {
        Err(Error::NotAllowed { rule }) => {
            assert!(rule.contains("administrator"), "{rule}");
            assert!(!rule.contains("Admin "), "{rule}");
        }
        other => panic!("a user written on a phone gave {other:?}"),
    }
    assert_eq!(store.count(RecordKind::User).unwrap(), 0);
    assert_eq!(store.hub_outbox_len().unwrap(), 0);
}

//! The role matrix on the hub: every cell (`core/tests/common/matrix.rs`) for every role, each
//! step written straight into the record's document by the role's device (past its own
//! store's checks) and pushed to the real `vigie` binary, which accepts exactly the steps the
//! role may take. Runs on the embedded store, and on PostgreSQL with
//! `VIGIE_TEST_BACKEND=postgres`.

use crate::common;

use common::rules::matrix::{self, Subject};
use common::rules::{author, edited, new_record, push, refusal};
use common::*;
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::sync::Refusal;
use vigie_core::sync::wire::{PushEntry, PushOutcome};
use vigie_core::*;

/// The push of `step` applied to record `id` (as the device holds it), or to a new record.
fn step_push(
    device: &Device,
    before: Option<(&Subject, Uuid)>,
    step: fn(&mut Subject, Uuid),
) -> (Uuid, PushEntry) {
    let me = author(device);
    let user = device.user();
    let Some((template, id)) = before else {
        let mut subject = Subject::Workplace(Workplace::new(
            "x",
            "cocoa",
            Formality::Formal,
            matrix::area(),
        ));
        step(&mut subject, user);
        subject.set_id(Uuid::now_v7());
        let entry = match &subject {
            Subject::Workplace(r) => new_record(device, r, me),
            Subject::Visit(r) => new_record(device, r, me),
            Subject::Case(r) => new_record(device, r, me),
        };
        return (subject.id(), entry);
    };
    let entry = match template {
        Subject::Workplace(_) => {
            edited::<Workplace>(device, id, me, |r| {
                let mut s = Subject::Workplace(r.clone());
                step(&mut s, user);
                if let Subject::Workplace(edited) = s {
                    *r = edited;
                }
            })
            .0
        }
        Subject::Visit(_) => {
            edited::<Visit>(device, id, me, |r| {
                let mut s = Subject::Visit(r.clone());
                step(&mut s, user);
                if let Subject::Visit(edited) = s {
                    *r = edited;
                }
            })
            .0
        }
        Subject::Case(_) => {
            edited::<ChildCase>(device, id, me, |r| {
                let mut s = Subject::Case(r.clone());
                step(&mut s, user);
                if let Subject::Case(edited) = s {
                    *r = edited;
                }
            })
            .0
        }
    };
    (id, entry)
}

#[test]
fn every_cell_of_the_matrix_holds_on_the_hub() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut author_of_records =
        Device::enrol(dir.path(), &data, "records", Role::Supervisor, &[REGION], 1);
    let mut devices: Vec<Device> = [
        (Role::CommunityMonitor, C01),
        (Role::Inspector, DISTRICT),
        (Role::Supervisor, REGION),
    ]
    .iter()
    .enumerate()
    .map(|(i, (role, area))| {
        Device::enrol(
            dir.path(),
            &data,
            &format!("{role:?}"),
            *role,
            &[area],
            2 + i as u8,
        )
    })
    .collect();
    let hub = Hub::start(&data);

    // The records each step starts from, one set per role.
    let cells = matrix::cells();
    let user = author_of_records.user();
    matrix::kept_case(user)
        .create(&mut author_of_records.store)
        .unwrap();
    // A visit's content is its visitor's: the visits a cell starts from are the role's own
    // (made on its device, submitted, and reviewed by the records' author where the cell starts
    // from a reviewed one), unless the cell's visit is another user's; the other records are
    // the author's.
    let mut befores: Vec<Vec<Option<(Subject, Uuid)>>> = Vec::new();
    let mut reviews = Vec::new();
    for device in devices.iter_mut() {
        let mut set = Vec::new();
        for cell in &cells {
            let Some(before) = cell.before else {
                set.push(None);
                continue;
            };
            let mut subject = match before(device.user()) {
                visit @ Subject::Visit(_) => visit,
                _ => before(user),
            };
            subject.set_id(Uuid::now_v7());
            match &mut subject {
                Subject::Visit(v) if v.visitor_id == device.user() => {
                    let status = v.status;
                    if status != VisitStatus::Draft {
                        v.status = VisitStatus::Submitted;
                    }
                    subject.create(&mut device.store).unwrap();
                    match status {
                        VisitStatus::Validated => reviews.push((subject.id(), Review::Validate)),
                        VisitStatus::Returned => reviews.push((
                            subject.id(),
                            Review::Return {
                                comment: "Compter les enfants.".into(),
                            },
                        )),
                        _ => {}
                    }
                }
                Subject::Visit(v) => {
                    v.visitor_id = user;
                    subject.create(&mut author_of_records.store).unwrap();
                }
                _ => subject.create(&mut author_of_records.store).unwrap(),
            }
            let id = subject.id();
            set.push(Some((subject, id)));
        }
        befores.push(set);
        let summary = device.sync(&hub.url).unwrap();
        assert!(summary.refused.is_empty(), "{summary:?}");
    }
    let summary = author_of_records.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    for (id, review) in reviews {
        author_of_records.store.review_visit(id, review).unwrap();
    }
    let summary = author_of_records.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");

    let mut failures = Vec::new();
    let mut checked = 0;
    for (device, befores) in devices.iter_mut().zip(&befores) {
        device.sync(&hub.url).unwrap();
        let role = device.principal.role;
        let mut entries = Vec::new();
        let mut expected = Vec::new();
        for (cell, before) in cells.iter().zip(befores) {
            let (id, entry) = step_push(device, before.as_ref().map(|(s, id)| (s, *id)), cell.step);
            entries.push(entry);
            expected.push((id, cell.name, cell.allowed.contains(&role)));
        }
        // A user record, the role's own made a supervisor of the country.
        let mut promoted = User::new("Moi", Role::Supervisor, &[COUNTRY]);
        promoted.id = device.user();
        entries.push(new_record(device, &promoted, author(device)));
        let outcomes = push(device, &hub.url, entries);
        for (id, name, allowed) in expected {
            let outcome = &outcomes[&id];
            let fine = match outcome {
                PushOutcome::Accepted { .. } => allowed,
                PushOutcome::Refused {
                    reason: Refusal::StepNotAllowed,
                    ..
                } => !allowed,
                _ => false,
            };
            if !fine {
                failures.push(format!(
                    "{role:?} / {name}: expected {}, got {outcome:?}",
                    if allowed {
                        "accepted"
                    } else {
                        "StepNotAllowed"
                    }
                ));
            }
            checked += 1;
        }
        assert_eq!(
            refusal(&outcomes[&device.user()]),
            Some(Refusal::KindNotAllowed)
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(checked, cells.len() * 3);
    assert!(hub.log_errors().is_empty(), "{:#?}", hub.log_errors());
}

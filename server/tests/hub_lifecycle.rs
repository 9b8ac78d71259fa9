//! How records come and go, tried against the real `vigie` binary as a hostile or careless
//! device would (issue 11's attacks 3, 7, 8 and 9) and as a user who loses an area would (issue
//! 12). `VIGIE_TEST_BACKEND=postgres` runs the same on PostgreSQL.

use crate::common;

use automerge::transaction::Transactable;
use common::lifecycle::*;
use common::*;
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::sync::wire::{PushEntry, PushOutcome};
use vigie_core::sync::{Refusal, SyncOptions};
use vigie_core::*;

/// A case with long notes, so that a few of them fill a response.
fn bulky_case(area: Area, name: &str, by: Uuid, kib: usize) -> ChildCase {
    let mut c = child(area, name, by);
    c.notes = "Observé aux champs le matin, à l'école l'après-midi. ".repeat(kib * 1024 / 54);
    c
}

/// Attack 3: a request that names a record many times, in `refetch` or in its pushes, or
/// asks for far more than its budget, gets an answer within the budget it asked for.
#[test]
fn naming_records_again_never_amplifies_the_answer() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut supervisor = Device::enrol(dir.path(), &data, "sup", Role::Supervisor, &[REGION], 1);
    let monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        2,
    );
    let mut hub = Hub::start(&data);
    let ids: Vec<Uuid> = (0..40)
        .map(|i| {
            let c = bulky_case(area(C01), &format!("Enfant {i}"), supervisor.user(), 20);
            supervisor.store.create(&c).unwrap().id
        })
        .collect();
    supervisor.sync(&hub.url).unwrap();
    let one = supervisor.store.export_document(ids[0]).unwrap().len();

    // One record named 200 times: sent once.
    let (response, wire_bytes) = exchange(
        &monitor,
        &hub.url,
        &request(&monitor, Vec::new(), vec![ids[0]; 200], 1 << 18),
    );
    let sent: usize = response.records.iter().map(|r| r.changes.len()).sum();
    assert_eq!(
        response.records.iter().filter(|r| r.id == ids[0]).count(),
        1
    );
    assert!(sent <= 256 * 1024, "{sent} bytes for one record of {one}");
    assert!(wire_bytes < 256 * 1024);

    // Every record asked for, in a small budget: the answer keeps to it.
    let budget = 64 * 1024;
    let (response, _) = exchange(
        &monitor,
        &hub.url,
        &request(&monitor, Vec::new(), ids.clone(), budget),
    );
    let sent: usize = response.records.iter().map(|r| r.changes.len()).sum();
    assert!(
        sent <= budget as usize,
        "{sent} bytes for a budget of {budget}"
    );
    assert!(!response.records.is_empty() && response.records.len() < ids.len());

    // One record pushed 200 times with heads the hub does not know: one answer, one catch-up.
    let doc = supervisor.store.export_document(ids[1]).unwrap();
    let pushes: Vec<PushEntry> = (0..200)
        .map(|_| PushEntry {
            id: ids[1],
            heads: Vec::new(),
            changes: doc.clone(),
        })
        .collect();
    let (response, wire_bytes) = exchange(
        &supervisor,
        &hub.url,
        &request(&supervisor, pushes, Vec::new(), budget),
    );
    assert_eq!(response.acks.len(), 1);
    assert!(wire_bytes < 256 * 1024, "{wire_bytes} bytes");
    // Many records pushed, each needing a catch-up: the catch-ups keep to the budget too.
    let pushes: Vec<PushEntry> = ids
        .iter()
        .map(|id| PushEntry {
            id: *id,
            heads: Vec::new(),
            changes: supervisor.store.export_document(*id).unwrap(),
        })
        .collect();
    let (response, _) = exchange(
        &supervisor,
        &hub.url,
        &request(&supervisor, pushes, Vec::new(), budget),
    );
    // All of them, unless the hub's time for a push ran out first (a loaded machine: the
    // rest wait for the next push); what matters here is the budget.
    assert!(
        !response.acks.is_empty() && response.acks.len() <= ids.len(),
        "{} acks",
        response.acks.len()
    );
    let caught_up: usize = response
        .acks
        .iter()
        .map(|a| match &a.outcome {
            PushOutcome::Accepted { catch_up, .. } => catch_up.len(),
            other => panic!("{other:?}"),
        })
        .sum();
    let sent: usize = response.records.iter().map(|r| r.changes.len()).sum();
    assert!(
        caught_up + sent <= budget as usize,
        "{caught_up} + {sent} bytes"
    );

    // A device with a small budget still receives everything, page after page.
    let mut late = Device::enrol(dir.path(), &data, "late", Role::CommunityMonitor, &[C01], 3);
    let summary = late
        .sync_with(
            &hub.url,
            &SyncOptions {
                max_message_bytes: 32 * 1024,
                // Pages that stay small, however fast the link.
                max_page_bytes: 32 * 1024,
                ..SyncOptions::default()
            },
        )
        .unwrap();
    assert!(
        summary.round_trips >= ids.len() * one / (64 * 1024),
        "{summary:?}"
    );
    assert!(ids.iter().all(|id| late.has(*id)));
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A device revoked, or its user moved out of an area, while the hub judges its request (a
/// large push from a phone back from days offline) gets no answer made for its rights before:
/// the answer carried a colleague's cases to the revoked phone, and the old district's to
/// the moved monitor, once the administrator's command had returned.
#[test]
fn rights_changed_during_a_request_are_those_its_answer_is_made_for() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let monitor =
        |name, key| Device::enrol(dir.path(), &data, name, Role::CommunityMonitor, &[C01], key);
    let (mut colleague, mut revoked, mut moved) = (
        monitor("colleague", 1),
        monitor("revoked", 2),
        monitor("moved", 3),
    );
    let hub = Hub::start(&data);
    let theirs: Vec<Uuid> = (0..20)
        .map(|i| {
            let c = child(area(C01), &format!("Enfant {i}"), colleague.user());
            colleague.store.create(&c).unwrap().id
        })
        .collect();
    colleague.sync(&hub.url).unwrap();
    for (device, change) in [(&mut revoked, "revoke"), (&mut moved, "areas")] {
        // Days of work offline: a push the hub takes seconds to judge.
        let pushes: Vec<PushEntry> = (0..1000)
            .map(|i| {
                let c = child(area(C01), &format!("Hors ligne {i}"), device.user());
                let id = device.store.create(&c).unwrap().id;
                PushEntry {
                    id,
                    heads: Vec::new(),
                    changes: device.store.export_document(id).unwrap(),
                }
            })
            .collect();
        let body = request(device, pushes, Vec::new(), 1 << 22);
        let (url, token) = (hub.url.clone(), format!("Bearer {}", device.token_text));
        let sent = std::thread::spawn(move || post_sync(&agent(), &url, Some(&token), &body));
        std::thread::sleep(std::time::Duration::from_millis(300));
        match change {
            "revoke" => assert!(revoke(&data, device.store.device_id())),
            _ => set_areas(&data, device.user(), &[C02]),
        }
        let (status, answer) = sent.join().unwrap().expect("the hub answers");
        if status == 200 {
            // Judged whole before the change: an answer made for the rights after it.
            let answer = vigie_core::sync::wire::decode_response(&answer, 1 << 30).unwrap();
            let leaked: Vec<_> = answer
                .records
                .iter()
                .filter(|r| theirs.contains(&r.id))
                .collect();
            assert!(
                leaked.is_empty(),
                "{change}: {} of a colleague's cases",
                leaked.len()
            );
        } else {
            let expected = if change == "revoke" { 403 } else { 503 };
            assert_eq!(
                status,
                expected,
                "{change}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
    }
    drop(hub);
}

/// Attack 7: a monitor of C02 that never held a C01 case pushes a change with no history
/// re-filing it under C02. It is refused as out of scope, never quarantined, and the monitor
/// never receives the case. A real quarantine (a monitor who lost the area) shows the reviewer
/// what it would change without any value, and `accept` checks scope and rules again.
#[test]
fn quarantine_is_no_back_door() {
    const NAME: &str = "Akissi Bamba";
    const NOTE: &str = "Travaille la nuit au séchoir.";
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut supervisor = Device::enrol(dir.path(), &data, "sup", Role::Supervisor, &[DISTRICT], 1);
    let other_district = Device::enrol(
        dir.path(),
        &data,
        "sup-d2",
        Role::Supervisor,
        &[DISTRICT_2],
        2,
    );
    let mut holder = Device::enrol(
        dir.path(),
        &data,
        "holder",
        Role::CommunityMonitor,
        &[C01],
        3,
    );
    let mut intruder = Device::enrol(
        dir.path(),
        &data,
        "intruder",
        Role::CommunityMonitor,
        &[C02],
        4,
    );
    let mut hub = Hub::start(&data);
    let case = holder
        .store
        .create(&child(area(C01), NAME, holder.user()))
        .unwrap();
    holder.sync(&hub.url).unwrap();
    intruder.sync(&hub.url).unwrap();

    // The intruder writes its own document for the case's id, filed under C02.
    let mut forged = child(area(C02), "Réaffecté", intruder.user());
    forged.id = case.id;
    let author = ChangeAuthor {
        user: intruder.user(),
        device: intruder.token.device,
    };
    let mut doc = automerge::Automerge::new().with_actor(intruder.store.actor().clone());
    vigie_core::doc::write_record(&mut doc, &forged, &author).unwrap();
    let outcome = push_outcome(&intruder, &hub.url, case.id, &doc.save());
    assert_eq!(
        outcome,
        PushOutcome::Refused {
            reason: Refusal::OutOfScope,
            detail: None,
        }
    );
    // A change claiming to build on a history the intruder does not hold.
    let mut doc = automerge::Automerge::new().with_actor(intruder.store.actor().clone());
    doc.transact::<_, _, automerge::AutomergeError>(|tx| {
        tx.put(automerge::ROOT, "notes", "x")?;
        Ok(())
    })
    .unwrap();
    let change = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    let outcome = push_outcome(&intruder, &hub.url, case.id, &change);
    assert!(
        !matches!(
            outcome,
            PushOutcome::Quarantined | PushOutcome::Accepted { .. }
        ),
        "{outcome:?}"
    );
    assert!(
        quarantine_list(&data).1.is_empty(),
        "nothing kept for review"
    );
    intruder.sync(&hub.url).unwrap();
    assert!(!intruder.has(case.id));

    // The holder edits the case offline, then loses C01: a real quarantine.
    let mut edited: ChildCase = holder.store.get(case.id).unwrap();
    edited.notes = NOTE.into();
    holder.store.update(&edited).unwrap();
    // And a photographed form: the reviewer is told of it, never of its caption.
    let form = holder
        .store
        .add_attachment(
            case.id,
            &vigie_core::NewAttachment {
                kind: vigie_core::AttachmentKind::Document,
                media_type: "application/pdf".into(),
                caption: "Consentement de la famille".into(),
            },
            &b"%PDF-".repeat(600)[..],
        )
        .unwrap();
    set_areas(&data, holder.user(), &[C02]);
    let summary = holder.sync(&hub.url).unwrap();
    assert_eq!(summary.quarantined, vec![case.id]);
    let (text, entries) = quarantine_list(&data);
    assert_eq!(entries.len(), 1, "{text}");
    let entry = &entries[0];
    assert_eq!(entry["record"], case.id.to_string());
    assert_eq!(entry["kind"], "child_case");
    assert_eq!(entry["state"], "applies");
    assert_eq!(entry["fields"], serde_json::json!(["notes"]));
    assert_eq!(
        entry["attachments_added"],
        serde_json::json!([{
            "id": form.id.to_string(), "kind": "document", "media_type": "application/pdf",
            "size": 3000
        }])
    );
    assert_eq!(entry["attachments_removed"], serde_json::json!([]));
    assert!(!text.contains("Consentement"), "{text}");
    assert_eq!(entry["area_before"]["community"], C01);
    assert_eq!(entry["area_after"]["community"], C01);
    assert_eq!(entry["user"], holder.user().to_string());
    assert_eq!(entry["device"], holder.token.device.to_string());
    assert_eq!(
        entry["authors"],
        serde_json::json!([{ "user": holder.user(), "device": holder.token.device }])
    );
    assert!(entry["received_ms"].as_i64().unwrap() > 0);
    // And as the other listings write time.
    let received = entry["received"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(received).is_ok(),
        "{received}"
    );
    for value in [NAME, "Akissi", NOTE, "séchoir"] {
        assert!(!text.contains(value), "the list shows a value: {text}");
    }
    let number = entry["entry"].as_i64().unwrap();

    // Accepted only by a supervisor whose areas hold the record.
    for by in [Some(other_district.user()), Some(intruder.user())] {
        let out = quarantine_accept(&data, number, by);
        assert!(!out.status.success(), "accepted by {by:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains(NAME));
    }
    assert_eq!(quarantine_list(&data).1.len(), 1, "the entry waits");
    let out = quarantine_accept(&data, number, Some(supervisor.user()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(quarantine_list(&data).1.is_empty());
    supervisor.sync(&hub.url).unwrap();
    assert_eq!(
        supervisor.store.get::<ChildCase>(case.id).unwrap().notes,
        NOTE
    );
    for d in [&mut holder, &mut intruder] {
        d.sync(&hub.url).unwrap();
        assert!(!d.has(case.id), "{} received the case", d.name);
    }

    // A quarantined change that moves the record: without a supervisor named, the record
    // stays in its community; the entry waits.
    set_areas(&data, holder.user(), &[C01]);
    holder.sync(&hub.url).unwrap();
    let mut moved: ChildCase = holder.store.get(case.id).unwrap();
    moved.area = area(C02);
    without_area_check(&mut holder.store, |s| s.update(&moved)).unwrap();
    set_areas(&data, holder.user(), &[C02]);
    assert_eq!(holder.sync(&hub.url).unwrap().quarantined, vec![case.id]);
    let (_, entries) = quarantine_list(&data);
    assert_eq!(entries[0]["area_after"]["community"], C02);
    let number = entries[0]["entry"].as_i64().unwrap();
    assert!(!quarantine_accept(&data, number, None).status.success());
    assert_eq!(quarantine_list(&data).1.len(), 1);
    intruder.sync(&hub.url).unwrap();
    assert!(!intruder.has(case.id));
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// Changes held for review take the workflow steps of the role of the user who made them,
/// whoever accepts them: a monitor's visit marked validated on a phone that never synced stays
/// refused, and a supervisor's own review, held after their region changed, is taken whichever
/// supervisor of the record's district accepts it.
#[test]
fn accepted_changes_take_only_their_authors_steps() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut supervisor = Device::enrol(dir.path(), &data, "sup", Role::Supervisor, &[DISTRICT], 1);
    let colleague = Device::enrol(dir.path(), &data, "sup-2", Role::Supervisor, &[DISTRICT], 2);
    let mut monitor = Device::enrol(dir.path(), &data, "m", Role::CommunityMonitor, &[C01], 3);
    let mut visitor = Device::enrol(dir.path(), &data, "v", Role::CommunityMonitor, &[C01], 4);
    let mut hub = Hub::start(&data);

    // A phone that never synced knows no role: the hub judges its writes.
    let mut forged = visit(area(C01), Uuid::now_v7(), monitor.user(), 2);
    forged.status = VisitStatus::Validated;
    forged.reviewed_by = Some(monitor.user());
    let forged = monitor.store.create(&forged).unwrap();
    set_areas(&data, monitor.user(), &[C02]);
    assert_eq!(monitor.sync(&hub.url).unwrap().quarantined, vec![forged.id]);
    let (text, entries) = quarantine_list(&data);
    assert_eq!(entries.len(), 1, "{text}");
    assert_eq!(entries[0]["state"], "breaks_a_rule", "{text}");
    let number = entries[0]["entry"].as_i64().unwrap();
    for by in [Some(supervisor.user()), None] {
        let out = quarantine_accept(&data, number, by);
        assert!(!out.status.success(), "accepted by {by:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("review a visit"), "{said}");
    }
    supervisor.sync(&hub.url).unwrap();
    assert!(!supervisor.has(forged.id));

    // A supervisor validates a visit offline, then their areas change.
    let submitted = visitor
        .store
        .create(&visit(area(C01), Uuid::now_v7(), visitor.user(), 3))
        .unwrap();
    visitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    supervisor
        .store
        .review_visit(submitted.id, Review::Validate)
        .unwrap();
    set_areas(&data, supervisor.user(), &[DISTRICT_2]);
    assert_eq!(
        supervisor.sync(&hub.url).unwrap().quarantined,
        vec![submitted.id]
    );
    accept_entry_of(&data, submitted.id, colleague.user());
    visitor.sync(&hub.url).unwrap();
    let validated: Visit = visitor.store.get(submitted.id).unwrap();
    assert_eq!(validated.status, VisitStatus::Validated);
    assert_eq!(validated.reviewed_by, Some(supervisor.user()));
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// Work recorded offline under a role its user has lost since (an inspector made a community
/// monitor, with a labour inspection unsent) is kept for review, not refused for ever and
/// wiped with the phone; accepted, it is taken as the step of the role they held. A step no
/// role of the user's ever took stays refused, and nothing of it is kept.
#[test]
fn work_done_under_a_role_since_lost_is_kept_for_review() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut supervisor = Device::enrol(dir.path(), &data, "sup", Role::Supervisor, &[DISTRICT], 1);
    let mut inspector = Device::enrol(dir.path(), &data, "insp", Role::Inspector, &[C01], 2);
    let mut monitor = Device::enrol(dir.path(), &data, "m", Role::CommunityMonitor, &[C01], 3);
    let mut hub = Hub::start(&data);
    for device in [&mut supervisor, &mut inspector, &mut monitor] {
        device.sync(&hub.url).unwrap();
    }
    let place = inspector
        .store
        .create(&workplace(area(C01), "Carrière de Bini"))
        .unwrap();
    let mut v = visit(area(C01), place.id, inspector.user(), 2);
    v.kind = VisitKind::LabourInspection;
    let inspection = inspector.store.create(&v).unwrap();
    set_role(&data, inspector.user(), "community-monitor");

    // The workplace a monitor records too: taken. The inspection: kept for review.
    let summary = inspector.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.quarantined, vec![inspection.id], "{summary:?}");
    assert!(!inspector.has(inspection.id));
    accept_entry_of(&data, inspection.id, supervisor.user());
    supervisor.sync(&hub.url).unwrap();
    let taken: Visit = supervisor.store.get(inspection.id).unwrap();
    assert_eq!(taken.kind, VisitKind::LabourInspection);
    assert_eq!(taken.visitor_id, inspector.user());

    // A monitor who never was an inspector: the same step, forged past the phone's check,
    // is refused and kept nowhere.
    let profile = monitor.store.user_profile().unwrap().unwrap();
    let as_inspector = vigie_core::rights::UserProfile {
        role: Role::Inspector,
        ..profile.clone()
    };
    monitor.store.debug_assume_profile(&as_inspector).unwrap();
    let mut v = visit(area(C01), place.id, monitor.user(), 3);
    v.kind = VisitKind::LabourInspection;
    let forged = monitor.store.create(&v).unwrap();
    monitor.store.debug_assume_profile(&profile).unwrap();
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!(
        summary.refused,
        vec![(forged.id, Refusal::StepNotAllowed)],
        "{summary:?}"
    );
    assert!(summary.quarantined.is_empty(), "{summary:?}");
    assert!(quarantine_list(&data).1.is_empty());
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A supervisor made inspector whose phone validated a visit offline: the step, an edit of a
/// record still in her areas, is kept for review rather than refused for ever; her phone keeps
/// the visit as the hub holds it meanwhile, and a colleague's acceptance takes her review.
#[test]
fn a_review_made_before_a_demotion_is_kept_for_review() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut demoted = Device::enrol(dir.path(), &data, "sup", Role::Supervisor, &[DISTRICT], 1);
    let colleague = Device::enrol(dir.path(), &data, "sup-2", Role::Supervisor, &[DISTRICT], 2);
    let mut monitor = Device::enrol(dir.path(), &data, "m", Role::CommunityMonitor, &[C01], 3);
    let mut hub = Hub::start(&data);
    let submitted = monitor
        .store
        .create(&visit(area(C01), Uuid::now_v7(), monitor.user(), 3))
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    demoted.sync(&hub.url).unwrap();
    demoted
        .store
        .review_visit(submitted.id, Review::Validate)
        .unwrap();
    set_role(&data, demoted.user(), "inspector");
    let summary = demoted.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.quarantined, vec![submitted.id], "{summary:?}");
    assert!(summary.removed.is_empty(), "{summary:?}");
    let held: Visit = demoted.store.get(submitted.id).unwrap();
    assert_eq!(held.status, VisitStatus::Submitted, "as the hub holds it");
    assert_eq!(demoted.store.hub_outbox_len().unwrap(), 0);

    assert_eq!(quarantine_list(&data).1.len(), 1);
    accept_entry_of(&data, submitted.id, colleague.user());
    let reviewer = demoted.user();
    for device in [&mut monitor, &mut demoted] {
        device.sync(&hub.url).unwrap();
        let validated: Visit = device.store.get(submitted.id).unwrap();
        assert_eq!(validated.status, VisitStatus::Validated);
        assert_eq!(validated.reviewed_by, Some(reviewer));
    }
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A verification a supervisor made offline before being made inspector, kept for review,
/// that a child found still working since stands in the way of: the review says so, not that
/// an inspector may not verify (the role held then would).
#[test]
fn a_former_roles_step_that_no_longer_applies_says_why() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    // A monitor first, then a supervisor, then an inspector: judged as the supervisor she was.
    let mut demoted = Device::enrol(dir.path(), &data, "sup", Role::CommunityMonitor, &[C01], 1);
    set_role(&data, demoted.user(), "supervisor");
    let colleague = Device::enrol(dir.path(), &data, "sup-2", Role::Supervisor, &[DISTRICT], 2);
    let mut monitor = Device::enrol(dir.path(), &data, "m", Role::CommunityMonitor, &[C01], 3);
    let mut hub = Hub::start(&data);
    let today = chrono::Local::now().date_naive();
    monitor.sync(&hub.url).unwrap();
    let case = monitor
        .store
        .create(&child(area(C01), "Awa Traoré", monitor.user()))
        .unwrap()
        .id;
    monitor
        .store
        .refer_case(
            case,
            Referral::new(
                ServiceKind::Education,
                "École",
                today - chrono::Days::new(10),
            ),
        )
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    demoted.sync(&hub.url).unwrap();
    demoted
        .store
        .transition_case(case, CaseStatus::ReceivingServices)
        .unwrap();
    demoted.sync(&hub.url).unwrap();
    demoted
        .store
        .transition_case_on(case, CaseStatus::Withdrawn, today - chrono::Days::new(5))
        .unwrap();
    set_role(&data, demoted.user(), "inspector");
    assert_eq!(demoted.sync(&hub.url).unwrap().quarantined, vec![case]);
    monitor.sync(&hub.url).unwrap();
    monitor
        .store
        .add_follow_up(
            case,
            FollowUp::new(today, FollowUpSituation::StillWorking, None),
        )
        .unwrap();
    assert!(monitor.sync(&hub.url).unwrap().refused.is_empty());

    let (text, entries) = quarantine_list(&data);
    assert_eq!(entries[0]["state"], "breaks_a_rule", "{text}");
    let out = quarantine_accept(
        &data,
        entries[0]["entry"].as_i64().unwrap(),
        Some(colleague.user()),
    );
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("only a supervisor"), "{said}");
    hub.stop();
}

/// Two entries of one phone for one case (its area taken away, given back, taken away again,
/// an edit before each): the first accepted, the second may still be rejected, and the case
/// keeps none of it. It was refused as "the record holds these changes already".
#[test]
fn an_entry_may_be_rejected_after_an_earlier_one_of_its_phone_was_accepted() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let supervisor = Device::enrol(dir.path(), &data, "sup", Role::Supervisor, &[DISTRICT], 1);
    let mut monitor = Device::enrol(dir.path(), &data, "m", Role::CommunityMonitor, &[C01], 2);
    let mut hub = Hub::start(&data);
    monitor.sync(&hub.url).unwrap();
    let mut case = child(area(C01), "Awa Traoré", monitor.user());
    case.hours_per_week = 25;
    let case = monitor.store.create(&case).unwrap().id;
    monitor.sync(&hub.url).unwrap();
    for (notes, hours) in [("Vu au marché.", 25), ("Revu au champ.", 7)] {
        let mut c: ChildCase = monitor.store.get(case).unwrap();
        c.notes = notes.into();
        c.hours_per_week = hours;
        monitor.store.update(&c).unwrap();
        set_areas(&data, monitor.user(), &[C02]);
        assert_eq!(monitor.sync(&hub.url).unwrap().quarantined, vec![case]);
        set_areas(&data, monitor.user(), &[C01]);
        monitor.sync(&hub.url).unwrap();
    }
    let (text, entries) = quarantine_list(&data);
    assert_eq!(entries.len(), 2, "{text}");
    let number = |i: usize| entries[i]["entry"].as_i64().unwrap();
    let out = quarantine_accept(&data, number(0), Some(supervisor.user()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = quarantine_review(&data, "reject", number(1), Some(supervisor.user()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(quarantine_list(&data).1.is_empty());
    monitor.sync(&hub.url).unwrap();
    let held: ChildCase = monitor.store.get(case).unwrap();
    assert_eq!(
        (held.notes.as_str(), held.hours_per_week),
        ("Vu au marché.", 25)
    );
    hub.stop();
}

/// Three `vigie erase` of one case at once (an operator, and a script run again after a
/// timeout): one erases it, the others say it was erased already; none takes the id for one
/// the hub never held, nor journals such an erasure (on PostgreSQL the record's row, gone
/// when the second looked, read as never held).
#[test]
fn erasures_of_one_case_at_once_are_one_erasure() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = plain_device(dir.path(), &data, "monitor", Role::CommunityMonitor, &[C01]);
    let supervisor = plain_device(dir.path(), &data, "sup", Role::Supervisor, &[DISTRICT]);
    let mut hub = Hub::start(&data);
    let cases: Vec<Uuid> = (0..3)
        .map(|n| {
            let name = format!("Enfant {n}");
            monitor
                .store
                .create(&child(area(C01), &name, monitor.user()))
                .unwrap()
                .id
        })
        .collect();
    monitor.sync(&hub.url).unwrap();
    let by = supervisor.user().to_string();
    for case in &cases {
        let record = case.to_string();
        let outs: Vec<std::process::Output> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..3)
                .map(|_| {
                    let (data, record, by) = (&data, &record, &by);
                    scope.spawn(move || {
                        admin(
                            data,
                            &["erase"],
                            &[
                                "--record",
                                record,
                                "--by",
                                by,
                                "--reason",
                                "consent_withdrawn",
                            ],
                        )
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let said: Vec<String> = outs
            .iter()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .collect();
        assert_eq!(
            said.iter().filter(|s| s.contains("erased case")).count(),
            1,
            "{said:?}"
        );
        assert_eq!(
            said.iter().filter(|s| s.contains("erased already")).count(),
            2,
            "{said:?}"
        );
        let journal = common::surface::admin_lines(&data, &["audit", "--record", &record]);
        assert!(
            journal.iter().all(|l| l["action"] != "erase_unheld"),
            "{journal:?}"
        );
        // Journaled once, by the command that erased it (the others found its entry).
        assert_eq!(
            journal
                .iter()
                .filter(|l| l["action"] == "case_erase")
                .count(),
            1,
            "{journal:?}"
        );
    }
    hub.stop();
}

/// Attack 8: an erased case comes back neither through the hub (an old copy pushed under a
/// fresh id) nor on a phone (a bundle carrying the old document under a fresh id).
#[test]
fn erasure_is_not_undone_under_another_id() {
    const NAME: &str = "Ténin Ouattara";
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = plain_device(dir.path(), &data, "monitor", Role::CommunityMonitor, &[C01]);
    let mut keeper = plain_device(dir.path(), &data, "keeper", Role::CommunityMonitor, &[C01]);
    let mut supervisor = plain_device(dir.path(), &data, "sup", Role::Supervisor, &[DISTRICT]);
    let mut hub = Hub::start(&data);
    let case = monitor
        .store
        .create(&child(area(C01), NAME, monitor.user()))
        .unwrap();
    for d in [&mut monitor, &mut keeper, &mut supervisor] {
        d.sync(&hub.url).unwrap();
    }
    let old = keeper.store.export_document(case.id).unwrap();
    // Before the erasure, its author pushes a copy under another id: refused as a copy.
    let copied = Uuid::now_v7();
    assert!(matches!(
        push_outcome(&monitor, &hub.url, copied, &old),
        PushOutcome::Refused {
            reason: Refusal::Damaged,
            ..
        }
    ));
    erase(&data, case.id, supervisor.user());
    monitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    assert!(!monitor.has(case.id) && !supervisor.has(case.id));

    // The keeper pushes its old copy under the erased id, then under fresh ids.
    assert_eq!(
        push_outcome(&keeper, &hub.url, case.id, &old),
        PushOutcome::Erased
    );
    let fresh = Uuid::now_v7();
    assert_eq!(
        push_outcome(&keeper, &hub.url, fresh, &old),
        PushOutcome::Erased
    );
    // ... with an edit on top, as the keeper's own.
    let mut edited = automerge::Automerge::load(&old)
        .unwrap()
        .with_actor(keeper.store.actor().clone());
    edited
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(automerge::ROOT, "guardian", "Oncle")?;
            Ok(())
        })
        .unwrap();
    let again = Uuid::now_v7();
    assert_eq!(
        push_outcome(&keeper, &hub.url, again, &edited.save()),
        PushOutcome::Erased
    );
    // Merged into the keeper's store under a fresh id, then synced: the hub refuses it and
    // the keeper drops it.
    assert!(keeper.store.merge_document(fresh, &old).unwrap());
    let summary = keeper.sync(&hub.url).unwrap();
    assert!(summary.erased.contains(&fresh), "{summary:?}");
    assert!(!keeper.has(fresh));
    supervisor.sync(&hub.url).unwrap();
    for id in [case.id, fresh, again, copied] {
        assert!(!supervisor.has(id));
    }
    assert!(
        supervisor
            .store
            .search_names("Ténin", 10)
            .unwrap()
            .is_empty()
    );

    // On the phone that dropped the case: a bundle with the old document under a fresh id,
    // signed and sealed by a device the hub certified (the keeper, holding an old copy).
    let bundle = keeper
        .store
        .seal_bundle(
            vec![(fresh, old.clone())],
            &[vigie_core::sync::Recipient::Device(
                monitor.store.device_id(),
            )],
        )
        .unwrap();
    monitor.store.import_bundle(&bundle).unwrap();
    assert!(!monitor.has(fresh));
    assert!(monitor.store.search_names("Ténin", 10).unwrap().is_empty());
    hub.stop();
    for d in [&monitor, &supervisor, &keeper] {
        assert!(
            store_files_holding(&d.store, NAME).is_empty(),
            "{} still holds the name",
            d.name
        );
    }
    let hub_store = hub.open_store();
    for id in [case.id, fresh, again, copied] {
        assert!(hub_store.kind_of(id).is_err());
    }
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// Attack 9: tombstones go only to devices whose scope held the record, and push outcomes
/// say the same for any id a device cannot see: absent, a case elsewhere, a record of a kind
/// its role does not work with, an erased case.
#[test]
fn nothing_leaks_outside_the_scope() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut supervisor = Device::enrol(dir.path(), &data, "sup", Role::Supervisor, &[REGION], 1);
    let mut c01 = Device::enrol(dir.path(), &data, "c01", Role::CommunityMonitor, &[C01], 2);
    let mut probe = Device::enrol(
        dir.path(),
        &data,
        "probe",
        Role::CommunityMonitor,
        &[C07],
        3,
    );
    let mut hub = Hub::start(&data);
    let elsewhere = supervisor
        .store
        .create(&child(area(C01), "Ailleurs", supervisor.user()))
        .unwrap()
        .id;
    let workplace = supervisor
        .store
        // Outside the probe's community (monitors receive their communities' workplaces).
        .create(&workplace(area(C01), "Carrière de Soubré"))
        .unwrap()
        .id;
    let erased_here = supervisor
        .store
        .create(&child(area(C07), "Effacé ici", supervisor.user()))
        .unwrap()
        .id;
    let erased_there = supervisor
        .store
        .create(&child(area(C01), "Effacé là-bas", supervisor.user()))
        .unwrap()
        .id;
    supervisor.sync(&hub.url).unwrap();
    c01.sync(&hub.url).unwrap();
    probe.sync(&hub.url).unwrap();
    erase(&data, erased_there, supervisor.user());
    erase(&data, erased_here, supervisor.user());

    // Tombstones: each device hears of the erasure in its own scope only.
    let summary = probe.sync(&hub.url).unwrap();
    assert_eq!(summary.erased, vec![erased_here]);
    let summary = c01.sync(&hub.url).unwrap();
    assert_eq!(summary.erased, vec![erased_there]);
    let mut newcomer = Device::enrol(dir.path(), &data, "new", Role::CommunityMonitor, &[C07], 4);
    let (response, _) = exchange(
        &newcomer,
        &hub.url,
        &request(&newcomer, Vec::new(), Vec::new(), 1 << 18),
    );
    assert_eq!(response.erased, vec![erased_here]);
    assert_eq!(response.tombstones.len(), 1);
    assert!(!response.tombstones[0].roots.is_empty());
    newcomer.sync(&hub.url).unwrap();

    // The same bytes under each id the probe cannot see.
    let own = create_record_doc(&mut probe, C07, "À moi");
    let foreign = create_record_doc(&mut probe, C01, "Pas à moi");
    for bytes in [
        Vec::new(),
        b"\x85\x6f\x4a\x83 not a change".to_vec(),
        own,
        foreign,
    ] {
        // An id nothing was stored under (a valid case pushed under it is stored), then
        // another, whose answer the ids it cannot see must give (a copy of what the first
        // stored is refused under any other id).
        push_outcome(&probe, &hub.url, Uuid::now_v7(), &bytes);
        let baseline = match push_outcome(&probe, &hub.url, Uuid::now_v7(), &bytes) {
            PushOutcome::Accepted { .. } => PushOutcome::Refused {
                reason: Refusal::OutOfScope,
                detail: None,
            },
            other => other,
        };
        for (what, id) in [
            ("a case elsewhere", elsewhere),
            ("a workplace", workplace),
            ("an erased case of its scope", erased_here),
            ("an erased case elsewhere", erased_there),
        ] {
            assert_eq!(
                push_outcome(&probe, &hub.url, id, &bytes),
                baseline,
                "{what}, {} bytes",
                bytes.len()
            );
        }
    }
    hub.stop();
    let hub_store = hub.open_store();
    assert_eq!(hub_store.kind_of(workplace).unwrap(), RecordKind::Workplace);
    assert!(hub_store.kind_of(erased_here).is_err());
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A case the probe writes in its own store: its document, under a new id.
fn create_record_doc(d: &mut Device, community: &str, name: &str) -> Vec<u8> {
    let user = d.user();
    let id = without_area_check(&mut d.store, |s| {
        s.create(&child(area(community), name, user))
    })
    .unwrap()
    .id;
    let doc = d.store.export_document(id).unwrap();
    // Not pushed by a later sync of this test: only the bytes are used.
    doc
}

/// Issue 12: when a monitor's areas change, the cases of the area she lost leave her phone at
/// her next sync, those she had not touched too, and name search no longer finds them; her
/// pending edit is pushed first and kept for review.
#[test]
fn a_lost_area_leaves_the_phone() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = plain_device(dir.path(), &data, "monitor", Role::CommunityMonitor, &[C01]);
    let mut colleague = plain_device(
        dir.path(),
        &data,
        "colleague",
        Role::CommunityMonitor,
        &[C01],
    );
    let mut hub = Hub::start(&data);
    let touched = monitor
        .store
        .create(&child(area(C01), "Mariam Diabaté", monitor.user()))
        .unwrap()
        .id;
    let others: Vec<Uuid> = ["Nafissatou Sow", "Adjoa Kouadio"]
        .iter()
        .map(|name| {
            colleague
                .store
                .create(&child(area(C01), name, colleague.user()))
                .unwrap()
                .id
        })
        .collect();
    colleague.sync(&hub.url).unwrap();
    monitor.sync(&hub.url).unwrap();
    assert!(others.iter().all(|id| monitor.has(*id)));

    let mut edit: ChildCase = monitor.store.get(touched).unwrap();
    edit.school = SchoolStatus::DroppedOut;
    monitor.store.update(&edit).unwrap();
    set_areas(&data, monitor.user(), &[C02]);
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!(summary.quarantined, vec![touched]);
    let mut left = summary.left_scope.clone();
    left.sort();
    let mut expected = others.clone();
    expected.sort();
    assert_eq!(left, expected);
    assert_eq!(summary.pending, 0);
    for _ in 0..2 {
        monitor.sync(&hub.url).unwrap();
    }
    for name in ["Mariam", "Nafissatou", "Adjoa"] {
        assert!(
            monitor.store.search_names(name, 10).unwrap().is_empty(),
            "{name} is still found"
        );
    }
    hub.stop();
    for name in ["Mariam Diabaté", "Nafissatou Sow", "Adjoa Kouadio"] {
        assert!(
            store_files_holding(&monitor.store, name).is_empty(),
            "{name}"
        );
    }
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// Issue 12: a deactivated user's device syncs with no scope: what it holds leaves it, after
/// its pending changes are pushed (kept for review). On both backends, through `vigie user
/// deactivate`.
#[test]
fn a_deactivated_users_device_keeps_nothing() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = plain_device(dir.path(), &data, "monitor", Role::CommunityMonitor, &[C01]);
    let mut hub = Hub::start(&data);
    let synced = monitor
        .store
        .create(&child(area(C01), "Yao Kouamé", monitor.user()))
        .unwrap()
        .id;
    let edited = monitor
        .store
        .create(&child(area(C01), "Ama Yao", monitor.user()))
        .unwrap()
        .id;
    monitor.sync(&hub.url).unwrap();
    let mut c: ChildCase = monitor.store.get(edited).unwrap();
    c.night_work = !c.night_work;
    monitor.store.update(&c).unwrap();
    // A child identified offline, never synced: the hub has nothing of it yet.
    let made_offline = monitor
        .store
        .create(&child(area(C01), "Adjoa Kra", monitor.user()))
        .unwrap()
        .id;
    // And one filed in a community the monitor never worked in.
    let user = monitor.user();
    let elsewhere = without_area_check(&mut monitor.store, |s| {
        s.create(&child(area(C02), "Kouassi Ehui", user))
    })
    .unwrap()
    .id;

    let out = common::surface::admin(
        &data,
        &["user", "deactivate", "--user", &monitor.user().to_string()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The edit and the new case are kept for review; nothing stays on the phone.
    let mut summary = monitor.sync(&hub.url).unwrap();
    summary.quarantined.sort();
    let mut kept = vec![edited, made_offline, elsewhere];
    kept.sort();
    assert_eq!(summary.quarantined, kept, "{summary:?}");
    assert_eq!(summary.left_scope, vec![synced], "{summary:?}");
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.pending, 0);
    assert_eq!(monitor.store.count(RecordKind::ChildCase).unwrap(), 0);
    hub.stop();
    assert!(store_files_holding(&monitor.store, "Yao Kouamé").is_empty());
    assert!(store_files_holding(&monitor.store, "Adjoa Kra").is_empty());
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());

    // A supervisor of the area accepts the new case: it is on the hub, filed where it was.
    let supervisor = add_user(&data, "Superviseure", Role::Supervisor, &[DISTRICT]);
    let entries = common::surface::admin_lines(&data, &["quarantine", "list"]);
    let entry = entries
        .iter()
        .find(|e| e["record"] == made_offline.to_string())
        .expect("the new case is listed");
    assert_eq!(entry["state"], "applies", "{entry:?}");
    assert_eq!(entry["kind"], "child_case", "{entry:?}");
    let number = entry["entry"].as_i64().unwrap().to_string();
    let by = supervisor.to_string();
    // The case filed where the monitor never worked breaks a rule: no supervisor takes it.
    let stray = entries
        .iter()
        .find(|e| e["record"] == elsewhere.to_string())
        .expect("the stray case is listed");
    assert_eq!(stray["state"], "breaks_a_rule", "{stray:?}");
    let stray = stray["entry"].as_i64().unwrap().to_string();
    let error = common::surface::admin_error(
        &data,
        &["quarantine", "accept", "--entry", &stray, "--by", &by],
    );
    assert!(error.contains("never worked"), "{error}");
    let accepted = common::surface::admin(
        &data,
        &["quarantine", "accept", "--entry", &number, "--by", &by],
    );
    assert!(accepted.status.success());
    // Its monitor deactivated, the case is no one's to follow up: said, with what to do.
    let said = String::from_utf8_lossy(&accepted.stderr);
    assert!(
        said.contains("who is deactivated") && said.contains(&user.to_string()),
        "{said}"
    );
    let hub = Hub::start(&data);
    let mut reviewer = plain_device(dir.path(), &data, "reviewer", Role::Supervisor, &[DISTRICT]);
    reviewer.sync(&hub.url).unwrap();
    let accepted: ChildCase = reviewer.store.get(made_offline).unwrap();
    assert_eq!(accepted.name, "Adjoa Kra");
}

/// A user's second phone, holding a case their first phone made and passed to it, lets go of
/// it once the user lost the case's area: nothing of its own waits for the hub, and the first
/// phone carries the case (here into review). It does not keep the child's name for ever,
/// "waiting" for a phone that already synced.
#[test]
fn a_second_phone_lets_go_of_a_relayed_case_its_user_may_no_longer_hold() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut first = Device::enrol(
        dir.path(),
        &data,
        "first",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    let token = enrol(&data, first.user());
    let mut second = Device::open(
        dir.path(),
        "second",
        &token,
        Role::CommunityMonitor,
        &[C01],
        2,
    );
    let hub = Hub::start(&data);
    // Each phone knows the other's certificate once both synced.
    first.sync(&hub.url).unwrap();
    second.sync(&hub.url).unwrap();
    first.sync(&hub.url).unwrap();
    let case = first
        .store
        .create(&child(area(C01), "Mariam Koné", first.user()))
        .unwrap();
    vigie_core::sync::sync_peers(
        &mut first.store,
        &mut second.store,
        &vigie_core::sync::PeerScope::default(),
        64 * 1024,
    )
    .unwrap();
    assert!(second.has(case.id));
    set_areas(&data, first.user(), &[C02]);
    second.sync(&hub.url).unwrap();
    assert_eq!(first.sync(&hub.url).unwrap().quarantined, vec![case.id]);
    let summary = second.sync(&hub.url).unwrap();
    assert!(summary.awaiting_author.is_empty(), "{summary:?}");
    assert_eq!(summary.pending, 0, "{summary:?}");
    assert!(!second.has(case.id), "the second phone keeps the case");
    assert!(store_files_holding(&second.store, "Mariam Koné").is_empty());
}

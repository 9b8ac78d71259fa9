//! The bounds on a record's document (`DocumentLimits`) wherever bytes become a document: a
//! device's pull, a peer message, a bundle, a merge, the hub's push, and a local write. Every
//! hostile document is refused with the bound it breaks and nothing stored, on a thread with a
//! 1 MiB stack; honest documents near the bounds pass.

use crate::common;

use chrono::NaiveDate;
use common::hostile::{self, on_small_stack};
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::sync::wire::{self, PeerMessage, PullEntry, PushEntry, SyncRequest, SyncResponse};
use vigie_core::sync::{HubLimits, Principal, Recipient, Refusal, SyncOptions};
use vigie_core::*;

fn area() -> Area {
    Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01")
}

fn child(by: Uuid) -> ChildCase {
    let mut c = ChildCase::new(
        "CASE-1",
        "Aya Kouamé",
        Sex::Female,
        area(),
        NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
        by,
    );
    c.estimated_age = Some(12);
    c.hours_per_week = 20;
    c
}

fn store(dir: &TempDir, name: &str) -> Store {
    common::plain_store(dir.path(), name)
}

/// An honest case on a device: its id, its document, the device's actor and its user.
fn honest(dir: &TempDir) -> (Uuid, Vec<u8>, automerge::ActorId, Uuid) {
    let mut device = store(dir, "sender.db");
    let case = device.create(&child(device.user_id())).unwrap();
    (
        case.id,
        device.export_document(case.id).unwrap(),
        device.actor().clone(),
        device.user_id(),
    )
}

fn over(error: &Error) -> Option<DocumentLimit> {
    match error {
        Error::OverLimit { limit, .. } => Some(*limit),
        _ => None,
    }
}

#[test]
fn hostile_documents_are_refused_with_their_bound_on_every_device_path() {
    let dir = TempDir::new().unwrap();
    let (id, honest, actor, sender_user) = honest(&dir);
    let path = dir.path().to_path_buf();
    on_small_stack(move || {
        let mut victim = Store::open(StoreConfig::new(
            path.join("victim.db"),
            Encryption::Unencrypted,
            Uuid::now_v7(),
        ))
        .unwrap();
        // A certified device sends them: a peer and a bundle are checked before any document
        // is read, so a hostile document reaches the bounds only from a device the hub knows.
        let mut hub = common::hub_store(&path.join("hub.db"));
        let mut sender = Store::open(StoreConfig::new(
            path.join("sender.db"),
            Encryption::Unencrypted,
            sender_user,
        ))
        .unwrap();
        let victim_is = common::principal_of(&victim, Role::Supervisor, &["CI-R1"]);
        // The sender's own copy of the honest case stays its own: filed outside the sender's
        // areas, the hub refuses it, so that the victim never holds it.
        let sender_is = common::principal_of(&sender, Role::Supervisor, &["CI-R2"]);
        common::enrol_all(
            &mut hub,
            &mut [(&mut victim, &victim_is), (&mut sender, &sender_is)],
        );
        for h in hostile::all(&honest, &actor) {
            // A merge (hand-over, tools).
            let e = victim.merge_document(id, &h.bytes).unwrap_err();
            assert_eq!(over(&e), Some(h.limit), "{}: {e}", h.name);
            assert!(e.to_string().contains(h.limit.as_str()), "{}: {e}", h.name);

            // A pull from the hub: the record fails, the rest of the response applies.
            let response = SyncResponse {
                acks: Vec::new(),
                records: vec![PullEntry {
                    id,
                    changes: h.bytes.clone(),
                    hub_heads: Vec::new(),
                }],
                cursor: Default::default(),
                more: false,
                erased: Vec::new(),
                receipt: 0,
                tombstones: Vec::new(),
                left_scope: Vec::new(),
                profile: None,
                identity: None,
                attachment_limits: None,
                headless_documents: false,
            };
            let report = victim
                .hub_sync_apply(&wire::encode_response(&response), &SyncOptions::default())
                .unwrap();
            assert_eq!(report.received, 0, "{}", h.name);
            assert_eq!(report.failed.len(), 1, "{}", h.name);
            assert!(
                report.failed[0].1.contains(h.limit.as_str()),
                "{}: {:?}",
                h.name,
                report.failed
            );

            // A bundle: refused whole, naming the record and the bound.
            let bundle = sender
                .seal_bundle(
                    vec![(id, h.bytes.clone())],
                    &[Recipient::Device(victim.device_id())],
                )
                .unwrap();
            match victim.import_bundle(&bundle) {
                Err(Error::DamagedBundle { record, reason }) => {
                    assert_eq!(record, Some(id), "{}", h.name);
                    assert!(reason.contains(h.limit.as_str()), "{}: {reason}", h.name);
                }
                other => panic!("{}: bundle imported: {other:?}", h.name),
            }

            // A peer's message.
            let message = PeerMessage {
                reconcile: None,
                documents: vec![(id, h.bytes.clone())],
                wanted: Vec::new(),
                done: true,
            };
            let (mut from, mut session, _) = common::handshake(&mut sender, &mut victim);
            let e = victim
                .peer_step(&mut session, &from.seal(&message).unwrap())
                .unwrap_err();
            if h.bytes.len() > 1024 * 1024 {
                // Over the bound of a peer message before any document is read.
                assert!(matches!(e, Error::Protocol(_)), "{}: {e}", h.name);
            } else {
                assert_eq!(over(&e), Some(h.limit), "{}: {e}", h.name);
            }

            assert!(
                victim.kind_of(id).is_err(),
                "{}: nothing of it is stored",
                h.name
            );
        }
        assert_eq!(victim.count(RecordKind::ChildCase).unwrap(), 0);
        assert!(victim.integrity_check().unwrap());
    });
}

#[test]
fn the_hub_refuses_hostile_pushes_one_by_one_and_keeps_serving() {
    let dir = TempDir::new().unwrap();
    let mut device = store(&dir, "device.db");
    let mut hub = common::hub_store(&dir.path().join("hub.db"));
    let principal = Principal {
        device: device.device_id(),
        user: device.user_id(),
        role: Role::Supervisor,
        areas: ["CI-R1".to_string()].into(),
    };
    let honest_case = device.create(&child(device.user_id())).unwrap();
    let honest_bytes = device.export_document(honest_case.id).unwrap();
    let actor = device.actor().clone();
    let hostile = hostile::all(&honest_bytes, &actor);
    let mut push: Vec<PushEntry> = hostile
        .iter()
        .map(|h| PushEntry {
            id: Uuid::now_v7(),
            heads: Vec::new(),
            changes: h.bytes.clone(),
        })
        .collect();
    push.push(PushEntry {
        id: honest_case.id,
        heads: Vec::new(),
        changes: honest_bytes,
    });
    let request = SyncRequest {
        actor: actor.to_bytes().to_vec(),
        cursor: None,
        push: push.clone(),
        refetch: Vec::new(),
        max_response_bytes: 256 * 1024,
        receipt: 0,
        identity: None,
        headless_documents: false,
    };
    let response = on_small_stack(move || {
        let response = hub
            .hub_handle(
                &principal,
                &wire::encode_request(&request),
                &HubLimits::default(),
            )
            .unwrap();
        (response, hub)
    });
    let (response, hub) = response;
    let response = wire::decode_response(&response, 1 << 26).unwrap();
    for (h, entry) in hostile.iter().zip(&push) {
        let ack = response.acks.iter().find(|a| a.id == entry.id).unwrap();
        assert_eq!(
            ack.outcome,
            wire::PushOutcome::Refused {
                reason: Refusal::OverLimit { limit: h.limit }
            },
            "{}",
            h.name
        );
        assert!(hub.kind_of(entry.id).is_err(), "{}", h.name);
    }
    assert!(hub.get::<ChildCase>(honest_case.id).is_ok());
}

#[test]
fn a_nesting_deleted_from_the_state_still_bounds_the_history() {
    let dir = TempDir::new().unwrap();
    let (id, honest, actor, _) = honest(&dir);
    let bytes = hostile::deep_then_deleted(&honest, &actor, 2_000, None);
    let path = dir.path().to_path_buf();
    on_small_stack(move || {
        let mut victim = Store::open(StoreConfig::new(
            path.join("victim.db"),
            Encryption::Unencrypted,
            Uuid::now_v7(),
        ))
        .unwrap();
        // Its state is an honest case: it merges and reads.
        victim.merge_document(id, &bytes).unwrap();
        assert_eq!(victim.get::<ChildCase>(id).unwrap().name, "Aya Kouamé");
        // Its history is not diffed.
        let e = victim.history(id).unwrap_err();
        assert_eq!(over(&e), Some(DocumentLimit::Depth), "{e}");
    });
}

#[test]
fn local_writes_over_the_text_bound_name_the_field() {
    let dir = TempDir::new().unwrap();
    let mut s = store(&dir, "device.db");
    let max = DocumentLimits::STANDARD.max_text_chars;
    let mut c = child(s.user_id());
    c.notes = "é".repeat(max + 1);
    match s.create(&c) {
        Err(Error::Validation(v)) => {
            assert_eq!(v.field, "notes");
            assert!(v.rule.contains(&max.to_string()), "{}", v.rule);
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    // At the bound, the text is kept whole.
    c.notes = "é".repeat(max);
    let stored = s.create(&c).unwrap();
    assert_eq!(
        s.get::<ChildCase>(stored.id).unwrap().notes.chars().count(),
        max
    );
    let mut edited = stored.clone();
    edited
        .referrals
        .insert(Uuid::now_v7(), referral("x".repeat(max + 1)));
    match s.update(&edited) {
        Err(Error::Validation(v)) => assert!(
            v.field.starts_with("referrals.") && v.field.ends_with(".outcome"),
            "{}",
            v.field
        ),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn a_local_write_that_would_not_load_again_is_refused_and_the_record_stays_readable() {
    let dir = TempDir::new().unwrap();
    let mut s = store(&dir, "device.db");
    let max = DocumentLimits::STANDARD.max_text_chars;
    // A key is text the document holds: a buyer's name over the bound names its field, and
    // not the name.
    let mut w = Workplace::new("Atelier", "other", Formality::Informal, area());
    w.buyers.insert("B".repeat(max + 1));
    match s.create(&w) {
        Err(Error::Validation(v)) => assert_eq!(v.field, "buyers"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    // More operations than a load lets through: refused, nothing stored.
    let mut w = Workplace::new("Atelier", "other", Formality::Informal, area());
    let ops = DocumentLimits::STANDARD.max_operations as usize;
    w.buyers = (0..ops).map(|i| format!("{i}")).collect();
    match s.create(&w) {
        Err(Error::Validation(v)) => {
            assert_eq!(v.field, "record");
            assert!(v.rule.contains("number of operations"), "{}", v.rule);
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert!(s.all_of::<Workplace>().unwrap().is_empty());
    // The same through an edit: the record keeps its last state, and reads.
    let stored = s
        .create(&Workplace::new(
            "Atelier",
            "other",
            Formality::Informal,
            area(),
        ))
        .unwrap();
    let mut edited = stored.clone();
    edited.buyers = w.buyers.clone();
    assert!(matches!(s.update(&edited), Err(Error::Validation(_))));
    let read: Workplace = s.get(stored.id).unwrap();
    assert!(read.buyers.is_empty());
}

#[test]
fn two_histories_too_large_together_are_refused_for_that_record_alone() {
    let dir = TempDir::new().unwrap();
    let mut hub = common::hub_store(&dir.path().join("hub.db"));
    let mut a = store(&dir, "a.db");
    let mut b = store(&dir, "b.db");
    let a_is = common::principal_of(&a, Role::Supervisor, &["CI-R1"]);
    let b_is = common::principal_of(&b, Role::Supervisor, &["CI-R1"]);
    common::enrol_all(&mut hub, &mut [(&mut a, &a_is), (&mut b, &b_is)]);
    let w = a
        .create(&Workplace::new(
            "Atelier",
            "other",
            Formality::Informal,
            area(),
        ))
        .unwrap();
    common::sync(&mut a, &mut hub, &a_is);
    common::sync(&mut b, &mut hub, &b_is);
    // Each device's edit is within the bounds; both together pass the bound on operations.
    let half = DocumentLimits::STANDARD.max_operations as usize * 6 / 10;
    for (device, prefix) in [(&mut a, "a"), (&mut b, "b")] {
        let mut edited: Workplace = device.get(w.id).unwrap();
        edited.buyers = (0..half).map(|i| format!("{prefix}{i}")).collect();
        device.update(&edited).unwrap();
    }
    let other = b.create(&child(b.user_id())).unwrap();
    assert!(common::sync(&mut a, &mut hub, &a_is).refused.is_empty());
    // The second to arrive is refused for that record, with the bound (its edit is one message
    // alone); the device's other records go in the same session.
    let summary = common::sync(&mut b, &mut hub, &b_is);
    assert_eq!(
        summary.refused,
        vec![(
            w.id,
            Refusal::OverLimit {
                limit: DocumentLimit::Operations
            }
        )]
    );
    assert!(hub.get::<ChildCase>(other.id).is_ok(), "{summary:?}");
    assert_eq!(hub.get::<Workplace>(w.id).unwrap().buyers.len(), half);
}

fn referral(outcome: String) -> Referral {
    Referral {
        service: ServiceKind::Education,
        provider: "École de Soubré".into(),
        date: NaiveDate::from_ymd_opt(2026, 4, 2).unwrap(),
        outcome,
    }
}

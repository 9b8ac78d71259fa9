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
                reoffer: false,
                incarnation: None,
                push_retry_in_seconds: None,
                hub_now_ms: None,
                waiting: None,
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
            // A peer message takes a megabyte of documents and the largest record.
            if h.bytes.len() > (1 << 20) + 2 * 1024 * 1024 + 256 * 1024 {
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
        incarnation: None,
        device_clock: None,
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
                reason: Refusal::OverLimit { limit: h.limit },
                detail: None,
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
    // More operations than a load lets through, each collection within its bound (a text is
    // an operation a character): refused, nothing stored.
    let over = case_of_many_operations(s.user_id());
    match s.create(&over) {
        Err(Error::Validation(v)) => {
            assert_eq!(v.field, "record");
            assert!(v.rule.contains("number of operations"), "{}", v.rule);
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert!(s.all_of::<ChildCase>().unwrap().is_empty());
    // The same through an edit: the record keeps its last state, and reads.
    let stored = s.create(&child(s.user_id())).unwrap();
    let mut edited = stored.clone();
    edited.followups = over.followups.clone();
    match s.update(&edited) {
        Err(Error::Validation(v)) => assert_eq!(v.field, "record"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    let read: ChildCase = s.get(stored.id).unwrap();
    assert!(read.followups.is_empty());
}

/// A case followed for a childhood: its 1,000 follow-ups each with a note of a few lines
/// (every character an operation for good), its summary rewritten again and again, by the
/// phones that follow one another over those years (one device makes at most a quarter of a
/// record's operations). Every device and the hub take it, and a colleague's phone receives it
/// and edits it.
#[test]
fn a_case_followed_for_a_childhood_stays_editable_and_travels() {
    let dir = TempDir::new().unwrap();
    let mut hub = common::hub_store(&dir.path().join("hub.db"));
    let mut phones: Vec<(Store, Principal)> = (0..4)
        .map(|i| {
            let phone = store(&dir, &format!("phone{i}.db"));
            let is = common::principal_of(&phone, Role::CommunityMonitor, &["CI-R1-D1-C01"]);
            (phone, is)
        })
        .collect();
    let mut colleague = store(&dir, "colleague.db");
    let colleague_is = common::principal_of(&colleague, Role::CommunityMonitor, &["CI-R1-D1-C01"]);
    {
        let mut all: Vec<(&mut Store, &Principal)> =
            phones.iter_mut().map(|(phone, is)| (phone, &*is)).collect();
        all.push((&mut colleague, &colleague_is));
        common::enrol_all(&mut hub, &mut all);
    }
    let id = {
        let (first, is) = &mut phones[0];
        let case = first.create(&child(first.user_id())).unwrap();
        common::sync(first, &mut hub, is);
        case.id
    };
    let note: String = "Vu à l'école ; la mère dit qu'il aide au champ le samedi matin. "
        .chars()
        .cycle()
        .take(250)
        .collect();
    let on = NaiveDate::from_ymd_opt(2026, 4, 2).unwrap();
    // Written in a few saves a phone (one save a visit would take the test minutes): the
    // operations are the same.
    let max = vigie_core::domain::validation::MAX_FOLLOWUPS;
    for (years, (phone, is)) in phones.iter_mut().enumerate() {
        common::sync(phone, &mut hub, is);
        let mut case: ChildCase = phone.get(id).unwrap();
        for _ in 0..max / 4 {
            let mut f = FollowUp::new(on, FollowUpSituation::InSchool, None);
            f.notes = note.clone();
            case.followups.insert(Uuid::now_v7(), f);
        }
        case.notes = format!("Synthèse {years} : ").repeat(300);
        phone.update(&case).unwrap();
        let summary = common::sync(phone, &mut hub, is);
        assert!(summary.refused.is_empty(), "{summary:?}");
    }
    common::sync(&mut colleague, &mut hub, &colleague_is);
    let mut received: ChildCase = colleague.get(id).unwrap();
    assert_eq!(received.followups.len(), max);
    received.hours_per_week = 6;
    colleague.update(&received).unwrap();
    let summary = common::sync(&mut colleague, &mut hub, &colleague_is);
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(hub.get::<ChildCase>(id).unwrap().hours_per_week, 6);
}

/// A case whose follow-ups' notes together pass the bound on operations, with no more
/// follow-ups than a case may hold.
fn case_of_many_operations(by: Uuid) -> ChildCase {
    let mut c = child(by);
    let per_note = DocumentLimits::STANDARD.max_operations as usize
        / vigie_core::domain::validation::MAX_FOLLOWUPS
        + 1;
    let on = NaiveDate::from_ymd_opt(2026, 4, 2).unwrap();
    for _ in 0..vigie_core::domain::validation::MAX_FOLLOWUPS {
        let mut f = FollowUp::new(on, FollowUpSituation::InSchool, None);
        f.notes = "n".repeat(per_note);
        c.followups.insert(Uuid::now_v7(), f);
    }
    c
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
    // Each device's edits are within the bounds; both together pass the bound on the
    // document's bytes (each round puts a new list in place of the last; one device its
    // buyers, the other its suppliers, so that the record together stays valid). The first
    // syncs at each round, up to some 65% of what a record may hold; the second works offline,
    // up to some 42% (its changes, sent at once, are twice its document's bytes: within what
    // one message may carry).
    let names = vigie_core::domain::validation::MAX_BUYERS_OR_SUPPLIERS;
    let half = names;
    let raw_size = |device: &Store| {
        automerge::Automerge::load(&device.export_document(w.id).unwrap())
            .unwrap()
            .save_nocompress()
            .len()
    };
    let max = DocumentLimits::STANDARD.max_bytes;
    for (device, buyers, share) in [(&mut a, true, 65), (&mut b, false, 42)] {
        let mut round = 0;
        // Measured every few rounds: each measure loads the whole history.
        while raw_size(device) < max * share / 100 {
            for _ in 0..2 {
                let mut edited: Workplace = device.get(w.id).unwrap();
                // Long names: fewer rounds reach the bound.
                let list = (0..names)
                    .map(|i| format!("Coopérative agricole du village {round}-{i}"))
                    .collect();
                match buyers {
                    true => edited.buyers = list,
                    false => edited.suppliers = list,
                }
                device.update(&edited).unwrap();
                round += 1;
            }
            if buyers {
                let first = common::sync(device, &mut hub, &a_is);
                assert!(first.refused.is_empty(), "{first:?}");
            }
        }
    }
    let other = b.create(&child(b.user_id())).unwrap();
    // The second to arrive is refused for that record, with the bound (its edit is one message
    // alone); the device's other records go in the same session.
    let summary = common::sync(&mut b, &mut hub, &b_is);
    assert_eq!(
        summary.refused,
        vec![(
            w.id,
            Refusal::OverLimit {
                limit: DocumentLimit::Bytes
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

/// A monitor's device with a case the hub holds: the device, the hub's store, the device's
/// principal and the case.
fn a_synced_case(dir: &TempDir) -> (Store, Store, Principal, ChildCase) {
    let mut device = store(dir, "device.db");
    let mut hub = common::hub_store(&dir.path().join("hub.db"));
    let principal = common::principal_of(&device, Role::CommunityMonitor, &["CI-R1"]);
    common::enrol_all(&mut hub, &mut [(&mut device, &principal)]);
    let case = device.create(&child(device.user_id())).unwrap();
    assert!(
        common::sync(&mut device, &mut hub, &principal)
            .refused
            .is_empty()
    );
    (device, hub, principal, case)
}

/// The device's own edit of `case` (its hours), made in its document with its actor, with the
/// first operation numbered `renumber(honest number)`: the change's bytes and the document
/// it was made on.
fn renumbered_edit(
    device: &Store,
    id: Uuid,
    renumber: impl Fn(u64) -> u64,
) -> (Vec<u8>, Vec<[u8; 32]>) {
    let mut doc = automerge::Automerge::load(&device.export_document(id).unwrap())
        .unwrap()
        .with_actor(device.actor().clone());
    let before = doc.get_heads();
    let mut case: ChildCase = vigie_core::doc::read_record(&doc, id).unwrap();
    case.hours_per_week += 1;
    let author = ChangeAuthor {
        user: device.user_id(),
        device: device.device_id(),
    };
    vigie_core::doc::write_record(&mut doc, &case, &author).unwrap();
    let honest = doc.get_changes(&before).pop().unwrap();
    let mut expanded = honest.decode();
    expanded.start_op = std::num::NonZeroU64::new(renumber(expanded.start_op.get())).unwrap();
    let mut change = automerge::Change::from(expanded);
    let hash = change.hash().0;
    (change.bytes().to_vec(), vec![hash])
}

/// Automerge takes a change's operation numbers as given: numbered far ahead, an edit wins
/// every conflict it meets (the highest number wins), and numbered near 2^32 it makes the next
/// edit of the record fail inside Automerge on every device that holds it. The hub refuses
/// such a change, and the case stays editable; the same edit numbered as Automerge numbers it
/// goes in.
#[test]
fn changes_numbered_out_of_sequence_are_refused_and_the_record_stays_editable() {
    let dir = TempDir::new().unwrap();
    let (device, mut hub, principal, case) = a_synced_case(&dir);

    let push = |hub: &mut Store, (changes, heads): (Vec<u8>, Vec<[u8; 32]>)| {
        common::push_one(
            hub,
            &principal,
            &device,
            PushEntry {
                id: case.id,
                heads,
                changes,
            },
        )
    };
    for (name, renumber) in [
        (
            "near 2^32",
            Box::new(|_| (1u64 << 32) - 3) as Box<dyn Fn(u64) -> u64>,
        ),
        ("far ahead", Box::new(|n| n + 1_000_000)),
        ("a little ahead", Box::new(|n| n + 1)),
        ("behind", Box::new(|n| n - 1)),
    ] {
        let outcome = push(&mut hub, renumbered_edit(&device, case.id, renumber));
        assert_eq!(
            outcome,
            wire::PushOutcome::Refused {
                reason: Refusal::Damaged,
                detail: None,
            },
            "{name}"
        );
    }
    assert_eq!(
        hub.get::<ChildCase>(case.id).unwrap().hours_per_week,
        case.hours_per_week
    );
    let outcome = push(&mut hub, renumbered_edit(&device, case.id, |n| n));
    assert!(
        matches!(outcome, wire::PushOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    // The hub's own edits of the record still work (the console's, a resolution).
    let mut edited: ChildCase = hub.get(case.id).unwrap();
    assert_eq!(edited.hours_per_week, case.hours_per_week + 1);
    edited.notes = "Vu au marché.".into();
    hub.update(&edited).unwrap();
}

/// Bytes that are no Automerge data pushed for a record the hub holds: Automerge read nothing
/// of them, and the hub acknowledged them as taken (an app whose encoder broke believed its
/// edit had reached the hub). Refused as damaged; the record is as it was.
#[test]
fn a_push_of_bytes_that_are_no_automerge_data_is_refused() {
    let dir = TempDir::new().unwrap();
    let (device, mut hub, principal, case) = a_synced_case(&dir);
    let before = hub.export_document(case.id).unwrap();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let garbage: Vec<u8> = (0..2000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    // Automerge's magic, then garbage; a real change cut in half; a real change with garbage
    // after it: Automerge reads up to what does not parse, and says nothing of the rest.
    let (edit, _) = renumbered_edit(&device, case.id, |n| n);
    let magic_then_garbage = [&edit[..4], &garbage[..]].concat();
    let cut = edit[..edit.len() / 2].to_vec();
    let tail = [&edit[..], &garbage[..100]].concat();
    for (name, changes) in [
        ("garbage", garbage.clone()),
        ("magic then garbage", magic_then_garbage),
        ("cut", cut),
        ("garbage after a change", tail),
    ] {
        let outcome = common::push_one(
            &mut hub,
            &principal,
            &device,
            PushEntry {
                id: case.id,
                heads: Vec::new(),
                changes,
            },
        );
        assert!(
            matches!(
                outcome,
                wire::PushOutcome::Refused {
                    reason: Refusal::Damaged,
                    ..
                }
            ),
            "{name}: {outcome:?}"
        );
        assert_eq!(hub.export_document(case.id).unwrap(), before, "{name}");
    }
}

/// The device's own change of `case`'s notes that types `chars` characters and deletes them
/// (each an operation for good, none left to see): the change's bytes and its hash.
fn typed_and_deleted(device: &Store, id: Uuid, chars: usize) -> (Vec<u8>, Vec<[u8; 32]>) {
    use automerge::transaction::{CommitOptions, Transactable as _};
    use automerge::{ObjType, ReadDoc as _};
    let mut doc = automerge::Automerge::load(&device.export_document(id).unwrap())
        .unwrap()
        .with_actor(device.actor().clone());
    let before = doc.get_heads();
    let notes = match doc.get(automerge::ROOT, "notes").unwrap() {
        Some((automerge::Value::Object(ObjType::Text), notes)) => notes,
        other => panic!("notes are a text: {other:?}"),
    };
    let author = ChangeAuthor {
        user: device.user_id(),
        device: device.device_id(),
    };
    let mut tx = doc.transaction();
    tx.splice_text(&notes, 0, 0, &"a".repeat(chars)).unwrap();
    tx.splice_text(&notes, 0, chars as isize, "").unwrap();
    tx.commit_with(CommitOptions::default().with_message(serde_json::to_string(&author).unwrap()));
    let change = doc.get_changes(&before).pop().unwrap();
    (change.raw_bytes().to_vec(), vec![change.hash().0])
}

/// One change of an altered app that typed half a million characters in a case's notes and
/// deleted them filled the case's history (every character an operation for good): no
/// colleague's edit fitted any more, and judging it cost the hub some 500 MB. A device's
/// changes hold at most a quarter of a record's operations: more in one change is refused
/// before Automerge reads it, by the hub and by a phone (from a peer, a bundle or the hub), and
/// more over several pushes when the one passing the share comes; the case's other people
/// edit it as before.
#[test]
fn no_device_fills_a_record_s_operations() {
    let dir = TempDir::new().unwrap();
    let (mut device, mut hub, principal, case) = a_synced_case(&dir);
    let mut colleague = store(&dir, "colleague.db");
    let colleague_is = common::principal_of(&colleague, Role::CommunityMonitor, &["CI-R1"]);
    common::enrol_all(&mut hub, &mut [(&mut colleague, &colleague_is)]);
    let share = DocumentLimits::STANDARD.max_operations / 4;
    let push = |hub: &mut Store, device: &Store, (changes, heads): (Vec<u8>, Vec<[u8; 32]>)| {
        common::push_one(
            hub,
            &principal,
            device,
            PushEntry {
                id: case.id,
                heads,
                changes,
            },
        )
    };
    let flood = typed_and_deleted(&device, case.id, share as usize / 2 + 1);
    let outcome = push(&mut hub, &device, flood.clone());
    assert_eq!(
        outcome,
        wire::PushOutcome::Refused {
            reason: Refusal::OverLimit {
                limit: DocumentLimit::Operations
            },
            detail: None,
        }
    );
    // Nor does a phone take it.
    let err = colleague.merge_document(case.id, &flood.0).unwrap_err();
    assert_eq!(over(&err), Some(DocumentLimit::Operations), "{err:?}");
    // Nor the same work saved as a whole document (what an app of an earlier version sends),
    // nor spread over made-up devices each within a share: more than a push may make
    // Automerge build, refused before it is read (each had cost the hub seconds and 300 to
    // 500 MB).
    let mut whole = automerge::Automerge::load(&device.export_document(case.id).unwrap()).unwrap();
    let twice = typed_and_deleted(&device, case.id, share as usize + 1);
    whole.load_incremental(&twice.0).unwrap();
    let made_up = |n: u8| {
        let mut bytes = Vec::new();
        for i in 0..3u8 {
            let mut doc = automerge::Automerge::load(&device.export_document(case.id).unwrap())
                .unwrap()
                .with_actor(automerge::ActorId::from([n, i].repeat(12)));
            let before = doc.get_heads();
            let notes = match automerge::ReadDoc::get(&doc, automerge::ROOT, "notes").unwrap() {
                Some((_, notes)) => notes,
                None => panic!("notes"),
            };
            let mut tx = doc.transaction();
            use automerge::transaction::Transactable as _;
            let chars = (share as usize) / 2 - 10;
            tx.splice_text(&notes, 0, 0, &"b".repeat(chars)).unwrap();
            tx.splice_text(&notes, 0, chars as isize, "").unwrap();
            tx.commit();
            bytes.extend(doc.get_changes(&before).pop().unwrap().raw_bytes());
        }
        bytes
    };
    for (name, changes) in [("whole", whole.save()), ("made-up devices", made_up(7))] {
        let started = std::time::Instant::now();
        let outcome = push(
            &mut hub,
            &device,
            (changes, whole.get_heads().iter().map(|h| h.0).collect()),
        );
        assert_eq!(
            outcome,
            wire::PushOutcome::Refused {
                reason: Refusal::OverLimit {
                    limit: DocumentLimit::Operations
                },
                detail: None,
            },
            "{name}"
        );
        assert!(started.elapsed().as_secs() < 5, "{name}: refused unread");
    }
    // Within the share at each push, past it together: the push that passes it is refused.
    let within = typed_and_deleted(&device, case.id, share as usize / 4);
    device.merge_document(case.id, &within.0).unwrap();
    let outcome = push(&mut hub, &device, within);
    assert!(
        matches!(outcome, wire::PushOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    let again = typed_and_deleted(&device, case.id, share as usize / 4 + 1);
    let outcome = push(&mut hub, &device, again);
    assert!(
        matches!(
            outcome,
            wire::PushOutcome::Refused {
                reason: Refusal::BreaksValidation,
                ..
            }
        ),
        "{outcome:?}"
    );
    // The colleague edits the case as before.
    common::sync(&mut colleague, &mut hub, &colleague_is);
    let mut edited: ChildCase = colleague.get(case.id).unwrap();
    edited.notes = "Vu au marché le samedi.".into();
    colleague.update(&edited).unwrap();
    let summary = common::sync(&mut colleague, &mut hub, &colleague_is);
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(
        hub.get::<ChildCase>(case.id).unwrap().notes,
        "Vu au marché le samedi."
    );
}

/// A push whose own changes skip one of their numbers once another device's changes are set
/// aside (the sender's second change built on a relayed one, its third on its first alone,
/// numbered below the second): Automerge merged it into a document whose changes could no
/// longer be listed, and the hub failed the whole request. An actor's changes must number
/// their operations in their own order; this push is refused, typed, and the hub serves on.
#[test]
fn own_changes_after_one_that_waits_wait_too() {
    let dir = TempDir::new().unwrap();
    let (mut device, mut hub, principal, case) = a_synced_case(&dir);
    let other = store(&dir, "other.db");

    let stored = device.export_document(case.id).unwrap();
    let edit = |actor: &automerge::ActorId, base: &[u8], with: &[&automerge::Change], n: i32| {
        let mut doc = automerge::Automerge::load(base)
            .unwrap()
            .with_actor(actor.clone());
        doc.apply_changes(with.iter().map(|c| (*c).clone()))
            .unwrap();
        let before = doc.get_heads();
        let mut c: ChildCase = vigie_core::doc::read_record(&doc, case.id).unwrap();
        c.hours_per_week = n;
        // The relayed edit is the longer: the changes made after it are numbered past those
        // made beside it, as an honest history would number them.
        if n == 30 {
            c.notes = "Vu au champ avec son oncle, le matin.".into();
        }
        let author = ChangeAuthor {
            user: device.user_id(),
            device: device.device_id(),
        };
        vigie_core::doc::write_record(&mut doc, &c, &author).unwrap();
        doc.get_changes(&before).pop().unwrap()
    };
    let relayed = edit(other.actor(), &stored, &[], 30);
    let first = edit(device.actor(), &stored, &[], 31);
    let renumbered = |change: automerge::Change, seq: u64| {
        let mut expanded = change.decode();
        expanded.seq = seq;
        automerge::Change::from(expanded)
    };
    // Made on the relayed change alone, and on the first alone, numbered 2 and 3.
    let second = renumbered(
        edit(device.actor(), &stored, &[&relayed], 32),
        first.seq() + 1,
    );
    let third = renumbered(
        edit(device.actor(), &stored, &[&first], 33),
        first.seq() + 2,
    );
    let mut changes = Vec::new();
    for change in [&relayed, &first, &second, &third] {
        changes.extend_from_slice(change.clone().bytes().as_ref());
    }
    let outcome = common::push_one(
        &mut hub,
        &principal,
        &device,
        PushEntry {
            id: case.id,
            heads: vec![second.hash().0, third.hash().0],
            changes,
        },
    );
    assert_eq!(
        outcome,
        wire::PushOutcome::Refused {
            reason: Refusal::Damaged,
            detail: None,
        }
    );
    let held: ChildCase = hub.get(case.id).unwrap();
    assert_eq!(held.hours_per_week, case.hours_per_week);
    assert!(
        common::sync(&mut device, &mut hub, &principal)
            .refused
            .is_empty()
    );
}

/// An edit saved at the version the user read, after a sync brought newer changes of the
/// record: Automerge numbers it from the whole document, past its own dependencies, as any
/// honest device does. The hub takes it, and the concurrent edits merge.
#[test]
fn an_edit_made_at_an_older_version_is_numbered_as_automerge_numbers_it_and_goes_in() {
    let dir = TempDir::new().unwrap();
    let mut a = store(&dir, "a.db");
    let mut b = store(&dir, "b.db");
    let mut hub = common::hub_store(&dir.path().join("hub.db"));
    let a_is = common::principal_of(&a, Role::CommunityMonitor, &["CI-R1"]);
    let b_is = common::principal_of(&b, Role::CommunityMonitor, &["CI-R1"]);
    common::enrol_all(&mut hub, &mut [(&mut a, &a_is), (&mut b, &b_is)]);
    let case = a.create(&child(a.user_id())).unwrap();
    common::sync(&mut a, &mut hub, &a_is);
    common::sync(&mut b, &mut hub, &b_is);
    let mut theirs: ChildCase = b.get(case.id).unwrap();
    theirs.notes = "Vue au marché avec sa tante, le matin, portant des charges.".into();
    b.update(&theirs).unwrap();
    assert!(common::sync(&mut b, &mut hub, &b_is).refused.is_empty());

    // A reads the case, syncs (B's edit arrives), then saves what it read and changed.
    let mut read: ChildCase = a.get(case.id).unwrap();
    common::sync(&mut a, &mut hub, &a_is);
    read.hours_per_week = 30;
    a.update(&read).unwrap();
    let summary = common::sync(&mut a, &mut hub, &a_is);
    assert!(summary.refused.is_empty(), "{summary:?}");
    let held: ChildCase = hub.get(case.id).unwrap();
    assert_eq!(held.hours_per_week, 30);
    assert_eq!(held.notes, theirs.notes);
}

/// The versions a record was captured with decide how it is classified: a device that changes
/// them afterwards, or files a new record under another country's, is refused by the hub.
#[test]
fn the_versions_a_record_was_captured_with_are_set_once_to_its_own_country_s() {
    let dir = TempDir::new().unwrap();
    let mut device = store(&dir, "device.db");
    let mut hub = common::hub_store(&dir.path().join("hub.db"));
    let profile = |name: &str| {
        let mut p = CountryProfile::ilo_default();
        p.name = Labels::fr_en(name, name);
        ReferenceContent::CountryProfile(p)
    };
    hub.publish_reference("CI", profile("Côte d'Ivoire"))
        .unwrap();
    hub.publish_reference("XX", profile("Ailleurs")).unwrap();
    let principal = common::principal_of(&device, Role::CommunityMonitor, &["CI-R1"]);
    common::enrol_all(&mut hub, &mut [(&mut device, &principal)]);
    let case = device.create(&child(device.user_id())).unwrap();
    assert_eq!(case.captured_with.country_profile, Some(Pin::new("CI", 1)));
    assert!(
        common::sync(&mut device, &mut hub, &principal)
            .refused
            .is_empty()
    );
    let author = ChangeAuthor {
        user: device.user_id(),
        device: device.device_id(),
    };
    let other = Some(Pin::new("XX", 1));

    // An edit of the hub's copy that moves the case to another profile, pushed.
    let moves = |hub: &mut Store, to: Pin| {
        let mut doc = automerge::Automerge::load(&hub.export_document(case.id).unwrap())
            .unwrap()
            .with_actor(device.actor().clone());
        let before = doc.get_heads();
        let mut moved: ChildCase = vigie_core::doc::read_record(&doc, case.id).unwrap();
        moved.captured_with.country_profile = Some(to);
        vigie_core::doc::write_record(&mut doc, &moved, &author).unwrap();
        let change = doc.get_changes(&before).pop().unwrap();
        common::push_one(
            hub,
            &principal,
            &device,
            PushEntry {
                id: case.id,
                heads: vec![change.hash().0],
                changes: change.raw_bytes().to_vec(),
            },
        )
    };
    let outcome = moves(&mut hub, Pin::new("XX", 1));
    let captured_with = |outcome: &wire::PushOutcome| match outcome {
        wire::PushOutcome::Refused {
            reason: Refusal::BreaksValidation,
            detail: Some(detail),
        } => detail.field == "captured_with",
        _ => false,
    };
    assert!(captured_with(&outcome), "{outcome:?}");
    let held: ChildCase = hub.get(case.id).unwrap();
    assert_eq!(held.captured_with.country_profile, Some(Pin::new("CI", 1)));

    // Its country's profile in force may take it (a hazard the list gained), never an older.
    hub.publish_reference("CI", profile("Côte d'Ivoire, liste révisée"))
        .unwrap();
    let forward = moves(&mut hub, Pin::new("CI", 2));
    assert!(
        matches!(forward, wire::PushOutcome::Accepted { .. }),
        "{forward:?}"
    );
    let back = moves(&mut hub, Pin::new("CI", 1));
    assert!(captured_with(&back), "{back:?}");
    // Nor back by way of the default profile (CI@2, ilo-default@1, then CI@1).
    let to_default = moves(&mut hub, Pin::new("ilo-default", 1));
    assert!(captured_with(&to_default), "{to_default:?}");
    let held: ChildCase = hub.get(case.id).unwrap();
    assert_eq!(held.captured_with.country_profile, Some(Pin::new("CI", 2)));

    // A new case of Côte d'Ivoire filed under another country's profile.
    let mut new = child(device.user_id());
    new.case_code = "CASE-2".into();
    new.captured_with.country_profile = other;
    let mut doc = automerge::Automerge::new().with_actor(device.actor().clone());
    vigie_core::doc::write_record(&mut doc, &new, &author).unwrap();
    let outcome = common::push_one(
        &mut hub,
        &principal,
        &device,
        PushEntry {
            id: new.id,
            heads: doc.get_heads().iter().map(|h| h.0).collect(),
            changes: doc.save(),
        },
    );
    assert!(captured_with(&outcome), "{outcome:?}");
    assert!(hub.get::<ChildCase>(new.id).is_err());
}

/// A bundle that expands far past its size (documents of zeros: a few KB sealed, 80 MiB
/// expanded; a hostile one held 480 MiB, which a phone allocated twice before finding them no
/// documents) is refused before it is expanded whole; a bundle of records goes in, and one
/// of workplaces naming the same two thousand buyers each (honest, and most compressible).
#[test]
fn a_bundle_expanding_far_past_its_size_is_refused_unexpanded() {
    let dir = TempDir::new().unwrap();
    let mut hub = common::hub_store(&dir.path().join("hub.db"));
    let mut sender = store(&dir, "sender.db");
    let mut victim = store(&dir, "victim.db");
    let sender_is = common::principal_of(&sender, Role::Supervisor, &["CI-R1"]);
    let victim_is = common::principal_of(&victim, Role::Supervisor, &["CI-R1"]);
    common::enrol_all(
        &mut hub,
        &mut [(&mut sender, &sender_is), (&mut victim, &victim_is)],
    );
    let to_victim = [Recipient::Device(victim.device_id())];
    let zeros: Vec<(Uuid, Vec<u8>)> = (0..40)
        .map(|_| (Uuid::now_v7(), vec![0u8; 2 * 1024 * 1024]))
        .collect();
    let bomb = sender.seal_bundle(zeros, &to_victim).unwrap();
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    match victim.import_bundle(&bomb) {
        Err(Error::DamagedBundle {
            record: None,
            reason,
        }) => {
            assert!(reason.contains("decompress"), "{reason}")
        }
        other => panic!("a bundle of zeros imported: {other:?}"),
    }
    let cases: Vec<(Uuid, Vec<u8>)> = (0..200)
        .map(|_| {
            let case = sender.create(&child(sender.user_id())).unwrap();
            (case.id, sender.export_document(case.id).unwrap())
        })
        .collect();
    let bundle = sender.seal_bundle(cases, &to_victim).unwrap();
    assert_eq!(victim.import_bundle(&bundle).unwrap().changed, 200);
    let buyers: std::collections::BTreeSet<String> = (0..2000)
        .map(|i| format!("Coopérative Planteur {i:04}"))
        .collect();
    let places: Vec<Workplace> = (0..200)
        .map(|i| {
            let mut w = Workplace::new(
                &format!("Séchoir {i}"),
                "cocoa",
                Formality::Informal,
                area(),
            );
            w.buyers = buyers.clone();
            w
        })
        .collect();
    sender.create_all(&places).unwrap();
    let (bundle, _) = sender.export_bundle(0, &[], &to_victim).unwrap();
    let report = victim.import_bundle(&bundle).unwrap();
    assert_eq!(report.refused, 0, "{report:?}");
    assert!(report.changed >= 200, "{report:?}");
}

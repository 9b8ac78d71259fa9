//! Fuzzing every entry point that takes bytes from another device or a file: the hub's request
//! handler, a device applying a response, bundle import and peer messages.
//!
//! Three kinds of input: bytes mutated anywhere (framing, compression, checksums), messages
//! re-encoded around mutated Automerge payloads (so that the documents themselves reach
//! Automerge), and payloads whose Automerge chunk checksums were recomputed after mutation (a
//! hostile peer can do that; automerge 0.12 panics on some of them). Nothing may panic out of the
//! core, nothing damaged may be stored, and the stores keep working.
//!
//! `VIGIE_FUZZ_ITERATIONS` sets the total (default 100,000).

use crate::common;

use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::sync::wire::{self, PullEntry, SyncResponse};
use vigie_core::sync::{HubLimits, PeerScope, Principal, SyncOptions, sync_with_hub};
use vigie_core::*;

fn mutate(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>) {
    for _ in 0..rng.gen_range(1..4) {
        if bytes.is_empty() {
            bytes.push(rng.r#gen());
            continue;
        }
        let i = rng.gen_range(0..bytes.len());
        match rng.gen_range(0..6) {
            0 => bytes[i] ^= 1 << rng.gen_range(0..8),
            1 => bytes[i] = rng.r#gen(),
            2 => bytes.insert(i, rng.r#gen()),
            3 => {
                bytes.remove(i);
            }
            4 => bytes.truncate(i),
            _ => {
                // Duplicate a slice: lengths and counts stop matching.
                let end = (i + rng.gen_range(1..16)).min(bytes.len());
                let slice = bytes[i..end].to_vec();
                bytes.splice(i..i, slice);
            }
        }
    }
}

fn uleb(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Recomputes the checksum of every Automerge chunk in `bytes` (magic, 4-byte checksum, type,
/// ULEB length, data; the checksum is the first 4 bytes of SHA-256 over type, length and data).
fn repair_checksums(bytes: &mut [u8]) {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    let mut at = 0;
    while at + 9 <= bytes.len() && bytes[at..at + 4] == MAGIC {
        let Some((len, width)) = uleb(&bytes[at + 9..]) else {
            return;
        };
        let end = at + 9 + width + len as usize;
        if end > bytes.len() {
            return;
        }
        let digest = Sha256::digest(&bytes[at + 8..end]);
        bytes[at + 4..at + 8].copy_from_slice(&digest[..4]);
        at = end;
    }
}

fn child(area: &Area, i: usize, by: Uuid) -> ChildCase {
    let mut c = ChildCase::new(
        &format!("C{i}"),
        &format!("Enfant Kouamé {i}"),
        Sex::Female,
        area.clone(),
        NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(),
        by,
    );
    c.estimated_age = Some(10 + (i % 7) as i32);
    c.hours_per_week = (i % 30) as i32;
    c.notes = "Suivi à prévoir après la saison.".into();
    c
}

// The iterations run in two shards, one test each, so that the test harness runs them on two
// cores: the same number of mutated inputs, in half the time.
#[test]
fn hostile_bytes_never_crash_nor_store_damage_first_half() {
    hostile_bytes_shard(0);
}

#[test]
fn hostile_bytes_never_crash_nor_store_damage_second_half() {
    hostile_bytes_shard(1);
}

/// Half of `VIGIE_FUZZ_ITERATIONS` (default 100,000 in all), from `VIGIE_FUZZ_SEED` plus `shard`.
fn hostile_bytes_shard(shard: u64) {
    let total: usize = std::env::var("VIGIE_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
        / 2;
    let seed: u64 = std::env::var("VIGIE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed)
        + shard;
    eprintln!("fuzz: {total} iterations, seed {seed}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let dir = TempDir::new().unwrap();
    let area = Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01");
    let mut hub = common::hub_store(&dir.path().join("hub.db"));
    let user = Uuid::now_v7();
    let mut phone = Store::open(StoreConfig::new(
        dir.path().join("phone.db"),
        Encryption::Unencrypted,
        user,
    ))
    .unwrap();
    let mut victim = Store::open(StoreConfig::new(
        dir.path().join("victim.db"),
        Encryption::Unencrypted,
        Uuid::now_v7(),
    ))
    .unwrap();
    let principal = Principal {
        device: phone.device_id(),
        user,
        role: Role::Supervisor,
        areas: ["CI-R1".to_string()].into(),
    };
    // The victim and the phone are certified: bundles and peers carry documents only between
    // devices the hub knows.
    let victim_is = common::principal_of(&victim, Role::Supervisor, &["CI-R1"]);
    common::enrol_all(
        &mut hub,
        &mut [(&mut victim, &victim_is), (&mut phone, &principal)],
    );
    let mut ids = Vec::new();
    // Enough for a response's records to be merged on worker threads (`Merging::merge_each`
    // takes 8 or more).
    for i in 0..12 {
        ids.push(phone.create(&child(&area, i, user)).unwrap().id);
    }
    let request = phone.hub_sync_request(&SyncOptions::default()).unwrap();
    // Seed the hub with the records so that responses carry both documents and changes.
    let response = hub
        .hub_handle(&principal, &request, &HubLimits::default())
        .unwrap();
    let mut edit = phone.get::<ChildCase>(ids[0]).unwrap();
    edit.notes.push_str(" Revu.");
    phone.update(&edit).unwrap();
    let (bundle, _) = phone
        .export_bundle(
            0,
            &[],
            &[vigie_core::sync::Recipient::Device(victim.device_id())],
        )
        .unwrap();
    let (_, peer_message) = phone.peer_start(&PeerScope::default(), 64 * 1024).unwrap();
    let documents: Vec<(Uuid, Vec<u8>)> = ids
        .iter()
        .map(|id| (*id, phone.export_document(*id).unwrap()))
        .collect();
    let hub_records = hub.count(RecordKind::ChildCase).unwrap();
    // The well-framed requests come from a device that applied the seeding's answer: the hub
    // judges their pushes, then answers with what is new since. With the first request's
    // cursor and receipt, every answer rebuilt the whole scope and everything the device had
    // ever pushed: the same work at every round, most of this test's time.
    phone
        .hub_sync_apply(&response, &SyncOptions::default())
        .unwrap();
    let caught_up = phone.hub_sync_request(&SyncOptions::default()).unwrap();
    let caught_up = wire::decode_request(&caught_up, 1 << 24).unwrap();
    let decoded_request = wire::SyncRequest {
        cursor: caught_up.cursor,
        receipt: caught_up.receipt,
        identity: caught_up.identity,
        ..wire::decode_request(&request, 1 << 24).unwrap()
    };

    // Automerge's panics are contained by the core; keep them from flooding the output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut stored_by_victim = 0usize;
    let limits = HubLimits::default();
    for i in 0..total {
        match i % 10 {
            // Mutated whole request.
            0..=3 => {
                let mut bytes = request.clone();
                mutate(&mut rng, &mut bytes);
                let _ = hub.hub_handle(&principal, &bytes, &limits);
            }
            // Well-framed request around mutated documents, checksums sometimes repaired. One
            // document left intact keeps the request mixed; the others were the same bytes at
            // every round.
            4 | 5 => {
                let mut message = decoded_request.clone();
                let mut kept_intact = false;
                message.push.retain_mut(|entry| {
                    if rng.gen_bool(0.3) {
                        mutate(&mut rng, &mut entry.changes);
                        if rng.gen_bool(0.5) {
                            repair_checksums(&mut entry.changes);
                        }
                        true
                    } else {
                        !std::mem::replace(&mut kept_intact, true)
                    }
                });
                let _ = hub.hub_handle(&principal, &wire::encode_request(&message), &limits);
            }
            // Mutated whole response, bundle and peer message, applied to a fresh device store.
            6 => {
                let mut bytes = response.clone();
                mutate(&mut rng, &mut bytes);
                let _ = victim.hub_sync_apply(&bytes, &SyncOptions::default());
            }
            7 => {
                let mut bytes = bundle.clone();
                mutate(&mut rng, &mut bytes);
                if victim.import_bundle(&bytes).is_ok() {
                    stored_by_victim += 1;
                }
            }
            8 => {
                let mut bytes = peer_message.clone();
                mutate(&mut rng, &mut bytes);
                if let Ok(mut session) = victim.peer_accept(&PeerScope::default(), 64 * 1024) {
                    let _ = victim.peer_step(&mut session, &bytes);
                }
            }
            // Well-framed response around mutated documents and changes (few: each commits).
            _ => {
                if i % 50 != 9 {
                    let mut bytes = documents[rng.gen_range(0..documents.len())].1.clone();
                    mutate(&mut rng, &mut bytes);
                    if rng.gen_bool(0.7) {
                        repair_checksums(&mut bytes);
                    }
                    let _ = victim.merge_document(Uuid::now_v7(), &bytes);
                    continue;
                }
                let records = documents
                    .iter()
                    .map(|(id, doc)| {
                        let mut changes = doc.clone();
                        if rng.gen_bool(0.5) {
                            mutate(&mut rng, &mut changes);
                            repair_checksums(&mut changes);
                        }
                        PullEntry {
                            id: *id,
                            changes,
                            hub_heads: Vec::new(),
                        }
                    })
                    .collect();
                let message = SyncResponse {
                    acks: Vec::new(),
                    records,
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
                let _ = victim
                    .hub_sync_apply(&wire::encode_response(&message), &SyncOptions::default());
            }
        }
    }
    std::panic::set_hook(default_hook);
    eprintln!("fuzz: bundles accepted by the victim: {stored_by_victim}");

    // Every record any store holds still reads as a valid record of its kind.
    for store in [&hub, &victim] {
        assert!(store.integrity_check().unwrap());
        for summary in store
            .child_cases(&ChildCaseQuery::default(), Page::first(500))
            .unwrap()
        {
            store.get::<ChildCase>(summary.id).unwrap();
        }
    }
    assert!(hub.count(RecordKind::ChildCase).unwrap() >= hub_records);
    // And sync still works end to end.
    let summary = sync_with_hub(
        &mut phone,
        &SyncOptions::default(),
        |r| {
            hub.hub_handle(&principal, r, &limits)
                .map_err(|e| e.to_string())
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(summary.pending, 0, "{summary:?}");
    for id in &ids {
        assert_eq!(
            hub.get::<ChildCase>(*id).unwrap(),
            phone.get::<ChildCase>(*id).unwrap()
        );
    }
}

/// Deep, large and many-operation documents (`common::hostile`), whole or mutated, their
/// checksums repaired, sent down every path a device and the hub take bytes from, on a thread
/// with a 1 MiB stack: nothing crashes, nothing of them is stored, the stores keep working.
///
/// `VIGIE_FUZZ_HOSTILE_ITERATIONS` sets the number of rounds (default 2,000).
#[test]
fn hostile_documents_mutated_never_crash_a_small_stack() {
    let total: usize = std::env::var("VIGIE_FUZZ_HOSTILE_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let dir = TempDir::new().unwrap();
    let path = dir.path().to_path_buf();
    common::hostile::on_small_stack(move || {
        let mut rng = ChaCha8Rng::seed_from_u64(0xb0b);
        let area = Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01");
        let user = Uuid::now_v7();
        let open = |name: &str, user: Uuid, role: StoreRole| {
            Store::open(StoreConfig::new(path.join(name), Encryption::Unencrypted, user).role(role))
                .unwrap()
        };
        let mut phone = open("phone.db", user, StoreRole::Device);
        let mut hub = common::hub_store(&path.join("hub.db"));
        let mut victim = open("victim.db", Uuid::now_v7(), StoreRole::Device);
        let principal = Principal {
            device: phone.device_id(),
            user,
            role: Role::Supervisor,
            areas: ["CI-R1".to_string()].into(),
        };
        // Bundles and peers carry documents only between devices the hub certified.
        let victim_is = common::principal_of(&victim, Role::Supervisor, &["CI-R1"]);
        common::enrol_all(
            &mut hub,
            &mut [(&mut victim, &victim_is), (&mut phone, &principal)],
        );
        let to_victim = [vigie_core::sync::Recipient::Device(victim.device_id())];
        // One authenticated session carries every hostile peer message (a refused message
        // leaves it open).
        let (mut from, mut session, _) = common::handshake(&mut phone, &mut victim);
        let honest = phone.create(&child(&area, 0, user)).unwrap();
        let honest_bytes = phone.export_document(honest.id).unwrap();
        let hostile = common::hostile::all(&honest_bytes, phone.actor());
        let limits = HubLimits::default();
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        for i in 0..total {
            let h = &hostile[rng.gen_range(0..hostile.len())];
            let mut bytes = h.bytes.clone();
            if rng.gen_bool(0.7) {
                mutate(&mut rng, &mut bytes);
                repair_checksums(&mut bytes);
            }
            let id = if rng.gen_bool(0.5) {
                honest.id
            } else {
                Uuid::now_v7()
            };
            match i % 4 {
                0 => {
                    let request = wire::SyncRequest {
                        actor: phone.actor().to_bytes().to_vec(),
                        cursor: None,
                        push: vec![wire::PushEntry {
                            id,
                            heads: Vec::new(),
                            changes: bytes,
                        }],
                        refetch: Vec::new(),
                        max_response_bytes: 256 * 1024,
                        receipt: 0,
                        identity: None,
                        headless_documents: false,
                        incarnation: None,
                        device_clock: None,
                    };
                    let _ = hub.hub_handle(&principal, &wire::encode_request(&request), &limits);
                }
                1 => {
                    let response = SyncResponse {
                        acks: Vec::new(),
                        records: vec![PullEntry {
                            id,
                            changes: bytes,
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
                    let _ = victim
                        .hub_sync_apply(&wire::encode_response(&response), &SyncOptions::default());
                }
                2 => {
                    let bundle = phone.seal_bundle(vec![(id, bytes)], &to_victim).unwrap();
                    let _ = victim.import_bundle(&bundle);
                }
                _ => {
                    let message = wire::PeerMessage {
                        reconcile: None,
                        documents: vec![(id, bytes)],
                        wanted: Vec::new(),
                        done: true,
                    };
                    let _ = victim.peer_step(&mut session, &from.seal(&message).unwrap());
                }
            }
        }
        std::panic::set_hook(default_hook);
        // What the stores hold reads whole, and stays within the bounds.
        for store in [&hub, &victim] {
            assert!(store.integrity_check().unwrap());
            for summary in store
                .child_cases(&ChildCaseQuery::default(), Page::first(500))
                .unwrap()
            {
                store.get::<ChildCase>(summary.id).unwrap();
                store.history(summary.id).unwrap();
                store.conflicts(summary.id).unwrap();
            }
        }
        // And the honest record still syncs.
        let summary = sync_with_hub(
            &mut phone,
            &SyncOptions::default(),
            |r| {
                hub.hub_handle(&principal, r, &limits)
                    .map_err(|e| e.to_string())
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(summary.pending, 0, "{summary:?}");
        assert_eq!(hub.get::<ChildCase>(honest.id).unwrap().name, honest.name);
    });
}

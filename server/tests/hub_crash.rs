//! The hub killed with SIGKILL while devices sync, and restarted on the same data: its store
//! stays sound, and nothing it acknowledged is lost.

use crate::common;

use common::*;
use rand::Rng;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::sync::{SyncOptions, sync_with_hub};
use vigie_core::*;

const RESTARTS: usize = 20;

/// What the syncing thread did.
#[derive(Debug, Default)]
struct Work {
    /// Every record created, with its kind.
    created: Vec<(Uuid, RecordKind)>,
    syncs_ok: usize,
    /// Syncs that failed because the hub was not listening.
    refused_connections: usize,
    /// Syncs cut after the connection was made: the hub died during an exchange.
    cut: usize,
}

/// Devices work and sync in turn until told to stop, each with the hub's current address.
fn work(
    devices: &mut [Device],
    url: &Mutex<String>,
    stop: &AtomicBool,
    exchanging: &AtomicBool,
    completed: &AtomicUsize,
    seed: u64,
    deadline: Instant,
) -> Work {
    let mut rng = rng(seed);
    let mut w = Work::default();
    let mut turn = 0usize;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let d = &mut devices[turn % devices.len()];
        turn += 1;
        for _ in 0..rng.gen_range(1..=3) {
            let editable: Vec<Uuid> = w
                .created
                .iter()
                .filter(|(id, kind)| d.has(*id) && d.may_see(*kind, &area_of(&d.store, *id).1))
                .map(|(id, _)| *id)
                .collect();
            if editable.is_empty() || rng.gen_bool(0.5) {
                let kinds = d.principal.kinds();
                let kind = kinds[rng.gen_range(0..kinds.len())];
                let community = match d.principal.role {
                    Role::CommunityMonitor => {
                        if d.principal.areas.contains(C01) {
                            C01
                        } else {
                            C02
                        }
                    }
                    _ => [C01, C02][rng.gen_range(0..2)],
                };
                let id = create_record(&mut rng, &mut d.store, kind, area(community));
                w.created.push((id, kind));
            } else {
                let id = editable[rng.gen_range(0..editable.len())];
                random_edit(&mut rng, &mut d.store, id);
            }
        }
        let current = url.lock().unwrap().clone();
        let options = SyncOptions {
            max_message_bytes: [1024, 4 * 1024, 64 * 1024][rng.gen_range(0..3)],
            ..SyncOptions::default()
        };
        // Pages stay that small, however fast the link: many places to cut.
        let options = SyncOptions {
            max_page_bytes: options.max_message_bytes,
            ..options
        };
        // The client's own session, with a flag up while a request is in flight, so that the
        // test can aim its kills at exchanges.
        let client = d.client(&current);
        let session = sync_with_hub(
            &mut d.store,
            &options,
            |request| {
                exchanging.store(true, Ordering::SeqCst);
                let response = client.exchange(request);
                exchanging.store(false, Ordering::SeqCst);
                response
            },
            |_| {},
        );
        match session {
            Ok(summary) => {
                w.syncs_ok += 1;
                completed.fetch_add(1, Ordering::SeqCst);
                assert!(
                    summary.refused.is_empty() && summary.failed.is_empty(),
                    "{}: {summary:?}",
                    d.name
                );
            }
            Err(Error::Transport { reason }) => {
                if reason.contains("onnection refused") {
                    w.refused_connections += 1;
                    std::thread::sleep(Duration::from_millis(5));
                } else {
                    w.cut += 1;
                }
            }
            Err(e) => panic!("{}: sync failed with {e}", d.name),
        }
    }
    w
}

/// Opens the stopped hub's store: SQLite finds it sound, and every document loads.
fn check_hub_store(hub: &Hub) -> usize {
    let store = hub.open_store();
    assert!(
        store.integrity_check().unwrap(),
        "integrity check after restart {}",
        hub.starts
    );
    let records = all_records(&store);
    for (_, id) in &records {
        heads(&store, *id);
        area_of(&store, *id);
    }
    drop(store);
    records.len()
}

#[test]
fn hub_killed_mid_sync_keeps_what_it_acknowledged() {
    let started = Instant::now();
    let seed = seed("hub_killed_mid_sync_keeps_what_it_acknowledged");
    let mut rng = rng(seed);
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut devices = vec![
        Device::enrol(
            dir.path(),
            &data,
            "monitor-c01",
            Role::CommunityMonitor,
            &[C01],
            1,
        ),
        Device::enrol(
            dir.path(),
            &data,
            "monitor-c02",
            Role::CommunityMonitor,
            &[C02],
            2,
        ),
        Device::enrol(
            dir.path(),
            &data,
            "inspector-d1",
            Role::Inspector,
            &[DISTRICT],
            3,
        ),
        Device::enrol(
            dir.path(),
            &data,
            "supervisor-r1",
            Role::Supervisor,
            &[REGION],
            4,
        ),
    ];
    let mut hub = Hub::start(&data);
    let url = Arc::new(Mutex::new(hub.url.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let exchanging = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (url, stop, exchanging, completed) = (
            url.clone(),
            stop.clone(),
            exchanging.clone(),
            completed.clone(),
        );
        let seed = rng.r#gen();
        let deadline = Instant::now() + Duration::from_secs(40);
        std::thread::spawn(move || {
            let work = work(
                &mut devices,
                &url,
                &stop,
                &exchanging,
                &completed,
                seed,
                deadline,
            );
            (devices, work)
        })
    };

    let mut counts = Vec::new();
    for _ in 0..RESTARTS {
        let synced = completed.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(rng.gen_range(100..=400)));
        if worker.is_finished() {
            break; // it panicked (or ran out of time): join below reports it
        }
        // A session completes between two kills, however loaded the machine (the tests run
        // beside others): what the devices sync in between is what the kills must not lose.
        wait_until(Duration::from_secs(5), || {
            completed.load(Ordering::SeqCst) > synced || worker.is_finished()
        });
        // Most kills land while a request is in flight, at a random point of its handling.
        if rng.gen_bool(0.8) {
            wait_until(Duration::from_secs(2), || exchanging.load(Ordering::SeqCst));
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..1500)));
        }
        hub.kill();
        counts.push(check_hub_store(&hub));
        hub.restart();
        *url.lock().unwrap() = hub.url.clone();
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (mut devices, work) = match worker.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "records on the hub after each kill never decrease: {counts:?}"
    );

    // With the hub up, devices sync until nothing moves.
    let mut quiet = 0;
    for pass in 0..8 {
        let mut moved = false;
        for d in devices.iter_mut() {
            let summary = d
                .sync(&hub.url)
                .unwrap_or_else(|e| panic!("{}: final sync {pass}: {e}", d.name));
            assert!(
                summary.refused.is_empty() && summary.failed.is_empty(),
                "{}: {summary:?}",
                d.name
            );
            moved |= summary.accepted + summary.received + summary.pending > 0;
        }
        quiet = if moved { 0 } else { quiet + 1 };
        if quiet == 1 {
            break;
        }
    }
    assert_eq!(quiet, 1, "the devices and the hub settle");
    hub.stop();
    let total = check_hub_store(&hub);
    let hub_store = hub.open_store();

    // Every record any device created is on the hub, and every copy equals the hub's.
    let mut ids = BTreeSet::new();
    for (id, kind) in &work.created {
        assert!(ids.insert(*id));
        assert_eq!(
            hub_store.kind_of(*id).ok(),
            Some(*kind),
            "{kind} {id} on the hub"
        );
    }
    assert_eq!(total, ids.len(), "the hub holds only these records");
    for d in &devices {
        let mut held = 0;
        for (kind, id) in all_records(&hub_store) {
            let (_, record_area) = area_of(&hub_store, id);
            if d.may_see(kind, &record_area) {
                held += 1;
                assert_eq!(
                    heads_opt(&d.store, id),
                    Some(heads(&hub_store, id)),
                    "{}: {kind} {id}",
                    d.name
                );
            }
        }
        assert_eq!(held, all_records(&d.store).len(), "{}", d.name);
    }
    println!(
        "{} restarts, {} records; syncs: {} completed, {} cut mid-exchange, {} found the hub \
         down; hub records after each kill: {counts:?}; {:.1} s",
        hub.starts - 1,
        ids.len(),
        work.syncs_ok,
        work.cut,
        work.refused_connections,
        started.elapsed().as_secs_f64()
    );
    assert!(
        work.syncs_ok >= RESTARTS,
        "the devices synced between kills"
    );
    assert!(work.cut > 0, "some kills landed during an exchange");
}

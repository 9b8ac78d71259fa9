//! The hub's log holds no record bytes at any level (issue 11, attack 11): with `RUST_LOG` at
//! debug, then at trace for every library by name, a hub syncs records that carry the names of
//! tests/personal-names.txt, and none of them, nor a device's secret, nor a statement's
//! parameters reach its log. Against the real `vigie` binary, on the backend
//! `VIGIE_TEST_BACKEND` names (scripts/test.sh runs it on PostgreSQL too, where the driver
//! logs statement parameters at debug).

use crate::common;

use common::surface::HubOptions;
use common::*;
use tempfile::TempDir;
use vigie_core::*;

/// The names scripts/test.sh scans every log for.
fn personal_names() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/personal-names.txt");
    std::fs::read_to_string(path)
        .expect("tests/personal-names.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn sync_named_records_with_log(level: &str) {
    let names = personal_names();
    assert!(names.len() >= 10);
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    let mut supervisor = Device::enrol(
        dir.path(),
        &data,
        "supervisor",
        Role::Supervisor,
        &[REGION],
        2,
    );
    let mut hub = Hub::start_with_options(
        &data,
        HubOptions {
            env: vec![("RUST_LOG".into(), level.into())],
            ..HubOptions::default()
        },
    );
    // Cases named after the list, their guardians and notes too; a visit whose findings name
    // a child.
    let user = monitor.user();
    let mut cases = Vec::new();
    for (i, name) in names.iter().enumerate().take(6) {
        let mut case = child(area(C01), name, user);
        case.guardian = names[(i + 6) % names.len()].clone();
        case.notes = format!("Vu avec {}", names[(i + 12) % names.len()]);
        cases.push(monitor.store.create(&case).unwrap());
    }
    let mut v = visit(area(C01), uuid(&mut rng(1)), user, 3);
    v.findings = format!("{} travaille au champ.", names[0]);
    monitor.store.create(&v).unwrap();
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!(summary.accepted, 7, "{summary:?}");
    // The supervisor receives them, edits one, and the monitor receives the edit.
    let summary = supervisor.sync(&hub.url).unwrap();
    assert!(summary.received >= 7, "{summary:?}");
    let mut edited: ChildCase = supervisor.store.get(cases[0].id).unwrap();
    edited.notes = format!("Suivi : {}", names[1]);
    supervisor.store.update(&edited).unwrap();
    supervisor.sync(&hub.url).unwrap();
    let summary = monitor.sync(&hub.url).unwrap();
    assert!(summary.received >= 1, "{summary:?}");
    hub.stop();

    let log = hub.log_text();
    // The level asked for was in force for the hub's own crates.
    assert!(log.contains("DEBUG"), "the hub logged nothing at debug");
    assert!(log.contains(" sync"), "no sync lines");
    // What the hub made of the pushes, and a stop told apart from a crash.
    assert!(
        log.lines()
            .any(|l| l.contains("sync pushes judged") && l.contains("accepted=7")),
        "no line of the pushes' outcome"
    );
    assert!(log.contains("hub stopped"), "the stop is not in the log");
    let leaked: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| log.contains(n.as_str()))
        .map(|(i, _)| i)
        .collect();
    // Indexes, not names: the test's own output is scanned too.
    assert!(
        leaked.is_empty(),
        "names number {leaked:?} of the list are in the hub's log"
    );
    for device in [&monitor, &supervisor] {
        let secret = device.token_text.rsplit('.').next().unwrap();
        assert!(!log.contains(secret), "a device's secret is in the log");
    }
    for dump in [
        "executing statement",
        "with parameters",
        "authorization:",
        "Authorization:",
    ] {
        assert!(!log.contains(dump), "the log holds {dump:?}");
    }
}

#[test]
fn at_debug_the_log_holds_no_record_bytes() {
    sync_named_records_with_log("debug");
}

#[test]
fn at_trace_for_every_library_the_log_holds_no_record_bytes() {
    sync_named_records_with_log(
        "trace,tokio_postgres=trace,postgres=trace,r2d2=trace,hyper=trace,hyper_util=trace,\
         axum=trace,tower=trace,automerge=trace,vigie_server=trace",
    );
}

//! Two hub processes on one PostgreSQL database (always PostgreSQL, whatever
//! `VIGIE_TEST_BACKEND` says): devices editing the same records at the same time through
//! different hubs converge and lose no update, and the same new record pushed to both hubs at
//! once ends as one record.

use crate::common;

use common::*;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::sync::SyncOptions;
use vigie_core::*;
use vigie_server::Database;
use vigie_server::client::HubClient;

/// Community monitors of C01, then one supervisor of the region: every device sees every child
/// case and visit of C01, so every device edits every shared record.
const MONITORS: usize = 4;
const DEVICES: usize = MONITORS + 1;
const ROUNDS: usize = 16;
const SHARED_CASES: usize = 2;
const SHARED_VISITS: usize = 2;

/// Each device's own field of a shared child case: nobody else writes it.
fn own_case_field(c: &mut ChildCase, device: usize) -> &mut String {
    match device {
        0 => &mut c.guardian,
        1 => &mut c.household,
        2 => &mut c.activity,
        3 => &mut c.name,
        _ => &mut c.case_code,
    }
}

/// Each device's own field of a shared visit.
fn own_visit_field(v: &mut Visit, device: usize) -> &mut i32 {
    let w = &mut v.workforce;
    match device {
        0 => &mut w.female.under_12,
        1 => &mut w.female.age_12_14,
        2 => &mut w.female.age_15_17,
        3 => &mut w.male.under_12,
        _ => &mut w.male.age_12_14,
    }
}

/// What one device did, to be found on every device and on the hub at the end.
#[derive(Default)]
struct Done {
    /// Follow-ups it added to shared cases: (case, follow-up key).
    followups: Vec<(Uuid, Uuid)>,
    /// Markers it inserted into the text of shared records: (record, marker).
    markers: Vec<(Uuid, String)>,
    /// The last value it gave its own field of each shared case and visit.
    case_field: HashMap<Uuid, String>,
    visit_field: HashMap<Uuid, i32>,
    /// Values it gave the field every device writes (`school` of shared cases).
    school: BTreeSet<String>,
    created: Vec<Uuid>,
    syncs: usize,
}

/// Inserts a marker at the start or the end of a text, as a whole word.
fn insert_marker(rng: &mut impl Rng, text: &mut String, marker: &str) {
    if rng.gen_bool(0.5) {
        text.insert_str(0, &format!("{marker} "));
    } else {
        text.push_str(&format!(" {marker}"));
    }
}

fn school_name(s: SchoolStatus) -> String {
    serde_json::to_value(s)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

/// Syncs a device through a hub; every sync must complete with nothing refused or failed.
fn sync_ok(d: &mut Device, url: &str) -> vigie_core::sync::SyncSummary {
    let summary = d
        .sync(url)
        .unwrap_or_else(|e| panic!("{} syncing through {url}: {e}", d.name));
    assert!(
        summary.refused.is_empty() && summary.failed.is_empty(),
        "{} through {url}: refused {:?}, failed {:?}",
        d.name,
        summary.refused,
        summary.failed
    );
    summary
}

/// Users and enrolled devices on the hubs' database (through the backend, as `vigie user add`
/// and `vigie device enrol` do).
fn enrol_devices(dir: &std::path::Path, url: &str) -> Vec<Device> {
    let backend = Database::Postgres {
        url: url.to_string(),
        connections: 1,
        data: dir.join("hubs"),
        key: vigie_server::hub_key::KeyOptions {
            key_hex: Some(SHARED_HUB_KEY.into()),
            ..Default::default()
        },
    }
    .open()
    .expect("open the hubs' database");
    // The monitors' devices are one monitor's phones and tablets: a visit's content is its
    // visitor's alone (`rights::Step::VisitContent`), and they all edit the shared visits.
    let monitor = backend
        .add_user(&User::new("monitor", Role::CommunityMonitor, &[C01]))
        .expect("add a user");
    let supervisor = backend
        .add_user(&User::new("supervisor", Role::Supervisor, &[REGION]))
        .expect("add a user");
    (0..DEVICES)
        .map(|i| {
            let (name, user, role, areas): (String, &User, Role, &[&str]) = if i < MONITORS {
                (
                    format!("monitor-{i}"),
                    &monitor,
                    Role::CommunityMonitor,
                    &[C01],
                )
            } else {
                (
                    "supervisor".into(),
                    &supervisor,
                    Role::Supervisor,
                    &[REGION],
                )
            };
            let token = backend.enrol(user.id).expect("enrol a device");
            Device::open(dir, &name, &token.to_text(), role, areas, i as u8 + 1)
        })
        .collect()
}

fn assert_clean_logs(hubs: &[&Hub]) {
    for hub in hubs {
        assert_eq!(
            hub.log_error_lines(),
            0,
            "{} logged errors:\n{}",
            hub.url,
            hub.log_tail(30)
        );
        assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
    }
}

#[test]
fn concurrent_edits_of_the_same_records_through_two_hubs_converge() {
    let started = Instant::now();
    let seed = seed("concurrent_edits_of_the_same_records_through_two_hubs_converge");
    let mut rng = rng(seed);
    let dir = TempDir::new().unwrap();
    let url = fresh_database("scale");
    let mut devices = enrol_devices(dir.path(), &url);
    let mut hub_a = Hub::start_on(&dir.path().join("hub-a"), &url);
    let mut hub_b = Hub::start_on(&dir.path().join("hub-b"), &url);
    let urls = [hub_a.url.clone(), hub_b.url.clone()];

    // The shared records: made by the first device, received by every other through either hub.
    let mut shared_cases = Vec::new();
    let mut shared_visits = Vec::new();
    {
        let d = &mut devices[0];
        for n in 0..SHARED_CASES {
            let id = create_record(&mut rng, &mut d.store, RecordKind::ChildCase, area(C01));
            let mut c: ChildCase = d.store.get(id).unwrap();
            c.notes = format!("Cas partagé {n}.");
            d.store.update(&c).unwrap();
            shared_cases.push(id);
        }
        // Drafts, which the visitor's devices go on writing.
        for day in 0..SHARED_VISITS {
            let mut v = visit(area(C01), uuid(&mut rng), d.store.user_id(), day as u32 + 1);
            v.status = VisitStatus::Draft;
            shared_visits.push(d.store.create(&v).unwrap().id);
        }
        sync_ok(d, &urls[0]);
    }
    for (i, d) in devices.iter_mut().enumerate().skip(1) {
        sync_ok(d, &urls[i % 2]);
        for id in shared_cases.iter().chain(&shared_visits) {
            assert!(d.has(*id), "{} lacks shared record {id}", d.name);
        }
    }

    // Every device edits every shared record and creates records, syncing after each round
    // through one hub then the other, all devices at once.
    let barrier = Arc::new(Barrier::new(DEVICES));
    let handles: Vec<_> = devices
        .into_iter()
        .enumerate()
        .map(|(i, mut d)| {
            let (urls, barrier) = (urls.clone(), barrier.clone());
            let (cases, visits) = (shared_cases.clone(), shared_visits.clone());
            let mut rng = common::rng(seed ^ ((i as u64 + 1) << 40));
            std::thread::spawn(move || {
                let mut done = Done::default();
                barrier.wait();
                for round in 0..ROUNDS {
                    for &id in &cases {
                        let mut c: ChildCase = d.store.get(id).unwrap();
                        let key = uuid(&mut rng);
                        let date = identified_on() + chrono::Days::new(1 + round as u64);
                        c.followups.insert(
                            key,
                            FollowUp {
                                date,
                                situation: FollowUpSituation::AtRisk,
                                notes: format!("Suivi {} tour {round}", d.name),
                                next_due: Some(date + chrono::Days::new(30)),
                            },
                        );
                        done.followups.push((id, key));
                        // One word: one device's field is the case code.
                        let value = format!("{}-tour-{round}", d.name).replace(' ', "-");
                        *own_case_field(&mut c, i) = value.clone();
                        done.case_field.insert(id, value);
                        let marker = format!("[{}.{round}]", d.name);
                        insert_marker(&mut rng, &mut c.notes, &marker);
                        done.markers.push((id, marker));
                        if rng.gen_bool(0.5) {
                            let school = [
                                SchoolStatus::Attending,
                                SchoolStatus::AttendingIrregularly,
                                SchoolStatus::DroppedOut,
                                SchoolStatus::NeverEnrolled,
                            ][rng.gen_range(0..4)];
                            c.school = school;
                            done.school.insert(school_name(school));
                        }
                        d.store.update(&c).unwrap();
                    }
                    // The supervisor reviews visits; it does not write them.
                    for &id in visits.iter().filter(|_| i < MONITORS) {
                        let mut v: Visit = d.store.get(id).unwrap();
                        let value = (100 * i + round + 1) as i32;
                        *own_visit_field(&mut v, i) = value;
                        done.visit_field.insert(id, value);
                        let marker = format!("[{}.{round}]", d.name);
                        insert_marker(&mut rng, &mut v.findings, &marker);
                        done.markers.push((id, marker));
                        d.store.update(&v).unwrap();
                    }
                    let kind = if rng.gen_bool(0.5) {
                        RecordKind::ChildCase
                    } else {
                        RecordKind::Visit
                    };
                    done.created
                        .push(create_record(&mut rng, &mut d.store, kind, area(C01)));
                    if rng.gen_bool(0.5) {
                        std::thread::sleep(Duration::from_millis(rng.gen_range(0..20)));
                    }
                    sync_ok(&mut d, &urls[(i + round) % 2]);
                    done.syncs += 1;
                }
                (d, done)
            })
        })
        .collect();
    let (mut devices, done): (Vec<Device>, Vec<Done>) = handles
        .into_iter()
        .map(|h| h.join().expect("a device thread failed"))
        .unzip();

    // Every device of the visitor sets the same field of the first shared visit to its own
    // value, offline, then all sync at once: the hub must keep every value, as a conflict.
    let conflicted = shared_visits[0];
    for (i, d) in devices.iter_mut().enumerate().take(MONITORS) {
        let mut v: Visit = d.store.get(conflicted).unwrap();
        v.workforce.male.adults = 1_000 + i as i32;
        d.store.update(&v).unwrap();
    }
    std::thread::scope(|s| {
        for (i, d) in devices.iter_mut().enumerate() {
            let url = &urls[i % 2];
            s.spawn(move || sync_ok(d, url));
        }
    });

    // Quiescence: a few rounds through alternating hubs, until a whole round moves nothing.
    let mut quiet = false;
    for round in 0..6 {
        let mut moved = 0;
        for (i, d) in devices.iter_mut().enumerate() {
            let summary = sync_ok(d, &urls[(i + round) % 2]);
            moved += summary.accepted + summary.received + summary.pending;
        }
        if moved == 0 {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "the devices still exchange records after 6 rounds");

    hub_a.stop();
    hub_b.stop();
    assert_clean_logs(&[&hub_a, &hub_b]);
    let hub = hub_a.open_store();

    // Every device and the hub hold the same records with the same heads.
    let on_hub: BTreeSet<(RecordKind, Uuid)> = all_records(&hub).into_iter().collect();
    let created: Vec<Uuid> = done.iter().flat_map(|d| d.created.clone()).collect();
    assert_eq!(
        on_hub.len(),
        SHARED_CASES + SHARED_VISITS + created.len(),
        "records on the hub"
    );
    for id in &created {
        assert!(
            hub.kind_of(*id).is_ok(),
            "created record {id} is not on the hub"
        );
    }
    for d in &devices {
        let mine: BTreeSet<(RecordKind, Uuid)> = all_records(&d.store).into_iter().collect();
        assert_eq!(mine, on_hub, "{} holds other records than the hub", d.name);
        for (_, id) in &on_hub {
            assert_eq!(
                heads(&d.store, *id),
                heads(&hub, *id),
                "{}: heads of {id} differ from the hub's",
                d.name
            );
        }
    }

    // No update lost: every follow-up, every marker, every device's last value of its own
    // fields, and every value of the field all devices wrote at once.
    for (i, did) in done.iter().enumerate() {
        for (id, key) in &did.followups {
            let c: ChildCase = hub.get(*id).unwrap();
            assert!(
                c.followups.contains_key(key),
                "follow-up {key} of {id} lost"
            );
        }
        for (id, marker) in &did.markers {
            let text = match hub.kind_of(*id).unwrap() {
                RecordKind::ChildCase => hub.get::<ChildCase>(*id).unwrap().notes,
                _ => hub.get::<Visit>(*id).unwrap().findings,
            };
            assert!(
                text.contains(marker.as_str()),
                "{marker} lost from {id}: {text}"
            );
        }
        for (id, value) in &did.case_field {
            let mut c: ChildCase = hub.get(*id).unwrap();
            assert_eq!(
                own_case_field(&mut c, i),
                value,
                "device {i}'s field of {id}"
            );
        }
        for (id, value) in &did.visit_field {
            let mut v: Visit = hub.get(*id).unwrap();
            assert_eq!(
                own_visit_field(&mut v, i),
                value,
                "device {i}'s field of {id}"
            );
        }
    }
    let every_school: BTreeSet<String> = done.iter().flat_map(|d| d.school.clone()).collect();
    for id in &shared_cases {
        let c: ChildCase = hub.get(*id).unwrap();
        let school = school_name(c.school);
        assert!(
            every_school.contains(&school) || c.school == SchoolStatus::Unknown,
            "school of {id} is {school}, which no device set"
        );
    }
    let conflicts = hub.conflicts(conflicted).unwrap();
    let path = ["workforce", "male", "adults"].map(String::from).to_vec();
    let values: BTreeSet<u64> = conflicts
        .iter()
        .find(|c| c.path == path)
        .unwrap_or_else(|| panic!("no conflict on workforce.male.adults: {conflicts:?}"))
        .values
        .iter()
        .map(|v| v.value.as_u64().unwrap())
        .collect();
    let expected: BTreeSet<u64> = (0..MONITORS as u64).map(|i| 1_000 + i).collect();
    assert_eq!(values, expected, "every device's concurrent value is kept");
    for d in &devices {
        assert_eq!(
            d.store.conflicts(conflicted).unwrap(),
            conflicts,
            "{}'s conflicts",
            d.name
        );
    }

    drop(hub);
    drop_database(&url);
    let syncs: usize = done.iter().map(|d| d.syncs).sum();
    println!(
        "{DEVICES} devices, {ROUNDS} rounds, {syncs} concurrent syncs through 2 hubs, {} records, \
         {} follow-ups, {} markers; {:.1} s",
        on_hub.len(),
        done.iter().map(|d| d.followups.len()).sum::<usize>(),
        done.iter().map(|d| d.markers.len()).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn the_same_new_records_pushed_to_two_hubs_at_once_become_one() {
    let started = Instant::now();
    let seed = seed("the_same_new_records_pushed_to_two_hubs_at_once_become_one");
    let mut rng = rng(seed);
    let dir = TempDir::new().unwrap();
    let url = fresh_database("twice");
    let mut devices = enrol_devices(dir.path(), &url);
    let mut hub_a = Hub::start_on(&dir.path().join("hub-a"), &url);
    let mut hub_b = Hub::start_on(&dir.path().join("hub-b"), &url);
    let options = SyncOptions::default();
    const ITERATIONS: usize = 8;
    const RECORDS: usize = 30;

    let mut created = Vec::new();
    for _ in 0..ITERATIONS {
        let d = &mut devices[0];
        let mut batch = Vec::new();
        for _ in 0..RECORDS {
            let kind = if rng.gen_bool(0.5) {
                RecordKind::ChildCase
            } else {
                RecordKind::Visit
            };
            batch.push(create_record(&mut rng, &mut d.store, kind, area(C01)));
        }
        // One request, sent to both hubs at the same moment.
        let request = d.store.hub_sync_request(&options).unwrap();
        let barrier = Barrier::new(2);
        let responses: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = [&hub_a.url, &hub_b.url]
                .into_iter()
                .map(|url| {
                    let (barrier, request, token) = (&barrier, &request, &d.token);
                    s.spawn(move || {
                        let client = HubClient::new(url, token);
                        barrier.wait();
                        client.exchange(request)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().expect("both hubs answer 200"))
                .collect()
        });
        for response in &responses {
            let report = d.store.hub_sync_apply(response, &options).unwrap();
            assert_eq!(report.accepted, RECORDS, "{report:?}");
            assert!(report.refused.is_empty() && report.failed.is_empty());
        }
        let after = sync_ok(d, &hub_a.url);
        assert_eq!(after.pending, 0, "{after:?}");
        created.extend(batch);
    }

    // Another device receives each record once, through either hub.
    for (i, d) in devices.iter_mut().enumerate().skip(1) {
        sync_ok(d, [&hub_a.url, &hub_b.url][i % 2]);
    }
    hub_a.stop();
    hub_b.stop();
    assert_clean_logs(&[&hub_a, &hub_b]);

    // One row per record and one change-log entry each: the second hub merged nothing new.
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let rows: BTreeMap<Uuid, i64> = client
        .query(
            "SELECT record_id, count(*) FROM change_log WHERE record_id = ANY($1)
             GROUP BY record_id",
            &[&created],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows.len(), created.len(), "records on the hub");
    assert!(
        rows.values().all(|n| *n == 1),
        "change-log entries: {rows:?}"
    );
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM records WHERE id = ANY($1)",
            &[&created],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored as usize, created.len());

    // Transactions that collided on a new record's key were rolled back and ran again.
    let rolled_back: i64 = client
        .query_one(
            "SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0);

    let hub = hub_a.open_store();
    for d in &devices {
        for id in &created {
            assert_eq!(heads(&d.store, *id), heads(&hub, *id), "{}: {id}", d.name);
        }
    }
    drop(client);
    drop_database(&url);
    println!(
        "{} records each pushed to 2 hubs at once in {ITERATIONS} requests, {rolled_back} \
         transactions rolled back (and run again); {:.1} s",
        created.len(),
        started.elapsed().as_secs_f64()
    );
}

//! `vigie-bench hostile`: the hub's peak memory while the hostile inputs of issue 11 arrive
//! (target ≤ 256 MB), and whether honest devices still sync meanwhile.
//!
//! The real `vigie` binary serves (`real_hub.rs`); a supervisor and a community monitor sync
//! in a loop from another thread the whole time. The inputs come one kind after another, the
//! hub's peak resident memory (VmHWM) read after each:
//! - `stalled_uploads`: 100 connections without a valid token declaring 8 MiB bodies, sending
//!   what the hub reads of 1 MiB, then stalling;
//! - `connection_flood`: 2,000 connections that send half a request head and stall;
//! - `zstd_bombs`: 16 requests (4 at a time) from an enrolled device, each a zstd frame of
//!   256 MiB of zeros;
//! - `huge_lengths`: 200 requests whose message declares lengths of 4 billion;
//! - `refetch_amplification`: 4 requests at once naming one in-scope 1 MiB record 200 times;
//! - `huge_documents`: a case pushed with a 20 MiB field;
//! - `deep_nesting`: a case pushed with a field nesting maps 1,000 deep (last: it ended hubs
//!   that read it recursively);
//! - `heavy_records`: valid records as large as the bounds let a device make them (workplaces
//!   of 5,000 buyers and 5,000 suppliers of 120 characters, 6 a request, 2 requests at a time,
//!   each record new), from a monitor of
//!   another region, whose records the honest devices do not receive: their syncs meanwhile,
//!   p50 and p99 (`heavy_records_honest_sync_p99`; they once waited a quarter of a second
//!   behind each such record holding the writer).
//!
//! The last two (and the amplification) are refused only where the hub bounds documents and
//! response budgets; the inputs are built all the same.

use crate::real_hub::{Backend, HubData, RealHub, device_store, hub_bin};
use crate::{BoxResult, Report, percentile};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, ObjType, ROOT, ScalarValue};
use chrono::NaiveDate;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;
use vigie_core::doc::ChangeAuthor;
use vigie_core::sync::SyncOptions;
use vigie_core::sync::wire::{PushEntry, SyncRequest, encode_request};
use vigie_core::{Area, ChildCase, FollowUp, FollowUpSituation, Formality, Sex, Store, Workplace};
use vigie_server::auth::Token;
use vigie_server::client::HubClient;

pub struct HostileArgs {
    pub backends: Vec<Backend>,
    pub hub_bin: Option<String>,
    pub postgres: Option<String>,
}

const C01: &str = "CI-R1-D1-C01";
const TARGET_MB: f64 = 256.0;
/// A 5-byte varint of about 4 billion.
const HUGE_LEN: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];

fn area() -> Area {
    Area::new("CI", "CI-R1", "CI-R1-D1", C01)
}

fn case(n: usize, by: Uuid) -> ChildCase {
    let day = NaiveDate::from_ymd_opt(2026, 5, 1).expect("a date");
    let mut c = ChildCase::new(
        &format!("H-{n}"),
        &format!("Enfant {n}"),
        Sex::Male,
        area(),
        day,
        by,
    );
    c.estimated_age = Some(11);
    c
}

/// Buyers, and suppliers, of each heavy record: the most a workplace may name, each name as
/// long as a line may be (1.2 MB a record, within its 2 MiB).
const HEAVY_BUYERS: usize = vigie_core::domain::validation::MAX_BUYERS_OR_SUPPLIERS;
const HEAVY_NAME_CHARS: usize = vigie_core::domain::validation::MAX_LINE_CHARS;
/// Heavy records a request, and requests.
const HEAVY_PER_REQUEST: usize = 6;
const HEAVY_REQUESTS: usize = 8;

/// Where the heavy records are filed: a region the honest devices do not cover.
const HEAVY_COMMUNITY: &str = "CI-R2-D1-C01";

/// Requests of new workplaces, each as large as the bounds let a record be, created on the
/// device of a monitor of `HEAVY_COMMUNITY` (valid: the hub judges them whole).
fn heavy_requests(store: &mut Store) -> BoxResult<Vec<Vec<u8>>> {
    let area = Area::new("CI", "CI-R2", "CI-R2-D1", HEAVY_COMMUNITY);
    let mut requests = Vec::new();
    for r in 0..HEAVY_REQUESTS {
        let mut push = Vec::new();
        for n in 0..HEAVY_PER_REQUEST {
            let mut workplace = Workplace::new(
                &format!("Atelier {r}-{n}"),
                "cocoa",
                Formality::Informal,
                area.clone(),
            );
            let names = |prefix: char| -> std::collections::BTreeSet<String> {
                (0..HEAVY_BUYERS)
                    .map(|b| format!("{prefix}{b:0>width$}", width = HEAVY_NAME_CHARS - 1))
                    .collect()
            };
            workplace.buyers = names('b');
            workplace.suppliers = names('s');
            let created = store.create(&workplace)?;
            push.push(PushEntry {
                id: created.id,
                heads: created.version.heads().iter().map(|h| h.0).collect(),
                changes: store.export_document(created.id)?,
            });
        }
        requests.push(request(store, push, Vec::new()));
    }
    Ok(requests)
}

/// Honest devices syncing in a loop until told to stop.
struct Honest {
    ok: AtomicUsize,
    failed: AtomicUsize,
    stop: AtomicBool,
    times: Mutex<Vec<Duration>>,
}

impl Honest {
    fn run(&self, url: &str, devices: &mut [(Token, Store)]) {
        let mut n = 0usize;
        while !self.stop.load(Ordering::Acquire) {
            for (token, store) in devices.iter_mut() {
                let started = Instant::now();
                let outcome = (|| -> BoxResult<()> {
                    if n.is_multiple_of(2) {
                        store.create(&case(1_000_000 + n, token.user))?;
                    }
                    HubClient::new(url, token).sync(store, &SyncOptions::default(), |_| {})?;
                    Ok(())
                })();
                match outcome {
                    Ok(()) => {
                        self.ok.fetch_add(1, Ordering::Relaxed);
                        self.times
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(started.elapsed());
                    }
                    Err(e) => {
                        eprintln!("hostile: an honest sync failed: {e}");
                        self.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sends `body` as the device's sync request; the HTTP status (0 if the exchange failed).
fn post(url: &str, token: &Token, body: &[u8]) -> u16 {
    match HubClient::new(url, token).exchange(body) {
        Ok(_) => 200,
        Err(e) => e
            .strip_prefix("hub answered ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or(0),
    }
}

/// A request of the device's actor, with these pushes and refetches.
fn request(store: &Store, push: Vec<PushEntry>, refetch: Vec<Uuid>) -> Vec<u8> {
    encode_request(&SyncRequest {
        actor: store.actor().to_bytes().to_vec(),
        cursor: None,
        push,
        refetch,
        max_response_bytes: 4 * 1024 * 1024,
        receipt: 0,
        identity: None,
        headless_documents: false,
        incarnation: None,
        device_clock: None,
    })
}

/// Changes to a stored case made with the device's own actor and signed as its user: what a
/// hostile app on an enrolled phone can send.
fn forged_push(
    store: &Store,
    token: &Token,
    id: Uuid,
    edit: impl FnOnce(
        &mut automerge::transaction::Transaction<'_>,
    ) -> Result<(), automerge::AutomergeError>,
) -> BoxResult<PushEntry> {
    let mut doc = Automerge::load(&store.export_document(id)?)?.with_actor(store.actor().clone());
    let before = doc.get_heads();
    let mut tx = doc.transaction();
    edit(&mut tx)?;
    let message = serde_json::to_string(&ChangeAuthor {
        user: token.user,
        device: token.device,
    })?;
    tx.commit_with(
        CommitOptions::default()
            .with_message(message)
            .with_time(chrono::Utc::now().timestamp_millis()),
    );
    Ok(PushEntry {
        id,
        heads: doc.get_heads().iter().map(|h| h.0).collect(),
        changes: doc.save_after(&before),
    })
}

/// Runs `count` sends of `make(i)` on `threads` threads; how many got each status.
fn send_all(
    threads: usize,
    count: usize,
    send: &(dyn Fn(usize) -> u16 + Sync),
) -> std::collections::BTreeMap<u16, usize> {
    let next = AtomicUsize::new(0);
    let statuses = Mutex::new(std::collections::BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return;
                    }
                    let status = send(i);
                    *statuses
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(status)
                        .or_default() += 1;
                }
            });
        }
    });
    statuses.into_inner().unwrap_or_else(|p| p.into_inner())
}

fn stalled(addr: &str, head: &[u8], body: usize) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    stream.write_all(head).ok()?;
    let chunk = vec![0x77u8; 64 * 1024];
    let mut sent = 0;
    while sent < body {
        if stream.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    Some(stream)
}

fn phase(report: &Report, name: &str, phase: &str, hub: &mut RealHub, what: String) {
    let alive = hub.alive();
    let peak = if alive { hub.peak_rss_mb() } else { 0.0 };
    eprintln!("hostile {name}: {phase}: {what}; hub peak {peak:.1} MB, alive {alive}");
    if alive {
        report.emit(&format!("{name}_{phase}_peak_rss"), peak, "MB");
    }
}

fn run(backend: Backend, args: &HostileArgs, report: &Report) -> BoxResult<()> {
    let name = backend.name();
    let bin = hub_bin(args.hub_bin.clone())?;
    let hub_data = HubData::new(&bin, backend, args.postgres.as_deref())?;
    let supervisor_token = hub_data.user_with_device("Superviseur", "supervisor", "CI-R1")?;
    let monitor_token = hub_data.user_with_device("Moniteur", "community-monitor", C01)?;
    let hostile_token = hub_data.user_with_device("Hostile", "community-monitor", C01)?;
    let heavy_token = hub_data.user_with_device("Lourd", "community-monitor", HEAVY_COMMUNITY)?;
    let dir = hub_data.dir.path().to_path_buf();
    let mut hub = hub_data.serve()?;
    let url = hub.url.clone();
    let addr = hub.addr().to_string();

    // The records the attacks aim at: a case of the monitor's community about as large as the
    // bounds on a record allow (texts of at most 32,768 characters, each character one of the
    // operations a record may hold), and a case of the hostile device's own, synced.
    let mut supervisor = device_store(&dir, "supervisor", &supervisor_token)?;
    let mut big = case(1, supervisor_token.user);
    let mut words = (0..).map(|i: u64| format!("{:x} ", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let mut text = || {
        let mut t = String::new();
        for w in words.by_ref() {
            if t.len() + w.len() > 32_000 {
                break;
            }
            t.push_str(&w);
        }
        t
    };
    big.notes = text();
    let day = NaiveDate::from_ymd_opt(2026, 5, 2).expect("a date");
    // The notes, then as many follow-ups' notes as the bound on operations leaves room for
    // (a few thousand kept for the rest of the record).
    let texts = (vigie_core::DocumentLimits::STANDARD.max_operations as usize - 4_000) / 32_000;
    for _ in 1..texts {
        big.followups.insert(
            Uuid::now_v7(),
            FollowUp {
                date: day,
                situation: FollowUpSituation::AtRisk,
                notes: text(),
                next_due: None,
            },
        );
    }
    let big = supervisor.create(&big)?;
    HubClient::new(&url, &supervisor_token).sync(
        &mut supervisor,
        &SyncOptions::default(),
        |_| {},
    )?;
    let mut hostile = device_store(&dir, "hostile", &hostile_token)?;
    let own = hostile.create(&case(2, hostile_token.user))?;
    HubClient::new(&url, &hostile_token).sync(&mut hostile, &SyncOptions::default(), |_| {})?;
    let mut heavy_device = device_store(&dir, "heavy", &heavy_token)?;
    HubClient::new(&url, &heavy_token).sync(&mut heavy_device, &SyncOptions::default(), |_| {})?;
    let heavy = heavy_requests(&mut heavy_device)?;
    let monitor = device_store(&dir, "monitor", &monitor_token)?;
    phase(report, name, "baseline", &mut hub, "set up".into());

    let honest = Honest {
        ok: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        times: Mutex::new(Vec::new()),
    };
    let mut honest_devices = vec![(supervisor_token, supervisor), (monitor_token, monitor)];
    std::thread::scope(|scope| -> BoxResult<()> {
        let honest_thread = scope.spawn(|| honest.run(&url, &mut honest_devices));

        // Stalled uploads without a valid token.
        let mut held = Vec::new();
        for i in 0..100 {
            let authorization = if i % 2 == 0 {
                String::new()
            } else {
                "Authorization: Bearer vgd1.forged.token.here\r\n".to_string()
            };
            let head = format!(
                "POST /v1/sync HTTP/1.1\r\nHost: {addr}\r\n{authorization}\
                 Content-Length: {}\r\n\r\n",
                8 << 20
            );
            held.extend(stalled(&addr, head.as_bytes(), 1 << 20));
        }
        std::thread::sleep(Duration::from_secs(3));
        let open = held.len();
        held.clear();
        phase(
            report,
            name,
            "stalled_uploads",
            &mut hub,
            format!("{open} connections"),
        );

        // A flood of connections that never finish their head.
        for _ in 0..2_000 {
            held.extend(stalled(&addr, b"POST /v1/sync HTTP/1.1\r\nHost: x\r\n", 0));
        }
        std::thread::sleep(Duration::from_secs(3));
        let open = held.len();
        held.clear();
        phase(
            report,
            name,
            "connection_flood",
            &mut hub,
            format!("{open} connections"),
        );

        // zstd bombs from an enrolled device.
        let mut bomb = b"VGq1".to_vec();
        {
            let mut encoder = zstd::stream::Encoder::new(&mut bomb, 19)?;
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..256 {
                encoder.write_all(&zeros)?;
            }
            encoder.finish()?;
        }
        let statuses = send_all(4, 16, &|_| post(&url, &hostile_token, &bomb));
        phase(
            report,
            name,
            "zstd_bombs",
            &mut hub,
            format!("16 of {} bytes: {statuses:?}", bomb.len()),
        );

        // Lengths of 4 billion, spliced into a real request's message.
        let plain = {
            let real = request(&hostile, Vec::new(), vec![own.id]);
            let mut plain = Vec::new();
            zstd::stream::Decoder::new(&real[4..])?.read_to_end(&mut plain)?;
            plain
        };
        let spliced: Vec<Vec<u8>> = (0..plain.len().min(200))
            .map(|at| {
                let mut p = plain.clone();
                p.splice(at..(at + 1).min(p.len()), HUGE_LEN);
                let mut out = b"VGq1".to_vec();
                let mut encoder = zstd::stream::Encoder::new(&mut out, 3).expect("encoder");
                encoder.include_checksum(true).expect("checksum flag");
                encoder.write_all(&p).expect("in memory");
                encoder.finish().expect("in memory");
                out
            })
            .collect();
        let statuses = send_all(4, spliced.len(), &|i| {
            post(&url, &hostile_token, &spliced[i])
        });
        phase(
            report,
            name,
            "huge_lengths",
            &mut hub,
            format!("{statuses:?}"),
        );

        // One in-scope record named 200 times.
        let amplified = request(&hostile, Vec::new(), vec![big.id; 200]);
        let statuses = send_all(4, 4, &|_| post(&url, &hostile_token, &amplified));
        phase(
            report,
            name,
            "refetch_amplification",
            &mut hub,
            format!("{statuses:?}"),
        );

        // A 20 MiB field.
        let huge = forged_push(&hostile, &hostile_token, own.id, |tx| {
            let text = "travail ".repeat(20 << 17);
            tx.put(ROOT, "annexe", ScalarValue::Str(text.into()))
        })?;
        let body = request(&hostile, vec![huge], Vec::new());
        let statuses = send_all(1, 2, &|_| post(&url, &hostile_token, &body));
        phase(
            report,
            name,
            "huge_documents",
            &mut hub,
            format!("{} bytes: {statuses:?}", body.len()),
        );

        // Maps nested 1,000 deep.
        let deep = forged_push(&hostile, &hostile_token, own.id, |tx| {
            let mut obj = tx.put_object(ROOT, "annexe_2", ObjType::Map)?;
            for _ in 0..1_000 {
                obj = tx.put_object(&obj, "x", ObjType::Map)?;
            }
            Ok(())
        })?;
        let body = request(&hostile, vec![deep], Vec::new());
        let status = post(&url, &hostile_token, &body);
        std::thread::sleep(Duration::from_millis(500));
        phase(
            report,
            name,
            "deep_nesting",
            &mut hub,
            format!("{} bytes: {status}", body.len()),
        );

        // Valid records as heavy as the bounds allow, new each time, 2 requests at a time (the
        // most a device has served at once).
        let during = honest.times.lock().unwrap_or_else(|p| p.into_inner()).len();
        let statuses = send_all(2, heavy.len(), &|i| post(&url, &heavy_token, &heavy[i]));
        let mut times = honest.times.lock().unwrap_or_else(|p| p.into_inner())[during..].to_vec();
        times.sort_unstable();
        if !times.is_empty() {
            for (quantile, at) in [("p50", 0.5), ("p99", 0.99)] {
                report.emit(
                    &format!("{name}_heavy_records_honest_sync_{quantile}"),
                    crate::ms(percentile(&times, at)),
                    "ms",
                );
            }
        }
        phase(
            report,
            name,
            "heavy_records",
            &mut hub,
            format!(
                "{} requests of {HEAVY_PER_REQUEST} records of {HEAVY_BUYERS} buyers and suppliers, {} bytes \
                 each: {statuses:?}; {} honest syncs meanwhile",
                heavy.len(),
                heavy[0].len(),
                times.len()
            ),
        );

        // Honest devices once more, after it all.
        std::thread::sleep(Duration::from_secs(1));
        honest.stop.store(true, Ordering::Release);
        honest_thread
            .join()
            .map_err(|_| "the honest devices' thread panicked")?;
        Ok(())
    })?;
    let alive = hub.alive();
    let peak = if alive { hub.peak_rss_mb() } else { 0.0 };
    report.emit(
        &format!("{name}_hub_alive"),
        f64::from(u8::from(alive)),
        "bool",
    );
    if alive {
        report.emit(&format!("{name}_peak_rss"), peak, "MB");
        report.emit(
            &format!("{name}_peak_rss_within_target"),
            f64::from(u8::from(peak <= TARGET_MB)),
            "bool",
        );
    }
    let mut times = honest.times.into_inner().unwrap_or_else(|p| p.into_inner());
    times.sort_unstable();
    report.emit(
        &format!("{name}_honest_syncs_ok"),
        honest.ok.load(Ordering::Relaxed) as f64,
        "syncs",
    );
    report.emit(
        &format!("{name}_honest_syncs_failed"),
        honest.failed.load(Ordering::Relaxed) as f64,
        "syncs",
    );
    if !times.is_empty() {
        report.emit(
            &format!("{name}_honest_sync_p99"),
            crate::ms(percentile(&times, 0.99)),
            "ms",
        );
    }
    drop(hub);
    hub_data.finish()
}

pub fn bench_hostile(args: &HostileArgs) -> BoxResult<()> {
    let report = Report {
        bench: "hostile",
        scale: None,
    };
    for backend in &args.backends {
        run(*backend, args, &report)?;
    }
    Ok(())
}

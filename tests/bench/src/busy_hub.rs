//! `vigie-bench busy-hub`: how long an honest device's small sync takes while another device
//! pushes thousands of records (issue 17's hub concurrency target: p99 ≤ 250 ms on the
//! embedded store).
//!
//! The real `vigie` binary serves (`real_hub.rs`). A community monitor's device holds a few
//! cases; its small sync is one edited case pushed and whatever is new pulled. Timed first
//! alone, then, for each round, while a supervisor's device pushes `--records` new records in
//! one session (one request when they fit: a tablet on a good link, 8 MiB messages), until
//! that push ends.

use crate::real_hub::{Backend, HubData, device_store, hub_bin};
use crate::{BoxResult, Report, percentile};
use chrono::NaiveDate;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vigie_core::sync::SyncOptions;
use vigie_core::{Area, ChildCase, Formality, Sex, Store, Workplace};
use vigie_server::auth::Token;
use vigie_server::client::HubClient;

pub struct BusyHubArgs {
    pub backends: Vec<Backend>,
    pub records: usize,
    pub rounds: usize,
    pub hub_bin: Option<String>,
    pub postgres: Option<String>,
}

const C01: &str = "CI-R1-D1-C01";
/// Small syncs timed on an idle hub.
const IDLE_SYNCS: usize = 40;

fn community(i: usize) -> Area {
    let d = i % 4 + 1;
    let c = i % 10 + 1;
    Area::new(
        "CI",
        "CI-R1",
        &format!("CI-R1-D{d}"),
        &format!("CI-R1-D{d}-C{c:02}"),
    )
}

fn case(area: Area, n: usize, by: uuid::Uuid) -> ChildCase {
    let day = NaiveDate::from_ymd_opt(2026, 5, 1).expect("a date");
    let mut c = ChildCase::new(
        &format!("B-{n}"),
        &format!("Enfant {n}"),
        Sex::Female,
        area,
        day,
        by,
    );
    c.estimated_age = Some(8 + (n % 10) as i32);
    c.hours_per_week = (n % 50) as i32;
    c.notes = format!("Suivi numéro {n} : école, champ, récolte.");
    c
}

/// One small sync of the honest device: an edited case pushed, anything new pulled.
fn small_sync(store: &mut Store, client: &HubClient, n: usize) -> BoxResult<Duration> {
    let ids = store.ids_of_kind(vigie_core::RecordKind::ChildCase)?;
    let id = ids[n % ids.len()];
    let mut c: ChildCase = store.get(id)?;
    c.hours_per_week = (c.hours_per_week + 1) % 60;
    store.update(&c)?;
    let started = Instant::now();
    client.sync(store, &SyncOptions::default(), |_| {})?;
    Ok(started.elapsed())
}

fn run(backend: Backend, args: &BusyHubArgs, report: &Report) -> BoxResult<()> {
    let name = backend.name();
    let bin = hub_bin(args.hub_bin.clone())?;
    let hub_data = HubData::new(&bin, backend, args.postgres.as_deref())?;
    let honest_token = hub_data.user_with_device("Moniteur", "community-monitor", C01)?;
    let supervisor: uuid::Uuid = hub_data
        .admin(&[
            "user",
            "add",
            "--name",
            "Superviseur",
            "--role",
            "supervisor",
            "--area",
            "CI-R1",
        ])?
        .parse()?;
    let pushers: Vec<Token> = (0..args.rounds)
        .map(|_| hub_data.device_of(supervisor))
        .collect::<BoxResult<_>>()?;
    let dir = hub_data.dir.path().to_path_buf();
    let hub = hub_data.serve()?;

    let mut honest = device_store(&dir, "honest", &honest_token)?;
    for n in 0..5 {
        honest.create(&case(community(0), n, honest_token.user))?;
    }
    let client = HubClient::new(&hub.url, &honest_token);
    client.sync(&mut honest, &SyncOptions::default(), |_| {})?;

    let mut idle = Vec::new();
    for n in 0..IDLE_SYNCS {
        idle.push(small_sync(&mut honest, &client, n)?);
    }
    idle.sort_unstable();
    report.emit(
        &format!("{name}_idle_small_sync_p50"),
        crate::ms(percentile(&idle, 0.5)),
        "ms",
    );
    report.emit(
        &format!("{name}_idle_small_sync_p99"),
        crate::ms(percentile(&idle, 0.99)),
        "ms",
    );

    let mut busy = Vec::new();
    let mut push_ms = Vec::new();
    for (round, token) in pushers.iter().enumerate() {
        let mut pusher = device_store(&dir, &format!("pusher-{round}"), token)?;
        let mut workplaces = Vec::new();
        let mut cases = Vec::new();
        for n in 0..args.records {
            let area = community(n);
            if n.is_multiple_of(2) {
                let mut w = Workplace::new(
                    &format!("Plantation {round}-{n}"),
                    "cocoa",
                    Formality::Informal,
                    area,
                );
                w.notes = format!("Visite prévue, parcelle {n}.");
                workplaces.push(w);
            } else {
                cases.push(case(area, n, token.user));
            }
        }
        pusher.create_all(&workplaces)?;
        pusher.create_all(&cases)?;
        eprintln!(
            "busy-hub {name}: round {round}: pushing {} records",
            args.records
        );
        let done = AtomicBool::new(false);
        let url = hub.url.clone();
        let pushed = std::thread::scope(|scope| -> BoxResult<Duration> {
            let push = scope.spawn(|| -> Result<Duration, String> {
                let started = Instant::now();
                let options = SyncOptions {
                    max_message_bytes: 8 * 1024 * 1024,
                    ..SyncOptions::default()
                };
                let outcome = HubClient::new(&url, token)
                    .sync(&mut pusher, &options, |_| {})
                    .map_err(|e| e.to_string());
                done.store(true, Ordering::Release);
                let summary = outcome?;
                if summary.accepted < args.records || summary.pending != 0 {
                    return Err(format!("the push was not all accepted: {summary:?}"));
                }
                Ok(started.elapsed())
            });
            // Let the push reach the hub, then sync small until it ends.
            std::thread::sleep(Duration::from_millis(50));
            let mut n = 0;
            while !done.load(Ordering::Acquire) {
                busy.push(small_sync(&mut honest, &client, n)?);
                n += 1;
            }
            Ok(push.join().map_err(|_| "the pushing thread panicked")??)
        })?;
        push_ms.push(crate::ms(pushed));
    }
    busy.sort_unstable();
    if busy.is_empty() {
        return Err("no small sync ran during the pushes".into());
    }
    for (metric, p) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
        report.emit(
            &format!("{name}_busy_small_sync_{metric}"),
            crate::ms(percentile(&busy, p)),
            "ms",
        );
    }
    report.emit(
        &format!("{name}_busy_small_syncs"),
        busy.len() as f64,
        "syncs",
    );
    let mean_push = push_ms.iter().sum::<f64>() / push_ms.len() as f64;
    report.emit(&format!("{name}_push_wall"), mean_push, "ms");
    report.emit(
        &format!("{name}_push_records_per_s"),
        args.records as f64 / (mean_push / 1000.0),
        "records/s",
    );
    drop(hub);
    hub_data.finish()
}

pub fn bench_busy_hub(args: &BusyHubArgs) -> BoxResult<()> {
    let report = Report {
        bench: "busy-hub",
        scale: None,
    };
    for backend in &args.backends {
        run(*backend, args, &report)?;
    }
    Ok(())
}

//! `vigie-bench sync`: sync on the reference workload, against per-document Automerge sync.
//!
//! Processes, so that each figure is the one a user would see: the hub runs in a child process
//! (`vigie-bench hub-serve`, the real HTTP hub on 127.0.0.1), and each phone sync runs in another
//! (`vigie-bench phone-sync`) whose peak RSS is the phone's alone. This process generates the
//! workload, loads the hub's store, and runs the baseline in-process, one document at a time.
//!
//! Scenarios (shared/WORKLOAD.md): initial sync of a supervisor's whole scope to an empty phone;
//! no-op sync (both sides equal); 100 visits changed in one field (submitted → validated).

use crate::workload::{AnyRecord, Workload};
use crate::{BoxResult, JsonFloor, Report, peak_rss_mb};
use automerge::Automerge;
use automerge::sync::{State, SyncDoc};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;
use uuid::Uuid;
use vigie_core::sync::{HubLimits, HubStorage, SyncOptions};
use vigie_core::{
    ChildCase, Encryption, Role, Store, StoreConfig, User, Visit, VisitStatus, Workplace,
};
use vigie_server::auth::Token;
use vigie_server::client::HubClient;

const PHONE_KEY: [u8; 32] = [0x42; 32];
const CHANGED: usize = 100;

pub struct SyncOptionsArgs {
    pub scale: f64,
    pub noop_scale: f64,
    pub seed: u64,
}

/// A hub process, stopped when dropped.
pub(crate) struct HubProcess {
    pub(crate) child: Child,
    pub(crate) url: String,
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_hub(data: &Path) -> BoxResult<HubProcess> {
    spawn_hub(data, None, Stdio::inherit())
}

/// Starts `vigie-bench hub-serve` on the embedded store in `data`, or on PostgreSQL when
/// `database` is a URL (as `vigie serve --database`); its log goes to `stderr`.
pub(crate) fn spawn_hub(
    data: &Path,
    database: Option<&str>,
    stderr: Stdio,
) -> BoxResult<HubProcess> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["hub-serve", "--data"]).arg(data);
    if let Some(url) = database {
        command.args(["--database", url]);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(stderr).spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("hub has no stdout")?).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("unexpected hub output: {line}"))?
        .to_string();
    Ok(HubProcess { child, url })
}

/// What a phone process measured.
#[derive(serde::Deserialize, Debug)]
struct PhoneRun {
    wall_ms: f64,
    bytes_sent: f64,
    bytes_received: f64,
    round_trips: f64,
    received: f64,
    rss_mb: f64,
    /// The phone process's CPU time, all its threads.
    cpu_ms: f64,
    /// What the phone process wrote to storage, in bytes (`bytes_written`).
    bytes_written: f64,
    /// The phone's database file after the sync.
    db_bytes: f64,
    /// The same, table by table (`storage::table_bytes`).
    db_tables: BTreeMap<String, u64>,
    /// Records that left the phone's scope and were removed.
    left_scope: f64,
}

impl PhoneRun {
    /// The figures of a first sync to an empty phone, under `initial_` and `phone_db_`.
    fn emit_initial(&self, report: &Report) {
        report.emit("initial_wall", self.wall_ms, "ms");
        report.emit("initial_bytes_down", self.bytes_received, "B");
        report.emit("initial_round_trips", self.round_trips, "round trips");
        report.emit("initial_phone_peak_rss", self.rss_mb, "MB");
        report.emit("initial_phone_cpu", self.cpu_ms, "ms");
        // Unlike time, independent of what else the machine runs: how often the phone wrote
        // its file over (the file itself is `phone_db_bytes_per_record`).
        report.emit("initial_phone_written", self.bytes_written / 1e6, "MB");
        report.emit(
            "phone_db_bytes_per_record",
            self.db_bytes / self.received,
            "B",
        );
        crate::storage::emit_per_record(
            report,
            "phone_db_bytes_per_record",
            &self.db_tables,
            self.received,
        );
    }

    /// The figures of a sync that removed records from the phone, under `metric_`.
    fn emit_leaving(&self, report: &Report, metric: &str) {
        let bytes = self.bytes_sent + self.bytes_received;
        report.emit(&format!("{metric}_left"), self.left_scope, "records");
        report.emit(&format!("{metric}_bytes"), bytes, "B");
        report.emit(
            &format!("{metric}_round_trips"),
            self.round_trips,
            "round trips",
        );
        report.emit(&format!("{metric}_wall"), self.wall_ms, "ms");
    }
}

fn phone_sync(hub: &HubProcess, token: &Token, store: &Path) -> BoxResult<PhoneRun> {
    let output = Command::new(std::env::current_exe()?)
        .args([
            "phone-sync",
            "--hub",
            &hub.url,
            "--token",
            &token.to_text(),
            "--store",
        ])
        .arg(store)
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err("the phone process failed".into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Reference documents `build_hub` publishes (the area tree): every device receives them too.
const PUBLISHED: usize = 1;

/// How the benchmarks' hubs find their key: the default (a key file made beside the data
/// directory, as a new hub does), or no key when `VIGIE_BENCH_UNENCRYPTED=1` (to measure what
/// encryption costs in the same build).
pub(crate) fn hub_key() -> vigie_server::hub_key::KeyOptions {
    vigie_server::hub_key::KeyOptions {
        unencrypted: std::env::var("VIGIE_BENCH_UNENCRYPTED").is_ok_and(|v| v == "1"),
        ..Default::default()
    }
}

/// The embedded hub's store in `data`, opened with its key (`hub_key`).
fn open_hub_store(data: &Path) -> BoxResult<Store> {
    let encryption = vigie_server::hub_encryption(data, &hub_key())?;
    Ok(vigie_server::open_store(data, encryption)?)
}

/// The hub's store loaded with the workload (one transaction per chunk of records), a supervisor
/// for the region and an enrolled device. Returns the token and the JSON floor of the records.
fn build_hub(data: &Path, scale: f64, seed: u64) -> BoxResult<(Token, u64, usize)> {
    let mut store = open_hub_store(data)?;
    let areas = crate::workload::sample_areas();
    store.publish_reference(&areas.key, areas.content)?;
    let mut floor = JsonFloor::new()?;
    let (mut workplaces, mut visits, mut cases) = (Vec::new(), Vec::new(), Vec::new());
    let mut count = 0;
    let flush = |store: &mut Store,
                 w: &mut Vec<Workplace>,
                 v: &mut Vec<Visit>,
                 c: &mut Vec<ChildCase>|
     -> BoxResult<()> {
        store.create_all(w)?;
        store.create_all(v)?;
        store.create_all(c)?;
        w.clear();
        v.clear();
        c.clear();
        Ok(())
    };
    for record in Workload::new(seed, scale) {
        match record {
            // Users are the hub's administration, not part of what a phone receives.
            AnyRecord::User(_) => continue,
            AnyRecord::Workplace(r) => {
                floor.add(&r)?;
                workplaces.push(r)
            }
            AnyRecord::Visit(r) => {
                floor.add(&r)?;
                visits.push(r)
            }
            AnyRecord::ChildCase(r) => {
                floor.add(&r)?;
                cases.push(r)
            }
        }
        count += 1;
        if count % 5_000 == 0 {
            flush(&mut store, &mut workplaces, &mut visits, &mut cases)?;
            eprintln!("hub: {count} records loaded");
        }
    }
    flush(&mut store, &mut workplaces, &mut visits, &mut cases)?;
    let supervisor = store.create(&User::new("Superviseur", Role::Supervisor, &["CI-R1"]))?;
    store.close()?;
    let token =
        vigie_server::open_registry(data, &vigie_server::hub_encryption(data, &hub_key())?)?
            .enrol(supervisor.id)?;
    let (_, zstd) = floor.finish()?;
    Ok((token, zstd, count))
}

/// Changes one field of `n` visits on the hub (as a supervisor validating them would).
fn change_visits(data: &Path, n: usize) -> BoxResult<Vec<(Uuid, Vec<u8>)>> {
    let mut store = open_hub_store(data)?;
    let ids: Vec<Uuid> = store
        .visits(&Default::default(), vigie_core::Page::first(n as i32))?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let mut before = Vec::new();
    for id in ids {
        before.push((id, store.export_document(id)?));
        let mut visit: Visit = store.get(id)?;
        visit.status = VisitStatus::Validated;
        store.update(&visit)?;
    }
    store.close()?;
    Ok(before)
}

/// Moves `n` child cases out of the region, as the hub's administrator would (through the hub's
/// own write path, which keeps where they were filed).
fn move_cases_out(data: &Path, n: usize) -> BoxResult<()> {
    let mut store = open_hub_store(data)?;
    let ids: Vec<Uuid> = store
        .child_cases(&Default::default(), vigie_core::Page::first(n as i32))?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let actor = store.actor().clone();
    let reference = store.reference();
    let author = vigie_core::ChangeAuthor {
        user: Uuid::nil(),
        device: Uuid::nil(),
    };
    for id in ids {
        let mut case: ChildCase = store.get(id)?;
        case.area = vigie_core::Area::new("CI", "CI-R2", "CI-R2-D1", "CI-R2-D1-C01");
        store.in_transaction(&mut |tx| {
            vigie_core::sync::update_record(tx, &actor, author, &reference, &case).map(|_| ())
        })?;
    }
    store.close()?;
    Ok(())
}

/// Gives a user new areas on the hub (as `vigie user areas` does).
fn set_areas(data: &Path, user: Uuid, areas: &[&str]) -> BoxResult<()> {
    let mut store = open_hub_store(data)?;
    let actor = store.actor().clone();
    let reference = store.reference();
    let mut record: User = store.get(user)?;
    record.areas = areas.iter().map(|a| a.to_string()).collect();
    let author = vigie_core::ChangeAuthor {
        user: Uuid::nil(),
        device: Uuid::nil(),
    };
    store.in_transaction(&mut |tx| {
        vigie_core::sync::update_record(tx, &actor, author, &reference, &record).map(|_| ())
    })?;
    store.close()?;
    Ok(())
}

/// Per-document Automerge sync between two copies of one document until neither has anything
/// to say. Returns (bytes, messages) and leaves the states as persisted afterwards.
fn automerge_sync(
    hub: &Automerge,
    phone: &mut Automerge,
    hub_state: &mut State,
    phone_state: &mut State,
) -> BoxResult<(usize, usize)> {
    let mut hub = hub.clone();
    let (mut bytes, mut messages) = (0, 0);
    loop {
        let mut quiet = true;
        if let Some(m) = phone.generate_sync_message(phone_state) {
            let encoded = m.encode();
            bytes += encoded.len();
            messages += 1;
            hub.receive_sync_message(hub_state, automerge::sync::Message::decode(&encoded)?)?;
            quiet = false;
        }
        if let Some(m) = hub.generate_sync_message(hub_state) {
            let encoded = m.encode();
            bytes += encoded.len();
            messages += 1;
            phone.receive_sync_message(phone_state, automerge::sync::Message::decode(&encoded)?)?;
            quiet = false;
        }
        if quiet {
            return Ok((bytes, messages));
        }
    }
}

/// The baseline, one document after another from the hub's store: the initial sync to an empty
/// phone, then a no-op sync with the states persisted, then the sync after `changed` documents
/// gained one change. Returns (initial, noop, delta) each as (bytes, messages, seconds).
type Figures = (usize, usize, f64);

fn baseline(data: &Path, changed: &[(Uuid, Vec<u8>)]) -> BoxResult<(Figures, Figures, Figures)> {
    let store = open_hub_store(data)?;
    let mut all = Vec::new();
    let mut page = vigie_core::Page::first(vigie_core::Page::MAX_LIMIT);
    loop {
        let before = all.len();
        all.extend(
            store
                .workplaces(&Default::default(), page)?
                .into_iter()
                .map(|s| s.id),
        );
        all.extend(
            store
                .visits(&Default::default(), page)?
                .into_iter()
                .map(|s| s.id),
        );
        all.extend(
            store
                .child_cases(&Default::default(), page)?
                .into_iter()
                .map(|s| s.id),
        );
        if all.len() == before {
            break;
        }
        page = page.next();
    }
    let changed: std::collections::HashMap<Uuid, &Vec<u8>> =
        changed.iter().map(|(id, b)| (*id, b)).collect();
    let (mut initial, mut noop, mut delta) = ((0, 0, 0.0), (0, 0, 0.0), (0, 0, 0.0));
    for id in all {
        let now = Automerge::load(&store.export_document(id)?)?;
        // What the phone had before the change (for unchanged documents, the same).
        let old = match changed.get(&id) {
            Some(bytes) => Automerge::load(bytes)?,
            None => now.clone(),
        };
        let (mut hub_state, mut phone_state) = (State::new(), State::new());
        let mut phone = Automerge::new();
        let t = Instant::now();
        let (b, m) = automerge_sync(&old, &mut phone, &mut hub_state, &mut phone_state)?;
        initial = (
            initial.0 + b,
            initial.1 + m,
            initial.2 + t.elapsed().as_secs_f64(),
        );
        // Persist and reload the states, as an app between sessions.
        let mut hub_state = State::decode(&hub_state.encode())?;
        let mut phone_state = State::decode(&phone_state.encode())?;
        let (mut hs2, mut ps2) = (hub_state.clone(), phone_state.clone());
        let t = Instant::now();
        let (b, m) = automerge_sync(&old, &mut phone, &mut hs2, &mut ps2)?;
        noop = (noop.0 + b, noop.1 + m, noop.2 + t.elapsed().as_secs_f64());
        let t = Instant::now();
        let (b, m) = automerge_sync(&now, &mut phone, &mut hub_state, &mut phone_state)?;
        delta = (
            delta.0 + b,
            delta.1 + m,
            delta.2 + t.elapsed().as_secs_f64(),
        );
    }
    Ok((initial, noop, delta))
}

pub fn bench_sync(args: &SyncOptionsArgs) -> BoxResult<()> {
    let report = Report {
        bench: "sync",
        scale: Some(args.scale),
    };
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("hub");
    eprintln!("sync: loading the hub at scale {}", args.scale);
    let (token, floor_zstd, records) = build_hub(&data, args.scale, args.seed)?;
    report.emit("records", records as f64, "records");
    report.emit("json_zstd3_bytes", floor_zstd as f64, "B");

    let hub = start_hub(&data)?;
    let phone = dir.path().join("phone.db");
    let initial = phone_sync(&hub, &token, &phone)?;
    // The records, and the reference documents the hub published (its area tree).
    if initial.received as usize != records + PUBLISHED {
        return Err(format!(
            "the phone received {} of {records} records",
            initial.received
        )
        .into());
    }
    initial.emit_initial(&report);
    report.emit("initial_bytes_up", initial.bytes_sent, "B");
    report.emit(
        "initial_bytes_vs_json_zstd",
        initial.bytes_received / floor_zstd as f64,
        "ratio",
    );

    let noop = phone_sync(&hub, &token, &phone)?;
    report.emit("noop_bytes", noop.bytes_sent + noop.bytes_received, "B");
    report.emit("noop_round_trips", noop.round_trips, "round trips");
    drop(hub);

    let before = change_visits(&data, CHANGED)?;
    let hub = start_hub(&data)?;
    let delta = phone_sync(&hub, &token, &phone)?;
    report.emit(
        "delta_100_bytes",
        delta.bytes_sent + delta.bytes_received,
        "B",
    );
    report.emit("delta_100_round_trips", delta.round_trips, "round trips");
    report.emit("delta_100_received", delta.received, "records");
    drop(hub);

    // Records leaving the phone: 100 cases moved out of its scope, then its scope narrowed to
    // one district (what the new scope covers comes again: a new scope starts its walk over).
    move_cases_out(&data, CHANGED)?;
    let hub = start_hub(&data)?;
    let moved = phone_sync(&hub, &token, &phone)?;
    moved.emit_leaving(&report, "moved_out_100");
    drop(hub);
    set_areas(&data, token.user, &["CI-R1-D1"])?;
    let hub = start_hub(&data)?;
    let narrowed = phone_sync(&hub, &token, &phone)?;
    narrowed.emit_leaving(&report, "scope_narrowed");
    report.emit("scope_narrowed_received", narrowed.received, "records");
    report.emit("scope_narrowed_phone_peak_rss", narrowed.rss_mb, "MB");
    drop(hub);

    eprintln!("sync: per-document Automerge sync baseline");
    let ((ib, im, it), (nb, nm, _), (db, dm, _)) = baseline(&data, &before)?;
    report.emit("baseline_initial_bytes", ib as f64, "B");
    report.emit("baseline_initial_messages", im as f64, "messages");
    report.emit("baseline_initial_cpu", it * 1000.0, "ms");
    report.emit("baseline_noop_bytes", nb as f64, "B");
    report.emit("baseline_noop_messages", nm as f64, "messages");
    report.emit("baseline_delta_100_bytes", db as f64, "B");
    report.emit("baseline_delta_100_messages", dm as f64, "messages");
    report.emit(
        "ratio_initial_bytes",
        initial.bytes_received / ib as f64,
        "ratio",
    );
    report.emit(
        "ratio_noop_bytes",
        (noop.bytes_sent + noop.bytes_received) / nb as f64,
        "ratio",
    );
    report.emit(
        "ratio_delta_bytes",
        (delta.bytes_sent + delta.bytes_received) / db as f64,
        "ratio",
    );

    if args.noop_scale > 0.0 {
        let big = Report {
            bench: "sync",
            scale: Some(args.noop_scale),
        };
        let data = dir.path().join("hub-big");
        eprintln!(
            "sync: loading the hub at scale {} for the no-op sync",
            args.noop_scale
        );
        let (token, _, records) = build_hub(&data, args.noop_scale, args.seed)?;
        let hub = start_hub(&data)?;
        let phone = dir.path().join("phone-big.db");
        let first = phone_sync(&hub, &token, &phone)?;
        big.emit("records", records as f64, "records");
        first.emit_initial(&big);
        let noop = phone_sync(&hub, &token, &phone)?;
        big.emit("noop_bytes", noop.bytes_sent + noop.bytes_received, "B");
        big.emit("noop_round_trips", noop.round_trips, "round trips");
        big.emit("noop_wall", noop.wall_ms, "ms");
    }
    Ok(())
}

/// The phone side, run in its own process: opens (or creates) its store and syncs.
pub fn phone_main(hub: &str, token: &str, store_path: &Path) -> BoxResult<()> {
    let token = Token::parse(token)?;
    let config =
        StoreConfig::new(store_path, Encryption::Key(PHONE_KEY), token.user).device(token.device);
    let mut store = Store::open(config)?;
    let client = HubClient::new(hub, &token);
    let start = Instant::now();
    let summary = client.sync(&mut store, &SyncOptions::default(), |_| {})?;
    let wall = start.elapsed();
    let cpu_ms = crate::cpu_ms().unwrap_or(0.0);
    store.close()?;
    // After the checkpoint that closing makes: the WAL's pages copied into the file count.
    let bytes_written = crate::bytes_written().unwrap_or(0.0);
    let db_bytes = std::fs::metadata(store_path)?.len();
    let db_tables = crate::storage::table_bytes(store_path, &PHONE_KEY)?;
    println!(
        "{}",
        serde_json::json!({
            "wall_ms": wall.as_secs_f64() * 1000.0,
            "bytes_sent": summary.bytes_sent,
            "bytes_received": summary.bytes_received,
            "round_trips": summary.round_trips,
            "received": summary.received,
            "rss_mb": peak_rss_mb().unwrap_or(0.0),
            "cpu_ms": cpu_ms,
            "bytes_written": bytes_written,
            "db_bytes": db_bytes,
            "db_tables": db_tables,
            "left_scope": summary.left_scope.len(),
        })
    );
    Ok(())
}

/// The hub, run in its own process: on the embedded store in `data`, or on PostgreSQL when
/// `database` is a URL.
pub fn hub_main(data: PathBuf, database: Option<String>) -> BoxResult<()> {
    // As `vigie serve` does.
    vigie_server::bound_allocator_arenas();
    // Quiet unless RUST_LOG asks (RUST_LOG=info shows each request's time and size).
    vigie_server::logging::init("warn");
    let database = vigie_server::Database::choose(database.as_deref(), &data, hub_key())?;
    let hub = vigie_server::open_hub(&database, HubLimits::default())?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on http://{}", listener.local_addr()?);
        use std::io::Write;
        std::io::stdout().flush()?;
        vigie_server::http::serve(listener, std::sync::Arc::new(hub), async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        Ok(())
    })
}

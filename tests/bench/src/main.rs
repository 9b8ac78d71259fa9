//! Benchmarks on the reference workload W1 (shared/WORKLOAD.md).
//!
//! `vigie-bench core [--scale S] [--seed N] [--dir PATH] [--sample N]` writes the workload into an
//! encrypted store one record at a time, then times opening the store and the field's main
//! queries. `sync` measures sync with one phone (`sync_bench.rs`), `hub-load` many devices
//! syncing at once against hubs on PostgreSQL and SQLite (`hub_load.rs`), `attachments` photos
//! captured and synced over a dropping link (`attachments.rs`). Standard output
//! carries only JSON lines, one figure each:
//! `{"bench": "core", "metric": "...", "value": 1.23, "unit": "ms", "scale": 10.0}`;
//! progress goes to standard error.

mod attachments;
mod busy_hub;
mod console_bench;
mod demo;
mod dictionary;
mod hostile;
mod hub_load;
mod real_hub;
mod storage;
mod sync_bench;
mod workload;

use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::error::Error;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use uuid::Uuid;
use vigie_core::{
    AreaFilter, Encryption, Page, Record, RecordKind, Store, StoreConfig, VisitQuery, VisitStatus,
};
use workload::{AnyRecord, Workload};

type BoxResult<T> = Result<T, Box<dyn Error>>;

const USAGE: &str = "usage: vigie-bench core [--scale S] [--seed N] [--dir PATH] [--sample N]
       vigie-bench sync [--scale S] [--noop-scale S] [--seed N]
       vigie-bench hub-load [--devices N] [--backend both|sqlite|postgres] [--seed N]
                            [--clients N] [--postgres URL]
       vigie-bench busy-hub [--backend both|sqlite|postgres] [--records N] [--rounds N]
                            [--hub-bin PATH] [--postgres URL]
       vigie-bench hostile [--backend both|sqlite|postgres] [--hub-bin PATH] [--postgres URL]
       vigie-bench demo [--hub URL] [--data DIR] [--database URL] [--scale S] [--seed N]
       vigie-bench phone --hub URL --store PATH --token TOKEN
                         [--record ID | --new-visit WORKPLACE_ID] [--set FIELD=TEXT]
       vigie-bench console [--scale S] [--seed N] [--samples N] [--hub-bin PATH] [--dir PATH]
       vigie-bench dictionary [--out PATH] [--seed N] [--scale S]
       vigie-bench attachments [--photos N] [--drop-every BYTES] [--large-mb N] [--chunk-kib N]
                               [--backend sqlite|postgres] [--hub-bin PATH] [--postgres URL]";

/// A fixed key, user and device, so that every run builds the same store.
const KEY: [u8; 32] = [0x5a; 32];
const BENCH_USER: Uuid = Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0001);
const BENCH_DEVICE: Uuid = Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0002);

/// Rows on the first page of a list, as the app shows it.
const PAGE_SIZE: i32 = 50;
/// "Today" for the overdue list: late in the season, when many follow-ups are due.
const OVERDUE_ON: (i32, u32, u32) = (2025, 10, 1);
const SEARCH_TEXT: &str = "kouame";
const SEARCH_LIMIT: u32 = 20;

struct Options {
    scale: f64,
    seed: u64,
    /// Where the store's temporary directory is made (the system's temporary directory if not
    /// given): the file system matters to write latency.
    dir: Option<PathBuf>,
    /// How many times each read is timed.
    sample: usize,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    if args.next().as_deref() != Some("core") {
        return Err(USAGE.into());
    }
    let mut options = Options {
        scale: 10.0,
        seed: workload::DEFAULT_SEED,
        dir: None,
        sample: 200,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let invalid = || format!("invalid value for {flag}: {value}\n{USAGE}");
        match flag.as_str() {
            "--scale" => options.scale = value.parse().map_err(|_| invalid())?,
            "--seed" => options.seed = value.parse().map_err(|_| invalid())?,
            "--sample" => options.sample = value.parse().map_err(|_| invalid())?,
            "--dir" => options.dir = Some(PathBuf::from(&value)),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if !(options.scale > 0.0 && options.scale.is_finite()) {
        return Err(format!("--scale must be a positive number\n{USAGE}"));
    }
    if options.sample == 0 {
        return Err(format!("--sample must be at least 1\n{USAGE}"));
    }
    Ok(options)
}

/// Flags of the form `--name value`, after the command: each taken once by name, and any left
/// over refused (`finish`).
struct Flags(BTreeMap<String, String>);

impl Flags {
    fn parse(args: impl Iterator<Item = String>) -> Result<Flags, String> {
        let mut args = args.peekable();
        let mut out = BTreeMap::new();
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            out.insert(flag, value);
        }
        Ok(Flags(out))
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    fn required(&mut self, name: &str) -> Result<String, String> {
        self.take(name)
            .ok_or_else(|| format!("{name} is required\n{USAGE}"))
    }

    /// The flag's value parsed, or `default` when it is absent.
    fn number<T: std::str::FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        match self.take(name) {
            Some(v) => v
                .parse()
                .map_err(|_| format!("invalid value for {name}\n{USAGE}")),
            None => Ok(default),
        }
    }

    /// Refuses a flag no one took.
    fn finish(self) -> Result<(), String> {
        match self.0.keys().next() {
            Some(flag) => Err(format!("unknown option {flag}\n{USAGE}")),
            None => Ok(()),
        }
    }
}

fn run_sync(args: impl Iterator<Item = String>) -> BoxResult<()> {
    let mut flags = Flags::parse(args)?;
    let options = sync_bench::SyncOptionsArgs {
        scale: flags.number("--scale", 1.0)?,
        noop_scale: flags.number("--noop-scale", 10.0)?,
        seed: flags.number("--seed", workload::DEFAULT_SEED)?,
    };
    flags.finish()?;
    sync_bench::bench_sync(&options)
}

fn run_hub_load(args: impl Iterator<Item = String>) -> BoxResult<()> {
    let mut flags = Flags::parse(args)?;
    let devices = flags.number("--devices", 500)?;
    let seed = flags.number("--seed", workload::DEFAULT_SEED)?;
    let clients = flags.number("--clients", 32)?;
    if devices == 0 || clients == 0 {
        return Err(format!("--devices and --clients must be at least 1\n{USAGE}").into());
    }
    let setups = match flags.take("--backend").as_deref() {
        None | Some("both") => vec![hub_load::Setup::Postgres, hub_load::Setup::Sqlite],
        Some("postgres") => vec![hub_load::Setup::Postgres],
        Some("sqlite") => vec![hub_load::Setup::Sqlite],
        Some(other) => return Err(format!("invalid value for --backend: {other}\n{USAGE}").into()),
    };
    let postgres = flags.take("--postgres");
    flags.finish()?;
    hub_load::bench_hub_load(&hub_load::HubLoadArgs {
        devices,
        setups,
        seed,
        clients,
        postgres,
    })
}

fn run_busy_hub(args: impl Iterator<Item = String>) -> BoxResult<()> {
    let mut flags = Flags::parse(args)?;
    let records = flags.number("--records", 5_000)?;
    let rounds = flags.number("--rounds", 2)?;
    if records == 0 || rounds == 0 {
        return Err(format!("--records and --rounds must be at least 1\n{USAGE}").into());
    }
    let args = busy_hub::BusyHubArgs {
        backends: real_hub::Backend::parse(flags.take("--backend").as_deref())?,
        records,
        rounds,
        hub_bin: flags.take("--hub-bin"),
        postgres: flags.take("--postgres"),
    };
    flags.finish()?;
    busy_hub::bench_busy_hub(&args)
}

/// `vigie-bench console`: see `console_bench.rs`.
fn run_console(args: impl Iterator<Item = String>) -> BoxResult<()> {
    let mut flags = Flags::parse(args)?;
    let console = console_bench::ConsoleArgs {
        scale: flags.number("--scale", 10.0)?,
        seed: flags.number("--seed", workload::DEFAULT_SEED)?,
        samples: flags.number("--samples", 20)?,
        hub_bin: flags.take("--hub-bin"),
        dir: flags.take("--dir"),
    };
    flags.finish()?;
    console_bench::bench_console(&console)
}

/// `vigie-bench phone`: see `demo::phone`.
fn run_phone(args: impl Iterator<Item = String>) -> BoxResult<()> {
    let mut flags = Flags::parse(args)?;
    let hub = flags.required("--hub")?;
    let store = flags.required("--store")?;
    let token = flags.required("--token")?;
    let record = flags.take("--record").map(|r| r.parse()).transpose()?;
    let new_visit: Option<Uuid> = flags.take("--new-visit").map(|w| w.parse()).transpose()?;
    if record.is_some() && new_visit.is_some() {
        return Err(format!("--record or --new-visit, not both\n{USAGE}").into());
    }
    let set = flags
        .take("--set")
        .map(|s| {
            s.split_once('=')
                .map(|(field, text)| (field.to_string(), text.to_string()))
                .ok_or_else(|| format!("--set takes FIELD=TEXT\n{USAGE}"))
        })
        .transpose()?;
    if set.is_some() && record.is_none() && new_visit.is_none() {
        return Err(format!("--set needs --record or --new-visit\n{USAGE}").into());
    }
    flags.finish()?;
    demo::phone(
        &hub,
        std::path::Path::new(&store),
        &token,
        record,
        new_visit,
        set,
    )
}

/// `vigie-bench demo`: see `demo.rs`.
fn run_demo(args: impl Iterator<Item = String>) -> BoxResult<()> {
    let mut flags = Flags::parse(args)?;
    let demo = demo::DemoArgs {
        hub: flags
            .take("--hub")
            .unwrap_or_else(|| "http://127.0.0.1:8470".into()),
        data: flags
            .take("--data")
            .unwrap_or_else(|| "vigie-data".into())
            .into(),
        database: flags
            .take("--database")
            .or_else(|| std::env::var("VIGIE_DATABASE").ok()),
        scale: flags.number("--scale", 0.1)?,
        seed: flags.number("--seed", workload::DEFAULT_SEED)?,
        phones: flags.take("--phones").map(Into::into),
        key_hex: flags
            .take("--key-hex")
            .or_else(|| std::env::var("VIGIE_HUB_KEY").ok()),
    };
    flags.finish()?;
    demo::run(demo)
}

fn run_hostile(args: impl Iterator<Item = String>) -> BoxResult<()> {
    let mut flags = Flags::parse(args)?;
    let args = hostile::HostileArgs {
        backends: real_hub::Backend::parse(flags.take("--backend").as_deref())?,
        hub_bin: flags.take("--hub-bin"),
        postgres: flags.take("--postgres"),
    };
    flags.finish()?;
    hostile::bench_hostile(&args)
}

fn run_attachments(args: impl Iterator<Item = String>) -> BoxResult<()> {
    let mut flags = Flags::parse(args)?;
    let photos = flags.number("--photos", 200)?;
    let drop_every = flags.number("--drop-every", 1024 * 1024)?.max(1);
    let large_mb = flags.number("--large-mb", 64)?;
    let chunk_kib = flags.number("--chunk-kib", 256)?.max(64);
    let seed = flags.number("--seed", workload::DEFAULT_SEED)?;
    let backend = match flags.take("--backend").as_deref() {
        None | Some("sqlite") => real_hub::Backend::Sqlite,
        Some("postgres") => real_hub::Backend::Postgres,
        Some(other) => return Err(format!("invalid value for --backend: {other}\n{USAGE}").into()),
    };
    let args = attachments::AttachmentArgs {
        backend,
        photos,
        drop_every,
        large_mb,
        chunk_kib,
        hub_bin: flags.take("--hub-bin"),
        postgres: flags.take("--postgres"),
        seed,
    };
    flags.finish()?;
    attachments::bench_attachments(&args)
}

/// `vigie-bench dictionary`: see `dictionary.rs`.
fn run_dictionary(args: impl Iterator<Item = String>) -> BoxResult<()> {
    let mut flags = Flags::parse(args)?;
    let out = flags
        .take("--out")
        .unwrap_or_else(|| "core/src/codec/documents.zdict".into());
    let seed = flags.number("--seed", dictionary::TRAINING_SEED)?;
    let scale = flags.number("--scale", 0.5)?;
    flags.finish()?;
    dictionary::train(Path::new(&out), seed, scale)
}

/// The hidden commands the sync benchmarks run as separate processes.
fn run_helper(command: &str, args: impl Iterator<Item = String>) -> BoxResult<()> {
    let mut flags = Flags::parse(args)?;
    let database = flags.take("--database");
    match command {
        "hub-serve" => sync_bench::hub_main(PathBuf::from(flags.required("--data")?), database),
        _ => {
            let (hub, token) = (flags.required("--hub")?, flags.required("--token")?);
            let store = flags.required("--store")?;
            sync_bench::phone_main(&hub, &token, Path::new(&store))
        }
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let result = match command.as_str() {
        "sync" => run_sync(args),
        "hub-load" => run_hub_load(args),
        "busy-hub" => run_busy_hub(args),
        "hostile" => run_hostile(args),
        "demo" => run_demo(args),
        "console" => run_console(args),
        "phone" => run_phone(args),
        "attachments" => run_attachments(args),
        "dictionary" => run_dictionary(args),
        "hub-serve" | "phone-sync" => run_helper(&command, args),
        "attachment-phone" => (|| {
            let mut flags = Flags::parse(args)?;
            let (hub, token) = (flags.required("--hub")?, flags.required("--token")?);
            let store = flags.required("--store")?;
            let chunk: usize = flags.required("--chunk")?.parse()?;
            attachments::phone_main(&hub, &token, Path::new(&store), chunk)
        })(),
        _ => match parse_args(std::iter::once(command).chain(args)) {
            Ok(options) => bench_core(&options),
            Err(message) => {
                eprintln!("{message}");
                return ExitCode::from(2);
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigie-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints figures as JSON lines.
struct Report {
    bench: &'static str,
    /// The workload's scale, for the benches that run on it.
    scale: Option<f64>,
}

impl Report {
    fn emit(&self, metric: &str, value: f64, unit: &str) {
        let string = |s: &str| serde_json::to_string(s).expect("strings serialize");
        let number = |n: f64| serde_json::to_string(&n).expect("numbers serialize");
        // Rounded to a microsecond (or a thousandth of whatever the unit is): finer is noise.
        let value = (value * 1000.0).round() / 1000.0;
        let scale = match self.scale {
            Some(scale) => format!(", \"scale\": {}", number(scale)),
            None => String::new(),
        };
        println!(
            "{{\"bench\": {}, \"metric\": {}, \"value\": {}, \"unit\": {}{scale}}}",
            string(self.bench),
            string(metric),
            number(value),
            string(unit),
        );
    }

    fn emit_latencies(&self, metric: &str, samples: &mut [Duration], percentiles: &[(&str, f64)]) {
        samples.sort_unstable();
        for (name, p) in percentiles {
            self.emit(
                &format!("{metric}_{name}"),
                ms(percentile(samples, *p)),
                "ms",
            );
        }
    }
}

const P50_P99: &[(&str, f64)] = &[("p50", 0.50), ("p99", 0.99)];

/// The nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Counts the bytes written through it (the size of a compressed stream).
struct ByteCount(u64);

impl Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The records as JSON Lines, and zstd (level 3) of that: the natural floor for bytes stored or
/// sent.
struct JsonFloor {
    raw: u64,
    zstd: zstd::Encoder<'static, ByteCount>,
}

impl JsonFloor {
    fn new() -> io::Result<JsonFloor> {
        Ok(JsonFloor {
            raw: 0,
            zstd: zstd::Encoder::new(ByteCount(0), 3)?,
        })
    }

    /// Adds a record, with its id and kind (which the record's serde form leaves out).
    fn add<R: Record>(&mut self, record: &R) -> BoxResult<()> {
        let mut value = serde_json::to_value(record)?;
        let object = value
            .as_object_mut()
            .ok_or("a record is not a JSON object")?;
        object.insert("id".into(), record.id().to_string().into());
        object.insert("kind".into(), R::KIND.as_str().into());
        let mut line = serde_json::to_vec(&value)?;
        line.push(b'\n');
        self.raw += line.len() as u64;
        self.zstd.write_all(&line)?;
        Ok(())
    }

    /// The sizes of the JSON Lines and of their zstd, in bytes.
    fn finish(self) -> io::Result<(u64, u64)> {
        Ok((self.raw, self.zstd.finish()?.0))
    }
}

/// Latencies of `Store::create`, by kind.
#[derive(Default)]
struct Writes {
    workplaces: Vec<Duration>,
    visits: Vec<Duration>,
    child_cases: Vec<Duration>,
    /// Records that did not read back as written.
    mismatches: u64,
}

impl Writes {
    fn count(&self) -> usize {
        self.workplaces.len() + self.visits.len() + self.child_cases.len()
    }

    fn total(&self) -> Duration {
        [&self.workplaces, &self.visits, &self.child_cases]
            .into_iter()
            .flatten()
            .sum()
    }
}

/// Creates one record, as its own durable transaction, and checks that the store gives back
/// what was written (with the fields the store derives).
fn create<R: Record + PartialEq>(
    store: &mut Store,
    record: &R,
    latencies: &mut Vec<Duration>,
    mismatches: &mut u64,
) -> BoxResult<()> {
    let start = Instant::now();
    let stored = store
        .create(record)
        .map_err(|e| format!("writing {} {}: {e}", R::KIND, record.id()))?;
    latencies.push(start.elapsed());
    let mut expected = record.clone();
    // The store sets the reference versions a new record is captured with.
    if let (Some(pins), Some(stored)) = (expected.pins_mut(), stored.pins()) {
        *pins = stored.clone();
    }
    expected.derive(&store.reference());
    expected.set_version(stored.version().clone());
    if stored != expected {
        *mismatches += 1;
        if *mismatches == 1 {
            eprintln!(
                "{} {} does not read back as written:\n  written {expected:?}\n  stored  {stored:?}",
                R::KIND,
                record.id()
            );
        }
    }
    Ok(())
}

/// The longest note a case takes (`DocumentLimits::STANDARD`'s text), as a monitor might paste.
const LONG_NOTE_CHARS: usize = 32_000;

/// Saving a case whose long note was edited: a stretch of 200 characters replaced (a sentence
/// rewritten), and the whole note rewritten or put in capitals. Each save holds the store, so
/// its time is what the app and its sync wait.
fn long_note_edits(store: &mut Store, report: &Report, samples: usize) -> BoxResult<()> {
    let case = store
        .child_cases(&Default::default(), vigie_core::Page::first(1))?
        .into_iter()
        .next()
        .ok_or("no child case to edit")?;
    let mut seed = 17u64;
    let mut text = |len: usize| -> String {
        let letters: Vec<char> = "abcdefghijklmnopqrstuvwxyzéèàç ".chars().collect();
        (0..len)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                letters[(seed >> 33) as usize % letters.len()]
            })
            .collect()
    };
    // Each measure on a case of its own: a record's history is bounded, and three rewrites of
    // 32,000 characters would exceed it (refused: "make a smaller change").
    let fresh = |store: &mut Store, n: usize| -> BoxResult<Uuid> {
        let mut copy: vigie_core::ChildCase = store.get(case.id)?;
        copy.id = Uuid::now_v7();
        copy.version = Default::default();
        copy.case_code = format!("BENCH-NOTE-{n}");
        copy.referrals.clear();
        copy.followups.clear();
        Ok(store.create(&copy)?.id)
    };
    let edit = |store: &mut Store,
                id: Uuid,
                change: &mut dyn FnMut(&str) -> String|
     -> BoxResult<Duration> {
        let mut record: vigie_core::ChildCase = store.get(id)?;
        record.notes = change(&record.notes);
        let start = Instant::now();
        let saved = store.update(&record)?;
        let took = start.elapsed();
        if saved.notes != record.notes {
            return Err("the long note did not read back as written".into());
        }
        Ok(took)
    };
    let first = text(LONG_NOTE_CHARS);
    let id = fresh(store, 1)?;
    edit(store, id, &mut |_| first.clone())?;
    let mut stretches = Vec::with_capacity(samples);
    for run in 0..samples {
        let new = text(200);
        stretches.push(edit(store, id, &mut |old| {
            let mut chars: Vec<char> = old.chars().collect();
            let at = (run * 997) % (chars.len() - 200);
            chars.splice(at..at + 200, new.chars());
            chars.into_iter().collect()
        })?);
    }
    report.emit_latencies("long_note_stretch_save", &mut stretches, P50_P99);
    let (rewrite, again) = (text(LONG_NOTE_CHARS), text(LONG_NOTE_CHARS));
    let id = fresh(store, 2)?;
    edit(store, id, &mut |_| rewrite.clone())?;
    let took = edit(store, id, &mut |_| again.clone())?;
    report.emit("long_note_rewrite_save", ms(took), "ms");
    let id = fresh(store, 3)?;
    edit(store, id, &mut |_| rewrite.clone())?;
    let took = edit(store, id, &mut |old| old.to_uppercase())?;
    report.emit("long_note_capitals_save", ms(took), "ms");
    Ok(())
}

fn config(path: &Path) -> StoreConfig {
    StoreConfig::new(path, Encryption::Key(KEY), BENCH_USER).device(BENCH_DEVICE)
}

/// The size of the store's files, after it was closed.
fn store_bytes(path: &Path) -> io::Result<u64> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal_bytes = match std::fs::metadata(&wal) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    Ok(std::fs::metadata(path)?.len() + wal_bytes)
}

/// The CPU time this process has used, user and system, in milliseconds.
fn cpu_ms() -> Option<f64> {
    cpu_ms_of(std::process::id())
}

/// The CPU time of process `pid`, all its threads, in milliseconds (Linux's `/proc/<pid>/stat`
/// counts in USER_HZ, 100 per second).
fn cpu_ms_of(pid: u32) -> Option<f64> {
    Some(ticks(&stat_fields(pid)?, 11..13)? * 10.0)
}

/// The fields of `/proc/<pid>/stat` after the command name (which, in parentheses, may hold
/// spaces): the state is field 0, the parent 1, the CPU times in USER_HZ (100 per second) 11 to
/// 14 (its own user and system time, then its reaped children's).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    )
}

/// The sum of the `stat_fields` in `range`.
fn ticks(fields: &[String], range: std::ops::Range<usize>) -> Option<f64> {
    range.map(|i| fields.get(i)?.parse::<f64>().ok()).sum()
}

fn parent_in(fields: &[String]) -> Option<u32> {
    fields.get(1)?.parse().ok()
}

fn parent_of(pid: u32) -> Option<u32> {
    parent_in(&stat_fields(pid)?)
}

/// The CPU time of process `pid` and of all its children, alive or ended, in milliseconds: a
/// server that starts a process per connection (PostgreSQL), whichever came and went.
fn cpu_ms_of_tree(pid: u32) -> Option<f64> {
    // Its own time and that of the children it has reaped.
    let mut total = ticks(&stat_fields(pid)?, 11..15)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(fields) = stat_fields(child)
            && parent_in(&fields) == Some(pid)
        {
            total += ticks(&fields, 11..15).unwrap_or(0.0);
        }
    }
    Some(total * 10.0)
}

/// The bytes this process caused to be written to storage so far (Linux's `write_bytes`: the
/// database, its WAL and its checkpoints, whatever the page cache does with them later).
fn bytes_written() -> Option<f64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let line = io.lines().find(|l| l.starts_with("write_bytes:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// This process's peak resident set, in MB.
fn peak_rss_mb() -> Option<f64> {
    peak_rss_mb_of(std::process::id())
}

/// The peak resident set of process `pid`, in MB (VmHWM, Linux only).
fn peak_rss_mb_of(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn bench_core(options: &Options) -> BoxResult<()> {
    let report = Report {
        bench: "core",
        scale: Some(options.scale),
    };
    let dir = match &options.dir {
        Some(parent) => tempfile::tempdir_in(parent)?,
        None => tempfile::tempdir()?,
    };
    let path = dir.path().join("vigie.db");

    let records = Workload::new(options.seed, options.scale);
    let sizes = records.sizes();
    let total = sizes.total() - sizes.users;
    eprintln!(
        "scale {}, seed {}: {} workplaces, {} visits, {} child cases (the workload's {} users \
         are the hub's), in {}",
        options.scale,
        options.seed,
        sizes.workplaces,
        sizes.visits,
        sizes.child_cases,
        sizes.users,
        dir.path().display()
    );

    // Record: every record written one at a time, as the app does.
    let mut store = Store::open(config(&path))?;
    let mut writes = Writes::default();
    let mut floor = JsonFloor::new()?;
    // Submitted visits by district, to check the first page against.
    let mut visits_in: BTreeMap<String, usize> = BTreeMap::new();
    let started = Instant::now();
    let progress_every = (total / 20).max(1);
    for record in records {
        let w = &mut writes;
        match &record {
            // A phone holds no user records: the hub's administrator writes them, and a
            // device's store refuses them.
            AnyRecord::User(_) => continue,
            AnyRecord::Workplace(r) => {
                floor.add(r)?;
                create(&mut store, r, &mut w.workplaces, &mut w.mismatches)?;
            }
            AnyRecord::Visit(r) => {
                floor.add(r)?;
                *visits_in.entry(r.area.district.clone()).or_default() += 1;
                create(&mut store, r, &mut w.visits, &mut w.mismatches)?;
            }
            AnyRecord::ChildCase(r) => {
                floor.add(r)?;
                create(&mut store, r, &mut w.child_cases, &mut w.mismatches)?;
            }
        }
        let written = writes.count();
        if written % progress_every == 0 {
            eprintln!(
                "  {written}/{total} written, {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!(
        "written in {:.1} s ({:.1} s in the store)",
        started.elapsed().as_secs_f64(),
        writes.total().as_secs_f64()
    );
    if writes.mismatches > 0 {
        return Err(format!("{} records did not read back as written", writes.mismatches).into());
    }
    for (kind, expected) in [
        (RecordKind::Workplace, sizes.workplaces),
        (RecordKind::Visit, sizes.visits),
        (RecordKind::ChildCase, sizes.child_cases),
    ] {
        let found = store.count(kind)?;
        if found != expected as u64 {
            return Err(format!("the store holds {found} {kind} records, not {expected}").into());
        }
    }
    report.emit("records_written", writes.count() as f64, "records");
    report.emit("write_total", writes.total().as_secs_f64(), "s");
    report.emit_latencies("record_visit", &mut writes.visits, P50_P99);
    report.emit_latencies("record_child_case", &mut writes.child_cases, P50_P99);
    report.emit_latencies("record_workplace", &mut writes.workplaces, P50_P99);

    store.close()?;
    let bytes = store_bytes(&path)?;
    report.emit("db_bytes", bytes as f64, "B");
    report.emit("db_bytes_per_record", bytes as f64 / total as f64, "B");
    let tables = storage::table_bytes(&path, &KEY)?;
    storage::emit_per_record(&report, "db_bytes_per_record", &tables, total as f64);
    let (json, json_zstd) = floor.finish()?;
    report.emit("jsonl_bytes_per_record", json as f64 / total as f64, "B");
    report.emit(
        "jsonl_zstd3_bytes_per_record",
        json_zstd as f64 / total as f64,
        "B",
    );

    // Open: the store as the app finds it when started.
    let mut opens = Vec::with_capacity(options.sample);
    for _ in 0..options.sample {
        let start = Instant::now();
        let store = Store::open(config(&path))?;
        opens.push(start.elapsed());
        store.close()?;
    }
    report.emit_latencies("open", &mut opens, &[("median", 0.5)]);

    let store = Store::open(config(&path))?;
    let districts = workload::districts();
    let district = |run: usize| districts[run % districts.len()].clone();

    // A district's submitted visits, newest first: what a supervisor reviews.
    let mut pages = Vec::with_capacity(options.sample);
    for run in 0..options.sample {
        let d = district(run);
        let query = VisitQuery {
            area: Some(AreaFilter::District(d.clone())),
            status: Some(VisitStatus::Submitted),
            ..VisitQuery::default()
        };
        let start = Instant::now();
        let page = store.visits(&query, Page::first(PAGE_SIZE))?;
        pages.push(start.elapsed());
        let expected = (PAGE_SIZE as usize).min(visits_in.get(&d).copied().unwrap_or(0));
        let in_order = page.windows(2).all(|w| w[0].started_at >= w[1].started_at);
        if page.len() != expected
            || !in_order
            || page
                .iter()
                .any(|v| v.district != d || v.status != VisitStatus::Submitted)
        {
            return Err(format!("the first page of visits of {d} is wrong").into());
        }
    }
    report.emit_latencies(
        "visits_first_page",
        &mut pages,
        &[("median", 0.5), ("p99", 0.99)],
    );

    // A district's overdue follow-ups, soonest first.
    let today = NaiveDate::from_ymd_opt(OVERDUE_ON.0, OVERDUE_ON.1, OVERDUE_ON.2)
        .ok_or("invalid overdue date")?;
    let mut overdue = Vec::with_capacity(options.sample);
    for run in 0..options.sample {
        let d = district(run);
        let start = Instant::now();
        let due = store.follow_ups_due(
            Some(AreaFilter::District(d.clone())),
            None,
            today,
            Page::first(PAGE_SIZE),
        )?;
        overdue.push(start.elapsed());
        let in_order = due.windows(2).all(|w| w[0].due <= w[1].due);
        if due.is_empty() || !in_order || due.iter().any(|i| i.district != d || i.due >= today) {
            return Err(format!("the overdue list of {d} is wrong").into());
        }
    }
    report.emit_latencies("overdue_list", &mut overdue, &[("median", 0.5)]);

    // A name typed without its accent.
    let mut searches = Vec::with_capacity(options.sample);
    for _ in 0..options.sample {
        let start = Instant::now();
        let hits = store.search_names(SEARCH_TEXT, SEARCH_LIMIT)?;
        searches.push(start.elapsed());
        if hits.is_empty() || hits.iter().any(|h| !h.name.contains("Kouamé")) {
            return Err(format!("the search for {SEARCH_TEXT:?} is wrong").into());
        }
    }
    report.emit_latencies("search_name", &mut searches, &[("median", 0.5)]);
    let mut store = store;
    long_note_edits(&mut store, &report, options.sample)?;
    store.close()?;

    if let Some(mb) = peak_rss_mb() {
        report.emit("peak_rss", mb, "MB");
    }
    Ok(())
}

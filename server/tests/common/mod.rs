//! Shared helpers of the hub's integration tests: the real `vigie` binary run as a hub on
//! 127.0.0.1, its administration commands, device stores on real files, record builders, a TCP
//! proxy that cuts connections, and seeds.
//!
//! Every test binary uses a different part of this module.
#![allow(dead_code)]

pub mod reference;
pub mod rules;
pub mod surface;

use automerge::{Automerge, ChangeHash};
use chrono::{FixedOffset, NaiveDate, TimeZone};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use uuid::Uuid;
use vigie_core::sync::{Principal, SyncOptions, SyncSummary};
use vigie_core::*;
use vigie_server::auth::Token;
use vigie_server::client::HubClient;

/// The hub binary built by Cargo for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_vigie");

pub const COUNTRY: &str = "CI";
pub const REGION: &str = "CI-R1";
pub const DISTRICT: &str = "CI-R1-D1";
pub const C01: &str = "CI-R1-D1-C01";
pub const C02: &str = "CI-R1-D1-C02";
/// A district of the same region that no monitor or inspector of these tests covers.
pub const DISTRICT_2: &str = "CI-R1-D2";
pub const C07: &str = "CI-R1-D2-C07";

// ---------------------------------------------------------------------------------------------
// Seeds

/// The seed of a test: `VIGIE_TEST_SEED` if set, else a fresh one. Printed, so that a failure
/// can be replayed (the harness shows a failing test's output).
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("VIGIE_TEST_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .expect("VIGIE_TEST_SEED is a decimal u64"),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos() as u64;
            nanos ^ (u64::from(std::process::id()) << 32)
        }
    };
    println!("{test}: seed {seed} (replay with VIGIE_TEST_SEED={seed})");
    seed
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A random (v4) id drawn from the test's generator, so that runs with one seed match.
pub fn uuid(rng: &mut impl RngCore) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

// ---------------------------------------------------------------------------------------------
// The hub's storage

/// The PostgreSQL server of the test scripts, when `VIGIE_TEST_BACKEND=postgres` runs this suite
/// on it (else the hub uses its embedded store). Started by `scripts/postgres.sh` if needed.
pub fn postgres_server() -> Option<&'static str> {
    match std::env::var("VIGIE_TEST_BACKEND").as_deref() {
        Ok("postgres") => Some(postgres_server_always()),
        Ok("sqlite") | Err(_) => None,
        Ok(other) => panic!("VIGIE_TEST_BACKEND is sqlite or postgres, not {other}"),
    }
}

/// The PostgreSQL server of the test scripts, whatever `VIGIE_TEST_BACKEND` says: for the tests
/// that are about PostgreSQL itself (several hub processes on one database). Started by
/// `scripts/postgres.sh` if needed.
pub fn postgres_server_always() -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh");
        let out = Command::new(script)
            .arg("url")
            .output()
            .expect("run scripts/postgres.sh");
        assert!(
            out.status.success(),
            "scripts/postgres.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string();
        assert!(url.starts_with("postgres://vigie@127.0.0.1:"), "{url}");
        url
    })
}

/// A new, empty database on the test PostgreSQL server (`postgres_server_always`), named after
/// `prefix`, this process and a counter; returns its URL.
pub fn fresh_database(prefix: &str) -> String {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let server = postgres_server_always();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    let name = format!(
        "vigie_{prefix}_{}_{nanos}_{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    );
    let mut client =
        postgres::Client::connect(server, postgres::NoTls).expect("connect to PostgreSQL");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    format!("{}/{name}", server.trim_end_matches("/postgres"))
}

/// Drops a database made by `fresh_database` (once nothing is connected to it).
pub fn drop_database(url: &str) {
    let (_, name) = url.rsplit_once('/').expect("a database URL");
    let mut client = postgres::Client::connect(postgres_server_always(), postgres::NoTls)
        .expect("connect to PostgreSQL");
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap_or_else(|e| panic!("drop database {name}: {e}"));
}

/// The database of the hub whose data directory is `data`: one per hub, created on first use
/// and named after the directory, so that every CLI call about that hub finds it.
pub fn hub_database(data: &Path) -> Option<String> {
    let server = postgres_server()?;
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut hasher);
    let name = format!("vigie_test_{:016x}", hasher.finish());
    let mut client =
        postgres::Client::connect(server, postgres::NoTls).expect("connect to PostgreSQL");
    match client.batch_execute(&format!("CREATE DATABASE {name}")) {
        Ok(()) => {}
        Err(e) if e.code() == Some(&postgres::error::SqlState::DUPLICATE_DATABASE) => {}
        Err(e) => panic!("create database {name}: {e}"),
    }
    Some(format!("{}/{name}", server.trim_end_matches("/postgres")))
}

/// `--database <url>` when the suite runs on PostgreSQL.
pub fn database_args(data: &Path) -> Vec<String> {
    match hub_database(data) {
        Some(url) => vec!["--database".into(), url],
        None => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// The hub process

/// A running `vigie serve`, killed when dropped.
pub struct Hub {
    child: Option<Child>,
    pub url: String,
    pub data: PathBuf,
    /// The PostgreSQL database given to `start_on`; else the suite's choice for `data`.
    pub database: Option<String>,
    log: PathBuf,
    pub starts: usize,
    /// More arguments of `vigie serve`, and environment variables that override the default
    /// ones (`surface::HubOptions`).
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
    /// Whether the sample area tree is published before the hub serves (a hub serves a
    /// country's records only once its area tree is published).
    sample_areas: bool,
}

impl Hub {
    /// Starts a hub on `data` (a directory), listening on a free port of 127.0.0.1, with the
    /// sample area tree published (`reference/areas-CI.json`).
    pub fn start(data: &Path) -> Hub {
        Hub::start_with(data, None)
    }

    /// Starts a hub on `data` without publishing any area tree.
    pub fn start_without_areas(data: &Path) -> Hub {
        let mut hub = Hub::new(data, None, false);
        hub.restart();
        hub
    }

    /// Starts a hub on the PostgreSQL database `database` (several hubs may share one), whatever
    /// `VIGIE_TEST_BACKEND` says; `data` only names its log (`<data>.hub.log`).
    pub fn start_on(data: &Path, database: &str) -> Hub {
        Hub::start_with(data, Some(database.to_string()))
    }

    fn start_with(data: &Path, database: Option<String>) -> Hub {
        let mut hub = Hub::new(data, database, true);
        hub.restart();
        hub
    }

    fn new(data: &Path, database: Option<String>, sample_areas: bool) -> Hub {
        Hub {
            child: None,
            url: String::new(),
            data: data.to_path_buf(),
            database,
            log: data.with_extension("hub.log"),
            starts: 0,
            extra_args: Vec::new(),
            extra_env: Vec::new(),
            sample_areas,
        }
    }

    /// The hub's `--database` arguments.
    fn database_args(&self) -> Vec<String> {
        match &self.database {
            Some(url) => vec!["--database".into(), url.clone()],
            None => database_args(&self.data),
        }
    }

    /// Starts the hub again on the same data (it must be stopped); the port changes.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the hub is already running");
        if self.sample_areas && self.starts == 0 {
            let mut args = vec![
                "reference".to_string(),
                "publish".into(),
                "--data".into(),
                self.data.to_str().expect("utf-8 path").into(),
            ];
            args.extend(self.database_args());
            args.push(reference::SAMPLE_AREAS.into());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            vigie(&args);
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("hub log file");
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--data")
            .arg(&self.data)
            .args(self.database_args())
            .args(["--listen", "127.0.0.1:0"])
            // Debug for Vigie's own crates: the log scan of scripts/test.sh reads all of it.
            .env(
                "RUST_LOG",
                "info,vigie=debug,vigie_server=debug,vigie_core=debug,automerge=off",
            )
            .env_remove("VIGIE_HUB_KEY")
            .args(&self.extra_args)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn vigie serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = channel();
        // Reads the first line, then drains stdout until the hub exits.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the hub did not report its address within 30 s");
            }
        };
        let url = line
            .trim()
            .strip_prefix("vigie hub listening on ")
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "unexpected first line from the hub: {line:?}; log:\n{}",
                    self.log_tail(20)
                )
            })
            .to_string();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "the hub listens on {url}, not on 127.0.0.1"
        );
        self.url = url;
        self.child = Some(child);
        self.starts += 1;
    }

    /// The hub process's peak resident memory so far, in MiB (Linux's `VmHWM`).
    pub fn peak_rss_mib(&self) -> Option<f64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }

    /// `host:port` of the hub.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    /// Kills the hub with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill the hub");
            child.wait().expect("reap the hub");
        }
    }

    /// Stops the hub as Ctrl-C would (graceful shutdown); SIGKILL if it takes over 10 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: sends a signal to our own child, whose pid we hold and have not reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait().expect("wait for the hub") {
                Some(_) => return,
                None if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Whether the hub process is still alive (it never exits on its own).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().expect("poll the hub").is_none(),
            None => false,
        }
    }

    /// The hub's store, opened by this process: only while the hub is stopped.
    pub fn open_store(&self) -> Store {
        assert!(
            self.child.is_none(),
            "open the hub's store only while it is stopped"
        );
        let Some(url) = self.database.clone().or_else(|| hub_database(&self.data)) else {
            return vigie_server::open_store(&self.data, Encryption::Unencrypted)
                .expect("open the hub store");
        };
        // On PostgreSQL: a copy of its records in an embedded store, made now.
        static COPIES: AtomicUsize = AtomicUsize::new(0);
        let copy = self
            .data
            .with_extension(format!("copy-{}", COPIES.fetch_add(1, Ordering::Relaxed)));
        let mut store =
            vigie_server::open_store(&copy, Encryption::Unencrypted).expect("open a copy store");
        vigie_server::postgres::Postgres::connect(&url, 1)
            .expect("connect to the hub's database")
            .copy_into(&mut store)
            .expect("copy the hub's records");
        store
    }

    /// The last lines the hub logged (its stderr), for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Lines of the hub's log that report one of its own errors (a 5xx) or a panic. Errors that
    /// libraries log about bytes they refused (automerge's "bad checksum") are not counted.
    pub fn log_errors(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| (l.contains("ERROR") && l.contains("vigie")) || l.contains("panicked"))
            .map(str::to_string)
            .collect()
    }

    /// How many lines of the hub's log are at level ERROR, whoever logged them.
    pub fn log_error_lines(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("ERROR"))
            .count()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("hub log (last lines):\n{}", self.log_tail(30));
        }
        self.kill();
        // scripts/test.sh keeps every hub's log, to scan them for personal data.
        if let Ok(dir) = std::env::var("VIGIE_TEST_LOG_DIR") {
            static KEPT: AtomicUsize = AtomicUsize::new(0);
            let name = format!(
                "{}-{}.hub.log",
                std::process::id(),
                KEPT.fetch_add(1, Ordering::Relaxed)
            );
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::copy(&self.log, Path::new(&dir).join(name));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Administration through the CLI

/// Runs `vigie <args>`, which must succeed; returns its trimmed stdout.
pub fn vigie(args: &[&str]) -> String {
    let out = vigie_output(args);
    assert!(
        out.status.success(),
        "vigie {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .trim()
        .to_string()
}

pub fn vigie_output(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("VIGIE_HUB_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("run vigie")
}

pub fn role_arg(role: Role) -> &'static str {
    match role {
        Role::Inspector => "inspector",
        Role::CommunityMonitor => "community-monitor",
        Role::Supervisor => "supervisor",
    }
}

/// `vigie user add`: returns the new user's id.
pub fn add_user(data: &Path, name: &str, role: Role, areas: &[&str]) -> Uuid {
    let database = database_args(data);
    let data = data.to_str().expect("utf-8 path");
    let mut args = vec![
        "user",
        "add",
        "--data",
        data,
        "--name",
        name,
        "--role",
        role_arg(role),
    ];
    args.extend(database.iter().map(String::as_str));
    for area in areas {
        args.extend(["--area", area]);
    }
    let out = vigie(&args);
    Uuid::try_parse(&out).unwrap_or_else(|_| panic!("user add printed {out:?}"))
}

/// `vigie device enrol`: returns the token it printed, as text.
pub fn enrol(data: &Path, user: Uuid) -> String {
    let database = database_args(data);
    let user = user.to_string();
    let mut args = vec![
        "device",
        "enrol",
        "--data",
        data.to_str().expect("utf-8 path"),
        "--user",
        &user,
    ];
    args.extend(database.iter().map(String::as_str));
    let out = vigie(&args);
    assert!(out.starts_with("vgd1."), "enrol printed {out:?}");
    out
}

/// `vigie device <command> --device <device>` on the hub of `data`.
fn device_command(data: &Path, command: &str, device: Uuid) -> std::process::Output {
    let database = database_args(data);
    let device = device.to_string();
    let mut args = vec![
        "device",
        command,
        "--data",
        data.to_str().expect("utf-8 path"),
        "--device",
        &device,
    ];
    args.extend(database.iter().map(String::as_str));
    vigie_output(&args)
}

/// `vigie device revoke`: whether it succeeded.
pub fn revoke(data: &Path, device: Uuid) -> bool {
    device_command(data, "revoke", device).status.success()
}

/// `vigie device reissue`: the new token's text.
pub fn reissue(data: &Path, device: Uuid) -> String {
    let out = device_command(data, "reissue", device);
    assert!(
        out.status.success(),
        "reissue: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Devices

/// An enrolled device: its token and its own store on a real, encrypted file.
pub struct Device {
    pub name: String,
    pub token: Token,
    pub token_text: String,
    pub store: Store,
    /// What the hub should let this device see and change.
    pub principal: Principal,
}

impl Device {
    /// Adds a user, enrols a device for them and opens the device's store in `dir`.
    pub fn enrol(
        dir: &Path,
        data: &Path,
        name: &str,
        role: Role,
        areas: &[&str],
        key: u8,
    ) -> Device {
        let user = add_user(data, name, role, areas);
        let token_text = enrol(data, user);
        let device = Device::open(dir, name, &token_text, role, areas, key);
        assert_eq!(device.token.user, user);
        device
    }

    /// Opens (creating it) the store in `dir` of the device whose enrolment token is
    /// `token_text`, given to a user of this role and these areas.
    pub fn open(
        dir: &Path,
        name: &str,
        token_text: &str,
        role: Role,
        areas: &[&str],
        key: u8,
    ) -> Device {
        Device::open_with(
            dir,
            name,
            token_text,
            role,
            areas,
            Encryption::Key([key; 32]),
        )
    }

    /// `open`, with the store protected as given (unencrypted, for tests that search the
    /// store's bytes).
    pub fn open_with(
        dir: &Path,
        name: &str,
        token_text: &str,
        role: Role,
        areas: &[&str],
        encryption: Encryption,
    ) -> Device {
        let token = Token::parse(token_text).expect("the token parses");
        let user = token.user;
        let config = StoreConfig::new(dir.join(format!("{name}.db")), encryption, token.user)
            .device(token.device);
        let store = Store::open(config).expect("open the device store");
        assert_eq!(store.device_id(), token.device);
        Device {
            name: name.to_string(),
            principal: Principal {
                device: token.device,
                user,
                role,
                areas: areas.iter().map(|a| a.to_string()).collect(),
            },
            token,
            token_text: token_text.to_string(),
            store,
        }
    }

    pub fn user(&self) -> Uuid {
        self.token.user
    }

    pub fn client(&self, url: &str) -> HubClient {
        HubClient::new(url, &self.token)
    }

    pub fn sync(&mut self, url: &str) -> vigie_core::Result<SyncSummary> {
        self.sync_with(url, &SyncOptions::default())
    }

    pub fn sync_with(
        &mut self,
        url: &str,
        options: &SyncOptions,
    ) -> vigie_core::Result<SyncSummary> {
        HubClient::new(url, &self.token).sync(&mut self.store, options, |_| {})
    }

    /// Whether the hub lets this device receive and change a record of this kind and area.
    pub fn may_see(&self, kind: RecordKind, area: &Area) -> bool {
        self.principal.kinds().contains(&kind)
            && self.principal.covers(area, reference::sample_reference())
    }

    pub fn has(&self, id: Uuid) -> bool {
        self.store.kind_of(id).is_ok()
    }
}

// ---------------------------------------------------------------------------------------------
// Records

pub fn area(community: &str) -> Area {
    let district = if community.starts_with(DISTRICT_2) {
        DISTRICT_2
    } else {
        DISTRICT
    };
    Area::new(COUNTRY, REGION, district, community)
}

pub fn workplace(area: Area, name: &str) -> Workplace {
    Workplace::new(name, "cocoa", Formality::Informal, area)
}

/// A visit of a workplace in `area` (the workplace itself need not be stored).
pub fn visit(area: Area, workplace: Uuid, visitor: Uuid, day: u32) -> Visit {
    let mut w = Workplace::new("Champ", "cocoa", Formality::Informal, area);
    w.id = workplace;
    let start = FixedOffset::east_opt(0)
        .expect("utc offset")
        .with_ymd_and_hms(2026, 4, day.clamp(1, 28), 9, 0, 0)
        .single()
        .expect("a valid date");
    let mut v = Visit::new(VisitKind::CommunityMonitoring, &w, visitor, start);
    v.findings = format!("Visite du {day} avril : enfants au travail.");
    v.status = VisitStatus::Submitted;
    v
}

pub fn identified_on() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 4, 1).expect("a valid date")
}

pub fn child(area: Area, name: &str, by: Uuid) -> ChildCase {
    let mut c = ChildCase::new("CASE", name, Sex::Female, area, identified_on(), by);
    c.estimated_age = Some(12);
    c.hours_per_week = 10;
    c
}

/// The area a stored record belongs to.
pub fn area_of(store: &Store, id: Uuid) -> (RecordKind, Area) {
    let kind = store.kind_of(id).expect("record present");
    let area = match kind {
        RecordKind::Workplace => {
            store
                .get::<Workplace>(id)
                .expect("read workplace")
                .location
                .area
        }
        RecordKind::Visit => store.get::<Visit>(id).expect("read visit").area,
        RecordKind::ChildCase => store.get::<ChildCase>(id).expect("read child case").area,
        RecordKind::User | RecordKind::Reference => panic!("users and reference data have no area"),
    };
    (kind, area)
}

/// A record's Automerge heads, sorted.
pub fn heads(store: &Store, id: Uuid) -> Vec<ChangeHash> {
    let bytes = store.export_document(id).expect("record present");
    let mut heads = Automerge::load(&bytes)
        .expect("stored document loads")
        .get_heads();
    heads.sort();
    heads
}

/// A record's heads, or `None` if the store lacks it.
pub fn heads_opt(store: &Store, id: Uuid) -> Option<Vec<ChangeHash>> {
    store.kind_of(id).ok().map(|_| heads(store, id))
}

/// Every record id in a store, by kind (workplaces, visits, child cases; not users).
pub fn all_records(store: &Store) -> Vec<(RecordKind, Uuid)> {
    let mut out = Vec::new();
    let mut page = Page::first(Page::MAX_LIMIT);
    loop {
        let got = store
            .workplaces(&WorkplaceQuery::default(), page)
            .expect("list workplaces");
        let n = got.len();
        out.extend(got.into_iter().map(|w| (RecordKind::Workplace, w.id)));
        if n < page.limit as usize {
            break;
        }
        page = page.next();
    }
    let mut page = Page::first(Page::MAX_LIMIT);
    loop {
        let got = store
            .visits(&VisitQuery::default(), page)
            .expect("list visits");
        let n = got.len();
        out.extend(got.into_iter().map(|v| (RecordKind::Visit, v.id)));
        if n < page.limit as usize {
            break;
        }
        page = page.next();
    }
    let mut page = Page::first(Page::MAX_LIMIT);
    loop {
        let got = store
            .child_cases(&ChildCaseQuery::default(), page)
            .expect("list child cases");
        let n = got.len();
        out.extend(got.into_iter().map(|c| (RecordKind::ChildCase, c.id)));
        if n < page.limit as usize {
            break;
        }
        page = page.next();
    }
    for kind in [
        RecordKind::Workplace,
        RecordKind::Visit,
        RecordKind::ChildCase,
    ] {
        assert_eq!(
            out.iter().filter(|(k, _)| *k == kind).count() as u64,
            store.count(kind).expect("count"),
            "the {kind} listing agrees with the count"
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP

/// An HTTP agent that reports every status as a response (not an error).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// POSTs `body` to the hub's sync endpoint; returns the status and body, or why the exchange
/// failed (a dropped connection).
pub fn post_sync(
    agent: &ureq::Agent,
    url: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let mut request = agent
        .post(format!("{url}/v1/sync"))
        .header("Content-Type", "application/octet-stream");
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let mut response = request.send(body).map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(128 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| format!("response cut: {e}"))?;
    Ok((status, body))
}

pub fn health(url: &str) -> Result<String, String> {
    let mut response = agent()
        .get(format!("{url}/v1/health"))
        .call()
        .map_err(|e| e.to_string())?;
    if response.status().as_u16() != 200 {
        return Err(format!("health answered {}", response.status()));
    }
    response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy that cuts connections

/// What the proxy does to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Forward everything.
    Never,
    /// Forward this many bytes from the device to the hub, then close both sides.
    Up(usize),
    /// Forward this many bytes from the hub to the device, then close both sides.
    Down(usize),
}

#[derive(Debug, Default)]
pub struct ProxyStats {
    pub connections: AtomicUsize,
    pub cuts: AtomicUsize,
}

/// A proxy on 127.0.0.1 in front of a hub, which cuts each connection after a random number of
/// bytes in one direction (drawn from a seeded generator, one plan per connection).
pub struct CutProxy {
    pub url: String,
    pub stats: Arc<ProxyStats>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl CutProxy {
    /// `target` is the hub's `host:port`; `never` is the chance a connection is left whole.
    pub fn start(target: &str, seed: u64, never: f64) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        listener.set_nonblocking(true).expect("nonblocking accept");
        let stats = Arc::new(ProxyStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let target = target.to_string();
        let accept = {
            let (stats, stop) = (stats.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                while !stop.load(Ordering::Relaxed) {
                    let client = match listener.accept() {
                        Ok((client, _)) => client,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(2));
                            continue;
                        }
                        Err(_) => continue,
                    };
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                    let plan = if rng.gen_bool(never) {
                        Cut::Never
                    } else {
                        // Log-uniform: cuts in the headers as well as deep in the bodies.
                        let scale = 1usize << rng.gen_range(0..17);
                        let bytes = rng.gen_range(0..scale.max(1));
                        if rng.gen_bool(0.5) {
                            Cut::Up(bytes)
                        } else {
                            Cut::Down(bytes)
                        }
                    };
                    let _ = client.set_nonblocking(false);
                    let Ok(upstream) = TcpStream::connect(&target) else {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let (up_limit, down_limit) = match plan {
                        Cut::Never => (None, None),
                        Cut::Up(n) => (Some(n), None),
                        Cut::Down(n) => (None, Some(n)),
                    };
                    for (from, to, limit) in [
                        (&client, &upstream, up_limit),
                        (&upstream, &client, down_limit),
                    ] {
                        let (Ok(from), Ok(to), Ok(a), Ok(b)) = (
                            from.try_clone(),
                            to.try_clone(),
                            client.try_clone(),
                            upstream.try_clone(),
                        ) else {
                            continue;
                        };
                        let stats = stats.clone();
                        std::thread::spawn(move || pump(from, to, limit, [a, b], &stats));
                    }
                }
            })
        };
        CutProxy {
            url,
            stats,
            stop,
            accept: Some(accept),
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

/// Copies `from` to `to`; after `limit` bytes, closes both connections in both directions.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    limit: Option<usize>,
    both: [TcpStream; 2],
    stats: &ProxyStats,
) {
    let cut = |stats: &ProxyStats| {
        stats.cuts.fetch_add(1, Ordering::Relaxed);
        for s in &both {
            let _ = s.shutdown(Shutdown::Both);
        }
    };
    if limit == Some(0) {
        return cut(stats);
    }
    let mut sent = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let allowed = limit.map_or(n, |l| n.min(l - sent));
        if to.write_all(&buf[..allowed]).is_err() {
            break;
        }
        sent += allowed;
        if limit == Some(sent) {
            return cut(stats);
        }
    }
    // The sender closed (or failed): pass the end on.
    let _ = to.shutdown(Shutdown::Write);
}

/// Polls `done` every 10 ms until it holds or `timeout` passes; returns its last answer.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

// ---------------------------------------------------------------------------------------------
// Random field work

/// An area outside every principal of these tests (another region).
pub fn foreign_area() -> Area {
    Area::new(COUNTRY, "CI-R2", "CI-R2-D1", "CI-R2-D1-C01")
}

/// Creates a record of `kind` in `area` on the device's store, with an id from `rng`.
pub fn create_record(
    rng: &mut ChaCha8Rng,
    store: &mut Store,
    kind: RecordKind,
    area: Area,
) -> Uuid {
    let id = uuid(rng);
    let user = store.user_id();
    let n: u32 = rng.gen_range(0..10_000);
    match kind {
        RecordKind::Workplace => {
            let mut w = workplace(area, &format!("Atelier {n}"));
            w.id = id;
            store.create(&w).expect("create workplace");
        }
        RecordKind::Visit => {
            let mut v = visit(area, uuid(rng), user, rng.gen_range(1..=28));
            v.id = id;
            store.create(&v).expect("create visit");
        }
        RecordKind::ChildCase => {
            let mut c = child(area, &format!("Enfant {n}"), user);
            c.id = id;
            c.estimated_age = Some(rng.gen_range(5..=17));
            store.create(&c).expect("create child case");
        }
        RecordKind::User | RecordKind::Reference => {
            panic!("devices do not create users or reference data")
        }
    }
    id
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

fn toggle<T: Ord + Clone>(set: &mut std::collections::BTreeSet<T>, item: &T) {
    if !set.remove(item) {
        set.insert(item.clone());
    }
}

/// Edits a text field as a person would: a word inserted somewhere, or a few characters
/// deleted (accented letters included, so that offsets are not bytes).
pub fn edit_text(rng: &mut ChaCha8Rng, text: &mut String) {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    if text.chars().count() > 4 && rng.gen_bool(0.3) {
        let from = rng.gen_range(0..bounds.len() - 1);
        let to = (from + rng.gen_range(1..=4)).min(bounds.len() - 1);
        text.replace_range(bounds[from]..bounds[to], "");
    } else {
        let word = pick(
            rng,
            &[
                "école", "champ", "machette", "récolte", "père", "mère", "cacao", "nuit", "œuvre",
            ],
        );
        let at = *pick(rng, &bounds);
        text.insert_str(at, &format!(" {word}"));
    }
}

/// One random edit of a record the store holds, among fields other devices edit too.
/// `forced_field` is never touched here (see `force_field`). A value drawn equal to the one
/// stored writes nothing: another edit is drawn, so that an edit is always made.
pub fn random_edit(rng: &mut ChaCha8Rng, store: &mut Store, id: Uuid) {
    let before = heads(store, id);
    for _ in 0..100 {
        random_edit_once(rng, store, id);
        if heads(store, id) != before {
            return;
        }
    }
    panic!("100 random edits of {id} changed nothing");
}

fn random_edit_once(rng: &mut ChaCha8Rng, store: &mut Store, id: Uuid) {
    match store.kind_of(id).expect("record present") {
        RecordKind::ChildCase => {
            let mut c: ChildCase = store.get(id).expect("read child case");
            match rng.gen_range(0..10) {
                0 => {
                    c.school = *pick(
                        rng,
                        &[
                            SchoolStatus::Attending,
                            SchoolStatus::AttendingIrregularly,
                            SchoolStatus::DroppedOut,
                            SchoolStatus::NeverEnrolled,
                            SchoolStatus::Unknown,
                        ],
                    )
                }
                1 => c.hours_per_week = rng.gen_range(0..=60),
                2 => c.night_work = !c.night_work,
                3 | 4 => edit_text(rng, &mut c.notes),
                5 => {
                    c.activity =
                        pick(rng, &["récolte", "portage", "vente", "désherbage"]).to_string()
                }
                6 => toggle(
                    &mut c.tasks,
                    &pick(rng, &["harvest", "weeding", "carrying", "spraying"]).to_string(),
                ),
                7 => toggle(
                    &mut c.hazards,
                    &pick(
                        rng,
                        &["heavy_loads", "sharp_tools", "pesticides", "heights"],
                    )
                    .to_string(),
                ),
                8 => {
                    let existing: Vec<Uuid> = c.referrals.keys().copied().collect();
                    if !existing.is_empty() && rng.gen_bool(0.6) {
                        let key = *pick(rng, &existing);
                        let referral = c.referrals.get_mut(&key).expect("present");
                        edit_text(rng, &mut referral.outcome);
                    } else {
                        let key = uuid(rng);
                        c.referrals.insert(
                            key,
                            Referral {
                                service: *pick(
                                    rng,
                                    &[
                                        ServiceKind::Education,
                                        ServiceKind::Health,
                                        ServiceKind::SocialProtection,
                                        ServiceKind::Vocational,
                                    ],
                                ),
                                provider: "Centre social de Soubré".into(),
                                date: identified_on() + chrono::Days::new(rng.gen_range(0..60)),
                                outcome: String::new(),
                            },
                        );
                    }
                }
                _ => c.estimated_age = Some(rng.gen_range(5..=17)),
            }
            store.update(&c).expect("update child case");
        }
        RecordKind::Visit => {
            let mut v: Visit = store.get(id).expect("read visit");
            match rng.gen_range(0..8) {
                0 | 1 => edit_text(rng, &mut v.findings),
                2 => {
                    // A status the store's user may set (the hub tells the device its role):
                    // an honest device's edits are never refused.
                    let user = store.user_id();
                    let role = store
                        .user_profile()
                        .expect("read the profile")
                        .map(|p| p.role);
                    let allowed: Vec<VisitStatus> = [
                        VisitStatus::Draft,
                        VisitStatus::Submitted,
                        VisitStatus::Validated,
                        VisitStatus::Returned,
                    ]
                    .into_iter()
                    .filter(|to| {
                        role.is_some_and(|role| {
                            vigie_core::rights::check_step(
                                role,
                                user,
                                &vigie_core::rights::Step::VisitStatus {
                                    from: v.status,
                                    to: *to,
                                },
                            )
                            .is_ok()
                        })
                    })
                    .collect();
                    if !allowed.is_empty() {
                        v.status = *pick(rng, &allowed);
                    }
                }
                3 => v.workforce.male.under_12 = rng.gen_range(0..10),
                4 => toggle(
                    &mut v.actions,
                    pick(
                        rng,
                        &[
                            VisitAction::Advice,
                            VisitAction::Warning,
                            VisitAction::Order,
                            VisitAction::Referral,
                        ],
                    ),
                ),
                5 => edit_text(rng, &mut v.review_comment),
                6 => {
                    let indicator = *pick(rng, &ForcedLabourIndicator::ALL);
                    if v.forced_labour.remove(&indicator).is_none() {
                        v.forced_labour
                            .insert(indicator, "observé pendant la visite".into());
                    }
                }
                _ => v.workforce.female.age_12_14 = rng.gen_range(0..10),
            }
            store.update(&v).expect("update visit");
        }
        RecordKind::Workplace => {
            let mut w: Workplace = store.get(id).expect("read workplace");
            match rng.gen_range(0..6) {
                0 | 1 => edit_text(rng, &mut w.notes),
                2 => w.owner_name = pick(rng, &["Kouamé", "Yao", "Traoré", "Koné"]).to_string(),
                3 => toggle(
                    &mut w.buyers,
                    &pick(rng, &["Coopérative A", "Négociant B", "Usine C"]).to_string(),
                ),
                4 => w.name = pick(rng, &["Plantation Aké", "Champ Koffi", "Carrière"]).to_string(),
                _ => {
                    w.sector = pick(rng, &["cocoa", "rubber", "mining", "other"]).to_string();
                    w.formality = if w.formality == Formality::Formal {
                        Formality::Informal
                    } else {
                        Formality::Formal
                    };
                }
            }
            store.update(&w).expect("update workplace");
        }
        RecordKind::User | RecordKind::Reference => {
            panic!("devices do not edit users or reference data")
        }
    }
}

/// The field `force_field` sets, by kind: random edits never touch it, so a conflict made on it
/// stays until someone resolves it.
pub fn forced_path(kind: RecordKind) -> Vec<String> {
    let path: &[&str] = match kind {
        RecordKind::ChildCase => &["guardian"],
        RecordKind::Visit => &["workforce", "female", "adults"],
        RecordKind::Workplace => &["owner_contact"],
        RecordKind::User | RecordKind::Reference => panic!("not edited here"),
    };
    path.iter().map(|s| s.to_string()).collect()
}

/// Sets a record's forced field to a value made from `n`; returns the value as the record's
/// JSON holds it.
pub fn force_field(store: &mut Store, id: Uuid, n: u32) -> serde_json::Value {
    match store.kind_of(id).expect("record present") {
        RecordKind::ChildCase => {
            let mut c: ChildCase = store.get(id).expect("read");
            c.guardian = format!("Tuteur {n}");
            store.update(&c).expect("update");
            serde_json::Value::from(c.guardian)
        }
        RecordKind::Visit => {
            let mut v: Visit = store.get(id).expect("read");
            v.workforce.female.adults = n as i32;
            store.update(&v).expect("update");
            serde_json::Value::from(n)
        }
        RecordKind::Workplace => {
            let mut w: Workplace = store.get(id).expect("read");
            w.owner_contact = format!("+225 07 {n:04}");
            store.update(&w).expect("update");
            serde_json::Value::from(w.owner_contact)
        }
        RecordKind::User | RecordKind::Reference => panic!("not edited here"),
    }
}

// ---------------------------------------------------------------------------------------------
// How records come and go (areas, erasure, quarantine review, hand-made requests)

pub mod lifecycle;

//! `vigie-bench hub-load`: many devices syncing a day of field work at once, against two hub
//! processes on 127.0.0.1 sharing one PostgreSQL database, and against one hub on the embedded
//! SQLite store.
//!
//! For each hub set-up, untimed first:
//! - one user and one enrolled device per simulated device (through the hub's storage, as
//!   `vigie user add` and `vigie device enrol` do): two community monitors for one labour
//!   inspector, spread over the 40 communities and 4 districts of the reference region;
//! - the hub process(es) (`vigie-bench hub-serve`, the real HTTP hub), and "yesterday's" records
//!   of every community (workplaces, visits, child cases) pushed by a supervisor's device;
//! - each device's own encrypted store, synced a first time (days before: the hub certifies
//!   its keys), then synced this morning (it holds its scope, and the directory of the other
//!   devices' certificates, as of this morning), then a day of work recorded offline, one
//!   durable write at a time: visits drafted, completed and submitted, children identified and
//!   referred, and edits to yesterday's records that the other devices of the same community
//!   or district edit too (follow-ups, notes, findings).
//!
//! Timed: every device syncs once, in a shuffled order, from a pool of client threads (devices
//! dealt in turn to the hubs), with the real HTTP client; a sync is a whole session, until
//! nothing is pending. Then every record each device created or edited must be on the hub with
//! every change the device made (PostgreSQL read with SQL, the SQLite store opened once its hub
//! stopped); anything missing is a lost record. Errors are failed syncs, records refused or not
//! applied, records left pending, and lines the hubs logged at ERROR.

use crate::sync_bench::{HubProcess, spawn_hub};
use crate::workload::{
    ACTIVITIES, CHECKLIST, CHECKLIST_VERSION, COMMUNITIES_PER_DISTRICT, COUNTRY, DISTRICTS,
    FAMILY_NAMES, FINDINGS, FIRST_NAMES, FOLLOW_UP_NOTES, PROVIDERS, REGION, SECTORS, TASKS,
};
use crate::{BoxResult, Report, ms, percentile};
use automerge::{Automerge, ChangeHash, ReadDoc};
use chrono::{DateTime, Days, FixedOffset, NaiveDate, TimeDelta, TimeZone};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;
use vigie_core::sync::SyncOptions;
use vigie_core::{
    Answer, Area, ChecklistAnswers, ChildCase, Encryption, FollowUp, FollowUpSituation,
    ForcedLabourIndicator, Formality, GeoPoint, ReferenceData, Referral, Role, SchoolStatus,
    ServiceKind, Sex, Store, StoreConfig, User, Visit, VisitAction, VisitKind, VisitStatus,
    Workplace,
};
use vigie_server::Database;
use vigie_server::auth::Token;
use vigie_server::client::HubClient;

/// Which hub set-ups to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// One hub process on the embedded SQLite store.
    Sqlite,
    /// Two hub processes on one PostgreSQL database.
    Postgres,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Sqlite => "sqlite_1_hub",
            Setup::Postgres => "postgres_2_hubs",
        }
    }

    fn hubs(self) -> usize {
        match self {
            Setup::Sqlite => 1,
            Setup::Postgres => 2,
        }
    }
}

pub struct HubLoadArgs {
    pub devices: usize,
    pub setups: Vec<Setup>,
    pub seed: u64,
    /// Syncs in flight at once.
    pub clients: usize,
    /// A PostgreSQL server (`postgres://user@host:port/db`) in which to create the bench's
    /// database; else the one `scripts/postgres.sh` runs.
    pub postgres: Option<String>,
}

/// Threads that prepare the devices' stores (untimed).
const PREP_THREADS: usize = 4;
/// Yesterday's records in each community.
const BASE_WORKPLACES: usize = 2;
const BASE_VISITS: usize = 3;
const BASE_CASES: usize = 2;

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 15).expect("valid date")
}

fn at(date: NaiveDate, hour: u32, minute: u32) -> DateTime<FixedOffset> {
    FixedOffset::east_opt(0)
        .expect("utc offset")
        .from_local_datetime(&date.and_hms_opt(hour, minute, 0).expect("valid time"))
        .single()
        .expect("a fixed offset has no gaps")
}

fn random_id(rng: &mut ChaCha8Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.r#gen()).into_uuid()
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items.choose(rng).expect("non-empty list")
}

fn district_code(d: usize) -> String {
    format!("{REGION}-D{}", d + 1)
}

fn community_area(c: usize) -> Area {
    let district = district_code(c / COMMUNITIES_PER_DISTRICT);
    let community = format!("{district}-C{:02}", c % COMMUNITIES_PER_DISTRICT + 1);
    Area::new(COUNTRY, REGION, &district, &community)
}

const COMMUNITIES: usize = DISTRICTS * COMMUNITIES_PER_DISTRICT;

/// What a simulated device's user does.
#[derive(Debug, Clone, Copy)]
enum Job {
    Monitor { community: usize },
    Inspector { district: usize },
}

impl Job {
    /// Two monitors for one inspector, spread evenly over the communities and districts.
    fn of(index: usize) -> Job {
        let (group, slot) = (index / 3, index % 3);
        if slot == 2 {
            Job::Inspector {
                district: group % DISTRICTS,
            }
        } else {
            Job::Monitor {
                community: (2 * group + slot) % COMMUNITIES,
            }
        }
    }

    fn user(self, index: usize) -> User {
        let name = format!("Agent {index}");
        match self {
            Job::Monitor { community } => User::new(
                &name,
                Role::CommunityMonitor,
                &[community_area(community).community.as_str()],
            ),
            Job::Inspector { district } => {
                User::new(&name, Role::Inspector, &[district_code(district).as_str()])
            }
        }
    }
}

struct SimDevice {
    job: Job,
    token: Token,
    path: PathBuf,
    key: [u8; 32],
    /// Records it created, then records of others it edited, during its day.
    created: Vec<Uuid>,
    edited: Vec<Uuid>,
}

impl SimDevice {
    fn open(&self) -> vigie_core::Result<Store> {
        Store::open(
            StoreConfig::new(&self.path, Encryption::Key(self.key), self.token.user)
                .device(self.token.device),
        )
    }
}

/// What a device did during its day.
#[derive(Default)]
struct DayWork {
    created: Vec<Uuid>,
    /// Records of others it edited.
    edited: Vec<Uuid>,
}

/// Yesterday's records, by community.
struct Base {
    workplaces: Vec<Vec<Workplace>>,
    visits: Vec<Vec<Uuid>>,
    cases: Vec<Vec<Uuid>>,
    records: usize,
}

/// Codes the generated records use, from the built-in reference data.
struct Codes {
    checklist_items: Vec<String>,
    hazards: Vec<String>,
}

impl Codes {
    fn builtin() -> Codes {
        let reference = ReferenceData::builtin();
        Codes {
            checklist_items: reference
                .checklist(CHECKLIST, CHECKLIST_VERSION)
                .expect("the built-in inspection checklist")
                .items
                .iter()
                .map(|i| i.code.clone())
                .collect(),
            hazards: reference
                .rule_set()
                .thresholds
                .hazardous_work
                .iter()
                .map(|h| h.code.clone())
                .collect(),
        }
    }
}

fn new_workplace(rng: &mut ChaCha8Rng, area: Area) -> Workplace {
    let (sector, label) = *SECTORS.choose(rng).expect("non-empty list");
    let formality = if rng.gen_bool(0.3) {
        Formality::Formal
    } else {
        Formality::Informal
    };
    let mut w = Workplace::new(
        &format!("{label} {}", pick(rng, &FAMILY_NAMES)),
        sector,
        formality,
        area,
    );
    w.id = random_id(rng);
    w.location.point = Some(GeoPoint {
        latitude: rng.gen_range(5.3..9.7),
        longitude: rng.gen_range(-7.7..-3.3),
        accuracy_m: Some(rng.gen_range(3.0..30.0)),
    });
    w.owner_name = format!("{} {}", pick(rng, &FIRST_NAMES), pick(rng, &FAMILY_NAMES));
    w
}

fn new_visit(
    rng: &mut ChaCha8Rng,
    kind: VisitKind,
    workplace: &Workplace,
    visitor: Uuid,
    started_at: DateTime<FixedOffset>,
) -> Visit {
    let mut v = Visit::new(kind, workplace, visitor, started_at);
    v.id = random_id(rng);
    v.gps = workplace.location.point;
    v.findings = pick(rng, &FINDINGS).to_string();
    let w = &mut v.workforce;
    w.female.adults = rng.gen_range(0..40);
    w.male.adults = rng.gen_range(0..40);
    w.female.age_12_14 = rng.gen_range(0..4);
    w.male.age_15_17 = rng.gen_range(0..4);
    v
}

fn new_case(
    rng: &mut ChaCha8Rng,
    codes: &Codes,
    code: String,
    visit: &Visit,
    identified_by: Uuid,
) -> ChildCase {
    let family = pick(rng, &FAMILY_NAMES);
    let name = format!("{} {family}", pick(rng, &FIRST_NAMES));
    let sex = if rng.gen_bool(0.5) {
        Sex::Female
    } else {
        Sex::Male
    };
    let identified_on = visit.started_at.date_naive();
    let mut c = ChildCase::new(
        &code,
        &name,
        sex,
        visit.area.clone(),
        identified_on,
        identified_by,
    );
    c.id = random_id(rng);
    c.estimated_age = Some(rng.gen_range(6..=17));
    c.guardian = format!("{} {family}", pick(rng, &FIRST_NAMES));
    c.workplace_id = Some(visit.workplace_id);
    c.identified_on_visit = Some(visit.id);
    c.school = *[
        SchoolStatus::Attending,
        SchoolStatus::AttendingIrregularly,
        SchoolStatus::DroppedOut,
        SchoolStatus::NeverEnrolled,
    ]
    .choose(rng)
    .expect("non-empty list");
    c.activity = pick(rng, &ACTIVITIES).to_string();
    c.tasks = [pick(rng, &TASKS).to_string()].into();
    c.hours_per_week = rng.gen_range(0..=50);
    let hazards = rng.gen_range(0..=2);
    c.hazards = codes
        .hazards
        .choose_multiple(rng, hazards)
        .cloned()
        .collect();
    c
}

/// Yesterday's records of every community, written by a supervisor's device.
fn base_records(
    rng: &mut ChaCha8Rng,
    codes: &Codes,
    store: &mut Store,
    user: Uuid,
) -> BoxResult<Base> {
    let yesterday = day() - Days::new(1);
    let mut base = Base {
        workplaces: Vec::new(),
        visits: Vec::new(),
        cases: Vec::new(),
        records: 0,
    };
    let (mut workplaces, mut visits, mut cases) = (Vec::new(), Vec::new(), Vec::new());
    for c in 0..COMMUNITIES {
        let area = community_area(c);
        let ws: Vec<Workplace> = (0..BASE_WORKPLACES)
            .map(|_| new_workplace(rng, area.clone()))
            .collect();
        let mut vs = Vec::new();
        for v in 0..BASE_VISITS {
            let kind = [VisitKind::LabourInspection, VisitKind::CommunityMonitoring][v % 2];
            let mut visit = new_visit(rng, kind, &ws[v % ws.len()], user, at(yesterday, 9, 0));
            visit.status = VisitStatus::Submitted;
            vs.push(visit);
        }
        let cs: Vec<ChildCase> = (0..BASE_CASES)
            .map(|k| new_case(rng, codes, format!("{}-B{k}", area.community), &vs[0], user))
            .collect();
        base.workplaces.push(ws.clone());
        base.visits.push(vs.iter().map(|v| v.id).collect());
        base.cases.push(cs.iter().map(|c| c.id).collect());
        workplaces.extend(ws);
        visits.extend(vs);
        cases.extend(cs);
    }
    base.records += store.create_all(&workplaces)?;
    base.records += store.create_all(&visits)?;
    base.records += store.create_all(&cases)?;
    Ok(base)
}

/// A community monitor's day: visits drafted, completed and submitted; children identified and
/// referred; follow-ups of yesterday's cases of the community (which its other monitors follow
/// up too). Returns the records created and those of others edited.
fn monitor_day(
    rng: &mut ChaCha8Rng,
    codes: &Codes,
    store: &mut Store,
    community: usize,
    base: &Base,
) -> BoxResult<DayWork> {
    let user = store.user_id();
    let mut work = DayWork::default();
    let mut visits = Vec::new();
    for v in 0..rng.gen_range(1..=3u32) {
        let workplace = base.workplaces[community]
            .choose(rng)
            .expect("workplaces in every community");
        let started = at(day(), 8 + 2 * v, rng.gen_range(0..60));
        let visit = new_visit(
            rng,
            VisitKind::CommunityMonitoring,
            workplace,
            user,
            started,
        );
        let mut visit = store.create(&visit)?;
        visit.findings.push(' ');
        visit.findings.push_str(pick(rng, &FINDINGS));
        let mut visit = store.update(&visit)?;
        visit.ended_at = Some(started + TimeDelta::minutes(rng.gen_range(30..=120)));
        visits.push(store.update(&visit)?);
        work.created.push(visit.id);
    }
    for k in 0..rng.gen_range(0..=2) {
        let visit = &mut visits[0];
        let code = format!(
            "{}-{}-{k}",
            visit.area.community,
            &user.simple().to_string()[..8]
        );
        let case = store.create(&new_case(rng, codes, code, visit, user))?;
        work.created.push(case.id);
        let mut case = case;
        case.referrals.insert(
            random_id(rng),
            Referral {
                service: ServiceKind::Education,
                provider: pick(rng, &PROVIDERS).to_string(),
                date: day(),
                outcome: String::new(),
            },
        );
        store.update(&case)?;
        visit.children_identified.insert(case.id);
        *visit = store.update(visit)?;
    }
    // Submitted once the children found are named on them: a visit's content is its visitor's
    // to write while a draft.
    for visit in &mut visits {
        visit.status = VisitStatus::Submitted;
        *visit = store.update(visit)?;
    }
    let shared = rng.gen_range(1..=2);
    for &id in base.cases[community].choose_multiple(rng, shared) {
        let mut case: ChildCase = store.get(id)?;
        let adult = case.reaches_age_on(18);
        case.followups.insert(
            random_id(rng),
            FollowUp {
                date: day(),
                situation: *[
                    FollowUpSituation::StillWorking,
                    FollowUpSituation::AtRisk,
                    FollowUpSituation::InSchool,
                ]
                .choose(rng)
                .expect("non-empty list"),
                notes: pick(rng, &FOLLOW_UP_NOTES).to_string(),
                next_due: Some(day() + Days::new(30))
                    .filter(|next| adult.is_none_or(|adult| *next < adult)),
            },
        );
        case.notes.push_str(&format!(
            " Passage du {} : {}",
            day(),
            pick(rng, &FOLLOW_UP_NOTES)
        ));
        store.update(&case)?;
        work.edited.push(id);
    }
    Ok(work)
}

/// A labour inspector's day: perhaps a workplace found, inspections with the checklist, and a
/// second look at one of yesterday's visits of the district (which its other inspectors may
/// take too).
fn inspector_day(
    rng: &mut ChaCha8Rng,
    codes: &Codes,
    store: &mut Store,
    district: usize,
    base: &Base,
) -> BoxResult<DayWork> {
    let user = store.user_id();
    let mut work = DayWork::default();
    let first = district * COMMUNITIES_PER_DISTRICT;
    let communities = first..first + COMMUNITIES_PER_DISTRICT;
    let mut found = None;
    if rng.gen_bool(0.4) {
        let area = community_area(rng.gen_range(communities.clone()));
        let w = store.create(&new_workplace(rng, area))?;
        work.created.push(w.id);
        found = Some(w);
    }
    for v in 0..rng.gen_range(1..=3u32) {
        let workplace = match (&found, v) {
            (Some(w), 0) => w.clone(),
            _ => base.workplaces[rng.gen_range(communities.clone())]
                .choose(rng)
                .expect("workplaces in every community")
                .clone(),
        };
        let started = at(day(), 8 + 2 * v, rng.gen_range(0..60));
        let mut visit = new_visit(rng, VisitKind::LabourInspection, &workplace, user, started);
        visit.checklist = ChecklistAnswers {
            checklist: CHECKLIST.into(),
            version: CHECKLIST_VERSION as i32,
            answers: codes
                .checklist_items
                .iter()
                .map(|code| {
                    let answer = match rng.gen_range(0..10) {
                        0..6 => Answer::Yes,
                        6..9 => Answer::No,
                        _ => Answer::NotApplicable,
                    };
                    (code.clone(), answer)
                })
                .collect(),
        };
        if rng.gen_bool(0.3) {
            let indicator = *ForcedLabourIndicator::ALL
                .choose(rng)
                .expect("non-empty list");
            visit
                .forced_labour
                .insert(indicator, "Constaté lors de l'entretien.".into());
        }
        let mut visit = store.create(&visit)?;
        visit.findings.push(' ');
        visit.findings.push_str(pick(rng, &FINDINGS));
        visit.actions = [VisitAction::Advice].into();
        let mut visit = store.update(&visit)?;
        visit.status = VisitStatus::Submitted;
        visit.ended_at = Some(started + TimeDelta::minutes(rng.gen_range(30..=180)));
        store.update(&visit)?;
        work.created.push(visit.id);
    }
    // A workplace others of the district write too (a visit is its visitor's alone).
    let community = rng.gen_range(communities);
    let id = base.workplaces[community]
        .choose(rng)
        .expect("workplaces in every community")
        .id;
    let mut workplace: Workplace = store.get(id)?;
    workplace.notes.push_str(&format!(
        " Contre-visite du {} : {}",
        day(),
        pick(rng, &FINDINGS)
    ));
    store.update(&workplace)?;
    work.edited.push(id);
    Ok(work)
}

fn sorted_heads(document: &[u8]) -> BoxResult<Vec<ChangeHash>> {
    let mut heads = Automerge::load(document)?.get_heads();
    heads.sort();
    Ok(heads)
}

/// The PostgreSQL server of the scripts: started by `scripts/postgres.sh` if needed.
pub(crate) fn postgres_server() -> BoxResult<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/postgres.sh");
    let out = std::process::Command::new(script)
        .arg("url")
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err("scripts/postgres.sh failed".into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// A database of its own on a PostgreSQL server, dropped when the bench succeeded.
pub(crate) struct BenchDatabase {
    server: String,
    name: String,
    pub(crate) url: String,
}

impl BenchDatabase {
    pub(crate) fn create(server: &str) -> BoxResult<BenchDatabase> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let name = format!("vigie_load_{}_{nanos}", std::process::id());
        let mut client = postgres::Client::connect(server, postgres::NoTls)?;
        client.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let base = server
            .rsplit_once('/')
            .map(|(base, _)| base)
            .ok_or("a PostgreSQL URL names a database")?;
        Ok(BenchDatabase {
            server: server.to_string(),
            url: format!("{base}/{name}"),
            name,
        })
    }

    /// Transactions rolled back (a hub runs one again when it collided with another process)
    /// and deadlocks, once every hub's connection has closed (and so reported its counts).
    fn counters(&self) -> BoxResult<(i64, i64)> {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let others: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    &[],
                )?
                .get(0);
            if others == 0 || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let row = client.query_one(
            "SELECT xact_rollback, deadlocks FROM pg_stat_database
             WHERE datname = current_database()",
            &[],
        )?;
        Ok((row.get(0), row.get(1)))
    }

    /// The process id of the server's postmaster, when the server runs on this machine.
    fn local_postmaster(&self) -> Option<u32> {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).ok()?;
        let backend: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .ok()?
            .get(0);
        let postmaster = crate::parent_of(u32::try_from(backend).ok()?)?;
        let name = std::fs::read_to_string(format!("/proc/{postmaster}/comm")).ok()?;
        (name.trim() == "postgres").then_some(postmaster)
    }

    pub(crate) fn drop_it(self) -> BoxResult<()> {
        let mut client = postgres::Client::connect(&self.server, postgres::NoTls)?;
        client.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))?;
        Ok(())
    }
}

/// What one device's timed sync did.
struct Synced {
    latency: Duration,
    error: Option<String>,
    refused: usize,
    failed: usize,
    pending: usize,
    received: usize,
    bytes: usize,
    round_trips: usize,
    /// The device's heads, after its sync, of every record it created or edited.
    heads: Vec<(Uuid, Vec<ChangeHash>)>,
}

fn sync_device(device: &SimDevice, url: &str) -> Synced {
    let mut synced = Synced {
        latency: Duration::ZERO,
        error: None,
        refused: 0,
        failed: 0,
        pending: 0,
        received: 0,
        bytes: 0,
        round_trips: 0,
        heads: Vec::new(),
    };
    let mut store = match device.open() {
        Ok(store) => store,
        Err(e) => {
            synced.error = Some(format!("opening the store: {e}"));
            return synced;
        }
    };
    let client = HubClient::new(url, &device.token);
    let started = Instant::now();
    let outcome = client.sync(&mut store, &SyncOptions::default(), |_| {});
    synced.latency = started.elapsed();
    match outcome {
        Ok(summary) => {
            synced.refused = summary.refused.len();
            synced.failed = summary.failed.len();
            synced.pending = summary.pending;
            synced.received = summary.received;
            synced.bytes = summary.bytes_sent + summary.bytes_received;
            synced.round_trips = summary.round_trips;
        }
        Err(e) => synced.error = Some(e.to_string()),
    }
    for &id in device.created.iter().chain(&device.edited) {
        match store
            .export_document(id)
            .map_err(|e| e.to_string())
            .and_then(|d| sorted_heads(&d).map_err(|e| e.to_string()))
        {
            Ok(heads) => synced.heads.push((id, heads)),
            Err(e) => synced.error = Some(format!("reading {id} back: {e}")),
        }
    }
    if let Err(e) = store.close() {
        synced.error = Some(format!("closing the store: {e}"));
    }
    synced
}

/// The hub's document of each record asked for (those it has).
fn hub_documents(
    setup: Setup,
    data: &Path,
    database: Option<&BenchDatabase>,
    ids: &[Uuid],
) -> BoxResult<HashMap<Uuid, Vec<u8>>> {
    let mut documents = HashMap::new();
    match (setup, database) {
        // PostgreSQL's documents are sealed with the hub's key: copied out by the hub's code.
        (Setup::Postgres, Some(db)) => {
            let scratch = tempfile::tempdir()?;
            let mut copy = vigie_server::open_store(scratch.path(), Encryption::Unencrypted)?;
            vigie_server::postgres::Postgres::connect(
                &db.url,
                1,
                &crate::sync_bench::hub_key(),
                data,
            )?
            .copy_into(&mut copy)?;
            export_documents(&copy, ids, &mut documents)?;
        }
        _ => {
            let encryption = vigie_server::hub_encryption(data, &crate::sync_bench::hub_key())?;
            let store = vigie_server::open_store(data, encryption)?;
            export_documents(&store, ids, &mut documents)?;
            store.close()?;
        }
    }
    Ok(documents)
}

/// The documents of `ids` that `store` holds.
fn export_documents(
    store: &Store,
    ids: &[Uuid],
    documents: &mut HashMap<Uuid, Vec<u8>>,
) -> BoxResult<()> {
    for &id in ids {
        match store.export_document(id) {
            Ok(document) => {
                documents.insert(id, document);
            }
            Err(vigie_core::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Lines a hub logged at ERROR.
fn log_errors(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("panicked"))
        .count()
}

/// Runs the load against one set-up; prints its figures. Returns (errors, records lost).
fn run_setup(setup: Setup, args: &HubLoadArgs, report: &Report) -> BoxResult<(usize, usize)> {
    let name = setup.name();
    let phase = Instant::now();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("hub");
    let database = match setup {
        Setup::Sqlite => None,
        Setup::Postgres => {
            let server = match &args.postgres {
                Some(url) => url.clone(),
                None => postgres_server()?,
            };
            Some(BenchDatabase::create(&server)?)
        }
    };
    let storage = Database::choose(
        database.as_ref().map(|d| d.url.as_str()),
        &data,
        crate::sync_bench::hub_key(),
    )?;

    // Users and devices, through the hub's storage.
    eprintln!("{name}: enrolling {} devices", args.devices);
    let mut devices = Vec::with_capacity(args.devices);
    let coordinator = {
        let backend = storage.open()?;
        backend.publish_references(&[crate::workload::sample_areas()])?;
        for index in 0..args.devices {
            let job = Job::of(index);
            let user = backend.add_user(&job.user(index))?;
            let token = backend.enrol(user.id)?;
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(index as u64 + 1).to_le_bytes());
            devices.push(SimDevice {
                job,
                token,
                path: dir.path().join(format!("device-{index}.db")),
                key,
                created: Vec::new(),
                edited: Vec::new(),
            });
        }
        let supervisor =
            backend.add_user(&User::new("Superviseur", Role::Supervisor, &[REGION]))?;
        backend.enrol(supervisor.id)?
    };

    // The hubs.
    let mut hubs: Vec<HubProcess> = Vec::new();
    let mut logs = Vec::new();
    for h in 0..setup.hubs() {
        let log = dir.path().join(format!("hub-{h}.log"));
        let file = std::fs::File::create(&log)?;
        hubs.push(spawn_hub(
            &data,
            database.as_ref().map(|d| d.url.as_str()),
            Stdio::from(file),
        )?);
        logs.push(log);
    }
    let urls: Vec<String> = hubs.iter().map(|h| h.url.clone()).collect();

    // Yesterday's records, from the supervisor's device.
    let codes = Codes::builtin();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let base = {
        let mut store = Store::open(
            StoreConfig::new(
                dir.path().join("supervisor.db"),
                Encryption::Key([0x5b; 32]),
                coordinator.user,
            )
            .device(coordinator.device),
        )?;
        let base = base_records(&mut rng, &codes, &mut store, coordinator.user)?;
        let summary = HubClient::new(&urls[0], &coordinator).sync(
            &mut store,
            &SyncOptions::default(),
            |_| {},
        )?;
        if summary.accepted != base.records || summary.pending != 0 {
            return Err(format!(
                "the hub took {} of yesterday's {} records",
                summary.accepted, base.records
            )
            .into());
        }
        store.close()?;
        base
    };

    // Each device's first sync, days before: it presents its keys and the hub certifies it,
    // so that this morning every device is in the directory the others hold.
    eprintln!("{name}: enrolling the devices' stores ({PREP_THREADS} threads)");
    for outcome in on_threads(PREP_THREADS, devices.len(), |index| {
        first_sync(&devices[index], &urls[index % urls.len()])
            .map_err(|e| format!("device {index}: {e}"))
    }) {
        outcome?;
    }
    // Each device: its store, synced this morning, then the day's work offline.
    eprintln!("{name}: preparing the devices' stores ({PREP_THREADS} threads)");
    let prepared = on_threads(PREP_THREADS, devices.len(), |index| {
        let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ ((index as u64 + 1) << 32));
        prepare(
            &devices[index],
            &urls[index % urls.len()],
            &mut rng,
            &codes,
            &base,
        )
        .map_err(|e| format!("device {index}: {e}"))
    });
    for (index, outcome) in prepared.into_iter().enumerate() {
        let work = outcome?;
        devices[index].created = work.created;
        devices[index].edited = work.edited;
    }
    let pushed: usize = devices
        .iter()
        .map(|d| d.created.len() + d.edited.len())
        .sum();
    let created: usize = devices.iter().map(|d| d.created.len()).sum();
    eprintln!(
        "{name}: ready in {:.1} s: {created} records created and {} edited offline; \
         {} devices syncing through {} hub(s), {} at a time",
        phase.elapsed().as_secs_f64(),
        pushed - created,
        args.devices,
        urls.len(),
        args.clients
    );

    // Timed: every device syncs once.
    let mut order: Vec<usize> = (0..devices.len()).collect();
    order.shuffle(&mut rng);
    // Where the CPU goes while the devices sync: the hubs' processes, and this one (the
    // devices' stores: applying answers, merging, writing).
    let hub_cpu = || -> f64 {
        hubs.iter()
            .filter_map(|h| crate::cpu_ms_of(h.child.id()))
            .sum()
    };
    // And PostgreSQL's server, when it runs here: every query the hubs send costs it too.
    let postmaster = database.as_ref().and_then(BenchDatabase::local_postmaster);
    let server_cpu = || postmaster.and_then(crate::cpu_ms_of_tree);
    let server_before = server_cpu();
    let cpu_before = (hub_cpu(), crate::cpu_ms().unwrap_or(0.0));
    let started = Instant::now();
    let results = on_threads(args.clients, devices.len(), |k| {
        let index = order[k];
        (index, sync_device(&devices[index], &urls[k % urls.len()]))
    });
    let wall = started.elapsed();
    let cpu_used = (
        hub_cpu() - cpu_before.0,
        crate::cpu_ms().unwrap_or(0.0) - cpu_before.1,
    );
    let server_used = server_before
        .zip(server_cpu())
        .map(|(before, after)| after - before);
    let rss: Vec<f64> = hubs
        .iter()
        .map(|h| crate::peak_rss_mb_of(h.child.id()).unwrap_or(0.0))
        .collect();
    drop(hubs);

    // Errors, then every device's records on the hub.
    let mut errors = 0;
    let (mut refused, mut failed, mut pending, mut failures) = (0, 0, 0, 0);
    let mut latencies = Vec::with_capacity(results.len());
    let (mut received, mut bytes, mut round_trips) = (0, 0, 0);
    for (index, r) in &results {
        if let Some(e) = &r.error {
            failures += 1;
            if failures <= 5 {
                eprintln!("{name}: device {index}: {e}");
            }
        }
        refused += r.refused;
        failed += r.failed;
        pending += r.pending;
        received += r.received;
        bytes += r.bytes;
        round_trips += r.round_trips;
        latencies.push(r.latency);
    }
    let logged: usize = logs.iter().map(|l| log_errors(l)).sum();
    errors += failures + refused + failed + pending + logged;
    if errors > 0 {
        eprintln!(
            "{name}: {failures} syncs failed, {refused} records refused, {failed} not applied, \
             {pending} left pending, {logged} hub log lines at ERROR (logs in {})",
            dir.path().display()
        );
    }
    let ids: Vec<Uuid> = results
        .iter()
        .flat_map(|(_, r)| r.heads.iter().map(|(id, _)| *id))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let documents = hub_documents(setup, &data, database.as_ref(), &ids)?;
    let mut lost = BTreeSet::new();
    let mut loaded: HashMap<Uuid, Automerge> = HashMap::new();
    for (_, r) in &results {
        for (id, heads) in &r.heads {
            let Some(bytes) = documents.get(id) else {
                lost.insert(*id);
                continue;
            };
            if !loaded.contains_key(id) {
                loaded.insert(*id, Automerge::load(bytes)?);
            }
            let document = &loaded[id];
            if heads
                .iter()
                .any(|h| document.get_change_by_hash(h).is_none())
            {
                lost.insert(*id);
            }
        }
    }
    // Records created but never read back (a failed sync) count as lost too.
    for d in &devices {
        for id in &d.created {
            if !documents.contains_key(id) {
                lost.insert(*id);
            }
        }
    }
    if !lost.is_empty() {
        eprintln!(
            "{name}: {} records lost, e.g. {:?}",
            lost.len(),
            lost.first()
        );
    }

    latencies.sort_unstable();
    let metric = |m: &str| format!("{name}.{m}");
    report.emit(&metric("devices"), devices.len() as f64, "devices");
    report.emit(&metric("hubs"), urls.len() as f64, "processes");
    report.emit(&metric("clients"), args.clients as f64, "threads");
    report.emit(&metric("records_pushed"), pushed as f64, "records");
    report.emit(&metric("records_received"), received as f64, "records");
    report.emit(
        &metric("syncs_per_s"),
        results.len() as f64 / wall.as_secs_f64(),
        "1/s",
    );
    report.emit(
        &metric("sync_p50_ms"),
        ms(percentile(&latencies, 0.50)),
        "ms",
    );
    report.emit(
        &metric("sync_p99_ms"),
        ms(percentile(&latencies, 0.99)),
        "ms",
    );
    report.emit(
        &metric("sync_max_ms"),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
        "ms",
    );
    report.emit(&metric("wall_s"), wall.as_secs_f64(), "s");
    let syncs = results.len().max(1) as f64;
    report.emit(&metric("hub_cpu_per_sync"), cpu_used.0 / syncs, "ms");
    report.emit(&metric("devices_cpu_per_sync"), cpu_used.1 / syncs, "ms");
    if let Some(used) = server_used {
        report.emit(&metric("database_cpu_per_sync"), used / syncs, "ms");
    }
    report.emit(
        &metric("round_trips_per_sync"),
        round_trips as f64 / results.len().max(1) as f64,
        "round trips",
    );
    report.emit(
        &metric("bytes_per_sync"),
        bytes as f64 / results.len().max(1) as f64,
        "B",
    );
    report.emit(&metric("errors"), errors as f64, "errors");
    report.emit(&metric("records_lost"), lost.len() as f64, "records");
    report.emit(
        &metric("hub_rss_mb"),
        rss.iter().cloned().fold(0.0, f64::max),
        "MB",
    );
    if rss.len() > 1 {
        report.emit(&metric("hub_rss_mb_total"), rss.iter().sum(), "MB");
    }
    if let Some(db) = &database {
        let (rolled_back, deadlocks) = db.counters()?;
        report.emit(
            &metric("transactions_rolled_back"),
            rolled_back as f64,
            "transactions",
        );
        report.emit(&metric("deadlocks"), deadlocks as f64, "deadlocks");
    }
    eprintln!("{name}: done in {:.1} s", phase.elapsed().as_secs_f64());

    if errors == 0 && lost.is_empty() {
        if let Some(db) = database {
            db.drop_it()?;
        }
    } else {
        // Kept for a look: the stores, the hubs' logs and the database.
        let kept = dir.keep();
        eprintln!("{name}: files kept in {}", kept.display());
        if let Some(db) = database {
            eprintln!("{name}: database kept: {}", db.url);
        }
    }
    Ok((errors, lost.len()))
}

/// `work` for each of `count` devices, taken in turn by `threads` threads; the outcomes in the
/// devices' order.
fn on_threads<T: Send>(threads: usize, count: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, T)>> = Mutex::new(Vec::with_capacity(count));
    std::thread::scope(|s| {
        for _ in 0..threads.min(count) {
            s.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        return;
                    }
                    let outcome = work(index);
                    done.lock()
                        .expect("no thread panicked")
                        .push((index, outcome));
                }
            });
        }
    });
    let mut done = done.into_inner().expect("no thread panicked");
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, outcome)| outcome).collect()
}

/// A device's first sync: its scope as of then, and its certificate.
fn first_sync(device: &SimDevice, url: &str) -> BoxResult<()> {
    let mut store = device.open()?;
    let summary =
        HubClient::new(url, &device.token).sync(&mut store, &SyncOptions::default(), |_| {})?;
    if !summary.refused.is_empty() || !summary.failed.is_empty() || summary.received == 0 {
        return Err(format!("the first sync went wrong: {summary:?}").into());
    }
    if store.certificate()?.is_none() {
        return Err("the first sync brought no certificate".into());
    }
    store.close()?;
    Ok(())
}

/// One device's morning sync and day of work; returns the records it created and edited.
fn prepare(
    device: &SimDevice,
    url: &str,
    rng: &mut ChaCha8Rng,
    codes: &Codes,
    base: &Base,
) -> BoxResult<DayWork> {
    let mut store = device.open()?;
    let summary =
        HubClient::new(url, &device.token).sync(&mut store, &SyncOptions::default(), |_| {})?;
    if !summary.refused.is_empty() || !summary.failed.is_empty() || summary.pending != 0 {
        return Err(format!("the morning sync went wrong: {summary:?}").into());
    }
    let work = match device.job {
        Job::Monitor { community } => monitor_day(rng, codes, &mut store, community, base)?,
        Job::Inspector { district } => inspector_day(rng, codes, &mut store, district, base)?,
    };
    store.close()?;
    Ok(work)
}

pub fn bench_hub_load(args: &HubLoadArgs) -> BoxResult<()> {
    let report = Report {
        bench: "hub-load",
        scale: None,
    };
    let mut bad = Vec::new();
    for &setup in &args.setups {
        let (errors, lost) = run_setup(setup, args, &report)?;
        if errors > 0 || lost > 0 {
            bad.push(format!(
                "{}: {errors} errors, {lost} records lost",
                setup.name()
            ));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("; ").into())
    }
}

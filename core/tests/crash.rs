//! Crash safety: a child process writes records into an encrypted store and is killed with
//! SIGKILL at a random moment; every write it acknowledged must survive, and the file must be
//! sound.
//!
//! The child is this same test binary, re-invoked to run the ignored test
//! `crash::crash_child_process` with the store's path in `VIGIE_CRASH_DB`. It prints one line per
//! write, only after the write returned `Ok`:
//!
//! ```text
//! VIGIE-CRASH ACK <kind> <uuid> <revision>
//! ```
//!
//! where `<revision>` is the value of a counter the write set (0 for a new record; child cases
//! carry it as `rev N` on the first line of their notes, visits as `workforce.male.adults`).
//! After the kill the parent reopens the store and checks that each record it saw acknowledged
//! is there with at least the acknowledged revision (a later, unacknowledged one may have been
//! committed too), that `integrity_check` passes, and that the index tables agree with the
//! documents. The cycles run on the same file, so it grows.
//!
//! `VIGIE_CRASH_CYCLES` sets the number of cycles (default 100), `VIGIE_CRASH_SEED` the seed of
//! the kill delays and of the child's choices (printed at the start, to replay a failure).

use chrono::{FixedOffset, NaiveDate, TimeZone};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};
use uuid::Uuid;
use vigie_core::{
    Area, ChildCase, ChildCaseQuery, Encryption, Formality, Page, RecordKind, Sex, Store,
    StoreConfig, Visit, VisitKind, VisitQuery, Workplace, WorkplaceQuery,
};

const ENV_DB: &str = "VIGIE_CRASH_DB";
const ENV_SEED: &str = "VIGIE_CRASH_CHILD_SEED";
const TAG: &str = "VIGIE-CRASH";
/// The key of the store under test (a fixed test key; phones take theirs from the keystore).
const KEY: [u8; 32] = *b"vigie-crash-test-key-0123456789!";
/// The user every write is signed with.
const USER: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0001);
/// The kill lands this long after the child reported that it is about to write.
const KILL_DELAY_MS: std::ops::RangeInclusive<u64> = 5..=80;
/// A child that is never killed stops writing after this long (the parent died, say).
const CHILD_MAX_RUN: Duration = Duration::from_secs(20);

fn config(path: &Path) -> StoreConfig {
    StoreConfig::new(path, Encryption::Key(KEY), USER)
}

fn area() -> Area {
    Area::new("CI", "CI-GO", "CI-GO-SOU", "CI-GO-SOU-042")
}

/// splitmix64: enough randomness for delays and choices, and replayable from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn in_range(&mut self, r: std::ops::RangeInclusive<u64>) -> u64 {
        r.start() + self.below(r.end() - r.start() + 1)
    }
}

// ---------------------------------------------------------------------------------------------
// The child

/// The revision a child case's notes carry on their first line (`rev N`).
fn notes_revision(notes: &str) -> Option<u64> {
    notes
        .lines()
        .next()?
        .strip_prefix("rev ")?
        .trim()
        .parse()
        .ok()
}

/// The revision a child case's case code carries (`CC-…/rN`), so that the index row (which
/// holds the case code) can be matched with the document it was derived from.
fn case_code_revision(code: &str) -> Option<u64> {
    code.rsplit_once("/r")?.1.parse().ok()
}

/// New notes at revision 0, padded with a random amount of text so that documents (rewritten
/// whole by every write) span from one page to several, and kills land at different points of
/// a commit.
fn new_notes(filler: usize) -> String {
    let mut notes = String::from("rev 0\n");
    let line = "Observation de terrain : l'enfant porte des charges, horaires à vérifier.\n";
    while notes.len() < filler {
        notes.push_str(line);
    }
    notes
}

/// The same notes at another revision: only the first line changes, so the edit stays small.
fn with_revision(notes: &str, revision: u64) -> String {
    let rest = notes.split_once('\n').map_or("", |(_, rest)| rest);
    format!("rev {revision}\n{rest}")
}

fn ack(out: &mut impl Write, kind: &str, id: Uuid, revision: u64) {
    // One `write` of a short line, then a flush: the parent sees the line whole or not at all.
    let line = format!("{TAG} ACK {kind} {id} {revision}\n");
    out.write_all(line.as_bytes()).expect("stdout");
    out.flush().expect("stdout");
}

/// Not a test on its own: the body of the process that `crash_cycles` starts and kills.
#[test]
#[ignore = "run by crash_cycles in a child process"]
fn crash_child_process() {
    let Some(path) = std::env::var_os(ENV_DB) else {
        return;
    };
    let seed: u64 = std::env::var(ENV_SEED)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut rng = Rng(seed);
    let mut out = std::io::stdout().lock();
    // libtest may have printed "test crash_child_process ... " without a newline.
    out.write_all(b"\n").expect("stdout");

    let mut store = Store::open(config(Path::new(&path))).expect("open the store");
    let workplace = match store
        .workplaces(&WorkplaceQuery::default(), Page::first(1))
        .expect("list workplaces")
        .first()
    {
        Some(w) => store.get::<Workplace>(w.id).expect("read the workplace"),
        None => {
            let mut w = Workplace::new("Plantation Yao", "cocoa", Formality::Informal, area());
            w.notes = "rev 0".into();
            let w = store.create(&w).expect("create the workplace");
            ack(&mut out, "workplace", w.id, 0);
            w
        }
    };
    // Records written by earlier runs (the most recent ones) are edited too.
    let mut children: Vec<Uuid> = store
        .child_cases(&ChildCaseQuery::default(), Page::first(20))
        .expect("list child cases")
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut visits: Vec<Uuid> = store
        .visits(&VisitQuery::default(), Page::first(20))
        .expect("list visits")
        .into_iter()
        .map(|v| v.id)
        .collect();
    let today = NaiveDate::from_ymd_opt(2025, 3, 14).expect("date");
    let started = FixedOffset::east_opt(0)
        .expect("offset")
        .with_ymd_and_hms(2025, 3, 14, 9, 30, 0)
        .single()
        .expect("time");

    writeln!(out, "{TAG} READY").expect("stdout");
    out.flush().expect("stdout");

    let began = Instant::now();
    let mut n = 0u64;
    while began.elapsed() < CHILD_MAX_RUN {
        n += 1;
        let filler = [0, 200, 3_000, 12_000][rng.below(4) as usize];
        match rng.below(10) {
            0..=2 => {
                let mut c = ChildCase::new(
                    &format!("CC-{seed:016x}-{n}/r0"),
                    &format!("Enfant {n}"),
                    [Sex::Female, Sex::Male][(n % 2) as usize],
                    area(),
                    today,
                    USER,
                );
                c.estimated_age = Some(11);
                c.workplace_id = Some(workplace.id);
                c.hours_per_week = 20;
                c.notes = new_notes(filler);
                let c = store.create(&c).expect("create a child case");
                ack(&mut out, "child", c.id, 0);
                children.push(c.id);
            }
            3..=5 if !children.is_empty() => {
                let id = children[rng.below(children.len() as u64) as usize];
                let mut c: ChildCase = store.get(id).expect("read a child case");
                let revision = notes_revision(&c.notes).unwrap_or(0) + 1;
                c.notes = with_revision(&c.notes, revision);
                let base = c.case_code.rsplit_once("/r").map_or("CC", |(b, _)| b);
                c.case_code = format!("{base}/r{revision}");
                c.hours_per_week = (c.hours_per_week + 1) % 60;
                store.update(&c).expect("update a child case");
                ack(&mut out, "child", id, revision);
            }
            6..=7 => {
                let mut v = Visit::new(VisitKind::LabourInspection, &workplace, USER, started);
                v.findings = new_notes(filler);
                let v = store.create(&v).expect("create a visit");
                ack(&mut out, "visit", v.id, 0);
                visits.push(v.id);
            }
            _ if !visits.is_empty() => {
                let id = visits[rng.below(visits.len() as u64) as usize];
                let mut v: Visit = store.get(id).expect("read a visit");
                v.workforce.male.adults += 1;
                let revision = v.workforce.male.adults as u64;
                v.findings = with_revision(&v.findings, revision);
                store.update(&v).expect("update a visit");
                ack(&mut out, "visit", id, revision);
            }
            _ => {}
        }
    }
    writeln!(out, "{TAG} DONE").expect("stdout");
}

// ---------------------------------------------------------------------------------------------
// The parent

/// What the child said, line by line; a line cut by the kill (no newline) is dropped.
enum Said {
    Ready,
    Ack {
        kind: RecordKind,
        id: Uuid,
        revision: u64,
    },
    Done,
    /// A tagged line that does not parse: a bug in the test, reported by the parent.
    Malformed(String),
}

fn parse_line(line: &str) -> Option<Said> {
    // libtest's own output may share the line ("test crash_child_process ... VIGIE-CRASH …").
    let rest = &line[line.find(TAG)? + TAG.len()..];
    let words: Vec<&str> = rest.split_whitespace().collect();
    let said = match words.as_slice() {
        ["READY"] => Some(Said::Ready),
        ["DONE"] => Some(Said::Done),
        ["ACK", kind, id, revision] => (|| {
            Some(Said::Ack {
                kind: match *kind {
                    "workplace" => RecordKind::Workplace,
                    "child" => RecordKind::ChildCase,
                    "visit" => RecordKind::Visit,
                    _ => return None,
                },
                id: id.parse().ok()?,
                revision: revision.parse().ok()?,
            })
        })(),
        _ => None,
    };
    Some(said.unwrap_or_else(|| Said::Malformed(line.trim_end().to_string())))
}

/// Reads the child's stdout on a thread, sending each complete tagged line.
fn read_lines(stdout: impl Read + Send + 'static) -> Receiver<Said> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if buf.last() != Some(&b'\n') {
                // Cut short by the kill: not acknowledged.
                break;
            }
            let line = String::from_utf8_lossy(&buf);
            if let Some(said) = parse_line(&line)
                && tx.send(said).is_err()
            {
                break;
            }
        }
    });
    rx
}

fn spawn_child(path: &Path, seed: u64) -> Child {
    Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "crash::crash_child_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_DB, path)
        .env(ENV_SEED, seed.to_string())
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child")
}

fn child_stderr(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// What must survive every later crash: the records the child acknowledged, at the highest
/// revision acknowledged, and anything an earlier check found committed (a write that was
/// durable but killed before its ACK line was printed).
#[derive(Default)]
struct MustSurvive {
    records: HashMap<Uuid, (RecordKind, u64)>,
    /// Records acknowledged since the last check.
    touched: HashSet<Uuid>,
    acks: u64,
    /// Writes found committed although never acknowledged: kills that landed between the
    /// commit and the ACK line.
    committed_unacknowledged: u64,
}

impl MustSurvive {
    fn ack(&mut self, kind: RecordKind, id: Uuid, revision: u64) {
        self.acks += 1;
        self.touched.insert(id);
        let entry = self.records.entry(id).or_insert((kind, revision));
        assert_eq!(entry.0, kind, "record {id} acknowledged as two kinds");
        entry.1 = entry.1.max(revision);
    }
}

/// Reads one record from the reopened store and returns its revision.
fn revision_in_store(store: &Store, id: Uuid, kind: RecordKind, cycle: u32) -> u64 {
    let found = match kind {
        RecordKind::Workplace => {
            let w: Workplace = store
                .get(id)
                .unwrap_or_else(|e| panic!("cycle {cycle}: workplace {id} lost: {e}"));
            notes_revision(&w.notes)
        }
        RecordKind::ChildCase => {
            let c: ChildCase = store
                .get(id)
                .unwrap_or_else(|e| panic!("cycle {cycle}: child case {id} lost: {e}"));
            let revision = notes_revision(&c.notes);
            assert_eq!(
                case_code_revision(&c.case_code),
                revision,
                "cycle {cycle}: child case {id}: case code and notes come from different writes"
            );
            revision
        }
        RecordKind::Visit => {
            let v: Visit = store
                .get(id)
                .unwrap_or_else(|e| panic!("cycle {cycle}: visit {id} lost: {e}"));
            assert_eq!(
                notes_revision(&v.findings),
                Some(v.workforce.male.adults as u64),
                "cycle {cycle}: visit {id}: findings and workforce come from different writes"
            );
            Some(v.workforce.male.adults as u64)
        }
        RecordKind::User | RecordKind::Reference => {
            unreachable!("the child writes no users or reference data")
        }
    };
    found.unwrap_or_else(|| panic!("cycle {cycle}: {kind} {id} carries no revision"))
}

/// The records the index tables list, with the revision a child case's index row carries.
/// Each kind's index must list exactly as many records as are stored.
fn listed_in_indexes(store: &Store, cycle: u32) -> Vec<(Uuid, RecordKind, Option<u64>)> {
    let mut listed = Vec::new();
    let mut page = Page::first(Page::MAX_LIMIT);
    loop {
        let rows = store
            .child_cases(&ChildCaseQuery::default(), page)
            .expect("list child cases");
        let n = rows.len();
        listed.extend(rows.into_iter().map(|c| {
            let revision = case_code_revision(&c.case_code);
            assert!(
                revision.is_some(),
                "cycle {cycle}: bad case code in the index"
            );
            (c.id, RecordKind::ChildCase, revision)
        }));
        if n < page.limit as usize {
            break;
        }
        page = page.next();
    }
    let mut page = Page::first(Page::MAX_LIMIT);
    loop {
        let rows = store
            .visits(&VisitQuery::default(), page)
            .expect("list visits");
        let n = rows.len();
        listed.extend(rows.into_iter().map(|v| (v.id, RecordKind::Visit, None)));
        if n < page.limit as usize {
            break;
        }
        page = page.next();
    }
    listed.extend(
        store
            .workplaces(&WorkplaceQuery::default(), Page::first(Page::MAX_LIMIT))
            .expect("list workplaces")
            .into_iter()
            .map(|w| (w.id, RecordKind::Workplace, None)),
    );
    for kind in [
        RecordKind::ChildCase,
        RecordKind::Visit,
        RecordKind::Workplace,
    ] {
        let in_index = listed.iter().filter(|(_, k, _)| *k == kind).count() as u64;
        assert_eq!(
            in_index,
            store.count(kind).expect("count"),
            "cycle {cycle}: the {kind} index disagrees with the records"
        );
    }
    listed
}

/// Reopens the store after a crash and checks what must have survived: every record
/// acknowledged since the last check, and every record of the store when `full` (reading every
/// document each cycle would make the test quadratic in the store's size).
fn check_after_crash(store: &Store, must: &mut MustSurvive, full: bool, cycle: u32) {
    assert!(
        store.integrity_check().expect("integrity_check"),
        "cycle {cycle}: integrity_check failed"
    );
    let listed = listed_in_indexes(store, cycle);
    let mut to_read: Vec<(Uuid, RecordKind, Option<u64>)> = Vec::new();
    for &(id, kind, index_revision) in &listed {
        if full || must.touched.contains(&id) || !must.records.contains_key(&id) {
            to_read.push((id, kind, index_revision));
        }
    }
    let listed_ids: HashSet<Uuid> = listed.iter().map(|(id, _, _)| *id).collect();
    for (&id, &(kind, _)) in &must.records {
        // Not listed: the index lost it (or the record is gone); reading it tells which.
        if !listed_ids.contains(&id) {
            to_read.push((id, kind, None));
        }
    }
    for (id, kind, index_revision) in to_read {
        let found = revision_in_store(store, id, kind, cycle);
        if let Some(r) = index_revision {
            assert_eq!(
                r, found,
                "cycle {cycle}: {kind} {id}: the index row and the document disagree"
            );
        }
        assert!(
            listed_ids.contains(&id),
            "cycle {cycle}: {kind} {id} is stored but missing from the index"
        );
        match must.records.entry(id) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((kind, found));
                must.committed_unacknowledged += 1;
            }
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let (_, revision) = e.get_mut();
                assert!(
                    found >= *revision,
                    "cycle {cycle}: {kind} {id} is at revision {found}, but revision {revision} \
                     was acknowledged (or seen committed by an earlier check)"
                );
                if found > *revision {
                    must.committed_unacknowledged += 1;
                    *revision = found;
                }
            }
        }
    }
    must.touched.clear();
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}")),
    )
}

#[test]
fn crash_cycles() {
    let cycles = env_u64("VIGIE_CRASH_CYCLES").unwrap_or(100) as u32;
    let seed = env_u64("VIGIE_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos() as u64
    });
    eprintln!("crash_cycles: {cycles} cycles, VIGIE_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = dir.path().join("vigie.db");
    let mut must = MustSurvive::default();
    let mut killed_while_writing = 0u32;
    let mut checked = 0u32;
    let mut full_checks = 0u32;
    let mut acks_per_cycle: BTreeMap<u64, u32> = BTreeMap::new();
    let began = Instant::now();

    for cycle in 0..cycles {
        let mut child = spawn_child(&path, rng.next());
        let lines = read_lines(child.stdout.take().expect("piped stdout"));

        // Wait until the child has opened the store and is about to write.
        let mut ready = false;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Said::Ready) => ready = true,
                Ok(Said::Ack { kind, id, revision }) => must.ack(kind, id, revision),
                Ok(Said::Done) => unreachable!("DONE before READY"),
                Ok(Said::Malformed(l)) => panic!("cycle {cycle}: malformed line {l:?}"),
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("cycle {cycle}: the child never became ready");
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = child.wait().expect("wait");
                    panic!(
                        "cycle {cycle}: the child exited ({status}) before writing:\n{}",
                        child_stderr(&mut child)
                    );
                }
            }
        }
        let delay = Duration::from_millis(rng.in_range(KILL_DELAY_MS));
        std::thread::sleep(delay);
        let still_running = child.try_wait().expect("try_wait").is_none();
        child.kill().expect("kill the child"); // SIGKILL on Unix
        let status = child.wait().expect("wait for the child");
        if !still_running {
            panic!(
                "cycle {cycle}: the child exited ({status}) before it was killed:\n{}",
                child_stderr(&mut child)
            );
        }
        killed_while_writing += 1;

        // Everything the child managed to print before it died.
        let mut this_cycle = 0u64;
        for said in lines.iter() {
            match said {
                Said::Ack { kind, id, revision } => {
                    must.ack(kind, id, revision);
                    this_cycle += 1;
                }
                Said::Done => panic!("cycle {cycle}: the child stopped writing on its own"),
                Said::Ready => unreachable!("READY twice"),
                Said::Malformed(l) => panic!("cycle {cycle}: malformed line {l:?}"),
            }
        }
        *acks_per_cycle.entry(this_cycle.min(50)).or_default() += 1;

        // A quarter of the cycles are not checked: the next child then opens a file that a
        // killed process left (WAL and all), and crashes pile up before the next check.
        if cycle + 1 < cycles && rng.below(4) == 0 {
            continue;
        }
        checked += 1;
        let store = Store::open(config(&path))
            .unwrap_or_else(|e| panic!("cycle {cycle}: the store does not reopen: {e}"));
        let full = checked % 8 == 1 || cycle + 1 == cycles;
        full_checks += u32::from(full);
        check_after_crash(&store, &mut must, full, cycle);
        // Closing checkpoints the WAL; dropping leaves SQLite's own close to do it.
        if rng.below(2) == 0 {
            store.close().expect("close");
        } else {
            drop(store);
        }
    }

    let elapsed = began.elapsed();
    let file_size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "crash_cycles: {cycles} cycles in {elapsed:.1?}, {killed_while_writing} kills, \
         {checked} checks ({full_checks} of every record), {} writes acknowledged, {} found \
         committed though not acknowledged, {} records, store {file_size} bytes; acknowledged \
         writes per cycle (capped at 50) -> cycles: {acks_per_cycle:?}",
        must.acks,
        must.committed_unacknowledged,
        must.records.len()
    );
    // A write takes some 10-25 ms in a debug build, so most cycles see a few; far fewer would
    // mean the kills all land before the first write and the test proves little.
    assert!(
        must.acks >= u64::from(cycles / 4).max(1),
        "too few acknowledged writes ({}) for the test to mean anything",
        must.acks
    );
}
